/* The checkpoint protocol inside the program.
 *
 * ckrun writes a request on the shim's connection; O_ASYNC turns it into
 * the internal signal. The thread that takes it is the leader: it stops
 * every other thread by sending them the same signal (tagged with the
 * checkpoint's epoch), writes the image while they wait in the handler,
 * then releases them. Every thread saves a resume context inside the
 * handler; a restored process continues from exactly there (see
 * docs/design.md). Only raw syscalls from here on: this is signal context. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/sched.h>

#include "ckrun.h"
#include "crc32c.h"
#include "sys.h"
#include "wire.h"

enum { ST_IDLE, ST_STOPPING, ST_RELEASING };
static volatile int state;
static volatile int arrived;   /* participants parked in the handler */
static volatile int departed;  /* participants that left after release */
static volatile int epoch;
static int overflowed;         /* more threads than slots */

#define SA_RESTORER 0x04000000

static char request_buf[8320];
static size_t request_len;
static int session_gone; /* ckrun closed the connection: it died */
static char request_path[4096];
static char request_parent[4096]; /* "parent <path>": the image to be incremental to */
static int request_fd = -1;       /* the image file ckrun sent with "save" (SCM_RIGHTS) */

static uint64_t now_ns(void)
{
	struct ck_timespec ts;
	ck_clock_gettime(1 /* CLOCK_MONOTONIC */, &ts);
	return (uint64_t)ts.sec * 1000000000ULL + (uint64_t)ts.nsec;
}

/* CKRUN_TRACE=1: how long each phase of a checkpoint took, on stderr. */
static void trace(const char *phase, uint64_t since)
{
	if (!ck_session.trace)
		return;
	char buf[128];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, "ckrun[");
	ck_str_dec(&m, ck_getpid());
	ck_str_add(&m, "]: ");
	ck_str_add(&m, phase);
	ck_str_add(&m, " ");
	ck_str_udec(&m, (now_ns() - since) / 1000);
	ck_str_add(&m, " us\n");
	ck_write(2, buf, m.len);
}

static void futex_wait(volatile int *addr, int val, long timeout_ns)
{
	struct ck_timespec ts = {timeout_ns / 1000000000L, timeout_ns % 1000000000L};
	ck_futex(addr, FUTEX_WAIT_PRIVATE, val, timeout_ns ? &ts : 0);
}

static void futex_wake_all(volatile int *addr)
{
	ck_futex(addr, FUTEX_WAKE_PRIVATE, INT_MAX, 0);
}

/* Copies the rest of a "<word> <path>" line into out; 0 if it is not one. */
static int line_arg(const char *line, size_t len, const char *word, char *out, size_t cap)
{
	size_t wl = ck_strlen(word);
	if (len <= wl + 1 || !ck_strneq(line, word, wl) || line[wl] != ' ' || len - wl - 1 >= cap)
		return 0;
	ck_memcpy(out, line + wl + 1, len - wl - 1);
	out[len - wl - 1] = 0;
	return 1;
}

/* Reads what ckrun sent; a descriptor that came with it (the image file,
 * with "save") is kept in request_fd, replacing one not used. */
static long recv_request(void *buf, size_t n)
{
	struct iovec iov = {buf, n};
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct msghdr msg;
	ck_memset(&msg, 0, sizeof msg);
	ck_memset(&ctl, 0, sizeof ctl);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = &ctl;
	msg.msg_controllen = sizeof ctl;
	long r = CK_SYS3(SYS_recvmsg, ck_session.ctl_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	struct cmsghdr *c = &ctl.h;
	if (r >= 0 && msg.msg_controllen >= sizeof *c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
		int fds[4];
		size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		ck_memcpy(fds, CMSG_DATA(c), (nfds > 4 ? 4 : nfds) * sizeof(int));
		for (size_t i = 0; i < nfds && i < 4; i++) {
			if (i == 0 && request_fd < 0)
				request_fd = fds[i];
			else
				ck_close(fds[i]);
		}
	}
	return r;
}

/* The image file ckrun sent, or -1: the shim creates the file itself. */
static int take_image_fd(void)
{
	int fd = request_fd;
	request_fd = -1;
	return fd;
}

/* The next complete line from ckrun, waiting up to timeout_ms for it (0:
 * only what is there already). Returns its length, or -1. */
static long next_line(char *out, size_t cap, int timeout_ms)
{
	for (;;) {
		for (size_t i = 0; i < request_len; i++) {
			if (request_buf[i] != '\n')
				continue;
			size_t n = i < cap - 1 ? i : cap - 1;
			ck_memcpy(out, request_buf, n);
			out[n] = 0;
			request_len -= i + 1;
			for (size_t j = 0; j < request_len; j++)
				request_buf[j] = request_buf[i + 1 + j];
			return (long)n;
		}
		if (request_len == sizeof request_buf)
			request_len = 0; /* a line longer than any path: drop it */
		long r = recv_request(request_buf + request_len, sizeof request_buf - request_len);
		if (r > 0) {
			request_len += (size_t)r;
			continue;
		}
		if (r == -EINTR)
			continue;
		/* ECONNRESET: ckrun died with bytes of ours unread */
		if (r == 0 || r == -ECONNRESET)
			session_gone = 1;
		if (r != -EAGAIN || timeout_ms <= 0)
			return -1;
		struct {
			int fd;
			short events, revents;
		} pfd = {ck_session.ctl_fd, 1 /* POLLIN */, 0};
		r = CK_SYS3(SYS_poll, &pfd, 1, timeout_ms);
		if (r <= 0 && r != -EINTR)
			return -1;
	}
}

enum { REQ_NONE, REQ_AUTONOMOUS, REQ_BARRIER };

/* A "checkpoint <path>" request (this process decides everything itself)
 * or a "stop <path>" request (the first of ckrun's barrier steps, see
 * docs/design.md), if one is there; a "parent <path>" line before it names
 * the image the checkpoint may be incremental to. */
static int take_request(void)
{
	char line[sizeof request_buf];
	long n;
	while ((n = next_line(line, sizeof line, 0)) >= 0) {
		if (ck_starts_with(line, "refused")) {
			ck_session_refused();
			return REQ_NONE;
		}
		if (ck_jobstop_line(line))
			continue;
		if (line_arg(line, (size_t)n, "checkpoint", request_path, sizeof request_path - 8))
			return REQ_AUTONOMOUS;
		if (line_arg(line, (size_t)n, "stop", request_path, sizeof request_path - 8))
			return REQ_BARRIER;
		line_arg(line, (size_t)n, "parent", request_parent, sizeof request_parent);
	}
	return REQ_NONE;
}

/* Waits for ckrun's next barrier step; a lost connection or a minute of
 * silence counts as "abort": the program must not stay stopped. */
static int await_step(const char *word, char *args, size_t cap)
{
	char line[sizeof request_buf];
	long n;
	size_t wl = ck_strlen(word);
	while ((n = next_line(line, sizeof line, 60000)) >= 0) {
		if ((size_t)n >= wl && ck_strneq(line, word, wl) && (line[wl] == 0 || line[wl] == ' ')) {
			if (args) {
				struct ck_str a;
				ck_str_init(&a, args, cap);
				ck_str_add(&a, line[wl] ? line + wl + 1 : "");
			}
			return 1;
		}
		if (ck_strneq(line, "abort", 5))
			return 0;
		ck_jobstop_line(line);
	}
	return 0;
}

/* Waits for "resume" (or "abort") after "saved". A "hold" before it (ckrun
 * migrate's last round) lets the writer finish and answer while every
 * thread stays stopped: the image is complete and the program has not run
 * on. ckrun repeats "hold" while it holds (each line restarts the minute
 * of silence after which the program runs on by itself). */
static void reply_result(struct ck_scratch *s, int ok, uint64_t pause, uint64_t total);

/* "freeze" (while held, just before ckrun's SIGKILL): the connections go
 * into repair mode (ck_inet_freeze) and the process never runs on with
 * them so: a generation ckrun marks frozen must be the program's last
 * state, so without "resume" it ends itself where it would have run on. */
static void freeze_connections(int *frozen)
{
	char buf[160];
	struct ck_str m;
	long n = ck_inet_freeze();
	ck_str_init(&m, buf, sizeof buf);
	if (n >= 0) {
		*frozen = 1;
		ck_str_add(&m, "frozen ");
		ck_str_dec(&m, n);
	} else {
		ck_str_add(&m, "error cannot put a TCP connection in repair mode (");
		ck_str_add(&m, n == -EPERM ? "it needs CAP_NET_ADMIN" : "setsockopt TCP_REPAIR failed");
		ck_str_add(&m, ")");
	}
	ck_str_add(&m, "\n");
	ck_session_reply(buf);
}

static int after_frozen(int frozen, int run_on)
{
	if (frozen && !run_on)
		ck_tgkill((int)ck_getpid(), (int)ck_getpid(), SIGKILL);
	if (frozen)
		ck_inet_thaw();
	return run_on;
}

static int await_resume(struct ck_scratch *s, int ok, int *pause_fd, int *answered, uint64_t t0)
{
	char line[sizeof request_buf];
	long n;
	int frozen = 0;
	while ((n = next_line(line, sizeof line, 60000)) >= 0) {
		if (ck_strneq(line, "resume", 6) && (line[6] == 0 || line[6] == ' '))
			return after_frozen(frozen, 1);
		if (ck_strneq(line, "abort", 5))
			return after_frozen(frozen, 0);
		if (ck_strneq(line, "freeze", 6) && line[6] == 0 && *answered) {
			freeze_connections(&frozen);
			continue;
		}
		if (ck_strneq(line, "thaw", 4) && line[4] == 0) {
			if (frozen)
				ck_inet_thaw();
			frozen = 0;
			continue;
		}
		if (ck_strneq(line, "hold", 4) && (line[4] == 0 || line[4] == ' ')) {
			uint64_t pause = now_ns() - t0;
			if (*pause_fd >= 0) {
				ck_sendto(*pause_fd, &pause, sizeof pause, MSG_NOSIGNAL);
				ck_close(*pause_fd);
				*pause_fd = -1;
			} else if (!*answered) {
				reply_result(s, ok, pause, pause);
			}
			*answered = 1;
			continue;
		}
		ck_jobstop_line(line);
	}
	return after_frozen(frozen, 0);
}

static void reply_pid(const char *word)
{
	char buf[64];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, word);
	ck_str_add(&m, " ");
	ck_str_dec(&m, ck_getpid());
	ck_str_add(&m, "\n");
	ck_session_reply(buf);
}

/* "saved <pid> <writer pid>": ckrun watches the writer's exit, so a writer
 * that dies fails the checkpoint at once and by name. Without a writer
 * (the image is complete already) just "saved <pid>". */
static void reply_saved(long writer)
{
	if (writer <= 0) {
		reply_pid("saved");
		return;
	}
	char buf[64];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, "saved ");
	ck_str_dec(&m, ck_getpid());
	ck_str_add(&m, " ");
	ck_str_dec(&m, writer);
	ck_str_add(&m, "\n");
	ck_session_reply(buf);
}

/* "skip=<dev>:<ino>,..." — shared memory another process's image stores */
/* "socks=INO,INO,...": the socket inodes the session's processes hold
 * (sk-unix.c tells a client of the session from one outside by them). */
static void parse_socks(const char *args)
{
	ck_session.nsession_socks = -1;
	const char *p = args;
	while (*p && !(ck_starts_with(p, "socks=") && (p == args || p[-1] == ' ')))
		p++;
	if (!*p)
		return;
	p += 6;
	int n = 0;
	while (*p && *p != ' ') {
		uint64_t ino;
		if (n >= CK_MAX_SESSION_SOCKS || !ck_parse_dec(&p, &ino))
			return;
		ck_session.session_socks[n++] = ino;
		if (*p == ',')
			p++;
	}
	ck_session.nsession_socks = n;
}

static void parse_skip(struct ck_scratch *s, const char *args)
{
	s->nskip = 0;
	const char *p = args;
	if (!ck_starts_with(p, "skip="))
		return;
	p += 5;
	while (*p && s->nskip < CK_MAX_SKIP) {
		uint64_t dev, ino;
		if (!ck_parse_dec(&p, &dev) || *p++ != ':' || !ck_parse_dec(&p, &ino))
			return;
		s->skip[s->nskip++] = (struct ck_range){dev, ino};
		if (*p == ',')
			p++;
	}
}

static void reply_error(struct ck_scratch *s, const char *what, const char *detail)
{
	char buf[768];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, "error ");
	ck_str_add(&m, what);
	if (detail && *detail) {
		ck_str_add(&m, ": ");
		ck_str_add(&m, detail);
	}
	ck_str_add(&m, "\n");
	(void)s;
	ck_session_reply(buf);
}

static struct ck_scratch *map_scratch(void)
{
	long p = ck_mmap(0, CK_SCRATCH_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p < 0 && p > -4096)
		return 0;
	struct ck_scratch *s = (struct ck_scratch *)p;
	char *base = (char *)p;
	size_t off = CK_PAGE_UP(sizeof *s);
	s->start = (uint64_t)p;
	s->end = (uint64_t)p + CK_SCRATCH_SIZE;
	cb_init(&s->w.meta, base + off, CK_SCRATCH_META);
	off += CK_SCRATCH_META;
	s->text = base + off;
	off += CK_SCRATCH_TEXT;
	s->pagemap = (uint64_t *)(base + off);
	off += CK_SCRATCH_PM;
	s->w.bounce = base + off;
	s->w.bounce_len = CK_SCRATCH_BOUNCE;
	off += CK_SCRATCH_BOUNCE;
	s->writer_stack = (uint64_t)(base + off);
	off += CK_SCRATCH_STACK;
	s->written = (struct ck_written *)(base + off);
	off += CK_MAX_WRITTEN * sizeof(struct ck_written);
	s->index = (struct ck_parent_run *)(base + off);
	off += CK_MAX_INDEX * sizeof(struct ck_parent_run);
	s->vmas = (struct ck_vma *)(base + off);
	s->w.fd = -1;
	return s;
}

/* ---- stopping the other threads ---- */

static int already_signaled(struct ck_scratch *s, int tid)
{
	for (int i = 0; i < s->nsignaled; i++)
		if (s->signaled[i] == tid)
			return 1;
	return 0;
}

static int has_arrived(int tid)
{
	int n = ck_nthreads;
	for (int i = 1; i < n && i < CK_MAX_THREADS; i++)
		if (ck_threads[i].tid == tid)
			return 1;
	return 0;
}

static long signal_thread(int pid, int tid)
{
	siginfo_t si;
	ck_memset(&si, 0, sizeof si);
	si.si_signo = ck_session.sig;
	si.si_code = SI_QUEUE;
	si.si_pid = pid;
	si.si_value.sival_ptr = (void *)((CK_QUEUE_MAGIC << 32) | (unsigned)epoch);
	return CK_SYS4(SYS_rt_tgsigqueueinfo, pid, tid, ck_session.sig, &si);
}

/* Signals every thread not yet signaled; returns how many were new, or -errno. */
static long signal_new_threads(struct ck_scratch *s, int taskfd, int pid, int self)
{
	char buf[4096];
	long found = 0;
	ck_lseek(taskfd, 0, 0);
	for (;;) {
		long n = ck_getdents64(taskfd, buf, sizeof buf);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct ck_dirent64 *d = (void *)(buf + off);
			off += d->reclen;
			const char *p = d->name;
			uint64_t tid;
			if (!ck_parse_dec(&p, &tid) || *p)
				continue;
			if ((int)tid == self || already_signaled(s, (int)tid))
				continue;
			if (s->nsignaled >= CK_MAX_THREADS)
				return -E2BIG;
			long r = signal_thread(pid, (int)tid);
			if (r == -ESRCH)
				continue;
			if (r < 0)
				return r;
			s->signaled[s->nsignaled++] = (int)tid;
			found++;
		}
	}
	return found;
}

/* Threads signaled but neither arrived nor still alive have exited. */
static int expected_arrivals(struct ck_scratch *s, int pid)
{
	int expected = 0;
	for (int i = 0; i < s->nsignaled; i++) {
		int tid = s->signaled[i];
		if (has_arrived(tid) || ck_tgkill(pid, tid, 0) == 0)
			expected++;
	}
	return expected;
}

static int first_missing(struct ck_scratch *s)
{
	for (int i = 0; i < s->nsignaled; i++)
		if (!has_arrived(s->signaled[i]))
			return s->signaled[i];
	return 0;
}

/* the signal handler's return (below) */
void ck_sigreturn_trampoline(void);

/* Threads that keep ckrun's signal blocked: glibc's helper threads (the
 * SIGEV_THREAD timer thread and the threads it starts, AIO workers) block
 * every signal but SIGSETXID for their whole life, so they are asked
 * through SIGSETXID (helper-threads.c). nudged[i] says that signaled[i]
 * was. A thread that blocks both for longer than a moment blocks them with
 * a raw system call and can never stop. */
static char nudged[CK_MAX_THREADS];
static int any_nudged;

static long nudge_thread(int pid, int tid)
{
	siginfo_t si;
	ck_memset(&si, 0, sizeof si);
	si.si_signo = ck_setxid_signal();
	si.si_code = SI_QUEUE;
	si.si_pid = pid;
	si.si_value.sival_ptr = (void *)((CK_QUEUE_MAGIC << 32) | (unsigned)epoch);
	return CK_SYS4(SYS_rt_tgsigqueueinfo, pid, tid, si.si_signo, &si);
}

/* Asks every missing thread that blocks ckrun's signal through SIGSETXID
 * instead; returns the first missing thread that blocks both, or 0. */
static int nudge_blocked_threads(struct ck_scratch *s, int pid)
{
	int stuck = 0;
	for (int i = 0; i < s->nsignaled; i++) {
		int tid = s->signaled[i], setxid_blocked;
		if (nudged[i] || has_arrived(tid) || !ck_thread_blocks(tid, ck_session.sig, &setxid_blocked))
			continue;
		/* a thread in seccomp strict mode would be killed by the handler's
		 * first system call: it is named instead */
		if (setxid_blocked || ck_seccomp_strict_thread(tid) ||
		    !ck_setxid_stop_ready(ck_signal_handler, ck_sigreturn_trampoline)) {
			if (!stuck)
				stuck = tid;
			continue;
		}
		if (nudge_thread(pid, tid) == 0) {
			nudged[i] = 1;
			any_nudged = 1;
		}
	}
	return stuck;
}

static void say_blocked(struct ck_str *m, int tid)
{
	ck_str_add(m, "thread ");
	ck_str_dec(m, tid);
	ck_str_add(m, " blocks ckrun's signal ");
	ck_str_dec(m, ck_session.sig);
	if (ck_seccomp_strict_thread(tid))
		ck_str_add(m, ": it is in seccomp strict mode (SECCOMP_MODE_STRICT), where it may make none of the system "
			      "calls a checkpoint needs; ckrun cannot checkpoint it");
	else
		ck_str_add(m, " and glibc's SIGSETXID (with a raw system call?), so it cannot stop; let the program leave one of them unblocked");
}

static long stop_timeout_ns(void)
{
	return 10L * 1000000000L;
}

static int stop_other_threads(struct ck_scratch *s, int pid, int self)
{
	int taskfd = (int)ck_openat(AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	struct ck_str m;
	ck_str_init(&m, s->msg, sizeof s->msg);
	if (taskfd < 0) {
		ck_str_add(&m, "cannot list threads in /proc/self/task: ");
		ck_str_errno(&m, taskfd);
		if (taskfd == -ENOENT)
			ck_str_add(&m, " (the process sees no /proc: is it in a chroot without /proc mounted? ckrun cannot "
				       "checkpoint a process in a chroot; the program runs on)");
		return 0;
	}
	uint64_t deadline = now_ns() + (uint64_t)stop_timeout_ns();
	int ok = 1;
	ck_memset(nudged, 0, sizeof nudged);
	any_nudged = 0;
	for (;;) {
		long found = signal_new_threads(s, taskfd, pid, self);
		if (found < 0) {
			ck_str_add(&m, found == -E2BIG ? "more threads than ckrun supports (1024)" : "cannot signal a thread: ");
			if (found != -E2BIG)
				ck_str_errno(&m, found);
			ok = 0;
			break;
		}
		int expected, stuck, rounds = 0;
		uint64_t stuck_since = 0;
		while ((expected = expected_arrivals(s, pid)) > arrived) {
			/* a moment for ckrun's signal first; then the threads that block it */
			if (rounds++ > 0 && (stuck = nudge_blocked_threads(s, pid)) > 0) {
				/* blocked for 200 ms: not a glibc moment, a thread that never stops */
				if (!stuck_since)
					stuck_since = now_ns();
				else if (now_ns() - stuck_since > 200 * 1000000ULL) {
					say_blocked(&m, stuck);
					ok = 0;
					break;
				}
			} else if (rounds > 1) {
				stuck_since = 0;
			}
			if (now_ns() > deadline) {
				ck_str_add(&m, "thread ");
				ck_str_dec(&m, first_missing(s));
				ck_str_add(&m, " did not stop within 10 s (is it blocking signal ");
				ck_str_dec(&m, ck_session.sig);
				ck_str_add(&m, " with a raw system call, or stuck in the kernel?)");
				ok = 0;
				break;
			}
			futex_wait(&arrived, arrived, (rounds == 1 ? 1 : 5) * 1000000L);
		}
		if (!ok || found == 0)
			break;
	}
	ck_close(taskfd);
	if (ok && overflowed) {
		ck_str_add(&m, "more threads than ckrun supports (1024)");
		ok = 0;
	}
	return ok;
}

/* ckrun's lines during a stop (save, resume, ...) each queued the signal
 * again: delivered after the release, they would interrupt the program's
 * calls once more, for nothing. The leader takes them while every thread
 * stands still; a signal the program sent itself under our number is
 * queued again once the threads run. */
#define CK_MAX_KEPT_SIGNALS 32
static siginfo_t kept_signals[CK_MAX_KEPT_SIGNALS];
static int nkept_signals;

static int is_ckruns_delivery(const siginfo_t *si, int pid)
{
	uint64_t tag = (uint64_t)si->si_value.sival_ptr >> 32;
	if (si->si_code == SI_QUEUE && (tag == CK_JOIN_MAGIC || (tag == CK_QUEUE_MAGIC && si->si_pid == pid)))
		return 1;
	return si->si_code > 0 && si->si_code <= POLL_HUP && si->si_fd == ck_session.ctl_fd;
}

static void take_queued_deliveries(void)
{
	uint64_t set = 1ULL << (ck_session.sig - 1);
	struct ck_timespec zero = {0, 0};
	siginfo_t si;
	int pid = (int)ck_getpid();
	nkept_signals = 0;
	while (CK_SYS4(SYS_rt_sigtimedwait, &set, &si, &zero, 8) > 0)
		if (!is_ckruns_delivery(&si, pid) && nkept_signals < CK_MAX_KEPT_SIGNALS)
			kept_signals[nkept_signals++] = si;
}

static void requeue_program_signals(void)
{
	for (int i = 0; i < nkept_signals; i++)
		CK_SYS3(SYS_rt_sigqueueinfo, ck_getpid(), kept_signals[i].si_signo, &kept_signals[i]);
	nkept_signals = 0;
}

/* ---- tidying the stopped threads' signals ----
 *
 * Once every thread stands still, the threads that were asked twice (a
 * helper thread holds ckrun's blocked signal, or took SIGSETXID after the
 * signal it first blocked) drop the second request, and every thread takes
 * its pending SIGTIMER deliveries into the shim's memory (helper-threads.c),
 * so that the image holds them. Done in rounds the leader starts; a timer
 * that fires meanwhile is taken in the next one. */
static volatile int tidy_round;
static volatile int tidied;
/* Every event a stopped thread waits for bumps this: the next tidy round,
 * or the release. */
static volatile int wake_seq;
static int tidy_failed;

static int is_stop_request(const siginfo_t *si, int pid)
{
	return si->si_code == SI_QUEUE && si->si_pid == pid && ((uint64_t)si->si_value.sival_ptr >> 32) == CK_QUEUE_MAGIC;
}

/* Drops this thread's pending stop requests of signal sig; whatever else
 * was pending under that number is queued to it again, in order. */
static void drop_stop_requests(int sig)
{
	uint64_t pending = 0, set = 1ULL << (sig - 1);
	CK_SYS2(SYS_rt_sigpending, &pending, 8);
	if (!(pending & set))
		return;
	siginfo_t keep[8], si;
	int nkeep = 0, pid = (int)ck_getpid(), tid = (int)ck_gettid();
	struct ck_timespec zero = {0, 0};
	while (nkeep < 8 && CK_SYS4(SYS_rt_sigtimedwait, &set, &si, &zero, 8) > 0)
		if (!is_stop_request(&si, pid))
			keep[nkeep++] = si;
	for (int i = 0; i < nkeep; i++)
		CK_SYS4(SYS_rt_tgsigqueueinfo, pid, tid, sig, &keep[i]);
}

static void tidy_own_signals(void)
{
	drop_stop_requests(ck_session.sig);
	drop_stop_requests(ck_setxid_signal());
	ck_held_take();
}

/* One round: the leader takes its own, every other thread its own. */
static void tidy_round_run(void)
{
	ck_held_take();
	int others = ck_nthreads - 1, t;
	__atomic_store_n(&tidied, 0, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&tidy_round, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&wake_seq, 1, __ATOMIC_SEQ_CST);
	futex_wake_all(&wake_seq);
	uint64_t give_up = now_ns() + 2000000000ULL;
	while ((t = tidied) < others && now_ns() < give_up)
		futex_wait(&tidied, t, 5 * 1000000L);
}

static int sigtimer_captured(void)
{
	uint64_t bit = 1ULL << 31, any = ck_saved_timers.shared_pending;
	for (int i = 0; i < ck_nthreads && i < CK_MAX_THREADS; i++)
		any |= ck_threads[i].pending;
	return (any & bit) != 0;
}

/* The signal state the image holds: timers first, then what is pending.
 * A SIGTIMER delivery found pending means a timer fired since the threads
 * took theirs: they take it, and it is all read again. An expiry after the
 * pending signals were read is after the checkpoint's instant: the timer
 * read before it fires again after a restart. */
static void capture_signals(void)
{
	tidy_failed = 0;
	if (any_nudged)
		tidy_round_run();
	for (int round = 0;; round++) {
		ck_signals_capture();
		if (!sigtimer_captured())
			return;
		if (round == 20) {
			tidy_failed = 1;
			return;
		}
		tidy_round_run();
	}
}

/* seen: the tidy round that was current before this thread arrived (a
 * round the leader starts later is this thread's to do). */
static void wait_for_release(int seen)
{
	for (;;) {
		int seq = __atomic_load_n(&wake_seq, __ATOMIC_SEQ_CST);
		if (state != ST_STOPPING)
			return;
		int r = __atomic_load_n(&tidy_round, __ATOMIC_SEQ_CST);
		if (r != seen) {
			seen = r;
			tidy_own_signals();
			__atomic_fetch_add(&tidied, 1, __ATOMIC_SEQ_CST);
			futex_wake_all(&tidied);
			continue;
		}
		futex_wait(&wake_seq, seq, 0);
	}
}

static void release_threads(void)
{
	ck_held_requeue();
	ck_jobstop_forget();
	take_queued_deliveries();
	__atomic_store_n(&state, ST_RELEASING, __ATOMIC_SEQ_CST);
	futex_wake_all(&state);
	__atomic_fetch_add(&wake_seq, 1, __ATOMIC_SEQ_CST);
	futex_wake_all(&wake_seq);
	int d;
	while ((d = departed) < ck_nthreads - 1)
		futex_wait(&departed, d, 0);
	__atomic_store_n(&state, ST_IDLE, __ATOMIC_SEQ_CST);
	requeue_program_signals();
}

/* ---- the image ---- */

/* What must be read while the program stands still: identity, threads,
 * signals, descriptors (offsets, bytes in pipes, event counters). */
static int write_image_state(struct ck_scratch *s, const char *path, int nthreads)
{
	struct ck_writer *w = &s->w;
	struct ck_str tmp;
	ck_str_init(&tmp, s->path_tmp, sizeof s->path_tmp);
	ck_str_add(&tmp, path);
	ck_str_add(&tmp, ".tmp");
	int fd = take_image_fd();
	if (fd >= 0 ? ck_image_adopt(w, fd, path) < 0 : ck_image_open(w, s->path_tmp) < 0)
		return 0;
	struct cb_enc *e = &w->meta;
	if (tidy_failed || ck_held_failed()) {
		ck_writer_fail(w, -EAGAIN, tidy_failed ? "a POSIX timer of the program keeps firing faster than ckrun can hold its signals"
						  : "more than 256 timer signals are pending in the program's threads");
		ck_image_finish(w, s->path_tmp, path);
		return 0;
	}
	cb_map_open(e);
	cb_kv_uint(e, "version", CK_IMAGE_VERSION);
	ck_process_save(w, s);
	ck_threads_save(w, s, nthreads);
	ck_signals_save(w);
	ck_jobstop_save(w);
	ck_files_save(w, s);
	/* their mappings are no part of the program's memory */
	ck_inet_drop_send_queues();
	ck_memory_save_stopped(w, s);
	ck_sysv_save(w, s);
	if (w->err)
		ck_image_finish(w, s->path_tmp, path);
	return !w->err;
}

/* Memory, which a forked copy of the address space can write while the
 * program runs on. */
static int write_image_memory(struct ck_scratch *s, const char *path, uint64_t pause_ns)
{
	struct ck_writer *w = &s->w;
	struct cb_enc *e = &w->meta;
	ck_parent_load(s, s->parent, path);
	ck_memory_save(w, s);
	ck_refs_save(w, s);
	cb_text(e, "stats");
	cb_map(e, 3);
	cb_kv_uint(e, "pause_ns", pause_ns);
	cb_kv_uint(e, "pages", w->pages);
	cb_kv_uint(e, "bytes", w->data_end);
	cb_close(e);
	if (e->overflow && !w->err)
		ck_writer_fail(w, -ENOMEM, "the image metadata is larger than 64 MiB");
	return ck_image_finish(w, s->path_tmp, path) == 0;
}

static void reply_result(struct ck_scratch *s, int ok, uint64_t pause, uint64_t total)
{
	char buf[768];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	if (ok) {
		ck_str_add(&m, "ok ");
		ck_str_udec(&m, s->w.data_end);
		ck_str_add(&m, " ");
		ck_str_udec(&m, pause);
		ck_str_add(&m, " ");
		ck_str_udec(&m, total);
		ck_str_add(&m, "\n");
	} else {
		ck_str_add(&m, "error ");
		ck_str_add(&m, s->w.err_what ? s->w.err_what : "writing the image failed");
		ck_str_add(&m, ": ");
		ck_str_add(&m, s->w.err_detail);
		ck_str_add(&m, "\n");
	}
	ck_session_reply(buf);
}

/* CKRUN_SYNC_CHECKPOINT: write from the stopped program, no fork. */
CK_HIDDEN int ck_write_sync;

/* Lifts the marks found while stopped for the moment of the fork, so the
 * writer sees every region as it is, or sets them again. A mark that
 * cannot be lifted is found by the writer (a region missing from its copy,
 * or marked there), which fails the checkpoint. */
static void set_fork_marks(const struct ck_scratch *s, int lift)
{
	for (uint64_t i = 0; i < s->nvmas; i++) {
		const struct ck_vma *v = &s->vmas[i];
		if (v->flags & CK_VM_DONTFORK)
			CK_SYS3(SYS_madvise, v->start, v->end - v->start, lift ? MADV_DOFORK : MADV_DONTFORK);
		if (v->flags & CK_VM_WIPEONFORK)
			CK_SYS3(SYS_madvise, v->start, v->end - v->start, lift ? MADV_KEEPONFORK : MADV_WIPEONFORK);
	}
}

static void close_all_but(const int *keep, int n)
{
	unsigned lo = 0;
	for (;;) {
		unsigned next = ~0U;
		for (int i = 0; i < n; i++)
			if (keep[i] >= 0 && (unsigned)keep[i] >= lo && (unsigned)keep[i] < next)
				next = (unsigned)keep[i];
		if (next > lo)
			CK_SYS3(SYS_close_range, lo, next == ~0U ? ~0U : next - 1, 0);
		if (next == ~0U)
			break;
		lo = next + 1;
	}
}

/* The writer: a copy of the stopped program that writes the memory while
 * the program runs on. It holds none of the program's descriptors (a pipe
 * reader must see EOF when the program closes its end), learns the pause
 * from the program, answers ckrun itself, and exits. */
static __attribute__((noreturn)) void run_writer(struct ck_scratch *s, const char *path, int pause_fd, uint64_t t0)
{
	int keep[4] = {s->w.fd, ck_session.ctl_fd, pause_fd, ck_session.trace ? 2 : -1};
	close_all_but(keep, 4);
	s->writer_forked = 1;
	ck_prctl(PR_SET_NAME, (long)"ckrun-writer", 0, 0, 0);
	uint64_t pause = 0;
	if (ck_read(pause_fd, &pause, sizeof pause) != sizeof pause) {
		/* the checkpoint was abandoned (ckrun said abort) */
		ck_unlinkat(AT_FDCWD, s->path_tmp, 0);
		ck_exit_group(1);
	}
	int ok = write_image_memory(s, path, pause);
	trace("writer done", t0);
	reply_result(s, ok, pause, now_ns() - t0);
	ck_exit_group(ok ? 0 : 1);
	__builtin_unreachable();
}

struct writer_start {
	struct ck_scratch *s;
	const char *path;
	int pause_fd;
	uint64_t t0;
	long writer; /* set by the middle process, which shares our memory */
};


/* The middle process shares the program's memory (no copy): it forks the
 * writer, the one copy of the address space, and exits at once. */
static __attribute__((noreturn)) void middle_main(void *arg)
{
	struct writer_start *ws = arg;
	long w = CK_SYS5(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (w == 0)
		run_writer(ws->s, ws->path, ws->pause_fd, ws->t0);
	ws->writer = w;
	CK_SYS1(SYS_exit, 0);
	__builtin_unreachable();
}

/* Starts the writer through a middle process, so the writer is the
 * session's (ckrun is a child subreaper, the middle process is gone at
 * once) and never the program's child: no SIGCHLD, nothing for the
 * program's wait() to find. The middle process runs on a stack in the
 * scratch mapping, which the writer then keeps using: it is not part of
 * the image. Returns 1 when the writer runs, 0 when the program must write
 * the image itself. */
static int fork_writer(struct ck_scratch *s, const char *path, int *pause_fd, long *writer, uint64_t t0)
{
	int p[2];
	/* a socket pair, not a pipe: the pause is sent with MSG_NOSIGNAL, so a
	 * writer killed before it reads the pause costs the program no SIGPIPE */
	if (ck_write_sync || CK_SYS4(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
		return 0;
	set_fork_marks(s, 1);
	struct writer_start ws = {s, path, p[0], t0, -1};
	struct ck_clone_args a;
	ck_memset(&a, 0, sizeof a);
	a.flags = CLONE_VM | CLONE_VFORK;
	a.exit_signal = 0;
	a.stack = s->writer_stack;
	a.stack_size = CK_SCRATCH_STACK;
	long mid = ck_clone3_thread(&a, sizeof a, middle_main, &ws);
	if (mid > 0) {
		int status;
		while (CK_SYS4(SYS_wait4, mid, &status, __WALL, 0) == -EINTR)
			;
	}
	set_fork_marks(s, 0);
	ck_close(p[0]);
	if (mid < 0 || ws.writer < 0) {
		ck_close(p[1]);
		return 0;
	}
	*pause_fd = p[1];
	*writer = ws.writer;
	return 1;
}

/* Writing past RLIMIT_FSIZE queues SIGXFSZ, whose default action would
 * kill the program once released: the failure is ours, not the program's. */
static void forget_own_sigxfsz(void)
{
	uint64_t pending = 0, was = ck_threads[0].pending | ck_saved_timers.shared_pending;
	uint64_t bit = 1ULL << (SIGXFSZ - 1);
	CK_SYS2(SYS_rt_sigpending, &pending, 8);
	if ((pending & bit) && !(was & bit)) {
		struct ck_timespec zero = {0, 0};
		CK_SYS4(SYS_rt_sigtimedwait, &bit, 0, &zero, 8);
	}
}

static void after_restore_leader(struct ck_restore_info *ri)
{
	struct ck_thread *me = &ck_threads[0];
	ck_thread_after_restore(me, ri);

	int n = (int)ri->nthreads, r;
	while ((r = ri->restored) < n - 1)
		futex_wait(&ri->restored, r, 0);

	ck_session.ctl_fd = ri->ctl_fd;
	ck_session.self_pid = (int)ck_getpid();
	ck_memcpy(ck_session.sock, ri->sock, sizeof ck_session.sock);
	for (int i = 0; i < 3; i++) {
		ck_session.stdio_dev[i] = ri->stdio_dev[i];
		ck_session.stdio_ino[i] = ri->stdio_ino[i];
	}
	ck_session.have_stdio = 1;
	ck_session.nimages = ri->nimages;
	for (int i = 0; i < ri->nimages && i < CK_MAX_IMAGES; i++) {
		ck_session.image_dev[i] = ri->image_dev[i];
		ck_session.image_ino[i] = ri->image_ino[i];
	}
	uint64_t track_id = ri->track_id;
	uint64_t bridge_lo = ri->vdso_bridge[0], bridge_hi = ri->vdso_bridge[1];
	ck_restores++;
	request_len = 0;
	request_parent[0] = 0;
	uint64_t hole = ri->hole_start, hole_len = ri->hole_len;
	int nseeks = ri->nlate_seeks < CK_MAX_LATE_SEEKS ? ri->nlate_seeks : CK_MAX_LATE_SEEKS;
	int seek_fd[CK_MAX_LATE_SEEKS];
	int64_t seek_to[CK_MAX_LATE_SEEKS];
	for (int i = 0; i < nseeks; i++)
		seek_fd[i] = ri->late_seeks[i].fd, seek_to[i] = ri->late_seeks[i].offset;
	/* Every thread has left the restore core: the hole can go. */
	ck_munmap((void *)hole, hole_len);
	/* the process's mappings are its own again, as the program left them:
	 * a list read part way goes on from its offset (files.c seek_late) */
	for (int i = 0; i < nseeks; i++)
		ck_lseek(seek_fd[i], seek_to[i], SEEK_SET);

	ck_signals_after_restore(n);
	ck_peercred_after_restore();
	ck_written_restored();
	ck_written_forget();
	if (ck_track_restore_begin(track_id))
		ck_memory_protect_after_restore(bridge_lo, bridge_hi);

	char buf[64];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, "restored ");
	ck_str_dec(&m, ck_getpid());
	ck_str_add(&m, "\n");
	ck_session_reply(buf);
	/* stopped at the checkpoint: stopped again before the program runs */
	uint64_t was_pending = ck_saved_timers.shared_pending;
	for (int i = 0; i < n && i < CK_MAX_THREADS; i++)
		was_pending |= ck_threads[i].pending;
	ck_jobstop_after_restore(was_pending);
	ck_attrs_restore_last();
	release_threads();
}

/* ckrun is gone (killed, crashed): the family it ran ends with it, as a
 * terminal's processes end when it hangs up; children that never joined
 * (forked since the last checkpoint) have no connection to notice it by. */
static void end_with_session(void)
{
	if (!session_gone)
		return;
	ck_inet_freeze_unchanged();
	/* ckrun's exit closes one connection after another: nothing of the
	 * family dies before every joined process has its signal pending, so
	 * none sees another die (a pipe's end of file) and acts on it first */
	struct ck_timespec settle = {0, 3 * 1000000L};
	CK_SYS2(SYS_nanosleep, &settle, 0);
	ck_written_abandon();
	ck_kill_descendants();
	ck_kill((int)ck_getpid(), SIGKILL);
}

static void lead_checkpoint(ucontext_t *uc, int mode)
{
	if (!__sync_bool_compare_and_swap(&state, ST_IDLE, ST_STOPPING)) {
		reply_error(0, "a checkpoint is already running", 0);
		return;
	}
	uint64_t t0 = now_ns();
	int pid = (int)ck_getpid(), self = (int)ck_gettid();
	struct ck_scratch *s = map_scratch();
	if (!s) {
		__atomic_store_n(&state, ST_IDLE, __ATOMIC_SEQ_CST);
		reply_error(0, "cannot map the checkpoint's scratch memory", "ENOMEM (out of memory)");
		return;
	}
	ck_memcpy(s->parent, request_parent, sizeof s->parent);
	request_parent[0] = 0;
	epoch++;
	ck_stops++;
	arrived = 0;
	departed = 0;
	overflowed = 0;
	ck_nthreads = 1;

	struct ck_thread *me = &ck_threads[0];
	ck_thread_capture(me, uc);
	me->leader = 1;
	int ok = stop_other_threads(s, pid, self) && !ck_files_table_shared(s) && !ck_files_read_part_way(s);
	if (!ok) {
		release_threads();
		reply_error(s, "cannot checkpoint the program", s->msg);
		ck_munmap((void *)s->start, CK_SCRATCH_SIZE);
		return;
	}
	ck_session.nsession_socks = -1;
	/* before any process of the session reads a receive queue */
	ck_inet_take_send_queues();
	ck_peercred_note();
	if (mode == REQ_BARRIER) {
		/* nothing is read until every process of the session is stopped */
		char args[2048];
		reply_pid("stopped");
		if (!await_step("save", args, sizeof args)) {
			ck_inet_drop_send_queues();
			release_threads();
			ck_munmap((void *)s->start, CK_SCRATCH_SIZE);
			end_with_session();
			return;
		}
		parse_skip(s, args);
		parse_socks(args);
	}
	capture_signals();
	ck_jobstop_capture();

	long ri = ck_ctx_save(&me->resume);
	if (ri) {
		after_restore_leader((struct ck_restore_info *)ri);
		return;
	}

	int n = ck_nthreads, pause_fd = -1;
	long writer = 0;
	trace("stopped", t0);
	if (ck_held_count() > 0)
		trace("timer signals held", t0);
	ok = write_image_state(s, request_path, n);
	ck_inet_drop_send_queues(); /* (when it stopped before the descriptors) */
	trace("state saved", t0);
	int forked = ok && fork_writer(s, request_path, &pause_fd, &writer, t0);
	trace("forked", t0);
	if (ok && !forked)
		ok = write_image_memory(s, request_path, now_ns() - t0);
	forget_own_sigxfsz();
	int go = 1, answered = 0;
	if (mode == REQ_BARRIER) {
		if (ok)
			reply_saved(forked ? writer : 0);
		else
			reply_result(s, 0, 0, 0);
		go = ok && await_resume(s, ok, &pause_fd, &answered, t0);
	}
	if (ok && go)
		ck_inet_keep_live(request_path);
	else
		ck_inet_forget_noted();
	uint64_t pause = now_ns() - t0;
	ck_written_forget();
	release_threads();
	if (forked) {
		/* the writer answers ckrun; without a pause to read it gives up */
		if (go && pause_fd >= 0)
			ck_sendto(pause_fd, &pause, sizeof pause, MSG_NOSIGNAL);
		if (pause_fd >= 0)
			ck_close(pause_fd);
		if (s->w.fd >= 0)
			ck_close(s->w.fd);
	} else if (go && !answered) {
		reply_result(s, ok, pause, now_ns() - t0);
	}
	ck_munmap((void *)s->start, CK_SCRATCH_SIZE);
	end_with_session();
}

/* Every line ckrun writes raises the signal, and each may land on another
 * thread: only one thread at a time reads the connection (and leads what it
 * asks for). A thread that finds the reader busy leaves its wake-up behind,
 * and the reader looks at the connection again before it lets go. The lock
 * is in the image as held: the restored leader lets it go. */
static volatile int request_reader;
static volatile int request_wakeups;

static void serve_requests(ucontext_t *uc)
{
	__atomic_fetch_add(&request_wakeups, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&request_wakeups, __ATOMIC_SEQ_CST) > 0) {
		int idle = 0;
		if (!__atomic_compare_exchange_n(&request_reader, &idle, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return; /* the reader sees this wake-up */
		__atomic_store_n(&request_wakeups, 0, __ATOMIC_SEQ_CST);
		int mode;
		while ((mode = take_request()) != REQ_NONE)
			lead_checkpoint(uc, mode);
		int unused = take_image_fd(); /* came with a checkpoint that was abandoned */
		if (unused >= 0)
			ck_close(unused);
		end_with_session();
		__atomic_store_n(&request_reader, 0, __ATOMIC_SEQ_CST);
	}
}

/* A forked child that joins reads a connection of its own, from its first byte. */
CK_HIDDEN void ck_requests_reset_in_child(void)
{
	request_len = 0;
	request_parent[0] = 0;
	request_reader = 0;
	request_wakeups = 0;
}

static void participate(ucontext_t *uc, siginfo_t *si)
{
	uint64_t tag = (uint64_t)si->si_value.sival_ptr;
	if ((tag >> 32) != CK_QUEUE_MAGIC || (int)(tag & 0xffffffffu) != epoch || state != ST_STOPPING)
		return; /* left over from an earlier, aborted stop */

	int idx = __atomic_fetch_add(&ck_nthreads, 1, __ATOMIC_SEQ_CST);
	if (idx >= CK_MAX_THREADS) {
		overflowed = 1;
		__atomic_fetch_sub(&ck_nthreads, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
		futex_wake_all(&arrived);
		while (state == ST_STOPPING)
			futex_wait(&state, ST_STOPPING, 0);
		return;
	}
	struct ck_thread *t = &ck_threads[idx];
	ck_thread_capture(t, uc);
	t->leader = 0;

	long ri = ck_ctx_save(&t->resume);
	int seen = __atomic_load_n(&tidy_round, __ATOMIC_SEQ_CST);
	if (ri) {
		struct ck_restore_info *info = (struct ck_restore_info *)ri;
		ck_thread_after_restore(t, info);
		__atomic_fetch_add(&info->restored, 1, __ATOMIC_SEQ_CST);
		futex_wake_all(&info->restored);
	} else {
		__atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
		futex_wake_all(&arrived);
	}
	wait_for_release(seen);
	if (ri)
		ck_attrs_restore_last_thread(t);
	__atomic_fetch_add(&departed, 1, __ATOMIC_SEQ_CST);
	futex_wake_all(&departed);
}

/* The program's own handler for our signal number, when it installed one. */
CK_HIDDEN struct sigaction ck_virtual_action;

static void forward_to_program(int sig, siginfo_t *si, void *uc)
{
	struct sigaction *a = &ck_virtual_action;
	if (a->sa_flags & SA_SIGINFO) {
		if (a->sa_sigaction)
			a->sa_sigaction(sig, si, uc);
	} else if (a->sa_handler != SIG_DFL && a->sa_handler != SIG_IGN && a->sa_handler) {
		a->sa_handler(sig);
	}
}

CK_HIDDEN void ck_signal_handler(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	int pid = (int)ck_getpid();
	if (si->si_code == SI_QUEUE && si->si_pid == pid && ((uint64_t)si->si_value.sival_ptr >> 32) == CK_QUEUE_MAGIC) {
		int how = ck_resume_interrupted_call(uc);
		participate(uc, si);
		ck_yield_interrupted_call(uc, how, 1);
		return;
	}
	/* in a forked child that has not joined, ctl_fd is its parent's number */
	if (si->si_code > 0 && si->si_code <= POLL_HUP && si->si_fd == ck_session.ctl_fd && ck_session.ctl_fd >= 0 &&
	    ck_session.self_pid == pid) {
		int how = ck_resume_interrupted_call(uc);
		serve_requests(uc);
		ck_yield_interrupted_call(uc, how, 0);
		return;
	}
	if (si->si_code == SI_QUEUE && ((uint64_t)si->si_value.sival_ptr >> 32) == CK_JOIN_MAGIC) {
		int how = ck_resume_interrupted_call(uc);
		if (ck_join_on_request((uint64_t)si->si_value.sival_ptr)) /* a child took its parent's state over */
			ck_requests_reset_in_child();
		ck_yield_interrupted_call(uc, how, 0);
		return;
	}
	/* the program's own use of our signal number: its handler runs, and
	 * an interrupted call fails as it would without ckrun */
	forward_to_program(sig, si, ucv);
}

CK_HIDDEN void ck_install_handler(void)
{
	struct ck_ksigaction ka;
	ck_memset(&ka, 0, sizeof ka);
	ka.handler = (unsigned long)ck_signal_handler;
	ka.flags = SA_SIGINFO | SA_RESTART | SA_RESTORER;
	ka.restorer = (unsigned long)ck_sigreturn_trampoline;
	ka.mask = ~0ULL;
	ck_rt_sigaction(ck_session.sig, &ka, 0);
}

/* Our own restorer, so the handler does not depend on libc's. */
__asm__(
	".text\n"
	".globl ck_sigreturn_trampoline\n"
	".hidden ck_sigreturn_trampoline\n"
	".type ck_sigreturn_trampoline,@function\n"
	"ck_sigreturn_trampoline:\n"
	"	mov $15, %eax\n"
	"	syscall\n"
	"	ud2\n"
	".size ck_sigreturn_trampoline, .-ck_sigreturn_trampoline\n");
