/* Written files by blocks: what a checkpoint saves of a file the program
 * writes, and what a restart compares to put it back (src/files.ts,
 * docs/image-format.md "Written files").
 *
 * A file's table has one 16-byte entry per block (little-endian): a 64-bit
 * hash of the block's bytes, the source it is stored in (an index into the
 * generation's list of data files; CK_BLOCK_HOLE for a block wholly in a
 * hole) and its block number in that source. */
#define _GNU_SOURCE
#include "native.h"

#define CK_BLOCK_HOLE 0xffffffffu
#define CK_ENTRY 16
#define CK_CHUNK ((size_t)1 << 20)

static uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/* A 64-bit hash of a block: four lanes of multiply-rotate over 8-byte
 * words, folded with the length. Not cryptographic; it tells a changed
 * block from an unchanged one with a 2^-64 chance of a miss. */
static uint64_t block_hash(const unsigned char *p, size_t n)
{
	const uint64_t m1 = 0x9e3779b97f4a7c15ULL, m2 = 0xd6e8feb86659fd93ULL;
	uint64_t lane[4] = { m1, m2, m1 ^ n, m2 + n };
	size_t i = 0;
	for (; i + 32 <= n; i += 32)
		for (int k = 0; k < 4; k++) {
			uint64_t w;
			memcpy(&w, p + i + 8 * k, 8);
			lane[k] = rotl64(lane[k] ^ (w * m2), 29) * m1;
		}
	uint64_t h = (uint64_t)n * m1;
	for (int k = 0; k < 4; k++)
		h = rotl64(h ^ lane[k], 31) * m2;
	for (; i < n; i++)
		h = rotl64(h ^ p[i], 11) * m1;
	h ^= h >> 32;
	h *= m2;
	h ^= h >> 29;
	return h ? h : 1; /* 0 is kept for holes */
}

static void put_entry(unsigned char *e, uint64_t hash, uint32_t src, uint32_t pos)
{
	memcpy(e, &hash, 8);
	memcpy(e + 8, &src, 4);
	memcpy(e + 12, &pos, 4);
}

static void get_entry(const unsigned char *e, uint64_t *hash, uint32_t *src, uint32_t *pos)
{
	memcpy(hash, e, 8);
	memcpy(src, e + 8, 4);
	memcpy(pos, e + 12, 4);
}

/* Where the data and holes of a file are, walked forward block by block. */
struct extent_walk {
	int fd;
	off_t size, data, hole; /* the next data at or after the last look, and the hole after it */
};

static int block_is_hole(struct extent_walk *w, off_t b0, off_t b1)
{
	if (w->hole <= b0) {
		off_t d = lseek(w->fd, b0, SEEK_DATA);
		if (d < 0) {
			/* ENXIO: only holes up to the end; anything else: treat as data (read it) */
			w->data = errno == ENXIO ? w->size : b0;
			w->hole = w->size + 1;
		} else {
			w->data = d;
			off_t h = lseek(w->fd, d, SEEK_HOLE);
			w->hole = h < 0 ? w->size + 1 : h;
		}
		if (w->hole <= b0) /* never loop: data up to the end */
			w->hole = w->size + 1;
	}
	return w->data >= b1;
}

static int pread_full(int fd, unsigned char *buf, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, buf + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) { /* shorter than its size said: it shrank meanwhile */
			memset(buf + done, 0, n - done);
			break;
		}
		done += (size_t)r;
	}
	return 0;
}

static int pwrite_full(int fd, const unsigned char *buf, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pwrite(fd, buf + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

struct snap {
	int fd, out;
	uint64_t size, bsize, nblocks;
	const unsigned char *prev;
	uint64_t prev_n;
	uint32_t out_base; /* blocks the out file holds already */
	unsigned char *table;
	uint64_t written;
	const char *failed; /* what failed (errno says why) */
};

/* Whether block i is the previous generation's, and then its entry here
 * (its source moves up by one: source 0 is this generation's data file). */
static int same_as_prev(const struct snap *s, uint64_t i, int hole, uint64_t hash, unsigned char *e)
{
	if (!s->prev || i >= s->prev_n)
		return 0;
	uint64_t ph;
	uint32_t psrc, ppos;
	get_entry(s->prev + i * CK_ENTRY, &ph, &psrc, &ppos);
	if (hole || psrc == CK_BLOCK_HOLE)
		return 0;
	if (ph != hash)
		return 0;
	put_entry(e, hash, psrc + 1, ppos);
	return 1;
}

/* One chunk of blocks [first, first+count), read into buf at its offset. */
static int snap_chunk(struct snap *s, struct extent_walk *w, unsigned char *buf, uint64_t first, uint64_t count)
{
	off_t c0 = (off_t)(first * s->bsize);
	uint64_t c1 = (first + count) * s->bsize;
	if (c1 > s->size)
		c1 = s->size;
	if (pread_full(s->fd, buf, (size_t)(c1 - (uint64_t)c0), c0) < 0) {
		s->failed = "read";
		return -1;
	}
	uint64_t run_start = 0, run_len = 0; /* blocks to write, consecutive in buf */
	for (uint64_t k = 0; k < count; k++) {
		uint64_t i = first + k;
		off_t b0 = (off_t)(i * s->bsize);
		off_t b1 = b0 + (off_t)s->bsize > (off_t)s->size ? (off_t)s->size : b0 + (off_t)s->bsize;
		unsigned char *e = s->table + i * CK_ENTRY;
		int hole = block_is_hole(w, b0, b1);
		uint64_t hash = hole ? 0 : block_hash(buf + k * s->bsize, (size_t)(b1 - b0));
		if (hole)
			put_entry(e, 0, CK_BLOCK_HOLE, 0);
		else if (same_as_prev(s, i, hole, hash, e))
			;
		else if (s->out < 0)
			put_entry(e, hash, 0, (uint32_t)i);
		else {
			put_entry(e, hash, 0, (uint32_t)(s->out_base + s->written + run_len));
			if (run_len == 0)
				run_start = k;
			run_len++;
			continue;
		}
		if (run_len) {
			size_t len = (size_t)(run_len * s->bsize);
			if (pwrite_full(s->out, buf + run_start * s->bsize, len, (off_t)((s->out_base + s->written) * s->bsize)) < 0) {
				s->failed = "write";
				return -1;
			}
			s->written += run_len;
			run_len = 0;
		}
	}
	if (run_len) {
		uint64_t end = (run_start + run_len) * s->bsize;
		uint64_t avail = (uint64_t)(c1 - (uint64_t)c0);
		size_t len = (size_t)((end > avail ? avail : end) - run_start * s->bsize);
		if (pwrite_full(s->out, buf + run_start * s->bsize, len, (off_t)((s->out_base + s->written) * s->bsize)) < 0) {
			s->failed = "write";
			return -1;
		}
		s->written += run_len;
	}
	return 0;
}

static int snap_file(struct snap *s)
{
	size_t per = CK_CHUNK / s->bsize ? CK_CHUNK / s->bsize : 1;
	unsigned char *buf = malloc(per * s->bsize);
	if (!buf) {
		s->failed = "allocate";
		return -1;
	}
	struct extent_walk w = { s->fd, (off_t)s->size, 0, 0 };
	int r = 0;
	for (uint64_t i = 0; i < s->nblocks && r == 0; i += per)
		r = snap_chunk(s, &w, buf, i, s->nblocks - i < per ? s->nblocks - i : per);
	free(buf);
	return r;
}

static bool get_buffer(napi_env env, napi_value v, const char *what, void **data, size_t *len)
{
	bool is = false;
	if (napi_is_buffer(env, v, &is) != napi_ok || !is) {
		throw_type(env, "%s must be a Buffer", what);
		return false;
	}
	return napi_get_buffer_info(env, v, data, len) == napi_ok;
}

static void free_table(napi_env env, void *data, void *hint)
{
	(void)env, (void)hint;
	free(data);
}

/* fileBlocks(fd, size, blockSize, prev|null, outFd, outBase) →
 * {table, written}: the table of the file's first `size` bytes; a block
 * whose hash equals prev's entry keeps prev's place (source + 1), any
 * other data block is appended to outFd (outFd -1: nothing is written,
 * each data block's entry names source 0 at its own number). */
napi_value js_file_blocks(napi_env env, napi_callback_info info)
{
	size_t argc = 6;
	napi_value argv[6], result = NULL, table = NULL;
	int64_t fd, size, bsize, out, base;
	struct snap s;
	memset(&s, 0, sizeof s);

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 6) {
		throw_type(env, "fileBlocks(fd, size, blockSize, prev, outFd, outBase): six arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "fileBlocks: fd", 0, INT_MAX, &fd) ||
	    !get_int(env, argv[1], "fileBlocks: size", 0, (int64_t)1 << 53, &size) ||
	    !get_int(env, argv[2], "fileBlocks: blockSize", 512, 1 << 24, &bsize) ||
	    !get_int(env, argv[4], "fileBlocks: outFd", -1, INT_MAX, &out) ||
	    !get_int(env, argv[5], "fileBlocks: outBase", 0, UINT32_MAX, &base))
		return NULL;
	napi_valuetype t;
	NAPI_CALL(env, napi_typeof(env, argv[3], &t));
	if (t != napi_null && t != napi_undefined) {
		void *p;
		size_t len;
		if (!get_buffer(env, argv[3], "fileBlocks: prev", &p, &len))
			return NULL;
		s.prev = p;
		s.prev_n = len / CK_ENTRY;
	}
	s.fd = (int)fd;
	s.out = (int)out;
	s.size = (uint64_t)size;
	s.bsize = (uint64_t)bsize;
	s.nblocks = (s.size + s.bsize - 1) / s.bsize;
	s.out_base = (uint32_t)base;
	if (s.nblocks + base > UINT32_MAX) {
		throw_coded(env, "EFBIG", "fileBlocks: the file has too many blocks of %lld bytes", (long long)bsize);
		return NULL;
	}
	s.table = malloc(s.nblocks ? s.nblocks * CK_ENTRY : 1);
	if (!s.table) {
		throw_coded(env, "ENOMEM", "fileBlocks: cannot allocate the table");
		return NULL;
	}
	/* the descriptor may be the program's own description (a leased file
	 * read through pidfd_getfd): SEEK_DATA/SEEK_HOLE move its offset,
	 * which the program must find where it left it */
	off_t at = lseek(s.fd, 0, SEEK_CUR);
	int snapped = snap_file(&s);
	int err = errno;
	if (at >= 0)
		lseek(s.fd, at, SEEK_SET);
	if (snapped < 0) {
		free(s.table);
		throw_coded(env, errno_name(err), "cannot %s the file's blocks: %s", s.failed, strerror(err));
		return NULL;
	}
	NAPI_CALL(env, napi_create_external_buffer(env, s.nblocks * CK_ENTRY, s.table, free_table, NULL, &table));
	s.table = NULL;
	NAPI_CALL(env, napi_create_object(env, &result));
	NAPI_CALL(env, napi_set_named_property(env, result, "table", table));
	if (!set_int_prop(env, result, "written", (int64_t)s.written))
		return NULL;
	return result;
fail:
	free(s.table);
	return NULL;
}

/* blockHash(buf) → bigint: the hash a table holds for these bytes. */
napi_value js_block_hash(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result = NULL;
	void *p;
	size_t len;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 || !get_buffer(env, argv[0], "blockHash: buf", &p, &len))
		return NULL;
	NAPI_CALL(env, napi_create_bigint_uint64(env, block_hash(p, len), &result));
	return result;
fail:
	return NULL;
}

/* punchHole(fd, offset, length): the range becomes a hole again (size kept). */
napi_value js_punch_hole(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	int64_t fd, off, len;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 3) {
		throw_type(env, "punchHole(fd, offset, length): three arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "punchHole: fd", 0, INT_MAX, &fd) ||
	    !get_int(env, argv[1], "punchHole: offset", 0, (int64_t)1 << 53, &off) ||
	    !get_int(env, argv[2], "punchHole: length", 1, (int64_t)1 << 53, &len))
		return NULL;
	if (fallocate((int)fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "cannot punch a hole at %lld (%lld bytes): %s", (long long)off, (long long)len,
			    strerror(err));
		return NULL;
	}
	return NULL;
fail:
	return NULL;
}

/* seek(fd, offset): lseek(SEEK_SET) (a stdio file reopened at its checkpoint offset). */
napi_value js_seek(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	int64_t fd, off;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2) {
		throw_type(env, "seek(fd, offset): two arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "seek: fd", 0, INT_MAX, &fd) || !get_int(env, argv[1], "seek: offset", 0, (int64_t)1 << 53, &off))
		return NULL;
	if (lseek((int)fd, (off_t)off, SEEK_SET) < 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "cannot seek to %lld: %s", (long long)off, strerror(err));
		return NULL;
	}
	return NULL;
fail:
	return NULL;
}

/* Two bigints of nanoseconds (access, modification) as utimensat's times. */
static bool get_times_ns(napi_env env, const napi_value *argv, const char *what, struct timespec ts[2])
{
	for (int i = 0; i < 2; i++) {
		uint64_t t;
		bool lossless;
		if (napi_get_value_bigint_uint64(env, argv[i], &t, &lossless) != napi_ok || !lossless) {
			throw_type(env, "%s: times are bigints of nanoseconds", what);
			return false;
		}
		ts[i].tv_sec = (time_t)(t / 1000000000u);
		ts[i].tv_nsec = (long)(t % 1000000000u);
	}
	return true;
}

/* futimesNs(fd, atimeNs, mtimeNs): futimens to the nanosecond (bigints). */
napi_value js_futimes_ns(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	int64_t fd;
	struct timespec ts[2];

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 3) {
		throw_type(env, "futimesNs(fd, atimeNs, mtimeNs): three arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "futimesNs: fd", 0, INT_MAX, &fd) || !get_times_ns(env, argv + 1, "futimesNs", ts))
		return NULL;
	if (futimens((int)fd, ts) < 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "cannot set the times: %s", strerror(err));
		return NULL;
	}
	return NULL;
fail:
	return NULL;
}

/* lutimesNs(path, atimeNs, mtimeNs): the times of a symbolic link itself
 * (never its target) to the nanosecond: a snapshot directory's links. */
napi_value js_lutimes_ns(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	struct timespec ts[2];

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 3) {
		throw_type(env, "lutimesNs(path, atimeNs, mtimeNs): three arguments are required");
		return NULL;
	}
	if (!get_times_ns(env, argv + 1, "lutimesNs", ts))
		return NULL;
	char *path = dup_string(env, argv[0], "lutimesNs: path");
	if (!path)
		return NULL;
	int r = utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
	int err = errno;
	free(path);
	if (r < 0) {
		throw_coded(env, errno_name(err), "cannot set the times of a link: %s", strerror(err));
		return NULL;
	}
	return NULL;
fail:
	return NULL;
}
