/*
 * vdsoclock: calls the vdso's functions through glibc (clock_gettime,
 * gettimeofday, time, getcpu; glibc resolved them to the vdso at start-up)
 * and checks each against the system call, between two calls of it: a
 * vdso whose data is wrong, or gone, gives times outside the window or
 * kills the program. It runs pinned to CPU 0, so getcpu must say 0. Each
 * step it looks up whether the vdso glibc uses (AT_SYSINFO_EHDR) is still
 * the kernel's [vdso] mapping, and says once when it is not ("vdso
 * bridged": a restart sent its entry points to another vdso), and each
 * time the kernel's [vdso] is somewhere else than it was ("vdso moved": a
 * plain restart puts it back where it was).
 *
 * With --unmapped it unmaps its vdso and vvar pages first, as programs
 * that must not use them do, and checks at every step that none is mapped
 * (glibc's vdso pointers then point nowhere: it makes system calls only).
 *
 *   vdsoclock [--steps N] [--unmapped]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <sched.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static int check_clock(clockid_t id, const char *name)
{
	struct timespec a, v, b;
	syscall(SYS_clock_gettime, id, &a);
	if (clock_gettime(id, &v))
		return say("FAIL clock_gettime(%s) failed: %s", name, strerror(errno)), 0;
	syscall(SYS_clock_gettime, id, &b);
	if (ns_of(&v) < ns_of(&a) || ns_of(&v) > ns_of(&b))
		return say("FAIL clock_gettime(%s) gave %lld ns, the system call %lld..%lld", name, (long long)ns_of(&v),
			   (long long)ns_of(&a), (long long)ns_of(&b)), 0;
	return 1;
}

static int check_calls(void)
{
	struct timeval a, v, b;
	syscall(SYS_gettimeofday, &a, NULL);
	gettimeofday(&v, NULL);
	syscall(SYS_gettimeofday, &b, NULL);
	int64_t ua = a.tv_sec * 1000000LL + a.tv_usec, uv = v.tv_sec * 1000000LL + v.tv_usec,
		ub = b.tv_sec * 1000000LL + b.tv_usec;
	if (uv < ua || uv > ub)
		return say("FAIL gettimeofday gave %lld us, the system call %lld..%lld", (long long)uv, (long long)ua,
			   (long long)ub), 0;
	long ta = syscall(SYS_time, NULL);
	time_t tv = time(NULL);
	long tb = syscall(SYS_time, NULL);
	if (tv < ta || tv > tb)
		return say("FAIL time gave %lld, the system call %ld..%ld", (long long)tv, ta, tb), 0;
	unsigned cpu = 99, node = 99;
	if (getcpu(&cpu, &node) || cpu != 0 || node != 0)
		return say("FAIL getcpu gave cpu %u node %u on a thread pinned to CPU 0", cpu, node), 0;
	return check_clock(CLOCK_REALTIME, "CLOCK_REALTIME") && check_clock(CLOCK_MONOTONIC, "CLOCK_MONOTONIC") &&
	       check_clock(CLOCK_BOOTTIME, "CLOCK_BOOTTIME");
}

/* Unmaps [vvar], [vvar_vclock] and [vdso]; 0 when one of them is (still) there. */
static int vdso_blocks(int unmap)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long lo[8], hi[8];
	int n = 0;
	while (f && fgets(line, sizeof line, f))
		if (n < 8 && (strstr(line, "[vdso]") || strstr(line, "[vvar]") || strstr(line, "[vvar_vclock]")) &&
		    sscanf(line, "%lx-%lx", &lo[n], &hi[n]) == 2)
			n++;
	if (f)
		fclose(f);
	for (int i = 0; unmap && i < n; i++)
		if (syscall(SYS_munmap, lo[i], hi[i] - lo[i]))
			die("unmapping the vdso");
	return n;
}

/* Whether addr is inside the kernel's [vdso] mapping now; where that is. */
static int is_kernel_vdso(unsigned long addr, unsigned long *kernel_vdso)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int yes = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		if (addr >= lo && addr < hi)
			yes = strstr(line, "[vdso]") != NULL;
		if (strstr(line, "[vdso]"))
			*kernel_vdso = lo;
	}
	if (f)
		fclose(f);
	return yes;
}

int main(int argc, char **argv)
{
	long steps = 40;
	int unmapped = 0;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atol(argv[++i]);
		else if (!strcmp(argv[i], "--unmapped"))
			unmapped = 1;
	if (unmapped) {
		if (!vdso_blocks(1))
			die("finding the vdso to unmap");
		for (long k = 1; k <= steps; k++) {
			struct timespec a, b;
			if (vdso_blocks(0)) {
				say("FAIL a vdso or vvar mapping is back after the program unmapped them");
				return 1;
			}
			syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &a);
			syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &b);
			if (ns_of(&b) < ns_of(&a)) {
				say("FAIL CLOCK_MONOTONIC went back");
				return 1;
			}
			say("step %ld", k);
			struct timespec d = {0, 40000000};
			while (syscall(SYS_nanosleep, &d, &d) && errno == EINTR)
				;
		}
		say("done");
		return 0;
	}
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	if (sched_setaffinity(0, sizeof one, &one))
		die("pinning to CPU 0");
	unsigned long vdso = getauxval(AT_SYSINFO_EHDR), kernel_vdso = 0, was = 0;
	if (!vdso || !is_kernel_vdso(vdso, &was))
		die("finding the vdso");
	int bridged = 0;
	for (long k = 1; k <= steps; k++) {
		for (int i = 0; i < 50; i++)
			if (!check_calls())
				return 1;
		int kernel = is_kernel_vdso(vdso, &kernel_vdso);
		if (!bridged && !kernel) {
			bridged = 1;
			say("vdso bridged");
		}
		if (kernel_vdso != was) {
			was = kernel_vdso;
			say("vdso moved");
		}
		say("step %ld", k);
		pace_ms(40);
	}
	say("done");
	return 0;
}
