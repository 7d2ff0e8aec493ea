/* sock_diag (NETLINK_SOCK_DIAG) dumps, in the writer: raw system calls.
 * A dump lists every socket of a family (packet_diag cannot look one up
 * by inode; inet_diag by states), and the caller picks its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include "ckrun.h"
#include "sys.h"

CK_HIDDEN long ck_sock_diag_dump(const void *req, size_t len, void *buf, size_t cap,
				 long (*each)(const struct nlmsghdr *h, void *arg), void *arg)
{
	struct sockaddr_nl kernel;
	ck_memset(&kernel, 0, sizeof kernel);
	kernel.nl_family = AF_NETLINK;
	long nl = CK_SYS3(SYS_socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return nl;
	long r = CK_SYS6(SYS_sendto, nl, req, len, 0, &kernel, sizeof kernel), found = 0;
	while (r >= 0 && !found) {
		r = ck_recvfrom((int)nl, buf, cap, 0);
		if (r == 0)
			break;
		unsigned left = r > 0 ? (unsigned)r : 0;
		for (const struct nlmsghdr *h = buf; !found && r > 0 && NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_type == NLMSG_DONE)
				r = 0;
			else if (h->nlmsg_type == NLMSG_ERROR)
				r = ((const struct nlmsgerr *)NLMSG_DATA(h))->error ? ((const struct nlmsgerr *)NLMSG_DATA(h))->error : -EIO;
			else
				found = each(h, arg);
		}
		if (r <= 0)
			break;
	}
	ck_close((int)nl);
	return found ? found : r < 0 ? r : 0;
}
