/* Signals: dispositions, pending signals, interval timers and POSIX
 * timers. Dispositions are installed again by the restore host before the
 * switch (all signals blocked until each thread's rt_sigreturn); timers
 * and pending signals are re-armed by the restored leader at the very end,
 * when every thread a timer may signal exists again. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

CK_HIDDEN struct ck_saved_timers ck_saved_timers;
CK_HIDDEN int ck_saved_pdeathsig;
/* POSIX timers, captured in the shim's memory, so the restored leader
 * finds them there */
static struct ck_ptimer ptimers[CK_MAX_PTIMERS];
static int nptimers, ptimers_overflow;

/* The kernel lets timer_create take the ID from *timerid while this is
 * on (Linux 6.15, for checkpoint/restore); Debian 12's headers lack it. */
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1
#define PR_TIMER_CREATE_RESTORE_IDS_GET 2
#endif

/* The kernel's struct sigevent (64 bytes) */
struct ck_ksigevent {
	uint64_t value;
	int signo, notify, tid, pad[11];
};

struct ck_kitimerval {
	long isec, iusec, vsec, vusec;
};

static uint64_t sigbit(int sig)
{
	return 1ULL << (sig - 1);
}

static const char *next_line(const char *p)
{
	while (*p && *p != '\n')
		p++;
	return *p ? p + 1 : p;
}

static const char *after(const char *p, const char *prefix)
{
	size_t n = ck_strlen(prefix);
	return ck_strneq(p, prefix, n) ? p + n : 0;
}

static int parse_signed(const char **p, int *v)
{
	uint64_t u;
	int neg = **p == '-';
	*p += neg;
	if (!ck_parse_dec(p, &u))
		return 0;
	*v = neg ? -(int)u : (int)u;
	return 1;
}

/* One entry of /proc/self/timers:
 *   ID: 1 / signal: 32/00005603d318d470 / notify: signal/tid.31981 / ClockID: 0
 * ("notify" is signal, none or thread, then pid or tid and the target). */
static const char *parse_ptimer(const char *p, struct ck_ptimer *t)
{
	const char *q;
	uint64_t v;
	ck_memset(t, 0, sizeof *t);
	t->id = -1;
	for (; *p; p = next_line(p)) {
		if ((q = after(p, "ID: "))) {
			if (t->id >= 0)
				break; /* the next timer */
			if (ck_parse_dec(&q, &v))
				t->id = (int)v;
		} else if ((q = after(p, "signal: ")) && ck_parse_dec(&q, &v) && *q++ == '/') {
			t->signo = (int)v;
			ck_parse_hex(&q, &t->sival);
		} else if ((q = after(p, "notify: "))) {
			t->notify = ck_starts_with(q, "none") ? SIGEV_NONE : ck_starts_with(q, "thread") ? SIGEV_THREAD : SIGEV_SIGNAL;
			while (*q && *q != '/' && *q != '\n')
				q++;
			if (ck_starts_with(q, "/tid."))
				t->notify |= SIGEV_THREAD_ID;
			if (*q == '/' && q[1] && q[2] && q[3] && q[4] == '.') {
				q += 5;
				parse_signed(&q, &t->tid);
			}
		} else if ((q = after(p, "ClockID: "))) {
			parse_signed(&q, &t->clock);
		}
	}
	return p;
}

static void capture_ptimers(void)
{
	static char buf[64 * 1024];
	nptimers = 0;
	ptimers_overflow = 0;
	if (ck_read_file("/proc/self/timers", buf, sizeof buf) <= 0)
		return;
	for (const char *p = buf; *p;) {
		struct ck_ptimer t;
		p = parse_ptimer(p, &t);
		if (t.id < 0)
			break;
		if (nptimers == CK_MAX_PTIMERS) {
			ptimers_overflow = 1;
			break;
		}
		struct ck_timespec its[2] = {{0, 0}, {0, 0}}; /* interval, value */
		CK_SYS2(SYS_timer_gettime, t.id, its);
		t.interval_ns = (uint64_t)its[0].sec * 1000000000ULL + (uint64_t)its[0].nsec;
		t.value_ns = (uint64_t)its[1].sec * 1000000000ULL + (uint64_t)its[1].nsec;
		ptimers[nptimers++] = t;
	}
}

/* ---- queued signals with their siginfo ----
 * /proc shows only which signal numbers are pending. Every queued instance
 * with its siginfo (value, code, sender) is taken while the program stands
 * still (rt_sigtimedwait; a thread's own queue only by that thread) and
 * queued again at once, in the same order, so the program keeps them; the
 * restored process queues them again the same way (a process may queue any
 * siginfo to itself: rt_sigqueueinfo for the process, rt_tgsigqueueinfo by
 * the thread itself). Signals of POSIX timers are left alone: taking one
 * would re-arm its timer; they come back from the pending mask, one
 * instance, as before. The lists live in the shim's memory, which the
 * restored process finds as it was. */
#define CK_MAX_QUEUED 1024
static siginfo_t sigq_pool[CK_MAX_QUEUED];
static int sigq_next[CK_MAX_QUEUED];
static volatile int sigq_used;
static int sigq_overflow;
static long sigq_lost;             /* queueing one again failed: the program lost it */
static int shared_first = -1;      /* the process's own queue */
static uint64_t shared_mask;       /* the numbers in it */
static uint64_t timer_sigs;        /* numbers some POSIX timer sends */
static char sigq_refusal[200];

static uint64_t never_taken(void)
{
	/* ours; SIGKILL and SIGSTOP cannot be waited for */
	return sigbit(ck_session.sig) | sigbit(SIGKILL) | sigbit(SIGSTOP) | timer_sigs;
}

/* The numbers POSIX timers send ("signal: 34/..." in /proc/self/timers). */
static uint64_t read_timer_sigs(void)
{
	static char buf[16 * 1024];
	uint64_t m = 0;
	if (ck_read_file("/proc/self/timers", buf, sizeof buf) <= 0)
		return 0;
	for (const char *p = buf; *p; p = next_line(p)) {
		const char *q = after(p, "signal: ");
		uint64_t v;
		if (q && ck_parse_dec(&q, &v) && v >= 1 && v <= 64)
			m |= sigbit((int)v);
	}
	return m;
}

static void own_pending(uint64_t *private, uint64_t *shared)
{
	char buf[4096];
	*private = *shared = 0;
	if (ck_read_file("/proc/thread-self/status", buf, sizeof buf) <= 0)
		return;
	for (const char *p = buf; *p; p = next_line(p)) {
		const char *q;
		uint64_t v;
		if ((q = after(p, "SigPnd:\t")) && ck_parse_hex(&q, &v))
			*private = v;
		else if ((q = after(p, "ShdPnd:\t")) && ck_parse_hex(&q, &v))
			*shared = v;
	}
}

/* Takes every instance of the signals pending for this thread only (and,
 * with the process's queue given, the process's too) into the pool. */
static void take_queued(int *first, uint64_t *mask, int *sh_first, uint64_t *sh_mask)
{
	int *tail = first, *sh_tail = sh_first;
	uint64_t excl = never_taken();
	for (;;) {
		uint64_t private, shared;
		own_pending(&private, &shared);
		private &= ~excl;
		shared = sh_first ? shared & ~excl : 0;
		uint64_t pick = private ? private : shared;
		if (!pick)
			return;
		int slot = __atomic_fetch_add(&sigq_used, 1, __ATOMIC_SEQ_CST);
		if (slot >= CK_MAX_QUEUED) {
			sigq_overflow = 1;
			return;
		}
		uint64_t one = pick & -pick;
		struct ck_timespec zero = {0, 0};
		long sig = CK_SYS4(SYS_rt_sigtimedwait, &one, &sigq_pool[slot], &zero, 8);
		if (sig <= 0)
			return;
		sigq_next[slot] = -1;
		if (private) {
			*tail = slot;
			tail = &sigq_next[slot];
			*mask |= one;
		} else {
			*sh_tail = slot;
			sh_tail = &sigq_next[slot];
			*sh_mask |= one;
		}
	}
}

/* Queues a list again, in order; tid 0: to the process. */
static long queue_again(int first, int tid)
{
	int pid = (int)ck_getpid();
	for (int i = first; i >= 0; i = sigq_next[i]) {
		siginfo_t *si = &sigq_pool[i];
		long r = tid ? CK_SYS4(SYS_rt_tgsigqueueinfo, pid, tid, si->si_signo, si)
			     : CK_SYS3(SYS_rt_sigqueueinfo, pid, si->si_signo, si);
		if (r < 0)
			return r;
	}
	return 0;
}

/* In each thread's handler: the leader (thread 0) starts the pool and
 * takes its own queue later, with the process's (ck_signals_capture). */
CK_HIDDEN void ck_thread_signals_capture(struct ck_thread *t)
{
	t->attrs.sigq_first = -1;
	t->attrs.sigq_mask = 0;
	if (t == &ck_threads[0]) {
		sigq_used = 0;
		sigq_overflow = 0;
		sigq_lost = 0;
		sigq_refusal[0] = 0;
		timer_sigs = read_timer_sigs();
		return;
	}
	uint64_t any = 0;
	if (CK_SYS2(SYS_rt_sigpending, &any, 8) < 0 || !(any & ~never_taken()))
		return;
	take_queued(&t->attrs.sigq_first, &t->attrs.sigq_mask, 0, 0);
	long r = queue_again(t->attrs.sigq_first, t->tid);
	if (r < 0)
		sigq_lost = r;
}

/* The leader's own queue and the process's; the process's can be queued
 * again with its siginfo only by the thread whose TID is the PID. */
static void capture_leader_queues(void)
{
	struct ck_thread *me = &ck_threads[0];
	uint64_t private, shared;
	shared_first = -1;
	shared_mask = 0;
	int main_thread = me->tid == (int)ck_getpid();
	take_queued(&me->attrs.sigq_first, &me->attrs.sigq_mask, main_thread ? &shared_first : 0, &shared_mask);
	long r = queue_again(me->attrs.sigq_first, me->tid);
	if (r == 0)
		r = queue_again(shared_first, 0);
	if (r < 0)
		sigq_lost = r;
	own_pending(&private, &shared);
	if (!main_thread && (shared & ~never_taken())) {
		struct ck_str m;
		ck_str_init(&m, sigq_refusal, sizeof sigq_refusal);
		ck_str_add(&m, "the process has signals queued for it, and the checkpoint was led by thread ");
		ck_str_dec(&m, me->tid);
		ck_str_add(&m, ", not the main thread, which alone can queue them again with their siginfo");
	}
}

/* [[signal, code, pid, uid, value], ...] for inspection; the restored
 * process queues them from its own memory. */
static void save_queued(struct cb_enc *e, int first)
{
	uint64_t n = 0;
	for (int i = first; i >= 0; i = sigq_next[i])
		n++;
	cb_text(e, "queued");
	cb_array(e, n);
	for (int i = first; i >= 0; i = sigq_next[i]) {
		const siginfo_t *si = &sigq_pool[i];
		cb_array(e, 5);
		cb_uint(e, (uint64_t)si->si_signo);
		cb_int(e, si->si_code);
		cb_int(e, si->si_pid);
		cb_uint(e, si->si_uid);
		cb_uint(e, (uint64_t)si->si_value.sival_ptr);
	}
}

CK_HIDDEN void ck_thread_queued_save(struct cb_enc *e, const struct ck_thread *t)
{
	save_queued(e, t->attrs.sigq_first);
}

static __attribute__((noreturn)) void requeue_failed(long err)
{
	char buf[200];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, "ckrun restart: queueing the program's pending signals again failed: ");
	ck_str_errno(&m, err);
	ck_str_add(&m, " (the half-restored process is ended)\n");
	ck_write(2, buf, m.len);
	ck_exit_group(70);
	__builtin_unreachable();
}

/* In the restored shim, each thread its own queue. */
CK_HIDDEN void ck_thread_signals_after_restore(struct ck_thread *t)
{
	long r = queue_again(t->attrs.sigq_first, t->tid);
	if (r < 0)
		requeue_failed(r);
}

/* Called by the leader while every thread is stopped, before the resume
 * context is saved: the restored leader re-arms exactly this. */
CK_HIDDEN void ck_signals_capture(void)
{
	for (int i = 0; i < 3; i++) {
		struct ck_kitimerval v;
		ck_memset(&v, 0, sizeof v);
		CK_SYS2(SYS_getitimer, i, &v);
		ck_saved_timers.it[i].isec = v.isec;
		ck_saved_timers.it[i].iusec = v.iusec;
		ck_saved_timers.it[i].vsec = v.vsec;
		ck_saved_timers.it[i].vusec = v.vusec;
	}
	capture_ptimers();
	ck_saved_pdeathsig = 0;
	ck_prctl(PR_GET_PDEATHSIG, (long)&ck_saved_pdeathsig, 0, 0, 0);
	capture_leader_queues();
	ck_proc_attrs_capture();
	uint64_t ours = sigbit(ck_session.sig);
	ck_saved_timers.shared_pending = ck_read_pending_mask("/proc/self/status", "ShdPnd:") & ~ours;
	int n = ck_nthreads;
	for (int i = 0; i < n; i++) {
		char path[64];
		struct ck_str s;
		ck_str_init(&s, path, sizeof path);
		ck_str_add(&s, "/proc/self/task/");
		ck_str_dec(&s, ck_threads[i].tid);
		ck_str_add(&s, "/status");
		ck_threads[i].pending = ck_read_pending_mask(path, "SigPnd:") & ~ours;
	}
}

static const char *notify_name(int notify)
{
	switch (notify & ~SIGEV_THREAD_ID) {
	case SIGEV_NONE:
		return "none";
	case SIGEV_THREAD:
		return "thread";
	default:
		return notify & SIGEV_THREAD_ID ? "thread_id" : "signal";
	}
}

static void save_ptimers(struct cb_enc *e)
{
	cb_text(e, "timers");
	cb_array(e, (uint64_t)nptimers);
	for (int i = 0; i < nptimers; i++) {
		const struct ck_ptimer *t = &ptimers[i];
		cb_map(e, 8);
		cb_kv_uint(e, "id", (uint64_t)t->id);
		cb_kv_int(e, "clock", t->clock);
		cb_kv_text(e, "notify", notify_name(t->notify));
		cb_kv_uint(e, "signal", (uint64_t)t->signo);
		cb_kv_int(e, "tid", t->tid);
		cb_kv_uint(e, "value", t->sival);
		cb_kv_uint(e, "remaining_ns", t->value_ns);
		cb_kv_uint(e, "interval_ns", t->interval_ns);
	}
}

CK_HIDDEN void ck_signals_save(struct ck_writer *w)
{
	struct cb_enc *e = &w->meta;
	if (ptimers_overflow)
		ck_writer_fail(w, -EOPNOTSUPP, "the program has more than 256 POSIX timers (timer_create), more than ckrun saves");
	if (sigq_overflow)
		ck_writer_fail(w, -EOPNOTSUPP, "the program has more than 1024 queued signals, more than ckrun saves");
	if (sigq_lost)
		ck_writer_fail(w, sigq_lost, "a pending signal the checkpoint took could not be queued again (the program lost it)");
	if (sigq_refusal[0]) {
		ck_writer_fail(w, -EOPNOTSUPP, "cannot save the pending signals");
		struct ck_str d;
		ck_str_init(&d, w->err_detail, sizeof w->err_detail);
		ck_str_add(&d, sigq_refusal);
	}
	cb_text(e, "signals");
	cb_map(e, 5);
	cb_text(e, "actions");
	cb_array_open(e);
	for (int sig = 1; sig <= 64; sig++) {
		struct ck_ksigaction ka;
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (ck_rt_sigaction(sig, 0, &ka) < 0 || (ka.handler == 0 && ka.flags == 0 && ka.mask == 0))
			continue;
		cb_array(e, 5);
		cb_uint(e, (uint64_t)sig);
		cb_uint(e, ka.handler);
		cb_uint(e, ka.flags);
		cb_uint(e, ka.restorer);
		cb_uint(e, ka.mask);
	}
	cb_close(e);
	cb_kv_uint(e, "pending", ck_saved_timers.shared_pending);
	cb_text(e, "itimers");
	cb_array(e, 3);
	for (int i = 0; i < 3; i++) {
		cb_array(e, 2);
		cb_uint(e, (uint64_t)(ck_saved_timers.it[i].isec * 1000000L + ck_saved_timers.it[i].iusec));
		cb_uint(e, (uint64_t)(ck_saved_timers.it[i].vsec * 1000000L + ck_saved_timers.it[i].vusec));
	}
	save_ptimers(e);
	save_queued(e, shared_first);
}

static void say_timer_failed(int id, long err)
{
	char buf[160];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, "ckrun: cannot create POSIX timer ");
	ck_str_dec(&m, id);
	ck_str_add(&m, " again after the restart: ");
	ck_str_errno(&m, err);
	ck_str_add(&m, "\n");
	ck_write(2, buf, ck_strlen(buf));
}

/* Each timer with its own ID (the program holds the IDs), target thread,
 * signal and value (for glibc's SIGEV_THREAD timers, the pointer its
 * helper thread follows), armed with its remaining time. The restore
 * host checked that the kernel can choose IDs (ck_ptimers_check). */
static void restore_ptimers(void)
{
	if (!nptimers)
		return;
	ck_prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0);
	for (int i = 0; i < nptimers; i++) {
		const struct ck_ptimer *t = &ptimers[i];
		struct ck_ksigevent ev;
		ck_memset(&ev, 0, sizeof ev);
		ev.value = t->sival;
		ev.signo = t->signo;
		ev.notify = t->notify;
		ev.tid = t->tid;
		int id = t->id;
		long r = CK_SYS3(SYS_timer_create, t->clock, &ev, &id);
		if (r == 0 && id != t->id)
			r = -EEXIST;
		if (r < 0) {
			say_timer_failed(t->id, r);
			continue;
		}
		struct ck_timespec its[2] = {
			{(long)(t->interval_ns / 1000000000ULL), (long)(t->interval_ns % 1000000000ULL)},
			{(long)(t->value_ns / 1000000000ULL), (long)(t->value_ns % 1000000000ULL)},
		};
		if (t->value_ns && (r = CK_SYS4(SYS_timer_settime, id, 0, its, 0)) < 0)
			say_timer_failed(t->id, r);
	}
	ck_prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0);
}

/* In the restored leader, every thread parked in the handler with all
 * signals blocked: what is raised now is delivered after rt_sigreturn,
 * under each thread's own mask, as it would have been. */
CK_HIDDEN void ck_signals_after_restore(int nthreads)
{
	for (int i = 0; i < 3; i++) {
		struct ck_kitimerval v = {
			ck_saved_timers.it[i].isec, ck_saved_timers.it[i].iusec,
			ck_saved_timers.it[i].vsec, ck_saved_timers.it[i].vusec,
		};
		if (v.vsec || v.vusec)
			CK_SYS3(SYS_setitimer, i, &v, 0);
	}
	restore_ptimers();
	/* (a restore host dies with its parent while it restores; every
	 * thread got its own parent-death signal back, attrs.c) */
	long r = queue_again(shared_first, 0);
	if (r < 0)
		requeue_failed(r);
	/* what is pending without a siginfo kept: timers' signals, and any
	 * that arrived while the checkpoint took the others */
	int pid = (int)ck_getpid();
	for (int sig = 1; sig <= 64; sig++)
		if (ck_saved_timers.shared_pending & ~shared_mask & sigbit(sig))
			ck_kill(pid, sig);
	for (int i = 0; i < nthreads; i++)
		for (int sig = 1; sig <= 64; sig++)
			if (ck_threads[i].pending & ~ck_threads[i].attrs.sigq_mask & sigbit(sig))
				ck_tgkill(pid, ck_threads[i].tid, sig);
}

/* ---- restore host ---- */

CK_HIDDEN int ck_signals_parse(struct cb_dec *d, struct ck_image *img)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "timers")) {
			int64_t n;
			if (!cbd_array(d, &n))
				return 0;
			while (cbd_next_item(d, &n)) {
				img->nptimers++;
				if (!cbd_skip(d))
					return 0;
			}
			continue;
		}
		if (!cbd_key_is(k, kl, "actions")) {
			if (!cbd_skip(d))
				return 0;
			continue;
		}
		int64_t n;
		if (!cbd_array(d, &n))
			return 0;
		img->actions = calloc(64, sizeof *img->actions);
		while (cbd_next_item(d, &n)) {
			int64_t m;
			uint64_t v[5];
			if (!cbd_array(d, &m) || m != 5)
				return 0;
			for (int i = 0; i < 5; i++)
				if (!cbd_uint(d, &v[i]))
					return 0;
			if (v[0] < 1 || v[0] > 64 || img->nactions >= 64)
				return 0;
			struct ck_img_action *a = &img->actions[img->nactions++];
			a->sig = (int)v[0];
			a->handler = v[1];
			a->flags = v[2];
			a->restorer = v[3];
			a->mask = v[4];
		}
	}
	return !d->error;
}

/* Handlers point into the image's memory, which does not exist yet: every
 * signal stays blocked until the restored threads return from the shim's
 * handler through rt_sigreturn with their own masks. */
CK_HIDDEN void ck_signals_restore(struct ck_image *img)
{
	/* the timers themselves come back from the shim's memory, after the
	 * switch, where nothing can be refused any more: check the kernel now */
	if (img->nptimers && ck_prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0) < 0)
		ck_refuse("the program has %zu POSIX timers, and this kernel cannot create them with their IDs again "
			  "(prctl PR_TIMER_CREATE_RESTORE_IDS needs Linux 6.15 or later)", img->nptimers);
	uint64_t all = ~0ULL;
	ck_rt_sigprocmask(SIG_SETMASK, &all, 0);
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		struct ck_ksigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		ck_rt_sigaction(sig, &dfl, 0);
	}
	for (size_t i = 0; i < img->nactions; i++) {
		struct ck_img_action *a = &img->actions[i];
		struct ck_ksigaction ka = {a->handler, a->flags, a->restorer, a->mask};
		long r = ck_rt_sigaction(a->sig, &ka, 0);
		if (r < 0)
			ck_refuse("cannot set the action of signal %d: %s", a->sig, ck_errno_name(r));
	}
}
