/*
 * keepalive: a server holding one keep-alive connection from a client
 * outside the session (test/gaps.test.ts): it listens on 127.0.0.1:PORT,
 * accepts one connection and answers each line "LINE" with "N LINE", N
 * counting the lines of the connection from 1; it exits when the client
 * closes. The count lives in the program: a connection restored alive
 * continues it, a new one would start again at 1.
 *
 *   keepalive PORT      prints "listening" once it listens
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: keepalive PORT\n");
		return 2;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1) != 0) {
		perror("keepalive: listen");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	int c = accept(ls, 0, 0);
	if (c < 0) {
		perror("keepalive: accept");
		return 1;
	}
	char line[4096];
	size_t have = 0;
	long n = 0;
	for (;;) {
		ssize_t got = read(c, line + have, sizeof line - have - 1);
		if (got < 0) {
			perror("keepalive: read");
			return 1;
		}
		if (got == 0)
			return 0;
		have += (size_t)got;
		char *nl;
		while ((nl = memchr(line, '\n', have)) != 0) {
			char out[4200];
			size_t len = (size_t)(nl - line);
			int m = snprintf(out, sizeof out, "%ld %.*s\n", ++n, (int)len, line);
			if (write(c, out, (size_t)m) != m) {
				perror("keepalive: write");
				return 1;
			}
			have -= len + 1;
			memmove(line, nl + 1, have);
		}
		if (have == sizeof line - 1)
			have = 0; /* a line too long for the example: dropped */
	}
}
