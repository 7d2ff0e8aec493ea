/*
 * Two processes connected through Unix socketpairs, exchanging numbered
 * messages across checkpoints.
 *
 *   unixpair [COUNT]
 *
 * The parent keeps WINDOW numbered pings in flight on a stream socketpair;
 * the child answers each with a pong on the same connection and a note on
 * a seqpacket pair, which the parent reads lagging behind. Both sides check
 * that every number arrives exactly once and in order, so a lost or
 * duplicated byte or message after a restart prints FAIL. The parent prints
 * "got N" every 100 pongs and "done N" at the end.
 */
#include "common.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define WINDOW 8
#define LAG 5

static void fail(const char *what, long want, long got)
{
	printf("FAIL: %s: expected %ld, got %ld\n", what, want, got);
	fflush(stdout);
	exit(1);
}

/* One line "tag N\n" from a stream, read byte by byte (no buffering that
 * could hide bytes from the checkpoint's view). */
static long read_number(int fd, char tag)
{
	char line[64];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, line + n, 1);
		if (r <= 0)
			fail("the stream ended early", 1, r);
		if (line[n] == '\n')
			break;
		if (++n == sizeof line - 1)
			fail("a line too long", 63, (long)n);
	}
	line[n] = 0;
	if (line[0] != tag || line[1] != ' ')
		fail("a line of the wrong kind", tag, line[0]);
	return strtol(line + 2, 0, 10);
}

static void write_number(int fd, char tag, long i)
{
	char line[64];
	int n = snprintf(line, sizeof line, "%c %ld\n", tag, i);
	if (write(fd, line, (size_t)n) != n)
		die("write");
}

static void child(int s, int q, long count)
{
	for (long i = 1; i <= count; i++) {
		long got = read_number(s, 'p');
		if (got != i)
			fail("child: ping", i, got);
		write_number(s, 'o', i);
		char note[32];
		int n = snprintf(note, sizeof note, "note %ld", i);
		if (send(q, note, (size_t)n, 0) != n)
			die("send note");
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? strtol(argv[1], 0, 10) : 2000;
	int sp[2], qp[2];
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0 || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, qp) != 0)
		die("socketpair");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(sp[0]);
		close(qp[0]);
		child(sp[1], qp[1], count);
	}
	close(sp[1]);
	close(qp[1]);
	long sent = 0, notes = 0;
	for (long i = 1; i <= count; i++) {
		while (sent < count && sent < i + WINDOW - 1)
			write_number(sp[0], 'p', ++sent);
		long got = read_number(sp[0], 'o');
		if (got != i)
			fail("parent: pong", i, got);
		while (notes < i - LAG) {
			char note[32];
			ssize_t n = recv(qp[0], note, sizeof note - 1, 0);
			if (n <= 0)
				fail("parent: the notes ended early", notes + 1, n);
			note[n] = 0;
			if (strtol(note + 5, 0, 10) != ++notes)
				fail("parent: note", notes, strtol(note + 5, 0, 10));
		}
		if (i % 100 == 0) {
			printf("got %ld\n", i);
			fflush(stdout);
		}
		pace_ms(1);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("the child's status", 0, st);
	printf("done %ld\n", count);
	return 0;
}
