/*
 * memcorners: corners of memory a restart must bring back as they were.
 *
 * Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS) of 64 pages
 * that a parent and its child both map, the parent only a part of it: it
 * unmaps the first page and the last 16 after the fork, so some pages of
 * the object live only in the child's mapping. Every page starts with its
 * own mark. Each step the child writes the step number into page 60 (only
 * it maps it) and page 30 (both do), and checks every page's mark and its
 * number; the parent checks the marks of the pages it maps and that the
 * child runs on.
 *
 * MAP_DROPPABLE memory (Linux 6.11; glibc 2.41 keeps getrandom's state in
 * it) in the parent: the kernel may drop its pages at any time (they read
 * as zero then) and wipes them in a forked child. Each step checks that it
 * is still droppable ("dp" in its VmFlags) and that each page holds its
 * mark or zeros, nothing else.
 *
 * A memfd of two pages mapped shared and privately (a private view) in the
 * parent: page 1 of the private view was written through it (its own
 * copy), page 0 was not, so it follows what the shared mapping writes.
 * Each step writes the step number through the shared mapping and checks
 * what the view shows, and that the memfd (its descriptor kept open) is
 * still 100 bytes short of two pages long.
 *
 * A difference prints "FAIL ..." (from either process).
 *
 * Each step line ends with the parent's descriptors as /proc/self/fd shows
 * them ("fds 0:/dev/null 1:pipe ..."), numbers of pipes and sockets left
 * out: a restart must bring back exactly the descriptors it had.
 *
 *   memcorners [--steps N]     prints "step K fds ..." per step, then "done"
 */
#include "common.h"
#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { PAGES = 64, PARENT_LAST = 48, CHILD_ONLY = 60, BOTH = 30 };
#define PAGE 4096UL

static uint64_t mark(int i)
{
	return splitmix64(0x5eed0000u + (uint64_t)i);
}

static uint64_t *page(char *m, int i)
{
	return (uint64_t *)(m + (size_t)i * PAGE);
}

static int marks_ok(char *m, int from, int to, const char *who)
{
	for (int i = from; i < to; i++)
		if (page(m, i)[0] != mark(i) || page(m, i)[511] != ~mark(i)) {
			say("FAIL %s: page %d of the shared memory lost its mark (%#" PRIx64 ")", who, i, page(m, i)[0]);
			return 0;
		}
	return 1;
}

#define DROPPABLE_PAGES 4

static int droppable_ok(const char *d)
{
	for (int i = 0; i < DROPPABLE_PAGES; i++) {
		const char *p = d + (size_t)i * PAGE;
		int all_mark = 1, all_zero = 1;
		for (size_t b = 0; b < PAGE; b++) {
			all_mark &= p[b] == (char)('A' + i);
			all_zero &= p[b] == 0;
		}
		if (!all_mark && !all_zero) {
			say("FAIL page %d of the MAP_DROPPABLE memory holds neither its mark nor zeros", i);
			return 0;
		}
	}
	char cmd[128], flags[512] = "";
	snprintf(cmd, sizeof cmd, "grep -A40 '^%lx-' /proc/%d/smaps | grep -m1 VmFlags", (unsigned long)d, (int)getpid());
	FILE *f = popen(cmd, "r");
	if (!f || !fgets(flags, sizeof flags, f) || !strstr(flags, " dp")) {
		say("FAIL the MAP_DROPPABLE memory is no longer droppable: %s", flags);
		if (f)
			pclose(f);
		return 0;
	}
	pclose(f);
	return 1;
}

/* "0:/dev/null 1:pipe ...", ascending, without the directory's own */
static void fd_list(char *out, size_t cap)
{
	int fds[256], n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d)) && n < 256)
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			fds[n++] = atoi(e->d_name);
	if (d)
		closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];
			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	size_t len = 0;
	out[0] = 0;
	for (int i = 0; i < n && len + 1 < cap; i++) {
		char path[64], link[256];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
		ssize_t l = readlink(path, link, sizeof link - 1);
		link[l > 0 ? l : 0] = 0;
		if (!strncmp(link, "pipe:[", 6) || !strncmp(link, "socket:[", 8))
			*strchr(link, ':') = 0;
		len += (size_t)snprintf(out + len, cap - len, "%s%d:%s", i ? " " : "", fds[i], link);
	}
}

static char *memfd_shared, *memfd_view;
static int memfd_fd;
#define MEMFD_SIZE (2 * PAGE - 100)

static void map_memfd_view(void)
{
	int fd = memfd_create("memcorners", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, MEMFD_SIZE))
		die("memfd");
	memfd_shared = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	memfd_view = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (memfd_shared == MAP_FAILED || memfd_view == MAP_FAILED)
		die("mmap of the memfd");
	memfd_fd = fd;
	strcpy(memfd_shared + PAGE, "the object's page 1");
	strcpy(memfd_view + PAGE, "the view's own page 1");
}

static int memfd_view_ok(long k)
{
	struct stat st;
	if (fstat(memfd_fd, &st) || st.st_size != (off_t)MEMFD_SIZE) {
		say("FAIL the memfd is %lld bytes long, not %lu", (long long)st.st_size, (unsigned long)MEMFD_SIZE);
		return 0;
	}
	snprintf(memfd_shared, PAGE, "step %ld through the shared mapping", k);
	char want[64];
	snprintf(want, sizeof want, "step %ld through the shared mapping", k);
	if (strcmp(memfd_view, want)) {
		say("FAIL the private view of the memfd no longer follows the object: \"%.40s\"", memfd_view);
		return 0;
	}
	if (strcmp(memfd_view + PAGE, "the view's own page 1") || strcmp(memfd_shared + PAGE, "the object's page 1")) {
		say("FAIL the memfd's page 1: view \"%.40s\", object \"%.40s\"", memfd_view + PAGE, memfd_shared + PAGE);
		return 0;
	}
	return 1;
}

static void child(char *m)
{
	/* until the parent, done, kills it (or ends) */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (long k = 1;; k++) {
		page(m, CHILD_ONLY)[1] = (uint64_t)k;
		page(m, BOTH)[1] = (uint64_t)k;
		pace_ms(25);
		if (!marks_ok(m, 0, PAGES, "child") || page(m, CHILD_ONLY)[1] != (uint64_t)k ||
		    page(m, BOTH)[1] != (uint64_t)k) {
			say("FAIL child: the numbers it wrote are gone");
			_exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	char *m = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		die("mmap");
	for (int i = 0; i < PAGES; i++) {
		page(m, i)[0] = mark(i);
		page(m, i)[511] = ~mark(i);
	}
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		child(m);
	if (munmap(m, PAGE) || munmap(m + PARENT_LAST * PAGE, (PAGES - PARENT_LAST) * PAGE))
		die("munmap");
	char *d = mmap(NULL, DROPPABLE_PAGES * PAGE, PROT_READ | PROT_WRITE, 0x08 /* MAP_DROPPABLE */ | MAP_ANONYMOUS, -1, 0);
	if (d == MAP_FAILED)
		die("mmap(MAP_DROPPABLE) (needs Linux 6.11)");
	for (int i = 0; i < DROPPABLE_PAGES; i++)
		memset(d + (size_t)i * PAGE, 'A' + i, PAGE);
	map_memfd_view();
	say("mapped");
	for (long k = 1; k <= steps; k++) {
		if (!marks_ok(m, 1, PARENT_LAST, "parent") || !droppable_ok(d) || !memfd_view_ok(k))
			return 1;
		int st;
		if (waitpid(pid, &st, WNOHANG) != 0) {
			say("FAIL the child ended early");
			return 1;
		}
		char fds[2048];
		fd_list(fds, sizeof fds);
		say("step %ld fds %s", k, fds);
		pace_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, 0, 0);
	say("done");
	return 0;
}
