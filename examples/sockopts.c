/*
 * sockopts: socket options a program sets and expects to keep: a TCP
 * connection inside the process corked (TCP_CORK) with a few bytes
 * written, and a UDP socket with SO_PRIORITY, SO_MARK (root only) and
 * SO_BINDTODEVICE "lo", and two TCP listeners sharing one port through
 * SO_REUSEPORT, which the first then clears. Every step checks each value
 * (every 10th also connects to the shared port and must be accepted by
 * one of the listeners); the last uncorks and reads the bytes, once and
 * intact. A difference prints "FAIL ...".
 *
 *   sockopts [--steps N]     prints "step K" per step, then "done"
 * (packet filters: examples/sockfilter.c)
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char held[] = "written while corked";

static void fail_errno(const char *what)
{
	say("FAIL %s: %s", what, strerror(errno));
	exit(1);
}

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof v;
	if (getsockopt(fd, level, name, &v, &len))
		fail_errno("getsockopt");
	return v;
}

static void expect_int(int fd, int level, int name, int want, const char *what)
{
	int v = get_int(fd, level, name);
	if (v != want) {
		say("FAIL %s is %d, not %d", what, v, want);
		exit(1);
	}
}

static void tcp_pair(int *client, int *server)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len))
		fail_errno("listener");
	*client = socket(AF_INET, SOCK_STREAM, 0);
	if (*client < 0 || connect(*client, (struct sockaddr *)&a, sizeof a))
		fail_errno("connect");
	*server = accept(l, NULL, NULL);
	if (*server < 0)
		fail_errno("accept");
	close(l);
}

/* Two listeners on one port of 127.0.0.1 bound with SO_REUSEPORT; the
 * first clears it afterwards (it keeps the port). */
static void reuseport_pair(int l[2], struct sockaddr_in *a)
{
	int one = 1, zero = 0;
	socklen_t len = sizeof *a;
	*a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int i = 0; i < 2; i++) {
		l[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (l[i] < 0 || setsockopt(l[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
		    bind(l[i], (struct sockaddr *)a, sizeof *a) || listen(l[i], 4) ||
		    getsockname(l[i], (struct sockaddr *)a, &len))
			fail_errno("a SO_REUSEPORT listener");
	}
	if (setsockopt(l[0], SOL_SOCKET, SO_REUSEPORT, &zero, sizeof zero))
		fail_errno("clearing SO_REUSEPORT");
}

/* A connection to the shared port is accepted by one of the two; the
 * client closes first, so no TIME-WAIT entry stays on the shared port. */
static void reuseport_connect(const int l[2], const struct sockaddr_in *a)
{
	int c = socket(AF_INET, SOCK_STREAM, 0), s = -1;
	if (c < 0 || connect(c, (const struct sockaddr *)a, sizeof *a))
		fail_errno("connect to the SO_REUSEPORT port");
	struct pollfd p[2] = { { l[0], POLLIN, 0 }, { l[1], POLLIN, 0 } };
	if (poll(p, 2, 1000) > 0)
		s = accept(p[0].revents ? l[0] : l[1], NULL, NULL);
	if (s < 0)
		fail_errno("accept on the SO_REUSEPORT port");
	close(c);
	close(s);
}

int main(int argc, char **argv)
{
	long steps = 40;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atol(argv[++i]);
	int root = geteuid() == 0, one = 1, prio = 5, mark = 7;
	int c, s;
	tcp_pair(&c, &s);
	if (setsockopt(c, IPPROTO_TCP, TCP_CORK, &one, sizeof one))
		fail_errno("TCP_CORK");
	if (write(c, held, sizeof held - 1) != (ssize_t)(sizeof held - 1))
		fail_errno("write");
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	if (u < 0 || setsockopt(u, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio))
		fail_errno("SO_PRIORITY");
	if (root && setsockopt(u, SOL_SOCKET, SO_MARK, &mark, sizeof mark))
		fail_errno("SO_MARK");
	if (setsockopt(u, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3))
		fail_errno("SO_BINDTODEVICE");
	int rp[2];
	struct sockaddr_in rpa;
	reuseport_pair(rp, &rpa);
	say("set");
	for (long k = 1; k <= steps; k++) {
		expect_int(c, IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK");
		expect_int(u, SOL_SOCKET, SO_PRIORITY, prio, "SO_PRIORITY");
		expect_int(u, SOL_SOCKET, SO_MARK, root ? mark : 0, "SO_MARK");
		char dev[32] = "";
		socklen_t dl = sizeof dev;
		if (getsockopt(u, SOL_SOCKET, SO_BINDTODEVICE, dev, &dl) || strcmp(dev, "lo")) {
			say("FAIL SO_BINDTODEVICE is \"%s\", not \"lo\"", dev);
			return 1;
		}
		expect_int(rp[0], SOL_SOCKET, SO_REUSEPORT, 0, "SO_REUSEPORT cleared after bind");
		expect_int(rp[1], SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
		if (k % 10 == 0)
			reuseport_connect(rp, &rpa);
		say("step %ld", k);
		pace_ms(50);
	}
	int zero = 0;
	setsockopt(c, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
	char buf[64];
	size_t got = 0;
	while (got < sizeof held - 1) {
		ssize_t n = read(s, buf + got, sizeof buf - got);
		if (n <= 0)
			fail_errno("read");
		got += (size_t)n;
	}
	if (memcmp(buf, held, got)) {
		say("FAIL the corked bytes came out different");
		return 1;
	}
	say("done");
	return 0;
}
