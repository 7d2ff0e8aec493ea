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
 * which /proc/self/mem can. */
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
				put_through_bounce(w, addr, stop - addr, 0, -1, crc);
			} else {
				/* The checksum and the write of one chunk at a time: the
				 * write copies what the checksum just brought into the
				 * cache, and the page cache is filled in steps the
				 * kernel handles as fast as a plain sequential write. */
				for (uint64_t a = addr; a < stop && !w->err; a += CK_WRITE_CHUNK) {
					size_t n = stop - a < CK_WRITE_CHUNK ? (size_t)(stop - a) : CK_WRITE_CHUNK;
					*crc = ck_crc32c(*crc, (const void *)a, n);
					write_out(w, (const void *)a, n);
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

static int parse_header(const uint8_t *block, size_t n, struct ck_image *img, uint64_t *meta_off,
			uint64_t *meta_len, uint32_t *meta_crc, uint64_t *file_len, int *version, int *bad_crc)
{
	struct cb_dec d, h;
	int64_t m;
	const uint8_t *hb;
	size_t hl;
	uint64_t crc, v;
	cbd_init(&d, block, n);
	if (!cbd_array(&d, &m) || m != 2 || !cbd_bytes(&d, &hb, &hl) || !cbd_uint(&d, &crc))
		return 0;
	if (ck_crc32c(0, hb, hl) != (uint32_t)crc) {
		*bad_crc = 1;
		return 0;
	}
	cbd_init(&h, hb, hl);
	const char *k;
	size_t kl;
	int magic = 0;
	if (!cbd_map(&h, &m))
		return 0;
	while (cbd_next_key(&h, &m, &k, &kl)) {
		if (cbd_key_is(k, kl, "magic")) {
			const char *s;
			size_t sl;
			if (!cbd_text(&h, &s, &sl))
				return 0;
			magic = sl == 11 && !memcmp(s, "ckrun-image", 11);
			continue;
		}
		if (!cbd_uint(&h, &v))
			return 0;
		if (cbd_key_is(k, kl, "version")) *version = (int)v;
		else if (cbd_key_is(k, kl, "data_offset")) img->data_offset = v;
		else if (cbd_key_is(k, kl, "data_length")) img->data_length = v;
		else if (cbd_key_is(k, kl, "meta_offset")) *meta_off = v;
		else if (cbd_key_is(k, kl, "meta_length")) *meta_len = v;
		else if (cbd_key_is(k, kl, "meta_crc")) *meta_crc = (uint32_t)v;
		else if (cbd_key_is(k, kl, "file_length")) *file_len = v;
	}
	return magic && !h.error;
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

/* Opens the image, checks its framing and loads the metadata. */
CK_HIDDEN void ck_image_load(struct ck_image *img, const char *path)
{
	uint8_t block[HEADER_SIZE];
	struct stat st;
	uint64_t meta_off = 0, meta_len = 0, file_len = 0;
	uint32_t meta_crc = 0;
	int version = 0, bad_crc = 0;
	char a[32], b[32];

	img->path = path;
	img->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (img->fd < 0)
		ck_refuse("cannot open image %s: %s", path, strerror(errno));
	if (fstat(img->fd, &st) != 0 || !S_ISREG(st.st_mode))
		ck_refuse("%s is not an image file", path);
	ssize_t n = pread(img->fd, block, sizeof block, 0);
	if (n < (ssize_t)sizeof block)
		ck_refuse("image %s is truncated (found %s, not even a header)", path, size_text((uint64_t)st.st_size, a, sizeof a));
	if (!parse_header(block, sizeof block, img, &meta_off, &meta_len, &meta_crc, &file_len, &version, &bad_crc))
		ck_refuse(bad_crc ? "image %s is corrupted: its header fails its checksum"
				  : "%s is not a ckrun image (no valid header)", path);
	if (version != CK_IMAGE_VERSION)
		ck_refuse("image %s has format version %d, but this ckrun reads version %d; use the ckrun that wrote it",
			  path, version, CK_IMAGE_VERSION);
	if ((uint64_t)st.st_size < file_len)
		ck_refuse("image %s is truncated (expected %s, found %s)", path, size_text(file_len, a, sizeof a),
			  size_text((uint64_t)st.st_size, b, sizeof b));
	if (meta_off + meta_len != file_len || meta_len > (1ULL << 30))
		ck_refuse("image %s is corrupted: its header is inconsistent", path);
	img->file_len = file_len;
	img->meta = malloc(meta_len ? meta_len : 1);
	img->meta_len = meta_len;
	if (ck_pread_all(img->fd, img->meta, meta_len, meta_off) < 0)
		ck_refuse("image %s is truncated: cannot read its metadata", path);
	if (ck_crc32c(0, img->meta, meta_len) != meta_crc)
		ck_refuse("image %s is corrupted: its metadata fails its checksum", path);
}
