/* Who holds a TCP port, and the killed run's TIME-WAIT entries
 * (docs/design.md, "TCP and UDP"), asked of the kernel through sock_diag
 * (NETLINK_SOCK_DIAG, inet_diag) by the restore host, before any process
 * runs.
 *
 * A kill -9 closes the session's connections; the end that closed first
 * stays in TIME-WAIT for a minute, on the very ports the restart binds
 * again. An entry made by a socket without SO_REUSEADDR blocks even a
 * bind with SO_REUSEADDR. The entries of the connections the restart
 * brings back are removed (SOCK_DESTROY, which needs CAP_NET_ADMIN over
 * the network namespace); without that right the restart waits for them
 * to expire where it must have the port. A port that is still taken is
 * reported by what holds it. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sockets.h"

#ifndef SOCK_DESTROY
#define SOCK_DESTROY 21
#endif

/* One socket as inet_diag reports it, its addresses as sockets.h keeps
 * them (IPv4 as ::ffff:a.b.c.d). */
struct diag_sock {
	struct inet_diag_msg m;
	struct ck_img_inaddr local, peer;
};

static void to_inaddr(int family, const __be32 *words, __be16 port, struct ck_img_inaddr *a)
{
	memset(a, 0, sizeof *a);
	a->set = 1;
	a->port = ntohs(port);
	if (family == AF_INET) {
		a->addr[10] = a->addr[11] = 0xff;
		memcpy(a->addr + 12, words, 4);
	} else {
		memcpy(a->addr, words, 16);
	}
}

static int any_address(const uint8_t *a)
{
	static const uint8_t any6[16], any4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
	return !memcmp(a, any6, 16) || !memcmp(a, any4, 16);
}

/* at (a socket's local address) is on want's port, and on want's address
 * unless want is a wildcard */
static int on_address(const struct ck_img_inaddr *at, const struct ck_img_inaddr *want)
{
	return at->port == want->port && (any_address(want->addr) || !memcmp(at->addr, want->addr, 16));
}

static int same(const struct ck_img_inaddr *a, const struct ck_img_inaddr *b)
{
	return a->port == b->port && !memcmp(a->addr, b->addr, 16);
}

/* Calls each(s, arg) for every TCP socket of both families in the states
 * given (a bit per TCP_* state); -errno when sock_diag cannot be asked. */
static int dump_tcp(uint32_t states, void (*each)(const struct diag_sock *, void *), void *arg)
{
	static const int families[] = {AF_INET, AF_INET6};
	for (int fi = 0; fi < 2; fi++) {
		int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
		if (nl < 0)
			return -errno;
		struct {
			struct nlmsghdr h;
			struct inet_diag_req_v2 r;
		} q;
		memset(&q, 0, sizeof q);
		q.h.nlmsg_len = sizeof q;
		q.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
		q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		q.r.sdiag_family = (uint8_t)families[fi];
		q.r.sdiag_protocol = IPPROTO_TCP;
		q.r.idiag_states = states;
		struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
		if (sendto(nl, &q, sizeof q, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
			int e = errno;
			close(nl);
			return -e;
		}
		static char buf[32768];
		for (int done = 0; !done;) {
			ssize_t r = recv(nl, buf, sizeof buf, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				int e = r < 0 ? errno : EIO;
				close(nl);
				return -e;
			}
			for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)r); h = NLMSG_NEXT(h, r)) {
				if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
					done = 1;
					break;
				}
				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
					continue;
				struct diag_sock s;
				memcpy(&s.m, NLMSG_DATA(h), sizeof s.m);
				to_inaddr(s.m.idiag_family, s.m.id.idiag_src, s.m.id.idiag_sport, &s.local);
				to_inaddr(s.m.idiag_family, s.m.id.idiag_dst, s.m.id.idiag_dport, &s.peer);
				each(&s, arg);
			}
		}
		close(nl);
	}
	return 0;
}

/* The states a killed run's connection passes through after its socket
 * was closed with the process: TIME-WAIT for a minute, and for a few
 * moments before it the closing states of a socket no process holds any
 * more, which hold the port as well (a restart right after the kill can
 * meet them). */
#define CLOSING_STATES                                                                                                  \
	((1u << TCP_TIME_WAIT) | (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) | (1u << TCP_CLOSING) | (1u << TCP_LAST_ACK))

/* Removes one TIME-WAIT entry or closing orphan; 0 or -errno (-EPERM
 * without CAP_NET_ADMIN over the network namespace). */
static int destroy(const struct diag_sock *s)
{
	int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -errno;
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} q;
	memset(&q, 0, sizeof q);
	q.h.nlmsg_len = sizeof q;
	q.h.nlmsg_type = SOCK_DESTROY;
	q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	q.r.sdiag_family = s->m.idiag_family;
	q.r.sdiag_protocol = IPPROTO_TCP;
	q.r.idiag_states = CLOSING_STATES;
	q.r.id = s->m.id;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	int err = -EIO;
	char buf[512];
	if (sendto(nl, &q, sizeof q, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
		err = -errno;
	else {
		ssize_t r = recv(nl, buf, sizeof buf, 0);
		const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
		if (r >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && h->nlmsg_type == NLMSG_ERROR)
			err = ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
		else if (r < 0)
			err = -errno;
	}
	close(nl);
	return err;
}

struct clearing {
	const struct ck_tw_own *own;
	size_t n;
	size_t removed, kept;
	int denied; /* the errno of a refused removal */
};

/* The entry is one the restart brings back: the four addresses of a
 * connection of the images, or on a listener's address (the connections
 * the killed listener had accepted). */
static int is_own(const struct ck_tw_own *own, size_t n, const struct diag_sock *s)
{
	for (size_t i = 0; i < n; i++) {
		if (own[i].peer.set ? same(&s->local, &own[i].local) && same(&s->peer, &own[i].peer)
				    : on_address(&s->local, &own[i].local))
			return 1;
	}
	return 0;
}

static void clear_one(const struct diag_sock *s, void *arg)
{
	struct clearing *c = arg;
	/* a closing socket a process still holds (inode) is not the killed run's */
	if (!is_own(c->own, c->n, s) || (s->m.idiag_state != TCP_TIME_WAIT && s->m.idiag_inode != 0))
		return;
	int r = destroy(s);
	if (r == 0)
		c->removed++;
	else
		c->kept++, c->denied = -r;
}

CK_HIDDEN void ck_tw_clear(const struct ck_tw_own *own, size_t n)
{
	if (!n)
		return;
	struct clearing c = {own, n, 0, 0, 0};
	int r = dump_tcp(CLOSING_STATES, clear_one, &c);
	if (r < 0)
		ck_verbose("cannot list TIME-WAIT entries (sock_diag: %s); ports they hold may be taken", strerror(-r));
	if (c.removed)
		ck_verbose("removed %zu TIME-WAIT entries the killed run's connections left on their ports", c.removed);
	if (c.kept)
		ck_verbose("%zu TIME-WAIT entries of the killed run's connections stay (%s: removing them needs "
			   "CAP_NET_ADMIN); a port they hold is waited for or replaced",
			   c.kept, strerror(c.denied));
}

struct holders {
	const struct ck_img_inaddr *at;
	const struct ck_tw_own *own;
	size_t n;
	size_t live, tw, tw_own;
	unsigned tw_expires_ms; /* the latest expiry of the TIME-WAIT entries */
	int live_state;
	unsigned live_uid;
};

static void count_holder(const struct diag_sock *s, void *arg)
{
	struct holders *h = arg;
	if (!on_address(&s->local, h->at) && !(any_address(s->local.addr) && s->local.port == h->at->port))
		return;
	if (s->m.idiag_state == TCP_TIME_WAIT) {
		h->tw++;
		h->tw_own += is_own(h->own, h->n, s);
		if (s->m.idiag_expires > h->tw_expires_ms)
			h->tw_expires_ms = s->m.idiag_expires;
	} else if (!h->live++ || s->m.idiag_state == TCP_LISTEN) {
		h->live_state = s->m.idiag_state;
		h->live_uid = s->m.idiag_uid;
	}
}

static const char *state_name(int st)
{
	switch (st) {
	case TCP_LISTEN:
		return "a listening socket";
	case TCP_ESTABLISHED:
		return "a connection";
	case TCP_CLOSE:
		return "a bound socket";
	default:
		return "a closing connection";
	}
}

CK_HIDDEN int ck_tw_port_wait(const struct ck_img_inaddr *at, const struct ck_tw_own *own, size_t n, char *why,
			      size_t whylen)
{
	struct holders h;
	memset(&h, 0, sizeof h);
	h.at = at, h.own = own, h.n = n;
	int r = dump_tcp(~0u, count_holder, &h);
	if (r < 0) {
		snprintf(why, whylen, "another program uses it now (sock_diag cannot tell what holds it: %s)", strerror(-r));
		return 0;
	}
	if (h.live) {
		snprintf(why, whylen, "%s of user %u holds it now", state_name(h.live_state), h.live_uid);
		return 0;
	}
	if (!h.tw) {
		/* UDP, or a socket gone between bind and the question */
		snprintf(why, whylen, "another program uses it now");
		return 0;
	}
	if (h.tw_own < h.tw) {
		snprintf(why, whylen,
			 "%zu TIME-WAIT entries of earlier connections hold it (%zu of them not of connections this "
			 "restart brings back) for another %u s; restart again after that",
			 h.tw, h.tw - h.tw_own, (h.tw_expires_ms + 999) / 1000);
		return -1;
	}
	/* only the killed run's own entries, which this process may not
	 * remove: they expire within a minute */
	/* an entry whose timer ran out lingers a moment before it goes */
	unsigned ms = h.tw_expires_ms > 200 ? h.tw_expires_ms + 20 : 200;
	ck_verbose("port %d is held by %zu TIME-WAIT entries of the killed run's connections; waiting %u ms for them "
		   "to expire (a restart as root removes them at once)",
		   at->port, h.tw, ms);
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return 1;
}
