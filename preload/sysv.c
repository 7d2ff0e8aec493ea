/* SysV IPC objects: shared memory segments, semaphore sets and message
 * queues, with their keys, IDs, owners and modes, and the SEM_UNDO
 * adjustments of each process (docs/design.md, "SysV IPC").
 *
 * Save (in the checkpoint's signal handler, while the session is stopped):
 * every object sysvnote.c noted that still exists and that a user of this
 * process created, read with raw system calls: a set's values, a queue's
 * messages (MSG_COPY, which leaves them queued), a segment's contents when
 * no process attaches it (an attached one is saved as memory, memory.c).
 *
 * Restore (the restore host, or the orchestrator of a family, before any
 * process of it runs): every object once, with its key and its ID (through
 * /proc/sys/kernel/TYPE_next_id), filled, then owner and mode set. An object
 * with the key or the ID that the killed session itself left (same key,
 * ID, creator user and group) is replaced; any other one is refused, never
 * removed or used. A restore that fails removes what it made. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

#include "crc32c.h"
#include "restore.h"
#include "sys.h"

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif
#define SEM_MAX_VALUE 32767 /* SEMVMX */
#define SEM_MAX_NSEMS 32000 /* SEMMSL's ceiling */
#define MSG_MAX_COUNT 1000000

static const char *const type_names[] = {"", "shm", "sem", "msg"};
static const char *const type_words[] = {"", "shared memory segment", "semaphore set", "message queue"};

/* ---- save (signal handler: raw system calls only) ---- */

static long stat_object(int type, int id, void *buf)
{
	switch (type) {
	case CK_SYSV_SHM: return CK_SYS3(SYS_shmctl, id, IPC_STAT, buf);
	case CK_SYSV_SEM: return CK_SYS4(SYS_semctl, id, 0, IPC_STAT, buf);
	default: return CK_SYS3(SYS_msgctl, id, IPC_STAT, buf);
	}
}

static int fail(struct ck_writer *w, long err, const char *what, int type, int id)
{
	ck_writer_fail(w, err, what);
	struct ck_str d;
	ck_str_init(&d, w->err_detail, sizeof w->err_detail);
	ck_str_add(&d, "the SysV ");
	ck_str_add(&d, type_words[type]);
	ck_str_add(&d, " with id ");
	ck_str_dec(&d, id);
	ck_str_add(&d, ": ");
	ck_str_errno(&d, err);
	return 0;
}

static void *scratch_map(size_t len)
{
	long a = ck_mmap(0, CK_PAGE_UP(len ? len : 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return a < 0 ? 0 : (void *)a;
}

static void save_perm(struct cb_enc *e, int type, int id, const struct ipc_perm *p)
{
	cb_kv_text(e, "type", type_names[type]);
	cb_kv_uint(e, "key", (uint32_t)p->__key);
	cb_kv_uint(e, "id", (uint64_t)id);
	cb_kv_uint(e, "uid", p->uid);
	cb_kv_uint(e, "gid", p->gid);
	cb_kv_uint(e, "cuid", p->cuid);
	cb_kv_uint(e, "cgid", p->cgid);
	cb_kv_uint(e, "mode", p->mode & 0777);
}

/* A segment no process attaches holds its contents only in the kernel. */
static int save_shm(struct ck_writer *w, int id, const struct shmid_ds *ds)
{
	cb_kv_uint(&w->meta, "size", ds->shm_segsz);
	if (ds->shm_nattch > 0)
		return 1; /* memory.c saves it with the memory of a process that maps it */
	long a = CK_SYS3(SYS_shmat, id, 0, SHM_RDONLY);
	if (a < 0 && a > -4096)
		return fail(w, a, "cannot read a SysV shared memory segment no process attaches", CK_SYSV_SHM, id);
	ck_image_put_data(w, (const void *)a, ds->shm_segsz);
	CK_SYS1(SYS_shmdt, a);
	return 1;
}

static int save_sem(struct ck_writer *w, int id, const struct semid_ds *ds)
{
	size_t n = ds->sem_nsems;
	unsigned short *v = scratch_map(n * sizeof *v);
	if (!v)
		return fail(w, -ENOMEM, "cannot save a SysV semaphore set", CK_SYSV_SEM, id);
	long r = CK_SYS4(SYS_semctl, id, 0, GETALL, v);
	if (r < 0) {
		ck_munmap(v, CK_PAGE_UP(n * sizeof *v));
		return fail(w, r, "cannot read the values of a SysV semaphore set", CK_SYSV_SEM, id);
	}
	cb_text(&w->meta, "values");
	cb_array(&w->meta, n);
	for (size_t i = 0; i < n; i++)
		cb_uint(&w->meta, v[i]);
	ck_munmap(v, CK_PAGE_UP(n * sizeof *v));
	return 1;
}

/* Every message with its type, copied (MSG_COPY) and left queued. */
static int save_msg(struct ck_writer *w, int id, const struct msqid_ds *ds)
{
	struct cb_enc *e = &w->meta;
	size_t total = ds->__msg_cbytes, n = ds->msg_qnum;
	cb_kv_uint(e, "qbytes", ds->msg_qbytes);
	size_t one_cap = sizeof(long) + total;
	long *one = scratch_map(one_cap);
	char *texts = scratch_map(total);
	if (!one || !texts)
		return fail(w, -ENOMEM, "cannot save a SysV message queue", CK_SYSV_MSG, id);
	size_t at = 0;
	cb_text(e, "messages");
	cb_array(e, n);
	long r = 0;
	for (size_t i = 0; i < n; i++) {
		r = CK_SYS5(SYS_msgrcv, id, one, total, (long)i, MSG_COPY | IPC_NOWAIT | MSG_NOERROR);
		if (r < 0 || at + (size_t)r > total) {
			r = r < 0 ? r : -EOVERFLOW;
			break;
		}
		ck_memcpy(texts + at, one + 1, (size_t)r);
		at += (size_t)r;
		cb_array(e, 2);
		cb_uint(e, (uint64_t)one[0]);
		cb_uint(e, (uint64_t)r);
	}
	if (r >= 0)
		ck_image_put_data(w, texts, at);
	ck_munmap(one, CK_PAGE_UP(one_cap));
	ck_munmap(texts, CK_PAGE_UP(total ? total : 1));
	if (r < 0)
		return fail(w, r, "cannot copy the messages of a SysV message queue", CK_SYSV_MSG, id);
	return 1;
}

static int noted_before(int upto, int type, int id)
{
	int t, i2;
	for (int i = 0; i < upto && ck_sysv_known_at(i, &t, &i2); i++)
		if (t == type && i2 == id)
			return 1;
	return 0;
}

/* An object counts as the session's when a user of this process created
 * it; one another user made and the program only uses is left outside. */
static int created_by_us(const struct ipc_perm *p)
{
	unsigned r, e, s;
	if (CK_SYS3(SYS_getresuid, &r, &e, &s) < 0)
		return 0;
	return p->cuid == r || p->cuid == e || p->cuid == s;
}

CK_HIDDEN void ck_sysv_save(struct ck_writer *w, struct ck_scratch *s)
{
	(void)s;
	struct cb_enc *e = &w->meta;
	union {
		struct shmid_ds shm;
		struct semid_ds sem;
		struct msqid_ds msg;
	} ds;
	int type, id, any = 0;
	if (ck_sysv_overflow) {
		ck_writer_fail(w, -ENOSPC, "cannot save the SysV IPC objects");
		struct ck_str d;
		ck_str_init(&d, w->err_detail, sizeof w->err_detail);
		ck_str_add(&d, "the program uses more SysV objects or SEM_UNDO semaphores than ckrun keeps track of (256, 512)");
		return;
	}
	for (int i = 0; ck_sysv_known_at(i, &type, &id); i++) {
		if (!type || noted_before(i, type, id))
			continue;
		long r = stat_object(type, id, &ds);
		if (r == -EINVAL || r == -EIDRM) {
			/* removed meanwhile (by another process, a raw system call, or
			 * the last detach of a segment removed while attached) */
			ck_sysv_forget(type, id);
			continue;
		}
		if (r < 0) {
			fail(w, r, "cannot save a SysV IPC object the program uses", type, id);
			return;
		}
		const struct ipc_perm *p = &ds.shm.shm_perm; /* first in each */
		if (!created_by_us(p))
			continue; /* another user's */
		if (!any) {
			cb_text(e, "sysv");
			cb_map_open(e);
			cb_text(e, "objects");
			cb_array_open(e);
			any = 1;
		}
		cb_map_open(e);
		save_perm(e, type, id, p);
		/* removed while attached: its key is IPC_PRIVATE already; the
		 * restart removes it again once the family has attached it */
		if (type == CK_SYSV_SHM && (p->mode & SHM_DEST))
			cb_kv_bool(e, "removed", 1);
		int ok = type == CK_SYSV_SHM ? save_shm(w, id, &ds.shm) : type == CK_SYSV_SEM ? save_sem(w, id, &ds.sem)
											       : save_msg(w, id, &ds.msg);
		cb_close(e);
		if (!ok)
			return;
	}
	if (!any)
		return;
	cb_close(e);
	cb_text(e, "undo");
	cb_array_open(e);
	int num, adj;
	for (int i = 0; ck_sysv_adj_at(i, &id, &num, &adj); i++) {
		if (id < 0 || !adj || CK_SYS4(SYS_semctl, id, 0, IPC_STAT, &ds) < 0)
			continue;
		cb_array(e, 3);
		cb_uint(e, (uint64_t)id);
		cb_uint(e, (uint64_t)num);
		cb_int(e, adj);
	}
	cb_close(e);
	cb_close(e);
}

/* ---- restore host (libc) ---- */

struct sysv_obj {
	int type, id;
	uint64_t key;
	uint64_t uid, gid, cuid, cgid, mode;
	uint64_t size;   /* shm */
	uint64_t qbytes; /* msg */
	uint16_t *values;
	size_t nvalues;
	uint64_t (*msgs)[2]; /* type, length */
	size_t nmsgs;
	int has_data;
	int removed; /* shm: removed while attached (SHM_DEST), key IPC_PRIVATE */
	uint64_t data_off, data_len;
	uint32_t data_crc;
	const struct ck_image *img; /* the image that holds it */
};

struct sysv_img {
	struct sysv_obj *objs;
	size_t nobjs;
	int64_t (*undo)[3]; /* id, semaphore number, adjustment */
	size_t nundo;
};

static int parse_values(struct cb_dec *d, struct sysv_obj *o)
{
	int64_t n;
	if (!cbd_array(d, &n) || n < 1 || n > SEM_MAX_NSEMS)
		return 0;
	o->values = calloc((size_t)n, sizeof *o->values);
	o->nvalues = (size_t)n;
	for (int64_t i = 0; i < n; i++) {
		uint64_t v;
		if (!cbd_uint_max(d, SEM_MAX_VALUE, &v))
			return 0;
		o->values[i] = (uint16_t)v;
	}
	return 1;
}

static int parse_messages(struct cb_dec *d, struct sysv_obj *o)
{
	int64_t n, m;
	if (!cbd_array(d, &n) || n < 0 || n > MSG_MAX_COUNT)
		return 0;
	o->msgs = calloc((size_t)n + 1, sizeof *o->msgs);
	o->nmsgs = (size_t)n;
	for (int64_t i = 0; i < n; i++)
		if (!cbd_array(d, &m) || m != 2 || !cbd_uint_max(d, INT64_MAX, &o->msgs[i][0]) || o->msgs[i][0] < 1 ||
		    !cbd_uint_max(d, INT32_MAX, &o->msgs[i][1]))
			return 0;
	return 1;
}

static int parse_object(struct cb_dec *d, struct sysv_obj *o)
{
	int64_t left;
	const char *k;
	size_t kl;
	uint64_t v;
	int have = 0;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		int ok = 1;
		if (cbd_key_is(k, kl, "type")) {
			const char *s;
			size_t sl;
			ok = cbd_text(d, &s, &sl);
			for (int t = CK_SYSV_SHM; ok && t <= CK_SYSV_MSG; t++)
				if (sl == strlen(type_names[t]) && !memcmp(s, type_names[t], sl))
					o->type = t;
		} else if (cbd_key_is(k, kl, "key")) {
			ok = cbd_uint_max(d, UINT32_MAX, &o->key);
		} else if (cbd_key_is(k, kl, "id")) {
			ok = cbd_uint_max(d, INT32_MAX, &v);
			o->id = (int)v;
			have |= 1;
		} else if (cbd_key_is(k, kl, "uid")) {
			ok = cbd_uint_max(d, UINT32_MAX - 1, &o->uid);
		} else if (cbd_key_is(k, kl, "gid")) {
			ok = cbd_uint_max(d, UINT32_MAX - 1, &o->gid);
		} else if (cbd_key_is(k, kl, "cuid")) {
			ok = cbd_uint_max(d, UINT32_MAX - 1, &o->cuid);
		} else if (cbd_key_is(k, kl, "cgid")) {
			ok = cbd_uint_max(d, UINT32_MAX - 1, &o->cgid);
		} else if (cbd_key_is(k, kl, "mode")) {
			ok = cbd_uint_max(d, 0777, &o->mode);
		} else if (cbd_key_is(k, kl, "size")) {
			ok = cbd_uint_max(d, (uint64_t)1 << 46, &o->size);
			have |= 2;
		} else if (cbd_key_is(k, kl, "qbytes")) {
			ok = cbd_uint_max(d, INT32_MAX, &o->qbytes);
			have |= 2;
		} else if (cbd_key_is(k, kl, "values")) {
			ok = parse_values(d, o);
			have |= 2;
		} else if (cbd_key_is(k, kl, "removed")) {
			ok = cbd_bool(d, &o->removed);
		} else if (cbd_key_is(k, kl, "messages")) {
			ok = parse_messages(d, o);
			have |= 4;
		} else if (cbd_key_is(k, kl, "data")) {
			int64_t m;
			ok = cbd_array(d, &m) && m == 3 && cbd_uint(d, &o->data_off) && cbd_uint(d, &o->data_len) &&
			     cbd_uint_max(d, UINT32_MAX, &v);
			o->data_crc = (uint32_t)v;
			o->has_data = 1;
		} else {
			ok = cbd_skip(d);
		}
		if (!ok)
			return 0;
	}
	if (!o->type || (have & 3) != 3 || d->error)
		return 0;
	/* what each kind must have, and data that fits what it is */
	if (o->type == CK_SYSV_SEM && (!o->values || o->has_data))
		return 0;
	if (o->removed && (o->type != CK_SYSV_SHM || o->key != IPC_PRIVATE || o->has_data))
		return 0;
	if (o->type == CK_SYSV_MSG) {
		uint64_t sum = 0;
		for (size_t i = 0; i < o->nmsgs; i++)
			sum += o->msgs[i][1];
		if (!(have & 4) || !o->has_data || sum != o->data_len)
			return 0;
	}
	if (o->type == CK_SYSV_SHM && (o->size == 0 || (o->has_data && o->data_len != o->size)))
		return 0;
	return 1;
}

CK_HIDDEN int ck_sysv_parse(struct cb_dec *d, struct ck_image *img)
{
	int64_t left, n;
	const char *k;
	size_t kl;
	struct sysv_img *s = calloc(1, sizeof *s);
	img->sysv = s;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "objects")) {
			if (!cbd_array(d, &n))
				return 0;
			while (cbd_next_item(d, &n)) {
				if (s->nobjs >= 4096)
					return 0;
				s->objs = realloc(s->objs, (s->nobjs + 1) * sizeof *s->objs);
				struct sysv_obj *o = &s->objs[s->nobjs++];
				memset(o, 0, sizeof *o);
				o->img = img;
				if (!parse_object(d, o))
					return 0;
				if (o->has_data && !ck_chunk_inside(img, o->data_off, o->data_len))
					return 0;
			}
		} else if (cbd_key_is(k, kl, "undo")) {
			if (!cbd_array(d, &n))
				return 0;
			while (cbd_next_item(d, &n)) {
				int64_t m, id, num, adj;
				if (s->nundo >= 4096 || !cbd_array(d, &m) || m != 3 || !cbd_int_range(d, 0, INT32_MAX, &id) ||
				    !cbd_int_range(d, 0, SEM_MAX_NSEMS - 1, &num) || !cbd_int_range(d, -32768, 32767, &adj))
					return 0;
				s->undo = realloc(s->undo, (s->nundo + 1) * sizeof *s->undo);
				s->undo[s->nundo][0] = id;
				s->undo[s->nundo][1] = num;
				s->undo[s->nundo][2] = adj;
				s->nundo++;
			}
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	/* every adjustment is of a semaphore of a set the image holds */
	for (size_t i = 0; i < s->nundo; i++) {
		size_t j = 0;
		while (j < s->nobjs && !(s->objs[j].type == CK_SYSV_SEM && s->objs[j].id == s->undo[i][0]))
			j++;
		if (j == s->nobjs || (size_t)s->undo[i][1] >= s->objs[j].nvalues)
			return 0;
	}
	return !d->error;
}

CK_HIDDEN void ck_sysv_release(struct ck_image *img)
{
	struct sysv_img *s = img->sysv;
	if (!s)
		return;
	for (size_t i = 0; i < s->nobjs; i++) {
		free(s->objs[i].values);
		free(s->objs[i].msgs);
	}
	free(s->objs);
	free(s->undo);
	free(s);
	img->sysv = 0;
}

CK_HIDDEN int ck_sysv_present(struct ck_image **imgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sysv_img *s = imgs[i]->sysv;
		if (s && s->nobjs)
			return 1;
	}
	return 0;
}

/* What exists here with a key or an ID: a line of /proc/sysvipc/TYPE. */
struct existing {
	int found;
	int key, id;
	unsigned mode, uid, cuid, cgid;
	unsigned long nattch;
};

static int read_line(int type, const char *line, struct existing *x)
{
	unsigned long size, cpid, lpid, a5;
	unsigned gid;
	memset(x, 0, sizeof *x);
	switch (type) {
	case CK_SYSV_SHM: /* key shmid perms size cpid lpid nattch uid gid cuid cgid ... */
		if (sscanf(line, "%d %d %o %lu %lu %lu %lu %u %u %u %u", &x->key, &x->id, &x->mode, &size, &cpid, &lpid,
			   &x->nattch, &x->uid, &gid, &x->cuid, &x->cgid) != 11)
			return 0;
		break;
	case CK_SYSV_SEM: /* key semid perms nsems uid gid cuid cgid ... */
		if (sscanf(line, "%d %d %o %lu %u %u %u %u", &x->key, &x->id, &x->mode, &a5, &x->uid, &gid, &x->cuid,
			   &x->cgid) != 8)
			return 0;
		break;
	default: /* key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid ... */
		if (sscanf(line, "%d %d %o %lu %lu %lu %lu %u %u %u %u", &x->key, &x->id, &x->mode, &size, &a5, &cpid, &lpid,
			   &x->uid, &gid, &x->cuid, &x->cgid) != 11)
			return 0;
	}
	x->found = 1;
	return 1;
}

/* The object of this type with the key (key != IPC_PRIVATE) or the ID. */
static void find_existing(int type, uint64_t key, int id, struct existing *by_key, struct existing *by_id)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/sysvipc/%s", type_names[type]);
	memset(by_key, 0, sizeof *by_key);
	memset(by_id, 0, sizeof *by_id);
	FILE *f = fopen(path, "re");
	if (!f)
		ck_refuse("cannot read %s to find the SysV objects there: %s", path, strerror(errno));
	struct existing x;
	while (fgets(line, sizeof line, f))
		if (read_line(type, line, &x)) {
			if (key != IPC_PRIVATE && (uint32_t)x.key == key)
				*by_key = x;
			if (x.id == id)
				*by_id = x;
		}
	fclose(f);
}

/* A segment the killed processes attached is detached when they are gone,
 * which a restart right after kill -9 may come before: waited for, 3 s. */
static void wait_detached(const struct sysv_obj *o, struct existing *by_id)
{
	for (int i = 0; i < 300 && by_id->found && by_id->nattch > 0; i++) {
		struct existing by_key;
		usleep(10000);
		find_existing(o->type, o->key, o->id, &by_key, by_id);
	}
}

/* The very object the killed session left: its key, ID and creator. */
static int is_ours(const struct sysv_obj *o, const struct existing *x)
{
	return x->found && x->id == o->id && (uint32_t)x->key == o->key && x->cuid == o->cuid && x->cgid == o->cgid;
}

static char ipcrm_flag(int type)
{
	return type == CK_SYSV_SHM ? 'm' : type == CK_SYSV_SEM ? 's' : 'q';
}

static __attribute__((noreturn)) void refuse_foreign(const struct sysv_obj *o, const struct existing *x, int by_key)
{
	if (by_key)
		ck_refuse("the SysV %s with key %#llx (id %d) exists, created by user %u, and is not the one this session left "
			  "(id %d, created by user %llu): ckrun neither removes nor uses it; if it is stale, remove it (ipcrm -%c %d), "
			  "else end the program that uses it, and restart again",
			  type_words[o->type], (unsigned long long)o->key, x->id, x->cuid, o->id, (unsigned long long)o->cuid,
			  ipcrm_flag(o->type), x->id);
	ck_refuse("the SysV %s id %d, which the program uses, is taken by another %s (key %#x, created by user %u): ckrun "
		  "neither removes nor uses it; if it is stale, remove it (ipcrm -%c %d), else end the program that uses it, "
		  "and restart again",
		  type_words[o->type], o->id, type_words[o->type], (unsigned)x->key, x->cuid, ipcrm_flag(o->type), x->id);
}

static long remove_object(int type, int id)
{
	switch (type) {
	case CK_SYSV_SHM: return syscall(SYS_shmctl, id, IPC_RMID, 0);
	case CK_SYSV_SEM: return syscall(SYS_semctl, id, 0, IPC_RMID, 0);
	default: return syscall(SYS_msgctl, id, IPC_RMID, 0);
	}
}

/* What this restore made: removed again when it fails (ck_refuse exits,
 * or the orchestrator ends the family), by the process that made them. */
static struct {
	int type, id;
	int removed; /* a segment the program had removed while attached */
} *made;
static size_t nmade;
static pid_t maker;
static int kept;

static void remove_made(void)
{
	if (kept || getpid() != maker)
		return;
	for (size_t i = 0; i < nmade; i++)
		remove_object(made[i].type, made[i].id);
	nmade = 0;
}

/* The family runs: what was made is its own now. */
CK_HIDDEN void ck_sysv_keep(void)
{
	kept = 1;
}

static void choose_id(const struct sysv_obj *o)
{
	char path[64], num[24];
	snprintf(path, sizeof path, "/proc/sys/kernel/%s_next_id", type_names[o->type]);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int len = snprintf(num, sizeof num, "%d", o->id);
	if (fd < 0 || write(fd, num, (size_t)len) != len)
		ck_refuse("cannot give the SysV %s (key %#llx) its id %d again: %s: %s (it takes root, or a restart in an IPC "
			  "namespace of the user's own)",
			  type_words[o->type], (unsigned long long)o->key, o->id, path, strerror(errno));
	close(fd);
}

/* Made as its creator (the creator's IDs are the object's for good), when
 * this restore may act as that user. */
static long get_as_creator(const struct sysv_obj *o)
{
	int as_creator = geteuid() == 0 && (o->cuid != 0 || o->cgid != 0);
	if (as_creator && (syscall(SYS_setresgid, -1, (gid_t)o->cgid, -1) != 0 || syscall(SYS_setresuid, -1, (uid_t)o->cuid, -1) != 0))
		ck_refuse("cannot make the SysV %s (key %#llx) as its creator, user %llu: %s", type_words[o->type],
			  (unsigned long long)o->key, (unsigned long long)o->cuid, strerror(errno));
	int flags = IPC_CREAT | IPC_EXCL | 0600;
	long id;
	switch (o->type) {
	case CK_SYSV_SHM: id = syscall(SYS_shmget, (key_t)o->key, o->size, flags); break;
	case CK_SYSV_SEM: id = syscall(SYS_semget, (key_t)o->key, (int)o->nvalues, flags); break;
	default: id = syscall(SYS_msgget, (key_t)o->key, flags);
	}
	int err = errno;
	if (as_creator) {
		syscall(SYS_setresuid, -1, 0, -1);
		syscall(SYS_setresgid, -1, 0, -1);
	}
	errno = err;
	return id;
}

static void *read_data(const struct sysv_obj *o)
{
	void *buf = malloc(o->data_len ? o->data_len : 1);
	if (!buf || ck_pread_all(o->img->fd, buf, o->data_len, o->data_off) < 0)
		ck_refuse("image %s is truncated: cannot read the saved contents of the SysV %s with id %d", o->img->path,
			  type_words[o->type], o->id);
	if (ck_crc32c(0, buf, o->data_len) != o->data_crc)
		ck_refuse("image %s is corrupted: the saved contents of the SysV %s with id %d fail their checksum", o->img->path,
			  type_words[o->type], o->id);
	return buf;
}

static void fill_shm(const struct sysv_obj *o)
{
	if (!o->has_data)
		return;
	void *buf = read_data(o);
	void *a = shmat(o->id, 0, 0);
	if (a == (void *)-1)
		ck_refuse("cannot attach the SysV shared memory segment %d to fill it: %s", o->id, strerror(errno));
	memcpy(a, buf, o->data_len);
	shmdt(a);
	free(buf);
}

/* The values as they were: each restore host then gives itself its own
 * adjustments (ck_sysv_take_undo), which leaves them unchanged. */
static void fill_sem(const struct sysv_obj *o)
{
	if (syscall(SYS_semctl, o->id, 0, SETALL, o->values) != 0)
		ck_refuse("cannot set the values of the SysV semaphore set %d: %s", o->id, strerror(errno));
}

static void fill_msg(const struct sysv_obj *o)
{
	struct msqid_ds ds;
	if (syscall(SYS_msgctl, o->id, IPC_STAT, &ds) != 0)
		ck_refuse("cannot read the SysV message queue %d: %s", o->id, strerror(errno));
	if (ds.msg_qbytes != o->qbytes) {
		ds.msg_qbytes = o->qbytes; /* above msgmnb only with CAP_SYS_RESOURCE */
		if (syscall(SYS_msgctl, o->id, IPC_SET, &ds) != 0)
			ck_refuse("cannot give the SysV message queue %d its size of %llu bytes again: %s", o->id,
				  (unsigned long long)o->qbytes, strerror(errno));
	}
	char *texts = read_data(o);
	uint64_t big = 0;
	for (size_t i = 0; i < o->nmsgs; i++)
		big = o->msgs[i][1] > big ? o->msgs[i][1] : big;
	long *one = malloc(sizeof(long) + big);
	size_t at = 0;
	for (size_t i = 0; i < o->nmsgs; i++) {
		one[0] = (long)o->msgs[i][0];
		memcpy(one + 1, texts + at, o->msgs[i][1]);
		if (syscall(SYS_msgsnd, o->id, one, o->msgs[i][1], IPC_NOWAIT) != 0)
			ck_refuse("cannot put message %zu of %zu back on the SysV message queue %d: %s", i + 1, o->nmsgs, o->id,
				  strerror(errno));
		at += o->msgs[i][1];
	}
	free(one);
	free(texts);
}

/* Owner and mode last: the restore filled it as its creator's or as root. */
static void set_owner(const struct sysv_obj *o)
{
	union {
		struct shmid_ds shm;
		struct semid_ds sem;
		struct msqid_ds msg;
	} ds;
	long r;
	switch (o->type) {
	case CK_SYSV_SHM: r = syscall(SYS_shmctl, o->id, IPC_STAT, &ds); break;
	case CK_SYSV_SEM: r = syscall(SYS_semctl, o->id, 0, IPC_STAT, &ds); break;
	default: r = syscall(SYS_msgctl, o->id, IPC_STAT, &ds);
	}
	struct ipc_perm *p = &ds.shm.shm_perm;
	p->uid = (uid_t)o->uid;
	p->gid = (gid_t)o->gid;
	p->mode = (unsigned short)o->mode;
	if (r == 0) {
		switch (o->type) {
		case CK_SYSV_SHM: r = syscall(SYS_shmctl, o->id, IPC_SET, &ds); break;
		case CK_SYSV_SEM: r = syscall(SYS_semctl, o->id, 0, IPC_SET, &ds); break;
		default: r = syscall(SYS_msgctl, o->id, IPC_SET, &ds);
		}
	}
	if (r != 0)
		ck_refuse("cannot give the SysV %s %d its owner (user %llu, group %llu) and mode %03llo again: %s",
			  type_words[o->type], o->id, (unsigned long long)o->uid, (unsigned long long)o->gid,
			  (unsigned long long)o->mode, strerror(errno));
}

static void create_one(const struct sysv_obj *o)
{
	choose_id(o);
	long id = get_as_creator(o);
	if (id < 0)
		ck_refuse("cannot create the SysV %s (key %#llx, id %d) again: %s", type_words[o->type],
			  (unsigned long long)o->key, o->id, strerror(errno));
	made = realloc(made, (nmade + 1) * sizeof *made);
	made[nmade].type = o->type;
	made[nmade].removed = 0;
	made[nmade++].id = (int)id;
	if (id != o->id)
		ck_refuse("the SysV %s (key %#llx) got id %ld, not its original %d", type_words[o->type],
			  (unsigned long long)o->key, id, o->id);
	if (o->type == CK_SYSV_SHM)
		fill_shm(o);
	else if (o->type == CK_SYSV_SEM)
		fill_sem(o);
	else
		fill_msg(o);
	set_owner(o);
	if (o->removed)
		made[nmade - 1].removed = 1;
	ck_verbose("SysV %s id %d (key %#llx) made again%s", type_words[o->type], o->id, (unsigned long long)o->key,
		   o->removed ? " (to be removed once attached, as it was)" : "");
}

/* Every object of the images once (each process saved the ones it knew). */
static const struct sysv_obj **unique_objects(struct ck_image **imgs, size_t n, size_t *count)
{
	size_t cap = 0;
	for (size_t i = 0; i < n; i++)
		if (imgs[i]->sysv)
			cap += ((struct sysv_img *)imgs[i]->sysv)->nobjs;
	const struct sysv_obj **u = calloc(cap + 1, sizeof *u);
	*count = 0;
	for (size_t i = 0; i < n; i++) {
		struct sysv_img *s = imgs[i]->sysv;
		for (size_t j = 0; s && j < s->nobjs; j++) {
			const struct sysv_obj *o = &s->objs[j];
			size_t k = 0;
			while (k < *count && !(u[k]->type == o->type && u[k]->id == o->id))
				k++;
			if (k < *count) {
				if (u[k]->key != o->key)
					ck_refuse("images %s and %s disagree about the SysV %s with id %d (keys %#llx and %#llx): "
						  "the generation is damaged",
						  u[k]->img->path, o->img->path, type_words[o->type], o->id,
						  (unsigned long long)u[k]->key, (unsigned long long)o->key);
				if (!u[k]->has_data && o->has_data)
					u[k] = o;
				continue;
			}
			u[(*count)++] = o;
		}
	}
	return u;
}

/* Whether a process of the restore maps the segment (memory.c fills it). */
static int mapped_by_family(int id, struct ck_image **imgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nregions; j++) {
			const struct ck_img_region *r = &imgs[i]->regions[j];
			if (r->has_shm && !strcmp(r->shm_kind, "sysv") && r->shm_id == (uint64_t)id)
				return 1;
		}
	return 0;
}

/* The session's leftovers this restore replaces; refuses (naming it) any
 * object with an image's key or ID that is not the session's own. */
static void check_existing(const struct sysv_obj *o, struct existing *ours)
{
	struct existing by_key, by_id;
	find_existing(o->type, o->key, o->id, &by_key, &by_id);
	memset(ours, 0, sizeof *ours);
	if (by_key.found && !is_ours(o, &by_key))
		refuse_foreign(o, &by_key, 1);
	if (by_id.found && !is_ours(o, &by_id))
		refuse_foreign(o, &by_id, 0);
	if (by_id.found) {
		if (o->type == CK_SYSV_SHM)
			wait_detached(o, &by_id);
		if (o->type == CK_SYSV_SHM && by_id.nattch > 0)
			ck_refuse("the SysV shared memory segment with key %#llx (id %d) that this session left is still attached by "
				  "%lu processes: does the session still run? End it (or them) first, then restart again",
				  (unsigned long long)o->key, o->id, by_id.nattch);
		*ours = by_id;
	}
}

CK_HIDDEN void ck_sysv_create_shared(struct ck_image **imgs, size_t n)
{
	size_t count;
	const struct sysv_obj **u = unique_objects(imgs, n, &count);
	if (!count) {
		free(u);
		return;
	}
	/* a segment removed while attached that no process of the family
	 * attaches was attached only outside: it is gone for the program */
	size_t kept_count = 0;
	for (size_t i = 0; i < count; i++)
		if (!(u[i]->removed && !mapped_by_family(u[i]->id, imgs, n)))
			u[kept_count++] = u[i];
	count = kept_count;
	struct existing *ours = calloc(count + 1, sizeof *ours);
	for (size_t i = 0; i < count; i++) {
		const struct sysv_obj *o = u[i];
		if (o->type == CK_SYSV_SHM && !o->has_data && !mapped_by_family(o->id, imgs, n))
			ck_refuse("image %s holds the SysV shared memory segment with id %d (key %#llx) without its contents: only "
				  "processes outside the session attached it",
				  o->img->path, o->id, (unsigned long long)o->key);
		check_existing(o, &ours[i]);
	}
	/* nothing was changed so far; from here a failure removes what was made */
	maker = getpid();
	atexit(remove_made);
	for (size_t i = 0; i < count; i++)
		if (ours[i].found) {
			if (remove_object(u[i]->type, u[i]->id) != 0 && errno != EINVAL && errno != EIDRM)
				ck_refuse("cannot remove the SysV %s (key %#llx, id %d) the killed session left: %s",
					  type_words[u[i]->type], (unsigned long long)u[i]->key, u[i]->id, strerror(errno));
			ck_verbose("the SysV %s id %d (key %#llx) the killed session left is replaced", type_words[u[i]->type],
				   u[i]->id, (unsigned long long)u[i]->key);
		}
	for (size_t i = 0; i < count; i++)
		create_one(u[i]);
	free(ours);
	free(u);
}

/* Whether this restore made the segment (memory.c then maps it, and need
 * not create it): 1, or 2 when the program had removed it while attached
 * (the restore core removes it again once it is attached). */
CK_HIDDEN int ck_sysv_made_shm(uint64_t id)
{
	for (size_t i = 0; i < nmade; i++)
		if (made[i].type == CK_SYSV_SHM && (uint64_t)made[i].id == id)
			return made[i].removed ? 2 : 1;
	return 0;
}

/* This process's own SEM_UNDO adjustments, given back to it in the kernel
 * by one atomic semop of two operations on the semaphore: one with
 * SEM_UNDO (which makes the adjustment) and one without that undoes its
 * change of the value, the increase first. The value is never lower than
 * it was, and nothing waits: the processes of a family that already run
 * (a restored parent) see no change. */
CK_HIDDEN void ck_sysv_take_undo(const struct ck_image *img)
{
	struct sysv_img *s = img->sysv;
	for (size_t i = 0; s && i < s->nundo; i++) {
		unsigned short num = (unsigned short)s->undo[i][1];
		short adj = (short)s->undo[i][2];
		/* an operation of x with SEM_UNDO adds -x to the adjustment */
		struct sembuf plain = {num, adj, IPC_NOWAIT}, undo = {num, (short)-adj, SEM_UNDO | IPC_NOWAIT};
		struct sembuf ops[2] = {adj > 0 ? plain : undo, adj > 0 ? undo : plain};
		long r = CK_SYS4(SYS_semtimedop, (int)s->undo[i][0], ops, 2, 0);
		if (r != 0)
			ck_refuse("cannot give process %d its SEM_UNDO adjustment %d of semaphore %u of the SysV semaphore set %lld "
				  "again: %s",
				  img->pid, adj, num, (long long)s->undo[i][0], strerror((int)-r));
	}
}

/* Whether this restore runs in a user namespace of its own (an ordinary
 * user's restart), where the system's IPC namespace gives no IDs at will. */
static int in_own_user_namespace(void)
{
	char map[128] = "";
	int fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
	ssize_t k = fd >= 0 ? read(fd, map, sizeof map - 1) : -1;
	if (fd >= 0)
		close(fd);
	unsigned a, b, c;
	return k > 0 && !(sscanf(map, "%u %u %u", &a, &b, &c) == 3 && a == 0 && b == 0 && c == 4294967295u);
}

/* The objects the killed session left in the system's namespace, which
 * this restart replaces with its own namespace's: removed when they are
 * that session's very objects (key, ID, creator) and unattached. */
static void remove_leftovers(struct ck_image **imgs, size_t n)
{
	size_t count;
	const struct sysv_obj **u = unique_objects(imgs, n, &count);
	for (size_t i = 0; i < count; i++) {
		struct existing by_key, by_id;
		find_existing(u[i]->type, u[i]->key, u[i]->id, &by_key, &by_id);
		if (is_ours(u[i], &by_id) && u[i]->type == CK_SYSV_SHM)
			wait_detached(u[i], &by_id);
		if (is_ours(u[i], &by_id) && by_id.cuid == geteuid() && !(u[i]->type == CK_SYSV_SHM && by_id.nattch > 0) &&
		    remove_object(u[i]->type, u[i]->id) == 0)
			ck_verbose("the SysV %s id %d (key %#llx) the killed session left is removed", type_words[u[i]->type],
				   u[i]->id, (unsigned long long)u[i]->key);
	}
	free(u);
}

/* An ordinary user's restart of SysV objects runs in an IPC namespace of
 * its own, where their keys are free and their IDs can be chosen. */
CK_HIDDEN void ck_sysv_own_namespace(struct ck_image **imgs, size_t n)
{
	if (!ck_sysv_present(imgs, n) || !in_own_user_namespace())
		return;
	remove_leftovers(imgs, n);
	if (unshare(CLONE_NEWIPC) != 0)
		ck_refuse("cannot make an IPC namespace for the SysV objects of the program (their IDs need one in a restart "
			  "without root): %s",
			  strerror(errno));
	ck_verbose("SysV objects: restoring in an IPC namespace of its own");
}
