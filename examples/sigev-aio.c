/*
 * sigev-aio: glibc's helper threads across checkpoint/restart (issue 11).
 * glibc runs SIGEV_THREAD timers and POSIX AIO in threads of its own that
 * block every signal but its internal SIGSETXID.
 * - tick: a SIGEV_THREAD timer, CLOCK_MONOTONIC, every 10 ms; its callback
 *   checks its value, that it runs in a thread of its own, and counts its
 *   expirations (1 + timer_getoverrun);
 * - once: a one-shot SIGEV_THREAD timer armed at every step for 15 ms; the
 *   step waits for its callback (an expiry lost by a restart would leave it
 *   waiting: FAIL after 5 s);
 * - a pipe: an aio_read of 8 bytes is in flight for five steps at a time
 *   (glibc's AIO thread sits in read()), completed by the main loop's
 *   write, announced by a SIGEV_THREAD notification and checked;
 * - a file: an aio_read of a 4 KiB block at every step, awaited with
 *   aio_suspend, its content checked.
 * Every 10th step, tick must have fired since the last check and
 * timer_gettime must know both timers with their intervals. A failed check
 * prints "FAIL: ..." and exits 1. Usage: sigev-aio FILE [STEPS]
 */
#include "common.h"
#include <aio.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PACE_MS 20
#define BLOCK 4096
#define BLOCKS 16

static const char tick_mark[] = "tick", once_mark[] = "once", pipe_mark[] = "pipe";
static int main_tid;
static long expirations, callbacks;
static volatile int bad;
static timer_t tick;
static sem_t once_sem, pipe_sem;

static void fail(const char *what)
{
	printf("FAIL: %s (errno %s)\n", what, errname(errno));
	fflush(stdout);
	exit(1);
}

static int own_thread(void)
{
	return (int)syscall(SYS_gettid) != main_tid;
}

static void on_tick(union sigval v)
{
	if (v.sival_ptr != tick_mark || !own_thread())
		bad = 1;
	int over = timer_getoverrun(tick);
	__atomic_add_fetch(&expirations, 1 + (over > 0 ? over : 0), __ATOMIC_RELAXED);
	__atomic_add_fetch(&callbacks, 1, __ATOMIC_RELAXED);
}

static void on_once(union sigval v)
{
	if (v.sival_ptr != once_mark || !own_thread())
		bad = 2;
	sem_post(&once_sem);
}

static void on_pipe_read(union sigval v)
{
	if (v.sival_ptr != pipe_mark || !own_thread())
		bad = 3;
	sem_post(&pipe_sem);
}

static timer_t thread_timer(void (*fn)(union sigval), const char *mark)
{
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_THREAD;
	ev.sigev_notify_function = fn;
	ev.sigev_value.sival_ptr = (void *)mark;
	timer_t t;
	if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0)
		fail("timer_create");
	return t;
}

static void arm(timer_t t, long value_ms, long interval_ms)
{
	struct itimerspec its = {{0, interval_ms * 1000000L}, {0, value_ms * 1000000L}};
	if (timer_settime(t, 0, &its, 0) != 0)
		fail("timer_settime");
}

/* Waits for a semaphore posted by a callback, about 5 s at most (counted
 * in short sleeps, not on the clock: the time a checkpoint's program was
 * gone does not count). */
static void await_post(sem_t *s, const char *what)
{
	for (int i = 0; i < 5000; i++) {
		if (sem_trywait(s) == 0)
			return;
		pace_ms(1);
	}
	fail(what);
}

static long interval_ms(timer_t t)
{
	struct itimerspec cur;
	if (timer_gettime(t, &cur) != 0)
		fail("timer_gettime of a timer the program holds");
	return cur.it_interval.tv_nsec / 1000000L;
}

static void start_pipe_read(struct aiocb *cb, int fd, char *buf)
{
	memset(cb, 0, sizeof *cb);
	cb->aio_fildes = fd;
	cb->aio_buf = buf;
	cb->aio_nbytes = 8;
	cb->aio_sigevent.sigev_notify = SIGEV_THREAD;
	cb->aio_sigevent.sigev_notify_function = on_pipe_read;
	cb->aio_sigevent.sigev_value.sival_ptr = (void *)pipe_mark;
	if (aio_read(cb) != 0)
		fail("aio_read on the pipe");
}

static void read_block(int fd, int step)
{
	static char buf[BLOCK];
	struct aiocb cb;
	memset(&cb, 0, sizeof cb);
	cb.aio_fildes = fd;
	cb.aio_buf = buf;
	cb.aio_nbytes = BLOCK;
	cb.aio_offset = (off_t)(step % BLOCKS) * BLOCK;
	if (aio_read(&cb) != 0)
		fail("aio_read on the file");
	const struct aiocb *list[1] = {&cb};
	while (aio_error(&cb) == EINPROGRESS)
		if (aio_suspend(list, 1, 0) != 0 && errno != EINTR)
			fail("aio_suspend");
	if (aio_return(&cb) != BLOCK)
		fail("the file's aio_read came back short");
	for (int i = 0; i < BLOCK; i++)
		if (buf[i] != (char)('a' + (step % BLOCKS)))
			fail("the file's aio_read returned other bytes");
}

int main(int argc, char **argv)
{
	if (argc < 2)
		fail("usage: sigev-aio FILE [STEPS]");
	int steps = argc > 2 ? atoi(argv[2]) : 150;
	main_tid = (int)syscall(SYS_gettid);
	sem_init(&once_sem, 0, 0);
	sem_init(&pipe_sem, 0, 0);

	int file = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (file < 0)
		fail("open FILE");
	static char block[BLOCK];
	for (int b = 0; b < BLOCKS; b++) {
		memset(block, 'a' + b, BLOCK);
		if (write(file, block, BLOCK) != BLOCK)
			fail("write FILE");
	}
	int p[2];
	if (pipe(p) != 0)
		fail("pipe");

	tick = thread_timer(on_tick, tick_mark);
	arm(tick, 10, 10);
	timer_t once = thread_timer(on_once, once_mark);

	struct aiocb pcb;
	char pbuf[9] = {0};
	int pipe_reads = 0;
	start_pipe_read(&pcb, p[0], pbuf);
	long last_exp = 0;
	for (int step = 1; step <= steps; step++) {
		arm(once, 15, 0);
		read_block(file, step);
		if (step % 5 == 0) {
			char msg[16];
			snprintf(msg, sizeof msg, "msg%05d", step % 100000);
			if (write(p[1], msg, 8) != 8)
				fail("write to the pipe");
			await_post(&pipe_sem, "the pipe's aio_read never completed");
			if (aio_error(&pcb) != 0 || aio_return(&pcb) != 8 || memcmp(pbuf, msg, 8) != 0)
				fail("the pipe's aio_read returned other bytes");
			pipe_reads++;
			start_pipe_read(&pcb, p[0], pbuf);
		}
		await_post(&once_sem, "the one-shot SIGEV_THREAD timer never fired");
		if (step % 10 == 0) {
			long e = __atomic_load_n(&expirations, __ATOMIC_RELAXED);
			if (e <= last_exp)
				fail("the SIGEV_THREAD interval timer stopped firing");
			last_exp = e;
			if (interval_ms(tick) != 10 || interval_ms(once) != 0)
				fail("a timer's interval changed");
		}
		if (bad)
			fail(bad == 1 ? "the tick callback got the wrong value or thread"
				      : bad == 2 ? "the one-shot callback got the wrong value or thread"
						 : "the AIO notification got the wrong value or thread");
		say("step %d", step);
		pace_ms(PACE_MS);
	}
	say("pipe reads: %d", pipe_reads);
	say("sigev-aio: done");
	return 0;
}
