/*
 * ev-epoll: an epoll descriptor and eventfds across checkpoint/restart.
 * - counter: an eventfd that every step adds the step number to and every
 *   10th step reads: the read must be exactly the sum of those steps
 *   (the counter is intact);
 * - level: an eventfd holding 1, never read, in the interest list level-
 *   triggered with data 0x1111: every epoll_wait must report it;
 * - edge: a pipe in the list with EPOLLET, data 0x2222: every 5th step a
 *   byte is written and must be reported (a new edge) within 1 s;
 * - once: an eventfd with EPOLLONESHOT, data 0x3333: reported once at the
 *   start, then disabled: it must never be reported again, until step 150
 *   re-arms it with EPOLL_CTL_MOD, after which it must be reported.
 * A failed check prints "FAIL: ..." and exits 1.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define STEPS 160
#define PACE_MS 25

static void fail(const char *what, unsigned long long a)
{
	printf("FAIL: %s (%llu; errno %s)\n", what, a, errname(errno));
	fflush(stdout);
	exit(1);
}

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = {.events = events, .data.u64 = data};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		die("epoll_ctl");
}

/* Which of the three data values epoll reports now (bits 1, 2, 4). */
static int ready(int ep, int timeout_ms)
{
	struct epoll_event evs[8];
	int n = epoll_wait(ep, evs, 8, timeout_ms), r = 0;
	if (n < 0 && errno != EINTR)
		fail("epoll_wait", 0);
	for (int i = 0; i < n; i++)
		r |= evs[i].data.u64 == 0x1111 ? 1 : evs[i].data.u64 == 0x2222 ? 2 : evs[i].data.u64 == 0x3333 ? 4 : 8;
	if (r & 8)
		fail("epoll reported unknown data", (unsigned long long)r);
	return r;
}

int main(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int counter = eventfd(0, EFD_NONBLOCK);
	int level = eventfd(1, EFD_NONBLOCK);
	int once = eventfd(1, EFD_NONBLOCK);
	int p[2];
	if (ep < 0 || counter < 0 || level < 0 || once < 0 || pipe2(p, O_NONBLOCK) != 0)
		die("setup");
	add(ep, level, EPOLLIN, 0x1111);
	add(ep, p[0], EPOLLIN | EPOLLET, 0x2222);
	add(ep, once, EPOLLIN | EPOLLONESHOT, 0x3333);
	if (!(ready(ep, 0) & 4))
		fail("the one-shot eventfd was not reported at first", 0);
	unsigned long long sum = 0;
	for (int step = 1; step <= STEPS; step++) {
		uint64_t add_n = (uint64_t)step;
		if (write(counter, &add_n, sizeof add_n) != sizeof add_n)
			fail("write to the counter eventfd", 0);
		sum += add_n;
		if (step % 10 == 0) {
			uint64_t v = 0;
			if (read(counter, &v, sizeof v) != sizeof v || v != sum)
				fail("the counter eventfd lost its count", v);
			sum = 0;
		}
		int r = ready(ep, 0);
		if (!(r & 1))
			fail("the level-triggered eventfd is not reported", (unsigned long long)r);
		if ((r & 4) && step < 150)
			fail("the disabled one-shot eventfd was reported", (unsigned long long)step);
		if (step % 5 == 0) {
			char c = 'x', buf[64];
			if (write(p[1], &c, 1) != 1)
				fail("write to the pipe", 0);
			int got = 0;
			for (int i = 0; i < 100 && !got; i++)
				got = ready(ep, 10) & 2;
			if (!got)
				fail("the edge-triggered pipe was not reported after a write", (unsigned long long)step);
			while (read(p[0], buf, sizeof buf) > 0)
				if (step % 10)
					break; /* leave bytes sometimes: edges, not levels */
		}
		if (step == 150) {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 0x3333};
			if (epoll_ctl(ep, EPOLL_CTL_MOD, once, &ev) != 0 || !(ready(ep, 1000) & 4))
				fail("the re-armed one-shot eventfd was not reported", 0);
			say("one-shot re-armed and reported");
		}
		say("step %d", step);
		pace_ms(PACE_MS);
	}
	say("ev-epoll: done");
	return 0;
}
