/*
 * netcount: a TCP server that counts its clients in memory and keeps a data
 * file open (test/hosts.test.ts moves it between two "hosts").
 *
 *   netcount PORT DATA [--steps N]
 *
 * Listens on 0.0.0.0:PORT (so on whatever addresses the host it runs on
 * has); every client gets "count K" (K: clients so far) and is closed. DATA
 * is opened once; every step reads it again through that descriptor and
 * checks it still holds what it held at the start. Prints "step K" per
 * step (20 ms apart), "done" at the end.
 */
#include "common.h"
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		die("usage: netcount PORT DATA [--steps N]");
	long steps = 1000000;
	if (argc == 5 && !strcmp(argv[3], "--steps"))
		steps = atol(argv[4]);
	int data = open(argv[2], O_RDONLY | O_CLOEXEC);
	char first[256] = {0}, now[256];
	if (data < 0 || pread(data, first, sizeof first - 1, 0) <= 0)
		die("reading DATA");
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 16))
		die("listening");
	say("listening");
	long clients = 0;
	for (long k = 1; k <= steps; k++) {
		struct pollfd p = {ls, POLLIN, 0};
		while (poll(&p, 1, 0) == 1) {
			int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				break;
			char line[64];
			int n = snprintf(line, sizeof line, "count %ld\n", ++clients);
			if (write(c, line, (size_t)n) != n)
				say("FAIL writing to a client: %s", strerror(errno));
			close(c);
		}
		memset(now, 0, sizeof now);
		if (pread(data, now, sizeof now - 1, 0) <= 0 || strcmp(now, first)) {
			say("FAIL DATA changed: it held %s, now %s", first, now);
			return 1;
		}
		say("step %ld", k);
		pace_ms(20);
	}
	say("done");
	return 0;
}
