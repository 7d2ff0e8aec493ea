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
	/* /dev/null, /dev/zero, ... (major 1) that the program opened itself
	 * are that device, with their own access mode (a write-only /dev/null
	 * made stdin of a restart would refuse writes): only fds 0-2 as they
	 * were are the session's */
	if ((f->st.mode & S_IFMT) == S_IFCHR && (((f->st.rdev >> 8) & 0xfff) | ((f->st.rdev >> 32) & ~0xfffULL)) == 1)
		return f->fd < 3 && is_session_stdio(f, f->fd) ? f->fd : -1;
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
 * under task/TID) read part way: the kernel makes the text again from the
 * process as it is at each read, and a seek to an offset makes it up to
 * there. The restored process's maps is the same text, byte for byte (its
 * saved pages are read, the shim's code mapped from its library again:
 * memory.c), but only once its memory is back: the restore host opens the
 * file, and the restored shim seeks it to its offset (seek_late,
 * checkpoint.c after_restore_leader). smaps and numa_maps count pages,
 * which a restart changes (the pages it read in are all there): the same
 * offset would land in another place of the text, so one read part way is
 * refused at the checkpoint while the program is stopped (fds.c), which
 * ckrun tries again after letting the program run on (src/session.ts
 * PASSING_STATES), and at restart for images taken before. Other files of
 * a process (status, stat, ...) keep one text per read and are reopened
 * at their offset as before. */
static int ends_with(const char *s, const char *tail)
{
	size_t n = ck_strlen(s), t = ck_strlen(tail);
	return n >= t && ck_streq(s + n - t, tail);
}

CK_HIDDEN int ck_process_text(const char *path)
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
	if (ends_with(p, "/maps"))
		return CK_TEXT_MAPS;
	return ends_with(p, "/smaps") || ends_with(p, "/numa_maps") ? CK_TEXT_COUNTS : 0;
}

/* the reason, for the checkpoint's refusal (fds.c) and the restart's */
CK_HIDDEN const char ck_process_text_why[] = "it counts pages, which the restored process has in other numbers (the "
					     "pages a restart reads in are all there), so the program would read on at "
					     "another place of the text";

/* The restored process's maps is the same text only when the shim's code
 * is mapped from the same library file as at the checkpoint (memory.c
 * open_shim_file): 1 then; a restart that would list the image instead
 * refuses. */
static int shim_library_unchanged(const struct ck_image *img, const struct ck_img_file *f)
{
	for (size_t i = 0; i < img->nregions; i++) {
		const struct ck_img_region *r = &img->regions[i];
		struct stat st;
		if (strcmp(r->kind, "stored"))
			continue;
		if (!r->has_shim_file || !r->name || stat(r->name, &st) != 0 || (uint64_t)st.st_dev != r->shim_file[0] ||
		    (uint64_t)st.st_ino != r->shim_file[1])
			ck_refuse("descriptor %d (%s) is read part way (at byte %lld), and the restored process would list "
				  "other mappings: ckrun's library %s is not the file the program had mapped (ckrun was "
				  "installed again since?); restart with that ckrun, or from an image taken without it",
				  f->fd, f->path, (long long)f->offset, r->name ? r->name : "(unnamed)");
	}
	return 1;
}


/* A namespace the program opened (/proc/self/ns/net: its link reads
 * "net:[4026531833]"): the restart opens the same kind of namespace of its
 * own, which is the program's when it is that very namespace (same
 * inode); into ns[64] the path to open, or 0 for another file. */
static const char *namespace_path(const struct ck_img_file *f, char ns[64])
{
	static const char *const types[] = {"net", "uts", "ipc", "pid", "mnt", "user", "cgroup", "time"};
	const char *br = f->path ? strchr(f->path, ':') : 0;
	if (!br || br[1] != '[' || f->path[strlen(f->path) - 1] != ']')
		return 0;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if ((size_t)(br - f->path) == strlen(types[i]) && !strncmp(f->path, types[i], strlen(types[i]))) {
			snprintf(ns, 64, "/proc/self/ns/%s", types[i]);
			return ns;
		}
	return 0;
}

static void namespace_check(const struct ck_img_file *f, const char *ns)
{
	struct stat st;
	if (stat(ns, &st) != 0)
		ck_refuse("descriptor %d refers to the namespace %s, and this restart cannot open its own (%s: %s)", f->fd,
			  f->path, ns, strerror(errno));
	if (st.st_ino != f->ino)
		ck_refuse("descriptor %d refers to the namespace %s, and this restart runs in another one (%.*s:[%llu]); "
			  "restart where the program ran (the same boot, as the same user) or from an image taken without it",
			  f->fd, f->path, (int)(strchr(f->path, ':') - f->path), f->path, (unsigned long long)st.st_ino);
}

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
	char ns[64];
	if (namespace_path(f, ns)) {
		namespace_check(f, ns);
		return;
	}
	int text = f->has_offset && f->offset > 0 ? ck_process_text(f->path) : 0;
	if (text == CK_TEXT_COUNTS)
		ck_refuse("descriptor %d (%s) is read part way (at byte %lld): %s; restart from another image", f->fd, f->path,
			  (long long)f->offset, ck_process_text_why);
	if (text == CK_TEXT_MAPS)
		f->seek_late = shim_library_unchanged(img, f);
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

static int open_path(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs);
CK_HIDDEN extern const struct ck_fd_kind ck_kind_device;

/* ---- device nodes deleted while open ----
 *
 * Made again with mknod (deleted.c) and removed: the checkpoint refuses
 * one when the process may not make device nodes (no CAP_MKNOD), as the
 * restart could not either. The owner is the restorer's. */

static int gone_name(const char *link)
{
	return ck_ends_with(link, " (deleted)");
}

struct cap_header {
	uint32_t version;
	int pid;
};
struct cap_data {
	uint32_t effective, permitted, inheritable;
};

static int may_mknod(void)
{
	struct cap_header h = {0x20080522, 0}; /* _LINUX_CAPABILITY_VERSION_3 */
	struct cap_data d[2];
	return CK_SYS2(SYS_capget, &h, d) == 0 && (d[0].effective & (1u << 27)); /* CAP_MKNOD */
}

static void device_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	if ((f->st.nlink == 0 || gone_name(f->link)) && !may_mknod()) {
		struct ck_str m;
		ck_writer_fail_fd(w, -EPERM, "the program has a device node that was deleted while open", f, &m);
		ck_str_add(&m, "would have to be made again with mknod, which this user may not (no CAP_MKNOD): keep its "
			       "name until the program closes it, or run as root");
	}
}

static int deleted_device(const struct ck_img_file *f)
{
	return f->path && gone_name(f->path);
}

/* its old name, without " (deleted)" */
static void old_name(const struct ck_img_file *f, char *out, size_t cap)
{
	snprintf(out, cap, "%.*s", (int)(strlen(f->path) - 10), f->path);
}

static void devices_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nfiles; j++) {
			struct ck_img_file *f = &imgs[i]->files[j];
			if (f->ops != &ck_kind_device || f->same_as >= 0 || !deleted_device(f) ||
			    ck_objects_find(objs, "inode", f->dev, f->ino) >= 0)
				continue;
			char old[4096];
			old_name(f, old, sizeof old);
			int fd = ck_make_removed_node(old, (uint32_t)f->mode, f->rdev, f->fd);
			int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
			close(fd);
			if (moved < 0)
				ck_refuse("cannot place the recreated device node %s: %s", old, strerror(errno));
			ck_objects_add(objs, "inode", f->dev, f->ino, moved);
		}
}

static void device_check(struct ck_image *img, struct ck_img_file *f)
{
	struct stat st;
	if (deleted_device(f))
		return;
	if (!stat_path(img, f, &st))
		return;
}

static int device_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	if (!deleted_device(f))
		return open_path(img, f, base_fd, objs);
	int keep = ck_objects_find(objs, "inode", f->dev, f->ino);
	if (keep < 0)
		ck_refuse("the deleted device node %s (descriptor %d) was not made by the restore", f->path, f->fd);
	return ck_open_removed_node(keep, f->flags, f->path, f->fd);
}

/* The program's flags, without those that only mean something to open itself. */
static int open_flags(const struct ck_img_file *f)
{
	return f->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
}

/* /proc/PID/fd/N or /proc/PID/fdinfo/N of the process itself (a program
 * reading its own descriptors' state, as lsof-like code and CRIU's zdtm
 * do): the restore host is that PID already, but N takes its number only
 * at install. */
static int names_own_descriptor(const struct ck_image *img, const char *path)
{
	char own[32];
	snprintf(own, sizeof own, "/proc/%d/", img->pid);
	size_t n = strlen(own);
	return !strncmp(path, own, n) && (!strncmp(path + n, "fd/", 3) || !strncmp(path + n, "fdinfo/", 7));
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
	if (names_own_descriptor(img, f->path)) {
		/* a stand-in until every descriptor is at its number (files_installed) */
		f->deferred = 1;
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			ck_refuse("cannot open /dev/null for descriptor %d: %s", f->fd, strerror(errno));
		return fd;
	}
	char ns[64];
	const char *path = namespace_path(f, ns) ? ns : f->path;
	int fd = open(path, open_flags(f) | O_CLOEXEC | O_NOCTTY);
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

/* The process's own /proc/PID/fd and fdinfo entries, opened now that the
 * descriptors they name are at their numbers; duplicates of them too. */
static void files_installed(struct ck_image *img)
{
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		if (!f->deferred)
			continue;
		int fd = open(f->path, open_flags(f) | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			ck_refuse("cannot reopen %s as descriptor %d: %s", f->path, f->fd, strerror(errno));
		if (f->has_offset && f->offset > 0 && lseek(fd, f->offset, SEEK_SET) < 0)
			ck_refuse("cannot seek %s to offset %lld: %s", f->path, (long long)f->offset, strerror(errno));
		if (dup3(fd, f->fd, f->cloexec ? O_CLOEXEC : 0) < 0)
			ck_refuse("cannot install descriptor %d: %s", f->fd, strerror(errno));
		close(fd);
		for (size_t j = 0; j < img->nfiles; j++) {
			const struct ck_img_file *g = &img->files[j];
			if (g->same_as == f->fd && dup3(f->fd, g->fd, g->cloexec ? O_CLOEXEC : 0) < 0)
				ck_refuse("cannot install descriptor %d: %s", g->fd, strerror(errno));
		}
	}
}

CK_HIDDEN const struct ck_fd_kind ck_kind_file = {
	.name = "file",
	.detect = file_detect,
	.check = file_check,
	.open = open_path,
	.install = file_install,
	.installed = files_installed,
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
	.save = device_save,
	.check = device_check,
	.create_shared = devices_create_shared,
	.open = device_open,
};
