/*
 * Pipes and named FIFOs across a checkpoint (test/files-kinds.test.ts).
 *
 *   fifos DIR   one pipe with two open file descriptions of each end (one
 *               blocking, one O_NONBLOCK: they must stay separate), and
 *               two named FIFOs in DIR, opened by path (one as a reader
 *               and a writer, one O_RDWR), each with bytes in flight.
 *               It counts steps, checking at every step each
 *               descriptor's flags and that the descriptions are still
 *               separate; when DIR/release exists it reads the bytes in
 *               flight (they must be exactly those written before any
 *               checkpoint), sends more through each and reads them back.
 *               A child forked after the set-up shares every description
 *               (a family restores them once) and checks the same flags.
 */
#include "common.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char PIPE_BYTES[] = "bytes in flight in the pipe";
static const char FIFO_BYTES[] = "bytes in flight in fifo f";
static const char RDWR_BYTES[] = "bytes in flight in fifo g";

static int reopen(int fd, int flags)
{
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	return open(proc, flags | O_CLOEXEC);
}

static int fifo_at(const char *dir, const char *name, int flags)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (mkfifo(path, 0600) != 0 && errno != EEXIST)
		say("error: mkfifo %s: %s", path, strerror(errno)), exit(2);
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		say("error: open %s: %s", path, strerror(errno)), exit(2);
	return fd;
}

static int separate(int a, int b)
{
	pid_t me = getpid();
	return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) != 0;
}

static void check_flags(long step, const char *what, int fd, int want)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & (O_ACCMODE | O_NONBLOCK)) != want)
		say("FAIL: step %ld: %s (fd %d) has flags %#x, expected %#x", step, what, fd, fl, want);
}

/* Reads exactly want from fd (non-blocking), then checks nothing more is there. */
static void expect_bytes(const char *what, int fd, const char *want)
{
	char buf[256];
	size_t n = strlen(want);
	ssize_t r = read(fd, buf, sizeof buf);
	if (r != (ssize_t)n || memcmp(buf, want, n))
		say("FAIL: %s: read %zd bytes \"%.*s\", expected \"%s\"", what, r, r > 0 ? (int)r : 0, buf, want);
	else
		say("%s: %zu bytes in flight kept", what, n);
}

static void send_and_back(const char *what, int wfd, int rfd)
{
	char buf[64];
	if (write(wfd, "more", 4) != 4 || read(rfd, buf, sizeof buf) != 4 || memcmp(buf, "more", 4))
		say("FAIL: %s: new bytes do not pass: %s", what, strerror(errno));
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fifos DIR\n");
		return 2;
	}
	const char *dir = argv[1];
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return 2;
	int r2 = reopen(p[0], O_RDONLY | O_NONBLOCK), w2 = reopen(p[1], O_WRONLY | O_NONBLOCK);
	int fr = fifo_at(dir, "f", O_RDONLY | O_NONBLOCK);
	int fw = fifo_at(dir, "f", O_WRONLY);
	int g = fifo_at(dir, "g", O_RDWR | O_NONBLOCK);
	if (r2 < 0 || w2 < 0 || write(p[1], PIPE_BYTES, strlen(PIPE_BYTES)) < 0 || write(fw, FIFO_BYTES, strlen(FIFO_BYTES)) < 0 ||
	    write(g, RDWR_BYTES, strlen(RDWR_BYTES)) < 0) {
		say("error: setting up: %s", strerror(errno));
		return 2;
	}
	say("fifos: set up");
	char release[4096];
	snprintf(release, sizeof release, "%s/release", dir);
	pid_t child = fork();
	if (child == 0) {
		while (access(release, F_OK) != 0) {
			pace_ms(30);
			check_flags(0, "child: pipe read end, second description", r2, O_RDONLY | O_NONBLOCK);
			check_flags(0, "child: fifo f writer", fw, O_WRONLY);
		}
		_exit(0);
	}
	for (long step = 1;; step++) {
		pace_ms(30);
		check_flags(step, "pipe read end", p[0], O_RDONLY);
		check_flags(step, "pipe read end, second description", r2, O_RDONLY | O_NONBLOCK);
		check_flags(step, "pipe write end", p[1], O_WRONLY);
		check_flags(step, "pipe write end, second description", w2, O_WRONLY | O_NONBLOCK);
		check_flags(step, "fifo f reader", fr, O_RDONLY | O_NONBLOCK);
		check_flags(step, "fifo f writer", fw, O_WRONLY);
		check_flags(step, "fifo g", g, O_RDWR | O_NONBLOCK);
		if (!separate(p[0], r2) || !separate(p[1], w2))
			say("FAIL: step %ld: two open file descriptions of a pipe end became one", step);
		say("step %ld", step);
		if (access(release, F_OK) == 0)
			break;
	}
	expect_bytes("pipe", r2, PIPE_BYTES);
	expect_bytes("fifo f", fr, FIFO_BYTES);
	expect_bytes("fifo g", g, RDWR_BYTES);
	send_and_back("pipe", w2, r2);
	send_and_back("fifo f", fw, fr);
	send_and_back("fifo g", g, g);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		say("FAIL: the child ended with status %#x", st);
	say("fifos: done");
	return 0;
}
