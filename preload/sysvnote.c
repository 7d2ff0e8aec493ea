/* The SysV IPC objects the program uses, and the semaphore adjustments
 * (SEM_UNDO) its operations left. The kernel lists every object of the
 * machine but not whose they are, and shows no process its adjustments:
 * the wrappers (shim.c, syscalls.c) note them here, and sysv.c saves what
 * is noted. Process state: a forked child inherits the objects, not the
 * adjustments (the kernel gives it none), and an exec forgets both.
 *
 * An operation with SEM_UNDO is made with ckrun's signal blocked, together
 * with its note, in slices of at most 10 ms: a checkpoint finds it either
 * done and noted or not done, and still stops a process that waits. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <time.h>

#include "ckrun.h"
#include "sys.h"

#define KNOWN_MAX 256
#define ADJ_MAX 512
#define SLICE_NS 10000000LL

/* (type << 32 | id), 0: free */
static volatile uint64_t known[KNOWN_MAX];
/* (id << 16 | semaphore number) + 1, 0: free; and its adjustment */
static volatile uint64_t adj_key[ADJ_MAX];
static volatile int adj_value[ADJ_MAX];
CK_HIDDEN volatile int ck_sysv_overflow;

static uint64_t known_key(int type, int id)
{
	return (uint64_t)(uint32_t)type << 32 | (uint32_t)id;
}

/* Whether the noted object is gone (IPC_STAT: EINVAL or EIDRM). */
static int gone(uint64_t k)
{
	union {
		struct shmid_ds shm;
		struct semid_ds sem;
		struct msqid_ds msg;
	} ds;
	int type = (int)(k >> 32), id = (int)(uint32_t)k;
	long r = type == CK_SYSV_SHM ? CK_SYS3(SYS_shmctl, id, IPC_STAT, &ds)
		 : type == CK_SYSV_SEM ? CK_SYS4(SYS_semctl, id, 0, IPC_STAT, &ds)
				       : CK_SYS3(SYS_msgctl, id, IPC_STAT, &ds);
	return r == -EINVAL || r == -EIDRM;
}

static int note_in_free_slot(uint64_t k)
{
	for (int i = 0; i < KNOWN_MAX; i++) {
		uint64_t free_ = 0;
		if (__atomic_compare_exchange_n(&known[i], &free_, k, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return 1;
	}
	return 0;
}

CK_HIDDEN void ck_sysv_note(int type, int id)
{
	if (id < 0)
		return;
	uint64_t k = known_key(type, id);
	for (int i = 0; i < KNOWN_MAX; i++)
		if (known[i] == k)
			return;
	if (note_in_free_slot(k))
		return;
	/* full: segments removed while attached stay noted until a checkpoint
	 * finds them gone (a program that attaches and removes many, like an
	 * X client's MIT-SHM images, fills the table): the gone ones make room */
	for (int i = 0; i < KNOWN_MAX; i++) {
		uint64_t old = known[i];
		if (old && gone(old))
			__atomic_compare_exchange_n(&known[i], &old, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	}
	if (!note_in_free_slot(k))
		ck_sysv_overflow = 1;
}

static uint64_t adj_slot_key(int id, int num)
{
	return ((uint64_t)(uint32_t)id << 16 | (uint16_t)num) + 1;
}

/* Forgets the adjustments of one semaphore (num >= 0) or a whole set: the
 * kernel resets them when the value is set (SETVAL, SETALL) or the set removed. */
CK_HIDDEN void ck_sysv_undo_clear(int id, int num)
{
	for (int i = 0; i < ADJ_MAX; i++) {
		uint64_t k = adj_key[i];
		if (!k || (k - 1) >> 16 != (uint32_t)id || (num >= 0 && (uint16_t)((k - 1) & 0xffff) != (uint16_t)num))
			continue;
		adj_value[i] = 0;
	}
}

CK_HIDDEN void ck_sysv_forget(int type, int id)
{
	uint64_t k = known_key(type, id);
	for (int i = 0; i < KNOWN_MAX; i++)
		if (known[i] == k)
			__atomic_store_n(&known[i], 0, __ATOMIC_SEQ_CST);
	if (type == CK_SYSV_SEM)
		ck_sysv_undo_clear(id, -1);
}

/* The i-th noted object; 0 past the end (free slots give type 0). */
CK_HIDDEN int ck_sysv_known_at(int i, int *type, int *id)
{
	if (i >= KNOWN_MAX)
		return 0;
	uint64_t k = known[i];
	*type = (int)(k >> 32);
	*id = (int)(uint32_t)k;
	return 1;
}

CK_HIDDEN int ck_sysv_adj_at(int i, int *id, int *num, int *adj)
{
	if (i >= ADJ_MAX)
		return 0;
	uint64_t k = adj_key[i];
	*id = k ? (int)(uint32_t)((k - 1) >> 16) : -1;
	*num = k ? (int)((k - 1) & 0xffff) : -1;
	*adj = k ? adj_value[i] : 0;
	return 1;
}

static void adj_add(int id, int num, int delta)
{
	uint64_t k = adj_slot_key(id, num);
	for (int i = 0; i < ADJ_MAX; i++)
		if (adj_key[i] == k) {
			__atomic_add_fetch(&adj_value[i], delta, __ATOMIC_SEQ_CST);
			return;
		}
	for (int i = 0; i < ADJ_MAX; i++) {
		uint64_t free_ = 0;
		if (__atomic_compare_exchange_n(&adj_key[i], &free_, k, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			__atomic_add_fetch(&adj_value[i], delta, __ATOMIC_SEQ_CST);
			return;
		}
	}
	ck_sysv_overflow = 1;
}

/* fork's child: the kernel gave it no adjustments */
CK_HIDDEN void ck_sysv_forked(void)
{
	for (int i = 0; i < ADJ_MAX; i++) {
		adj_key[i] = 0;
		adj_value[i] = 0;
	}
}

static int64_t mono_ns(void)
{
	struct ck_timespec t;
	CK_SYS2(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
	return (int64_t)t.sec * 1000000000LL + t.nsec;
}

/* semop/semtimedop with a SEM_UNDO operation (see above); -errno on failure. */
CK_HIDDEN long ck_sysv_semop_undo(int id, struct sembuf *ops, size_t n, const struct timespec *tmo)
{
	int64_t deadline = tmo ? mono_ns() + (int64_t)tmo->tv_sec * 1000000000LL + tmo->tv_nsec : -1;
	uint64_t ours = ck_session.sig > 0 ? 1ULL << (ck_session.sig - 1) : 0, mask;
	for (;;) {
		int64_t start = mono_ns(), slice = SLICE_NS;
		if (deadline >= 0 && deadline - start < slice)
			slice = deadline - start > 0 ? deadline - start : 0;
		struct ck_timespec ts = {slice / 1000000000LL, slice % 1000000000LL};
		ck_rt_sigprocmask(SIG_BLOCK, &ours, &mask);
		long r = CK_SYS4(SYS_semtimedop, id, ops, n, &ts);
		if (r == 0) {
			ck_sysv_note(CK_SYSV_SEM, id);
			for (size_t i = 0; i < n; i++)
				if (ops[i].sem_flg & SEM_UNDO)
					adj_add(id, ops[i].sem_num, -ops[i].sem_op);
		}
		ck_rt_sigprocmask(SIG_SETMASK, &mask, 0);
		/* EAGAIN of a slice that ran out: wait on (an IPC_NOWAIT operation
		 * that would block returns at once) */
		if (r == -EAGAIN && mono_ns() - start >= slice && (deadline < 0 || mono_ns() < deadline))
			continue;
		return r;
	}
}
