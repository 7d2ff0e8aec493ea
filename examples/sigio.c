/*
 * sigio: descriptors that signal their owner when data arrives (O_ASYNC):
 *  - a pipe owned by the process itself, with a signal of its own
 *    (F_SETOWN, F_SETSIG SIGUSR1);
 *  - a socketpair owned by the process group (F_SETOWN_EX F_OWNER_PGRP),
 *    plain SIGIO;
 *  - a pipe owned by the child (F_SETOWN child, F_SETSIG SIGUSR2), whose
 *    handler answers on a pipe of its own.
 * Every step checks each owner and signal (F_GETOWN_EX, F_GETSIG, O_ASYNC),
 * writes a byte into each and waits for each signal; a step without one
 * prints "FAIL ...".
 *
 *   sigio [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, io;
static int answer_fd = -1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static void on_io(int sig)
{
	(void)sig;
	io++;
}

static void child_on_usr2(int sig)
{
	(void)sig;
	char c = 'a';
	if (write(answer_fd, &c, 1) != 1)
		_exit(3);
}

static void arm(int fd, int type, pid_t id, int sig)
{
	struct f_owner_ex o = {type, id};
	if (fcntl(fd, F_SETOWN_EX, &o) || (sig && fcntl(fd, F_SETSIG, sig)) ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC | O_NONBLOCK))
		die("F_SETOWN_EX, F_SETSIG, O_ASYNC");
}

static int owner_is(long step, const char *what, int fd, int type, pid_t id, int sig)
{
	struct f_owner_ex o = {-1, -1};
	if (fcntl(fd, F_GETOWN_EX, &o) || (int)o.type != type || o.pid != id || fcntl(fd, F_GETSIG) != sig ||
	    !(fcntl(fd, F_GETFL) & O_ASYNC)) {
		say("FAIL step %ld: %s: owner type %d id %d signal %d O_ASYNC %d, not type %d id %d signal %d O_ASYNC", step,
		    what, o.type, o.pid, fcntl(fd, F_GETSIG), !!(fcntl(fd, F_GETFL) & O_ASYNC), type, id, sig);
		return 0;
	}
	return 1;
}

/* Up to 1 s for the counter to move (a signal is not instant). */
static int signalled(volatile sig_atomic_t *n, sig_atomic_t before)
{
	for (int i = 0; i < 100 && *n == before; i++)
		pace_ms(10);
	return *n != before;
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	if (getpgrp() != getpid() && setpgid(0, 0))
		die("a process group of its own (setpgid)");
	int p[2], s[2], q[2], r[2];
	signal(SIGUSR1, on_usr1);
	signal(SIGIO, on_io);
	if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, s) || pipe(q) || pipe(r))
		die("pipes and sockets");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		answer_fd = r[1];
		signal(SIGIO, SIG_IGN); /* the socketpair's signal reaches the whole group */
		signal(SIGUSR2, child_on_usr2);
		child_on_usr2(0); /* ready */
		for (;;)
			pause();
	}
	char ready;
	if (read(r[0], &ready, 1) != 1)
		die("the child");
	arm(p[0], F_OWNER_PID, getpid(), SIGUSR1);
	arm(s[0], F_OWNER_PGRP, getpgrp(), 0);
	arm(q[0], F_OWNER_PID, child, SIGUSR2);
	say("armed");
	for (long k = 1; k <= steps; k++) {
		if (!owner_is(k, "the pipe", p[0], F_OWNER_PID, getpid(), SIGUSR1) ||
		    !owner_is(k, "the socketpair", s[0], F_OWNER_PGRP, getpgrp(), 0) ||
		    !owner_is(k, "the child's pipe", q[0], F_OWNER_PID, child, SIGUSR2))
			return 1;
		sig_atomic_t b1 = usr1, b2 = io;
		char c = 'x';
		if (write(p[1], &c, 1) != 1 || write(s[1], &c, 1) != 1 || write(q[1], &c, 1) != 1)
			die("writing");
		if (!signalled(&usr1, b1)) {
			say("FAIL step %ld: no SIGUSR1 for the pipe's byte", k);
			return 1;
		}
		if (!signalled(&io, b2)) {
			say("FAIL step %ld: no SIGIO for the socketpair's byte", k);
			return 1;
		}
		struct pollfd pf = {r[0], POLLIN, 0};
		if (poll(&pf, 1, 1000) != 1 || read(r[0], &c, 1) != 1) {
			say("FAIL step %ld: the child got no SIGUSR2 for its pipe's byte", k);
			return 1;
		}
		if (read(p[0], &c, 1) != 1 || read(s[0], &c, 1) != 1 || read(q[0], &c, 1) != 1)
			die("reading");
		say("step %ld", k);
		pace_ms(50);
	}
	kill(child, SIGKILL);
	waitpid(child, 0, 0);
	say("done");
	return 0;
}
