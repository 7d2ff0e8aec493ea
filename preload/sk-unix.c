/* Unix domain sockets: stream, datagram and seqpacket; socketpair; bound
 * to a path or an abstract name; listening; the bytes and descriptors in
 * flight. (Not saved yet: every one fails the checkpoint by name.) */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

CK_HIDDEN void ck_unix_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f, int type)
{
	(void)t, (void)f, (void)type;
	ck_writer_fail(w, -EOPNOTSUPP, "the program has a Unix domain socket, which ckrun cannot save yet");
}

/* ---- restore host ---- */

CK_HIDDEN int ck_unix_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s)
{
	(void)d, (void)k, (void)kl, (void)s;
	return 0;
}

CK_HIDDEN int ck_unix_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	ck_refuse("descriptor %d is a Unix domain socket, which this ckrun cannot restore", f->fd);
}

CK_HIDDEN void ck_unix_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	(void)imgs, (void)n, (void)objs, (void)base_fd;
}
