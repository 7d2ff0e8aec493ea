/* Signals ckrun takes a checkpoint on (`--checkpoint-on`), held back from
 * the program for a moment.
 *
 * A batch scheduler ends a job by signalling every process of it at once
 * (Slurm's requeue, preemption and time limit send SIGTERM to the whole
 * job): the program would die of the signal while ckrun, which got it too,
 * is still starting the checkpoint. So for each signal CKRUN_HOLD_SIGNALS
 * names, the shim installs a handler of its own and keeps the program's
 * disposition aside (the sigaction wrappers read and write that one):
 *  - sent by ckrun (it passes the signal on when its checkpoint failed), by
 *    the kernel, or by a process of the session (the program signalling
 *    itself), the signal goes to the program's disposition at once;
 *  - sent from outside the session, it is held: the thread waits in the
 *    handler for ckrun's checkpoint (which then ends the program: it never
 *    sees the signal) for up to HOLD_NS after the signal or after the last
 *    checkpoint that interrupted the wait; if none comes (someone signalled
 *    the program alone), the program gets the signal then, late;
 *  - a thread restored while holding drops the signal: it belonged to the
 *    checkpoint that made the image.
 * Only signals whose default action ends the process are held. Runs in the
 * signal handler: raw system calls only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "ckrun.h"
#include "sys.h"

#define HOLD_NS 2000000000LL
#define WAIT_NS 50000000L

static uint64_t held_mask;
static struct sigaction program_action[65];

static uint64_t bit_of(int sig)
{
	return 1ULL << (sig - 1);
}

/* Signals whose default action terminates the process (with or without a
 * core): holding any other one would change what the default does. */
static int ends_by_default(int sig)
{
	switch (sig) {
	case SIGHUP: case SIGINT: case SIGQUIT: case SIGUSR1: case SIGUSR2: case SIGALRM:
	case SIGTERM: case SIGXCPU: case SIGXFSZ: case SIGVTALRM: case SIGPROF: case SIGPWR:
		return 1;
	default:
		return sig >= SIGRTMIN && sig <= SIGRTMAX;
	}
}

CK_HIDDEN int ck_hold_has(int sig)
{
	return sig >= 1 && sig <= 64 && (held_mask & bit_of(sig));
}

CK_HIDDEN uint64_t ck_hold_mask(void)
{
	return held_mask;
}

static int64_t mono_ns(void)
{
	struct ck_timespec t;
	ck_clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.sec * 1000000000LL + t.nsec;
}

/* Whether the program should get this signal now rather than held. */
static int passes_at_once(const siginfo_t *si)
{
	if (si->si_code > 0)
		return 1; /* from the kernel */
	int me = (int)ck_getpid();
	if (si->si_pid == me)
		return 1;
	int coordinator = ck_coordinator_pid();
	if (coordinator <= 0 || si->si_pid <= 0)
		return 0;
	return si->si_pid == coordinator || ck_in_session(si->si_pid, coordinator);
}

/* The program's disposition, applied now as the kernel would have. */
static void deliver(int sig, siginfo_t *si, void *uc)
{
	struct sigaction a = program_action[sig];
	if (a.sa_handler == SIG_IGN)
		return;
	if (a.sa_handler == SIG_DFL) {
		/* ends the process: the default again, queued to this thread, unblocked */
		struct ck_ksigaction dfl;
		ck_memset(&dfl, 0, sizeof dfl);
		ck_rt_sigaction(sig, &dfl, 0);
		CK_SYS4(SYS_rt_tgsigqueueinfo, ck_getpid(), ck_gettid(), sig, si);
		uint64_t b = bit_of(sig);
		ck_rt_sigprocmask(SIG_UNBLOCK, &b, 0);
		return;
	}
	if (a.sa_flags & SA_RESETHAND) {
		ck_memset(&program_action[sig], 0, sizeof program_action[sig]);
		program_action[sig].sa_handler = SIG_DFL;
	}
	if (a.sa_flags & SA_SIGINFO)
		a.sa_sigaction(sig, si, uc);
	else
		a.sa_handler(sig);
}

/* Another instance of sig queued while we hold one: ckrun passing it on
 * releases the held one (standard signals merge); any other merges. */
static int released_by(int sig, int64_t wait_ns)
{
	uint64_t b = bit_of(sig);
	siginfo_t next;
	struct ck_timespec ts = {0, wait_ns};
	long r = CK_SYS4(SYS_rt_sigtimedwait, &b, &next, &ts, 8);
	return r == sig && next.si_code <= 0 && next.si_pid > 0 && next.si_pid == ck_coordinator_pid();
}

CK_HIDDEN void ck_hold_handler(int sig, siginfo_t *si, void *ucv)
{
	if (!ck_hold_has(sig) || passes_at_once(si)) {
		deliver(sig, si, ucv);
		return;
	}
	uint64_t restores = ck_restores, stops = ck_stops;
	int64_t until = mono_ns() + HOLD_NS;
	for (;;) {
		if (ck_restores != restores) {
			/* restored from the checkpoint this signal asked for */
			ck_resume_interrupted_call(ucv);
			return;
		}
		if (ck_stops != stops) {
			stops = ck_stops;
			until = mono_ns() + HOLD_NS;
		}
		int64_t left = until - mono_ns();
		if (left <= 0)
			break;
		if (released_by(sig, left < WAIT_NS ? left : WAIT_NS))
			break;
	}
	deliver(sig, si, ucv);
}

/* What the kernel gets for a held signal whose program disposition is a:
 * the program's own ignore, or our handler with its flags and mask. */
static void kernel_action_for(int sig, const struct sigaction *a, struct sigaction *k)
{
	ck_memset(k, 0, sizeof *k);
	if (a->sa_handler == SIG_IGN) {
		k->sa_handler = SIG_IGN;
		return;
	}
	k->sa_sigaction = ck_hold_handler;
	k->sa_flags = SA_SIGINFO | (a->sa_flags & (SA_RESTART | SA_ONSTACK | SA_NODEFER));
	k->sa_mask = a->sa_mask;
	if (ck_session.active)
		sigdelset(&k->sa_mask, ck_session.sig);
	(void)sig;
}

CK_HIDDEN int ck_hold_sigaction(int sig, const struct sigaction *act, struct sigaction *old, ck_real_sigaction_fn real)
{
	if (old)
		*old = program_action[sig];
	if (!act)
		return 0;
	struct sigaction k;
	kernel_action_for(sig, act, &k);
	if (real(sig, &k, 0) != 0)
		return -1;
	program_action[sig] = *act;
	return 0;
}

/* CKRUN_HOLD_SIGNALS: signal numbers, comma separated. The dispositions the
 * program starts with (inherited across exec: default or ignored) become
 * its own, and the handler goes in front of the ones that are not ignored. */
CK_HIDDEN void ck_hold_init(const char *list, ck_real_sigaction_fn real)
{
	while (list && *list) {
		uint64_t v;
		if (!ck_parse_dec(&list, &v))
			return;
		int sig = (int)v;
		if (sig >= 1 && sig <= 64 && sig != SIGKILL && sig != SIGSTOP && ends_by_default(sig) &&
		    !(ck_session.active && sig == ck_session.sig)) {
			struct sigaction now;
			if (real(sig, 0, &now) == 0) {
				held_mask |= bit_of(sig);
				struct sigaction k;
				kernel_action_for(sig, &now, &k);
				if (real(sig, &k, 0) == 0)
					program_action[sig] = now;
				else
					held_mask &= ~bit_of(sig);
			}
		}
		if (*list == ',')
			list++;
		else
			break;
	}
}
