/* File locks held at the checkpoint: flock, POSIX record locks, OFD locks
 * and leases. They are state attached to an open file description (flock,
 * OFD, lease) or to a process and a file (POSIX), not a kind of
 * descriptor: fds.c asks this file for each descriptor's "locks".
 *
 * Saved from /proc/self/fdinfo/N, which lists the locks of that open file
 * description (and the POSIX locks this process took through it). Taken
 * again by the restore core, in the restored process, once every
 * descriptor is at its number and every other descriptor the restore used
 * is closed: closing any descriptor of a file drops the POSIX locks the
 * process holds on it. In a family no process runs before every process
 * holds its locks again (the orchestrator's "go" pipe), so a process that
 * was waiting for a lock waits again: its flock/F_SETLKW is restarted
 * (SA_RESTART) when it returns to the program. A lease being broken at
 * the checkpoint is refused then. docs/design.md, "File locks". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fdkind.h"
#include "sys.h"

/* ---- checkpoint (in the signal handler: raw code only) ---- */

static const char *after_word(const char *p)
{
	while (*p && *p != ' ' && *p != '\t' && *p != '\n')
		p++;
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static int word_is(const char *p, const char *w)
{
	size_t n = ck_strlen(w);
	return ck_strneq(p, w, n) && (p[n] == ' ' || p[n] == '\t' || p[n] == '\n' || !p[n]);
}

static int how_of(const char *p)
{
	if (word_is(p, "FLOCK"))
		return CK_LOCK_FLOCK;
	if (word_is(p, "POSIX"))
		return CK_LOCK_POSIX;
	if (word_is(p, "OFDLCK"))
		return CK_LOCK_OFD;
	if (word_is(p, "LEASE"))
		return CK_LOCK_LEASE;
	return 0;
}

static const char *const how_names[] = {"?", "flock", "posix", "ofd", "lease"};

static void fail_lock(struct ck_writer *w, const struct ck_fd *f, const char *why)
{
	struct ck_str m;
	ck_writer_fail_fd(w, -EOPNOTSUPP, "the program holds a file lock ckrun cannot save", f, &m);
	ck_str_add(&m, why);
}

/* One "lock:" line of fdinfo ("1: POSIX  ADVISORY  WRITE 123 fe:00:45 5 104")
 * as [how, type, start, length (0: to the end), signal]; 0 when refused. */
static int save_line(struct ck_writer *w, const struct ck_fd *f, const char *p)
{
	struct cb_enc *e = &w->meta;
	uint64_t start = 0, end = 0, pid;
	while (*p == ' ' || *p == '\t')
		p++;
	p = after_word(p); /* "1:" */
	int how = how_of(p);
	if (!how) {
		fail_lock(w, f, "holds a lock of a kind ckrun does not know (a delegation?); release it before the checkpoint");
		return 0;
	}
	p = after_word(p);
	if (how == CK_LOCK_LEASE && !word_is(p, "ACTIVE")) {
		fail_lock(w, f, "holds a lease that is being broken (another process opened the file); ckrun cannot save it "
				"until the program gives the lease up (F_SETLEASE F_UNLCK) — checkpoint again then");
		return 0;
	}
	p = after_word(p);
	int write = word_is(p, "WRITE");
	if (!write && !word_is(p, "READ")) {
		fail_lock(w, f, "holds a lock in a state ckrun cannot save");
		return 0;
	}
	p = after_word(p);
	if (*p == '-')
		p++;
	ck_parse_dec(&p, &pid); /* the owner: this process, or -1 for OFD locks */
	p = after_word(p);
	p = after_word(p); /* dev:ino */
	if (!ck_parse_dec(&p, &start)) {
		fail_lock(w, f, "has a lock whose range /proc/self/fdinfo does not show");
		return 0;
	}
	while (*p == ' ')
		p++;
	int to_end = ck_strneq(p, "EOF", 3);
	if (!to_end && !ck_parse_dec(&p, &end)) {
		fail_lock(w, f, "has a lock whose range /proc/self/fdinfo does not show");
		return 0;
	}
	long sig = how == CK_LOCK_LEASE ? ck_fcntl(f->fd, F_GETSIG, 0) : 0;
	cb_array(e, 5);
	cb_text(e, how_names[how]);
	cb_text(e, write ? "write" : "read");
	cb_uint(e, start);
	cb_uint(e, to_end ? 0 : end - start + 1);
	cb_uint(e, (uint64_t)(sig > 0 ? sig : 0));
	return 1;
}

/* The "locks" of one descriptor (one open file description), if any. */
CK_HIDDEN void ck_locks_save(struct ck_writer *w, const struct ck_fd *f)
{
	static char buf[16384];
	long n = ck_read_fdinfo(f->fd, buf, sizeof buf);
	if (n <= 0)
		return; /* no fdinfo, no lock shown there */
	if (n >= (long)sizeof buf - 1) {
		/* fdinfo lists the locks before the kind's own lines (an epoll's
		 * may be long): cut at the last whole line, which must not be a
		 * lock, or more locks may follow */
		char *last = buf + n - 1;
		while (last > buf && *last != '\n')
			last--;
		*last = 0;
		char *line = last;
		while (line > buf && line[-1] != '\n')
			line--;
		if (ck_strneq(line, "lock:", 5)) {
			fail_lock(w, f, "holds more locks than ckrun can read from /proc/self/fdinfo (16 KiB of them)");
			return;
		}
	}
	int open = 0;
	for (const char *p = buf; *p && !w->err;) {
		if (ck_strneq(p, "lock:", 5)) {
			if (!open) {
				cb_text(&w->meta, "locks");
				cb_array_open(&w->meta);
				open = 1;
			}
			if (!save_line(w, f, p + 5))
				break;
		}
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	if (open)
		cb_close(&w->meta);
}

CK_HIDDEN int ck_locks_bind_to_description(int fd)
{
	static char buf[16384];
	long n = ck_read_fdinfo(fd, buf, sizeof buf);
	if (n >= (long)sizeof buf - 1)
		return 1; /* more lines than read: assume the worst */
	for (const char *p = buf; n > 0 && *p;) {
		if (ck_strneq(p, "lock:", 5)) {
			const char *q = p + 5;
			while (*q == ' ' || *q == '\t')
				q++;
			int how = how_of(after_word(q));
			if (how == CK_LOCK_POSIX || how == CK_LOCK_LEASE)
				return 1;
		}
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return 0;
}

/* ---- restore host ---- */

static int how_named(const char *s, size_t n)
{
	for (int i = 1; i < (int)(sizeof how_names / sizeof how_names[0]); i++)
		if (ck_strlen(how_names[i]) == n && !memcmp(how_names[i], s, n))
			return i;
	return 0;
}

CK_HIDDEN int ck_locks_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t n;
	if (!cbd_array(d, &n))
		return 0;
	for (int64_t i = 0; n < 0 ? !cbd_at_break(d) : i < n; i++) {
		int64_t m;
		const char *s, *t;
		size_t sl, tl;
		uint64_t start, len, sig;
		if (!cbd_array(d, &m) || m != 5 || !cbd_text(d, &s, &sl) || !cbd_text(d, &t, &tl) ||
		    !cbd_uint_max(d, INT64_MAX, &start) || !cbd_uint_max(d, INT64_MAX, &len) || !cbd_uint_max(d, 64, &sig))
			return 0;
		int how = how_named(s, sl);
		int write = tl == 5 && !memcmp(t, "write", 5);
		if (!how || (!write && !(tl == 4 && !memcmp(t, "read", 4))))
			return 0;
		f->locks = realloc(f->locks, (f->nlocks + 1) * sizeof *f->locks);
		f->locks[f->nlocks++] = (struct ck_img_lock){how, write, (int)sig, (int64_t)start, (int64_t)len};
	}
	return !d->error;
}

static const char *lock_desc(const struct ck_img_lock *l, char *buf, size_t cap)
{
	if (l->how == CK_LOCK_FLOCK || l->how == CK_LOCK_LEASE)
		snprintf(buf, cap, "%s %s", l->write ? "exclusive" : "shared", l->how == CK_LOCK_FLOCK ? "flock" : "lease");
	else
		snprintf(buf, cap, "%s %s lock on bytes %lld-%s", l->how == CK_LOCK_OFD ? "OFD" : "POSIX",
			 l->write ? "write" : "read", (long long)l->start,
			 l->len ? (snprintf(buf + cap / 2, cap / 2, "%lld", (long long)(l->start + l->len - 1)), buf + cap / 2) : "EOF");
	return buf;
}

/* Whether another process holds what l needs now, seen through a fresh
 * description of the file (fd): the restore would fail, refused here
 * before anything is changed. */
static int taken_elsewhere(int fd, const struct ck_img_lock *l)
{
	if (l->how == CK_LOCK_FLOCK)
		return flock(fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	if (l->how == CK_LOCK_LEASE)
		return 0;
	struct flock fl = {.l_type = l->write ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET, .l_start = l->start, .l_len = l->len};
	return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

/* Before anything is changed: every lock of f can be taken again. Only
 * for files with a path (a pipe's or a deleted file's locks are taken by
 * the core alone, which ends the restore if it cannot). */
CK_HIDDEN void ck_locks_check(struct ck_image *img, struct ck_img_file *f)
{
	if (!f->nlocks || !f->path || strcmp(f->kind, "file"))
		return;
	if (f->nlocks > CK_PLAN_LOCKS)
		ck_refuse("descriptor %d (%s) held %zu locks; ckrun restores at most %d per process", f->fd, f->path,
			  f->nlocks, CK_PLAN_LOCKS);
	int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0)
		return; /* the file's own check says why */
	for (size_t i = 0; i < f->nlocks; i++) {
		char what[160];
		if (taken_elsewhere(fd, &f->locks[i]))
			ck_refuse("image %s: descriptor %d (%s) held a %s at the checkpoint, and another process holds it now; "
				  "stop that process (see /proc/locks) or restart from an image taken without the lock",
				  img->path, f->fd, f->path, lock_desc(&f->locks[i], what, sizeof what));
	}
	close(fd); /* the restore host holds no lock of the program's: dropping its own is harmless */
}

/* Whether any process of a restore takes locks again (a family then waits
 * for all before any runs). */
CK_HIDDEN int ck_locks_any(struct ck_image **imgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nfiles; j++)
			if (imgs[i]->files[j].nlocks)
				return 1;
	return 0;
}

/* The locks the restore core takes, by descriptor number. */
CK_HIDDEN void ck_locks_plan(const struct ck_image *img, struct ck_plan *plan)
{
	plan->nlocks = 0;
	for (size_t i = 0; i < img->nfiles; i++) {
		const struct ck_img_file *f = &img->files[i];
		for (size_t j = 0; j < f->nlocks; j++) {
			const struct ck_img_lock *l = &f->locks[j];
			if (plan->nlocks >= CK_PLAN_LOCKS)
				ck_refuse("image %s: the process held more than %d file locks; ckrun restores at most that many",
					  img->path, CK_PLAN_LOCKS);
			plan->locks[plan->nlocks++] =
				(struct ck_plan_lock){f->fd, l->how, l->write, l->sig, l->start, l->len};
		}
	}
}

/* ---- restore core: raw code, section ckcore ---- */

static CK_CORE_FN long take_lock(const struct ck_plan_lock *l)
{
	if (l->how == CK_LOCK_FLOCK)
		return CK_SYS2(SYS_flock, l->fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB);
	if (l->how == CK_LOCK_LEASE) {
		if (l->sig) {
			long r = ck_fcntl(l->fd, F_SETSIG, l->sig);
			if (r < 0)
				return r;
		}
		return ck_fcntl(l->fd, F_SETLEASE, l->write ? F_WRLCK : F_RDLCK);
	}
	struct flock fl = {.l_type = l->write ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET, .l_start = l->start, .l_len = l->len};
	return ck_fcntl(l->fd, l->how == CK_LOCK_OFD ? F_OFD_SETLK : F_SETLK, (long)&fl);
}

/* In the restored process, every descriptor in place and nothing else of
 * the restore open on its files. A lock another process took meanwhile
 * ends the restore. */
CK_CORE void ck_core_take_locks(struct ck_plan *p)
{
	for (int i = 0; i < p->nlocks; i++) {
		long r = take_lock(&p->locks[i]);
		if (r < 0) {
			char msg[128];
			struct ck_str m;
			ck_str_init(&m, msg, sizeof msg);
			ck_str_add(&m, p->locks[i].how == CK_LOCK_LEASE ? "the lease the program held on descriptor "
									: "the file lock the program held on descriptor ");
			ck_str_dec(&m, p->locks[i].fd);
			ck_str_add(&m, " cannot be taken again (another process has it, or opened the file)");
			ck_core_fail(p, msg, r);
		}
	}
}

