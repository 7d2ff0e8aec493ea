/*
 * sockbuf: buffer sizes a program set, which the kernel then no longer
 * tunes (SO_BUF_LOCK says which are locked), and locks set without a size:
 * a TCP socket with SO_SNDBUF, one with only SO_BUF_LOCK for receiving,
 * one left alone; a UDP socket with SO_RCVBUF beyond net.core.rmem_max
 * (SO_RCVBUFFORCE, as root); a Unix socketpair end with SO_SNDBUF and its
 * peer with no lock. Every step checks each lock and each size that was
 * set; any difference prints "FAIL ...".
 *
 *   sockbuf [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

enum { TCP_SND, TCP_LOCK_ONLY, TCP_PLAIN, UDP_FORCE, UNIX_SND, UNIX_PEER, N };

static int get_int(int fd, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, name, &v, &l))
		die("getsockopt");
	return v;
}

static void set_int(int fd, int name, int v)
{
	if (setsockopt(fd, SOL_SOCKET, name, &v, sizeof v))
		die("setsockopt");
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	int fd[N], sp[2];
	fd[TCP_SND] = socket(AF_INET, SOCK_STREAM, 0);
	fd[TCP_LOCK_ONLY] = socket(AF_INET, SOCK_STREAM, 0);
	fd[TCP_PLAIN] = socket(AF_INET, SOCK_STREAM, 0);
	fd[UDP_FORCE] = socket(AF_INET, SOCK_DGRAM, 0);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp))
		die("socketpair");
	fd[UNIX_SND] = sp[0];
	fd[UNIX_PEER] = sp[1];
	set_int(fd[TCP_SND], SO_SNDBUF, 16384);
	set_int(fd[TCP_LOCK_ONLY], SO_BUF_LOCK, 2 /* SOCK_RCVBUF_LOCK */);
	set_int(fd[UDP_FORCE], SO_RCVBUFFORCE, 4 << 20); /* beyond rmem_max: root only */
	set_int(fd[UNIX_SND], SO_SNDBUF, 50000);
	int lock[N], snd[N], rcv[N];
	for (int i = 0; i < N; i++) {
		lock[i] = get_int(fd[i], SO_BUF_LOCK);
		snd[i] = get_int(fd[i], SO_SNDBUF);
		rcv[i] = get_int(fd[i], SO_RCVBUF);
	}
	if (lock[TCP_SND] != 1 || lock[TCP_LOCK_ONLY] != 2 || lock[TCP_PLAIN] != 0 || lock[UDP_FORCE] != 2 ||
	    lock[UNIX_SND] != 1 || lock[UNIX_PEER] != 0 || rcv[UDP_FORCE] != 8 << 20)
		die("the locks as set");
	say("armed");
	for (long k = 1; k <= steps; k++) {
		for (int i = 0; i < N; i++) {
			int l = get_int(fd[i], SO_BUF_LOCK), s = get_int(fd[i], SO_SNDBUF), r = get_int(fd[i], SO_RCVBUF);
			if (l != lock[i] || ((l & 1) && s != snd[i]) || ((l & 2) && r != rcv[i])) {
				say("FAIL step %ld: socket %d: SO_BUF_LOCK %d, SO_SNDBUF %d, SO_RCVBUF %d; was %d, %d, %d", k, i, l,
				    s, r, lock[i], snd[i], rcv[i]);
				return 1;
			}
		}
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
