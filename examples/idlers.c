/*
 * idlers: a main thread hands numbered jobs to a pool of 8 workers that
 * sleep on a condition variable between jobs (as redis's bio threads and
 * jemalloc's background thread do). Any of them may take ckrun's request
 * signals, several at once: the checkpoint test takes many checkpoints in
 * a row of this program and of its restarted copies.
 *
 * Each step the main thread posts one job, waits until a worker has done
 * it, and prints a hash of every result so far; the results do not depend
 * on which worker did the job, so two runs print the same lines.
 *
 *   idlers [--steps N] [--until-file PATH]
 *
 * With --until-file it paces itself only while PATH does not exist (a test
 * creates it to let the program run to its end at once; the lines printed
 * are the same).
 */
#include "common.h"
#include <pthread.h>
#include <unistd.h>

#define WORKERS 8
#define PACE_MS 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;
static int posted, finished, quit;
static uint64_t results[100000];

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		while (posted == finished && !quit) {
			/* a timed wait, like a background thread's periodic check */
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 50 * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&work, &lock, &until);
		}
		if (quit)
			break;
		int job = posted;
		results[job] = splitmix64((uint64_t)job * 2654435761u);
		finished = job;
		pthread_cond_signal(&done);
	}
	pthread_mutex_unlock(&lock);
	return 0;
}

int main(int argc, char **argv)
{
	int steps = 250;
	const char *until = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--until-file") && i + 1 < argc)
			until = argv[++i];
	}
	if (steps < 1 || steps >= (int)(sizeof results / sizeof results[0]))
		steps = 250;
	say("idlers: start, %d workers, %d steps", WORKERS, steps);
	pthread_t t[WORKERS];
	for (int i = 0; i < WORKERS; i++)
		if (pthread_create(&t[i], 0, worker, 0) != 0)
			return 1;
	uint64_t h = 0;
	for (int s = 1; s <= steps; s++) {
		pthread_mutex_lock(&lock);
		posted = s;
		pthread_cond_signal(&work);
		while (finished != s)
			pthread_cond_wait(&done, &lock);
		h = mix64(h, results[s]);
		pthread_mutex_unlock(&lock);
		say("step %d h=%016" PRIx64, s, h);
		if (!until || access(until, F_OK) != 0)
			pace_ms(PACE_MS);
	}
	pthread_mutex_lock(&lock);
	quit = 1;
	pthread_cond_broadcast(&work);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(t[i], 0);
	say("idlers: done h=%016" PRIx64, h);
	return 0;
}
