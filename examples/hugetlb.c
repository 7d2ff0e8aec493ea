/*
 * hugetlb: memory backed by huge pages (hugetlbfs), as databases and
 * packet processors use it: private anonymous memory (MAP_HUGETLB),
 * shared anonymous memory (MAP_SHARED | MAP_HUGETLB) that a forked child
 * writes too, and a memfd made with MFD_HUGETLB, mapped shared and
 * privately (a private view: zdtm memfd02-hugetlb); 4 MiB each, in pages
 * of the default huge page size.
 *
 * Each step the parent writes its step number into one 4 KiB piece of the
 * private and the memfd mapping and checks every piece written so far;
 * the child does the same in the shared mapping and the parent checks the
 * child's pieces there. The private view writes its own pieces in its
 * second huge page only: its first follows what the memfd's shared
 * mapping writes (checked), the second keeps its own bytes. Both check at each step that each mapping is still
 * hugetlb memory of that page size (its smaps entry: KernelPageSize and
 * VmFlags "ht") on the device the kernel put it on (zdtm maps09 checks
 * the device). A difference prints "FAIL ...".
 *
 * Needs free huge pages (9 of 2 MiB): vm.nr_hugepages.
 *
 *   hugetlb [--steps N]    prints "step K" per step, then "done"
 */
#include "common.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE (4UL << 20)
#define PIECE 4096UL
#define PIECES (SIZE / PIECE)

struct mapping {
	const char *what;
	unsigned char *at;
	unsigned long dev;
};

static unsigned long default_huge_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	unsigned long kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Hugepagesize: %lu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* The device of the mapping at addr, its page size and whether it is
 * hugetlb memory, from /proc/self/smaps. */
static int describe(const void *addr, unsigned long *dev, unsigned long *page_kb, int *ht)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[1024];
	int in = 0, found = 0;
	*ht = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long a, b, off, ino;
		unsigned maj, mnr;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &a, &b, perms, &off, &maj, &mnr, &ino) == 7) {
			in = (uintptr_t)addr >= a && (uintptr_t)addr < b;
			if (in) {
				*dev = makedev(maj, mnr);
				found = 1;
			}
		} else if (in && sscanf(line, "KernelPageSize: %lu kB", page_kb) == 1) {
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			*ht = strstr(line, " ht") != NULL;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static int still_hugetlb(const struct mapping *m, unsigned long huge_kb)
{
	unsigned long dev = 0, kb = 0;
	int ht;
	if (!describe(m->at, &dev, &kb, &ht)) {
		say("FAIL the %s mapping is gone", m->what);
		return 0;
	}
	if (!ht || kb != huge_kb) {
		say("FAIL the %s mapping is no longer hugetlb memory (KernelPageSize %lu kB, ht %d)", m->what, kb, ht);
		return 0;
	}
	if (dev != m->dev) {
		say("FAIL the %s mapping moved to device %u:%u (was %u:%u)", m->what, major(dev), minor(dev), major(m->dev),
		    minor(m->dev));
		return 0;
	}
	return 1;
}

static void put(unsigned char *at, long k)
{
	memset(at + (unsigned long)(k % PIECES) * PIECE, (int)(k & 0xff), PIECE);
}

static int check(const struct mapping *m, long upto)
{
	for (long k = upto > (long)PIECES ? upto - (long)PIECES + 1 : 1; k <= upto; k++) {
		const unsigned char *p = m->at + (unsigned long)(k % PIECES) * PIECE;
		for (unsigned long i = 0; i < PIECE; i += 512)
			if (p[i] != (unsigned char)(k & 0xff)) {
				say("FAIL the %s mapping lost the bytes of step %ld", m->what, k);
				return 0;
			}
	}
	return 1;
}

static void *map_or_die(int flags, int fd, const char *what)
{
	void *a = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (a == MAP_FAILED) {
		say("FAIL cannot map %s hugetlb memory (are there free huge pages? vm.nr_hugepages): %s", what, strerror(errno));
		exit(1);
	}
	return a;
}

static void child_loop(unsigned char *shared, volatile long *child_step, long steps)
{
	for (long k = 1; k <= steps; k++) {
		put(shared, k);
		__atomic_store_n(child_step, k, __ATOMIC_RELEASE);
		pace_ms(40);
	}
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	long steps = steps_option(argc, argv, 60);
	if (steps >= (long)PIECES / 2)
		die("too many steps (at most 511: the pieces of a step stay in the first half)");
	unsigned long huge_kb = default_huge_kb();
	if (!huge_kb || SIZE % (huge_kb << 10))
		die("no usable default huge page size");
	struct mapping priv = {"private", map_or_die(MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, "private"), 0};
	struct mapping shared = {"shared", map_or_die(MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, "shared"), 0};
	int fd = memfd_create("ckrun-hugetlb", MFD_HUGETLB | MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, SIZE) != 0)
		die("memfd_create(MFD_HUGETLB)");
	struct mapping mfd = {"memfd", map_or_die(MAP_SHARED, fd, "memfd"), 0};
	struct mapping view = {"private view of the memfd", map_or_die(MAP_PRIVATE, fd, "memfd private"), 0};
	struct mapping *all[4] = {&priv, &shared, &mfd, &view};
	for (int i = 0; i < 4; i++) {
		unsigned long kb;
		int ht;
		all[i]->at[i == 3 ? SIZE / 2 : 0] = 0;
		if (!describe(all[i]->at, &all[i]->dev, &kb, &ht) || !ht)
			die("the new mapping is not hugetlb memory");
	}
	/* the child's progress, in a page of its own (ordinary shared memory) */
	volatile long *child_step = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (child_step == MAP_FAILED)
		die("mmap");
	*child_step = 0;
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0)
		child_loop(shared.at, child_step, steps);
	say("mapped");
	for (long k = 1; k <= steps; k++) {
		put(priv.at, k);
		put(mfd.at, k);
		put(view.at + SIZE / 2, k);
		long c = __atomic_load_n(child_step, __ATOMIC_ACQUIRE);
		if (!check(&priv, k) || !check(&mfd, k) || !check(&shared, c) || !check(&view, k) ||
		    !check(&(struct mapping){"private view's own", view.at + SIZE / 2, 0}, k))
			return 1;
		for (int i = 0; i < 4; i++)
			if (!still_hugetlb(all[i], huge_kb))
				return 1;
		say("step %ld", k);
		pace_ms(50);
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	say("done");
	return 0;
}
