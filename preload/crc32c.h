/* CRC-32C (Castagnoli), as used for every checksum in a ckrun image.
 * ck_crc32c(0, buf, n) starts a fresh checksum; pass the previous result
 * to continue one. Safe in signal handlers (no libc, no locks). */
#ifndef CK_CRC32C_H
#define CK_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t ck_crc32c(uint32_t crc, const void *buf, size_t len);

/* The checksum of A followed by B from the checksums of A and of B
 * (len_b: B's length), so that parts can be checksummed in parallel. */
uint32_t ck_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif
