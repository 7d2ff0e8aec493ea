/*
 * guardpage: private anonymous memory of 8 pages, pages 2, 3 and 6 made
 * guard pages (madvise MADV_GUARD_INSTALL, Linux 6.13: touching them
 * raises SIGSEGV), the others filled with their marks; and a private
 * mapping of 4 pages of a file deleted since (saved whole), with its page
 * 1 guarded. Every step checks the marks and that every guard page still
 * faults. A difference prints "FAIL ...". A checkpoint saves the guards
 * and a restart puts them back.
 *
 * With --beyond-eof, no guard pages: a file of one page, deleted, mapped
 * privately over two pages (the second, beyond the end of the file, raises
 * SIGBUS); every step checks the first page and that the second faults.
 *
 *   guardpage [--steps N] [--beyond-eof]    prints "step K" per step, then "done"
 */
#include "common.h"
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#define PAGE 4096UL

static sigjmp_buf back;

static void on_fault(int sig)
{
	(void)sig;
	siglongjmp(back, 1);
}

static int faults(volatile char *p)
{
	if (sigsetjmp(back, 1))
		return 1;
	(void)*p;
	return 0;
}

static int beyond_eof(long steps)
{
	char path[] = "/tmp/ckrun-guardpage-XXXXXX";
	int fd = mkstemp(path);
	char page[PAGE];
	memset(page, 'z', PAGE);
	if (fd < 0 || write(fd, page, PAGE) != (ssize_t)PAGE)
		die("the file");
	char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		die("mmap");
	close(fd);
	unlink(path);
	m[1] = 'y';
	say("mapped");
	for (long k = 1; k <= steps; k++) {
		if (m[0] != 'z' || m[1] != 'y' || m[PAGE - 1] != 'z') {
			say("FAIL the first page changed");
			return 1;
		}
		if (!faults(m + PAGE)) {
			say("FAIL the page beyond the end of the file can be read");
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}

int main(int argc, char **argv)
{
	long steps = 40;
	int beyond = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atol(argv[++i]);
		else if (!strcmp(argv[i], "--beyond-eof"))
			beyond = 1;
	}
	signal(SIGSEGV, on_fault);
	signal(SIGBUS, on_fault);
	if (beyond)
		return beyond_eof(steps);
	char *m = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char path[] = "/tmp/ckrun-guardfile-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, 4 * PAGE) != 0)
		die("the file");
	char *f = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED || f == MAP_FAILED)
		die("mmap");
	close(fd);
	unlink(path);
	for (int i = 0; i < 8; i++)
		memset(m + i * PAGE, 'a' + i, PAGE);
	for (int i = 0; i < 4; i++)
		memset(f + i * PAGE, 'A' + i, PAGE);
	if (madvise(m + 2 * PAGE, 2 * PAGE, MADV_GUARD_INSTALL) || madvise(m + 6 * PAGE, PAGE, MADV_GUARD_INSTALL) ||
	    madvise(f + PAGE, PAGE, MADV_GUARD_INSTALL))
		die("madvise(MADV_GUARD_INSTALL) (needs Linux 6.13)");
	say("guarded");
	for (long k = 1; k <= steps; k++) {
		for (int i = 0; i < 8; i++) {
			int guard = i == 2 || i == 3 || i == 6;
			if (guard ? !faults(m + i * PAGE) : m[i * PAGE] != 'a' + i || m[i * PAGE + PAGE - 1] != 'a' + i) {
				say(guard ? "FAIL guard page %d can be read" : "FAIL page %d lost its mark", i);
				return 1;
			}
		}
		for (int i = 0; i < 4; i++) {
			int guard = i == 1;
			if (guard ? !faults(f + i * PAGE) : f[i * PAGE] != 'A' + i || f[i * PAGE + PAGE - 1] != 'A' + i) {
				say(guard ? "FAIL guard page %d of the file mapping can be read" : "FAIL page %d of the file mapping lost its mark", i);
				return 1;
			}
		}
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
