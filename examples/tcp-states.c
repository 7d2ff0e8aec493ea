/* TCP connections in half-closed and connecting states across
 * checkpoint/restart (test/sockets-tcp-states.test.ts), in one process:
 *
 *   - a connection whose client wrote "from a" and shut down writing
 *     (FIN-WAIT-2) while its server end wrote "from b" (CLOSE-WAIT, with
 *     "from a" and then EOF unread);
 *   - a listener with backlog 0 whose queue is full (one connection not yet
 *     accepted), and a non-blocking connect to it that waits in SYN-SENT.
 *   - a connection both of whose ends wrote a line and shut down writing
 *     (both in state CLOSE, each with the other's line unread).
 *
 *   tcp-states STEPS
 *
 * Every step checks each socket's state (TCP_INFO); the end reads what was
 * in flight, writes on the half-open side, accepts the queued connection
 * and sees the connect in progress complete. ERROR and exit 1 otherwise. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"

static void fail(const char *what)
{
	printf("ERROR %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static int state_of(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		fail("TCP_INFO");
	return ti.tcpi_state;
}

static void expect_state(int fd, int want, const char *what)
{
	int st = state_of(fd);
	if (st != want) {
		printf("ERROR %s is in TCP state %d, not %d\n", what, st, want);
		exit(1);
	}
}

static int listener(struct sockaddr_in *at, int backlog)
{
	socklen_t len = sizeof *at;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	at->sin_family = AF_INET;
	at->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	at->sin_port = 0;
	if (l < 0 || bind(l, (struct sockaddr *)at, sizeof *at) != 0 || listen(l, backlog) != 0 ||
	    getsockname(l, (struct sockaddr *)at, &len) != 0)
		fail("listen");
	return l;
}

static void expect_read(int fd, const char *want, const char *what)
{
	char buf[64];
	size_t n = strlen(want), got = 0;
	while (got < n) {
		ssize_t k = read(fd, buf + got, n - got);
		if (k <= 0)
			fail(what);
		got += (size_t)k;
	}
	if (memcmp(buf, want, n)) {
		printf("ERROR %s: got \"%.*s\", not \"%s\"\n", what, (int)n, buf, want);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 100;
	setvbuf(stdout, 0, _IOLBF, 0);
	struct sockaddr_in at1, at2;
	int l1 = listener(&at1, 4);
	int a = socket(AF_INET, SOCK_STREAM, 0);
	if (a < 0 || connect(a, (struct sockaddr *)&at1, sizeof at1) != 0)
		fail("connect a");
	int b = accept(l1, 0, 0);
	if (b < 0)
		fail("accept b");
	if (write(a, "from a", 6) != 6 || write(b, "from b", 6) != 6 || shutdown(a, SHUT_WR) != 0)
		fail("write/shutdown");

	int l2 = listener(&at2, 0);
	int c1 = socket(AF_INET, SOCK_STREAM, 0);
	if (c1 < 0 || connect(c1, (struct sockaddr *)&at2, sizeof at2) != 0)
		fail("connect c1");
	int c2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c2 < 0 || (connect(c2, (struct sockaddr *)&at2, sizeof at2) != 0 && errno != EINPROGRESS))
		fail("connect c2");
	int e = socket(AF_INET, SOCK_STREAM, 0);
	if (e < 0 || connect(e, (struct sockaddr *)&at1, sizeof at1) != 0)
		fail("connect e");
	int f = accept(l1, 0, 0);
	if (f < 0 || write(e, "from e", 6) != 6 || write(f, "from f", 6) != 6 || shutdown(e, SHUT_WR) != 0)
		fail("accept/write/shutdown e");
	while (state_of(e) != TCP_FIN_WAIT2)
		pace_ms(1);
	if (shutdown(f, SHUT_WR) != 0)
		fail("shutdown f");
	while (state_of(e) != TCP_CLOSE || state_of(f) != TCP_CLOSE)
		pace_ms(1);
	struct sockaddr_in f_at;
	socklen_t f_len = sizeof f_at;
	if (getsockname(f, (struct sockaddr *)&f_at, &f_len) != 0)
		fail("getsockname f");
	pace_ms(100);
	printf("ready\n");

	for (int i = 0; i < steps; i++) {
		expect_state(a, TCP_FIN_WAIT2, "the end that shut down writing");
		expect_state(b, TCP_CLOSE_WAIT, "the end whose peer shut down writing");
		expect_state(c1, TCP_ESTABLISHED, "the connection not yet accepted");
		expect_state(c2, TCP_SYN_SENT, "the connect in progress");
		expect_state(e, TCP_CLOSE, "an end of the connection both ends closed");
		expect_state(f, TCP_CLOSE, "the other end of the connection both ends closed");
		printf("step %d\n", i);
		pace_ms(20);
	}

	expect_read(b, "from a", "read what a sent");
	char buf[8];
	if (read(b, buf, sizeof buf) != 0)
		fail("no EOF after what a sent");
	expect_read(a, "from b", "read what b sent");
	if (write(b, "late", 4) != 4)
		fail("write on the half-open side");
	expect_read(a, "late", "read on the half-closed side");

	expect_read(f, "from e", "read what e sent before both closed");
	if (read(f, buf, sizeof buf) != 0)
		fail("no EOF after what e sent");
	expect_read(e, "from f", "read what f sent before both closed");
	if (read(e, buf, sizeof buf) != 0)
		fail("no EOF after what f sent");
	signal(SIGPIPE, SIG_IGN);
	if (write(e, "x", 1) != -1 || errno != EPIPE)
		fail("a write on a closed connection did not fail with EPIPE");
	struct sockaddr_in peer;
	socklen_t peer_len = sizeof peer;
	if (getsockopt(e, SOL_SOCKET, SO_PEERNAME, &peer, &peer_len) != 0 || peer.sin_port != f_at.sin_port ||
	    peer.sin_addr.s_addr != f_at.sin_addr.s_addr)
		fail("the closed connection's peer changed");
	int s1 = accept(l2, 0, 0);
	if (s1 < 0)
		fail("accept c1");
	/* the queue has room now: the connect in progress completes at its
	 * next SYN */
	struct pollfd p = {c2, POLLOUT, 0};
	if (poll(&p, 1, 20000) != 1)
		fail("the connect in progress never completed");
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(c2, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
		errno = err;
		fail("the connect in progress failed");
	}
	int s2 = accept(l2, 0, 0);
	if (s2 < 0)
		fail("accept c2");
	if (write(c2, "hi", 2) != 2)
		fail("write c2");
	expect_read(s2, "hi", "read from the connection that was in progress");
	printf("done\n");
	return 0;
}
