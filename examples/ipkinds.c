/*
 * ipkinds: IP sockets other than TCP and UDP, as network tools have them:
 *  - two UDP-Lite sockets (one connected to the other) with partial
 *    checksum coverage (UDPLITE_SEND_CSCOV, UDPLITE_RECV_CSCOV), a TTL the
 *    program set (IP_TTL 33), and always one datagram in flight;
 *  - an ICMP "ping" socket (SOCK_DGRAM, IPPROTO_ICMP) that pings 127.0.0.1
 *    every step with the identifier it was bound to;
 *  - a raw ICMP socket (root) whose ICMP_FILTER lets no type through.
 * Every step checks the options, the identifier, the datagram in flight
 * (its number) and the echo reply; a wrong answer prints "FAIL ...".
 *
 *   ipkinds [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <arpa/inet.h>
#include <linux/icmp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDPLITE_SEND_CSCOV
#define UDPLITE_SEND_CSCOV 10
#define UDPLITE_RECV_CSCOV 11
#endif

static int int_opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	return getsockopt(fd, level, name, &v, &l) ? -1 : v;
}

static void set_opt(int fd, int level, int name, int v, const char *what)
{
	if (setsockopt(fd, level, name, &v, sizeof v))
		die(what);
}

static int port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof a;
	return getsockname(fd, (struct sockaddr *)&a, &l) ? -1 : ntohs(a.sin_port);
}

static void send_number(int fd, long n)
{
	char b[32];
	int l = snprintf(b, sizeof b, "dgram %ld", n);
	if (send(fd, b, (size_t)l, 0) != l)
		die("send (UDP-Lite)");
}

/* The datagram in flight is number n. */
static int got_number(long step, int fd, long n)
{
	char b[64], want[32];
	int l = snprintf(want, sizeof want, "dgram %ld", n);
	struct pollfd p = {fd, POLLIN, 0};
	ssize_t r = poll(&p, 1, 2000) == 1 ? recv(fd, b, sizeof b, MSG_DONTWAIT) : -1;
	if (r != l || memcmp(b, want, (size_t)l)) {
		say("FAIL step %ld: the UDP-Lite datagram in flight is '%.*s', not '%s'", step, (int)(r > 0 ? r : 0), b, want);
		return 0;
	}
	return 1;
}

static int ping_once(long step, int fd, int ident)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct icmphdr h = {.type = ICMP_ECHO};
	h.un.echo.sequence = htons((uint16_t)step);
	if (sendto(fd, &h, sizeof h, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)sizeof h)
		die("sendto (ping)");
	struct icmphdr r;
	struct pollfd p = {fd, POLLIN, 0};
	if (poll(&p, 1, 2000) != 1 || recv(fd, &r, sizeof r, 0) != (ssize_t)sizeof r || r.type != ICMP_ECHOREPLY ||
	    ntohs(r.un.echo.sequence) != (uint16_t)step || ntohs(r.un.echo.id) != ident) {
		say("FAIL step %ld: no echo reply to the ping with identifier %d", step, ident);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof lo;
	int a = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE), b = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
	if (a < 0 || b < 0 || bind(a, (struct sockaddr *)&lo, sizeof lo) || getsockname(a, (struct sockaddr *)&lo, &len) ||
	    connect(b, (struct sockaddr *)&lo, sizeof lo))
		die("the UDP-Lite sockets");
	set_opt(b, IPPROTO_UDPLITE, UDPLITE_SEND_CSCOV, 20, "UDPLITE_SEND_CSCOV");
	set_opt(a, IPPROTO_UDPLITE, UDPLITE_RECV_CSCOV, 20, "UDPLITE_RECV_CSCOV");
	set_opt(b, IPPROTO_IP, IP_TTL, 33, "IP_TTL");

	int ping = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(4242)};
	if (ping < 0 || bind(ping, (struct sockaddr *)&any, sizeof any))
		die("the ping socket (net.ipv4.ping_group_range must hold the group)");
	int ident = port_of(ping);

	int raw = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	struct icmp_filter none = {~0u};
	if (raw < 0 || setsockopt(raw, SOL_RAW, ICMP_FILTER, &none, sizeof none))
		die("the raw ICMP socket (run as root)");
	say("ready: ping identifier %d", ident);

	send_number(b, 0);
	for (long k = 1; k <= steps; k++) {
		struct icmp_filter f = {0};
		socklen_t fl = sizeof f;
		if (int_opt(b, IPPROTO_UDPLITE, UDPLITE_SEND_CSCOV) != 20 || int_opt(a, IPPROTO_UDPLITE, UDPLITE_RECV_CSCOV) != 20 ||
		    int_opt(b, IPPROTO_IP, IP_TTL) != 33) {
			say("FAIL step %ld: UDP-Lite coverage %d/%d or TTL %d, not 20/20 and 33", k,
			    int_opt(b, IPPROTO_UDPLITE, UDPLITE_SEND_CSCOV), int_opt(a, IPPROTO_UDPLITE, UDPLITE_RECV_CSCOV),
			    int_opt(b, IPPROTO_IP, IP_TTL));
			return 1;
		}
		if (port_of(ping) != ident || getsockopt(raw, SOL_RAW, ICMP_FILTER, &f, &fl) || f.data != ~0u) {
			say("FAIL step %ld: ping identifier %d (not %d) or raw filter %#x (not all blocked)", k, port_of(ping), ident, f.data);
			return 1;
		}
		send_number(b, k);
		if (!got_number(k, a, k - 1) || !ping_once(k, ping, ident))
			return 1;
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
