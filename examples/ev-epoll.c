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
 *   re-arms it with EPOLL_CTL_MOD, after which it must be reported;
 * - numbers no longer theirs: pipe A added as descriptor 40 (a duplicate)
 *   which is then closed (data 0x4444), pipe B then added under that same
 *   number 40, which stays open (0x5555), pipe C added as 41 whose number
 *   then goes to an always-readable eventfd that is not in the list
 *   (0x6666): each is reported exactly when a byte waits in its own pipe;
 * - many: 1000 eventfds in a second epoll, data 0x10000 + i (an interest
 *   list longer than 64 KiB of fdinfo, more descriptors than 900): every
 *   step one gets a count and must be reported alone, with its data.
 * A failed check prints "FAIL: ..." and exits 1.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/resource.h>
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
		switch (evs[i].data.u64) {
		case 0x1111: r |= 1; break;
		case 0x2222: r |= 2; break;
		case 0x3333: r |= 4; break;
		case 0x4444: r |= 16; break;
		case 0x5555: r |= 32; break;
		case 0x6666: r |= 64; break;
		default: r |= 8;
		}
	if (r & 8)
		fail("epoll reported unknown data", (unsigned long long)r);
	return r;
}

/* The pipes added under numbers that no longer refer to them. */
static int hidden[3][2];

static void add_under(int ep, int fd, int number, uint64_t data)
{
	if (dup2(fd, number) != number)
		die("dup2");
	add(ep, number, EPOLLIN, data);
}

static void add_hidden(int ep)
{
	for (int i = 0; i < 3; i++)
		if (pipe2(hidden[i], O_NONBLOCK) != 0)
			die("pipe2");
	add_under(ep, hidden[0][0], 40, 0x4444);
	close(40);
	add_under(ep, hidden[1][0], 40, 0x5555);
	close(hidden[1][0]);
	hidden[1][0] = 40;
	add_under(ep, hidden[2][0], 41, 0x6666);
	int ev = eventfd(1, EFD_NONBLOCK);
	if (ev < 0 || dup2(ev, 41) != 41)
		die("eventfd at 41");
	close(ev);
}

/* Every step one of the hidden pipes gets a byte: exactly its bit is
 * reported, and none once the byte is read. */
static void check_hidden(int ep, int step)
{
	int which = step % 3, bit = 16 << which;
	char c = 'h';
	if (ready(ep, 0) & 0x70)
		fail("a pipe added under a number no longer its was reported with nothing to read", (unsigned long long)step);
	if (write(hidden[which][1], &c, 1) != 1)
		fail("write to a hidden pipe", (unsigned long long)which);
	int r = ready(ep, 1000);
	if ((r & 0x70) != bit)
		fail("a pipe added under a number no longer its was not reported alone", (unsigned long long)r);
	if (read(hidden[which][0], &c, 1) != 1)
		fail("read from a hidden pipe", (unsigned long long)which);
}

#define MANY 1000
static int many[MANY];

static int add_many(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max < MANY + 200)
		fail("RLIMIT_NOFILE's hard limit is below what this program needs", (unsigned long long)rl.rlim_max);
	rl.rlim_cur = MANY + 200;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("setrlimit");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < MANY; i++) {
		if ((many[i] = eventfd(0, EFD_NONBLOCK)) < 0)
			die("eventfd");
		add(ep, many[i], EPOLLIN, 0x10000 + (uint64_t)i);
	}
	return ep;
}

static void check_many(int ep, int step)
{
	int k = (step * 37) % MANY;
	uint64_t one = 1, v;
	struct epoll_event evs[8];
	if (write(many[k], &one, sizeof one) != sizeof one)
		fail("write to one of the many eventfds", (unsigned long long)k);
	int n = epoll_wait(ep, evs, 8, 1000);
	if (n != 1 || evs[0].data.u64 != 0x10000 + (uint64_t)k)
		fail("one of the many eventfds was not reported alone", (unsigned long long)k);
	if (read(many[k], &v, sizeof v) != sizeof v || v != 1)
		fail("read from one of the many eventfds", (unsigned long long)k);
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
	add_hidden(ep);
	int ep_many = add_many();
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
		check_hidden(ep, step);
		check_many(ep_many, step);
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
