/* A worker thread blocked in poll() on a pipe nobody writes, woken by a
 * signal sent to that thread alone (tgkill, as pthread_kill does): its
 * handler runs and its poll fails with EINTR, so the worker ends. The
 * test sends the signal while a checkpoint holds every thread stopped;
 * the poll must end all the same.
 *
 *   wakethread [--process]
 *
 * --process: the main thread blocks SIGUSR1, so a SIGUSR1 sent to the
 * whole process (kill) goes to the worker; it prints "ready PID" only. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t woken;

static void on_usr1(int sig)
{
	(void)sig;
	woken = 1;
}

static int whole_process;

static void *worker(void *arg)
{
	int fd = *(int *)arg;
	if (whole_process)
		printf("ready %d\n", getpid());
	else
		printf("ready %d %ld\n", getpid(), (long)syscall(SYS_gettid));
	fflush(stdout);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r = poll(&p, 1, -1);
	if (r < 0 && errno == EINTR && woken)
		printf("worker woke by SIGUSR1\n");
	else
		printf("FAIL poll returned %d (%s)\n", r, r < 0 ? strerror(errno) : "ready");
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	whole_process = argc > 1 && !strcmp(argv[1], "--process");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, 0);
	int p[2];
	if (pipe(p) != 0)
		return 1;
	pthread_t t;
	if (pthread_create(&t, 0, worker, &p[0]) != 0)
		return 1;
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (whole_process)
		pthread_sigmask(SIG_BLOCK, &usr1, 0);
	pthread_join(t, 0);
	return 0;
}
