/* TCP and UDP over IPv4 and IPv6: listening sockets, connections inside
 * the session, connections to peers outside it (restored as reset), UDP
 * addresses and queued datagrams. (Not saved yet: every one fails the
 * checkpoint by name.) */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

/* IPPROTO_TCP / IPPROTO_IP / IPPROTO_IPV6 options, added to the socket's
 * options list (see sockets.c). */
CK_HIDDEN void ck_inet_options_save(struct cb_enc *e, const struct ck_fd *f)
{
	(void)e, (void)f;
}

CK_HIDDEN void ck_inet_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f, int family, int type,
			    int protocol)
{
	(void)t, (void)f, (void)family, (void)type, (void)protocol;
	ck_writer_fail(w, -EOPNOTSUPP, "the program has a TCP/UDP socket, which ckrun cannot save yet");
}

/* ---- restore host ---- */

CK_HIDDEN int ck_inet_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s)
{
	(void)d, (void)k, (void)kl, (void)s;
	return 0;
}

CK_HIDDEN int ck_inet_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	ck_refuse("descriptor %d is a TCP/UDP socket, which this ckrun cannot restore", f->fd);
}

CK_HIDDEN void ck_inet_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	(void)imgs, (void)n, (void)objs, (void)base_fd;
}
