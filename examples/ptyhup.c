/*
 * ptyhup: a program left holding a terminal that was hung up, as a job
 * started in an ssh login holds it after the login ended: it makes a
 * pseudo-terminal, opens its slave twice (one read-write and
 * non-blocking, one write-only), then closes the master, which hangs the
 * slave up (zdtm pty04). A forked child shares the first description.
 *
 * Every step checks each slave descriptor as the kernel shows a hung-up
 * terminal: read gives end of file, write and TCGETS fail with EIO, poll
 * says POLLHUP, the link names "/dev/pts/N (deleted)", and the flags are
 * those it was opened with. A difference prints "FAIL ...".
 *
 *   ptyhup [--steps N]    prints "step K" per step, then "done"
 */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int check(int fd, int flags, const char *who)
{
	char buf[16], path[64], link[256];
	struct termios t;
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
	ssize_t r = read(fd, buf, sizeof buf);
	if ((flags & O_ACCMODE) != O_WRONLY && r != 0) {
		say("FAIL %s: read gave %zd (errno %d), not end of file", who, r, errno);
		return 0;
	}
	if (write(fd, "x", 1) != -1 || errno != EIO) {
		say("FAIL %s: a write did not fail with EIO (errno %d)", who, errno);
		return 0;
	}
	if (tcgetattr(fd, &t) == 0 || errno != EIO) {
		say("FAIL %s: TCGETS did not fail with EIO (errno %d)", who, errno);
		return 0;
	}
	if (poll(&p, 1, 0) != 1 || !(p.revents & POLLHUP)) {
		say("FAIL %s: poll says %#x, not POLLHUP", who, p.revents);
		return 0;
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	if (strncmp(link, "/dev/pts/", 9) || !strstr(link, " (deleted)")) {
		say("FAIL %s: it links to '%s'", who, link);
		return 0;
	}
	int now = fcntl(fd, F_GETFL);
	if ((now & (O_ACCMODE | O_NONBLOCK)) != flags) {
		say("FAIL %s: its flags are %#x, not %#x", who, now & (O_ACCMODE | O_NONBLOCK), flags);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	long steps = steps_option(argc, argv, 60);
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
		die("posix_openpt");
	const char *name = ptsname(master);
	int rw = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK);
	int wo = open(name, O_WRONLY | O_NOCTTY);
	if (rw < 0 || wo < 0)
		die("open the slave");
	close(master);
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(wo);
		for (;;) {
			if (!check(rw, O_RDWR | O_NONBLOCK, "the child's slave"))
				_exit(1);
			pace_ms(50);
		}
	}
	say("hung up");
	for (long k = 1; k <= steps; k++) {
		if (!check(rw, O_RDWR | O_NONBLOCK, "the read-write slave") || !check(wo, O_WRONLY, "the write-only slave"))
			return 1;
		int st;
		if (waitpid(child, &st, WNOHANG) != 0) {
			say("FAIL the child ended (it found its slave wrong)");
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	say("done");
	return 0;
}
