/* The send queue of a TCP connection of a process that cannot read it
 * itself: reading it takes TCP_REPAIR, which takes CAP_NET_ADMIN, and a
 * program that gave up root (a server's worker, zdtm's tests) no longer
 * has it. ckrun, root, reads it through a duplicate of the process's
 * socket (pidfd_getfd) while the process stands stopped for a checkpoint,
 * exactly as the shim does for itself (preload/sk-inet.c take_send_queue). */
#define _GNU_SOURCE
#include "native.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

/* tcpSendQueue(fd) → {end, unsent, data}: the sequence number after the
 * queue's last byte (TCP_QUEUE_SEQ of the send queue), how many of its
 * last bytes TCP had not sent (SIOCOUTQNSD), and the whole queue (sent but
 * not acknowledged, then not sent). Leaves repair mode without a window
 * probe, with the socket's SO_REUSEADDR as it was. */
napi_value js_tcp_send_queue(napi_env env, napi_callback_info info)
{
	int fd;
	napi_value result = NULL, data;
	if (!get_fd_arg(env, info, "tcpSendQueue(fd)", &fd))
		return NULL;
	int reuse = 0, on = TCP_REPAIR_ON, off = TCP_REPAIR_OFF_NO_WP, q = TCP_SEND_QUEUE, noq = TCP_NO_QUEUE;
	int outq = 0, unsent = 0;
	socklen_t l = sizeof reuse;
	uint32_t end = 0;
	getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, &l);
	ioctl(fd, SIOCOUTQ, &outq);
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof on) != 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "TCP_REPAIR: %s", strerror(err));
		return NULL;
	}
	const char *failed = 0;
	int err = 0;
	char *buf = outq > 0 ? malloc((size_t)outq) : 0;
	ssize_t got = 0;
	l = sizeof end;
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof q) != 0 ||
	    getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &end, &l) != 0)
		failed = "TCP_QUEUE_SEQ", err = errno;
	else if (outq > 0 && !buf)
		failed = "malloc", err = ENOMEM;
	else if (outq > 0 && (got = recv(fd, buf, (size_t)outq, MSG_PEEK | MSG_DONTWAIT)) < 0)
		failed = "peeking the send queue", err = errno;
	ioctl(fd, SIOCOUTQNSD, &unsent);
	setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &noq, sizeof noq);
	setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof off);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
	if (failed) {
		free(buf);
		throw_coded(env, errno_name(err), "%s: %s", failed, strerror(err));
		return NULL;
	}
	void *bytes;
	NAPI_CALL(env, napi_create_object(env, &result));
	if (!set_int_prop(env, result, "end", end) || !set_int_prop(env, result, "unsent", unsent))
		goto fail;
	NAPI_CALL(env, napi_create_buffer_copy(env, (size_t)got, buf ? buf : "", &bytes, &data));
	NAPI_CALL(env, napi_set_named_property(env, result, "data", data));
	free(buf);
	return result;
fail:
	free(buf);
	return NULL;
}
