/*
 * Unix domain sockets with bytes in flight across a checkpoint.
 *
 *   unixsock DIR [OUTSIDE_PATH]
 *
 * Sets up, in one process: a stream socketpair, a stream connection through
 * a listener at DIR/srv.sock, a datagram receiver at DIR/dgram.sock, a
 * seqpacket pair, an abstract-name listener with a connection, a connection
 * not yet accepted, descriptors in flight (SCM_RIGHTS: a file, a pipe end,
 * a socket) and (with OUTSIDE_PATH) a connection to a server outside the
 * session. Each round puts bytes in flight in every direction, reads
 * part of them, prints "armed R", and waits for DIR/goR to exist (the test
 * checkpoints, kills and restarts meanwhile). Then it checks that every
 * byte and message arrives exactly once, in order, with names, peers and
 * options as they were, and prints "verified R". Two rounds.
 */
#include "common.h"

#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *dir;

static void check(int ok, const char *what)
{
	if (!ok) {
		printf("FAIL: %s\n", what);
		fflush(stdout);
		exit(1);
	}
}

static uint8_t pattern(int round, int stream, size_t i)
{
	return (uint8_t)(round * 31 + stream * 101 + i * 7 + (i >> 8));
}

static void fill(uint8_t *b, size_t n, int round, int stream, size_t from)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pattern(round, stream, from + i);
}

static void send_all(int fd, int round, int stream, size_t from, size_t n)
{
	uint8_t b[4096];
	fill(b, n, round, stream, from);
	for (size_t done = 0; done < n;) {
		ssize_t r = send(fd, b + done, n - done, 0);
		if (r < 0)
			die("send");
		done += (size_t)r;
	}
}

/* Reads exactly n bytes (blocking) and checks them. */
static void expect_bytes(int fd, int round, int stream, size_t from, size_t n, const char *what)
{
	uint8_t b[4096], want[4096];
	fill(want, n, round, stream, from);
	for (size_t done = 0; done < n;) {
		ssize_t r = recv(fd, b + done, n - done, 0);
		if (r <= 0) {
			printf("FAIL: %s: recv gave %zd after %zu of %zu bytes (%s)\n", what, r, done, n, strerror(errno));
			exit(1);
		}
		done += (size_t)r;
	}
	if (memcmp(b, want, n)) {
		printf("FAIL: %s: bytes differ\n", what);
		exit(1);
	}
}

static void expect_empty(int fd, const char *what)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
	if (!(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
		printf("FAIL: %s: more bytes than sent (recv gave %zd)\n", what, r);
		exit(1);
	}
}

static void send_msg(int fd, int round, int stream, size_t len)
{
	uint8_t b[4096];
	fill(b, len, round, stream, len);
	if (send(fd, b, len, 0) != (ssize_t)len)
		die("send message");
}

static void expect_msg(int fd, int round, int stream, size_t len, const char *what)
{
	uint8_t b[4096], want[4096];
	fill(want, len, round, stream, len);
	ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
	if (r != (ssize_t)len || memcmp(b, want, len)) {
		printf("FAIL: %s: expected a message of %zu bytes, got %zd (%s)\n", what, len, r, r < 0 ? strerror(errno) : "");
		exit(1);
	}
}

static socklen_t path_addr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof a->sun_path, "%s/%s", dir, name);
	return sizeof *a;
}

static socklen_t abstract_addr(struct sockaddr_un *a)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		die("stat dir");
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "ckrun-unixsock-%llu", (unsigned long long)st.st_ino);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int listener(int type, struct sockaddr_un *a, socklen_t len, int backlog)
{
	int fd = socket(AF_UNIX, type, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)a, len) != 0 || listen(fd, backlog) != 0)
		die("listen");
	return fd;
}

static int connect_to(int type, const struct sockaddr_un *a, socklen_t len)
{
	int fd = socket(AF_UNIX, type, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)a, len) != 0)
		die("connect");
	return fd;
}

static void expect_name(int fd, int peer, const struct sockaddr_un *want, socklen_t wlen, const char *what)
{
	struct sockaddr_un a;
	socklen_t len = sizeof a;
	memset(&a, 0, sizeof a);
	if ((peer ? getpeername(fd, (struct sockaddr *)&a, &len) : getsockname(fd, (struct sockaddr *)&a, &len)) != 0)
		die(what);
	size_t n = wlen - offsetof(struct sockaddr_un, sun_path);
	if (want->sun_path[0]) /* a path: compare as text */
		check(!strcmp(a.sun_path, want->sun_path), what);
	else
		check(len - offsetof(struct sockaddr_un, sun_path) == n && !memcmp(a.sun_path, want->sun_path, n), what);
}

static int int_opt(int fd, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	getsockopt(fd, SOL_SOCKET, name, &v, &l);
	return v;
}

/* Sends a file (opened here, at offset 5, then closed: only in flight),
 * the write end of pipe pp and socket `sock` over fd. */
static void pass_fds(int fd, int round, int pipe_w, int sock)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/passed%d.txt", dir, round);
	int f = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || write(f, "0123456789abcdef", 16) != 16 || lseek(f, 5, SEEK_SET) != 5)
		die("passed file");
	int fds[3] = {f, pipe_w, sock};
	char control[CMSG_SPACE(sizeof fds)];
	memset(control, 0, sizeof control);
	char text[16];
	int n = snprintf(text, sizeof text, "fds %d", round);
	struct iovec iov = {text, (size_t)n};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof fds);
	memcpy(CMSG_DATA(c), fds, sizeof fds);
	if (sendmsg(fd, &mh, 0) != n)
		die("sendmsg SCM_RIGHTS");
	close(f);
}

static void receive_fds(int fd, int round, int pipe_r, int sock)
{
	int fds[3];
	char control[CMSG_SPACE(sizeof fds)], text[16], want[16];
	struct iovec iov = {text, sizeof text};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
	int wn = snprintf(want, sizeof want, "fds %d", round);
	check(n == wn && !memcmp(text, want, (size_t)n), "SCM_RIGHTS: the message");
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	check(c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof fds), "SCM_RIGHTS: three descriptors");
	memcpy(fds, CMSG_DATA(c), sizeof fds);
	char b[4];
	check(read(fds[0], b, 3) == 3 && !memcmp(b, "567", 3), "SCM_RIGHTS: the file at its offset");
	check(write(fds[0], "X", 1) == 1, "SCM_RIGHTS: the file is writable");
	check(write(fds[1], "z", 1) == 1 && read(pipe_r, b, 1) == 1 && b[0] == 'z', "SCM_RIGHTS: the pipe end");
	struct stat a, s2;
	check(fstat(fds[2], &a) == 0 && fstat(sock, &s2) == 0 && a.st_ino == s2.st_ino, "SCM_RIGHTS: the same socket");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

static void wait_go(int round)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/go%d", dir, round);
	printf("armed %d\n", round);
	fflush(stdout);
	while (access(p, F_OK) != 0)
		pace_ms(20);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	dir = argv[1];
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_un srv, dg, abs_a, out;
	socklen_t srv_len = path_addr(&srv, "srv.sock"), dg_len = path_addr(&dg, "dgram.sock"), abs_len = abstract_addr(&abs_a);
	unlink(srv.sun_path);
	unlink(dg.sun_path);

	int sp[2], qp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, qp) != 0)
		die("socketpair");
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	int L = listener(SOCK_STREAM, &srv, srv_len, 5);
	int c = connect_to(SOCK_STREAM, &srv, srv_len);
	int s = accept(L, 0, 0);
	int sndbuf = 50000;
	setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	int D = socket(AF_UNIX, SOCK_DGRAM, 0), ds = socket(AF_UNIX, SOCK_DGRAM, 0), one = 1;
	if (D < 0 || bind(D, (struct sockaddr *)&dg, dg_len) != 0)
		die("bind dgram");
	setsockopt(D, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
	struct timeval tv = {7, 500000};
	setsockopt(qp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	int AL = listener(SOCK_STREAM, &abs_a, abs_len, 3);
	int ac = connect_to(SOCK_STREAM, &abs_a, abs_len);
	int as = accept(AL, 0, 0);
	int o = -1;
	if (argc > 2) {
		socklen_t ol = sizeof out;
		memset(&out, 0, sizeof out);
		out.sun_family = AF_UNIX;
		snprintf(out.sun_path, sizeof out.sun_path, "%s", argv[2]);
		o = connect_to(SOCK_STREAM, &out, ol);
	}
	static const size_t dlens[] = {10, 0, 30, 1, 200};
	int fp[2], pp[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, fp) != 0 || pipe(pp) != 0)
		die("fd passing");

	for (int r = 1; r <= 2; r++) {
		/* a connection not yet accepted, accepted after the restart */
		int pc = connect_to(SOCK_STREAM, &srv, srv_len);
		/* bytes in flight both ways, partly read */
		send_all(sp[0], r, 1, 0, 1000);
		expect_bytes(sp[1], r, 1, 0, 300, "socketpair, before");
		send_all(sp[1], r, 2, 0, 50);
		expect_bytes(sp[0], r, 2, 0, 20, "socketpair back, before");
		send_all(c, r, 3, 0, 3000);
		expect_bytes(s, r, 3, 0, 1200, "named stream, before");
		send_all(s, r, 4, 0, 500);
		for (size_t i = 0; i < 5; i++) {
			uint8_t b[256];
			fill(b, dlens[i], r, 5, dlens[i]);
			if (sendto(ds, b, dlens[i], 0, (struct sockaddr *)&dg, dg_len) != (ssize_t)dlens[i])
				die("sendto dgram");
		}
		expect_msg(D, r, 5, dlens[0], "datagram, before");
		for (int i = 1; i <= 4; i++)
			send_msg(qp[0], r, 6, (size_t)i * 10);
		expect_msg(qp[1], r, 6, 10, "seqpacket, before");
		send_msg(qp[1], r, 7, 5);
		send_msg(qp[1], r, 7, 6);
		send_all(ac, r, 8, 0, 100);
		pass_fds(fp[0], r, pp[1], ac);
		if (o >= 0 && r == 1) {
			char b[4];
			check(recv(o, b, 4, MSG_WAITALL) == 4 && !memcmp(b, "outs", 4), "outside, before");
		}

		wait_go(r);

		expect_bytes(sp[1], r, 1, 300, 700, "socketpair");
		expect_empty(sp[1], "socketpair");
		expect_bytes(sp[0], r, 2, 20, 30, "socketpair back");
		expect_empty(sp[0], "socketpair back");
		expect_bytes(s, r, 3, 1200, 1800, "named stream");
		expect_empty(s, "named stream");
		expect_bytes(c, r, 4, 0, 500, "named stream back");
		expect_empty(c, "named stream back");
		for (size_t i = 1; i < 5; i++)
			expect_msg(D, r, 5, dlens[i], "datagram");
		expect_empty(D, "datagram");
		for (int i = 2; i <= 4; i++)
			expect_msg(qp[1], r, 6, (size_t)i * 10, "seqpacket");
		expect_empty(qp[1], "seqpacket");
		expect_msg(qp[0], r, 7, 5, "seqpacket back");
		expect_msg(qp[0], r, 7, 6, "seqpacket back");
		expect_empty(qp[0], "seqpacket back");
		expect_bytes(as, r, 8, 0, 100, "abstract");
		expect_empty(as, "abstract");
		receive_fds(fp[1], r, pp[0], ac);
		expect_empty(fp[1], "SCM_RIGHTS");

		/* names, peers, types and options */
		expect_name(L, 0, &srv, srv_len, "listener's name");
		expect_name(s, 0, &srv, srv_len, "accepted socket's name");
		expect_name(c, 1, &srv, srv_len, "client's peer name");
		expect_name(D, 0, &dg, dg_len, "datagram socket's name");
		expect_name(AL, 0, &abs_a, abs_len, "abstract listener's name");
		expect_name(ac, 1, &abs_a, abs_len, "abstract client's peer name");
		check(int_opt(qp[1], SO_TYPE) == SOCK_SEQPACKET && int_opt(D, SO_TYPE) == SOCK_DGRAM, "socket types");
		check(int_opt(L, SO_ACCEPTCONN) == 1 && int_opt(s, SO_ACCEPTCONN) == 0, "listening");
		check(fcntl(sp[0], F_GETFL) & O_NONBLOCK, "non-blocking socketpair end");
		check(!(fcntl(sp[1], F_GETFL) & O_NONBLOCK), "blocking socketpair end");
		check(fcntl(qp[0], F_GETFD) & FD_CLOEXEC, "close-on-exec seqpacket");
		check(!(fcntl(sp[0], F_GETFD) & FD_CLOEXEC), "no close-on-exec socketpair");
		check(int_opt(D, SO_PASSCRED) == 1 && int_opt(s, SO_PASSCRED) == 0, "SO_PASSCRED");
		check(int_opt(c, SO_SNDBUF) == 2 * sndbuf, "SO_SNDBUF");
		struct timeval got;
		socklen_t gl = sizeof got;
		check(getsockopt(qp[0], SOL_SOCKET, SO_RCVTIMEO, &got, &gl) == 0 && got.tv_sec == 7 && got.tv_usec == 500000,
		      "SO_RCVTIMEO");

		/* the connection not yet accepted */
		int pa = accept(L, 0, 0);
		check(pa >= 0, "accept the pending connection");
		check(send(pa, "hi", 2, 0) == 2, "pending: send");
		char h[2];
		check(recv(pc, h, 2, MSG_WAITALL) == 2 && !memcmp(h, "hi", 2), "pending: the client hears the server");
		check(send(pc, "yo", 2, 0) == 2 && recv(pa, h, 2, MSG_WAITALL) == 2 && !memcmp(h, "yo", 2),
		      "pending: the server hears the client");
		close(pa);
		close(pc);

		/* the connection to a server outside the session: its bytes, then gone */
		if (o >= 0) {
			char b[16];
			if (r == 1)
				check(recv(o, b, 6, MSG_WAITALL) == 6 && !memcmp(b, "ide-ok", 6), "outside: the bytes in flight");
			check(recv(o, b, sizeof b, 0) == 0, "outside: EOF after the peer is gone");
			errno = 0;
			check(send(o, "x", 1, 0) < 0 && (errno == EPIPE || errno == ECONNRESET), "outside: writes fail");
		}
		printf("verified %d\n", r);
		fflush(stdout);
	}
	return 0;
}
