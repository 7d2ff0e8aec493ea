/*
 * daemon: detaches itself the classic way and keeps writing.
 *
 * The program ckrun starts forks; the child calls setsid() and forks again;
 * the middle process exits at once and the program that was started exits
 * after reaping it, so the daemon is re-parented (to ckrun, a child
 * subreaper). The daemon's stdio is /dev/null; it writes numbered lines to
 * OUTFILE (an absolute path, since it works in /), one every PACE_MS, and
 * a last line "done N".
 *
 *   daemon OUTFILE [--lines N]
 */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PACE_MS 20

static void write_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_line(int fd, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	ssize_t w;
	do
		w = write(fd, buf, (size_t)n);
	while (w < 0 && errno == EINTR);
	if (w != n)
		exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] != '/') {
		fprintf(stderr, "usage: daemon /ABSOLUTE/OUTFILE [--lines N]\n");
		return 2;
	}
	const char *out = argv[1];
	int lines = 200;
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--lines") && i + 1 < argc)
			lines = atoi(argv[++i]);
	say("daemon: start lines=%d", lines);

	pid_t mid = fork();
	if (mid < 0)
		die("fork");
	if (mid > 0) {
		int st;
		if (waitpid(mid, &st, 0) != mid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("the middle process failed");
		say("daemon: detached");
		return 0;
	}
	if (setsid() < 0)
		_exit(1);
	pid_t d = fork();
	if (d < 0)
		_exit(1);
	if (d > 0)
		_exit(0);

	/* the daemon */
	if (chdir("/") != 0)
		_exit(1);
	umask(022);
	int null = open("/dev/null", O_RDWR);
	if (null < 0)
		_exit(1);
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	if (null > 2)
		close(null);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(1);
	/* the session the middle process made, which outlives it: a restart
	 * must give it back */
	pid_t sid = getsid(0);
	uint64_t h = 0;
	for (int i = 1; i <= lines; i++) {
		h = mix64(h, (uint64_t)i);
		write_line(fd, "line %d %016" PRIx64 " sid=%s\n", i, h, getsid(0) == sid && sid != getpid() ? "kept" : "changed");
		pace_ms(PACE_MS);
	}
	write_line(fd, "done %d %016" PRIx64 "\n", lines, h);
	close(fd);
	return 0;
}
