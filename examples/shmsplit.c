/*
 * shmsplit: a SysV shared memory segment of four pages attached once and
 * split by mprotect into pieces of different protections: page 0
 * read-only, page 1 read-write, page 2 without access, page 3 read-write.
 * Each page starts with its own mark; every step writes the step number
 * into pages 1 and 3 and checks every readable page's mark and number and
 * the protections /proc/self/maps shows. A difference prints "FAIL ...".
 *
 * With --partial, the last page is unmapped (munmap) after the split: an
 * attachment ckrun cannot make again, which its restart must refuse.
 *
 *   shmsplit [--steps N] [--partial]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

enum { PAGES = 4 };
static const char *want_perms[PAGES] = { "r--s", "rw-s", "---s", "rw-s" };

static char *page(char *m, int i)
{
	return m + (size_t)i * 4096;
}

/* The permissions /proc/self/maps shows for the page at p, or "" */
static void perms_of(const char *p, char out[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	out[0] = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && (unsigned long)p >= lo && (unsigned long)p < hi) {
			memcpy(out, perms, 5);
			break;
		}
	}
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	long steps = 40;
	int partial = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atol(argv[++i]);
		else if (!strcmp(argv[i], "--partial"))
			partial = 1;
	}
	int id = shmget(IPC_PRIVATE, PAGES * 4096, IPC_CREAT | 0600);
	char *m = id < 0 ? (char *)-1 : shmat(id, NULL, 0);
	if (m == (char *)-1)
		die("shmget/shmat");
	for (int i = 0; i < PAGES; i++)
		snprintf(page(m, i), 32, "page %d", i);
	if (mprotect(page(m, 0), 4096, PROT_READ) || mprotect(page(m, 2), 4096, PROT_NONE))
		die("mprotect");
	int pages = PAGES;
	if (partial) {
		shmctl(id, IPC_RMID, NULL); /* this run ends with a refused restart */
		if (munmap(page(m, 3), 4096))
			die("munmap");
		pages = 3;
	}
	say("attached");
	for (long k = 1; k <= steps; k++) {
		for (int i = 0; i < pages; i++) {
			char perms[5], mark[32];
			perms_of(page(m, i), perms);
			if (strcmp(perms, want_perms[i])) {
				say("FAIL page %d is %s, not %s", i, perms, want_perms[i]);
				return 1;
			}
			if (i == 2)
				continue;
			snprintf(mark, sizeof mark, "page %d", i);
			if (strcmp(page(m, i), mark)) {
				say("FAIL page %d holds \"%.31s\", not \"%s\"", i, page(m, i), mark);
				return 1;
			}
			long *n = (long *)(page(m, i) + 64);
			if (i != 0 && *n != k - 1) {
				say("FAIL page %d holds step %ld, not %ld", i, *n, k - 1);
				return 1;
			}
			if (i != 0)
				*n = k;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	shmctl(id, IPC_RMID, NULL);
	say("done");
	return 0;
}
