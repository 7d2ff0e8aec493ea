/* Threads: what each thread records in the handler, how it is written,
 * how the restore core recreates it with its original TID, and what it
 * re-registers once it runs in the restored shim. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <ucontext.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

#define RSEQ_SIG 0x53053053u
/* glibc registers 32 bytes although __rseq_size says 20 (see the notes). */
#define RSEQ_AREA_LEN 32

extern const unsigned int __rseq_size __attribute__((weak));
extern const ptrdiff_t __rseq_offset __attribute__((weak));

/* glibc's area is not registered: whether the thread registered one of
 * its own (a program that unregisters glibc's and registers its own, as
 * CRIU's zdtm rseq00 does), which the kernel shows no one. Registering an
 * area tells: it fails with EINVAL or EPERM while another is registered;
 * when it succeeds none was, and the probe is unregistered at once and
 * the area's bytes put back as they were. 0, or the probe's -errno. */
static int rseq_elsewhere(uint64_t glibc_area)
{
	struct {
		uint8_t b[RSEQ_AREA_LEN];
	} __attribute__((aligned(32))) own, saved;
	uint64_t probe = glibc_area ? glibc_area : (uint64_t)&own;
	ck_memcpy(&saved, (const void *)probe, sizeof saved);
	long r = CK_SYS4(SYS_rseq, probe, RSEQ_AREA_LEN, 0, RSEQ_SIG);
	if (r == 0) {
		CK_SYS4(SYS_rseq, probe, RSEQ_AREA_LEN, 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG);
		ck_memcpy((void *)probe, &saved, sizeof saved);
		return 0;
	}
	return r == -EINVAL || r == -EPERM || r == -EBUSY ? (int)r : 0;
}

/* Areas threads registered themselves through syscall() (a thread that
 * gave up glibc's registration, as librseq and CRIU's zdtm rseq00 do): the
 * kernel shows no one where a thread's area is, so the syscall wrapper
 * notes each, and the checkpoint confirms which is a thread's own
 * (own_rseq_of). A slot by thread ID; a lost note only makes the
 * checkpoint fail as it would without notes. */
#define OWN_RSEQ_SLOTS 256
static struct own_rseq {
	int tid;
	uint32_t len, sig;
	uint64_t addr;
} own_rseq[OWN_RSEQ_SLOTS];

CK_HIDDEN void ck_rseq_note(const long *a, long r)
{
	if (r != 0)
		return;
	int tid = (int)ck_gettid();
	struct own_rseq *o = &own_rseq[(unsigned)tid % OWN_RSEQ_SLOTS];
	if (a[2] & 1 /* RSEQ_FLAG_UNREGISTER */) {
		if (o->tid == tid)
			o->tid = 0;
		return;
	}
	*o = (struct own_rseq){tid, (uint32_t)a[1], (uint32_t)a[3], (uint64_t)a[0]};
}

/* Registering the area already registered fails with EBUSY, and only
 * then (another area, length or signature: EINVAL or EPERM). Any noted
 * area may be this thread's: a child of fork keeps its parent's thread's
 * registration under another thread ID. */
static const struct own_rseq *own_rseq_of(void)
{
	for (int i = 0; i < OWN_RSEQ_SLOTS; i++) {
		const struct own_rseq *o = &own_rseq[i];
		if (o->tid && CK_SYS4(SYS_rseq, o->addr, o->len, 0, o->sig) == -EBUSY)
			return o;
	}
	return 0;
}

CK_HIDDEN void ck_thread_capture(struct ck_thread *t, ucontext_t *uc)
{
	t->tid = (int)ck_gettid();
	t->uc = uc;
	ck_memcpy(&t->program_mask, &uc->uc_sigmask, sizeof t->program_mask);
	ck_arch_prctl(0x1003 /* ARCH_GET_FS */, (unsigned long)&t->fs_base);
	t->robust_head = 0;
	t->robust_len = 0;
	CK_SYS3(SYS_get_robust_list, 0, &t->robust_head, &t->robust_len);
	t->clear_tid = 0;
	ck_prctl(PR_GET_TID_ADDRESS, (long)&t->clear_tid, 0, 0, 0);
	t->rseq_addr = 0;
	t->rseq_foreign = 0;
	uint64_t area = 0;
	if (&__rseq_size && __rseq_size > 0 && &__rseq_offset) {
		area = t->fs_base + (uint64_t)__rseq_offset;
		int32_t cpu_id = *(volatile int32_t *)(area + 4);
		if (cpu_id >= 0) {
			t->rseq_addr = area;
			t->rseq_len = RSEQ_AREA_LEN;
			t->rseq_sig = RSEQ_SIG;
		}
	}
	const struct own_rseq *own = t->rseq_addr ? 0 : own_rseq_of();
	if (own) {
		t->rseq_addr = own->addr;
		t->rseq_len = own->len;
		t->rseq_sig = own->sig;
	} else if (!t->rseq_addr) {
		t->rseq_foreign = rseq_elsewhere(area);
	}
	ck_memset(t->comm, 0, sizeof t->comm);
	ck_prctl(PR_GET_NAME, (long)t->comm, 0, 0, 0);
	t->securebits = ck_prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	t->pending = 0;
	ck_thread_attrs_capture(&t->attrs);
	ck_thread_signals_capture(t);
}

static void save_regs(struct cb_enc *e, const ucontext_t *uc)
{
	static const struct {
		const char *name;
		int reg;
	} regs[] = {
		{"r8", REG_R8}, {"r9", REG_R9}, {"r10", REG_R10}, {"r11", REG_R11},
		{"r12", REG_R12}, {"r13", REG_R13}, {"r14", REG_R14}, {"r15", REG_R15},
		{"rdi", REG_RDI}, {"rsi", REG_RSI}, {"rbp", REG_RBP}, {"rbx", REG_RBX},
		{"rdx", REG_RDX}, {"rax", REG_RAX}, {"rcx", REG_RCX}, {"rsp", REG_RSP},
		{"rip", REG_RIP}, {"eflags", REG_EFL},
	};
	cb_map(e, sizeof regs / sizeof regs[0]);
	for (size_t i = 0; i < sizeof regs / sizeof regs[0]; i++)
		cb_kv_uint(e, regs[i].name, (uint64_t)uc->uc_mcontext.gregs[regs[i].reg]);
}

static void fail_thread(struct ck_writer *w, long err, const char *what, int tid, const char *detail)
{
	struct ck_str m;
	ck_writer_fail(w, err, what);
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "thread ");
	ck_str_dec(&m, tid);
	ck_str_add(&m, detail);
}

CK_HIDDEN void ck_threads_save(struct ck_writer *w, struct ck_scratch *s, int n)
{
	struct cb_enc *e = &w->meta;
	for (int i = 0; i < n; i++) {
		/* its name, securebits, clear-child-TID, timer slack, ... are read
		 * with prctl(): they would be saved wrong */
		if (ck_threads[i].securebits < 0) {
			fail_thread(w, ck_threads[i].securebits, "a thread's own seccomp filter makes prctl() fail", ck_threads[i].tid,
				    ": ckrun reads a thread's name, securebits, clear-child-TID address and timer slack with prctl(), "
				    "so it cannot save this thread; the program runs on");
			return;
		}
		if (ck_threads[i].rseq_foreign) {
			fail_thread(w, -EOPNOTSUPP, "a thread registered a restartable-sequence (rseq) area of its own",
				    ck_threads[i].tid,
				    ": ckrun registers only glibc's area again and those registered through libc's syscall(); "
				    "this one was registered another way (a system call instruction of the program's own), and "
				    "the kernel does not tell where it is; register it through syscall(), or leave glibc's "
				    "registration in place, before the checkpoint");
			return;
		}
	}
	cb_text(e, "threads");
	cb_array(e, (uint64_t)n);
	for (int i = 0; i < n; i++) {
		struct ck_thread *t = &ck_threads[i];
		const ucontext_t *uc = t->uc;
		uint64_t mask;
		ck_memcpy(&mask, &uc->uc_sigmask, sizeof mask);
		cb_map(e, 14 + (t->own_creds != 0));
		cb_kv_uint(e, "tid", (uint64_t)t->tid);
		cb_kv_bool(e, "leader", i == 0);
		cb_kv_uint(e, "fs_base", t->fs_base);
		cb_kv_text(e, "comm", t->comm);
		cb_kv_uint(e, "sigmask", mask);
		cb_kv_uint(e, "pending", t->pending);
		cb_text(e, "regs");
		save_regs(e, uc);
		cb_text(e, "resume");
		cb_bytes(e, &t->resume, sizeof t->resume);
		cb_text(e, "sigaltstack");
		cb_array(e, 3);
		cb_uint(e, (uint64_t)uc->uc_stack.ss_sp);
		cb_uint(e, (uint64_t)uc->uc_stack.ss_size);
		cb_uint(e, (uint64_t)(unsigned)uc->uc_stack.ss_flags);
		cb_kv_range(e, "robust_list", t->robust_head, t->robust_len);
		cb_kv_uint(e, "clear_tid", t->clear_tid);
		cb_text(e, "rseq");
		if (t->rseq_addr) {
			cb_array(e, 3);
			cb_uint(e, t->rseq_addr);
			cb_uint(e, t->rseq_len);
			cb_uint(e, t->rseq_sig);
		} else {
			cb_null(e);
		}
		ck_thread_attrs_save(e, &t->attrs);
		ck_thread_queued_save(e, t);
		if (t->own_creds)
			ck_thread_creds_save(w, s, t);
	}
}

/* In the restored shim: what the kernel kept per thread and we must
 * register again. The signal mask, FPU state and alternate stack come
 * back with rt_sigreturn when the handler returns. Credentials were set by
 * the restore core (process.c) before any thread got here. */
CK_HIDDEN void ck_thread_after_restore(struct ck_thread *t, const struct ck_restore_info *ri)
{
	(void)ri;
	if (t->rseq_addr)
		CK_SYS4(SYS_rseq, t->rseq_addr, t->rseq_len, 0, t->rseq_sig);
	if (t->robust_head)
		CK_SYS2(SYS_set_robust_list, t->robust_head, t->robust_len);
	if (t->comm[0])
		ck_prctl(PR_SET_NAME, (long)t->comm, 0, 0, 0);
	ck_thread_attrs_after_restore(&t->attrs);
	ck_thread_signals_after_restore(t);
}

/* ---- restore host ---- */

/* Of the interrupted registers, the restore host needs where it was (vdso.c). */
static int parse_rip(struct cb_dec *d, uint64_t *rip)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl))
		if (cbd_key_is(k, kl, "rip") ? !cbd_uint(d, rip) : !cbd_skip(d))
			return 0;
	return !d->error;
}

CK_HIDDEN int ck_threads_parse(struct cb_dec *d, struct ck_image *img)
{
	int64_t n;
	if (!cbd_array(d, &n) || n < 1 || n > CK_MAX_THREADS)
		return 0;
	img->threads = calloc((size_t)n, sizeof *img->threads);
	img->nthreads = (size_t)n;
	for (int64_t i = 0; i < n; i++) {
		struct ck_img_thread *t = &img->threads[i];
		int64_t left;
		const char *k;
		size_t kl;
		uint64_t v;
		if (!cbd_map(d, &left))
			return 0;
		while (cbd_next_key(d, &left, &k, &kl)) {
			if (cbd_key_is(k, kl, "tid")) {
				if (!cbd_uint_max(d, CK_PID_MAX, &v) || v < 1)
					return 0;
				t->tid = (int)v;
			} else if (cbd_key_is(k, kl, "leader")) {
				if (!cbd_bool(d, &t->leader))
					return 0;
			} else if (cbd_key_is(k, kl, "fs_base")) {
				if (!cbd_uint(d, &t->fs_base))
					return 0;
			} else if (cbd_key_is(k, kl, "clear_tid")) {
				if (!cbd_uint(d, &t->clear_tid))
					return 0;
			} else if (cbd_key_is(k, kl, "resume")) {
				const uint8_t *b;
				size_t bl;
				if (!cbd_bytes(d, &b, &bl) || bl != sizeof t->resume)
					return 0;
				memcpy(&t->resume, b, bl);
				t->has_resume = 1;
			} else if (cbd_key_is(k, kl, "regs")) {
				if (!parse_rip(d, &t->rip))
					return 0;
			} else if (cbd_key_is(k, kl, "attrs")) {
				if (!ck_thread_attrs_parse(d, &t->attrs))
					return 0;
			} else if (cbd_key_is(k, kl, "creds")) {
				if (!ck_thread_creds_parse(d, t))
					return 0;
			} else if (!cbd_skip(d)) {
				return 0;
			}
		}
		if (d->error || !t->tid || !t->has_resume)
			return 0;
	}
	return !d->error;
}

/* TIDs must be free before anything is torn down: clone3 cannot fail
 * gracefully once the old address space is gone. */
CK_HIDDEN void ck_threads_check(struct ck_image *img)
{
	int pid = (int)ck_getpid();
	/* that one thread has the process's ID was checked with the image (ck_image_read) */
	for (size_t i = 0; i < img->nthreads; i++) {
		int tid = img->threads[i].tid;
		if (tid == img->pid)
			continue;
		if (ck_kill(tid, 0) != -ESRCH) {
			ck_verbose("thread ID %d is in use here", tid);
			exit(CK_EXIT_PIDS_TAKEN);
		}
	}
	if (pid != img->pid) {
		ck_verbose("the restore host runs as PID %d, the image needs %d", pid, img->pid);
		exit(CK_EXIT_PIDS_TAKEN);
	}
}

CK_HIDDEN void ck_threads_plan(struct ck_image *img, struct ck_plan *plan,
			       struct ck_plan_thread *threads, uint64_t stacks)
{
	/* The main thread goes first: the restore host's own thread becomes it. */
	size_t j = 1;
	for (size_t i = 0; i < img->nthreads; i++) {
		struct ck_img_thread *t = &img->threads[i];
		struct ck_plan_thread *p = t->tid == img->pid ? &threads[0] : &threads[j++];
		p->tid = t->tid;
		p->fs_base = t->fs_base;
		p->clear_tid = t->clear_tid;
		p->resume = t->resume;
		p->attrs = t->attrs;
		p->stack_top = stacks + (uint64_t)(p - threads + 1) * CK_THREAD_STACK;
	}
	plan->threads = threads;
	plan->nthreads = img->nthreads;
}

/* ---- restore core ---- */



/* A new thread takes on its credentials (its own, or the process's) and
 * waits until every thread has, before it runs any code of the image. */
static CK_CORE_FN __attribute__((noreturn)) void thread_entry(void *arg)
{
	struct ck_plan_thread *t = arg;
	ck_core_thread_attrs(t->plan, &t->attrs);
	ck_core_set_creds(t->plan, &t->creds);
	ck_core_creds_barrier(t->plan, 0);
	ck_ctx_resume(&t->resume, (long)t->info);
}

CK_CORE __attribute__((noreturn)) void ck_core_start_threads(struct ck_plan *p)
{
	long info = (long)&p->info;
	for (uint64_t i = 1; i < p->nthreads; i++) {
		struct ck_plan_thread *t = &p->threads[i];
		struct ck_clone_args a;
		uint64_t tid = (uint64_t)t->tid;
		ck_memset(&a, 0, sizeof a);
		a.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			  CLONE_SYSVSEM | CLONE_SETTLS | CLONE_CHILD_CLEARTID;
		a.child_tid = t->clear_tid;
		a.tls = t->fs_base;
		a.stack = t->stack_top - CK_THREAD_STACK;
		a.stack_size = CK_THREAD_STACK;
		a.set_tid = (uint64_t)&tid;
		a.set_tid_size = 1;
		t->info = (uint64_t)info;
		t->plan = p;
		long r = ck_clone3_thread(&a, sizeof a, thread_entry, t);
		if (r < 0)
			ck_core_fail(p, "creating a thread with its original TID failed", r);
	}
	struct ck_plan_thread *m = &p->threads[0];
	ck_core_thread_attrs(p, &m->attrs);
	ck_core_set_creds(p, &m->creds);
	ck_core_creds_barrier(p, 1);
	ck_arch_prctl(0x1002 /* ARCH_SET_FS */, m->fs_base);
	CK_SYS1(SYS_set_tid_address, m->clear_tid);
	ck_ctx_resume(&m->resume, info);
}
