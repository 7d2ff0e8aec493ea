/* memloop: holds MIB mebibytes of random (incompressible) data and spins in a
 * tight loop that timestamps every iteration with CLOCK_MONOTONIC.
 *
 *   memloop MIB [text]
 *
 * With "text" the data is log-like text (repeated lines whose numbers
 * change), which compresses, instead of random bytes, which do not.
 *
 * stdout (one line each, buffered, flushed at least every 50 ms and at once
 * after a long gap):
 *   ready <pid> <bytes> <sum> <ns>      the data is filled, the loop starts; sum:
 *                                       of one 8-byte word per 4 KiB page; ns: a
 *                                       first write pass as SIGUSR2 does it
 *   gap <mono_start> <mono_end> <real_end>
 *                                       two consecutive iterations were more
 *                                       than GAP_NS apart (ns; mono = CLOCK_MONOTONIC,
 *                                       real = CLOCK_REALTIME at the end)
 *   restart <mono_end> <real_end> <gap> the first iteration after a restart
 *                                       (a gap > 50 ms and a different parent)
 *   dirtied <pages> <sum> <ns>          after SIGUSR1: one word changed in every 100th
 *                                       page (1% of the pages), the new sum
 *   wrote <ns> <pages>                  after SIGUSR2: one word rewritten (same value)
 *                                       in every page, and how long that took
 *   touched <ns> <pages> <sum>          one read per page over the whole data
 *                                       after a restart, how long it took, and
 *                                       the sum (equal to ready's if the data
 *                                       came back intact)
 *
 * The data is never written after it is filled, so the loop measures only
 * how long the program is kept from running. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GAP_NS 100000ull        /* report gaps longer than 100 µs */
#define FLUSH_NS 50000000ull    /* flush the report at least every 50 ms */
#define LONG_GAP_NS 50000000ull /* a gap this long: flush now, check for a restart */

static char obuf[1 << 16];
static size_t olen;

static void flush_out(void)
{
	size_t off = 0;
	while (off < olen) {
		ssize_t n = write(1, obuf + off, olen - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(3);
		}
		off += (size_t)n;
	}
	olen = 0;
}

static void out(const char *fmt, ...)
{
	if (olen > sizeof obuf - 256)
		flush_out();
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(obuf + olen, sizeof obuf - olen, fmt, ap);
	va_end(ap);
	if (n > 0)
		olen += (size_t)n;
}

static inline uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static volatile sig_atomic_t want_dirty, want_write;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		want_dirty = 1;
	else
		want_write = 1;
}

/* One word per page: the sum the restart check compares. */
static uint64_t page_sum(const volatile uint64_t *v, size_t bytes)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < bytes / 8; i += 512)
		sum += v[i];
	return sum;
}

/* Rewrites one word of every page with its own value: how long writing to
 * every page costs (after a checkpoint, each first write may fault). */
static uint64_t write_pass(volatile uint64_t *v, size_t bytes)
{
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	for (size_t i = 0; i < bytes / 8; i += 512)
		v[i] = v[i];
	return now_ns(CLOCK_MONOTONIC) - t0;
}

int main(int argc, char **argv)
{
	if (argc != 2 && !(argc == 3 && !strcmp(argv[2], "text"))) {
		fprintf(stderr, "usage: memloop MIB [text]\n");
		return 2;
	}
	size_t bytes = (size_t)strtoull(argv[1], 0, 10) << 20;
	uint64_t *data = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (data == MAP_FAILED) {
		perror("memloop: mmap");
		return 1;
	}
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	if (argc == 3) {
		char *p = (char *)data, *end = p + bytes;
		static const char *const level[] = {"INFO", "INFO", "INFO", "DEBUG", "WARN"};
		for (unsigned long n = 0; p < end; n++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			char line[160];
			int len = snprintf(line, sizeof line,
					   "2026-11-22T%02lu:%02lu:%02lu.%06lu %-5s worker-%02lu request %08lx GET /api/v1/items/%lu served in %lu us status=200\n",
					   n / 3600000 % 24, n / 60000 % 60, n / 1000 % 60, n % 1000 * 997 % 1000000,
					   level[x % 5], (unsigned long)(x >> 8) % 16, n, (unsigned long)(x >> 16) % 100000,
					   (unsigned long)(x >> 40) % 5000);
			size_t k = (size_t)len < (size_t)(end - p) ? (size_t)len : (size_t)(end - p);
			memcpy(p, line, k);
			p += k;
		}
	} else {
		for (size_t i = 0; i < bytes / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			data[i] = x;
		}
	}
	uint64_t first_pass = write_pass(data, bytes);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, 0);
	sigaction(SIGUSR2, &sa, 0);
	pid_t parent = getppid();
	out("ready %d %zu %llu %llu\n", (int)getpid(), bytes, (unsigned long long)page_sum(data, bytes),
	    (unsigned long long)first_pass);
	flush_out();

	uint64_t prev = now_ns(CLOCK_MONOTONIC), last_flush = prev;
	for (;;) {
		uint64_t t = now_ns(CLOCK_MONOTONIC);
		uint64_t gap = t - prev;
		if (__builtin_expect(gap > GAP_NS, 0)) {
			uint64_t real = now_ns(CLOCK_REALTIME);
			out("gap %llu %llu %llu\n", (unsigned long long)prev, (unsigned long long)t, (unsigned long long)real);
			if (gap > LONG_GAP_NS) {
				pid_t p = getppid();
				if (p != parent) {
					parent = p;
					out("restart %llu %llu %llu\n", (unsigned long long)t, (unsigned long long)real,
					    (unsigned long long)gap);
					flush_out();
					/* One read per page: what the first pass over the data costs now. */
					uint64_t t0 = now_ns(CLOCK_MONOTONIC), sum = 0;
					const volatile uint64_t *v = data;
					for (size_t i = 0; i < bytes / 8; i += 512)
						sum += v[i];
					uint64_t t1 = now_ns(CLOCK_MONOTONIC);
					out("touched %llu %zu %llu\n", (unsigned long long)(t1 - t0), bytes / 4096,
					    (unsigned long long)sum);
					t = now_ns(CLOCK_MONOTONIC);
				}
				flush_out();
				last_flush = t;
			}
		}
		if (__builtin_expect(want_dirty | want_write, 0)) {
			if (want_dirty) {
				want_dirty = 0;
				uint64_t t0 = now_ns(CLOCK_MONOTONIC);
				volatile uint64_t *v = data;
				size_t pages = 0;
				for (size_t i = 0; i < bytes / 8; i += 512 * 100, pages++)
					v[i] += 0x9e3779b97f4a7c15ull;
				uint64_t t1 = now_ns(CLOCK_MONOTONIC);
				out("dirtied %zu %llu %llu\n", pages, (unsigned long long)page_sum(data, bytes),
				    (unsigned long long)(t1 - t0));
			}
			if (want_write) {
				want_write = 0;
				out("wrote %llu %zu\n", (unsigned long long)write_pass(data, bytes), bytes / 4096);
			}
			flush_out();
			t = now_ns(CLOCK_MONOTONIC);
			last_flush = t;
		}
		if (__builtin_expect(t - last_flush > FLUSH_NS, 0)) {
			if (olen)
				flush_out();
			last_flush = t;
		}
		prev = t;
	}
}
