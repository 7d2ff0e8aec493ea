/* Named FIFOs opened by path: each descriptor's flags, the FIFO's
 * capacity and the bytes in flight.
 *
 * The bytes are copied with tee(2), as a pipe's are (pipes.c), by a
 * process of the session that has the FIFO open for reading. At restart
 * the FIFO at its path is opened once, O_RDWR (which never blocks), before
 * any process is forked (object "fifo" (dev, ino)): that holder refills
 * it and keeps it open while every descriptor is opened again by path, so
 * no open waits for a peer; the holder goes with the restore's other
 * descriptors. A FIFO deleted while open is made again as a FIFO
 * removed at once (deleted.c), its descriptors opened through /proc from
 * the holder. One that holds bytes at restart (another process has it
 * open) is refused. A FIFO whose other
 * end was outside the session comes back as a pipe's does: that end is
 * gone (EOF, or EPIPE). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fdkind.h"
#include "sys.h"

static int fifo_detect(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFIFO && !ck_starts_with(f->link, "pipe:");
}

static int readable(int flags)
{
	return (flags & O_ACCMODE) != O_WRONLY;
}

/* The first readable descriptor of this FIFO in this process: it saves the bytes. */
static int saves_bytes(const struct ck_fdtab *t, const struct ck_fd *f)
{
	if (!readable(f->flags))
		return 0;
	for (const struct ck_fd *o = t->fds; o < f; o++)
		if (fifo_detect(o) && o->st.dev == f->st.dev && o->st.ino == f->st.ino && readable(o->flags))
			return 0;
	return 1;
}

static void fail_fifo(struct ck_writer *w, long err, const struct ck_fd *f, const char *why)
{
	struct ck_str m;
	ck_writer_fail(w, err, "the program has a named FIFO ckrun cannot save");
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, f->fd);
	ck_str_add(&m, " (");
	ck_str_add(&m, f->link);
	ck_str_add(&m, ") ");
	ck_str_add(&m, why);
}

static long peek_fifo(struct ck_writer *w, const struct ck_fd *f, long capacity, char **data)
{
	long n = ck_pipe_peek(f->fd, capacity, data);
	if (n < 0)
		fail_fifo(w, n, f, "has bytes in flight ckrun could not copy");
	return n;
}

static void fifo_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	struct cb_enc *e = &w->meta;
	long capacity = ck_fcntl(f->fd, F_GETPIPE_SZ, 0);
	cb_text(e, "fifo");
	cb_map_open(e);
	cb_kv_uint(e, "capacity", (uint64_t)(capacity > 0 ? capacity : 65536));
	if (capacity > 0 && saves_bytes(t, f)) {
		char *data = 0;
		long n = peek_fifo(w, f, capacity, &data);
		if (n > 0)
			ck_image_put_data(w, data, (size_t)n);
		if (data)
			ck_munmap(data, CK_PAGE_UP(n));
	}
	cb_close(e);
}

/* ---- restore host ---- */

CK_HIDDEN extern const struct ck_fd_kind ck_kind_fifo;

struct fifo {
	uint64_t capacity;
	uint64_t data_off, data_len; /* the bytes in flight, saved by a process that could read them */
	uint32_t data_crc;
	int has_data;
};

static int fifo_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left;
	const char *k;
	size_t kl;
	struct fifo *p = calloc(1, sizeof *p);
	f->priv = p;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "capacity")) {
			if (!cbd_uint_max(d, INT32_MAX, &p->capacity))
				return 0;
		} else if (cbd_key_is(k, kl, "data")) {
			int64_t m;
			uint64_t crc;
			if (!cbd_array(d, &m) || m != 3 || !cbd_uint(d, &p->data_off) || !cbd_uint(d, &p->data_len) ||
			    !cbd_uint_max(d, UINT32_MAX, &crc))
				return 0;
			p->data_crc = (uint32_t)crc;
			p->has_data = 1;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error;
}

/* deleted while open: its path ends in " (deleted)" */
static int ghost(const struct ck_img_file *f)
{
	size_t n = strlen(f->path);
	return n > 10 && !strcmp(f->path + n - 10, " (deleted)");
}

static void fifo_check(struct ck_image *img, struct ck_img_file *f)
{
	struct stat st;
	if (ghost(f))
		return;
	if (stat(f->path, &st) != 0)
		ck_refuse("image %s: descriptor %d is the named FIFO %s, which is gone (%s); make it again (mkfifo) or "
			  "restart from an image taken without it",
			  img->path, f->fd, f->path, strerror(errno));
	if (!S_ISFIFO(st.st_mode))
		ck_refuse("image %s: descriptor %d is the named FIFO %s, which is no longer a FIFO", img->path, f->fd, f->path);
}

static void refill(struct ck_image *img, struct ck_img_file *f, int wfd)
{
	const struct fifo *p = f->priv;
	char *buf = malloc(p->data_len ? p->data_len : 1);
	if (ck_pread_all(img->fd, buf, p->data_len, p->data_off) < 0)
		ck_refuse("image %s is truncated: cannot read the bytes in flight of the FIFO %s", img->path, f->path);
	if (ck_crc32c(0, buf, p->data_len) != p->data_crc)
		ck_refuse("image %s is corrupted: the bytes in flight of the FIFO %s fail their checksum", img->path, f->path);
	if (write(wfd, buf, p->data_len) != (ssize_t)p->data_len)
		ck_refuse("cannot put back the bytes in flight of the FIFO %s: %s", f->path, strerror(errno));
	free(buf);
}

/* The holder of one FIFO: opened, checked empty, given its capacity and refilled. */
static int hold_fifo(struct ck_image *img, struct ck_img_file *f, int base_fd)
{
	const struct fifo *p = f->priv;
	int fd;
	if (ghost(f)) {
		char old[4096];
		snprintf(old, sizeof old, "%.*s", (int)(strlen(f->path) - 10), f->path);
		int keep = ck_make_removed_node(old, (uint32_t)((f->mode & 07777) | S_IFIFO), 0, f->fd);
		fd = ck_open_removed_node(keep, O_RDWR | O_NONBLOCK, f->path, f->fd);
		close(keep);
	} else {
		fd = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		ck_refuse("cannot open the named FIFO %s (descriptor %d): %s", f->path, f->fd, strerror(errno));
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	close(fd);
	if (moved < 0)
		ck_refuse("cannot place the named FIFO %s: %s", f->path, strerror(errno));
	struct stat st;
	int queued = 0;
	if (fstat(moved, &st) != 0 || (st.st_ino != f->ino && !ghost(f)) || ioctl(moved, FIONREAD, &queued) != 0)
		ck_refuse("the named FIFO %s (descriptor %d) was replaced since the checkpoint; restart from an image taken "
			  "with this one",
			  f->path, f->fd);
	if (queued)
		ck_refuse("the named FIFO %s (descriptor %d) holds %d bytes now: another process has it open; stop it, or "
			  "its bytes would mix with the program's",
			  f->path, f->fd, queued);
	if (p->capacity && fcntl(moved, F_SETPIPE_SZ, (int)p->capacity) < 0)
		ck_refuse("cannot give the named FIFO %s its capacity of %llu bytes: %s", f->path,
			  (unsigned long long)p->capacity, strerror(errno));
	if (p->has_data)
		refill(img, f, moved);
	return moved;
}

/* Every FIFO once, refilled from an image whose process could read it. */
static void fifos_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	for (int with_data = 1; with_data >= 0; with_data--)
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < imgs[i]->nfiles; j++) {
				struct ck_img_file *f = &imgs[i]->files[j];
				const struct fifo *p = f->priv;
				if (f->ops != &ck_kind_fifo || !p || (with_data && !p->has_data) ||
				    ck_objects_find(objs, "fifo", f->dev, f->ino) >= 0)
					continue;
				ck_objects_add(objs, "fifo", f->dev, f->ino, hold_fifo(imgs[i], f, base_fd));
			}
}

/* By path, as the program opened it; never waiting: the holder is both ends. */
static int fifo_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd;
	int holder = ck_objects_find(objs, "fifo", f->dev, f->ino);
	if (holder < 0)
		ck_refuse("the named FIFO %s (descriptor %d) was not opened by the restore", f->path, f->fd);
	int fd = ghost(f) ? ck_open_removed_node(holder, (f->flags & O_ACCMODE) | O_NONBLOCK, f->path, f->fd)
			  : open(f->path, (f->flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		ck_refuse("cannot open the named FIFO %s again as descriptor %d: %s", f->path, f->fd, strerror(errno));
	if (fcntl(fd, F_SETFL, f->flags & (O_NONBLOCK | O_APPEND | O_ASYNC | O_DIRECT)) < 0)
		ck_refuse("cannot give the named FIFO %s (descriptor %d) its flags: %s", f->path, f->fd, strerror(errno));
	return fd;
}

CK_HIDDEN const struct ck_fd_kind ck_kind_fifo = {
	.name = "fifo",
	.detect = fifo_detect,
	.save = fifo_save,
	.key = "fifo",
	.parse = fifo_parse,
	.check = fifo_check,
	.create_shared = fifos_create_shared,
	.open = fifo_open,
};
