/* Two processes of one session talking over localhost TCP
 * (test/sockets-timewait.test.ts): a parent listens (without SO_REUSEADDR,
 * as most programs do) and a child connects; the child sends "ping N", the
 * parent answers "pong N", step after step.
 *
 *   tcp-twopeers STEPS
 *
 * Every message carries its number: one lost, repeated or out of order
 * prints ERROR and exits 1. The addresses are checked at every step: the
 * listener keeps its port, and each end keeps its own port and its peer's
 * (a kill -9 leaves the old connection's TIME-WAIT entries on exactly these
 * ports). The parent prints "step N"; both print "done" at the end. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"

static const char *who = "parent";

static void fail(const char *what)
{
	printf("ERROR %s %s: %s\n", who, what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static int port_of(int fd, int peer)
{
	struct sockaddr_in in;
	socklen_t len = sizeof in;
	if ((peer ? getpeername(fd, (struct sockaddr *)&in, &len) : getsockname(fd, (struct sockaddr *)&in, &len)) != 0)
		return -1;
	return ntohs(in.sin_port);
}

/* One line, byte by byte (the peer's next line must stay in the socket). */
static void read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		char c;
		ssize_t k = read(fd, &c, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			errno = k == 0 ? EPIPE : errno;
			fail("read");
		}
		if (c == '\n' || n + 1 == cap)
			break;
		buf[n++] = c;
	}
	buf[n] = 0;
}

static void write_line(int fd, const char *word, int n)
{
	char buf[64];
	int len = snprintf(buf, sizeof buf, "%s %d\n", word, n);
	if (write(fd, buf, (size_t)len) != len)
		fail("write");
}

static void expect(int fd, const char *word, int n)
{
	char got[64], want[64];
	read_line(fd, got, sizeof got);
	snprintf(want, sizeof want, "%s %d", word, n);
	if (strcmp(got, want)) {
		printf("ERROR %s expected \"%s\", got \"%s\"\n", who, want, got);
		fflush(stdout);
		exit(1);
	}
}

/* Both ends of the connection and the listener keep their ports. */
static void same_ports(int fd, int local, int peer)
{
	int l = port_of(fd, 0), p = port_of(fd, 1);
	if (l != local || p != peer) {
		printf("ERROR %s ports changed: local %d peer %d, were %d and %d\n", who, l, p, local, peer);
		fflush(stdout);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 100;
	setvbuf(stdout, 0, _IOLBF, 0);
	struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&at, sizeof at) != 0 || listen(l, 4) != 0)
		fail("listen");
	int port = port_of(l, 0);
	printf("listening port %d\n", port);
	pid_t child = fork();
	if (child < 0)
		fail("fork");
	if (child == 0) {
		who = "child";
		close(l);
		int c = socket(AF_INET, SOCK_STREAM, 0);
		at.sin_port = htons((uint16_t)port);
		if (c < 0 || connect(c, (struct sockaddr *)&at, sizeof at) != 0)
			fail("connect");
		int mine = port_of(c, 0);
		printf("client port %d\n", mine);
		for (int i = 0; i < steps; i++) {
			same_ports(c, mine, port);
			write_line(c, "ping", i);
			expect(c, "pong", i);
			pace_ms(20);
		}
		write_line(c, "bye", steps);
		printf("child done\n");
		return 0;
	}
	int s = accept(l, 0, 0);
	if (s < 0)
		fail("accept");
	int client = port_of(s, 1);
	for (int i = 0; i < steps; i++) {
		if (port_of(l, 0) != port) {
			printf("ERROR the listener moved from port %d to %d\n", port, port_of(l, 0));
			exit(1);
		}
		same_ports(s, port, client);
		expect(s, "ping", i);
		write_line(s, "pong", i);
		printf("step %d\n", i);
	}
	expect(s, "bye", steps);
	int status;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status)) {
		printf("ERROR the child did not end well\n");
		return 1;
	}
	printf("done\n");
	return 0;
}
