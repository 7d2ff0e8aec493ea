/* Unix datagrams and what sits in Unix socket queues across
 * checkpoint/restart (test/sockets-unix-dgram.test.ts).
 *
 *   unix-dgram DIR STEPS
 *
 * A datagram server bound to DIR/srv (mode 0604; owner 1:1 when run as
 * root) keeps about nine datagrams queued, each with its sender: one bound
 * to the path DIR/c1, one to an abstract name, one unnamed and connected
 * to it; a datagram socketpair keeps two queued; a socket bound to DIR/c4
 * is connected to a peer that went away; an unconnected seqpacket socket;
 * a seqpacket and a stream end whose peers closed with bytes unread (the
 * kernel holds a reset for them); a pipe with bytes whose read end is in
 * flight (SCM_RIGHTS) and held by no process. Every step checks what
 * arrives and from whom, and the socket file's mode and owner; the end
 * checks the rest. Anything wrong prints ERROR and exits 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "common.h"

static void fail(const char *what)
{
	printf("ERROR %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static void wrong(const char *fmt, const char *a, const char *b)
{
	printf("ERROR ");
	printf(fmt, a, b);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static socklen_t addr_of(struct sockaddr_un *a, const char *name, int abstract)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	size_t n = strlen(name);
	memcpy(a->sun_path + (abstract ? 1 : 0), name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static int bound(int type, const char *name, int abstract)
{
	struct sockaddr_un a;
	socklen_t len = addr_of(&a, name, abstract);
	int fd = socket(AF_UNIX, type, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) != 0)
		fail(name);
	return fd;
}

/* The sender's name as text: a path, @abstract, or "-" for unnamed. */
static void sender_text(const struct sockaddr_un *a, socklen_t len, char *out, size_t cap)
{
	size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
	if (!n) {
		snprintf(out, cap, "-");
	} else if (a->sun_path[0] == 0) {
		snprintf(out, cap, "@%.*s", (int)(n - 1), a->sun_path + 1);
	} else {
		snprintf(out, cap, "%.*s", (int)strnlen(a->sun_path, n), a->sun_path);
	}
}

static void expect_from(int srv, const char *want, const char *want_from)
{
	char buf[128], from[160];
	struct sockaddr_un a;
	socklen_t len = sizeof a;
	ssize_t n = recvfrom(srv, buf, sizeof buf - 1, MSG_DONTWAIT, (struct sockaddr *)&a, &len);
	if (n < 0)
		fail("recvfrom srv");
	buf[n] = 0;
	if (strcmp(buf, want))
		wrong("srv expected \"%s\", got \"%s\"", want, buf);
	sender_text(&a, len, from, sizeof from);
	if (strcmp(from, want_from))
		wrong("the datagram came from \"%s\", not \"%s\"", from, want_from);
}

static void expect_recv(int fd, const char *want, const char *what)
{
	char buf[128];
	ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (n < 0)
		fail(what);
	buf[n] = 0;
	if (strcmp(buf, want))
		wrong("expected \"%s\", got \"%s\"", want, buf);
}

static void send_text(int fd, const struct sockaddr_un *to, socklen_t tolen, const char *fmt, int i)
{
	char buf[64];
	int n = snprintf(buf, sizeof buf, fmt, i);
	if (sendto(fd, buf, (size_t)n, 0, (const struct sockaddr *)to, to ? tolen : 0) != n)
		fail("send");
}

static void check_file(const char *path, unsigned uid)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		fail(path);
	if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0604 || st.st_uid != uid || st.st_gid != uid) {
		char got[64];
		snprintf(got, sizeof got, "mode %04o owner %u:%u", st.st_mode & 07777, st.st_uid, st.st_gid);
		wrong("the socket file %s is now %s", path, got);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *dir = argv[1];
	int steps = atoi(argv[2]);
	setvbuf(stdout, 0, _IOLBF, 0);
	char srv_path[100], c1_path[100], c4_path[100], gone_path[100], abs_name[64];
	snprintf(srv_path, sizeof srv_path, "%s/srv", dir);
	snprintf(c1_path, sizeof c1_path, "%s/c1", dir);
	snprintf(c4_path, sizeof c4_path, "%s/c4", dir);
	snprintf(gone_path, sizeof gone_path, "%s/gone", dir);
	snprintf(abs_name, sizeof abs_name, "ckrun-udg-%d", (int)getpid());
	char abs_text[80];
	snprintf(abs_text, sizeof abs_text, "@%s", abs_name);

	int srv = bound(SOCK_DGRAM, srv_path, 0);
	unsigned owner = geteuid() == 0 ? 1 : geteuid();
	if (chmod(srv_path, 0604) != 0 || (geteuid() == 0 && lchown(srv_path, owner, owner) != 0))
		fail("chmod/chown srv");
	struct sockaddr_un srv_addr;
	socklen_t srv_len = addr_of(&srv_addr, srv_path, 0);
	int c1 = bound(SOCK_DGRAM, c1_path, 0);
	int c2 = bound(SOCK_DGRAM, abs_name, 1);
	int c3 = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (c3 < 0 || connect(c3, (struct sockaddr *)&srv_addr, srv_len) != 0)
		fail("connect c3");
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, pair) != 0)
		fail("socketpair dgram");

	/* c4: connected to a socket that then went away */
	int c4 = bound(SOCK_DGRAM, c4_path, 0);
	int gone = bound(SOCK_DGRAM, gone_path, 0);
	struct sockaddr_un gone_addr;
	socklen_t gone_len = addr_of(&gone_addr, gone_path, 0);
	if (connect(c4, (struct sockaddr *)&gone_addr, gone_len) != 0)
		fail("connect c4");
	close(gone);
	unlink(gone_path);

	int unconnected = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (unconnected < 0)
		fail("seqpacket");

	/* a seqpacket and a stream end whose peers closed with a byte unread */
	int rs[2], rt[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, rs) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, rt) != 0)
		fail("socketpair reset");
	if (send(rs[0], "x", 1, 0) != 1 || send(rt[0], "x", 1, 0) != 1 || send(rt[1], "last words", 10, 0) != 10)
		fail("send reset");
	close(rs[1]);
	close(rt[1]);

	/* a pipe with bytes, its read end in flight, held by no process */
	int fdp[2], pp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fdp) != 0 || pipe(pp) != 0)
		fail("socketpair/pipe");
	if (write(pp[1], "pipe bytes", 10) != 10)
		fail("write pipe");
	{
		char control[CMSG_SPACE(sizeof(int))] __attribute__((aligned(8)));
		struct iovec iov = {"P", 1};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pp[0], sizeof(int));
		if (sendmsg(fdp[0], &mh, 0) != 1)
			fail("sendmsg pipe");
	}
	close(pp[0]);
	close(pp[1]);
	printf("ready\n");

	char want[64];
	for (int i = 0; i < steps; i++) {
		check_file(srv_path, owner);
		send_text(c1, &srv_addr, srv_len, "c1 %d", i);
		send_text(c2, &srv_addr, srv_len, "c2 %d", i);
		send_text(c3, 0, 0, "c3 %d", i);
		send_text(pair[0], 0, 0, "pair %d", i);
		if (i >= 2) {
			snprintf(want, sizeof want, "c1 %d", i - 2);
			expect_from(srv, want, c1_path);
			snprintf(want, sizeof want, "c2 %d", i - 2);
			expect_from(srv, want, abs_text);
			snprintf(want, sizeof want, "c3 %d", i - 2);
			expect_from(srv, want, "-");
			snprintf(want, sizeof want, "pair %d", i - 2);
			expect_recv(pair[1], want, "recv pair");
		}
		printf("step %d\n", i);
		pace_ms(20);
	}
	for (int i = steps - 2; i < steps; i++) {
		snprintf(want, sizeof want, "c1 %d", i);
		expect_from(srv, want, c1_path);
		snprintf(want, sizeof want, "c2 %d", i);
		expect_from(srv, want, abs_text);
		snprintf(want, sizeof want, "c3 %d", i);
		expect_from(srv, want, "-");
		snprintf(want, sizeof want, "pair %d", i);
		expect_recv(pair[1], want, "recv pair");
	}

	/* the rest, once */
	char buf[64];
	if (recv(rs[0], buf, sizeof buf, MSG_DONTWAIT) != -1 || errno != ECONNRESET)
		wrong("the seqpacket end whose peer closed does not report the reset%s%s", "", "");
	if (recv(rs[0], buf, sizeof buf, MSG_DONTWAIT) != 0)
		wrong("the seqpacket end whose peer closed does not end%s%s", "", "");
	expect_recv(rt[0], "last words", "recv stream");
	if (recv(rt[0], buf, sizeof buf, MSG_DONTWAIT) != -1 || errno != ECONNRESET)
		wrong("the stream end whose peer closed does not report the reset%s%s", "", "");
	if (recv(rt[0], buf, sizeof buf, MSG_DONTWAIT) != 0)
		wrong("the stream end whose peer closed does not end%s%s", "", "");
	{
		char control[CMSG_SPACE(sizeof(int))] __attribute__((aligned(8)));
		struct iovec iov = {buf, 1};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
		if (recvmsg(fdp[1], &mh, 0) != 1 || buf[0] != 'P')
			fail("recvmsg pipe");
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int rfd;
		if (!c || c->cmsg_type != SCM_RIGHTS)
			wrong("the message in flight lost its pipe%s%s", "", "");
		memcpy(&rfd, CMSG_DATA(c), sizeof rfd);
		ssize_t n = read(rfd, buf, sizeof buf - 1);
		if (n != 10 || memcmp(buf, "pipe bytes", 10) || read(rfd, buf, sizeof buf) != 0)
			wrong("the pipe in flight does not hold its bytes, then EOF%s%s", "", "");
	}
	struct sockaddr_un a;
	socklen_t len = sizeof a;
	if (getsockname(c4, (struct sockaddr *)&a, &len) != 0 || strcmp(a.sun_path, c4_path))
		wrong("c4 lost its name %s%s", c4_path, "");
	if (send(c4, "x", 1, MSG_DONTWAIT) != -1 || errno != ECONNREFUSED)
		wrong("c4, whose peer went away, can send%s%s", "", "");
	int type = 0;
	len = sizeof type;
	if (getsockopt(unconnected, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET)
		wrong("the unconnected seqpacket socket changed%s%s", "", "");
	printf("done\n");
	return 0;
}
