/* Seccomp filters. A process cannot read its own filters back (only a
 * tracer with CAP_SYS_ADMIN can), so the shim records each filter the
 * program installs through libc (prctl(PR_SET_SECCOMP), syscall(SYS_seccomp),
 * which libseccomp uses too): its BPF program, its flags, and the filter it
 * was put on top of, as the kernel keeps them, a tree shared by the
 * threads. The checkpoint matches each thread's filter count
 * (/proc/self/task/TID/status) against that tree and refuses what it cannot
 * account for (filters installed before an exec, or by a raw system call).
 *
 * The restored leader installs, last of everything, the filters every
 * thread shares with SECCOMP_FILTER_FLAG_TSYNC (one filter object for all,
 * as before, so that a later TSYNC of the program still finds the others'
 * filters its ancestors), then each thread its own on top. A filter may
 * forbid calls the restore makes: nothing of the restore follows them but
 * what every checkpoint does too.
 *
 * Strict mode (SECCOMP_MODE_STRICT) leaves a thread read, write and exit
 * only, so the shim's handler could only get it killed: the thread keeps
 * ckrun's signal blocked from then on, and a checkpoint fails naming it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

#define MAX_FILTERS 64
#define POOL_BYTES (256 * 1024)        /* the BPF instructions of every filter */
#define MAX_HOLDERS 256
#define NODE_UNKNOWN (-2)
#define FLAGS_KEPT (SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW)
#define MAX_STRICT 8

struct filter {
	int prev;        /* the filter it was put on top of; -1: none, NODE_UNKNOWN: not seen */
	int depth;       /* filters from the root to it, itself included */
	uint32_t flags;  /* SECCOMP_FILTER_FLAG_* it was installed with */
	uint32_t len;    /* instructions */
	uint32_t off;    /* in pool */
};

/* a thread and the newest filter it holds; start: its start time, which
 * tells a thread from a later one with the same TID */
struct holder {
	int tid;
	uint64_t start;
	int node;
};

static struct filter filters[MAX_FILTERS];
static volatile int nfilters; /* published after the filter is complete */
static struct sock_filter pool[POOL_BYTES / sizeof(struct sock_filter)];
static uint32_t pool_used;
static int unrecorded;          /* a filter the table had no room for */
static struct holder holders[MAX_HOLDERS];
static int nholders;
static volatile int lock;       /* the TID that holds it, 0: free */
static volatile int strict_tids[MAX_STRICT];
static int common_node = -1;    /* the newest filter every thread shares, at the checkpoint */
static char refusal[300];

/* ---- recording, in the wrappers ---- */

static void take_lock(void)
{
	ck_records_lock(&lock);
}

static void drop_lock(void)
{
	ck_records_unlock(&lock);
}

static long read_status(int tid, char *buf, size_t cap)
{
	char path[64];
	struct ck_str p;
	ck_str_init(&p, path, sizeof path);
	ck_str_add(&p, "/proc/self/task/");
	ck_str_dec(&p, tid);
	ck_str_add(&p, "/status");
	return ck_read_file(path, buf, cap);
}

/* A line's number in /proc/.../status text ("Seccomp_filters:"), or -1. */
static long status_number(const char *buf, const char *field, int hex)
{
	uint64_t v;
	return ck_status_field(buf, field, hex, &v) ? (long)v : -1;
}

/* Field 22 of /proc/self/task/TID/stat: when the thread started. */
static uint64_t thread_start(int tid)
{
	char buf[1024];
	const char *q = ck_stat_field("/proc/self/task/", tid, buf, sizeof buf, 22);
	uint64_t v = 0;
	if (q)
		ck_parse_dec(&q, &v);
	return v;
}

static struct holder *holder_of(int tid, uint64_t start, int make)
{
	for (int i = 0; i < nholders; i++)
		if (holders[i].tid == tid)
			return holders[i].start == start || make ? &holders[i] : 0;
	if (!make)
		return 0;
	if (nholders == MAX_HOLDERS) {
		/* the oldest entries are likely of threads long gone */
		for (int i = 1; i < MAX_HOLDERS; i++)
			holders[i - 1] = holders[i];
		nholders--;
	}
	holders[nholders].tid = tid;
	return &holders[nholders++];
}

static void set_holder(int tid, int node)
{
	uint64_t start = thread_start(tid);
	struct holder *h = holder_of(tid, start, 1);
	h->start = start;
	h->node = node;
}

/* The newest filter of a thread that holds depth filters: what the thread
 * was last seen to hold, else the one filter of that depth; -1 for none,
 * NODE_UNKNOWN when it cannot be told. */
static int resolve(int tid, long depth)
{
	if (depth == 0)
		return -1;
	int n = nfilters;
	struct holder *h = holder_of(tid, thread_start(tid), 0);
	if (h && h->node >= 0 && h->node < n && filters[h->node].depth == depth)
		return h->node;
	int found = NODE_UNKNOWN;
	for (int i = 0; i < n; i++) {
		if (filters[i].depth != depth)
			continue;
		if (found != NODE_UNKNOWN)
			return NODE_UNKNOWN;
		found = i;
	}
	return found;
}

static void sync_all_threads(int node)
{
	char buf[4096];
	int dfd = (int)ck_openat(AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return;
	long got;
	while ((got = ck_getdents64(dfd, buf, sizeof buf)) > 0)
		for (long off = 0; off < got;) {
			struct ck_dirent64 *d = (void *)(buf + off);
			const char *p = d->name;
			uint64_t tid;
			off += d->reclen;
			if (ck_parse_dec(&p, &tid) && !*p)
				set_holder((int)tid, node);
		}
	ck_close(dfd);
}

/* A filter the calling thread has just installed. */
static void record(uint32_t flags, const struct sock_fprog *prog)
{
	int tid = (int)ck_gettid();
	char st[4096];
	take_lock();
	long depth = read_status(tid, st, sizeof st) > 0 ? status_number(st, "Seccomp_filters:", 0) : -1;
	int n = nfilters;
	uint32_t words = prog ? prog->len : 0;
	if (n == MAX_FILTERS || depth < 1 || pool_used + words > sizeof pool / sizeof pool[0]) {
		unrecorded = 1;
		drop_lock();
		return;
	}
	struct filter *f = &filters[n];
	f->prev = resolve(tid, depth - 1);
	f->depth = (int)depth;
	f->flags = flags;
	f->len = words;
	f->off = pool_used;
	ck_memcpy(&pool[pool_used], prog->filter, words * sizeof pool[0]);
	pool_used += words;
	__atomic_store_n(&nfilters, n + 1, __ATOMIC_RELEASE);
	if (flags & SECCOMP_FILTER_FLAG_TSYNC)
		sync_all_threads(n);
	else
		set_holder(tid, n);
	drop_lock();
}

static int is_strict(long nr, const long *a)
{
	return nr == SYS_seccomp ? a[0] == SECCOMP_SET_MODE_STRICT : a[0] == PR_SET_SECCOMP && a[1] == SECCOMP_MODE_STRICT;
}

static int is_filter(long nr, const long *a)
{
	return nr == SYS_seccomp ? a[0] == SECCOMP_SET_MODE_FILTER : a[0] == PR_SET_SECCOMP && a[1] == SECCOMP_MODE_FILTER;
}

/* Before the call: a thread about to enter strict mode blocks ckrun's signal
 * while it still may (the handler's first system call would kill it). */
CK_HIDDEN void ck_seccomp_before(long nr, const long *a)
{
	if (!is_strict(nr, a) || ck_session.ctl_fd < 0)
		return;
	uint64_t ours = 1ULL << (ck_session.sig - 1);
	int tid = (int)ck_gettid();
	for (int i = 0; i < MAX_STRICT; i++) {
		int none = 0;
		if (__atomic_compare_exchange_n(&strict_tids[i], &none, tid, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			break;
	}
	ck_rt_sigprocmask(SIG_BLOCK, &ours, 0);
}

CK_HIDDEN void ck_seccomp_after(long nr, const long *a, long r)
{
	if (is_strict(nr, a)) {
		if (r == 0)
			return; /* no system call may follow */
		uint64_t ours = 1ULL << (ck_session.sig - 1);
		int tid = (int)ck_gettid();
		ck_rt_sigprocmask(SIG_UNBLOCK, &ours, 0);
		for (int i = 0; i < MAX_STRICT; i++)
			__atomic_compare_exchange_n(&strict_tids[i], &tid, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		return;
	}
	if (!is_filter(nr, a))
		return;
	/* success: 0, or a listener's descriptor (SECCOMP_FILTER_FLAG_NEW_LISTENER) */
	int listener = nr == SYS_seccomp && (a[1] & SECCOMP_FILTER_FLAG_NEW_LISTENER);
	if (listener ? r < 0 : r != 0)
		return;
	if (nr == SYS_seccomp)
		record((uint32_t)a[1], (const struct sock_fprog *)a[2]);
	else
		record(0, (const struct sock_fprog *)a[2]);
}

CK_HIDDEN int ck_seccomp_strict_thread(int tid)
{
	for (int i = 0; i < MAX_STRICT; i++)
		if (strict_tids[i] == tid)
			return 1;
	return 0;
}

/* ---- the checkpoint: which filters each thread holds ---- */

static void refuse(const char *a, int tid, const char *b)
{
	struct ck_str m;
	if (refusal[0])
		return;
	ck_str_init(&m, refusal, sizeof refusal);
	ck_str_add(&m, a);
	if (tid) {
		ck_str_dec(&m, tid);
		ck_str_add(&m, b);
	}
}

/* The filters from the root to node, oldest first; how many. */
static int chain_of(int node, int *out, int cap)
{
	int n = 0;
	for (int i = node; i >= 0 && n < cap; i = filters[i].prev)
		out[n++] = i;
	for (int i = 0; i < n / 2; i++) {
		int t = out[i];
		out[i] = out[n - 1 - i];
		out[n - 1 - i] = t;
	}
	return n;
}

static int chain_complete(int node)
{
	for (int i = node; i >= 0; i = filters[i].prev) {
		if (filters[i].prev == NODE_UNKNOWN)
			return 0;
		if (filters[i].prev >= 0 && filters[filters[i].prev].depth != filters[i].depth - 1)
			return 0;
	}
	return 1;
}

/* Every thread's newest filter, and the newest one they all share; the
 * filters beyond that one must each be one thread's alone (a restored
 * thread can share a filter with others only through TSYNC, which puts it
 * on all of them). */
static void check_sharing(void)
{
	static int chains[CK_MAX_THREADS][MAX_FILTERS];
	static int lens[CK_MAX_THREADS];
	int n = ck_nthreads, common = -1;
	for (int t = 0; t < n; t++)
		lens[t] = chain_of(ck_threads[t].attrs.seccomp_node, chains[t], MAX_FILTERS);
	for (int d = 0; d < lens[0]; d++) {
		int all = 1;
		for (int t = 1; t < n && all; t++)
			all = d < lens[t] && chains[t][d] == chains[0][d];
		if (!all)
			break;
		common = chains[0][d];
	}
	common_node = common;
	int base = common < 0 ? 0 : filters[common].depth;
	for (int t = 0; t < n; t++)
		for (int u = t + 1; u < n; u++)
			if (lens[t] > base && lens[u] > base && chains[t][base] == chains[u][base]) {
				refuse("threads ", ck_threads[t].tid, " and another thread share a seccomp filter that other threads "
								     "of the process lack (one thread created by another after it installed "
								     "the filter); ckrun can give a filter back to all threads or to one");
				return;
			}
}

CK_HIDDEN void ck_seccomp_capture(void)
{
	refusal[0] = 0;
	common_node = -1;
	int any = 0;
	for (int t = 0; t < ck_nthreads; t++) {
		struct ck_thread *th = &ck_threads[t];
		static char st[4096];
		th->attrs.seccomp_node = -1;
		if (read_status(th->tid, st, sizeof st) <= 0)
			continue; /* it has exited */
		long mode = status_number(st, "Seccomp:", 0);
		long count = status_number(st, "Seccomp_filters:", 0);
		if (mode == SECCOMP_MODE_STRICT) {
			refuse("thread ", th->tid, " is in seccomp strict mode, which ckrun cannot checkpoint");
			return;
		}
		if (count <= 0)
			continue;
		int node = resolve(th->tid, count);
		if (node < 0 || !chain_complete(node) || unrecorded) {
			refuse("thread ", th->tid, " holds seccomp filters ckrun did not see installed (installed before the "
						   "program was started under ckrun, before an exec, or with a system call "
						   "instruction of its own rather than libc's prctl() or syscall()); ckrun cannot give "
						   "them back");
			return;
		}
		for (int i = node; i >= 0; i = filters[i].prev)
			if (filters[i].flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
				refuse("thread ", th->tid, " holds a seccomp filter with a user-space listener "
							   "(SECCOMP_FILTER_FLAG_NEW_LISTENER), which ckrun cannot give back");
				return;
			}
		if (status_number(st, "NoNewPrivs:", 0) != 1 && !((status_number(st, "CapEff:", 1) >> 21 /* CAP_SYS_ADMIN */) & 1)) {
			refuse("thread ", th->tid, " holds seccomp filters, has no_new_privs off and no longer has the "
						   "CAP_SYS_ADMIN it installed them with: no restart could install them again");
			return;
		}
		th->attrs.seccomp_node = node;
		any = 1;
	}
	if (any)
		check_sharing();
}

CK_HIDDEN void ck_seccomp_save(struct ck_writer *w)
{
	struct cb_enc *e = &w->meta;
	if (refusal[0]) {
		ck_writer_fail(w, -EOPNOTSUPP, "cannot save the seccomp filters");
		struct ck_str d;
		ck_str_init(&d, w->err_detail, sizeof w->err_detail);
		ck_str_add(&d, refusal);
	}
	int n = nfilters, used = 0;
	for (int t = 0; t < ck_nthreads; t++)
		used |= ck_threads[t].attrs.seccomp_node >= 0;
	if (!used)
		return;
	cb_text(e, "seccomp");
	cb_map(e, 2);
	cb_text(e, "common");
	if (common_node >= 0)
		cb_uint(e, (uint64_t)common_node);
	else
		cb_null(e);
	cb_text(e, "filters");
	cb_array(e, (uint64_t)n);
	for (int i = 0; i < n; i++) {
		const struct filter *f = &filters[i];
		cb_map(e, 3);
		cb_kv_int(e, "prev", f->prev);
		cb_kv_uint(e, "flags", f->flags);
		cb_text(e, "bpf");
		cb_bytes(e, &pool[f->off], f->len * sizeof pool[0]);
	}
}

/* ---- the restore host ---- */

CK_HIDDEN int ck_seccomp_parse(struct cb_dec *d, struct ck_image *img)
{
	int64_t left, n;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (!cbd_key_is(k, kl, "filters")) {
			if (!cbd_skip(d))
				return 0;
			continue;
		}
		if (!cbd_array(d, &n))
			return 0;
		while (cbd_next_item(d, &n)) {
			if (++img->attrs.seccomp_filters > MAX_FILTERS || !cbd_skip(d))
				return 0;
		}
	}
	return !d->error;
}

/* ---- the restored shim: the filters, last ---- */

static __attribute__((noreturn)) void install_failed(int tid, long err)
{
	char buf[200];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, "ckrun restart: installing the seccomp filters of thread ");
	ck_str_dec(&m, tid);
	ck_str_add(&m, " again failed: ");
	ck_str_errno(&m, err);
	ck_str_add(&m, " (the half-restored process is ended)\n");
	ck_write(2, buf, m.len);
	ck_exit_group(CK_EXIT_CORE_FAILED);
	__builtin_unreachable();
}

/* Installs the filters of self's chain from the one after `from` (-1: the
 * root) up to `to`; with TSYNC on every thread. */
static void install(struct ck_thread *self, int from, int to, uint32_t sync)
{
	int chain[MAX_FILTERS];
	int n = chain_of(to, chain, MAX_FILTERS), start = 0;
	while (from >= 0 && start < n && chain[start] != from)
		start++;
	if (from >= 0)
		start++;
	for (int i = start; i < n; i++) {
		const struct filter *f = &filters[chain[i]];
		struct sock_fprog prog = {(unsigned short)f->len, &pool[f->off]};
		long r = CK_SYS3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (f->flags & FLAGS_KEPT) | sync, &prog);
		if (r != 0)
			install_failed(self->tid, r > 0 ? -EBUSY : r);
	}
}

CK_HIDDEN void ck_seccomp_restore_leader(struct ck_thread *self)
{
	if (common_node >= 0)
		install(self, -1, common_node, SECCOMP_FILTER_FLAG_TSYNC);
	ck_seccomp_restore_thread(self);
}

CK_HIDDEN void ck_seccomp_restore_thread(struct ck_thread *self)
{
	if (self->attrs.seccomp_node >= 0 && self->attrs.seccomp_node != common_node)
		install(self, common_node, self->attrs.seccomp_node, 0);
}
