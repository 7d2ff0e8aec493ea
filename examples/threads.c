/*
 * threads: the main thread and 4 workers in lockstep, sharing mutexes.
 *
 * Every step the main thread announces the step, each worker does its part
 * (500 increments of a shared counter under a normal mutex, some private
 * integer and floating-point work), and the main thread prints the step once
 * all have finished. The output is therefore the same on every run.
 *
 * Checks that need the original thread IDs after a restart (glibc keeps the
 * TID in memory and uses it):
 *   - worker-1 locks an error-checking mutex at step 3 and unlocks it at
 *     step 165: "errorcheck unlock: 0" (EPERM with a wrong TID);
 *     worker-3 tries to unlock it at step 160: "... unlock EPERM".
 *   - worker-2 locks a robust mutex at step 5 and exits holding it at step
 *     150; the main thread joins it at step 152 (clear-child-tid) and
 *     worker-3 locks it at step 155: "robust: EOWNERDEAD" (needs the robust
 *     list registered with the kernel again after a restart).
 *   - the main thread pthread_kill()s worker-0 with SIGUSR1 after every 10th
 *     step; worker-0's handler counts: "pthread_kill: 0 delivered 19".
 *   - thread names and worker-1's signal mask survive.
 */
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#define STEPS 200
#define NWORK 4
#define PACE_MS 12

#define EC_LOCK 3
#define EC_RELOCK 4
#define RB_LOCK 5
#define RB_TRY 100
#define RB_EXIT 150
#define RB_JOIN 152
#define RB_CHECK 155
#define EC_FOREIGN 160
#define EC_UNLOCK 165
#define MASK_STEP 166
#define NAMES_STEP 170
#define KILL_EVERY 10

static pthread_mutex_t step_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t step_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int g_step, g_done, g_expect = NWORK;

static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_counter;
static pthread_mutex_t ec_mu; /* PTHREAD_MUTEX_ERRORCHECK */
static pthread_mutex_t rb_mu; /* PTHREAD_MUTEX_ROBUST */

static pthread_t th[NWORK];
static uint64_t acc[NWORK];
static double fp[NWORK];
static __thread volatile sig_atomic_t tl_hits;
static int t0_seen_hits;

static void on_usr1(int sig)
{
	(void)sig;
	tl_hits++;
}

static void work(int id, int s)
{
	int r;
	if (id == 0)
		sched_yield(); /* a syscall: a pending pthread_kill is handled before we count */
	for (int k = 0; k < 500; k++) {
		pthread_mutex_lock(&count_mu);
		g_counter += (uint64_t)(id + 1) * (uint64_t)s + (uint64_t)k;
		pthread_mutex_unlock(&count_mu);
	}
	acc[id] = mix64(acc[id], (uint64_t)s * 131 + (uint64_t)id);
	double x = fp[id];
	for (int k = 0; k < 1000; k++)
		x = x * 0.999 + (double)(s + k + id) * 0.25;
	fp[id] = x;

	switch (id) {
	case 0:
		t0_seen_hits = tl_hits;
		break;
	case 1:
		if (s == EC_LOCK) {
			r = pthread_mutex_lock(&ec_mu);
			say("errorcheck lock: %s", errname(r));
		} else if (s == EC_RELOCK) {
			r = pthread_mutex_lock(&ec_mu);
			say("errorcheck relock: %s", errname(r));
		} else if (s == EC_UNLOCK) {
			r = pthread_mutex_unlock(&ec_mu);
			say("errorcheck unlock: %s", errname(r));
		} else if (s == MASK_STEP) {
			sigset_t m;
			pthread_sigmask(SIG_BLOCK, NULL, &m);
			say("worker-1 mask: SIGUSR2 %s", sigismember(&m, SIGUSR2) ? "blocked" : "unblocked");
		}
		break;
	case 2:
		if (s == RB_LOCK) {
			r = pthread_mutex_lock(&rb_mu);
			say("robust lock: %s", errname(r));
		} else if (s == RB_EXIT) {
			say("robust owner exits holding the lock");
		}
		break;
	case 3:
		if (s == RB_TRY) {
			r = pthread_mutex_trylock(&rb_mu);
			say("robust trylock while owner lives: %s", errname(r));
			if (r == 0)
				pthread_mutex_unlock(&rb_mu);
		} else if (s == RB_CHECK) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += 5;
			r = pthread_mutex_timedlock(&rb_mu, &dl);
			say("robust: %s", errname(r));
			if (r == EOWNERDEAD) {
				say("robust consistent: %s", errname(pthread_mutex_consistent(&rb_mu)));
				pthread_mutex_unlock(&rb_mu);
				r = pthread_mutex_lock(&rb_mu);
				say("robust relock: %s", errname(r));
				if (r == 0)
					pthread_mutex_unlock(&rb_mu);
			} else if (r == 0) {
				pthread_mutex_unlock(&rb_mu);
			}
		} else if (s == EC_FOREIGN) {
			int t = pthread_mutex_trylock(&ec_mu);
			r = pthread_mutex_unlock(&ec_mu);
			say("errorcheck foreign: trylock %s unlock %s", errname(t), errname(r));
		}
		break;
	}
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	char name[16];
	snprintf(name, sizeof name, "worker-%d", id);
	pthread_setname_np(pthread_self(), name);
	if (id == 1) {
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, SIGUSR2);
		pthread_sigmask(SIG_BLOCK, &m, NULL);
	}
	int my = 0;
	for (;;) {
		pthread_mutex_lock(&step_mu);
		while (g_step == my)
			pthread_cond_wait(&step_cv, &step_mu);
		int s = g_step;
		pthread_mutex_unlock(&step_mu);
		if (s > STEPS)
			break;
		work(id, s);
		my = s;
		pthread_mutex_lock(&step_mu);
		g_done++;
		pthread_cond_signal(&done_cv);
		pthread_mutex_unlock(&step_mu);
		if (id == 2 && s == RB_EXIT)
			return NULL; /* still holding rb_mu: the kernel marks it owner-died */
	}
	return NULL;
}

int main(void)
{
	say("threads: start workers=%d steps=%d", NWORK, STEPS);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		die("sigaction");

	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&ec_mu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&rb_mu, &ma);
	pthread_mutexattr_destroy(&ma);

	for (int i = 0; i < NWORK; i++)
		if ((errno = pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i)))
			die("pthread_create");

	int kill_err = 0, kills = 0;
	for (int s = 1; s <= STEPS; s++) {
		pthread_mutex_lock(&step_mu);
		g_step = s;
		g_done = 0;
		pthread_cond_broadcast(&step_cv);
		while (g_done < g_expect)
			pthread_cond_wait(&done_cv, &step_mu);
		if (s == RB_EXIT)
			g_expect = NWORK - 1;
		pthread_mutex_unlock(&step_mu);

		if (s == RB_JOIN) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += 5;
			say("join robust owner: %s", errname(pthread_timedjoin_np(th[2], NULL, &dl)));
		}
		if (s == NAMES_STEP) {
			char n0[16] = "?", n1[16] = "?", n3[16] = "?";
			pthread_getname_np(th[0], n0, sizeof n0);
			pthread_getname_np(th[1], n1, sizeof n1);
			pthread_getname_np(th[3], n3, sizeof n3);
			say("names: %s %s %s", n0, n1, n3);
		}

		pthread_mutex_lock(&count_mu);
		uint64_t c = g_counter;
		pthread_mutex_unlock(&count_mu);
		say("step %d counter=%" PRIu64, s, c);

		if (s % KILL_EVERY == 0 && s < STEPS) {
			int r = pthread_kill(th[0], SIGUSR1);
			if (r && !kill_err)
				kill_err = r;
			if (!r)
				kills++;
		}
		pace_ms(PACE_MS);
	}

	pthread_mutex_lock(&step_mu);
	g_step = STEPS + 1;
	pthread_cond_broadcast(&step_cv);
	pthread_mutex_unlock(&step_mu);
	for (int i = 0; i < NWORK; i++)
		if (i != 2)
			pthread_join(th[i], NULL);

	say("pthread_kill: %s delivered %d", errname(kill_err), t0_seen_hits);
	uint64_t sum = mix64(0, g_counter);
	for (int i = 0; i < NWORK; i++) {
		uint64_t bits;
		memcpy(&bits, &fp[i], sizeof bits);
		sum = mix64(mix64(sum, acc[i]), bits);
	}
	say("threads: done counter=%" PRIu64 " sent=%d sum=%016" PRIx64, g_counter, kills, sum);
	return 0;
}
