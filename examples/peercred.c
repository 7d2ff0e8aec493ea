/*
 * peercred: Unix sockets whose peer credentials (SO_PEERCRED) the program
 * checks, as servers that authenticate local clients do:
 *  - a socketpair made by the parent before it forks (both ends name the
 *    parent);
 *  - a listener of the parent and a connection from its child, which took
 *    user and group 65534 (nobody) before it connected: the parent's end
 *    names the child and 65534, the child's end names the parent as it
 *    was when it listened.
 * Every step both check every end and pass a byte; a wrong answer prints
 * "FAIL ...". Run as root.
 *
 *   peercred [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <poll.h>
#include <grp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int cred_is(long step, const char *what, int fd, pid_t pid, uid_t uid, gid_t gid)
{
	struct ucred c = {0, 0, 0};
	socklen_t len = sizeof c;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) || len != sizeof c || c.pid != pid || c.uid != uid ||
	    c.gid != gid) {
		say("FAIL step %ld: %s: SO_PEERCRED says pid %d uid %u gid %u, not pid %d uid %u gid %u", step, what, (int)c.pid,
		    (unsigned)c.uid, (unsigned)c.gid, (int)pid, (unsigned)uid, (unsigned)gid);
		return 0;
	}
	return 1;
}

/* One byte each way on fd (the other end echoes). */
static int exchange(int fd)
{
	char c = 'x';
	struct pollfd p = {fd, POLLIN, 0};
	return write(fd, &c, 1) == 1 && poll(&p, 1, 5000) == 1 && read(fd, &c, 1) == 1;
}

static __attribute__((noreturn)) void child_main(struct sockaddr_un *a, socklen_t alen, int pair, pid_t parent)
{
	if (setgroups(0, 0) || setgid(65534) || setuid(65534))
		die("becoming nobody");
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)a, alen))
		die("connecting to the parent");
	for (long k = 1;; k++) {
		struct pollfd p[2] = {{fd, POLLIN, 0}, {pair, POLLIN, 0}};
		if (poll(p, 2, -1) < 0)
			continue;
		/* the listener's end names the parent as it listened (root) */
		if (!cred_is(k, "the child's connection", fd, parent, 0, 0) || !cred_is(k, "the child's end of the pair", pair, parent, 0, 0))
			_exit(1);
		for (int i = 0; i < 2; i++) {
			char c;
			if ((p[i].revents & POLLIN) && (read(p[i].fd, &c, 1) != 1 || write(p[i].fd, &c, 1) != 1))
				_exit(2);
		}
	}
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	if (getuid() != 0)
		die("run as root (the child becomes nobody)");
	pid_t me = getpid();
	struct sockaddr_un a = {AF_UNIX, {0}};
	int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "ckrun-peercred-%d", (int)me);
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0), sp[2];
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, alen) || listen(lfd, 4) || socketpair(AF_UNIX, SOCK_STREAM, 0, sp))
		die("the listener and the pair");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(lfd);
		close(sp[0]);
		child_main(&a, alen, sp[1], me);
	}
	close(sp[1]);
	int conn = accept(lfd, 0, 0);
	if (conn < 0)
		die("accept");
	say("connected");
	for (long k = 1; k <= steps; k++) {
		if (!cred_is(k, "the parent's end of the connection", conn, child, 65534, 65534) ||
		    !cred_is(k, "the parent's end of the pair", sp[0], me, 0, 0) || !cred_is(k, "the listener", lfd, me, 0, 0))
			return 1;
		if (!exchange(conn) || !exchange(sp[0])) {
			say("FAIL step %ld: the child did not echo (it checks its own ends: it exits on a wrong answer)", k);
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	kill(child, SIGKILL);
	waitpid(child, 0, 0);
	say("done");
	return 0;
}
