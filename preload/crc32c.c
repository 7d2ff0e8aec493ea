#include "crc32c.h"

#define CRC32C_POLY 0x82f63b78u

/* Three independent lanes hide the crc32 instruction's 3-cycle latency.
 * Each lane covers LANE bytes of a 3*LANE block; the lanes' registers are
 * joined by "shifting" a register over LANE (or 2*LANE) zero bytes, a
 * linear map applied through byte tables built once from the instruction
 * itself (so no magic constants). */
#define LANE 4096

static int hw = -1;
static uint32_t shift1[4][256], shift2[4][256]; /* over LANE and 2*LANE zero bytes */

static int cpu_has_sse42(void)
{
	unsigned a = 1, b, c, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
	return (c >> 20) & 1;
}

static uint32_t crc32c_soft(uint32_t crc, const unsigned char *p, size_t len)
{
	/* Bitwise: only for CPUs without SSE4.2, which this project does not
	 * otherwise meet; correct rather than fast. */
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (CRC32C_POLY & (0u - (crc & 1)));
	}
	return crc;
}

__attribute__((target("sse4.2"))) static uint32_t over_zeros(uint32_t reg, size_t n)
{
	uint64_t c = reg;
	for (size_t i = 0; i < n / 8; i++)
		c = __builtin_ia32_crc32di(c, 0);
	return (uint32_t)c;
}

/* The register update over zero bytes is linear: tabulate it per byte. */
static void build_shift(uint32_t t[4][256], size_t n)
{
	uint32_t basis[32];
	for (int bit = 0; bit < 32; bit++)
		basis[bit] = over_zeros(1u << bit, n);
	for (int k = 0; k < 4; k++)
		for (int b = 0; b < 256; b++) {
			uint32_t v = 0;
			for (int bit = 0; bit < 8; bit++)
				if (b & (1 << bit))
					v ^= basis[8 * k + bit];
			t[k][b] = v;
		}
}

static uint32_t apply(uint32_t t[4][256], uint32_t r)
{
	return t[0][r & 255] ^ t[1][(r >> 8) & 255] ^ t[2][(r >> 16) & 255] ^ t[3][r >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = crc;
	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 3 * LANE) {
		uint64_t a = c, b = 0, d = 0;
		for (size_t i = 0; i < LANE; i += 8) {
			uint64_t x, y, z;
			__builtin_memcpy(&x, p + i, 8);
			__builtin_memcpy(&y, p + LANE + i, 8);
			__builtin_memcpy(&z, p + 2 * LANE + i, 8);
			a = __builtin_ia32_crc32di(a, x);
			b = __builtin_ia32_crc32di(b, y);
			d = __builtin_ia32_crc32di(d, z);
		}
		c = apply(shift2, (uint32_t)a) ^ apply(shift1, (uint32_t)b) ^ (uint32_t)d;
		p += 3 * LANE;
		len -= 3 * LANE;
	}
	while (len >= 8) {
		uint64_t v;
		__builtin_memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}

uint32_t ck_crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (hw < 0) {
		/* first use: single-threaded in every caller (checkpoint leader or
		 * writer, restore host, addon) */
		if (cpu_has_sse42()) {
			build_shift(shift1, LANE);
			build_shift(shift2, 2 * LANE);
			hw = 1;
		} else {
			hw = 0;
		}
	}
	crc = ~crc;
	crc = hw ? crc32c_hw(crc, buf, len) : crc32c_soft(crc, buf, len);
	return ~crc;
}

/* The register's advance over n zero bytes is linear: Z(c) =
 * crc(c, zeros) ^ crc(0, zeros) (the pre- and post-inversions cancel), and
 * crc(A||B) = Z_len(B)(crc(A)) ^ crc(B). Z over 4 KiB is tabulated as a
 * 32x32 matrix over GF(2) (column i: the image of bit i) and squared for
 * 8 KiB, 16 KiB, ...; the rest (< 4 KiB) is run through the CRC itself. */
static const unsigned char zero_block[4096];

static uint32_t gf2_apply(const uint32_t m[32], uint32_t v)
{
	uint32_t r = 0;
	for (int i = 0; v; i++, v >>= 1)
		if (v & 1)
			r ^= m[i];
	return r;
}

uint32_t ck_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	uint64_t blocks = len_b / sizeof zero_block, rest = len_b % sizeof zero_block;
	uint32_t a = crc_a;
	if (blocks) {
		uint32_t m[32], sq[32];
		uint32_t z0 = ck_crc32c(0, zero_block, sizeof zero_block);
		for (int i = 0; i < 32; i++)
			m[i] = ck_crc32c(1u << i, zero_block, sizeof zero_block) ^ z0;
		for (;;) {
			if (blocks & 1)
				a = gf2_apply(m, a);
			blocks >>= 1;
			if (!blocks)
				break;
			for (int i = 0; i < 32; i++)
				sq[i] = gf2_apply(m, m[i]);
			for (int i = 0; i < 32; i++)
				m[i] = sq[i];
		}
	}
	if (rest)
		a = ck_crc32c(a, zero_block, (size_t)rest) ^ ck_crc32c(0, zero_block, (size_t)rest);
	return a ^ crc_b;
}
