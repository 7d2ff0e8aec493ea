/* Shared declarations of the ckrun shim (the checkpoint side; restore.h
 * adds the restore host's). Each kind of state has one file holding both
 * its save and its restore half:
 *   memory.c   mappings, pages, vdso, brk/mm
 *   threads.c  thread contexts, TIDs, rseq, robust lists
 *   signals.c  dispositions, pending signals, interval timers
 *   fds.c      descriptors, each through its kind (fdkind.h): files.c,
 *              pipes.c, events.c, sockets.c (sk-unix.c, sk-inet.c)
 *   process.c  cwd, umask, rlimits, identity
 * checkpoint.c runs the stop-the-world protocol, restore.c is the restore
 * host's side, restore_core.c the code that runs after the old address
 * space is gone, shim.c the wrappers; below the kinds are the helpers
 * they all use (image.c frames the file, session.c talks to ckrun,
 * procfs.c reads /proc, ...). The files are in layers that call only
 * downward: docs/design.md, "Layers". */
#ifndef CKRUN_H
#define CKRUN_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <ucontext.h>

#include "cbor.h"
#include "sys.h"
#include "util.h"
#include "wire.h"
#include "attrs.h"

#define CK_IMAGE_VERSION 1
/* The contract between a restore host and the shim inside an image (the
 * resume context, struct ck_restore_info): images carry the shim's code, so
 * a newer ckrun restores older images as long as this is the same. */
#define CK_SHIM_ABI 1
#define CK_MAX_THREADS 1024
#define CK_RESTORE_INFO_MAGIC 0x636b7269u /* "ckri" */
#define CK_MAX_IMAGES 64 /* files one image may refer to, itself included */

/* ---- resume context: a setjmp-like save inside the signal handler ---- */
struct ck_ctx {
	uint64_t rbx, rbp, r12, r13, r14, r15, rsp, rip;
	uint32_t mxcsr;
	uint16_t fpucw;
	uint16_t pad;
};

/* Returns 0 when saving; returns the value given to ck_ctx_resume when a
 * restored thread arrives here. */
CK_HIDDEN long ck_ctx_save(struct ck_ctx *c) __attribute__((returns_twice));
CK_CORE __attribute__((noreturn)) void ck_ctx_resume(const struct ck_ctx *c, long value);

/* clone3's arguments (wire.h); ck_clone3_thread starts fn(arg) on the
 * given stack in the new task (a thread at restore, the writer's middle
 * process). */
CK_CORE long ck_clone3_thread(struct ck_clone_args *args, size_t size, void (*fn)(void *), void *arg);

/* ---- one stopped thread ---- */
struct ck_thread {
	int tid;
	int leader;
	uint64_t fs_base;
	ucontext_t *uc;          /* kernel's signal frame on the thread's stack */
	struct ck_ctx resume;
	uint64_t robust_head;
	uint64_t robust_len;
	uint64_t clear_tid;
	uint64_t rseq_addr;      /* 0 when not registered */
	uint32_t rseq_len;
	uint32_t rseq_sig;
	int rseq_foreign;        /* registered an area of its own, not glibc's (-errno of the probe) */
	uint64_t pending;        /* signals pending for this thread only */
	char comm[16];
	long securebits;         /* PR_GET_SECUREBITS: per thread, not in /proc */
	uint64_t program_mask;   /* the signals the program blocked in it */
	int own_creds;           /* its credentials are not the leader's: saved with the thread */
	struct ck_thread_attrs attrs; /* scheduling, affinity, timer slack, ... (attrs.h) */
};

/* ---- what the restore host hands to the restored shim ---- */
#define CK_MAX_LATE_SEEKS 16
struct ck_restore_info {
	uint32_t magic;
	uint32_t nthreads;
	volatile int restored;   /* threads that reached the shim; futex word */
	int ctl_fd;
	uint64_t hole_start;
	uint64_t hole_len;
	char sock[108];          /* the new session's socket name */
	uint64_t stdio_dev[3];
	uint64_t stdio_ino[3];
	int drop_caps;           /* restored in a user namespace: give up the
	                          * capabilities the restore needed */
	uint64_t track_id;       /* the image's: its content is the memory's now */
	int nimages;             /* the image and every image it refers to */
	uint64_t image_dev[CK_MAX_IMAGES], image_ino[CK_MAX_IMAGES];
	/* the bridge to another kernel's vdso (vdso.c), or 0, 0: memory the
	 * restore wrote that no image holds, so the next checkpoint stores it
	 * whole (left out of write tracking until then) */
	uint64_t vdso_bridge[2];
	/* descriptors of a /proc list of mappings read part way, and their
	 * offsets: seeked once the memory is back, so that the text up to
	 * there is the restored process's (files.c seek_late) */
	int nlate_seeks;
	struct {
		int fd;
		int64_t offset;
	} late_seeks[CK_MAX_LATE_SEEKS];
};

/* ---- session state kept by the shim ---- */

/* The shim's descriptors sit at the top of the 64 a descriptor table holds
 * without growing (fork copies a grown table), out of the way of programs
 * that use a few; the wrappers move them when a program wants the number. */
#define CK_CTL_FD_MIN 63
#define CK_UFFD_FD_MIN 62

#define CK_MAX_SESSION_SOCKS 160

struct ck_session {
	int ctl_fd;              /* connection to ckrun, -1 when not in a session */
	int sig;                 /* internal signal */
	char sock[108];
	uint64_t stdio_dev[3];
	uint64_t stdio_ino[3];
	int have_stdio;
	uint64_t root_dev, root_ino; /* CKRUN_ROOT: ckrun's root directory (a chroot is refused) */
	int have_root;
	uint64_t rw_start, rw_end; /* the shim's own writable data */
	uint64_t lo, hi;         /* the shim's whole load range */
	/* The images this process was restored from: its memory is partly
	 * mapped from those files; the next checkpoint refers to them (hard
	 * links) or stores such regions in full. */
	int nimages;
	uint64_t image_dev[CK_MAX_IMAGES], image_ino[CK_MAX_IMAGES];
	int trace;               /* CKRUN_TRACE: phase timings on stderr */
	/* The process this state belongs to. A vfork child runs on its
	 * parent's memory with another PID: it must not act on it. */
	int self_pid;
	int active;              /* the handler is installed: the internal signal is ours */
	/* The socket inodes every process of the session holds, as ckrun saw
	 * them while all were stopped (barrier "save socks="); -1: not told
	 * (too many for the line, or no barrier) */
	int nsession_socks;
	uint64_t session_socks[CK_MAX_SESSION_SOCKS];
};
CK_HIDDEN extern struct ck_session ck_session; /* state.c */

/* ---- a checkpoint in progress (lives in the scratch mapping) ---- */
struct ck_scratch;
struct ck_writer;

/* image.c */
struct ck_writer {
	int fd;
	uint64_t data_end;       /* next free byte of the data area */
	struct cb_enc meta;
	long err;                /* first error, -errno */
	const char *err_what;    /* what failed */
	char err_detail[256];
	uint64_t pages;          /* pages stored */
	uint64_t writeback_from; /* data before this offset is on its way to the disk */
	/* ranges whose contents may change while they are written (the
	 * leader's own stack, TLS, the shim's data): copied first */
	uint64_t volatile_lo[4], volatile_hi[4];
	int nvolatile;
	char *bounce;
	size_t bounce_len;
	int in_place;            /* written into the file ckrun created: no rename */
};
CK_HIDDEN int ck_writer_fail(struct ck_writer *w, long err, const char *what);
/* Stores len bytes (len a multiple of the page size) of memory or of a
 * file read through /proc/self/mem; returns the data offset or 0. */
CK_HIDDEN uint64_t ck_image_put_memory(struct ck_writer *w, uint64_t addr, size_t len, int readable, uint32_t *crc);
CK_HIDDEN uint64_t ck_image_put_bytes(struct ck_writer *w, const void *buf, size_t len, uint32_t *crc);
CK_HIDDEN void ck_image_put_data(struct ck_writer *w, const void *buf, size_t len);
CK_HIDDEN uint64_t ck_image_put_fd(struct ck_writer *w, int fd, uint64_t off, uint64_t len, uint32_t *crc);
CK_HIDDEN long ck_image_open(struct ck_writer *w, const char *tmp_path);
CK_HIDDEN long ck_image_adopt(struct ck_writer *w, int fd, const char *path);
CK_HIDDEN long ck_image_finish(struct ck_writer *w, const char *tmp_path, const char *path);

/* ---- the scratch mapping: everything a checkpoint needs, excluded from
 * the image and unmapped afterwards ---- */
#define CK_SCRATCH_META   (64UL << 20)
#define CK_SCRATCH_TEXT   (8UL << 20)   /* /proc text (maps) */
#define CK_SCRATCH_PM     (512UL << 10) /* pagemap entries */
#define CK_SCRATCH_BOUNCE (1UL << 20)
#define CK_SCRATCH_STACK  (1UL << 20)   /* the writer's stack */
#define CK_MAX_WRITTEN    (1UL << 20)   /* written ranges found by one scan */
#define CK_MAX_INDEX      (1UL << 20)   /* runs of the parent image */
#define CK_MAX_VMAS       (1UL << 16)   /* mappings (vm.max_map_count is 65530) */
#define CK_SCRATCH_SIZE   (CK_SCRATCH_META + CK_SCRATCH_TEXT + CK_SCRATCH_PM + CK_SCRATCH_BOUNCE + CK_SCRATCH_STACK + \
			   CK_MAX_WRITTEN * sizeof(struct ck_written) + CK_MAX_INDEX * sizeof(struct ck_parent_run) + \
			   CK_MAX_VMAS * sizeof(struct ck_vma) + (1UL << 20))

/* ---- a mapping's attributes a restart puts back: VmFlags of
 * /proc/PID/smaps, named as there (memory.c) ---- */
#define CK_VM_DONTFORK    (1u << 0)  /* dc: MADV_DONTFORK */
#define CK_VM_WIPEONFORK  (1u << 1)  /* wf: MADV_WIPEONFORK */
#define CK_VM_DONTDUMP    (1u << 2)  /* dd: MADV_DONTDUMP */
#define CK_VM_HUGEPAGE    (1u << 3)  /* hg: MADV_HUGEPAGE */
#define CK_VM_NOHUGEPAGE  (1u << 4)  /* nh: MADV_NOHUGEPAGE */
#define CK_VM_SEQUENTIAL  (1u << 5)  /* sr: MADV_SEQUENTIAL */
#define CK_VM_RANDOM      (1u << 6)  /* rr: MADV_RANDOM */
#define CK_VM_MERGEABLE   (1u << 7)  /* mg: MADV_MERGEABLE */
#define CK_VM_ADVICE      8          /* the bits above are madvise() advice */
#define CK_VM_LOCKED      (1u << 8)  /* lo: mlock */
#define CK_VM_LOCKONFAULT (1u << 9)  /* lf: mlock2(MLOCK_ONFAULT) */
#define CK_VM_NORESERVE   (1u << 10) /* nr: MAP_NORESERVE */
#define CK_VM_GROWSDOWN   (1u << 11) /* gd: MAP_GROWSDOWN */
#define CK_VM_SEALED      (1u << 12) /* sl: mseal */
#define CK_VM_MAYWRITE    (1u << 13) /* mw: may be made writable (saved for shared file mappings only) */
#define CK_VM_DROPPABLE   (1u << 14) /* dp: MAP_DROPPABLE (its pages may be dropped: wiped on fork, not saved) */
#define CK_VM_HUGETLB     (1u << 15) /* ht: hugetlb memory (MAP_HUGETLB, MFD_HUGETLB) */
#define CK_VM_COUNT       16
/* above the names: log2 of a hugetlb region's page size (its "huge_page") */
#define CK_VM_HUGE_SHIFT_AT 24
#define CK_VM_HUGE_SHIFT(f) (((f) >> CK_VM_HUGE_SHIFT_AT) & 63u)
/* what a fork does not pass on (a forked writer cannot see it): read
 * while the program is stopped */
#define CK_VM_NOT_INHERITED (CK_VM_DONTFORK | CK_VM_LOCKED | CK_VM_LOCKONFAULT)
struct ck_vma {
	uint64_t start, end;
	uint32_t flags;          /* CK_VM_* */
	uint32_t seen;           /* the writer found it in its copy */
};

/* ---- incremental checkpoints (incremental.c) ---- */
struct ck_range {
	uint64_t start, end;
};
struct ck_written {             /* as PAGEMAP_SCAN reports it */
	uint64_t start, end, categories;
};
struct ck_parent_run {          /* where the parent chain holds a run */
	uint64_t addr, npages, off;
	int cand;               /* index into the scratch's refs */
};
#define CK_MAX_REFS 64
#define CK_MAX_UNTRACKED 4096
#define CK_MAX_SKIP 256
struct ck_ref {                 /* a file the new image may refer to */
	uint64_t dev, ino;
	int index;              /* in the image's "images" list; -1 until linked */
	int failed;
	uint64_t track_id;      /* its identity, for the new image's "image_ids" */
	uint32_t header_crc;
	char name[48];          /* ref-<inode>.ckpt */
	char src[4096];         /* where to link it from */
};
struct ck_tracking {
	int uffd;
	int failed;             /* -errno of a failed set-up: checkpoints stay full */
	uint64_t base_id;       /* track_id of the image the memory was protected against */
};
CK_HIDDEN extern struct ck_tracking ck_tracking;

/* Shared memory is stored while the program is stopped (a forked writer
 * shares it with the running program); the writer only lists these runs. */
#define CK_MAX_SHARED_RUNS 8192
struct ck_shared_run {
	uint64_t addr, npages, off;
	uint32_t crc;
};

struct ck_scratch {
	struct ck_writer w;
	/* incremental: found while stopped */
	uint64_t scan_base, track_id;
	struct ck_written *written;
	uint64_t nwritten;
	struct ck_range untracked[CK_MAX_UNTRACKED];
	uint64_t nuntracked;
	int written_overflow;
	/* incremental: the writer's view of the parent */
	char parent[4096];
	char new_dir[4096];
	int parent_valid;
	struct ck_parent_run *index;
	uint64_t nindex;
	struct ck_ref refs[CK_MAX_REFS];
	int nrefs, nused;
	/* shared memory another process's image stores (barrier "save skip=") */
	struct ck_range skip[CK_MAX_SKIP]; /* {dev, ino} */
	int nskip;
	struct ck_shared_run shared_runs[CK_MAX_SHARED_RUNS];
	int nshared_runs;
	int collecting_shared;
	int signaled[CK_MAX_THREADS];
	int nsignaled;
	char path_tmp[4096];
	char msg[512];
	/* the mappings while the program is stopped, with their attributes */
	struct ck_vma *vmas;
	uint64_t nvmas;
	uint32_t mlockall;       /* CK_VM_LOCKED[|CK_VM_LOCKONFAULT]: mlockall(MCL_FUTURE[|MCL_ONFAULT]) */
	int writer_forked;       /* the image is written by a forked copy */
	char *text;              /* CK_SCRATCH_TEXT bytes */
	uint64_t *pagemap;       /* CK_SCRATCH_PM bytes */
	uint64_t writer_stack;   /* CK_SCRATCH_STACK bytes */
	uint64_t start, end;     /* the scratch mapping itself */
};

/* state.c */
CK_HIDDEN extern struct ck_thread ck_threads[CK_MAX_THREADS];
CK_HIDDEN extern volatile int ck_nthreads;
/* Set by the madvise wrapper: some memory is MADV_DONTFORK or
 * MADV_WIPEONFORK, which a forked writer would not see as it is. */
CK_HIDDEN extern volatile int ck_fork_flags_used;

/* checkpoint.c */
CK_HIDDEN void ck_install_handler(void);
CK_HIDDEN void ck_requests_reset_in_child(void);
CK_HIDDEN void ck_kill_descendants(void);
CK_HIDDEN void ck_signal_handler(int sig, siginfo_t *si, void *ucv);

/* helper-threads.c: glibc's helper threads, stopped through SIGSETXID,
 * and the SIGTIMER deliveries held while the program is stopped */
CK_HIDDEN int ck_setxid_signal(void);
CK_HIDDEN int ck_setxid_stop_ready(void (*stop)(int, siginfo_t *, void *), void (*restorer)(void));
CK_HIDDEN int ck_thread_blocks(int tid, int sig, int *also_setxid);
CK_HIDDEN void ck_held_take(void);
CK_HIDDEN int ck_held_failed(void);
CK_HIDDEN int ck_held_count(void);
CK_HIDDEN void ck_held_requeue(void);

/* holdsig.c: --checkpoint-on signals held back from the program */
typedef int (*ck_real_sigaction_fn)(int, const struct sigaction *, struct sigaction *);
CK_HIDDEN void ck_hold_init(const char *list, ck_real_sigaction_fn real);
CK_HIDDEN int ck_hold_has(int sig);
CK_HIDDEN uint64_t ck_hold_mask(void);
CK_HIDDEN int ck_hold_sigaction(int sig, const struct sigaction *act, struct sigaction *old, ck_real_sigaction_fn real);
CK_HIDDEN void ck_hold_handler(int sig, siginfo_t *si, void *uc);

/* jobstop.c: processes stopped by SIGSTOP or job control */
CK_HIDDEN int ck_jobstop_line(const char *line);
CK_HIDDEN void ck_jobstop_capture(void);
CK_HIDDEN void ck_jobstop_forget(void);
CK_HIDDEN void ck_jobstop_save(struct ck_writer *w);
CK_HIDDEN void ck_jobstop_after_restore(uint64_t was_pending);

/* syscalls.c: system calls a checkpoint interrupts are resumed */
CK_HIDDEN extern volatile uint64_t ck_restores;
/* stops of this process for a checkpoint (each one, finished or not) */
CK_HIDDEN extern volatile uint64_t ck_stops;
CK_HIDDEN extern volatile int ck_calls_enabled;
enum { CK_CALL_NONE, CK_CALL_WRAPPED, CK_CALL_REWOUND };
/* How the call the handler interrupted goes on: CK_CALL_WRAPPED (its
 * wrapper makes it again), CK_CALL_REWOUND (the context goes back to its
 * syscall instruction), CK_CALL_NONE. */
CK_HIDDEN int ck_resume_interrupted_call(ucontext_t *uc);
/* At the handler's end: the call fails with EINTR after all when a handler
 * of the program's runs next; threads_known: ck_threads holds every thread
 * as this stop found it (a signal to the process that only this thread
 * can take counts). */
CK_HIDDEN void ck_yield_interrupted_call(ucontext_t *uc, int how, int threads_known);
/* looks up libc's calls behind the wrappers (the constructor) */
CK_HIDDEN void ck_syscalls_resolve(void);
/* syscall(nr, a[0..5]) resumed when interrupted; a[] may be changed (remaining timeouts) */
CK_HIDDEN long ck_syscall_resumed(long nr, long *a);
CK_HIDDEN int ck_wait_sigsuspend(int (*real)(const sigset_t *), const sigset_t *mask);
CK_HIDDEN int ck_wait_sigtimedwait(int (*real)(const sigset_t *, siginfo_t *, const struct timespec *), const sigset_t *set,
				   siginfo_t *info, const struct timespec *tmo);

/* sysvnote.c: the SysV objects the program uses, its SEM_UNDO adjustments */
enum { CK_SYSV_SHM = 1, CK_SYSV_SEM = 2, CK_SYSV_MSG = 3 };
struct sembuf;
struct timespec;
CK_HIDDEN extern volatile int ck_sysv_overflow;
CK_HIDDEN void ck_sysv_note(int type, int id);
CK_HIDDEN void ck_sysv_forget(int type, int id);
CK_HIDDEN void ck_sysv_undo_clear(int id, int num);
CK_HIDDEN int ck_sysv_known_at(int i, int *type, int *id);
CK_HIDDEN int ck_sysv_adj_at(int i, int *id, int *num, int *adj);
CK_HIDDEN void ck_sysv_forked(void);
CK_HIDDEN long ck_sysv_semop_undo(int id, struct sembuf *ops, size_t n, const struct timespec *tmo);

/* sysv.c */
CK_HIDDEN void ck_sysv_save(struct ck_writer *w, struct ck_scratch *s);

/* threads.c */
CK_HIDDEN void ck_thread_capture(struct ck_thread *t, ucontext_t *uc);
/* After rseq() through the syscall() wrapper: the area a thread registered
 * itself (a: its arguments, r: its result). */
CK_HIDDEN void ck_rseq_note(const long *a, long r);
CK_HIDDEN void ck_threads_save(struct ck_writer *w, struct ck_scratch *s, int n);
CK_HIDDEN void ck_thread_after_restore(struct ck_thread *t, const struct ck_restore_info *ri);

/* signals.c */
struct ck_saved_timers {
	struct {
		long isec, iusec, vsec, vusec;
	} it[3];
	uint64_t shared_pending;
};
/* A POSIX timer (timer_create), as /proc/self/timers and timer_gettime
 * show it; notify is the kernel's sigev_notify (SIGEV_THREAD_ID for
 * glibc's SIGEV_THREAD timers, which signal its helper thread). */
#define CK_MAX_PTIMERS 256
struct ck_ptimer {
	int id, clock, signo, notify, tid;
	uint64_t sival, value_ns, interval_ns;
};
CK_HIDDEN extern struct ck_saved_timers ck_saved_timers;
CK_HIDDEN extern int ck_saved_pdeathsig; /* put back by the restored leader */
CK_HIDDEN void ck_signals_capture(void);
CK_HIDDEN void ck_signals_save(struct ck_writer *w);
CK_HIDDEN void ck_signals_after_restore(int nthreads);

/* fds.c: every descriptor, as seen while the program is stopped, each
 * saved by its kind (fdkind.h) */
struct ck_fd {
	int fd;
	int cloexec;
	long flags;              /* F_GETFL */
	struct ck_stat st;
	const char *link;        /* readlink of /proc/self/fd/N */
};
struct ck_fdtab {
	struct ck_fd *fds;
	int n;
};
/* ck_writer_fail about descriptor f: m is the detail so far, "descriptor N
 * (LINK) ", for the caller to go on with. */
CK_HIDDEN void ck_writer_fail_fd(struct ck_writer *w, long err, const char *what, const struct ck_fd *f, struct ck_str *m);
CK_HIDDEN void ck_files_save(struct ck_writer *w, struct ck_scratch *s);
/* sk-inet.c: the send queues of the process's TCP connections, read while
 * it stands still and before any process of the session reads a receive
 * queue (the bytes TCP moves meanwhile are then found on one side, never
 * both or neither); dropped once the image state is written. */
CK_HIDDEN void ck_inet_take_send_queues(void);
/* SO_PEERCRED of Unix sockets as the program saw it (peercred.c) */
CK_HIDDEN void ck_peercred_note(void);
CK_HIDDEN void ck_peercred_after_restore(void);
CK_HIDDEN int ck_peercred_answer(int fd, void *val, unsigned *len);
CK_HIDDEN void ck_inet_drop_send_queues(void);
CK_HIDDEN long ck_inet_freeze(void);
CK_HIDDEN void ck_inet_thaw(void);
CK_HIDDEN void ck_inet_keep_live(const char *image);
CK_HIDDEN void ck_inet_forget_noted(void);
CK_HIDDEN void ck_inet_freeze_unchanged(void);
/* A descriptor table shared with another process (clone CLONE_FILES without
 * CLONE_VM): 1, with the refusal in s->msg. */
CK_HIDDEN int ck_files_table_shared(struct ck_scratch *s);
/* A /proc list of mappings read part way: 1, with the refusal in s->msg. */

/* events.c: the inotify_add_watch wrapper (shim.c) records each watch's path */
CK_HIDDEN void ck_inotify_record(int fd, int wd, const char *path);

/* written.c: the open wrappers (shim.c) tell ckrun of each regular file
 * opened for writing; forgotten after each checkpoint and restore */
CK_HIDDEN void ck_written_note(int fd, int flags, int before);
CK_HIDDEN void ck_written_forget(void);
/* before an open for writing: ckrun keeps an existing file as it was at
 * the last checkpoint; its request's descriptor is the shim's own */
CK_HIDDEN int ck_written_before(int dirfd, const char *path, int flags);
/* for a file an exclusive create just made (mkstemp), what
 * ck_written_before would have learnt */
CK_HIDDEN int ck_written_made(void);
/* around a call of libc's mkstemp family: the file it is making, removed
 * if the family ends before it is noted (ck_written_abandon); -1: none */
CK_HIDDEN int ck_written_making(char *tmpl);
CK_HIDDEN void ck_written_making_done(int slot);
/* before a rename: the file at each name kept as it was at the checkpoint
 * (up to 8 MiB), and the move told; ck_written_made()'s answer */
struct ck_moving {
	int told;        /* ckrun answered, at checkpoints_seen `at` */
	unsigned at;
	uint64_t dev, ino; /* the entry */
};
CK_HIDDEN int ck_written_moving(struct ck_moving *mv, int fromdir, const char *from, int todir, const char *to,
				unsigned flags);
/* after the call failed with err: whether it was in fact done before a
 * checkpoint the process was restored from (then it succeeds) */
CK_HIDDEN int ck_written_done_before(const struct ck_moving *mv, int todir, const char *to, int err);
/* after a call that made the name path (mkdir, symlink, link, mknod), or
 * a rename that moved an entry there; before: ck_written_made()'s */
CK_HIDDEN void ck_written_named(int dirfd, const char *path, int before);
/* before link(): the new name told; ck_written_made()'s answer */
CK_HIDDEN int ck_written_linking(struct ck_moving *mv, int fromdir, const char *from, int todir, const char *to,
				 int flags);
CK_HIDDEN void ck_written_moved(int dirfd, const char *path, int before);
CK_HIDDEN void ck_written_restored(void);
/* fds.c: a /proc list of mappings with counts read part way: 1 (s->msg says which) */
CK_HIDDEN int ck_files_read_part_way(struct ck_scratch *s);
/* the family ends because ckrun died: files this process made that ckrun
 * has not noted yet are removed (async-signal-safe) */
CK_HIDDEN void ck_written_abandon(void);

/* process.c */
CK_HIDDEN void ck_process_save(struct ck_writer *w, struct ck_scratch *s);
/* A thread's own "creds" key, for a thread whose own_creds ck_process_save set */
CK_HIDDEN void ck_thread_creds_save(struct ck_writer *w, struct ck_scratch *s, const struct ck_thread *t);

/* procfs.c: /proc of the process itself, raw code only */
/* The parent of pid (/proc/PID/stat), -1 when it cannot be read; the
 * coordinator's PID as this process sees it (SO_PEERCRED of the session's
 * connection; 0: not connected, or outside our PID namespace); whether
 * pid descends from it (a process of the session: ckrun is every session
 * process's ancestor or subreaper). */
CK_HIDDEN int ck_parent_of(int pid);
/* Field `field` (1-based, as proc(5) numbers them: 3 is the state) of
 * DIR<id>/stat ("/proc/", "/proc/self/task/") read into buf, or 0. */
CK_HIDDEN const char *ck_stat_field(const char *dir, int id, char *buf, size_t cap, int field);
CK_HIDDEN int ck_coordinator_pid(void);
CK_HIDDEN int ck_in_session(int pid, int coordinator);
CK_HIDDEN long ck_read_file(const char *path, char *buf, size_t cap);
/* A hex mask from a /proc/.../status line such as "SigPnd:" (0 when not there) */
/* Where a field's value starts in /proc/.../status text, or 0. */
CK_HIDDEN const char *ck_status_value(const char *text, const char *field);
/* The number on a line of /proc/.../status text ("Seccomp_filters:"),
 * hex or decimal; 0 when the line is not there. */
CK_HIDDEN int ck_status_field(const char *text, const char *field, int hex, uint64_t *out);
CK_HIDDEN uint64_t ck_read_pending_mask(const char *status_path, const char *field);
/* /proc/self/DIR/FD into path[64]. */
CK_HIDDEN const char *ck_proc_fd_path(char *path, const char *dir, int fd);
CK_HIDDEN long ck_read_fdinfo(int fd, char *buf, size_t cap);
/* 1 for a file or directory (st) under /proc/PID, its link, of a process
 * that has exited */
CK_HIDDEN int ck_proc_entry_gone(const char *link, const struct ck_stat *st);
/* What /proc/self/fd/FD links to, NUL-terminated in out[cap]: its length,
 * or a negative errno. */
CK_HIDDEN long ck_fd_link(int fd, char *out, size_t cap);
/* Opens the process's own /proc/self/pagemap or mem (read-only), also
 * when it is not dumpable (then they belong to root). */
CK_HIDDEN long ck_open_own_proc(const char *path);
/* The process's socket descriptors, one at a time, from /proc/self/fd
 * (ckrun's own connection among them: callers skip ck_is_session_fd). */
struct ck_sock_walk {
	int dfd;
	long len, off;
	char dents[4096];
};
/* 0, or a negative errno when /proc/self/fd cannot be read */
CK_HIDDEN long ck_sock_walk_open(struct ck_sock_walk *w);
/* the next socket descriptor with its stat, or -1 after the last */
CK_HIDDEN int ck_sock_walk_next(struct ck_sock_walk *w, struct ck_stat *st);
CK_HIDDEN void ck_sock_walk_close(struct ck_sock_walk *w);

/* incremental.c */
CK_HIDDEN void ck_track_begin(struct ck_scratch *s);
CK_HIDDEN void ck_track_region(struct ck_scratch *s, int pmfd, uint64_t start, uint64_t end);
CK_HIDDEN void ck_track_end(struct ck_scratch *s);
CK_HIDDEN void ck_parent_load(struct ck_scratch *s, const char *parent, const char *image);
CK_HIDDEN int ck_track_covers(struct ck_scratch *s, uint64_t start, uint64_t end);
CK_HIDDEN int ck_track_written(struct ck_scratch *s, uint64_t page);
/* 1: the parent chain holds the page (file, off); 0: it does not; -1: it
 * does, in a file that cannot be linked into the new generation. */
CK_HIDDEN int ck_parent_lookup(struct ck_scratch *s, uint64_t page, int *file, uint64_t *off);
CK_HIDDEN int ck_ref_for_mapping(struct ck_scratch *s, const char *map_files_path);
CK_HIDDEN void ck_refs_save(struct ck_writer *w, struct ck_scratch *s);
CK_HIDDEN int ck_track_restore_begin(uint64_t image_track_id);
CK_HIDDEN void ck_track_protect(int pmfd, uint64_t start, uint64_t end);

/* Which pages exist, stretch by stretch, at a cost that follows the pages
 * present, not the size of the range: PAGEMAP_SCAN (Linux 6.7), else
 * /proc/self/pagemap entry by entry. Stretches come in address order,
 * each of pages with the same CK_PAGE_* categories. */
#define CK_PAGE_FILE    (1 << 2)  /* not an anonymous page (a file's page cache) */
#define CK_PAGE_PRESENT (1 << 3)
#define CK_PAGE_SWAPPED (1 << 4)
#define CK_PAGE_PFNZERO (1 << 5)  /* the shared zero page: reads as zero */
struct ck_page_scan {
	int pmfd;
	uint64_t pos, end;       /* what is left to look at */
	struct ck_written *vec;  /* stretches found, not yet handed out */
	uint64_t cap, n, next;
	uint64_t last_end;       /* end of the last stretch handed out */
	uint64_t *pm;            /* pagemap entries (kernels without PAGEMAP_SCAN) */
	uint64_t pm_cap, pm_at, pm_n, pm_i;
	long err;
};
CK_HIDDEN void ck_page_scan_init(struct ck_page_scan *ps, int pmfd, uint64_t start, uint64_t end, void *buf, size_t len);
/* The next stretch of present or swapped pages; 0 at the end, or on an
 * error (ps->err). */
CK_HIDDEN int ck_page_scan_next(struct ck_page_scan *ps, struct ck_written *out);
/* The stretches of [start, end) behind guards (madvise
 * MADV_GUARD_INSTALL), at most cap: their number, 0 when the kernel cannot
 * tell them, -E2BIG when there are more. */
CK_HIDDEN long ck_guard_ranges(int pmfd, uint64_t start, uint64_t end, struct ck_written *vec, uint64_t cap);

/* memory.c */
CK_HIDDEN void ck_memory_save_stopped(struct ck_writer *w, struct ck_scratch *s);
CK_HIDDEN void ck_memory_save(struct ck_writer *w, struct ck_scratch *s);
CK_HIDDEN void ck_memory_protect_after_restore(uint64_t skip_lo, uint64_t skip_hi);

/* self.c: where the shim is loaded (libc: not in the signal handler) */
struct ck_self {
	uint64_t base;             /* load address */
	uint64_t size;             /* from base to the end of its last segment, page-rounded */
	uint64_t lo, hi;           /* its whole range, page-rounded */
	uint64_t rw_start, rw_end; /* the writable segment that holds its data */
	const char *path;
	const void *phdr;          /* its program headers (ElfW(Phdr)) */
	int phnum;
};
CK_HIDDEN int ck_self_find(struct ck_self *self);

/* sockdiag.c: sends a sock_diag dump request (req starts with its
 * nlmsghdr) and hands each message of the answer (read into buf) to each()
 * until it returns nonzero: that value; 0 when the dump ended first, a
 * negative errno when it failed. */
struct nlmsghdr;
CK_HIDDEN long ck_sock_diag_dump(const void *req, size_t len, void *buf, size_t cap,
				 long (*each)(const struct nlmsghdr *h, void *arg), void *arg);

/* session.c: the connection to ckrun (raw code only); a new one, or a
 * negative errno (-ECONNREFUSED: no ckrun listens any more) */
CK_HIDDEN int ck_session_connect(const char *name);
/* a request's own connection, left out of images while it lasts (-1: no slot) */
CK_HIDDEN int ck_session_request_begin(int fd);
CK_HIDDEN void ck_session_request_end(int slot, int fd);
CK_HIDDEN void ck_session_requests_gone(void);
CK_HIDDEN void ck_session_hello(void);
/* fork's child handler: async-signal-safe, stores nothing */
CK_HIDDEN void ck_session_forked_child(void);
/* 1 when this process took its parent's state over */
CK_HIDDEN int ck_join_on_request(uint64_t tag);
CK_HIDDEN void ck_session_reply(const char *line);
CK_HIDDEN int ck_is_session_fd(int fd);
CK_HIDDEN int ck_arm_async(int fd, int sig, int owner);
/* The coordinator at the other end of fd runs as root or as one of our
 * own user IDs. Raw code only. */
CK_HIDDEN int ck_coordinator_trusted(int fd);
/* ckrun refused this process (it is not of the session): it leaves the
 * session and runs on as if there were no coordinator. */
CK_HIDDEN void ck_session_refused(void);
struct sockaddr_un;
/* The session socket's address (abstract: a leading NUL, exact length);
 * its length, or 0 when the name does not fit. Raw code only. */
CK_HIDDEN unsigned ck_session_addr(struct sockaddr_un *a, const char *name);

#endif
