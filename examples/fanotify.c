/*
 * A fanotify descriptor across a checkpoint (test/files-kinds.test.ts).
 *
 *   fanotify DIR   a notification group (non-blocking) with a mark on DIR
 *                  for opens of its files; counts steps, checking at every
 *                  step that /proc/self/fdinfo shows the mark; when
 *                  DIR/release exists it opens DIR/probe and must read
 *                  that open from the group.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <unistd.h>

static int shows_mark(int fd)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	int found = 0;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "fanotify ino:", 13) && strstr(line, " mask:8000020 "))
			found = 1;
	if (f)
		fclose(f);
	return found;
}

/* Reads the queued events; whether one is an open of DIR/probe. */
static int saw_probe(int fd)
{
	char buf[8192], link[4096], proc[64];
	int seen = 0;
	for (int tries = 0; tries < 100 && !seen; tries++) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0) {
			pace_ms(10);
			continue;
		}
		for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			snprintf(proc, sizeof proc, "/proc/self/fd/%d", m->fd);
			ssize_t l = readlink(proc, link, sizeof link - 1);
			link[l > 0 ? l : 0] = 0;
			if ((m->mask & FAN_OPEN) && l > 6 && !strcmp(link + l - 6, "/probe"))
				seen = 1;
			if (m->fd >= 0)
				close(m->fd);
		}
	}
	return seen;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fanotify DIR\n");
		return 2;
	}
	int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY);
	if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN | FAN_EVENT_ON_CHILD, AT_FDCWD, argv[1]) != 0)
		return say("error: fanotify: %s", strerror(errno)), 2;
	say("fanotify: watching %s", argv[1]);
	char release[4096], probe[4096];
	snprintf(release, sizeof release, "%s/release", argv[1]);
	snprintf(probe, sizeof probe, "%s/probe", argv[1]);
	for (long step = 1;; step++) {
		pace_ms(30);
		if (!shows_mark(fd) || !(fcntl(fd, F_GETFL) & O_NONBLOCK))
			say("FAIL: step %ld: the fanotify mark or O_NONBLOCK is gone", step);
		say("step %ld", step);
		if (access(release, F_OK) == 0)
			break;
	}
	close(open(probe, O_CREAT | O_RDONLY | O_CLOEXEC, 0600));
	if (!saw_probe(fd))
		say("FAIL: no event for the open of %s", probe);
	else
		say("fanotify: the mark reports opens");
	say("fanotify: done");
	return 0;
}
