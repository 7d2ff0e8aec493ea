/* Regular files deleted while open: the checkpoint saves them, the
 * restart makes them again.
 *
 * Saved: the file's data extents only (SEEK_DATA/SEEK_HOLE, so holes stay
 * holes), its size, owner, mode and access and modification times. At
 * restart the file is created under its old name and unlinked at once (so
 * /proc shows "name (deleted)"), or as an O_TMPFILE in the same directory
 * if the name is taken; the extents are written at their offsets, the size
 * set, then owner, mode and times, and it is opened again through /proc
 * with the program's flags. An owner the restorer may not give is refused.
 *
 * The bytes are read through the program's own descriptor when it can
 * read (its offset put back), never through a descriptor of our own that
 * is closed afterwards: any close of a file drops the POSIX locks the
 * process holds on it (locks.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fdkind.h"
#include "sys.h"

CK_HIDDEN extern const struct ck_fd_kind ck_kind_deleted, ck_kind_memfd, ck_kind_deleted_dir;

#define MAX_EXTENTS 4096 /* beyond, the rest of the file is one extent (its holes read as zeros) */

static int is_gone(const struct ck_fd *f)
{
	return f->st.nlink == 0 || ck_ends_with(f->link, " (deleted)");
}

static int deleted_detect(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFREG && is_gone(f);
}

static int memfd_detect(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFREG && ck_starts_with(f->link, "/memfd:");
}

static int deleted_dir_detect(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFDIR && is_gone(f);
}

/* The path is the old name, without the " (deleted)" the kernel adds. */
static size_t deleted_path_len(const struct ck_fd *f)
{
	size_t n = ck_strlen(f->link);
	return ck_ends_with(f->link, " (deleted)") ? n - 10 : n;
}

/* The next extent of data at or after *pos, [*start, *end); 0 at the end. */
static int next_extent(int fd, uint64_t size, uint64_t *pos, uint64_t *start, uint64_t *end, int last)
{
	if (*pos >= size)
		return 0;
	long d = ck_lseek(fd, (int64_t)*pos, SEEK_DATA);
	if (d == -ENXIO)
		return 0;
	if (d < 0) /* no SEEK_DATA here: all of it is data */
		d = (long)*pos;
	long h = last ? (long)size : ck_lseek(fd, d, SEEK_HOLE);
	if (h < 0 || (uint64_t)h > size)
		h = (long)size;
	*start = (uint64_t)d;
	*end = (uint64_t)h;
	*pos = (uint64_t)h;
	return *end > *start;
}

/* Owner, mode and times, the fields every kind of this file saves. */
static void save_attributes(struct cb_enc *e, const struct ck_fd *f)
{
	cb_kv_uint(e, "uid", f->st.uid);
	cb_kv_uint(e, "gid", f->st.gid);
	cb_kv_uint(e, "mode", f->st.mode & 07777);
	cb_kv_uint(e, "atime_ns", f->st.atime * 1000000000ULL + f->st.atime_ns);
	cb_kv_uint(e, "mtime_ns", f->st.mtime * 1000000000ULL + f->st.mtime_ns);
}

/* A description of the file of fd for reading, opened again through /proc
 * without touching its access time (unless the owner alone may ask that). */
static int open_to_read(int fd)
{
	char path[64];
	ck_proc_fd_path(path, "fd", fd);
	int r = (int)ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOATIME, 0);
	if (r == -EPERM)
		r = (int)ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	return r;
}

static void refuse_locked_write_only(struct ck_writer *w, const struct ck_fd *f)
{
	struct ck_str m;
	ck_writer_fail_fd(w, -EOPNOTSUPP, "the program has a deleted file open write-only with a lock on it", f, &m);
	ck_str_add(&m, "cannot be read, and reading it through another description would drop the process's POSIX "
		       "lock or break its lease: release the lock, or close it before the checkpoint");
}

/* size, attributes and extents, into the open map of the kind's key */
static void save_contents(struct ck_writer *w, const struct ck_fd *f)
{
	struct cb_enc *e = &w->meta;
	uint64_t size = (uint64_t)f->st.size;
	int readable = (f->flags & O_ACCMODE) != O_WRONLY && !(f->flags & O_PATH);
	int bound = ck_locks_bind_to_description(f->fd);
	if (bound && !readable) {
		refuse_locked_write_only(w, f);
		return;
	}
	int fd = bound ? -EPERM : open_to_read(f->fd);
	/* The program's own description only when another cannot be had: when
	 * opening and closing another would drop its POSIX locks or break its
	 * lease, or its mode lets only the description it has read it. Its own
	 * is shared with the family's other processes, which save at the same
	 * time: the offset SEEK_DATA moves and the O_NOATIME flag could change
	 * under them. */
	int own = fd < 0 && readable;
	if (fd < 0 && !own) {
		ck_writer_fail(w, fd, "cannot read a deleted file the program has open");
		return;
	}
	if (own)
		fd = f->fd;
	long was = own ? ck_lseek(f->fd, 0, SEEK_CUR) : 0;
	/* reading must not change the access time the program sees (nor the one saved) */
	int noatime = own && !(f->flags & O_NOATIME) && ck_fcntl(f->fd, F_SETFL, (f->flags | O_NOATIME) & ~O_ACCMODE) == 0;
	cb_kv_uint(e, "size", size);
	save_attributes(e, f);
	cb_text(e, "extents");
	cb_array_open(e);
	uint64_t pos = 0, a, b;
	for (int n = 0; !w->err && next_extent(fd, size, &pos, &a, &b, n == MAX_EXTENTS - 1); n++) {
		uint32_t crc = 0;
		uint64_t off = ck_image_put_fd(w, fd, a, b - a, &crc);
		cb_map(e, 2);
		cb_kv_uint(e, "at", a);
		cb_text(e, "data");
		cb_array(e, 3);
		cb_uint(e, off);
		cb_uint(e, b - a);
		cb_uint(e, crc);
	}
	cb_close(e);
	if (own && was >= 0)
		ck_lseek(f->fd, was, SEEK_SET);
	if (noatime)
		ck_fcntl(f->fd, F_SETFL, f->flags & ~O_ACCMODE);
	if (!own)
		ck_close(fd);
}

/* A name removed while another (a hard link) still shows the file (zdtm
 * unlink_fstat03): the other name, looked for in the directory the
 * removed one was in, where links are usually made. link (LINK
 * (deleted), room for 4096 bytes and the NUL) becomes it; 0 when there
 * is none there. */
CK_HIDDEN int ck_deleted_other_name(char *link, long *len, const struct ck_stat *st)
{
	long n = *len - 10; /* without " (deleted)" */
	while (n > 0 && link[n - 1] != '/')
		n--;
	if (n <= 0 || n > 4000)
		return 0;
	char dir[4096];
	ck_memcpy(dir, link, (size_t)n);
	dir[n] = 0;
	long dfd = ck_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return 0;
	char buf[2048];
	int found = 0;
	for (long r; !found && (r = ck_getdents64((int)dfd, buf, sizeof buf)) > 0;)
		for (long off = 0; off < r && !found;) {
			struct ck_dirent64 *d = (void *)(buf + off);
			off += d->reclen;
			struct ck_stat other;
			size_t nl = ck_strlen(d->name);
			if (d->ino != st->ino || (size_t)n + nl > 4096 ||
			    CK_SYS4(SYS_newfstatat, dfd, d->name, &other, AT_SYMLINK_NOFOLLOW) != 0 || other.dev != st->dev ||
			    other.ino != st->ino)
				continue;
			ck_memcpy(link + n, d->name, nl + 1);
			*len = n + (long)nl;
			found = 1;
		}
	ck_close((int)dfd);
	return found;
}

/* A name removed while another (a hard link) still shows the file, and
 * that one is not in the same directory: a copy made at restart would not
 * be the file that name shows, and ckrun cannot find the other name. */
static void refuse_linked_elsewhere(struct ck_writer *w, const struct ck_fd *f)
{
	struct ck_str m;
	ck_writer_fail_fd(w, -EOPNOTSUPP, "the program has a file whose name was removed while another name keeps it", f, &m);
	ck_str_add(&m, "still has ");
	ck_str_dec(&m, (long)f->st.nlink);
	ck_str_add(&m, " other name(s), none in the removed name's directory (where ckrun looks), so a restart would make a "
		       "copy instead of the file they show: reopen it by one of its names, or close it before the checkpoint");
}

static void deleted_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	if (f->st.nlink > 0) {
		refuse_linked_elsewhere(w, f);
		return;
	}
	cb_text(&w->meta, "deleted");
	cb_map_open(&w->meta);
	save_contents(w, f);
	cb_close(&w->meta);
}

/* A memfd: its contents, attributes and seals (F_SEAL_SEAL alone: made
 * without MFD_ALLOW_SEALING; F_SEAL_EXEC with no x bit: MFD_NOEXEC_SEAL). */
static void memfd_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	long seals = ck_fcntl(f->fd, F_GET_SEALS, 0);
	cb_text(&w->meta, "memfd");
	cb_map_open(&w->meta);
	cb_kv_uint(&w->meta, "seals", (uint64_t)(seals > 0 ? seals : 0));
	save_contents(w, f);
	cb_close(&w->meta);
}

/* A directory deleted while open is empty: its attributes are all it has. */
static void deleted_dir_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	cb_text(&w->meta, "deleted_dir");
	cb_map_open(&w->meta);
	save_attributes(&w->meta, f);
	cb_close(&w->meta);
}

/* ---- restore host ---- */

struct extent {
	uint64_t at, off, len; /* in the file; in the image */
	uint32_t crc;
};

struct deleted {
	uint64_t size, uid, gid, mode, atime_ns, mtime_ns, seals;
	int original; /* a memfd: the description memfd_create made (see pick_originals) */
	struct extent *ext;
	size_t next;
};

static int parse_extent(struct cb_dec *d, struct extent *x)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "at")) {
			if (!cbd_uint_max(d, INT64_MAX, &x->at))
				return 0;
		} else if (cbd_key_is(k, kl, "data")) {
			int64_t m;
			uint64_t crc;
			if (!cbd_array(d, &m) || m != 3 || !cbd_uint(d, &x->off) || !cbd_uint_max(d, INT64_MAX, &x->len) ||
			    !cbd_uint_max(d, UINT32_MAX, &crc))
				return 0;
			x->crc = (uint32_t)crc;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error && x->at <= INT64_MAX - x->len;
}

static int deleted_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left, n;
	const char *k;
	size_t kl;
	struct deleted *del = calloc(1, sizeof *del);
	f->priv = del;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		uint64_t *v = cbd_key_is(k, kl, "size")       ? &del->size
			      : cbd_key_is(k, kl, "uid")      ? &del->uid
			      : cbd_key_is(k, kl, "gid")      ? &del->gid
			      : cbd_key_is(k, kl, "mode")     ? &del->mode
			      : cbd_key_is(k, kl, "atime_ns") ? &del->atime_ns
			      : cbd_key_is(k, kl, "mtime_ns") ? &del->mtime_ns
			      : cbd_key_is(k, kl, "seals")    ? &del->seals
							      : 0;
		if (v) {
			if (!cbd_uint_max(d, INT64_MAX, v))
				return 0;
		} else if (cbd_key_is(k, kl, "extents")) {
			if (!cbd_array(d, &n))
				return 0;
			for (int64_t i = 0; n < 0 ? !cbd_at_break(d) : i < n; i++) {
				del->ext = realloc(del->ext, (del->next + 1) * sizeof *del->ext);
				memset(&del->ext[del->next], 0, sizeof *del->ext);
				if (!parse_extent(d, &del->ext[del->next++]))
					return 0;
			}
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	for (size_t i = 0; i < del->next; i++)
		if (del->ext[i].at + del->ext[i].len > del->size)
			return 0;
	return !d->error && del->uid <= UINT32_MAX && del->gid <= UINT32_MAX && del->mode <= 07777;
}

static void deleted_release(struct ck_img_file *f)
{
	struct deleted *del = f->priv;
	if (del)
		free(del->ext);
	free(del);
}

/* A new file under the old name, unlinked at once, or an anonymous one in
 * the same directory if the name is taken. */
static int create_anonymous(struct ck_img_file *f)
{
	int fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		unlink(f->path);
		return fd;
	}
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", f->path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	fd = open(slash ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		ck_refuse("cannot recreate the deleted file %s (descriptor %d): %s", f->path, f->fd, strerror(errno));
	return fd;
}

static void write_extents(struct ck_image *img, struct ck_img_file *f, const struct deleted *del, int fd)
{
	char *buf = malloc(1 << 20);
	for (size_t i = 0; i < del->next; i++) {
		const struct extent *x = &del->ext[i];
		uint32_t crc = 0;
		for (uint64_t done = 0; done < x->len;) {
			size_t chunk = x->len - done > (1 << 20) ? (1 << 20) : (size_t)(x->len - done);
			if (ck_pread_all(img->fd, buf, chunk, x->off + done) < 0)
				ck_refuse("image %s: cannot read the saved contents of %s", img->path, f->path);
			crc = ck_crc32c(crc, buf, chunk);
			if (pwrite(fd, buf, chunk, (off_t)(x->at + done)) != (ssize_t)chunk)
				ck_refuse("cannot recreate the deleted file %s: %s", f->path, strerror(errno));
			done += chunk;
		}
		if (crc != x->crc)
			ck_refuse("image %s is corrupted: the saved contents of the deleted file %s fail their checksum",
				  img->path, f->path);
	}
	free(buf);
}

/* Owner, mode (after the owner: chown clears set-ID bits), times. */
static void set_attributes(struct ck_img_file *f, const struct deleted *del, int fd)
{
	struct timespec ts[2] = {{(time_t)(del->atime_ns / 1000000000), (long)(del->atime_ns % 1000000000)},
				 {(time_t)(del->mtime_ns / 1000000000), (long)(del->mtime_ns % 1000000000)}};
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_uid != del->uid || st.st_gid != del->gid) &&
	    fchown(fd, (uid_t)del->uid, (gid_t)del->gid) != 0)
		ck_refuse("cannot give the deleted %s %s (descriptor %d) its owner %llu:%llu: %s; restart as that user or as root",
			  S_ISDIR(st.st_mode) ? "directory" : "file", f->path, f->fd, (unsigned long long)del->uid,
			  (unsigned long long)del->gid, strerror(errno));
	if (fchmod(fd, (mode_t)del->mode) != 0 || futimens(fd, ts) != 0)
		ck_refuse("cannot give the deleted file %s its mode and times: %s", f->path, strerror(errno));
}

static void set_size(struct ck_img_file *f, const struct deleted *del, int fd)
{
	if (ftruncate(fd, (off_t)del->size) != 0)
		ck_refuse("cannot give the deleted file %s its size of %llu bytes: %s", f->path, (unsigned long long)del->size,
			  strerror(errno));
}

/* A new description of fd with the program's access mode and flags, through /proc. */
static int reopen_as_program(struct ck_img_file *f, int fd)
{
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	/* O_TMPFILE (with its O_DIRECTORY) made the file: it is not asked again */
	int drop = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | ((f->flags & O_TMPFILE) == O_TMPFILE ? O_TMPFILE : 0);
	int fd2 = open(proc, (f->flags & ~drop) | O_CLOEXEC);
	close(fd);
	if (fd2 < 0)
		ck_refuse("cannot reopen the recreated file %s: %s", f->path, strerror(errno));
	return fd2;
}

/* ---- one inode for every descriptor of it ----
 *
 * Descriptors of one deleted file, memfd or deleted directory (its device
 * and inode), in one process or several, and a working directory that is
 * such a directory, are one inode again: made once before any process is
 * forked (object "inode"), each descriptor a new description of it. Made
 * apart, a write through one would not show through the other. */

static void keep_inode(struct ck_objects *objs, uint64_t dev, uint64_t ino, int fd, int base_fd, const char *path)
{
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	close(fd);
	if (moved < 0)
		ck_refuse("cannot place the recreated %s: %s", path, strerror(errno));
	ck_objects_add(objs, "inode", dev, ino, moved);
}

/* the inode's descriptor, or -1 when another part of the restore makes it */
typedef int (*make_inode_fn)(struct ck_image **imgs, size_t n, struct ck_image *img, struct ck_img_file *f);

/* Every descriptor of kind k whose inode is not made yet: made from it. */
static void inodes_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd,
				 const struct ck_fd_kind *k, make_inode_fn make)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nfiles; j++) {
			struct ck_img_file *f = &imgs[i]->files[j];
			if (f->ops != k || !f->priv || f->same_as >= 0 || ck_objects_find(objs, "inode", f->dev, f->ino) >= 0)
				continue;
			int fd = make(imgs, n, imgs[i], f);
			if (fd >= 0)
				keep_inode(objs, f->dev, f->ino, fd, base_fd, f->path);
		}
}

/* A new description of the inode made for f, with the program's flags. */
static int open_inode(struct ck_img_file *f, const struct ck_objects *objs)
{
	int made = ck_objects_find(objs, "inode", f->dev, f->ino);
	if (made < 0)
		ck_refuse("the recreated %s (descriptor %d) was not made by the restore", f->path, f->fd);
	int fd = dup(made);
	if (fd < 0)
		ck_refuse("cannot reopen the recreated file %s: %s", f->path, strerror(errno));
	return reopen_as_program(f, fd);
}

static int make_deleted(struct ck_image **imgs, size_t n, struct ck_image *img, struct ck_img_file *f)
{
	(void)imgs, (void)n;
	const struct deleted *del = f->priv;
	int fd = create_anonymous(f);
	write_extents(img, f, del, fd);
	set_size(f, del, fd);
	set_attributes(f, del, fd);
	return fd;
}

static void deleted_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	inodes_create_shared(imgs, n, objs, base_fd, &ck_kind_deleted, make_deleted);
}

static int deleted_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd;
	return open_inode(f, objs);
}

CK_HIDDEN const struct ck_fd_kind ck_kind_deleted = {
	.name = "deleted",
	.detect = deleted_detect,
	.save = deleted_save,
	.path_len = deleted_path_len,
	.key = "deleted",
	.parse = deleted_parse,
	.release = deleted_release,
	.create_shared = deleted_create_shared,
	.open = deleted_open,
};

/* ---- memfd ---- */

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

/* The name memfd_create was given: the path without "/memfd:". */
static const char *memfd_name(const struct ck_img_file *f)
{
	return strncmp(f->path, "/memfd:", 7) ? f->path : f->path + 7;
}

/* The seals last, once content, size and mode are in place (F_SEAL_WRITE,
 * F_SEAL_EXEC would refuse them). */
static void seal(struct ck_img_file *f, const struct deleted *del, int fd)
{
	long had = fcntl(fd, F_GET_SEALS);
	if (had != (long)del->seals && fcntl(fd, F_ADD_SEALS, (int)(del->seals & ~(uint64_t)had)) != 0)
		ck_refuse("cannot seal the memfd %s (descriptor %d) again (seals %#llx): %s", f->path, f->fd,
			  (unsigned long long)del->seals, strerror(errno));
}

/* A memfd the program also maps shared is the one the memory restore
 * makes (object "shm", made sealable, after the descriptors' inodes). */
static int mapped_shared(struct ck_image **imgs, size_t n, const struct ck_img_file *f)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nregions; j++) {
			const struct ck_img_region *r = &imgs[i]->regions[j];
			if (r->has_shm && r->shm_dev == f->dev && r->shm_ino == f->ino)
				return 1;
		}
	return 0;
}

static int make_memfd(struct ck_image **imgs, size_t n, struct ck_image *img, struct ck_img_file *f)
{
	const struct deleted *del = f->priv;
	if (mapped_shared(imgs, n, f))
		return -1;
	int fd = memfd_create(memfd_name(f), MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (fd < 0 && errno == EINVAL) /* a kernel before MFD_EXEC: executable already */
		fd = memfd_create(memfd_name(f), MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		ck_refuse("cannot make the memfd %s (descriptor %d) again: %s", f->path, f->fd, strerror(errno));
	write_extents(img, f, del, fd);
	set_size(f, del, fd);
	set_attributes(f, del, fd);
	seal(f, del, fd);
	return fd;
}

/* The description memfd_create returns does not count as a writer of the
 * inode, one opened again through /proc with write access does: execveat
 * of the memfd fails (ETXTBSY) while any such is open. So the first
 * read-write description of each memfd is the one memfd_create made, as
 * in the program (one it opened again read-write itself is not told apart). */
static void pick_originals(struct ck_image **imgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nfiles; j++) {
			struct ck_img_file *f = &imgs[i]->files[j];
			struct deleted *del = f->priv;
			if (f->ops != &ck_kind_memfd || !del || f->same_as >= 0 || (f->flags & O_ACCMODE) != O_RDWR)
				continue;
			int taken = 0;
			for (size_t a = 0; a <= i && !taken; a++)
				for (size_t b = 0; b < (a == i ? j : imgs[a]->nfiles) && !taken; b++) {
					const struct ck_img_file *g = &imgs[a]->files[b];
					taken = g->ops == &ck_kind_memfd && g->priv && g->dev == f->dev && g->ino == f->ino &&
						((const struct deleted *)g->priv)->original;
				}
			del->original = !taken;
		}
}

static void memfd_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	pick_originals(imgs, n);
	inodes_create_shared(imgs, n, objs, base_fd, &ck_kind_memfd, make_memfd);
}

/* The memfd_create description itself (the restore's copy of it is closed
 * before the program runs), with the program's status flags. */
static int as_original(struct ck_img_file *f, int made)
{
	int fd = dup(made);
	if (fd < 0 || fcntl(fd, F_SETFL, f->flags & (O_NONBLOCK | O_APPEND | O_ASYNC | O_NOATIME)) != 0)
		ck_refuse("cannot make the memfd %s (descriptor %d) again: %s", f->path, f->fd, strerror(errno));
	return fd;
}

static int memfd_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd;
	const struct deleted *del = f->priv;
	int shm = ck_objects_find(objs, "shm", f->dev, f->ino);
	if (shm < 0 && del->original)
		return as_original(f, ck_objects_find(objs, "inode", f->dev, f->ino));
	if (shm < 0)
		return open_inode(f, objs);
	if (del->original) {
		set_attributes(f, del, shm);
		seal(f, del, shm);
		return as_original(f, shm);
	}
	int fd = dup(shm);
	if (fd < 0)
		ck_refuse("cannot make the memfd %s (descriptor %d) again: %s", f->path, f->fd, strerror(errno));
	set_attributes(f, del, fd);
	seal(f, del, fd);
	return reopen_as_program(f, fd);
}

CK_HIDDEN const struct ck_fd_kind ck_kind_memfd = {
	.name = "memfd",
	.detect = memfd_detect,
	.save = memfd_save,
	.path_len = deleted_path_len,
	.key = "memfd",
	.parse = deleted_parse,
	.release = deleted_release,
	.create_shared = memfd_create_shared,
	.open = memfd_open,
};

/* ---- FIFOs and device nodes deleted while open ----
 *
 * Made again (mknod) under the old name, beside it if the name is taken,
 * or in the nearest directory above that still exists, opened O_PATH
 * without following a link, checked to be the node made, and removed: the
 * O_PATH descriptor keeps it, and every descriptor of the program is a
 * new open of it through /proc (fifo.c, files.c). */
static int mknod_at(const char *path, mode_t mode, dev_t rdev)
{
	return mknod(path, mode, rdev) == 0 ? 0 : errno;
}

static int place_node(char *path, size_t cap, const char *old, mode_t mode, dev_t rdev)
{
	char where[4096];
	snprintf(path, cap, "%s", old);
	int e = mknod_at(path, mode, rdev);
	for (int i = 0; e == EEXIST && i < 100; i++) {
		snprintf(path, cap, "%s.ckrun-%d-%d", old, (int)getpid(), i);
		e = mknod_at(path, mode, rdev);
	}
	snprintf(where, sizeof where, "%s", old);
	while (e == ENOENT) {
		char *slash = strrchr(where, '/');
		if (!slash || slash == where) {
			snprintf(path, cap, "/tmp/.ckrun-node-%d", (int)getpid());
			return mknod_at(path, mode, rdev);
		}
		*slash = 0;
		snprintf(path, cap, "%s/.ckrun-node-%d", where, (int)getpid());
		e = mknod_at(path, mode, rdev);
	}
	return e;
}

CK_HIDDEN int ck_make_removed_node(const char *old, uint32_t mode, uint64_t rdev, int fdnum)
{
	char path[4200];
	const char *what = S_ISFIFO(mode) ? "named FIFO" : "device node";
	int e = place_node(path, sizeof path, old, mode, rdev);
	if (e)
		ck_refuse("cannot make the deleted %s %s (descriptor %d) again: %s", what, old, fdnum, strerror(e));
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != (mode & S_IFMT) || st.st_rdev != rdev ||
	    unlink(path) != 0 || fstat(fd, &st) != 0 || st.st_nlink != 0)
		ck_refuse("cannot make the deleted %s %s (descriptor %d) again: %s", what, old, fdnum,
			  fd < 0 ? strerror(errno) : "another file took its place");
	char proc[64]; /* an O_PATH descriptor: its mode set through /proc */
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (chmod(proc, mode & 07777) != 0)
		ck_refuse("cannot give the deleted %s %s its mode %04o: %s", what, old, (unsigned)(mode & 07777), strerror(errno));
	return fd;
}

/* A new open of such a node (kept by its O_PATH descriptor) with the program's flags. */
CK_HIDDEN int ck_open_removed_node(int keep, int flags, const char *old, int fdnum)
{
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", keep);
	int fd = open(proc, (flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		ck_refuse("cannot open the recreated %s again as descriptor %d: %s", old, fdnum, strerror(errno));
	return fd;
}

/* ---- directories deleted while open ---- */

/* An empty directory made and removed again, kept open: under the old
 * name, or beside it if the name is taken, or in the nearest directory
 * above that still exists (the parent may be gone too). Never through a
 * link planted meanwhile; and the directory removed must be ours. */
static int make_removed_dir(const char *old, int fdnum, int is_cwd)
{
	char path[4096], where[4096];
	snprintf(path, sizeof path, "%s", old);
	snprintf(where, sizeof where, "%s", old);
	int made = mkdir(path, 0700) == 0;
	/* a working directory keeps its name (the program reads it in /proc), unless its parent is gone too */
	if (!made && is_cwd && errno != ENOENT)
		ck_refuse("the working directory %s was deleted at the checkpoint, and ckrun cannot make it again to enter it "
			  "(%s); remove what has its name, or restart from an image taken elsewhere",
			  old, strerror(errno));
	if (!made) {
		snprintf(path, sizeof path, "%s.ckrun-XXXXXX", old);
		made = mkdtemp(path) != 0;
	}
	while (!made) {
		char *slash = strrchr(where, '/');
		if (!slash || slash == where) {
			snprintf(path, sizeof path, "/tmp/.ckrun-dir-XXXXXX");
			if (!mkdtemp(path))
				ck_refuse("cannot make the deleted directory %s again: %s", old, strerror(errno));
			break;
		}
		*slash = 0;
		snprintf(path, sizeof path, "%s/.ckrun-dir-XXXXXX", where);
		made = mkdtemp(path) != 0;
	}
	errno = 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || rmdir(path) != 0 || fstat(fd, &st) != 0 || st.st_nlink != 0)
		ck_refuse("cannot make the deleted directory %s (%s %d) again: %s", old,
			  is_cwd ? "working directory of process" : "descriptor", fdnum,
			  fd < 0 || errno ? strerror(errno) : "another directory took its place");
	return fd;
}

static int make_deleted_dir(struct ck_image **imgs, size_t n, struct ck_image *img, struct ck_img_file *f)
{
	(void)imgs, (void)n, (void)img;
	int fd = make_removed_dir(f->path, f->fd, 0);
	set_attributes(f, f->priv, fd);
	return fd;
}

/* A working directory removed at the checkpoint (process.c enters it):
 * the same inode as a descriptor of it, else one of its own. */
static void make_deleted_cwds(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	for (size_t i = 0; i < n; i++) {
		struct ck_image *img = imgs[i];
		if (!img->cwd_deleted || !img->cwd_has_inode || ck_objects_find(objs, "inode", img->cwd_dev, img->cwd_ino) >= 0)
			continue;
		char path[4096];
		size_t len = strlen(img->cwd);
		if (len <= 10 || strcmp(img->cwd + len - 10, " (deleted)"))
			ck_refuse("image %s is corrupted: a deleted working directory without \" (deleted)\" (%s)", img->path,
				  img->cwd);
		snprintf(path, sizeof path, "%.*s", (int)(len - 10), img->cwd);
		int fd = make_removed_dir(path, img->pid, 1);
		if (fchown(fd, img->cwd_uid, img->cwd_gid) != 0 || fchmod(fd, img->cwd_mode) != 0)
			ck_refuse("cannot give the deleted working directory %s its owner %u:%u and mode: %s; restart as that "
				  "user or as root", path, img->cwd_uid, img->cwd_gid, strerror(errno));
		keep_inode(objs, img->cwd_dev, img->cwd_ino, fd, base_fd, path);
	}
}

static void deleted_dir_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	/* the working directories first: they keep their names (or refuse) */
	make_deleted_cwds(imgs, n, objs, base_fd);
	inodes_create_shared(imgs, n, objs, base_fd, &ck_kind_deleted_dir, make_deleted_dir);
}

/* (its times too when it was made as a working directory) */
static int deleted_dir_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd;
	int made = ck_objects_find(objs, "inode", f->dev, f->ino);
	if (made >= 0)
		set_attributes(f, f->priv, made);
	return open_inode(f, objs);
}

CK_HIDDEN const struct ck_fd_kind ck_kind_deleted_dir = {
	.name = "deleted_dir",
	.detect = deleted_dir_detect,
	.save = deleted_dir_save,
	.path_len = deleted_path_len,
	.key = "deleted_dir",
	.parse = deleted_parse,
	.release = deleted_release,
	.create_shared = deleted_dir_create_shared,
	.open = deleted_dir_open,
};
