/* Who gets a descriptor's I/O signals: the owner of an open file
 * description (F_SETOWN, F_SETOWN_EX: a process, a process group or a
 * thread), its signal (F_SETSIG; 0 is SIGIO) and O_ASYNC, which makes the
 * kernel send it. State of the description, not a kind of descriptor:
 * fds.c asks this file for each descriptor that does not share an earlier
 * one's description ("owner" in its map; O_ASYNC is in its "flags").
 *
 * Set again by the restore core, in the restored process, once every
 * descriptor is at its number: an owner that exists already (the process
 * itself, its parent, any process restored before it) at once; in a
 * family, one that does not exist yet (a child, a group whose leader comes
 * later) once every process of the family exists, before any of them runs
 * the program again. Regular files are left to locks.c: their owner and
 * signal serve a lease, which sets them. docs/design.md, "Descriptor
 * owners". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "fdkind.h"
#include "sys.h"

/* ---- checkpoint (in the signal handler: raw code only) ---- */

/* An owner thread that is not the main thread of its process is made only
 * when its process's threads are, after every descriptor: refused. */
static int is_other_thread(int tid)
{
	long r = CK_SYS3(SYS_tgkill, tid, tid, 0);
	if (r == 0 || r == -EPERM)
		return 0; /* the main thread of its process */
	return CK_SYS2(SYS_tkill, tid, 0) != -ESRCH; /* a thread, and not a main one; else gone */
}

static void fail_thread_owner(struct ck_writer *w, const struct ck_fd *f, int tid)
{
	ck_writer_fail(w, -EOPNOTSUPP, "the program has a descriptor whose I/O signals go to one thread, which ckrun cannot set up again");
	struct ck_str m;
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, f->fd);
	ck_str_add(&m, " has thread ");
	ck_str_dec(&m, tid);
	ck_str_add(&m, " as its owner (F_SETOWN_EX, F_OWNER_TID), which is not the main thread of its process; make the "
		       "process its owner (F_OWNER_PID) or clear it before the checkpoint");
}

/* "owner": [type (F_OWNER_TID 0, F_OWNER_PID 1, F_OWNER_PGRP 2), id, signal]
 * when the description has an owner or a signal of its own; 0 when the
 * checkpoint must fail (w says why). */
CK_HIDDEN int ck_fown_save(struct ck_writer *w, const struct ck_fd *f)
{
	struct f_owner_ex o = {0, 0};
	if ((f->st.mode & S_IFMT) == S_IFREG)
		return 1;
	if (ck_fcntl(f->fd, F_GETOWN_EX, (long)&o) != 0)
		o.pid = 0;
	long sig = ck_fcntl(f->fd, F_GETSIG, 0);
	if (sig < 0)
		sig = 0;
	if (!o.pid && !sig)
		return 1;
	if (o.pid && o.type == F_OWNER_TID && is_other_thread(o.pid)) {
		fail_thread_owner(w, f, o.pid);
		return 0;
	}
	struct cb_enc *e = &w->meta;
	cb_text(e, "owner");
	cb_array(e, 3);
	cb_uint(e, o.pid ? (uint64_t)o.type : (uint64_t)F_OWNER_PID);
	cb_uint(e, (uint64_t)(o.pid > 0 ? o.pid : 0));
	cb_uint(e, (uint64_t)sig);
	return 1;
}

/* ---- restore host ---- */

CK_HIDDEN int ck_fown_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t n;
	uint64_t type, id, sig;
	if (!cbd_array(d, &n) || n != 3 || !cbd_uint_max(d, F_OWNER_PGRP, &type) || !cbd_uint_max(d, INT32_MAX, &id) ||
	    !cbd_uint_max(d, 64, &sig))
		return 0;
	f->has_owner = 1;
	f->owner_type = (int)type;
	f->owner_id = (int)id;
	f->owner_sig = (int)sig;
	return 1;
}

/* What the restore core sets, by descriptor number: every description
 * with an owner, a signal or O_ASYNC (not regular files: locks.c). */
CK_HIDDEN void ck_fown_plan(const struct ck_image *img, struct ck_plan *plan)
{
	plan->nowners = 0;
	for (size_t i = 0; i < img->nfiles; i++) {
		const struct ck_img_file *f = &img->files[i];
		int async = (f->flags & O_ASYNC) != 0 && (f->mode & S_IFMT) != S_IFREG;
		if (f->same_as >= 0 || (!f->has_owner && !async))
			continue;
		if (plan->nowners >= CK_PLAN_OWNERS)
			ck_refuse("image %s: more than %d descriptors of the process have an owner for their I/O signals "
				  "(F_SETOWN) or O_ASYNC; ckrun sets at most that many again",
				  img->path, CK_PLAN_OWNERS);
		plan->owners[plan->nowners++] = (struct ck_plan_owner){
			f->fd, f->owner_type, f->has_owner ? f->owner_id : 0, f->owner_sig, async, 0};
	}
}

/* ---- restore core: raw code, section ckcore ---- */

static CK_CORE_FN long set_owner(struct ck_plan_owner *o)
{
	struct f_owner_ex ex = {o->type, o->id};
	long r = 0;
	if (o->id)
		r = ck_fcntl(o->fd, F_SETOWN_EX, (long)&ex);
	if (r == 0 && o->sig)
		r = ck_fcntl(o->fd, F_SETSIG, o->sig);
	if (r == 0 && o->async) {
		/* O_ASYNC through F_SETFL: that is what registers the description
		 * for the signal (fasync) */
		long fl = ck_fcntl(o->fd, F_GETFL, 0);
		r = fl < 0 ? fl : ck_fcntl(o->fd, F_SETFL, fl | O_ASYNC);
	}
	return r;
}

/* Every owner that exists now. In a family, an owner that does not exist
 * yet waits for the second call (last: every process exists, none runs);
 * one that does not exist then either was gone at the checkpoint already
 * (its signals went to no one, and go to no one now). */
CK_CORE void ck_core_set_owners(struct ck_plan *p, int last)
{
	for (int i = 0; i < p->nowners; i++) {
		struct ck_plan_owner *o = &p->owners[i];
		if (o->done)
			continue;
		long r = set_owner(o);
		if (r == -ESRCH && !last && p->go_fd >= 0)
			continue;
		o->done = 1;
		if (r == -ESRCH) {
			/* the owner is gone: the rest is set without it */
			int id = o->id;
			o->id = 0;
			r = set_owner(o);
			o->id = id;
		}
		if (r < 0) {
			char msg[128];
			struct ck_str m;
			ck_str_init(&m, msg, sizeof msg);
			ck_str_add(&m, "setting the owner of the I/O signals of descriptor ");
			ck_str_dec(&m, o->fd);
			ck_str_add(&m, " (F_SETOWN_EX, F_SETSIG, O_ASYNC) failed");
			ck_core_fail(p, msg, r);
		}
	}
}
