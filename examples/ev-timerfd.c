/*
 * ev-timerfd: timerfds across checkpoint/restart, each checked by the
 * program itself (a failed check prints "FAIL: ..." and exits 1).
 *
 * - tick: CLOCK_MONOTONIC, TFD_NONBLOCK|TFD_CLOEXEC, every 20 ms; every
 *   10th step a blocking wait (poll) for its next expiration must end
 *   within 1 s (the interval keeps going), and its flags must still be set;
 * - once: a relative one-shot of 1.5 s that must fire exactly once and, by
 *   its own remaining time, never move later (time spent checkpointed is
 *   not counted: the remaining time is honoured);
 * - unread: a one-shot of 1 ms, expired at step 1 and read only at the end:
 *   the expiration counted before the checkpoints must still be there;
 * - wall: CLOCK_REALTIME with TFD_TIMER_ABSTIME, 2 s after the start: it
 *   must never fire before its wall-clock deadline.
 * Output: "step N" lines and a summary, the same in every run.
 */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define STEPS 160
#define PACE_MS 25

static void fail(const char *what)
{
	printf("FAIL: %s (errno %s)\n", what, errname(errno));
	fflush(stdout);
	exit(1);
}

static int arm(int clock, int flags, long value_ms, long interval_ms, int setflags, struct timespec *abs_at)
{
	int fd = timerfd_create(clock, flags);
	if (fd < 0)
		die("timerfd_create");
	struct itimerspec its = {{interval_ms / 1000, interval_ms % 1000 * 1000000L}, {value_ms / 1000, value_ms % 1000 * 1000000L}};
	if (abs_at)
		its.it_value = *abs_at;
	if (timerfd_settime(fd, setflags, &its, 0) != 0)
		die("timerfd_settime");
	return fd;
}

static uint64_t expirations(int fd)
{
	uint64_t n = 0;
	if (read(fd, &n, sizeof n) != sizeof n && errno != EAGAIN)
		fail("read of a timerfd");
	return n;
}

static long remaining_ms(int fd)
{
	struct itimerspec cur;
	if (timerfd_gettime(fd, &cur) != 0)
		fail("timerfd_gettime");
	return cur.it_value.tv_sec * 1000 + cur.it_value.tv_nsec / 1000000;
}

int main(void)
{
	struct timespec now, deadline;
	clock_gettime(CLOCK_REALTIME, &now);
	deadline = now;
	deadline.tv_sec += 2;
	int tick = arm(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC, 20, 20, 0, 0);
	int once = arm(CLOCK_MONOTONIC, TFD_NONBLOCK, 1500, 0, 0, 0);
	int unread = arm(CLOCK_BOOTTIME, TFD_NONBLOCK, 1, 0, 0, 0);
	int wall = arm(CLOCK_REALTIME, TFD_NONBLOCK, 0, 0, TFD_TIMER_ABSTIME, &deadline);
	uint64_t once_fired = 0, wall_fired = 0;
	long once_left = remaining_ms(once);
	for (int step = 1; step <= STEPS; step++) {
		expirations(tick);
		if (step % 10 == 0) {
			struct pollfd p = {tick, POLLIN, 0};
			if (poll(&p, 1, 1000) != 1)
				fail("the 20 ms interval timerfd did not fire within 1 s");
			if (!(fcntl(tick, F_GETFL) & O_NONBLOCK) || !(fcntl(tick, F_GETFD) & FD_CLOEXEC))
				fail("the interval timerfd lost O_NONBLOCK or FD_CLOEXEC");
			struct itimerspec cur;
			timerfd_gettime(tick, &cur);
			if (cur.it_interval.tv_sec != 0 || cur.it_interval.tv_nsec != 20000000)
				fail("the interval timerfd's interval changed");
		}
		if (!once_fired) {
			long left = remaining_ms(once);
			once_fired = expirations(once);
			if (!once_fired && left > once_left + 5)
				fail("the one-shot timerfd's remaining time grew");
			once_left = left;
		} else if (expirations(once)) {
			fail("the one-shot timerfd fired twice");
		}
		uint64_t w = expirations(wall);
		if (w) {
			clock_gettime(CLOCK_REALTIME, &now);
			if (now.tv_sec < deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec < deadline.tv_nsec))
				fail("the absolute CLOCK_REALTIME timerfd fired before its deadline");
			wall_fired += w;
		}
		say("step %d", step);
		pace_ms(PACE_MS);
	}
	struct pollfd p = {once, POLLIN, 0};
	if (!once_fired && poll(&p, 1, 3000) == 1)
		once_fired = expirations(once);
	say("once: fired %" PRIu64, once_fired);
	say("unread: %" PRIu64 " expiration kept", expirations(unread));
	p.fd = wall;
	if (!wall_fired && poll(&p, 1, 3000) == 1)
		wall_fired = expirations(wall);
	say("wall: fired %s", wall_fired ? "yes" : "no");
	say("ev-timerfd: done");
	return 0;
}
