/* Netlink sockets (AF_NETLINK): a udev monitor (NETLINK_KOBJECT_UEVENT), a
 * routing or address monitor (NETLINK_ROUTE), a generic netlink client.
 *
 * Saved: the port ID it is bound to (0: not bound), every multicast group
 * it listens to (NETLINK_LIST_MEMBERSHIPS: all of them, beyond the 32
 * getsockname shows), the port and group it is connected to, and its
 * SOL_NETLINK options (sockets.c saves them with the others). What the
 * kernel alone holds cannot be made again: messages not yet read (sent
 * again by ckrun they would come from another port ID than the kernel's
 * or their sender's), a dump under way (its position is the kernel's), an error not yet
 * reported (ENOBUFS after an overrun). Each fails the checkpoint while it
 * lasts; the program ends it by reading, so the session tries again.
 *
 * Restored: the socket is made once for the processes that share it
 * (sockets.c create_shared), bound to the same port ID, given its groups
 * and connected again before any process runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdkind.h"
#include "sockets.h"
#include "sys.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_LIST_MEMBERSHIPS
#define NETLINK_LIST_MEMBERSHIPS 9
#endif

/* Groups a socket may listen to, as 32-bit words (generic netlink numbers
 * its families' groups upward; a few thousand in all is plenty). */
#define GROUP_WORDS 128

/* the "netlink" map of a socket */
struct ck_img_netlink {
	uint32_t portid, dst_portid, dst_groups;
	uint32_t groups[GROUP_WORDS];
	unsigned ngroup_words;
};

/* ---- save (the writer: raw system calls) ---- */

static void fail_netlink(struct ck_writer *w, const struct ck_fd *f, long err, const char *what, const char *detail)
{
	struct ck_str m;
	ck_writer_fail_fd(w, err, what, f, &m);
	ck_str_add(&m, "(a netlink socket): ");
	ck_str_add(&m, detail);
}

/* /proc/net/netlink's line for the socket's inode: Rmem (bytes queued) and
 * Dump (a dump under way). Columns: sk Eth Pid Groups Rmem Wmem Dump Locks
 * Drops Inode. 0 when the socket is not listed. */
struct nl_line {
	uint64_t rmem, dump;
};

static int parse_nl_line(const char *l, size_t n, uint64_t ino, struct nl_line *out)
{
	uint64_t col[10];
	int k = 0;
	size_t i = 0;
	while (k < 10 && i < n) {
		while (i < n && l[i] == ' ')
			i++;
		if (i >= n)
			break;
		uint64_t v = 0;
		int hex = k == 0 || k == 3;
		for (; i < n && l[i] != ' '; i++) {
			char c = l[i];
			int d = c >= '0' && c <= '9' ? c - '0' : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (d < 0)
				return 0;
			v = v * (hex ? 16 : 10) + (uint64_t)d;
		}
		col[k++] = v;
	}
	if (k < 10 || col[9] != ino)
		return 0;
	out->rmem = col[4];
	out->dump = col[6];
	return 1;
}

static int find_nl_line(uint64_t ino, struct nl_line *out)
{
	static char buf[8192]; /* the writer's own: it is a process of its own */
	long fd = ck_openat(AT_FDCWD, "/proc/net/netlink", O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	size_t have = 0;
	int found = 0, first = 1;
	for (;;) {
		long r = ck_read((int)fd, buf + have, sizeof buf - have);
		if (r <= 0)
			break;
		have += (size_t)r;
		size_t start = 0;
		for (size_t i = 0; i < have && !found; i++) {
			if (buf[i] != '\n')
				continue;
			if (!first)
				found = parse_nl_line(buf + start, i - start, ino, out);
			first = 0;
			start = i + 1;
		}
		if (found)
			break;
		for (size_t i = start; i < have; i++)
			buf[i - start] = buf[i];
		have -= start;
		if (have == sizeof buf)
			have = 0; /* a line longer than the buffer is no socket's */
	}
	ck_close((int)fd);
	return found;
}

/* What the kernel alone holds for the socket; 0 when the checkpoint fails. */
static int nothing_pending(struct ck_writer *w, const struct ck_fd *f)
{
	struct pollfd p = {f->fd, POLLIN, 0};
	struct timespec zero = {0, 0};
	long r = CK_SYS5(SYS_ppoll, &p, 1, &zero, 0, 8);
	if (r > 0 && (p.revents & POLLERR)) {
		fail_netlink(w, f, -EAGAIN, "a netlink socket holds messages the program has not read yet",
			     "the kernel holds an error for it (ENOBUFS: messages were dropped) that the program has not read; "
			     "checkpoint again once it has read the socket");
		return 0;
	}
	struct nl_line l = {0, 0};
	if (!find_nl_line(f->st.ino, &l)) {
		/* a socket never bound is in no table the kernel lists: nothing
		 * can reach it, and it asked for nothing */
		struct sockaddr_nl self;
		unsigned sl = sizeof self;
		ck_memset(&self, 0, sizeof self);
		if (ck_getsockname(f->fd, &self, &sl) != 0 || self.nl_pid != 0) {
			fail_netlink(w, f, -EIO, "cannot save a netlink socket",
				     "it is not in /proc/net/netlink (a socket of another network namespace?)");
			return 0;
		}
	}
	if (l.rmem || (r > 0 && (p.revents & POLLIN))) {
		fail_netlink(w, f, -EAGAIN, "a netlink socket holds messages the program has not read yet",
			     "ckrun cannot queue them again as they came (from the kernel, or from another port ID); "
			     "checkpoint again once the program has read them");
		return 0;
	}
	if (l.dump) {
		fail_netlink(w, f, -EAGAIN, "a netlink socket holds messages the program has not read yet",
			     "a dump it asked for is under way, and where the kernel is in it cannot be saved; checkpoint "
			     "again once the program has read the dump to its end");
		return 0;
	}
	return 1;
}

CK_HIDDEN void ck_netlink_save(struct ck_writer *w, const struct ck_fd *f)
{
	struct cb_enc *e = &w->meta;
	struct sockaddr_nl self, peer;
	unsigned sl = sizeof self, pl = sizeof peer;
	static uint32_t groups[GROUP_WORDS];
	unsigned gl = sizeof groups;
	if (!nothing_pending(w, f))
		return;
	ck_memset(&self, 0, sizeof self);
	ck_memset(&peer, 0, sizeof peer);
	if (ck_getsockname(f->fd, &self, &sl) != 0 || ck_getpeername(f->fd, &peer, &pl) != 0) {
		fail_netlink(w, f, -EIO, "cannot save a netlink socket", "getsockname or getpeername failed");
		return;
	}
	long r = ck_getsockopt(f->fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &gl);
	if (r != 0)
		gl = 0;
	if (gl > sizeof groups) {
		fail_netlink(w, f, -E2BIG, "cannot save a netlink socket",
			     "it listens to multicast groups beyond the 4096 ckrun keeps");
		return;
	}
	unsigned words = gl / 4;
	while (words && !groups[words - 1])
		words--;
	cb_text(e, "netlink");
	cb_map_open(e);
	cb_kv_uint(e, "portid", self.nl_pid);
	if (words) {
		cb_text(e, "groups");
		cb_array(e, words);
		for (unsigned i = 0; i < words; i++)
			cb_uint(e, groups[i]);
	}
	if (peer.nl_pid || peer.nl_groups) {
		cb_kv_uint(e, "dst_portid", peer.nl_pid);
		cb_kv_uint(e, "dst_groups", peer.nl_groups);
	}
	cb_close(e);
}

/* ---- restore host ---- */

CK_HIDDEN int ck_netlink_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s)
{
	if (!cbd_key_is(k, kl, "netlink"))
		return 0;
	int64_t left, n;
	const char *key;
	size_t keyl;
	struct ck_img_netlink *nl = calloc(1, sizeof *nl);
	if (s->netlink_part)
		free(s->netlink_part);
	s->netlink_part = nl;
	if (!cbd_map(d, &left))
		return -1;
	while (cbd_next_key(d, &left, &key, &keyl)) {
		uint64_t v;
		if (cbd_key_is(key, keyl, "groups")) {
			if (!cbd_array(d, &n) || n < 0 || n > GROUP_WORDS)
				return -1;
			while (cbd_next_item(d, &n)) {
				if (!cbd_uint_max(d, UINT32_MAX, &v))
					return -1;
				nl->groups[nl->ngroup_words++] = (uint32_t)v;
			}
		} else if (cbd_key_is(key, keyl, "portid") || cbd_key_is(key, keyl, "dst_portid") ||
			   cbd_key_is(key, keyl, "dst_groups")) {
			if (!cbd_uint_max(d, UINT32_MAX, &v))
				return -1;
			if (key[0] == 'p')
				nl->portid = (uint32_t)v;
			else if (key[4] == 'p')
				nl->dst_portid = (uint32_t)v;
			else
				nl->dst_groups = (uint32_t)v;
		} else if (!cbd_skip(d)) {
			return -1;
		}
	}
	return d->error ? -1 : 1;
}

/* Who holds a port ID now, for the refusal: a PID (the kernel gives a
 * process its PID first), or nothing known. */
static void port_taken(const struct ck_sock_file *sf, uint32_t portid)
{
	ck_refuse("cannot bind the netlink socket at descriptor %d of process %d to its port ID %u again: another netlink "
		  "socket of protocol %d on this machine holds it now (a port ID is usually its owner's PID: process %u?); "
		  "end that program, or restart in another network namespace",
		  sf->f->fd, sf->img->pid, portid, sf->s->protocol, portid);
}

CK_HIDDEN int ck_netlink_make(const struct ck_sock_file *sf, int base_fd)
{
	const struct ck_img_socket *s = sf->s;
	const struct ck_img_netlink *nl = s->netlink_part;
	int fd = socket(AF_NETLINK, s->type | SOCK_CLOEXEC, s->protocol);
	if (fd < 0)
		ck_refuse("cannot create the netlink socket (protocol %d) for descriptor %d of process %d: %s", s->protocol,
			  sf->f->fd, sf->img->pid, strerror(errno));
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	close(fd);
	if (moved < 0)
		ck_refuse("cannot place the netlink socket for descriptor %d: %s", sf->f->fd, strerror(errno));
	ck_sockopts_apply(moved, sf->f, s, -1, 0);
	if (nl->portid) {
		struct sockaddr_nl a = {.nl_family = AF_NETLINK, .nl_pid = nl->portid};
		if (bind(moved, (struct sockaddr *)&a, sizeof a) != 0) {
			if (errno == EADDRINUSE)
				port_taken(sf, nl->portid);
			ck_refuse("cannot bind the netlink socket at descriptor %d of process %d to its port ID %u again: %s",
				  sf->f->fd, sf->img->pid, nl->portid, strerror(errno));
		}
	}
	for (unsigned w = 0; w < nl->ngroup_words; w++)
		for (unsigned b = 0; b < 32; b++) {
			if (!(nl->groups[w] & (1u << b)))
				continue;
			int group = (int)(w * 32 + b + 1);
			if (setsockopt(moved, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0)
				ck_refuse("cannot make the netlink socket at descriptor %d of process %d listen to its multicast "
					  "group %d again: %s",
					  sf->f->fd, sf->img->pid, group, strerror(errno));
		}
	if (nl->dst_portid || nl->dst_groups) {
		struct sockaddr_nl a = {.nl_family = AF_NETLINK, .nl_pid = nl->dst_portid, .nl_groups = nl->dst_groups};
		if (connect(moved, (struct sockaddr *)&a, sizeof a) != 0)
			ck_refuse("cannot connect the netlink socket at descriptor %d of process %d to port ID %u again: %s",
				  sf->f->fd, sf->img->pid, nl->dst_portid, strerror(errno));
	}
	return moved;
}
