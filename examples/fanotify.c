/*
 * A fanotify descriptor (test/files-kinds.test.ts): ckrun refuses to
 * checkpoint it, naming the descriptor, and the program runs on.
 *
 *   fanotify DIR   watches DIR for opens and counts steps until
 *                  DIR/release exists.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fanotify DIR\n");
		return 2;
	}
	int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY);
	if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN | FAN_EVENT_ON_CHILD, AT_FDCWD, argv[1]) != 0)
		return say("error: fanotify: %s", strerror(errno)), 2;
	say("fanotify: watching %s", argv[1]);
	char release[4096];
	snprintf(release, sizeof release, "%s/release", argv[1]);
	for (long step = 1;; step++) {
		pace_ms(30);
		say("step %ld", step);
		if (access(release, F_OK) == 0)
			break;
	}
	say("fanotify: done");
	return 0;
}
