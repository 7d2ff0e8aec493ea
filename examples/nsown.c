/*
 * nsown: a child that enters a namespace of its own, as sandboxes and
 * container runtimes do, which a restart cannot make again: a checkpoint
 * must fail naming it, and the program runs on.
 *
 *   nsown [--steps N]     prints "step K" per step, then "done"
 *
 * The child calls unshare(CLONE_NEWUTS) (root, or an ordinary user in a
 * user namespace) and sets a hostname there; both processes count steps
 * through a pipe: the parent prints them, the child checks its hostname.
 */
#include "common.h"
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long steps = 60;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atol(argv[++i]);
	setvbuf(stdout, 0, _IOLBF, 0);
	int p[2];
	if (pipe(p) != 0)
		return 2;
	pid_t child = fork();
	if (child == 0) {
		char name[64];
		if (unshare(CLONE_NEWUTS) != 0 || sethostname("nsown", 5) != 0) {
			printf("FAIL: unshare(CLONE_NEWUTS): %s\n", strerror(errno));
			_exit(1);
		}
		for (long i = 0; i < steps; i++) {
			if (gethostname(name, sizeof name) != 0 || strcmp(name, "nsown") != 0) {
				printf("FAIL: the child's hostname is %s\n", name);
				_exit(1);
			}
			if (write(p[1], "s", 1) != 1)
				_exit(1);
			pace_ms(50);
		}
		_exit(0);
	}
	close(p[1]);
	char c;
	for (long i = 0; read(p[0], &c, 1) == 1; i++)
		printf("step %ld\n", i + 1);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL: the child ended badly\n");
		return 1;
	}
	printf("done\n");
	return 0;
}
