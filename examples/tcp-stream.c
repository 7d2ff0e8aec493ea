/* A parent and a child stream bytes to each other over one localhost TCP
 * connection, both ways at once, as fast as the other reads: each writes
 * until its send buffer is full and reads only a little per step, so at any
 * moment megabytes are in flight in both directions (in the receiver's
 * queue, sent but not acknowledged, not sent yet).
 *
 *   tcp-stream --steps N
 *
 * Byte i of each direction's stream is a function of i, and the receiver
 * checks every byte it reads: one lost, repeated or out of order prints
 * FAIL and exits 1. At the end the parent tells the child through a pipe
 * to stop writing and shuts its side down; the child reads everything,
 * shuts its side down and tells through another pipe how many bytes it
 * wrote and read: the counts must match the parent's, exactly. The parent prints "step N", then
 * "done". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"

#define CHUNK (64 * 1024)
#define READ_PER_STEP (1024 * 1024)
#define BUF_SIZE (4 * 1024 * 1024)

static const char *who = "parent";

static void fail(const char *what)
{
	printf("FAIL %s %s: %s\n", who, what, strerror(errno));
	fflush(stdout);
	exit(1);
}

/* Byte pos of the stream of direction dir. */
static uint8_t stream_byte(int dir, uint64_t pos)
{
	return (uint8_t)(((pos ^ ((uint64_t)dir << 62)) * 0x9E3779B97F4A7C15ULL) >> 56);
}

struct end {
	int fd, out_dir;
	uint64_t sent, got;
	int eof, shut;
};

/* Writes until the send buffer is full. */
static void write_some(struct end *e)
{
	static uint8_t buf[CHUNK];
	for (;;) {
		for (size_t i = 0; i < CHUNK; i++)
			buf[i] = stream_byte(e->out_dir, e->sent + i);
		ssize_t k = send(e->fd, buf, CHUNK, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0 && errno == EAGAIN)
			return;
		if (k <= 0)
			fail("write");
		e->sent += (uint64_t)k;
	}
}

/* Reads up to limit bytes (0: until the queue is empty), checking each. */
static void read_some(struct end *e, uint64_t limit)
{
	static uint8_t buf[CHUNK];
	uint64_t done = 0;
	while (!e->eof && (!limit || done < limit)) {
		ssize_t k = recv(e->fd, buf, CHUNK, MSG_DONTWAIT);
		if (k < 0 && errno == EAGAIN)
			return;
		if (k < 0)
			fail("read");
		if (k == 0) {
			e->eof = 1;
			return;
		}
		for (ssize_t i = 0; i < k; i++)
			if (buf[i] != stream_byte(!e->out_dir, e->got + (uint64_t)i)) {
				printf("FAIL %s: byte %llu of the stream is wrong (%u, expected %u)\n", who,
				       (unsigned long long)(e->got + (uint64_t)i), buf[i],
				       stream_byte(!e->out_dir, e->got + (uint64_t)i));
				fflush(stdout);
				exit(1);
			}
		e->got += (uint64_t)k;
		done += (uint64_t)k;
	}
}

static void wait_io(int fd, short events)
{
	struct pollfd p = {fd, events, 0};
	poll(&p, 1, 20);
}

static void big_buffers(int fd)
{
	int size = BUF_SIZE;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

/* The child: streams until the parent's EOF, then reads what is left,
 * shuts down and reports its counts. */
static int child(int fd, int stop, int report)
{
	struct end e = {fd, 1, 0, 0, 0, 0};
	char c;
	who = "child";
	fcntl(stop, F_SETFL, O_NONBLOCK);
	while (read(stop, &c, 1) != 1) {
		write_some(&e);
		read_some(&e, READ_PER_STEP);
		pace_ms(10);
	}
	while (!e.eof) {
		wait_io(fd, POLLIN);
		read_some(&e, 0);
	}
	if (shutdown(fd, SHUT_WR) != 0)
		fail("shutdown");
	uint64_t counts[2] = {e.sent, e.got};
	if (write(report, counts, sizeof counts) != sizeof counts)
		fail("report");
	return 0;
}

int main(int argc, char **argv)
{
	long steps = argc > 2 && !strcmp(argv[1], "--steps") ? atol(argv[2]) : 80;
	setvbuf(stdout, 0, _IOLBF, 0);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), report[2], stop[2];
	struct sockaddr_in a = {0};
	socklen_t alen = sizeof a;
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	big_buffers(lfd);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0 || pipe(report) != 0 || pipe(stop) != 0)
		fail("listen");
	pid_t pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		close(lfd);
		close(report[0]);
		close(stop[1]);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		big_buffers(fd);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
			fail("connect");
		return child(fd, stop[0], report[1]);
	}
	close(report[1]);
	close(stop[0]);
	int fd = accept(lfd, 0, 0);
	if (fd < 0)
		fail("accept");
	close(lfd);
	struct end e = {fd, 0, 0, 0, 0, 0};
	for (long step = 0; step < steps; step++) {
		write_some(&e);
		read_some(&e, READ_PER_STEP);
		printf("step %ld\n", step);
		pace_ms(10);
	}
	/* the end: everything in flight is read on both sides */
	if (write(stop[1], "x", 1) != 1 || shutdown(fd, SHUT_WR) != 0)
		fail("shutdown");
	while (!e.eof) {
		wait_io(fd, POLLIN);
		read_some(&e, 0);
	}
	uint64_t counts[2];
	if (read(report[0], counts, sizeof counts) != sizeof counts)
		fail("read the child's counts");
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL the child did not end well (status %#x)\n", status);
		return 1;
	}
	if (counts[0] != e.got || counts[1] != e.sent) {
		printf("FAIL the child wrote %llu bytes and the parent read %llu; the parent wrote %llu and the child read %llu\n",
		       (unsigned long long)counts[0], (unsigned long long)e.got, (unsigned long long)e.sent,
		       (unsigned long long)counts[1]);
		return 1;
	}
	printf("done\n");
	return 0;
}
