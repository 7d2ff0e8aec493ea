/*
 * Helpers shared by the example programs (header only, each example is one
 * .c file built with: gcc -O2 -pthread -Wall -Wextra -Werror).
 *
 * The examples are deterministic: two runs print exactly the same lines.
 * They pace themselves with short sleeps, but they count steps, never wall
 * time, so a checkpoint (which interrupts sleeps) changes nothing they print.
 */
#ifndef CKRUN_EXAMPLE_COMMON_H
#define CKRUN_EXAMPLE_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sleep about ms milliseconds. A signal may end the sleep early with EINTR;
 * then sleep what is left, never more than was asked. */
static inline void pace_ms(long ms)
{
	struct timespec req = { ms / 1000, (ms % 1000) * 1000000L }, rem;
	for (int i = 0; i < 1000; i++) {
		int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
		if (r != EINTR)
			return;
		if (rem.tv_sec < 0 || rem.tv_nsec < 0 || rem.tv_sec > req.tv_sec ||
		    (rem.tv_sec == req.tv_sec && rem.tv_nsec >= req.tv_nsec))
			return;
		req = rem;
	}
}

static inline uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fold v into the running hash h. */
static inline uint64_t mix64(uint64_t h, uint64_t v)
{
	return splitmix64(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

/* FNV-style hash of n 64-bit words (fast enough for 64 MiB). */
static inline uint64_t hash_words(uint64_t h, const uint64_t *w, size_t n)
{
	h ^= 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL;
	return splitmix64(h);
}

/* FNV-1a of n bytes. */
static inline uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	h ^= 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* Print one line and flush it at once: the tests read the output while the
 * program runs, and a checkpoint must never find half a line in a buffer. */
__attribute__((format(printf, 1, 2))) static inline void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* An error number as its name ("0" for success), for lines the tests check. */
static inline const char *errname(int e)
{
	static char other[32];
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case EBUSY: return "EBUSY";
	case EINVAL: return "EINVAL";
	case EDEADLK: return "EDEADLK";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EOWNERDEAD: return "EOWNERDEAD";
	case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
	default:
		snprintf(other, sizeof other, "errno %d", e);
		return other;
	}
}

/* Prints "FAIL <what>" and exits 1: the program found its own state wrong. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void say_fail(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	say("FAIL %s", buf);
	exit(1);
}

static inline void die(const char *what)
{
	printf("error: %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(2);
}

/* The value of `--steps N` among the arguments, or dflt. */
static inline long steps_option(int argc, char **argv, long dflt)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--steps"))
			return atol(argv[i + 1]);
	return dflt;
}

#endif
