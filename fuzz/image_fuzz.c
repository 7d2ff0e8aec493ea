/* libFuzzer target: the restore host's checks of an image file
 * (ck_image_read: the header block, the metadata, every offset, length and
 * range, the images it refers to), as a restart runs them before it
 * creates any process. A refusal is the expected outcome of almost every
 * input; a crash, a hang, an out-of-bounds access or undefined behaviour
 * is a bug.
 *
 * The first byte says how the rest becomes the image file:
 *   even: the rest is the file as it is (header block and checksums as the
 *         fuzzer made them);
 *   odd:  two bytes of data pages, then the metadata: a sound header block
 *         (checksums included) is built around them, so that the fuzzer
 *         reaches the checks behind the checksums. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbor.h"
#include "crc32c.h"
#include "restore.h"

#define IMAGE "image.ckpt"
#define MAX_PAGES 512

/* The header block for metadata of meta_len bytes after pages of data. */
static void write_header(int fd, uint64_t pages, const uint8_t *meta, size_t meta_len)
{
	uint8_t hbuf[512], block[4096];
	struct cb_enc h, b;
	uint64_t data_len = pages * 4096, meta_off = 4096 + data_len;
	cb_init(&h, hbuf, sizeof hbuf);
	cb_map(&h, 8);
	cb_kv_text(&h, "magic", "ckrun-image");
	cb_kv_uint(&h, "version", 1);
	cb_kv_uint(&h, "data_offset", 4096);
	cb_kv_uint(&h, "data_length", data_len);
	cb_kv_uint(&h, "meta_offset", meta_off);
	cb_kv_uint(&h, "meta_length", meta_len);
	cb_kv_uint(&h, "meta_crc", ck_crc32c(0, meta, meta_len));
	cb_kv_uint(&h, "file_length", meta_off + meta_len);
	memset(block, 0, sizeof block);
	cb_init(&b, block, sizeof block);
	cb_array(&b, 2);
	cb_bytes(&b, h.buf, h.len);
	cb_uint(&b, ck_crc32c(0, h.buf, h.len));
	if (pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block ||
	    ftruncate(fd, (off_t)meta_off) != 0 || pwrite(fd, meta, meta_len, (off_t)meta_off) != (ssize_t)meta_len)
		abort();
}

static void write_image(const uint8_t *data, size_t size)
{
	int fd = open(IMAGE, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	if (size && (data[0] & 1) && size >= 3) {
		uint64_t pages = ((uint64_t)data[1] << 8 | data[2]) % (MAX_PAGES + 1);
		write_header(fd, pages, data + 3, size - 3);
	} else if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) {
		abort();
	}
	close(fd);
}

static char workdir[] = "/tmp/ckrun-fuzz-image-XXXXXX";

static void remove_workdir(void)
{
	unlink(IMAGE);
	if (chdir("/") == 0)
		rmdir(workdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* the images an image refers to are looked up beside it: here, where there are none */
	if (!mkdtemp(workdir) || chdir(workdir) != 0)
		abort();
	atexit(remove_workdir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ck_image img;
	jmp_buf refused;
	int first_free = dup(0);
	close(first_free);
	write_image(data, size);
	memset(&img, 0, sizeof img);
	ck_refusal_escape = &refused;
	if (!setjmp(refused))
		ck_image_read(&img, IMAGE);
	ck_refusal_escape = 0;
	ck_refuse_context = 0;
	ck_image_release(&img);
	/* a refusal leaves descriptors open (the restore host exits instead) */
	for (int fd = first_free; fd < first_free + CK_MAX_IMAGES + 8; fd++)
		close(fd);
	return 0;
}
