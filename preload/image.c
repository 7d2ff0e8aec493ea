/* The image file's framing (see docs/image-format.md): header block, data
 * area, metadata; written under a temporary name, fsync'd and renamed.
 * The writer runs in the checkpoint signal handler: raw syscalls only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckrun.h"
#include "crc32c.h"
#include "restore.h"
#include "schema.h"
#include "sys.h"

#define HEADER_SIZE 4096

CK_HIDDEN int ck_writer_fail(struct ck_writer *w, long err, const char *what)
{
	if (w->err)
		return 0;
	w->err = err ? err : -EIO;
	w->err_what = what;
	struct ck_str d;
	ck_str_init(&d, w->err_detail, sizeof w->err_detail);
	ck_str_errno(&d, w->err);
	return 0;
}

CK_HIDDEN void ck_writer_fail_fd(struct ck_writer *w, long err, const char *what, const struct ck_fd *f, struct ck_str *m)
{
	ck_writer_fail(w, err, what);
	ck_str_init(m, w->err_detail, sizeof w->err_detail);
	ck_str_add(m, "descriptor ");
	ck_str_dec(m, f->fd);
	ck_str_add(m, " (");
	ck_str_add(m, f->link);
	ck_str_add(m, ") ");
}

/* The image is a new file (never one found there, never through a link),
 * locked (flock) until it has its final name: ckrun removes an abandoned
 * generation only when no writer holds a lock in it. The lock is a hint for
 * that cleanup: a file system without flock does not fail the checkpoint. */
CK_HIDDEN long ck_image_open(struct ck_writer *w, const char *tmp_path)
{
	long fd = ck_openat(AT_FDCWD, tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		ck_writer_fail(w, fd, "cannot create the image file");
		struct ck_str d;
		ck_str_init(&d, w->err_detail, sizeof w->err_detail);
		ck_str_add(&d, tmp_path);
		ck_str_add(&d, ": ");
		ck_str_errno(&d, fd);
		return fd;
	}
	CK_SYS2(SYS_flock, fd, LOCK_EX | LOCK_NB);
	w->fd = (int)fd;
	w->data_end = HEADER_SIZE;
	w->writeback_from = HEADER_SIZE;
	long r = ck_lseek(w->fd, HEADER_SIZE, SEEK_SET);
	if (r < 0)
		ck_writer_fail(w, r, "cannot seek in the image file");
	return r < 0 ? r : 0;
}

/* The image file ckrun created and sent with "save": written in place,
 * under its final name (the generation becomes complete only when ckrun
 * renames its directory), so the process needs no right to the directory. */
CK_HIDDEN long ck_image_adopt(struct ck_writer *w, int fd, const char *path)
{
	w->fd = fd;
	w->in_place = 1;
	/* as ck_image_open's: "being written" for ckrun's cleanup (the lock
	 * belongs to the open file description ckrun created and passed) */
	CK_SYS2(SYS_flock, fd, LOCK_EX | LOCK_NB);
	w->data_end = HEADER_SIZE;
	w->writeback_from = HEADER_SIZE;
	long r = ck_ftruncate(fd, 0);
	if (r == 0)
		r = ck_lseek(fd, HEADER_SIZE, SEEK_SET);
	if (r < 0) {
		ck_writer_fail(w, r, "cannot write the image file ckrun created");
		struct ck_str d;
		ck_str_init(&d, w->err_detail, sizeof w->err_detail);
		ck_str_add(&d, path);
		ck_str_add(&d, ": ");
		ck_str_errno(&d, r);
	}
	return r < 0 ? r : 0;
}

static int is_volatile(const struct ck_writer *w, uint64_t page)
{
	for (int i = 0; i < w->nvolatile; i++)
		if (page >= w->volatile_lo[i] && page < w->volatile_hi[i])
			return 1;
	return 0;
}

/* Memory goes to the image in writes of this size (see ck_image_put_memory). */
#define CK_WRITE_CHUNK ((uint64_t)8 << 20)

static void write_out(struct ck_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	long r = ck_write_all(w->fd, p, n);
	if (r < 0)
		ck_writer_fail(w, r, "writing the image failed");
}

/* The disk starts on what was written, 8 MiB at a time, while the next
 * chunks are checksummed and copied, instead of all of it waiting for the
 * final fsync (a hint: the fsync still decides). upto: the data written so
 * far ends there. */
static void start_writeback(struct ck_writer *w, uint64_t upto)
{
	if (w->err || upto < w->writeback_from + CK_WRITE_CHUNK)
		return;
	CK_SYS4(SYS_sync_file_range, w->fd, w->writeback_from, upto - w->writeback_from, SYNC_FILE_RANGE_WRITE);
	w->writeback_from = upto;
}

/* Copies through the bounce buffer: for memory that may change while it
 * is written, and for memory the program cannot read itself (PROT_NONE),
 * which /proc/self/mem can. Memory that changes is read through
 * /proc/self/mem too when it could be opened (memfd >= 0 without via_mem):
 * a page nobody can read (a guard page, a file page beyond the end of its
 * file) then fails the checkpoint instead of killing the writer. */
static void put_through_bounce(struct ck_writer *w, uint64_t addr, size_t len, int via_mem, int memfd, uint32_t *crc)
{
	while (len && !w->err) {
		size_t chunk = len < w->bounce_len ? len : w->bounce_len;
		if (via_mem) {
			long r = ck_pread_all(memfd, w->bounce, chunk, addr);
			if (r < 0) {
				ck_writer_fail(w, r, "cannot read the program's memory through /proc/self/mem");
				return;
			}
		} else if (memfd >= 0) {
			/* the kernel copies: a page that cannot be read fails
			 * (EIO) instead of killing the writer */
			long r = ck_pread_all(memfd, w->bounce, chunk, addr);
			if (r < 0) {
				ck_writer_fail(w, -EFAULT, "cannot read the program's memory");
				return;
			}
		} else {
			ck_memcpy(w->bounce, (const void *)addr, chunk);
		}
		*crc = ck_crc32c(*crc, w->bounce, chunk);
		write_out(w, w->bounce, chunk);
		addr += chunk;
		len -= chunk;
	}
}

CK_HIDDEN uint64_t ck_image_put_memory(struct ck_writer *w, uint64_t addr, size_t len, int readable, uint32_t *crc)
{
	uint64_t off = w->data_end;
	int memfd = -1;
	if (!readable) {
		memfd = (int)ck_open_own_proc("/proc/self/mem");
		if (memfd < 0) {
			ck_writer_fail(w, memfd, "cannot open /proc/self/mem");
			return 0;
		}
		put_through_bounce(w, addr, len, 1, memfd, crc);
		ck_close(memfd);
	} else {
		uint64_t end = addr + len, pos = off;
		while (addr < end && !w->err) {
			int vol = is_volatile(w, addr);
			uint64_t stop = addr + CK_PAGE;
			while (stop < end && is_volatile(w, stop) == vol)
				stop += CK_PAGE;
			if (vol) {
				int mem = (int)ck_open_own_proc("/proc/self/mem");
				put_through_bounce(w, addr, stop - addr, 0, mem, crc);
				if (mem >= 0)
					ck_close(mem);
			} else {
				/* The write and the checksum of one chunk at a time: the
				 * checksum reads what the write just brought into the
				 * cache, and the page cache is filled in steps the
				 * kernel handles as fast as a plain sequential write.
				 * The write first: a page that cannot be read (a guard
				 * page, a file page beyond the end of its file) makes
				 * the kernel's copy fail with EFAULT, where the
				 * checksum's own read would kill the writer. */
				for (uint64_t a = addr; a < stop && !w->err; a += CK_WRITE_CHUNK) {
					size_t n = stop - a < CK_WRITE_CHUNK ? (size_t)(stop - a) : CK_WRITE_CHUNK;
					long r = ck_write_all(w->fd, (const void *)a, n);
					if (r == -EFAULT) {
						ck_writer_fail(w, r, "cannot read the program's memory");
						break;
					}
					if (r < 0) {
						ck_writer_fail(w, r, "writing the image failed");
						break;
					}
					*crc = ck_crc32c(*crc, (const void *)a, n);
					start_writeback(w, pos + (a - addr) + n);
				}
			}
			pos += stop - addr;
			addr = stop;
		}
	}
	w->data_end += len;
	w->pages += len / CK_PAGE;
	return off;
}

/* Bytes that are not page-sized memory (pipe contents): padded to a page. */
CK_HIDDEN uint64_t ck_image_put_bytes(struct ck_writer *w, const void *buf, size_t len, uint32_t *crc)
{
	uint64_t at = w->data_end;
	*crc = ck_crc32c(*crc, buf, len);
	write_out(w, buf, len);
	w->data_end = at + CK_PAGE_UP(len);
	if (!w->err)
		ck_lseek(w->fd, (int64_t)w->data_end, SEEK_SET);
	return at;
}

/* Bytes as a chunk, and the metadata's key "data": [offset, length, crc32c]. */
CK_HIDDEN void ck_image_put_data(struct ck_writer *w, const void *buf, size_t len)
{
	uint32_t crc = 0;
	uint64_t off = ck_image_put_bytes(w, buf, len, &crc);
	cb_text(&w->meta, "data");
	cb_array(&w->meta, 3);
	cb_uint(&w->meta, off);
	cb_uint(&w->meta, len);
	cb_uint(&w->meta, crc);
}

CK_HIDDEN uint64_t ck_image_put_fd(struct ck_writer *w, int fd, uint64_t off, uint64_t len, uint32_t *crc)
{
	uint64_t at = w->data_end;
	uint64_t padded = CK_PAGE_UP(len);
	while (len && !w->err) {
		size_t chunk = len < w->bounce_len ? (size_t)len : w->bounce_len;
		long r = ck_pread_all(fd, w->bounce, chunk, off);
		if (r < 0) {
			ck_writer_fail(w, r, "cannot read a deleted file's contents");
			return 0;
		}
		*crc = ck_crc32c(*crc, w->bounce, chunk);
		write_out(w, w->bounce, chunk);
		off += chunk;
		len -= chunk;
	}
	/* keep every chunk page-aligned in the file (the gap stays a hole) */
	w->data_end = at + padded;
	if (!w->err)
		ck_lseek(w->fd, (int64_t)w->data_end, SEEK_SET);
	return at;
}

static void encode_header(struct cb_enc *e, const struct ck_writer *w, uint64_t meta_off, uint64_t meta_len,
			  uint32_t meta_crc)
{
	cb_map(e, 8);
	cb_kv_text(e, "magic", "ckrun-image");
	cb_kv_uint(e, "version", CK_IMAGE_VERSION);
	cb_kv_uint(e, "data_offset", HEADER_SIZE);
	cb_kv_uint(e, "data_length", w->data_end - HEADER_SIZE);
	cb_kv_uint(e, "meta_offset", meta_off);
	cb_kv_uint(e, "meta_length", meta_len);
	cb_kv_uint(e, "meta_crc", meta_crc);
	cb_kv_uint(e, "file_length", meta_off + meta_len);
}

CK_HIDDEN long ck_image_finish(struct ck_writer *w, const char *tmp_path, const char *path)
{
	uint64_t meta_off = w->data_end;
	if (!w->err) {
		long r = ck_lseek(w->fd, (int64_t)meta_off, SEEK_SET);
		if (r < 0)
			ck_writer_fail(w, r, "cannot seek in the image file");
	}
	write_out(w, w->meta.buf, w->meta.len);
	if (!w->err) {
		uint8_t hbuf[512], block[600];
		struct cb_enc h, b;
		cb_init(&h, hbuf, sizeof hbuf);
		encode_header(&h, w, meta_off, w->meta.len, ck_crc32c(0, w->meta.buf, w->meta.len));
		cb_init(&b, block, sizeof block);
		cb_array(&b, 2);
		cb_bytes(&b, h.buf, h.len);
		cb_uint(&b, ck_crc32c(0, h.buf, h.len));
		long r = ck_pwrite(w->fd, b.buf, b.len, 0);
		if (r != (long)b.len)
			ck_writer_fail(w, r < 0 ? r : -EIO, "writing the image header failed");
	}
	if (!w->err) {
		long r = ck_fsync(w->fd);
		if (r < 0)
			ck_writer_fail(w, r, "flushing the image to disk (fsync) failed");
	}
	if (!w->err && !w->in_place) {
		long r = ck_renameat(AT_FDCWD, tmp_path, AT_FDCWD, path);
		if (r < 0)
			ck_writer_fail(w, r, "renaming the finished image failed");
	}
	/* only now: the lock says "being written" until the image is complete */
	if (w->fd >= 0)
		ck_close(w->fd);
	w->fd = -1;
	if (w->err) {
		if (!w->in_place) /* in place: ckrun removes the unfinished generation */
			ck_unlinkat(AT_FDCWD, tmp_path, 0);
		return w->err;
	}
	return 0;
}

/* ---- restore host: header and metadata ---- */

/* What the header block says (docs/image-format.md, "Header map"). */
struct header_fields {
	uint64_t version, data_offset, data_length, meta_offset, meta_length, meta_crc, file_length;
	unsigned seen; /* bit per field above */
	int magic;
};

enum { H_VERSION, H_DATA_OFFSET, H_DATA_LENGTH, H_META_OFFSET, H_META_LENGTH, H_META_CRC, H_FILE_LENGTH, H_COUNT };
static const char *const header_keys[H_COUNT] = {"version", "data_offset", "data_length", "meta_offset",
						  "meta_length", "meta_crc", "file_length"};

/* Why a header block is refused; 0 when it is not. */
enum header_problem { HP_OK, HP_EMPTY, HP_NOT_CBOR, HP_PADDING, HP_CRC, HP_NOT_IMAGE, HP_FIELDS };

/* The [h'<header map>', crc] pair at the start of block, then zeros up
 * to its end: the whole block is covered (a flipped bit in the padding is
 * damage too). */
static enum header_problem parse_block(const uint8_t *block, size_t n, struct header_fields *h, uint32_t *crc_out,
				       const uint8_t **hb_out, size_t *hl_out)
{
	struct cb_dec d, m;
	int64_t count;
	const uint8_t *hb;
	size_t hl;
	uint64_t crc;
	size_t i;
	for (i = 0; i < n && !block[i]; i++)
		;
	if (i == n)
		return HP_EMPTY;
	cbd_init(&d, block, n);
	if (!cbd_array(&d, &count) || count != 2 || !cbd_bytes(&d, &hb, &hl) || !cbd_uint(&d, &crc) || crc > UINT32_MAX)
		return HP_NOT_CBOR;
	for (const uint8_t *p = d.p; p < block + n; p++)
		if (*p)
			return HP_PADDING;
	if (ck_crc32c(0, hb, hl) != (uint32_t)crc)
		return HP_CRC;
	*crc_out = (uint32_t)crc;
	*hb_out = hb;
	*hl_out = hl;
	if (!cbd_well_formed(hb, hl))
		return HP_NOT_IMAGE;
	cbd_init(&m, hb, hl);
	const char *k;
	size_t kl;
	if (!cbd_map(&m, &count))
		return HP_NOT_IMAGE;
	while (cbd_next_key(&m, &count, &k, &kl)) {
		if (cbd_key_is(k, kl, "magic")) {
			const char *s;
			size_t sl;
			if (cbd_peek(&m) != CB_TEXT || !cbd_text(&m, &s, &sl))
				return HP_NOT_IMAGE;
			h->magic = sl == 11 && !memcmp(s, "ckrun-image", 11);
			continue;
		}
		int f = 0;
		while (f < H_COUNT && !cbd_key_is(k, kl, header_keys[f]))
			f++;
		if (f == H_COUNT) {
			if (!cbd_skip(&m))
				return HP_NOT_IMAGE;
			continue;
		}
		uint64_t *field = f == H_VERSION       ? &h->version
				  : f == H_DATA_OFFSET ? &h->data_offset
				  : f == H_DATA_LENGTH ? &h->data_length
				  : f == H_META_OFFSET ? &h->meta_offset
				  : f == H_META_LENGTH ? &h->meta_length
				  : f == H_META_CRC    ? &h->meta_crc
						       : &h->file_length;
		/* a field that is not an unsigned integer is left unseen: "invalid" */
		if (cbd_peek(&m) == CB_UINT) {
			if (!cbd_uint(&m, field))
				return HP_NOT_IMAGE;
			h->seen |= 1u << f;
		} else if (!cbd_skip(&m)) {
			return HP_NOT_IMAGE;
		}
	}
	if (m.error || !h->magic)
		return HP_NOT_IMAGE;
	return HP_OK;
}

/* The first header field that is missing or impossible, or 0. */
static const char *bad_field(const struct header_fields *h)
{
	for (int f = H_DATA_OFFSET; f < H_COUNT; f++)
		if (!(h->seen & (1u << f)))
			return header_keys[f];
	if (h->meta_crc > UINT32_MAX)
		return "meta_crc";
	return 0;
}

/* The layout is fixed (the writer puts the metadata right after the data
 * and ends the file there): everything is checked, overflow-safe, against
 * the file's real size before anything is read. */
static int layout_ok(const struct header_fields *h)
{
	return h->data_offset == CK_IMAGE_HEADER_SIZE && h->data_length % CK_PAGE == 0 &&
	       h->data_length <= UINT64_MAX - CK_IMAGE_HEADER_SIZE &&
	       h->meta_offset == CK_IMAGE_HEADER_SIZE + h->data_length && h->meta_length <= CK_IMAGE_META_MAX &&
	       h->meta_length <= UINT64_MAX - h->meta_offset && h->file_length == h->meta_offset + h->meta_length;
}

static const char *size_text(uint64_t n, char *buf, size_t cap)
{
	if (n >= (10ULL << 20))
		snprintf(buf, cap, "%llu MiB", (unsigned long long)(n >> 20));
	else if (n >= (10ULL << 10))
		snprintf(buf, cap, "%llu KiB", (unsigned long long)(n >> 10));
	else
		snprintf(buf, cap, "%llu bytes", (unsigned long long)n);
	return buf;
}

/* The metadata's shim_abi, or CK_SHIM_ABI when it has none (the schema
 * then names it missing). */
static uint64_t meta_shim_abi(const uint8_t *meta, size_t len)
{
	struct cb_dec d;
	int64_t n;
	const char *k;
	size_t kl;
	uint64_t v;
	cbd_init(&d, meta, len);
	if (!cbd_map(&d, &n))
		return CK_SHIM_ABI;
	while (cbd_next_key(&d, &n, &k, &kl)) {
		if (cbd_key_is(k, kl, "shim_abi") && cbd_peek(&d) == CB_UINT && cbd_uint(&d, &v))
			return v;
		if (!cbd_skip(&d))
			break;
	}
	return CK_SHIM_ABI;
}

/* Checks the header block of an open image against the file and reads
 * the metadata (checked against its CRC and the strict CBOR rules); the
 * same checks, in the same order, as src/image.ts's loadImage. */
CK_HIDDEN void ck_image_load(struct ck_image *img, const char *path)
{
	uint8_t block[HEADER_SIZE];
	struct stat st;
	struct header_fields h;
	uint32_t hcrc = 0;
	char a[32], b[32];
	const uint8_t *hb = 0;
	size_t hl = 0;
	char why[512];

	memset(&h, 0, sizeof h);
	img->path = path;
	img->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (img->fd < 0)
		ck_refuse("cannot open image %s: %s", path, strerror(errno));
	if (fstat(img->fd, &st) != 0 || !S_ISREG(st.st_mode))
		ck_refuse("%s is not an image file", path);
	uint64_t size = (uint64_t)st.st_size;
	if (size == 0)
		ck_refuse("image %s is empty (truncated to 0 bytes)", path);
	if (size < HEADER_SIZE || ck_pread_all(img->fd, block, sizeof block, 0) < 0)
		ck_refuse("image %s is truncated (expected at least 4096 bytes, found %s)", path, size_text(size, a, sizeof a));
	switch (parse_block(block, sizeof block, &h, &hcrc, &hb, &hl)) {
	case HP_OK:
		break;
	case HP_EMPTY:
		ck_refuse("image %s is incomplete: its header block is empty (the image was never finished)", path);
	case HP_NOT_CBOR:
		ck_refuse("image %s is corrupted or not a ckrun image (its first block is not a [header, crc] pair)", path);
	case HP_PADDING:
		ck_refuse("image %s is corrupted: stray bytes in the padding of its header block", path);
	case HP_CRC:
		ck_refuse("image %s is corrupted: the header checksum does not match", path);
	default:
		ck_refuse("image %s is not a ckrun image (its header has no 'ckrun-image' magic)", path);
	}
	if (!(h.seen & (1u << H_VERSION)) || h.version != CK_IMAGE_VERSION) {
		if (h.seen & (1u << H_VERSION))
			ck_refuse("image %s has format version %llu; this ckrun reads version %d (restart it with the ckrun that wrote it)",
				  path, (unsigned long long)h.version, CK_IMAGE_VERSION);
		ck_refuse("image %s has no format version; this ckrun reads version %d", path, CK_IMAGE_VERSION);
	}
	const char *field = bad_field(&h);
	if (field)
		ck_refuse("image %s is corrupted: header field '%s' is missing or invalid", path, field);
	if (!ck_schema_check(hb, hl, CK_SCHEMA_HEADER, why, sizeof why))
		ck_refuse("image %s: its header does not keep to the image schema: %s", path, why);
	if (size < h.file_length)
		ck_refuse("image %s is truncated (expected %s, found %s)", path, size_text(h.file_length, a, sizeof a),
			  size_text(size, b, sizeof b));
	if (size > h.file_length)
		ck_refuse("image %s is corrupted: it is %s long but its header says %s", path, size_text(size, a, sizeof a),
			  size_text(h.file_length, b, sizeof b));
	if (!layout_ok(&h))
		ck_refuse("image %s is corrupted: its header describes an impossible layout", path);
	img->file_len = h.file_length;
	img->data_offset = h.data_offset;
	img->data_length = h.data_length;
	img->header_crc = hcrc;
	img->meta_len = h.meta_length;
	img->meta = malloc(h.meta_length ? h.meta_length : 1);
	if (!img->meta)
		ck_refuse("image %s: no memory for its metadata (%s)", path, size_text(h.meta_length, a, sizeof a));
	if (ck_pread_all(img->fd, img->meta, h.meta_length, h.meta_offset) < 0)
		ck_refuse("image %s is truncated: cannot read its metadata", path);
	if (ck_crc32c(0, img->meta, h.meta_length) != (uint32_t)h.meta_crc)
		ck_refuse("image %s is corrupted: the metadata checksum does not match", path);
	if (!cbd_well_formed(img->meta, h.meta_length))
		ck_refuse("image %s is corrupted: its metadata is not well-formed CBOR", path);
	/* an image of another shim ABI is refused as such by its parse */
	if (meta_shim_abi(img->meta, img->meta_len) == CK_SHIM_ABI &&
	    !ck_schema_check(img->meta, img->meta_len, CK_SCHEMA_META, why, sizeof why))
		ck_refuse("image %s: its metadata does not keep to the image schema: %s", path, why);
}

/* ---- the chunks of the data area the metadata names ----
 *
 * Found as src/image.ts's dataChunks finds them, by key wherever they are:
 * `data`, `queue`, `recv_queue`, `unsent_queue`, `send_queue` ([offset, length, crc]),
 * `datagrams` ([[address, port, offset, length, crc], ...]) and the `runs`
 * of the regions under `memory` ([address, pages, offset, crc], or
 * [address, pages, offset, -1, i] for pages held by images[i]). A value
 * of another shape under one of these keys is damage. */

struct chunk_walk {
	ck_chunk_fn fn;
	void *ctx;
	int bad;
};

/* An array (definite or not) of exactly n unsigned integers. */
static int uint_tuple(struct cb_dec *d, uint64_t *v, int n)
{
	int64_t m;
	int i = 0;
	if (!cbd_array(d, &m))
		return 0;
	while (cbd_next_item(d, &m)) {
		if (i == n || !cbd_uint(d, &v[i++]))
			return 0;
	}
	return i == n && !d->error;
}

static void emit(struct chunk_walk *w, uint64_t off, uint64_t len, uint64_t crc, int ref)
{
	if (w->bad)
		return;
	if (ref < 0 && crc > UINT32_MAX)
		w->bad = 1;
	else if (!w->fn(w->ctx, off, len, (uint32_t)crc, ref))
		w->bad = 1;
}

static void walk_triple(struct cb_dec *d, struct chunk_walk *w)
{
	uint64_t v[3];
	if (!uint_tuple(d, v, 3))
		w->bad = 1;
	else
		emit(w, v[0], v[1], v[2], -1);
}

static void walk_datagrams(struct cb_dec *d, struct chunk_walk *w)
{
	int64_t n, m;
	if (!cbd_array(d, &n)) {
		w->bad = 1;
		return;
	}
	while (!w->bad && cbd_next_item(d, &n)) {
		const uint8_t *a;
		size_t al;
		uint64_t v[4];
		int i = 0;
		if (!cbd_array(d, &m) || !cbd_next_item(d, &m) || !cbd_bytes(d, &a, &al) || (al != 4 && al != 16)) {
			w->bad = 1;
			return;
		}
		while (cbd_next_item(d, &m))
			if (i == 4 || !cbd_uint(d, &v[i++])) {
				w->bad = 1;
				return;
			}
		if (i != 4 || v[0] > 65535) {
			w->bad = 1;
			return;
		}
		emit(w, v[1], v[2], v[3], -1);
	}
}

static void walk_runs(struct cb_dec *d, struct chunk_walk *w)
{
	int64_t n, m;
	if (!cbd_array(d, &n)) {
		w->bad = 1;
		return;
	}
	while (!w->bad && cbd_next_item(d, &n)) {
		uint64_t addr, pages, off, ref = 0;
		int64_t crc;
		if (!cbd_array(d, &m) || !cbd_next_item(d, &m) || !cbd_uint(d, &addr) || !cbd_next_item(d, &m) ||
		    !cbd_uint(d, &pages) || !cbd_next_item(d, &m) || !cbd_uint(d, &off) || !cbd_next_item(d, &m) ||
		    !cbd_int(d, &crc)) {
			w->bad = 1;
			return;
		}
		int five = cbd_next_item(d, &m);
		if (five && !cbd_uint_max(d, CK_MAX_IMAGES, &ref)) {
			w->bad = 1;
			return;
		}
		/* exactly four items, or five with the "held elsewhere" marker */
		if ((five && (cbd_next_item(d, &m) || crc != -1)) || (!five && crc < 0) || pages > UINT64_MAX / CK_PAGE ||
		    d->error) {
			w->bad = 1;
			return;
		}
		(void)addr;
		emit(w, off, pages * CK_PAGE, five ? 0 : (uint64_t)crc, five ? (int)ref : -1);
	}
}

static void walk_value(struct cb_dec *d, struct chunk_walk *w, int in_memory)
{
	int64_t n;
	const char *k;
	size_t kl;
	switch (cbd_peek(d)) {
	case CB_ARRAY:
		if (!cbd_array(d, &n)) {
			w->bad = 1;
			return;
		}
		while (!w->bad && cbd_next_item(d, &n))
			walk_value(d, w, in_memory);
		return;
	case CB_MAP:
		if (!cbd_map(d, &n)) {
			w->bad = 1;
			return;
		}
		while (!w->bad && cbd_next_key(d, &n, &k, &kl)) {
			if (cbd_key_is(k, kl, "data") || cbd_key_is(k, kl, "queue") || cbd_key_is(k, kl, "recv_queue") ||
			    cbd_key_is(k, kl, "unsent_queue") || cbd_key_is(k, kl, "send_queue"))
				walk_triple(d, w);
			else if (cbd_key_is(k, kl, "datagrams"))
				walk_datagrams(d, w);
			else if (in_memory && cbd_key_is(k, kl, "runs"))
				walk_runs(d, w);
			else
				walk_value(d, w, in_memory || cbd_key_is(k, kl, "memory"));
		}
		return;
	default:
		if (!cbd_skip(d))
			w->bad = 1;
	}
}

CK_HIDDEN int ck_meta_chunks(const uint8_t *meta, size_t len, ck_chunk_fn fn, void *ctx)
{
	struct cb_dec d;
	struct chunk_walk w = {fn, ctx, 0};
	cbd_init(&d, meta, len);
	walk_value(&d, &w, 0);
	return !w.bad && !d.error;
}

/* Whether [off, off+len) is a chunk of the image's data area: it starts on
 * a page, inside the area, and ends inside it (overflow-safe). */
CK_HIDDEN int ck_chunk_inside(const struct ck_image *img, uint64_t off, uint64_t len)
{
	return off >= img->data_offset && off % CK_PAGE == 0 && len <= img->data_length &&
	       off - img->data_offset <= img->data_length - len;
}

CK_HIDDEN uint64_t ck_meta_track_id(const uint8_t *meta, size_t len, int *found)
{
	struct cb_dec d;
	int64_t n;
	const char *k;
	size_t kl;
	uint64_t v = 0;
	*found = 0;
	cbd_init(&d, meta, len);
	if (!cbd_map(&d, &n))
		return 0;
	while (cbd_next_key(&d, &n, &k, &kl)) {
		if (cbd_key_is(k, kl, "track_id") && cbd_peek(&d) == CB_UINT && cbd_uint(&d, &v)) {
			*found = 1;
			return v;
		}
		if (!cbd_skip(&d))
			break;
	}
	return 0;
}
