/* Process-wide state that is neither memory, threads, signals nor
 * descriptors: identity, command line, cwd, umask, personality, rlimits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

#define CK_NRLIMITS 16

static void save_cmdline(struct cb_enc *e, struct ck_scratch *s)
{
	long n = ck_read_file("/proc/self/cmdline", s->text, CK_SCRATCH_TEXT);
	cb_text(e, "cmdline");
	cb_array_open(e);
	for (long i = 0; n > 0 && i < n;) {
		size_t l = ck_strlen(s->text + i);
		cb_textn(e, s->text + i, l);
		i += (long)l + 1;
	}
	cb_close(e);
}

static void save_link(struct cb_enc *e, const char *key, const char *proc_path)
{
	char buf[4096];
	long n = ck_readlinkat(AT_FDCWD, proc_path, buf, sizeof buf);
	cb_text(e, key);
	if (n < 0)
		cb_null(e);
	else
		cb_textn(e, buf, (size_t)n);
}

static uint64_t status_umask(void)
{
	char buf[4096];
	if (ck_read_file("/proc/self/status", buf, sizeof buf) <= 0)
		return 022;
	for (const char *p = buf; *p;) {
		if (ck_starts_with(p, "Umask:")) {
			p += 6;
			while (*p == ' ' || *p == '\t')
				p++;
			uint64_t v = 0;
			while (*p >= '0' && *p <= '7')
				v = v * 8 + (uint64_t)(*p++ - '0');
			return v;
		}
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return 022;
}

/* One field (1-based, after the command) of /proc/<pid>/stat. */
static int stat_field(int pid, int field, uint64_t *out, char *state)
{
	char path[48], buf[1024];
	struct ck_str p;
	ck_str_init(&p, path, sizeof path);
	ck_str_add(&p, "/proc/");
	ck_str_dec(&p, pid);
	ck_str_add(&p, "/stat");
	long n = ck_read_file(path, buf, sizeof buf);
	const char *q = 0;
	for (long i = 0; i < n; i++)
		if (buf[i] == ')')
			q = buf + i;
	if (!q)
		return 0;
	q += 2;
	if (state)
		*state = *q;
	for (int f = 3; f < field && *q; f++) {
		while (*q && *q != ' ')
			q++;
		while (*q == ' ')
			q++;
	}
	if (*q == '-')
		q++;
	return ck_parse_dec(&q, out);
}

/* Children of every thread: live ones have images of their own; zombies
 * are recorded here with their wait status, so the parent's wait() still
 * finds them after a restart. */
static void save_children(struct cb_enc *e, struct ck_scratch *s)
{
	cb_text(e, "children");
	cb_array_open(e);
	for (int t = 0; t < ck_nthreads; t++) {
		char path[64];
		struct ck_str p;
		ck_str_init(&p, path, sizeof path);
		ck_str_add(&p, "/proc/self/task/");
		ck_str_dec(&p, ck_threads[t].tid);
		ck_str_add(&p, "/children");
		long n = ck_read_file(path, s->text, 65536);
		for (const char *q = s->text; n > 0 && *q;) {
			uint64_t pid, status = 0;
			char state = '?';
			if (!ck_parse_dec(&q, &pid))
				break;
			while (*q == ' ')
				q++;
			int zombie = stat_field((int)pid, 52 /* exit_code */, &status, &state) && state == 'Z';
			cb_map(e, zombie ? 3 : 2);
			cb_kv_uint(e, "pid", pid);
			cb_kv_bool(e, "zombie", zombie);
			if (zombie)
				cb_kv_uint(e, "status", status);
		}
	}
	cb_close(e);
}

CK_HIDDEN void ck_process_save(struct ck_writer *w, struct ck_scratch *s)
{
	struct cb_enc *e = &w->meta;
	struct ck_timespec now;
	struct utsname u;
	ck_clock_gettime(0 /* CLOCK_REALTIME */, &now);
	cb_kv_uint(e, "created_ns", (uint64_t)now.sec * 1000000000ULL + (uint64_t)now.nsec);
	if (CK_SYS1(SYS_uname, &u) == 0) {
		cb_kv_text(e, "hostname", u.nodename);
		cb_kv_text(e, "kernel", u.release);
		cb_kv_text(e, "machine", u.machine);
	}
	cb_kv_uint(e, "pid", (uint64_t)ck_getpid());
	cb_kv_uint(e, "ppid", (uint64_t)CK_SYS0(SYS_getppid));
	cb_kv_uint(e, "pgid", (uint64_t)CK_SYS1(SYS_getpgid, 0));
	cb_kv_uint(e, "sid", (uint64_t)CK_SYS1(SYS_getsid, 0));
	uint64_t tty = 0;
	stat_field((int)ck_getpid(), 7 /* tty_nr */, &tty, 0);
	cb_kv_uint(e, "tty", tty);
	cb_kv_uint(e, "pdeathsig", (uint64_t)ck_saved_pdeathsig);
	save_children(e, s);
	save_link(e, "exe", "/proc/self/exe");
	save_cmdline(e, s);
	{
		char comm[32];
		long n = ck_read_file("/proc/self/comm", comm, sizeof comm);
		if (n > 0 && comm[n - 1] == '\n')
			comm[n - 1] = 0;
		cb_kv_text(e, "comm", n > 0 ? comm : "");
	}
	save_link(e, "cwd", "/proc/self/cwd");
	cb_kv_uint(e, "umask", status_umask());
	cb_kv_uint(e, "personality", (uint64_t)CK_SYS1(SYS_personality, 0xffffffff));
	cb_text(e, "rlimits");
	cb_array(e, CK_NRLIMITS);
	for (int r = 0; r < CK_NRLIMITS; r++) {
		uint64_t lim[2] = {~0ULL, ~0ULL};
		CK_SYS4(SYS_prlimit64, 0, r, 0, lim);
		cb_array(e, 2);
		for (int k = 0; k < 2; k++)
			cb_int(e, lim[k] == ~0ULL ? -1 : (int64_t)lim[k]);
	}
	cb_kv_uint(e, "shim_abi", CK_SHIM_ABI);
	cb_kv_uint(e, "signal", (uint64_t)ck_session.sig);
	cb_kv_int(e, "ctl_fd", ck_session.ctl_fd);
}

/* ---- restore host ---- */

static const char *take_text(struct cb_dec *d)
{
	const char *s;
	size_t n;
	if (cbd_is_null(d))
		return 0;
	if (!cbd_text(d, &s, &n))
		return 0;
	return ck_dup_text(s, n);
}

/* Handles the top-level keys that belong to the process; returns 1 when
 * the key was one of them (and consumed), 0 otherwise, -1 on bad data. */
CK_HIDDEN int ck_process_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_image *img)
{
	uint64_t v;
	if (cbd_key_is(k, kl, "pid")) {
		if (!cbd_uint_max(d, CK_PID_MAX, &v) || v < 1)
			return -1;
		img->pid = (int)v;
	} else if (cbd_key_is(k, kl, "exe")) {
		img->exe = take_text(d);
	} else if (cbd_key_is(k, kl, "cwd")) {
		img->cwd = take_text(d);
	} else if (cbd_key_is(k, kl, "kernel")) {
		img->kernel = take_text(d);
	} else if (cbd_key_is(k, kl, "umask")) {
		if (!cbd_uint_max(d, 0777, &img->umask))
			return -1;
	} else if (cbd_key_is(k, kl, "personality")) {
		if (!cbd_uint_max(d, UINT32_MAX, &img->personality))
			return -1;
	} else if (cbd_key_is(k, kl, "ppid") || cbd_key_is(k, kl, "pgid") || cbd_key_is(k, kl, "sid")) {
		/* 0: a process outside the PID namespace */
		if (!cbd_uint_max(d, CK_PID_MAX, &v))
			return -1;
		int *field = cbd_key_is(k, kl, "ppid") ? &img->ppid : cbd_key_is(k, kl, "pgid") ? &img->pgid : &img->sid;
		*field = (int)v;
	} else if (cbd_key_is(k, kl, "pdeathsig")) {
		if (!cbd_uint_max(d, 64, &img->pdeathsig))
			return -1;
	} else if (cbd_key_is(k, kl, "children")) {
		int64_t n;
		size_t cap = 4;
		if (!cbd_array(d, &n))
			return -1;
		img->children = calloc(cap, sizeof *img->children);
		while (cbd_next_item(d, &n)) {
			int64_t left;
			const char *ck;
			size_t ckl;
			uint64_t cv;
			if (img->nchildren == cap) {
				cap *= 2;
				img->children = realloc(img->children, cap * sizeof *img->children);
			}
			struct ck_img_child *c = &img->children[img->nchildren++];
			memset(c, 0, sizeof *c);
			if (!cbd_map(d, &left))
				return -1;
			while (cbd_next_key(d, &left, &ck, &ckl)) {
				if (cbd_key_is(ck, ckl, "zombie")) {
					if (!cbd_bool(d, &c->zombie))
						return -1;
				} else if (cbd_peek(d) == CB_UINT && cbd_uint(d, &cv)) {
					if (cbd_key_is(ck, ckl, "pid")) {
						if (cv < 1 || cv > CK_PID_MAX)
							return -1;
						c->pid = (int)cv;
					} else if (cbd_key_is(ck, ckl, "status")) {
						if (cv > 0xffff)
							return -1;
						c->status = (int)cv;
					}
				} else if (!cbd_skip(d)) {
					return -1;
				}
			}
		}
	} else if (cbd_key_is(k, kl, "shim_abi")) {
		if (!cbd_uint_max(d, INT32_MAX, &v))
			return -1;
		img->shim_abi = (int)v;
	} else if (cbd_key_is(k, kl, "signal")) {
		if (!cbd_uint_max(d, 64, &v) || v < 1)
			return -1;
		img->sig = (int)v;
	} else if (cbd_key_is(k, kl, "ctl_fd")) {
		int64_t fd;
		if (!cbd_int_range(d, -1, INT32_MAX, &fd))
			return -1;
		img->ctl_fd = (int)fd;
	} else if (cbd_key_is(k, kl, "rlimits")) {
		int64_t n;
		if (!cbd_array(d, &n) || n < 0 || n > CK_NRLIMITS)
			return -1;
		img->nrlimits = (int)n;
		for (int64_t i = 0; i < n; i++) {
			int64_t m;
			if (!cbd_array(d, &m) || m != 2 || !cbd_int(d, &img->rlim[i][0]) || !cbd_int(d, &img->rlim[i][1]))
				return -1;
		}
	} else {
		return 0;
	}
	return d->error ? -1 : 1;
}

static const char *rlimit_name(int r)
{
	static const char *names[CK_NRLIMITS] = {
		"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
		"RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
		"RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
		"RLIMIT_RTPRIO", "RLIMIT_RTTIME",
	};
	return r >= 0 && r < CK_NRLIMITS ? names[r] : "?";
}

/* RLIMIT_NOFILE is left to the restore core: the restore host still needs
 * its own descriptors above the program's until the very end. */
CK_HIDDEN void ck_process_restore(struct ck_image *img)
{
	if (img->cwd && chdir(img->cwd) != 0)
		ck_refuse("the working directory %s is gone (%s); create it or restart from where it exists",
			  img->cwd, strerror(errno));
	umask((mode_t)img->umask);
	personality((unsigned long)img->personality);
	for (int r = 0; r < img->nrlimits; r++) {
		if (r == RLIMIT_NOFILE)
			continue;
		struct rlimit want = {
			img->rlim[r][0] < 0 ? RLIM_INFINITY : (rlim_t)img->rlim[r][0],
			img->rlim[r][1] < 0 ? RLIM_INFINITY : (rlim_t)img->rlim[r][1],
		};
		if (setrlimit(r, &want) != 0) {
			struct rlimit have;
			getrlimit(r, &have);
			ck_refuse("cannot set %s to the saved limit (soft %lld, hard %lld; here the hard limit is %lld): %s",
				  rlimit_name(r), (long long)img->rlim[r][0], (long long)img->rlim[r][1],
				  have.rlim_max == RLIM_INFINITY ? -1LL : (long long)have.rlim_max, strerror(errno));
		}
	}
}

/* ---- the family ends with ckrun ---- */

/* Appends the children of every thread of pid to pids (up to cap). */
static int add_children(int pid, int *pids, int n, int cap)
{
	char path[64], names[4096], kids[4096];
	struct ck_str m;
	ck_str_init(&m, path, sizeof path);
	ck_str_add(&m, "/proc/");
	ck_str_dec(&m, pid);
	ck_str_add(&m, "/task");
	long dfd = ck_openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return n;
	long got;
	while ((got = ck_getdents64((int)dfd, names, sizeof names)) > 0) {
		for (long off = 0; off < got;) {
			struct ck_dirent64 *d = (void *)(names + off);
			off += d->reclen;
			if (d->name[0] < '0' || d->name[0] > '9')
				continue;
			char kpath[96];
			struct ck_str k;
			ck_str_init(&k, kpath, sizeof kpath);
			ck_str_add(&k, path);
			ck_str_add(&k, "/");
			ck_str_add(&k, d->name);
			ck_str_add(&k, "/children");
			long len = ck_read_file(kpath, kids, sizeof kids - 1);
			if (len <= 0)
				continue;
			kids[len] = 0;
			for (const char *p = kids; *p && n < cap;) {
				uint64_t child;
				if (!ck_parse_dec(&p, &child))
					break;
				pids[n++] = (int)child;
				while (*p == ' ')
					p++;
			}
		}
	}
	ck_close((int)dfd);
	return n;
}

/* Every descendant of this process, killed (SIGKILL). Async-signal-safe. */
CK_HIDDEN void ck_kill_descendants(void)
{
	int pids[1024];
	int n = add_children((int)ck_getpid(), pids, 0, 1024);
	for (int next = 0; next < n; next++)
		n = add_children(pids[next], pids, n, 1024);
	for (int i = 0; i < n; i++)
		ck_kill(pids[i], SIGKILL);
}
