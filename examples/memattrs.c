/*
 * memattrs: memory with every attribute a restart must put back, checked
 * by the program itself at every step.
 *
 *   memattrs [--steps S] [--mlockall current|future|onfault]
 *            [--memlock-limit KIB] [--drop-ipc-lock] [--raw-fork-marks]
 *            [--regions NAME,...]
 *
 * Maps one region per attribute (madvise MADV_DONTFORK, MADV_WIPEONFORK,
 * MADV_DONTDUMP, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_SEQUENTIAL,
 * MADV_RANDOM, MADV_MERGEABLE; mlock, mlock2(MLOCK_ONFAULT);
 * MAP_NORESERVE, MAP_GROWSDOWN; mseal) plus a plain one, fills them with
 * known words and releases some pages with MADV_DONTNEED; page 12 of each
 * region that may release pages (not locked, not sealed) is filled again
 * at every step 3 mod 7 and released at every step 6 mod 7, so releases
 * fall between checkpoints too. Each step rewrites a word in each region,
 * then checks: every word (released pages
 * read as zero), each region's VmFlags in /proc/self/smaps (its own marks
 * present, none of the others), the locked total (VmLck), and with a
 * forked child (at the first and the last step only: a checkpoint that
 * found the child just exited would keep it as a zombie) that the
 * wipe-on-fork region reads as zero there and the don't-fork region is
 * absent. It prints "step S <hash>"; the first
 * difference prints "FAIL ..." and exits 1; the last line is "done <hash>".
 *
 * --mlockall locks everything with mlockall() (MCL_CURRENT, plus
 * MCL_FUTURE, plus MCL_ONFAULT), and each step then also checks that a new
 * mapping comes locked. --memlock-limit sets RLIMIT_MEMLOCK (root may lock
 * beyond it); --drop-ipc-lock then gives up CAP_IPC_LOCK (all its sets and
 * the bounding set), keeping what it locked. --raw-fork-marks marks the don't-fork and wipe-on-fork
 * regions with a raw system call (behind the back of libc's madvise).
 * --regions maps only the regions named (plain, dontfork, wipeonfork, ...).
 */
#include "common.h"

#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define PAGES 16 /* of each region */
#define LEN (PAGES * PAGE)

struct region {
	const char *name;
	int advice;          /* madvise, or -1 */
	const char *flags;   /* the VmFlags it must show */
	int mmap_flags;
	uint64_t *p;
	uint64_t writes;
};

static struct region regions[] = {
	{"plain", -1, "", 0, 0, 0},
	{"dontfork", MADV_DONTFORK, "dc", 0, 0, 0},
	{"wipeonfork", MADV_WIPEONFORK, "wf", 0, 0, 0},
	{"dontdump", MADV_DONTDUMP, "dd", 0, 0, 0},
	{"hugepage", MADV_HUGEPAGE, "hg", 0, 0, 0},
	{"nohugepage", MADV_NOHUGEPAGE, "nh", 0, 0, 0},
	{"sequential", MADV_SEQUENTIAL, "sr", 0, 0, 0},
	{"random", MADV_RANDOM, "rr", 0, 0, 0},
	{"mergeable", MADV_MERGEABLE, "mg", 0, 0, 0},
	{"locked", -2, "lo", 0, 0, 0},
	{"lockonfault", -3, "lo lf", 0, 0, 0},
	{"noreserve", -1, "nr", MAP_NORESERVE, 0, 0},
	{"growsdown", -1, "gd", MAP_GROWSDOWN, 0, 0},
	{"sealed", -4, "sl", 0, 0, 0},
};
#define NREG (sizeof regions / sizeof regions[0])
/* every mark the check looks at: a region must have its own and no other */
static const char *const all_marks[] = {"dc", "wf", "dd", "hg", "nh", "sr", "rr", "mg", "lo", "lf", "nr", "gd", "sl"};

static int steps = 300;
static const char *mlockall_mode;
static int raw_fork_marks;
static int drop_ipc_lock;
static const char *only; /* --regions */

static uint64_t word(size_t r, size_t w, uint64_t writes)
{
	return mix64(splitmix64(r * 1000003 + w), writes);
}

/* Page 5 and pages 9..10 are released with MADV_DONTNEED at the start;
 * page 12 of a region that may release pages (cycling) after step s as
 * cycle() leaves it: they read as zero. */
#define CYCLED 12
static int cycled_away(int s)
{
	return s >= 6 && (s % 7 == 6 || s % 7 < 3);
}

static int released(size_t page, int cycling, int s)
{
	return page == 5 || page == 9 || page == 10 || (cycling && page == CYCLED && cycled_away(s));
}

/* --regions: the named ones only, in their order in the table */
static size_t nreg = NREG;

static int named(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return 1;
	return 0;
}

static void select_regions(void)
{
	size_t k = 0;
	for (size_t r = 0; r < NREG; r++)
		if (named(only, regions[r].name))
			regions[k++] = regions[r];
	nreg = k;
}

static void map_regions(void)
{
	/* one reservation, each region in it with a guard page between, so
	 * that no two regions can merge */
	size_t span = nreg * (LEN + PAGE) + PAGE;
	char *base = mmap(0, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		die("mmap");
	for (size_t r = 0; r < nreg; r++) {
		struct region *g = &regions[r];
		char *at = base + PAGE + r * (LEN + PAGE);
		void *p = mmap(at, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | g->mmap_flags, -1, 0);
		if (p == MAP_FAILED)
			die(g->name);
		g->p = p;
		for (size_t w = 0; w < LEN / 8; w++)
			g->p[w] = word(r, w, 0);
		madvise((char *)p + 5 * PAGE, PAGE, MADV_DONTNEED);
		madvise((char *)p + 9 * PAGE, 2 * PAGE, MADV_DONTNEED);
		int e = 0;
		if (g->advice >= 0 && raw_fork_marks && (g->advice == MADV_DONTFORK || g->advice == MADV_WIPEONFORK))
			e = (int)syscall(SYS_madvise, p, LEN, g->advice);
		else if (g->advice >= 0)
			e = madvise(p, LEN, g->advice);
		else if (g->advice == -2)
			e = mlock(p, LEN);
		else if (g->advice == -3)
			e = mlock2(p, LEN, MLOCK_ONFAULT);
		else if (g->advice == -4)
			e = (int)syscall(462 /* mseal */, p, LEN, 0);
		if (e != 0)
			die(g->name);
	}
}

/* Where each of n addresses is mapped and that mapping's VmFlags, from one
 * read of /proc/self/smaps (one read per step keeps the file open for as
 * short a time as can be). Returns how many were found. */
struct vm_at {
	const void *addr;
	uintptr_t lo, hi;
	char flags[512];
	int found;
};

static size_t vm_flags_at(struct vm_at *at, size_t n)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[1024];
	struct vm_at *in = 0;
	size_t found = 0;
	if (!f)
		die("/proc/self/smaps");
	for (size_t i = 0; i < n; i++)
		at[i].found = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = 0;
			for (size_t i = 0; i < n && !in; i++)
				if ((uintptr_t)at[i].addr >= a && (uintptr_t)at[i].addr < b)
					in = &at[i];
			if (in) {
				in->lo = a;
				in->hi = b;
			}
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			size_t len = strnlen(line + 8, sizeof in->flags - 1);
			memcpy(in->flags, line + 8, len);
			in->flags[len] = 0;
			in->flags[strcspn(in->flags, "\n")] = 0;
			in->found = 1;
			found++;
			in = 0;
		}
	}
	fclose(f);
	return found;
}

/* The whole address space on stderr, for a failure's report. */
static void dump_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[1024];
	while (f && fgets(line, sizeof line, f))
		fputs(line, stderr);
	if (f)
		fclose(f);
}

static int has_mark(const char *flags, const char *mark)
{
	for (const char *p = flags; (p = strstr(p, mark)); p += 2)
		if ((p == flags || p[-1] == ' ') && (p[2] == ' ' || p[2] == '\n' || !p[2]))
			return 1;
	return 0;
}

static void check_flags(void)
{
	int all_locked = mlockall_mode != 0;
	struct vm_at at[NREG];
	for (size_t r = 0; r < nreg; r++)
		at[r].addr = regions[r].p;
	vm_flags_at(at, nreg);
	for (size_t r = 0; r < nreg; r++) {
		struct region *g = &regions[r];
		const char *flags = at[r].flags;
		if (!at[r].found) {
			dump_maps();
			say_fail("region %s (%p) is not mapped", g->name, (void *)g->p);
		}
		if (at[r].lo != (uintptr_t)g->p || at[r].hi != (uintptr_t)g->p + LEN)
			say_fail("region %s is the mapping %#lx-%#lx, not %p-%p", g->name, (unsigned long)at[r].lo,
			     (unsigned long)at[r].hi, (void *)g->p, (void *)((char *)g->p + LEN));
		for (size_t m = 0; m < sizeof all_marks / sizeof all_marks[0]; m++) {
			const char *mark = all_marks[m];
			int want = has_mark(g->flags, mark);
			/* mlockall(MCL_CURRENT) locks every mapping, on fault with MCL_ONFAULT */
			if (all_locked && !strcmp(mark, "lo"))
				want = 1;
			if (all_locked && !strcmp(mark, "lf"))
				want = !strcmp(mlockall_mode, "onfault");
			if (want != has_mark(flags, mark))
				say_fail("region %s should %s \"%s\" in its VmFlags:%s", g->name, want ? "have" : "not have", mark, flags);
		}
	}
}

static long locked_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmLck: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static void check_locks(void)
{
	if (!mlockall_mode) {
		long want = 0, have = locked_kib();
		for (size_t r = 0; r < nreg; r++)
			if (has_mark(regions[r].flags, "lo"))
				want += LEN / 1024;
		if (have != want)
			say_fail("VmLck is %ld kB, expected %ld kB (the locked regions)", have, want);
		return;
	}
	if (strcmp(mlockall_mode, "current")) {
		/* MCL_FUTURE: a new mapping is locked at once */
		void *p = mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct vm_at at = {.addr = p};
		if (p == MAP_FAILED)
			die("mmap");
		if (!vm_flags_at(&at, 1)) {
			dump_maps();
			say_fail("a new mapping (%p) is not in /proc/self/smaps", p);
		}
		int onfault = !strcmp(mlockall_mode, "onfault");
		if (!has_mark(at.flags, "lo") || has_mark(at.flags, "lf") != onfault)
			say_fail("a new mapping should be locked%s (mlockall MCL_FUTURE), its VmFlags:%s", onfault ? " on fault" : "",
			     at.flags);
		munmap(p, PAGE);
	}
}

/* What a forked child sees: zeros where memory is wiped on fork, nothing
 * where it is not passed on. */
static void check_fork(void)
{
	struct region *wf = 0, *dc = 0;
	for (size_t r = 0; r < nreg; r++) {
		if (regions[r].advice == MADV_WIPEONFORK)
			wf = &regions[r];
		if (regions[r].advice == MADV_DONTFORK)
			dc = &regions[r];
	}
	pid_t c = fork();
	if (c < 0)
		die("fork");
	if (c == 0) {
		for (size_t w = 0; wf && w < LEN / 8; w++)
			if (wf->p[w])
				_exit(3);
		_exit(dc && msync(dc->p, PAGE, MS_ASYNC) == 0 ? 4 : 0);
	}
	int st;
	while (waitpid(c, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		say_fail("a forked child %s", !WIFEXITED(st) ? "died" : WEXITSTATUS(st) == 3 ? "sees the wipe-on-fork region's contents"
										   : "has the don't-fork region");
}

/* Locked memory cannot be released, and a seal may forbid it. */
static int cycling(const struct region *g)
{
	return !mlockall_mode && g->advice > -2;
}

/* Page CYCLED filled again or released, as cycled_away() says. */
static void cycle(int s)
{
	for (size_t r = 0; r < nreg; r++) {
		struct region *g = &regions[r];
		uint64_t *pg = g->p + CYCLED * PAGE / 8;
		if (!cycling(g))
			continue;
		if (s % 7 == 3)
			for (size_t w = 0; w < PAGE / 8; w++)
				pg[w] = word(r, CYCLED * PAGE / 8 + w, 0);
		if (s % 7 == 6 && madvise(pg, PAGE, MADV_DONTNEED))
			die("MADV_DONTNEED");
	}
}

static uint64_t check_words(int s)
{
	uint64_t h = 0;
	for (size_t r = 0; r < nreg; r++) {
		struct region *g = &regions[r];
		for (size_t w = 0; w < LEN / 8; w++) {
			uint64_t want = released(w * 8 / PAGE, cycling(g), s) ? 0 : word(r, w, w == 7 ? g->writes : 0);
			if (g->p[w] != want)
				say_fail("step %d: region %s word %zu is %#" PRIx64 ", expected %#" PRIx64, s, g->name, w, g->p[w], want);
		}
		h = mix64(h, g->p[7]);
	}
	return h;
}

/* Without CAP_IPC_LOCK from now on: what is locked stays locked. */
static void give_up_ipc_lock(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0) || syscall(SYS_capget, &h, d))
		die("CAP_IPC_LOCK");
	d[0].effective &= ~(1u << CAP_IPC_LOCK);
	d[0].permitted &= ~(1u << CAP_IPC_LOCK);
	d[0].inheritable &= ~(1u << CAP_IPC_LOCK);
	if (syscall(SYS_capset, &h, d))
		die("capset");
}

int main(int argc, char **argv)
{
	long memlock_kib = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--mlockall") && i + 1 < argc)
			mlockall_mode = argv[++i];
		else if (!strcmp(argv[i], "--memlock-limit") && i + 1 < argc)
			memlock_kib = atol(argv[++i]);
		else if (!strcmp(argv[i], "--drop-ipc-lock"))
			drop_ipc_lock = 1;
		else if (!strcmp(argv[i], "--raw-fork-marks"))
			raw_fork_marks = 1;
		else if (!strcmp(argv[i], "--regions") && i + 1 < argc)
			only = argv[++i];
	}
	if (only)
		select_regions();
	if (memlock_kib >= 0) {
		struct rlimit l = {(rlim_t)memlock_kib << 10, (rlim_t)memlock_kib << 10};
		if (setrlimit(RLIMIT_MEMLOCK, &l))
			die("setrlimit");
	}
	map_regions();
	if (drop_ipc_lock)
		give_up_ipc_lock();
	if (mlockall_mode) {
		int f = MCL_CURRENT | (strcmp(mlockall_mode, "current") ? MCL_FUTURE : 0) |
			(!strcmp(mlockall_mode, "onfault") ? MCL_ONFAULT : 0);
		if (mlockall(f))
			die("mlockall");
	}
	say("memattrs: start regions=%zu steps=%d", nreg, steps);
	uint64_t h = 0;
	for (int s = 1; s <= steps; s++) {
		for (size_t r = 0; r < nreg; r++)
			regions[r].p[7] = word(r, 7, ++regions[r].writes);
		cycle(s);
		h = check_words(s);
		check_flags();
		check_locks();
		if (s == 1 || s == steps)
			check_fork();
		say("step %d %016" PRIx64, s, h);
		pace_ms(40);
	}
	say("done %016" PRIx64, h);
	return 0;
}
