/* Packet sockets (AF_PACKET): a DHCP client, an LLDP or ARP daemon, a
 * capture (SOCK_RAW or SOCK_DGRAM, and the old SOCK_PACKET).
 *
 * Saved: the protocol and interface it is bound to (the interface by
 * name: its index may differ on another boot), its SOL_PACKET options
 * (sockets.c saves them with the others: the frame version, reserve,
 * auxiliary data, ...), from sock_diag (packet_diag) its copy threshold,
 * its memberships (promiscuous mode, multicast and unicast addresses, each
 * as often as it was added), its rings (PACKET_RX_RING, PACKET_TX_RING)
 * and its fanout group. A ring the program mapped fails the checkpoint:
 * its frames are the kernel's and the mapping would come back as plain
 * memory. So does a fanout group that steers by a BPF program (the
 * kernel does not give it back).
 *
 * Not saved: frames received and not yet read. The interface keeps
 * sending frames, and a packet socket drops what it has no room for; a
 * restart drops those too, as an overrun would (PACKET_STATISTICS does not
 * count them).
 *
 * Restored: the socket is made once for the processes that share it
 * (sockets.c create_shared), with its options, bound, its memberships
 * added, its rings set and its fanout group joined, before any process
 * runs. Making one takes CAP_NET_RAW, as for the program. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/packet_diag.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdkind.h"
#include "sockets.h"
#include "sys.h"

#ifndef SOCK_PACKET
#define SOCK_PACKET 10
#endif
#define MAX_MEMBERSHIPS 64
#define FANOUT_BPF_FIRST 6 /* PACKET_FANOUT_CBPF, PACKET_FANOUT_EBPF */
#define FANOUT_BPF_LAST 7

struct packet_ring {
	int set;
	uint32_t block_size, block_nr, frame_size, frame_nr, retire_tmo, sizeof_priv, features;
};

struct packet_membership {
	char ifname[IFNAMSIZ];
	uint32_t type, count, alen;
	uint8_t addr[32];
};

/* the "packet" map of a socket */
struct ck_img_packet {
	char ifname[IFNAMSIZ]; /* the interface it is bound to; "" none */
	uint32_t num;          /* the protocol it takes (network byte order, as socket() and getsockname take it) */
	uint32_t copy_thresh, fanout;
	struct packet_ring rings[2]; /* receive, transmit */
	struct packet_membership m[MAX_MEMBERSHIPS];
	unsigned nm;
};

/* ---- save (the writer: raw system calls) ---- */

static void fail_packet(struct ck_writer *w, const struct ck_fd *f, long err, const char *what, const char *detail)
{
	struct ck_str m;
	ck_writer_fail_fd(w, err, what, f, &m);
	ck_str_add(&m, "(a packet socket): ");
	ck_str_add(&m, detail);
}

/* An interface's name by its index, asked on the socket itself. */
static int ifname_of(int fd, int index, char name[IFNAMSIZ])
{
	struct ifreq r;
	ck_memset(&r, 0, sizeof r);
	r.ifr_ifindex = index;
	if (ck_ioctl(fd, SIOCGIFNAME, &r) < 0)
		return 0;
	ck_memcpy(name, r.ifr_name, IFNAMSIZ);
	name[IFNAMSIZ - 1] = 0;
	return 1;
}

static struct ck_img_packet saved; /* the writer's own: it is a process of its own */
static char diag_reply[32768] __attribute__((aligned(8)));

static void read_ring(const struct nlattr *a, struct packet_ring *r)
{
	const struct packet_diag_ring *d = (const void *)(a + 1);
	if (a->nla_len < NLA_HDRLEN + sizeof *d)
		return;
	*r = (struct packet_ring){1, d->pdr_block_size, d->pdr_block_nr, d->pdr_frame_size, d->pdr_frame_nr,
				  d->pdr_retire_tmo, d->pdr_sizeof_priv, d->pdr_features};
}

/* The attributes of one packet_diag answer into saved; 0 when a
 * membership's interface has no name (gone). */
static int read_diag_attrs(int fd, const struct packet_diag_msg *m, long len)
{
	const struct nlattr *a = (const void *)(m + 1);
	while (len >= (long)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len) {
		const void *p = (const char *)a + NLA_HDRLEN;
		if (a->nla_type == PACKET_DIAG_INFO && a->nla_len >= NLA_HDRLEN + sizeof(struct packet_diag_info)) {
			saved.copy_thresh = ((const struct packet_diag_info *)p)->pdi_copy_thresh;
		} else if (a->nla_type == PACKET_DIAG_RX_RING || a->nla_type == PACKET_DIAG_TX_RING) {
			read_ring(a, &saved.rings[a->nla_type == PACKET_DIAG_TX_RING]);
		} else if (a->nla_type == PACKET_DIAG_FANOUT && a->nla_len >= NLA_HDRLEN + 4) {
			ck_memcpy(&saved.fanout, p, 4);
		} else if (a->nla_type == PACKET_DIAG_MCLIST) {
			const struct packet_diag_mclist *c = p;
			for (long k = (long)(a->nla_len - NLA_HDRLEN) / (long)sizeof *c; k > 0; k--, c++) {
				struct packet_membership *pm = &saved.m[saved.nm];
				if (saved.nm == MAX_MEMBERSHIPS)
					return -1;
				if (!ifname_of(fd, (int)c->pdmc_index, pm->ifname))
					return 0;
				pm->type = c->pdmc_type;
				pm->count = c->pdmc_count;
				pm->alen = c->pdmc_alen > sizeof pm->addr ? sizeof pm->addr : c->pdmc_alen;
				ck_memcpy(pm->addr, c->pdmc_addr, pm->alen);
				saved.nm++;
			}
		}
		long step = NLA_ALIGN(a->nla_len);
		len -= step;
		a = (const void *)((const char *)a + step);
	}
	return 1;
}

struct diag_want {
	int fd;
	uint64_t ino;
	int attrs;
};

static long take_packet_msg(const struct nlmsghdr *h, void *arg)
{
	struct diag_want *want = arg;
	const struct packet_diag_msg *m = NLMSG_DATA(h);
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof *m) || m->pdiag_ino != (uint32_t)want->ino)
		return 0;
	/* in host order here, in network order as socket() and getsockname take it */
	saved.num = (uint16_t)(m->pdiag_num << 8 | m->pdiag_num >> 8);
	want->attrs = read_diag_attrs(want->fd, m, (long)h->nlmsg_len - (long)NLMSG_LENGTH(sizeof *m));
	return 1;
}

/* Asks sock_diag for every packet socket (it cannot look one up by inode)
 * and reads the one with inode ino: 1, 0 when it is not there, -errno. */
static long diag_packet(int fd, uint64_t ino, int *attrs)
{
	struct {
		struct nlmsghdr h;
		struct packet_diag_req r;
	} q;
	ck_memset(&q, 0, sizeof q);
	q.h.nlmsg_len = sizeof q;
	q.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.r.sdiag_family = AF_PACKET;
	q.r.pdiag_show = PACKET_SHOW_INFO | PACKET_SHOW_MCLIST | PACKET_SHOW_RING_CFG | PACKET_SHOW_FANOUT;
	struct diag_want want = {fd, ino, 1};
	long r = ck_sock_diag_dump(&q, sizeof q, diag_reply, sizeof diag_reply, take_packet_msg, &want);
	*attrs = want.attrs;
	return r;
}

/* Whether the process maps the socket (a ring): /proc/self/maps names
 * such a mapping "socket:[INODE]" (the writer's maps are the program's). */
static int socket_mapped(uint64_t ino)
{
	static char buf[8192];
	char want[40];
	struct ck_str s;
	ck_str_init(&s, want, sizeof want);
	ck_str_add(&s, "socket:[");
	ck_str_udec(&s, ino);
	ck_str_add(&s, "]\n");
	long fd = ck_openat(AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	size_t have = 0, wl = s.len;
	int found = 0;
	for (long r; !found && (r = ck_read((int)fd, buf + have, sizeof buf - have)) > 0;) {
		have += (size_t)r;
		for (size_t i = 0; i + wl <= have && !found; i++)
			found = ck_strneq(buf + i, want, wl);
		/* keep the tail: the name may straddle two reads */
		size_t keep = have < wl ? have : wl - 1;
		for (size_t i = 0; i < keep; i++)
			buf[i] = buf[have - keep + i];
		have = keep;
	}
	ck_close((int)fd);
	return found;
}

static void put_ring(struct cb_enc *e, const char *key, const struct packet_ring *r)
{
	if (!r->set || !r->block_nr)
		return;
	cb_text(e, key);
	cb_array(e, 7);
	cb_uint(e, r->block_size);
	cb_uint(e, r->block_nr);
	cb_uint(e, r->frame_size);
	cb_uint(e, r->frame_nr);
	cb_uint(e, r->retire_tmo);
	cb_uint(e, r->sizeof_priv);
	cb_uint(e, r->features);
}

static void put_memberships(struct cb_enc *e)
{
	if (!saved.nm)
		return;
	cb_text(e, "memberships");
	cb_array(e, saved.nm);
	for (unsigned i = 0; i < saved.nm; i++) {
		cb_array(e, 4);
		cb_text(e, saved.m[i].ifname);
		cb_uint(e, saved.m[i].type);
		cb_uint(e, saved.m[i].count);
		cb_bytes(e, saved.m[i].addr, saved.m[i].alen);
	}
}

/* Where it is bound: an interface index and protocol (sockaddr_ll), or,
 * for SOCK_PACKET, an interface name (struct sockaddr's sa_data). */
static int read_binding(struct ck_writer *w, const struct ck_fd *f, int type)
{
	struct sockaddr_storage a;
	unsigned len = sizeof a;
	ck_memset(&a, 0, sizeof a);
	if (ck_getsockname(f->fd, &a, &len) != 0) {
		fail_packet(w, f, -EIO, "cannot save a packet socket", "getsockname failed");
		return 0;
	}
	if (type == SOCK_PACKET) {
		const struct sockaddr *sa = (const void *)&a;
		for (size_t i = 0; i < sizeof sa->sa_data && i < IFNAMSIZ - 1; i++)
			saved.ifname[i] = sa->sa_data[i];
		return 1;
	}
	const struct sockaddr_ll *ll = (const void *)&a;
	if (ll->sll_ifindex && !ifname_of(f->fd, ll->sll_ifindex, saved.ifname)) {
		fail_packet(w, f, -ENODEV, "cannot save a packet socket", "the interface it is bound to has no name (gone?)");
		return 0;
	}
	return 1;
}

CK_HIDDEN void ck_packet_save(struct ck_writer *w, const struct ck_fd *f, int type)
{
	struct cb_enc *e = &w->meta;
	int attrs = 1;
	ck_memset(&saved, 0, sizeof saved);
	if (!read_binding(w, f, type))
		return;
	long r = diag_packet(f->fd, f->st.ino, &attrs);
	if (r <= 0) {
		fail_packet(w, f, r < 0 ? r : -ENOENT, "cannot save a packet socket",
			    r < 0 ? "sock_diag (NETLINK_SOCK_DIAG) refused to list packet sockets (is the af_packet_diag module missing?)"
				  : "sock_diag does not list it (a socket of another network namespace?)");
		return;
	}
	if (attrs <= 0) {
		fail_packet(w, f, attrs < 0 ? -E2BIG : -ENODEV, "cannot save a packet socket",
			    attrs < 0 ? "it has more than 64 memberships" : "an interface it is a member on has no name (gone?)");
		return;
	}
	if ((saved.rings[0].set || saved.rings[1].set) && (saved.rings[0].block_nr || saved.rings[1].block_nr) &&
	    socket_mapped(f->st.ino)) {
		fail_packet(w, f, -EOPNOTSUPP, "the program maps a packet socket's ring ckrun cannot save",
			    "its frames are the kernel's, and a restart would give the mapping back as plain memory; "
			    "checkpoint it before it sets up the ring (PACKET_RX_RING, PACKET_TX_RING)");
		return;
	}
	unsigned ftype = (saved.fanout >> 16) & 0xff;
	if (saved.fanout && ftype >= FANOUT_BPF_FIRST && ftype <= FANOUT_BPF_LAST) {
		fail_packet(w, f, -EOPNOTSUPP, "cannot save a packet socket",
			    "its fanout group steers by a BPF program (PACKET_FANOUT_CBPF, PACKET_FANOUT_EBPF), which the "
			    "kernel does not give back");
		return;
	}
	cb_text(e, "packet");
	cb_map_open(e);
	if (saved.ifname[0])
		cb_kv_text(e, "ifname", saved.ifname);
	cb_kv_uint(e, "num", saved.num);
	if (saved.copy_thresh)
		cb_kv_uint(e, "copy_thresh", saved.copy_thresh);
	if (saved.fanout)
		cb_kv_uint(e, "fanout", saved.fanout);
	put_ring(e, "rx_ring", &saved.rings[0]);
	put_ring(e, "tx_ring", &saved.rings[1]);
	put_memberships(e);
	cb_close(e);
}

/* ---- restore host ---- */

static int parse_ring(struct cb_dec *d, struct packet_ring *r)
{
	int64_t n;
	uint64_t v[7];
	if (!cbd_array(d, &n) || n != 7)
		return 0;
	for (int i = 0; i < 7; i++)
		if (!cbd_uint_max(d, UINT32_MAX, &v[i]))
			return 0;
	*r = (struct packet_ring){1, (uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2], (uint32_t)v[3], (uint32_t)v[4], (uint32_t)v[5],
				  (uint32_t)v[6]};
	return 1;
}

static int parse_name(struct cb_dec *d, char name[IFNAMSIZ])
{
	const char *s;
	size_t n;
	if (!cbd_text(d, &s, &n) || n >= IFNAMSIZ || memchr(s, 0, n))
		return 0;
	memcpy(name, s, n);
	name[n] = 0;
	return 1;
}

static int parse_memberships(struct cb_dec *d, struct ck_img_packet *p)
{
	int64_t n, m;
	if (!cbd_array(d, &n) || n < 0 || n > MAX_MEMBERSHIPS)
		return 0;
	for (p->nm = 0; p->nm < (unsigned)n; p->nm++) {
		struct packet_membership *pm = &p->m[p->nm];
		uint64_t type, count;
		const uint8_t *addr;
		size_t alen;
		if (!cbd_array(d, &m) || m != 4 || !parse_name(d, pm->ifname) || !cbd_uint_max(d, 0xffff, &type) ||
		    !cbd_uint_max(d, UINT32_MAX, &count) || !cbd_bytes(d, &addr, &alen) || alen > sizeof pm->addr)
			return 0;
		pm->type = (uint32_t)type;
		pm->count = (uint32_t)count;
		pm->alen = (uint32_t)alen;
		memcpy(pm->addr, addr, alen);
	}
	return 1;
}

CK_HIDDEN int ck_packet_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s)
{
	if (!cbd_key_is(k, kl, "packet"))
		return 0;
	int64_t left;
	const char *key;
	size_t keyl;
	struct ck_img_packet *p = calloc(1, sizeof *p);
	free(s->packet_part);
	s->packet_part = p;
	if (!cbd_map(d, &left))
		return -1;
	while (cbd_next_key(d, &left, &key, &keyl)) {
		uint64_t v;
		int ok;
		if (cbd_key_is(key, keyl, "ifname"))
			ok = parse_name(d, p->ifname);
		else if (cbd_key_is(key, keyl, "rx_ring") || cbd_key_is(key, keyl, "tx_ring"))
			ok = parse_ring(d, &p->rings[key[0] == 't']);
		else if (cbd_key_is(key, keyl, "memberships"))
			ok = parse_memberships(d, p);
		else if (cbd_key_is(key, keyl, "num") || cbd_key_is(key, keyl, "copy_thresh") || cbd_key_is(key, keyl, "fanout")) {
			ok = cbd_uint_max(d, UINT32_MAX, &v);
			*(key[0] == 'n' ? &p->num : key[0] == 'c' ? &p->copy_thresh : &p->fanout) = (uint32_t)v;
		} else
			ok = cbd_skip(d);
		if (!ok)
			return -1;
	}
	return d->error ? -1 : 1;
}

static int index_of(const struct ck_sock_file *sf, const char *ifname, const char *what)
{
	unsigned i = if_nametoindex(ifname);
	if (!i)
		ck_refuse("the packet socket at descriptor %d of process %d %s interface %s, which this machine does not have; "
			  "restart where it is (or make it)",
			  sf->f->fd, sf->img->pid, what, ifname);
	return (int)i;
}

static void bind_packet(const struct ck_sock_file *sf, int fd, const struct ck_img_packet *p)
{
	const struct ck_img_socket *s = sf->s;
	int r = 0;
	if (s->type == SOCK_PACKET) {
		if (!p->ifname[0])
			return;
		struct sockaddr a;
		memset(&a, 0, sizeof a);
		a.sa_family = AF_PACKET;
		strncpy(a.sa_data, p->ifname, sizeof a.sa_data);
		index_of(sf, p->ifname, "was bound to");
		r = bind(fd, &a, sizeof a);
	} else if (p->ifname[0]) {
		struct sockaddr_ll ll;
		memset(&ll, 0, sizeof ll);
		ll.sll_family = AF_PACKET;
		ll.sll_protocol = (uint16_t)p->num;
		ll.sll_ifindex = p->ifname[0] ? index_of(sf, p->ifname, "was bound to") : 0;
		r = bind(fd, (struct sockaddr *)&ll, sizeof ll);
	}
	if (r != 0)
		ck_refuse("cannot bind the packet socket at descriptor %d of process %d again%s%s: %s", sf->f->fd, sf->img->pid,
			  p->ifname[0] ? " to interface " : "", p->ifname, strerror(errno));
}

static void set_rings(const struct ck_sock_file *sf, int fd, const struct ck_img_packet *p)
{
	for (int t = 0; t < 2; t++) {
		const struct packet_ring *r = &p->rings[t];
		if (!r->set || !r->block_nr)
			continue;
		struct tpacket_req3 req = {r->block_size, r->block_nr, r->frame_size, r->frame_nr, r->retire_tmo, r->sizeof_priv,
					   r->features};
		int version = 0;
		socklen_t vl = sizeof version;
		getsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, &vl);
		socklen_t len = version == TPACKET_V3 ? sizeof req : sizeof(struct tpacket_req);
		if (setsockopt(fd, SOL_PACKET, t ? PACKET_TX_RING : PACKET_RX_RING, &req, len) != 0)
			ck_refuse("cannot set up the %s ring of the packet socket at descriptor %d of process %d again: %s",
				  t ? "transmit" : "receive", sf->f->fd, sf->img->pid, strerror(errno));
	}
}

CK_HIDDEN int ck_packet_make(const struct ck_sock_file *sf, int base_fd)
{
	const struct ck_img_socket *s = sf->s;
	const struct ck_img_packet *p = s->packet_part;
	/* made with the protocol it takes now (SO_PROTOCOL says 0 for them all) */
	int fd = socket(AF_PACKET, s->type | SOCK_CLOEXEC, (int)p->num);
	if (fd < 0)
		ck_refuse("cannot create the packet socket for descriptor %d of process %d: %s%s", sf->f->fd, sf->img->pid,
			  strerror(errno), errno == EPERM ? " (it takes CAP_NET_RAW: restart as root)" : "");
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	close(fd);
	if (moved < 0)
		ck_refuse("cannot place the packet socket for descriptor %d: %s", sf->f->fd, strerror(errno));
	/* the frame version and reserve before the rings, as the program set them */
	ck_sockopts_apply(moved, sf->f, s, -1, 0);
	bind_packet(sf, moved, p);
	if (p->copy_thresh && setsockopt(moved, SOL_PACKET, PACKET_COPY_THRESH, &p->copy_thresh, sizeof p->copy_thresh) != 0)
		ck_refuse("cannot set the copy threshold of the packet socket at descriptor %d again: %s", sf->f->fd,
			  strerror(errno));
	for (unsigned i = 0; i < p->nm; i++) {
		const struct packet_membership *pm = &p->m[i];
		struct packet_mreq mr;
		memset(&mr, 0, sizeof mr);
		mr.mr_ifindex = index_of(sf, pm->ifname, "was a member on");
		mr.mr_type = (unsigned short)pm->type;
		mr.mr_alen = (unsigned short)(pm->alen > sizeof mr.mr_address ? sizeof mr.mr_address : pm->alen);
		memcpy(mr.mr_address, pm->addr, mr.mr_alen);
		for (uint32_t k = 0; k < pm->count; k++)
			if (setsockopt(moved, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0)
				ck_refuse("cannot make the packet socket at descriptor %d of process %d a member on interface %s "
					  "again (type %u): %s",
					  sf->f->fd, sf->img->pid, pm->ifname, pm->type, strerror(errno));
	}
	/* frames taken before the bind came from any interface: the program
	 * never had them */
	char one;
	for (int k = 0; k < 100000 && recv(moved, &one, 1, MSG_DONTWAIT | MSG_TRUNC) >= 0; k++)
		;
	set_rings(sf, moved, p);
	/* a fanout group is joined by its number, type and flags (as
	 * getsockopt gives them); the first socket to join makes it again.
	 * A group whose number the kernel chose (PACKET_FANOUT_FLAG_UNIQUEID)
	 * is asked for by that number. */
	if (p->fanout) {
		uint32_t arg = p->fanout & ~((uint32_t)(PACKET_FANOUT_FLAG_UNIQUEID >> 8) << 24);
		if (setsockopt(moved, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0)
			ck_refuse("cannot make the packet socket at descriptor %d of process %d join its fanout group %u again: %s",
				  sf->f->fd, sf->img->pid, p->fanout & 0xffff, strerror(errno));
	}
	return moved;
}
