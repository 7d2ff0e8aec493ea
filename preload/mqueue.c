/* POSIX message queues (mq_open): each descriptor's access mode and
 * O_NONBLOCK, the queue's attributes, owner and mode, and its messages
 * with their priorities.
 *
 * The kernel has no way to look at a message without taking it, so the
 * checkpoint takes every message (through a description of its own, never
 * waiting) and sends them back at once, in the order taken: the queue is
 * as it was (the highest priority first, each priority in order). A count
 * that does not match the queue's before and after (another process took
 * or sent one meanwhile) fails the checkpoint. The messages are read
 * through /proc/self/fd (the queue the descriptor has, even when its name
 * was removed or now names another queue). A queue with an mq_notify
 * registration (whose sigev_value the kernel does not show) is refused at
 * the checkpoint.
 *
 * At restart a queue outlives its processes: it is opened by name (made
 * if gone, with its attributes, owner and mode), emptied of what was sent
 * after the checkpoint, and given its saved messages, once, before any
 * process is forked; each descriptor opens it again by name. A queue that
 * was removed while open (mq_unlink, "deleted") is made under its name
 * (or NAME.ckrun-XXXXXX when a queue has that name now), given its
 * messages and removed again at once; each descriptor opens it through
 * /proc/self/fd of the one the restore host keeps. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "fdkind.h"
#include "sys.h"

#define MQUEUE_MAGIC 0x19800202

struct ck_mq_attr {
	long flags, maxmsg, msgsize, curmsgs, pad[4];
};

static int mqueue_detect(const struct ck_fd *f)
{
	uint64_t sfs[16];
	return (f->st.mode & S_IFMT) == S_IFREG && CK_SYS2(SYS_fstatfs, f->fd, sfs) == 0 && sfs[0] == MQUEUE_MAGIC;
}

static void fail_mq(struct ck_writer *w, long err, const struct ck_fd *f, const char *why)
{
	struct ck_str m;
	ck_writer_fail(w, err, "the program has a POSIX message queue ckrun cannot save");
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, f->fd);
	ck_str_add(&m, " (message queue ");
	ck_str_add(&m, f->link);
	ck_str_add(&m, ") ");
	ck_str_add(&m, why);
}

/* Whether a process holds an mq_notify registration on the queue: the
 * queue file's text ("QSIZE:... NOTIFY_PID:n"), read at the program's
 * offset, which is put back. */
static int has_notification(int fd)
{
	char buf[256];
	long was = ck_lseek(fd, 0, SEEK_CUR);
	ck_lseek(fd, 0, SEEK_SET);
	long n = ck_read(fd, buf, sizeof buf - 1);
	if (was >= 0)
		ck_lseek(fd, was, SEEK_SET);
	buf[n > 0 ? n : 0] = 0;
	for (const char *p = buf; *p; p++)
		if (ck_strneq(p, "NOTIFY_PID:", 11)) {
			uint64_t pid = 0;
			p += 11;
			while (*p == ' ')
				p++;
			ck_parse_dec(&p, &pid);
			return pid != 0;
		}
	return 0;
}

/* Takes every message and sends it back; writes "messages" ([priority,
 * length] each) and "data" (all of them, in order). 0 when it failed. */
static int save_messages(struct ck_writer *w, const struct ck_fd *f, const struct ck_mq_attr *a)
{
	struct cb_enc *e = &w->meta;
	char proc[40];
	struct ck_str s;
	ck_str_init(&s, proc, sizeof proc);
	ck_str_add(&s, "/proc/self/fd/");
	ck_str_dec(&s, f->fd);
	int q = (int)ck_openat(AT_FDCWD, proc, O_RDWR | O_CLOEXEC, 0);
	if (q < 0) {
		fail_mq(w, q, f, "holds messages, and ckrun cannot open the queue to read them (it needs read and write "
				 "permission on it)");
		return 0;
	}
	size_t cap = (size_t)a->curmsgs * ((size_t)a->msgsize + 8);
	long mem = ck_mmap(0, CK_PAGE_UP(cap), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem < 0 && mem > -4096) {
		ck_close(q);
		fail_mq(w, mem, f, "holds more messages than ckrun has memory for");
		return 0;
	}
	char *buf = (char *)mem;
	struct ck_timespec {
		long sec, nsec;
	} past = {0, 0}, soon;
	uint32_t *prio = (uint32_t *)buf, *lens = prio + a->curmsgs;
	char *data = (char *)(lens + a->curmsgs);
	size_t used = 0;
	long n = 0;
	for (; n < a->curmsgs; n++) {
		unsigned p;
		long r = CK_SYS5(SYS_mq_timedreceive, q, data + used, (size_t)a->msgsize, &p, &past);
		if (r < 0)
			break;
		prio[n] = p;
		lens[n] = (uint32_t)r;
		used += (size_t)r;
	}
	CK_SYS2(SYS_clock_gettime, CLOCK_REALTIME, &soon);
	soon.sec += 1;
	size_t at = 0;
	int lost = 0;
	for (long i = 0; i < n; i++) {
		if (CK_SYS5(SYS_mq_timedsend, q, data + at, lens[i], prio[i], &soon) < 0)
			lost = 1;
		at += lens[i];
	}
	struct ck_mq_attr after;
	CK_SYS3(SYS_mq_getsetattr, q, 0, &after);
	ck_close(q);
	int ok = !lost && n == a->curmsgs && after.curmsgs == a->curmsgs;
	if (ok) {
		cb_text(e, "messages");
		cb_array(e, (uint64_t)n);
		for (long i = 0; i < n; i++) {
			cb_array(e, 2);
			cb_uint(e, prio[i]);
			cb_uint(e, lens[i]);
		}
		ck_image_put_data(w, data, used);
	}
	ck_munmap(buf, CK_PAGE_UP(cap));
	if (!ok)
		fail_mq(w, -EAGAIN, f,
			lost ? "lost messages while ckrun saved them (another process filled the queue meanwhile)"
			     : "changed while ckrun saved its messages (another process sent or took one): checkpoint again");
	return ok;
}

/* The first descriptor of this queue in the process: it carries the messages. */
static int first_of_queue(const struct ck_fdtab *t, const struct ck_fd *f)
{
	for (const struct ck_fd *o = t->fds; o < f; o++)
		if (o->st.dev == f->st.dev && o->st.ino == f->st.ino)
			return 0;
	return 1;
}

/* A queue removed while open shows its old name with " (deleted)". */
static int mqueue_removed(const struct ck_fd *f)
{
	return ck_ends_with(f->link, " (deleted)");
}

/* The path is the queue's name, without the " (deleted)" the kernel adds. */
static size_t mqueue_path_len(const struct ck_fd *f)
{
	size_t n = ck_strlen(f->link);
	return mqueue_removed(f) ? n - 10 : n;
}

static void mqueue_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	struct cb_enc *e = &w->meta;
	struct ck_mq_attr a;
	const char *why = f->link[0] != '/' || mqueue_path_len(f) < 2 || CK_SYS3(SYS_mq_getsetattr, f->fd, 0, &a) < 0
				  ? "does not show its name or attributes"
			  : has_notification(f->fd)
				  ? "has an mq_notify registration, which ckrun cannot restore (the kernel does not show "
				    "its sigev_value); cancel it (mq_notify(fd, NULL)) before the checkpoint"
				  : 0;
	if (why) {
		fail_mq(w, -EOPNOTSUPP, f, why);
		return;
	}
	cb_text(e, "mqueue");
	cb_map_open(e);
	cb_kv_uint(e, "maxmsg", (uint64_t)a.maxmsg);
	cb_kv_uint(e, "msgsize", (uint64_t)a.msgsize);
	cb_kv_uint(e, "uid", f->st.uid);
	cb_kv_uint(e, "gid", f->st.gid);
	if (mqueue_removed(f))
		cb_kv_bool(e, "deleted", 1);
	if (a.curmsgs > 0 && first_of_queue(t, f))
		save_messages(w, f, &a);
	cb_close(e);
}

/* ---- restore host ---- */

CK_HIDDEN extern const struct ck_fd_kind ck_kind_mqueue;

struct mqueue {
	uint64_t maxmsg, msgsize, uid, gid;
	int deleted; /* removed (mq_unlink) while open */
	uint64_t nmsgs;
	uint32_t *prio, *len;
	uint64_t data_off, data_len;
	uint32_t data_crc;
};

static int parse_messages(struct cb_dec *d, struct mqueue *q)
{
	int64_t n, m;
	if (!cbd_array(d, &n) || n < 0 || n > 1 << 20)
		return 0;
	q->prio = calloc((size_t)n + 1, sizeof *q->prio);
	q->len = calloc((size_t)n + 1, sizeof *q->len);
	for (int64_t i = 0; i < n; i++) {
		uint64_t p, l;
		if (!cbd_array(d, &m) || m != 2 || !cbd_uint_max(d, UINT32_MAX, &p) || !cbd_uint_max(d, UINT32_MAX, &l))
			return 0;
		q->prio[i] = (uint32_t)p;
		q->len[i] = (uint32_t)l;
	}
	q->nmsgs = (uint64_t)n;
	return 1;
}

static int mqueue_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left;
	const char *k;
	size_t kl;
	struct mqueue *q = calloc(1, sizeof *q);
	f->priv = q;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		uint64_t *v = cbd_key_is(k, kl, "maxmsg")    ? &q->maxmsg
			      : cbd_key_is(k, kl, "msgsize") ? &q->msgsize
			      : cbd_key_is(k, kl, "uid")     ? &q->uid
			      : cbd_key_is(k, kl, "gid")     ? &q->gid
							     : 0;
		if (v) {
			if (!cbd_uint_max(d, UINT32_MAX, v))
				return 0;
		} else if (cbd_key_is(k, kl, "deleted")) {
			if (!cbd_bool(d, &q->deleted))
				return 0;
		} else if (cbd_key_is(k, kl, "messages")) {
			if (!parse_messages(d, q))
				return 0;
		} else if (cbd_key_is(k, kl, "data")) {
			int64_t m;
			uint64_t crc;
			if (!cbd_array(d, &m) || m != 3 || !cbd_uint(d, &q->data_off) || !cbd_uint(d, &q->data_len) ||
			    !cbd_uint_max(d, UINT32_MAX, &crc))
				return 0;
			q->data_crc = (uint32_t)crc;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	uint64_t total = 0;
	for (uint64_t i = 0; i < q->nmsgs; i++) {
		if (q->len[i] > q->msgsize)
			return 0;
		total += q->len[i];
	}
	return !d->error && q->maxmsg && q->msgsize && total == q->data_len && q->nmsgs <= q->maxmsg;
}

static void mqueue_release(struct ck_img_file *f)
{
	struct mqueue *q = f->priv;
	if (q) {
		free(q->prio);
		free(q->len);
	}
	free(q);
}

/* The queue by name: made as it was if gone; refused if it is another
 * queue now, or someone registered for its notification. */
static mqd_t open_queue(struct ck_img_file *f, const struct mqueue *q)
{
	struct mq_attr want = {.mq_maxmsg = (long)q->maxmsg, .mq_msgsize = (long)q->msgsize}, got;
	mqd_t m = mq_open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_CREAT | O_EXCL, f->mode & 0777, &want);
	if (m >= 0) {
		if (fchown(m, (uid_t)q->uid, (gid_t)q->gid) != 0 || fchmod(m, f->mode & 0777) != 0)
			ck_refuse("cannot give the message queue %s (descriptor %d) its owner and mode again: %s", f->path, f->fd,
				  strerror(errno));
		return m;
	}
	if (errno == EEXIST)
		m = mq_open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (m < 0)
		ck_refuse("cannot open the message queue %s (descriptor %d) again: %s", f->path, f->fd, strerror(errno));
	struct stat st;
	if (fstat(m, &st) != 0 || st.st_uid != q->uid)
		ck_refuse("the message queue %s (descriptor %d) belongs to user %u now, not to %llu as at the checkpoint; "
			  "ckrun does not trust it: remove it (mq_unlink) and restart again",
			  f->path, f->fd, (unsigned)st.st_uid, (unsigned long long)q->uid);
	if (mq_getattr(m, &got) != 0 || got.mq_maxmsg != want.mq_maxmsg || got.mq_msgsize != want.mq_msgsize)
		ck_refuse("the message queue %s (descriptor %d) is another queue now (%ld messages of %ld bytes at most, "
			  "where the checkpoint had %ld of %ld); remove it (mq_unlink) or restart from an image taken with it",
			  f->path, f->fd, got.mq_maxmsg, got.mq_msgsize, want.mq_maxmsg, want.mq_msgsize);
	char text[256];
	ssize_t n = pread(m, text, sizeof text - 1, 0);
	text[n > 0 ? n : 0] = 0;
	const char *pid = strstr(text, "NOTIFY_PID:");
	if (pid && atoi(pid + 11) != 0)
		ck_refuse("the message queue %s (descriptor %d) has an mq_notify registration of process %d now; ckrun would "
			  "empty it under that process: stop it, or restart from an image taken without the queue",
			  f->path, f->fd, atoi(pid + 11));
	return m;
}

/* A queue removed while open: made again under its name, or under
 * NAME.ckrun-XXXXXX when that is taken now (like a deleted file), with its
 * attributes, owner and mode, and removed again at once: the returned
 * descriptor keeps it. (A program of the user that opens that name in the
 * instant it exists would get this queue, as it would have before the
 * original mq_unlink.) */
static mqd_t make_removed_queue(struct ck_img_file *f, const struct mqueue *q)
{
	struct mq_attr want = {.mq_maxmsg = (long)q->maxmsg, .mq_msgsize = (long)q->msgsize};
	char name[300];
	mqd_t m = -1;
	snprintf(name, sizeof name, "%s", f->path);
	for (int attempt = 0; attempt < 100 && m < 0; attempt++) {
		if (attempt)
			snprintf(name, sizeof name, "%.240s.ckrun-%06x", f->path, (unsigned)random() & 0xffffff);
		m = mq_open(name, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_CREAT | O_EXCL, f->mode & 0777, &want);
		if (m < 0 && errno != EEXIST)
			break;
	}
	if (m < 0)
		ck_refuse("cannot make the message queue %s (descriptor %d), removed while open, again: %s", f->path, f->fd,
			  strerror(errno));
	int owned = fchown(m, (uid_t)q->uid, (gid_t)q->gid) == 0 && fchmod(m, f->mode & 0777) == 0;
	int err = errno;
	mq_unlink(name);
	if (!owned)
		ck_refuse("cannot give the message queue %s (descriptor %d) its owner and mode again: %s", f->path, f->fd,
			  strerror(err));
	return m;
}

/* Empties the queue (what was sent after the checkpoint) and puts the
 * saved messages back, in order. */
static void refill(struct ck_image *img, struct ck_img_file *f, const struct mqueue *q, mqd_t m)
{
	char *buf = malloc(q->msgsize + q->data_len + 1);
	unsigned prio;
	while (mq_receive(m, buf, q->msgsize, &prio) >= 0)
		;
	if (errno != EAGAIN)
		ck_refuse("cannot empty the message queue %s: %s", f->path, strerror(errno));
	char *data = buf + q->msgsize;
	if (q->data_len && ck_pread_all(img->fd, data, q->data_len, q->data_off) < 0)
		ck_refuse("image %s is truncated: cannot read the messages of the queue %s", img->path, f->path);
	if (ck_crc32c(0, data, q->data_len) != q->data_crc)
		ck_refuse("image %s is corrupted: the messages of the queue %s fail their checksum", img->path, f->path);
	for (uint64_t i = 0, at = 0; i < q->nmsgs; at += q->len[i++])
		if (mq_send(m, data + at, q->len[i], q->prio[i]) != 0)
			ck_refuse("cannot put a message back in the queue %s: %s", f->path, strerror(errno));
	free(buf);
}

/* Every queue once (object "mqueue" (dev, ino)), from the first image with its messages. */
static void mqueues_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	for (int with_data = 1; with_data >= 0; with_data--)
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < imgs[i]->nfiles; j++) {
				struct ck_img_file *f = &imgs[i]->files[j];
				const struct mqueue *q = f->priv;
				if (f->ops != &ck_kind_mqueue || !q || (with_data && !q->nmsgs) ||
				    ck_objects_find(objs, "mqueue", f->dev, f->ino) >= 0)
					continue;
				mqd_t m = q->deleted ? make_removed_queue(f, q) : open_queue(f, q);
				refill(imgs[i], f, q, m);
				int moved = fcntl(m, F_DUPFD_CLOEXEC, base_fd);
				close(m);
				if (moved < 0)
					ck_refuse("cannot place the message queue %s: %s", f->path, strerror(errno));
				ck_objects_add(objs, "mqueue", f->dev, f->ino, moved);
			}
}

static int mqueue_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd;
	const struct mqueue *q = f->priv;
	int flags = (f->flags & (O_ACCMODE | O_NONBLOCK)) | O_CLOEXEC;
	if (q && q->deleted) {
		/* a description of its own of the queue the restore host made */
		char proc[64];
		int kept = ck_objects_find(objs, "mqueue", f->dev, f->ino);
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", kept);
		int m = kept < 0 ? -1 : open(proc, flags);
		if (m < 0)
			ck_refuse("cannot open the message queue %s (descriptor %d), removed while open, again: %s", f->path, f->fd,
				  kept < 0 ? "it was not made" : strerror(errno));
		return m;
	}
	mqd_t m = mq_open(f->path, flags);
	if (m < 0)
		ck_refuse("cannot open the message queue %s again as descriptor %d: %s", f->path, f->fd, strerror(errno));
	return m;
}

CK_HIDDEN const struct ck_fd_kind ck_kind_mqueue = {
	.name = "mqueue",
	.detect = mqueue_detect,
	.save = mqueue_save,
	.path_len = mqueue_path_len,
	.key = "mqueue",
	.parse = mqueue_parse,
	.release = mqueue_release,
	.create_shared = mqueues_create_shared,
	.open = mqueue_open,
};
