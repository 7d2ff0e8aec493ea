/* TCP and UDP across checkpoint/restart (test/sockets-inet.test.ts).
 *
 *   inet pair  STEPS 4|6   a listener, a client and the server's end in one
 *                          process; each direction always has a 2 KiB
 *                          record in flight; outside clients get an echo
 *   inet fork  STEPS 4|6   the same connection between a parent and a child
 *   inet udp   STEPS 4|6   two UDP sockets with three datagrams queued
 *   inet half  STEPS 4|6   a connection its listener has not accepted yet
 *                          and one whose server end wrote "bye" and shut
 *                          down writing: accepted and read after the steps
 *
 * Every record carries its number: one lost or delivered twice prints
 * ERROR and exits 1. Addresses and options are checked at every step. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REC 2048
#define MAX_OUTSIDE 16

static int family;

static void die(const char *what)
{
	printf("ERROR %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static socklen_t loopback(struct sockaddr_storage *ss, int port)
{
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->sin_port = htons((uint16_t)port);
		return sizeof *in;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	in6->sin6_family = AF_INET6;
	in6->sin6_addr = in6addr_loopback;
	in6->sin6_port = htons((uint16_t)port);
	return sizeof *in6;
}

static int port_of(int fd, int peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len)) != 0)
		return -1;
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int bound_socket(int type, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(&ss, port);
	int fd = socket(family, type, 0), one = 1;
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) != 0)
		die("bind");
	return fd;
}

static void connect_port(int fd, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(&ss, port);
	if (connect(fd, (struct sockaddr *)&ss, len) != 0)
		die("connect");
}

static void send_record(int fd, char tag, int n)
{
	char rec[REC];
	memset(rec, 'a' + n % 26, sizeof rec);
	int k = snprintf(rec, 32, "%c%d ", tag, n);
	rec[k] = ' ';
	rec[REC - 1] = '\n';
	for (size_t done = 0; done < REC;) {
		ssize_t w = write(fd, rec + done, REC - done);
		if (w <= 0)
			die("write");
		done += (size_t)w;
	}
}

static void expect_record(int fd, char tag, int n)
{
	char rec[REC], want[32];
	for (size_t got = 0; got < REC;) {
		ssize_t r = read(fd, rec + got, REC - got);
		if (r <= 0) {
			printf("ERROR record %c%d: %s\n", tag, n, r == 0 ? "EOF" : strerror(errno));
			exit(1);
		}
		got += (size_t)r;
	}
	int k = snprintf(want, sizeof want, "%c%d ", tag, n);
	if (memcmp(rec, want, (size_t)k) != 0 || rec[REC - 2] != 'a' + n % 26) {
		printf("ERROR expected record %c%d, got %.12s\n", tag, n, rec);
		exit(1);
	}
}

static void check_int(int fd, int level, int name, int want, const char *what)
{
	int v = -1;
	socklen_t len = sizeof v;
	if (getsockopt(fd, level, name, &v, &len) != 0 || v != want) {
		printf("ERROR option %s is %d, not %d\n", what, v, want);
		exit(1);
	}
}

static void pause_step(void)
{
	struct timespec ts = {0, 100 * 1000 * 1000};
	nanosleep(&ts, 0);
}

/* Outside clients: "hello\n" gets "echo hello\n"; a reset is reported. */
static void serve_outside(int l, int *clients)
{
	int c = accept4(l, 0, 0, SOCK_NONBLOCK);
	if (c >= 0) {
		for (int i = 0; i < MAX_OUTSIDE; i++)
			if (clients[i] < 0) {
				clients[i] = c;
				c = -1;
				break;
			}
		if (c >= 0)
			close(c);
	}
	for (int i = 0; i < MAX_OUTSIDE; i++) {
		char buf[256], out[300];
		if (clients[i] < 0)
			continue;
		ssize_t r = read(clients[i], buf, sizeof buf - 1);
		if (r > 0) {
			buf[r] = 0;
			int k = snprintf(out, sizeof out, "echo %s", buf);
			if (write(clients[i], out, (size_t)k) < 0)
				printf("outside write failed: %s\n", strerror(errno));
		} else if (r == 0 || errno != EAGAIN) {
			printf("outside client %s\n", r == 0 ? "closed" : errno == ECONNRESET ? "reset" : strerror(errno));
			close(clients[i]);
			clients[i] = -1;
		}
	}
}

static void run_pair(int steps)
{
	int l = bound_socket(SOCK_STREAM, 0), one = 1, idle = 77;
	if (listen(l, 8) != 0)
		die("listen");
	fcntl(l, F_SETFL, O_NONBLOCK);
	int port = port_of(l, 0);
	int c = socket(family, SOCK_STREAM, 0);
	connect_port(c, port);
	int s;
	while ((s = accept(l, 0, 0)) < 0)
		if (errno != EAGAIN)
			die("accept");
	fcntl(s, F_SETFL, 0);
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	int cport = port_of(c, 0);
	printf("listening port %d client port %d\n", port, cport);
	fflush(stdout);
	int clients[MAX_OUTSIDE];
	for (int i = 0; i < MAX_OUTSIDE; i++)
		clients[i] = -1;
	send_record(c, 'c', 0);
	send_record(s, 's', 0);
	for (int i = 0; i < steps; i++) {
		pause_step();
		serve_outside(l, clients);
		expect_record(s, 'c', i);
		expect_record(c, 's', i);
		if (port_of(l, 0) != port || port_of(c, 0) != cport || port_of(c, 1) != port || port_of(s, 0) != port ||
		    port_of(s, 1) != cport) {
			printf("ERROR addresses changed: listener %d client %d->%d server %d->%d\n", port_of(l, 0), port_of(c, 0),
			       port_of(c, 1), port_of(s, 0), port_of(s, 1));
			exit(1);
		}
		check_int(c, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
		check_int(s, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
		check_int(s, IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
		check_int(l, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
		check_int(l, SOL_SOCKET, SO_ACCEPTCONN, 1, "SO_ACCEPTCONN");
		if ((fcntl(l, F_GETFL) & O_NONBLOCK) == 0) {
			printf("ERROR the listener lost O_NONBLOCK\n");
			exit(1);
		}
		send_record(c, 'c', i + 1);
		send_record(s, 's', i + 1);
		printf("step %d\n", i);
		fflush(stdout);
	}
	expect_record(s, 'c', steps);
	expect_record(c, 's', steps);
	printf("done\n");
}

static void run_fork(int steps)
{
	int l = bound_socket(SOCK_STREAM, 0);
	if (listen(l, 8) != 0)
		die("listen");
	int port = port_of(l, 0);
	pid_t child = fork();
	if (child == 0) {
		close(l);
		int c = socket(family, SOCK_STREAM, 0);
		connect_port(c, port);
		send_record(c, 'c', 0);
		for (int i = 0; i < steps; i++) {
			expect_record(c, 's', i);
			pause_step();
			send_record(c, 'c', i + 1);
		}
		expect_record(c, 's', steps);
		_exit(0);
	}
	int s = accept(l, 0, 0);
	if (s < 0)
		die("accept");
	printf("listening port %d child %d\n", port, child);
	fflush(stdout);
	send_record(s, 's', 0);
	for (int i = 0; i < steps; i++) {
		pause_step();
		expect_record(s, 'c', i);
		send_record(s, 's', i + 1);
		printf("step %d\n", i);
		fflush(stdout);
	}
	expect_record(s, 'c', steps);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("ERROR the child failed (status %#x)\n", st);
		exit(1);
	}
	printf("done\n");
}

static void send_dgram(int fd, int n)
{
	char d[64];
	int k = snprintf(d, sizeof d, "d%d", n);
	if (send(fd, d, (size_t)k, 0) != k)
		die("send");
}

/* a receives from b (connected to a) and sends back; three datagrams are
 * always queued on each */
static void run_udp(int steps)
{
	int a = bound_socket(SOCK_DGRAM, 0), b = bound_socket(SOCK_DGRAM, 0);
	int aport = port_of(a, 0), bport = port_of(b, 0);
	connect_port(b, aport);
	connect_port(a, bport);
	printf("udp ports %d %d\n", aport, bport);
	fflush(stdout);
	for (int i = 0; i < 3; i++) {
		send_dgram(b, i);
		send_dgram(a, 1000 + i);
	}
	for (int i = 0; i < steps; i++) {
		pause_step();
		for (int side = 0; side < 2; side++) {
			char d[64], want[64];
			struct sockaddr_storage ss;
			socklen_t len = sizeof ss;
			ssize_t r = recvfrom(side ? b : a, d, sizeof d - 1, MSG_DONTWAIT, (struct sockaddr *)&ss, &len);
			if (r < 0)
				die("recvfrom");
			d[r] = 0;
			snprintf(want, sizeof want, "d%d", side ? 1000 + i : i);
			int from = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
								: ((struct sockaddr_in6 *)&ss)->sin6_port);
			if (strcmp(d, want) != 0 || from != (side ? aport : bport)) {
				printf("ERROR expected datagram %s from port %d, got %s from port %d\n", want,
				       side ? aport : bport, d, from);
				exit(1);
			}
		}
		if (port_of(a, 0) != aport || port_of(b, 0) != bport || port_of(b, 1) != aport || port_of(a, 1) != bport) {
			printf("ERROR UDP addresses changed\n");
			exit(1);
		}
		send_dgram(b, i + 3);
		send_dgram(a, 1000 + i + 3);
		printf("step %d\n", i);
		fflush(stdout);
	}
	printf("done\n");
}

static void run_half(int steps)
{
	int l = bound_socket(SOCK_STREAM, 0);
	if (listen(l, 8) != 0)
		die("listen");
	int port = port_of(l, 0);
	int b = socket(family, SOCK_STREAM, 0);
	connect_port(b, port);
	int bs = accept(l, 0, 0);
	if (bs < 0 || write(bs, "bye", 3) != 3 || shutdown(bs, SHUT_WR) != 0)
		die("half-close");
	int a = socket(family, SOCK_STREAM, 0);
	connect_port(a, port); /* not accepted until the end */
	int aport = port_of(a, 0);
	printf("listening port %d pending client port %d\n", port, aport);
	for (int i = 0; i < steps; i++) {
		pause_step();
		printf("step %d\n", i);
	}
	int as = accept(l, 0, 0);
	if (as < 0 || port_of(as, 1) != aport) {
		printf("ERROR the pending connection is not in the listener's queue (%s)\n", as < 0 ? strerror(errno) : "another port");
		exit(1);
	}
	if (write(a, "hi", 2) != 2)
		die("write on the pending connection");
	char buf[8];
	if (read(as, buf, sizeof buf) != 2 || memcmp(buf, "hi", 2) != 0)
		die("read on the accepted connection");
	ssize_t r = read(b, buf, sizeof buf);
	ssize_t eof = read(b, buf + 3, sizeof buf - 3);
	if (r != 3 || memcmp(buf, "bye", 3) != 0 || eof != 0) {
		printf("ERROR the half-closed connection gave %zd then %zd bytes\n", r, eof);
		exit(1);
	}
	if (write(bs, "x", 1) != -1 || errno != EPIPE) {
		printf("ERROR the end that shut down writing can still write\n");
		exit(1);
	}
	if (write(b, "still", 5) != 5)
		die("write towards the half-closed end");
	printf("done\n");
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: inet pair|fork|udp STEPS 4|6\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, 0, _IOLBF, 0);
	int steps = atoi(argv[2]);
	family = argv[3][0] == '6' ? AF_INET6 : AF_INET;
	if (!strcmp(argv[1], "pair"))
		run_pair(steps);
	else if (!strcmp(argv[1], "fork"))
		run_fork(steps);
	else if (!strcmp(argv[1], "half"))
		run_half(steps);
	else
		run_udp(steps);
	return 0;
}
