/* glibc's helper threads: the SIGEV_THREAD timer thread (and the threads
 * it starts for the program's callbacks), the POSIX AIO and getaddrinfo_a
 * workers. glibc creates them with every signal blocked but SIGSETXID
 * (signal 33), which it keeps deliverable to every thread it makes: a
 * setuid() must reach them all. ckrun's signal never reaches them, so the
 * stop goes through SIGSETXID instead, with ckrun's tag: the shim puts its
 * own handler on SIGSETXID, which takes ckrun's stop requests and hands
 * every other delivery to glibc's handler, as before.
 *
 * The timer thread waits for SIGTIMER (signal 32) with sigwaitinfo; an
 * expiry that is pending while the program is stopped would be lost at a
 * restart (pending signals come back as plain tgkill() signals, which the
 * timer thread ignores). So each thread takes its pending signal-32
 * deliveries, with their siginfo, into the shim's memory while stopped;
 * they are queued again, exactly, before the threads run (after a resume
 * and after a restart). Raw system calls only: signal context. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>

#include "ckrun.h"
#include "sys.h"
#include "wire.h"

#define SIGSETXID_NO 33 /* glibc's SIGSETXID: __SIGRTMIN + 1 */
#define SIGTIMER_NO 32  /* glibc's SIGTIMER (and SIGCANCEL): __SIGRTMIN */
#define SA_RESTORER_FLAG 0x04000000

/* glibc's own action for SIGSETXID, which the shim's handler forwards to */
static struct ck_ksigaction glibc_setxid;
/* the checkpoint's handler and its sigreturn trampoline (checkpoint.c,
 * a layer above: passed down by ck_setxid_stop_ready) */
static void (*stop_handler)(int, siginfo_t *, void *);

static void setxid_handler(int sig, siginfo_t *si, void *uc)
{
	uint64_t tag = (uint64_t)si->si_value.sival_ptr >> 32;
	if (si->si_code == SI_QUEUE && si->si_pid == (int)ck_getpid() && tag == CK_QUEUE_MAGIC) {
		stop_handler(sig, si, uc);
		return;
	}
	if (glibc_setxid.flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))glibc_setxid.handler)(sig, si, uc);
	else if (glibc_setxid.handler > 1)
		((void (*)(int))glibc_setxid.handler)(sig);
}

CK_HIDDEN int ck_setxid_signal(void)
{
	return SIGSETXID_NO;
}

/* Puts the shim's handler on SIGSETXID in front of glibc's; 0 when glibc
 * has none there (no thread of glibc's exists then, and the signal's
 * default action would end the program). glibc installs its handler when
 * the process starts its first thread, and again in a forked child that
 * does, replacing the shim's: this is looked at before every stop. */
CK_HIDDEN int ck_setxid_stop_ready(void (*stop)(int, siginfo_t *, void *), void (*restorer)(void))
{
	stop_handler = stop;
	struct ck_ksigaction now;
	if (ck_rt_sigaction(SIGSETXID_NO, 0, &now) < 0)
		return 0;
	if (now.handler == (unsigned long)setxid_handler)
		return 1;
	if (now.handler <= 1 /* SIG_DFL, SIG_IGN */)
		return 0;
	struct ck_ksigaction ours = now;
	ours.handler = (unsigned long)setxid_handler;
	ours.flags = (now.flags | SA_SIGINFO | SA_RESTORER_FLAG) & ~(unsigned long)(SA_RESETHAND | SA_NODEFER);
	ours.restorer = (unsigned long)restorer;
	ours.mask = ~0ULL;
	glibc_setxid = now;
	return ck_rt_sigaction(SIGSETXID_NO, &ours, 0) == 0;
}

/* The thread's blocked signals (SigBlk of /proc/self/task/TID/status). */
static uint64_t blocked_of(int tid)
{
	char path[64];
	struct ck_str p;
	ck_str_init(&p, path, sizeof path);
	ck_str_add(&p, "/proc/self/task/");
	ck_str_dec(&p, tid);
	ck_str_add(&p, "/status");
	return ck_read_pending_mask(path, "SigBlk:");
}

CK_HIDDEN int ck_thread_blocks(int tid, int sig, int *also_setxid)
{
	uint64_t b = blocked_of(tid);
	*also_setxid = (int)((b >> (SIGSETXID_NO - 1)) & 1);
	return (int)((b >> (sig - 1)) & 1);
}

/* ---- SIGTIMER deliveries held while the program is stopped ---- */

#define CK_MAX_HELD 256
static struct {
	int tid;
	siginfo_t si;
} held[CK_MAX_HELD];
static volatile int nheld;
static volatile int held_overflow;

/* In a stopped thread (inside the handler, every signal blocked): takes
 * its pending signal-32 deliveries into the shim's memory. */
CK_HIDDEN void ck_held_take(void)
{
	uint64_t set = 1ULL << (SIGTIMER_NO - 1);
	struct ck_timespec zero = {0, 0};
	int tid = (int)ck_gettid();
	for (;;) {
		int i = __atomic_load_n(&nheld, __ATOMIC_SEQ_CST);
		if (i >= CK_MAX_HELD) {
			held_overflow = 1;
			return;
		}
		siginfo_t si;
		if (CK_SYS4(SYS_rt_sigtimedwait, &set, &si, &zero, 8) <= 0)
			return;
		i = __atomic_fetch_add(&nheld, 1, __ATOMIC_SEQ_CST);
		if (i >= CK_MAX_HELD) {
			/* no room: back where it was, and the checkpoint fails */
			held_overflow = 1;
			CK_SYS4(SYS_rt_tgsigqueueinfo, ck_getpid(), tid, SIGTIMER_NO, &si);
			return;
		}
		held[i].tid = tid;
		held[i].si = si;
	}
}

CK_HIDDEN int ck_held_count(void)
{
	return nheld;
}

CK_HIDDEN int ck_held_failed(void)
{
	return held_overflow;
}

/* Before the threads run again (after a resume, or in the restored
 * leader): every held delivery is queued again to its thread, with its
 * siginfo (si_code SI_TIMER and the timer's value, or SI_TKILL for a
 * cancellation), which the kernel allows a process to send itself. */
CK_HIDDEN void ck_held_requeue(void)
{
	int pid = (int)ck_getpid(), n = nheld;
	for (int i = 0; i < n && i < CK_MAX_HELD; i++)
		CK_SYS4(SYS_rt_tgsigqueueinfo, pid, held[i].tid, SIGTIMER_NO, &held[i].si);
	nheld = 0;
	held_overflow = 0;
}
