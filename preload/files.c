/* The kinds of descriptors that are files: regular files, directories,
 * devices, and the session's stdio (ckrun's own descriptors 0-2 when they
 * are not regular files: a terminal, a pipe; given back by the restarting
 * ckrun). Opened again by path. Files deleted while open are their own kind
 * (deleted.c).
 *
 * Files the program writes: ckrun puts them back as they were at the
 * checkpoint before the restore host runs (src/files.ts, --files=snapshot).
 * What is left here is the check and the cut of --files=size (and of
 * images older than it): a file opened for writing is cut back to its size
 * at checkpoint time, so output continues without duplicates or a stale
 * tail; a file that became shorter than that is refused (what the program
 * believes it wrote is gone). With --files=none (CKRUN_FILES=none, set by
 * ckrun restart) files are left as they are. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fdkind.h"
#include "sys.h"

/* ---- the session's stdio ---- */

static int is_session_stdio(const struct ck_fd *f, int k)
{
	return f->st.dev == ck_session.stdio_dev[k] && f->st.ino == ck_session.stdio_ino[k];
}

CK_HIDDEN int ck_fd_stdio_index(const struct ck_fd *f)
{
	/* a regular file (`> log`) is saved as the file it is (path, offset,
	 * flags), its content kept by ckrun: restart opens it again */
	if (!ck_session.have_stdio || (f->st.mode & S_IFMT) == S_IFREG)
		return -1;
	/* ckrun's stdio may all be one file (/dev/null): fd k is stdio k first */
	if (f->fd < 3 && is_session_stdio(f, f->fd))
		return f->fd;
	for (int k = 0; k < 3; k++)
		if (is_session_stdio(f, k))
			return k;
	return -1;
}

static int stdio_detect(const struct ck_fd *f)
{
	return ck_fd_stdio_index(f) >= 0;
}

/* The restarting ckrun's own descriptor k (fds.c keeps its description,
 * setting only the status flags the program set). */
static int stdio_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	int fd = dup(f->stdio);
	if (fd < 0)
		ck_refuse("descriptor %d was the session's stdio %d, but ckrun restart has no fd %d", f->fd, f->stdio, f->stdio);
	return fd;
}

/* A terminal's settings go with it (pty.c): they are put on the terminal
 * ckrun restart runs in. */
static void stdio_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	ck_tty_save(&w->meta, f->fd);
}

CK_HIDDEN const struct ck_fd_kind ck_kind_stdio = {
	.name = "stdio",
	.detect = stdio_detect,
	.save = stdio_save,
	.key = "tty",
	.key_optional = 1,
	.parse = ck_tty_parse,
	.open = stdio_open,
	.install = ck_tty_install,
};

/* ---- files opened by path ---- */

static int is_deleted(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFREG && (f->st.nlink == 0 || ck_ends_with(f->link, " (deleted)"));
}

static int file_detect(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFREG && !is_deleted(f);
}

static int dir_detect(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFDIR;
}

static int device_detect(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFCHR || (f->st.mode & S_IFMT) == S_IFBLK;
}

static int writable(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* `ckrun restart --stdio=inherit`: CKRUN_STDIO_INHERIT lists "k:dev:ino"
 * for each of the checkpointed session's stdio that was a regular file;
 * the program's descriptors of that file become the restarting ckrun's
 * stdio k instead (no check, no offset, no cut). */
static int inherited_stdio(const struct ck_img_file *f)
{
	const char *s = getenv("CKRUN_STDIO_INHERIT");
	while (s && *s) {
		unsigned long long k, dev, ino;
		int used = 0;
		if (sscanf(s, "%llu:%llu:%llu%n", &k, &dev, &ino, &used) != 3 || k > 2)
			return -1;
		if (dev == f->dev && ino == f->ino)
			return (int)k;
		s += used;
		if (*s == ',')
			s++;
	}
	return -1;
}

/* `ckrun verify` (CKRUN_FILES_SAVED: "dev:ino,..."): files whose content
 * the generation keeps, which ckrun puts back (or makes again) before a
 * restart; whether they are there now says nothing. */
CK_HIDDEN int ck_files_kept_by_ckrun(uint64_t fdev, uint64_t fino)
{
	const char *s = getenv("CKRUN_FILES_SAVED");
	while (s && *s) {
		unsigned long long dev, ino;
		int used = 0;
		if (sscanf(s, "%llu:%llu%n", &dev, &ino, &used) != 2)
			return 0;
		if (dev == fdev && ino == fino)
			return 1;
		s += used;
		if (*s == ',')
			s++;
	}
	return 0;
}

static int kept_by_ckrun(const struct ck_img_file *f)
{
	return ck_files_kept_by_ckrun(f->dev, f->ino);
}

/* --files=none: the user keeps the files the program writes as they are. */
static int files_left_alone(void)
{
	const char *p = getenv("CKRUN_FILES");
	return p && !strcmp(p, "none");
}

/* ---- a process's list of mappings read part way ---- */

/* /proc/PID/maps, smaps and numa_maps (also of /proc/self, a thread's
 * under task/TID): a read on from an offset carries on after the last
 * mapping the text showed, made again from the process as it is. A
 * restarted process's list is not the same (its saved pages are mapped
 * from the image files: more mappings, with paths), so the saved byte
 * offset lands at another line: a program caught between two reads of
 * its own /proc/self/smaps skipped mappings after a restart and took
 * them for gone. Refused at the checkpoint while the program is stopped
 * (fds.c), which ckrun tries again after letting the program run on
 * (src/session.ts PASSING_STATES); refused again at restart for images
 * taken before. Other files of a process (status, stat, ...) keep one
 * text per read and are reopened at their offset as before. */
static int ends_with(const char *s, const char *tail)
{
	size_t n = ck_strlen(s), t = ck_strlen(tail);
	return n >= t && ck_streq(s + n - t, tail);
}

CK_HIDDEN int ck_is_process_text(const char *path)
{
	const char *p = path;
	if (!ck_starts_with(p, "/proc/"))
		return 0;
	p += 6;
	uint64_t pid;
	if (ck_starts_with(p, "self/"))
		p += 4;
	else if (ck_starts_with(p, "thread-self/"))
		p += 11;
	else if (!ck_parse_dec(&p, &pid) || *p != '/')
		return 0;
	return ends_with(p, "/maps") || ends_with(p, "/smaps") || ends_with(p, "/numa_maps");
}

/* the reason, for the checkpoint's refusal (fds.c) and the restart's */
CK_HIDDEN const char ck_process_text_why[] = "a restart lists the restored process's mappings, which are not the same "
					     "byte for byte, so the program would read on at another line";

/* 0 for a /proc file of a process of the family, which exists only once the
 * restore has made that process (attrs.c); 1 once the file is there. */
static int stat_path(const struct ck_image *img, const struct ck_img_file *f, struct stat *st)
{
	if (ck_proc_path_of_family(img, f->path))
		return 0;
	if (stat(f->path, st) != 0)
		ck_refuse("descriptor %d refers to %s, which is gone (%s); put the file back or restart from an image taken without it",
			  f->fd, f->path, strerror(errno));
	return 1;
}

static void file_check(struct ck_image *img, struct ck_img_file *f)
{
	struct stat st;
	if (inherited_stdio(f) >= 0) {
		/* the offset is the restarting ckrun's, also where another
		 * process of the family opens the shared description */
		f->has_offset = 0;
		return;
	}
	if (kept_by_ckrun(f))
		return;
	if (f->has_offset && f->offset > 0 && ck_is_process_text(f->path))
		ck_refuse("descriptor %d (%s) is read part way (at byte %lld): %s; restart from another image", f->fd, f->path,
			  (long long)f->offset, ck_process_text_why);
	if (!stat_path(img, f, &st))
		return;
	if (!S_ISREG(st.st_mode))
		ck_refuse("descriptor %d refers to %s, which is no longer a regular file", f->fd, f->path);
	if (writable(f->flags) && (uint64_t)st.st_size < f->size && !files_left_alone())
		ck_refuse("%s (descriptor %d) is shorter than at checkpoint time (%lld < %llu bytes): "
			  "output the program already wrote is gone; restore the file or restart from an older image",
			  f->path, f->fd, (long long)st.st_size, (unsigned long long)f->size);
}

static void dir_check(struct ck_image *img, struct ck_img_file *f)
{
	struct stat st;
	if (!stat_path(img, f, &st))
		return;
	if (!S_ISDIR(st.st_mode))
		ck_refuse("descriptor %d refers to %s, which is no longer a directory", f->fd, f->path);
}

static void device_check(struct ck_image *img, struct ck_img_file *f)
{
	struct stat st;
	if (!stat_path(img, f, &st))
		return;
}

/* The program's flags, without those that only mean something to open itself. */
static int open_flags(const struct ck_img_file *f)
{
	return f->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
}

static int open_path(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	int k = inherited_stdio(f);
	if (k >= 0) {
		f->has_offset = 0; /* the offset is the restarting ckrun's */
		int fd = dup(k);
		if (fd < 0)
			ck_refuse("descriptor %d was the session's stdio %d (%s), but ckrun restart has no fd %d", f->fd, k, f->path, k);
		return fd;
	}
	int fd = open(f->path, open_flags(f) | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		ck_refuse("cannot reopen %s as descriptor %d: %s", f->path, f->fd, strerror(errno));
	return fd;
}

/* Cut back to its size at checkpoint time (see the policy above). */
static void file_install(struct ck_img_file *f)
{
	struct stat st;
	if (files_left_alone() || inherited_stdio(f) >= 0)
		return;
	if (writable(f->flags) && fstat(f->newfd, &st) == 0 && (uint64_t)st.st_size > f->size &&
	    ftruncate(f->newfd, (off_t)f->size) != 0)
		ck_refuse("cannot cut %s back to its checkpoint size (%llu bytes): %s", f->path, (unsigned long long)f->size,
			  strerror(errno));
}

CK_HIDDEN const struct ck_fd_kind ck_kind_file = {
	.name = "file",
	.detect = file_detect,
	.check = file_check,
	.open = open_path,
	.install = file_install,
};

CK_HIDDEN const struct ck_fd_kind ck_kind_dir = {
	.name = "dir",
	.detect = dir_detect,
	.check = dir_check,
	.open = open_path,
};

CK_HIDDEN const struct ck_fd_kind ck_kind_device = {
	.name = "device",
	.detect = device_detect,
	.check = device_check,
	.open = open_path,
};
