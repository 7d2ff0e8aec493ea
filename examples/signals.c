/*
 * signals: handlers, an interval timer, a pending alarm, a blocked pending
 * signal.
 *
 * - ITIMER_VIRTUAL fires SIGVTALRM every 2 ms of CPU time; every step spins
 *   until the next tick arrives (so the timer paces the work; if the timer
 *   is lost across a restart the program says so and exits 3).
 * - SIGUSR1 (SA_RESTART|SA_ONSTACK, on an alternate signal stack, mask
 *   {SIGINT}) is raise()d every 5th step and, every 10th step, left pending
 *   under a mask and taken by sigsuspend().
 * - SIGUSR2 (SA_SIGINFO, no SA_RESTART) is kill()ed to itself every 7th
 *   step; at step 30 it is blocked and sent once, stays pending across the
 *   checkpoints and is delivered when step 150 unblocks it.
 * - alarm(2) at step 20: the alarm is still pending at the checkpoints and
 *   fires after them; the program waits for it at the end.
 * - SIGINT is ignored; the dispositions and the alternate stack are checked
 *   at the end.
 * Counts are printed every step; the final lines summarize.
 */
#include "common.h"
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#define STEPS 200
#define PACE_MS 10
#define ALARM_STEP 20
#define ALARM_SECS 2
#define BLOCK_STEP 30
#define UNBLOCK_STEP 150
#define VTIMER_STEP 190
#define VT_US 2000
#define ALTSIZE (64 * 1024)

static volatile sig_atomic_t usr1, usr1_onstack, usr2, usr2_user, alrm, vtalrm;
static char *altstack;

static void on_usr1(int sig)
{
	char here;
	(void)sig;
	usr1++;
	uintptr_t p = (uintptr_t)&here, a = (uintptr_t)altstack;
	if (p >= a && p < a + ALTSIZE)
		usr1_onstack++;
}

static void on_usr2(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	usr2++;
	if (si->si_code == SI_USER || si->si_code == SI_TKILL)
		usr2_user++;
}

static void on_alrm(int sig)
{
	(void)sig;
	alrm++;
}

static void on_vtalrm(int sig)
{
	(void)sig;
	vtalrm++;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Burn CPU until the interval timer ticks again. */
static void wait_vtick(int s)
{
	sig_atomic_t start = vtalrm;
	double t0 = now_s();
	for (unsigned long i = 0; vtalrm == start; i++) {
		if ((i & 0xffff) == 0 && now_s() - t0 > 5.0) {
			say("error: SIGVTALRM interval timer stopped at step %d", s);
			exit(3);
		}
	}
}

static void handle(int sig, void (*fn)(int), int flags, int masked)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (masked)
		sigaddset(&sa.sa_mask, masked);
	if (sigaction(sig, &sa, NULL))
		die("sigaction");
}

static void block(int sig, int how)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, sig);
	if (sigprocmask(how, &m, NULL))
		die("sigprocmask");
}

int main(void)
{
	say("signals: start steps=%d", STEPS);

	altstack = malloc(ALTSIZE);
	stack_t ss = { .ss_sp = altstack, .ss_flags = 0, .ss_size = ALTSIZE };
	if (!altstack || sigaltstack(&ss, NULL))
		die("sigaltstack");
	handle(SIGUSR1, on_usr1, SA_RESTART | SA_ONSTACK, SIGINT);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_usr2;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL))
		die("sigaction");
	handle(SIGALRM, on_alrm, SA_RESTART, 0);
	handle(SIGVTALRM, on_vtalrm, SA_RESTART, 0);
	signal(SIGINT, SIG_IGN);

	struct itimerval it = { { 0, VT_US }, { 0, VT_US } };
	if (setitimer(ITIMER_VIRTUAL, &it, NULL))
		die("setitimer");

	uint64_t sum = 0;
	for (int s = 1; s <= STEPS; s++) {
		wait_vtick(s);
		if (s % 5 == 0)
			raise(SIGUSR1);
		if (s % 7 == 0 && !(s >= BLOCK_STEP && s < UNBLOCK_STEP))
			kill(getpid(), SIGUSR2);
		if (s % 10 == 0) {
			sigset_t b, old;
			sigemptyset(&b);
			sigaddset(&b, SIGUSR1);
			sigprocmask(SIG_BLOCK, &b, &old);
			raise(SIGUSR1);
			sig_atomic_t before = usr1;
			sigsuspend(&old);
			if (usr1 == before)
				say("error: sigsuspend returned without SIGUSR1 at step %d", s);
			sigprocmask(SIG_SETMASK, &old, NULL);
		}
		if (s == ALARM_STEP)
			say("alarm set: previous %u", alarm(ALARM_SECS));
		if (s == BLOCK_STEP) {
			block(SIGUSR2, SIG_BLOCK);
			kill(getpid(), SIGUSR2);
			say("usr2 blocked and sent: delivered %d", (int)usr2);
		}
		if (s == UNBLOCK_STEP) {
			sigset_t p;
			sigpending(&p);
			int was = sigismember(&p, SIGUSR2);
			sig_atomic_t before = usr2;
			block(SIGUSR2, SIG_UNBLOCK);
			say("usr2 pending before unblock: %d, delivered on unblock: %d", was, (int)(usr2 - before));
		}
		if (s == VTIMER_STEP) {
			struct itimerval cur;
			getitimer(ITIMER_VIRTUAL, &cur);
			say("vtimer interval: %ld us",
			    (long)(cur.it_interval.tv_sec * 1000000L + cur.it_interval.tv_usec));
		}
		sum = mix64(mix64(sum, (uint64_t)s), (uint64_t)(usr1 * 1000 + usr2));
		say("step %d usr1=%d usr2=%d sum=%016" PRIx64, s, (int)usr1, (int)usr2, sum);
		pace_ms(PACE_MS);
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_VIRTUAL, &off, NULL);

	/* the alarm set at step 20 fires once, maybe only now */
	double t0 = now_s();
	while (!alrm && now_s() - t0 < 15.0)
		pace_ms(20);
	say("alarm: fired %d", (int)alrm);
	say("usr1: %d onstack %d", (int)usr1, (int)usr1_onstack);
	say("usr2: %d from user %d", (int)usr2, (int)usr2_user);
	say("vtalrm: %s", vtalrm >= STEPS ? "ok" : "short");

	struct sigaction a1, a2, ai;
	sigaction(SIGUSR1, NULL, &a1);
	sigaction(SIGUSR2, NULL, &a2);
	sigaction(SIGINT, NULL, &ai);
	int ok1 = a1.sa_handler == on_usr1 && (a1.sa_flags & SA_RESTART) && (a1.sa_flags & SA_ONSTACK) &&
		  sigismember(&a1.sa_mask, SIGINT) && !sigismember(&a1.sa_mask, SIGTERM);
	int ok2 = a2.sa_sigaction == on_usr2 && (a2.sa_flags & SA_SIGINFO) && !(a2.sa_flags & SA_RESTART);
	say("dispositions: usr1 %s usr2 %s int %s", ok1 ? "ok" : "changed", ok2 ? "ok" : "changed",
	    ai.sa_handler == SIG_IGN ? "ignored" : "changed");
	stack_t cur;
	sigaltstack(NULL, &cur);
	say("altstack: %s", cur.ss_sp == altstack && cur.ss_size == ALTSIZE && !(cur.ss_flags & SS_DISABLE) ? "ok" : "changed");
	sigset_t m;
	sigprocmask(SIG_BLOCK, NULL, &m);
	int blocked = 0;
	for (int sig = 1; sig < 64; sig++)
		if (sigismember(&m, sig) == 1)
			blocked++;
	say("signals: done blocked=%d alarm=%d usr1=%d usr2=%d sum=%016" PRIx64, blocked, (int)alrm, (int)usr1,
	    (int)usr2, sum);
	return 0;
}
