/*
 * ptyjobs: a pseudo-terminal of the program's own, and job control on it,
 * as script, tmux and expect arrange them.
 *
 *   ptyjobs [--steps N]
 *
 * M opens a master (/dev/ptmx). S opens a session whose controlling
 * terminal is the slave, gives the terminal its own settings (no echo, not
 * canonical, other erase and interrupt characters, a window of 33x101),
 * makes the group of A its foreground group, and A (the group's leader)
 * exits while B lives on in the group: a group whose leader is gone. S's
 * own group is orphaned (S's parent M is in another session). B writes one
 * numbered line to the terminal every step and checks, each time, that the
 * terminal still has S's settings, that it is still in group A of session
 * S, that A is the terminal's foreground group and that /dev/tty is that
 * terminal ("line N ok", or "FAIL ..."). M reads the terminal more slowly
 * than B writes, so lines are always in flight in it, and prints each line
 * it reads: "got line N ok"; every line must come once, in order, ended by
 * "\r\n" (the terminal's output processing). M also gives the slave's node
 * mode 0600 and, as root, owner 13333 and group 44444 (as login programs
 * give a terminal to its user), which B checks every step too.
 * At the end: "done N".
 * Lines are deterministic: two runs print the same.
 */
#include "common.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define ERASE 0x08
#define INTR 0x01
#define ROWS 33
#define COLS 101

static int chowned; /* M ran as root and gave the slave to 13333:44444 */

/* B's checks, written to the terminal like its lines */
static const char *check_b(pid_t a, pid_t s)
{
	struct termios t;
	struct winsize ws;
	struct stat st;
	if (fstat(1, &st) != 0 || (st.st_mode & 07777) != 0600)
		return "the terminal's node lost its mode 0600";
	if (chowned && (st.st_uid != 13333 || st.st_gid != 44444))
		return "the terminal's node lost its owner 13333 and group 44444";
	if (tcgetattr(1, &t) != 0)
		return "tcgetattr";
	if ((t.c_lflag & (ECHO | ICANON)) || t.c_cc[VERASE] != ERASE || t.c_cc[VINTR] != INTR || !(t.c_oflag & ONLCR))
		return "the terminal lost its settings";
	if (ioctl(1, TIOCGWINSZ, &ws) != 0 || ws.ws_row != ROWS || ws.ws_col != COLS)
		return "the terminal lost its window size";
	if (getpgid(0) != a || getsid(0) != s || getppid() != s)
		return "B is not in group A of session S below S";
	if (tcgetpgrp(1) != a)
		return "group A is not the terminal's foreground group";
	/* /dev/tty: the controlling terminal, the one of its session */
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
	pid_t sid = -1;
	if (fd < 0 || ioctl(fd, TIOCGSID, &sid) != 0 || sid != s || tcgetpgrp(fd) != a)
		return "/dev/tty is not the terminal";
	close(fd);
	return 0;
}

static __attribute__((noreturn)) void member_b(int steps, pid_t a, pid_t s)
{
	for (int i = 1; i <= steps; i++) {
		const char *bad = check_b(a, s);
		char line[128];
		int n = bad ? snprintf(line, sizeof line, "FAIL %s\n", bad) : snprintf(line, sizeof line, "line %d ok\n", i);
		if (write(1, line, (size_t)n) != n)
			_exit(3);
		if (bad)
			_exit(1);
		pace_ms(20);
	}
	(void)!write(1, "end\n", 4);
	_exit(0);
}

static volatile sig_atomic_t ttin;

static void on_ttin(int sig)
{
	(void)sig;
	ttin = 1;
}

/* F: alone in group E, whose leader exited, below ckrun since E is gone:
 * the group is orphaned. A background process of an orphaned group that
 * reads its terminal gets EIO; one of a group that is not orphaned gets
 * SIGTTIN (caught here, the read ends with EINTR). */
static const char *check_f(pid_t e, pid_t s)
{
	if (getpgid(0) != e || getsid(0) != s)
		return "F is not in group E of session S";
	if (getppid() == e || getpgid(getppid()) == e)
		return "F's parent is in its group";
	char c;
	ttin = 0;
	errno = 0;
	ssize_t r = read(0, &c, 1);
	if (r >= 0 || errno != EIO)
		return ttin ? "group E is not orphaned (SIGTTIN)" : "a read of the terminal from group E did not fail with EIO";
	return 0;
}

static __attribute__((noreturn)) void orphan_f(int steps, pid_t e, pid_t s)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_ttin;
	sigaction(SIGTTIN, &sa, 0);
	for (int i = 0; i < 5000 && getppid() == e; i++)
		pace_ms(1); /* until E has exited */
	for (int i = 1; i <= steps; i++) {
		const char *bad = check_f(e, s);
		if (bad) {
			char line[128];
			int n = snprintf(line, sizeof line, "FAIL %s\n", bad);
			(void)!write(1, line, (size_t)n);
			_exit(1);
		}
		pace_ms(20);
	}
	_exit(0);
}

static __attribute__((noreturn)) void session_s(const char *slave_path, int master, int steps)
{
	close(master);
	if (setsid() < 0)
		die("setsid");
	int slave = open(slave_path, O_RDWR); /* the session's controlling terminal */
	if (slave < 0)
		die("open the slave");
	struct termios t;
	if (tcgetattr(slave, &t) != 0)
		die("tcgetattr");
	t.c_lflag &= ~(ECHO | ICANON);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	t.c_cc[VERASE] = ERASE;
	t.c_cc[VINTR] = INTR;
	t.c_oflag |= OPOST | ONLCR;
	struct winsize ws = {ROWS, COLS, 0, 0};
	if (tcsetattr(slave, TCSANOW, &t) != 0 || ioctl(slave, TIOCSWINSZ, &ws) != 0)
		die("set the terminal");
	int ready[2], leave[2];
	if (pipe(ready) != 0 || pipe(leave) != 0)
		die("pipe");
	pid_t a = fork();
	if (a == 0) {
		char c;
		setpgid(0, 0);
		(void)!write(ready[1], "r", 1);
		(void)!read(leave[0], &c, 1);
		_exit(0);
	}
	char c;
	if (read(ready[0], &c, 1) != 1)
		die("A");
	/* before B exists: B checks the foreground group from its first step */
	signal(SIGTTOU, SIG_IGN);
	if (tcsetpgrp(slave, a) != 0)
		die("tcsetpgrp");
	signal(SIGTTOU, SIG_DFL);
	pid_t b = fork();
	if (b == 0) {
		setpgid(0, a);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		if (slave > 2)
			close(slave);
		close(ready[0]), close(ready[1]), close(leave[0]), close(leave[1]);
		member_b(steps, a, getppid());
	}
	setpgid(b, a);
	/* E makes a group, forks F into it and exits: F becomes ckrun's */
	pid_t e = fork();
	if (e == 0) {
		setpgid(0, 0);
		pid_t me = getpid(), sid = getsid(0);
		if (fork() == 0) {
			dup2(slave, 0);
			dup2(slave, 1);
			if (slave > 1)
				close(slave);
			close(ready[0]), close(ready[1]), close(leave[0]), close(leave[1]);
			orphan_f(steps, me, sid);
		}
		_exit(0);
	}
	if (waitpid(e, 0, 0) != e)
		die("wait for E");
	/* A's group lives on without it */
	(void)!write(leave[1], "l", 1);
	if (waitpid(a, 0, 0) != a)
		die("wait for A");
	close(ready[0]), close(ready[1]), close(leave[0]), close(leave[1]);
	int st;
	if (waitpid(b, &st, 0) != b)
		die("wait for B");
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

int main(int argc, char **argv)
{
	int steps = 200;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: ptyjobs [--steps N]\n");
			return 2;
		}
	}
	setvbuf(stdout, 0, _IOLBF, 0);
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
		die("posix_openpt");
	char path[64];
	if (ptsname_r(master, path, sizeof path) != 0)
		die("ptsname");
	chowned = geteuid() == 0;
	if (chmod(path, 0600) != 0 || (chowned && chown(path, 13333, 44444) != 0))
		die("chmod/chown the slave's node");
	pid_t s = fork();
	if (s == 0)
		session_s(path, master, steps);
	/* M: reads what B wrote, slower than B writes */
	char buf[8192];
	size_t have = 0;
	int next = 1, ended = 0;
	while (!ended) {
		pace_ms(150);
		ssize_t r = read(master, buf + have, sizeof buf - have - 1);
		if (r <= 0)
			die("read the master");
		have += (size_t)r;
		buf[have] = 0;
		char *p = buf, *nl;
		while ((nl = strchr(p, '\n'))) {
			*nl = 0;
			if (nl == p || nl[-1] != '\r') {
				printf("FAIL a line without the terminal's \\r: %s\n", p);
				return 1;
			}
			nl[-1] = 0;
			int n;
			if (!strcmp(p, "end")) {
				ended = 1;
			} else if (sscanf(p, "line %d ok", &n) != 1 || n != next) {
				printf("FAIL expected line %d, read \"%s\"\n", next, p);
				return 1;
			} else {
				say("got line %d ok", n);
				next++;
			}
			p = nl + 1;
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
	}
	int st;
	if (waitpid(s, &st, 0) != s || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL S ended with status %d\n", st);
		return 1;
	}
	say("done %d", next - 1);
	return 0;
}
