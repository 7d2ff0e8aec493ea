/*
 * stopped: processes stopped by job control across checkpoint/restart
 * (issue 11). The parent forks three children that count steps in shared
 * memory. At its step 5 it stops child a with SIGTSTP and collects the
 * stop with waitpid(WUNTRACED), stops child b with SIGSTOP and child c with
 * SIGTTIN without collecting them. Until its last step, every step checks
 * that the children stay stopped (/proc state T, their counters do not
 * move), that no SIGCHLD arrived since, that a's stop is not reported again
 * and that b's and c's are still to be collected, with SIGSTOP and SIGTTIN
 * (WNOWAIT). Then it collects b's and c's stops, continues all three
 * (exactly one CLD_CONTINUED each) and waits for their end. Each child checks that it saw exactly one SIGCONT and that its
 * signal mask never changed. A failed check prints "FAIL: ..." and exits 1.
 * Usage: stopped [STEPS]
 */
#include "common.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PACE_MS 20
#define CHILD_STEPS 30

static volatile int *counters; /* shared: each child's step */
static volatile sig_atomic_t sigchld_count, sigcont_count;

static void fail(const char *what)
{
	printf("FAIL: %s (errno %s)\n", what, errname(errno));
	fflush(stdout);
	exit(1);
}

static void on_sigchld(int sig)
{
	(void)sig;
	sigchld_count++;
}

static void on_sigcont(int sig)
{
	(void)sig;
	sigcont_count++;
}

/* glibc's sigset_t is larger than the kernel's: compare signal by signal */
static int same_signals(const sigset_t *a, const sigset_t *b)
{
	for (int s = 1; s < 65; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return 0;
	return 1;
}

static void child(int i, const char *name)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigcont;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCONT, &sa, 0);
	signal(SIGTSTP, SIG_DFL);
	signal(SIGTTIN, SIG_DFL);
	sigset_t marker, mask;
	sigemptyset(&marker);
	sigaddset(&marker, SIGUSR1);
	sigprocmask(SIG_BLOCK, &marker, 0);
	for (int step = 1; step <= CHILD_STEPS; step++) {
		counters[i] = step;
		sigemptyset(&mask);
		sigprocmask(SIG_BLOCK, 0, &mask);
		if (!same_signals(&mask, &marker)) {
			printf("FAIL: %s: its signal mask changed\n", name);
			fflush(stdout);
			_exit(1);
		}
		pace_ms(PACE_MS);
	}
	_exit(sigcont_count == 1 ? 0 : 1);
}

static char state_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : '?';
}

/* The stop of pid still to be collected: its signal, or 0. */
static int stop_to_collect(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)pid, &si, WSTOPPED | WNOHANG | WNOWAIT) != 0)
		fail("waitid(WNOWAIT)");
	return si.si_pid == pid && si.si_code == CLD_STOPPED ? si.si_status : 0;
}

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 150;
	counters = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counters == MAP_FAILED)
		fail("mmap");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, 0);
	pid_t a = fork();
	if (a == 0) {
		setpgid(0, 0); /* a group of its own: SIGTSTP stops it (not an orphaned group) */
		child(0, "a");
	}
	setpgid(a, a);
	pid_t b = fork();
	if (b == 0)
		child(1, "b");
	pid_t c = fork();
	if (c == 0) {
		setpgid(0, 0); /* SIGTTIN too stops only outside an orphaned group */
		child(2, "c");
	}
	setpgid(c, c);
	while (counters[0] < 3 || counters[1] < 3 || counters[2] < 3)
		pace_ms(5);
	int at_stop[3] = {0, 0, 0}, chld_base = 0;
	for (int step = 1; step <= steps; step++) {
		if (step == 5) {
			int st;
			kill(a, SIGTSTP);
			if (waitpid(a, &st, WUNTRACED) != a || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTSTP)
				fail("a did not stop with SIGTSTP");
			kill(b, SIGSTOP);
			kill(c, SIGTTIN);
			while (state_of(b) != 'T' || state_of(c) != 'T')
				pace_ms(1);
			pace_ms(100); /* every SIGCHLD is in, the counters settle */
			at_stop[0] = counters[0];
			at_stop[1] = counters[1];
			at_stop[2] = counters[2];
			chld_base = sigchld_count;
		} else if (step > 5) {
			char sa = state_of(a), sb = state_of(b), sc = state_of(c);
			/* killed from outside (a test's kill -9 of the family reaches
			 * the children first): the end of the family, not a failure;
			 * children that die otherwise fail the final wait */
			if (sa == 'Z' || sb == 'Z' || sc == 'Z') {
				pace_ms(5000);
				exit(2);
			}
			if (sa != 'T' || sb != 'T' || sc != 'T') {
				printf("FAIL: a child is not stopped any more (a: %c, b: %c, c: %c)\n", sa, sb, sc);
				fflush(stdout);
				exit(1);
			}
			if (counters[0] != at_stop[0] || counters[1] != at_stop[1] || counters[2] != at_stop[2])
				fail("a stopped child ran");
			if (sigchld_count != chld_base)
				fail("a SIGCHLD arrived while the children stayed stopped");
			if (stop_to_collect(a) != 0)
				fail("a's stop, collected already, is reported again");
			if (stop_to_collect(b) != SIGSTOP)
				fail("b's stop is not reported with SIGSTOP any more");
			if (stop_to_collect(c) != SIGTTIN)
				fail("c's stop is not reported with SIGTTIN any more");
		}
		say("step %d", step);
		pace_ms(PACE_MS);
	}
	int st;
	if (waitpid(b, &st, WUNTRACED | WNOHANG) != b || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGSTOP)
		fail("b's stop cannot be collected");
	if (waitpid(c, &st, WUNTRACED | WNOHANG) != c || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTTIN)
		fail("c's stop cannot be collected");
	kill(a, SIGCONT);
	kill(b, SIGCONT);
	kill(c, SIGCONT);
	if (waitpid(a, &st, WCONTINUED) != a || !WIFCONTINUED(st) || waitpid(b, &st, WCONTINUED) != b || !WIFCONTINUED(st) ||
	    waitpid(c, &st, WCONTINUED) != c || !WIFCONTINUED(st))
		fail("a child's continuation is not reported");
	pace_ms(50);
	if (waitpid(a, &st, WCONTINUED | WNOHANG) != 0 || waitpid(b, &st, WCONTINUED | WNOHANG) != 0 ||
	    waitpid(c, &st, WCONTINUED | WNOHANG) != 0)
		fail("a child's continuation is reported twice");
	for (int i = 0; i < 3; i++) {
		pid_t w = waitpid(-1, &st, 0);
		if (w < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail("a child failed");
	}
	say("the children continued once each and ended");
	say("stopped: done");
	return 0;
}
