/*
 * ptypacket: a pseudo-terminal whose master is in packet mode (TIOCPKT,
 * as rlogind and DMTCP's pty1 have it), with bytes the slave wrote that
 * the master has not read. Every step checks the master still holds them
 * and is in packet mode; the last reads them: one data packet (a
 * TIOCPKT_DATA byte, then the bytes). A difference prints "FAIL ...".
 *
 *   ptypacket [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static const char SENT[] = "bytes in flight";

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master))
		die("the pseudo-terminal");
	int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	struct termios t;
	if (slave < 0 || tcgetattr(slave, &t))
		die("its slave");
	cfmakeraw(&t);
	int on = 1;
	if (tcsetattr(slave, TCSANOW, &t) || ioctl(master, TIOCPKT, &on))
		die("raw mode, packet mode");
	if (write(slave, SENT, strlen(SENT)) != (ssize_t)strlen(SENT))
		die("write to the slave");
	struct pollfd settle = {.fd = master, .events = POLLIN};
	if (poll(&settle, 1, 1000) != 1) /* they reach the master through the kernel's flush work */
		die("the bytes reaching the master");
	say("set up");
	for (long k = 1; k <= steps; k++) {
		int queued = -1, packet = -1;
		if (ioctl(master, FIONREAD, &queued) || queued != (int)strlen(SENT))
			say("FAIL step %ld: the master holds %d bytes, not %zu", k, queued, strlen(SENT));
		if (ioctl(master, TIOCGPKT, &packet) || packet != 1)
			say("FAIL step %ld: the master is not in packet mode (%d)", k, packet);
		say("step %ld", k);
		pace_ms(50);
	}
	char buf[64] = "";
	ssize_t n = read(master, buf, sizeof buf - 1);
	if (n != (ssize_t)strlen(SENT) + 1 || buf[0] != TIOCPKT_DATA || memcmp(buf + 1, SENT, strlen(SENT)))
		say("FAIL the master read %zd bytes: first %d, then \"%.*s\"", n, n > 0 ? buf[0] : -1, n > 1 ? (int)n - 1 : 0,
		    buf + 1);
	say("done");
	return 0;
}
