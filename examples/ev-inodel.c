/*
 * ev-inodel: an inotify watch on a file that was then deleted while the
 * program keeps it open (CRIU's zdtm inotify00): the watch holds only the
 * inode, which no path names any more. Every step writes a byte through
 * the descriptor and must read IN_MODIFY for that watch within 1 s.
 *
 *   ev-inodel DIR [--steps S]     prints "step K", then "done"; FAIL and exit 1
 */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

static void drain(int in)
{
	char buf[4096];
	while (read(in, buf, sizeof buf) > 0)
		;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int steps = 80;
	if (argc == 4 && !strcmp(argv[2], "--steps"))
		steps = atoi(argv[3]);
	char path[4096];
	snprintf(path, sizeof path, "%s/watched", argv[1]);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	int in = inotify_init1(IN_NONBLOCK);
	int wd = in < 0 ? -1 : inotify_add_watch(in, path, IN_MODIFY);
	if (fd < 0 || wd < 0 || unlink(path))
		die("setting up");
	drain(in);
	for (int s = 1; s <= steps; s++) {
		if (write(fd, "x", 1) != 1)
			die("write");
		struct pollfd p = {.fd = in, .events = POLLIN};
		struct inotify_event ev;
		if (poll(&p, 1, 1000) != 1 || read(in, &ev, sizeof ev) != (ssize_t)sizeof ev || ev.wd != wd ||
		    !(ev.mask & IN_MODIFY)) {
			say("FAIL step %d: no IN_MODIFY for watch %d on the deleted file", s, wd);
			return 1;
		}
		drain(in);
		say("step %d", s);
		pace_ms(25);
	}
	say("done");
	return 0;
}
