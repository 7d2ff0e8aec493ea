/* Signals: dispositions, pending signals and interval timers.
 * Dispositions are installed again by the restore host before the switch
 * (all signals blocked until each thread's rt_sigreturn); timers and
 * pending signals are re-armed by the restored leader at the very end. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

CK_HIDDEN struct ck_saved_timers ck_saved_timers;
CK_HIDDEN int ck_saved_pdeathsig;

struct ck_kitimerval {
	long isec, iusec, vsec, vusec;
};

CK_HIDDEN long ck_read_file(const char *path, char *buf, size_t cap)
{
	int fd = (int)ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	size_t len = 0;
	for (;;) {
		long r = ck_read(fd, buf + len, cap - 1 - len);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == cap - 1)
			break;
	}
	ck_close(fd);
	buf[len] = 0;
	return (long)len;
}

/* A hex signal mask from a /proc/.../status line such as "SigPnd:". */
CK_HIDDEN uint64_t ck_read_pending_mask(const char *status_path, const char *field)
{
	char buf[4096];
	if (ck_read_file(status_path, buf, sizeof buf) <= 0)
		return 0;
	size_t fl = ck_strlen(field);
	for (const char *p = buf; *p;) {
		if (ck_strneq(p, field, fl)) {
			p += fl;
			while (*p == ' ' || *p == '\t')
				p++;
			uint64_t v;
			return ck_parse_hex(&p, &v) ? v : 0;
		}
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return 0;
}

static uint64_t sigbit(int sig)
{
	return 1ULL << (sig - 1);
}

/* Called by the leader while every thread is stopped, before the resume
 * context is saved: the restored leader re-arms exactly this. */
CK_HIDDEN void ck_signals_capture(void)
{
	for (int i = 0; i < 3; i++) {
		struct ck_kitimerval v;
		ck_memset(&v, 0, sizeof v);
		CK_SYS2(SYS_getitimer, i, &v);
		ck_saved_timers.it[i].isec = v.isec;
		ck_saved_timers.it[i].iusec = v.iusec;
		ck_saved_timers.it[i].vsec = v.vsec;
		ck_saved_timers.it[i].vusec = v.vusec;
	}
	ck_saved_pdeathsig = 0;
	ck_prctl(PR_GET_PDEATHSIG, (long)&ck_saved_pdeathsig, 0, 0, 0);
	uint64_t ours = sigbit(ck_session.sig);
	ck_saved_timers.shared_pending = ck_read_pending_mask("/proc/self/status", "ShdPnd:") & ~ours;
	int n = ck_nthreads;
	for (int i = 0; i < n; i++) {
		char path[64];
		struct ck_str s;
		ck_str_init(&s, path, sizeof path);
		ck_str_add(&s, "/proc/self/task/");
		ck_str_dec(&s, ck_threads[i].tid);
		ck_str_add(&s, "/status");
		ck_threads[i].pending = ck_read_pending_mask(path, "SigPnd:") & ~ours;
	}
}

CK_HIDDEN void ck_signals_save(struct ck_writer *w)
{
	struct cb_enc *e = &w->meta;
	cb_text(e, "signals");
	cb_map(e, 3);
	cb_text(e, "actions");
	cb_array_open(e);
	for (int sig = 1; sig <= 64; sig++) {
		struct ck_ksigaction ka;
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (ck_rt_sigaction(sig, 0, &ka) < 0 || (ka.handler == 0 && ka.flags == 0 && ka.mask == 0))
			continue;
		cb_array(e, 5);
		cb_uint(e, (uint64_t)sig);
		cb_uint(e, ka.handler);
		cb_uint(e, ka.flags);
		cb_uint(e, ka.restorer);
		cb_uint(e, ka.mask);
	}
	cb_close(e);
	cb_kv_uint(e, "pending", ck_saved_timers.shared_pending);
	cb_text(e, "itimers");
	cb_array(e, 3);
	for (int i = 0; i < 3; i++) {
		cb_array(e, 2);
		cb_uint(e, (uint64_t)(ck_saved_timers.it[i].isec * 1000000L + ck_saved_timers.it[i].iusec));
		cb_uint(e, (uint64_t)(ck_saved_timers.it[i].vsec * 1000000L + ck_saved_timers.it[i].vusec));
	}
}

/* In the restored leader, every thread parked in the handler with all
 * signals blocked: what is raised now is delivered after rt_sigreturn,
 * under each thread's own mask, as it would have been. */
CK_HIDDEN void ck_signals_after_restore(int nthreads)
{
	for (int i = 0; i < 3; i++) {
		struct ck_kitimerval v = {
			ck_saved_timers.it[i].isec, ck_saved_timers.it[i].iusec,
			ck_saved_timers.it[i].vsec, ck_saved_timers.it[i].vusec,
		};
		if (v.vsec || v.vusec)
			CK_SYS3(SYS_setitimer, i, &v, 0);
	}
	/* a restore host dies with its parent while it restores; the program
	 * gets its own parent-death signal back */
	ck_prctl(PR_SET_PDEATHSIG, ck_saved_pdeathsig, 0, 0, 0);
	int pid = (int)ck_getpid();
	for (int sig = 1; sig <= 64; sig++)
		if (ck_saved_timers.shared_pending & sigbit(sig))
			ck_kill(pid, sig);
	for (int i = 0; i < nthreads; i++)
		for (int sig = 1; sig <= 64; sig++)
			if (ck_threads[i].pending & sigbit(sig))
				ck_tgkill(pid, ck_threads[i].tid, sig);
}

/* ---- restore host ---- */

CK_HIDDEN int ck_signals_parse(struct cb_dec *d, struct ck_image *img)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (!cbd_key_is(k, kl, "actions")) {
			if (!cbd_skip(d))
				return 0;
			continue;
		}
		int64_t n;
		if (!cbd_array(d, &n))
			return 0;
		img->actions = calloc(64, sizeof *img->actions);
		while (cbd_next_item(d, &n)) {
			int64_t m;
			uint64_t v[5];
			if (!cbd_array(d, &m) || m != 5)
				return 0;
			for (int i = 0; i < 5; i++)
				if (!cbd_uint(d, &v[i]))
					return 0;
			if (v[0] < 1 || v[0] > 64 || img->nactions >= 64)
				return 0;
			struct ck_img_action *a = &img->actions[img->nactions++];
			a->sig = (int)v[0];
			a->handler = v[1];
			a->flags = v[2];
			a->restorer = v[3];
			a->mask = v[4];
		}
	}
	return !d->error;
}

/* Handlers point into the image's memory, which does not exist yet: every
 * signal stays blocked until the restored threads return from the shim's
 * handler through rt_sigreturn with their own masks. */
CK_HIDDEN void ck_signals_restore(struct ck_image *img)
{
	uint64_t all = ~0ULL;
	ck_rt_sigprocmask(SIG_SETMASK, &all, 0);
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		struct ck_ksigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		ck_rt_sigaction(sig, &dfl, 0);
	}
	for (size_t i = 0; i < img->nactions; i++) {
		struct ck_img_action *a = &img->actions[i];
		struct ck_ksigaction ka = {a->handler, a->flags, a->restorer, a->mask};
		long r = ck_rt_sigaction(a->sig, &ka, 0);
		if (r < 0)
			ck_refuse("cannot set the action of signal %d: %s", a->sig, ck_errno_name(r));
	}
}
