/*
 * getpidless: a process whose own seccomp filter answers getpid() with an
 * errno (CRIU's zdtm seccomp tests filter getpid so), and a child forked
 * after it, which inherits the filter and has to join a checkpoint without
 * getpid() too.
 *
 *   getpidless [--steps S] [--strict-kid] [--prctl-thread]
 *
 * Each step the parent checks that getpid() still fails with errno 1234
 * (the filter is there) and that its child, which checks the same of
 * itself, answers through a pipe. Prints "step S <hash>"; the first
 * difference prints "FAIL ..." and exits 1; the last line is "done".
 *
 * --strict-kid: no filter; the child enters seccomp strict mode instead (it
 * may only read, write and exit): a checkpoint must fail at once, naming it.
 * --prctl-thread: a thread's own filter makes prctl() fail in it (zdtm's
 * seccomp_filter_threads): a checkpoint must fail, naming the thread.
 */
#include "common.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAGIC 1234

/* A filter of this thread's that answers system call nr with errno MAGIC. */
static void filter_with_errno(long nr, const char *what)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | MAGIC),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof f / sizeof f[0], f};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		die(what);
}

static void filter_getpid(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		die("no_new_privs");
	filter_with_errno(SYS_getpid, "seccomp");
}

static void *prctl_less(void *arg)
{
	filter_with_errno(SYS_prctl, "seccomp in a thread");
	*(volatile int *)arg = 1;
	for (;;)
		pause();
	return 0;
}

static int filtered(void)
{
	errno = 0;
	return syscall(SYS_getpid) == -1 && errno == MAGIC;
}

int main(int argc, char **argv)
{
	int steps = 100, strict = 0, prctl_thread = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--strict-kid"))
			strict = 1;
		else if (!strcmp(argv[i], "--prctl-thread"))
			prctl_thread = 1;
	}
	if (!strict)
		filter_getpid();
	int ask[2], answer[2];
	if (pipe(ask) || pipe(answer))
		die("pipe");
	pid_t kid = fork();
	if (kid < 0)
		die("fork");
	if (kid == 0) {
		char c;
		close(ask[1]);
		close(answer[0]);
		if (strict && prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0))
			_exit(3);
		while (read(ask[0], &c, 1) == 1) {
			c = strict || filtered() ? 'y' : 'n';
			if (write(answer[1], &c, 1) != 1)
				syscall(SYS_exit, 2);
		}
		syscall(SYS_exit, 0); /* _exit is exit_group, which strict mode kills */
	}
	close(ask[0]);
	close(answer[1]);
	static volatile int started;
	pthread_t th;
	if (prctl_thread && pthread_create(&th, 0, prctl_less, (void *)&started))
		die("pthread_create");
	while (prctl_thread && !started)
		pace_ms(1);
	say("getpidless: start steps=%d", steps);
	uint64_t h = 0;
	for (int s = 1; s <= steps; s++) {
		char c = 'q';
		if (!strict && !filtered()) {
			say("FAIL step %d: getpid() no longer fails with errno %d (the seccomp filter is gone)", s, MAGIC);
			return 1;
		}
		if (write(ask[1], &c, 1) != 1 || read(answer[0], &c, 1) != 1 || c != 'y') {
			say("FAIL step %d: the child's filter is gone or it does not answer (%c)", s, c);
			return 1;
		}
		h = mix64(h, (uint64_t)s);
		say("step %d %016" PRIx64, s, h);
		pace_ms(30);
	}
	close(ask[1]);
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		say("FAIL the child ended with status %#x", st);
		return 1;
	}
	say("done %016" PRIx64, h);
	return 0;
}
