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
		ck_kill((int)ck_getpid(), SIGSTOP);
}
