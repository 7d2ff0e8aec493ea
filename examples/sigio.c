/*
 * sigio: a pipe whose read end signals the process when data arrives
 * (O_ASYNC with F_SETOWN and F_SETSIG SIGUSR1), which ckrun cannot set up
 * again yet: its checkpoint must fail and say so. Every step writes a
 * byte and waits for the signal; a step without it prints "FAIL ...".
 *
 *   sigio [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t signals;

static void on_signal(int sig)
{
	(void)sig;
	signals++;
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	int p[2];
	signal(SIGUSR1, on_signal);
	if (pipe(p) || fcntl(p[0], F_SETOWN, getpid()) || fcntl(p[0], F_SETSIG, SIGUSR1) ||
	    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_ASYNC | O_NONBLOCK))
		die("an O_ASYNC pipe");
	say("armed");
	for (long k = 1; k <= steps; k++) {
		sig_atomic_t before = signals;
		char c = 'x';
		if (write(p[1], &c, 1) != 1 || read(p[0], &c, 1) != 1)
			die("the pipe");
		for (int i = 0; i < 100 && signals == before; i++)
			pace_ms(10);
		if (signals == before) {
			say("FAIL no SIGUSR1 for the byte of step %ld", k);
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
