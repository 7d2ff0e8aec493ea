/* Socket options, as every family saves and restores them: one integer,
 * one option's raw bytes into the image (in the signal handler: raw
 * system calls), and the saved options set again on a new socket. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sockets.h"
#include "sys.h"

CK_HIDDEN int ck_sockopt_int(int fd, int level, int name, int *v)
{
	unsigned len = sizeof *v;
	return ck_getsockopt(fd, level, name, v, &len) == 0;
}

/* One [level, name, bytes] entry, or nothing if the kernel has no such
 * option for this socket. */
CK_HIDDEN void ck_sockopt_put(struct cb_enc *e, int fd, int level, int name)
{
	uint8_t val[32];
	unsigned len = sizeof val;
	if (ck_getsockopt(fd, level, name, val, &len) != 0)
		return;
	cb_array(e, 3);
	cb_uint(e, (uint64_t)level);
	cb_uint(e, (uint64_t)name);
	cb_bytes(e, val, len);
}

/* The same, only when the option is not at its default (all zero, or
 * empty): options only a privileged restart may set (privileged()). */
CK_HIDDEN void ck_sockopt_put_changed(struct cb_enc *e, int fd, int level, int name)
{
	uint8_t val[32];
	unsigned len = sizeof val;
	if (ck_getsockopt(fd, level, name, val, &len) != 0)
		return;
	unsigned nonzero = 0;
	for (unsigned i = 0; i < len && i < sizeof val; i++)
		nonzero |= val[i];
	if (!nonzero)
		return;
	cb_array(e, 3);
	cb_uint(e, (uint64_t)level);
	cb_uint(e, (uint64_t)name);
	cb_bytes(e, val, len);
}

/* Options the kernel lets only CAP_NET_ADMIN or CAP_NET_RAW set (a
 * priority above 6 too): an image has them only when the program set
 * them, so a restart that may not set them refuses rather than leave
 * them out. The others' EPERM is a default value the restart cannot
 * write again, which it has anyway. */
static const char *privileged(int level, int name)
{
	if (level == 270 /* SOL_NETLINK */ && name == 8)
		return "NETLINK_LISTEN_ALL_NSID"; /* CAP_NET_BROADCAST */
	if (level != SOL_SOCKET)
		return 0;
	switch (name) {
	case SO_MARK:
		return "SO_MARK";
	case SO_PRIORITY:
		return "SO_PRIORITY";
	case SO_BINDTODEVICE:
		return "SO_BINDTODEVICE";
	default:
		return 0;
	}
}

/* A locked buffer size as the kernel reports it (doubled): half of it is
 * set, past the sysctl limit (net.core.wmem_max, rmem_max) through
 * SO_*BUFFORCE, which takes CAP_NET_ADMIN; a size the restart cannot give
 * refuses it. Setting it locks it, as it did for the program. */
static void set_buffer_size(int fd, const struct ck_img_file *f, const struct ck_img_sockopt *o)
{
	int want, now, half, force = o->name == SO_SNDBUF ? SO_SNDBUFFORCE : SO_RCVBUFFORCE;
	socklen_t l = sizeof now;
	if (o->len != sizeof want)
		return;
	memcpy(&want, o->val, sizeof want);
	half = want / 2;
	if (setsockopt(fd, SOL_SOCKET, force, &half, sizeof half) != 0)
		setsockopt(fd, SOL_SOCKET, o->name, &half, sizeof half);
	if (getsockopt(fd, SOL_SOCKET, o->name, &now, &l) == 0 && now != want)
		ck_refuse("cannot give the socket at descriptor %d its %s buffer of %d bytes again (the program set it; this "
			  "restart gets %d: beyond net.core.%s it takes CAP_NET_ADMIN): restart as root, or raise that limit",
			  f->fd, o->name == SO_SNDBUF ? "send" : "receive", want, now,
			  o->name == SO_SNDBUF ? "wmem_max" : "rmem_max");
}

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

static int is_buffer_option(const struct ck_img_sockopt *o)
{
	return o->level == SOL_SOCKET && (o->name == SO_SNDBUF || o->name == SO_RCVBUF || o->name == SO_BUF_LOCK);
}

static void apply_buffer_option(int fd, const struct ck_img_file *f, const struct ck_img_sockopt *o)
{
	if (o->name == SO_BUF_LOCK)
		setsockopt(fd, SOL_SOCKET, SO_BUF_LOCK, o->val, o->len);
	else
		set_buffer_size(fd, f, o);
}

/* The locked buffer sizes and the locks, in their saved order (sizes
 * first: setting one locks it, SO_BUF_LOCK then says which stay locked). */
CK_HIDDEN void ck_sockopts_apply_buffers(int fd, const struct ck_img_file *f, const struct ck_img_socket *s)
{
	for (size_t i = 0; i < s->nopts; i++)
		if (is_buffer_option(&s->opts[i]))
			apply_buffer_option(fd, f, &s->opts[i]);
}

/* Sets the saved options of one level (SOL_SOCKET, IPPROTO_TCP, ...) or of
 * every level (level < 0), skipping those in except[] (ending with -1);
 * f names the descriptor in a refusal. */
CK_HIDDEN void ck_sockopts_apply(int fd, const struct ck_img_file *f, const struct ck_img_socket *s, int level,
				 const int *except)
{
	for (size_t i = 0; i < s->nopts; i++) {
		const struct ck_img_sockopt *o = &s->opts[i];
		int skip = level >= 0 && o->level != level;
		for (const int *x = except; x && *x >= 0 && !skip; x++)
			skip = *x == o->name && o->level == SOL_SOCKET;
		if (skip)
			continue;
		if (is_buffer_option(o)) {
			/* an IPv4/IPv6 socket's are set once its queues are
			 * refilled (ck_sockopts_apply_buffers): a locked small
			 * buffer could not take them back */
			if (s->family != AF_INET && s->family != AF_INET6)
				apply_buffer_option(fd, f, o);
			continue;
		}
		/* already so (some, such as IPV6_V6ONLY of a raw socket, cannot
		 * be set at all once the socket has its protocol) */
		uint8_t now[sizeof o->val];
		socklen_t nl = sizeof now;
		if (getsockopt(fd, o->level, o->name, now, &nl) == 0 && nl == o->len && memcmp(now, o->val, nl) == 0)
			continue;
		if (setsockopt(fd, o->level, o->name, o->val, o->len) == 0)
			continue;
		if (errno == EPERM && privileged(o->level, o->name))
			ck_refuse("cannot set %s of the socket at descriptor %d again: the program set it, and this restart "
				  "lacks the capability it needs (CAP_NET_ADMIN, CAP_NET_RAW or CAP_NET_BROADCAST); restart as root",
				  privileged(o->level, o->name), f->fd);
		if (errno != ENOPROTOOPT && errno != EPERM)
			ck_refuse("cannot set option %d:%d of the socket at descriptor %d: %s", o->level, o->name, f->fd,
				  strerror(errno));
	}
}

/* One saved option of SOL_SOCKET again, if the image has it (a step that
 * changed it after ck_sockopts_apply, such as setting buffer sizes). */
CK_HIDDEN void ck_sockopt_apply_one(int fd, const struct ck_img_socket *s, int name)
{
	for (size_t i = 0; i < s->nopts; i++)
		if (s->opts[i].level == SOL_SOCKET && s->opts[i].name == name)
			setsockopt(fd, SOL_SOCKET, name, s->opts[i].val, s->opts[i].len);
}
