/*
 * setuid-child: a process of the session that changes its user ID, as a
 * server's workers do (nginx runs its workers as www-data under a root
 * master). Run it as root.
 *
 *   setuid-child [--uid U] [--steps S] [--exec]
 *
 * The parent forks a child that drops to user and group U (default 65534,
 * nobody) with setresgid/setresuid (with --exec it then execs this
 * program again as the worker, as a server that runs a worker binary
 * does). Both count S steps (default 200): the child prints
 * "child step N uid=U hash=H", the parent "parent step N hash=H"; the
 * parent waits for the child and prints "setuid-child: done child=STATUS".
 * Each side's lines are deterministic; how the two interleave is not.
 */
#include "common.h"

#include <sys/wait.h>
#include <unistd.h>

static void work(const char *who, int steps, int show_uid)
{
	uint64_t h = 0;
	for (int s = 1; s <= steps; s++) {
		h = mix64(h, (uint64_t)s);
		if (show_uid)
			say("%s step %d uid=%d hash=%016" PRIx64, who, s, (int)getuid(), h);
		else
			say("%s step %d hash=%016" PRIx64, who, s, h);
		pace_ms(20);
	}
}

int main(int argc, char **argv)
{
	int uid = 65534, steps = 200, exec_worker = 0, worker = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--uid") && i + 1 < argc)
			uid = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--exec"))
			exec_worker = 1;
		else if (!strcmp(argv[i], "--worker"))
			worker = 1;
	}
	if (worker) {
		work("child", steps, 1);
		return 0;
	}
	pid_t c = fork();
	if (c < 0)
		die("fork");
	if (c == 0) {
		if (setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) != 0 || setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0)
			die("setresuid");
		if (exec_worker) {
			char n[16];
			snprintf(n, sizeof n, "%d", steps);
			execl("/proc/self/exe", argv[0], "--worker", "--steps", n, (char *)0);
			die("exec");
		}
		work("child", steps, 1);
		return 0;
	}
	work("parent", steps, 0);
	int st = 0;
	if (waitpid(c, &st, 0) != c)
		die("waitpid");
	say("setuid-child: done child=%d", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}
