/* Unix domain sockets: stream, datagram and seqpacket; socketpair; bound
 * to a path or an abstract name; listening; the bytes in flight.
 *
 * Save (in the signal handler: raw system calls, no allocation): the
 * socket's state, name, peer inode, backlog and the inodes of connections
 * not yet accepted come from sock_diag (NETLINK_SOCK_DIAG), which the
 * kernel answers for any socket of the network namespace, so a process
 * learns its peer's identity even when the peer lives in another process
 * of the session. Each end saves its own receive queue: on a Unix socket
 * the bytes a peer sent wait in the receiver's queue. They are read with
 * MSG_PEEK at an advancing SO_PEEK_OFF, so the program's queue is left as
 * it was (a checkpoint that fails later or resumes changes nothing).
 *
 * Restore (the orchestrator, or a single process's restore host, before
 * any process runs): every Unix socket of the session is made once, by
 * inode, and inherited. Ends whose peers are both saved are connected
 * again (socketpair, or a connect to the restored listener or to a
 * temporary one at the same name, so both names come back); each end's
 * saved queue is sent into it by its peer, message by message. An end
 * whose peer is outside the session (or had already closed) comes back
 * connected to a peer that is gone: its saved bytes, then EOF; writes fail
 * with EPIPE (stream) or ECONNREFUSED (datagram). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "crc32c.h"
#include "fdkind.h"
#include "sockets.h"
#include "sys.h"

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#define TCP_ESTABLISHED_STATE 1
#define TCP_CLOSE_STATE 7
#define TCP_LISTEN_STATE 10
#define UNIX_QUEUE_MAX (16UL << 20) /* bytes of one socket's receive queue we save */
#define UNIX_MSGS_MAX 65536         /* messages of one queue */
#define SK_RCV_SHUTDOWN 1
#define SK_SEND_SHUTDOWN 2

/* ---- save ---- */

struct udiag {
	uint32_t state, peer, rq, wq, shutdown;
	int has_rq, namelen;
	uint8_t name[108];
	const uint32_t *icons; /* points into the reply buffer */
	int nicons;
	int has_vfs;           /* bound to a path: the inode bind made there */
	uint32_t vfs_ino, vfs_dev;
};

/* One reply at a time: the checkpoint runs in one thread of one process. */
static uint8_t diag_reply[65536] __attribute__((aligned(8)));

static void fail_socket(struct ck_writer *w, long err, const char *what, int fd, const char *why)
{
	struct ck_str m;
	if (w->err)
		return;
	ck_writer_fail(w, err, what);
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, fd);
	ck_str_add(&m, " (a Unix domain socket): ");
	ck_str_add(&m, why);
}

static void parse_diag_attrs(struct udiag *u, const struct unix_diag_msg *m, long len)
{
	const struct rtattr *a = (const struct rtattr *)(m + 1);
	int left = (int)len;
	for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
		const void *p = RTA_DATA(a);
		int plen = (int)RTA_PAYLOAD(a);
		switch (a->rta_type) {
		case UNIX_DIAG_NAME:
			u->namelen = plen > (int)sizeof u->name ? (int)sizeof u->name : plen;
			ck_memcpy(u->name, p, (size_t)u->namelen);
			break;
		case UNIX_DIAG_PEER:
			u->peer = *(const uint32_t *)p;
			break;
		case UNIX_DIAG_RQLEN:
			u->rq = ((const struct unix_diag_rqlen *)p)->udiag_rqueue;
			u->wq = ((const struct unix_diag_rqlen *)p)->udiag_wqueue;
			u->has_rq = 1;
			break;
		case UNIX_DIAG_ICONS:
			u->icons = p;
			u->nicons = plen / 4;
			break;
		case UNIX_DIAG_SHUTDOWN:
			u->shutdown = *(const uint8_t *)p;
			break;
		case UNIX_DIAG_VFS:
			u->vfs_ino = ((const struct unix_diag_vfs *)p)->udiag_vfs_ino;
			u->vfs_dev = ((const struct unix_diag_vfs *)p)->udiag_vfs_dev;
			u->has_vfs = 1;
			break;
		}
	}
}

/* Asks sock_diag about one Unix socket by inode; 0 or -errno (-ENOENT:
 * no such socket, e.g. a connection's embryo, which has no inode). */
static long diag_query(uint32_t ino, struct udiag *u)
{
	struct ck_unix_diag_query q;
	struct sockaddr_nl kernel;
	ck_unix_diag_query(&q, ino, ~0u, UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_ICONS |
							 UDIAG_SHOW_VFS);
	ck_memset(&kernel, 0, sizeof kernel);
	ck_memset(u, 0, sizeof *u);
	kernel.nl_family = AF_NETLINK;
	long nl = CK_SYS3(SYS_socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return nl;
	long r = CK_SYS6(SYS_sendto, nl, &q, sizeof q, 0, &kernel, sizeof kernel);
	if (r >= 0)
		r = ck_recvfrom((int)nl, diag_reply, sizeof diag_reply, 0);
	ck_close((int)nl);
	if (r < 0)
		return r;
	const struct nlmsghdr *h = (const struct nlmsghdr *)diag_reply;
	if (r < (long)sizeof *h || !NLMSG_OK(h, (unsigned)r))
		return -EIO;
	if (h->nlmsg_type == NLMSG_ERROR) {
		int e = ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
		return e ? e : -EIO;
	}
	const struct unix_diag_msg *m = NLMSG_DATA(h);
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof *m))
		return -EIO;
	u->state = m->udiag_state;
	parse_diag_attrs(u, m, (long)h->nlmsg_len - (long)NLMSG_LENGTH(sizeof *m));
	return 0;
}

static void sockopt_set_int(int fd, int name, int v)
{
	CK_SYS5(SYS_setsockopt, fd, SOL_SOCKET, name, &v, sizeof v);
}

/* The socket file bind made is still the one at the name: the same inode
 * (sock_diag reports the kernel's device number, stat the encoded one). */
static int own_file_at_name(const struct udiag *u, const struct ck_stat *st)
{
	uint32_t major = (uint32_t)((st->dev >> 8) & 0xfff), minor = (uint32_t)((st->dev & 0xff) | ((st->dev >> 12) & 0xfff00));
	return !u->has_vfs || (u->vfs_ino == (uint32_t)st->ino && u->vfs_dev == (major << 20 | minor));
}

/* The mode and owner of the socket file at a path-bound socket's name
 * (what bind made of the umask, and a chmod/chown since); or, when its
 * file is no longer there (unlinked, or another file put at the name),
 * "file_gone": the restart binds it and removes its file again. */
static void put_file_attrs(struct cb_enc *e, const struct udiag *u)
{
	char path[sizeof u->name + 1];
	struct ck_stat st;
	ck_memcpy(path, u->name, (size_t)u->namelen);
	path[u->namelen] = 0;
	long r = CK_SYS4(SYS_newfstatat, AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW);
	if (u->has_vfs && (r != 0 || (st.mode & S_IFMT) != S_IFSOCK || !own_file_at_name(u, &st))) {
		cb_kv_bool(e, "file_gone", 1);
		return;
	}
	if (r != 0 || (st.mode & S_IFMT) != S_IFSOCK)
		return;
	cb_kv_uint(e, "file_mode", st.mode & 07777);
	cb_kv_uint(e, "file_uid", st.uid);
	cb_kv_uint(e, "file_gid", st.gid);
}

static int has_peer(int fd)
{
	struct sockaddr_un a;
	unsigned len = sizeof a;
	return CK_SYS3(SYS_getpeername, fd, &a, &len) == 0;
}

static void put_peer_name(struct cb_enc *e, int fd)
{
	struct sockaddr_un a;
	unsigned len = sizeof a;
	if (CK_SYS3(SYS_getpeername, fd, &a, &len) == 0 && len > sizeof a.sun_family) {
		cb_text(e, "peer_name");
		cb_bytes(e, a.sun_path, len - sizeof a.sun_family);
	}
}

/* Is ino a socket some process of the session holds? Unknown (ckrun did
 * not say: too many sockets, or no barrier) counts as yes. */
static int held_in_session(uint64_t ino)
{
	if (ck_session.nsession_socks < 0)
		return 1;
	for (int i = 0; i < ck_session.nsession_socks; i++)
		if (ck_session.session_socks[i] == ino)
			return 1;
	return 0;
}

/* Connections not yet accepted: the clients' inodes, in queue order. The
 * bytes a client sent wait in the embryo's queue, which no system call
 * reads before accept (and the embryo has no inode for sock_diag): they
 * cannot be saved. A client of the session would come back without them:
 * the checkpoint fails (the session tries again a moment later). A client
 * outside the session loses that connection at restart like every
 * connection to the outside, its bytes with it: such clients are listed
 * in "pending_bytes" and the checkpoint goes on. */
static void save_pending(struct ck_writer *w, const struct ck_fd *f, const struct udiag *u)
{
	struct cb_enc *e = &w->meta;
	uint32_t clients[1024], outside[1024];
	int n = u->nicons < 1024 ? u->nicons : 1024, nout = 0;
	for (int i = 0; i < n; i++)
		clients[i] = u->icons[i]; /* the reply buffer is reused below */
	cb_text(e, "pending");
	cb_array(e, (uint64_t)n);
	for (int i = 0; i < n; i++)
		cb_uint(e, clients[i]);
	for (int i = 0; i < n && !w->err; i++) {
		struct udiag c;
		if (!clients[i] || diag_query(clients[i], &c) != 0) {
			/* its client closed its end: what it sent, if anything, no
			 * query tells */
			fail_socket(w, -EOPNOTSUPP, "a connection not yet accepted holds bytes ckrun cannot read", f->fd,
				    "a client connected to this listening socket and closed its end before the program accepted "
				    "the connection; whatever it sent waits where only accept() reaches it. Checkpoint again once "
				    "the program has accepted the connection");
			break;
		}
		if (!c.has_rq || c.wq == 0)
			continue;
		if (held_in_session(clients[i]))
			fail_socket(w, -EOPNOTSUPP, "a connection not yet accepted holds bytes ckrun cannot read", f->fd,
				    "a client connected to this listening socket and sent data the program has not accepted yet; "
				    "the kernel keeps those bytes where only accept() reaches them. Checkpoint again once the "
				    "program has accepted the connection");
		else
			outside[nout++] = clients[i];
	}
	if (nout == 0 || w->err)
		return;
	cb_text(e, "pending_bytes");
	cb_array(e, (uint64_t)nout);
	for (int i = 0; i < nout; i++)
		cb_uint(e, outside[i]);
}

struct peek_state {
	char *buf;
	size_t len;
	long nmsgs;
};

static char passed_link[4096];

/* The bytes in a pipe whose read end is in flight, copied with tee(2)
 * into a private pipe (the pipe itself is not consumed): "data". */
static void put_pipe_bytes(struct ck_writer *w, const struct ck_fd *f, int rfd, long capacity)
{
	char *data = 0;
	long n = ck_pipe_peek(rfd, capacity, &data);
	if (n < 0)
		fail_socket(w, n, "cannot copy the bytes of a pipe in flight", f->fd, "copying them failed");
	else if (n > 0)
		ck_image_put_data(w, data, (size_t)n);
	if (data)
		ck_munmap(data, CK_PAGE_UP(n));
}

/* One descriptor in flight, as the peek installed a copy of it: a regular
 * file (reopened by path at restart), a pipe or a socket (found by inode
 * among what the session's processes hold). */
static void describe_passed(struct ck_writer *w, const struct ck_fd *f, int fd)
{
	struct cb_enc *e = &w->meta;
	struct ck_stat st;
	if (ck_fstat(fd, &st) < 0)
		return fail_socket(w, -EBADF, "cannot look at a descriptor in flight", f->fd, "fstat failed");
	cb_map_open(e);
	switch (st.mode & S_IFMT) {
	case S_IFREG: {
		long n = ck_fd_link(fd, passed_link, sizeof passed_link);
		if (n < 0 || st.nlink == 0)
			fail_socket(w, -EOPNOTSUPP, "a descriptor in flight is a deleted file", f->fd,
				    "a message in its queue carries a file that was deleted (ckrun reopens passed files by path)");
		cb_kv_text(e, "kind", "file");
		cb_text(e, "path");
		cb_textn(e, passed_link, n > 0 ? (size_t)n : 0);
		cb_kv_uint(e, "flags", (uint64_t)ck_fcntl(fd, F_GETFL, 0));
		cb_kv_uint(e, "offset", (uint64_t)ck_lseek(fd, 0, SEEK_CUR));
		break;
	}
	case S_IFIFO: {
		int read_end = (ck_fcntl(fd, F_GETFL, 0) & O_ACCMODE) == O_RDONLY;
		long capacity = ck_fcntl(fd, F_GETPIPE_SZ, 0);
		cb_kv_text(e, "kind", "pipe");
		cb_kv_uint(e, "id", st.ino);
		cb_kv_text(e, "end", read_end ? "read" : "write");
		if (capacity > 0)
			cb_kv_uint(e, "capacity", (uint64_t)capacity);
		/* the pipe may be held by no process: its bytes go with it */
		if (read_end && capacity > 0)
			put_pipe_bytes(w, f, fd, capacity);
		break;
	}
	case S_IFSOCK:
		cb_kv_text(e, "kind", "socket");
		cb_kv_uint(e, "ino", st.ino);
		break;
	default: {
		long n = ck_fd_link(fd, passed_link, sizeof passed_link - 1);
		int first = !w->err;
		passed_link[n > 0 ? n : 0] = 0;
		fail_socket(w, -EOPNOTSUPP, "a descriptor in flight is of a kind ckrun cannot pass again", f->fd,
			    "a message in its queue carries a descriptor that is neither a regular file, a pipe nor a socket "
			    "(SCM_RIGHTS): ");
		if (!first)
			break;
		struct ck_str m;
		ck_str_init(&m, w->err_detail + ck_strlen(w->err_detail), sizeof w->err_detail - ck_strlen(w->err_detail));
		ck_str_add(&m, n > 0 ? passed_link : "of an unknown kind");
		ck_str_add(&m, "; checkpoint again once the program has received it");
	}
	}
	cb_close(e);
}

/* The descriptors a peek installed (SCM_RIGHTS) are described, then
 * closed again: they are copies. SCM_CREDENTIALS are dropped (see
 * docs/design.md). Walks the control messages by hand (no libc here). */
static int passed_count(const struct msghdr *mh, const int **fds)
{
	size_t off = 0;
	while (off + sizeof(struct cmsghdr) <= mh->msg_controllen) {
		const struct cmsghdr *c = (const struct cmsghdr *)((const char *)mh->msg_control + off);
		if (c->cmsg_len < sizeof *c || off + c->cmsg_len > mh->msg_controllen)
			break;
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			*fds = (const int *)CMSG_DATA(c);
			return (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		}
		off += CMSG_ALIGN(c->cmsg_len);
	}
	return 0;
}

/* A message: its length, or [length, [descriptor, ...]] when it carries
 * descriptors, or [length, [descriptor, ...], sender's name] when its
 * sender (of a datagram) had a name. */
static void put_message(struct ck_writer *w, const struct ck_fd *f, const struct msghdr *mh, long len)
{
	struct cb_enc *e = &w->meta;
	const int *fds = 0;
	int n = passed_count(mh, &fds);
	unsigned from = mh->msg_namelen > sizeof(sa_family_t) ? mh->msg_namelen - (unsigned)sizeof(sa_family_t) : 0;
	if (!n && !from) {
		cb_uint(e, (uint64_t)len);
		return;
	}
	cb_array(e, from ? 3 : 2);
	cb_uint(e, (uint64_t)len);
	cb_array(e, (uint64_t)n);
	for (int i = 0; i < n; i++) {
		describe_passed(w, f, fds[i]);
		ck_close(fds[i]);
	}
	if (from)
		cb_bytes(e, ((const struct sockaddr_un *)mh->msg_name)->sun_path, from > 108 ? 108 : from);
}

/* Peeks the whole receive queue into s->buf; the messages (for a stream,
 * the runs the kernel returns at once) go to "msgs" as they come. */
static void peek_queue(struct ck_writer *w, const struct ck_fd *f, int type, uint32_t shutdown, struct peek_state *s,
		       uint64_t limit)
{
	struct cb_enc *e = &w->meta;
	int stream = type == SOCK_STREAM;
	cb_text(e, "msgs");
	cb_array_open(e);
	while (s->len < limit) {
		char control[CMSG_SPACE(253 * sizeof(int))] __attribute__((aligned(8)));
		struct sockaddr_un from;
		size_t room = UNIX_QUEUE_MAX - s->len;
		if (stream && limit - s->len < room)
			room = limit - s->len;
		struct iovec iov = {s->buf + s->len, room};
		struct msghdr mh;
		ck_memset(&mh, 0, sizeof mh);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = control;
		mh.msg_controllen = sizeof control;
		if (type == SOCK_DGRAM) {
			mh.msg_name = &from;
			mh.msg_namelen = sizeof from;
		}
		long r = CK_SYS3(SYS_recvmsg, f->fd, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | (stream ? 0 : MSG_TRUNC));
		if (r == -EAGAIN || (r == 0 && (stream || (shutdown & SK_RCV_SHUTDOWN))))
			break; /* the queue is empty, or it ends (the peer shut down) */
		if (r < 0) {
			fail_socket(w, r, "cannot read the bytes in flight of a Unix socket", f->fd, "MSG_PEEK failed");
			break;
		}
		put_message(w, f, &mh, r);
		if ((size_t)r > UNIX_QUEUE_MAX - s->len || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || ++s->nmsgs > UNIX_MSGS_MAX) {
			fail_socket(w, -EFBIG, "a Unix socket holds more in flight than ckrun saves", f->fd,
				    "its receive queue holds more than 16 MiB, 65536 messages or 253 descriptors in one message");
			break;
		}
		s->len += (size_t)r;
	}
	cb_close(e);
}

/* A reset the kernel holds for the socket (its peer closed with bytes
 * unread): a peek would report and consume it (for a datagram or
 * seqpacket socket before the queued messages, for a stream after its
 * bytes). poll tells without consuming it. */
static int pending_reset(int fd, int *has_data)
{
	struct {
		int fd;
		short events, revents;
	} p = {fd, 1 /* POLLIN */, 0};
	if (CK_SYS3(SYS_poll, &p, 1, 0) < 0)
		return 0;
	*has_data = !!(p.revents & 1);
	return !!(p.revents & 8 /* POLLERR */);
}

static void save_queue(struct ck_writer *w, const struct ck_fd *f, int type, uint32_t shutdown, uint32_t state,
		       const struct udiag *u)
{
	struct cb_enc *e = &w->meta;
	struct peek_state s;
	int peek_off = -1, has_data = 0;
	uint64_t limit = UNIX_QUEUE_MAX;
	/* an unconnected stream or seqpacket socket cannot be read (EINVAL,
	 * ENOTCONN): nothing can be queued on it */
	if (type != SOCK_DGRAM && state != TCP_ESTABLISHED_STATE)
		return;
	/* (POLLIN also means only that the peer shut down: the queue's
	 * length is sock_diag's) */
	if (pending_reset(f->fd, &has_data)) {
		cb_kv_bool(e, "reset", 1);
		if (type == SOCK_STREAM && u->has_rq)
			limit = u->rq; /* its bytes, not the reset after them */
		else if ((u->has_rq ? u->rq > 0 : has_data) || type == SOCK_DGRAM)
			return fail_socket(w, -EOPNOTSUPP, "a Unix socket holds a reset ckrun cannot save", f->fd,
					   type == SOCK_DGRAM
						   ? "the kernel holds an error (ECONNRESET) for this datagram socket, which ckrun "
						     "cannot set again; checkpoint again once the program has seen it"
						   : "its peer closed with bytes unread, and the kernel reports that reset before "
						     "the messages queued here, so reading them would consume it; checkpoint again "
						     "once the program has read them");
		else
			return;
	}
	if (limit == 0)
		return;
	ck_memset(&s, 0, sizeof s);
	long m = ck_mmap(0, UNIX_QUEUE_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m < 0 && m > -4096) {
		fail_socket(w, m, "cannot map a buffer for a Unix socket's bytes in flight", f->fd, "mmap failed");
		return;
	}
	s.buf = (char *)m;
	/* the program's own peek offset is put back afterwards */
	ck_sockopt_int(f->fd, SOL_SOCKET, SO_PEEK_OFF, &peek_off);
	sockopt_set_int(f->fd, SO_PEEK_OFF, 0);
	peek_queue(w, f, type, shutdown, &s, limit);
	sockopt_set_int(f->fd, SO_PEEK_OFF, peek_off);
	if (s.len && !w->err) {
		uint32_t crc = 0;
		uint64_t off = ck_image_put_bytes(w, s.buf, s.len, &crc);
		cb_text(e, "queue");
		cb_array(e, 3);
		cb_uint(e, off);
		cb_uint(e, s.len);
		cb_uint(e, crc);
	}
	ck_munmap(s.buf, UNIX_QUEUE_MAX);
}

CK_HIDDEN void ck_unix_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f, int type)
{
	struct cb_enc *e = &w->meta;
	struct udiag u;
	int v;
	(void)t;
	long r = diag_query((uint32_t)f->st.ino, &u);
	if (r < 0) {
		fail_socket(w, r, "cannot ask the kernel (sock_diag) about a Unix socket", f->fd,
			    "NETLINK_SOCK_DIAG did not answer for its inode (is the unix_diag module missing?)");
		return;
	}
	uint32_t shutdown = u.shutdown, state = u.state, peer = u.peer, backlog = u.wq;
	/* a datagram socket another one connected to is "established" too,
	 * without a peer of its own: it is not connected */
	if (type == SOCK_DGRAM && state == TCP_ESTABLISHED_STATE && !has_peer(f->fd))
		state = TCP_CLOSE_STATE;
	cb_text(e, "unix");
	cb_map_open(e);
	cb_kv_uint(e, "ino", f->st.ino);
	cb_kv_uint(e, "state", state);
	if (u.namelen > 0) {
		cb_text(e, "name");
		cb_bytes(e, u.name, (size_t)u.namelen);
	}
	if (u.namelen > 0 && u.name[0] != 0)
		put_file_attrs(e, &u);
	if (shutdown)
		cb_kv_uint(e, "shutdown", shutdown);
	if (ck_sockopt_int(f->fd, SOL_SOCKET, SO_SNDBUF, &v))
		cb_kv_uint(e, "sndbuf", (uint64_t)v);
	if (ck_sockopt_int(f->fd, SOL_SOCKET, SO_RCVBUF, &v))
		cb_kv_uint(e, "rcvbuf", (uint64_t)v);
	if (state == TCP_LISTEN_STATE) {
		cb_kv_uint(e, "backlog", backlog);
		save_pending(w, f, &u);
	} else {
		if (peer)
			cb_kv_uint(e, "peer", peer);
		put_peer_name(e, f->fd);
		save_queue(w, f, type, shutdown, state, &u);
	}
	cb_close(e);
}

/* ---- restore host ---- */

static int parse_list(struct cb_dec *d, uint64_t **out, size_t *n)
{
	int64_t m;
	size_t cap = 8;
	if (!cbd_array(d, &m))
		return 0;
	*out = calloc(cap, sizeof **out);
	while (cbd_next_item(d, &m)) {
		if (*n == cap) {
			cap *= 2;
			*out = realloc(*out, cap * sizeof **out);
		}
		if (!cbd_uint(d, &(*out)[(*n)++]))
			return 0;
	}
	return !d->error;
}

static int parse_name(struct cb_dec *d, uint8_t *dst, unsigned *len)
{
	const uint8_t *p;
	size_t n;
	if (!cbd_bytes(d, &p, &n) || n > 108)
		return 0;
	memcpy(dst, p, n);
	*len = (unsigned)n;
	return 1;
}

static int parse_queue(struct cb_dec *d, struct ck_img_unix *u)
{
	int64_t m;
	uint64_t crc;
	if (!cbd_array(d, &m) || m != 3 || !cbd_uint(d, &u->qoff) || !cbd_uint(d, &u->qlen) ||
	    !cbd_uint_max(d, UINT32_MAX, &crc))
		return 0;
	u->qcrc = (uint32_t)crc;
	return 1;
}

static int parse_passed(struct cb_dec *d, struct ck_img_unix *u)
{
	int64_t left;
	const char *k;
	size_t kl;
	u->passed = realloc(u->passed, (u->npassed + 1) * sizeof *u->passed);
	struct ck_img_passed *p = &u->passed[u->npassed++];
	memset(p, 0, sizeof *p);
	p->msg = u->nmsgs;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		const char *t;
		size_t tl;
		uint64_t v;
		int ok = 1;
		if (cbd_peek(d) == CB_TEXT) {
			ok = cbd_text(d, &t, &tl);
			if (ok && cbd_key_is(k, kl, "kind") && tl < sizeof p->kind)
				memcpy(p->kind, t, tl);
			else if (ok && cbd_key_is(k, kl, "path"))
				p->path = ck_dup_text(t, tl);
			else if (ok && cbd_key_is(k, kl, "end"))
				p->read_end = tl == 4 && !memcmp(t, "read", 4);
		} else if (cbd_peek(d) == CB_UINT) {
			ok = cbd_uint(d, &v) && v <= (cbd_key_is(k, kl, "flags") ? INT32_MAX : INT64_MAX);
			if (cbd_key_is(k, kl, "flags")) p->flags = (int)v;
			else if (cbd_key_is(k, kl, "capacity")) p->capacity = v;
			else if (cbd_key_is(k, kl, "offset")) p->offset = (int64_t)v;
			else if (cbd_key_is(k, kl, "id") || cbd_key_is(k, kl, "ino")) p->id = v;
		} else if (cbd_key_is(k, kl, "data")) {
			int64_t three;
			uint64_t crc;
			ok = cbd_array(d, &three) && three == 3 && cbd_uint(d, &p->data_off) && cbd_uint(d, &p->data_len) &&
			     cbd_uint_max(d, UINT32_MAX, &crc);
			p->data_crc = (uint32_t)crc;
		} else {
			ok = cbd_skip(d);
		}
		if (!ok)
			return 0;
	}
	return p->kind[0] && !d->error;
}

/* "msgs": each a length, or [length, [descriptor, ...]]. */
static int parse_msgs(struct cb_dec *d, struct ck_img_unix *u)
{
	int64_t m;
	size_t cap = 8;
	if (!cbd_array(d, &m))
		return 0;
	u->msgs = calloc(cap, sizeof *u->msgs);
	u->from = calloc(cap, sizeof *u->from);
	while (cbd_next_item(d, &m)) {
		if (u->nmsgs == cap) {
			cap *= 2;
			u->msgs = realloc(u->msgs, cap * sizeof *u->msgs);
			u->from = realloc(u->from, cap * sizeof *u->from);
		}
		u->from[u->nmsgs].len = 0;
		if (cbd_peek(d) == CB_ARRAY) {
			int64_t two, nfds;
			if (!cbd_array(d, &two) || (two != 2 && two != 3) || !cbd_uint(d, &u->msgs[u->nmsgs]) ||
			    !cbd_array(d, &nfds))
				return 0;
			while (cbd_next_item(d, &nfds))
				if (!parse_passed(d, u))
					return 0;
			if (two == 3 && !parse_name(d, u->from[u->nmsgs].name, &u->from[u->nmsgs].len))
				return 0;
		} else if (!cbd_uint(d, &u->msgs[u->nmsgs])) {
			return 0;
		}
		u->nmsgs++;
	}
	return !d->error;
}

static int parse_number(struct cb_dec *d, const char *k, size_t kl, struct ck_img_unix *u)
{
	uint64_t v;
	if (!cbd_uint(d, &v) || (cbd_key_is(k, kl, "state") && v > INT32_MAX))
		return 0;
	if ((cbd_key_is(k, kl, "file_uid") || cbd_key_is(k, kl, "file_gid")) && v > UINT32_MAX)
		return 0;
	if (cbd_key_is(k, kl, "ino")) u->ino = v;
	else if (cbd_key_is(k, kl, "peer")) u->peer = v;
	else if (cbd_key_is(k, kl, "state")) u->state = (int)v;
	else if (cbd_key_is(k, kl, "backlog")) u->backlog = v;
	else if (cbd_key_is(k, kl, "shutdown")) u->shutdown = v;
	else if (cbd_key_is(k, kl, "sndbuf")) u->sndbuf = v;
	else if (cbd_key_is(k, kl, "rcvbuf")) u->rcvbuf = v;
	else if (cbd_key_is(k, kl, "file_mode")) u->file_mode = (uint32_t)(v & 07777), u->has_file = 1;
	else if (cbd_key_is(k, kl, "file_uid") && v <= UINT32_MAX) u->file_uid = (uint32_t)v;
	else if (cbd_key_is(k, kl, "file_gid") && v <= UINT32_MAX) u->file_gid = (uint32_t)v;
	return 1;
}

/* The "unix" key of a socket's map; 1 when it was ours, -1 when damaged. */
CK_HIDDEN int ck_unix_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s)
{
	int64_t left;
	const char *uk;
	size_t ukl;
	if (!cbd_key_is(k, kl, "unix"))
		return 0;
	struct ck_img_unix *u = calloc(1, sizeof *u);
	s->unix_part = u;
	if (!cbd_map(d, &left))
		return -1;
	while (cbd_next_key(d, &left, &uk, &ukl)) {
		int ok;
		if (cbd_key_is(uk, ukl, "name"))
			ok = parse_name(d, u->name, &u->namelen);
		else if (cbd_key_is(uk, ukl, "peer_name"))
			ok = parse_name(d, u->peer_name, &u->peer_namelen);
		else if (cbd_key_is(uk, ukl, "pending"))
			ok = parse_list(d, &u->pending, &u->npending);
		else if (cbd_key_is(uk, ukl, "msgs"))
			ok = (u->has_msgs = 1) && parse_msgs(d, u);
		else if (cbd_key_is(uk, ukl, "queue"))
			ok = parse_queue(d, u);
		else if (cbd_key_is(uk, ukl, "reset"))
			ok = cbd_bool(d, &u->reset);
		else if (cbd_key_is(uk, ukl, "file_gone"))
			ok = cbd_bool(d, &u->file_gone);
		else if (cbd_peek(d) == CB_UINT)
			ok = parse_number(d, uk, ukl, u);
		else
			ok = cbd_skip(d);
		if (!ok)
			return -1;
	}
	return d->error || !u->ino ? -1 : 1;
}

/* Every Unix socket of the session once, by inode. */
struct usock {
	struct ck_image *img;
	struct ck_img_file *f;
	const struct ck_img_socket *sock;
	struct ck_img_unix *u;
	int type;
	int fd;
};
static struct usock *socks;
static size_t nsocks;

static struct usock *find_ino(uint64_t ino)
{
	for (size_t i = 0; ino && i < nsocks; i++)
		if (socks[i].u->ino == ino)
			return &socks[i];
	return 0;
}

static int named(const struct usock *s)
{
	return s->u->namelen > 0;
}

static int connected(const struct usock *s)
{
	return s->u->state == TCP_ESTABLISHED_STATE;
}

/* Both ends saved, each naming the other. */
static struct usock *mutual_peer(const struct usock *s)
{
	struct usock *p = find_ino(s->u->peer);
	return p && p->u->peer == s->u->ino ? p : 0;
}

/* A printable name for messages: a path, or @ and an abstract name. */
static const char *name_text(const uint8_t *name, unsigned len)
{
	static char bufs[2][220];
	static int next;
	char *b = bufs[next++ & 1];
	size_t o = 0;
	if (!len)
		return "(unnamed)";
	for (unsigned i = 0; i < len && o < sizeof bufs[0] - 1; i++) {
		if (i == len - 1 && name[i] == 0 && name[0] != 0)
			break; /* a path's terminating NUL */
		b[o++] = i == 0 && name[0] == 0 ? '@' : (name[i] >= 32 && name[i] < 127 ? (char)name[i] : '?');
	}
	b[o] = 0;
	return b;
}

#define WHO "the Unix socket at descriptor %d of process %d"
#define WHO_ARGS(s) (s)->f->fd, (s)->img->pid

static socklen_t to_addr(struct sockaddr_un *a, const uint8_t *name, unsigned len)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, name, len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
}

/* A relative path names a file from the cwd its program had: bind and
 * connect from there, so getsockname gives back the same bytes. */
static int enter_cwd(const struct usock *owner, const uint8_t *name, unsigned len)
{
	if (!len || name[0] == 0 || name[0] == '/' || !owner->img->cwd)
		return -1;
	int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (chdir(owner->img->cwd) != 0)
		ck_refuse(WHO " is bound to the relative path %s, but its directory %s is gone: %s", WHO_ARGS(owner),
			  name_text(name, len), owner->img->cwd, strerror(errno));
	return here;
}

static void leave_cwd(int here)
{
	if (here >= 0) {
		if (fchdir(here) != 0)
			ck_refuse("cannot return to the restore's directory: %s", strerror(errno));
		close(here);
	}
}

static int place(int fd, int base_fd, const struct usock *s)
{
	if (fd < 0)
		ck_refuse("cannot create " WHO ": %s", WHO_ARGS(s), strerror(errno));
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	close(fd);
	if (moved < 0)
		ck_refuse("cannot place " WHO ": %s", WHO_ARGS(s), strerror(errno));
	return moved;
}

/* The kernel reports buffer sizes doubled and doubles what it is given;
 * past the sysctl limit only SO_*BUFFORCE (root) reaches the old size. */
static void set_buffer(int fd, int name, int force, uint64_t want)
{
	int now, half = (int)(want / 2);
	socklen_t l = sizeof now;
	if (!want || getsockopt(fd, SOL_SOCKET, name, &now, &l) != 0 || (uint64_t)now == want)
		return;
	if (setsockopt(fd, SOL_SOCKET, force, &half, sizeof half) != 0)
		setsockopt(fd, SOL_SOCKET, name, &half, sizeof half);
}

static void configure(const struct usock *s, int fd)
{
	ck_sockopts_apply(fd, s->f, s->sock, SOL_SOCKET, 0);
	set_buffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, s->u->sndbuf);
	set_buffer(fd, SO_RCVBUF, SO_RCVBUFFORCE, s->u->rcvbuf);
	/* setting a size locks it: the locks the program had, and no more */
	ck_sockopt_apply_one(fd, s->sock, SO_BUF_LOCK);
}

static int new_socket(const struct usock *s, int base_fd)
{
	int fd = place(socket(AF_UNIX, s->type | SOCK_CLOEXEC, 0), base_fd, s);
	configure(s, fd);
	return fd;
}

/* A socket file at the path is what the killed run left, unless someone
 * still listens there; anything else at the path is not ours to remove. */
static void clear_stale_path(const struct usock *s, const struct sockaddr_un *a, socklen_t len)
{
	struct stat st;
	if (a->sun_path[0] == 0 || lstat(a->sun_path, &st) != 0)
		return;
	if (!S_ISSOCK(st.st_mode))
		ck_refuse(WHO " was bound to %s, where there is now a file that is not a socket; move it away and restart again",
			  WHO_ARGS(s), a->sun_path);
	int probe = socket(AF_UNIX, s->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r = probe >= 0 ? connect(probe, (const struct sockaddr *)a, len) : -1;
	int e = errno;
	if (probe >= 0)
		close(probe);
	if (r == 0 || (e != ECONNREFUSED && e != ENOENT))
		ck_refuse(WHO " was bound to %s, which another program uses now (a connection to it %s); stop that program "
			  "or restart elsewhere",
			  WHO_ARGS(s), a->sun_path, r == 0 ? "succeeds" : strerror(e));
	if (unlink(a->sun_path) != 0 && errno != ENOENT)
		ck_refuse("cannot remove the stale socket file %s to bind " WHO " there again: %s", a->sun_path, WHO_ARGS(s),
			  strerror(errno));
}

/* The socket file bind just made gets the mode and owner it had. Through
 * an O_PATH descriptor of the file itself: a link put there meanwhile is
 * not followed. */
static void set_file_attrs(const struct usock *s, const char *path)
{
	const struct ck_img_unix *u = s->u;
	struct stat st;
	char proc[64];
	int o = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (o < 0 || fstat(o, &st) != 0 || !S_ISSOCK(st.st_mode))
		ck_refuse("the socket file %s of " WHO " changed while it was bound again; restart again", path, WHO_ARGS(s));
	if ((st.st_uid != u->file_uid || st.st_gid != u->file_gid) &&
	    fchownat(o, "", u->file_uid, u->file_gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
		ck_refuse("cannot give the socket file %s of " WHO " its owner (user %u, group %u) again: %s; restart as a "
			  "user who may",
			  path, WHO_ARGS(s), u->file_uid, u->file_gid, strerror(errno));
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", o);
	if ((st.st_mode & 07777) != u->file_mode && chmod(proc, u->file_mode) != 0)
		ck_refuse("cannot give the socket file %s of " WHO " its mode %04o again: %s", path, WHO_ARGS(s),
			  u->file_mode, strerror(errno));
	close(o);
}

/* A socket whose file was gone at the checkpoint (unlinked, or another
 * file put at its name) is bound at its name, so getsockname and its
 * peers' getpeername give that back; its new socket file is at once
 * renamed to a hidden name in the same directory, through which the
 * session's own sockets connect and send to it (several such sockets may
 * have had one name), and removed once every socket is made. What is at
 * the name now is moved aside for the moment of the bind; directories
 * missing on the way are made for it and removed after. */
struct ghost {
	const struct usock *owner;
	char dir[4096];   /* absolute */
	char hidden[128]; /* the socket file's name in dir until the end */
	char made[4096];  /* the topmost directory made for it; "" none */
};
static struct ghost *ghosts;
static size_t nghosts;

static void make_ghost_dirs(const struct usock *s, struct ghost *g)
{
	char dir[4096];
	struct stat st;
	for (char *p = strchr(g->dir + 1, '/');; p = strchr(p + 1, '/')) {
		snprintf(dir, sizeof dir, "%.*s", p ? (int)(p - g->dir) : (int)strlen(g->dir), g->dir);
		/* followed as bind follows it (/var/run is a link to /run) */
		if (stat(dir, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				ck_refuse(WHO " was bound in %s, and %s is not a directory now; move it away and restart again",
					  WHO_ARGS(s), g->dir, dir);
		} else if (errno != ENOENT || mkdir(dir, 0700) != 0) {
			ck_refuse("cannot make the directory %s to bind " WHO " at its name again: %s", dir, WHO_ARGS(s),
				  strerror(errno));
		} else if (!g->made[0]) {
			snprintf(g->made, sizeof g->made, "%s", dir);
		}
		if (!p)
			break;
	}
}

static void ghost_bind(const struct usock *s, int fd, const struct sockaddr_un *a, socklen_t len)
{
	char path[4096], at[4096], aside[4096] = "";
	struct stat st;
	if (a->sun_path[0] == '/' || !s->img->cwd)
		snprintf(path, sizeof path, "%s", a->sun_path);
	else
		snprintf(path, sizeof path, "%s/%s", s->img->cwd, a->sun_path);
	char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		ck_refuse(WHO " was bound to %s, which ckrun cannot bind again without its file", WHO_ARGS(s), path);
	ghosts = realloc(ghosts, (nghosts + 1) * sizeof *ghosts);
	struct ghost *g = &ghosts[nghosts++];
	memset(g, 0, sizeof *g);
	g->owner = s;
	snprintf(g->dir, sizeof g->dir, "%.*s", (int)(slash - path), path);
	snprintf(g->hidden, sizeof g->hidden, ".ckrun-sock-%d-%zu", (int)getpid(), nghosts);
	make_ghost_dirs(s, g);
	if (lstat(path, &st) == 0) {
		snprintf(aside, sizeof aside, "%s/.ckrun-aside-%d-%zu", g->dir, (int)getpid(), nghosts);
		if (rename(path, aside) != 0)
			ck_refuse("cannot move %s aside for a moment to bind " WHO " there again (its file was gone at the "
				  "checkpoint): %s",
				  path, WHO_ARGS(s), strerror(errno));
	}
	int ok = bind(fd, (const struct sockaddr *)a, len) == 0;
	int err = errno;
	snprintf(at, sizeof at, "%s/%s", g->dir, g->hidden);
	if (ok && rename(path, at) != 0)
		ok = 0, err = errno;
	if (aside[0] && rename(aside, path) != 0)
		ck_refuse("cannot move %s back to %s: %s", aside, path, strerror(errno));
	if (!ok)
		ck_refuse("cannot bind " WHO " to %s again: %s", WHO_ARGS(s), path, strerror(err));
}

/* The hidden name of the newest ghost of owner, relative to its directory,
 * entered (*here: where to return); 0 when owner is not a ghost. */
static int ghost_addr(const struct usock *owner, struct sockaddr_un *a, socklen_t *len, int *here)
{
	for (size_t i = nghosts; i-- > 0;) {
		const struct ghost *g = &ghosts[i];
		if (g->owner != owner)
			continue;
		*here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (chdir(g->dir) != 0)
			ck_refuse("cannot enter %s to reach " WHO ": %s", g->dir, WHO_ARGS(owner), strerror(errno));
		memset(a, 0, sizeof *a);
		a->sun_family = AF_UNIX;
		snprintf(a->sun_path, sizeof a->sun_path, "%s", g->hidden);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(g->hidden) + 1);
		return 1;
	}
	return 0;
}

static void ghosts_finish(void)
{
	char at[4096 + 160];
	while (nghosts) {
		struct ghost *g = &ghosts[--nghosts];
		snprintf(at, sizeof at, "%s/%s", g->dir, g->hidden);
		if (unlink(at) != 0 && errno != ENOENT)
			ck_refuse("cannot remove the socket file %s again: %s", at, strerror(errno));
		/* the directories made for it, deepest first */
		size_t top = strlen(g->made);
		char *slash;
		while (top && strlen(g->dir) >= top && rmdir(g->dir) == 0 && (slash = strrchr(g->dir, '/')) != 0)
			*slash = 0;
	}
	free(ghosts);
	ghosts = 0;
}

/* Binds fd to the name of s (fd may be a temporary listener for s). */
static void bind_name(const struct usock *s, int fd)
{
	struct sockaddr_un a;
	socklen_t len = to_addr(&a, s->u->name, s->u->namelen);
	int here = enter_cwd(s, s->u->name, s->u->namelen);
	if (a.sun_path[0] != 0 && s->u->file_gone) {
		ghost_bind(s, fd, &a, len);
		leave_cwd(here);
		return;
	}
	clear_stale_path(s, &a, len);
	if (bind(fd, (struct sockaddr *)&a, len) != 0)
		ck_refuse("cannot bind " WHO " to %s again: %s", WHO_ARGS(s), name_text(s->u->name, s->u->namelen),
			  strerror(errno));
	if (a.sun_path[0] != 0 && s->u->has_file)
		set_file_attrs(s, a.sun_path);
	leave_cwd(here);
}

/* Connects fd (the socket of s) to owner's name, without waiting. */
static void connect_to(const struct usock *s, int fd, const struct usock *owner)
{
	struct sockaddr_un a;
	socklen_t len;
	int here;
	if (!ghost_addr(owner, &a, &len, &here)) {
		len = to_addr(&a, owner->u->name, owner->u->namelen);
		here = enter_cwd(owner, owner->u->name, owner->u->namelen);
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int r = connect(fd, (struct sockaddr *)&a, len);
	int e = errno;
	fcntl(fd, F_SETFL, fl);
	leave_cwd(here);
	if (r != 0)
		ck_refuse("cannot connect " WHO " to %s again: %s", WHO_ARGS(s), name_text(owner->u->name, owner->u->namelen),
			  strerror(e));
}

/* The restored listening socket with s's name, if the session had one. */
static struct usock *listener_named(const struct usock *s)
{
	for (size_t i = 0; named(s) && i < nsocks; i++) {
		const struct ck_img_unix *l = socks[i].u;
		if (l->state == TCP_LISTEN_STATE && socks[i].type == s->type && l->namelen == s->u->namelen &&
		    !memcmp(l->name, s->u->name, l->namelen))
			return &socks[i];
	}
	return 0;
}

/* The listening socket whose connections not yet accepted include c. */
static struct usock *pending_on(const struct usock *c)
{
	for (size_t i = 0; i < nsocks; i++)
		for (size_t k = 0; k < socks[i].u->npending; k++)
			if (socks[i].u->pending[k] == c->u->ino)
				return &socks[i];
	return 0;
}

static const struct ck_objects *cur_objs;

/* The bytes a pipe in flight held (saved with its read end). */
static char *passed_pipe_bytes(const struct usock *s, const struct ck_img_passed *p)
{
	char *buf = malloc(p->data_len ? p->data_len : 1);
	if (ck_pread_all(s->img->fd, buf, p->data_len, p->data_off) < 0)
		ck_refuse("image %s is truncated: cannot read the bytes of a pipe in flight to " WHO, s->img->path,
			  WHO_ARGS(s));
	if (ck_crc32c(0, buf, p->data_len) != p->data_crc)
		ck_refuse("image %s is corrupted: the bytes of a pipe in flight to " WHO " fail their checksum", s->img->path,
			  WHO_ARGS(s));
	return buf;
}

static void write_pipe(const struct usock *s, int wfd, const struct ck_img_passed *p)
{
	char *buf = passed_pipe_bytes(s, p);
	if (write(wfd, buf, p->data_len) != (ssize_t)p->data_len)
		ck_refuse("cannot put back the bytes of a pipe in flight to " WHO ": %s", WHO_ARGS(s), strerror(errno));
	free(buf);
}

/* A pipe of the session whose read end is only in flight: no process
 * could save its bytes, so they come from the message's copy (a pipe
 * already refilled by its reader's image is left alone). */
static void refill_shared_pipe(const struct usock *s, const struct ck_img_passed *p)
{
	int r = ck_objects_find(cur_objs, "pipe", p->id, 0), w = ck_objects_find(cur_objs, "pipe", p->id, 1), queued = 0;
	if (r >= 0 && w >= 0 && ioctl(r, FIONREAD, &queued) == 0 && queued == 0)
		write_pipe(s, w, p);
}

/* Pipes held by no process, only in flight: made here with their
 * capacity and bytes; the ends not in flight close once the messages
 * are queued (close_lone_pipes). */
struct lone_pipe {
	uint64_t id;
	int ends[2];
};
static struct lone_pipe *lone;
static size_t nlone;

static struct lone_pipe *lone_pipe(const struct usock *s, const struct ck_img_passed *p)
{
	for (size_t i = 0; i < nlone; i++)
		if (lone[i].id == p->id)
			return &lone[i];
	lone = realloc(lone, (nlone + 1) * sizeof *lone);
	struct lone_pipe *l = &lone[nlone++];
	l->id = p->id;
	if (pipe2(l->ends, O_CLOEXEC) != 0)
		ck_refuse("cannot create the pipe in flight to " WHO ": %s", WHO_ARGS(s), strerror(errno));
	if (p->capacity && fcntl(l->ends[0], F_SETPIPE_SZ, (int)p->capacity) < 0)
		ck_refuse("cannot give the pipe in flight to " WHO " its capacity of %llu bytes: %s", WHO_ARGS(s),
			  (unsigned long long)p->capacity, strerror(errno));
	if (p->read_end && p->data_len)
		write_pipe(s, l->ends[1], p);
	return l;
}

static void close_lone_pipes(void)
{
	for (size_t i = 0; i < nlone; i++) {
		close(lone[i].ends[0]);
		close(lone[i].ends[1]);
	}
	free(lone);
	lone = 0;
	nlone = 0;
}

/* A new descriptor for one that was in flight: a file reopened by path (a
 * new open file description at the saved offset), the session's pipe end
 * or socket with that identity. */
static int open_passed(const struct usock *s, const struct ck_img_passed *p)
{
	int fd = -1;
	if (!strcmp(p->kind, "file")) {
		fd = open(p->path, (p->flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_CLOEXEC | O_NOCTTY);
		if (fd < 0 || lseek(fd, p->offset, SEEK_SET) < 0)
			ck_refuse("cannot reopen %s, a file in flight to " WHO ": %s", p->path, WHO_ARGS(s), strerror(errno));
		return fd;
	}
	if (!strcmp(p->kind, "pipe")) {
		int end = ck_objects_find(cur_objs, "pipe", p->id, p->read_end ? 0 : 1);
		if (end >= 0) {
			if (p->read_end && p->data_len)
				refill_shared_pipe(s, p);
		} else {
			end = lone_pipe(s, p)->ends[p->read_end ? 0 : 1];
		}
		fd = fcntl(end, F_DUPFD_CLOEXEC, 0);
	}
	if (!strcmp(p->kind, "socket")) {
		const struct usock *u = find_ino(p->id);
		int other = ck_objects_find(cur_objs, "socket", p->id, 0);
		if (u && u->fd >= 0)
			fd = fcntl(u->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0 && other >= 0)
			fd = fcntl(other, F_DUPFD_CLOEXEC, 0);
	}
	if (fd < 0)
		ck_refuse("a %s in flight to " WHO " (SCM_RIGHTS) is held by no process of the session, so ckrun cannot pass it "
			  "again; restart from a checkpoint taken when it was not in flight",
			  p->kind, WHO_ARGS(s));
	return fd;
}

/* Sends one message (or stream run) with the descriptors it carried. */
static ssize_t send_part(const struct usock *s, size_t msg, int from, const char *buf, size_t len,
			 const struct sockaddr_un *to, socklen_t tolen)
{
	int fds[253], n = 0;
	char control[CMSG_SPACE(sizeof fds)] __attribute__((aligned(8)));
	struct iovec iov = {(void *)buf, len};
	struct msghdr mh;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_name = (void *)to;
	mh.msg_namelen = to ? tolen : 0;
	for (size_t i = 0; i < s->u->npassed && n < 253; i++)
		if (s->u->passed[i].msg == msg)
			fds[n++] = open_passed(s, &s->u->passed[i]);
	if (n) {
		memset(control, 0, sizeof control);
		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	}
	ssize_t r = sendmsg(from, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	int e = errno;
	for (int i = 0; i < n; i++)
		close(fds[i]);
	errno = e;
	return r;
}

/* The socket a datagram to s is sent from, so that it arrives with its
 * sender's name: the session's socket of that name, else one bound to the
 * name for the message (the name of a sender outside the session, free
 * again since it went; a path is removed afterwards, a stale socket file
 * of the killed run replaced). A name someone else holds now cannot be
 * had: the datagram comes from an unnamed socket (-v says so). */
struct sender {
	int fd, tmp;
	const char *unlink_path;
	dev_t dev; /* the socket file bind made (removed only if still there) */
	ino_t ino;
};

static struct sender sender_named(const struct usock *s, const struct ck_img_uname *n, int fallback)
{
	struct sender v = {fallback, -1, 0, 0, 0};
	for (size_t i = 0; i < nsocks; i++)
		if (socks[i].type == SOCK_DGRAM && socks[i].fd >= 0 && socks[i].u->namelen == n->len &&
		    !memcmp(socks[i].u->name, n->name, n->len))
			return (struct sender){socks[i].fd, -1, 0, 0, 0};
	static struct sockaddr_un a;
	socklen_t len = to_addr(&a, n->name, n->len);
	int t = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct stat st;
	int existed = a.sun_path[0] != 0 && lstat(a.sun_path, &st) == 0;
	if (existed && S_ISSOCK(st.st_mode)) {
		/* a socket file nobody is bound to any more */
		int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&a, len) != 0 && errno == ECONNREFUSED)
			existed = unlink(a.sun_path) != 0;
		if (probe >= 0)
			close(probe);
	}
	if (t >= 0 && !existed && bind(t, (struct sockaddr *)&a, len) == 0) {
		v.fd = v.tmp = t;
		if (a.sun_path[0] && lstat(a.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
			v.unlink_path = a.sun_path;
			v.dev = st.st_dev, v.ino = st.st_ino;
		}
		return v;
	}
	ck_verbose("a datagram queued on the Unix socket at descriptor %d of process %d comes from an unnamed socket: "
		   "its sender's name %s is taken (%s)",
		   WHO_ARGS(s), name_text(n->name, n->len), existed ? "a file is there" : strerror(errno));
	if (t >= 0)
		close(t);
	return v;
}

static void sender_done(struct sender *v)
{
	struct stat st;
	if (v->tmp >= 0) {
		close(v->tmp);
		if (v->unlink_path && lstat(v->unlink_path, &st) == 0 && st.st_dev == v->dev && st.st_ino == v->ino)
			unlink(v->unlink_path);
	}
}

/* Sends s's saved receive queue into it from `from` (its peer, or a
 * temporary socket addressing it by name): message by message, so the
 * boundaries of datagrams and seqpackets come back, and the descriptors
 * in flight with the bytes they came with. */
static void refill(const struct usock *s, int from, const struct sockaddr_un *to, socklen_t tolen)
{
	const struct ck_img_unix *u = s->u;
	if (!u->qlen && !u->nmsgs)
		return;
	char *buf = malloc(u->qlen ? u->qlen : 1);
	if (ck_pread_all(s->img->fd, buf, u->qlen, u->qoff) < 0)
		ck_refuse("image %s is truncated: cannot read the bytes in flight of " WHO, s->img->path, WHO_ARGS(s));
	if (ck_crc32c(0, buf, u->qlen) != u->qcrc)
		ck_refuse("image %s is corrupted: the bytes in flight of " WHO " fail their checksum", s->img->path, WHO_ARGS(s));
	uint64_t total = 0;
	for (size_t i = 0; i < u->nmsgs; i++)
		total += u->msgs[i];
	if (u->has_msgs && total != u->qlen)
		ck_refuse("image %s is damaged: the messages queued on " WHO " do not add up to its bytes", s->img->path,
			  WHO_ARGS(s));
	size_t nparts = u->has_msgs ? u->nmsgs : 1;
	uint64_t off = 0;
	for (size_t i = 0; i < nparts; i++) {
		uint64_t len = u->has_msgs ? u->msgs[i] : u->qlen, done = 0;
		struct sender via = {from, -1, 0, 0, 0};
		/* sent by name: from the sender's name, as it came */
		if (to && u->has_msgs && u->from && u->from[i].len)
			via = sender_named(s, &u->from[i], from);
		do {
			/* the descriptors go with the first bytes of their part */
			ssize_t r = done ? sendto(via.fd, buf + off + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL,
						  (const struct sockaddr *)to, to ? tolen : 0)
					 : send_part(s, i, via.fd, buf + off, len, to, tolen);
			if (r < 0)
				ck_refuse("cannot put back the bytes in flight of " WHO " (%llu of %llu bytes): %s", WHO_ARGS(s),
					  (unsigned long long)(off + done), (unsigned long long)u->qlen, strerror(errno));
			done += (uint64_t)r;
		} while (done < len);
		sender_done(&via);
		off += len;
	}
	free(buf);
}

/* Queues that carry descriptors are refilled last, when every socket the
 * descriptors may name exists; `from` stays open until then. */
struct refill_job {
	const struct usock *s;
	int from, close_from;
};
static struct refill_job *jobs;
static size_t njobs;

static void refill_from(const struct usock *s, int from, int close_from)
{
	if (s->u->npassed) {
		jobs = realloc(jobs, (njobs + 1) * sizeof *jobs);
		jobs[njobs++] = (struct refill_job){s, from, close_from};
		return;
	}
	refill(s, from, 0, 0);
	if (close_from)
		close(from);
}

static void run_deferred_refills(void)
{
	for (size_t i = 0; i < njobs; i++) {
		refill(jobs[i].s, jobs[i].from, 0, 0);
		if (jobs[i].close_from)
			close(jobs[i].from);
	}
	free(jobs);
	jobs = 0;
	njobs = 0;
}

/* ---- the order of creation ---- */

/* 1. Sockets that own their name (listening, unconnected, datagram) are
 * bound again first: connections are made to them. A datagram socket's
 * queue is refilled now through its name, before it connects anywhere
 * (a connected datagram socket accepts only its peer's messages), unless
 * its peer is saved and sends it back itself. */
static void create_named(int base_fd)
{
	for (size_t i = 0; i < nsocks; i++) {
		struct usock *s = &socks[i];
		if (!named(s) || (s->type != SOCK_DGRAM && connected(s)))
			continue;
		s->fd = new_socket(s, base_fd);
		bind_name(s, s->fd);
		if (s->u->state == TCP_LISTEN_STATE && listen(s->fd, (int)s->u->backlog) != 0)
			ck_refuse("cannot listen on " WHO " again: %s", WHO_ARGS(s), strerror(errno));
	}
	/* every name of the session is bound: datagrams come from theirs */
	for (size_t i = 0; i < nsocks; i++) {
		struct usock *s = &socks[i];
		if (!named(s) || s->type != SOCK_DGRAM)
			continue;
		if (s->u->qlen && !mutual_peer(s)) {
			struct sockaddr_un a;
			socklen_t len;
			int here, tmp = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (!ghost_addr(s, &a, &len, &here)) {
				len = to_addr(&a, s->u->name, s->u->namelen);
				here = enter_cwd(s, s->u->name, s->u->namelen);
			}
			refill(s, tmp, &a, len);
			leave_cwd(here);
			close(tmp);
		}
	}
}

/* The end of a named connection that took its name from a listener
 * (accept gives it that name): the one named like a restored listener,
 * else the one its peer had connected to. */
static struct usock *server_end(struct usock *a, struct usock *b)
{
	if (listener_named(a))
		return a;
	if (listener_named(b))
		return b;
	if (named(a) && a->u->namelen == b->u->peer_namelen && !memcmp(a->u->name, b->u->peer_name, a->u->namelen))
		return a;
	return named(a) ? a : b;
}

/* The server end of a connection made from `client` (already created):
 * accepted from the restored listener, or from a temporary one at the
 * server's name when the program no longer had its listener. */
static int accept_end(struct usock *srv, const struct usock *client, int cfd, int base_fd)
{
	struct usock *l = listener_named(srv);
	int tmp = -1;
	if (!l) {
		tmp = socket(AF_UNIX, srv->type | SOCK_CLOEXEC, 0);
		if (tmp < 0)
			ck_refuse("cannot create a socket to connect " WHO " again: %s", WHO_ARGS(srv), strerror(errno));
		bind_name(srv, tmp);
		if (listen(tmp, 1) != 0)
			ck_refuse("cannot listen at %s to connect " WHO " again: %s", name_text(srv->u->name, srv->u->namelen),
				  WHO_ARGS(srv), strerror(errno));
	}
	connect_to(client, cfd, l ? l : srv);
	int fd = accept4(l ? l->fd : tmp, 0, 0, SOCK_CLOEXEC);
	if (fd < 0)
		ck_refuse("cannot accept the connection of " WHO " again: %s", WHO_ARGS(srv), strerror(errno));
	if (tmp >= 0)
		close(tmp);
	fd = place(fd, base_fd, srv);
	configure(srv, fd);
	return fd;
}

/* 2. Stream and seqpacket connections whose ends are both saved. */
static void connect_pair(struct usock *a, struct usock *b, int base_fd)
{
	if (!named(a) && !named(b)) {
		int sv[2];
		if (socketpair(AF_UNIX, a->type | SOCK_CLOEXEC, 0, sv) != 0)
			ck_refuse("cannot create the socket pair of " WHO ": %s", WHO_ARGS(a), strerror(errno));
		a->fd = place(sv[0], base_fd, a);
		b->fd = place(sv[1], base_fd, b);
		configure(a, a->fd);
		configure(b, b->fd);
	} else {
		struct usock *srv = server_end(a, b), *cli = srv == a ? b : a;
		cli->fd = new_socket(cli, base_fd);
		if (named(cli))
			bind_name(cli, cli->fd);
		srv->fd = accept_end(srv, cli, cli->fd, base_fd);
	}
	refill_from(a, b->fd, 0);
	refill_from(b, a->fd, 0);
}

/* An end whose peer is not in the session, or had closed: connected to a
 * peer that is gone. Its saved bytes come first, then EOF. */
static void connect_to_gone(struct usock *s, int base_fd)
{
	struct usock *l = s->type != SOCK_DGRAM ? listener_named(s) : 0;
	int other;
	if (l) {
		/* a connection accepted from a restored listener keeps its name */
		other = socket(AF_UNIX, s->type | SOCK_CLOEXEC, 0);
		if (other < 0)
			ck_refuse("cannot create a socket for " WHO ": %s", WHO_ARGS(s), strerror(errno));
		s->fd = accept_end(s, s, other, base_fd);
	} else if (s->fd >= 0) {
		/* a named datagram socket: connected to a socket that then goes */
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		socklen_t len = sizeof a;
		other = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (other < 0 || bind(other, (struct sockaddr *)&a, sizeof(sa_family_t)) != 0 ||
		    getsockname(other, (struct sockaddr *)&a, &len) != 0 || connect(s->fd, (struct sockaddr *)&a, len) != 0)
			ck_refuse("cannot connect " WHO " to a stand-in for its peer: %s", WHO_ARGS(s), strerror(errno));
		close(other);
		return; /* its queue was refilled through its name */
	} else {
		int sv[2];
		if (socketpair(AF_UNIX, s->type | SOCK_CLOEXEC, 0, sv) != 0)
			ck_refuse("cannot create a socket pair for " WHO ": %s", WHO_ARGS(s), strerror(errno));
		s->fd = place(sv[0], base_fd, s);
		configure(s, s->fd);
		other = sv[1];
	}
	/* a peer that closes with a byte unread leaves the reset s had */
	if (s->u->reset && send(s->fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1)
		ck_refuse("cannot give " WHO " its reset again: %s", WHO_ARGS(s), strerror(errno));
	refill_from(s, other, 1);
}

/* 3. Datagram sockets: pairs made by socketpair, then connections to
 * named peers, then their queues from their peers. */
static void connect_datagrams(int base_fd)
{
	for (size_t i = 0; i < nsocks; i++) {
		struct usock *s = &socks[i], *p = mutual_peer(s);
		if (s->type != SOCK_DGRAM || s->fd >= 0 || !p || named(p) || p->fd >= 0)
			continue;
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0)
			ck_refuse("cannot create the socket pair of " WHO ": %s", WHO_ARGS(s), strerror(errno));
		s->fd = place(sv[0], base_fd, s);
		p->fd = place(sv[1], base_fd, p);
		configure(s, s->fd);
		configure(p, p->fd);
	}
	for (size_t i = 0; i < nsocks; i++) {
		struct usock *s = &socks[i];
		if (s->type != SOCK_DGRAM || !connected(s))
			continue;
		struct usock *p = find_ino(s->u->peer);
		if (!p) {
			connect_to_gone(s, base_fd);
			continue;
		}
		if (s->fd < 0)
			s->fd = new_socket(s, base_fd);
		if (named(p))
			connect_to(s, s->fd, p);
		else if (mutual_peer(s) != p)
			ck_refuse(WHO " is connected to an unnamed datagram socket that is not its pair; ckrun cannot connect "
				  "them again",
				  WHO_ARGS(s));
	}
	for (size_t i = 0; i < nsocks; i++) {
		struct usock *s = &socks[i], *p = mutual_peer(s);
		if (s->type == SOCK_DGRAM && p)
			refill_from(s, p->fd, 0);
		else if (s->type == SOCK_DGRAM && s->u->qlen && !named(s) && find_ino(s->u->peer))
			ck_refuse(WHO " has messages queued but no name and no peer that could send them again", WHO_ARGS(s));
	}
}

static void connect_streams(int base_fd)
{
	for (size_t i = 0; i < nsocks; i++) {
		struct usock *s = &socks[i], *p;
		if (s->type == SOCK_DGRAM || !connected(s) || s->fd >= 0)
			continue;
		if ((p = mutual_peer(s)) != 0)
			connect_pair(s, p, base_fd);
		else if (!pending_on(s))
			connect_to_gone(s, base_fd);
	}
}

/* 4. Connections not yet accepted, in their queue's order, after every
 * accepted one was taken from its listener. */
static void connect_pending(int base_fd)
{
	for (size_t i = 0; i < nsocks; i++) {
		struct usock *l = &socks[i];
		for (size_t k = 0; k < l->u->npending; k++) {
			struct usock *c = find_ino(l->u->pending[k]);
			if (!c || c->fd >= 0)
				continue; /* a client outside the session: that connection is lost */
			c->fd = new_socket(c, base_fd);
			if (named(c))
				bind_name(c, c->fd);
			connect_to(c, c->fd, l);
		}
	}
}

/* 5. What a program shut down stays shut. */
static void apply_shutdown(const struct usock *s)
{
	const struct usock *p = mutual_peer(s);
	int how = -1;
	if (s->u->shutdown & SK_SEND_SHUTDOWN)
		how = SHUT_WR;
	if ((s->u->shutdown & SK_RCV_SHUTDOWN) && (!p || !(p->u->shutdown & SK_SEND_SHUTDOWN)) && p)
		how = how == SHUT_WR ? SHUT_RDWR : SHUT_RD;
	if (how >= 0 && connected(s) && shutdown(s->fd, how) != 0)
		ck_refuse("cannot shut " WHO " down again: %s", WHO_ARGS(s), strerror(errno));
}

static void collect(struct ck_sock_file *list, size_t n)
{
	free(socks);
	socks = 0;
	nsocks = 0;
	for (size_t i = 0; i < n; i++) {
		struct ck_img_file *f = list[i].f;
		const struct ck_img_socket *sock = list[i].s;
		if (!sock->unix_part)
			ck_refuse("image %s is damaged: the Unix socket at descriptor %d has no \"unix\" part", list[i].img->path,
				  f->fd);
		if (find_ino(sock->unix_part->ino))
			continue; /* one socket held by several processes */
		socks = realloc(socks, (nsocks + 1) * sizeof *socks);
		socks[nsocks++] = (struct usock){list[i].img, f, sock, sock->unix_part, sock->type, -1};
	}
}

/* Every Unix socket of the images (list: those sockets.c found), made
 * once: objects "socket" (inode, 0). */
CK_HIDDEN void ck_unix_create_shared(struct ck_sock_file *list, size_t n, struct ck_objects *objs, int base_fd)
{
	collect(list, n);
	if (!nsocks)
		return;
	cur_objs = objs;
	for (size_t i = 0; i < nsocks; i++)
		if (socks[i].type != SOCK_STREAM && socks[i].type != SOCK_DGRAM && socks[i].type != SOCK_SEQPACKET)
			ck_refuse(WHO " is of type %d, which ckrun cannot restore", WHO_ARGS(&socks[i]), socks[i].type);
	create_named(base_fd);
	connect_streams(base_fd);
	connect_datagrams(base_fd);
	connect_pending(base_fd);
	for (size_t i = 0; i < nsocks; i++)
		if (socks[i].fd < 0)
			socks[i].fd = new_socket(&socks[i], base_fd); /* never connected, never named */
	run_deferred_refills();
	ghosts_finish();
	close_lone_pipes();
	for (size_t i = 0; i < nsocks; i++) {
		struct usock *s = &socks[i];
		apply_shutdown(s);
		ck_objects_add(objs, "socket", s->u->ino, 0, s->fd);
	}
}

CK_HIDDEN int ck_unix_open(struct ck_image *img, struct ck_img_file *f, const struct ck_img_socket *s, int base_fd,
			   const struct ck_objects *objs)
{
	(void)img;
	const struct ck_img_unix *u = s->unix_part;
	int made = u ? ck_objects_find(objs, "socket", u->ino, 0) : -1;
	if (made >= 0) {
		int fd = fcntl(made, F_DUPFD_CLOEXEC, base_fd);
		if (fd < 0 || fcntl(fd, F_SETFL, f->flags & O_NONBLOCK) != 0)
			ck_refuse("cannot set up the Unix socket at descriptor %d: %s", f->fd, strerror(errno));
		return fd;
	}
	ck_refuse("descriptor %d is a Unix socket the restore did not create (its image has no \"unix\" part)", f->fd);
}
