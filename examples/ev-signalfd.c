/*
 * ev-signalfd: a signalfd for SIGUSR1 and SIGRTMIN+2 (both blocked),
 * SFD_NONBLOCK. Every step sends one of them to the process and reads it
 * back from the signalfd within 1 s; every 10th step the mask the kernel
 * holds (/proc/self/fdinfo "sigmask:") must be exactly those two signals
 * (ckrun's own signal never appears in it). A signal pending at the
 * checkpoint comes back without its sigqueue value, so the value is
 * checked only when the signal still says SI_QUEUE. A failed check prints
 * "FAIL: ..." and exits 1.
 */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define STEPS 160
#define PACE_MS 25

static void fail(const char *what)
{
	printf("FAIL: %s (errno %s)\n", what, errname(errno));
	fflush(stdout);
	exit(1);
}

static uint64_t kernel_mask(int fd)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "r");
	if (!f)
		fail("open fdinfo");
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strstr(buf, "sigmask:");
	if (!p)
		fail("no sigmask in fdinfo");
	return strtoull(p + 8, 0, 16);
}

int main(void)
{
	int rt = SIGRTMIN + 2;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, rt);
	if (sigprocmask(SIG_BLOCK, &set, 0) != 0)
		die("sigprocmask");
	int sfd = signalfd(-1, &set, SFD_NONBLOCK);
	if (sfd < 0)
		die("signalfd");
	uint64_t want = (1ULL << (SIGUSR1 - 1)) | (1ULL << (rt - 1));
	unsigned got_usr1 = 0, got_rt = 0;
	for (int step = 1; step <= STEPS; step++) {
		int sig = step % 2 ? SIGUSR1 : rt;
		if (sig == rt) {
			union sigval v = {.sival_int = step};
			sigqueue(getpid(), rt, v);
		} else {
			kill(getpid(), sig);
		}
		struct pollfd p = {sfd, POLLIN, 0};
		if (poll(&p, 1, 1000) != 1)
			fail("the signal sent was not readable from the signalfd within 1 s");
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof si) != sizeof si)
			fail("read of the signalfd");
		if ((int)si.ssi_signo != sig || (si.ssi_code == SI_QUEUE && si.ssi_int != step))
			fail("the signalfd returned another signal than the one sent");
		if (sig == rt)
			got_rt++;
		else
			got_usr1++;
		if (step % 10 == 0) {
			if (kernel_mask(sfd) != want)
				fail("the signalfd's mask is not exactly SIGUSR1 and SIGRTMIN+2");
			if (!(fcntl(sfd, F_GETFL) & O_NONBLOCK))
				fail("the signalfd lost O_NONBLOCK");
		}
		say("step %d", step);
		pace_ms(PACE_MS);
	}
	say("received: usr1 %u rt %u", got_usr1, got_rt);
	say("ev-signalfd: done");
	return 0;
}
