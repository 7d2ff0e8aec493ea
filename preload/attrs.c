/* Process and thread attributes a restart puts back (see attrs.h for where
 * each one is set again, and why there). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

/* Debian 12's headers lack the newer ones. */
#ifndef PR_GET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#endif
#ifndef PR_GET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif
#ifndef PR_SCHED_CORE
#define PR_SCHED_CORE 62
#define PR_SCHED_CORE_GET 0
#endif
#define MDWE_KNOWN 3UL             /* PR_MDWE_REFUSE_EXEC_GAIN | PR_MDWE_NO_INHERIT */
#define MEMBARRIER_GET_REGISTRATIONS (1 << 9)
#define MEMBARRIER_QUERY 0
/* the registration commands, as GET_REGISTRATIONS reports them */
#define MEMBARRIER_REGISTRATIONS (4 | 16 | 64 | 256)
#define SCHED_FLAGS_KEPT 0x7ULL    /* SCHED_FLAG_RESET_ON_FORK | RECLAIM | DL_OVERRUN */
#define SCHED_FLAG_UTIL_CLAMP 0x60ULL
#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_CLASS(v) (((v) >> 13) & 7)
#define IOPRIO_CLASS_RT 1
#define ARCH_SET_GS 0x1001
#define ARCH_GET_GS 0x1004
#define ARCH_GET_CPUID 0x1011
#define ARCH_SET_CPUID 0x1012
#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define ARCH_GET_UNTAG_MASK 0x4001
#define ARCH_SHSTK_STATUS 0x5005
#define XFEATURES_DYNAMIC_FIRST 17 /* XTILECFG/XTILEDATA and later are asked for, not given */
#define CAP_SYS_ADMIN_BIT 21
#define CAP_SYS_NICE_BIT 23

/* sched_getattr/sched_setattr's struct sched_attr (56 bytes) */
struct ck_ksched_attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

static struct ck_proc_attrs proc_attrs;
static char capture_refusal[320]; /* why no restart could give them back, or "" */

static void refuse_later(const char *a, const char *b, long v, const char *c)
{
	struct ck_str m;
	if (capture_refusal[0])
		return;
	ck_str_init(&m, capture_refusal, sizeof capture_refusal);
	ck_str_add(&m, a);
	if (b) {
		ck_str_add(&m, b);
		ck_str_dec(&m, v);
		ck_str_add(&m, c);
	}
}

/* ---- in the wrappers: what the kernel shows no one ---- */

#define MAX_NOTED 16
#define PTRACER_ANY (-1L)
static volatile long ptracer;                   /* PR_SET_PTRACER: 0, PTRACER_ANY or a PID */
static volatile int io_flushers[MAX_NOTED];     /* threads with PR_SET_IO_FLUSHER 1 (0: a free slot) */
static volatile int dispatchers[MAX_NOTED];     /* threads with syscall user dispatch on */
static volatile int noted_overflow;

static void note_thread(volatile int *slots, int tid, int on)
{
	for (int i = 0; i < MAX_NOTED; i++) {
		int t = tid;
		if (__atomic_compare_exchange_n(&slots[i], &t, on ? tid : 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return; /* already noted: cleared, or left */
	}
	if (!on)
		return;
	for (int i = 0; i < MAX_NOTED; i++) {
		int none = 0;
		if (__atomic_compare_exchange_n(&slots[i], &none, tid, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return;
	}
	noted_overflow = 1;
}

/* After a prctl the program made through libc, r as the kernel returned it. */
static void prctl_seen(const long *a, long r)
{
	if (r < 0)
		return;
	int tid = (int)ck_gettid();
	if (a[0] == PR_SET_PTRACER)
		ptracer = a[1] == (long)PR_SET_PTRACER_ANY ? PTRACER_ANY : a[1];
	else if (a[0] == PR_SET_IO_FLUSHER)
		note_thread(io_flushers, tid, a[1] != 0);
	else if (a[0] == PR_SET_SYSCALL_USER_DISPATCH)
		note_thread(dispatchers, tid, a[1] != 0 /* PR_SYS_DISPATCH_OFF */);
}

CK_HIDDEN void ck_attrs_before(long nr, const long *a)
{
	if (nr == SYS_seccomp || (nr == SYS_prctl && a[0] == PR_SET_SECCOMP))
		ck_seccomp_before(nr, a);
}

CK_HIDDEN void ck_attrs_after(long nr, const long *a, long r)
{
	if (nr == SYS_seccomp || (nr == SYS_prctl && a[0] == PR_SET_SECCOMP))
		ck_seccomp_after(nr, a, r);
	else if (nr == SYS_prctl)
		prctl_seen(a, r);
	else
		ck_aio_after(nr, a, r);
}

static int is_our_thread(int tid)
{
	for (int i = 0; i < ck_nthreads; i++)
		if (ck_threads[i].tid == tid)
			return 1;
	return 0;
}

/* The noted settings no restart could give back; the ptracer comes back
 * when it was "any" (ck_attrs_restore_last). */
static void refuse_noted(void)
{
	for (int i = 0; i < MAX_NOTED; i++) {
		int f = io_flushers[i], d = dispatchers[i];
		/* inherited by fork: a child holds it from the thread that forked it */
		if (f)
			refuse_later("", "thread ", f, is_our_thread(f) ? " is an I/O flusher (PR_SET_IO_FLUSHER), which ckrun "
									   "does not give back"
									 : " of the parent made itself an I/O flusher (PR_SET_IO_FLUSHER) "
									   "and forked this process, which inherited it; ckrun does not "
									   "give it back");
		if (d && is_our_thread(d)) /* not inherited by fork */
			refuse_later("", "thread ", d, " has syscall user dispatch on (PR_SET_SYSCALL_USER_DISPATCH), under "
						       "which ckrun's own system calls would be dispatched to the program");
	}
	if (noted_overflow)
		refuse_later("more threads set PR_SET_IO_FLUSHER or PR_SET_SYSCALL_USER_DISPATCH than ckrun keeps track of",
			     0, 0, 0);
	if (ptracer > 0)
		refuse_later("", "the process let process ", ptracer, " trace it (PR_SET_PTRACER); after a restart that PID "
								  "may be another process, so ckrun does not give it back");
}

/* ---- in the program: capture, while every thread stands still ---- */

CK_HIDDEN void ck_thread_attrs_capture(struct ck_thread_attrs *a)
{
	struct ck_ksched_attr k;
	ck_memset(&k, 0, sizeof k);
	ck_memset(&a->core, 0, sizeof a->core);
	a->seccomp_node = -1;
	a->unsaveable = 0;
	if (CK_SYS4(SYS_sched_getattr, 0, &k, sizeof k, 0) == 0 &&
	    CK_SYS3(SYS_sched_getaffinity, 0, sizeof a->core.cpus, a->core.cpus) > 0) {
		a->core.have = 1;
		a->core.sched = (struct ck_sched){k.policy, k.priority, k.nice, k.flags & SCHED_FLAGS_KEPT, k.runtime,
						  k.deadline, k.period, k.util_min, k.util_max};
	} else {
		a->unsaveable |= CK_ATTR_UNREADABLE;
	}
	a->core.ioprio = (int)CK_SYS2(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	a->timerslack = ck_prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	a->mce_kill = ck_prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	a->tsc = PR_TSC_ENABLE;
	ck_prctl(PR_GET_TSC, (long)&a->tsc, 0, 0, 0);
	a->pdeathsig = 0;
	ck_prctl(PR_GET_PDEATHSIG, (long)&a->pdeathsig, 0, 0, 0);
	a->cpuid = ck_arch_prctl(ARCH_GET_CPUID, 0) != 0; /* an error: the CPU cannot make it fault */
	a->gs_base = 0;
	ck_arch_prctl(ARCH_GET_GS, (unsigned long)&a->gs_base);
	uint64_t shstk = 0;
	if (ck_arch_prctl(ARCH_SHSTK_STATUS, (unsigned long)&shstk) == 0 && shstk)
		a->unsaveable |= CK_ATTR_SHSTK;
	/* a core-scheduling cookie names a group of tasks no restart can join again */
	uint64_t cookie = 0;
	if (ck_prctl(PR_SCHED_CORE, PR_SCHED_CORE_GET, 0, 0 /* PIDTYPE_PID */, (long)&cookie) == 0 && cookie)
		a->unsaveable |= CK_ATTR_CORE_COOKIE;
}

/* Each thread captured its own before the leader got here; the first
 * thread with something no restart could give back fails the checkpoint. */
static void refuse_for_threads(void)
{
	for (int i = 0; i < ck_nthreads; i++) {
		int u = ck_threads[i].attrs.unsaveable, tid = ck_threads[i].tid;
		if (u & CK_ATTR_UNREADABLE)
			refuse_later("", "thread ", tid, "'s scheduling policy or CPU affinity could not be read "
							  "(sched_getattr, sched_getaffinity), so it could not be given back");
		else if (u & CK_ATTR_SHSTK)
			refuse_later("", "thread ", tid, " has a shadow stack (ARCH_SHSTK_ENABLE), which ckrun cannot give back");
		else if (u & CK_ATTR_CORE_COOKIE)
			refuse_later("", "thread ", tid, " has a core-scheduling cookie (prctl PR_SCHED_CORE), which names a "
							  "group of tasks no restart can join again");
	}
}

static long read_signed_file(const char *path, long fallback)
{
	char buf[32];
	long n = ck_read_file(path, buf, sizeof buf);
	const char *p = buf;
	uint64_t v;
	if (n <= 0)
		return fallback;
	int neg = *p == '-';
	p += neg;
	return ck_parse_dec(&p, &v) ? (neg ? -(long)v : (long)v) : fallback;
}

/* The audit login UID (4294967295 when never set; also without audit). */
static uint64_t read_loginuid(void)
{
	char buf[24];
	const char *p = buf;
	uint64_t v = 4294967295u;
	long n = ck_read_file("/proc/self/loginuid", buf, sizeof buf - 1);
	if (n > 0) {
		buf[n] = 0;
		ck_parse_dec(&p, &v);
	}
	return v;
}

CK_HIDDEN void ck_proc_attrs_capture(void)
{
	struct ck_proc_attrs *a = &proc_attrs;
	capture_refusal[0] = 0;
	refuse_for_threads();
	refuse_noted();
	a->oom_score_adj = (int)read_signed_file("/proc/self/oom_score_adj", 0);
	a->loginuid = read_loginuid();
	char cf[32];
	const char *q = cf;
	a->coredump_filter = 0x33; /* the kernel's default */
	if (ck_read_file("/proc/self/coredump_filter", cf, sizeof cf) > 0)
		ck_parse_hex(&q, &a->coredump_filter);
	a->thp_disable = (int)ck_prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	if (a->thp_disable < 0)
		a->thp_disable = 0;
	else if (a->thp_disable > 1)
		refuse_later("PR_GET_THP_DISABLE says ", "", a->thp_disable, ", a setting this ckrun does not know");
	a->child_subreaper = 0;
	ck_prctl(PR_GET_CHILD_SUBREAPER, (long)&a->child_subreaper, 0, 0, 0);
	a->membarrier = CK_SYS3(SYS_membarrier, MEMBARRIER_GET_REGISTRATIONS, 0, 0);
	if (a->membarrier < 0) {
		/* a kernel before 6.3 cannot tell: nothing is registered again (README) */
		a->membarrier = 0;
	} else if (a->membarrier & ~(long)MEMBARRIER_REGISTRATIONS) {
		refuse_later("the process has membarrier registrations ", "", a->membarrier, " this ckrun does not know");
	}
	a->mdwe = ck_prctl(PR_GET_MDWE, 0, 0, 0, 0);
	if (a->mdwe < 0)
		a->mdwe = 0;
	else if ((unsigned long)a->mdwe & ~MDWE_KNOWN)
		refuse_later("PR_GET_MDWE says ", "", a->mdwe, ", a setting this ckrun does not know");
	a->memory_merge = ck_prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	if (a->memory_merge < 0)
		a->memory_merge = 0;
	a->xcomp_perm = 0;
	ck_arch_prctl(ARCH_GET_XCOMP_PERM, (unsigned long)&a->xcomp_perm);
	uint64_t untag = ~0ULL;
	if (ck_arch_prctl(ARCH_GET_UNTAG_MASK, (unsigned long)&untag) == 0 && untag != ~0ULL)
		refuse_later("the process uses linear address masking (ARCH_ENABLE_TAGGED_ADDR), which ckrun cannot give back",
			     0, 0, 0);
	ck_seccomp_capture();
	char why[256];
	if (!ck_aio_capture(why, sizeof why))
		refuse_later(why, 0, 0, 0);
}

/* ---- in the program: the image's keys ---- */

CK_HIDDEN void ck_thread_attrs_save(struct cb_enc *e, const struct ck_thread_attrs *a)
{
	const struct ck_sched *s = &a->core.sched;
	int deadline = s->policy == SCHED_DEADLINE, clamp = s->util_min || (s->util_max && s->util_max != 1024);
	cb_text(e, "attrs");
	cb_map(e, (uint64_t)(13 + 3 * deadline + 2 * clamp));
	cb_kv_uint(e, "policy", s->policy);
	cb_kv_int(e, "nice", s->nice);
	cb_kv_uint(e, "priority", s->priority);
	cb_kv_uint(e, "sched_flags", s->flags);
	if (deadline) {
		cb_kv_uint(e, "runtime", s->runtime);
		cb_kv_uint(e, "deadline", s->deadline);
		cb_kv_uint(e, "period", s->period);
	}
	if (clamp) {
		cb_kv_uint(e, "util_min", s->util_min);
		cb_kv_uint(e, "util_max", s->util_max);
	}
	cb_text(e, "cpus");
	cb_array(e, CK_CPU_WORDS);
	for (int i = 0; i < CK_CPU_WORDS; i++)
		cb_uint(e, a->core.cpus[i]);
	cb_kv_int(e, "ioprio", a->core.ioprio);
	cb_kv_int(e, "timerslack", a->timerslack);
	cb_kv_int(e, "mce_kill", a->mce_kill);
	cb_kv_int(e, "tsc", a->tsc);
	cb_kv_int(e, "pdeathsig", a->pdeathsig);
	cb_kv_bool(e, "cpuid", a->cpuid);
	cb_kv_uint(e, "gs_base", a->gs_base);
	cb_text(e, "seccomp");
	if (a->seccomp_node >= 0)
		cb_uint(e, (uint64_t)a->seccomp_node);
	else
		cb_null(e);
}

CK_HIDDEN void ck_proc_attrs_save(struct ck_writer *w)
{
	struct cb_enc *e = &w->meta;
	const struct ck_proc_attrs *a = &proc_attrs;
	if (capture_refusal[0]) {
		ck_writer_fail(w, -EOPNOTSUPP, "cannot save the process's attributes");
		struct ck_str d;
		ck_str_init(&d, w->err_detail, sizeof w->err_detail);
		ck_str_add(&d, capture_refusal);
	}
	cb_text(e, "attrs");
	cb_map(e, 9);
	cb_kv_int(e, "oom_score_adj", a->oom_score_adj);
	cb_kv_uint(e, "loginuid", a->loginuid);
	cb_kv_uint(e, "coredump_filter", a->coredump_filter);
	cb_kv_uint(e, "thp_disable", (uint64_t)a->thp_disable);
	cb_kv_bool(e, "child_subreaper", a->child_subreaper != 0);
	cb_kv_uint(e, "membarrier", (uint64_t)a->membarrier);
	cb_kv_uint(e, "mdwe", (uint64_t)a->mdwe);
	cb_kv_uint(e, "memory_merge", (uint64_t)a->memory_merge);
	cb_kv_uint(e, "xcomp_perm", a->xcomp_perm);
	ck_seccomp_save(w);
	ck_aio_save(e);
}

/* ---- in the restored shim ---- */

static __attribute__((noreturn)) void restored_fail(const char *what, long err)
{
	char buf[256];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, "ckrun restart: ");
	ck_str_add(&m, what);
	ck_str_add(&m, ": ");
	ck_str_errno(&m, err);
	ck_str_add(&m, " (the half-restored process is ended)\n");
	ck_write(2, buf, m.len);
	ck_exit_group(CK_EXIT_CORE_FAILED);
	__builtin_unreachable();
}

static void restored_prctl(int op, long a, long b, const char *what)
{
	long r = ck_prctl(op, a, b, 0, 0);
	if (r < 0)
		restored_fail(what, r);
}

/* What the thread may set itself, without privilege. PR_SET_TSC and
 * ARCH_SET_CPUID last: a thread whose reads of the time-stamp counter or
 * cpuid fault must not use them. */
CK_HIDDEN void ck_thread_attrs_after_restore(const struct ck_thread_attrs *a)
{
	if (!a->core.have)
		return;
	long r;
	if (a->gs_base && (r = ck_arch_prctl(ARCH_SET_GS, a->gs_base)) < 0)
		restored_fail("setting the thread's %gs base failed", r);
	/* an RT thread's slack is 0 and cannot be set; 0 would mean "the default" */
	if (a->timerslack > 0)
		restored_prctl(PR_SET_TIMERSLACK, a->timerslack, 0, "setting the thread's timer slack failed");
	if (a->mce_kill == PR_MCE_KILL_EARLY || a->mce_kill == PR_MCE_KILL_LATE)
		restored_prctl(PR_MCE_KILL, PR_MCE_KILL_SET, a->mce_kill, "setting the thread's PR_MCE_KILL policy failed");
	else
		restored_prctl(PR_MCE_KILL, PR_MCE_KILL_CLEAR, 0, "clearing the thread's PR_MCE_KILL policy failed");
	restored_prctl(PR_SET_PDEATHSIG, a->pdeathsig, 0, "setting the thread's parent-death signal failed");
	/* set when they differ from what the thread has: either way, not the restorer's */
	int tsc = PR_TSC_ENABLE;
	ck_prctl(PR_GET_TSC, (long)&tsc, 0, 0, 0);
	if (tsc != a->tsc)
		restored_prctl(PR_SET_TSC, a->tsc, 0, "setting the thread's PR_SET_TSC failed");
	if ((ck_arch_prctl(ARCH_GET_CPUID, 0) != 0) != a->cpuid && (r = ck_arch_prctl(ARCH_SET_CPUID, a->cpuid)) < 0)
		restored_fail("setting whether the cpuid instruction faults in the thread (ARCH_SET_CPUID) failed", r);
}

/* The restored leader, when everything else is back: what restricts what
 * the process may do from now on comes last (its seccomp filters may even
 * forbid calls of the restore; PR_SET_MDWE forbids executable memory it
 * gains). */
CK_HIDDEN void ck_attrs_restore_last(void)
{
	const struct ck_proc_attrs *a = &proc_attrs;
	restored_prctl(PR_SET_CHILD_SUBREAPER, a->child_subreaper != 0, 0, "setting the child-subreaper flag failed");
	if (ptracer == PTRACER_ANY)
		restored_prctl(PR_SET_PTRACER, (long)PR_SET_PTRACER_ANY, 0, "letting any process trace it (PR_SET_PTRACER) failed");
	if (a->mdwe)
		restored_prctl(PR_SET_MDWE, a->mdwe, 0, "setting PR_SET_MDWE failed");
	ck_seccomp_restore_leader(&ck_threads[0]);
}

CK_HIDDEN void ck_attrs_restore_last_thread(struct ck_thread *t)
{
	ck_seccomp_restore_thread(t);
}

/* ---- the restore host: reading ---- */

static int parse_int(struct cb_dec *d, int64_t lo, int64_t hi, int64_t *out)
{
	return cbd_int_range(d, lo, hi, out);
}

CK_HIDDEN int ck_thread_attrs_parse(struct cb_dec *d, struct ck_core_attrs *a)
{
	int64_t left, v;
	const char *k;
	size_t kl;
	uint64_t u;
	if (!cbd_map(d, &left))
		return 0;
	ck_memset(a, 0, sizeof *a);
	int seen = 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		int ok = 1;
		struct ck_sched *s = &a->sched;
		if (cbd_key_is(k, kl, "policy")) {
			ok = cbd_uint_max(d, 7, &u);
			s->policy = (uint32_t)u;
			seen |= 1;
		} else if (cbd_key_is(k, kl, "nice")) {
			ok = parse_int(d, -20, 19, &v);
			s->nice = (int32_t)v;
			seen |= 2;
		} else if (cbd_key_is(k, kl, "priority")) {
			ok = cbd_uint_max(d, 99, &u);
			s->priority = (uint32_t)u;
		} else if (cbd_key_is(k, kl, "sched_flags")) {
			ok = cbd_uint_max(d, SCHED_FLAGS_KEPT, &s->flags);
		} else if (cbd_key_is(k, kl, "runtime") || cbd_key_is(k, kl, "deadline") || cbd_key_is(k, kl, "period")) {
			uint64_t *f = cbd_key_is(k, kl, "runtime") ? &s->runtime : cbd_key_is(k, kl, "deadline") ? &s->deadline : &s->period;
			ok = cbd_uint(d, f);
		} else if (cbd_key_is(k, kl, "util_min") || cbd_key_is(k, kl, "util_max")) {
			ok = cbd_uint_max(d, 1024, &u);
			*(cbd_key_is(k, kl, "util_min") ? &s->util_min : &s->util_max) = (uint32_t)u;
		} else if (cbd_key_is(k, kl, "cpus")) {
			int64_t n;
			ok = cbd_array(d, &n) && n == CK_CPU_WORDS;
			for (int i = 0; ok && i < CK_CPU_WORDS; i++)
				ok = cbd_uint(d, &a->cpus[i]);
			seen |= 4;
		} else if (cbd_key_is(k, kl, "ioprio")) {
			ok = parse_int(d, 0, 0xffff, &v);
			a->ioprio = (int)v;
			seen |= 8;
		} else {
			ok = cbd_skip(d);
		}
		if (!ok)
			return 0;
	}
	a->have = seen == 15;
	return !d->error && a->have;
}

static int parse_aio_and_seccomp(struct cb_dec *d, const char *k, size_t kl, struct ck_image *img)
{
	if (cbd_key_is(k, kl, "seccomp"))
		return ck_seccomp_parse(d, img);
	return ck_aio_parse(d, img);
}

/* "attrs", "seccomp", "aio": 1 when the key was one of them, 0 when not, -1 on bad data. */
CK_HIDDEN int ck_proc_attrs_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_image *img)
{
	if (cbd_key_is(k, kl, "seccomp") || cbd_key_is(k, kl, "aio"))
		return parse_aio_and_seccomp(d, k, kl, img) ? 1 : -1;
	if (!cbd_key_is(k, kl, "attrs"))
		return 0;
	int64_t left, v;
	const char *ak;
	size_t akl;
	uint64_t u;
	struct ck_proc_attrs *a = &img->attrs.p;
	int seen = 0;
	a->loginuid = CK_NO_LOGINUID;
	if (!cbd_map(d, &left))
		return -1;
	while (cbd_next_key(d, &left, &ak, &akl)) {
		int ok, before = seen;
		if (cbd_key_is(ak, akl, "loginuid")) {
			if (!cbd_uint_max(d, 4294967295u, &a->loginuid))
				return -1;
			continue;
		}
		seen |= cbd_key_is(ak, akl, "oom_score_adj") | cbd_key_is(ak, akl, "thp_disable") << 1 |
			cbd_key_is(ak, akl, "child_subreaper") << 2 | cbd_key_is(ak, akl, "membarrier") << 3 |
			cbd_key_is(ak, akl, "mdwe") << 4 | cbd_key_is(ak, akl, "memory_merge") << 5 |
			cbd_key_is(ak, akl, "xcomp_perm") << 6 | cbd_key_is(ak, akl, "coredump_filter") << 7;
		if (seen == before && !cbd_skip(d))
			return -1;
		if (seen == before)
			continue;
		if (cbd_key_is(ak, akl, "oom_score_adj")) {
			ok = cbd_int_range(d, -1000, 1000, &v);
			a->oom_score_adj = (int)v;
		} else if (cbd_key_is(ak, akl, "thp_disable")) {
			ok = cbd_uint_max(d, 1, &u);
			a->thp_disable = (int)u;
		} else if (cbd_key_is(ak, akl, "child_subreaper")) {
			ok = cbd_bool(d, &a->child_subreaper);
		} else if (cbd_key_is(ak, akl, "membarrier")) {
			ok = cbd_uint_max(d, MEMBARRIER_REGISTRATIONS, &u) && !(u & ~(uint64_t)MEMBARRIER_REGISTRATIONS);
			a->membarrier = (long)u;
		} else if (cbd_key_is(ak, akl, "mdwe")) {
			ok = cbd_uint_max(d, MDWE_KNOWN, &u);
			a->mdwe = (long)u;
		} else if (cbd_key_is(ak, akl, "memory_merge")) {
			ok = cbd_uint_max(d, 1, &u);
			a->memory_merge = (long)u;
		} else if (cbd_key_is(ak, akl, "xcomp_perm")) {
			ok = cbd_uint(d, &a->xcomp_perm);
		} else if (cbd_key_is(ak, akl, "coredump_filter")) {
			ok = cbd_uint_max(d, 0x1ff, &a->coredump_filter);
		}
		if (!ok)
			return -1;
	}
	img->attrs.have = seen == 0xff; /* each is set again: none may be missing */
	return d->error || !img->attrs.have ? -1 : 1;
}

/* ---- the restore host: /proc of the process and its family ---- */

/* Every process of the generation a tree restart brings back (0 for a
 * single process): their /proc exists once the restore has made them. */
static const int *family_pids;
static size_t nfamily_pids;

CK_HIDDEN void ck_proc_family_set(const int *pids, size_t n)
{
	family_pids = pids;
	nfamily_pids = n;
}

CK_HIDDEN int ck_proc_path_of_family(const struct ck_image *img, const char *path)
{
	const char *p = path;
	uint64_t pid;
	if (!ck_starts_with(p, "/proc/"))
		return 0;
	p += 6;
	if (!ck_parse_dec(&p, &pid) || (*p && *p != '/'))
		return 0;
	if ((int)pid == img->pid)
		return 1;
	for (size_t i = 0; i < img->nchildren; i++)
		if (img->children[i].pid == (int)pid)
			return 1;
	for (size_t i = 0; i < nfamily_pids; i++)
		if (family_pids[i] == (int)pid)
			return 1;
	return 0;
}

/* ---- the restore host: what this restart may give back ---- */

struct host_sched {
	int privileged_nice;  /* CAP_SYS_NICE in the initial user namespace */
	int privileged_io;    /* CAP_SYS_ADMIN or CAP_SYS_NICE there (IOPRIO_CLASS_RT) */
	struct ck_ksched_attr now;
	uint64_t cpus[CK_CPU_WORDS];
};

static uint64_t host_cap_eff(void)
{
	char buf[4096];
	if (ck_read_file("/proc/self/status", buf, sizeof buf) <= 0)
		return 0;
	const char *p = strstr(buf, "CapEff:");
	uint64_t v = 0;
	if (p) {
		p += 7;
		while (*p == ' ' || *p == '\t')
			p++;
		ck_parse_hex(&p, &v);
	}
	return v;
}

/* A user namespace of ckrun's own: capabilities there are not the
 * initial namespace's, which nice values, real-time policies and I/O
 * classes are checked against. */
static int in_own_userns(void)
{
	char buf[256];
	unsigned long a, b, n;
	return !(ck_read_file("/proc/self/uid_map", buf, sizeof buf) > 0 && sscanf(buf, "%lu %lu %lu", &a, &b, &n) == 3 &&
		 a == 0 && b == 0 && n == 4294967295UL);
}

static void read_host_sched(struct host_sched *h)
{
	memset(h, 0, sizeof *h);
	uint64_t caps = in_own_userns() ? 0 : host_cap_eff();
	h->privileged_nice = (caps >> CAP_SYS_NICE_BIT) & 1;
	h->privileged_io = h->privileged_nice || ((caps >> CAP_SYS_ADMIN_BIT) & 1);
	CK_SYS4(SYS_sched_getattr, 0, &h->now, sizeof h->now, 0);
	CK_SYS3(SYS_sched_getaffinity, 0, sizeof h->cpus, h->cpus);
}

static const char *policy_name(uint32_t p)
{
	static const char *const names[] = {"SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "?", "SCHED_IDLE", "SCHED_DEADLINE", "SCHED_EXT"};
	return p < sizeof names / sizeof names[0] ? names[p] : "?";
}

static long long rlim_soft(const struct ck_image *img, int r)
{
	return r < img->nrlimits ? img->rlim[r][0] : 0;
}

/* The kernel's rule for a task without CAP_SYS_NICE (sched/syscalls.c):
 * it may raise its nice value, lower it within RLIMIT_NICE, take a
 * real-time policy within RLIMIT_RTPRIO, never SCHED_DEADLINE. */
static void check_sched(const struct ck_image *img, int tid, const struct ck_sched *s, const struct host_sched *h)
{
	if (h->privileged_nice)
		return;
	const char *way = "restart it as root (with CAP_SYS_NICE)";
	/* the kernel takes SCHED_IDLE for nice 20: leaving it needs RLIMIT_NICE to allow the nice value it has */
	long long nice_lim = rlim_soft(img, RLIMIT_NICE);
	if (h->now.policy == SCHED_IDLE && s->policy != SCHED_IDLE && nice_lim >= 0 && 20 - h->now.nice > nice_lim)
		ck_refuse("thread %d of image %s ran with %s; this restart runs with SCHED_IDLE, has no CAP_SYS_NICE and "
			  "the image's RLIMIT_NICE is %lld, so it may not leave SCHED_IDLE; restart it without SCHED_IDLE "
			  "(chrt --other 0), or %s", tid, img->path, policy_name(s->policy), nice_lim, way);
	if (s->policy == SCHED_DEADLINE)
		ck_refuse("thread %d of image %s ran with SCHED_DEADLINE, which only a restart with CAP_SYS_NICE can give "
			  "back; %s", tid, img->path, way);
	if (s->policy == SCHED_FIFO || s->policy == SCHED_RR) {
		long long lim = rlim_soft(img, RLIMIT_RTPRIO);
		if (lim == 0 || (lim > 0 && s->priority > (uint64_t)lim))
			ck_refuse("thread %d of image %s ran with %s priority %u; this restart has no CAP_SYS_NICE and the "
				  "image's RLIMIT_RTPRIO is %lld, so it cannot give that back; %s", tid, img->path,
				  policy_name(s->policy), s->priority, lim, way);
		return;
	}
	long long lim = rlim_soft(img, RLIMIT_NICE);
	if (s->nice < h->now.nice && lim >= 0 && 20 - s->nice > lim)
		ck_refuse("thread %d of image %s ran at nice %d; this restart runs at nice %d, has no CAP_SYS_NICE and the "
			  "image's RLIMIT_NICE is %lld, so it may not lower it; %s, or at nice %d", tid, img->path, s->nice,
			  h->now.nice, lim, way, s->nice);
	if (s->util_min || (s->util_max && s->util_max != 1024))
		ck_refuse("thread %d of image %s has utilization clamps (sched_setattr util_min %u, util_max %u), which "
			  "only a restart with CAP_SYS_NICE gives back; %s", tid, img->path, s->util_min, s->util_max, way);
}

static void cpu_list(const uint64_t *mask, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = 0;
	for (int c = 0; c < CK_CPU_WORDS * 64 && len + 16 < cap; c++) {
		if (!((mask[c / 64] >> (c % 64)) & 1))
			continue;
		int e = c;
		while (e + 1 < CK_CPU_WORDS * 64 && ((mask[(e + 1) / 64] >> ((e + 1) % 64)) & 1))
			e++;
		len += (size_t)snprintf(out + len, cap - len, e > c ? "%s%d-%d" : "%s%d", len ? "," : "", c, e);
		c = e;
	}
}

static void check_affinity(const struct ck_image *img, int tid, const uint64_t *cpus, const struct host_sched *h)
{
	uint64_t extra[CK_CPU_WORDS];
	int any = 0;
	for (int i = 0; i < CK_CPU_WORDS; i++)
		any |= (extra[i] = cpus[i] & ~h->cpus[i]) != 0;
	if (!any)
		return;
	char had[256], may[256];
	cpu_list(cpus, had, sizeof had);
	cpu_list(h->cpus, may, sizeof may);
	ck_refuse("thread %d of image %s ran on CPUs %s (its affinity); this restart may run only on CPUs %s: restart it "
		  "where those CPUs are available (taskset, cgroup cpusets)", tid, img->path, had, may);
}

static void check_threads(const struct ck_image *img)
{
	struct host_sched h;
	read_host_sched(&h);
	for (size_t i = 0; i < img->nthreads; i++) {
		const struct ck_img_thread *t = &img->threads[i];
		if (!t->attrs.have)
			continue;
		check_sched(img, t->tid, &t->attrs.sched, &h);
		check_affinity(img, t->tid, t->attrs.cpus, &h);
		if (IOPRIO_CLASS(t->attrs.ioprio) == IOPRIO_CLASS_RT && !h.privileged_io)
			ck_refuse("thread %d of image %s had the real-time I/O class (ioprio_set IOPRIO_CLASS_RT), which only a "
				  "restart with CAP_SYS_ADMIN or CAP_SYS_NICE gives back; restart it as root", t->tid, img->path);
	}
}

/* Writes text to /proc/self/NAME: 0, or -errno. */
static int write_self_file(const char *name, const char *text)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/%s", name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	int r = write(fd, text, n) == (ssize_t)n ? 0 : -errno;
	close(fd);
	return r;
}

static int write_oom_score_adj(int v)
{
	char buf[16];
	snprintf(buf, sizeof buf, "%d", v);
	return write_self_file("oom_score_adj", buf);
}

static int write_loginuid(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
	return write_self_file("loginuid", buf);
}

static int write_coredump_filter(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%#llx", (unsigned long long)v);
	return write_self_file("coredump_filter", buf);
}

/* A value below the lowest one a process of this restart was ever given
 * (oom_score_adj_min) needs CAP_SYS_RESOURCE: tried, and taken back. */
static void check_oom_score_adj(const struct ck_image *img)
{
	int was = (int)read_signed_file("/proc/self/oom_score_adj", 0);
	int want = img->attrs.p.oom_score_adj;
	if (want == was)
		return;
	int r = write_oom_score_adj(want);
	write_oom_score_adj(was);
	if (r < 0)
		ck_refuse("image %s is of a process with oom_score_adj %d, which this restart (oom_score_adj %d) may not "
			  "set: %s; lowering it below what the restarting process was given needs CAP_SYS_RESOURCE",
			  img->path, want, was, ck_errno_name(r));
}

/* The kernel lets a process set its audit login UID once while it is not
 * set; changing a set one takes CAP_AUDIT_CONTROL (and no immutable-loginuid
 * audit rule); unsetting it is never allowed. */
static void check_loginuid(const struct ck_image *img)
{
	uint64_t want = img->attrs.p.loginuid, have = read_loginuid();
	if (want == CK_NO_LOGINUID || want == have || have == 4294967295u)
		return;
	char buf[4096];
	const char *p;
	uint64_t eff = 0;
	if (ck_read_file("/proc/self/status", buf, sizeof buf) > 0 && (p = strstr(buf, "\nCapEff:"))) {
		p += 8;
		while (*p == ' ' || *p == '\t')
			p++;
		ck_parse_hex(&p, &eff);
	}
	if (want == 4294967295u || !((eff >> 30 /* CAP_AUDIT_CONTROL */) & 1))
		ck_refuse("image %s is of a process whose audit login UID (/proc/self/loginuid) was %s, and this restart's "
			  "is %llu: %s; restart it from the same login (or as root, which may change a login UID)",
			  img->path, want == 4294967295u ? "not set" : "different", (unsigned long long)have,
			  want == 4294967295u ? "a login UID once set cannot be unset" : "changing it needs CAP_AUDIT_CONTROL");
}

static void check_process(const struct ck_image *img)
{
	const struct ck_proc_attrs *a = &img->attrs.p;
	check_oom_score_adj(img);
	check_loginuid(img);
	if (a->membarrier) {
		long q = CK_SYS3(SYS_membarrier, MEMBARRIER_QUERY, 0, 0);
		if (q < 0 || (a->membarrier & ~q))
			ck_refuse("image %s is of a process registered for membarrier commands %#lx, which this kernel does "
				  "not offer", img->path, a->membarrier);
	}
	long mdwe = ck_prctl(PR_GET_MDWE, 0, 0, 0, 0);
	if (a->mdwe && mdwe < 0)
		ck_refuse("image %s is of a process with PR_SET_MDWE (memory-deny-write-execute), which this kernel does "
			  "not offer (Linux 6.3 or later)", img->path);
	/* what the restorer has and cannot take off would be the program's too */
	if (mdwe > 0 && mdwe != a->mdwe)
		ck_refuse("this restart runs with PR_SET_MDWE %#lx (memory-deny-write-execute, inherited from whatever started "
			  "ckrun), which the process of image %s did not have (%#lx) and which cannot be taken off; restart "
			  "it from a shell without it", mdwe, img->path, a->mdwe);
	if (a->memory_merge && ck_prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != 1) {
		long r = ck_prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0);
		ck_prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
		if (r < 0)
			ck_refuse("image %s is of a process with PR_SET_MEMORY_MERGE (KSM for all its memory), which this "
				  "restart cannot set: %s", img->path, ck_errno_name(r));
	}
	uint64_t perm = 0;
	ck_arch_prctl(ARCH_GET_XCOMP_PERM, (unsigned long)&perm);
	uint64_t missing = a->xcomp_perm & ~perm;
	if (missing & ((1ULL << XFEATURES_DYNAMIC_FIRST) - 1))
		ck_refuse("image %s is of a process that used XSAVE features %#llx this CPU lacks: restart it on a machine "
			  "like the one it ran on", img->path, (unsigned long long)(missing & ((1ULL << XFEATURES_DYNAMIC_FIRST) - 1)));
	if (img->attrs.seccomp_filters && !img->creds.no_new_privs && !((img->creds.cap_eff >> CAP_SYS_ADMIN_BIT) & 1))
		ck_refuse("image %s is of a process with seccomp filters but neither no_new_privs nor CAP_SYS_ADMIN, "
			  "without which no filter can be installed: the image is damaged", img->path);
}

/* Filters of whatever started ckrun pass on to every process it makes and
 * cannot be taken off: the program would hold them on top of its own. */
static void check_restorer_seccomp(const struct ck_image *img)
{
	char buf[4096];
	const char *p;
	if (ck_read_file("/proc/self/status", buf, sizeof buf) <= 0 || !(p = strstr(buf, "\nSeccomp:")))
		return;
	p += 9;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '0')
		ck_refuse("this restart runs under seccomp filters of its own (Seccomp: %c in /proc/self/status, inherited "
			  "from whatever started ckrun), which the restored process of image %s would hold on top of its "
			  "own; restart it from a shell without them", *p, img->path);
}

/* Everything ck_attrs_restore and the restore core will set must be
 * possible here: refused before any process exists, never half done. */
CK_HIDDEN void ck_attrs_check(struct ck_image *img)
{
	const char *way = "it was written by an older ckrun, whose images this one cannot restart exactly; take a new "
			  "checkpoint with this ckrun";
	if (!img->attrs.have)
		ck_refuse("image %s holds no process attributes (the key \"attrs\"): %s", img->path, way);
	for (size_t i = 0; i < img->nthreads; i++)
		if (!img->threads[i].attrs.have)
			ck_refuse("thread %d of image %s has no scheduling attributes (the key \"attrs\"): %s",
				  img->threads[i].tid, img->path, way);
	check_restorer_seccomp(img);
	check_threads(img);
	check_process(img);
	ck_aio_check(img);
}

/* ---- the restore host: the process's, before the switch (its mm and
 * signal struct are the program's from here on) ---- */

CK_HIDDEN void ck_attrs_restore(struct ck_image *img)
{
	const struct ck_proc_attrs *a = &img->attrs.p;
	if (!img->attrs.have)
		return;
	int r = write_oom_score_adj(a->oom_score_adj);
	if (r < 0)
		ck_refuse("cannot set oom_score_adj to %d: %s", a->oom_score_adj, ck_errno_name(r));
	if (a->loginuid != CK_NO_LOGINUID && a->loginuid != read_loginuid() && (r = write_loginuid(a->loginuid)) < 0)
		ck_refuse("cannot set the audit login UID (/proc/self/loginuid) to %llu again: %s",
			  (unsigned long long)a->loginuid, ck_errno_name(r));
	if ((r = write_coredump_filter(a->coredump_filter)) < 0)
		ck_refuse("cannot set /proc/self/coredump_filter to %#llx: %s", (unsigned long long)a->coredump_filter,
			  ck_errno_name(r));
	if (prctl(PR_SET_THP_DISABLE, a->thp_disable, 0, 0, 0) != 0)
		ck_refuse("cannot set PR_SET_THP_DISABLE to %d: %s", a->thp_disable, strerror(errno));
	for (long bit = 4; bit <= 256; bit <<= 2)
		if ((a->membarrier & bit) && (r = (int)CK_SYS3(SYS_membarrier, bit, 0, 0)) < 0)
			ck_refuse("cannot register the process for membarrier command %ld again: %s", bit, ck_errno_name(r));
	long merge = ck_prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0); /* < 0: a kernel without it */
	if ((merge < 0 ? 0 : merge) != a->memory_merge && (r = (int)ck_prctl(PR_SET_MEMORY_MERGE, a->memory_merge, 0, 0, 0)) < 0)
		ck_refuse("cannot set PR_SET_MEMORY_MERGE to %ld: %s", a->memory_merge, ck_errno_name(r));
	/* AMX and later features: the permission the program asked for, asked for again */
	uint64_t perm = 0;
	ck_arch_prctl(ARCH_GET_XCOMP_PERM, (unsigned long)&perm);
	for (int f = XFEATURES_DYNAMIC_FIRST; f < 64; f++)
		if (((a->xcomp_perm & ~perm) >> f) & 1 && (r = (int)ck_arch_prctl(ARCH_REQ_XCOMP_PERM, (unsigned long)f)) < 0)
			ck_refuse("cannot give the process the permission for XSAVE feature %d (ARCH_REQ_XCOMP_PERM) again: %s", f,
				  ck_errno_name(r));
}

/* ---- the restore core: each thread, before its credentials ---- */

CK_CORE void ck_core_thread_attrs(struct ck_plan *p, const struct ck_core_attrs *a)
{
	if (!a->have)
		return;
	const struct ck_sched *s = &a->sched;
	long r = CK_SYS3(SYS_sched_setaffinity, 0, sizeof a->cpus, a->cpus);
	if (r < 0)
		ck_core_fail(p, "setting a thread's CPU affinity failed", r);
	struct ck_ksched_attr k;
	ck_memset(&k, 0, sizeof k);
	k.size = sizeof k;
	k.policy = s->policy;
	k.flags = s->flags;
	k.nice = s->nice;
	k.priority = s->priority;
	k.runtime = s->runtime;
	k.deadline = s->deadline;
	k.period = s->period;
	if (s->util_min || (s->util_max && s->util_max != 1024)) {
		k.flags |= SCHED_FLAG_UTIL_CLAMP;
		k.util_min = s->util_min;
		k.util_max = s->util_max;
	}
	if ((r = CK_SYS3(SYS_sched_setattr, 0, &k, 0)) < 0)
		ck_core_fail(p, "setting a thread's scheduling policy and priority failed", r);
	if ((r = CK_SYS3(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, a->ioprio)) < 0)
		ck_core_fail(p, "setting a thread's I/O priority failed", r);
}
