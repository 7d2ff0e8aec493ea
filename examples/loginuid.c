/*
 * loginuid: the audit login UID a process set (/proc/self/loginuid, as a
 * login program sets it for a session) comes back after a restart. The
 * program sets it to 4242 at start (a process may set its own once while
 * it is not set, and root may change it), then every step checks it is
 * still 4242. A difference prints "FAIL ...".
 *
 *   loginuid [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

#define LOGINUID "4242"

static long read_loginuid(void)
{
	char buf[32];
	int fd = open("/proc/self/loginuid", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return atol(buf);
}

int main(int argc, char **argv)
{
	long steps = 30;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	int fd = open("/proc/self/loginuid", O_WRONLY);
	if (fd < 0 || write(fd, LOGINUID, strlen(LOGINUID)) != (ssize_t)strlen(LOGINUID)) {
		say("FAIL cannot set /proc/self/loginuid (it takes an unset login UID, or root with CAP_AUDIT_CONTROL): %s",
		    strerror(errno));
		return 1;
	}
	close(fd);
	for (long k = 1; k <= steps; k++) {
		long now = read_loginuid();
		if (now != atol(LOGINUID)) {
			say("FAIL the login UID is %ld, not " LOGINUID, now);
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
