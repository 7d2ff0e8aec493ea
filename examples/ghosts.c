/*
 * ghosts: files whose names the program removed while it keeps them open
 * (issue 12: zdtm fifo-ghost, unlink_fifo, deleted_dev, deleted_unix_sock,
 * unlink_fstat03). In a directory of its own under /tmp:
 *   - a named FIFO, open read-only and write-only (non-blocking), removed
 *     with 5 bytes in flight, read at the end behind 5 more;
 *   - a device node (/dev/null's numbers, mode 0640), removed: every step
 *     writes to it and reads EOF from it;
 *   - a Unix stream connection accepted from a listener whose socket file
 *     was removed and the listener closed: every step sends a byte each way;
 * and checks at every step that the names stay gone and the descriptors
 * are what they were. A difference prints "FAIL ...".
 *
 *   ghosts [--steps N]     prints "step K" per step, then "done"
 *   ghosts --linked [--steps N]
 *                          instead keeps a file whose name it removed while
 *                          a hard link in the same directory still shows it
 *                          (the descriptor comes back as that name's file)
 *   ghosts --linked-elsewhere [--steps N]
 *                          the same with the link in a subdirectory (a
 *                          checkpoint refuses: ckrun looks for the other
 *                          name only beside the removed one)
 */
#include "common.h"
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[] = "/tmp/ckrun-ghosts-XXXXXX";

static void at(char *out, const char *name) /* out: 64 bytes */
{
	snprintf(out, 64, "%s/%s", dir, name);
}

static void check_gone(long step, const char *name)
{
	char p[64];
	at(p, name);
	if (access(p, F_OK) == 0 || errno != ENOENT)
		say("FAIL step %ld: %s is there again", step, p);
}

static void check_node(long step, const char *what, int fd, mode_t type)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != type || st.st_nlink != 0)
		say("FAIL step %ld: %s: mode %o, nlink %lu", step, what, st.st_mode, (unsigned long)st.st_nlink);
}

static int linked(long steps, int elsewhere)
{
	char a[64], b[64], sub[64];
	at(a, "a");
	at(b, elsewhere ? "sub/b" : "b");
	at(sub, "sub");
	if (elsewhere && mkdir(sub, 0700) != 0)
		die("mkdir");
	int fd = open(a, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || link(a, b) != 0 || unlink(a) != 0)
		die("the linked file");
	for (long k = 1; k <= steps; k++) {
		struct stat sf, sb;
		if (pwrite(fd, &k, sizeof k, 0) != sizeof k || fstat(fd, &sf) != 0 || stat(b, &sb) != 0 || sf.st_ino != sb.st_ino)
			say("FAIL step %ld: the descriptor and the other name are not one file", k);
		say("step %ld", k);
		pace_ms(50);
	}
	unlink(b);
	rmdir(sub);
	rmdir(dir);
	say("done");
	return 0;
}

int main(int argc, char **argv)
{
	long steps = 40;
	int elsewhere = argc > 1 && !strcmp(argv[1], "--linked-elsewhere");
	int link_case = argc > 1 && (!strcmp(argv[1], "--linked") || elsewhere);
	if (argc == 3 + link_case && !strcmp(argv[1 + link_case], "--steps"))
		steps = atol(argv[2 + link_case]);
	if (!mkdtemp(dir))
		die("mkdtemp");
	if (link_case)
		return linked(steps, elsewhere);
	char fifo[64], dev[64], sock[64];
	at(fifo, "fifo");
	at(dev, "null");
	at(sock, "sock");
	if (mkfifo(fifo, 0640) != 0 || mknod(dev, S_IFCHR | 0640, makedev(1, 3)) != 0)
		die("mkfifo/mknod");
	int rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC), wr = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	int nul = open(dev, O_RDWR | O_CLOEXEC);
	if (rd < 0 || wr < 0 || nul < 0 || write(wr, "first", 5) != 5 || unlink(fifo) != 0 || unlink(dev) != 0)
		die("the FIFO and the device node");
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
	    connect(c, (struct sockaddr *)&a, sizeof a) != 0)
		die("the Unix listener");
	int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0 || close(l) != 0 || unlink(sock) != 0)
		die("accept");
	say("set up");
	for (long k = 1; k <= steps; k++) {
		char buf[32];
		check_gone(k, "fifo");
		check_gone(k, "null");
		check_gone(k, "sock");
		check_node(k, "the FIFO", rd, S_IFIFO);
		check_node(k, "the device node", nul, S_IFCHR);
		struct stat st;
		if (fstat(nul, &st) != 0 || st.st_rdev != makedev(1, 3) || (st.st_mode & 07777) != 0640 ||
		    (fcntl(wr, F_GETFL) & O_ACCMODE) != O_WRONLY || (fcntl(rd, F_GETFL) & O_ACCMODE) != O_RDONLY)
			say("FAIL step %ld: the device node is %u:%u mode %o, or the FIFO's flags changed", k, major(st.st_rdev),
			    minor(st.st_rdev), st.st_mode & 07777);
		if (write(nul, "x", 1) != 1 || read(nul, buf, 1) != 0)
			say("FAIL step %ld: the device node is not /dev/null's device", k);
		char in = (char)('a' + k % 26), out = 0;
		if (send(c, &in, 1, 0) != 1 || recv(s, &out, 1, 0) != 1 || out != in || send(s, &in, 1, 0) != 1 ||
		    recv(c, &out, 1, 0) != 1 || out != in)
			say("FAIL step %ld: the Unix connection lost a byte", k);
		struct sockaddr_un me;
		socklen_t ml = sizeof me;
		if (getsockname(s, (struct sockaddr *)&me, &ml) != 0 || strcmp(me.sun_path, sock))
			say("FAIL step %ld: the accepted socket's name is %s", k, me.sun_path);
		say("step %ld", k);
		pace_ms(50);
	}
	/* the 5 bytes in flight since the start, then one step's */
	char buf[16] = "";
	if (write(wr, "again", 5) != 5 || read(rd, buf, sizeof buf) != 10 || memcmp(buf, "firstagain", 10))
		say("FAIL the FIFO's bytes: \"%.10s\"", buf);
	rmdir(dir);
	say("done");
	return 0;
}
