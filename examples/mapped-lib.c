/*
 * mapped-lib: the shared library of examples/mapped.c (libmapped.so, in the
 * directory of the executable, found through its run path $ORIGIN), so a
 * test can replace a library the program maps without touching the system.
 */
#include "common.h"

uint64_t mapped_fold(uint64_t h, const unsigned char *p, size_t n);

uint64_t mapped_fold(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		h = mix64(h, v);
	}
	return h;
}
