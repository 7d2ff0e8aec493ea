/* Pipes: both ends, their capacity, their flags, and the bytes in flight.
 *
 * The bytes are copied with tee(2) into a private pipe, so the program's
 * pipe is never consumed: a checkpoint that fails later changes nothing.
 * At restart the pipe is created again, given its capacity, and refilled
 * before any descriptor is installed. In a process tree every pipe is
 * created once and its ends inherited; its bytes were saved by a process
 * that could read it. A pipe whose other end is outside the session comes
 * back with that end closed (reads see what was in flight, then EOF;
 * writes EPIPE), as if the peer had gone away. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crc32c.h"
#include "fdkind.h"
#include "sys.h"

static int pipe_detect(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFIFO && ck_starts_with(f->link, "pipe:");
}

static int is_read_end(const struct ck_fd *f)
{
	return (f->flags & O_ACCMODE) == O_RDONLY;
}

static const struct ck_fd *find_end(const struct ck_fdtab *t, uint64_t ino, int read_end)
{
	for (int i = 0; i < t->n; i++)
		if ((t->fds[i].st.mode & S_IFMT) == S_IFIFO && t->fds[i].st.ino == ino && is_read_end(&t->fds[i]) == read_end)
			return &t->fds[i];
	return 0;
}

static int first_of_pipe(const struct ck_fdtab *t, const struct ck_fd *f)
{
	for (const struct ck_fd *o = t->fds; o < f; o++)
		if ((o->st.mode & S_IFMT) == S_IFIFO && o->st.ino == f->st.ino)
			return 0;
	return 1;
}

/* Copies the bytes in flight of the pipe or FIFO read through rfd without
 * consuming them (tee into a private pipe), into pages mapped at *data
 * (left 0 when there are none or on failure); their count, or a negative
 * errno. */
CK_HIDDEN long ck_pipe_peek(int rfd, long capacity, char **data)
{
	int tmp[2];
	long n = CK_SYS2(SYS_pipe2, tmp, O_CLOEXEC | O_NONBLOCK);
	if (n < 0)
		return n;
	ck_fcntl(tmp[1], F_SETPIPE_SZ, capacity);
	n = CK_SYS4(SYS_tee, rfd, tmp[1], capacity, 2 /* SPLICE_F_NONBLOCK */);
	if (n == -EAGAIN)
		n = 0;
	if (n > 0) {
		long buf = ck_mmap(0, CK_PAGE_UP(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (buf < 0 && buf > -4096) {
			n = buf;
		} else {
			*data = (char *)buf;
			long len = n;
			for (long got = 0; got < len;) {
				long k = ck_read(tmp[0], *data + got, (size_t)(len - got));
				if (k <= 0) {
					n = k < 0 ? k : -EIO;
					break;
				}
				got += k;
			}
			if (n < 0) {
				ck_munmap(*data, CK_PAGE_UP(len));
				*data = 0;
			}
		}
	}
	ck_close(tmp[0]);
	ck_close(tmp[1]);
	return n;
}

static long peek_pipe(struct ck_writer *w, int rfd, long capacity, char **data)
{
	long n = ck_pipe_peek(rfd, capacity, data);
	if (n < 0)
		ck_writer_fail(w, n, "cannot copy the bytes in flight in a pipe");
	return n;
}

static void pipe_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	struct cb_enc *e = &w->meta;
	const struct ck_fd *r = find_end(t, f->st.ino, 1), *wr = find_end(t, f->st.ino, 0);
	int first = first_of_pipe(t, f);
	cb_text(e, "pipe");
	cb_map_open(e);
	cb_kv_uint(e, "id", f->st.ino);
	cb_kv_text(e, "end", is_read_end(f) ? "read" : "write");
	cb_kv_bool(e, "peer_outside", !(r && wr));
	if (first) {
		long capacity = ck_fcntl(f->fd, F_GETPIPE_SZ, 0);
		cb_kv_uint(e, "capacity", (uint64_t)(capacity > 0 ? capacity : 65536));
		/* the process that can read the pipe saves its bytes: with the
		 * writer in this process or in another of the stopped session */
		if (r && capacity > 0) {
			char *data = 0;
			long n = peek_pipe(w, r->fd, capacity, &data);
			if (n > 0)
				ck_image_put_data(w, data, (size_t)n);
			if (data)
				ck_munmap(data, CK_PAGE_UP(n));
		}
	}
	cb_close(e);
}

/* ---- restore host ---- */

CK_HIDDEN extern const struct ck_fd_kind ck_kind_pipe;

/* A pipe end of the image: the "pipe" key. */
struct pipe {
	int read_end, peer_outside;
	int original; /* this end's description is the one pipe2 made (see pick_originals) */
	uint64_t id, capacity;
	uint64_t data_off, data_len; /* the bytes in flight, saved by a process that could read them */
	uint32_t data_crc;
};

static int pipe_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left;
	const char *k;
	size_t kl;
	struct pipe *p = calloc(1, sizeof *p);
	f->priv = p;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		uint64_t v;
		if (cbd_key_is(k, kl, "end")) {
			const char *s;
			size_t sl;
			if (!cbd_text(d, &s, &sl))
				return 0;
			p->read_end = sl == 4 && !memcmp(s, "read", 4);
		} else if (cbd_key_is(k, kl, "peer_outside")) {
			if (!cbd_bool(d, &p->peer_outside))
				return 0;
		} else if (cbd_key_is(k, kl, "data")) {
			int64_t m;
			uint64_t crc;
			if (!cbd_array(d, &m) || m != 3 || !cbd_uint(d, &p->data_off) || !cbd_uint(d, &p->data_len) ||
			    !cbd_uint_max(d, UINT32_MAX, &crc))
				return 0;
			p->data_crc = (uint32_t)crc;
		} else if (cbd_key_is(k, kl, "id")) {
			if (!cbd_uint(d, &p->id))
				return 0;
		} else if (cbd_key_is(k, kl, "capacity")) {
			if (!cbd_uint_max(d, INT32_MAX, &v))
				return 0;
			p->capacity = v;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error;
}

struct made_pipe {
	uint64_t id;
	int ends[2];
};
static struct made_pipe *made;
static size_t nmade;

static void refill(struct ck_image *img, struct ck_img_file *f, int wfd)
{
	const struct pipe *p = f->priv;
	char *buf = malloc(p->data_len ? p->data_len : 1);
	if (ck_pread_all(img->fd, buf, p->data_len, p->data_off) < 0)
		ck_refuse("image %s is truncated: cannot read the bytes in flight of the pipe at descriptor %d", img->path, f->fd);
	if (ck_crc32c(0, buf, p->data_len) != p->data_crc)
		ck_refuse("image %s is corrupted: the bytes in flight of the pipe at descriptor %d fail their checksum",
			  img->path, f->fd);
	if (write(wfd, buf, p->data_len) != (ssize_t)p->data_len)
		ck_refuse("cannot put back the bytes in flight of the pipe at descriptor %d: %s", f->fd, strerror(errno));
	free(buf);
}

/* The kernel's O_LARGEFILE (glibc's is 0 on 64-bit): an open adds it,
 * pipe2 does not, F_SETFL cannot clear it. */
#ifdef __aarch64__
#define CK_O_LARGEFILE 0400000
#else
#define CK_O_LARGEFILE 0100000
#endif

/* The description pipe2 made for this end, with the flags f had. */
static int pipe_original(const struct ck_img_file *f, int end)
{
	int fd = fcntl(end, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		ck_refuse("cannot take the pipe end of descriptor %d: %s", f->fd, strerror(errno));
	if (fcntl(fd, F_SETFL, f->flags & (O_NONBLOCK | O_DIRECT)) < 0)
		ck_refuse("cannot give the pipe end of descriptor %d its flags: %s", f->fd, strerror(errno));
	return fd;
}

/* A new open file description of f's end (end: a descriptor of that end),
 * with the flags f had: descriptions that were separate (each with its own
 * O_NONBLOCK) stay separate; shared ones are one entry (same_as, or a
 * family's "description" object). Opened through /proc, which never
 * blocks here: the restore host holds both ends. */
static int pipe_end(const struct ck_img_file *f, int end)
{
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", end);
	int fd = open(proc, (f->flags & O_ACCMODE) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		ck_refuse("cannot open the pipe end of descriptor %d again: %s", f->fd, strerror(errno));
	if (fcntl(fd, F_SETFL, f->flags & (O_NONBLOCK | O_DIRECT)) < 0)
		ck_refuse("cannot give the pipe end of descriptor %d its flags: %s", f->fd, strerror(errno));
	return fd;
}

static void create_pipe(struct ck_image *img, struct ck_img_file *f, int ends_out[2], int base_fd)
{
	const struct pipe *p = f->priv;
	int ends[2];
	if (pipe2(ends, O_CLOEXEC) != 0)
		ck_refuse("cannot create the pipe for descriptor %d: %s", f->fd, strerror(errno));
	/* above the program's numbers, which are installed later */
	for (int k = 0; k < 2; k++) {
		ends_out[k] = fcntl(ends[k], F_DUPFD_CLOEXEC, base_fd);
		close(ends[k]);
		if (ends_out[k] < 0)
			ck_refuse("cannot place a pipe end: %s", strerror(errno));
	}
	if (p->capacity && fcntl(ends_out[0], F_SETPIPE_SZ, (int)p->capacity) < 0)
		ck_refuse("cannot give the pipe at descriptor %d its capacity of %llu bytes: %s", f->fd,
			  (unsigned long long)p->capacity, strerror(errno));
	if (p->data_len)
		refill(img, f, ends_out[1]);
}

/* An end opened again through /proc carries O_LARGEFILE, which a pipe end
 * from pipe(2) lacks and F_GETFL shows. So the first description of each
 * end whose flags lack it (in image order, the same in every restore host
 * of a family) is the one pipe2 made, as in the program; further ones
 * (the program opened them through /proc itself: they had O_LARGEFILE)
 * are opened again. */
static void pick_originals(struct ck_image **imgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nfiles; j++) {
			struct ck_img_file *f = &imgs[i]->files[j];
			struct pipe *p = f->priv;
			if (f->ops != &ck_kind_pipe || !p || f->same_as >= 0 || (f->flags & CK_O_LARGEFILE))
				continue;
			int taken = 0;
			for (size_t a = 0; a <= i && !taken; a++)
				for (size_t b = 0; b < (a == i ? j : imgs[a]->nfiles) && !taken; b++) {
					const struct ck_img_file *g = &imgs[a]->files[b];
					const struct pipe *q = g->priv;
					taken = g->ops == &ck_kind_pipe && q && q->id == p->id && q->read_end == p->read_end && q->original;
				}
			p->original = !taken;
		}
}

/* Every pipe once, refilled from the image whose process could read it
 * (it saved the bytes in flight): objects "pipe" (id, 0) and (id, 1), its
 * read and write ends. Ends nobody had close when every restore host has
 * installed its descriptors. */
static void pipes_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	pick_originals(imgs, n);
	for (int with_data = 1; with_data >= 0; with_data--)
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < imgs[i]->nfiles; j++) {
				struct ck_img_file *f = &imgs[i]->files[j];
				const struct pipe *p = f->priv;
				if (f->ops != &ck_kind_pipe || !p || (with_data && !p->data_len))
					continue;
				if (ck_objects_find(objs, "pipe", p->id, 0) >= 0)
					continue;
				int ends[2];
				create_pipe(imgs[i], f, ends, base_fd);
				ck_objects_add(objs, "pipe", p->id, 0, ends[0]);
				ck_objects_add(objs, "pipe", p->id, 1, ends[1]);
			}
}

/* Returns a descriptor for f's end of its pipe: the shared pipe, or one
 * created the first time one of its ends is seen. */
static int pipe_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	const struct pipe *p = f->priv;
	int shared = ck_objects_find(objs, "pipe", p->id, p->read_end ? 0 : 1);
	if (shared >= 0)
		return p->original ? pipe_original(f, shared) : pipe_end(f, shared);
	struct made_pipe *m = 0;
	for (size_t i = 0; i < nmade; i++)
		if (made[i].id == p->id)
			m = &made[i];
	if (!m) {
		made = realloc(made, (nmade + 1) * sizeof *made);
		m = &made[nmade++];
		m->id = p->id;
		create_pipe(img, f, m->ends, base_fd);
	}
	int end = m->ends[p->read_end ? 0 : 1];
	return p->original ? pipe_original(f, end) : pipe_end(f, end);
}

/* Ends nobody had stay closed: the restore host's copies go away. */
static void pipes_installed(struct ck_image *img)
{
	(void)img;
	for (size_t i = 0; i < nmade; i++) {
		close(made[i].ends[0]);
		close(made[i].ends[1]);
	}
	nmade = 0;
}

CK_HIDDEN const struct ck_fd_kind ck_kind_pipe = {
	.name = "pipe",
	.detect = pipe_detect,
	.save = pipe_save,
	.key = "pipe",
	.parse = pipe_parse,
	.create_shared = pipes_create_shared,
	.open = pipe_open,
	.installed = pipes_installed,
};
