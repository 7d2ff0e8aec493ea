/*
 * gone: states no restart can give back, held one after another until the
 * test sends SIGUSR1, each of which a checkpoint must refuse, naming it:
 *   1. a descriptor of /proc/PID/status of a child that has exited and was
 *      reaped ("holding proc fd");
 *   2. a working directory /proc/PID of another such child ("holding proc
 *      cwd");
 *   3. one end of a TCP connection over loopback whose two ends both shut
 *      down, the other end closed: ended (state CLOSE), not closed by the
 *      program, and without its other end (a pair in one process comes
 *      back: examples/tcp-states.c) ("holding ended tcp");
 *   4. an epoll entry whose file only a child holds: the program added a
 *      pipe, forked, and closed its own ends ("holding epoll orphan").
 * Then ("released") it holds what a restart can give back: descriptors of
 * its own network and UTS namespaces (/proc/self/ns/net, uts), which every
 * step checks are still those namespaces, and counts steps to "done".
 *
 *   gone [--steps N]     prints "pid P", the lines above, "step K", "done"
 */
#include "common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t next_state;

static void on_usr1(int sig)
{
	(void)sig;
	next_state = 1;
}

static void wait_for_next(void)
{
	while (!next_state)
		pace_ms(20);
	next_state = 0;
}

/* A child that has exited and been reaped: its PID. */
static pid_t dead_child(void)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		pause();
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	if (waitpid(pid, 0, 0) != pid)
		die("waitpid");
}

/* Two ends of a loopback connection that both shut down and whose FINs
 * were acknowledged: state CLOSE, still open. */
static void ended_tcp(int *c, int *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len))
		die("listener");
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, (struct sockaddr *)&a, sizeof a) || (*s = accept(l, NULL, NULL)) < 0)
		die("connect");
	close(l);
	shutdown(*c, SHUT_WR);
	shutdown(*s, SHUT_WR);
	for (int i = 0; i < 200; i++) {
		struct tcp_info ti;
		socklen_t tl = sizeof ti;
		if (getsockopt(*c, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && ti.tcpi_state == TCP_CLOSE)
			return;
		pace_ms(5);
	}
	die("the connection did not end");
}

static void check_namespace(int fd, const char *path, const char *link0)
{
	struct stat a, b;
	char proc[64], link[128];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || strcmp(link, link0)) {
		say("FAIL %s: descriptor %d is %s, not the namespace %s", path, fd, link, link0);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	long steps = 60;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	signal(SIGUSR1, on_usr1);
	say("pid %d", (int)getpid());
	char path[64];

	pid_t c = dead_child();
	snprintf(path, sizeof path, "/proc/%d/status", (int)c);
	int procfd = open(path, O_RDONLY);
	if (procfd < 0)
		die("open /proc/PID/status");
	reap(c);
	say("holding proc fd");
	wait_for_next();
	close(procfd);

	int home = open(".", O_RDONLY | O_DIRECTORY);
	c = dead_child();
	snprintf(path, sizeof path, "/proc/%d", (int)c);
	if (home < 0 || chdir(path) != 0)
		die("chdir /proc/PID");
	reap(c);
	say("holding proc cwd");
	wait_for_next();
	if (fchdir(home) != 0)
		die("fchdir");
	close(home);

	int tc, ts;
	ended_tcp(&tc, &ts);
	close(ts);
	say("holding ended tcp");
	wait_for_next();
	close(tc);

	int ep = epoll_create1(EPOLL_CLOEXEC), pp[2];
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
	if (ep < 0 || pipe(pp) || epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &ev))
		die("epoll");
	c = fork();
	if (c < 0)
		die("fork");
	if (c == 0) {
		close(ep);
		pause();
		_exit(0);
	}
	close(pp[0]);
	close(pp[1]);
	say("holding epoll orphan");
	wait_for_next();
	reap(c); /* its last holder gone, the entry leaves the list */

	int net = open("/proc/self/ns/net", O_RDONLY), uts = open("/proc/self/ns/uts", O_RDONLY);
	char net0[128] = "", uts0[128] = "";
	snprintf(path, sizeof path, "/proc/self/fd/%d", net);
	if (net < 0 || uts < 0 || readlink(path, net0, sizeof net0 - 1) <= 0)
		die("open /proc/self/ns");
	snprintf(path, sizeof path, "/proc/self/fd/%d", uts);
	if (readlink(path, uts0, sizeof uts0 - 1) <= 0)
		die("readlink");
	say("released");
	for (long k = 1; k <= steps; k++) {
		check_namespace(net, "/proc/self/ns/net", net0);
		check_namespace(uts, "/proc/self/ns/uts", uts0);
		say("step %ld", k);
		pace_ms(25);
	}
	say("done");
	return 0;
}
