/* Descriptors: the walk over all of them and the table of their kinds.
 * The checkpoint lists the program's descriptors, finds each one's kind
 * (the first in CK_FD_KINDS whose detect recognizes it), writes what every
 * descriptor has and lets the kind write its own part; the restore host
 * reads them back the same way, and checks, opens and installs each one
 * through its kind (fdkind.h). A descriptor that shares its open file
 * description with an earlier one of the process is saved as that one
 * (same_as); one of a kind no entry recognizes fails the checkpoint with a
 * message naming it. docs/design.md, "Kinds of descriptors". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdkind.h"
#include "sys.h"

/* Every kind of descriptor, one line each. Detection tries them in this
 * order, and the first that recognizes a descriptor is its kind; the
 * objects they share are made in this order too, and their `installed`
 * runs in it. So: the session's stdio first (whatever file it is); pipes
 * before sockets (a Unix socket's queue may carry a pipe's end);
 * anonymous inodes before files (a pidfd's inode may look like one);
 * pipes' spare ends closed, then epoll's interest lists filled, then
 * timers armed, as late as the restore host can. */
#define CK_FD_KINDS(KIND) \
	KIND(stdio)       \
	KIND(opath)       \
	KIND(pipe)        \
	KIND(fifo)        \
	KIND(socket)      \
	KIND(eventfd)     \
	KIND(epoll)       \
	KIND(signalfd)    \
	KIND(inotify)     \
	KIND(pidfd)       \
	KIND(timerfd)     \
	KIND(fanotify)    \
	KIND(mqueue)      \
	KIND(memfd)       \
	KIND(deleted)     \
	KIND(deleted_dir) \
	KIND(file)        \
	KIND(dir)         \
	KIND(pty)         \
	KIND(device)

#define DECLARE_KIND(name) CK_HIDDEN extern const struct ck_fd_kind ck_kind_##name;
#define LIST_KIND(name) &ck_kind_##name,
CK_FD_KINDS(DECLARE_KIND)
static const struct ck_fd_kind *const kinds[] = {CK_FD_KINDS(LIST_KIND)};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* ---- checkpoint (in the signal handler: raw code only) ---- */

static const struct ck_fd_kind *kind_of(const struct ck_fd *f)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (kinds[i]->detect && kinds[i]->detect(f))
			return kinds[i];
	return 0;
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

static int list_fds(int *fds, int max, struct ck_writer *w)
{
	int dfd = (int)ck_openat(AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int n = 0;
	char buf[4096];
	if (dfd < 0) {
		if (w)
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

/* More descriptors than the checkpoint's scratch space describes: fails
 * rather than leave some out. */
static void table_full(struct ck_writer *w, int n)
{
	struct ck_str m;
	ck_writer_fail(w, -EMFILE, "the process has more descriptors than ckrun can save");
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "at least ");
	ck_str_dec(&m, n);
	ck_str_add(&m, " descriptors; close some and checkpoint again; the program runs on");
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
	int max = (int)(half / 2 / sizeof(int));
	if (n >= max) {
		table_full(w, n);
		return;
	}
	for (int i = 0; i < n; i++) {
		int fd = fds[i];
		if (fd == w->fd || ck_is_session_fd(fd))
			continue;
		struct ck_fd *f = &t->fds[t->n];
		if (links_end - links < 4097 || t->n == (int)(half / sizeof(struct ck_fd))) {
			table_full(w, n);
			return;
		}
		long ll = ck_fd_link(fd, links, 4097);
		if (ck_fstat(fd, &f->st) < 0 || ll < 0)
			continue; /* not ours to see (closed meanwhile) */
		/* its name removed, another still there: the file is that name's */
		if ((f->st.mode & S_IFMT) == S_IFREG && f->st.nlink > 0 && ck_ends_with(links, " (deleted)"))
			ck_deleted_other_name(links, &ll, &f->st);
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
	ck_writer_fail_fd(w, -EOPNOTSUPP, "the program has a descriptor ckrun cannot save yet", f, &m);
	ck_str_add(&m, "is ");
	ck_str_add(&m, describe_unsupported(f));
	ck_str_add(&m, "; see the README's table of what is supported");
}

/* The lowest descriptor sharing f's open file description, or -1. */
static int shares_with(const struct ck_fdtab *t, const struct ck_fd *f, int pid)
{
	/* the session's stdio k becomes ckrun restart's own k, whatever its
	 * sharing was: one terminal open once as stdin, stdout and stderr must
	 * not make a restart's stdout its stdin (`ckrun restart > log`) */
	int k = ck_fd_stdio_index(f);
	for (const struct ck_fd *o = t->fds; o < f; o++)
		if (o->st.dev == f->st.dev && o->st.ino == f->st.ino && (k < 0 || ck_fd_stdio_index(o) == k) &&
		    same_description(pid, o->fd, f->fd))
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

/* A /proc list of mappings with counts (smaps, numa_maps) read part way
 * (files.c) is refused while the program is stopped, before its memory
 * is looked at: the next try starts from the same change tracking, so it
 * is incremental as this one would have been. */
CK_HIDDEN int ck_files_read_part_way(struct ck_scratch *s)
{
	int *fds = (int *)s->text;
	char *link = s->text + CK_SCRATCH_TEXT / 2;
	int n = list_fds(fds, (int)(CK_SCRATCH_TEXT / 2 / sizeof(int)), 0);
	for (int i = 0; i < n; i++) {
		if (ck_is_session_fd(fds[i]))
			continue;
		long offset = ck_lseek(fds[i], 0, SEEK_CUR);
		if (offset <= 0 || ck_fd_link(fds[i], link, 4097) < 0 || ck_process_text(link) != CK_TEXT_COUNTS)
			continue;
		struct ck_str m;
		ck_str_init(&m, s->msg, sizeof s->msg);
		ck_str_add(&m, "a /proc list of mappings is read part way: descriptor ");
		ck_str_dec(&m, fds[i]);
		ck_str_add(&m, " (");
		ck_str_add(&m, link);
		ck_str_add(&m, ", at byte ");
		ck_str_dec(&m, offset);
		ck_str_add(&m, "): ");
		ck_str_add(&m, ck_process_text_why);
		ck_str_add(&m, "; checkpoint again once the program has closed it; the program runs on");
		return 1;
	}
	return 0;
}

/* A descriptor of /proc/PID of a process that has exited (a child the
 * program opened it of, since reaped): a restart could only open the
 * path again, where that process is not, or another has its PID. */
static int fails_proc_gone(struct ck_writer *w, const struct ck_fd *f)
{
	if (!ck_proc_entry_gone(f->link, &f->st))
		return 0;
	ck_writer_fail(w, -ESRCH, "the program has a descriptor of /proc of a process that has exited, which no restart can open again");
	struct ck_str m;
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, f->fd);
	ck_str_add(&m, " refers to ");
	ck_str_add(&m, f->link);
	ck_str_add(&m, ", whose process has exited; checkpoint again once the program has closed it; the program runs on");
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
		const struct ck_fd_kind *kind = kind_of(f);
		if (!kind) {
			fail_unsupported(w, f);
			break;
		}
		if (fails_proc_gone(w, f))
			break;
		int stdio_index = ck_fd_stdio_index(f);
		int same_as = shares_with(&t, f, pid);
		long offset = ck_lseek(f->fd, 0, SEEK_CUR);
		cb_map_open(e);
		cb_kv_uint(e, "fd", (uint64_t)f->fd);
		cb_kv_text(e, "kind", kind->name);
		cb_text(e, "path");
		cb_textn(e, f->link, kind->path_len ? kind->path_len(f) : ck_strlen(f->link));
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
		if (same_as >= 0)
			cb_kv_uint(e, "same_as", (uint64_t)same_as);
		else if (kind->save)
			kind->save(w, &t, f);
		if (same_as < 0) {
			ck_locks_save(w, f);
			if (!ck_fown_save(w, f))
				break;
		}
		cb_close(e);
	}
	cb_close(e);
}

/* ---- restore host ---- */

static const struct ck_fd_kind *kind_named(const char *name)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (!strcmp(kinds[i]->name, name))
			return kinds[i];
	return 0;
}

/* The descriptor's kind, looked for first: its own key may come before
 * "kind" in the map. d is a copy: the map is read again afterwards. */
static int read_kind(struct cb_dec d, struct ck_img_file *f)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(&d, &left))
		return 0;
	while (cbd_next_key(&d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "kind")) {
			const char *s;
			size_t sl;
			if (!cbd_text(&d, &s, &sl) || sl >= sizeof f->kind)
				return 0;
			memcpy(f->kind, s, sl);
			f->kind[sl] = 0;
			f->ops = kind_named(f->kind);
			return 1;
		}
		if (!cbd_skip(&d))
			return 0;
	}
	return !d.error;
}

/* One descriptor's map: what every descriptor has, and its kind's key
 * read by its kind. Other keys are skipped. */
static int parse_file(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left;
	const char *k;
	size_t kl;
	uint64_t v;
	if (!read_kind(*d, f) || !cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		const char *s;
		size_t sl;
		if (cbd_key_is(k, kl, "kind")) {
			if (!cbd_skip(d))
				return 0;
		} else if (cbd_key_is(k, kl, "path")) {
			if (!cbd_text(d, &s, &sl))
				return 0;
			f->path = ck_dup_text(s, sl);
		} else if (cbd_key_is(k, kl, "cloexec")) {
			if (!cbd_bool(d, &f->cloexec))
				return 0;
		} else if (cbd_key_is(k, kl, "locks")) {
			if (!ck_locks_parse(d, f))
				return 0;
		} else if (cbd_key_is(k, kl, "owner")) {
			if (!ck_fown_parse(d, f))
				return 0;
		} else if (f->ops && f->ops->key && cbd_key_is(k, kl, f->ops->key)) {
			if (!f->ops->parse(d, f))
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
	return !d->error && f->kind[0] && (f->path || f->stdio >= 0 || f->same_as >= 0) && f->stdio <= 2;
}

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
		if (!parse_file(d, f))
			return 0;
	}
	return !d->error;
}

CK_HIDDEN void ck_files_release(struct ck_image *img)
{
	for (size_t i = 0; img->files && i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		free((char *)f->path);
		if (f->ops && f->ops->release)
			f->ops->release(f);
		else
			free(f->priv);
	}
}

/* A kind's name from an image, for a message: printable characters only. */
static const char *printable(const char *s)
{
	static char buf[sizeof ((struct ck_img_file *)0)->kind];
	size_t i;
	for (i = 0; s[i] && i + 1 < sizeof buf; i++)
		buf[i] = s[i] >= 32 && s[i] < 127 ? s[i] : '?';
	buf[i] = 0;
	return buf;
}

/* Everything is checked before anything is changed. */
CK_HIDDEN void ck_files_check(struct ck_image *img)
{
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		if (f->same_as >= 0)
			continue;
		if (!f->ops)
			ck_refuse("image %s has descriptor %d of a kind this ckrun does not know (\"%s\"); restart it with the "
				  "ckrun that took it", img->path, f->fd, printable(f->kind));
		if (f->ops->key && !f->ops->key_optional && !f->priv)
			ck_refuse("image %s is corrupted: descriptor %d (%s) lacks its \"%s\" part", img->path, f->fd,
				  f->ops->name, f->ops->key);
		if (f->stdio < 0 && f->ops->check)
			f->ops->check(img, f);
		ck_locks_check(img, f);
	}
}

static struct ck_img_file *find_fd(struct ck_image *img, int fd)
{
	for (size_t i = 0; i < img->nfiles; i++)
		if (img->files[i].fd == fd)
			return &img->files[i];
	return 0;
}

/* A new open file description for one descriptor of an image, above
 * base_fd. */
static int open_entry(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	/* the session's stdio k is ckrun restart's own k, however the family
	 * shared it (one terminal as stdin, stdout and stderr) */
	int fd, shared = f->stdio >= 0 ? -1 : ck_objects_find(objs, "description", (uint64_t)img->pid, (uint64_t)f->fd);
	if (shared >= 0) {
		/* one description for the whole tree: inherited, duplicated here */
		fd = dup(shared);
	} else {
		if (!f->ops || !f->ops->open)
			ck_refuse("descriptor %d is of a kind this ckrun cannot restore (\"%s\")", f->fd, printable(f->kind));
		fd = f->ops->open(img, f, base_fd, objs);
	}
	if (fd < 0)
		ck_refuse("cannot set up descriptor %d: %s", f->fd, strerror(errno));
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	if (moved < 0)
		ck_refuse("cannot place descriptor %d: %s", f->fd, strerror(errno));
	close(fd);
	return moved;
}

CK_HIDDEN void ck_files_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (kinds[i]->create_shared)
			kinds[i]->create_shared(imgs, n, objs, base_fd);
}

/* Opens every descriptor at a number >= base_fd; ck_files_install moves
 * them into place once nothing else can fail. */
CK_HIDDEN void ck_files_open(struct ck_image *img, int base_fd, const struct ck_objects *objs)
{
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		const struct ck_img_file *src = f->same_as >= 0 ? find_fd(img, f->same_as) : 0;
		if (f->stdio >= 0 && src && src->stdio != f->stdio)
			f->same_as = -1; /* another stdio of the session's (see open_entry) */
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
	int *ofds = calloc(ngroups ? ngroups : 1, sizeof *ofds);
	for (size_t g = 0; g < ngroups; g++) {
		int ofd = -1;
		for (size_t k = 0; k < g; k++)
			if (ofds[k] >= 0 && groups[k][2] == groups[g][2])
				ofd = ofds[k];
		int later = 0;
		for (size_t i = 0; ofd < 0 && !later && i < n; i++) {
			if (imgs[i]->pid != groups[g][0])
				continue;
			struct ck_img_file *f = find_fd(imgs[i], groups[g][1]);
			/* a file under /proc/PID of a process of the family exists
			 * only once the restore has made it: each process opens
			 * its own description then, at the shared offset */
			later = f && f->path && ck_proc_path_of_family(imgs[i], f->path);
			if (f && !later)
				ofd = open_entry(imgs[i], f, base_fd, objs);
		}
		if (later) {
			ofds[g] = -1;
			continue;
		}
		if (ofd < 0)
			ck_refuse("the manifest says process %d shares descriptor %d, but its image has no such descriptor",
				  groups[g][0], groups[g][1]);
		ofds[g] = ofd;
		ck_objects_add(objs, "description", (uint64_t)groups[g][0], (uint64_t)groups[g][1], ofd);
	}
	free(ofds);
}

/* The point of no return for descriptors: each kind's last step, offsets
 * and final numbers. */
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
		if (f->ops->install)
			f->ops->install(f);
		if (f->has_offset && f->stdio < 0 && !f->seek_late && lseek(f->newfd, f->offset, SEEK_SET) < 0 && errno != ESPIPE)
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
	for (size_t i = 0; i < NKINDS; i++)
		if (kinds[i]->installed)
			kinds[i]->installed(img);
}
