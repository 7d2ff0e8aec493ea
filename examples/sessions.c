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
 *    until the end, when Y's waitpid must find it;
 *  - corners of Linux's rules that a restart must rebuild in order (zdtm's
 *    session00, zombie_leader, zombie01): A forks B, B forks C, then B and A
 *    each call setsid(): C stays in the main process's session and group,
 *    below two processes of other sessions; K calls setsid(), forks G and
 *    exits unreaped (a zombie leading the session G lives in, G now
 *    ckrun's child like the main process); P makes a group of its own and
 *    clones Q as the main process's child (CLONE_PARENT), Q exits, P is
 *    reaped: zombie Q stays in the group of a leader that is gone. L checks
 *    every one of them every 10 steps, and the main process reaps K and Q
 *    (statuses 3 and 5) at the end.
 * Lines are deterministic: two runs print the same.
 */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/syscall.h>
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

/* The corners (see the top): their PIDs, as the main process learnt them. */
static struct {
	pid_t main, a, b, c, k, g, p, q;
	pid_t g_parent; /* who adopted G when K exited (ckrun under ckrun) */
} corner;

static __attribute__((noreturn)) void sleep_forever(void)
{
	for (;;)
		pause();
}

/* A, B, C: C stays in the session and group A and B left. */
static void make_chain(void)
{
	int ids[2];
	if (pipe(ids) != 0)
		fail("pipe");
	/* B tells A (once it called setsid), A tells the main process */
	if ((corner.a = fork()) == 0) {
		int to_a[2];
		if (pipe(to_a) != 0)
			fail("pipe");
		pid_t b = fork();
		if (b == 0) {
			pid_t c = fork();
			if (c == 0)
				sleep_forever();
			if (setsid() < 0)
				fail("setsid of B");
			(void)!write(to_a[1], &c, sizeof c);
			sleep_forever();
		}
		pid_t c;
		if (read(to_a[0], &c, sizeof c) != sizeof c)
			fail("C's PID");
		close(to_a[0]);
		close(to_a[1]);
		if (setsid() < 0)
			fail("setsid of A");
		(void)!write(ids[1], &c, sizeof c);
		(void)!write(ids[1], &b, sizeof b);
		(void)!write(ids[1], "", 1);
		sleep_forever();
	}
	char done;
	if (read(ids[0], &corner.c, sizeof corner.c) != sizeof corner.c || read(ids[0], &corner.b, sizeof corner.b) != sizeof corner.b ||
	    read(ids[0], &done, 1) != 1)
		fail("the chain's PIDs");
	close(ids[0]);
	close(ids[1]);
}

/* K leads a session, forks G into it and exits; K stays a zombie. */
static pid_t parent_of(pid_t pid);

static void make_zombie_leader(void)
{
	int ids[2];
	if (pipe(ids) != 0)
		fail("pipe");
	if ((corner.k = fork()) == 0) {
		setsid();
		pid_t g = fork();
		if (g == 0)
			sleep_forever();
		(void)!write(ids[1], &g, sizeof g);
		_exit(3);
	}
	if (read(ids[0], &corner.g, sizeof corner.g) != sizeof corner.g)
		fail("G's PID");
	siginfo_t si;
	waitid(P_PID, (id_t)corner.k, &si, WEXITED | WNOWAIT);
	corner.g_parent = parent_of(corner.g);
	close(ids[0]);
	close(ids[1]);
}

/* P leads a group, clones Q as the main process's child and is reaped. */
static void make_zombie_in_gone_group(void)
{
	int ids[2];
	if (pipe(ids) != 0)
		fail("pipe");
	if ((corner.p = fork()) == 0) {
		setpgid(0, 0);
		long q = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
		if (q == 0)
			syscall(SYS_exit, 5);
		pid_t qq = (pid_t)q;
		(void)!write(ids[1], &qq, sizeof qq);
		_exit(0);
	}
	if (read(ids[0], &corner.q, sizeof corner.q) != sizeof corner.q)
		fail("Q's PID");
	waitpid(corner.p, 0, 0);
	siginfo_t si;
	waitid(P_PID, (id_t)corner.q, &si, WEXITED | WNOWAIT);
	close(ids[0]);
	close(ids[1]);
}

/* The parent PID of process pid, from /proc. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *q = strrchr(buf, ')');
	int ppid = -1;
	if (q)
		sscanf(q + 2, "%*c %d", &ppid);
	return ppid;
}

static void check_corners(void)
{
	pid_t m = corner.main, msid = getsid(m), mpg = getpgid(m);
	check_member(corner.a, corner.a, corner.a, "A (setsid after forking B)");
	check_member(corner.b, corner.b, corner.b, "B (setsid after forking C)");
	check_member(corner.c, mpg, msid, "C (in the session A and B left)");
	check_member(corner.k, corner.k, corner.k, "zombie K (it led its session)");
	check_member(corner.g, corner.k, corner.k, "G (in the session of zombie K)");
	check_member(corner.q, corner.p, msid, "zombie Q (in the group of reaped P)");
	if (parent_of(corner.g) != corner.g_parent)
		fail("G's parent changed (it had become ckrun's when K exited)");
	if (parent_of(corner.c) != corner.b || parent_of(corner.b) != corner.a || parent_of(corner.a) != m)
		fail("the chain A, B, C lost its parents");
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
			check_corners();
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
	corner.main = getpid();
	make_chain();
	make_zombie_leader();
	make_zombie_in_gone_group();
	pid_t l = fork();
	if (l == 0)
		leader(steps);
	pid_t y = fork();
	if (y == 0)
		zombie_parent(go[0]);
	int st;
	pid_t every[] = {corner.a, corner.b, corner.c, corner.g};
	if (waitpid(l, &st, 0) != l || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		for (size_t i = 0; i < sizeof every / sizeof every[0]; i++)
			kill(every[i], SIGKILL);
		return 1;
	}
	(void)!write(go[1], "g", 1);
	if (waitpid(y, &st, 0) != y || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 1;
	for (size_t i = 0; i < sizeof every / sizeof every[0]; i++)
		kill(every[i], SIGKILL);
	waitpid(corner.a, 0, 0);
	int kst, qst;
	if (waitpid(corner.k, &kst, 0) != corner.k || waitpid(corner.q, &qst, 0) != corner.q)
		fail("a zombie of the main process was lost (ECHILD)");
	say("zombies K and Q exited with status %d and %d", WEXITSTATUS(kst), WEXITSTATUS(qst));
	say("done");
	return 0;
}
