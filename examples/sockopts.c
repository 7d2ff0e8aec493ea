/*
 * sockopts: socket options a program sets and expects to keep: a TCP
 * connection inside the process corked (TCP_CORK) with a few bytes
 * written, and a UDP socket with SO_PRIORITY, SO_MARK (root only) and
 * SO_BINDTODEVICE "lo". Every step checks each value; the last uncorks
 * and reads the bytes, once and intact. A difference prints "FAIL ...".
 *
 * With --filter, a UDP socket also gets a classic BPF filter
 * (SO_ATTACH_FILTER), which ckrun cannot attach again: its checkpoint
 * must fail and say so, and the program runs on.
 *
 *   sockopts [--steps N] [--filter]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

int main(int argc, char **argv)
{
	long steps = 40;
	int with_filter = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atol(argv[++i]);
		else if (!strcmp(argv[i], "--filter"))
			with_filter = 1;
	}
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
	if (with_filter) {
		struct sock_filter accept_all[] = { BPF_STMT(BPF_RET | BPF_K, 0xffff) };
		struct sock_fprog prog = { 1, accept_all };
		int f = socket(AF_INET, SOCK_DGRAM, 0);
		if (f < 0 || setsockopt(f, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog))
			fail_errno("SO_ATTACH_FILTER");
	}
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
