/*
 * rseqown: a thread that gives up glibc's restartable-sequence (rseq)
 * registration and registers an area of its own, which the kernel shows
 * no one: ckrun cannot register it again, so its checkpoint must fail and
 * say so; the program runs on and checks at every step that its own area
 * is still the registered one (registering it again fails with EBUSY).
 *
 *   rseqown [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RSEQ_SIG 0x53053053

extern const unsigned int __rseq_size __attribute__((weak));
extern const ptrdiff_t __rseq_offset __attribute__((weak));

static __thread struct {
	uint32_t cpu_id_start, cpu_id;
	uint64_t rseq_cs;
	uint32_t flags;
} __attribute__((aligned(32))) own;

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	if (&__rseq_size && __rseq_size) {
		char *glibc_area = (char *)__builtin_thread_pointer() + __rseq_offset;
		if (syscall(SYS_rseq, glibc_area, 32, 1 /* unregister */, RSEQ_SIG))
			die("unregistering glibc's rseq area");
	}
	if (syscall(SYS_rseq, &own, 32, 0, RSEQ_SIG))
		die("registering an rseq area");
	say("registered");
	for (long k = 1; k <= steps; k++) {
		if (syscall(SYS_rseq, &own, 32, 0, RSEQ_SIG) == 0 || errno != EBUSY) {
			say("FAIL the program's own rseq area is no longer registered");
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
