/* TCP and UDP over IPv4 and IPv6 (docs/design.md, "TCP and UDP").
 *
 * Save (in the checkpoint signal handler: raw syscalls, no malloc): a
 * socket's "inet" map holds its local and peer address, its TCP state, the
 * listen backlog, the bytes in its receive queue (peeked, never consumed),
 * the bytes it wrote that TCP has not sent yet (read through TCP_REPAIR's
 * send queue, which needs CAP_NET_ADMIN), and a UDP socket's queued
 * datagrams with their sources.
 *
 * Restore (before any process runs, once per socket): connections whose
 * two ends are both in the session are made again over the same
 * addresses (the client end bound to its old port connects to a temporary
 * listener on the server end's address) and each end's saved receive
 * queue is written into it by the other end; listeners are bound again;
 * a connection to a peer outside the session comes back reset; one whose
 * peer had closed comes back with its bytes and then EOF. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "sockets.h"
#include "sys.h"

#ifndef SIOCOUTQNSD
#define SIOCOUTQNSD 0x894B
#endif
#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif

/* The kernel's struct tcp_info as far as we read it (glibc's stops
 * before the fields that tell whether data was sent). */
struct ck_tcp_info {
	uint8_t state, ca_state, retransmits, probes, backoff, options, wscale, app_limited;
	uint32_t rto, ato, snd_mss, rcv_mss, unacked, sacked, lost, retrans, fackets;
	uint32_t last_data_sent, last_ack_sent, last_data_recv, last_ack_recv;
	uint32_t pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd, advmss, reordering;
	uint32_t rcv_rtt, rcv_space, total_retrans;
	uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
	uint32_t segs_out, segs_in, notsent_bytes, min_rtt, data_segs_in, data_segs_out;
};

#define MAX_DGRAMS 4096
#define DGRAM_MAX 65536

/* IPPROTO_TCP / IPPROTO_IP / IPPROTO_IPV6 options programs set, added to
 * the socket's options list (see sockets.c), and the program's peek
 * offset. Buffer sizes are not among them: the kernel reports them doubled
 * and tunes TCP's itself unless the program set them. */
static const int tcp_options[] = {TCP_NODELAY, TCP_CORK, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT,
				  TCP_NOTSENT_LOWAT, TCP_DEFER_ACCEPT};
static const int ip_options[] = {IP_TOS, IP_FREEBIND, IP_PKTINFO, IP_RECVERR};
static const int ipv6_options[] = {IPV6_V6ONLY, IPV6_TCLASS, IPV6_RECVPKTINFO, IPV6_RECVERR};

CK_HIDDEN void ck_inet_options_save(struct cb_enc *e, const struct ck_fd *f, int family, int type)
{
	if (type == SOCK_STREAM)
		for (size_t i = 0; i < sizeof tcp_options / sizeof tcp_options[0]; i++)
			ck_sockopt_put(e, f->fd, IPPROTO_TCP, tcp_options[i]);
	if (family == AF_INET)
		for (size_t i = 0; i < sizeof ip_options / sizeof ip_options[0]; i++)
			ck_sockopt_put(e, f->fd, IPPROTO_IP, ip_options[i]);
	if (family == AF_INET6) {
		for (size_t i = 0; i < sizeof ipv6_options / sizeof ipv6_options[0]; i++)
			ck_sockopt_put(e, f->fd, IPPROTO_IPV6, ipv6_options[i]);
		/* one flag for both families (IPV6_FREEBIND sets it too) */
		ck_sockopt_put(e, f->fd, IPPROTO_IP, IP_FREEBIND);
	}
	ck_sockopt_put(e, f->fd, SOL_SOCKET, SO_PEEK_OFF);
}

/* ---- addresses ---- */

/* struct ck_img_inaddr (restore.h): IPv4 kept as ::ffff:a.b.c.d */
#define inaddr ck_img_inaddr

static void from_sockaddr(const struct sockaddr_storage *ss, struct inaddr *a)
{
	ck_memset(a, 0, sizeof *a);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		a->addr[10] = a->addr[11] = 0xff;
		ck_memcpy(a->addr + 12, &in->sin_addr, 4);
		a->port = ntohs(in->sin_port);
		a->set = 1;
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		ck_memcpy(a->addr, &in6->sin6_addr, 16);
		a->port = ntohs(in6->sin6_port);
		a->set = 1;
	}
}

static int socket_address(int fd, int peer, struct inaddr *a)
{
	struct sockaddr_storage ss;
	unsigned len = sizeof ss;
	ck_memset(&ss, 0, sizeof ss);
	long r = peer ? ck_getpeername(fd, &ss, &len) : ck_getsockname(fd, &ss, &len);
	if (r != 0)
		return a->set = 0;
	from_sockaddr(&ss, a);
	return a->set;
}

/* (the save side runs in a signal handler: no libc, not even memcmp) */
static int bytes_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static int same_address(const struct inaddr *a, const struct inaddr *b)
{
	return a->set && b->set && a->port == b->port && bytes_equal(a->addr, b->addr, 16);
}

static int is_v4(const uint8_t *a)
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return bytes_equal(a, prefix, 12);
}

static int is_loopback(const uint8_t *a)
{
	static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	return is_v4(a) ? a[12] == 127 : bytes_equal(a, lo6, 16);
}

static void put_address(struct cb_enc *e, const char *key, const struct inaddr *a)
{
	cb_text(e, key);
	cb_array(e, 2);
	cb_bytes(e, is_v4(a->addr) ? a->addr + 12 : a->addr, is_v4(a->addr) ? 4 : 16);
	cb_uint(e, (uint64_t)a->port);
}

/* ---- save ---- */

static void fail_socket(struct ck_writer *w, const struct ck_fd *f, long err, const char *what, const char *detail,
			const struct inaddr *local, const struct inaddr *peer)
{
	struct ck_str m;
	ck_writer_fail(w, err, what);
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, f->fd);
	if (local && local->set) {
		ck_str_add(&m, " (TCP port ");
		ck_str_dec(&m, local->port);
		if (peer && peer->set) {
			ck_str_add(&m, " to port ");
			ck_str_dec(&m, peer->port);
		}
		ck_str_add(&m, ")");
	}
	ck_str_add(&m, ": ");
	ck_str_add(&m, detail);
}

static void put_queue(struct ck_writer *w, const char *key, const char *buf, long n)
{
	struct cb_enc *e = &w->meta;
	uint32_t crc = 0;
	uint64_t off = ck_image_put_bytes(w, buf, (size_t)n, &crc);
	cb_text(e, key);
	cb_array(e, 3);
	cb_uint(e, off);
	cb_uint(e, (uint64_t)n);
	cb_uint(e, crc);
}

static char *scratch_buffer(long n)
{
	long b = ck_mmap(0, CK_PAGE_UP(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return b < 0 && b > -4096 ? 0 : (char *)b;
}

/* Peeks n bytes of a stream's receive queue from its start, whatever peek
 * offset the program uses (put back afterwards). Returns the count. */
static long peek_stream(int fd, char *buf, long n)
{
	int saved = -1, zero = 0;
	ck_sockopt_int(fd, SOL_SOCKET, SO_PEEK_OFF, &saved);
	if (ck_setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) != 0)
		return -EOPNOTSUPP;
	long got = 0;
	while (got < n) {
		long k = ck_recvfrom(fd, buf + got, (size_t)(n - got), MSG_PEEK | MSG_DONTWAIT);
		if (k <= 0)
			break;
		got += k;
	}
	ck_setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &saved, sizeof saved);
	return got;
}

/* Reads the last n bytes of a TCP send queue (bytes written but not sent)
 * in repair mode; -EPERM without CAP_NET_ADMIN. */
static long peek_unsent(int fd, char *buf, long outq, long n)
{
	int on = TCP_REPAIR_ON, off = TCP_REPAIR_OFF_NO_WP, q = TCP_SEND_QUEUE, noq = TCP_NO_QUEUE, reuse = 0;
	ck_sockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, &reuse);
	long r = ck_setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof on);
	if (r != 0)
		return r;
	long got = 0;
	if (ck_setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof q) == 0) {
		while (got < outq) {
			long k = ck_recvfrom(fd, buf + got, (size_t)(outq - got), MSG_PEEK | MSG_DONTWAIT);
			if (k <= 0)
				break;
			got += k;
		}
		ck_setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &noq, sizeof noq);
	}
	ck_setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof off);
	/* leaving repair mode forgets SO_REUSEADDR */
	ck_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
	if (got < outq)
		return -EIO;
	if (n < outq)
		ck_memcpy(buf, buf + outq - n, (size_t)n);
	return n;
}

/* A connection whose peer is a listener of this process that has not
 * accepted it yet: the peer end cannot be read. */
static int peer_not_accepted(const struct ck_fdtab *t, const struct inaddr *local, const struct inaddr *peer)
{
	int listener = 0;
	for (int i = 0; i < t->n; i++) {
		const struct ck_fd *o = &t->fds[i];
		struct inaddr ol, op;
		int type = 0, acc = 0;
		if ((o->st.mode & S_IFMT) != S_IFSOCK || !ck_sockopt_int(o->fd, SOL_SOCKET, SO_TYPE, &type) || type != SOCK_STREAM ||
		    !socket_address(o->fd, 0, &ol))
			continue;
		ck_sockopt_int(o->fd, SOL_SOCKET, SO_ACCEPTCONN, &acc);
		if (acc && ol.port == peer->port)
			listener = 1;
		if (!acc && same_address(&ol, peer) && socket_address(o->fd, 1, &op) && same_address(&op, local))
			return 0;
	}
	return listener;
}

static void save_tcp_queues(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f,
			    const struct ck_tcp_info *ti, const struct inaddr *local, const struct inaddr *peer)
{
	int inq = 0, outq = 0, unsent = 0;
	ck_ioctl(f->fd, FIONREAD, &inq);
	ck_ioctl(f->fd, TIOCOUTQ, &outq);
	ck_ioctl(f->fd, SIOCOUTQNSD, &unsent);
	/* after shutdown(SHUT_WR), the FIN takes a sequence number of its own,
	 * which both counts include while it is not sent: it is no byte (the
	 * restore's own shutdown sends it again) */
	if ((ti->state == TCP_FIN_WAIT1 || ti->state == TCP_CLOSING || ti->state == TCP_LAST_ACK) && unsent > 0) {
		unsent--;
		outq--;
	}
	if (ti->state == TCP_ESTABLISHED && ti->data_segs_out > 0 && peer->set && is_loopback(peer->addr) &&
	    peer_not_accepted(t, local, peer)) {
		fail_socket(w, f, -EOPNOTSUPP, "the program has a connection with bytes its own server has not accepted yet",
			    "the bytes it sent wait in a connection the listener has not accepted, where ckrun cannot "
			    "read them; take the checkpoint once the server accepted it",
			    local, peer);
		return;
	}
	if (inq > 0) {
		char *buf = scratch_buffer(inq);
		long n = buf ? peek_stream(f->fd, buf, inq) : -ENOMEM;
		if (n < 0)
			fail_socket(w, f, n, "cannot copy the bytes queued in a TCP connection", "peeking its receive queue failed",
				    local, peer);
		else if (n > 0)
			put_queue(w, "recv_queue", buf, n);
		if (buf)
			ck_munmap(buf, CK_PAGE_UP(inq));
	}
	if (unsent > 0) {
		/* on loopback, bytes TCP has sent are in the peer's receive
		 * queue; those it has not sent yet (the peer's window is full)
		 * exist only in this send queue */
		char *buf = scratch_buffer(outq > unsent ? outq : unsent);
		long n = buf ? peek_unsent(f->fd, buf, outq > unsent ? outq : unsent, unsent) : -ENOMEM;
		if (n == -EPERM)
			fail_socket(w, f, n, "the program has a TCP connection with bytes written but not sent yet",
				    "its peer's window is full, and reading the unsent bytes needs TCP_REPAIR, which needs "
				    "CAP_NET_ADMIN (run as root), or checkpoint once the peer has read",
				    local, peer);
		else if (n < 0)
			fail_socket(w, f, n, "cannot copy the bytes not yet sent on a TCP connection",
				    "reading its send queue in repair mode failed", local, peer);
		else
			put_queue(w, "unsent_queue", buf, n);
		if (buf)
			ck_munmap(buf, CK_PAGE_UP(outq > unsent ? outq : unsent));
	}
}

static void save_tcp(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f, const struct inaddr *local,
		     const struct inaddr *peer)
{
	struct cb_enc *e = &w->meta;
	struct ck_tcp_info ti;
	unsigned len = sizeof ti;
	ck_memset(&ti, 0, sizeof ti);
	if (ck_getsockopt(f->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
		fail_socket(w, f, -EIO, "cannot read a TCP socket's state", "TCP_INFO failed", local, peer);
		return;
	}
	cb_kv_uint(e, "tcp_state", ti.state);
	if (ti.state == TCP_LISTEN) {
		cb_kv_uint(e, "backlog", ti.sacked); /* a listener's sacked is its backlog */
		return;
	}
	if (ti.state != TCP_CLOSE && ti.state != TCP_SYN_SENT)
		save_tcp_queues(w, t, f, &ti, local, peer);
}

/* Every queued datagram, in order, with its source. */
static void save_datagrams(struct ck_writer *w, const struct ck_fd *f)
{
	struct cb_enc *e = &w->meta;
	int saved = -1, zero = 0;
	char *buf = scratch_buffer(DGRAM_MAX);
	if (!buf) {
		fail_socket(w, f, -ENOMEM, "cannot copy the datagrams queued on a UDP socket", "no memory", 0, 0);
		return;
	}
	ck_sockopt_int(f->fd, SOL_SOCKET, SO_PEEK_OFF, &saved);
	if (ck_setsockopt(f->fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) != 0) {
		fail_socket(w, f, -EOPNOTSUPP, "cannot copy the datagrams queued on a UDP socket",
			    "the kernel refuses SO_PEEK_OFF", 0, 0);
		ck_munmap(buf, DGRAM_MAX);
		return;
	}
	cb_text(e, "datagrams");
	cb_array_open(e);
	for (int i = 0; i < MAX_DGRAMS; i++) {
		struct sockaddr_storage ss;
		unsigned alen = sizeof ss;
		ck_memset(&ss, 0, sizeof ss);
		long n = ck_recvfrom_addr(f->fd, buf, DGRAM_MAX, MSG_PEEK | MSG_DONTWAIT, &ss, &alen);
		if (n < 0)
			break;
		struct inaddr from;
		from_sockaddr(&ss, &from);
		uint32_t crc = 0;
		uint64_t off = ck_image_put_bytes(w, buf, (size_t)n, &crc);
		cb_array(e, 5);
		cb_bytes(e, is_v4(from.addr) ? from.addr + 12 : from.addr, is_v4(from.addr) ? 4 : 16);
		cb_uint(e, (uint64_t)from.port);
		cb_uint(e, off);
		cb_uint(e, (uint64_t)n);
		cb_uint(e, crc);
		if (n == 0)
			break; /* a peek offset cannot step over an empty datagram */
	}
	cb_close(e);
	ck_setsockopt(f->fd, SOL_SOCKET, SO_PEEK_OFF, &saved, sizeof saved);
	ck_munmap(buf, DGRAM_MAX);
}

/* The address a connect in progress (SYN-SENT) goes to, which getpeername
 * does not tell (ENOTCONN): sock_diag's, found by inode. */
static uint8_t inet_diag_reply[16384] __attribute__((aligned(8)));

/* sock_diag's record of the socket with inode ino (TCP in the given
 * states, or UDP): its message and its shutdown bits (INET_DIAG_SHUTDOWN).
 * Returns whether it was found; the message points into inet_diag_reply. */
static int inet_diag_find(int family, int protocol, uint32_t states, uint64_t ino, const struct inet_diag_msg **msg,
			  uint8_t *shutdown)
{
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} q;
	struct sockaddr_nl kernel;
	int found = 0;
	ck_memset(&q, 0, sizeof q);
	ck_memset(&kernel, 0, sizeof kernel);
	kernel.nl_family = AF_NETLINK;
	q.h.nlmsg_len = sizeof q;
	q.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.r.sdiag_family = (uint8_t)family;
	q.r.sdiag_protocol = (uint8_t)protocol;
	q.r.idiag_states = states;
	long nl = CK_SYS3(SYS_socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return 0;
	if (CK_SYS6(SYS_sendto, nl, &q, sizeof q, 0, &kernel, sizeof kernel) < 0)
		goto out;
	for (;;) {
		long r = ck_recvfrom((int)nl, inet_diag_reply, sizeof inet_diag_reply, 0);
		if (r <= 0)
			goto out;
		for (struct nlmsghdr *h = (struct nlmsghdr *)inet_diag_reply; NLMSG_OK(h, (unsigned long)r);
		     h = NLMSG_NEXT(h, r)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
				goto out;
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof *m) || m->idiag_inode != ino)
				continue;
			*msg = m;
			*shutdown = 0;
			long alen = (long)h->nlmsg_len - (long)NLMSG_LENGTH(sizeof *m);
			for (struct rtattr *at = (struct rtattr *)(m + 1); RTA_OK(at, alen); at = RTA_NEXT(at, alen))
				if (at->rta_type == INET_DIAG_SHUTDOWN && RTA_PAYLOAD(at) >= 1)
					*shutdown = *(const uint8_t *)RTA_DATA(at);
			found = 1;
			goto out;
		}
	}
out:
	ck_close((int)nl);
	return found;
}

static void connecting_peer(int family, uint64_t ino, struct inaddr *peer)
{
	const struct inet_diag_msg *m;
	uint8_t shut;
	if (!inet_diag_find(family, IPPROTO_TCP, 1u << TCP_SYN_SENT, ino, &m, &shut))
		return;
	ck_memset(peer, 0, sizeof *peer);
	if (m->idiag_family == AF_INET) {
		peer->addr[10] = peer->addr[11] = 0xff;
		ck_memcpy(peer->addr + 12, m->id.idiag_dst, 4);
	} else {
		ck_memcpy(peer->addr, m->id.idiag_dst, 16);
	}
	peer->port = ntohs(m->id.idiag_dport);
	peer->set = 1;
}

/* A UDP socket's shutdown (shutdown() works on one, connected or not),
 * which only sock_diag tells; 0 when it cannot tell. */
static uint8_t udp_shutdown(int family, uint64_t ino)
{
	const struct inet_diag_msg *m;
	uint8_t shut = 0;
	if (!inet_diag_find(family, IPPROTO_UDP, ~0u, ino, &m, &shut))
		return 0;
	return shut;
}

CK_HIDDEN void ck_inet_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f, int family, int type,
			    int protocol)
{
	struct cb_enc *e = &w->meta;
	struct inaddr local, peer;
	(void)family;
	if (!((type == SOCK_STREAM && protocol == IPPROTO_TCP) || (type == SOCK_DGRAM && protocol == IPPROTO_UDP))) {
		fail_socket(w, f, -EOPNOTSUPP, "the program has an IP socket ckrun cannot save",
			    "only TCP and UDP sockets are supported (not raw, SCTP, ICMP or UDP-Lite)", 0, 0);
		return;
	}
	socket_address(f->fd, 0, &local);
	socket_address(f->fd, 1, &peer);
	if (type == SOCK_STREAM && !peer.set)
		connecting_peer(family, f->st.ino, &peer);
	cb_text(e, "inet");
	cb_map_open(e);
	put_address(e, "local", &local);
	if (peer.set)
		put_address(e, "peer", &peer);
	if (type == SOCK_STREAM) {
		save_tcp(w, t, f, &local, &peer);
	} else {
		uint8_t shut = udp_shutdown(family, f->st.ino);
		if (shut)
			cb_kv_uint(e, "shutdown", shut & 3);
		save_datagrams(w, f);
	}
	cb_close(e);
}

/* ---- restore host ---- */

static int parse_address(struct cb_dec *d, struct ck_img_inaddr *a)
{
	int64_t n;
	const uint8_t *p;
	size_t len;
	uint64_t port;
	if (!cbd_array(d, &n) || n != 2 || !cbd_bytes(d, &p, &len) || (len != 4 && len != 16) || !cbd_uint(d, &port) ||
	    port > 65535)
		return 0;
	memset(a, 0, sizeof *a);
	if (len == 4) {
		a->addr[10] = a->addr[11] = 0xff;
		memcpy(a->addr + 12, p, 4);
	} else {
		memcpy(a->addr, p, 16);
	}
	a->port = (int)port;
	return a->set = 1;
}

static int parse_queue(struct cb_dec *d, struct ck_img_queue *q)
{
	int64_t n;
	uint64_t crc;
	if (!cbd_array(d, &n) || n != 3 || !cbd_uint(d, &q->off) || !cbd_uint(d, &q->len) ||
	    !cbd_uint_max(d, UINT32_MAX, &crc))
		return 0;
	q->crc = (uint32_t)crc;
	return 1;
}

static int parse_datagrams(struct cb_dec *d, struct ck_img_inet *in)
{
	int64_t n, m;
	size_t cap = 0;
	if (!cbd_array(d, &n))
		return 0;
	while (cbd_next_item(d, &n)) {
		const uint8_t *p;
		size_t len;
		uint64_t port, crc;
		if (in->ndgrams == cap) {
			cap = cap ? 2 * cap : 16;
			in->dgrams = realloc(in->dgrams, cap * sizeof *in->dgrams);
		}
		struct ck_img_dgram *g = &in->dgrams[in->ndgrams++];
		memset(g, 0, sizeof *g);
		if (!cbd_array(d, &m) || m != 5 || !cbd_bytes(d, &p, &len) || (len != 4 && len != 16) ||
		    !cbd_uint_max(d, 65535, &port) || !cbd_uint(d, &g->off) || !cbd_uint(d, &g->len) ||
		    !cbd_uint_max(d, UINT32_MAX, &crc))
			return 0;
		if (len == 4) {
			g->from.addr[10] = g->from.addr[11] = 0xff;
			memcpy(g->from.addr + 12, p, 4);
		} else {
			memcpy(g->from.addr, p, 16);
		}
		g->from.port = (int)port;
		g->from.set = 1;
		g->crc = (uint32_t)crc;
	}
	return !d->error;
}

static int parse_inet(struct cb_dec *d, struct ck_img_inet *in)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		uint64_t v;
		int ok;
		if (cbd_key_is(k, kl, "local"))
			ok = parse_address(d, &in->local);
		else if (cbd_key_is(k, kl, "peer"))
			ok = parse_address(d, &in->peer);
		else if (cbd_key_is(k, kl, "tcp_state"))
			ok = cbd_uint_max(d, INT32_MAX, &v) && (in->tcp_state = (int)v, 1);
		else if (cbd_key_is(k, kl, "backlog"))
			ok = cbd_uint(d, &in->backlog) && (in->has_backlog = 1);
		else if (cbd_key_is(k, kl, "recv_queue"))
			ok = parse_queue(d, &in->recv_q);
		else if (cbd_key_is(k, kl, "unsent_queue"))
			ok = parse_queue(d, &in->unsent_q);
		else if (cbd_key_is(k, kl, "datagrams"))
			ok = parse_datagrams(d, in);
		else if (cbd_key_is(k, kl, "shutdown"))
			ok = cbd_uint_max(d, 3, &in->shutdown);
		else
			ok = cbd_skip(d);
		if (!ok)
			return 0;
	}
	return !d->error;
}

CK_HIDDEN int ck_inet_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s)
{
	if (!cbd_key_is(k, kl, "inet"))
		return 0;
	s->inet_part = calloc(1, sizeof *s->inet_part);
	return parse_inet(d, s->inet_part) ? 1 : -1;
}

/* One socket of the session, made once whoever holds it. */
struct end {
	struct ck_image *img;
	struct ck_img_file *f;
	const struct ck_img_socket *sock;
	struct ck_img_inet *in;
	int fd;
};

static const char *family_name(const struct end *e)
{
	return e->sock->family == AF_INET6 ? "IPv6" : "IPv4";
}

static const char *address_text(const struct ck_img_inaddr *a, char *buf, size_t cap)
{
	if (is_v4(a->addr))
		inet_ntop(AF_INET, a->addr + 12, buf, (socklen_t)cap);
	else
		inet_ntop(AF_INET6, a->addr, buf, (socklen_t)cap);
	return buf;
}

static socklen_t to_sockaddr(int family, const struct ck_img_inaddr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, a->addr + 12, 4);
		in->sin_port = htons((uint16_t)a->port);
		return sizeof *in;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	in6->sin6_family = AF_INET6;
	memcpy(&in6->sin6_addr, a->addr, 16);
	in6->sin6_port = htons((uint16_t)a->port);
	return sizeof *in6;
}

static void set_int(int fd, int level, int name, int v)
{
	setsockopt(fd, level, name, &v, sizeof v);
}

/* An integer option as the image saved it (0 when it did not). */
static int saved_int(const struct ck_img_socket *s, int level, int name)
{
	for (size_t i = 0; i < s->nopts; i++) {
		const struct ck_img_sockopt *o = &s->opts[i];
		if (o->level == level && o->name == name && o->len >= sizeof(int)) {
			int v;
			memcpy(&v, o->val, sizeof v);
			return v;
		}
	}
	return 0;
}

/* The program's SO_REUSEADDR (ckrun sets it while it binds again, so a
 * restart right after kill -9 works despite TIME_WAIT). */
static int saved_reuseaddr(const struct ck_img_socket *s)
{
	return saved_int(s, SOL_SOCKET, SO_REUSEADDR);
}

static const int except_reuseaddr[] = {SO_REUSEADDR, -1};

/* A socket of f's kind with f's options (SO_REUSEADDR on), above base_fd. */
static int new_socket(const struct end *e, int base_fd)
{
	const struct ck_img_socket *s = e->sock;
	int fd = socket(s->family, s->type | SOCK_CLOEXEC, s->protocol);
	if (fd < 0)
		ck_refuse("cannot create the %s socket for descriptor %d of process %d: %s", family_name(e), e->f->fd,
			  e->img->pid, strerror(errno));
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	close(fd);
	if (moved < 0)
		ck_refuse("cannot place the socket for descriptor %d: %s", e->f->fd, strerror(errno));
	ck_sockopts_apply(moved, e->f, e->sock, -1, except_reuseaddr);
	set_int(moved, SOL_SOCKET, SO_REUSEADDR, 1);
	return moved;
}

/* The connections and listeners this restart brings back, whose old
 * TIME-WAIT entries may hold their ports (set by ck_inet_create_shared). */
static struct ck_tw_own *tw_own;
static size_t tw_nown;

/* The socket was bound to an address that is not (or no longer) one of
 * this machine's: the program bound it with IP_FREEBIND, which it may have
 * cleared since. Bound the same way, then given the saved value back. */
static int bind_nonlocal(const struct end *e, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	set_int(fd, IPPROTO_IP, IP_FREEBIND, 1);
	int ok = bind(fd, (const struct sockaddr *)ss, len) == 0;
	int err = errno;
	set_int(fd, IPPROTO_IP, IP_FREEBIND, saved_int(e->sock, IPPROTO_IP, IP_FREEBIND));
	errno = err;
	return ok;
}

static void bind_to(const struct end *e, int fd, const struct ck_img_inaddr *a, const char *role)
{
	struct sockaddr_storage ss;
	char text[64], why[256];
	socklen_t len = to_sockaddr(e->sock->family, a, &ss);
	/* a port held only by the killed run's TIME-WAIT entries (not
	 * removable without CAP_NET_ADMIN) is free again within a minute */
	int err = 0, held = -1;
	snprintf(why, sizeof why, "TIME-WAIT entries of the killed run's connections hold it still");
	for (int tries = 0; tries < 40; tries++) {
		if (bind(fd, (struct sockaddr *)&ss, len) == 0)
			return;
		err = errno;
		if (err == EADDRNOTAVAIL && bind_nonlocal(e, fd, &ss, len))
			return;
		if (err != EADDRINUSE || (held = ck_tw_port_wait(a, tw_own, tw_nown, why, sizeof why)) != 1)
			break;
	}
	errno = err;
	if (errno == EADDRINUSE && held != 0)
		ck_refuse("cannot bind the %s socket of process %d (descriptor %d) to %s port %d again: %s", role,
			  e->img->pid, e->f->fd, address_text(a, text, sizeof text), a->port, why);
	if (errno == EADDRINUSE)
		ck_refuse("cannot bind the %s socket of process %d (descriptor %d) to %s port %d again: the port is taken "
			  "(%s); stop that program or free the port, then restart again",
			  role, e->img->pid, e->f->fd, address_text(a, text, sizeof text), a->port, why);
	ck_refuse("cannot bind the %s socket of process %d (descriptor %d) to %s port %d: %s", role, e->img->pid,
		  e->f->fd, address_text(a, text, sizeof text), a->port, strerror(errno));
}

/* The client end of a connection inside the session: bound to its old
 * address and port and connected. The killed run's connection may still
 * hold that port (TIME_WAIT, for a minute, when the old socket had no
 * SO_REUSEADDR) or, for longer than the two seconds waited, the four
 * addresses: then the client gets a fresh port on the same address, since
 * both ends come back together and no one outside knew the old one. */
static void connect_client(struct end *c, int base_fd, const struct ck_img_inaddr *to)
{
	struct sockaddr_storage ss;
	char text[64];
	struct ck_img_inaddr fresh = c->in->local;
	fresh.port = 0;
	socklen_t len = to_sockaddr(c->sock->family, &c->in->local, &ss);
	c->fd = new_socket(c, base_fd);
	if (bind(c->fd, (struct sockaddr *)&ss, len) != 0) {
		if (errno != EADDRINUSE)
			bind_to(c, c->fd, &c->in->local, "client");
		ck_verbose("process %d descriptor %d: port %d is still held by the old connection; a new port is used",
			   c->img->pid, c->f->fd, c->in->local.port);
		bind_to(c, c->fd, &fresh, "client");
	}
	len = to_sockaddr(c->sock->family, to, &ss);
	/* the kernel lets a loopback four-tuple in TIME_WAIT be reused a
	 * second later: worth waiting for, to keep the port */
	for (int tries = 0; tries < 40; tries++) {
		if (connect(c->fd, (struct sockaddr *)&ss, len) == 0)
			return;
		if (errno != EADDRNOTAVAIL)
			break;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
	if (errno == EADDRNOTAVAIL) {
		ck_verbose("process %d descriptor %d: the old connection is in TIME_WAIT; a new port is used", c->img->pid,
			   c->f->fd);
		close(c->fd);
		c->fd = new_socket(c, base_fd);
		bind_to(c, c->fd, &fresh, "client");
		if (connect(c->fd, (struct sockaddr *)&ss, len) == 0)
			return;
	}
	ck_refuse("cannot connect the TCP socket of process %d (descriptor %d) to %s port %d again: %s", c->img->pid,
		  c->f->fd, address_text(to, text, sizeof text), to->port, strerror(errno));
}

static char *read_queue(struct ck_image *img, const struct ck_img_file *f, uint64_t off, uint64_t len, uint32_t crc)
{
	char *buf = malloc(len ? len : 1);
	if (ck_pread_all(img->fd, buf, len, off) < 0)
		ck_refuse("image %s is truncated: cannot read the bytes queued on the socket at descriptor %d", img->path, f->fd);
	if (ck_crc32c(0, buf, len) != crc)
		ck_refuse("image %s is corrupted: the bytes queued on the socket at descriptor %d fail their checksum",
			  img->path, f->fd);
	return buf;
}

/* Writes a queue saved in holder's image through `via` (the receiving
 * end's peer, or for unsent bytes the sender itself); what does not fit in
 * the peer's receive buffer waits in via's send buffer, made larger if it
 * has to be. */
static void send_queue(const struct end *holder, int via, const struct ck_img_queue *q)
{
	if (!q->len)
		return;
	char *buf = read_queue(holder->img, holder->f, q->off, q->len, q->crc);
	uint64_t done = 0;
	int grows = 0, waits = 0;
	while (done < q->len) {
		ssize_t k = send(via, buf + done, q->len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k > 0) {
			done += (uint64_t)k;
			continue;
		}
		/* the send buffer counts the kernel's overhead too: grown (up to
		 * 8 times, each to twice what is left and 1 MiB more), then a
		 * moment for loopback to move what it holds to the peer */
		if (k < 0 && errno == EAGAIN && grows < 8) {
			uint64_t want = ((q->len - done) * 2 + (1 << 20)) << grows;
			int size = want > INT32_MAX / 2 ? INT32_MAX / 2 : (int)want;
			if (setsockopt(via, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
				setsockopt(via, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
			grows++;
			continue;
		}
		if (k < 0 && errno == EAGAIN && waits < 20) {
			struct pollfd p = {via, POLLOUT, 0};
			poll(&p, 1, 100);
			waits++;
			continue;
		}
		ck_refuse("cannot put back the %llu bytes queued on the TCP connection at descriptor %d of process %d "
			  "(%llu written): %s%s",
			  (unsigned long long)q->len, holder->f->fd, holder->img->pid, (unsigned long long)done,
			  k < 0 ? strerror(errno) : "no room",
			  k < 0 && errno == EAGAIN ? " (the send buffer cannot grow enough without CAP_NET_ADMIN: restart as root)"
						   : "");
	}
	free(buf);
}

static int shut_write(int state)
{
	return state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING || state == TCP_LAST_ACK;
}

static int peer_shut_write(int state)
{
	return state == TCP_CLOSE_WAIT || state == TCP_CLOSING || state == TCP_LAST_ACK;
}

static int connected_state(int state)
{
	return state == TCP_ESTABLISHED || state == TCP_SYN_SENT || shut_write(state) || peer_shut_write(state);
}

/* A listener of the session at a (the same port, the same or a wildcard
 * address). */
static struct end *listener_at(struct end *ends, size_t n, const struct ck_img_inaddr *a)
{
	static const uint8_t any4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
	static const uint8_t any6[16];
	for (size_t i = 0; i < n; i++) {
		struct ck_img_inet *in = ends[i].in;
		if (ends[i].sock->type != SOCK_STREAM || in->tcp_state != TCP_LISTEN || in->local.port != a->port)
			continue;
		if (!memcmp(in->local.addr, a->addr, 16) || !memcmp(in->local.addr, any6, 16) ||
		    (is_v4(a->addr) && !memcmp(in->local.addr, any4, 16)))
			return &ends[i];
	}
	return 0;
}

/* A FIN just sent is acknowledged a moment later, even on loopback: the
 * program must find the state it left (FIN-WAIT-2, not FIN-WAIT-1), so
 * the restore waits for it, a second at most. */
static void settle(const struct end *e)
{
	if (e->in->tcp_state != TCP_FIN_WAIT2)
		return;
	for (int i = 0; i < 1000; i++) {
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		if (getsockopt(e->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || ti.tcpi_state != TCP_FIN_WAIT1)
			return;
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, 0);
	}
}

/* Both ends in the session: c connects from its old address to a
 * temporary listener on s's, then each end's saved receive queue is
 * written by the other end, then what each had written but TCP had not
 * sent, then the shutdowns. */
static void make_pair(struct end *c, struct end *s, int base_fd)
{
	int t = new_socket(s, base_fd);
	bind_to(s, t, &s->in->local, "server");
	if (listen(t, 1) != 0)
		ck_refuse("cannot listen on port %d to connect descriptor %d of process %d again: %s", s->in->local.port,
			  s->f->fd, s->img->pid, strerror(errno));
	connect_client(c, base_fd, &s->in->local);
	int a = accept4(t, 0, 0, SOCK_CLOEXEC);
	close(t);
	if (a < 0)
		ck_refuse("cannot accept the connection of descriptor %d of process %d again: %s", s->f->fd, s->img->pid,
			  strerror(errno));
	s->fd = fcntl(a, F_DUPFD_CLOEXEC, base_fd);
	close(a);
	/* the accepted end has the temporary listener's IPv6 options (they
	 * cannot change once connected) */
	ck_sockopts_apply(s->fd, s->f, s->sock, SOL_SOCKET, except_reuseaddr);
	ck_sockopts_apply(s->fd, s->f, s->sock, IPPROTO_TCP, 0);
	ck_sockopts_apply(s->fd, s->f, s->sock, IPPROTO_IP, 0);
	send_queue(s, c->fd, &s->in->recv_q);
	send_queue(c, c->fd, &c->in->unsent_q);
	send_queue(c, s->fd, &c->in->recv_q);
	send_queue(s, s->fd, &s->in->unsent_q);
	if (shut_write(c->in->tcp_state))
		shutdown(c->fd, SHUT_WR);
	if (shut_write(s->in->tcp_state))
		shutdown(s->fd, SHUT_WR);
	settle(c);
	settle(s);
}

/* A connection to a peer outside the session (or to one that went away):
 * connected over loopback to a helper that then leaves. The helper resets
 * it (reads see ECONNRESET, then EOF; writes EPIPE), or, when the peer had
 * closed its side, first sends what was queued and closes (reads see the
 * bytes, then EOF). */
static void make_orphan(struct end *e, int base_fd, int peer_closed)
{
	static const struct ck_img_inaddr lo4 = {1, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}, 0};
	static const struct ck_img_inaddr lo6 = {1, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 0};
	int family = e->sock->family;
	const struct ck_img_inaddr *lo = family == AF_INET ? &lo4 : &lo6;
	struct sockaddr_storage ss;
	socklen_t len = to_sockaddr(family, lo, &ss);
	int t = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t < 0 || bind(t, (struct sockaddr *)&ss, len) != 0 || listen(t, 1) != 0 ||
	    getsockname(t, (struct sockaddr *)&ss, &len) != 0) {
		if (family == AF_INET6 && t >= 0) {
			/* no ::1 here: a dual-stack socket reaches 127.0.0.1 */
			close(t);
			lo = &lo4;
			len = to_sockaddr(AF_INET, lo, &ss);
			t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (t >= 0 && bind(t, (struct sockaddr *)&ss, len) == 0 && listen(t, 1) == 0 &&
			    getsockname(t, (struct sockaddr *)&ss, &len) == 0) {
				struct ck_img_inaddr at = lo4;
				at.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
				len = to_sockaddr(AF_INET6, &at, &ss);
				goto listening;
			}
		}
		ck_refuse("cannot make a loopback listener to restore descriptor %d of process %d as reset: %s", e->f->fd,
			  e->img->pid, strerror(errno));
	}
listening:
	e->fd = new_socket(e, base_fd);
	if (connect(e->fd, (struct sockaddr *)&ss, len) != 0)
		ck_refuse("cannot connect descriptor %d of process %d over loopback to restore it as reset: %s", e->f->fd,
			  e->img->pid, strerror(errno));
	int a = accept4(t, 0, 0, SOCK_CLOEXEC);
	close(t);
	if (a < 0)
		ck_refuse("cannot accept a loopback connection to restore descriptor %d as reset: %s", e->f->fd,
			  strerror(errno));
	if (peer_closed) {
		send_queue(e, a, &e->in->recv_q);
		shutdown(a, SHUT_WR);
		if (shut_write(e->in->tcp_state))
			shutdown(e->fd, SHUT_WR);
	} else {
		struct linger l = {1, 0};
		setsockopt(a, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	}
	close(a);
}

static void make_listener(struct end *e, int base_fd)
{
	e->fd = new_socket(e, base_fd);
	bind_to(e, e->fd, &e->in->local, "listening");
	/* a backlog of 0 is one the program asked for (a queue of one) */
	if (listen(e->fd, (int)(e->in->has_backlog ? e->in->backlog : 128)) != 0)
		ck_refuse("cannot listen on port %d again (descriptor %d of process %d): %s", e->in->local.port, e->f->fd,
			  e->img->pid, strerror(errno));
}

/* A connection in progress (SYN-SENT: its peer had not answered yet): the
 * same connect made again, without waiting for it, as the kernel would
 * have kept trying; it completes or fails as the program expects. */
static void make_connecting(struct end *e, int base_fd)
{
	struct sockaddr_storage ss;
	char text[64];
	if (!e->in->peer.set)
		ck_refuse("the TCP socket at descriptor %d of process %d was connecting (SYN-SENT) to an address its image "
			  "does not hold; restart from a checkpoint taken before or after that connect",
			  e->f->fd, e->img->pid);
	e->fd = new_socket(e, base_fd);
	struct ck_img_inaddr fresh = e->in->local;
	fresh.port = 0;
	socklen_t len = to_sockaddr(e->sock->family, &e->in->local, &ss);
	if (e->in->local.port && bind(e->fd, (struct sockaddr *)&ss, len) != 0)
		bind_to(e, e->fd, &fresh, "connecting");
	len = to_sockaddr(e->sock->family, &e->in->peer, &ss);
	int fl = fcntl(e->fd, F_GETFL);
	fcntl(e->fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(e->fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS)
		ck_refuse("cannot start the connect of the TCP socket at descriptor %d of process %d to %s port %d again: %s",
			  e->f->fd, e->img->pid, address_text(&e->in->peer, text, sizeof text), e->in->peer.port,
			  strerror(errno));
	fcntl(e->fd, F_SETFL, fl);
}

/* A connection the session's listener had not accepted: connected again,
 * it waits in the restored listener's queue. */
static void make_pending(struct end *e, int base_fd)
{
	connect_client(e, base_fd, &e->in->peer);
}

/* UDP: bound again, its datagrams sent to it (from their old source
 * address when that can be bound, else from an ephemeral port), then
 * connected (a connected socket would drop datagrams from other
 * sources). */
static void make_udp(struct end *e, int base_fd)
{
	e->fd = new_socket(e, base_fd);
	int family = e->sock->family;
	if (e->in->local.port)
		bind_to(e, e->fd, &e->in->local, "UDP");
	struct ck_img_inaddr to = e->in->local;
	static const uint8_t any6[16];
	if (!memcmp(to.addr, any6, 16))
		to.addr[15] = 1;
	else if (is_v4(to.addr) && !to.addr[12] && !to.addr[13] && !to.addr[14] && !to.addr[15])
		to.addr[12] = 127, to.addr[15] = 1;
	for (size_t i = 0; i < e->in->ndgrams; i++) {
		const struct ck_img_dgram *g = &e->in->dgrams[i];
		struct sockaddr_storage ss;
		int hf = family == AF_INET6 || !is_v4(g->from.addr) ? AF_INET6 : AF_INET;
		int h = socket(hf, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (h < 0)
			ck_refuse("cannot create a socket to put back the datagrams of descriptor %d: %s", e->f->fd, strerror(errno));
		set_int(h, SOL_SOCKET, SO_REUSEADDR, 1);
		set_int(h, SOL_SOCKET, SO_REUSEPORT, 1);
		socklen_t len = to_sockaddr(hf, &g->from, &ss);
		if (bind(h, (struct sockaddr *)&ss, len) != 0)
			ck_verbose("datagram %zu of descriptor %d comes from another port (cannot bind port %d: %s)", i,
				   e->f->fd, g->from.port, strerror(errno));
		char *buf = read_queue(e->img, e->f, g->off, g->len, g->crc);
		len = to_sockaddr(hf, &to, &ss);
		if (sendto(h, buf, g->len, 0, (struct sockaddr *)&ss, len) != (ssize_t)g->len)
			ck_refuse("cannot put back datagram %zu of the UDP socket at descriptor %d of process %d: %s", i,
				  e->f->fd, e->img->pid, strerror(errno));
		free(buf);
		close(h);
	}
	if (e->in->peer.set) {
		struct sockaddr_storage ss;
		socklen_t len = to_sockaddr(family, &e->in->peer, &ss);
		if (connect(e->fd, (struct sockaddr *)&ss, len) != 0)
			ck_refuse("cannot connect the UDP socket at descriptor %d of process %d again: %s", e->f->fd,
				  e->img->pid, strerror(errno));
	}
	/* last: a socket shut for receiving still queues what is sent to it;
	 * an unconnected one is shut all the same (and says ENOTCONN) */
	if (e->in->shutdown) {
		int how = e->in->shutdown == 3 ? SHUT_RDWR : e->in->shutdown == 2 ? SHUT_WR : SHUT_RD;
		if (shutdown(e->fd, how) != 0 && errno != ENOTCONN)
			ck_refuse("cannot shut the UDP socket at descriptor %d of process %d down again: %s", e->f->fd,
				  e->img->pid, strerror(errno));
	}
}

/* Neither listening nor connected: bound again if it was. */
static void make_plain(struct end *e, int base_fd)
{
	e->fd = new_socket(e, base_fd);
	if (e->in->local.port)
		bind_to(e, e->fd, &e->in->local, "TCP");
}

static struct end *partner_of(struct end *ends, size_t n, const struct end *e)
{
	for (size_t i = 0; i < n; i++) {
		struct end *p = &ends[i];
		if (p != e && p->fd < 0 && p->sock->type == SOCK_STREAM && connected_state(p->in->tcp_state) &&
		    same_address(&p->in->local, &e->in->peer) && same_address(&p->in->peer, &e->in->local))
			return p;
	}
	return 0;
}

/* The kill -9 that ended the checkpointed run left TIME-WAIT entries of
 * its connections on the ports the restart binds now: they are removed
 * (as root), or waited for where a port must be had (bind_to). */
static void forget_time_wait(const struct end *ends, size_t count)
{
	tw_own = calloc(count ? count : 1, sizeof *tw_own);
	tw_nown = 0;
	for (size_t i = 0; i < count; i++) {
		const struct ck_img_inet *in = ends[i].in;
		if (ends[i].sock->type != SOCK_STREAM || !in->local.set || !in->local.port)
			continue;
		if (in->tcp_state == TCP_LISTEN)
			tw_own[tw_nown++] = (struct ck_tw_own){in->local, {0, {0}, 0}};
		else if (connected_state(in->tcp_state) && in->peer.set)
			tw_own[tw_nown++] = (struct ck_tw_own){in->local, in->peer};
	}
	ck_tw_clear(tw_own, tw_nown);
}

static size_t collect_ends(struct ck_sock_file *list, size_t n, struct end **out)
{
	size_t count = 0, cap = 16;
	struct end *ends = calloc(cap, sizeof *ends);
	for (size_t i = 0; i < n; i++) {
		struct ck_img_file *f = list[i].f;
		size_t k;
		for (k = 0; k < count && ends[k].f->ino != f->ino; k++)
			;
		if (k < count)
			continue;
		if (count == cap)
			ends = realloc(ends, (cap *= 2) * sizeof *ends);
		ends[count++] = (struct end){list[i].img, f, list[i].s, list[i].s->inet_part, -1};
	}
	*out = ends;
	return count;
}

/* Every TCP/UDP socket of the session, made once here before any process
 * runs: connections first (their temporary listeners would collide with
 * the restored ones), then listeners, pending connections, UDP and the
 * rest; SO_REUSEADDR goes back to the program's value last. */
CK_HIDDEN void ck_inet_create_shared(struct ck_sock_file *list, size_t n, struct ck_objects *objs, int base_fd)
{
	struct end *ends;
	size_t count = collect_ends(list, n, &ends);
	if (!count) {
		free(ends);
		return;
	}
	forget_time_wait(ends, count);
	for (size_t i = 0; i < count; i++) {
		struct end *e = &ends[i], *p;
		if (e->fd >= 0 || e->sock->type != SOCK_STREAM || !connected_state(e->in->tcp_state))
			continue;
		if ((p = partner_of(ends, count, e)) != 0) {
			/* the end on a listener's port is the one that was accepted */
			if (listener_at(ends, count, &e->in->local) && !listener_at(ends, count, &p->in->local))
				make_pair(p, e, base_fd);
			else
				make_pair(e, p, base_fd);
		}
	}
	for (size_t i = 0; i < count; i++)
		if (ends[i].fd < 0 && ends[i].sock->type == SOCK_STREAM && ends[i].in->tcp_state == TCP_LISTEN)
			make_listener(&ends[i], base_fd);
	for (size_t i = 0; i < count; i++) {
		struct end *e = &ends[i];
		if (e->fd >= 0)
			continue;
		if (e->sock->type == SOCK_DGRAM)
			make_udp(e, base_fd);
		else if (!connected_state(e->in->tcp_state))
			make_plain(e, base_fd);
		else if (e->in->tcp_state == TCP_SYN_SENT)
			continue; /* below */
		else if (e->in->tcp_state == TCP_ESTABLISHED && listener_at(ends, count, &e->in->peer))
			make_pending(e, base_fd);
		else
			make_orphan(e, base_fd, peer_shut_write(e->in->tcp_state));
	}
	/* connects in progress last: the connections a listener had queued
	 * take their places in its queue first */
	for (size_t i = 0; i < count; i++)
		if (ends[i].fd < 0 && ends[i].sock->type == SOCK_STREAM && ends[i].in->tcp_state == TCP_SYN_SENT)
			make_connecting(&ends[i], base_fd);
	for (size_t i = 0; i < count; i++) {
		set_int(ends[i].fd, SOL_SOCKET, SO_REUSEADDR, saved_reuseaddr(ends[i].sock));
		ck_objects_add(objs, "socket", ends[i].f->ino, 0, ends[i].fd);
	}
	free(ends);
	free(tw_own);
	tw_own = 0, tw_nown = 0;
}

CK_HIDDEN int ck_inet_open(struct ck_image *img, struct ck_img_file *f, const struct ck_img_socket *s, int base_fd,
			   const struct ck_objects *objs)
{
	(void)base_fd;
	if (!s->inet_part)
		ck_refuse("image %s is corrupted: the TCP/UDP socket at descriptor %d has no addresses", img->path, f->fd);
	int made = ck_objects_find(objs, "socket", f->ino, 0);
	if (made >= 0) {
		int fd = dup(made);
		if (fd < 0)
			ck_refuse("cannot duplicate the socket for descriptor %d: %s", f->fd, strerror(errno));
		fcntl(fd, F_SETFL, f->flags & O_NONBLOCK);
		return fd;
	}
	ck_refuse("descriptor %d of process %d is a TCP/UDP socket the restore did not make (a ckrun bug)", f->fd, img->pid);
}
