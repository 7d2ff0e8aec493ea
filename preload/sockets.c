/* Sockets: what every socket has (family, type, protocol, the options
 * programs rely on), and the dispatch to the family's own file: sk-unix.c
 * for AF_UNIX, sk-inet.c for AF_INET and AF_INET6.
 *
 * A descriptor's map gets "socket": {family, type, protocol, options:
 * [[level, name, bytes], ...], ...the family's keys}. Options are stored as
 * the raw getsockopt bytes of a fixed list, so restore is one setsockopt
 * each; the family file decides when (an option such as SO_REUSEADDR must
 * be set before bind). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdkind.h"
#include "sockets.h"
#include "sys.h"

static int socket_detect(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFSOCK;
}

/* Options of the socket layer itself. Buffer sizes are left to the family
 * file: the kernel reports them doubled and tunes TCP's by itself unless
 * the program set them. */
static const int socket_level_options[] = {
	SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_BROADCAST, SO_OOBINLINE, SO_PASSCRED,
	SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER, SO_RCVLOWAT, SO_DONTROUTE, SO_NO_CHECK,
};

/* Options a program rarely changes, some of which only a privileged
 * restart may set (sockopt.c): saved only when changed. */
static const int socket_level_changed_options[] = {SO_PRIORITY, SO_MARK, SO_BINDTODEVICE};

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83
#endif

/* Options of Unix sockets only. SO_PEEK_OFF is the program's own: the
 * checkpoint's peek puts it back as it found it (sk-unix.c), and the
 * restart sets it before the queue is refilled, which leaves it alone. */
static const int unix_options[] = {SO_PEEK_OFF, SO_PASSSEC, SO_PASSPIDFD, SO_PASSRIGHTS};

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
/* Netlink's own: NETLINK_PKTINFO, BROADCAST_ERROR, NO_ENOBUFS,
 * LISTEN_ALL_NSID, CAP_ACK, EXT_ACK, GET_STRICT_CHK */
static const int netlink_options[] = {3, 4, 5, 8, 10, 11, 12};

#ifndef SOL_PACKET
#define SOL_PACKET 263
#endif
/* Packet sockets' own, in the order a restart sets them (the frame
 * version and reserve before any ring): PACKET_VERSION, RESERVE, AUXDATA,
 * ORIGDEV, LOSS, VNET_HDR, TIMESTAMP, TX_HAS_OFF, QDISC_BYPASS,
 * IGNORE_OUTGOING. Never PACKET_STATISTICS: reading it resets it. */
static const int packet_options[] = {10, 12, 8, 9, 14, 15, 17, 19, 20, 23};

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

/* A buffer size the program set (SO_SNDBUF, SO_RCVBUF) is locked: the
 * kernel no longer tunes it (SO_BUF_LOCK says which, and a program may
 * lock one without setting it). Saved then, before the lock itself, so
 * that the restore sets them in that order (sockopt.c). An unlocked size
 * is the kernel's to tune, and is left to it. */
static void save_buffers(struct cb_enc *e, const struct ck_fd *f)
{
	int lock = 0;
	if (!ck_sockopt_int(f->fd, SOL_SOCKET, SO_BUF_LOCK, &lock))
		return;
	if (lock & 1 /* SOCK_SNDBUF_LOCK */)
		ck_sockopt_put(e, f->fd, SOL_SOCKET, SO_SNDBUF);
	if (lock & 2 /* SOCK_RCVBUF_LOCK */)
		ck_sockopt_put(e, f->fd, SOL_SOCKET, SO_RCVBUF);
	ck_sockopt_put(e, f->fd, SOL_SOCKET, SO_BUF_LOCK);
}

static void save_options(struct cb_enc *e, const struct ck_fd *f, int family, int type)
{
	cb_text(e, "options");
	cb_array_open(e);
	for (size_t i = 0; i < sizeof socket_level_options / sizeof socket_level_options[0]; i++)
		ck_sockopt_put(e, f->fd, SOL_SOCKET, socket_level_options[i]);
	for (size_t i = 0; i < sizeof socket_level_changed_options / sizeof socket_level_changed_options[0]; i++)
		ck_sockopt_put_changed(e, f->fd, SOL_SOCKET, socket_level_changed_options[i]);
	if (family == AF_INET || family == AF_INET6)
		ck_inet_options_save(e, f, family, type);
	if (family == AF_UNIX)
		for (size_t i = 0; i < sizeof unix_options / sizeof unix_options[0]; i++)
			ck_sockopt_put(e, f->fd, SOL_SOCKET, unix_options[i]);
	if (family == AF_NETLINK)
		for (size_t i = 0; i < sizeof netlink_options / sizeof netlink_options[0]; i++)
			ck_sockopt_put_changed(e, f->fd, SOL_NETLINK, netlink_options[i]);
	if (family == AF_PACKET)
		for (size_t i = 0; i < sizeof packet_options / sizeof packet_options[0]; i++)
			ck_sockopt_put_changed(e, f->fd, SOL_PACKET, packet_options[i]);
	save_buffers(e, f);
	cb_close(e);
}

#ifndef SO_LOCK_FILTER
#define SO_LOCK_FILTER 44
#endif

/* A classic BPF filter (SO_ATTACH_FILTER) decides which packets the
 * socket gets: its instructions as the program attached them (SO_GET_FILTER
 * gives them back; with a length of zero it tells how many), and whether
 * it is locked (SO_LOCK_FILTER). An eBPF program (SO_ATTACH_BPF) cannot be
 * read back: the checkpoint fails rather than restore a socket that lets
 * everything through. Returns 0 when the checkpoint fails. */
static int save_filter(struct ck_writer *w, const struct ck_fd *f)
{
	static struct sock_filter prog[BPF_MAXINSNS]; /* the writer's own copy: it is a process of its own */
	unsigned len = 0;
	long r = ck_getsockopt(f->fd, SOL_SOCKET, SO_GET_FILTER, 0, &len);
	if (r == 0 && len == 0)
		return 1;
	if (r == 0 && len <= BPF_MAXINSNS) {
		unsigned n = len;
		r = ck_getsockopt(f->fd, SOL_SOCKET, SO_GET_FILTER, prog, &n);
		if (r == 0 && n == len) {
			int locked = 0;
			cb_text(&w->meta, "filter");
			cb_bytes(&w->meta, prog, (size_t)n * sizeof prog[0]);
			if (ck_sockopt_int(f->fd, SOL_SOCKET, SO_LOCK_FILTER, &locked) && locked)
				cb_kv_uint(&w->meta, "filter_locked", 1);
			return 1;
		}
	}
	ck_writer_fail(w, r < 0 ? r : -EIO, "the program has a socket with a packet filter ckrun cannot read");
	struct ck_str m;
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, f->fd);
	ck_str_add(&m, r == -EACCES ? ": an eBPF program (SO_ATTACH_BPF), which the kernel does not give back; detach it (SO_DETACH_FILTER) before the checkpoint"
				    : ": SO_GET_FILTER failed; detach the filter (SO_DETACH_FILTER) before the checkpoint");
	return 0;
}

static void socket_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	struct cb_enc *e = &w->meta;
	int family, type, protocol;
	if (!ck_sockopt_int(f->fd, SOL_SOCKET, SO_DOMAIN, &family) || !ck_sockopt_int(f->fd, SOL_SOCKET, SO_TYPE, &type) ||
	    !ck_sockopt_int(f->fd, SOL_SOCKET, SO_PROTOCOL, &protocol)) {
		ck_writer_fail(w, -EIO, "cannot read a socket's family and type");
		return;
	}
	cb_text(e, "socket");
	cb_map_open(e);
	cb_kv_uint(e, "family", (uint64_t)family);
	cb_kv_uint(e, "type", (uint64_t)type);
	cb_kv_uint(e, "protocol", (uint64_t)protocol);
	save_options(e, f, family, type);
	if (!save_filter(w, f)) {
		cb_close(e);
		return;
	}
	switch (family) {
	case AF_UNIX:
		ck_unix_save(w, t, f, type);
		break;
	case AF_INET:
	case AF_INET6:
		ck_inet_save(w, t, f, family, type, protocol);
		break;
	case AF_NETLINK:
		ck_netlink_save(w, f);
		break;
	case AF_PACKET:
		ck_packet_save(w, f, type);
		break;
	default:
		ck_writer_fail(w, -EOPNOTSUPP, "the program has a socket of a family ckrun cannot save (only Unix, IPv4, IPv6, netlink and packet)");
		break;
	}
	cb_close(e);
}

/* ---- restore host ---- */

static int parse_options(struct cb_dec *d, struct ck_img_socket *s)
{
	int64_t n;
	size_t cap = 8;
	if (!cbd_array(d, &n))
		return 0;
	s->opts = calloc(cap, sizeof *s->opts);
	while (cbd_next_item(d, &n)) {
		int64_t m;
		uint64_t level, name;
		const uint8_t *p;
		size_t len;
		if (!cbd_array(d, &m) || m != 3 || !cbd_uint_max(d, INT32_MAX, &level) || !cbd_uint_max(d, INT32_MAX, &name) ||
		    !cbd_bytes(d, &p, &len) || len > sizeof s->opts[0].val)
			return 0;
		if (s->nopts == cap) {
			cap *= 2;
			s->opts = realloc(s->opts, cap * sizeof *s->opts);
		}
		struct ck_img_sockopt *o = &s->opts[s->nopts++];
		o->level = (int)level;
		o->name = (int)name;
		o->len = (unsigned)len;
		memcpy(o->val, p, len);
	}
	return !d->error;
}

static int socket_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left;
	const char *k;
	size_t kl;
	struct ck_img_socket *s = calloc(1, sizeof *s);
	f->priv = s;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		uint64_t v;
		int r;
		if (cbd_key_is(k, kl, "family") || cbd_key_is(k, kl, "type") || cbd_key_is(k, kl, "protocol")) {
			if (!cbd_uint_max(d, INT32_MAX, &v))
				return 0;
			if (k[0] == 'f') s->family = (int)v;
			else if (k[0] == 't') s->type = (int)v;
			else s->protocol = (int)v;
		} else if (cbd_key_is(k, kl, "options")) {
			if (!parse_options(d, s))
				return 0;
		} else if (cbd_key_is(k, kl, "filter")) {
			const uint8_t *p;
			size_t len;
			if (!cbd_bytes(d, &p, &len) || len == 0 || len % sizeof(struct sock_filter) ||
			    len > BPF_MAXINSNS * sizeof(struct sock_filter) || s->filter)
				return 0;
			s->filter = malloc(len);
			memcpy(s->filter, p, len);
			s->filter_len = (unsigned)(len / sizeof(struct sock_filter));
		} else if (cbd_key_is(k, kl, "filter_locked")) {
			if (!cbd_uint_max(d, 1, &v))
				return 0;
			s->filter_locked = (int)v;
		} else if ((r = ck_unix_parse(d, k, kl, s)) != 0 || (r = ck_inet_parse(d, k, kl, s)) != 0 ||
			   (r = ck_netlink_parse(d, k, kl, s)) != 0 || (r = ck_packet_parse(d, k, kl, s)) != 0) {
			if (r < 0)
				return 0;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error && s->family != 0;
}

/* Frees what reading a socket allocated (the restore host itself never
 * needs to: it exits or becomes the program; a fuzz target reads millions). */
static void socket_release(struct ck_img_file *f)
{
	struct ck_img_socket *s = f->priv;
	if (!s)
		return;
	if (s->unix_part) {
		for (size_t i = 0; i < s->unix_part->npassed; i++)
			free(s->unix_part->passed[i].path);
		free(s->unix_part->passed);
		free(s->unix_part->pending);
		free(s->unix_part->msgs);
		free(s->unix_part);
	}
	if (s->inet_part) {
		free(s->inet_part->dgrams);
		free(s->inet_part);
	}
	free(s->netlink_part);
	free(s->packet_part);
	free(s->opts);
	free(s->filter);
	free(s);
}

/* The program's packet filter, once the queues ckrun refilled are in (they
 * had passed it already), and its lock after it. */
static void attach_filter(int fd, const struct ck_img_file *f, const struct ck_img_socket *s)
{
	if (!s->filter)
		return;
	/* a socket processes of the family share is made once; its filter too */
	struct sock_filter *now = malloc((size_t)s->filter_len * sizeof *now);
	socklen_t n = s->filter_len;
	int same = now && getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, now, &n) == 0 && n == s->filter_len &&
		   memcmp(now, s->filter, (size_t)n * sizeof *now) == 0;
	free(now);
	if (same)
		return;
	struct sock_fprog prog = {(unsigned short)s->filter_len, s->filter};
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0)
		ck_refuse("cannot attach the packet filter (SO_ATTACH_FILTER, %u instructions) of descriptor %d again: %s", s->filter_len,
			  f->fd, strerror(errno));
	int one = 1;
	if (s->filter_locked && setsockopt(fd, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof one) != 0)
		ck_refuse("cannot lock the packet filter (SO_LOCK_FILTER) of descriptor %d again: %s", f->fd, strerror(errno));
}

/* A socket made once before any process (create_shared: netlink, packet),
 * object ("socket", inode): the one description, duplicated, with the
 * descriptor's own O_NONBLOCK. */
static int open_made_socket(struct ck_image *img, struct ck_img_file *f, const struct ck_objects *objs)
{
	int made = ck_objects_find(objs, "socket", f->ino, 0);
	if (made < 0)
		ck_refuse("descriptor %d of process %d is a socket the restore did not make (a ckrun bug)", f->fd, img->pid);
	int fd = dup(made);
	if (fd < 0)
		ck_refuse("cannot duplicate the socket for descriptor %d: %s", f->fd, strerror(errno));
	fcntl(fd, F_SETFL, f->flags & O_NONBLOCK);
	return fd;
}

static int socket_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	const struct ck_img_socket *s = f->priv;
	switch (s->family) {
	case AF_UNIX: {
		int fd = ck_unix_open(img, f, s, base_fd, objs);
		if (fd >= 0)
			attach_filter(fd, f, s);
		return fd;
	}
	case AF_INET:
	case AF_INET6: {
		/* the buffer sizes the program locked, now that the queues are back */
		int fd = ck_inet_open(img, f, s, base_fd, objs);
		if (fd >= 0) {
			ck_sockopts_apply_buffers(fd, f, s);
			attach_filter(fd, f, s);
		}
		return fd;
	}
	case AF_NETLINK:
	case AF_PACKET: {
		int fd = open_made_socket(img, f, objs);
		attach_filter(fd, f, s);
		return fd;
	}
	default:
		ck_refuse("descriptor %d is a socket of family %d, which this ckrun cannot restore", f->fd, s->family);
	}
}

CK_HIDDEN extern const struct ck_fd_kind ck_kind_socket;


/* The sockets of every image with their own part, of one family (AF_INET
 * for both IPv4 and IPv6). */
static size_t family_sockets(struct ck_image **imgs, size_t n, int family, struct ck_sock_file **out)
{
	size_t count = 0;
	*out = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nfiles; j++) {
			struct ck_img_file *f = &imgs[i]->files[j];
			struct ck_img_socket *s = f->priv;
			if (f->ops != &ck_kind_socket || !s || f->same_as >= 0 ||
			    (family == AF_INET ? !s->inet_part : s->family != family))
				continue;
			*out = realloc(*out, (count + 1) * sizeof **out);
			(*out)[count++] = (struct ck_sock_file){imgs[i], f, s};
		}
	return count;
}

/* Sockets only the restart can make again (netlink, packet): each once,
 * object ("socket", inode), which every process that has it duplicates
 * (open_made_socket). */
static void make_each_once(struct ck_sock_file *socks, size_t n, struct ck_objects *objs, int base_fd, const char *kind,
			   int (*make)(const struct ck_sock_file *sf, int base_fd))
{
	for (size_t i = 0; i < n; i++) {
		const struct ck_img_socket *s = socks[i].s;
		if (!(s->family == AF_NETLINK ? (const void *)s->netlink_part : (const void *)s->packet_part))
			ck_refuse("image %s is corrupted: the %s socket at descriptor %d has no \"%s\" part", socks[i].img->path,
				  kind, socks[i].f->fd, kind);
		if (ck_objects_find(objs, "socket", socks[i].f->ino, 0) >= 0)
			continue;
		ck_objects_add(objs, "socket", socks[i].f->ino, 0, make(&socks[i], base_fd));
	}
}

/* Sockets connected to each other inside the session are made once, here,
 * before any process is forked (as pipes are), and inherited: objects
 * "socket" (inode at checkpoint time, 0). */
static void sockets_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	struct ck_sock_file *socks;
	size_t count = family_sockets(imgs, n, AF_UNIX, &socks);
	ck_unix_create_shared(socks, count, objs, base_fd);
	free(socks);
	count = family_sockets(imgs, n, AF_INET, &socks);
	ck_inet_create_shared(socks, count, objs, base_fd);
	free(socks);
	count = family_sockets(imgs, n, AF_NETLINK, &socks);
	make_each_once(socks, count, objs, base_fd, "netlink", ck_netlink_make);
	free(socks);
	count = family_sockets(imgs, n, AF_PACKET, &socks);
	make_each_once(socks, count, objs, base_fd, "packet", ck_packet_make);
	free(socks);
}

CK_HIDDEN const struct ck_fd_kind ck_kind_socket = {
	.name = "socket",
	.detect = socket_detect,
	.save = socket_save,
	.key = "socket",
	.parse = socket_parse,
	.release = socket_release,
	.create_shared = sockets_create_shared,
	.open = socket_open,
};
