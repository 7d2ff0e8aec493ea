/* libFuzzer target: the restore host's checks of a generation's manifest
 * (ck_manifest_parse: the strict CBOR subset, the version 2 frame and its
 * checksum, every field). A refusal is the expected outcome; a crash, a
 * hang, an out-of-bounds access or undefined behaviour is a bug.
 *
 * The first byte says how the rest becomes the manifest:
 *   even: as it is;
 *   odd:  framed as version 2 does it, [h'<rest>', crc32c], with the right
 *         checksum, so that the fuzzer reaches the checks behind it. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbor.h"
#include "crc32c.h"
#include "restore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ck_manifest m;
	jmp_buf refused;
	if (size == 0)
		return 0;
	const uint8_t *buf = data + 1;
	size_t len = size - 1;
	uint8_t *framed = 0;
	if (data[0] & 1) {
		struct cb_enc e;
		framed = malloc(len + 32);
		cb_init(&e, framed, len + 32);
		cb_array(&e, 2);
		cb_bytes(&e, buf, len);
		cb_uint(&e, ck_crc32c(0, buf, len));
		buf = framed;
		len = e.len;
	}
	ck_refusal_escape = &refused;
	if (!setjmp(refused))
		ck_manifest_parse(&m, buf, len, "fuzz/7");
	ck_refusal_escape = 0;
	ck_manifest_release(&m);
	free(framed);
	return 0;
}
