/* A server that is slow to accept (test/sockets-unaccepted.test.ts): a
 * child connects to the parent's Unix listener at DIR/l, sends "req N" at
 * once and waits for "ok N"; the parent accepts, answers and prints
 * "step N".
 *
 *   unaccepted DIR STEPS
 *
 * When the file DIR/hold appears, the parent removes it and lets the next
 * connection wait, with its request in it, for two seconds before it
 * accepts (it prints "holding" once the request is there): a checkpoint
 * then meets a connection not yet accepted that holds bytes. Every number
 * is checked: ERROR and exit 1 when one is lost or repeated. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"

static void fail(const char *what)
{
	printf("ERROR %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static void read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		char c;
		ssize_t k = read(fd, &c, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			errno = k == 0 ? EPIPE : errno;
			fail("read");
		}
		if (c == '\n' || n + 1 == cap)
			break;
		buf[n++] = c;
	}
	buf[n] = 0;
}

static void expect(int fd, const char *word, int i)
{
	char got[64], want[64];
	read_line(fd, got, sizeof got);
	snprintf(want, sizeof want, "%s %d", word, i);
	if (strcmp(got, want)) {
		printf("ERROR expected \"%s\", got \"%s\"\n", want, got);
		exit(1);
	}
}

static void send_line(int fd, const char *word, int i)
{
	char buf[64];
	int n = snprintf(buf, sizeof buf, "%s %d\n", word, i);
	if (write(fd, buf, (size_t)n) != n)
		fail("write");
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int steps = atoi(argv[2]);
	setvbuf(stdout, 0, _IOLBF, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char hold[108];
	snprintf(a.sun_path, sizeof a.sun_path, "%s/l", argv[1]);
	snprintf(hold, sizeof hold, "%s/hold", argv[1]);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 8) != 0)
		fail("listen");
	pid_t child = fork();
	if (child < 0)
		fail("fork");
	if (child == 0) {
		close(l);
		for (int i = 0; i < steps; i++) {
			int c = socket(AF_UNIX, SOCK_STREAM, 0);
			if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0)
				fail("connect");
			send_line(c, "req", i);
			expect(c, "ok", i);
			close(c);
			pace_ms(10);
		}
		return 0;
	}
	for (int i = 0; i < steps; i++) {
		if (unlink(hold) == 0) {
			struct pollfd p = {l, POLLIN, 0};
			while (poll(&p, 1, -1) < 0)
				;
			pace_ms(50); /* the request is in the connection by now */
			printf("holding\n");
			pace_ms(2000);
		}
		int s = accept(l, 0, 0);
		if (s < 0)
			fail("accept");
		expect(s, "req", i);
		send_line(s, "ok", i);
		close(s);
		printf("step %d\n", i);
	}
	int status;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status)) {
		printf("ERROR the client did not end well\n");
		return 1;
	}
	printf("done\n");
	return 0;
}
