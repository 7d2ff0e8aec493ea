/*
 * udpshut: UDP sockets the program shut down, which the kernel remembers
 * for UDP too: a connected pair on loopback, one end shut for sending
 * (SHUT_WR) and the other for receiving (SHUT_RD), and an unbound one shut
 * both ways (SHUT_RDWR, which says ENOTCONN and shuts it all the same).
 * Every step checks: sending on a socket shut for sending fails with
 * EPIPE, and poll shows one shut for receiving as POLLRDHUP.
 * A difference prints "FAIL ...".
 *
 *   udpshut [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

static void expect_epipe(int fd, const char *what)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ssize_t n = sendto(fd, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
	if (n >= 0 || errno != EPIPE) {
		say("FAIL sending on %s: %s, not EPIPE", what, n >= 0 ? "it was sent" : strerror(errno));
		exit(1);
	}
}

static void expect_rdhup(int fd, const char *what)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	if (poll(&p, 1, 0) != 1 || !(p.revents & POLLRDHUP)) {
		say("FAIL poll does not show %s shut for receiving", what);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	long steps = 30;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) }, b = a;
	socklen_t len = sizeof a;
	int x = socket(AF_INET, SOCK_DGRAM, 0), y = socket(AF_INET, SOCK_DGRAM, 0), z = socket(AF_INET, SOCK_DGRAM, 0);
	if (x < 0 || y < 0 || z < 0 || bind(x, (struct sockaddr *)&a, sizeof a) || bind(y, (struct sockaddr *)&b, sizeof b) ||
	    getsockname(x, (struct sockaddr *)&a, &len) || (len = sizeof b, getsockname(y, (struct sockaddr *)&b, &len)) ||
	    connect(x, (struct sockaddr *)&b, sizeof b) || connect(y, (struct sockaddr *)&a, sizeof a))
		die("a connected pair");
	if (shutdown(x, SHUT_WR) || shutdown(y, SHUT_RD))
		die("shutdown");
	if (shutdown(z, SHUT_RDWR) == 0 || errno != ENOTCONN)
		die("shutdown of an unconnected socket");
	say("shut");
	for (long k = 1; k <= steps; k++) {
		expect_epipe(x, "the end shut for sending");
		expect_rdhup(y, "the end shut for receiving");
		expect_epipe(z, "the unconnected socket shut both ways");
		expect_rdhup(z, "the unconnected socket shut both ways");
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
