/*
 * attrs: a process that sets every process and thread attribute a restart
 * must put back (issue 11, CRIU's zdtm tests), and checks them all itself
 * at every step.
 *
 *   attrs [--steps S] [--rt] [--plain] [--kid] [--seccomp-raw] [--aio-raw] [--aio-inflight] [--strict]
 *         [--keep-dumpable] [--dispatch]
 *
 * Per process: oom_score_adj, coredump_filter, PR_SET_THP_DISABLE, the child-subreaper flag,
 * dumpable 0, no_new_privs, membarrier registration, PR_SET_MDWE,
 * PR_SET_MEMORY_MERGE, an AIO context (io_setup) with one completion
 * left unreaped at every step, two zombie children (one exited with status
 * 42, one killed by SIGTERM), /proc/PID/maps and /proc/self/status open,
 * and pending signals: SIGUSR1 from kill() and three queued real-time
 * signals with values, in order. Per thread (main, t1, u2): name, %gs
 * base (main),
 * scheduling policy, nice, real-time priority, SCHED_RESET_ON_FORK, CPU
 * affinity, I/O priority, timer slack, PR_MCE_KILL, PR_SET_TSC,
 * ARCH_SET_CPUID (where the CPU can make cpuid fault), the
 * parent-death signal, seccomp filters (one installed with
 * SECCOMP_FILTER_FLAG_TSYNC on every thread, one more on t1 only), and
 * signals pending for the thread only (a queued real-time one with its
 * value for t1, SIGUSR2 from pthread_kill for u2).
 *
 * Each step takes the signals queued at the previous step and checks their
 * siginfo, reaps the previous step's AIO completion, checks every
 * attribute in every thread, queues new signals and submits a new AIO
 * request, and prints "step S ok". The first difference prints
 * "FAIL <what>" and exits 1; the last line is "done".
 *
 * --kid: a live child (attrs-kid) keeps /proc/self/status open and reads
 * it every 20 ms, and the parent reads the child's; a checkpoint then
 * holds a family. --rt: u2 runs SCHED_FIFO (needs root). --plain: sets nothing, only
 * checks that its threads keep the scheduling they started with, and the
 * process its oom_score_adj and child-subreaper flag.
 * --seccomp-raw installs the filter with its own syscall instruction,
 * which ckrun cannot see; --aio-raw creates the AIO context that way;
 * --aio-inflight leaves an IOCB_CMD_POLL request waiting on a pipe;
 * --strict (with --plain: a thread with filters cannot enter strict mode)
 * adds a thread in seccomp strict mode, waiting in read(). --keep-dumpable
 * leaves the process dumpable (ckrun run by an ordinary user cannot yet
 * checkpoint a process that is not). --dispatch turns on syscall user
 * dispatch in the main thread (PR_SET_SYSCALL_USER_DISPATCH), every call
 * allowed by its selector.
 */
#include "common.h"

#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif
#ifndef MEMBARRIER_CMD_GET_REGISTRATIONS
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)
#endif
#define IOPRIO_WHO_PROCESS 1
#define SCHED_FLAG_RESET_ON_FORK 0x01
#define ARCH_SET_GS 0x1001
#define ARCH_GET_GS 0x1004
#define ARCH_GET_CPUID 0x1011
#define ARCH_SET_CPUID 0x1012
#define IOPRIO(cls, lvl) (((cls) << 13) | (lvl))
#define MAGIC_A 0xa77a1ULL /* getcpu's unused third argument: filter A answers 77 */
#define MAGIC_B 0xa77b2ULL /* filter B (t1 only) answers 78 */

struct sched_attr_ {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

/* What a thread sets, and then what it found set (its expected state). */
struct tstate {
	const char *name;
	int policy, nice, prio, reset_on_fork, cpu, ioprio, mce, tsc, pdeath, own_filter, cpuid_faults;
	long slack;
	/* observed after the set-up */
	struct sched_attr_ sa;
	cpu_set_t cpus;
	long got_ioprio, got_slack, got_mce;
	int got_tsc, got_pdeath, filters, got_cpuid;
	pthread_t th;
	int tid;
	char fail[512];
};

static struct tstate threads[3] = {
	{.name = "attrs-main", .policy = SCHED_OTHER, .nice = 7, .cpu = 0, .ioprio = IOPRIO(2, 5), .mce = -1,
	 .tsc = PR_TSC_ENABLE, .pdeath = SIGURG, .slack = 123456},
	{.name = "attrs-t1", .policy = SCHED_BATCH, .nice = 5, .cpu = 1, .ioprio = IOPRIO(3, 0), .mce = PR_MCE_KILL_EARLY,
	 .tsc = PR_TSC_ENABLE, .pdeath = SIGWINCH, .own_filter = 1, .slack = 77777},
	{.name = "attrs-u2", .policy = SCHED_IDLE, .nice = 0, .reset_on_fork = 1, .cpu = -1, .ioprio = -1, .mce = -1,
	 .tsc = PR_TSC_SIGSEGV, .pdeath = 0, .slack = 99999, .cpuid_faults = 1},
};

static int plain, seccomp_raw, aio_raw, aio_inflight, with_kid, strict, keep_dumpable, dispatch;
static volatile char dispatch_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
static int strict_pipe[2];
static int start_oom, start_subreaper; /* --plain: what it started with */
static pthread_t strict_thread;
static pthread_barrier_t step_start, step_checked;
static volatile int step, finished;
static int rt1, rt2; /* SIGRTMIN+1 (process), SIGRTMIN+2 (t1) */
static int rt3;      /* SIGRTMIN+3: queued once with value 4242, pending until the end */

static long raw_syscall3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

static int show_all; /* ATTRS_SHOW_ALL: every difference on stderr, not only the first */

#define CHECK(t, cond, ...)                                                                   \
	do {                                                                                      \
		if (!(cond) && show_all) {                                                            \
			fprintf(stderr, __VA_ARGS__);                                                     \
			fputc('\n', stderr);                                                              \
		}                                                                                     \
		if (!(cond) && !(t)->fail[0])                                                         \
			snprintf((t)->fail, sizeof (t)->fail, __VA_ARGS__);                               \
	} while (0)

/* ---- per thread ---- */

static int sched_getattr_(struct sched_attr_ *a)
{
	memset(a, 0, sizeof *a);
	return (int)syscall(SYS_sched_getattr, 0, a, sizeof *a, 0);
}

static int seccomp_filters(void)
{
	char buf[4096];
	int fd = open("/proc/thread-self/status", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *p = strstr(buf, "Seccomp_filters:");
	return p ? atoi(p + 16) : -1;
}

/* getcpu with a magic third argument (the kernel ignores it): the
 * filters answer with their own errno. */
static int filter_answer(uint64_t magic)
{
	unsigned cpu, node;
	long r = syscall(SYS_getcpu, &cpu, &node, magic);
	return r == 0 ? 0 : errno;
}

static void set_own(struct tstate *t)
{
	prctl(PR_SET_NAME, t->name);
	if (!plain) {
		struct sched_attr_ a;
		memset(&a, 0, sizeof a);
		a.size = sizeof a;
		a.policy = (uint32_t)t->policy;
		a.nice = t->nice;
		a.priority = (uint32_t)t->prio;
		a.flags = t->reset_on_fork ? SCHED_FLAG_RESET_ON_FORK : 0;
		if (syscall(SYS_sched_setattr, 0, &a, 0) != 0)
			snprintf(t->fail, sizeof t->fail, "sched_setattr(%s, policy %d): %s", t->name, t->policy, strerror(errno));
		if (t->cpu >= 0) {
			cpu_set_t s;
			CPU_ZERO(&s);
			CPU_SET(t->cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &s);
			sched_setaffinity(0, sizeof s, &s);
		}
		if (t->ioprio >= 0)
			syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, t->ioprio);
		prctl(PR_SET_TIMERSLACK, t->slack, 0, 0, 0);
		if (t->mce >= 0)
			prctl(PR_MCE_KILL, PR_MCE_KILL_SET, t->mce, 0, 0);
		prctl(PR_SET_PDEATHSIG, t->pdeath, 0, 0, 0);
		prctl(PR_SET_TSC, t->tsc, 0, 0, 0);
		/* where the CPU can make cpuid fault (ARCH_SET_CPUID); elsewhere it stays as it is */
		if (t->cpuid_faults)
			syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
	}
	t->tid = (int)syscall(SYS_gettid);
}

static void observe_own(struct tstate *t)
{
	sched_getattr_(&t->sa);
	CPU_ZERO(&t->cpus);
	sched_getaffinity(0, sizeof t->cpus, &t->cpus);
	t->got_ioprio = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	t->got_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	t->got_mce = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	t->got_tsc = -1;
	prctl(PR_GET_TSC, &t->got_tsc, 0, 0, 0);
	t->got_pdeath = -1;
	prctl(PR_GET_PDEATHSIG, &t->got_pdeath, 0, 0, 0);
	t->filters = seccomp_filters();
	t->got_cpuid = (int)syscall(SYS_arch_prctl, ARCH_GET_CPUID, 0);
}

static void check_own(struct tstate *t)
{
	char name[16] = "";
	prctl(PR_GET_NAME, name);
	CHECK(t, !strcmp(name, t->name), "thread %d's name is %s, not %s", t->tid, name, t->name);
	CHECK(t, (int)syscall(SYS_gettid) == t->tid, "%s's TID is %ld, not %d", t->name, syscall(SYS_gettid), t->tid);
	struct sched_attr_ a;
	sched_getattr_(&a);
	CHECK(t, a.policy == t->sa.policy && a.nice == t->sa.nice && a.priority == t->sa.priority &&
		 (a.flags & SCHED_FLAG_RESET_ON_FORK) == (t->sa.flags & SCHED_FLAG_RESET_ON_FORK),
	      "%s's scheduling is policy %u nice %d priority %u flags %#llx, not policy %u nice %d priority %u flags %#llx",
	      t->name, a.policy, a.nice, a.priority, (unsigned long long)a.flags, t->sa.policy, t->sa.nice, t->sa.priority,
	      (unsigned long long)t->sa.flags);
	cpu_set_t s;
	CPU_ZERO(&s);
	sched_getaffinity(0, sizeof s, &s);
	CHECK(t, CPU_EQUAL(&s, &t->cpus), "%s's CPU affinity changed (%d CPUs, was %d)", t->name, CPU_COUNT(&s),
	      CPU_COUNT(&t->cpus));
	long io = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	CHECK(t, io == t->got_ioprio, "%s's I/O priority is %#lx, not %#lx", t->name, io, t->got_ioprio);
	long slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	CHECK(t, slack == t->got_slack, "%s's timer slack is %ld ns, not %ld", t->name, slack, t->got_slack);
	long mce = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	CHECK(t, mce == t->got_mce, "%s's PR_MCE_KILL policy is %ld, not %ld", t->name, mce, t->got_mce);
	int tsc = -1, pd = -1;
	prctl(PR_GET_TSC, &tsc, 0, 0, 0);
	CHECK(t, tsc == t->got_tsc, "%s's PR_GET_TSC is %d, not %d", t->name, tsc, t->got_tsc);
	prctl(PR_GET_PDEATHSIG, &pd, 0, 0, 0);
	CHECK(t, pd == t->got_pdeath, "%s's parent-death signal is %d, not %d", t->name, pd, t->got_pdeath);
	int cpuid = (int)syscall(SYS_arch_prctl, ARCH_GET_CPUID, 0);
	CHECK(t, cpuid == t->got_cpuid, "%s's ARCH_GET_CPUID is %d, not %d", t->name, cpuid, t->got_cpuid);
	if (plain)
		return;
	int f = seccomp_filters();
	CHECK(t, f == t->filters, "%s has %d seccomp filters, not %d", t->name, f, t->filters);
	int ea = filter_answer(MAGIC_A), eb = filter_answer(MAGIC_B);
	CHECK(t, ea == 77, "%s: seccomp filter A (all threads) is gone: getcpu answered %s", t->name, errname(ea));
	CHECK(t, eb == (t->own_filter ? 78 : 0), "%s: seccomp filter B (t1 only) answered %s", t->name, errname(eb));
}

/* Signals queued for this thread at the previous step. */
static void take_thread_signals(struct tstate *t, int s)
{
	if (plain || s <= 1 || t == &threads[0])
		return;
	int sig = t == &threads[1] ? rt2 : SIGUSR2;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	struct timespec zero = {0, 0};
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int got = sigtimedwait(&set, &si, &zero);
	CHECK(t, got == sig, "%s: signal %d queued for it at step %d is gone (%s)", t->name, sig, s - 1,
	      got < 0 ? errname(errno) : "other");
	if (t == &threads[1])
		CHECK(t, si.si_code == SI_QUEUE && si.si_pid == getpid() && si.si_value.sival_int == (s - 1) * 10 + 7,
		      "%s: its queued signal came back with code %d pid %d value %d, not code %d pid %d value %d", t->name,
		      si.si_code, si.si_pid, si.si_value.sival_int, SI_QUEUE, getpid(), (s - 1) * 10 + 7);
	else
		CHECK(t, si.si_code == SI_USER && si.si_pid == getpid() && si.si_uid == getuid(),
		      "%s: SIGUSR2 came back with code %d pid %d uid %d, not from pthread_kill (code %d pid %d)", t->name,
		      si.si_code, si.si_pid, si.si_uid, SI_USER, getpid());
	got = sigtimedwait(&set, &si, &zero);
	CHECK(t, got < 0 && errno == EAGAIN, "%s: signal %d is pending more often than it was sent", t->name, sig);
}

static void *thread_main(void *arg)
{
	struct tstate *t = arg;
	set_own(t);
	pthread_barrier_wait(&step_start); /* set-up done */
	pthread_barrier_wait(&step_checked); /* filter A is on every thread */
	if (t->own_filter && !plain) {
		struct sock_filter code[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getcpu, 0, 3),
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)MAGIC_B, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 78),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = {sizeof code / sizeof code[0], code};
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, &prog) != 0)
			snprintf(t->fail, sizeof t->fail, "seccomp filter B: %s", strerror(errno));
	}
	observe_own(t);
	pthread_barrier_wait(&step_start); /* observed */
	for (;;) {
		pthread_barrier_wait(&step_start);
		if (finished)
			return 0;
		take_thread_signals(t, step);
		check_own(t);
		pthread_barrier_wait(&step_checked);
	}
}

/* In strict mode a thread may only read, write and exit (not through
 * glibc's pthread_exit, which needs more). */
static void *strict_main(void *arg)
{
	(void)arg;
	char c;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0) {
		say("FAIL PR_SET_SECCOMP, SECCOMP_MODE_STRICT: %s", strerror(errno));
		return 0;
	}
	if (read(strict_pipe[0], &c, 1) != 1)
		raw_syscall3(SYS_write, 1, (long)"FAIL the strict thread's read failed\n", 36);
	raw_syscall3(SYS_exit, 0, 0, 0);
	return 0;
}

/* ---- per process ---- */

static aio_context_t ctx;
static struct iocb iocbs[2];
static char aio_bytes[8] = "attrs-io";
static int devnull, fd_maps, fd_status;
static pid_t zombie_exit, zombie_killed, kid;
static int fd_kid_status;

struct aio_ring_ {
	unsigned id, nr, head, tail, magic, compat_features, incompat_features, header_length;
	struct io_event events[];
};

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die(path);
	close(fd);
}

static uint64_t gs_target[4]; /* the main thread's %gs points here */

static int read_int_file(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	return n > 0 ? atoi(buf) : -9999;
}

static void install_filter_a(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getcpu, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)MAGIC_A, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 77),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof code / sizeof code[0], code};
	long r = seccomp_raw ? raw_syscall3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, (long)&prog)
			     : syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (r != 0)
		die("seccomp filter A (TSYNC)");
}

static pid_t spawn_zombie(int killed)
{
	pid_t p = fork();
	if (p < 0)
		die("fork");
	if (p == 0) {
		if (killed)
			for (;;)
				pause();
		_exit(42);
	}
	if (killed)
		kill(p, SIGTERM);
	siginfo_t si;
	if (waitid(P_PID, (id_t)p, &si, WEXITED | WNOWAIT) != 0)
		die("waitid");
	return p;
}

/* A live child that reads its own /proc/self/status, opened before any
 * checkpoint, and says FAIL when it reads another process. */
static void spawn_kid(void)
{
	pid_t parent = getpid();
	kid = fork();
	if (kid < 0)
		die("fork");
	if (kid == 0) {
		prctl(PR_SET_NAME, "attrs-kid");
		int fd = open("/proc/self/status", O_RDONLY);
		char want[64], buf[4096];
		snprintf(want, sizeof want, "Pid:\t%d\n", getpid());
		for (;;) {
			if (getppid() != parent)
				_exit(0); /* the parent failed and exited: no orphan left behind */
			ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
			buf[n > 0 ? n : 0] = 0;
			if (!strstr(buf, "Name:\tattrs-kid\n") || !strstr(buf, want)) {
				say("FAIL the child's /proc/self/status reads another process (%zd bytes: %.60s)", n, buf);
				_exit(1);
			}
			pace_ms(20);
		}
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", kid);
	for (int i = 0; i < 1000; i++) { /* until the child has named itself */
		char buf[4096];
		fd_kid_status = open(path, O_RDONLY);
		ssize_t n = read(fd_kid_status, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = 0;
		if (strstr(buf, "Name:\tattrs-kid\n"))
			return;
		close(fd_kid_status);
		pace_ms(1);
	}
	die("the child did not name itself");
}

static void setup_aio(void)
{
	devnull = open("/dev/zero", O_WRONLY | O_CLOEXEC); /* not /dev/null, which ckrun may take for its stdin */
	long r = aio_raw ? raw_syscall3(SYS_io_setup, 4, (long)&ctx, 0) : syscall(SYS_io_setup, 4, &ctx);
	if (r != 0)
		die("io_setup");
	if (aio_inflight) {
		static int p[2];
		static struct iocb poll_cb;
		struct iocb *list[1] = {&poll_cb};
		if (pipe(p) != 0)
			die("pipe");
		poll_cb.aio_lio_opcode = IOCB_CMD_POLL;
		poll_cb.aio_fildes = (uint32_t)p[0];
		poll_cb.aio_buf = POLLIN;
		if (syscall(SYS_io_submit, ctx, 1, list) != 1)
			die("io_submit (poll)");
	}
}

static void setup_process(void)
{
	rt1 = SIGRTMIN + 1;
	rt2 = SIGRTMIN + 2;
	rt3 = SIGRTMIN + 3;
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, rt1);
	sigaddset(&block, rt2);
	sigaddset(&block, rt3);
	pthread_sigmask(SIG_BLOCK, &block, 0);
	if (!plain)
		sigqueue(getpid(), rt3, (union sigval){.sival_int = 4242});
	zombie_exit = spawn_zombie(0);
	zombie_killed = spawn_zombie(1);
	if (with_kid)
		spawn_kid();
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/maps", getpid());
	fd_maps = open(path, O_RDONLY);
	fd_status = open("/proc/self/status", O_RDONLY);
	if (fd_maps < 0 || fd_status < 0)
		die("open /proc");
	if (plain)
		return;
	write_file("/proc/self/oom_score_adj", "345");
	write_file("/proc/self/coredump_filter", "0x3f");
	if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)gs_target) != 0)
		die("ARCH_SET_GS");
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
		die("PR_SET_THP_DISABLE");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
		die("PR_SET_CHILD_SUBREAPER");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		die("PR_SET_NO_NEW_PRIVS");
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0)
		die("membarrier");
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) != 0)
		die("PR_SET_MEMORY_MERGE");
	setup_aio();
}

/* After the threads exist: what applies to all of them, and what makes
 * the process less able to change itself. */
static void setup_late(void)
{
	if (plain)
		return;
	install_filter_a();
	if (!keep_dumpable && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		die("PR_SET_DUMPABLE");
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0)
		die("PR_SET_MDWE");
}

static struct tstate *me(void)
{
	return &threads[0];
}

static void check_process(void)
{
	struct tstate *t = me();
	char buf[65536];
	ssize_t n = pread(fd_status, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	char want[64];
	snprintf(want, sizeof want, "Pid:\t%d\n", getpid());
	CHECK(t, strstr(buf, "Name:\tattrs-main\n") && strstr(buf, want),
	      "/proc/self/status opened at the start reads another process (%zd bytes: %.60s)", n, buf);
	n = pread(fd_maps, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	CHECK(t, n > 0 && strstr(buf, "[stack]"), "/proc/%d/maps opened at the start reads %zd bytes without a stack",
	      getpid(), n);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK(t, waitid(P_PID, (id_t)zombie_exit, &si, WEXITED | WNOWAIT | WNOHANG) == 0 && si.si_pid == zombie_exit &&
		     si.si_code == CLD_EXITED && si.si_status == 42,
	      "zombie %d (exit 42) reads pid %d code %d status %d", zombie_exit, si.si_pid, si.si_code, si.si_status);
	memset(&si, 0, sizeof si);
	CHECK(t, waitid(P_PID, (id_t)zombie_killed, &si, WEXITED | WNOWAIT | WNOHANG) == 0 && si.si_pid == zombie_killed &&
		     si.si_code == CLD_KILLED && si.si_status == SIGTERM,
	      "zombie %d (killed by SIGTERM) reads pid %d code %d status %d", zombie_killed, si.si_pid, si.si_code,
	      si.si_status);
	if (with_kid) {
		n = pread(fd_kid_status, buf, sizeof buf - 1, 0);
		buf[n > 0 ? n : 0] = 0;
		snprintf(want, sizeof want, "Pid:\t%d\n", kid);
		CHECK(t, strstr(buf, "Name:\tattrs-kid\n") && strstr(buf, want),
		      "/proc/%d/status of the child reads another process (%zd bytes: %.60s)", kid, n, buf);
	}
	if (!plain) {
		sigset_t pend;
		sigpending(&pend);
		CHECK(t, sigismember(&pend, rt3), "SIGRTMIN+3, queued at the start, is no longer pending");
	}
	int v = read_int_file("/proc/self/oom_score_adj");
	if (plain) {
		int sr = -1;
		prctl(PR_GET_CHILD_SUBREAPER, &sr, 0, 0, 0);
		CHECK(t, v == start_oom, "oom_score_adj is %d, not %d as it started", v, start_oom);
		CHECK(t, sr == start_subreaper, "the child-subreaper flag is %d, not %d as it started", sr, start_subreaper);
		return;
	}
	CHECK(t, v == 345, "oom_score_adj is %d, not 345", v);
	char cf[32] = "";
	int cfd = open("/proc/self/coredump_filter", O_RDONLY);
	if (cfd >= 0) {
		ssize_t cn = read(cfd, cf, sizeof cf - 1);
		cf[cn > 0 ? cn : 0] = 0;
		close(cfd);
	}
	CHECK(t, strtoul(cf, 0, 16) == 0x3f, "coredump_filter is %s, not 0x3f", cf);
	unsigned long gs = 0;
	syscall(SYS_arch_prctl, ARCH_GET_GS, &gs);
	CHECK(t, gs == (unsigned long)gs_target, "the main thread's %%gs base is %#lx, not %p", gs, (void *)gs_target);
	CHECK(t, prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "PR_GET_THP_DISABLE is %d, not 1", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
	int sub = -1;
	prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
	CHECK(t, sub == 1, "the child-subreaper flag is %d, not 1", sub);
	CHECK(t, prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == keep_dumpable, "dumpable is %d, not %d", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0),
	      keep_dumpable);
	CHECK(t, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs is off");
	long reg = syscall(SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
	CHECK(t, reg == MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, "membarrier registrations are %#lx, not %#x", reg,
	      MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
	long mb = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	CHECK(t, mb == 0, "MEMBARRIER_CMD_PRIVATE_EXPEDITED failed: %s", errname(errno));
	CHECK(t, prctl(PR_GET_MDWE, 0, 0, 0, 0) == PR_MDWE_REFUSE_EXEC_GAIN, "PR_GET_MDWE is %d", prctl(PR_GET_MDWE, 0, 0, 0, 0));
	void *wx = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(t, wx == MAP_FAILED, "a writable and executable mapping was allowed (PR_SET_MDWE is gone)");
	if (wx != MAP_FAILED)
		munmap(wx, 4096);
	CHECK(t, prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1, "PR_GET_MEMORY_MERGE is %d", prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0));
	char ring_line[64];
	snprintf(ring_line, sizeof ring_line, "\n%llx-", (unsigned long long)ctx);
	n = pread(fd_maps, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	const char *rl = strstr(buf, ring_line);
	CHECK(t, rl && strstr(rl, "/[aio]") && strstr(rl, "/[aio]") < strchr(rl + 1, '\n'),
	      "the AIO ring is not mapped at its context ID %#llx", (unsigned long long)ctx);
}

/* The completion of the previous step's request, not yet reaped at the
 * checkpoint, then a new request whose completion stays in the ring. */
static void step_aio(int s)
{
	struct tstate *t = me();
	struct aio_ring_ *ring = (struct aio_ring_ *)ctx;
	CHECK(t, ring->magic == 0xa10a10a1, "the AIO ring's magic is %#x", ring->magic);
	unsigned pending = (ring->tail + ring->nr - ring->head) % ring->nr;
	CHECK(t, pending == (s > 1), "the AIO ring holds %u completions, not %d (head %u tail %u of %u)", pending, s > 1,
	      ring->head, ring->tail, ring->nr);
	if (s > 1) {
		struct io_event ev;
		struct timespec zero = {0, 0};
		memset(&ev, 0, sizeof ev);
		long got = syscall(SYS_io_getevents, ctx, 1, 1, &ev, &zero);
		CHECK(t, got == 1 && ev.data == (uint64_t)(s - 1) && ev.res == 8 && ev.obj == (uint64_t)&iocbs[(s - 1) % 2],
		      "the AIO completion of step %d came back as %ld event(s): data %llu res %lld obj %#llx", s - 1, got,
		      (unsigned long long)ev.data, (long long)ev.res, (unsigned long long)ev.obj);
	}
	struct iocb *cb = &iocbs[s % 2];
	memset(cb, 0, sizeof *cb);
	cb->aio_data = (uint64_t)s;
	cb->aio_lio_opcode = IOCB_CMD_PWRITE;
	cb->aio_fildes = (uint32_t)devnull;
	cb->aio_buf = (uint64_t)aio_bytes;
	cb->aio_nbytes = sizeof aio_bytes;
	struct iocb *list[1] = {cb};
	long r = syscall(SYS_io_submit, ctx, 1, list);
	CHECK(t, r == 1, "io_submit failed: %s", errname(errno));
}

/* The process's own signals queued at the previous step, in order. */
static void take_process_signals(int s)
{
	struct tstate *t = me();
	if (s <= 1)
		return;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, rt1);
	struct timespec zero = {0, 0};
	for (int k = 0; k < 5; k++) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		int got = sigtimedwait(&set, &si, &zero);
		if (k == 4) {
			CHECK(t, got < 0 && errno == EAGAIN, "a signal is pending more often than it was sent (%d)", got);
			break;
		}
		int want = k == 0 ? SIGUSR1 : rt1;
		CHECK(t, got == want, "queued signal %d of step %d: got %d, not %d", k, s - 1, got, want);
		if (k == 0)
			CHECK(t, si.si_code == SI_USER && si.si_pid == getpid() && si.si_uid == getuid(),
			      "SIGUSR1 came back with code %d pid %d uid %d, not as kill() sent it", si.si_code, si.si_pid, si.si_uid);
		else
			CHECK(t, si.si_code == SI_QUEUE && si.si_pid == getpid() && si.si_uid == getuid() &&
				     si.si_value.sival_int == (s - 1) * 10 + k,
			      "queued signal %d came back with code %d pid %d value %d, not code %d pid %d value %d", k,
			      si.si_code, si.si_pid, si.si_value.sival_int, SI_QUEUE, getpid(), (s - 1) * 10 + k);
	}
}

static void queue_signals(int s)
{
	kill(getpid(), SIGUSR1);
	for (int k = 1; k <= 3; k++)
		sigqueue(getpid(), rt1, (union sigval){.sival_int = s * 10 + k});
	pthread_sigqueue(threads[1].th, rt2, (union sigval){.sival_int = s * 10 + 7});
	pthread_kill(threads[2].th, SIGUSR2);
}

int main(int argc, char **argv)
{
	int steps = 40;
	int rt = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rt"))
			rt = 1;
		else if (!strcmp(argv[i], "--plain"))
			plain = 1;
		else if (!strcmp(argv[i], "--seccomp-raw"))
			seccomp_raw = 1;
		else if (!strcmp(argv[i], "--aio-raw"))
			aio_raw = 1;
		else if (!strcmp(argv[i], "--aio-inflight"))
			aio_inflight = 1;
		else if (!strcmp(argv[i], "--kid"))
			with_kid = 1;
		else if (!strcmp(argv[i], "--strict"))
			strict = 1;
		else if (!strcmp(argv[i], "--keep-dumpable"))
			keep_dumpable = 1;
		else if (!strcmp(argv[i], "--dispatch"))
			dispatch = 1;
		else {
			fprintf(stderr, "usage: attrs [--steps S] [--rt] [--plain] [--kid] [--seccomp-raw] [--aio-raw] [--aio-inflight] [--strict] [--keep-dumpable] [--dispatch]\n");
			return 2;
		}
	}
	if (rt) {
		threads[2].policy = SCHED_FIFO;
		threads[2].prio = 3;
	}
	show_all = getenv("ATTRS_SHOW_ALL") != 0;
	say("attrs: start");
	start_oom = read_int_file("/proc/self/oom_score_adj");
	prctl(PR_GET_CHILD_SUBREAPER, &start_subreaper, 0, 0, 0);
	setup_process();
	pthread_barrier_init(&step_start, 0, 3);
	pthread_barrier_init(&step_checked, 0, 3);
	threads[0].th = pthread_self();
	for (int i = 1; i < 3; i++)
		if (pthread_create(&threads[i].th, 0, thread_main, &threads[i]) != 0)
			die("pthread_create");
	set_own(&threads[0]);
	pthread_barrier_wait(&step_start);
	setup_late();
	/* every system call allowed by the selector: the program runs as before */
	if (dispatch && prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0, 0, &dispatch_selector) != 0)
		die("PR_SET_SYSCALL_USER_DISPATCH");
	if (strict && (pipe(strict_pipe) != 0 || pthread_create(&strict_thread, 0, strict_main, 0) != 0))
		die("the strict thread");
	pthread_barrier_wait(&step_checked);
	observe_own(&threads[0]);
	pthread_barrier_wait(&step_start);
	for (int i = 0; i < 3; i++) {
		struct tstate *t = &threads[i];
		if (t->fail[0]) {
			say("FAIL set-up: %s", t->fail);
			return 1;
		}
		if (getenv("ATTRS_SHOW"))
			fprintf(stderr, "%s tid %d: policy %u nice %d prio %u flags %#llx cpus %d ioprio %#lx slack %ld mce %ld tsc %d pdeath %d filters %d cpuid %d\n",
				t->name, t->tid, t->sa.policy, t->sa.nice, t->sa.priority, (unsigned long long)t->sa.flags,
				CPU_COUNT(&t->cpus), t->got_ioprio, t->got_slack, t->got_mce, t->got_tsc, t->got_pdeath, t->filters, t->got_cpuid);
	}
	for (int s = 1; s <= steps; s++) {
		step = s;
		pthread_barrier_wait(&step_start);
		if (!plain) {
			take_process_signals(s);
			step_aio(s);
		}
		check_process();
		check_own(me());
		pthread_barrier_wait(&step_checked);
		for (int i = 0; i < 3; i++)
			if (threads[i].fail[0]) {
				say("FAIL step %d: %s", s, threads[i].fail);
				return 1;
			}
		if (!plain)
			queue_signals(s);
		say("step %d ok", s);
		pace_ms(50);
	}
	if (!plain) {
		sigset_t set;
		siginfo_t si;
		struct timespec zero = {0, 0};
		sigemptyset(&set);
		sigaddset(&set, rt3);
		memset(&si, 0, sizeof si);
		if (sigtimedwait(&set, &si, &zero) != rt3 || si.si_code != SI_QUEUE || si.si_value.sival_int != 4242 ||
		    si.si_pid != getpid()) {
			say("FAIL SIGRTMIN+3 came back with code %d pid %d value %d, not code %d pid %d value 4242", si.si_code,
			    si.si_pid, si.si_value.sival_int, SI_QUEUE, getpid());
			return 1;
		}
	}
	finished = 1;
	pthread_barrier_wait(&step_start);
	for (int i = 1; i < 3; i++)
		pthread_join(threads[i].th, 0);
	if (with_kid) {
		kill(kid, SIGKILL);
		waitpid(kid, 0, 0);
	}
	if (strict) {
		if (write(strict_pipe[1], "x", 1) != 1 || pthread_join(strict_thread, 0) != 0)
			die("the strict thread did not end");
	}
	say("done");
	return 0;
}
