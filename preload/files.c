/* Descriptors: the walk over all of them, and the kinds that are files:
 * regular files, directories, devices, the session's stdio and files
 * deleted while open. Pipes are in pipes.c, event descriptors (epoll,
 * eventfd, timerfd, signalfd, inotify, pidfd) in events.c, sockets in
 * sockets.c;
 * a kind ckrun cannot save yet fails the checkpoint with a message naming
 * the descriptor.
 *
 * Policy for files the program writes: at restart a file opened for
 * writing is cut back to its size at checkpoint time, so output continues
 * without duplicates or a stale tail; a file that became shorter than that
 * is refused (what the program believes it wrote is gone). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckrun.h"
#include "crc32c.h"
#include "restore.h"
#include "sys.h"

static int is_session_stdio(const struct ck_fd *f, int k)
{
	return f->st.dev == ck_session.stdio_dev[k] && f->st.ino == ck_session.stdio_ino[k];
}

static const char *kind_of(const struct ck_fd *f, int *stdio_index)
{
	*stdio_index = -1;
	if (ck_session.have_stdio) {
		/* ckrun's stdio may all be one file (/dev/null): fd k is stdio k first */
		if (f->fd < 3 && is_session_stdio(f, f->fd))
			*stdio_index = f->fd;
		for (int k = 0; k < 3 && *stdio_index < 0; k++)
			if (is_session_stdio(f, k))
				*stdio_index = k;
		if (*stdio_index >= 0)
			return "stdio";
	}
	/* anonymous inodes first: a pidfd's inode (pidfs) may look like a file */
	static const char *const anon[][2] = {
		{"anon_inode:[eventfd]", "eventfd"}, {"anon_inode:[eventpoll]", "epoll"},
		{"anon_inode:[timerfd]", "timerfd"}, {"anon_inode:[signalfd]", "signalfd"},
		{"anon_inode:inotify", "inotify"},   {"anon_inode:[pidfd]", "pidfd"},
	};
	for (size_t i = 0; i < sizeof anon / sizeof anon[0]; i++)
		if (ck_streq(f->link, anon[i][0]))
			return anon[i][1];
	switch (f->st.mode & S_IFMT) {
	case S_IFREG:
		return (f->st.nlink == 0 || ck_ends_with(f->link, " (deleted)")) ? "deleted" : "file";
	case S_IFDIR:
		return "dir";
	case S_IFCHR:
	case S_IFBLK:
		return "device";
	case S_IFIFO:
		return ck_starts_with(f->link, "pipe:") ? "pipe" : 0;
	case S_IFSOCK:
		return "socket";
	default:
		return 0;
	}
}

static const char *describe_unsupported(const struct ck_fd *f)
{
	switch (f->st.mode & S_IFMT) {
	case S_IFIFO:
		return "a named FIFO";
	default:
		if (ck_starts_with(f->link, "anon_inode:"))
			return "an event descriptor ckrun does not know yet";
		return "of a kind ckrun cannot save";
	}
}

static int same_description(int pid, int a, int b)
{
	return CK_SYS5(SYS_kcmp, pid, pid, KCMP_FILE, a, b) == 0;
}

static void save_deleted_contents(struct ck_writer *w, int fd, uint64_t size)
{
	char path[64];
	/* a fresh description, so the program's offset is untouched */
	int rfd = (int)ck_openat(AT_FDCWD, ck_proc_fd_path(path, "fd", fd), O_RDONLY | O_CLOEXEC, 0);
	struct cb_enc *e = &w->meta;
	if (rfd < 0) {
		ck_writer_fail(w, rfd, "cannot read a deleted file the program has open");
		return;
	}
	uint32_t crc = 0;
	uint64_t off = ck_image_put_fd(w, rfd, 0, size, &crc);
	ck_close(rfd);
	cb_text(e, "data");
	cb_array(e, 3);
	cb_uint(e, off);
	cb_uint(e, size);
	cb_uint(e, crc);
}

static int list_fds(int *fds, int max, struct ck_writer *w)
{
	int dfd = (int)ck_openat(AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int n = 0;
	char buf[4096];
	if (dfd < 0) {
		ck_writer_fail(w, dfd, "cannot list descriptors in /proc/self/fd");
		return 0;
	}
	for (;;) {
		long r = ck_getdents64(dfd, buf, sizeof buf);
		if (r <= 0)
			break;
		for (long off = 0; off < r;) {
			struct ck_dirent64 *d = (void *)(buf + off);
			off += d->reclen;
			const char *p = d->name;
			uint64_t fd;
			if (!ck_parse_dec(&p, &fd) || *p || (int)fd == dfd || n >= max)
				continue;
			fds[n++] = (int)fd;
		}
	}
	ck_close(dfd);
	/* the kernel lists them in order already; keep it certain */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];
			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	return n;
}

/* Describes every descriptor of the program (not the shim's own). */
static void build_table(struct ck_writer *w, struct ck_scratch *s, struct ck_fdtab *t)
{
	const size_t half = CK_SCRATCH_TEXT / 2;
	int *fds = (int *)s->text;
	int n = list_fds(fds, (int)(half / 2 / sizeof(int)), w);
	char *links = s->text + half / 2, *links_end = s->text + half;
	t->fds = (struct ck_fd *)(s->text + half);
	t->n = 0;
	for (int i = 0; i < n && t->n < (int)(half / sizeof(struct ck_fd)); i++) {
		int fd = fds[i];
		if (fd == w->fd || ck_is_session_fd(fd))
			continue;
		struct ck_fd *f = &t->fds[t->n];
		if (links_end - links < 4097)
			break;
		long ll = ck_fd_link(fd, links, 4097);
		if (ck_fstat(fd, &f->st) < 0 || ll < 0)
			continue; /* not ours to see (closed meanwhile) */
		f->link = links;
		links += ll + 1;
		f->fd = fd;
		f->flags = ck_fcntl(fd, F_GETFL, 0);
		long fdflags = ck_fcntl(fd, F_GETFD, 0);
		f->cloexec = fdflags > 0 && (fdflags & FD_CLOEXEC);
		t->n++;
	}
}

static void fail_unsupported(struct ck_writer *w, const struct ck_fd *f)
{
	struct ck_str m;
	ck_writer_fail(w, -EOPNOTSUPP, "the program has a descriptor ckrun cannot save yet");
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, f->fd);
	ck_str_add(&m, " (");
	ck_str_add(&m, f->link);
	ck_str_add(&m, ") is ");
	ck_str_add(&m, describe_unsupported(f));
	ck_str_add(&m, "; see the README's table of what is supported");
}

/* The lowest descriptor sharing f's open file description, or -1. */
static int shares_with(const struct ck_fdtab *t, const struct ck_fd *f, int pid)
{
	for (const struct ck_fd *o = t->fds; o < f; o++)
		if (o->st.dev == f->st.dev && o->st.ino == f->st.ino && same_description(pid, o->fd, f->fd))
			return o->fd;
	return -1;
}

/* Whether this process and pid share one descriptor table but not their
 * memory (clone with CLONE_FILES, without CLONE_VM). A kcmp that fails
 * (pid gone, or not ours to look at) says nothing. */
static int shares_table_only(int pid)
{
	int self = (int)ck_getpid();
	return pid > 0 && pid != self && CK_SYS5(SYS_kcmp, self, pid, KCMP_FILES, 0, 0) == 0 &&
	       CK_SYS5(SYS_kcmp, self, pid, KCMP_VM, 0, 0) > 0;
}

/* A child of this process (of any of its threads) that shares its
 * descriptor table; 0 if none. The lists are read into text. */
static int table_sharing_child(char *text, size_t cap)
{
	int taskfd = (int)ck_openat(AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	char buf[2048];
	int found = 0;
	if (taskfd < 0)
		return 0;
	for (long n; !found && (n = ck_getdents64(taskfd, buf, sizeof buf)) > 0;) {
		for (long off = 0; !found && off < n;) {
			struct ck_dirent64 *d = (void *)(buf + off);
			off += d->reclen;
			if (d->name[0] < '0' || d->name[0] > '9')
				continue;
			char path[64];
			struct ck_str p;
			ck_str_init(&p, path, sizeof path);
			ck_str_add(&p, "/proc/self/task/");
			ck_str_add(&p, d->name);
			ck_str_add(&p, "/children");
			long len = ck_read_file(path, text, cap);
			for (const char *q = text; len > 0 && *q && !found;) {
				uint64_t pid;
				if (!ck_parse_dec(&q, &pid)) {
					q++;
					continue;
				}
				if (shares_table_only((int)pid))
					found = (int)pid;
			}
		}
	}
	ck_close(taskfd);
	return found;
}

/* Processes that share a descriptor table without sharing memory would
 * come back with a table each, and what one opens the other would no
 * longer see: refused (in s->msg) until restart can share a table again.
 * Looked for while the program is stopped, among this process's parent
 * and children, so that ckrun hears it at once. */
CK_HIDDEN int ck_files_table_shared(struct ck_scratch *s)
{
	int ppid = (int)CK_SYS0(SYS_getppid);
	int other = shares_table_only(ppid) ? ppid : table_sharing_child(s->text, CK_SCRATCH_TEXT);
	if (!other)
		return 0;
	struct ck_str m;
	ck_str_init(&m, s->msg, sizeof s->msg);
	ck_str_add(&m, "process ");
	ck_str_dec(&m, ck_getpid());
	ck_str_add(&m, " shares its descriptor table with process ");
	ck_str_dec(&m, other);
	ck_str_add(&m, " without sharing its memory (clone with CLONE_FILES but not CLONE_VM); ckrun cannot restore a "
		       "shared descriptor table yet, so it cannot checkpoint them; the program runs on");
	return 1;
}

CK_HIDDEN void ck_files_save(struct ck_writer *w, struct ck_scratch *s)
{
	struct cb_enc *e = &w->meta;
	struct ck_fdtab t;
	int pid = (int)ck_getpid();
	build_table(w, s, &t);

	cb_text(e, "files");
	cb_array_open(e);
	for (int i = 0; i < t.n && !w->err; i++) {
		const struct ck_fd *f = &t.fds[i];
		int stdio_index;
		const char *kind = kind_of(f, &stdio_index);
		if (!kind) {
			fail_unsupported(w, f);
			break;
		}
		int same_as = shares_with(&t, f, pid);
		long offset = ck_lseek(f->fd, 0, SEEK_CUR);
		int deleted = ck_streq(kind, "deleted");
		cb_map_open(e);
		cb_kv_uint(e, "fd", (uint64_t)f->fd);
		cb_kv_text(e, "kind", kind);
		cb_text(e, "path");
		if (deleted && ck_ends_with(f->link, " (deleted)"))
			cb_textn(e, f->link, ck_strlen(f->link) - 10);
		else
			cb_text(e, f->link);
		cb_kv_uint(e, "flags", (uint64_t)(f->flags < 0 ? 0 : f->flags));
		cb_kv_bool(e, "cloexec", f->cloexec);
		if (offset >= 0)
			cb_kv_uint(e, "offset", (uint64_t)offset);
		cb_kv_uint(e, "size", (uint64_t)f->st.size);
		cb_kv_uint(e, "mode", f->st.mode);
		cb_kv_uint(e, "dev", f->st.dev);
		cb_kv_uint(e, "ino", f->st.ino);
		cb_kv_uint(e, "rdev", f->st.rdev);
		cb_kv_uint(e, "mtime_ns", f->st.mtime * 1000000000ULL + f->st.mtime_ns);
		if (stdio_index >= 0)
			cb_kv_uint(e, "stdio", (uint64_t)stdio_index);
		if (same_as >= 0) {
			cb_kv_uint(e, "same_as", (uint64_t)same_as);
		} else if (deleted) {
			save_deleted_contents(w, f->fd, (uint64_t)f->st.size);
		} else if (ck_streq(kind, "pipe")) {
			ck_pipe_save(w, &t, f);
		} else if (ck_streq(kind, "eventfd")) {
			ck_eventfd_save(w, f);
		} else if (ck_streq(kind, "epoll")) {
			ck_epoll_save(w, f);
		} else if (ck_streq(kind, "socket")) {
			ck_socket_save(w, &t, f);
		} else if (ck_streq(kind, "timerfd")) {
			ck_timerfd_save(w, f);
		} else if (ck_streq(kind, "signalfd")) {
			ck_signalfd_save(w, f);
		} else if (ck_streq(kind, "inotify")) {
			ck_inotify_save(w, f);
		} else if (ck_streq(kind, "pidfd")) {
			ck_pidfd_save(w, f);
		}
		cb_close(e);
	}
	cb_close(e);
}

/* ---- restore host ---- */

CK_HIDDEN int ck_files_parse(struct cb_dec *d, struct ck_image *img)
{
	int64_t n;
	size_t cap = 16;
	if (!cbd_array(d, &n))
		return 0;
	img->files = calloc(cap, sizeof *img->files);
	while (cbd_next_item(d, &n)) {
		if (img->nfiles == cap) {
			cap *= 2;
			img->files = realloc(img->files, cap * sizeof *img->files);
		}
		struct ck_img_file *f = &img->files[img->nfiles++];
		memset(f, 0, sizeof *f);
		f->stdio = -1;
		f->same_as = -1;
		f->newfd = -1;
		int64_t left;
		const char *k;
		size_t kl;
		uint64_t v;
		int r;
		if (!cbd_map(d, &left))
			return 0;
		while (cbd_next_key(d, &left, &k, &kl)) {
			const char *s;
			size_t sl;
			if (cbd_key_is(k, kl, "kind") || cbd_key_is(k, kl, "path")) {
				if (!cbd_text(d, &s, &sl))
					return 0;
				if (k[0] == 'k') {
					if (sl >= sizeof f->kind)
						return 0;
					memcpy(f->kind, s, sl);
				} else {
					f->path = ck_dup_text(s, sl);
				}
			} else if (cbd_key_is(k, kl, "cloexec")) {
				if (!cbd_bool(d, &f->cloexec))
					return 0;
			} else if (cbd_key_is(k, kl, "data")) {
				int64_t m;
				uint64_t crc;
				if (!cbd_array(d, &m) || m != 3 || !cbd_uint(d, &f->data_off) ||
				    !cbd_uint(d, &f->data_len) || !cbd_uint_max(d, UINT32_MAX, &crc))
					return 0;
				f->data_crc = (uint32_t)crc;
			} else if (cbd_key_is(k, kl, "pipe")) {
				if (!ck_pipe_parse(d, f))
					return 0;
			} else if (cbd_key_is(k, kl, "socket")) {
				if (!ck_socket_parse(d, f))
					return 0;
			} else if ((r = ck_events_parse(d, k, kl, f)) != 0) {
				if (r < 0)
					return 0;
			} else if (cbd_peek(d) == CB_UINT && cbd_uint(d, &v)) {
				/* what becomes an int (or a file offset) must fit one */
				int narrow = cbd_key_is(k, kl, "fd") || cbd_key_is(k, kl, "flags") || cbd_key_is(k, kl, "stdio") ||
					     cbd_key_is(k, kl, "same_as");
				if ((narrow && v > INT32_MAX) || (cbd_key_is(k, kl, "offset") && v > INT64_MAX))
					return 0;
				if (cbd_key_is(k, kl, "fd")) f->fd = (int)v;
				else if (cbd_key_is(k, kl, "flags")) f->flags = (int)v;
				else if (cbd_key_is(k, kl, "offset")) { f->offset = (int64_t)v; f->has_offset = 1; }
				else if (cbd_key_is(k, kl, "size")) f->size = v;
				else if (cbd_key_is(k, kl, "mode")) f->mode = v;
				else if (cbd_key_is(k, kl, "dev")) f->dev = v;
				else if (cbd_key_is(k, kl, "ino")) f->ino = v;
				else if (cbd_key_is(k, kl, "rdev")) f->rdev = v;
				else if (cbd_key_is(k, kl, "mtime_ns")) f->mtime_ns = v;
				else if (cbd_key_is(k, kl, "stdio")) f->stdio = (int)v;
				else if (cbd_key_is(k, kl, "same_as")) f->same_as = (int)v;
			} else if (!cbd_skip(d)) {
				return 0;
			}
		}
		if (!f->kind[0] || (!f->path && f->stdio < 0 && f->same_as < 0) || f->stdio > 2)
			return 0;
	}
	return !d->error;
}

static int writable(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* Everything is checked before anything is changed. */
CK_HIDDEN void ck_files_check(struct ck_image *img)
{
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		struct stat st;
		if (f->same_as >= 0 || f->stdio >= 0 || (strcmp(f->kind, "file") && strcmp(f->kind, "dir") && strcmp(f->kind, "device")))
			continue;
		if (stat(f->path, &st) != 0)
			ck_refuse("descriptor %d refers to %s, which is gone (%s); put the file back or restart from an image taken without it",
				  f->fd, f->path, strerror(errno));
		if (!strcmp(f->kind, "file")) {
			if (!S_ISREG(st.st_mode))
				ck_refuse("descriptor %d refers to %s, which is no longer a regular file", f->fd, f->path);
			if (writable(f->flags) && (uint64_t)st.st_size < f->size)
				ck_refuse("%s (descriptor %d) is shorter than at checkpoint time (%lld < %llu bytes): "
					  "output the program already wrote is gone; restore the file or restart from an older image",
					  f->path, f->fd, (long long)st.st_size, (unsigned long long)f->size);
		} else if (!strcmp(f->kind, "dir") && !S_ISDIR(st.st_mode)) {
			ck_refuse("descriptor %d refers to %s, which is no longer a directory", f->fd, f->path);
		}
	}
}

static int reopen_deleted(struct ck_image *img, struct ck_img_file *f, int flags)
{
	/* Recreate it under its old name (so /proc shows "name (deleted)"),
	 * or as an anonymous file in the same directory if the name is taken. */
	int fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, f->mode & 07777);
	if (fd >= 0) {
		unlink(f->path);
	} else {
		char dir[4096];
		snprintf(dir, sizeof dir, "%s", f->path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = 0;
		fd = open(slash ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, f->mode & 07777);
		if (fd < 0)
			fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, f->mode & 07777);
	}
	if (fd < 0)
		ck_refuse("cannot recreate the deleted file %s (descriptor %d): %s", f->path, f->fd, strerror(errno));
	char *buf = malloc(1 << 20);
	uint32_t crc = 0;
	for (uint64_t done = 0; done < f->data_len;) {
		size_t chunk = f->data_len - done > (1 << 20) ? (1 << 20) : (size_t)(f->data_len - done);
		if (ck_pread_all(img->fd, buf, chunk, f->data_off + done) < 0)
			ck_refuse("image %s: cannot read the saved contents of %s", img->path, f->path);
		crc = ck_crc32c(crc, buf, chunk);
		if (write(fd, buf, chunk) != (ssize_t)chunk)
			ck_refuse("cannot recreate the deleted file %s: %s", f->path, strerror(errno));
		done += chunk;
	}
	free(buf);
	if (crc != f->data_crc)
		ck_refuse("image %s is corrupted: the saved contents of the deleted file %s fail their checksum", img->path, f->path);
	/* reopen through /proc to get the program's access mode and flags */
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	int fd2 = open(proc, (flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_CLOEXEC);
	close(fd);
	if (fd2 < 0)
		ck_refuse("cannot reopen the recreated file %s: %s", f->path, strerror(errno));
	return fd2;
}

static struct ck_img_file *find_fd(struct ck_image *img, int fd)
{
	for (size_t i = 0; i < img->nfiles; i++)
		if (img->files[i].fd == fd)
			return &img->files[i];
	return 0;
}

static int shared_description(const struct ck_objects *objs, int pid, int fd)
{
	for (size_t i = 0; objs && i < objs->nshared; i++)
		if (objs->shared[i].pid == pid && objs->shared[i].fd == fd)
			return objs->shared[i].ofd;
	return -1;
}

static int shm_object(const struct ck_objects *objs, const struct ck_img_file *f)
{
	for (size_t i = 0; objs && i < objs->nshm; i++)
		if (objs->shm[i].dev == f->dev && objs->shm[i].ino == f->ino)
			return objs->shm[i].fd;
	return -1;
}

/* A new open file description for one descriptor of an image. */
static int open_entry(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	int flags = f->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
	int fd, shared = shared_description(objs, img->pid, f->fd), shm = shm_object(objs, f);
	if (shared >= 0 || (shm >= 0 && !strcmp(f->kind, "deleted"))) {
		/* one description for the whole tree: inherited, duplicated here */
		fd = dup(shared >= 0 ? shared : shm);
	} else if (f->stdio >= 0) {
		fd = dup(f->stdio);
		if (fd < 0)
			ck_refuse("descriptor %d was the session's stdio %d, but ckrun restart has no fd %d", f->fd, f->stdio, f->stdio);
	} else if (!strcmp(f->kind, "deleted")) {
		fd = reopen_deleted(img, f, flags);
	} else if (!strcmp(f->kind, "pipe")) {
		fd = ck_pipe_open(img, f, base_fd, objs);
	} else if (!strcmp(f->kind, "eventfd")) {
		fd = ck_eventfd_open(f);
	} else if (!strcmp(f->kind, "epoll")) {
		fd = ck_epoll_open(f);
	} else if (!strcmp(f->kind, "socket")) {
		fd = ck_socket_open(img, f, base_fd, objs);
	} else if (ck_is_event_kind(f->kind)) {
		fd = ck_event_open(img, f);
	} else {
		fd = open(f->path, flags | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			ck_refuse("cannot reopen %s as descriptor %d: %s", f->path, f->fd, strerror(errno));
	}
	if (fd < 0)
		ck_refuse("cannot set up descriptor %d: %s", f->fd, strerror(errno));
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	if (moved < 0)
		ck_refuse("cannot place descriptor %d: %s", f->fd, strerror(errno));
	close(fd);
	return moved;
}

/* Opens every descriptor at a number >= base_fd; ck_files_install moves
 * them into place once nothing else can fail. */
CK_HIDDEN void ck_files_open(struct ck_image *img, int base_fd, const struct ck_objects *objs)
{
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		if (f->same_as < 0)
			f->newfd = open_entry(img, f, base_fd, objs);
	}
}

/* For a tree: every open file description that processes shared (groups
 * of (pid, fd, group) from the manifest) is opened once, here, before the
 * processes are forked, so they all inherit the same one. */
CK_HIDDEN void ck_files_open_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, const int (*groups)[3],
				   size_t ngroups, int base_fd)
{
	objs->shared = calloc(ngroups ? ngroups : 1, sizeof *objs->shared);
	for (size_t g = 0; g < ngroups; g++) {
		int ofd = -1;
		for (size_t k = 0; k < objs->nshared; k++)
			if (objs->shared[k].ofd >= 0 && groups[k][2] == groups[g][2])
				ofd = objs->shared[k].ofd;
		for (size_t i = 0; ofd < 0 && i < n; i++) {
			if (imgs[i]->pid != groups[g][0])
				continue;
			struct ck_img_file *f = find_fd(imgs[i], groups[g][1]);
			if (f)
				ofd = open_entry(imgs[i], f, base_fd, objs);
		}
		if (ofd < 0)
			ck_refuse("the manifest says process %d shares descriptor %d, but its image has no such descriptor",
				  groups[g][0], groups[g][1]);
		objs->shared[objs->nshared++] = (struct ck_obj_shared){groups[g][0], groups[g][1], ofd};
	}
}

/* The point of no return for descriptors: truncation and final numbers. */
CK_HIDDEN void ck_files_install(struct ck_image *img)
{
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		if (f->same_as >= 0) {
			struct ck_img_file *src = find_fd(img, f->same_as);
			if (!src || src->newfd < 0)
				ck_refuse("descriptor %d shares its file with descriptor %d, which the image lacks", f->fd, f->same_as);
			continue;
		}
		if (!strcmp(f->kind, "file") && writable(f->flags)) {
			struct stat st;
			if (fstat(f->newfd, &st) == 0 && (uint64_t)st.st_size > f->size && ftruncate(f->newfd, (off_t)f->size) != 0)
				ck_refuse("cannot cut %s back to its checkpoint size (%llu bytes): %s", f->path,
					  (unsigned long long)f->size, strerror(errno));
		}
		if (f->has_offset && f->stdio < 0 && lseek(f->newfd, f->offset, SEEK_SET) < 0 && errno != ESPIPE)
			ck_refuse("cannot seek %s to offset %lld: %s", f->path, (long long)f->offset, strerror(errno));
	}
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		int src = f->same_as >= 0 ? find_fd(img, f->same_as)->newfd : f->newfd;
		if (dup3(src, f->fd, f->cloexec ? O_CLOEXEC : 0) < 0)
			ck_refuse("cannot install descriptor %d: %s", f->fd, strerror(errno));
		if (f->stdio >= 0) {
			/* the description is ckrun's stdio: only the status flags the program set */
			int fl = fcntl(f->fd, F_GETFL);
			fcntl(f->fd, F_SETFL, (fl & ~O_NONBLOCK) | (f->flags & O_NONBLOCK));
		}
	}
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		if (f->newfd >= 0) {
			close(f->newfd);
			f->newfd = -1;
		}
	}
	ck_pipes_close_spares();
	ck_epoll_fill(img);
	ck_timerfds_arm(img);
}
