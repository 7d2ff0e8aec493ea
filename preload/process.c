/* Process-wide state that is neither memory, threads, signals nor
 * descriptors: identity, command line, cwd, umask, personality, rlimits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
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

/* A working directory deleted at the checkpoint: its mode and owner, to
 * make it again (an empty directory, removed once entered). */
static void save_deleted_cwd(struct cb_enc *e)
{
	char buf[4096];
	struct ck_stat st;
	long n = ck_readlinkat(AT_FDCWD, "/proc/self/cwd", buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	if (!ck_ends_with(buf, " (deleted)") || CK_SYS4(SYS_newfstatat, AT_FDCWD, ".", &st, 0) < 0 || st.nlink != 0)
		return;
	cb_text(e, "cwd_deleted");
	cb_array(e, 5);
	cb_uint(e, st.mode & 07777);
	cb_uint(e, st.uid);
	cb_uint(e, st.gid);
	cb_uint(e, st.dev);
	cb_uint(e, st.ino);
}

/* A working directory under /proc/PID of a process that has exited: no
 * restart can enter it again. */
static void fail_cwd_proc_gone(struct ck_writer *w)
{
	char buf[4096];
	struct ck_stat st;
	long n = ck_readlinkat(AT_FDCWD, "/proc/self/cwd", buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	if (n <= 0 || !ck_proc_entry_gone(buf, CK_SYS4(SYS_newfstatat, AT_FDCWD, ".", &st, 0) == 0 ? &st : 0))
		return;
	ck_writer_fail(w, -ESRCH, "the working directory is in /proc of a process that has exited, which no restart can enter again");
	struct ck_str m;
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "the working directory is ");
	ck_str_add(&m, buf);
	ck_str_add(&m, "; checkpoint again once the program has changed it (chdir); the program runs on");
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
			/* a zombie still counts in its group and session (getpgid finds
			 * it; it may be what keeps a group or session in existence) */
			uint64_t pgid = 0, sid = 0;
			/* 0: a leader outside the PID namespace ckrun runs in */
			int ids = zombie && stat_field((int)pid, 5 /* pgrp */, &pgid, 0) && stat_field((int)pid, 6 /* session */, &sid, 0);
			cb_map(e, zombie ? (ids ? 5 : 3) : 2);
			cb_kv_uint(e, "pid", pid);
			cb_kv_bool(e, "zombie", zombie);
			if (zombie)
				cb_kv_uint(e, "status", status);
			if (ids) {
				cb_kv_uint(e, "pgid", pgid);
				cb_kv_uint(e, "sid", sid);
			}
		}
	}
	cb_close(e);
}

/* ---- credentials ----
 * The kernel keeps them per thread. glibc keeps its threads' equal (the
 * setxid broadcast), but a raw system call, setfsuid, capset or a prctl
 * changes only the calling thread's: the image holds the leader's as the
 * process's, and a thread whose own differ carries them in its map. */

static const char *const cred_fields[] = {
	"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:",
};

static int same_value(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	while (*a == *b && *a && *a != '\n') {
		a++;
		b++;
	}
	return (!*a || *a == '\n') && (!*b || *b == '\n');
}

static long read_task_status(int tid, char *buf, size_t cap)
{
	char path[64];
	struct ck_str p;
	ck_str_init(&p, path, sizeof path);
	ck_str_add(&p, "/proc/self/task/");
	ck_str_dec(&p, tid);
	ck_str_add(&p, "/status");
	return ck_read_file(path, buf, cap);
}

/* Decimal numbers separated by blanks, up to the end of the line. */
static void put_decimals(struct cb_enc *e, const char *p)
{
	uint64_t v;
	while (p && *p && *p != '\n') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!ck_parse_dec(&p, &v))
			break;
		cb_uint(e, v);
	}
}

static uint64_t hex_value(const char *p)
{
	uint64_t v = 0;
	if (p)
		ck_parse_hex(&p, &v);
	return v;
}

/* Whether thread t's credentials (its status text in other) are not the
 * leader's (in mine). */
static int creds_differ(const char *mine, const char *other, int t)
{
	if (ck_threads[t].securebits != ck_threads[0].securebits)
		return 1;
	for (size_t f = 0; f < sizeof cred_fields / sizeof cred_fields[0]; f++)
		if (!same_value(ck_status_value(mine, cred_fields[f]), ck_status_value(other, cred_fields[f])))
			return 1;
	return 0;
}

static int status_fail(struct ck_writer *w, long n, int tid)
{
	ck_writer_fail(w, n < 0 ? n : -EIO, "cannot read a thread's credentials from /proc/self/task/TID/status");
	struct ck_str d;
	ck_str_init(&d, w->err_detail, sizeof w->err_detail);
	ck_str_add(&d, "thread ");
	ck_str_dec(&d, tid);
	return 0;
}

/* Marks every thread whose credentials are not the leader's (text in
 * mine): each of them saves its own (ck_thread_creds_save). */
static int mark_own_creds(struct ck_writer *w, struct ck_scratch *s, const char *mine)
{
	char *other = s->text + CK_SCRATCH_TEXT / 2;
	ck_threads[0].own_creds = 0;
	for (int t = 1; t < ck_nthreads; t++) {
		long n = read_task_status(ck_threads[t].tid, other, CK_SCRATCH_TEXT / 2);
		if (n <= 0 || !ck_status_value(other, "CapAmb:"))
			return status_fail(w, n, ck_threads[t].tid);
		ck_threads[t].own_creds = creds_differ(mine, other, t);
	}
	return 1;
}

/* A creds map from a thread's status text: the process's (with dumpable,
 * which is the process's alone) or a thread's own (dumpable < 0). */
static void put_creds(struct cb_enc *e, const char *st, long securebits, long dumpable)
{
	static const struct {
		const char *key, *field;
	} caps[] = {
		{"effective", "CapEff:"}, {"permitted", "CapPrm:"}, {"inheritable", "CapInh:"},
		{"bounding", "CapBnd:"}, {"ambient", "CapAmb:"},
	};
	uint64_t nnp = 0;
	const char *q = ck_status_value(st, "NoNewPrivs:");
	if (q)
		ck_parse_dec(&q, &nnp);
	cb_map(e, dumpable < 0 ? 6 : 7);
	cb_text(e, "uid");
	cb_array_open(e);
	put_decimals(e, ck_status_value(st, "Uid:"));
	cb_close(e);
	cb_text(e, "gid");
	cb_array_open(e);
	put_decimals(e, ck_status_value(st, "Gid:"));
	cb_close(e);
	cb_text(e, "groups");
	cb_array_open(e);
	put_decimals(e, ck_status_value(st, "Groups:"));
	cb_close(e);
	cb_text(e, "caps");
	cb_map(e, sizeof caps / sizeof caps[0]);
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
		cb_kv_uint(e, caps[i].key, hex_value(ck_status_value(st, caps[i].field)));
	cb_kv_uint(e, "securebits", (uint64_t)securebits);
	cb_kv_bool(e, "no_new_privs", nnp != 0);
	if (dumpable >= 0)
		cb_kv_uint(e, "dumpable", (uint64_t)dumpable);
}

/* "creds": the process's user and group IDs, groups, capabilities,
 * securebits, no_new_privs and dumpable (docs/image-format.md): the
 * leader's; threads whose own differ are marked to save theirs. */
static void save_creds(struct ck_writer *w, struct ck_scratch *s)
{
	char *mine = s->text;
	long n = read_task_status(ck_threads[0].tid, mine, CK_SCRATCH_TEXT / 2);
	if (n <= 0 || !ck_status_value(mine, "CapAmb:")) {
		ck_writer_fail(w, -EIO, "cannot read the process's credentials from /proc/self/task/TID/status");
		return;
	}
	if (!mark_own_creds(w, s, mine))
		return;
	cb_text(&w->meta, "creds");
	put_creds(&w->meta, mine, ck_threads[0].securebits, ck_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
}

CK_HIDDEN void ck_thread_creds_save(struct ck_writer *w, struct ck_scratch *s, const struct ck_thread *t)
{
	long n = read_task_status(t->tid, s->text, CK_SCRATCH_TEXT / 2);
	cb_text(&w->meta, "creds");
	if (n <= 0 || !ck_status_value(s->text, "CapAmb:")) {
		status_fail(w, n, t->tid);
		cb_null(&w->meta); /* the image is not written */
		return;
	}
	put_creds(&w->meta, s->text, t->securebits, -1);
}

/* Paths the process sees are relative to its root: after a chroot they
 * name other files than the restart would open. Refused until ckrun can
 * restore a root of its own. */
static void refuse_changed_root(struct ck_writer *w)
{
	struct ck_stat st;
	if (!ck_session.have_root || CK_SYS4(SYS_newfstatat, AT_FDCWD, "/", &st, 0) < 0 ||
	    (st.dev == ck_session.root_dev && st.ino == ck_session.root_ino))
		return;
	struct ck_str m;
	ck_writer_fail(w, -EOPNOTSUPP, "the program changed its root directory");
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "process ");
	ck_str_dec(&m, ck_getpid());
	ck_str_add(&m, " runs in a chroot (its / is not ckrun's); ckrun cannot restore a changed root directory yet, "
		       "so it cannot checkpoint it; the program runs on");
}

CK_HIDDEN void ck_process_save(struct ck_writer *w, struct ck_scratch *s)
{
	refuse_changed_root(w);
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
	save_creds(w, s);
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
	save_deleted_cwd(e);
	fail_cwd_proc_gone(w);
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
	ck_proc_attrs_save(w);
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

/* [real, effective, saved, filesystem] */
static int parse_ids(struct cb_dec *d, uint32_t out[4])
{
	int64_t n;
	uint64_t v;
	int i = 0;
	if (!cbd_array(d, &n))
		return 0;
	while (cbd_next_item(d, &n)) {
		if (i >= 4 || !cbd_uint(d, &v) || v > UINT32_MAX)
			return 0;
		out[i++] = (uint32_t)v;
	}
	return i == 4 && !d->error;
}

static int parse_groups(struct cb_dec *d, struct ck_creds *c, uint32_t **groups)
{
	int64_t n;
	uint64_t v;
	size_t cap = 16;
	free(*groups);
	if (!cbd_array(d, &n) || !(*groups = malloc(cap * sizeof **groups)))
		return 0;
	c->ngroups = 0;
	while (cbd_next_item(d, &n)) {
		if (c->ngroups >= CK_MAX_GROUPS || !cbd_uint(d, &v) || v > UINT32_MAX)
			return 0;
		if (c->ngroups == cap) {
			uint32_t *more = realloc(*groups, (cap *= 2) * sizeof **groups);
			if (!more)
				return 0;
			*groups = more;
		}
		(*groups)[c->ngroups++] = (uint32_t)v;
	}
	return !d->error;
}

static int parse_caps(struct cb_dec *d, struct ck_creds *c, int *seen)
{
	int64_t n;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &n))
		return 0;
	while (cbd_next_key(d, &n, &k, &kl)) {
		uint64_t *field = cbd_key_is(k, kl, "effective")     ? &c->cap_eff
				  : cbd_key_is(k, kl, "permitted")   ? &c->cap_prm
				  : cbd_key_is(k, kl, "inheritable") ? &c->cap_inh
				  : cbd_key_is(k, kl, "bounding")    ? &c->cap_bnd
				  : cbd_key_is(k, kl, "ambient")     ? &c->cap_amb
								     : 0;
		if (field ? !cbd_uint(d, field) : !cbd_skip(d))
			return 0;
		*seen += field != 0;
	}
	return !d->error;
}

/* A creds map (docs/image-format.md): the process's, or a thread's own
 * (thread: without dumpable, the process's alone). 1 when every part is
 * there. */
enum { CREDS_UID = 1, CREDS_GID = 2, CREDS_GROUPS = 4, CREDS_SECUREBITS = 8, CREDS_NNP = 16, CREDS_DUMPABLE = 32 };
static int parse_creds(struct cb_dec *d, struct ck_creds *c, uint32_t **groups, int thread)
{
	int64_t n;
	const char *k;
	size_t kl;
	int seen = 0, caps = 0;
	uint64_t v;
	if (!cbd_map(d, &n))
		return 0;
	while (cbd_next_key(d, &n, &k, &kl)) {
		int ok;
		if (cbd_key_is(k, kl, "uid") || cbd_key_is(k, kl, "gid")) {
			int uid = cbd_key_is(k, kl, "uid");
			ok = parse_ids(d, uid ? c->uid : c->gid);
			seen |= uid ? CREDS_UID : CREDS_GID;
		} else if (cbd_key_is(k, kl, "groups")) {
			ok = parse_groups(d, c, groups);
			seen |= CREDS_GROUPS;
		} else if (cbd_key_is(k, kl, "caps")) {
			ok = parse_caps(d, c, &caps);
		} else if (cbd_key_is(k, kl, "securebits")) {
			ok = cbd_uint(d, &c->securebits);
			seen |= CREDS_SECUREBITS;
		} else if (cbd_key_is(k, kl, "no_new_privs")) {
			ok = cbd_bool(d, &c->no_new_privs);
			seen |= CREDS_NNP;
		} else if (!thread && cbd_key_is(k, kl, "dumpable")) {
			ok = cbd_uint(d, &v) && v <= 2;
			c->dumpable = (int)v;
			seen |= CREDS_DUMPABLE;
		} else {
			ok = cbd_skip(d);
		}
		if (!ok)
			return 0;
	}
	int want = CREDS_UID | CREDS_GID | CREDS_GROUPS | CREDS_SECUREBITS | CREDS_NNP | (thread ? 0 : CREDS_DUMPABLE);
	return !d->error && seen == want && caps == 5;
}

/* A thread's own "creds" (absent: the thread has the process's). */
CK_HIDDEN int ck_thread_creds_parse(struct cb_dec *d, struct ck_img_thread *t)
{
	t->has_creds = parse_creds(d, &t->creds, &t->groups, 1);
	return t->has_creds;
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
	} else if (cbd_key_is(k, kl, "cwd_deleted")) {
		int64_t m;
		uint64_t mode, uid, gid;
		if (!cbd_array(d, &m) || (m != 3 && m != 5) || !cbd_uint_max(d, 07777, &mode) ||
		    !cbd_uint_max(d, UINT32_MAX, &uid) || !cbd_uint_max(d, UINT32_MAX, &gid))
			return -1;
		/* dev and ino since issue 12 */
		if (m == 5 && (!cbd_uint(d, &img->cwd_dev) || !cbd_uint(d, &img->cwd_ino)))
			return -1;
		img->cwd_has_inode = m == 5;
		img->cwd_deleted = 1;
		img->cwd_mode = (uint32_t)mode;
		img->cwd_uid = (uint32_t)uid;
		img->cwd_gid = (uint32_t)gid;
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
			c->pgid = c->sid = -1;
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
					} else if (cbd_key_is(ck, ckl, "pgid") || cbd_key_is(ck, ckl, "sid")) {
						if (cv > CK_PID_MAX)
							return -1;
						*(cbd_key_is(ck, ckl, "pgid") ? &c->pgid : &c->sid) = (int)cv;
					}
				} else if (!cbd_skip(d)) {
					return -1;
				}
			}
		}
	} else if (cbd_key_is(k, kl, "creds")) {
		if (!(img->has_creds = parse_creds(d, &img->creds, &img->groups, 0)))
			return -1;
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
		return ck_proc_attrs_parse(d, k, kl, img);
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

/* The working directory was deleted at the checkpoint: an empty directory
 * of the same name, with its mode and owner, entered and removed again. */
static void enter_deleted_cwd(const struct ck_image *img, const struct ck_objects *objs)
{
	char path[4096];
	/* made with the descriptors of the same directory (deleted.c) */
	int made = img->cwd_has_inode ? ck_objects_find(objs, "inode", img->cwd_dev, img->cwd_ino) : -1;
	if (made >= 0) {
		if (fchdir(made) != 0)
			ck_refuse("cannot enter the recreated working directory %s: %s", img->cwd, strerror(errno));
		return;
	}
	size_t n = strlen(img->cwd);
	if (n <= 10 || strcmp(img->cwd + n - 10, " (deleted)"))
		ck_refuse("image %s is corrupted: a deleted working directory without \" (deleted)\" (%s)", img->path, img->cwd);
	snprintf(path, sizeof path, "%.*s", (int)(n - 10), img->cwd);
	if (mkdir(path, 0700) != 0)
		ck_refuse("the working directory %s was deleted at the checkpoint, and ckrun cannot make it again to enter it "
			  "(%s); remove what has its name, or restart from an image taken elsewhere",
			  path, strerror(errno));
	/* through a descriptor: never a link planted in its place meanwhile */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	errno = 0;
	if (fd < 0 || fchdir(fd) != 0 || fchown(fd, img->cwd_uid, img->cwd_gid) != 0 || fchmod(fd, img->cwd_mode) != 0 ||
	    rmdir(path) != 0 || fstat(fd, &st) != 0 || st.st_nlink != 0)
		ck_refuse("cannot make the deleted working directory %s again: %s", path,
			  errno ? strerror(errno) : "another directory took its place");
	close(fd);
}

/* RLIMIT_NOFILE is left to the restore core: the restore host still needs
 * its own descriptors above the program's until the very end. */
CK_HIDDEN void ck_process_restore(struct ck_image *img, const struct ck_objects *objs)
{
	if (img->cwd && img->cwd_deleted)
		enter_deleted_cwd(img, objs);
	else if (img->cwd && chdir(img->cwd) != 0)
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

/* ---- credentials: what this restore may grant (restore host) ---- */

#define SECBIT_LOCKS 0x2aUL        /* the *_LOCKED bits of linux/securebits.h */
#define SECBIT_NO_SETUID_FIXUP 0x4UL

static const char *const cap_names[] = {
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
	"LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
	"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
	"CHECKPOINT_RESTORE",
};
enum { CAP_SETGID_ = 6, CAP_SETUID_ = 7, CAP_SETPCAP_ = 8 };

/* "CAP_A, CAP_B" for the bits of mask (a static buffer: for one message). */
static const char *cap_list(uint64_t mask)
{
	static char buf[1024];
	size_t len = 0;
	buf[0] = 0;
	for (int b = 0; b < 64 && len < sizeof buf - 40; b++) {
		if (!(mask & (1ULL << b)))
			continue;
		if (b < (int)(sizeof cap_names / sizeof cap_names[0]))
			len += (size_t)snprintf(buf + len, sizeof buf - len, "%sCAP_%s", len ? ", " : "", cap_names[b]);
		else
			len += (size_t)snprintf(buf + len, sizeof buf - len, "%scapability %d", len ? ", " : "", b);
	}
	return buf;
}

/* The restore host's own credentials. */
struct host_creds {
	uint32_t uid[4], gid[4];
	uint64_t cap_eff, cap_prm, cap_inh, cap_bnd;
	int no_new_privs, own_userns;
	long securebits;
	uint32_t *groups;
	uint32_t ngroups;
	char uid_map[4096], gid_map[4096];
};

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	while (f && buf) {
		size_t got = fread(buf + n, 1, cap - 1 - n, f);
		n += got;
		if (n < cap - 1)
			break;
		buf = realloc(buf, cap *= 2);
	}
	if (f)
		fclose(f);
	if (!f || !buf)
		ck_refuse("cannot read %s: %s", path, strerror(errno));
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

static void read_host_creds(struct host_creds *h)
{
	memset(h, 0, sizeof *h);
	char *st = slurp("/proc/self/status", 0);
	const char *q;
	if ((q = ck_status_value(st, "Uid:")))
		sscanf(q, "%u %u %u %u", &h->uid[0], &h->uid[1], &h->uid[2], &h->uid[3]);
	if ((q = ck_status_value(st, "Gid:")))
		sscanf(q, "%u %u %u %u", &h->gid[0], &h->gid[1], &h->gid[2], &h->gid[3]);
	h->cap_eff = hex_value(ck_status_value(st, "CapEff:"));
	h->cap_prm = hex_value(ck_status_value(st, "CapPrm:"));
	h->cap_inh = hex_value(ck_status_value(st, "CapInh:"));
	h->cap_bnd = hex_value(ck_status_value(st, "CapBnd:"));
	if ((q = ck_status_value(st, "NoNewPrivs:")))
		h->no_new_privs = *q == '1';
	h->groups = malloc(CK_MAX_GROUPS * sizeof *h->groups);
	for (q = ck_status_value(st, "Groups:"); q && h->groups && h->ngroups < CK_MAX_GROUPS;) {
		uint64_t v;
		while (*q == ' ' || *q == '\t')
			q++;
		if (!ck_parse_dec(&q, &v))
			break;
		h->groups[h->ngroups++] = (uint32_t)v;
	}
	free(st);
	h->securebits = prctl(PR_GET_SECUREBITS);
	char *m = slurp("/proc/self/uid_map", 0);
	snprintf(h->uid_map, sizeof h->uid_map, "%s", m);
	free(m);
	m = slurp("/proc/self/gid_map", 0);
	snprintf(h->gid_map, sizeof h->gid_map, "%s", m);
	free(m);
	unsigned long a, b, n;
	h->own_userns = !(sscanf(h->uid_map, "%lu %lu %lu", &a, &b, &n) == 3 && a == 0 && b == 0 && n == 4294967295UL);
}

/* Whether id exists in this user namespace (a line of its map covers it). */
static int id_mapped(const char *map, uint32_t id)
{
	for (const char *p = map; *p;) {
		unsigned long inside, outside, count;
		if (sscanf(p, "%lu %lu %lu", &inside, &outside, &count) == 3 && id >= inside && id - inside < count)
			return 1;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return 0;
}

static int same_ids(const uint32_t *a, const uint32_t *b)
{
	return !memcmp(a, b, 4 * sizeof *a);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The same groups in any order (sorts both lists). */
static int same_group_set(uint32_t *a, uint32_t na, uint32_t *b, uint32_t nb)
{
	if (na != nb)
		return 0;
	qsort(a, na, sizeof *a, cmp_u32);
	qsort(b, nb, sizeof *b, cmp_u32);
	return !memcmp(a, b, na * sizeof *a);
}

/* Whether groups (n of them) are the restore host's. */
static int host_has_groups(const uint32_t *groups, uint32_t n, struct host_creds *h)
{
	if (n != h->ngroups)
		return 0;
	uint32_t *a = malloc((n + 1) * sizeof *a);
	if (!a)
		ck_refuse("no memory to compare %u supplementary groups", n);
	memcpy(a, groups, n * sizeof *a);
	int same = same_group_set(a, n, h->groups, h->ngroups);
	free(a);
	return same;
}

static const char *ids_text(const uint32_t ids[4], char *buf, size_t cap)
{
	if (ids[0] == ids[1] && ids[1] == ids[2] && ids[2] == ids[3])
		snprintf(buf, cap, "%u", ids[0]);
	else
		snprintf(buf, cap, "%u (real), %u (effective), %u (saved), %u (filesystem)", ids[0], ids[1], ids[2], ids[3]);
	return buf;
}

/* Whose credentials a message is about: "the process of image X", or
 * "thread T of image X" for a thread's own (tid 0: the process's). */
struct creds_owner {
	const struct ck_image *img;
	int tid;
	char text[4200];
};

static const char *owner_text(struct creds_owner *o, const struct ck_image *img, int tid)
{
	o->img = img;
	o->tid = tid;
	if (tid)
		snprintf(o->text, sizeof o->text, "thread %d of image %s", tid, img->path);
	else
		snprintf(o->text, sizeof o->text, "the process of image %s", img->path);
	return o->text;
}

static void need_cap(const struct creds_owner *o, const struct host_creds *h, int cap, const char *what)
{
	if (!(h->cap_eff & (1ULL << cap)))
		ck_refuse("%s ran with %s; setting them again needs CAP_%s, which this restart does not have: restart it "
			  "as root", o->text, what, cap_names[cap]);
}

static uint64_t any_caps(const struct ck_creds *c)
{
	return c->cap_prm | c->cap_eff | c->cap_inh | c->cap_amb;
}

/* A file an ordinary user owns (trusted with --trust-owner) cannot hold
 * credentials of another user, or capabilities, in any thread. */
static void check_owned_creds(const struct creds_owner *o, const char *file, uint32_t owner, const struct ck_creds *c)
{
	int foreign = 0;
	char thread[32] = "";
	for (int k = 0; k < 4; k++)
		foreign |= c->uid[k] != owner;
	if (o->tid)
		snprintf(thread, sizeof thread, " (in thread %d)", o->tid);
	if (owner != 0 && (foreign || any_caps(c)))
		ck_refuse("image %s is owned by uid %u but holds a process that ran as uid %u%s%s: no process of that user "
			  "can have written it (it was made or changed by hand); ckrun refuses it even with --trust-owner",
			  file, (unsigned)owner, c->uid[1], any_caps(c) ? " with capabilities" : "", thread);
}

/* The image, and every image it refers to, must belong to the user who
 * restarts it, unless they said --trust-owner (CKRUN_TRUST_OWNER=1 from
 * ckrun); even then, a file an ordinary user owns cannot hold a process of
 * another user or one with capabilities: no process of theirs made it. */
static void check_owner(const struct ck_image *img)
{
	struct stat st;
	uid_t me = geteuid();
	int trust = getenv("CKRUN_TRUST_OWNER") && !strcmp(getenv("CKRUN_TRUST_OWNER"), "1");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", img->path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof dir, ".");
	for (int i = -1; i < img->nimages; i++) {
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", dir, i < 0 ? "" : img->images[i]);
		if (i < 0 ? fstat(img->fd, &st) != 0 : stat(path, &st) != 0)
			continue; /* a missing image is reported where it is opened */
		const char *name = i < 0 ? img->path : path;
		if (st.st_uid == me)
			continue;
		if (!trust)
			ck_refuse("image %s is owned by uid %u, not by uid %u, who runs this restart: a restart runs the "
				  "program an image holds, so ckrun restarts only its own user's; if you trust the owner, "
				  "say so with ckrun restart --trust-owner", name, (unsigned)st.st_uid, (unsigned)me);
		struct creds_owner o;
		owner_text(&o, img, 0);
		check_owned_creds(&o, name, (uint32_t)st.st_uid, &img->creds);
		for (size_t t = 0; t < img->nthreads; t++)
			if (img->threads[t].has_creds) {
				owner_text(&o, img, img->threads[t].tid);
				check_owned_creds(&o, name, (uint32_t)st.st_uid, &img->threads[t].creds);
			}
	}
}

/* One set of credentials (the process's, or a thread's own) is one the
 * restore core can give here, and may: each thread starts with the restore
 * host's and sets its own, so each is compared with the host's. */
static void check_one_creds(const struct creds_owner *o, const struct ck_creds *c, const uint32_t *groups,
			    struct host_creds *h)
{
	char a[160], b[160];
	if ((c->cap_eff & ~c->cap_prm) || (c->cap_amb & ~(c->cap_prm & c->cap_inh)))
		ck_refuse("image %s is corrupted: the capability sets of %s are inconsistent", o->img->path, o->text);
	int uid_change = !same_ids(c->uid, h->uid), gid_change = !same_ids(c->gid, h->gid);
	for (int k = 0; k < 4 && h->own_userns; k++) {
		if (!id_mapped(h->uid_map, c->uid[k]))
			ck_refuse("%s ran as uid %s; this restart runs in a user namespace of its own, where only uid %s "
				  "exists: an ordinary user restarts only their own processes; root can restart it",
				  o->text, ids_text(c->uid, a, sizeof a), ids_text(h->uid, b, sizeof b));
		if (!id_mapped(h->gid_map, c->gid[k]))
			ck_refuse("%s ran as gid %s; this restart runs in a user namespace of its own, where only gid %s "
				  "exists: an ordinary user restarts only with their own group; root can restart it",
				  o->text, ids_text(c->gid, a, sizeof a), ids_text(h->gid, b, sizeof b));
	}
	if (uid_change) {
		snprintf(b, sizeof b, "uid %s", ids_text(c->uid, a, sizeof a));
		need_cap(o, h, CAP_SETUID_, b);
		need_cap(o, h, CAP_SETPCAP_, b); /* keeps the capabilities while the uids change */
	}
	if (gid_change) {
		snprintf(b, sizeof b, "gid %s", ids_text(c->gid, a, sizeof a));
		need_cap(o, h, CAP_SETGID_, b);
	}
	/* a user namespace of ckrun's denies setgroups: the process keeps the
	 * restarter's groups, which ckrun compared before (src/restart.ts) */
	if (!h->own_userns && !host_has_groups(groups, c->ngroups, h))
		need_cap(o, h, CAP_SETGID_, "other supplementary groups");
	if (h->own_userns && any_caps(c))
		ck_refuse("%s had capabilities (%s); this restart runs in a user namespace of its own, where capabilities "
			  "are not the ones it had: restart it as root", o->text, cap_list(any_caps(c)));
	uint64_t missing = (c->cap_prm & ~h->cap_prm) | (c->cap_inh & ~(h->cap_inh | h->cap_prm));
	if (missing)
		ck_refuse("%s had capabilities this restart does not have (%s): ckrun never gives a program more than its "
			  "restarter holds; restart it where they are available", o->text, cap_list(missing));
	if (c->cap_bnd & ~h->cap_bnd)
		ck_refuse("%s had a capability bounding set holding %s, which this restart's lacks: ckrun never gives a "
			  "program more than its restarter holds; restart it where they are available", o->text,
			  cap_list(c->cap_bnd & ~h->cap_bnd));
	if (c->cap_bnd != h->cap_bnd)
		need_cap(o, h, CAP_SETPCAP_, "a smaller capability bounding set");
	if ((uint64_t)h->securebits != c->securebits || uid_change) {
		if ((uint64_t)h->securebits & SECBIT_LOCKS)
			ck_refuse("this restart runs with locked securebits (%#lx), which keep it from setting those of %s "
				  "(%#llx): restart it from a process without locked securebits", h->securebits, o->text,
				  (unsigned long long)c->securebits);
		if ((uint64_t)h->securebits != c->securebits)
			need_cap(o, h, CAP_SETPCAP_, "other securebits");
	}
	if (h->no_new_privs && !c->no_new_privs)
		ck_refuse("this restart runs with no_new_privs, which cannot be undone, and %s did not: restart it from a "
			  "process without no_new_privs", o->text);
}

/* Inside a user namespace of ckrun's no thread's groups can be set: each
 * keeps the restarter's, so a thread's own must be its process's. */
static void check_thread_groups_userns(const struct creds_owner *o, const struct ck_image *img,
				       const struct ck_img_thread *t)
{
	uint32_t *a = malloc((t->creds.ngroups + 1) * sizeof *a), *b = malloc((img->creds.ngroups + 1) * sizeof *b);
	if (!a || !b)
		ck_refuse("no memory to compare supplementary groups");
	memcpy(a, t->groups, t->creds.ngroups * sizeof *a);
	memcpy(b, img->groups, img->creds.ngroups * sizeof *b);
	int same = same_group_set(a, t->creds.ngroups, b, img->creds.ngroups);
	free(a);
	free(b);
	if (!same)
		ck_refuse("%s had other supplementary groups than its process; this restart runs in a user namespace of "
			  "its own, where setgroups is denied and every thread keeps the restarter's: restart it as root",
			  o->text);
}

/* Everything the restore core will set must be possible here, and allowed,
 * for the process and every thread with credentials of its own: refused
 * before any process exists, never half done after the switch. */
CK_HIDDEN void ck_creds_check(struct ck_image *img)
{
	const struct ck_creds *c = &img->creds;
	if (!img->has_creds)
		ck_refuse("image %s does not say which user and capabilities its process ran with (an older ckrun took "
			  "it); ckrun restores no process with credentials it did not have: restart it with the ckrun "
			  "that took it", img->path);
	check_owner(img);
	struct host_creds h;
	read_host_creds(&h);
	struct creds_owner o;
	owner_text(&o, img, 0);
	check_one_creds(&o, c, img->groups, &h);
	for (size_t t = 0; t < img->nthreads; t++) {
		const struct ck_img_thread *th = &img->threads[t];
		if (!th->has_creds)
			continue;
		owner_text(&o, img, th->tid);
		check_one_creds(&o, &th->creds, th->groups, &h);
		if (h.own_userns)
			check_thread_groups_userns(&o, img, th);
	}
	int changes = !same_ids(c->uid, h.uid) || !same_ids(c->gid, h.gid);
	for (size_t t = 0; t < img->nthreads; t++)
		if (img->threads[t].has_creds)
			changes |= !same_ids(img->threads[t].creds.uid, h.uid) || !same_ids(img->threads[t].creds.gid, h.gid);
	if (c->dumpable == 2) {
		char *sd = slurp("/proc/sys/fs/suid_dumpable", 0);
		int two = sd[0] == '2';
		free(sd);
		if (!two || !changes)
			ck_refuse("image %s is of a process whose dumpable setting was 2 (as fs.suid_dumpable made it after it "
				  "changed its credentials), which this system does not give it again: restart it where "
				  "fs.suid_dumpable is 2", img->path);
	}
	free(h.groups);
}

CK_HIDDEN size_t ck_creds_plan_size(const struct ck_image *img)
{
	size_t n = img->creds.ngroups;
	for (size_t t = 0; t < img->nthreads; t++)
		if (img->threads[t].has_creds)
			n += img->threads[t].creds.ngroups;
	return n * sizeof(uint32_t);
}

/* One thread's record in the plan; returns where the next groups go. */
static uint32_t *plan_thread_creds(struct ck_plan_creds *pc, const struct ck_creds *c, const uint32_t *groups,
				   uint32_t *area, struct host_creds *h)
{
	pc->c = *c;
	pc->groups = area;
	memcpy(area, groups, c->ngroups * sizeof *area);
	pc->set_groups = !h->own_userns && !host_has_groups(groups, c->ngroups, h);
	return area + c->ngroups;
}

/* What the restore core sets in each thread (groups: an area in the hole
 * for every thread's groups, ck_creds_plan_size bytes); after
 * ck_threads_plan, which put the threads in the plan's order. */
CK_HIDDEN void ck_creds_plan(const struct ck_image *img, struct ck_plan *plan, uint32_t *groups)
{
	struct host_creds h;
	read_host_creds(&h);
	struct ck_plan_creds process;
	uint32_t *next = plan_thread_creds(&process, &img->creds, img->groups, groups, &h);
	for (uint64_t j = 0; j < plan->nthreads; j++) {
		struct ck_plan_thread *pt = &plan->threads[j];
		pt->creds = process;
		for (size_t t = 0; t < img->nthreads; t++)
			if (img->threads[t].tid == pt->tid && img->threads[t].has_creds)
				next = plan_thread_creds(&pt->creds, &img->threads[t].creds, img->threads[t].groups, next, &h);
	}
	plan->dumpable = img->creds.dumpable;
	plan->creds_set = 0;
	plan->creds_go = 0;
	char *lc = slurp("/proc/sys/kernel/cap_last_cap", 0);
	plan->last_cap = atoi(lc) > 0 && atoi(lc) < 64 ? atoi(lc) : 40;
	free(lc);
	free(h.groups);
}

/* ---- credentials: set by the restore core, in every thread ----
 * Raw system calls only (no libc from here, see restore_core.c). Each
 * thread starts with the restore host's credentials and sets its own (the
 * process's, or the thread's own when the image has them); it runs no code
 * of the image before every thread has done so. */

struct ck_cap_header {
	uint32_t version;
	int pid;
};
struct ck_cap_data {
	uint32_t effective, permitted, inheritable;
};
#define CK_CAP_V3 0x20080522

static CK_CORE_FN void core_capset(struct ck_plan *p, uint64_t eff, uint64_t prm, uint64_t inh, const char *what)
{
	struct ck_cap_header h = {CK_CAP_V3, 0};
	struct ck_cap_data d[2] = {{(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
				   {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)}};
	long r = CK_SYS2(SYS_capset, &h, d);
	if (r < 0)
		ck_core_fail(p, what, r);
}

static CK_CORE_FN void core_capget(struct ck_plan *p, uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct ck_cap_header h = {CK_CAP_V3, 0};
	struct ck_cap_data d[2];
	long r = CK_SYS2(SYS_capget, &h, d);
	if (r < 0)
		ck_core_fail(p, "reading the capabilities failed", r);
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	*inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
}

static CK_CORE_FN void core_prctl(struct ck_plan *p, int op, long arg, long arg2, const char *what)
{
	long r = ck_prctl(op, arg, arg2, 0, 0);
	if (r < 0)
		ck_core_fail(p, what, r);
}

/* Groups and group IDs (needs CAP_SETGID when they change). */
static CK_CORE_FN void core_set_gids(struct ck_plan *p, const struct ck_plan_creds *pc)
{
	const struct ck_creds *c = &pc->c;
	long r;
	if (pc->set_groups && (r = CK_SYS2(SYS_setgroups, c->ngroups, pc->groups)) < 0)
		ck_core_fail(p, "setting the supplementary groups failed", r);
	if ((r = CK_SYS3(SYS_setresgid, c->gid[0], c->gid[1], c->gid[2])) < 0)
		ck_core_fail(p, "setting the group IDs failed", r);
	CK_SYS1(SYS_setfsgid, c->gid[3]);
	if ((uint32_t)CK_SYS1(SYS_setfsgid, -1) != c->gid[3])
		ck_core_fail(p, "setting the filesystem group ID failed", -EPERM);
}

/* Inheritable and ambient capabilities, the bounding set: while the
 * thread still has the restore host's permitted set. */
static CK_CORE_FN void core_set_cap_sets(struct ck_plan *p, const struct ck_creds *c)
{
	uint64_t eff, prm, inh;
	core_capget(p, &eff, &prm, &inh);
	if (inh != c->cap_inh)
		core_capset(p, eff, prm, c->cap_inh, "setting the inheritable capabilities failed");
	core_prctl(p, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, "clearing the ambient capabilities failed");
	for (int cap = 0; cap <= p->last_cap; cap++) {
		uint64_t bit = 1ULL << cap;
		if (c->cap_amb & bit) {
			long r = ck_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
			if (r < 0)
				ck_core_fail(p, "raising an ambient capability failed", r);
		}
		if (!(c->cap_bnd & bit) && ck_prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			core_prctl(p, PR_CAPBSET_DROP, cap, 0, "dropping a capability from the bounding set failed");
	}
}

/* User IDs. With SECBIT_NO_SETUID_FIXUP the kernel leaves the
 * capabilities alone while they change; the final capset sets them. */
static CK_CORE_FN void core_set_uids(struct ck_plan *p, const struct ck_creds *c)
{
	uint32_t cur[3] = {0, 0, 0};
	CK_SYS3(SYS_getresuid, &cur[0], &cur[1], &cur[2]);
	uint32_t fs = (uint32_t)CK_SYS1(SYS_setfsuid, -1);
	long sb = ck_prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (cur[0] != c->uid[0] || cur[1] != c->uid[1] || cur[2] != c->uid[2] || fs != c->uid[3]) {
		if (!(sb & SECBIT_NO_SETUID_FIXUP))
			core_prctl(p, PR_SET_SECUREBITS, sb | (long)SECBIT_NO_SETUID_FIXUP, 0, "setting securebits failed");
		long r = CK_SYS3(SYS_setresuid, c->uid[0], c->uid[1], c->uid[2]);
		if (r < 0)
			ck_core_fail(p, "setting the user IDs failed", r);
		CK_SYS1(SYS_setfsuid, c->uid[3]);
		if ((uint32_t)CK_SYS1(SYS_setfsuid, -1) != c->uid[3])
			ck_core_fail(p, "setting the filesystem user ID failed", -EPERM);
	}
	if ((uint64_t)ck_prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) != c->securebits)
		core_prctl(p, PR_SET_SECUREBITS, (long)c->securebits, 0, "setting the saved securebits failed");
}

/* This thread's credentials become pc's, in an order in which each step
 * still has the privilege it needs (ck_creds_check made sure it has). */
CK_CORE void ck_core_set_creds(struct ck_plan *p, const struct ck_plan_creds *pc)
{
	const struct ck_creds *c = &pc->c;
	core_set_gids(p, pc);
	core_set_cap_sets(p, c);
	core_set_uids(p, c);
	core_capset(p, c->cap_eff, c->cap_prm, c->cap_inh, "setting the capabilities failed");
	if (c->no_new_privs)
		core_prctl(p, PR_SET_NO_NEW_PRIVS, 1, 0, "setting no_new_privs failed");
	uint64_t eff, prm, inh;
	core_capget(p, &eff, &prm, &inh);
	if (eff != c->cap_eff || prm != c->cap_prm || inh != c->cap_inh)
		ck_core_fail(p, "the capabilities did not come out as saved", -EPERM);
}

/* No thread returns to the program while another still has the restore
 * host's credentials: each waits until all have set theirs; the main
 * thread, last, puts back the process's dumpable setting (every change of
 * an effective or filesystem ID reset it) and lets them go. */
CK_CORE void ck_core_creds_barrier(struct ck_plan *p, int main_thread)
{
	if (!main_thread) {
		__atomic_fetch_add(&p->creds_set, 1, __ATOMIC_SEQ_CST);
		ck_futex(&p->creds_set, FUTEX_WAKE_PRIVATE, INT_MAX, 0);
		while (!__atomic_load_n(&p->creds_go, __ATOMIC_SEQ_CST))
			ck_futex(&p->creds_go, FUTEX_WAIT_PRIVATE, 0, 0);
		return;
	}
	int n;
	while ((n = __atomic_load_n(&p->creds_set, __ATOMIC_SEQ_CST)) < (int)p->nthreads - 1)
		ck_futex(&p->creds_set, FUTEX_WAIT_PRIVATE, n, 0);
	if (p->dumpable < 2)
		core_prctl(p, PR_SET_DUMPABLE, p->dumpable, 0, "setting dumpable failed");
	if (ck_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != p->dumpable)
		ck_core_fail(p, "the dumpable setting did not come out as saved", -EPERM);
	__atomic_store_n(&p->creds_go, 1, __ATOMIC_SEQ_CST);
	ck_futex(&p->creds_go, FUTEX_WAKE_PRIVATE, INT_MAX, 0);
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

/* Every descendant of this process, killed (SIGKILL). Each is stopped
 * first, as it is found: none sees another die (a pipe's end of file, a
 * SIGCHLD) and acts on it before its own kill. Async-signal-safe. */
CK_HIDDEN void ck_kill_descendants(void)
{
	int pids[1024];
	int n = add_children((int)ck_getpid(), pids, 0, 1024);
	for (int next = 0; next < n; next++) {
		ck_kill(pids[next], SIGSTOP);
		n = add_children(pids[next], pids, n, 1024);
	}
	for (int i = 0; i < n; i++)
		ck_kill(pids[i], SIGKILL);
}
