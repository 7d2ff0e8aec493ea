/* Socket options, as every family saves and restores them: one integer,
 * one option's raw bytes into the image (in the signal handler: raw
 * system calls), and the saved options set again on a new socket. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
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
		if (setsockopt(fd, o->level, o->name, o->val, o->len) == 0)
			continue;
		if (errno == EPERM && privileged(o->level, o->name))
			ck_refuse("cannot set %s of the socket at descriptor %d again: the program set it, and this restart "
				  "lacks the capability it needs (CAP_NET_ADMIN or CAP_NET_RAW); restart as root",
				  privileged(o->level, o->name), f->fd);
		if (errno != ENOPROTOOPT && errno != EPERM)
			ck_refuse("cannot set option %d:%d of the socket at descriptor %d: %s", o->level, o->name, f->fd,
				  strerror(errno));
	}
}
