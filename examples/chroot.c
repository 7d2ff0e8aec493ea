/*
 * A process in a chroot (test/files-kinds.test.ts): ckrun must refuse to
 * checkpoint it (the paths it sees name other files outside), and the
 * program must run on.
 *
 *   chroot DIR   in a mount namespace of its own, mounts /proc at
 *                DIR/jail/proc, chroots into DIR/jail and counts steps
 *                until DIR/jail/release exists.
 */
#include "common.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: chroot DIR\n");
		return 2;
	}
	char jail[3000], proc[3100];
	snprintf(jail, sizeof jail, "%s/jail", argv[1]);
	snprintf(proc, sizeof proc, "%s/proc", jail);
	mkdir(jail, 0755);
	mkdir(proc, 0755);
	if (unshare(CLONE_NEWNS) != 0 || mount(0, "/", 0, MS_REC | MS_PRIVATE, 0) != 0 || mount("proc", proc, "proc", 0, 0) != 0 ||
	    chroot(jail) != 0 || chdir("/") != 0)
		return say("error: setting up the chroot: %s", strerror(errno)), 2;
	say("chroot: in %s", jail);
	for (long step = 1;; step++) {
		pace_ms(30);
		say("step %ld", step);
		if (access("/release", F_OK) == 0)
			break;
	}
	say("chroot: done");
	return 0;
}
