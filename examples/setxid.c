/*
 * setxid: glibc's setuid broadcast across checkpoint/restart (issue 11).
 * In a multithreaded program, setresuid() and friends change the
 * credentials of the calling thread only; glibc makes every other thread
 * change its own through its internal SIGSETXID, the signal the shim also
 * uses to stop glibc's helper threads. A broadcast lost, delayed or
 * answered twice shows here: every step reads the effective user and group
 * of every thread (/proc/self/task/TID/status) and they must all be what
 * the last call set.
 * Threads: main, two pthreads started at once, glibc's SIGEV_THREAD timer
 * thread (an interval timer, 10 ms), glibc's AIO worker (an aio_read of a
 * pipe in flight all along), and a third pthread started at step 50 (after
 * the tests' first checkpoint).
 * Step 30: effective group 4242, then user 4343 (real and saved stay 0).
 * Step 100: back to 0 and 0. Step 110: a forked child starts a thread,
 * changes its effective user to 4444 and checks its two threads.
 * A failed check prints "FAIL: ..." and exits 1. Usage: setxid [STEPS]
 * (as root).
 */
#include "common.h"
#include <aio.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define PACE_MS 20

static volatile long ticks;
static volatile int stop_spinners;

static void fail(const char *what)
{
	printf("FAIL: %s (errno %s)\n", what, errname(errno));
	fflush(stdout);
	_exit(1);
}

/* The effective ID of one thread: field 2 of "Uid:" or "Gid:". */
static long effective_id(const char *tid, const char *field)
{
	char path[96], buf[2048];
	snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -2; /* ended meanwhile (a timer callback's thread) */
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -2;
	buf[n] = 0;
	char *p = strstr(buf, field);
	long real, eff;
	if (!p || sscanf(p + strlen(field), "%ld %ld", &real, &eff) != 2)
		return -1;
	return eff;
}

/* Every thread runs with effective user uid and group gid; the number of
 * threads seen. */
static int check_threads(long uid, long gid, const char *who)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		fail("opendir /proc/self/task");
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		long u = effective_id(e->d_name, "Uid:"), g = effective_id(e->d_name, "Gid:");
		/* a SIGEV_THREAD callback thread glibc starts while the broadcast
		 * runs may keep the old IDs until it ends, a moment later (seen
		 * without ckrun too): looked at again for up to 1 s */
		for (int again = 0; again < 50 && u != -2 && g != -2 && (u != uid || g != gid); again++) {
			pace_ms(20);
			u = effective_id(e->d_name, "Uid:");
			g = effective_id(e->d_name, "Gid:");
		}
		if (u == -2 || g == -2)
			continue;
		if (u != uid || g != gid) {
			printf("FAIL: %s: thread %s runs as user %ld group %ld, not %ld %ld\n", who, e->d_name, u, g, uid, gid);
			fflush(stdout);
			_exit(1);
		}
		n++;
	}
	closedir(d);
	return n;
}

static void *spin(void *arg)
{
	(void)arg;
	while (!stop_spinners)
		pace_ms(5);
	return 0;
}

static void on_tick(union sigval v)
{
	(void)v;
	ticks++;
}

static void start_thread(pthread_t *t)
{
	if (pthread_create(t, 0, spin, 0) != 0)
		fail("pthread_create");
}

static void set_effective(uid_t uid, gid_t gid)
{
	/* the group first while still root; back to root: the user first */
	if (uid != 0) {
		if (setresgid((gid_t)-1, gid, (gid_t)-1) != 0 || setresuid((uid_t)-1, uid, (uid_t)-1) != 0)
			fail("setresgid/setresuid");
	} else if (setresuid((uid_t)-1, uid, (uid_t)-1) != 0 || setresgid((gid_t)-1, gid, (gid_t)-1) != 0) {
		fail("setresuid/setresgid back to root");
	}
}

/* A forked child of a multithreaded parent: its own threads and its own
 * setxid broadcast. */
static void child_setxid(void)
{
	pid_t c = fork();
	if (c < 0)
		fail("fork");
	if (c == 0) {
		pthread_t t;
		start_thread(&t);
		if (setresuid((uid_t)-1, 4444, (uid_t)-1) != 0)
			fail("child: setresuid");
		int n = check_threads(4444, 0, "child");
		stop_spinners = 1;
		pthread_join(t, 0);
		_exit(n == 2 ? 0 : 3);
	}
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("the forked child's threads did not all change their user");
	say("child: both threads run as user 4444");
}

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 130;
	if (geteuid() != 0)
		fail("setxid runs as root");
	struct aioinit ai;
	memset(&ai, 0, sizeof ai);
	ai.aio_threads = 1;
	ai.aio_num = 1;
	ai.aio_idle_time = 3600; /* the worker stays */
	aio_init(&ai);
	int p[2];
	if (pipe(p) != 0)
		fail("pipe");
	static char in[8];
	struct aiocb cb;
	memset(&cb, 0, sizeof cb);
	cb.aio_fildes = p[0];
	cb.aio_buf = in;
	cb.aio_nbytes = sizeof in;
	cb.aio_sigevent.sigev_notify = SIGEV_NONE;
	if (aio_read(&cb) != 0)
		fail("aio_read");

	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_THREAD;
	ev.sigev_notify_function = on_tick;
	timer_t tick;
	if (timer_create(CLOCK_MONOTONIC, &ev, &tick) != 0)
		fail("timer_create");
	struct itimerspec its = {{0, 10000000}, {0, 10000000}};
	if (timer_settime(tick, 0, &its, 0) != 0)
		fail("timer_settime");

	pthread_t t[3];
	start_thread(&t[0]);
	start_thread(&t[1]);
	long uid = 0, gid = 0;
	for (int step = 1; step <= steps; step++) {
		if (step == 30) {
			set_effective(4343, 4242);
			uid = 4343;
			gid = 4242;
			say("effective user 4343 group 4242");
		} else if (step == 50) {
			start_thread(&t[2]);
			say("a third thread");
		} else if (step == 100) {
			set_effective(0, 0);
			uid = gid = 0;
			say("effective user 0 group 0");
		} else if (step == 110) {
			child_setxid();
		}
		int n = check_threads(uid, gid, "parent");
		/* main, two pthreads, the timer thread, the AIO worker (and one more from step 50) */
		int want = step >= 50 ? 6 : 5;
		if (step > 5 && n < want) {
			printf("FAIL: step %d: %d threads, expected at least %d\n", step, n, want);
			fflush(stdout);
			_exit(1);
		}
		say("step %d", step);
		pace_ms(PACE_MS);
	}
	if (write(p[1], "finished", 8) != 8)
		fail("write");
	const struct aiocb *list[1] = {&cb};
	while (aio_error(&cb) == EINPROGRESS)
		aio_suspend(list, 1, 0);
	if (aio_return(&cb) != 8 || memcmp(in, "finished", 8) != 0)
		fail("the aio_read in flight did not complete with the pipe's bytes");
	if (ticks == 0)
		fail("the timer never fired");
	stop_spinners = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], 0);
	say("setxid: done");
	return 0;
}
