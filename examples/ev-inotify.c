/*
 * ev-inotify: an inotify descriptor whose watch numbers have a gap.
 * Watches are added on ino-a (1), ino-b (2), ino-a removed, ino-c (3) and
 * ino-c/file (4), by relative paths; so the watches that exist are 2, 3
 * and 4, and the next one the kernel gives is 5. Every step creates
 * ino-b/f<step> and touches ino-c/file, and must read both events, with
 * watch numbers 2 and 4 and the right name, within 1 s; nothing may be
 * reported for ino-a. Events queued but not read when a checkpoint is
 * taken are not restored (the queue starts empty): a step whose events do
 * not come within 1 s makes them happen once more before failing. At step 120 a new watch on ino-d must get number 5.
 * A failed check prints "FAIL: ..." and exits 1.
 */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define STEPS 160
#define PACE_MS 25

static void fail(const char *what, long a, long b)
{
	printf("FAIL: %s (%ld, %ld; errno %s)\n", what, a, b, errname(errno));
	fflush(stdout);
	exit(1);
}

static int watch(int fd, const char *path, uint32_t mask)
{
	int wd = inotify_add_watch(fd, path, mask);
	if (wd < 0)
		die(path);
	return wd;
}

/* Reads events until both wanted ones came (0) or 1 s passed (-1). */
static int expect_events(int fd, int wd_dir, const char *name, int wd_file)
{
	int seen_dir = 0, seen_file = 0;
	char buf[4096] __attribute__((aligned(8)));
	while (!seen_dir || !seen_file) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 1000) != 1)
			return -1;
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0)
			fail("read of the inotify descriptor", n, 0);
		for (char *q = buf; q < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)q;
			if (ev->wd == wd_dir && (ev->mask & IN_CREATE) && ev->len && !strcmp(ev->name, name))
				seen_dir = 1;
			else if (ev->wd == wd_file && (ev->mask & IN_ATTRIB))
				seen_file = 1;
			else if (ev->wd != wd_dir && ev->wd != wd_file)
				fail("an event for an unexpected watch number", ev->wd, ev->mask);
			q += sizeof *ev + ev->len;
		}
	}
	return 0;
}

static void make_events(const char *path)
{
	unlink(path);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	if (fd < 0)
		die(path);
	close(fd);
	if (utimensat(AT_FDCWD, "ino-c/file", 0, 0) != 0)
		die("utimensat");
}

int main(void)
{
	const char *dirs[] = {"ino-a", "ino-b", "ino-c", "ino-d"};
	for (int i = 0; i < 4; i++)
		if (mkdir(dirs[i], 0755) != 0 && errno != EEXIST)
			die(dirs[i]);
	int f = open("ino-c/file", O_CREAT | O_WRONLY, 0644);
	if (f < 0)
		die("ino-c/file");
	close(f);
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (in < 0)
		die("inotify_init1");
	int wa = watch(in, "ino-a", IN_CREATE);
	int wb = watch(in, "ino-b", IN_CREATE);
	inotify_rm_watch(in, wa);
	int wc = watch(in, "ino-c", IN_DELETE);
	int wf = watch(in, "./ino-c/file", IN_ATTRIB);
	say("watches: a %d b %d c %d file %d", wa, wb, wc, wf);
	char drain[4096];
	while (read(in, drain, sizeof drain) > 0)
		; /* the IN_IGNORED of ino-a */
	for (int step = 1; step <= STEPS; step++) {
		char name[32], path[64];
		snprintf(name, sizeof name, "f%d", step);
		snprintf(path, sizeof path, "ino-b/%s", name);
		make_events(path);
		if (expect_events(in, wb, name, wf) != 0) {
			make_events(path);
			if (expect_events(in, wb, name, wf) != 0)
				fail("the inotify events of this step did not come within 1 s, twice", wb, wf);
		}
		if (step == 120)
			say("new watch on ino-d: %d", watch(in, "ino-d", IN_CREATE));
		say("step %d", step);
		pace_ms(PACE_MS);
	}
	say("ev-inotify: done");
	return 0;
}
