/* Unix sockets: abstract names at their exact length, a line sent with
 * a descriptor, the peers of a listener (sock_diag), a peer's credentials. */
#define _GNU_SOURCE
#include "native.h"

/* ------------------------------------------------------------------ */
/* abstract Unix sockets, addressed by their exact length               */

static bool abstract_addr(napi_env env, napi_value v, struct sockaddr_un *a, socklen_t *len, char **name)
{
	*name = dup_string(env, v, "socket name");
	if (!*name)
		return false;
	size_t n = strlen(*name);
	*len = n ? ck_abstract_addr(a, *name, n) : 0;
	if (!*len) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "abstract socket name must be 1 to 107 bytes");
		return false;
	}
	return true;
}

static napi_value unix_socket(napi_env env, napi_callback_info info, bool listening)
{
	size_t argc = 2;
	napi_value argv[2], result = NULL;
	struct sockaddr_un a;
	socklen_t len;
	char *name = NULL;
	int fd = -1, err;
	int64_t backlog = 64;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "a socket name is required");
		return NULL;
	}
	if (!abstract_addr(env, argv[0], &a, &len, &name))
		goto fail;
	if (listening && argc >= 2) {
		napi_valuetype t;
		NAPI_CALL(env, napi_typeof(env, argv[1], &t));
		if (t != napi_undefined && !get_int(env, argv[1], "backlog", 1, 65535, &backlog))
			goto fail;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		throw_coded(env, errno_name(err), "socket: %s", strerror(err));
		goto fail;
	}
	if (listening) {
		if (bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, (int)backlog) < 0) {
			err = errno;
			throw_coded(env, errno_name(err), "cannot listen on @%s: %s", name, strerror(err));
			goto fail;
		}
	} else {
		int r;
		do
			r = connect(fd, (struct sockaddr *)&a, len);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			err = errno;
			throw_coded(env, errno_name(err), "cannot connect to @%s: %s", name, strerror(err));
			goto fail;
		}
	}
	NAPI_CALL(env, napi_create_int32(env, fd, &result));
	free(name);
	return result;
fail:
	if (fd >= 0)
		close(fd);
	free(name);
	return NULL;
}

napi_value js_unix_listen(napi_env env, napi_callback_info info)
{
	return unix_socket(env, info, true);
}

napi_value js_unix_connect(napi_env env, napi_callback_info info)
{
	return unix_socket(env, info, false);
}

/* ------------------------------------------------------------------ */
/* sendWithFd: a line to a shim with a descriptor attached               */

/* Sends a line on a connected Unix socket in one sendmsg, with fd attached
 * (SCM_RIGHTS): the image file ckrun created for a process, which may no
 * longer be able to create files in the directory itself. Returns the
 * bytes sent (the caller writes the rest of a partly sent line). */
napi_value js_send_with_fd(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	int64_t sock, fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 3) {
		throw_type(env, "sendWithFd(socket, line, fd): three arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "sendWithFd: socket", 0, INT_MAX, &sock) ||
	    !get_int(env, argv[2], "sendWithFd: fd", 0, INT_MAX, &fd))
		return NULL;
	char *line = dup_string(env, argv[1], "sendWithFd: line");
	if (!line)
		return NULL;
	size_t len = strlen(line);
	struct iovec iov = { line, len };
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg;
	memset(&msg, 0, sizeof msg);
	memset(&ctl, 0, sizeof ctl);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = &ctl;
	msg.msg_controllen = sizeof ctl;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	int one = (int)fd;
	memcpy(CMSG_DATA(c), &one, sizeof one);
	ssize_t r;
	do
		r = sendmsg((int)sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	int err = errno;
	free(line);
	if (r < 0) {
		throw_coded(env, errno_name(err), "sendWithFd: %s", strerror(err));
		return NULL;
	}
	napi_value result;
	NAPI_CALL(env, napi_create_int64(env, (int64_t)r, &result));
	return result;
fail:
	return NULL;
}

/* ------------------------------------------------------------------ */
/* unixPeers: the client ends of the connections ckrun accepted         */

/* A connection accepted on a listening socket carries the listener's
 * address, so a sock_diag dump of every Unix socket with its name and its
 * peer finds, for the abstract name, the inode of each connected client's
 * socket: what /proc/PID/fd/N of the shim's connection links to. */
napi_value js_unix_peers(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result = NULL;
	char *name = NULL;
	int fd = -1, err = 0;
	uint32_t *peers = NULL;
	size_t npeers = 0, cap = 0;
	static char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "unixPeers(name): a socket name is required");
		return NULL;
	}
	if (!(name = dup_string(env, argv[0], "unixPeers: name")))
		return NULL;
	size_t nlen = strlen(name);
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		err = errno;
		throw_coded(env, errno_name(err), "sock_diag: socket: %s", strerror(err));
		goto fail;
	}
	struct ck_unix_diag_query q;
	ck_unix_diag_query(&q, 0, 1u << 1 /* TCP_ESTABLISHED */, UDIAG_SHOW_NAME | UDIAG_SHOW_PEER);
	q.h.nlmsg_seq = 1;
	struct sockaddr_nl nladdr = { .nl_family = AF_NETLINK };
	ssize_t sent;
	do
		sent = sendto(fd, &q, sizeof q, 0, (struct sockaddr *)&nladdr, sizeof nladdr);
	while (sent < 0 && errno == EINTR);
	if (sent < 0) {
		err = errno;
		throw_coded(env, errno_name(err), "sock_diag: send: %s", strerror(err));
		goto fail;
	}
	for (bool done = false; !done;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			throw_coded(env, errno_name(err), "sock_diag: recv: %s", strerror(err));
			goto fail;
		}
		if (n == 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				err = e->error < 0 ? -e->error : EPROTO;
				throw_coded(env, errno_name(err), "sock_diag: %s", strerror(err));
				goto fail;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
				continue;
			struct unix_diag_msg *m = NLMSG_DATA(h);
			size_t alen = h->nlmsg_len - NLMSG_LENGTH(sizeof *m);
			bool named = false;
			uint32_t peer = 0;
			for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				if (a->rta_type == UNIX_DIAG_NAME) {
					const char *nm = RTA_DATA(a);
					size_t l = RTA_PAYLOAD(a);
					named = l == nlen + 1 && nm[0] == 0 && memcmp(nm + 1, name, nlen) == 0;
				} else if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
					memcpy(&peer, RTA_DATA(a), sizeof peer);
				}
			}
			if (!named || peer == 0)
				continue;
			if (npeers == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				uint32_t *np = realloc(peers, ncap * sizeof *np);
				if (!np) {
					throw_coded(env, "ENOMEM", "unixPeers: out of memory");
					goto fail;
				}
				peers = np;
				cap = ncap;
			}
			peers[npeers++] = peer;
		}
	}
	NAPI_CALL(env, napi_create_array_with_length(env, npeers, &result));
	for (size_t i = 0; i < npeers; i++) {
		napi_value x;
		NAPI_CALL(env, napi_create_uint32(env, peers[i], &x));
		NAPI_CALL(env, napi_set_element(env, result, (uint32_t)i, x));
	}
	close(fd);
	free(peers);
	free(name);
	return result;
fail:
	if (fd >= 0)
		close(fd);
	free(peers);
	free(name);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* peer credentials of a Unix socket                                    */

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* The descriptor argument of peerCred / peerAlive. */


/* SO_PEERCRED of a connected Unix socket: who made the other end (its
 * PID in our PID namespace, 0 when it is not visible here; its user and
 * group in our user namespace), as the kernel recorded it at connect()
 * or listen(). */
napi_value js_peer_cred(napi_env env, napi_callback_info info)
{
	int fd;
	struct ucred cr;
	socklen_t len = sizeof cr;
	napi_value result = NULL;
	if (!get_fd_arg(env, info, "peerCred", &fd))
		return NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "getsockopt(%d, SO_PEERCRED): %s", fd, strerror(err));
		return NULL;
	}
	NAPI_CALL(env, napi_create_object(env, &result));
	if (!set_int_prop(env, result, "pid", cr.pid) || !set_int_prop(env, result, "uid", cr.uid) ||
	    !set_int_prop(env, result, "gid", cr.gid)) {
		throw_napi(env, "peerCred: building the result");
		return NULL;
	}
	return result;
fail:
	return NULL;
}

/* Whether the process that made the other end of a Unix socket still
 * runs: its pidfd (SO_PEERPIDFD) is not readable. A check of /proc/PID
 * followed by this one was about that very process, not about a later one
 * that got its PID. True when the kernel cannot tell (before Linux 6.5). */
napi_value js_peer_alive(napi_env env, napi_callback_info info)
{
	int fd, pidfd = -1;
	socklen_t len = sizeof pidfd;
	bool alive = true;
	napi_value result = NULL;
	if (!get_fd_arg(env, info, "peerAlive", &fd))
		return NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
		struct pollfd p = { pidfd, POLLIN, 0 };
		int r;
		do
			r = poll(&p, 1, 0);
		while (r < 0 && errno == EINTR);
		alive = r == 0;
		close(pidfd);
	} else if (errno == ESRCH) {
		alive = false; /* already reaped */
	}
	NAPI_CALL(env, napi_get_boolean(env, alive, &result));
	return result;
fail:
	return NULL;
}

/* ------------------------------------------------------------------ */
/* socketPair: a connected pair (node has none of its own)             */

/* socketPair(): [fd, fd], both close-on-exec; one end for node, the other
 * for a child's stdin and stdout (ckrun-hold: spawn's fds mapping dup2s it
 * into place, which clears the flag there). */
napi_value js_socket_pair(napi_env env, napi_callback_info info)
{
	(void)info;
	int sv[2];
	napi_value result = NULL, a, b;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "socketpair: %s", strerror(err));
		return NULL;
	}
	NAPI_CALL(env, napi_create_array_with_length(env, 2, &result));
	NAPI_CALL(env, napi_create_int32(env, sv[0], &a));
	NAPI_CALL(env, napi_create_int32(env, sv[1], &b));
	NAPI_CALL(env, napi_set_element(env, result, 0, a));
	NAPI_CALL(env, napi_set_element(env, result, 1, b));
	return result;
fail:
	close(sv[0]);
	close(sv[1]);
	return NULL;
}
