/*
 * lease: a file the program writes while it holds a write lease on it
 * (F_SETLEASE F_WRLCK), with no handler for the lease-break signal: SIGIO's
 * default kills the program if anyone opens the file. Beside it a pipe,
 * whose ends' flags (F_GETFL, no O_LARGEFILE: pipe2 made them) must stay
 * what they were. Every step checks the lease, the file's content (the
 * count of steps written so far), both ends' flags, then writes the step.
 * A difference prints "FAIL ...".
 *
 *   lease [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

static int content_is(int fd, long want)
{
	char buf[32] = "";
	long got = -1;
	if (pread(fd, buf, sizeof buf - 1, 0) > 0)
		got = atol(buf);
	return got == want;
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	char path[] = "/tmp/ckrun-lease-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || pwrite(fd, "0\n", 2, 0) != 2)
		die("the file");
	signal(SIGIO, SIG_DFL);
	if (fcntl(fd, F_SETLEASE, F_WRLCK))
		die("F_SETLEASE F_WRLCK");
	int p[2];
	if (pipe2(p, O_NONBLOCK))
		die("pipe2");
	int flags0 = fcntl(p[0], F_GETFL), flags1 = fcntl(p[1], F_GETFL);
	say("leased");
	for (long k = 1; k <= steps; k++) {
		if (fcntl(fd, F_GETLEASE) != F_WRLCK) {
			say("FAIL step %ld: the write lease is gone (F_GETLEASE %d)", k, fcntl(fd, F_GETLEASE));
			return 1;
		}
		if (!content_is(fd, k - 1)) {
			say("FAIL step %ld: the file does not say %ld", k, k - 1);
			return 1;
		}
		if (fcntl(p[0], F_GETFL) != flags0 || fcntl(p[1], F_GETFL) != flags1) {
			say("FAIL step %ld: the pipe's flags are 0%o 0%o, not 0%o 0%o", k, fcntl(p[0], F_GETFL),
			    fcntl(p[1], F_GETFL), flags0, flags1);
			return 1;
		}
		char buf[32];
		int n = snprintf(buf, sizeof buf, "%-20ld\n", k);
		if (pwrite(fd, buf, (size_t)n, 0) != n)
			die("writing the file");
		say("step %ld", k);
		pace_ms(50);
	}
	unlink(path);
	say("done");
	return 0;
}
