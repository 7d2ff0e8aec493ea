/*
 * devnull: /dev/null opened for writing and /dev/zero for reading by the
 * program itself, used at every step (zdtm aio01 writes to its own
 * /dev/null). When ckrun's own stdin is /dev/null too, these are still the
 * program's devices with its access modes, not the session's stdin.
 *
 *   devnull [--steps S]     prints "step K", then "done"; FAIL and exit 1
 */
#include "common.h"

#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int steps = 60;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atoi(argv[2]);
	int null = open("/dev/null", O_WRONLY), zero = open("/dev/zero", O_RDONLY);
	if (null < 0 || zero < 0)
		die("open");
	for (int s = 1; s <= steps; s++) {
		char b[8] = "xxxxxxx";
		if (write(null, "step\n", 5) != 5 || read(zero, b, sizeof b) != (ssize_t)sizeof b || b[3] != 0 ||
		    (fcntl(null, F_GETFL) & O_ACCMODE) != O_WRONLY || (fcntl(zero, F_GETFL) & O_ACCMODE) != O_RDONLY) {
			say("FAIL step %d: /dev/null or /dev/zero is not as the program opened it: %s", s, strerror(errno));
			return 1;
		}
		say("step %d", s);
		pace_ms(30);
	}
	say("done");
	return 0;
}
