/*
 * freebind: sockets bound to addresses that are not this machine's, which
 * IP_FREEBIND allows (a server that starts before its address is up):
 * a UDP socket and a TCP listener on 192.0.2.77 (IPv4 documentation
 * range) that keep the flag, and an IPv6 UDP socket on 2001:db8::77 that
 * set the flag through SOL_IP, bound, and cleared it again.
 *
 * Every step checks each socket's address and its IP_FREEBIND value, and
 * that the listener still listens; a difference prints "FAIL ..." and
 * exits 1.
 *
 *   freebind [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

struct sk {
	const char *name;
	int fd;
	int keep; /* IP_FREEBIND after bind */
	struct sockaddr_storage addr;
	socklen_t len;
};

static void fail_errno(const char *what)
{
	say("FAIL %s: %s", what, strerror(errno));
	exit(1);
}

static void open_bound(struct sk *s, int family, int type, const char *text)
{
	int one = 1, zero = 0;
	s->fd = socket(family, type, 0);
	if (s->fd < 0)
		fail_errno("socket");
	if (setsockopt(s->fd, SOL_IP, IP_FREEBIND, &one, sizeof one))
		fail_errno("IP_FREEBIND");
	memset(&s->addr, 0, sizeof s->addr);
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&s->addr;
		a->sin_family = AF_INET;
		inet_pton(AF_INET, text, &a->sin_addr);
		s->len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->addr;
		a->sin6_family = AF_INET6;
		inet_pton(AF_INET6, text, &a->sin6_addr);
		s->len = sizeof *a;
	}
	if (bind(s->fd, (struct sockaddr *)&s->addr, s->len))
		fail_errno(s->name);
	if (!s->keep && setsockopt(s->fd, SOL_IP, IP_FREEBIND, &zero, sizeof zero))
		fail_errno("clearing IP_FREEBIND");
	s->len = sizeof s->addr; /* the port the kernel chose */
	if (getsockname(s->fd, (struct sockaddr *)&s->addr, &s->len))
		fail_errno("getsockname");
}

static void check(const struct sk *s)
{
	struct sockaddr_storage now;
	socklen_t len = sizeof now;
	int v = -1;
	socklen_t vl = sizeof v;
	if (getsockname(s->fd, (struct sockaddr *)&now, &len) || len != s->len || memcmp(&now, &s->addr, len)) {
		say("FAIL %s: its address changed", s->name);
		exit(1);
	}
	if (getsockopt(s->fd, SOL_IP, IP_FREEBIND, &v, &vl) || v != s->keep) {
		say("FAIL %s: IP_FREEBIND is %d, not %d", s->name, v, s->keep);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	struct sk udp4 = { .name = "UDP on 192.0.2.77", .keep = 1 };
	struct sk tcp4 = { .name = "TCP listener on 192.0.2.77", .keep = 1 };
	struct sk udp6 = { .name = "UDP on 2001:db8::77", .keep = 0 };
	open_bound(&udp4, AF_INET, SOCK_DGRAM, "192.0.2.77");
	open_bound(&tcp4, AF_INET, SOCK_STREAM, "192.0.2.77");
	if (listen(tcp4.fd, 4))
		fail_errno("listen");
	open_bound(&udp6, AF_INET6, SOCK_DGRAM, "2001:db8::77");
	say("bound");
	for (long k = 1; k <= steps; k++) {
		check(&udp4);
		check(&tcp4);
		check(&udp6);
		int acc = -1;
		socklen_t al = sizeof acc;
		if (getsockopt(tcp4.fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) || acc != 1) {
			say("FAIL the listener no longer listens");
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
