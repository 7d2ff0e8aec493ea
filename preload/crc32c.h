/* CRC-32C (Castagnoli), as used for every checksum in a ckrun image.
 * ck_crc32c(0, buf, n) starts a fresh checksum; pass the previous result
 * to continue one. Safe in signal handlers (no libc, no locks). */
#ifndef CK_CRC32C_H
#define CK_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t ck_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
