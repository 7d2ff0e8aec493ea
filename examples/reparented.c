/*
 * reparented: a tree Linux allows that a restart cannot make again. The
 * main process M is a child subreaper; its child A opens a session, forks
 * B, B forks C and exits: C, in A's session, is re-parented to M, which is
 * in another session it does not lead. No fork from M can put a process in
 * A's session, so a checkpoint must refuse (naming C and M), and the
 * program runs on: every step checks C is still M's child in A's session.
 *
 *   reparented [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *q = strrchr(buf, ')');
	int ppid = -1;
	if (q)
		sscanf(q + 2, "%*c %d", &ppid);
	return ppid;
}

int main(int argc, char **argv)
{
	long steps = 30;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		die("PR_SET_CHILD_SUBREAPER");
	int ids[2];
	if (pipe(ids) != 0)
		die("pipe");
	pid_t a = fork();
	if (a == 0) {
		setsid();
		pid_t b = fork();
		if (b == 0) {
			pid_t c = fork();
			if (c == 0)
				for (;;)
					pause();
			(void)!write(ids[1], &c, sizeof c);
			_exit(0);
		}
		waitpid(b, 0, 0);
		for (;;)
			pause();
	}
	pid_t c;
	if (read(ids[0], &c, sizeof c) != sizeof c)
		die("C's PID");
	while (parent_of(c) != getpid())
		pace_ms(5);
	for (long k = 1; k <= steps; k++) {
		if (parent_of(c) != getpid() || getsid(c) != a) {
			say("FAIL C is not M's child in A's session any more");
			kill(a, SIGKILL);
			kill(c, SIGKILL);
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	kill(a, SIGKILL);
	kill(c, SIGKILL);
	waitpid(a, 0, 0);
	waitpid(c, 0, 0);
	say("done");
	return 0;
}
