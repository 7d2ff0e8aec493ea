/*
 * ev-ptimer: POSIX timers (timer_create) across checkpoint/restart.
 * - sig: CLOCK_MONOTONIC, SIGEV_SIGNAL with SIGUSR1 and value 42, every
 *   20 ms; its handler checks the value and that si_timerid is the ID
 *   the first signal carried;
 * - gone: created and deleted, so the IDs have a gap;
 * - thr: SIGEV_THREAD_ID every 30 ms to a thread of the program that
 *   takes SIGRTMIN+1 with sigwaitinfo, with a pointer value it checks;
 *   (with the argument "sigev-thread" it also makes a glibc SIGEV_THREAD
 *   timer; examples/sigev-aio.c tests those);
 * - none: SIGEV_NONE, one-shot of 100 s: its remaining time only shrinks.
 * Every 10th step both periodic timers must have fired since the last
 * check (each waits up to 1 s for it), timer_gettime must still know
 * every ID with its interval. A failed check prints "FAIL: ..." and exits 1.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STEPS 160
#define PACE_MS 25

static volatile sig_atomic_t sig_count, bad_value, bad_id;
static volatile int first_id = -1;
static int thr_count, thr_bad;
static const char marker[] = "thread timer";

static void fail(const char *what)
{
	printf("FAIL: %s (errno %s)\n", what, errname(errno));
	fflush(stdout);
	exit(1);
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code != SI_TIMER)
		return; /* a signal pending at the checkpoint comes back as SI_USER */
	if (si->si_value.sival_int != 42)
		bad_value = 1;
	if (first_id < 0)
		first_id = si->si_timerid;
	else if (si->si_timerid != first_id)
		bad_id = 1;
	sig_count++;
}

static void on_thread(union sigval v)
{
	if (v.sival_ptr != marker)
		__atomic_store_n(&thr_bad, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&thr_count, 1, __ATOMIC_RELAXED);
}

static volatile int waiter_tid;

static void *waiter(void *arg)
{
	sigset_t *set = arg;
	waiter_tid = (int)syscall(SYS_gettid);
	for (;;) {
		siginfo_t si;
		if (sigwaitinfo(set, &si) > 0 && si.si_code == SI_TIMER)
			on_thread(si.si_value);
	}
	return 0;
}

static timer_t make(int clock, struct sigevent *ev, long value_ms, long interval_ms)
{
	timer_t t;
	if (timer_create(clock, ev, &t) != 0)
		die("timer_create");
	struct itimerspec its = {{interval_ms / 1000, interval_ms % 1000 * 1000000L}, {value_ms / 1000, value_ms % 1000 * 1000000L}};
	if (timer_settime(t, 0, &its, 0) != 0)
		die("timer_settime");
	return t;
}

static void wait_more(volatile sig_atomic_t *sc, int *tc, int since_sig, int since_thr)
{
	for (int i = 0; i < 100; i++) {
		if (*sc > since_sig && __atomic_load_n(tc, __ATOMIC_RELAXED) > since_thr)
			return;
		pace_ms(10);
	}
	fail(*sc > since_sig ? "the SIGEV_THREAD timer stopped firing" : "the SIGEV_SIGNAL timer stopped firing");
}

static long interval_ms(timer_t t)
{
	struct itimerspec cur;
	if (timer_gettime(t, &cur) != 0)
		fail("timer_gettime of a timer the program holds");
	return cur.it_interval.tv_sec * 1000 + cur.it_interval.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	static sigset_t rt;
	sigemptyset(&rt);
	sigaddset(&rt, SIGRTMIN + 1);
	pthread_sigmask(SIG_BLOCK, &rt, 0);
	pthread_t w;
	pthread_create(&w, 0, waiter, &rt);
	while (!waiter_tid)
		pace_ms(1);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGUSR1, &sa, 0);
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGUSR1;
	ev.sigev_value.sival_int = 42;
	timer_t sig = make(CLOCK_MONOTONIC, &ev, 20, 20);
	timer_t gone = make(CLOCK_MONOTONIC, &ev, 0, 0);
	timer_delete(gone);
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIGRTMIN + 1;
	ev._sigev_un._tid = waiter_tid;
	ev.sigev_value.sival_ptr = (void *)marker;
	timer_t thr = make(CLOCK_REALTIME, &ev, 30, 30);
	if (argc > 1 && !strcmp(argv[1], "sigev-thread")) {
		memset(&ev, 0, sizeof ev);
		ev.sigev_notify = SIGEV_THREAD;
		ev.sigev_notify_function = on_thread;
		ev.sigev_value.sival_ptr = (void *)marker;
		make(CLOCK_REALTIME, &ev, 50, 50);
	}
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_NONE;
	timer_t none = make(CLOCK_MONOTONIC, &ev, 100000, 0);
	struct itimerspec cur;
	timer_gettime(none, &cur);
	long none_left = cur.it_value.tv_sec;
	int last_sig = 0, last_thr = 0;
	for (int step = 1; step <= STEPS; step++) {
		if (step % 10 == 0) {
			wait_more(&sig_count, &thr_count, last_sig, last_thr);
			last_sig = sig_count;
			last_thr = __atomic_load_n(&thr_count, __ATOMIC_RELAXED);
			if (interval_ms(sig) != 20 || interval_ms(thr) != 30 || interval_ms(none) != 0)
				fail("a timer's interval changed");
			timer_gettime(none, &cur);
			if (cur.it_value.tv_sec > none_left || cur.it_value.tv_sec < 90)
				fail("the SIGEV_NONE timer's remaining time is wrong");
			none_left = cur.it_value.tv_sec;
			if (bad_value || bad_id || thr_bad)
				fail("a timer signal carried the wrong value or timer ID");
		}
		say("step %d", step);
		pace_ms(PACE_MS);
	}
	say("timer ids: sig %d thread %d", (int)(intptr_t)sig, (int)(intptr_t)thr);
	say("ev-ptimer: done");
	return 0;
}
