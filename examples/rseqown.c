/*
 * rseqown: a thread that gives up glibc's restartable-sequence (rseq)
 * registration and registers an area of its own through syscall(), as
 * librseq does; its child (fork) keeps that registration under another
 * thread ID. Both check at every step that their own area is still the
 * registered one (registering it again fails with EBUSY) and that the
 * kernel still writes into it (the CPU number it puts there on a signal's
 * delivery). A difference prints "FAIL ...".
 * With --raw the area is registered by a system call instruction of the
 * program's own, which no library sees: ckrun cannot know the area, and
 * the checkpoint must fail, naming the thread; the program runs on.
 *
 *   rseqown [--steps N] [--raw]   prints "step K" per step (the parent), then "done"
 */
#include "common.h"
#include <signal.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define RSEQ_SIG 0x53053053
#define NOT_WRITTEN 0xfffffff0u

extern const unsigned int __rseq_size __attribute__((weak));
extern const ptrdiff_t __rseq_offset __attribute__((weak));

static __thread volatile struct {
	uint32_t cpu_id_start, cpu_id;
	uint64_t rseq_cs;
	uint32_t flags;
} __attribute__((aligned(32))) own;

static long raw_rseq(volatile void *area, unsigned len, int flags, unsigned sig)
{
	long r;
	register long r10 __asm__("r10") = (long)sig;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "0"((long)SYS_rseq), "D"(area), "S"((long)len), "d"((long)flags), "r"(r10)
			 : "rcx", "r11", "memory");
	return r;
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* 0, or what is wrong */
static const char *own_area_lost(void)
{
	if (syscall(SYS_rseq, &own, 32, 0, RSEQ_SIG) == 0 || errno != EBUSY)
		return "the program's own rseq area is no longer registered";
	own.cpu_id = NOT_WRITTEN;
	raise(SIGUSR1); /* the kernel writes the CPU number as it delivers it */
	if (own.cpu_id == NOT_WRITTEN)
		return "the kernel no longer writes into the program's own rseq area";
	return 0;
}

int main(int argc, char **argv)
{
	long steps = 40;
	int raw = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atol(argv[++i]);
		else if (!strcmp(argv[i], "--raw"))
			raw = 1;
	}
	signal(SIGUSR1, on_usr1);
	if (&__rseq_size && __rseq_size) {
		char *glibc_area = (char *)__builtin_thread_pointer() + __rseq_offset;
		if (syscall(SYS_rseq, glibc_area, 32, 1 /* unregister */, RSEQ_SIG))
			die("unregistering glibc's rseq area");
	}
	if (raw ? raw_rseq(&own, 32, 0, RSEQ_SIG) : syscall(SYS_rseq, &own, 32, 0, RSEQ_SIG))
		die("registering an rseq area");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		for (long k = 1; k <= steps + 40; k++) {
			const char *lost = own_area_lost();
			if (lost) {
				say("FAIL in the child: %s", lost);
				_exit(1);
			}
			pace_ms(50);
		}
		_exit(0);
	}
	say("registered");
	for (long k = 1; k <= steps; k++) {
		const char *lost = own_area_lost();
		if (lost) {
			say("FAIL %s", lost);
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	int status;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		say("FAIL the child ended with status %#x", status);
		return 1;
	}
	say("done");
	return 0;
}
