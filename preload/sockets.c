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
	SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER, SO_RCVLOWAT,
};

/* Options a program rarely changes, some of which only a privileged
 * restart may set (sockopt.c): saved only when changed. */
static const int socket_level_changed_options[] = {SO_PRIORITY, SO_MARK, SO_BINDTODEVICE};

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
	cb_close(e);
}

/* A classic BPF filter (SO_ATTACH_FILTER) decides which packets the
 * socket gets: not attached again yet, so the checkpoint fails rather
 * than restore a socket that lets everything through. With a length of
 * zero the kernel tells how many instructions the filter has. */
static int has_filter(struct ck_writer *w, const struct ck_fd *f)
{
	unsigned len = 0;
	if (ck_getsockopt(f->fd, SOL_SOCKET, SO_ATTACH_FILTER, 0, &len) != 0 || len == 0)
		return 0;
	ck_writer_fail(w, -EOPNOTSUPP, "the program has a socket with a packet filter ckrun cannot attach again");
	struct ck_str m;
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, f->fd);
	ck_str_add(&m, ": a filter of ");
	ck_str_dec(&m, len);
	ck_str_add(&m, " instructions (SO_ATTACH_FILTER); detach it (SO_DETACH_FILTER) before the checkpoint");
	return 1;
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
	if (has_filter(w, f))
		return;
	cb_text(e, "socket");
	cb_map_open(e);
	cb_kv_uint(e, "family", (uint64_t)family);
	cb_kv_uint(e, "type", (uint64_t)type);
	cb_kv_uint(e, "protocol", (uint64_t)protocol);
	save_options(e, f, family, type);
	switch (family) {
	case AF_UNIX:
		ck_unix_save(w, t, f, type);
		break;
	case AF_INET:
	case AF_INET6:
		ck_inet_save(w, t, f, family, type, protocol);
		break;
	default:
		ck_writer_fail(w, -EOPNOTSUPP, "the program has a socket of a family ckrun cannot save (only Unix, IPv4 and IPv6)");
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
		} else if ((r = ck_unix_parse(d, k, kl, s)) != 0 || (r = ck_inet_parse(d, k, kl, s)) != 0) {
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
	free(s->opts);
	free(s);
}

static int socket_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	const struct ck_img_socket *s = f->priv;
	switch (s->family) {
	case AF_UNIX:
		return ck_unix_open(img, f, s, base_fd, objs);
	case AF_INET:
	case AF_INET6:
		return ck_inet_open(img, f, s, base_fd, objs);
	default:
		ck_refuse("descriptor %d is a socket of family %d, which this ckrun cannot restore", f->fd, s->family);
	}
}

CK_HIDDEN extern const struct ck_fd_kind ck_kind_socket;

/* The sockets of every image with their own part, for their family. */
static size_t family_sockets(struct ck_image **imgs, size_t n, int inet, struct ck_sock_file **out)
{
	size_t count = 0;
	*out = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nfiles; j++) {
			struct ck_img_file *f = &imgs[i]->files[j];
			struct ck_img_socket *s = f->priv;
			if (f->ops != &ck_kind_socket || !s || f->same_as >= 0 || (inet ? !s->inet_part : s->family != AF_UNIX))
				continue;
			*out = realloc(*out, (count + 1) * sizeof **out);
			(*out)[count++] = (struct ck_sock_file){imgs[i], f, s};
		}
	return count;
}

/* Sockets connected to each other inside the session are made once, here,
 * before any process is forked (as pipes are), and inherited: objects
 * "socket" (inode at checkpoint time, 0). */
static void sockets_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	struct ck_sock_file *socks;
	size_t count = family_sockets(imgs, n, 0, &socks);
	ck_unix_create_shared(socks, count, objs, base_fd);
	free(socks);
	count = family_sockets(imgs, n, 1, &socks);
	ck_inet_create_shared(socks, count, objs, base_fd);
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
