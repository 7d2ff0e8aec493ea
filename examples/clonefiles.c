/*
 * clonefiles: two processes that share one descriptor table but not their
 * memory (clone with CLONE_FILES, without CLONE_VM), for a while.
 *
 *   clonefiles [--steps S] [--share-from F] [--share-until U] [--via-fork]
 *
 * Counts steps; at step F (default 20) it clones a child with CLONE_FILES,
 * which opens /dev/null and tells its descriptor number through a pipe;
 * the parent checks that the number is open in its own table too (one
 * table) and prints "shared table: ok". At step U (default 40) it tells
 * the child to end, reaps it and prints "shared table: ended". With
 * --via-fork all of this happens in a forked child of the program (whose
 * clone child is then a grandchild). The last line is "done".
 */
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static char child_stack[1 << 16] __attribute__((aligned(16)));
static int to_child[2], from_child[2];

static int sharer(void *arg)
{
	(void)arg;
	int fd = open("/dev/null", O_RDONLY);
	if (write(from_child[1], &fd, sizeof fd) != sizeof fd)
		return 2;
	char c;
	while (read(to_child[0], &c, 1) < 0 && errno == EINTR)
		;
	return 0;
}

static int run(int steps, int from, int until)
{
	pid_t child = -1;
	for (int s = 1; s <= steps; s++) {
		if (s == from) {
			if (pipe(to_child) || pipe(from_child))
				die("pipe");
			child = clone(sharer, child_stack + sizeof child_stack, CLONE_FILES | SIGCHLD, 0);
			if (child < 0)
				die("clone");
			int fd;
			ssize_t n;
			while ((n = read(from_child[0], &fd, sizeof fd)) < 0 && errno == EINTR)
				;
			if (n != sizeof fd || fcntl(fd, F_GETFD) < 0) {
				say("FAIL the child's descriptor is not in the parent's table");
				return 1;
			}
			say("shared table: ok");
		}
		if (s == until && child > 0) {
			if (write(to_child[1], "x", 1) != 1)
				die("write");
			int st;
			while (waitpid(child, &st, 0) < 0)
				if (errno != EINTR)
					die("waitpid");
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				say("FAIL the sharing child ended with status %#x", st);
				return 1;
			}
			say("shared table: ended");
		}
		say("step %d", s);
		pace_ms(50);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int steps = 120, from = 20, until = 40, via_fork = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--share-from") && i + 1 < argc)
			from = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--share-until") && i + 1 < argc)
			until = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--via-fork"))
			via_fork = 1;
	}
	say("clonefiles: start steps=%d from=%d until=%d%s", steps, from, until, via_fork ? " via-fork" : "");
	int r;
	if (via_fork) {
		pid_t c = fork();
		if (c < 0)
			die("fork");
		if (c == 0)
			_exit(run(steps, from, until));
		int st;
		while (waitpid(c, &st, 0) < 0)
			if (errno != EINTR)
				die("waitpid");
		r = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	} else {
		r = run(steps, from, until);
	}
	if (!r)
		say("done");
	return r;
}
