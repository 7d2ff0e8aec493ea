/*
 * tcpfin: a TCP connection inside the process whose client wrote until
 * the server's window was full and then shut its side down
 * (shutdown(SHUT_WR)): its FIN waits behind bytes not sent yet (FIN_WAIT1).
 * The server reads nothing until the last step, then everything up to
 * EOF, and checks the count and every byte (byte i is i * 7 mod 251).
 * A difference prints "FAIL ...". Reading unsent bytes needs root (TCP_REPAIR).
 *
 *   tcpfin [--steps N] [--as-nobody]     prints "step K" per step, then "done"
 *
 * --as-nobody: the program gives up root first (user and group nobody), as
 * a server's worker does; ckrun, root, then reads the unsent bytes for it.
 */
#include "common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned char byte_at(long i)
{
	return (unsigned char)(i * 7 % 251);
}

int main(int argc, char **argv)
{
	long steps = 30;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atol(argv[++i]);
		else if (!strcmp(argv[i], "--as-nobody") &&
			 (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)))
			die("giving up root");
	}
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int small = 16384;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	/* small buffers: the window fills after a few hundred KiB at most */
	setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len))
		die("listener");
	int c = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a))
		die("connect");
	int s = accept(l, NULL, NULL);
	if (s < 0)
		die("accept");
	fcntl(c, F_SETFL, O_NONBLOCK);
	long sent = 0;
	unsigned char buf[4096];
	for (;;) {
		for (size_t i = 0; i < sizeof buf; i++)
			buf[i] = byte_at(sent + (long)i);
		ssize_t n = write(c, buf, sizeof buf);
		if (n < 0 && errno == EAGAIN) {
			pace_ms(100); /* the window may open once more */
			n = write(c, buf, sizeof buf);
			if (n < 0 && errno == EAGAIN)
				break;
		}
		if (n <= 0)
			die("write");
		sent += n;
	}
	if (shutdown(c, SHUT_WR))
		die("shutdown");
	say("sent and shut down");
	for (long k = 1; k <= steps; k++) {
		say("step %ld", k);
		pace_ms(50);
	}
	long got = 0;
	for (;;) {
		ssize_t n = read(s, buf, sizeof buf);
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != byte_at(got + i)) {
				say("FAIL byte %ld is %u, not %u", got + (long)i, buf[i], byte_at(got + i));
				return 1;
			}
		got += n;
	}
	if (got != sent) {
		say("FAIL the server read %ld bytes up to EOF, the client sent %ld", got, sent);
		return 1;
	}
	say("done");
	return 0;
}
