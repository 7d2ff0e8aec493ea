/*
 * unixidle: Unix sockets that hold no bytes in flight, and a peek offset.
 * An unbound stream socket with SO_PASSSEC, a stream socket bound to an
 * abstract name but neither listening nor connected, and a socketpair
 * whose receiver has SO_PEEK_OFF set: every step checks the offset and
 * peeks one byte, which must be the byte at that offset (a peek with
 * SO_PEEK_OFF reads from the offset and advances it). At the end the bound
 * socket listens, the unbound one connects to it, and a message goes
 * through. Any difference prints "FAIL ...".
 *
 *   unixidle [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FIRST_PEEK 4

static int get_int(int fd, int name)
{
	int v = -2;
	socklen_t l = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, name, &v, &l))
		die("getsockopt");
	return v;
}

static char byte_at(long i)
{
	return (char)('a' + i % 26);
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	int loose = socket(AF_UNIX, SOCK_STREAM, 0), bound = socket(AF_UNIX, SOCK_STREAM, 0), sp[2];
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int alen = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "ckrun-unixidle-%d", getpid()) + 1 +
		   (int)offsetof(struct sockaddr_un, sun_path);
	int one = 1, zero = 0;
	if (loose < 0 || bound < 0 || bind(bound, (struct sockaddr *)&a, (socklen_t)alen) ||
	    setsockopt(loose, SOL_SOCKET, SO_PASSSEC, &one, sizeof one) || socketpair(AF_UNIX, SOCK_STREAM, 0, sp))
		die("the sockets");
	char data[256], c[FIRST_PEEK];
	for (long i = 0; i < (long)sizeof data; i++)
		data[i] = byte_at(i);
	if (write(sp[1], data, sizeof data) != (ssize_t)sizeof data ||
	    setsockopt(sp[0], SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) ||
	    recv(sp[0], c, FIRST_PEEK, MSG_PEEK) != FIRST_PEEK)
		die("the peek");
	say("armed");
	for (long k = 1; k <= steps && k < (long)sizeof data - FIRST_PEEK; k++) {
		long off = FIRST_PEEK + k - 1;
		if (get_int(sp[0], SO_PEEK_OFF) != off) {
			say("FAIL step %ld: SO_PEEK_OFF is %d, not %ld", k, get_int(sp[0], SO_PEEK_OFF), off);
			return 1;
		}
		if (recv(sp[0], c, 1, MSG_PEEK | MSG_DONTWAIT) != 1 || c[0] != byte_at(off)) {
			say("FAIL step %ld: the peek read '%c', not the byte at offset %ld ('%c')", k, c[0], off, byte_at(off));
			return 1;
		}
		if (get_int(loose, SO_PASSSEC) != 1) {
			say("FAIL step %ld: SO_PASSSEC is off", k);
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	/* the queue itself was never consumed */
	if (recv(sp[0], data, sizeof data, MSG_WAITALL) != (ssize_t)sizeof data || data[0] != byte_at(0) ||
	    data[sizeof data - 1] != byte_at(sizeof data - 1)) {
		say("FAIL the socketpair's queue changed");
		return 1;
	}
	int conn;
	if (listen(bound, 1) || connect(loose, (struct sockaddr *)&a, (socklen_t)alen) || (conn = accept(bound, 0, 0)) < 0 ||
	    write(loose, "hi", 2) != 2 || read(conn, c, 2) != 2 || memcmp(c, "hi", 2)) {
		say("FAIL the idle sockets do not connect: %s", strerror(errno));
		return 1;
	}
	say("done");
	return 0;
}
