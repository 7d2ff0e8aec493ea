/* ckrun-hold PID SIGNAL: lets the shim of a stopped process (SIGSTOP, job
 * control) take part in a checkpoint while, for everyone else, the process
 * stays stopped (docs/design.md, "Stopped processes").
 *
 * A group-stopped process runs no signal handler until SIGCONT, and a
 * SIGCONT would tell its parent (SIGCHLD, CLD_CONTINUED) and run the
 * program's own handlers. A tracer can run it without that: PTRACE_SEIZE
 * of a stopped task traps it (the real parent is not told), and a traced
 * task runs when its tracer says so although its group is stopped. So
 * every thread that has ckrun's signal pending (SIGNAL, or glibc's
 * SIGSETXID for glibc's helper threads), or that is already inside the
 * shim's handler, is let run, with every other signal blocked until ours
 * is delivered (its own mask is put back at that moment, so the handler's
 * frame saves it). Each thread is traced through its system calls and
 * parked again at the exit of its rt_sigreturn: its registers are the
 * program's again, and not one instruction of the program runs. When
 * ckrun closes the connection (the checkpoint is over) every thread is
 * detached: the kernel puts a detached thread of a stopped group back in
 * its group stop, without telling the parent anything.
 *
 * stdin/stdout: a socket to ckrun. Says "held <stop signal>" once every
 * thread is traced (0: the process was not stopped after all; then it lets
 * go at once), or "error <message>". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <stddef.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_THREADS 4096
#define SIGSETXID_NO 33
#define NR_RT_SIGRETURN 15
/* Every blockable signal: SIGKILL and SIGSTOP never are. */
#define FULL_MASK (~0ULL & ~(1ULL << (SIGKILL - 1)) & ~(1ULL << (SIGSTOP - 1)))

enum state { TRAPPED, RUNNING, GONE };

struct thread {
	int tid;
	enum state state;
	int mask_saved;       /* a temporary mask is set: mask is the thread's own */
	uint64_t mask;
	int fix_frame;        /* stepped into the handler: its frame must get mask */
	long nr;              /* the system call whose entry was seen last */
};

static struct thread threads[MAX_THREADS];
static int nthreads;
static int pid, sig;
static uint64_t shim_lo[16], shim_hi[16];
static int nshim;
static int finishing; /* ckrun is done: every thread is let go as soon as it is parked */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...)
{
	char buf[800];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	ssize_t w = write(1, buf, (size_t)n);
	(void)w;
}

static __attribute__((noreturn)) void fail(const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	say("error %s", msg);
	exit(1);
}

/* CKRUN_HOLD_TRACE: every decision on stderr (or in a file) */
static int tracing;

static void note(const char *fmt, ...)
{
	if (!tracing)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "ckrun-hold[%d]: ", pid);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static struct thread *find(int tid)
{
	for (int i = 0; i < nthreads; i++)
		if (threads[i].tid == tid)
			return &threads[i];
	return 0;
}

/* A hex mask of /proc/PID/task/TID/status ("SigPnd:", ...). */
static uint64_t status_mask(int tid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/task/%d/status", pid, tid);
	FILE *f = fopen(path, "r");
	uint64_t v = 0;
	if (!f)
		return 0;
	size_t fl = strlen(field);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, fl)) {
			v = strtoull(line + fl, 0, 16);
			break;
		}
	fclose(f);
	return v;
}

/* The shim's code: libckrun.so, or in a restored process the image it was
 * mapped from. */
static void find_shim(void)
{
	char path[64], line[4352];
	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f) && nshim < 16) {
		unsigned long lo, hi;
		char perms[8];
		int off = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &off) < 3 || perms[2] != 'x')
			continue;
		const char *name = line + off;
		if (strstr(name, "libckrun.so") || strstr(name, ".ckpt")) {
			shim_lo[nshim] = lo;
			shim_hi[nshim++] = hi;
		}
	}
	fclose(f);
}

static int in_shim(uint64_t ip)
{
	for (int i = 0; i < nshim; i++)
		if (ip >= shim_lo[i] && ip < shim_hi[i])
			return 1;
	return 0;
}

/* Traces every thread of the process (and threads that appear meanwhile). */
static void seize_all(void)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	for (int found = 1; found;) {
		found = 0;
		DIR *d = opendir(path);
		if (!d)
			fail("process %d is gone", pid);
		struct dirent *e;
		while ((e = readdir(d))) {
			int tid = atoi(e->d_name);
			if (tid <= 0 || find(tid))
				continue;
			if (nthreads == MAX_THREADS)
				fail("process %d has more than %d threads", pid, MAX_THREADS);
			if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD) != 0) {
				if (errno == ESRCH)
					continue;
				fail("cannot trace thread %d of process %d: %s%s", tid, pid, strerror(errno),
				     errno == EPERM ? " (ckrun holds a stopped process with ptrace, which Yama's kernel.yama.ptrace_scope 1 or more "
						      "allows only to root, and which a process that is not dumpable refuses); continue it with SIGCONT "
						      "or checkpoint as root"
						    : "");
			}
			/* a thread that is not in a group stop traps too */
			ptrace(PTRACE_INTERRUPT, tid, 0, 0);
			threads[nthreads++] = (struct thread){tid, RUNNING, 0, 0, 0, -1};
			found = 1;
		}
		closedir(d);
	}
}

/* Waits for every thread's first trap; the group stop's signal, or 0 when
 * the process was not stopped (PTRACE_INTERRUPT's traps say SIGTRAP). */
static int first_traps(void)
{
	int stopsig = -1;
	uint64_t give_up = now_ms() + 5000;
	for (int left = nthreads; left > 0;) {
		int st;
		int w = waitpid(-1, &st, __WALL | WNOHANG);
		if (w == 0) {
			if (now_ms() > give_up)
				fail("a thread of process %d did not stop for ckrun's tracer within 5 s", pid);
			usleep(200);
			continue;
		}
		if (w < 0)
			fail("waiting for process %d: %s", pid, strerror(errno));
		struct thread *t = find(w);
		if (!t || t->state != RUNNING)
			continue;
		left--;
		if (!WIFSTOPPED(st)) {
			t->state = GONE;
			continue;
		}
		t->state = TRAPPED;
		int s = WSTOPSIG(st);
		note("thread %d: first trap, signal %d, event %d", t->tid, s, st >> 16);
		if ((st >> 16) == PTRACE_EVENT_STOP && stopsig != 0)
			stopsig = s == SIGTRAP ? 0 : s;
	}
	return stopsig < 0 ? 0 : stopsig;
}

static void resume(struct thread *t, int deliver)
{
	if (ptrace(PTRACE_SYSCALL, t->tid, 0, deliver) != 0)
		t->state = GONE;
	else
		t->state = RUNNING;
}

/* A parked thread runs when ckrun's signal waits for it (only that one
 * can be taken), or when it is inside the shim's handler already (the
 * process was stopped there). */
static void maybe_run(struct thread *t)
{
	uint64_t ours = (1ULL << (sig - 1)) | (1ULL << (SIGSETXID_NO - 1));
	uint64_t pending = status_mask(t->tid, "SigPnd:") & ours;
	uint64_t mask = 0;
	if (ptrace(PTRACE_GETSIGMASK, t->tid, sizeof mask, &mask) != 0) {
		t->state = GONE;
		return;
	}
	if (pending) {
		note("thread %d: ours pending (%llx), mask %llx: run", t->tid, (unsigned long long)pending, (unsigned long long)mask);
		uint64_t only = FULL_MASK & ~pending;
		t->mask = mask;
		t->mask_saved = 1;
		if (ptrace(PTRACE_SETSIGMASK, t->tid, sizeof only, &only) != 0) {
			t->state = GONE;
			return;
		}
		resume(t, 0);
		return;
	}
	/* the shim stops a restored process inside its handler with every
	 * signal blocked but the stop signal it raises (jobstop.c) */
	uint64_t job_stops = (1ULL << (SIGTSTP - 1)) | (1ULL << (SIGTTIN - 1)) | (1ULL << (SIGTTOU - 1));
	if ((mask & FULL_MASK & ~job_stops) == (FULL_MASK & ~job_stops)) {
		struct user_regs_struct r;
		if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) == 0 && in_shim(r.rip)) {
			note("thread %d: inside the shim's handler: run", t->tid);
			resume(t, 0);
		}
	}
}

/* At the handler's first instruction (an SA_SIGINFO handler: rdx is its
 * ucontext): the mask rt_sigreturn puts back is the thread's own, not the
 * temporary one the signal was delivered under. */
static void put_own_mask(struct thread *t)
{
	struct user_regs_struct r;
	t->fix_frame = 0;
	t->mask_saved = 0;
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) != 0)
		return;
	struct iovec local = {&t->mask, sizeof t->mask};
	struct iovec remote = {(void *)(r.rdx + offsetof(ucontext_t, uc_sigmask)), sizeof t->mask};
	if (process_vm_writev(t->tid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof t->mask)
		note("thread %d: cannot put its mask in the handler's frame: %s", t->tid, strerror(errno));
}

static void on_stop(struct thread *t, int st)
{
	if (!WIFSTOPPED(st)) {
		t->state = GONE;
		return;
	}
	int s = WSTOPSIG(st), event = st >> 16;
	if (s == (SIGTRAP | 0x80)) {
		struct __ptrace_syscall_info info;
		if (ptrace(PTRACE_GET_SYSCALL_INFO, t->tid, sizeof info, &info) <= 0) {
			resume(t, 0);
			return;
		}
		if (info.op == PTRACE_SYSCALL_INFO_ENTRY) {
			t->nr = (long)info.entry.nr;
			note("thread %d: syscall %ld", t->tid, t->nr);
		} else if (info.op == PTRACE_SYSCALL_INFO_EXIT && t->nr == NR_RT_SIGRETURN) {
			/* out of the handler: the program's registers, not yet run */
			note("thread %d: parked after rt_sigreturn", t->tid);
			t->nr = -1;
			t->state = TRAPPED;
			return;
		}
		resume(t, 0);
		return;
	}
	if (event == PTRACE_EVENT_STOP) {
		/* a group stop or an interrupt while the handler runs: run on,
		 * unless ckrun is done (then it stops there, and finishes the
		 * handler after SIGCONT) */
		note("thread %d: event stop %d", t->tid, s);
		if (finishing)
			t->state = TRAPPED;
		else
			resume(t, 0);
		return;
	}
	note("thread %d: signal %d to deliver", t->tid, s);
	if (t->fix_frame && s == SIGTRAP) {
		put_own_mask(t);
		resume(t, 0);
		return;
	}
	/* ours, about to be delivered under the temporary mask (the thread's
	 * own may block it: the kernel would queue it again): one step into
	 * the handler, whose frame then gets the thread's own mask */
	if (t->mask_saved && (s == sig || s == SIGSETXID_NO)) {
		t->fix_frame = 1;
		if (ptrace(PTRACE_SINGLESTEP, t->tid, 0, s) != 0)
			t->state = GONE;
		return;
	}
	resume(t, s);
}

static void detach(struct thread *t)
{
	if (t->mask_saved)
		ptrace(PTRACE_SETSIGMASK, t->tid, sizeof t->mask, &t->mask);
	ptrace(PTRACE_DETACH, t->tid, 0, 0);
	t->state = GONE;
}

/* A thread's state letter (/proc/PID/task/TID/stat), '?' when gone. */
static char thread_state(int tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : '?';
}

/* After the detach, each thread goes back into its group stop on its own
 * (state T): ckrun lets the others run only then, so that none of them
 * sees it otherwise. At most 5 s (a loaded machine may take its time to run it). */
static void await_group_stop(void)
{
	uint64_t give_up = now_ms() + 5000;
	for (int i = 0; i < nthreads && now_ms() < give_up; i++) {
		char c;
		while ((c = thread_state(threads[i].tid)) != 'T' && c != '?' && c != 'Z' && c != 'X' && now_ms() < give_up)
			usleep(200);
	}
}

static int count(enum state s)
{
	int n = 0;
	for (int i = 0; i < nthreads; i++)
		n += threads[i].state == s;
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (pid = atoi(argv[1])) <= 0 || (sig = atoi(argv[2])) < 1 || sig > 64) {
		fprintf(stderr, "usage: ckrun-hold PID SIGNAL (run by ckrun)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* CKRUN_HOLD_TRACE=1: notes on stderr; =/PATH: appended to PATH */
	const char *trace = getenv("CKRUN_HOLD_TRACE");
	tracing = trace != 0;
	if (trace && trace[0] == '/' && !freopen(trace, "a", stderr))
		tracing = 0;
	find_shim();
	seize_all();
	int stopsig = first_traps();
	say("held %d", stopsig);
	if (!stopsig) {
		for (int i = 0; i < nthreads; i++)
			if (threads[i].state == TRAPPED)
				detach(&threads[i]);
		return 0;
	}
	uint64_t give_up = 0;
	/* a tracee's stop is a SIGCHLD: waited for with poll, without delay */
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, 0);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fail("signalfd: %s", strerror(errno));
	for (;;) {
		int st, w;
		while ((w = waitpid(-1, &st, __WALL | WNOHANG)) > 0) {
			struct thread *t = find(w);
			if (t && t->state == RUNNING)
				on_stop(t, st);
		}
		for (int i = 0; i < nthreads; i++) {
			struct thread *t = &threads[i];
			if (t->state != TRAPPED)
				continue;
			if (finishing)
				detach(t);
			else
				maybe_run(t);
		}
		if (finishing && count(RUNNING) == 0 && count(TRAPPED) == 0) {
			await_group_stop();
			return 0;
		}
		if (finishing && now_ms() > give_up) {
			/* still in the handler: stopped there, it finishes after SIGCONT */
			for (int i = 0; i < nthreads; i++)
				if (threads[i].state == RUNNING)
					ptrace(PTRACE_INTERRUPT, threads[i].tid, 0, 0);
			give_up = now_ms() + 1000;
		}
		/* parked threads are looked at every millisecond: a signal that
		 * becomes pending for a stopped tracee wakes nobody */
		struct pollfd fds[2] = {{sfd, POLLIN, 0}, {finishing ? -1 : 0, POLLIN, 0}};
		if (poll(fds, 2, count(TRAPPED) || finishing ? 1 : 100) > 0) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) > 0)
				;
			if (fds[1].revents) {
				char buf[64];
				if (read(0, buf, sizeof buf) <= 0) {
					finishing = 1;
					give_up = now_ms() + 10000;
				}
			}
		}
	}
}
