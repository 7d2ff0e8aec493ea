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
#include <linux/icmp.h>
#include <linux/icmpv6.h>
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "sockets.h"
#include "sys.h"

#ifndef SIOCOUTQNSD
#define SIOCOUTQNSD 0x894B
#endif
#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif
#ifndef UDPLITE_SEND_CSCOV
#define UDPLITE_SEND_CSCOV 10 /* linux/udp.h, which clashes with netinet's */
#define UDPLITE_RECV_CSCOV 11
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

/* The TTL an IPv4 socket gets when its program sets none (IP_TTL then
 * reports it): only one the program set is saved, so that a socket that
 * set none follows the sysctl on the machine it restarts on. */
static int default_ttl(void)
{
	static int ttl;
	if (!ttl) {
		char buf[16];
		long n = ck_read_file("/proc/sys/net/ipv4/ip_default_ttl", buf, sizeof buf - 1);
		const char *p = buf;
		uint64_t v = 0;
		buf[n > 0 ? n : 0] = 0;
		ttl = n > 0 && ck_parse_dec(&p, &v) ? (int)v : 64;
	}
	return ttl;
}

/* Options of raw sockets: the header the program writes itself, the ICMP
 * types a raw ICMP socket lets through, the checksum IPv6 computes. */
static void raw_options_save(struct cb_enc *e, const struct ck_fd *f, int family)
{
	int protocol = 0;
	ck_sockopt_int(f->fd, SOL_SOCKET, SO_PROTOCOL, &protocol);
	if (family == AF_INET) {
		ck_sockopt_put(e, f->fd, IPPROTO_IP, IP_HDRINCL);
		if (protocol == IPPROTO_ICMP)
			ck_sockopt_put(e, f->fd, SOL_RAW, ICMP_FILTER);
	} else {
		/* a raw IPv6 socket takes the flag only at its own level */
		ck_sockopt_put(e, f->fd, IPPROTO_IPV6, IPV6_FREEBIND);
		ck_sockopt_put(e, f->fd, IPPROTO_IPV6, IPV6_CHECKSUM);
		if (protocol == IPPROTO_ICMPV6)
			ck_sockopt_put(e, f->fd, IPPROTO_ICMPV6, ICMPV6_FILTER);
	}
}

CK_HIDDEN void ck_inet_options_save(struct cb_enc *e, const struct ck_fd *f, int family, int type)
{
	int ttl = 0;
	if (family == AF_INET && ck_sockopt_int(f->fd, IPPROTO_IP, IP_TTL, &ttl) && ttl != default_ttl())
		ck_sockopt_put(e, f->fd, IPPROTO_IP, IP_TTL);
	if (type == SOCK_RAW)
		raw_options_save(e, f, family);
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
	int protocol = 0;
	if (type == SOCK_DGRAM && ck_sockopt_int(f->fd, SOL_SOCKET, SO_PROTOCOL, &protocol) && protocol == IPPROTO_UDPLITE) {
		ck_sockopt_put(e, f->fd, IPPROTO_UDPLITE, UDPLITE_SEND_CSCOV);
		ck_sockopt_put(e, f->fd, IPPROTO_UDPLITE, UDPLITE_RECV_CSCOV);
	}
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

/* ---- repair mode (CAP_NET_ADMIN) ---- */

/* Enters TCP_REPAIR mode; 0 or -errno (-EPERM without CAP_NET_ADMIN).
 * *reuse keeps the program's SO_REUSEADDR, which leaving forgets. */
static long repair_on(int fd, int *reuse)
{
	int on = TCP_REPAIR_ON;
	*reuse = 0;
	ck_sockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, reuse);
	return ck_setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof on);
}

/* Leaves repair mode without a window probe (the peer learns nothing). */
static void repair_off(int fd, int reuse)
{
	int off = TCP_REPAIR_OFF_NO_WP, noq = TCP_NO_QUEUE;
	ck_setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &noq, sizeof noq);
	ck_setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof off);
	ck_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
}

/* In repair mode: the sequence number at the end of queue q (the send
 * queue's next byte to write, the receive queue's next byte to come). */
static int queue_seq(int fd, int q, uint32_t *seq)
{
	unsigned len = sizeof *seq;
	return ck_setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof q) == 0 &&
	       ck_getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, seq, &len) == 0;
}

static int fin_written(int state)
{
	return state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING || state == TCP_LAST_ACK;
}

static int fin_received(int state)
{
	return state == TCP_CLOSE_WAIT || state == TCP_CLOSING || state == TCP_LAST_ACK;
}

static int has_queues(int state)
{
	return state == TCP_ESTABLISHED || fin_written(state) || fin_received(state);
}

/* ---- send queues, read first ----
 *
 * A stopped program's connection still moves bytes: TCP sends what the
 * peer's window lets it, retransmits what the peer dropped, and the peer
 * acknowledges. A send queue and its peer's receive queue read at two
 * moments therefore overlap or leave a gap. Both are read with their
 * sequence numbers instead, every send queue of the session (whole: sent
 * but not acknowledged, then not sent) before any receive queue (ckrun
 * says "save" only once every process is "stopped"): what the receiver
 * lacks is then always in the sender's copy, and the restore takes from it
 * exactly the bytes after the receiver's last one. */
struct sendq {
	int fd;
	uint64_t ino;
	long err;      /* why it could not be read: -EPERM without CAP_NET_ADMIN */
	char *buf;     /* a mapping of cap bytes, len of them the queue's */
	long cap, len;
	uint32_t seq;  /* the sequence number of buf[0] */
	long unsent;   /* its last bytes TCP had not sent yet */
};
/* Where the queues of the connection being saved end (rcv_nxt, and the
 * send queue's last byte), as its image has them: set by the two savers,
 * taken by save_repair_state. */
static uint32_t saved_recv_end, saved_send_end;
static int has_saved_recv_end, has_saved_send_end;

/* Connections that may outlive a kill -9 of ckrun (below, ck_inet_keep_live). */
struct live_conn {
	int fd;
	uint64_t ino;
	uint32_t send_end, recv_end;
};
#define MAX_LIVE 256
static struct live_conn live_noted[MAX_LIVE], live_kept[MAX_LIVE];
static int nlive_noted, nlive_kept;
static long live_owner;          /* the process they were noted in (not a child forked since) */
static char live_generation[4096]; /* DIR/N of the checkpoint they belong to */

#define MAX_SENDQ 1024
static struct sendq sendqs[MAX_SENDQ];
static int nsendq;

/* len bytes of ckrun's answer; at most 100 waits of 100 ms for them, counted
 * in *waits across the calls for one answer. */
static long recv_answer(int fd, char *buf, long len, int *waits)
{
	long got = 0;
	while (got < len) {
		long r = ck_recvfrom(fd, buf + got, (size_t)(len - got), MSG_DONTWAIT);
		if (r > 0) {
			got += r;
			continue;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (r == 0 || (r != -EAGAIN && r != -EINTR) || ++*waits > 100 || CK_SYS3(SYS_poll, &p, 1, 100) < 0)
			return -EIO;
	}
	return got;
}

/* The answer's head, "sendq END UNSENT LEN\n" (or "sendq no WHY\n"), read
 * byte by byte so that the queue's bytes after it stay for the caller. */
static int read_sendq_head(int fd, uint64_t v[3], int *waits)
{
	char line[160];
	size_t n = 0;
	while (n < sizeof line - 1 && recv_answer(fd, line + n, 1, waits) == 1 && line[n] != '\n')
		n++;
	if (n == sizeof line - 1 || line[n] != '\n')
		return 0;
	line[n] = 0;
	const char *c = line;
	if (!ck_starts_with(c, "sendq ") || c[6] == 'n')
		return 0;
	c += 6;
	for (int i = 0; i < 3; i++) {
		if (!ck_parse_dec(&c, &v[i]) || (i < 2 ? *c != ' ' : *c != 0))
			return 0;
		c++;
	}
	return 1;
}

/* Only a coordinator running as root can read a queue in repair mode. */
static int coordinator_is_root(void)
{
	struct ucred cr;
	unsigned len = sizeof cr;
	return ck_session.sock[0] && ck_session.ctl_fd >= 0 &&
	       ck_getsockopt(ck_session.ctl_fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && len == sizeof cr && cr.uid == 0;
}

/* Without CAP_NET_ADMIN (a program that gave up root): ckrun, when it is
 * root, reads the queue through a duplicate of the socket, exactly as
 * take_send_queue would (src/session.ts sendQueueFor); 0 when it did. */
static long ask_send_queue(struct sendq *q, int outq, uint32_t *end, int *unsent)
{
	int fd = ck_session_connect(ck_session.sock);
	if (fd < 0)
		return -EPERM;
	int slot = ck_session_request_begin(fd);
	if (slot < 0) {
		ck_close(fd);
		return -EPERM;
	}
	char line[32];
	struct ck_str m;
	ck_str_init(&m, line, sizeof line);
	ck_str_add(&m, "sendq ");
	ck_str_dec(&m, q->fd);
	ck_str_add(&m, "\n");
	long err = -EPERM;
	uint64_t v[3];
	int waits = 0;
	size_t len = ck_strlen(line);
	if (CK_SYS6(SYS_sendto, fd, line, len, MSG_NOSIGNAL, 0, 0) == (long)len && read_sendq_head(fd, v, &waits) &&
	    v[2] <= (uint64_t)outq) {
		q->cap = outq;
		q->buf = outq > 0 ? scratch_buffer(outq) : 0;
		long got = outq > 0 && !q->buf ? -ENOMEM : recv_answer(fd, q->buf, (long)v[2], &waits);
		if (got == (long)v[2]) {
			q->len = got;
			*end = (uint32_t)v[0];
			*unsent = (int)v[1];
			err = 0;
		}
	}
	ck_session_request_end(slot, fd);
	return err;
}

static void take_send_queue(struct sendq *q, int state)
{
	int outq = 0, unsent = 0, reuse;
	uint32_t end;
	ck_ioctl(q->fd, TIOCOUTQ, &outq); /* only shrinks while the program stands still */
	if ((q->err = repair_on(q->fd, &reuse)) != 0) {
		/* every queue, so that both ends of a connection have their
		 * sequence numbers (bytes count once however TCP moved them) */
		if (q->err == -EPERM && coordinator_is_root() && (q->err = ask_send_queue(q, outq, &end, &unsent)) == 0)
			goto got;
		return;
	}
	if (!queue_seq(q->fd, TCP_SEND_QUEUE, &end)) {
		q->err = -EIO;
		goto out;
	}
	if (outq > 0) {
		q->cap = outq;
		q->buf = scratch_buffer(outq);
		/* one peek copies the whole queue (a second would start again) */
		long got = q->buf ? ck_recvfrom(q->fd, q->buf, (size_t)outq, MSG_PEEK | MSG_DONTWAIT) : -ENOMEM;
		if (got < 0) {
			q->err = got;
			goto out;
		}
		q->len = got;
	}
	ck_ioctl(q->fd, SIOCOUTQNSD, &unsent);
	repair_off(q->fd, reuse);
got:
	/* after shutdown(SHUT_WR) the FIN takes a sequence number of its own,
	 * counted while not sent: it is no byte (the restore's own shutdown
	 * sends it again) */
	if (fin_written(state)) {
		end--;
		if (unsent > 0)
			unsent--;
	}
	q->unsent = unsent > q->len ? q->len : unsent;
	q->seq = end - (uint32_t)q->len;
	return;
out:
	repair_off(q->fd, reuse);
}

static int tcp_state_of(int fd)
{
	struct ck_tcp_info ti;
	unsigned len = sizeof ti;
	int type = 0, proto = 0;
	if (!ck_sockopt_int(fd, SOL_SOCKET, SO_TYPE, &type) || type != SOCK_STREAM ||
	    !ck_sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL, &proto) || proto != IPPROTO_TCP)
		return -1;
	ck_memset(&ti, 0, sizeof ti);
	if (ck_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return -1;
	return ti.state;
}

CK_HIDDEN void ck_inet_take_send_queues(void)
{
	struct ck_sock_walk walk;
	struct ck_stat st;
	int fd;
	nsendq = 0;
	nlive_noted = 0;
	if (ck_sock_walk_open(&walk) < 0)
		return; /* each is read when saved, then */
	while (nsendq < MAX_SENDQ && (fd = ck_sock_walk_next(&walk, &st)) >= 0) {
		if (ck_is_session_fd(fd))
			continue;
		int state = tcp_state_of(fd);
		if (state < 0 || !has_queues(state))
			continue;
		struct sendq *q = &sendqs[nsendq++];
		ck_memset(q, 0, sizeof *q);
		q->fd = fd;
		q->ino = st.ino;
		take_send_queue(q, state);
	}
	ck_sock_walk_close(&walk);
}

CK_HIDDEN void ck_inet_drop_send_queues(void)
{
	for (int i = 0; i < nsendq; i++)
		if (sendqs[i].buf)
			ck_munmap(sendqs[i].buf, CK_PAGE_UP(sendqs[i].cap));
	nsendq = 0;
}

/* The send queue read while stopped; read now when it was not (more
 * connections than the table holds, or a checkpoint of one process). */
static struct sendq *send_queue_of(const struct ck_fd *f, int state)
{
	for (int i = 0; i < nsendq; i++)
		if (sendqs[i].fd == f->fd && sendqs[i].ino == f->st.ino)
			return &sendqs[i];
	if (nsendq == MAX_SENDQ)
		ck_inet_drop_send_queues();
	struct sendq *q = &sendqs[nsendq++];
	ck_memset(q, 0, sizeof *q);
	q->fd = f->fd;
	q->ino = f->st.ino;
	take_send_queue(q, state);
	return q;
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

/* The receive queue, peeked from its start, and (in repair mode) the
 * sequence number of its first byte, read again while bytes arrive. */
static void save_recv_queue(struct ck_writer *w, const struct ck_fd *f, int state, const struct inaddr *local,
			    const struct inaddr *peer)
{
	int reuse = 0, inq = 0, inq2 = 0, steady = 0;
	int repair = repair_on(f->fd, &reuse) == 0;
	char *buf = 0;
	long cap = 0, n = 0;
	uint32_t s1 = 0, s2 = 0;
	for (int tries = 0; tries < 1000 && !steady && n >= 0; tries++) {
		ck_ioctl(f->fd, FIONREAD, &inq);
		if (inq > cap) {
			if (buf)
				ck_munmap(buf, CK_PAGE_UP(cap));
			cap = inq + inq / 4 + 4096;
			if (!(buf = scratch_buffer(cap))) {
				n = -ENOMEM;
				break;
			}
		}
		if (repair && !queue_seq(f->fd, TCP_RECV_QUEUE, &s1)) {
			n = -EIO;
			break;
		}
		n = inq > 0 ? peek_stream(f->fd, buf, inq) : 0;
		ck_ioctl(f->fd, FIONREAD, &inq2);
		if (repair && !queue_seq(f->fd, TCP_RECV_QUEUE, &s2))
			n = -EIO;
		steady = !repair || (s1 == s2 && inq2 == n);
	}
	if (repair)
		repair_off(f->fd, reuse);
	if (n < 0)
		fail_socket(w, f, n, "cannot copy the bytes queued in a TCP connection", "peeking its receive queue failed",
			    local, peer);
	else if (!steady)
		fail_socket(w, f, -EAGAIN, "cannot copy the bytes queued in a TCP connection",
			    "bytes kept arriving while ckrun read its receive queue; try again", local, peer);
	else {
		if (n > 0)
			put_queue(w, "recv_queue", buf, n);
		if (repair) {
			cb_kv_uint(&w->meta, "recv_seq", (uint32_t)(s1 - (fin_received(state) ? 1u : 0u) - (uint32_t)n));
			saved_recv_end = s1, has_saved_recv_end = 1;
		}
	}
	if (buf)
		ck_munmap(buf, CK_PAGE_UP(cap));
}

/* The send queue as read while stopped (ck_inet_take_send_queues). Without
 * CAP_NET_ADMIN (and no root ckrun to read it) it cannot be read: fine
 * once the peer has acknowledged every byte (its receive queue holds
 * them); a byte sent and not acknowledged yet may still be on its way (a
 * loaded machine's loopback queues, the peer's backlog), in no queue the
 * checkpoint reads, so that fails the checkpoint for a moment (the session
 * tries again), and a byte not sent yet fails it. */
static void save_send_queue(struct ck_writer *w, const struct ck_fd *f, int state, const struct inaddr *local,
			    const struct inaddr *peer)
{
	struct sendq *q = send_queue_of(f, state);
	if (q->err == 0) {
		put_queue(w, "send_queue", q->buf ? q->buf : "", q->len);
		cb_kv_uint(&w->meta, "send_unsent", (uint64_t)q->unsent);
		cb_kv_uint(&w->meta, "send_seq", q->seq);
		saved_send_end = q->seq + (uint32_t)q->len, has_saved_send_end = 1;
		return;
	}
	int unsent = 0, unacked = 0;
	ck_ioctl(f->fd, SIOCOUTQNSD, &unsent);
	ck_ioctl(f->fd, TIOCOUTQ, &unacked);
	if (fin_written(state) && unsent > 0)
		unsent--;
	if (fin_written(state) && unacked > 0)
		unacked--;
	if (unsent <= 0 && unacked > 0) {
		fail_socket(w, f, -EAGAIN, "the program has a TCP connection with bytes its peer has not acknowledged yet",
			    "without TCP_REPAIR (CAP_NET_ADMIN) ckrun cannot read them, and they may still be on their way; "
			    "checkpoint again in a moment",
			    local, peer);
		return;
	}
	if (unsent <= 0)
		return;
	if (q->err == -EPERM)
		fail_socket(w, f, q->err, "the program has a TCP connection with bytes written but not sent yet",
			    "its peer's window is full, and reading the unsent bytes needs TCP_REPAIR, which needs "
			    "CAP_NET_ADMIN (run as root), or checkpoint once the peer has read",
			    local, peer);
	else
		fail_socket(w, f, q->err, "cannot copy the bytes not yet sent on a TCP connection",
			    "reading its send queue in repair mode failed", local, peer);
}

struct ck_repair_window {
	uint32_t snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup;
};

/* ---- connections that outlive a kill -9 of ckrun (docs/design.md,
 * "Connections to peers outside the session") ----
 *
 * Each checkpoint notes, for every established connection it saved with
 * its repair state, where its queues ended. When ckrun dies the process
 * ends itself; before that, a connection whose queues still end there
 * (nothing sent or received since the checkpoint, so the peer knows what
 * the image knows) goes into repair mode with a receive window of 0 (what
 * arrives from now on is dropped, never acknowledged) and its descriptor
 * is written to DIR/N/repair_frozen.PID: its close then sends the peer
 * neither FIN nor RST, and a restart of generation N may continue it. */

static void note_live_connection(const struct ck_fd *f, uint32_t send_end, uint32_t recv_end)
{
	if (nlive_noted < MAX_LIVE)
		live_noted[nlive_noted++] = (struct live_conn){f->fd, f->st.ino, send_end, recv_end};
}

/* DIR/N from the image path DIR/.N.partial/PID.ckpt (or DIR/N/PID.ckpt). */
static int generation_of(const char *image, char *out, size_t cap)
{
	size_t len = ck_strlen(image), slash = len;
	while (slash > 0 && image[slash - 1] != '/')
		slash--;
	if (slash < 2 || slash >= cap)
		return 0;
	size_t end = slash - 1, start = end; /* the generation's name is image[start, end) */
	while (start > 0 && image[start - 1] != '/')
		start--;
	const char *name = image + start;
	size_t nl = end - start, suffix = sizeof ".partial" - 1;
	ck_memcpy(out, image, start);
	if (nl > 1 + suffix && name[0] == '.' && ck_strneq(name + nl - suffix, ".partial", suffix)) {
		ck_memcpy(out + start, name + 1, nl - 1 - suffix);
		out[start + nl - 1 - suffix] = 0;
	} else {
		ck_memcpy(out + start, name, nl);
		out[start + nl] = 0;
	}
	return 1;
}

/* The checkpoint whose image is `image` was taken: its notes replace the last one's. */
CK_HIDDEN void ck_inet_keep_live(const char *image)
{
	nlive_kept = 0;
	if (nlive_noted > 0 && generation_of(image, live_generation, sizeof live_generation)) {
		ck_memcpy(live_kept, live_noted, (size_t)nlive_noted * sizeof live_noted[0]);
		nlive_kept = nlive_noted;
		live_owner = ck_getpid();
	}
	nlive_noted = 0;
}

CK_HIDDEN void ck_inet_forget_noted(void)
{
	nlive_noted = 0;
}

/* In repair mode: nothing sent or received since the checkpoint, and from
 * now on nothing taken in (window 0: arrivals are dropped, unacknowledged). */
static int close_window_if_unchanged(const struct live_conn *c)
{
	struct ck_repair_window rw;
	unsigned len = sizeof rw;
	uint32_t send_end, recv_end;
	if (ck_getsockopt(c->fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &rw, &len) != 0 || len != sizeof rw ||
	    !queue_seq(c->fd, TCP_RECV_QUEUE, &recv_end))
		return 0;
	rw.rcv_wup = recv_end;
	rw.rcv_wnd = 0;
	if ((int32_t)(rw.snd_wl1 - recv_end) > 0)
		rw.snd_wl1 = recv_end;
	if (ck_setsockopt(c->fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &rw, sizeof rw) != 0)
		return 0;
	/* read again after the window closed: a byte that came in before counts */
	return queue_seq(c->fd, TCP_RECV_QUEUE, &recv_end) && recv_end == c->recv_end &&
	       queue_seq(c->fd, TCP_SEND_QUEUE, &send_end) && send_end == c->send_end;
}

/* DIR/N/repair_frozen.PID, made before anything is frozen: no generation
 * (it did not complete: a restart uses an older one, whose connections
 * moved on) or no file, nothing frozen. -1 if not. */
static long open_live_mark(char *name, size_t cap, long *dir)
{
	struct ck_str m;
	ck_str_init(&m, name, cap);
	ck_str_add(&m, "repair_frozen.");
	ck_str_dec(&m, ck_getpid());
	*dir = ck_openat(AT_FDCWD, live_generation, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (*dir < 0)
		return -1;
	int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	long fd = ck_openat((int)*dir, name, flags, 0600);
	if (fd == -EEXIST && ck_unlinkat((int)*dir, name, 0) == 0) /* an earlier end's, never used */
		fd = ck_openat((int)*dir, name, flags, 0600);
	if (fd < 0)
		ck_close((int)*dir);
	return fd;
}

/* ckrun is gone and this process ends: its connections unchanged since
 * the checkpoint are frozen for a restart to continue (as root). */
CK_HIDDEN void ck_inet_freeze_unchanged(void)
{
	char name[64], text[MAX_LIVE * 12 + 16];
	long dir;
	int n = 0;
	if (nlive_kept == 0 || live_owner != ck_getpid())
		return;
	long mark = open_live_mark(name, sizeof name, &dir);
	if (mark < 0)
		return;
	struct ck_str m;
	ck_str_init(&m, text, sizeof text);
	ck_str_add(&m, "descriptors");
	for (int i = 0; i < nlive_kept; i++) {
		const struct live_conn *c = &live_kept[i];
		struct ck_stat st;
		int reuse;
		if (ck_fstat(c->fd, &st) != 0 || st.ino != c->ino || tcp_state_of(c->fd) != TCP_ESTABLISHED ||
		    repair_on(c->fd, &reuse) != 0)
			continue;
		if (!close_window_if_unchanged(c)) {
			repair_off(c->fd, reuse);
			continue;
		}
		ck_str_add(&m, " ");
		ck_str_dec(&m, c->fd);
		n++;
	}
	ck_str_add(&m, "\n");
	if (n > 0)
		ck_write((int)mark, text, ck_strlen(text));
	ck_close((int)mark);
	if (n == 0)
		ck_unlinkat((int)dir, name, 0);
	ck_close((int)dir);
}

/* ---- connections frozen for a stop ckrun makes (docs/design.md,
 * "Connections to peers outside the session") ---- */

/* What re-creating an established connection in repair mode needs beyond
 * its queues, read in repair mode: "repair" = [mss, send window scale,
 * receive window scale, tcpi_options, TCP timestamp, CLOCK_REALTIME ms of
 * that timestamp, snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup]. Only
 * with CAP_NET_ADMIN; a restart uses it only for a generation whose stop
 * froze the connections (repair_frozen). */
static void save_repair_state(struct ck_writer *w, const struct ck_fd *f, const struct ck_tcp_info *ti)
{
	int reuse;
	struct ck_repair_window rw;
	struct ck_timespec now;
	uint32_t ts = 0;
	unsigned len = sizeof ts, wlen = sizeof rw;
	if (repair_on(f->fd, &reuse) != 0)
		return;
	int ok = ck_getsockopt(f->fd, IPPROTO_TCP, TCP_TIMESTAMP, &ts, &len) == 0 &&
		 ck_getsockopt(f->fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &rw, &wlen) == 0 && wlen == sizeof rw;
	ck_clock_gettime(CLOCK_REALTIME, &now);
	repair_off(f->fd, reuse);
	if (!ok)
		return;
	if (has_saved_recv_end && has_saved_send_end)
		note_live_connection(f, saved_send_end, saved_recv_end);
	struct cb_enc *e = &w->meta;
	cb_text(e, "repair");
	cb_array(e, 11);
	cb_uint(e, ti->snd_mss);
	cb_uint(e, ti->wscale & 0xf);
	cb_uint(e, ti->wscale >> 4);
	cb_uint(e, ti->options);
	cb_uint(e, ts);
	cb_uint(e, (uint64_t)now.sec * 1000u + (uint64_t)now.nsec / 1000000u);
	cb_uint(e, rw.snd_wl1);
	cb_uint(e, rw.snd_wnd);
	cb_uint(e, rw.max_window);
	cb_uint(e, rw.rcv_wnd);
	cb_uint(e, rw.rcv_wup);
}

#define MAX_FROZEN 1024
static int frozen_fds[MAX_FROZEN], frozen_reuse[MAX_FROZEN];
static int nfrozen;

/* Just before ckrun's SIGKILL (the process held stopped after its
 * checkpoint): every established TCP connection goes into repair mode, so
 * that the kill closes it silently (no FIN, no RST) and a restart can
 * continue it with the peer. The number frozen, or -errno (-EPERM
 * without CAP_NET_ADMIN) with every one thawed again. */
CK_HIDDEN long ck_inet_freeze(void)
{
	struct ck_sock_walk walk;
	struct ck_stat st;
	long err = ck_sock_walk_open(&walk);
	int fd;
	nfrozen = 0;
	if (err < 0)
		return err;
	while (!err && (fd = ck_sock_walk_next(&walk, &st)) >= 0) {
		if (ck_is_session_fd(fd) || tcp_state_of(fd) != TCP_ESTABLISHED)
			continue;
		if (nfrozen == MAX_FROZEN)
			err = -ENOSPC;
		else if ((err = repair_on(fd, &frozen_reuse[nfrozen])) == 0)
			frozen_fds[nfrozen++] = fd;
	}
	ck_sock_walk_close(&walk);
	if (err) {
		ck_inet_thaw();
		return err;
	}
	return nfrozen;
}

/* The process runs on after all: its connections leave repair mode. */
CK_HIDDEN void ck_inet_thaw(void)
{
	for (int i = 0; i < nfrozen; i++)
		repair_off(frozen_fds[i], frozen_reuse[i]);
	nfrozen = 0;
}

static void save_tcp_queues(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f,
			    const struct ck_tcp_info *ti, const struct inaddr *local, const struct inaddr *peer)
{
	if (ti->state == TCP_ESTABLISHED && ti->data_segs_out > 0 && peer->set && is_loopback(peer->addr) &&
	    peer_not_accepted(t, local, peer)) {
		fail_socket(w, f, -EOPNOTSUPP, "the program has a connection with bytes its own server has not accepted yet",
			    "the bytes it sent wait in a connection the listener has not accepted, where ckrun cannot "
			    "read them; take the checkpoint once the server accepted it",
			    local, peer);
		return;
	}
	/* an urgent byte the program has not read is held apart from the
	 * stream (unless SO_OOBINLINE), at a mark ckrun cannot set again */
	char urgent;
	if (ck_recvfrom_addr(f->fd, &urgent, 1, MSG_OOB | MSG_PEEK | MSG_DONTWAIT, 0, 0) == 1) {
		fail_socket(w, f, -EOPNOTSUPP, "a TCP connection has urgent data the program has not read",
			    "an urgent byte (sent with MSG_OOB) waits at its mark, which ckrun cannot make again; checkpoint "
			    "again once the program has read it (recv with MSG_OOB); the program runs on",
			    local, peer);
		return;
	}
	has_saved_recv_end = has_saved_send_end = 0;
	save_recv_queue(w, f, ti->state, local, peer);
	if (!w->err)
		save_send_queue(w, f, ti->state, local, peer);
	if (!w->err && ti->state == TCP_ESTABLISHED)
		save_repair_state(w, f, ti);
}

/* The peer a connection in state CLOSE had (SO_PEERNAME tells it where
 * getpeername no longer does); 0 when it never had one. */
static int ended_peer(int fd, struct inaddr *peer)
{
	struct sockaddr_storage ss;
	/* the kernel wants a length no longer than the family's address */
	unsigned len = sizeof(struct sockaddr_in6);
	ck_memset(&ss, 0, sizeof ss);
	if (ck_getsockopt(fd, SOL_SOCKET, SO_PEERNAME, &ss, &len) != 0) {
		len = sizeof(struct sockaddr_in);
		if (ck_getsockopt(fd, SOL_SOCKET, SO_PEERNAME, &ss, &len) != 0)
			return 0;
	}
	from_sockaddr(&ss, peer);
	return peer->set && peer->port != 0;
}

/* A socket in state CLOSE that had a peer: a connection that ended, or a
 * connect that failed. The kernel keeps its end (reads give EOF or the
 * error) and may have let its port go; a socket made again and bound
 * would neither end nor be free of its port, so only a pair is made
 * again, connected and closed (save_ended). */
static int ended_connection(const struct ck_fd *f, const struct inaddr *local, struct inaddr *peer)
{
	return local->set && ended_peer(f->fd, peer);
}

/* An error the connection's end left pending (a reset, a refusal), which
 * only SO_ERROR could tell, and reading it clears it: poll says it is there. */
static int error_pending(int fd)
{
	struct pollfd p = {fd, 0, 0};
	return CK_SYS3(SYS_poll, &p, 1, 0) == 1 && (p.revents & POLLERR);
}

/* The other end of an ended connection, in this process and ended too:
 * the restore makes both again and closes them as they were closed. */
static int ended_partner_here(const struct ck_fdtab *t, const struct ck_fd *f, const struct inaddr *local,
			      const struct inaddr *peer)
{
	for (int i = 0; i < t->n; i++) {
		const struct ck_fd *o = &t->fds[i];
		struct inaddr ol, op;
		int type = 0;
		struct ck_tcp_info ti;
		unsigned len = sizeof ti;
		if (o->st.ino == f->st.ino || (o->st.mode & S_IFMT) != S_IFSOCK || !ck_sockopt_int(o->fd, SOL_SOCKET, SO_TYPE, &type) ||
		    type != SOCK_STREAM || !socket_address(o->fd, 0, &ol) || !same_address(&ol, peer))
			continue;
		ck_memset(&ti, 0, sizeof ti);
		if (ck_getsockopt(o->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.state == TCP_CLOSE &&
		    ended_peer(o->fd, &op) && same_address(&op, local) && !error_pending(o->fd))
			return 1;
	}
	return 0;
}

/* A connection both of whose ends this process holds, both closed
 * (shutdown both ways, state CLOSE) with no error pending: "ended", its
 * peer, and the bytes its end has not read. Any other ended connection
 * fails the checkpoint. */
static void save_ended(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f, const struct inaddr *local,
		       const struct inaddr *peer)
{
	if (error_pending(f->fd) || !ended_partner_here(t, f, local, peer)) {
		fail_socket(w, f, -EOPNOTSUPP, "a TCP connection has ended and the program has not closed it yet",
			    "its connection ended (both sides closed it, or it was reset or refused: state CLOSE); ckrun makes "
			    "one again only when both of its ends are in the same process and neither was reset; checkpoint "
			    "again once the program has closed it; the program runs on",
			    local, peer);
		return;
	}
	struct cb_enc *e = &w->meta;
	int inq = 0;
	ck_ioctl(f->fd, FIONREAD, &inq);
	char *buf = inq > 0 ? scratch_buffer(inq) : 0;
	long n = buf ? peek_stream(f->fd, buf, inq) : 0;
	if (n < 0 || (inq > 0 && n != inq)) {
		fail_socket(w, f, n < 0 ? n : -EIO, "cannot copy the bytes queued in a TCP connection",
			    "peeking its receive queue failed", local, peer);
	} else {
		put_address(e, "peer", peer);
		cb_kv_bool(e, "ended", 1);
		if (n > 0)
			put_queue(w, "recv_queue", buf, n);
	}
	if (buf)
		ck_munmap(buf, CK_PAGE_UP(inq));
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
	struct inaddr had;
	cb_kv_uint(e, "tcp_state", ti.state);
	if (ti.state == TCP_CLOSE && ended_connection(f, local, &had)) {
		save_ended(w, t, f, local, &had);
		return;
	}
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

struct inet_want {
	uint64_t ino;
	const struct inet_diag_msg **msg;
	uint8_t *shutdown;
};

static long take_inet_msg(const struct nlmsghdr *h, void *arg)
{
	struct inet_want *want = arg;
	const struct inet_diag_msg *m = NLMSG_DATA(h);
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof *m) || m->idiag_inode != want->ino)
		return 0;
	*want->msg = m;
	*want->shutdown = 0;
	long alen = (long)h->nlmsg_len - (long)NLMSG_LENGTH(sizeof *m);
	for (const struct rtattr *at = (const struct rtattr *)(m + 1); RTA_OK(at, alen); at = RTA_NEXT(at, alen))
		if (at->rta_type == INET_DIAG_SHUTDOWN && RTA_PAYLOAD(at) >= 1)
			*want->shutdown = *(const uint8_t *)RTA_DATA(at);
	return 1;
}

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
	ck_memset(&q, 0, sizeof q);
	q.h.nlmsg_len = sizeof q;
	q.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.r.sdiag_family = (uint8_t)family;
	q.r.sdiag_protocol = (uint8_t)protocol;
	q.r.idiag_states = states;
	struct inet_want want = {ino, msg, shutdown};
	return ck_sock_diag_dump(&q, sizeof q, inet_diag_reply, sizeof inet_diag_reply, take_inet_msg, &want) == 1;
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

/* A UDP (or UDP-Lite) socket's shutdown (shutdown() works on one,
 * connected or not), which only sock_diag tells; 0 when it cannot tell. */
static uint8_t udp_shutdown(int family, int protocol, uint64_t ino)
{
	const struct inet_diag_msg *m;
	uint8_t shut = 0;
	if (!inet_diag_find(family, protocol, ~0u, ino, &m, &shut))
		return 0;
	return shut;
}

static int is_raw_or_ping(int family, int type, int protocol)
{
	return type == SOCK_RAW || (type == SOCK_DGRAM && ((family == AF_INET && protocol == IPPROTO_ICMP) ||
							    (family == AF_INET6 && protocol == IPPROTO_ICMPV6)));
}

/* An echo reply queued on a ping socket cannot be put back (only the
 * kernel makes one, for a request it saw go out): the checkpoint fails
 * while one waits, naming the socket. */
static void check_no_replies(struct ck_writer *w, const struct ck_fd *f, int type)
{
	char b;
	if (ck_recvfrom_addr(f->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT, 0, 0) < 0)
		return;
	if (type == SOCK_RAW)
		fail_socket(w, f, -EBUSY, "the program has a raw IP socket with packets it has not read",
			    "ckrun cannot put packets the kernel delivered back; checkpoint again once the program has read them", 0, 0);
	else
		fail_socket(w, f, -EBUSY, "the program has an ICMP (ping) socket with a reply it has not read",
			    "ckrun cannot put an echo reply back; checkpoint again once the program has read it", 0, 0);
}

CK_HIDDEN void ck_inet_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f, int family, int type,
			    int protocol)
{
	struct cb_enc *e = &w->meta;
	struct inaddr local, peer;
	(void)family;
	int queueless = is_raw_or_ping(family, type, protocol);
	if (!((type == SOCK_STREAM && protocol == IPPROTO_TCP) ||
	      (type == SOCK_DGRAM && (protocol == IPPROTO_UDP || protocol == IPPROTO_UDPLITE)) || queueless)) {
		fail_socket(w, f, -EOPNOTSUPP, "the program has an IP socket ckrun cannot save",
			    "only TCP, UDP, UDP-Lite, ICMP (ping) and raw sockets are supported (not SCTP or DCCP)", 0, 0);
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
	} else if (queueless) {
		check_no_replies(w, f, type);
	} else {
		uint8_t shut = udp_shutdown(family, protocol, f->st.ino);
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

static int parse_repair(struct cb_dec *d, struct ck_img_inet *in)
{
	int64_t n;
	if (!cbd_array(d, &n) || n != 11)
		return 0;
	for (int i = 0; i < 11; i++)
		if (!cbd_uint_max(d, i == 5 ? UINT64_MAX : UINT32_MAX, &in->repair[i]))
			return 0;
	return in->has_repair = 1;
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
		else if (cbd_key_is(k, kl, "ended"))
			ok = cbd_bool(d, &in->ended);
		else if (cbd_key_is(k, kl, "backlog"))
			ok = cbd_uint(d, &in->backlog) && (in->has_backlog = 1);
		else if (cbd_key_is(k, kl, "recv_queue"))
			ok = parse_queue(d, &in->recv_q);
		else if (cbd_key_is(k, kl, "unsent_queue"))
			ok = parse_queue(d, &in->unsent_q);
		else if (cbd_key_is(k, kl, "send_queue"))
			ok = parse_queue(d, &in->send_q);
		else if (cbd_key_is(k, kl, "send_unsent"))
			ok = cbd_uint(d, &in->send_unsent);
		else if (cbd_key_is(k, kl, "send_seq"))
			ok = cbd_uint_max(d, UINT32_MAX, &v) && (in->send_seq = (uint32_t)v, in->has_send_seq = 1);
		else if (cbd_key_is(k, kl, "recv_seq"))
			ok = cbd_uint_max(d, UINT32_MAX, &v) && (in->recv_seq = (uint32_t)v, in->has_recv_seq = 1);
		else if (cbd_key_is(k, kl, "repair"))
			ok = parse_repair(d, in);
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
	int reuseport_bind; /* bound with SO_REUSEPORT, which the program cleared since */
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
	if (e->reuseport_bind)
		set_int(moved, SOL_SOCKET, SO_REUSEPORT, 1);
	return moved;
}


/* A raw socket: bound to its address (its "port" is its protocol, which
 * bind ignores) and connected, with nothing queued (the checkpoint made
 * sure). Making one takes CAP_NET_RAW, as it did for the program. */
static void make_raw(struct end *e, int base_fd)
{
	e->fd = new_socket(e, base_fd);
	struct sockaddr_storage ss;
	static const uint8_t any6[16];
	struct ck_img_inaddr a = e->in->local;
	a.port = 0;
	int any = !memcmp(a.addr, any6, 16) || (is_v4(a.addr) && !a.addr[12] && !a.addr[13] && !a.addr[14] && !a.addr[15]);
	if (e->in->local.set && !any) {
		socklen_t len = to_sockaddr(e->sock->family, &a, &ss);
		if (bind(e->fd, (struct sockaddr *)&ss, len) != 0)
			ck_refuse("cannot bind the raw socket at descriptor %d of process %d again: %s", e->f->fd, e->img->pid,
				  strerror(errno));
	}
	if (e->in->peer.set) {
		a = e->in->peer;
		a.port = 0;
		socklen_t len = to_sockaddr(e->sock->family, &a, &ss);
		if (connect(e->fd, (struct sockaddr *)&ss, len) != 0)
			ck_refuse("cannot connect the raw socket at descriptor %d of process %d again: %s", e->f->fd,
				  e->img->pid, strerror(errno));
	}
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
static void send_queue_from(const struct end *holder, int via, const struct ck_img_queue *q, uint64_t skip)
{
	if (q->len <= skip)
		return;
	char *buf = read_queue(holder->img, holder->f, q->off, q->len, q->crc);
	uint64_t done = skip;
	int grows = 0, waits = 0, sndbuf = 0, lock = 0;
	socklen_t len = sizeof sndbuf;
	getsockopt(via, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
	len = sizeof lock;
	getsockopt(via, SOL_SOCKET, SO_BUF_LOCK, &lock, &len);
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
	/* the size it had and whether the kernel tunes it (growing it locked
	 * it): a size the program locked is set again once the queues are in
	 * (ck_sockopts_apply_buffers); a smaller one than the bytes queued only
	 * holds further writes until they drain */
	if (grows && sndbuf > 0) {
		int half = sndbuf / 2;
		if (setsockopt(via, SOL_SOCKET, SO_SNDBUFFORCE, &half, sizeof half) != 0)
			setsockopt(via, SOL_SOCKET, SO_SNDBUF, &half, sizeof half);
		setsockopt(via, SOL_SOCKET, SO_BUF_LOCK, &lock, sizeof lock);
	}
}

static void send_queue(const struct end *holder, int via, const struct ck_img_queue *q)
{
	send_queue_from(holder, via, q, 0);
}

/* What `from` had written and `to` had not received yet, written by
 * `from` (after to's saved receive queue): with both sequence numbers,
 * exactly the bytes of from's send queue after to's last one; without
 * them (an image whose process lacked CAP_NET_ADMIN), the bytes TCP had
 * not sent. */
static void send_rest(const struct end *from, const struct end *to)
{
	const struct ck_img_inet *f = from->in, *t = to->in;
	if (!f->has_send_seq) {
		send_queue(from, from->fd, &f->unsent_q); /* an image of an older ckrun */
		return;
	}
	if (!t->has_recv_seq) {
		uint64_t unsent = f->send_unsent < f->send_q.len ? f->send_unsent : f->send_q.len;
		send_queue_from(from, from->fd, &f->send_q, f->send_q.len - unsent);
		return;
	}
	int32_t skip = (int32_t)(t->recv_seq + (uint32_t)t->recv_q.len - f->send_seq);
	if (skip < 0 || (uint64_t)skip > f->send_q.len)
		ck_refuse("images %s and %s do not agree on the TCP connection between descriptor %d of process %d and "
			  "descriptor %d of process %d: %s; restart from another generation",
			  from->img->path, to->img->path, from->f->fd, from->img->pid, to->f->fd, to->img->pid,
			  skip < 0 ? "bytes in flight are in neither image" : "the receiver holds bytes the sender never wrote");
	send_queue_from(from, from->fd, &f->send_q, (uint64_t)skip);
}

static int connected_state(int state)
{
	return state == TCP_ESTABLISHED || state == TCP_SYN_SENT || fin_written(state) || fin_received(state);
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
	send_rest(c, s);
	send_queue(c, s->fd, &c->in->recv_q);
	send_rest(s, c);
	if (fin_written(c->in->tcp_state))
		shutdown(c->fd, SHUT_WR);
	if (fin_written(s->in->tcp_state))
		shutdown(s->fd, SHUT_WR);
	settle(c);
	settle(s);
}

/* Waits (a second at most) until e's end is in state `want`. */
static int reaches(const struct end *e, int want)
{
	for (int i = 0; i < 1000; i++) {
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		if (getsockopt(e->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
			return 0;
		if (ti.tcpi_state == want)
			return 1;
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, 0);
	}
	return 0;
}

/* A connection both ends had closed, made again and closed the same way:
 * each end's unread bytes, then a FIN each way, until both are in state
 * CLOSE (reads see the bytes, then the end; writes fail with EPIPE). */
static void make_ended_pair(struct end *c, struct end *s, int base_fd)
{
	make_pair(c, s, base_fd);
	errno = 0;
	if (shutdown(c->fd, SHUT_WR) != 0 || !reaches(c, TCP_FIN_WAIT2) || shutdown(s->fd, SHUT_WR) != 0 ||
	    !reaches(s, TCP_CLOSE) || !reaches(c, TCP_CLOSE))
		ck_refuse("cannot close the TCP connection between descriptors %d and %d of process %d again as it was "
			  "closed: %s",
			  c->f->fd, s->f->fd, c->img->pid, errno ? strerror(errno) : "it did not reach state CLOSE");
}

static struct end *ended_partner_of(struct end *ends, size_t n, const struct end *e)
{
	for (size_t i = 0; i < n; i++) {
		struct end *p = &ends[i];
		if (p != e && p->fd < 0 && p->sock->type == SOCK_STREAM && p->in->ended && p->img == e->img &&
		    same_address(&p->in->local, &e->in->peer) && same_address(&p->in->peer, &e->in->local))
			return p;
	}
	return 0;
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
		if (fin_written(e->in->tcp_state))
			shutdown(e->fd, SHUT_WR);
	} else {
		struct linger l = {1, 0};
		setsockopt(a, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	}
	close(a);
}

/* A mark beside the image (DIR/N/NAME), used once: read (up to cap - 1
 * bytes into text, NUL-ended, when text is given) and removed. Only a
 * regular file counts, never one reached through a link. 1 if it was
 * there. After a restart the program runs on, and its peers with it: the
 * same generation restored again would be behind them, and comes back
 * reset. */
static int take_mark(const struct ck_image *img, const char *name, char *text, size_t cap)
{
	char path[4096];
	const char *slash = strrchr(img->path, '/');
	size_t dl = slash ? (size_t)(slash - img->path) : 1;
	if (dl + 1 + strlen(name) + 1 > sizeof path)
		return 0;
	memcpy(path, slash ? img->path : ".", dl);
	snprintf(path + dl, sizeof path - dl, "/%s", name);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	int there = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	ssize_t n = there && text ? read(fd, text, cap - 1) : 0;
	if (text)
		text[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
	if (there)
		unlink(path);
	return there;
}

/* The generation's stop froze its connections (ckrun wrote DIR/N/repair_frozen
 * after every process had put them in repair mode, before its SIGKILL),
 * and no restart has used it yet. */
static int generation_frozen(const struct ck_image *img)
{
	static int known = -1;
	if (known < 0)
		known = take_mark(img, "repair_frozen", 0, 0);
	return known;
}

/* The descriptors of process `img` whose connections it froze itself when
 * ckrun was killed, unchanged since this generation's checkpoint
 * (DIR/N/repair_frozen.PID, ck_inet_freeze_unchanged). */
static int frozen_at_kill(const struct ck_image *img, int fd)
{
	/* each process's mark is read once (it is removed then), even when
	 * the ends of several processes come here in turn */
	static struct {
		int pid, n;
		int fds[256];
	} known[64];
	static int nknown;
	int k = 0;
	while (k < nknown && known[k].pid != img->pid)
		k++;
	if (k == nknown) {
		if (nknown == (int)(sizeof known / sizeof known[0]))
			return 0; /* more processes than this: the rest come back reset */
		nknown++;
		known[k].pid = img->pid;
		known[k].n = 0;
		char name[64], text[4096];
		snprintf(name, sizeof name, "repair_frozen.%d", img->pid);
		take_mark(img, name, text, sizeof text);
		const char *p = strncmp(text, "descriptors", 11) == 0 ? text + 11 : "";
		while (*p == ' ' && known[k].n < (int)(sizeof known[k].fds / sizeof known[k].fds[0])) {
			char *end;
			long v = strtol(p + 1, &end, 10);
			if (end == p + 1 || v < 0 || v > INT32_MAX)
				break;
			known[k].fds[known[k].n++] = (int)v;
			p = end;
		}
	}
	for (int i = 0; i < known[k].n; i++)
		if (known[k].fds[i] == fd)
			return 1;
	return 0;
}

static int set_repair(int fd, int name, const void *v, socklen_t len)
{
	return setsockopt(fd, IPPROTO_TCP, name, v, len);
}

static void repair_write(const struct end *e, const struct ck_img_queue *q, uint64_t from, uint64_t to)
{
	if (to <= from)
		return;
	char *buf = read_queue(e->img, e->f, q->off, q->len, q->crc);
	for (uint64_t at = from; at < to;) {
		ssize_t w = send(e->fd, buf + at, to - at, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w <= 0)
			ck_refuse("cannot write the queued bytes of descriptor %d of process %d back in repair mode: %s",
				  e->f->fd, e->img->pid, w < 0 ? strerror(errno) : "nothing written");
		at += (uint64_t)w;
	}
	free(buf);
}

/* A connection to a peer outside the session, frozen at the stop: made
 * again in repair mode with its sequence numbers, options, window and
 * queues, then repair mode left: the peer goes on with the same
 * connection. 0 when repair mode is not allowed (no CAP_NET_ADMIN): the
 * connection then comes back reset, as every other one. */
static int make_repaired(struct end *e, int base_fd)
{
	const struct ck_img_inet *in = e->in;
	const uint64_t *r = in->repair;
	int on = TCP_REPAIR_ON, q;
	uint32_t seq;
	int fd = socket(e->sock->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		ck_refuse("cannot create a TCP socket for descriptor %d of process %d: %s", e->f->fd, e->img->pid, strerror(errno));
	if (set_repair(fd, TCP_REPAIR, &on, sizeof on) != 0) {
		close(fd);
		return 0;
	}
	close(fd);
	e->fd = new_socket(e, base_fd);
	char a1[64], a2[64];
	const char *what = 0;
	struct ck_repair_window rw = {(uint32_t)r[6], (uint32_t)r[7], (uint32_t)r[8], (uint32_t)r[9], (uint32_t)r[10]};
	struct tcp_repair_opt opts[4];
	int nopt = 0;
	struct sockaddr_storage ss;
	socklen_t len;
	struct ck_timespec now;
	ck_clock_gettime(CLOCK_REALTIME, &now);
	uint64_t now_ms = (uint64_t)now.sec * 1000u + (uint64_t)now.nsec / 1000000u;
	/* the timestamp clock went on while the program was down: the peer
	 * drops segments whose timestamps go back (PAWS) */
	uint32_t ts = (uint32_t)(r[4] + (now_ms > r[5] ? now_ms - r[5] : 0));
	opts[nopt++] = (struct tcp_repair_opt){TCPOPT_MAXSEG, (uint32_t)r[0]};
	if (r[3] & TCPI_OPT_WSCALE)
		opts[nopt++] = (struct tcp_repair_opt){TCPOPT_WINDOW, (uint32_t)(r[1] | (r[2] << 16))};
	if (r[3] & TCPI_OPT_SACK)
		opts[nopt++] = (struct tcp_repair_opt){TCPOPT_SACK_PERMITTED, 0};
	if (r[3] & TCPI_OPT_TIMESTAMPS)
		opts[nopt++] = (struct tcp_repair_opt){TCPOPT_TIMESTAMP, 0};
	int one = 1;
	setsockopt(e->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (set_repair(e->fd, TCP_REPAIR, &on, sizeof on) != 0)
		what = "TCP_REPAIR";
	q = TCP_SEND_QUEUE, seq = in->send_seq;
	if (!what && (set_repair(e->fd, TCP_REPAIR_QUEUE, &q, sizeof q) != 0 || set_repair(e->fd, TCP_QUEUE_SEQ, &seq, sizeof seq) != 0))
		what = "the send sequence number";
	q = TCP_RECV_QUEUE, seq = in->recv_seq;
	if (!what && (set_repair(e->fd, TCP_REPAIR_QUEUE, &q, sizeof q) != 0 || set_repair(e->fd, TCP_QUEUE_SEQ, &seq, sizeof seq) != 0))
		what = "the receive sequence number";
	if (!what) {
		len = to_sockaddr(e->sock->family, &in->local, &ss);
		if (bind(e->fd, (struct sockaddr *)&ss, len) != 0)
			what = "bind to its old address";
	}
	if (!what) {
		len = to_sockaddr(e->sock->family, &in->peer, &ss);
		if (connect(e->fd, (struct sockaddr *)&ss, len) != 0)
			what = "connect (in repair mode) to its peer";
	}
	if (!what && set_repair(e->fd, TCP_REPAIR_OPTIONS, opts, (socklen_t)(nopt * sizeof opts[0])) != 0)
		what = "TCP_REPAIR_OPTIONS";
	if (!what && (r[3] & TCPI_OPT_TIMESTAMPS) && set_repair(e->fd, TCP_TIMESTAMP, &ts, sizeof ts) != 0)
		what = "TCP_TIMESTAMP";
	if (!what && set_repair(e->fd, TCP_REPAIR_WINDOW, &rw, sizeof rw) != 0)
		what = "TCP_REPAIR_WINDOW";
	if (what)
		ck_refuse("cannot re-create the connection of descriptor %d of process %d (%s port %d to %s port %d) in repair "
			  "mode: %s failed: %s",
			  e->f->fd, e->img->pid, address_text(&in->local, a1, sizeof a1), in->local.port,
			  address_text(&in->peer, a2, sizeof a2), in->peer.port, what, strerror(errno));
	q = TCP_RECV_QUEUE;
	set_repair(e->fd, TCP_REPAIR_QUEUE, &q, sizeof q);
	repair_write(e, &in->recv_q, 0, in->recv_q.len);
	/* the bytes TCP had sent go in as sent (retransmitted if the peer
	 * lacks them), the rest are sent once repair mode is left */
	uint64_t sent = in->send_q.len > in->send_unsent ? in->send_q.len - in->send_unsent : 0;
	q = TCP_SEND_QUEUE;
	set_repair(e->fd, TCP_REPAIR_QUEUE, &q, sizeof q);
	repair_write(e, &in->send_q, 0, sent);
	int off = TCP_REPAIR_OFF, noq = TCP_NO_QUEUE;
	set_repair(e->fd, TCP_REPAIR_QUEUE, &noq, sizeof noq);
	if (set_repair(e->fd, TCP_REPAIR, &off, sizeof off) != 0)
		ck_refuse("cannot leave repair mode on descriptor %d of process %d: %s", e->f->fd, e->img->pid, strerror(errno));
	repair_write(e, &in->send_q, sent, in->send_q.len);
	return 1;
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
		/* UDP-Lite datagrams come only from a UDP-Lite socket */
		int h = socket(hf, SOCK_DGRAM | SOCK_CLOEXEC, e->sock->protocol == IPPROTO_UDPLITE ? IPPROTO_UDPLITE : 0);
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

/* Sockets that share a port with one that has SO_REUSEPORT had it too when
 * they were bound (the kernel allows the sharing only then), and the
 * program cleared it since (the sockets keep the port): they are bound
 * with it again, and given the saved value back once every socket is. */
static void mark_reuseport_binds(struct end *ends, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		struct end *e = &ends[i];
		if (!e->in->local.set || !e->in->local.port || saved_int(e->sock, SOL_SOCKET, SO_REUSEPORT) ||
		    (e->sock->type == SOCK_STREAM && connected_state(e->in->tcp_state)))
			continue;
		for (size_t j = 0; j < count && !e->reuseport_bind; j++) {
			const struct end *o = &ends[j];
			e->reuseport_bind = o != e && o->sock->type == e->sock->type && o->in->local.set &&
					    o->in->local.port == e->in->local.port && saved_int(o->sock, SOL_SOCKET, SO_REUSEPORT);
		}
	}
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
		else if ((connected_state(in->tcp_state) || in->ended) && in->peer.set)
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
		ends[count++] = (struct end){list[i].img, f, list[i].s, list[i].s->inet_part, -1, 0};
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
	mark_reuseport_binds(ends, count);
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
	for (size_t i = 0; i < count; i++) {
		struct end *e = &ends[i], *p;
		if (e->fd >= 0 || e->sock->type != SOCK_STREAM || !e->in->ended)
			continue;
		/* the checkpoint saw both ends in this process */
		if (!(p = ended_partner_of(ends, count, e)))
			ck_refuse("image %s is inconsistent: descriptor %d of process %d is a TCP connection that had ended, and "
				  "its other end is not in the image; restart from another generation",
				  e->img->path, e->f->fd, e->img->pid);
		if (listener_at(ends, count, &e->in->local) && !listener_at(ends, count, &p->in->local))
			make_ended_pair(p, e, base_fd);
		else
			make_ended_pair(e, p, base_fd);
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
		else if (e->sock->type == SOCK_RAW)
			make_raw(e, base_fd);
		else if (!connected_state(e->in->tcp_state))
			make_plain(e, base_fd);
		else if (e->in->tcp_state == TCP_SYN_SENT)
			continue; /* below */
		else if (e->in->tcp_state == TCP_ESTABLISHED && listener_at(ends, count, &e->in->peer))
			make_pending(e, base_fd);
		else if (e->in->tcp_state == TCP_ESTABLISHED && e->in->has_repair && e->in->has_send_seq &&
			 e->in->has_recv_seq && e->in->peer.set &&
			 (generation_frozen(e->img) || frozen_at_kill(e->img, e->f->fd)) && make_repaired(e, base_fd))
			continue;
		else
			make_orphan(e, base_fd, fin_received(e->in->tcp_state));
	}
	/* connects in progress last: the connections a listener had queued
	 * take their places in its queue first */
	for (size_t i = 0; i < count; i++)
		if (ends[i].fd < 0 && ends[i].sock->type == SOCK_STREAM && ends[i].in->tcp_state == TCP_SYN_SENT)
			make_connecting(&ends[i], base_fd);
	for (size_t i = 0; i < count; i++) {
		set_int(ends[i].fd, SOL_SOCKET, SO_REUSEADDR, saved_reuseaddr(ends[i].sock));
		if (ends[i].reuseport_bind)
			set_int(ends[i].fd, SOL_SOCKET, SO_REUSEPORT, 0);
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
