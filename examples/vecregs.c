/*
 * vecregs: values held in the vector registers across a system call
 * wrapper stay there, as they do with libc's own wrappers (which touch
 * only general registers). Code written by hand, or by a compiler for a
 * function that knows what the callee clobbers, relies on it.
 *
 * Each step loads a pattern into every vector register (ymm0..15 with AVX,
 * else xmm0..15), makes one call through a wrapper (syscall(SYS_futex)
 * waiting with a timeout, poll, nanosleep, clock_nanosleep), reads the
 * registers back and compares. Every tenth step a fresh copy of itself
 * (--once) does the same as the very first calls of a process. A
 * difference prints "FAIL ..." and exits 1.
 *
 *   vecregs [--steps N]     prints "step K" per step, then "done"
 */
#pragma GCC target("general-regs-only") /* no vector code of our own between load and check */
#include "common.h"
#include <linux/futex.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { NCALLS = 4 };
static const char *call_names[NCALLS] = { "syscall(SYS_futex)", "poll", "nanosleep", "clock_nanosleep" };

static unsigned char want[16 * 32] __attribute__((aligned(32)));
static unsigned char got[16 * 32] __attribute__((aligned(32)));
static int have_avx;
static uint32_t never_changes;

static int cpu_has_avx(void)
{
	unsigned a = 1, b, c = 0, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	if (!(c & (1u << 27)) || !(c & (1u << 28))) /* OSXSAVE, AVX */
		return 0;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 6) == 6; /* the OS saves xmm and ymm state */
}

#define LOAD_Y(n) "vmovdqa " #n "*32(%0), %%ymm" #n "\n\t"
#define STORE_Y(n) "vmovdqa %%ymm" #n ", " #n "*32(%0)\n\t"
#define LOAD_X(n) "movdqa " #n "*32(%0), %%xmm" #n "\n\t"
#define STORE_X(n) "movdqa %%xmm" #n ", " #n "*32(%0)\n\t"
#define ALL16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

static inline __attribute__((always_inline)) void load_regs(void)
{
	if (have_avx)
		__asm__ volatile(ALL16(LOAD_Y) : : "r"(want) : "memory");
	else
		__asm__ volatile(ALL16(LOAD_X) : : "r"(want) : "memory");
}

static inline __attribute__((always_inline)) void store_regs(void)
{
	if (have_avx)
		__asm__ volatile(ALL16(STORE_Y) : : "r"(got) : "memory");
	else
		__asm__ volatile(ALL16(STORE_X) : : "r"(got) : "memory");
}

/* One call of kind k, with the pattern of (seed, k) in the registers. */
static int check_call(uint64_t seed, int k)
{
	uint64_t *w = (uint64_t *)want;
	for (size_t i = 0; i < sizeof(want) / 8; i++)
		w[i] = splitmix64(seed * 131 + (uint64_t)k * 17 + i);
	memset(got, 0, sizeof(got));
	struct timespec ts = { 0, 15 * 1000000L };
	struct pollfd none;
	switch (k) {
	case 0:
		load_regs();
		syscall(SYS_futex, &never_changes, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
		break;
	case 1:
		load_regs();
		poll(&none, 0, 15);
		break;
	case 2:
		load_regs();
		nanosleep(&ts, NULL);
		break;
	default:
		load_regs();
		clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
		break;
	}
	store_regs();
	size_t len = have_avx ? 32 : 16;
	for (int r = 0; r < 16; r++)
		if (memcmp(want + r * 32, got + r * 32, len)) {
			say("FAIL %s changed %cmm%d", call_names[k], have_avx ? 'y' : 'x', r);
			return -1;
		}
	return 0;
}

static int once(uint64_t seed)
{
	for (int k = 0; k < NCALLS; k++)
		if (check_call(seed, k))
			return 1;
	return 0;
}

/* A fresh process makes its first call of each wrapper with the registers loaded. */
static int fresh_copy(uint64_t seed)
{
	char arg[32];
	snprintf(arg, sizeof(arg), "%" PRIu64, seed);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", "vecregs", "--once", arg, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
	long steps = 200;
	have_avx = cpu_has_avx();
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--steps"))
			steps = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--once"))
			return once(strtoull(argv[i + 1], NULL, 10));
	}
	say("registers %s", have_avx ? "ymm0-15" : "xmm0-15");
	for (long s = 1; s <= steps; s++) {
		if (once((uint64_t)s))
			return 1;
		if (s % 10 == 0) {
			int st = fresh_copy((uint64_t)s);
			if (st) {
				say("FAIL a fresh copy of the program at step %ld ended with status %d", s, st);
				return 1;
			}
		}
		say("step %ld", s);
	}
	say("done");
	return 0;
}
