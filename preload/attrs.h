/* Process and thread attributes a restart puts back: scheduling, affinity,
 * I/O priority, timer slack, parent-death signal and the like (attrs.c),
 * seccomp filters (seccomp.c), AIO contexts (aio.c), and queued signals
 * with their siginfo (signals.c).
 *
 * Where each is set again is decided by what it needs: per thread, in the
 * restore core before the credentials (a lower nice value, SCHED_FIFO or
 * an I/O class may need the restorer's privilege), or in the restored shim
 * (timer slack, PR_MCE_KILL, PR_SET_TSC, the parent-death signal, queued
 * signals); per process, in the restore host before the switch
 * (oom_score_adj, PR_SET_THP_DISABLE, membarrier, PR_SET_MEMORY_MERGE), in
 * the restore core once the memory is back (AIO rings), or by the
 * restored leader last of all, because they restrict what may follow
 * (PR_SET_MDWE, seccomp filters, the child-subreaper flag). Whatever this
 * restart cannot give back is refused by ck_attrs_check before any process
 * exists; whatever no restart can is refused by the checkpoint. */
#ifndef CK_ATTRS_H
#define CK_ATTRS_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "sys.h"
#include "util.h"

#define CK_CPU_WORDS 16 /* affinity masks of up to 1024 CPUs */

/* sched_getattr(2) as it was, the fields a restart gives back */
struct ck_sched {
	uint32_t policy, priority;
	int32_t nice;
	uint64_t flags; /* SCHED_FLAG_RESET_ON_FORK, SCHED_FLAG_RECLAIM, SCHED_FLAG_DL_OVERRUN */
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

/* What the restore core sets in a thread, before its credentials. */
struct ck_core_attrs {
	int have; /* 0: an image of an older ckrun, whose threads keep what they get */
	struct ck_sched sched;
	uint64_t cpus[CK_CPU_WORDS];
	int ioprio;
};

/* One thread's attributes, captured in the handler (the restored shim
 * finds them in its own memory). */
struct ck_thread_attrs {
	struct ck_core_attrs core;
	long timerslack, mce_kill;
	int tsc, pdeathsig;
	int cpuid;              /* ARCH_GET_CPUID: 0 when the cpuid instruction faults */
	uint64_t gs_base;       /* ARCH_GET_GS: a program's own thread pointer in %gs (glibc uses %fs) */
	int seccomp_node;       /* the thread's newest seccomp filter (seccomp.c), -1: none */
	int sigq_first;         /* its own queued signals: a list in signals.c's siginfo pool, -1: none */
	uint64_t sigq_mask;     /* the numbers of those signals */
	int unsaveable;         /* CK_ATTR_*: what no restart could give this thread back */
};
#define CK_ATTR_UNREADABLE 1 /* sched_getattr or sched_getaffinity failed */
#define CK_ATTR_SHSTK 2      /* a shadow stack */
#define CK_ATTR_CORE_COOKIE 4 /* a core-scheduling cookie */

/* The process's, captured by the leader while every thread stands still. */
struct ck_proc_attrs {
	int oom_score_adj;
	int thp_disable;
	int child_subreaper;
	long membarrier;   /* MEMBARRIER_CMD_GET_REGISTRATIONS */
	long mdwe;         /* PR_GET_MDWE */
	long memory_merge; /* PR_GET_MEMORY_MERGE */
	uint64_t xcomp_perm; /* ARCH_GET_XCOMP_PERM: the XSAVE features the process may use (AMX asks for them) */
	uint64_t coredump_filter; /* /proc/self/coredump_filter */
	uint64_t loginuid;        /* /proc/self/loginuid (audit); CK_NO_LOGINUID: not in the image */
};
#define CK_NO_LOGINUID (~0ULL)

/* An AIO context (io_setup) as the restore host reads it from the image. */
struct ck_img_aio_event {
	uint64_t data, obj;
	int64_t res, res2;
};
struct ck_img_aio {
	uint64_t ctx, len;      /* the ring's address (the context ID) and size */
	uint32_t nr_events;     /* what io_setup was asked for */
	uint32_t nr, head, tail;
	struct ck_img_aio_event *events; /* completions not yet reaped, oldest first */
	uint32_t nevents;
};

/* The image's process attributes (restore host). */
struct ck_img_attrs {
	int have;
	struct ck_proc_attrs p;
	int seccomp_filters; /* how many filters the image's threads hold */
	struct ck_img_aio *aio;
	uint32_t naio;
};

/* AIO contexts in the plan: the restore core makes each again (aio.c). */
struct ck_plan_aio {
	struct ck_img_aio ring; /* events point into the plan */
	uint64_t iocb[8];       /* a struct iocb the core fills */
	uint64_t save[8];       /* the 64 bytes of the program's memory an event's iocb takes for a moment */
};

struct ck_thread;
struct ck_writer;
struct ck_scratch;
struct cb_enc;
struct cb_dec;
struct ck_image;
struct ck_plan;
struct ck_plan_thread;

/* ---- in the program (attrs.c) ---- */
CK_HIDDEN void ck_thread_attrs_capture(struct ck_thread_attrs *a);
CK_HIDDEN void ck_thread_attrs_save(struct cb_enc *e, const struct ck_thread_attrs *a);
/* in the restored shim, each thread: what needs no privilege */
CK_HIDDEN void ck_thread_attrs_after_restore(const struct ck_thread_attrs *a);
/* the leader, while every thread stands still (signals.c calls it) */
CK_HIDDEN void ck_proc_attrs_capture(void);
/* the keys "attrs", "seccomp" and "aio"; fails the checkpoint for what no restart can give back */
CK_HIDDEN void ck_proc_attrs_save(struct ck_writer *w);
/* the restored leader, last before it lets the threads go (checkpoint.c) */
CK_HIDDEN void ck_attrs_restore_last(void);
/* every other restored thread, once let go (checkpoint.c) */
CK_HIDDEN void ck_attrs_restore_last_thread(struct ck_thread *t);

/* ---- the restore host ---- */
CK_HIDDEN int ck_thread_attrs_parse(struct cb_dec *d, struct ck_core_attrs *a);
CK_HIDDEN int ck_proc_attrs_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_image *img);
CK_HIDDEN void ck_attrs_check(struct ck_image *img);
/* A path under /proc/PID/ of the process itself or of a child it had
 * (live or a zombie), which the restore makes before it opens the path. */
CK_HIDDEN int ck_proc_path_of_family(const struct ck_image *img, const char *path);
/* the PIDs of every process a tree restart brings back (pids stays the caller's) */
CK_HIDDEN void ck_proc_family_set(const int *pids, size_t n);
CK_HIDDEN void ck_attrs_restore(struct ck_image *img);

/* ---- the restore core ---- */
CK_CORE void ck_core_thread_attrs(struct ck_plan *p, const struct ck_core_attrs *a);

/* ---- what the syscall() and prctl wrappers (shim.c) show: seccomp
 * filters and AIO contexts the program makes ---- */
CK_INLINE int ck_attrs_watches(long nr)
{
	return nr == SYS_seccomp || nr == SYS_prctl || (nr >= SYS_io_setup && nr <= SYS_io_cancel) || nr == SYS_io_pgetevents;
}
/* the prctl options the wrappers show (seccomp; those the kernel shows no one) */
CK_INLINE int ck_prctl_watched(long option)
{
	return option == 22 /* PR_SET_SECCOMP */ || option == 0x59616d61 /* PR_SET_PTRACER */ ||
	       option == 57 /* PR_SET_IO_FLUSHER */ || option == 59 /* PR_SET_SYSCALL_USER_DISPATCH */;
}
CK_HIDDEN void ck_attrs_before(long nr, const long *a);
/* r: what the call returned, -errno when it failed; errno is left alone */
CK_HIDDEN void ck_attrs_after(long nr, const long *a, long r);

/* A lock of the wrappers' records (seccomp.c, aio.c), held by a thread's
 * TID: a lock whose holder is not a thread of this process (a fork copied
 * it while another thread held it) is taken over, not waited for. */
CK_INLINE void ck_records_lock(volatile int *lock)
{
	int tid = (int)ck_gettid(), pid = (int)ck_getpid();
	for (;;) {
		int none = 0;
		if (__atomic_compare_exchange_n(lock, &none, tid, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return;
		int owner = __atomic_load_n(lock, __ATOMIC_RELAXED);
		if (owner && ck_tgkill(pid, owner, 0) == -ESRCH)
			__atomic_compare_exchange_n(lock, &owner, 0, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
		else
			CK_SYS0(SYS_sched_yield);
	}
}
CK_INLINE void ck_records_unlock(volatile int *lock)
{
	__atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

/* ---- seccomp.c ---- */
CK_HIDDEN void ck_seccomp_before(long nr, const long *a);
CK_HIDDEN void ck_seccomp_after(long nr, const long *a, long r);
CK_HIDDEN void ck_seccomp_capture(void);
CK_HIDDEN void ck_seccomp_save(struct ck_writer *w);
CK_HIDDEN int ck_seccomp_parse(struct cb_dec *d, struct ck_image *img);
CK_HIDDEN void ck_seccomp_restore_leader(struct ck_thread *self);
CK_HIDDEN void ck_seccomp_restore_thread(struct ck_thread *self);
/* a thread that entered seccomp's strict mode (it keeps ckrun's signal blocked) */
CK_HIDDEN int ck_seccomp_strict_thread(int tid);

/* ---- aio.c ---- */
CK_HIDDEN void ck_aio_after(long nr, const long *a, long r);
CK_HIDDEN int ck_aio_capture(char *why, size_t cap);
CK_HIDDEN void ck_aio_save(struct cb_enc *e);
CK_HIDDEN int ck_aio_parse(struct cb_dec *d, struct ck_image *img);
CK_HIDDEN void ck_aio_check(struct ck_image *img);
CK_HIDDEN uint64_t ck_aio_plan_size(const struct ck_image *img);
CK_HIDDEN void ck_aio_plan(struct ck_image *img, struct ck_plan *plan, void *area, int null_fd);
CK_CORE void ck_core_aio(struct ck_plan *p);
/* whether a line of /proc/self/maps names an AIO ring ("/[aio] (deleted)") */
CK_HIDDEN int ck_is_aio_ring(const char *name);

/* ---- signals.c: queued signals with their siginfo ---- */
CK_HIDDEN void ck_thread_signals_capture(struct ck_thread *t);
CK_HIDDEN void ck_thread_signals_after_restore(struct ck_thread *t);
CK_HIDDEN void ck_thread_queued_save(struct cb_enc *e, const struct ck_thread *t);

#endif
