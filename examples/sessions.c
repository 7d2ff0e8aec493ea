/*
 * sessions: a session leader with children in its process group, a child
 * that opened a session of its own, and a process whose only child is a
 * zombie, as servers, shells and job control arrange them.
 *
 *   sessions [--steps N]
 *
 * The program's main process forks
 *  - L, which calls setsid() and forks three children into its process
 *    group and a fourth, D, which calls setsid() itself. Every 10 steps L
 *    signals its whole group (kill(-pgid, SIGUSR1)) and D, and checks that
 *    exactly its three group members and D answer (a byte each through a
 *    pipe), and that every one of them is still in the session and group it
 *    was put in: "step N ok" or "FAIL ..." (exit 1);
 *  - Y, whose only child Z exits at once with status 7 and is not reaped
 *    until the end, when Y's waitpid must find it.
 * Lines are deterministic: two runs print the same.
 */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define MEMBERS 3

static int answers[2];     /* group members and D write here */
static volatile char mark; /* what this process answers with */

static void on_usr1(int sig)
{
	(void)sig;
	char c = mark;
	(void)!write(answers[1], &c, 1);
}

static void fail(const char *what)
{
	printf("FAIL %s\n", what);
	fflush(stdout);
	_exit(1);
}

static __attribute__((noreturn)) void answer_forever(char m)
{
	mark = m;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, 0);
	for (;;)
		pause();
}

/* n bytes from the answers pipe within 5 s; how many of each mark came */
static void collect(int n, int *members, int *d)
{
	*members = *d = 0;
	while (n > 0) {
		struct pollfd p = {answers[0], POLLIN, 0};
		if (poll(&p, 1, 5000) != 1)
			return;
		char buf[16];
		ssize_t r = read(answers[0], buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
		for (ssize_t i = 0; i < r; i++)
			*(buf[i] == 'd' ? d : members) += 1;
		n -= (int)(r > 0 ? r : 0);
	}
}

static void check_member(pid_t pid, pid_t pgid, pid_t sid, const char *who)
{
	char what[128];
	if (getpgid(pid) != pgid || getsid(pid) != sid) {
		snprintf(what, sizeof what, "%s (pid %d) is in group %d, session %d; it was put in %d, %d", who, (int)pid,
			 (int)getpgid(pid), (int)getsid(pid), (int)pgid, (int)sid);
		fail(what);
	}
}

static __attribute__((noreturn)) void leader(int steps)
{
	if (setsid() < 0)
		fail("setsid");
	signal(SIGUSR1, SIG_IGN); /* the leader signals its own group too */
	pid_t members[MEMBERS], d;
	for (int i = 0; i < MEMBERS; i++)
		if ((members[i] = fork()) == 0)
			answer_forever('m');
	if ((d = fork()) == 0) {
		setsid();
		answer_forever('d');
	}
	pid_t me = getpid();
	for (int s = 1; s <= steps; s++) {
		if (s % 10 == 0) {
			for (int i = 0; i < MEMBERS; i++)
				check_member(members[i], me, me, "a member of the leader's group");
			check_member(d, d, d, "the child with a session of its own");
			check_member(me, me, me, "the session leader");
			kill(-me, SIGUSR1);
			kill(d, SIGUSR1);
			int m, dd;
			collect(MEMBERS + 1, &m, &dd);
			if (m != MEMBERS || dd != 1) {
				char what[96];
				snprintf(what, sizeof what, "kill(-pgid) reached %d group members (not %d) and the other session %d times", m,
					 MEMBERS, dd);
				fail(what);
			}
			say("step %d ok", s);
		} else {
			say("step %d", s);
		}
		pace_ms(30);
	}
	for (int i = 0; i < MEMBERS; i++)
		kill(members[i], SIGKILL);
	kill(d, SIGKILL);
	for (int i = 0; i <= MEMBERS; i++)
		wait(0);
	_exit(0);
}

/* Y: its only child is a zombie until Y is told to finish. */
static __attribute__((noreturn)) void zombie_parent(int go)
{
	pid_t z = fork();
	if (z == 0)
		_exit(7);
	char c;
	if (read(go, &c, 1) != 1)
		fail("the go pipe");
	int st;
	if (waitpid(z, &st, 0) != z)
		fail("waitpid found no zombie (ECHILD): it was lost");
	say("zombie exited with status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	_exit(0);
}

int main(int argc, char **argv)
{
	int steps = 100;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: sessions [--steps N]\n");
			return 2;
		}
	}
	setvbuf(stdout, 0, _IOLBF, 0);
	int go[2];
	if (pipe(answers) != 0 || pipe(go) != 0)
		fail("pipe");
	pid_t l = fork();
	if (l == 0)
		leader(steps);
	pid_t y = fork();
	if (y == 0)
		zombie_parent(go[0]);
	int st;
	if (waitpid(l, &st, 0) != l || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 1;
	(void)!write(go[1], "g", 1);
	if (waitpid(y, &st, 0) != y || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 1;
	say("done");
	return 0;
}
