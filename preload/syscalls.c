/* System calls a checkpoint interrupts.
 *
 * A checkpoint stops every thread with a signal that has a handler. The
 * kernel restarts many interrupted calls on its own (the handler has
 * SA_RESTART), but never the ones man 7 signal lists (poll, select,
 * epoll_wait, semop, msgrcv, sigtimedwait, nanosleep, socket calls with a
 * timeout, ...): once a handler ran, they fail with EINTR. The program must
 * not notice a checkpoint, so
 *  - the libc calls of that list (and syscall()) are wrapped: a call the
 *    checkpoint interrupted is made again with the time it had left at the
 *    stop (after a restart, the time the program was gone does not count);
 *  - any other such call (libc's internal ones, an inline syscall
 *    instruction) is resumed by the handler itself: it rewinds the
 *    interrupted context to the syscall instruction with the call's number
 *    in rax, when the instructions before it tell the number. Such a call
 *    starts its timeout again.
 * Only ckrun's own deliveries are treated so: when the program sends itself
 * our signal number, its handler runs and EINTR is what it expects.
 *
 * The handler never writes into a wrapper's frame: it finds the wrapper's
 * record through a table keyed by the thread (its thread pointer), checks
 * that the record sits just above the interrupted stack pointer, and leaves
 * its findings in the table. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <mqueue.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "ckrun.h"
#include "sys.h"

#define CALL_MAGIC 0x636b63616c6cULL /* "ckcall" */
#define CALL_BUCKETS 1024
#define CALL_WAYS 4
/* A wrapper's record sits in its own frame, above libc's frame of the
 * call; a signal frame in between (a handler of the program) is larger. */
#define CALL_REACH 1024

struct call_slot {
	volatile uintptr_t thread;         /* pthread_self(): the thread pointer */
	struct ck_call *volatile call;     /* the thread's innermost wrapped call */
	struct ck_call *volatile hit;      /* the call a checkpoint interrupted */
	volatile int64_t left_ns;          /* its time left at the stop, -1: none */
	volatile uint64_t restores;        /* ck_restores at the stop */
};

static struct call_slot call_slots[CALL_BUCKETS * CALL_WAYS];

/* Restarts of this process: a wrapped call interrupted before one counts
 * its time left from the restart. */
CK_HIDDEN volatile uint64_t ck_restores;
/* Stops for a checkpoint (checkpoint.c counts them): a held signal
 * (holdsig.c) waits on after one. */
CK_HIDDEN volatile uint64_t ck_stops;
/* Set once the shim is in a session: until then nothing is registered. */
CK_HIDDEN volatile int ck_calls_enabled;

static struct call_slot *slot_of(uintptr_t thread, int claim)
{
	uint64_t h = (uint64_t)(thread >> 12) * 0x9e3779b97f4a7c15ULL;
	struct call_slot *b = &call_slots[(h >> 54) % CALL_BUCKETS * CALL_WAYS];
	for (int i = 0; i < CALL_WAYS; i++)
		if (b[i].thread == thread)
			return &b[i];
	if (!claim)
		return 0;
	for (int i = 0; i < CALL_WAYS; i++) {
		uintptr_t free_ = 0;
		if (__atomic_compare_exchange_n(&b[i].thread, &free_, thread, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return &b[i];
	}
	return 0; /* a full bucket: the handler's own resumption still applies */
}

/* In the signal handler: a raw system call. */
static int64_t mono_ns_raw(void)
{
	struct ck_timespec ts;
	ck_clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.sec * 1000000000LL + ts.nsec;
}

/* In the wrappers: a raw system call too, not libc's through the vdso: a
 * program may have unmapped its vdso (and then makes its calls with
 * syscall()), and a call with a timeout blocks anyway (zero timeouts, which
 * event loops poll with all the time, read no clock). */
static int64_t mono_ns(void)
{
	return mono_ns_raw();
}

/* ---- the wrappers' side ---- */

struct ck_call {
	uint64_t magic;
	struct ck_call *self;
	struct ck_call *outer;
	struct call_slot *slot;
	/* CLOCK_MONOTONIC; -1: no timeout; 0: a zero timeout (no clock read:
	 * event loops poll with it all the time) */
	int64_t deadline_ns;
};

/* The handler that reads the slot runs on this very thread: the compiler
 * must not move the stores past the call, no more. */
static void publish_call(struct call_slot *s, struct ck_call *c)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	s->call = c;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* timeout_ns < 0: the call waits without a time limit. */
static void call_begin(struct ck_call *c, int64_t timeout_ns)
{
	c->slot = 0;
	if (!ck_calls_enabled)
		return;
	struct call_slot *s = slot_of((uintptr_t)pthread_self(), 1);
	if (!s)
		return;
	c->magic = CALL_MAGIC;
	c->self = c;
	c->deadline_ns = timeout_ns < 0 ? -1 : timeout_ns == 0 ? 0 : mono_ns() + timeout_ns;
	c->outer = s->call;
	c->slot = s;
	publish_call(s, c);
}

/* After a failure with err: whether a checkpoint caused it (then the call
 * is made again), with the deadline moved by a restart in between. */
static int call_again(struct ck_call *c, int err)
{
	struct call_slot *s = c->slot;
	if (!s || err != EINTR || s->hit != c)
		return 0;
	s->hit = 0;
	if (c->deadline_ns > 0 && s->restores != ck_restores)
		c->deadline_ns = mono_ns() + (s->left_ns > 0 ? s->left_ns : 0);
	return 1;
}

static void call_end(struct ck_call *c)
{
	struct call_slot *s = c->slot;
	if (!s)
		return;
	if (s->hit == c)
		s->hit = 0;
	c->magic = 0;
	publish_call(s, c->outer);
}

/* Time left until the deadline; -1 without one. */
static int64_t call_left_ns(const struct ck_call *c)
{
	if (c->deadline_ns <= 0)
		return c->deadline_ns;
	int64_t left = c->deadline_ns - mono_ns();
	return left > 0 ? left : 0;
}

static int64_t ms_to_ns(int ms)
{
	return ms < 0 ? -1 : (int64_t)ms * 1000000;
}

static int left_ms(const struct ck_call *c)
{
	int64_t ns = call_left_ns(c);
	if (ns < 0)
		return -1;
	int64_t ms = (ns + 999999) / 1000000; /* never wake before the deadline */
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int64_t ts_to_ns(const struct timespec *ts)
{
	if (!ts)
		return -1;
	if (ts->tv_sec < 0 || ts->tv_nsec < 0)
		return 0; /* the kernel refuses it: let the first call say so */
	if (ts->tv_sec > INT64_MAX / 1000000000LL - 1)
		return INT64_MAX / 2;
	return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* The time left as a timespec in *out; NULL when the call has no limit. */
static struct timespec *left_ts(const struct ck_call *c, struct timespec *out)
{
	int64_t ns = call_left_ns(c);
	if (ns < 0)
		return 0;
	out->tv_sec = ns / 1000000000LL;
	out->tv_nsec = ns % 1000000000LL;
	return out;
}

/* ---- the handler's side ---- */

/* Reads code bytes without faulting on an unmapped neighbour page. */
static int read_code(uint64_t addr, void *buf, size_t n)
{
	struct {
		void *base;
		size_t len;
	} local = {buf, n}, remote = {(void *)addr, n};
	return CK_SYS6(SYS_process_vm_readv, ck_getpid(), &local, 1, &remote, 1, 0) == (long)n;
}

/* mov disp8(%rsp),%r32 / %r64 (reg not eax), or mov (%rsp),...: glibc's
 * cancellable wrappers reload arguments between loading the number and
 * the syscall. Returns the instruction's length ending at end, or 0. */
static int arg_reload_before(const uint8_t *code, int end)
{
	for (int len = 3; len <= 5; len++) {
		int at = end - len;
		if (at < 0)
			break;
		const uint8_t *p = code + at;
		int rex = (p[0] & 0xf0) == 0x40;
		if (rex && (p[0] & 0x04)) /* REX.R: r8..r15, never eax */
			rex = 1;
		const uint8_t *op = p + rex;
		int oplen = len - rex;
		if (op[0] != 0x8b || oplen < 3)
			continue;
		uint8_t modrm = op[1];
		int mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
		int writes_eax = reg == 0 && !(rex && (p[0] & 0x04));
		if (rm != 4 || op[2] != 0x24 || writes_eax)
			continue;
		if ((mod == 1 && oplen == 4) || (mod == 0 && oplen == 3))
			return len;
	}
	return 0;
}

/* The number of the system call whose syscall instruction ends at rip,
 * when the code loads it as a constant: mov $n,%eax (or %rax), xor
 * %eax,%eax, possibly followed by up to two argument reloads. -1 if not. */
static long syscall_number_before(uint64_t rip)
{
	uint8_t code[24];
	if (rip < sizeof code || !read_code(rip - sizeof code, code, sizeof code))
		return -1;
	int end = (int)sizeof code - 2;
	if (code[end] != 0x0f || code[end + 1] != 0x05)
		return -1;
	for (int skipped = 0; skipped <= 2; skipped++) {
		if (end >= 5 && code[end - 5] == 0xb8)
			return (long)(code[end - 4] | code[end - 3] << 8 | code[end - 2] << 16 | (uint32_t)code[end - 1] << 24);
		if (end >= 7 && code[end - 7] == 0x48 && code[end - 6] == 0xc7 && code[end - 5] == 0xc0)
			return (long)(int32_t)(code[end - 4] | code[end - 3] << 8 | code[end - 2] << 16 | (uint32_t)code[end - 1] << 24);
		if (end >= 2 && code[end - 2] == 0x31 && code[end - 1] == 0xc0)
			return 0;
		int len = arg_reload_before(code, end);
		if (!len)
			return -1;
		end -= len;
	}
	return -1;
}

static int is_syscall_insn_before(uint64_t rip)
{
	uint8_t insn[2];
	return rip >= 2 && read_code(rip - 2, insn, 2) && insn[0] == 0x0f && insn[1] == 0x05;
}

/* A wrapped call of this thread whose libc frame the interrupted context
 * is in, or NULL. */
static struct ck_call *interrupted_call(struct call_slot *s, uint64_t rsp)
{
	struct ck_call *c = s ? s->call : 0;
	uint64_t at = (uint64_t)c;
	if (!c || at <= rsp || at - rsp >= CALL_REACH)
		return 0;
	return c->magic == CALL_MAGIC && c->self == c ? c : 0;
}

CK_HIDDEN int ck_resume_interrupted_call(ucontext_t *uc)
{
	greg_t *g = uc->uc_mcontext.gregs;
	if (g[REG_RAX] != -EINTR || !is_syscall_insn_before((uint64_t)g[REG_RIP]))
		return CK_CALL_NONE;
	uint64_t fs = 0;
	ck_arch_prctl(0x1003 /* ARCH_GET_FS */, (unsigned long)&fs);
	struct call_slot *s = fs ? slot_of(fs, 0) : 0;
	struct ck_call *c = interrupted_call(s, (uint64_t)g[REG_RSP]);
	if (c) {
		int64_t left = -1;
		if (c->deadline_ns >= 0) {
			left = c->deadline_ns - mono_ns_raw();
			if (left < 0)
				left = 0;
		}
		s->left_ns = left;
		s->restores = ck_restores;
		__atomic_store_n(&s->hit, c, __ATOMIC_SEQ_CST);
		return CK_CALL_WRAPPED;
	}
	long nr = syscall_number_before((uint64_t)g[REG_RIP]);
	if (nr < 0 || nr == SYS_restart_syscall)
		return CK_CALL_NONE;
	g[REG_RAX] = nr;
	g[REG_RIP] -= 2;
	return CK_CALL_REWOUND;
}

/* Whether a signal with a handler of the program's will be delivered as
 * soon as the handler returns to the context uc (the program's mask):
 * one that came during the stop, or that a restore sent (SIGWINCH). The
 * main thread counts the process's signals too (the kernel offers one
 * sent to the process to the main thread first); another thread only its
 * own. */
/* Signals sent to the whole process that this thread alone can take:
 * every other thread blocks them (its mask as this checkpoint found it),
 * so the kernel gives them to this one. */
static uint64_t shared_taken_here(uint64_t pending)
{
	int n = ck_nthreads, self = (int)ck_gettid(), me = 0;
	uint64_t others_block = ~0ULL;
	if (n <= 1 || n > CK_MAX_THREADS)
		return 0;
	for (int i = 0; i < n; i++) {
		if (ck_threads[i].tid == self)
			me = 1;
		else
			others_block &= ck_threads[i].program_mask;
	}
	if (!me || !(pending & others_block))
		return 0;
	return pending & others_block & ck_read_pending_mask("/proc/self/status", "ShdPnd:");
}

static int program_handler_follows(const ucontext_t *uc, int main_thread, int threads_known)
{
	uint64_t pending = 0, mask;
	if (CK_SYS2(SYS_rt_sigpending, &pending, sizeof pending) != 0)
		return 0;
	ck_memcpy(&mask, &uc->uc_sigmask, sizeof mask);
	pending &= ~mask & ~(1ULL << (ck_session.sig - 1));
	/* the thread's own (tgkill), which rt_sigpending does not tell apart,
	 * and the process's that no other thread can take */
	if (pending && !main_thread)
		pending = (pending & ck_read_pending_mask("/proc/thread-self/status", "SigPnd:")) |
			  (threads_known ? shared_taken_here(pending) : 0);
	for (int sig = 1; sig <= 64; sig++) {
		if (!(pending >> (sig - 1) & 1))
			continue;
		struct ck_ksigaction ka;
		if (CK_SYS4(SYS_rt_sigaction, sig, 0, &ka, sizeof ka.mask) == 0 && ka.handler != (unsigned long)SIG_DFL &&
		    ka.handler != (unsigned long)SIG_IGN)
			return 1;
	}
	return 0;
}

/* At the end of the handler (after the checkpoint, or the restore): a call
 * the checkpoint interrupted, which the program would find interrupted by
 * the signal that follows, fails with EINTR after all, as it would have
 * without ckrun (vim learns of a new window size so, with its keys still
 * to be read; a worker thread woken by pthread_kill ends its poll). */
CK_HIDDEN void ck_yield_interrupted_call(ucontext_t *uc, int how, int threads_known)
{
	if (how == CK_CALL_NONE || !program_handler_follows(uc, ck_gettid() == ck_getpid(), threads_known))
		return;
	greg_t *g = uc->uc_mcontext.gregs;
	if (how == CK_CALL_REWOUND) {
		g[REG_RAX] = -EINTR;
		g[REG_RIP] += 2;
		return;
	}
	uint64_t fs = 0;
	ck_arch_prctl(0x1003 /* ARCH_GET_FS */, (unsigned long)&fs);
	struct call_slot *s = fs ? slot_of(fs, 0) : 0;
	if (s)
		__atomic_store_n(&s->hit, 0, __ATOMIC_SEQ_CST);
}

/* ---- the wrapped calls ---- */

/* libc's functions behind the wrappers, looked up when the library is
 * loaded (ck_syscalls_resolve, from the constructor): a lookup at the first
 * call would run the dynamic linker's string functions in the middle of the
 * program's call, and they use the vector registers, which a program may
 * keep values in across a system call wrapper (libc's own leave them). */
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask, size_t fdslen);
#define REAL_CALLS(X) \
	X(poll) X(__poll_chk) X(ppoll) X(__ppoll_chk) X(select) X(pselect) X(epoll_wait) X(epoll_pwait) \
	X(epoll_pwait2) X(semop) X(semtimedop) X(msgrcv) X(msgsnd) X(pause) X(nanosleep) X(clock_nanosleep) \
	X(usleep) X(sleep) X(mq_receive) X(mq_timedreceive) X(mq_send) X(mq_timedsend) X(syscall)
#define DECLARE_REAL(name) static __typeof__(name) *real_##name;
REAL_CALLS(DECLARE_REAL)

CK_HIDDEN void ck_syscalls_resolve(void)
{
#define RESOLVE_REAL(name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);
	REAL_CALLS(RESOLVE_REAL)
}

/* A wrapper may run before our constructor (another library's). */
#define REAL_CALL(name) \
	if (!real_##name) \
	ck_syscalls_resolve()

CK_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	REAL_CALL(poll);
	struct ck_call c;
	call_begin(&c, ms_to_ns(timeout));
	int r;
	while ((r = real_poll(fds, n, timeout)) < 0 && call_again(&c, errno))
		timeout = left_ms(&c);
	call_end(&c);
	return r;
}

CK_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	REAL_CALL(__poll_chk);
	struct ck_call c;
	call_begin(&c, ms_to_ns(timeout));
	int r;
	while ((r = real___poll_chk(fds, n, timeout, fdslen)) < 0 && call_again(&c, errno))
		timeout = left_ms(&c);
	call_end(&c);
	return r;
}

CK_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask)
{
	REAL_CALL(ppoll);
	struct ck_call c;
	struct timespec left;
	call_begin(&c, ts_to_ns(tmo));
	int r;
	while ((r = real_ppoll(fds, n, tmo, mask)) < 0 && call_again(&c, errno))
		tmo = left_ts(&c, &left);
	call_end(&c);
	return r;
}

CK_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask, size_t fdslen)
{
	REAL_CALL(__ppoll_chk);
	struct ck_call c;
	struct timespec left;
	call_begin(&c, ts_to_ns(tmo));
	int r;
	while ((r = real___ppoll_chk(fds, n, tmo, mask, fdslen)) < 0 && call_again(&c, errno))
		tmo = left_ts(&c, &left);
	call_end(&c);
	return r;
}

/* select: Linux leaves the time left in *tv, interrupted or not, so the
 * next try simply goes on with it (a failed select leaves the sets alone). */
CK_EXPORT int select(int n, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
	REAL_CALL(select);
	struct ck_call c;
	call_begin(&c, -1);
	int r;
	while ((r = real_select(n, rd, wr, ex, tv)) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

CK_EXPORT int pselect(int n, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *tmo, const sigset_t *mask)
{
	REAL_CALL(pselect);
	struct ck_call c;
	struct timespec left;
	call_begin(&c, ts_to_ns(tmo));
	int r;
	while ((r = real_pselect(n, rd, wr, ex, tmo, mask)) < 0 && call_again(&c, errno))
		tmo = left_ts(&c, &left);
	call_end(&c);
	return r;
}

CK_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	REAL_CALL(epoll_wait);
	struct ck_call c;
	call_begin(&c, ms_to_ns(timeout));
	int r;
	while ((r = real_epoll_wait(epfd, ev, max, timeout)) < 0 && call_again(&c, errno))
		timeout = left_ms(&c);
	call_end(&c);
	return r;
}

CK_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	REAL_CALL(epoll_pwait);
	struct ck_call c;
	call_begin(&c, ms_to_ns(timeout));
	int r;
	while ((r = real_epoll_pwait(epfd, ev, max, timeout, mask)) < 0 && call_again(&c, errno))
		timeout = left_ms(&c);
	call_end(&c);
	return r;
}

CK_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *tmo, const sigset_t *mask)
{
	REAL_CALL(epoll_pwait2);
	struct ck_call c;
	struct timespec left;
	call_begin(&c, ts_to_ns(tmo));
	int r;
	while ((r = real_epoll_pwait2(epfd, ev, max, tmo, mask)) < 0 && call_again(&c, errno))
		tmo = left_ts(&c, &left);
	call_end(&c);
	return r;
}

/* An operation with SEM_UNDO goes through sysvnote.c, which notes the
 * adjustment it leaves (a checkpoint cannot interrupt it there). */
static int has_undo(const struct sembuf *ops, size_t n)
{
	for (size_t i = 0; ops && i < n; i++)
		if (ops[i].sem_flg & SEM_UNDO)
			return 1;
	return 0;
}

static int undo_result(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return 0;
}

CK_EXPORT int semop(int id, struct sembuf *ops, size_t n)
{
	if (has_undo(ops, n))
		return undo_result(ck_sysv_semop_undo(id, ops, n, 0));
	ck_sysv_note(CK_SYSV_SEM, id);
	REAL_CALL(semop);
	struct ck_call c;
	call_begin(&c, -1);
	int r;
	while ((r = real_semop(id, ops, n)) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

CK_EXPORT int semtimedop(int id, struct sembuf *ops, size_t n, const struct timespec *tmo)
{
	if (has_undo(ops, n))
		return undo_result(ck_sysv_semop_undo(id, ops, n, tmo));
	ck_sysv_note(CK_SYSV_SEM, id);
	REAL_CALL(semtimedop);
	struct ck_call c;
	struct timespec left;
	call_begin(&c, ts_to_ns(tmo));
	int r;
	while ((r = real_semtimedop(id, ops, n, tmo)) < 0 && call_again(&c, errno))
		tmo = left_ts(&c, &left);
	call_end(&c);
	return r;
}

CK_EXPORT ssize_t msgrcv(int id, void *msg, size_t size, long type, int flags)
{
	ck_sysv_note(CK_SYSV_MSG, id);
	REAL_CALL(msgrcv);
	struct ck_call c;
	call_begin(&c, -1);
	ssize_t r;
	while ((r = real_msgrcv(id, msg, size, type, flags)) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

CK_EXPORT int msgsnd(int id, const void *msg, size_t size, int flags)
{
	ck_sysv_note(CK_SYSV_MSG, id);
	REAL_CALL(msgsnd);
	struct ck_call c;
	call_begin(&c, -1);
	int r;
	while ((r = real_msgsnd(id, msg, size, flags)) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

CK_EXPORT int pause(void)
{
	REAL_CALL(pause);
	struct ck_call c;
	call_begin(&c, -1);
	int r;
	while ((r = real_pause()) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

CK_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
	REAL_CALL(nanosleep);
	struct ck_call c;
	struct timespec left;
	call_begin(&c, ts_to_ns(req));
	int r;
	while ((r = real_nanosleep(req, rem)) < 0 && call_again(&c, errno))
		req = left_ts(&c, &left);
	call_end(&c);
	return r;
}

/* Returns the error number itself, as POSIX says. An absolute sleep just
 * goes on to the same deadline. */
CK_EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
	REAL_CALL(clock_nanosleep);
	struct ck_call c;
	struct timespec left;
	int absolute = flags & TIMER_ABSTIME;
	call_begin(&c, absolute ? -1 : ts_to_ns(req));
	int r;
	while ((r = real_clock_nanosleep(clk, flags, req, rem)) != 0 && call_again(&c, r))
		if (!absolute)
			req = left_ts(&c, &left);
	call_end(&c);
	return r;
}

/* glibc's usleep and sleep call its nanosleep internally, past the wrapper. */
CK_EXPORT int usleep(useconds_t us)
{
	REAL_CALL(usleep);
	struct ck_call c;
	call_begin(&c, (int64_t)us * 1000);
	int r;
	while ((r = real_usleep(us)) < 0 && call_again(&c, errno)) {
		int64_t ns = call_left_ns(&c);
		us = (useconds_t)((ns + 999) / 1000);
	}
	call_end(&c);
	return r;
}

CK_EXPORT unsigned sleep(unsigned secs)
{
	REAL_CALL(sleep);
	struct ck_call c;
	call_begin(&c, (int64_t)secs * 1000000000LL);
	unsigned r;
	/* the unslept seconds are rounded: the last part sleeps by the ns */
	while ((r = real_sleep(secs)) > 0 && call_again(&c, errno)) {
		struct timespec left;
		if (left_ts(&c, &left) && left.tv_sec == 0) {
			if (nanosleep(&left, 0) == 0)
				r = 0;
			break;
		}
		secs = (unsigned)left.tv_sec + (left.tv_nsec > 0);
	}
	call_end(&c);
	return r;
}

/* POSIX message queues: absolute timeouts, so the same call again. */
CK_EXPORT ssize_t mq_receive(mqd_t q, char *msg, size_t len, unsigned *prio)
{
	REAL_CALL(mq_receive);
	struct ck_call c;
	call_begin(&c, -1);
	ssize_t r;
	while ((r = real_mq_receive(q, msg, len, prio)) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

CK_EXPORT ssize_t mq_timedreceive(mqd_t q, char *msg, size_t len, unsigned *prio, const struct timespec *abs)
{
	REAL_CALL(mq_timedreceive);
	struct ck_call c;
	call_begin(&c, -1);
	ssize_t r;
	while ((r = real_mq_timedreceive(q, msg, len, prio, abs)) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

CK_EXPORT int mq_send(mqd_t q, const char *msg, size_t len, unsigned prio)
{
	REAL_CALL(mq_send);
	struct ck_call c;
	call_begin(&c, -1);
	int r;
	while ((r = real_mq_send(q, msg, len, prio)) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

CK_EXPORT int mq_timedsend(mqd_t q, const char *msg, size_t len, unsigned prio, const struct timespec *abs)
{
	REAL_CALL(mq_timedsend);
	struct ck_call c;
	call_begin(&c, -1);
	int r;
	while ((r = real_mq_timedsend(q, msg, len, prio, abs)) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

/* The signal wrappers of shim.c wait through these. */
CK_HIDDEN int ck_wait_sigsuspend(int (*real)(const sigset_t *), const sigset_t *mask)
{
	struct ck_call c;
	call_begin(&c, -1);
	int r;
	while ((r = real(mask)) < 0 && call_again(&c, errno))
		;
	call_end(&c);
	return r;
}

CK_HIDDEN int ck_wait_sigtimedwait(int (*real)(const sigset_t *, siginfo_t *, const struct timespec *), const sigset_t *set,
				   siginfo_t *info, const struct timespec *tmo)
{
	struct ck_call c;
	struct timespec left;
	call_begin(&c, ts_to_ns(tmo));
	int r;
	while ((r = real(set, info, tmo)) < 0 && call_again(&c, errno))
		tmo = left_ts(&c, &left);
	call_end(&c);
	return r;
}

/* ---- syscall(): the same, by number ---- */

/* Where a call by number keeps its timeout. */
enum timeout_kind {
	T_NONE,     /* none, an absolute one, or one the kernel updates in place: just again */
	T_MS,       /* an int of milliseconds in argument i (negative: none) */
	T_TIMESPEC, /* a relative struct timespec * in argument i (NULL: none) */
};

static enum timeout_kind timeout_of(long nr, const long *a, int *i)
{
	switch (nr) {
	case SYS_poll:
		*i = 2;
		return T_MS;
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
		*i = 3;
		return T_MS;
	case SYS_epoll_pwait2:
		*i = 3;
		return T_TIMESPEC;
	case SYS_nanosleep:
		*i = 0;
		return T_TIMESPEC;
	case SYS_clock_nanosleep:
		*i = 2;
		return (a[1] & TIMER_ABSTIME) ? T_NONE : T_TIMESPEC;
	case SYS_semtimedop: /* (id, ops, nops, timeout) */
		*i = 3;
		return T_TIMESPEC;
	case SYS_rt_sigtimedwait:
		*i = 2;
		return T_TIMESPEC;
	case SYS_io_getevents:
		*i = 4;
		return T_TIMESPEC;
	case SYS_futex:
		*i = 3;
		return (a[1] & FUTEX_CMD_MASK) == FUTEX_WAIT ? T_TIMESPEC : T_NONE;
	default:
		return T_NONE;
	}
}

/* syscall()'s six arguments, resumed like the calls above (shim.c's
 * syscall() collects them and shows seccomp and AIO calls to their kinds). */
CK_HIDDEN long ck_syscall_resumed(long nr, long *a)
{
	REAL_CALL(syscall);
	int i = 0;
	enum timeout_kind kind = timeout_of(nr, a, &i);
	struct ck_call c;
	struct timespec left;
	int64_t t = kind == T_MS ? ms_to_ns((int)a[i]) : kind == T_TIMESPEC ? ts_to_ns((const struct timespec *)a[i]) : -1;
	call_begin(&c, t);
	long r;
	while ((r = real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5])) == -1 && call_again(&c, errno)) {
		if (kind == T_MS)
			a[i] = left_ms(&c);
		else if (kind == T_TIMESPEC)
			a[i] = (long)left_ts(&c, &left);
	}
	call_end(&c);
	return r;
}
