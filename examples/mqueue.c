/*
 * A POSIX message queue across a checkpoint (test/files-kinds.test.ts).
 *
 *   mqueue DIR NAME   opens the queue NAME (8 messages of 64 bytes at
 *                     most, mode 0640) read-write, and a second, separate
 *                     description write-only and O_NONBLOCK; sends four
 *                     messages of three priorities; counts steps, checking
 *                     at every step the attributes each description shows;
 *                     when DIR/release exists it receives the messages,
 *                     which must come in priority order, each priority in
 *                     the order sent, then removes the queue.
 *                     Also a second queue, NAME-gone (4 messages of 32
 *                     bytes, mode 0600), opened twice (read-write, and
 *                     read-only O_NONBLOCK), given two messages and removed
 *                     (mq_unlink) while open: at every step its name must
 *                     stay free, /proc must show "NAME-gone (deleted)" and
 *                     each description its attributes; at release its
 *                     messages must come in priority order.
 */
#include "common.h"

#include <fcntl.h>
#include <mqueue.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
	const char *text;
	unsigned prio;
} SENT[] = {{"low-1", 1}, {"high-1", 5}, {"low-2", 1}, {"mid-1", 3}};
static const char *const ORDER[] = {"high-1", "mid-1", "low-1", "low-2"};

static void check_gone(long step, const char *what, const char *gone, mqd_t m, long flags)
{
	struct mq_attr a;
	if (mq_getattr(m, &a) != 0 || a.mq_maxmsg != 4 || a.mq_msgsize != 32 || a.mq_curmsgs != 2 || a.mq_flags != flags)
		say("FAIL: step %ld: removed queue, %s: maxmsg %ld msgsize %ld curmsgs %ld flags %#lx", step, what, a.mq_maxmsg,
		    a.mq_msgsize, a.mq_curmsgs, a.mq_flags);
	char proc[64], link[600], want[600];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", (int)m);
	ssize_t n = readlink(proc, link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	snprintf(want, sizeof want, "%s (deleted)", gone);
	if (strcmp(link, want) != 0)
		say("FAIL: step %ld: removed queue, %s: /proc shows \"%s\"", step, what, link);
	struct stat st;
	if (fstat(m, &st) != 0 || (st.st_mode & 0777) != 0600)
		say("FAIL: step %ld: the removed queue's mode is %o", step, st.st_mode & 0777);
}

static void check(long step, const char *what, mqd_t m, long flags)
{
	struct mq_attr a;
	if (mq_getattr(m, &a) != 0 || a.mq_maxmsg != 8 || a.mq_msgsize != 64 || a.mq_curmsgs != 4 || a.mq_flags != flags)
		say("FAIL: step %ld: %s: maxmsg %ld msgsize %ld curmsgs %ld flags %#lx", step, what, a.mq_maxmsg, a.mq_msgsize,
		    a.mq_curmsgs, a.mq_flags);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mqueue DIR NAME\n");
		return 2;
	}
	const char *name = argv[2];
	struct mq_attr attr = {.mq_maxmsg = 8, .mq_msgsize = 64};
	mq_unlink(name);
	mode_t old = umask(0);
	mqd_t m = mq_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0640, &attr);
	umask(old);
	mqd_t wr = mq_open(name, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (m < 0 || wr < 0)
		return say("error: mq_open %s: %s", name, strerror(errno)), 2;
	for (size_t i = 0; i < sizeof SENT / sizeof SENT[0]; i++)
		if (mq_send(wr, SENT[i].text, strlen(SENT[i].text), SENT[i].prio) != 0)
			return say("error: mq_send: %s", strerror(errno)), 2;
	char gone[300];
	snprintf(gone, sizeof gone, "%s-gone", name);
	struct mq_attr gattr = {.mq_maxmsg = 4, .mq_msgsize = 32};
	mq_unlink(gone);
	umask(0);
	mqd_t g = mq_open(gone, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &gattr);
	umask(old);
	mqd_t gro = mq_open(gone, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (g < 0 || gro < 0 || mq_send(g, "gone-low", 8, 2) != 0 || mq_send(g, "gone-high", 9, 7) != 0 || mq_unlink(gone) != 0)
		return say("error: the queue %s: %s", gone, strerror(errno)), 2;
	say("mqueue: set up");
	char release[4096];
	snprintf(release, sizeof release, "%s/release", argv[1]);
	for (long step = 1;; step++) {
		pace_ms(30);
		check(step, "read-write description", m, 0);
		check(step, "write-only description", wr, O_NONBLOCK);
		struct stat st;
		if (fstat(m, &st) != 0 || (st.st_mode & 0777) != 0640)
			say("FAIL: step %ld: the queue's mode is %o", step, st.st_mode & 0777);
		check_gone(step, "read-write description", gone, g, 0);
		check_gone(step, "read-only description", gone, gro, O_NONBLOCK);
		mqd_t again = mq_open(gone, O_RDONLY | O_CLOEXEC);
		if (again >= 0 || errno != ENOENT)
			say("FAIL: step %ld: the removed queue's name %s exists again", step, gone);
		say("step %ld", step);
		if (access(release, F_OK) == 0)
			break;
	}
	for (int i = 0; i < 4; i++) {
		char buf[64];
		unsigned prio;
		ssize_t n = mq_receive(m, buf, sizeof buf, &prio);
		if (n < 0 || (size_t)n != strlen(ORDER[i]) || memcmp(buf, ORDER[i], (size_t)n))
			say("FAIL: message %d is \"%.*s\" (priority %u), expected %s", i, n > 0 ? (int)n : 0, buf, prio, ORDER[i]);
	}
	say("mqueue: messages kept in order");
	static const char *const GONE_ORDER[] = {"gone-high", "gone-low"};
	for (int i = 0; i < 2; i++) {
		char buf[32];
		ssize_t n = mq_receive(gro, buf, sizeof buf, 0);
		if (n < 0 || (size_t)n != strlen(GONE_ORDER[i]) || memcmp(buf, GONE_ORDER[i], (size_t)n))
			say("FAIL: removed queue: message %d is \"%.*s\", expected %s", i, n > 0 ? (int)n : 0, buf, GONE_ORDER[i]);
	}
	char extra[32];
	if (mq_receive(gro, extra, sizeof extra, 0) >= 0 || errno != EAGAIN)
		say("FAIL: removed queue: a third message, or not O_NONBLOCK (%s)", strerror(errno));
	else
		say("mqueue: removed queue kept its messages");
	mq_unlink(name);
	say("mqueue: done");
	return 0;
}
