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

/* size, attributes and extents, into the open map of the kind's key */
static void save_contents(struct ck_writer *w, const struct ck_fd *f)
{
	struct cb_enc *e = &w->meta;
	uint64_t size = (uint64_t)f->st.size;
	int own = (f->flags & O_ACCMODE) != O_WRONLY && !(f->flags & O_PATH);
	long was = own ? ck_lseek(f->fd, 0, SEEK_CUR) : 0;
	int fd = f->fd;
	/* reading must not change the access time the program sees (nor the one saved) */
	int noatime = own && !(f->flags & O_NOATIME) && ck_fcntl(f->fd, F_SETFL, (f->flags | O_NOATIME) & ~O_ACCMODE) == 0;
	if (!own) {
		char path[64];
		ck_proc_fd_path(path, "fd", f->fd);
		fd = (int)ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOATIME, 0);
		if (fd == -EPERM)
			fd = (int)ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
		if (fd < 0) {
			ck_writer_fail(w, fd, "cannot read a deleted file the program has open");
			return;
		}
	}
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

static void deleted_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
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
	int fd2 = open(proc, (f->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) | O_CLOEXEC);
	close(fd);
	if (fd2 < 0)
		ck_refuse("cannot reopen the recreated file %s: %s", f->path, strerror(errno));
	return fd2;
}

static int deleted_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)base_fd, (void)objs;
	const struct deleted *del = f->priv;
	int fd = create_anonymous(f);
	write_extents(img, f, del, fd);
	set_size(f, del, fd);
	set_attributes(f, del, fd);
	return reopen_as_program(f, fd);
}

CK_HIDDEN const struct ck_fd_kind ck_kind_deleted = {
	.name = "deleted",
	.detect = deleted_detect,
	.save = deleted_save,
	.path_len = deleted_path_len,
	.key = "deleted",
	.parse = deleted_parse,
	.release = deleted_release,
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
 * F_SEAL_EXEC would refuse them). A memfd the program also maps is the
 * one the memory restore made (object "shm", made sealable). */
static int memfd_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)base_fd;
	const struct deleted *del = f->priv;
	int shm = ck_objects_find(objs, "shm", f->dev, f->ino);
	int fd = shm >= 0 ? dup(shm) : memfd_create(memfd_name(f), MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (fd < 0 && shm < 0 && errno == EINVAL) /* a kernel before MFD_EXEC: executable already */
		fd = memfd_create(memfd_name(f), MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		ck_refuse("cannot make the memfd %s (descriptor %d) again: %s", f->path, f->fd, strerror(errno));
	long had = fcntl(fd, F_GET_SEALS);
	if (shm < 0) {
		write_extents(img, f, del, fd);
		set_size(f, del, fd);
	}
	set_attributes(f, del, fd);
	if (had != (long)del->seals && fcntl(fd, F_ADD_SEALS, (int)(del->seals & ~(uint64_t)had)) != 0)
		ck_refuse("cannot seal the memfd %s (descriptor %d) again (seals %#llx): %s", f->path, f->fd,
			  (unsigned long long)del->seals, strerror(errno));
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
	.open = memfd_open,
};

/* ---- directories deleted while open ---- */

/* Made again under the old name (or a fresh one beside it, if the name is
 * taken), opened, and removed again: an empty deleted directory, as it was. */
static int deleted_dir_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	char path[4096];
	snprintf(path, sizeof path, "%s", f->path);
	if (mkdir(path, 0700) != 0) {
		snprintf(path, sizeof path, "%s.ckrun-XXXXXX", f->path);
		if (!mkdtemp(path))
			ck_refuse("cannot make the deleted directory %s (descriptor %d) again: %s", f->path, f->fd, strerror(errno));
	}
	/* never through a link planted meanwhile; and the directory removed must be ours */
	errno = 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || rmdir(path) != 0 || fstat(fd, &st) != 0 || st.st_nlink != 0)
		ck_refuse("cannot make the deleted directory %s (descriptor %d) again: %s", f->path, f->fd,
			  fd < 0 || errno ? strerror(errno) : "another directory took its place");
	set_attributes(f, f->priv, fd);
	return reopen_as_program(f, fd);
}

CK_HIDDEN const struct ck_fd_kind ck_kind_deleted_dir = {
	.name = "deleted_dir",
	.detect = deleted_dir_detect,
	.save = deleted_dir_save,
	.path_len = deleted_path_len,
	.key = "deleted_dir",
	.parse = deleted_parse,
	.release = deleted_release,
	.open = deleted_dir_open,
};
