/*
 * fdnumbers: a program that uses descriptor numbers where ckrun keeps its
 * own (its connection at 63, its change tracking at 62 or above). It takes
 * number 63 for the write end of a pipe with dup2, holds every number from
 * 3 to 62 (the pipe's read end, then /dev/null), and each step N:
 *  - writes "parent N" into the pipe through 63 and reads it back;
 *  - dup2()s /dev/null onto every number from 64 to 128+N and closes them
 *    again: whatever of ckrun's sits there must move out of the way, and the
 *    program's own descriptors must be exactly what it made them;
 *  - forks a child that closes every descriptor from 3 up (closefrom),
 *    opens 200 and closes them one by one, each close checked: the numbers
 *    its parent's connection had are the child's to use;
 *  - vforks a child that dup2()s /dev/null onto the same numbers and two
 *    more (where the parent's loop moved ckrun's descriptors) in its own
 *    table (its parent's state, which it shares, must not change) and execs
 *    this program again to write "exec N" into descriptor 63 (dash cannot
 *    name a descriptor above 9); the line comes back through the pipe.
 * One line per step; two runs print the same lines.
 *
 *   fdnumbers [--steps N]
 *   fdnumbers --write-63 TEXT      (the exec'd child)
 */
#include "common.h"
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#define PACE_MS 40
#define HELD 60
#define PIPE_FD 63

/* One line from the pipe (the writers write whole lines). */
static void read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != 1)
			die("read from the pipe");
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
}

static int is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* In a forked child: every descriptor closed, then 200 opened and closed. */
static void child_reuses_numbers(void)
{
	closefrom(3);
	int fds[200];
	for (int i = 0; i < 200; i++) {
		fds[i] = open("/dev/null", O_RDONLY);
		if (fds[i] != 3 + i)
			_exit(2); /* a number the child should have was not free */
	}
	for (int i = 0; i < 200; i++)
		if (close(fds[i]) != 0 || is_open(fds[i]))
			_exit(3); /* a close did not take effect */
	_exit(0);
}

static int wait_status(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A vfork child: /dev/null onto 64..top+2 in its own table, then exec. */
static __attribute__((noinline)) int run_exec_child(int step, int top, int devnull)
{
	char text[64];
	snprintf(text, sizeof text, "exec %d", step);
	pid_t v = vfork();
	if (v < 0)
		die("vfork");
	if (v == 0) {
		for (int fd = 64; fd <= top + 2; fd++)
			dup2(devnull, fd);
		execl("/proc/self/exe", "fdnumbers", "--write-63", text, (char *)0);
		_exit(127);
	}
	return wait_status(v);
}

int main(int argc, char **argv)
{
	int steps = 120;
	if (argc == 3 && !strcmp(argv[1], "--write-63"))
		return dprintf(PIPE_FD, "%s\n", argv[2]) > 0 ? 0 : 1;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
	say("fdnumbers: start, %d steps", steps);

	int p[2];
	if (pipe(p) != 0)
		die("pipe");
	if (dup2(p[1], PIPE_FD) != PIPE_FD)
		die("dup2 onto 63");
	close(p[1]);
	int devnull = -1;
	while (devnull < HELD + 2) {
		devnull = open("/dev/null", O_RDONLY);
		if (devnull < 0 || devnull > HELD + 2)
			die("open /dev/null up to descriptor 62");
	}

	char line[128], want[128];
	int bad = 0;
	for (int s = 1; s <= steps; s++) {
		snprintf(want, sizeof want, "parent %d", s);
		dprintf(PIPE_FD, "%s\n", want);
		read_line(p[0], line, sizeof line);
		int pipe_ok = !strcmp(line, want);

		int top = 128 + s, moved_ok = 1;
		for (int fd = 64; fd <= top; fd++)
			if (dup2(devnull, fd) != fd)
				moved_ok = 0;
		for (int fd = 64; fd <= top; fd++)
			if (close(fd) != 0 || is_open(fd))
				moved_ok = 0;
		for (int fd = 3; fd <= HELD + 2; fd++)
			if (!is_open(fd))
				moved_ok = 0;

		pid_t c = fork();
		if (c < 0)
			die("fork");
		if (c == 0)
			child_reuses_numbers();
		int child = wait_status(c);

		int exec_status = run_exec_child(s, top, devnull);
		if (exec_status == 0)
			read_line(p[0], line, sizeof line);
		snprintf(want, sizeof want, "exec %d", s);
		int exec_ok = exec_status == 0 && !strcmp(line, want);

		bad += !pipe_ok + !moved_ok + (child != 0) + !exec_ok;
		say("step %d pipe=%s numbers=%s child=%d exec=%s", s, pipe_ok ? "ok" : "BAD", moved_ok ? "ok" : "BAD", child,
		    exec_ok ? "ok" : "BAD");
		pace_ms(PACE_MS);
	}
	say("fdnumbers: done steps=%d bad=%d", steps, bad);
	return 0;
}
