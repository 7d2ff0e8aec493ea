/* Stopped processes (SIGSTOP, job control; docs/design.md, "Stopped and
 * traced processes"). While ckrun holds a stopped process (ckrun-hold runs
 * only its shim), it tells the shim so ("held <signal>"), and tells the
 * parent of each such process ("child-stopped <pid>"). The image records
 * both: that the process was stopped, and, for each stopped child, whether
 * the parent had still to collect the stop with wait().
 *
 * After a restart the process stops itself before any of its code runs
 * (after the family is whole, once it said "restored"); its parent, before
 * it runs, collects the report this new stop makes when it had collected
 * the original one, and takes the SIGCHLD it brought unless one was
 * pending at the checkpoint: the parent sees what it saw before. Raw system
 * calls only: signal context. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "ckrun.h"
#include "sys.h"

#define CK_MAX_STOPPED_CHILDREN 256

/* told during the stop of the checkpoint being taken */
static int held_signal;
static int told_children[CK_MAX_STOPPED_CHILDREN];
static int ntold;

/* what the image holds (and the restored shim finds here) */
static int stopped_signal;
static struct {
	int pid;
	int report_pending; /* the parent had not collected the stop yet */
} stopped_children[CK_MAX_STOPPED_CHILDREN];
static int nstopped_children;

static int parse_int(const char *p, int *out)
{
	uint64_t v;
	if (!ck_parse_dec(&p, &v) || *p || v == 0 || v > 0x7fffffff)
		return 0;
	*out = (int)v;
	return 1;
}

/* ckrun's lines about stops ("held <signal>", "child-stopped <pid>"); 1 when
 * the line was one. */
CK_HIDDEN int ck_jobstop_line(const char *line)
{
	int v;
	if (ck_starts_with(line, "held ")) {
		if (parse_int(line + 5, &v) && v <= 64)
			held_signal = v;
		return 1;
	}
	if (ck_starts_with(line, "child-stopped ")) {
		if (parse_int(line + 14, &v) && ntold < CK_MAX_STOPPED_CHILDREN)
			told_children[ntold++] = v;
		return 1;
	}
	return 0;
}

/* Whether the stop of child pid is still to be reported to wait(). */
static int report_pending(int pid)
{
	siginfo_t si;
	ck_memset(&si, 0, sizeof si);
	long r = CK_SYS5(SYS_waitid, P_PID, pid, &si, WSTOPPED | WNOWAIT | WNOHANG, 0);
	return r == 0 && si.si_pid == pid;
}

/* While stopped for the checkpoint, before the image's state is read. */
CK_HIDDEN void ck_jobstop_capture(void)
{
	stopped_signal = held_signal;
	nstopped_children = 0;
	for (int i = 0; i < ntold; i++) {
		stopped_children[nstopped_children].pid = told_children[i];
		stopped_children[nstopped_children++].report_pending = report_pending(told_children[i]);
	}
}

/* The checkpoint is over (saved or not): the next one is told anew. */
CK_HIDDEN void ck_jobstop_forget(void)
{
	held_signal = 0;
	ntold = 0;
}

CK_HIDDEN void ck_jobstop_save(struct ck_writer *w)
{
	struct cb_enc *e = &w->meta;
	if (stopped_signal)
		cb_kv_uint(e, "stopped", (uint64_t)stopped_signal);
	if (!nstopped_children)
		return;
	cb_text(e, "stopped_children");
	cb_array(e, (uint64_t)nstopped_children);
	for (int i = 0; i < nstopped_children; i++) {
		cb_array(e, 2);
		cb_uint(e, (uint64_t)stopped_children[i].pid);
		cb_bool(e, stopped_children[i].report_pending);
	}
}

static void pause_ms(long ms)
{
	struct ck_timespec ts = {0, ms * 1000000L};
	CK_SYS2(SYS_nanosleep, &ts, 0);
}

/* Waits (at most 5 s) for the stop a restarted child makes; its report is
 * taken, as the parent's wait() had taken the original one, unless the
 * original was still to be collected. */
static void await_child_stop(int pid, int collect)
{
	int options = WSTOPPED | WNOHANG | (collect ? 0 : WNOWAIT);
	for (int i = 0; i < 5000; i++) {
		siginfo_t si;
		ck_memset(&si, 0, sizeof si);
		long r = CK_SYS5(SYS_waitid, P_PID, pid, &si, options, 0);
		if (r < 0 || si.si_pid == pid)
			return; /* there, or the child is gone */
		pause_ms(1);
	}
}

/* Parent, group and session of process pid (/proc/PID/stat fields 4-6). */
static int stat_ids(const char *pid, int ids[3])
{
	char path[48], buf[512];
	struct ck_str p;
	ck_str_init(&p, path, sizeof path);
	ck_str_add(&p, "/proc/");
	ck_str_add(&p, pid);
	ck_str_add(&p, "/stat");
	long n = ck_read_file(path, buf, sizeof buf - 1);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *q = 0;
	for (long i = 0; i < n; i++)
		if (buf[i] == ')')
			q = buf + i;
	if (!q || q[1] != ' ' || !q[2] || q[3] != ' ')
		return 0;
	q += 4; /* past ") S " */
	for (int k = 0; k < 3; k++) {
		uint64_t v;
		if (!ck_parse_dec(&q, &v))
			return 0;
		ids[k] = (int)v;
		if (*q == ' ')
			q++;
	}
	return 1;
}

/* Whether the caller's process group is orphaned (no member has a parent
 * in another group of the same session): the kernel then drops SIGTSTP,
 * SIGTTIN and SIGTTOU instead of stopping. Unknown counts as orphaned. */
static int own_group_orphaned(void)
{
	char me[24];
	struct ck_str m;
	ck_str_init(&m, me, sizeof me);
	ck_str_dec(&m, ck_getpid());
	int mine[3];
	long dir = ck_openat(-100 /* AT_FDCWD */, "/proc", 0200000 /* O_DIRECTORY */ | 02000000 /* O_CLOEXEC */, 0);
	if (!stat_ids(me, mine) || dir < 0) {
		if (dir >= 0)
			ck_close((int)dir);
		return 1;
	}
	int orphaned = 1;
	char dents[2048];
	long n;
	while (orphaned && (n = ck_getdents64((int)dir, dents, sizeof dents)) > 0)
		for (long off = 0; off < n && orphaned;) {
			struct ck_dirent64 *d = (struct ck_dirent64 *)(dents + off);
			off += d->reclen;
			int ids[3], parent[3];
			char ppid[24];
			struct ck_str pp;
			if (d->name[0] < '1' || d->name[0] > '9' || !stat_ids(d->name, ids) || ids[1] != mine[1])
				continue;
			ck_str_init(&pp, ppid, sizeof ppid);
			ck_str_dec(&pp, ids[0]);
			if (ids[0] > 0 && stat_ids(ppid, parent) && parent[1] != mine[1] && parent[2] == mine[2])
				orphaned = 0;
		}
	ck_close((int)dir);
	return orphaned;
}

/* The signal a process stopped by sig stops itself with again: sig itself
 * when it would stop it (default action, group not orphaned), so that its
 * parent's wait() reports the same stop signal; otherwise SIGSTOP. */
static int stop_signal_again(int sig)
{
	if (sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU)
		return SIGSTOP;
	struct ck_ksigaction old;
	if (ck_rt_sigaction(sig, 0, &old) != 0 || old.handler != 0 /* SIG_DFL */)
		return SIGSTOP;
	return own_group_orphaned() ? SIGSTOP : sig;
}

/* Stops the process by sig from inside the handler: unblocked in this
 * thread for the moment of the call, so the stop begins as the call
 * returns, before any other thread is released. */
static void stop_self(int sig)
{
	uint64_t one = 1ULL << (sig - 1), old;
	ck_rt_sigprocmask(SIG_UNBLOCK, &one, &old);
	ck_tgkill((int)ck_getpid(), (int)ck_gettid(), sig);
	ck_rt_sigprocmask(SIG_SETMASK, &old, 0);
}

/* In the restored leader, every thread still parked in the handler: the
 * parent's side first (its children stop on their own), then its own stop.
 * was_pending: the signals pending at the checkpoint. */
CK_HIDDEN void ck_jobstop_after_restore(uint64_t was_pending)
{
	for (int i = 0; i < nstopped_children; i++)
		await_child_stop(stopped_children[i].pid, !stopped_children[i].report_pending);
	uint64_t chld = 1ULL << (SIGCHLD - 1);
	if (nstopped_children && !(was_pending & chld)) {
		/* the SIGCHLD of the original stops was delivered before the
		 * checkpoint: the one the new stops sent goes */
		struct ck_timespec zero = {0, 0};
		siginfo_t si;
		CK_SYS4(SYS_rt_sigtimedwait, &chld, &si, &zero, 8);
	}
	nstopped_children = 0;
	int sig = stopped_signal;
	stopped_signal = 0;
	ck_jobstop_forget();
	if (sig)
		stop_self(stop_signal_again(sig));
}
