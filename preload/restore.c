/* The restore host's side of a restart: read and check the image, set up
 * what survives an address-space switch (descriptors, cwd, rlimits, signal
 * actions), then hand over to the restore core in a hole no saved mapping
 * uses. Everything that can fail is tried before anything is destroyed;
 * see docs/design.md. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <fcntl.h>
#include <link.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

#define CK_EXPORT __attribute__((visibility("default")))
#define CORE_STACK (256UL << 10)

CK_HIDDEN const char *ck_image_name;

CK_HIDDEN jmp_buf *ck_refusal_escape;

CK_HIDDEN void ck_refuse(const char *fmt, ...)
{
	if (ck_refusal_escape)
		longjmp(*ck_refusal_escape, 1); /* front.c: node's restart says it */
	va_list ap;
	fputs("ckrun restart: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(CK_EXIT_REFUSED);
}

CK_HIDDEN void ck_verbose(const char *fmt, ...)
{
	if (!getenv("CKRUN_VERBOSE"))
		return;
	va_list ap;
	fputs("ckrun restore: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

CK_HIDDEN char *ck_dup_text(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

static void parse_metadata(struct ck_image *img)
{
	struct cb_dec d;
	int64_t left;
	const char *k;
	size_t kl;
	char key[64] = "";
	cbd_init(&d, img->meta, img->meta_len);
	int ok = cbd_map(&d, &left);
	img->ctl_fd = -1;
	while (ok && cbd_next_key(&d, &left, &k, &kl)) {
		snprintf(key, sizeof key, "%.*s", (int)kl, k);
		if (cbd_key_is(k, kl, "threads"))
			ok = ck_threads_parse(&d, img);
		else if (cbd_key_is(k, kl, "signals"))
			ok = ck_signals_parse(&d, img);
		else if (cbd_key_is(k, kl, "files"))
			ok = ck_files_parse(&d, img);
		else if (cbd_key_is(k, kl, "memory"))
			ok = ck_memory_parse(&d, img);
		else if (cbd_key_is(k, kl, "vdso"))
			ok = ck_vdso_parse(&d, img);
		else {
			int r = ck_process_parse(&d, k, kl, img);
			if (r == 0)
				r = ck_mm_parse(&d, k, kl, img);
			if (r == 0)
				r = cbd_skip(&d) ? 1 : -1;
			ok = r > 0;
		}
	}
	if (!ok || d.error)
		ck_refuse("image %s is corrupted: its metadata cannot be read (at \"%s\")", img->path, key);
	if (!img->pid || !img->nthreads || !img->nregions)
		ck_refuse("image %s is incomplete: it lacks the process, its threads or its memory", img->path);
	if (img->shim_abi != CK_SHIM_ABI)
		ck_refuse("image %s was taken by a ckrun whose shim works differently (shim ABI %d; this ckrun's is %d); "
			  "restart it with the ckrun version that took it", img->path, img->shim_abi, CK_SHIM_ABI);
}

/* ---- the session connection ---- */

static int connect_ckrun(void)
{
	const char *name = getenv("CKRUN_SOCK");
	struct sockaddr_un a;
	if (!name || !*name)
		return -1;
	unsigned alen = ck_session_addr(&a, name);
	if (!alen)
		ck_refuse("the session socket name %s is too long", name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, alen) != 0)
		ck_refuse("cannot reach ckrun at @%s: %s", name, strerror(errno));
	if (!ck_coordinator_trusted(fd))
		ck_refuse("the session socket @%s is held by another user, not by ckrun: the program is not handed to it", name);
	return fd;
}

/* Restored inside a user namespace of ckrun's own (not root): the
 * identity map is not the full one. */
static int in_own_user_ns(void)
{
	char buf[128];
	unsigned long a, b, n;
	FILE *f = fopen("/proc/self/uid_map", "r");
	int full = f && fgets(buf, sizeof buf, f) && sscanf(buf, "%lu %lu %lu", &a, &b, &n) == 3 && a == 0 && b == 0 &&
		   n == 4294967295UL;
	if (f)
		fclose(f);
	return !full;
}

static void fill_session_info(struct ck_restore_info *ri)
{
	ri->drop_caps = in_own_user_ns();
	const char *name = getenv("CKRUN_SOCK");
	const char *s = getenv("CKRUN_STDIO");
	if (name)
		snprintf(ri->sock, sizeof ri->sock, "%s", name);
	for (int k = 0; k < 3 && s && *s; k++) {
		unsigned long long dev, ino;
		int used;
		if (sscanf(s, "%llu:%llu%n", &dev, &ino, &used) != 2)
			break;
		ri->stdio_dev[k] = dev;
		ri->stdio_ino[k] = ino;
		s += used;
		if (*s == ',')
			s++;
	}
}

/* ---- the hole ---- */

struct span {
	uint64_t lo, hi;
};

static int by_lo(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* A free range that neither this process nor the image uses. */
static uint64_t find_hole(struct ck_image *img, uint64_t size)
{
	size_t cap = img->nregions + 4096, n = 0;
	struct span *s = malloc(cap * sizeof *s);
	for (size_t i = 0; i < img->nregions; i++)
		s[n++] = (struct span){img->regions[i].start, img->regions[i].end};
	for (int k = 0; k < 3; k++)
		if (img->vdso[k][0])
			s[n++] = (struct span){img->vdso[k][0], img->vdso[k][1]};
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	while (f && fgets(line, sizeof line, f) && n < cap) {
		unsigned long long lo, hi;
		if (sscanf(line, "%llx-%llx", &lo, &hi) == 2)
			s[n++] = (struct span){lo, hi};
	}
	if (f)
		fclose(f);
	qsort(s, n, sizeof *s, by_lo);
	/* keep clear of the lowest 1 GiB (where brk heaps of non-PIE programs live) */
	uint64_t cand = 1ULL << 30, guard = 1ULL << 20;
	for (size_t i = 0; i < n; i++) {
		if (s[i].lo >= cand + size + guard)
			break;
		if (s[i].hi + guard > cand)
			cand = CK_PAGE_UP(s[i].hi + guard);
	}
	free(s);
	if (cand + size >= 0x7fffffff0000ULL)
		ck_refuse("no room in the address space for the restore code");
	return cand;
}

struct lib_span {
	uint64_t base, size;
	struct dl_phdr_info info;
};

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct lib_span *ls = data;
	uint64_t me = (uint64_t)&find_self;
	uint64_t hi = 0;
	int mine = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t lo = info->dlpi_addr + ph->p_vaddr, end = lo + ph->p_memsz;
		if (me >= lo && me < end)
			mine = 1;
		if (ph->p_vaddr + ph->p_memsz > hi)
			hi = ph->p_vaddr + ph->p_memsz;
	}
	if (!mine)
		return 0;
	ls->base = info->dlpi_addr;
	ls->size = CK_PAGE_UP(hi);
	ls->info = *info;
	return 1;
}

/* The shim copied into the hole, segment by segment at the same offsets,
 * so the restore core's rip-relative references stay right. */
static void copy_self(const struct lib_span *ls, uint64_t dst)
{
	for (int i = 0; i < ls->info.dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &ls->info.dlpi_phdr[i];
		if (ph->p_type == PT_LOAD)
			memcpy((void *)(dst + ph->p_vaddr), (const void *)(ls->base + ph->p_vaddr), ph->p_memsz);
	}
}

static int max_program_fd(struct ck_image *img)
{
	int m = img->ctl_fd > 2 ? img->ctl_fd : 2;
	for (size_t i = 0; i < img->nfiles; i++)
		if (img->files[i].fd > m)
			m = img->files[i].fd;
	return m;
}

static int is_kept(const int *keep, int nkeep, int fd)
{
	for (int i = 0; i < nkeep; i++)
		if (keep[i] == fd)
			return 1;
	return 0;
}

static void close_others(const int *keep, int nkeep)
{
	DIR *d = opendir("/proc/self/fd");
	int fds[4096], n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) && n < 4096) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		int fd = atoi(e->d_name);
		if (fd != dirfd(d) && !is_kept(keep, nkeep, fd))
			fds[n++] = fd;
	}
	if (d)
		closedir(d);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static void unregister_rseq(void)
{
	extern const unsigned int __rseq_size __attribute__((weak));
	extern const ptrdiff_t __rseq_offset __attribute__((weak));
	if (&__rseq_size && __rseq_size && &__rseq_offset) {
		uint64_t fs;
		ck_arch_prctl(0x1003, (unsigned long)&fs);
		CK_SYS4(SYS_rseq, fs + (uint64_t)__rseq_offset, 32, 1 /* RSEQ_FLAG_UNREGISTER */, 0x53053053);
	}
}

CK_HIDDEN void ck_jump_to_core(void *arg, void *stack_top, void (*entry)(void *)) __attribute__((noreturn));
CK_CORE __attribute__((noreturn)) void ck_core_main(struct ck_plan *p);

/* Loads one image and checks what can be checked without changing
 * anything (files, pages, vdso). */
CK_HIDDEN void ck_load_and_check(struct ck_image *img, const char *path, int verify_data)
{
	ck_image_name = path;
	ck_image_load(img, path);
	parse_metadata(img);
	ck_verbose("image %s: pid %d, %zu threads, %zu regions, %zu descriptors", path, img->pid, img->nthreads,
		   img->nregions, img->nfiles);
	ck_files_check(img);
	ck_memory_check(img, verify_data);
	struct ck_plan probe;
	ck_vdso_check(img, &probe);
}

/* Turns this process into the one in img (whose checks passed); objs are
 * the objects a tree's processes share, or NULL. */
static __attribute__((noreturn)) void become(struct ck_image *img, const struct ck_objects *objs)
{
	ck_image_name = img->path;
	ck_threads_check(img);

	struct lib_span ls;
	memset(&ls, 0, sizeof ls);
	if (!dl_iterate_phdr(find_self, &ls))
		ck_refuse("cannot find the shim's own code");

	size_t nruns = 0;
	for (size_t i = 0; i < img->nregions; i++)
		nruns += img->regions[i].nruns;
	uint64_t vdso_len = img->vdso[2][1] - img->vdso[0][0];
	uint64_t plan_size = CK_PAGE_UP(sizeof(struct ck_plan) + img->nregions * sizeof(struct ck_plan_region) +
					nruns * sizeof(struct ck_plan_run) + img->nthreads * sizeof(struct ck_plan_thread) + 64);
	uint64_t stacks_size = (img->nthreads + 1) * CK_THREAD_STACK;
	uint64_t hole_size = ls.size + plan_size + CORE_STACK + stacks_size + CK_PAGE_UP(vdso_len) + CK_PAGE;
	uint64_t hole = find_hole(img, hole_size);
	long m = ck_mmap((void *)hole, hole_size, PROT_READ | PROT_WRITE | PROT_EXEC,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (m != (long)hole)
		ck_refuse("cannot map the restore code at %#llx: %s", (unsigned long long)hole, ck_errno_name(m));

	uint64_t plan_at = hole + ls.size;
	struct ck_plan *plan = (struct ck_plan *)plan_at;
	struct ck_plan_region *regions = (struct ck_plan_region *)(plan_at + sizeof *plan);
	struct ck_plan_run *runs = (struct ck_plan_run *)(regions + img->nregions);
	struct ck_plan_thread *threads = (struct ck_plan_thread *)(runs + nruns);
	uint64_t core_stack_top = plan_at + plan_size + CORE_STACK;
	uint64_t stacks = core_stack_top;
	plan->vdso_tmp = stacks + stacks_size;
	ck_vdso_check(img, plan);

	/* descriptors the restore needs, above every number the program uses */
	int base = max_program_fd(img) + 1;
	struct rlimit nofile;
	getrlimit(RLIMIT_NOFILE, &nofile);
	if ((rlim_t)base + 64 + img->nregions > nofile.rlim_cur) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	plan->image_fd = fcntl(img->fd, F_DUPFD_CLOEXEC, base);
	if (plan->image_fd < 0)
		ck_refuse("cannot place the image descriptor: %s", strerror(errno));
	close(img->fd);
	img->fd = plan->image_fd;
	plan->exe_fd = -1;
	if (img->exe) {
		int fd = open(img->exe, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			plan->exe_fd = fcntl(fd, F_DUPFD_CLOEXEC, base);
			close(fd);
		}
	}
	int ctl = connect_ckrun();
	if (ctl >= 0) {
		int moved = fcntl(ctl, F_DUPFD_CLOEXEC, base);
		close(ctl);
		ctl = moved;
	}
	ck_memory_open(img, base);
	ck_memory_open_refs(img, base);
	ck_files_open(img, base, objs);

	/* process state; from here on the restore host is becoming the program */
	ck_process_restore(img);
	ck_signals_restore(img);
	ck_files_install(img);
	if (ctl >= 0 && img->ctl_fd >= 0) {
		if (dup3(ctl, img->ctl_fd, O_CLOEXEC) < 0 || ck_arm_async(img->ctl_fd, img->sig, getpid()) != 0)
			ck_refuse("cannot place the session connection at descriptor %d: %s", img->ctl_fd, strerror(errno));
		close(ctl);
	}

	int keep[1024], nkeep = 0;
	for (size_t i = 0; i < img->nfiles && nkeep < 900; i++)
		keep[nkeep++] = img->files[i].fd;
	keep[nkeep++] = img->ctl_fd;
	keep[nkeep++] = plan->image_fd;
	keep[nkeep++] = plan->exe_fd;
	plan->nclose = 0;
	plan->close_fds[plan->nclose++] = plan->image_fd;
	for (int i = 0; i < img->nimages; i++) {
		keep[nkeep++] = img->image_fds[i];
		plan->close_fds[plan->nclose++] = img->image_fds[i];
	}
	if (plan->exe_fd >= 0)
		plan->close_fds[plan->nclose++] = plan->exe_fd;
	for (size_t i = 0; i < img->nregions; i++) {
		int fd = img->regions[i].fd;
		if (fd >= 0 && !is_kept(keep, nkeep, fd) && nkeep < 1024 && plan->nclose < 512) {
			keep[nkeep++] = fd;
			plan->close_fds[plan->nclose++] = fd;
		}
	}
	/* shared memory this process maps: its descriptor lives until the map */
	for (size_t i = 0; objs && i < objs->nshm && nkeep < 1024 && plan->nclose < 512; i++) {
		keep[nkeep++] = objs->shm[i].fd;
		plan->close_fds[plan->nclose++] = objs->shm[i].fd;
	}
	close_others(keep, nkeep);

	/* the plan */
	ck_memory_plan(img, plan, regions, runs, objs);
	ck_threads_plan(img, plan, threads, stacks);
	plan->err_fd = 2;
	plan->map_runs = !getenv("CKRUN_RESTORE_READ");
	plan->pid = img->pid;
	plan->nofile_cur = img->rlim[RLIMIT_NOFILE][0] < 0 ? ~0ULL : (uint64_t)img->rlim[RLIMIT_NOFILE][0];
	plan->nofile_max = img->rlim[RLIMIT_NOFILE][1] < 0 ? ~0ULL : (uint64_t)img->rlim[RLIMIT_NOFILE][1];
	plan->info.magic = CK_RESTORE_INFO_MAGIC;
	plan->info.nthreads = (uint32_t)img->nthreads;
	plan->info.restored = 0;
	plan->info.ctl_fd = ctl >= 0 ? img->ctl_fd : -1;
	plan->info.track_id = img->track_id;
	plan->info.nimages = 0;
	for (int i = -1; i < img->nimages; i++) {
		struct stat ist;
		if (fstat(i < 0 ? plan->image_fd : img->image_fds[i], &ist) == 0) {
			plan->info.image_dev[plan->info.nimages] = ist.st_dev;
			plan->info.image_ino[plan->info.nimages++] = ist.st_ino;
		}
	}
	plan->info.hole_start = hole;
	plan->info.hole_len = hole_size;
	fill_session_info(&plan->info);

	copy_self(&ls, hole);
	void (*entry)(void *) = (void (*)(void *))(hole + ((uint64_t)&ck_core_main - ls.base));
	fflush(stdout);
	fflush(stderr);
	unregister_rseq();
	ck_jump_to_core(plan, (void *)core_stack_top, entry);
}

/* Turns this process into the one in img, whose checks passed. */
CK_HIDDEN __attribute__((noreturn)) void ck_restore_loaded(struct ck_image *img)
{
	static struct ck_objects objs;
	/* shared memory and pipes are made as a tree makes them: a memfd
	 * mapped and held as a descriptor stays one object */
	ck_pipes_create_shared(&img, 1, &objs, max_program_fd(img) + 64);
	ck_sockets_create_shared(&img, 1, &objs, max_program_fd(img) + 64);
	ck_shm_create_shared(&img, 1, &objs, max_program_fd(img) + 64);
	become(img, &objs);
}

static __attribute__((noreturn)) void restore_image(const char *path, int verify_data)
{
	static struct ck_image img;
	ck_load_and_check(&img, path, verify_data);
	ck_restore_loaded(&img);
}

/* ---- a process tree (docs/design.md, "Restoring a tree") ---- */

struct tree_proc {
	int pid;
	const char *image;
	struct ck_image img;
};

struct tree {
	const char *dir;
	int root;
	int outside_sid; /* the session ckrun ran in, as the images saw it */
	struct tree_proc *procs;
	size_t n;
	int (*groups)[3]; /* pid, fd, group: descriptors sharing one open file description */
	size_t ngroups;
	struct ck_objects objs;
};

static void read_manifest(struct tree *t, const char *dir)
{
	char path[8192];
	snprintf(path, sizeof path, "%s/manifest.cbor", dir);
	FILE *f = fopen(path, "rb");
	/* allocated, not a static array: every process that preloads the
	 * shim would carry 4 MiB of bss */
	enum { MANIFEST_MAX = 4 << 20 };
	static uint8_t *buf;
	if (!buf && !(buf = malloc(MANIFEST_MAX)))
		ck_refuse("cannot read the manifest of %s: out of memory", dir);
	size_t len = f ? fread(buf, 1, MANIFEST_MAX, f) : 0;
	if (f)
		fclose(f);
	if (!len)
		ck_refuse("cannot read the manifest of %s (%s)", dir, f ? "it is empty" : strerror(errno));
	struct cb_dec d;
	int64_t left;
	const char *k;
	size_t kl;
	uint64_t v;
	cbd_init(&d, buf, len);
	int ok = cbd_map(&d, &left);
	t->dir = dir;
	while (ok && cbd_next_key(&d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "root")) {
			ok = cbd_uint(&d, &v);
			t->root = (int)v;
		} else if (cbd_key_is(k, kl, "processes")) {
			int64_t n;
			ok = cbd_array(&d, &n);
			while (ok && cbd_next_item(&d, &n)) {
				int64_t m;
				const char *pk;
				size_t pkl;
				t->procs = realloc(t->procs, (t->n + 1) * sizeof *t->procs);
				struct tree_proc *p = &t->procs[t->n++];
				memset(p, 0, sizeof *p);
				ok = cbd_map(&d, &m);
				while (ok && cbd_next_key(&d, &m, &pk, &pkl)) {
					const char *s;
					size_t sl;
					if (cbd_key_is(pk, pkl, "pid")) {
						ok = cbd_uint(&d, &v);
						p->pid = (int)v;
					} else if (cbd_key_is(pk, pkl, "image")) {
						ok = cbd_text(&d, &s, &sl) && !memchr(s, '/', sl);
						p->image = ok ? ck_dup_text(s, sl) : 0;
					} else {
						ok = cbd_skip(&d);
					}
				}
				ok = ok && p->pid && p->image;
			}
		} else if (cbd_key_is(k, kl, "shared_files")) {
			int64_t ng, group = 0;
			ok = cbd_array(&d, &ng);
			while (ok && cbd_next_item(&d, &ng)) {
				int64_t nm;
				ok = cbd_array(&d, &nm);
				while (ok && cbd_next_item(&d, &nm)) {
					int64_t two;
					uint64_t pid, fd;
					ok = cbd_array(&d, &two) && two == 2 && cbd_uint(&d, &pid) && cbd_uint(&d, &fd);
					t->groups = realloc(t->groups, (t->ngroups + 1) * sizeof *t->groups);
					t->groups[t->ngroups][0] = (int)pid;
					t->groups[t->ngroups][1] = (int)fd;
					t->groups[t->ngroups++][2] = (int)group;
				}
				group++;
			}
		} else {
			ok = cbd_skip(&d);
		}
	}
	if (!ok || d.error || !t->n)
		ck_refuse("the manifest of %s is damaged (it cannot be read)", dir);
}

/* The number of processes of the generation in dir; for one, its PID and
 * image name. */
CK_HIDDEN int ck_read_single_manifest(const char *dir, int *pid, const char **image)
{
	static struct tree t;
	memset(&t, 0, sizeof t);
	read_manifest(&t, dir);
	*pid = t.procs[0].pid;
	*image = t.procs[0].image;
	return (int)t.n;
}

static struct tree_proc *tree_find(struct tree *t, int pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->procs[i].pid == pid)
			return &t->procs[i];
	return 0;
}

static int by_pid(const void *a, const void *b)
{
	return ((const struct tree_proc *)a)->pid - ((const struct tree_proc *)b)->pid;
}

/* fork, but the child gets PID pid; -1 and errno on failure */
CK_HIDDEN long ck_spawn_with_pid(int pid)
{
	struct clone_args args;
	pid_t want = pid;
	memset(&args, 0, sizeof args);
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)&want;
	args.set_tid_size = 1;
	return syscall(SYS_clone3, &args, sizeof args);
}

static long spawn_with_pid(int pid)
{
	long child = ck_spawn_with_pid(pid);
	if (child < 0)
		ck_refuse("cannot create process %d with its original PID: %s", pid, strerror(errno));
	return child;
}

/* A child that had exited and was not yet reaped: it exits again, the same
 * way, and waits for its parent's wait() like the original did. */
static void spawn_zombie(int pid, int status)
{
	if (spawn_with_pid(pid))
		return;
	if (WIFSIGNALED(status)) {
		struct rlimit none = {0, 0};
		setrlimit(RLIMIT_CORE, &none);
		signal(WTERMSIG(status), SIG_DFL);
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_UNBLOCK, &all, 0);
		kill(getpid(), WTERMSIG(status));
	}
	_exit(WEXITSTATUS(status));
}

static void spawn_member(struct tree *t, struct tree_proc *p);

/* In the forked restore host of one process: its children first (they
 * inherit everything shared), then its zombies, its session and group,
 * then it becomes the process. */
static __attribute__((noreturn)) void member_main(struct tree *t, struct tree_proc *p, int via_stand_in)
{
	/* dies with the restore if its parent does (the restored shim sets the
	 * program's own back); not under a stand-in, which exits at once */
	if (!via_stand_in)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (size_t i = 0; i < t->n; i++) {
		struct tree_proc *c = &t->procs[i];
		if (c->img.ppid != p->pid)
			continue;
		spawn_member(t, c);
		if (tree_find(t, c->img.pgid))
			setpgid(c->pid, c->img.pgid); /* as shells do; the child does it too */
	}
	for (size_t i = 0; i < p->img.nchildren; i++)
		if (p->img.children[i].zombie)
			spawn_zombie(p->img.children[i].pid, p->img.children[i].status);
	if (p->img.sid == p->pid && setsid() < 0)
		ck_refuse("process %d cannot lead its own session again: %s", p->pid, strerror(errno));
	/* a group of the tree is joined; the group ckrun runs in is inherited */
	if (tree_find(t, p->img.pgid) && getpgid(0) != p->img.pgid && setpgid(0, p->img.pgid) < 0)
		ck_refuse("process %d cannot join its process group %d again: %s", p->pid, p->img.pgid, strerror(errno));
	become(&p->img, &t->objs);
}

/* A process whose session leader is gone (a daemon after the classic
 * double fork): a stand-in with the leader's PID opens the session again,
 * forks the process into it and exits, as the original leader did. */
static int needs_session_stand_in(struct tree *t, struct tree_proc *p)
{
	int s = p->img.sid;
	return s != p->pid && s != t->outside_sid && !tree_find(t, s) && getsid(0) != s;
}

static void spawn_member(struct tree *t, struct tree_proc *p)
{
	if (needs_session_stand_in(t, p)) {
		if (spawn_with_pid(p->img.sid) == 0) {
			if (setsid() < 0)
				ck_refuse("cannot open session %d again for process %d: %s", p->img.sid, p->pid, strerror(errno));
			if (spawn_with_pid(p->pid) == 0)
				member_main(t, p, 1);
			_exit(0);
		}
		return;
	}
	if (spawn_with_pid(p->pid) == 0)
		member_main(t, p, 0);
}

static volatile pid_t tree_root;

static void forward_to_root(int sig)
{
	if (tree_root > 0)
		kill(tree_root, sig);
}

static const int forwarded_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH};

/* Reaps until every process of the session is gone; the root's status is
 * the orchestrator's. */
static __attribute__((noreturn)) void reap_tree(int root)
{
	int code = 0;
	tree_root = root;
	for (;;) {
		int st;
		pid_t w = wait(&st);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			exit(code);
		if (w == root)
			code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
}

static __attribute__((noreturn)) void restore_tree(const char *dir, int verify_data, int fresh_namespace)
{
	static struct tree t;
	read_manifest(&t, dir);
	qsort(t.procs, t.n, sizeof *t.procs, by_pid);
	t.outside_sid = -1;
	struct ck_image **imgs = calloc(t.n, sizeof *imgs);
	int base = 3;
	for (size_t i = 0; i < t.n; i++) {
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", dir, t.procs[i].image);
		ck_load_and_check(&t.procs[i].img, ck_dup_text(path, strlen(path)), verify_data);
		if (t.procs[i].img.pid != t.procs[i].pid)
			ck_refuse("image %s holds PID %d, the manifest says %d", path, t.procs[i].img.pid, t.procs[i].pid);
		imgs[i] = &t.procs[i].img;
		/* ckrun started the root without a session of its own */
		if (t.procs[i].pid == t.root && imgs[i]->sid != imgs[i]->pid)
			t.outside_sid = imgs[i]->sid;
		int m = max_program_fd(imgs[i]) + 1;
		base = m > base ? m : base;
	}
	/* every PID and TID of the family must be free, before anything starts */
	for (size_t i = 0; !fresh_namespace && i < t.n; i++) {
		struct ck_image *img = imgs[i];
		for (size_t j = 0; j < img->nthreads; j++)
			if (kill(img->threads[j].tid, 0) == 0 || errno != ESRCH) {
				ck_verbose("thread ID %d is in use here", img->threads[j].tid);
				exit(CK_EXIT_PIDS_TAKEN);
			}
		for (size_t j = 0; j < img->nchildren; j++)
			if (img->children[j].zombie && (kill(img->children[j].pid, 0) == 0 || errno != ESRCH))
				exit(CK_EXIT_PIDS_TAKEN);
	}
	struct rlimit nofile;
	getrlimit(RLIMIT_NOFILE, &nofile);
	nofile.rlim_cur = nofile.rlim_max;
	setrlimit(RLIMIT_NOFILE, &nofile);
	ck_pipes_create_shared(imgs, t.n, &t.objs, base + 64);
	ck_sockets_create_shared(imgs, t.n, &t.objs, base + 64);
	ck_shm_create_shared(imgs, t.n, &t.objs, base + 64);
	ck_files_open_shared(imgs, t.n, &t.objs, (const int(*)[3])t.groups, t.ngroups, base + 64);

	if (!fresh_namespace)
		prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (size_t i = 0; i < sizeof forwarded_signals / sizeof forwarded_signals[0]; i++)
		signal(forwarded_signals[i], forward_to_root);
	/* processes whose parent is not in the session (the root, daemons that
	 * became ckrun's) are the orchestrator's children */
	for (size_t i = 0; i < t.n; i++)
		if (!tree_find(&t, t.procs[i].img.ppid))
			spawn_member(&t, &t.procs[i]);
	/* the orchestrator keeps nothing the processes share open */
	for (size_t i = 0; i < t.objs.npipes; i++) {
		close(t.objs.pipes[i].ends[0]);
		close(t.objs.pipes[i].ends[1]);
	}
	ck_sockets_close_objects(&t.objs);
	for (size_t i = 0; i < t.objs.nshm; i++)
		close(t.objs.shm[i].fd);
	for (size_t i = 0; i < t.objs.nshared; i++)
		close(t.objs.shared[i].ofd);
	reap_tree(t.root ? t.root : t.procs[0].pid);
}

/* ---- PID 1 of a fresh PID namespace ---- */

static volatile pid_t init_child;

static void forward_signal(int sig)
{
	if (init_child > 0)
		kill(init_child, sig);
}

static int image_pid(const char *path)
{
	static struct ck_image img;
	ck_image_load(&img, path);
	struct cb_dec d;
	int64_t left;
	const char *k;
	size_t kl;
	cbd_init(&d, img.meta, img.meta_len);
	if (cbd_map(&d, &left))
		while (cbd_next_key(&d, &left, &k, &kl)) {
			uint64_t v;
			if (cbd_key_is(k, kl, "pid") && cbd_uint(&d, &v))
				return (int)v;
			if (!cbd_skip(&d))
				break;
		}
	ck_refuse("image %s is corrupted: it names no process ID", path);
}

static __attribute__((noreturn)) void run_init(const char *path, int verify_data, int tree)
{
	if (tree) {
		if (mount(0, "/", 0, MS_REC | MS_PRIVATE, 0) != 0 ||
		    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0) != 0)
			ck_refuse("cannot mount /proc for the new PID namespace: %s", strerror(errno));
		restore_tree(path, verify_data, 1);
	}
	int pid = image_pid(path);
	if (pid == 1)
		ck_refuse("image %s is of a process with PID 1, which ckrun cannot restore", path);
	if (mount(0, "/", 0, MS_REC | MS_PRIVATE, 0) != 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0) != 0)
		ck_refuse("cannot mount /proc for the new PID namespace: %s", strerror(errno));
	static const int fwd[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH};
	for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++)
		signal(fwd[i], forward_signal);

	struct clone_args args;
	pid_t want = pid;
	memset(&args, 0, sizeof args);
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)&want;
	args.set_tid_size = 1;
	long child = syscall(SYS_clone3, &args, sizeof args);
	if (child < 0)
		ck_refuse("cannot create PID %d in the new PID namespace: %s", pid, strerror(errno));
	if (child == 0) {
		for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++)
			signal(fwd[i], SIG_DFL);
		char *argv[] = {"ckrun-restore", verify_data ? (char *)path : "--no-verify-data", verify_data ? 0 : (char *)path, 0};
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	init_child = (pid_t)child;
	for (;;) {
		int st;
		pid_t w = wait(&st);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			exit(1);
		if (w == init_child) {
			if (WIFEXITED(st))
				exit(WEXITSTATUS(st));
			exit(128 + WTERMSIG(st));
		}
	}
}

CK_EXPORT int ckrun_restore_main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "--front"))
		return ck_front_main(argc - 2, argv + 2);
	int init = 0, verify_data = 1, tree = 0;
	const char *path = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--init"))
			init = 1;
		else if (!strcmp(argv[i], "--tree"))
			tree = 1;
		else if (!strcmp(argv[i], "--no-verify-data"))
			verify_data = 0;
		else if (!strcmp(argv[i], "--help")) {
			printf("usage: ckrun-restore [--init] [--no-verify-data] IMAGE\n"
			       "       ckrun-restore [--init] [--no-verify-data] --tree GENERATION_DIR\n"
			       "Turns this process into the one saved in IMAGE, or restores every process of a\n"
			       "generation as their orchestrator. Run by `ckrun restart`.\n"
			       "  --init            be PID 1 of a fresh PID namespace\n"
			       "  --tree            restore the whole family of GENERATION_DIR (manifest.cbor)\n"
			       "  --no-verify-data  do not check the saved pages' checksums (ckrun already did)\n");
			return 0;
		} else
			path = argv[i];
	}
	if (!path)
		ck_refuse("no image given (usage: ckrun-restore [--init] [--no-verify-data] IMAGE)");
	if (init)
		run_init(path, verify_data, tree);
	if (tree)
		restore_tree(path, verify_data, 0);
	restore_image(path, verify_data);
}
