/*
 * unixghost: Unix sockets whose files are no longer at their names, as
 * servers leave them: a listener whose socket file was unlinked and a
 * regular file put at its name, with a connection it accepted before; a
 * datagram socket bound in a directory that was removed since, with a
 * sender connected to it before. Every step checks their names
 * (getsockname), that the listener still listens, that the file at its
 * name is the regular one and the removed directory stays removed, and
 * passes a message over the connection and a datagram to the socket
 * whose directory is gone. A difference prints "FAIL ...".
 *
 *   unixghost [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64], lname[128], sub[128], dname[128];

static void fail_errno(const char *what)
{
	say("FAIL %s: %s", what, strerror(errno));
	exit(1);
}

static struct sockaddr_un addr_of(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	return a;
}

static int bound(int type, const char *path)
{
	struct sockaddr_un a = addr_of(path);
	int s = socket(AF_UNIX, type, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a))
		fail_errno("bind");
	return s;
}

static int connected(int type, const char *path)
{
	struct sockaddr_un a = addr_of(path);
	int s = socket(AF_UNIX, type, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a))
		fail_errno("connect");
	return s;
}

static void expect_name(int s, const char *path)
{
	struct sockaddr_un a;
	socklen_t len = sizeof a;
	if (getsockname(s, (struct sockaddr *)&a, &len) || strcmp(a.sun_path, path)) {
		say("FAIL the socket bound to %s is named \"%s\" now", path, a.sun_path);
		exit(1);
	}
}

static void expect_files(void)
{
	struct stat st;
	char buf[32] = "";
	FILE *f = fopen(lname, "r");
	if (!f || !fgets(buf, sizeof buf, f) || strcmp(buf, "not a socket\n")) {
		say("FAIL %s is not the regular file put at the listener's name", lname);
		exit(1);
	}
	fclose(f);
	if (stat(sub, &st) == 0) {
		say("FAIL the removed directory %s is back", sub);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	snprintf(dir, sizeof dir, "/tmp/ckghost-XXXXXX");
	if (!mkdtemp(dir))
		fail_errno("mkdtemp");
	snprintf(lname, sizeof lname, "%s/listener", dir);
	snprintf(sub, sizeof sub, "%s/sub", dir);
	snprintf(dname, sizeof dname, "%s/sub/dgram", dir);

	int l = bound(SOCK_STREAM, lname);
	if (listen(l, 4))
		fail_errno("listen");
	int c = connected(SOCK_STREAM, lname), s = accept(l, NULL, NULL);
	if (s < 0)
		fail_errno("accept");
	unlink(lname);
	FILE *f = fopen(lname, "w");
	if (!f || fputs("not a socket\n", f) < 0 || fclose(f))
		fail_errno("a regular file at the listener's name");

	if (mkdir(sub, 0700))
		fail_errno("mkdir");
	int d = bound(SOCK_DGRAM, dname), ds = connected(SOCK_DGRAM, dname);
	unlink(dname);
	if (rmdir(sub))
		fail_errno("rmdir");

	for (long k = 1; k <= steps; k++) {
		expect_name(l, lname);
		expect_name(d, dname);
		int on = 0;
		socklen_t ol = sizeof on;
		if (getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) || !on) {
			say("FAIL the listener does not listen");
			return 1;
		}
		expect_files();
		char msg[32], got[32] = "";
		int n = snprintf(msg, sizeof msg, "step %ld", k);
		if (write(c, msg, (size_t)n) != n || read(s, got, sizeof got) != n || memcmp(msg, got, (size_t)n))
			fail_errno("the accepted connection");
		if (send(ds, msg, (size_t)n, 0) != n || recv(d, got, sizeof got, 0) != n || memcmp(msg, got, (size_t)n))
			fail_errno("the datagram to the socket whose directory is gone");
		say("step %ld", k);
		pace_ms(25);
	}
	unlink(lname);
	rmdir(dir);
	say("done");
	return 0;
}
