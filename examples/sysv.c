/*
 * sysv: one program per kind of SysV IPC object, each checking its own
 * object (key, id, owner, mode, contents) at every step; any difference
 * prints an "error:" line and exits 2.
 *
 *   sysv shm KEY STEPS  a segment attached (a counter and a pattern) and a
 *                       second one (key KEY+1) never attached while it
 *                       works: its contents live only in the kernel
 *   sysv sem KEY STEPS  a set of three: a child holds the baton (semaphore
 *                       0) with SEM_UNDO and adds to semaphore 2 with
 *                       SEM_UNDO at every step, while the parent waits for
 *                       the baton in semop (a blocked waiter); the child
 *                       exits without giving anything back: the kernel's
 *                       undo must hand the baton to the parent and take
 *                       every addition back
 *   sysv msg KEY STEPS  a queue (smaller than the default, mode 0620) that
 *                       always holds a backlog of messages of three types;
 *                       a child receives them in order, blocked in msgrcv
 *                       when the queue is empty
 *   sysv squat KIND KEY makes an object of KIND (shm, sem, msg) with KEY,
 *                       prints its id and exits (the object stays)
 *
 * Each removes its objects at the end.
 */
#include "common.h"
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define PACE 25
#define SHM_SIZE (3 * 4096 + 100)
#define BACKLOG 5
#define QBYTES 8000

static void check_perm(const struct ipc_perm *p, key_t key, unsigned mode, const char *what)
{
	if (p->__key != key || (p->mode & 0777) != mode || p->uid != geteuid() || p->cuid != geteuid() ||
	    p->gid != getegid()) {
		say("error: %s: key %#x mode %o uid %u cuid %u gid %u, expected key %#x mode %o uid %u gid %u", what,
		    (unsigned)p->__key, p->mode & 0777, p->uid, p->cuid, p->gid, (unsigned)key, mode, geteuid(), getegid());
		exit(2);
	}
}

static unsigned char pattern(size_t i, int which)
{
	return (unsigned char)(splitmix64(i * 2 + (size_t)which) & 0xff);
}

static int run_shm(key_t key, int steps)
{
	int a = shmget(key, SHM_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	int b = shmget(key + 1, SHM_SIZE, IPC_CREAT | IPC_EXCL | 0604);
	if (a < 0 || b < 0)
		die("shmget");
	unsigned char *pa = shmat(a, 0, 0), *pb = shmat(b, 0, 0);
	if (pa == (void *)-1 || pb == (void *)-1)
		die("shmat");
	for (size_t i = 8; i < SHM_SIZE; i++) {
		pa[i] = pattern(i, 0);
		pb[i] = pattern(i, 1);
	}
	shmdt(pb); /* from now on only the kernel holds b's contents */
	uint64_t *count = (uint64_t *)pa;
	for (int k = 1; k <= steps; k++) {
		struct shmid_ds da, db;
		if (shmctl(a, IPC_STAT, &da) || shmctl(b, IPC_STAT, &db))
			die("shmctl IPC_STAT");
		check_perm(&da.shm_perm, key, 0640, "segment a");
		check_perm(&db.shm_perm, key + 1, 0604, "segment b");
		/* a checkpoint's writer (a fork) attaches a too, while it writes */
		if (da.shm_segsz != SHM_SIZE || db.shm_segsz != SHM_SIZE || da.shm_nattch < 1 || db.shm_nattch != 0) {
			say("error: sizes %zu %zu, attached %lu %lu", da.shm_segsz, db.shm_segsz, da.shm_nattch, db.shm_nattch);
			return 2;
		}
		if (shmget(key, 0, 0) != a || shmget(key + 1, 0, 0) != b) {
			say("error: the keys lead to ids %d %d, not %d %d", shmget(key, 0, 0), shmget(key + 1, 0, 0), a, b);
			return 2;
		}
		if (*count != (uint64_t)k - 1) {
			say("error: the counter in segment a is %llu, expected %d", (unsigned long long)*count, k - 1);
			return 2;
		}
		++*count;
		say("step %d ids %d %d count %llu", k, a, b, (unsigned long long)*count);
		pace_ms(PACE);
	}
	for (size_t i = 8; i < SHM_SIZE; i++)
		if (pa[i] != pattern(i, 0)) {
			say("error: segment a differs at byte %zu", i);
			return 2;
		}
	pb = shmat(b, 0, SHM_RDONLY);
	if (pb == (void *)-1)
		die("shmat b");
	for (size_t i = 8; i < SHM_SIZE; i++)
		if (pb[i] != pattern(i, 1)) {
			say("error: segment b (never attached while it worked) differs at byte %zu", i);
			return 2;
		}
	shmdt(pb);
	shmdt(pa);
	shmctl(a, IPC_RMID, 0);
	shmctl(b, IPC_RMID, 0);
	say("done: %d steps, both segments as they were", steps);
	return 0;
}

static int semval(int id, int num)
{
	int v = semctl(id, num, GETVAL);
	if (v < 0)
		die("semctl GETVAL");
	return v;
}

static void op(int id, unsigned short num, short delta, short flags)
{
	struct sembuf b = {num, delta, flags};
	if (semop(id, &b, 1) != 0)
		die("semop");
}

/* the holder: works while it holds the baton, then exits holding it */
static void holder(int id, key_t key, int steps)
{
	op(id, 0, -1, SEM_UNDO);
	say("holder: has the baton");
	for (int k = 1; k <= steps; k++) {
		struct semid_ds ds;
		if (semctl(id, 0, IPC_STAT, &ds) != 0)
			die("semctl IPC_STAT");
		check_perm(&ds.sem_perm, key, 0660, "semaphore set");
		op(id, 1, 1, 0);
		op(id, 2, 1, SEM_UNDO);
		if (semval(id, 0) != 0 || semval(id, 1) != k || semval(id, 2) != 100 + k) {
			say("error: step %d: values %d %d %d, expected 0 %d %d", k, semval(id, 0), semval(id, 1), semval(id, 2), k,
			    100 + k);
			exit(2);
		}
		/* the parent waits for the baton (between two of ckrun's slices it may not count) */
		int waiting = 0;
		for (int i = 0; i < 400 && !(waiting = semctl(id, 0, GETNCNT)); i++)
			pace_ms(5);
		if (waiting != 1) {
			say("error: step %d: %d processes wait for the baton, expected 1", k, waiting);
			exit(2);
		}
		say("step %d counter %d", k, k);
		pace_ms(PACE);
	}
	exit(7); /* with the baton and 'steps' additions to give back */
}

static int run_sem(key_t key, int steps)
{
	int id = semget(key, 3, IPC_CREAT | IPC_EXCL | 0660);
	if (id < 0)
		die("semget");
	unsigned short init[3] = {1, 0, 100};
	if (semctl(id, 0, SETALL, init) != 0)
		die("semctl SETALL");
	pid_t h = fork();
	if (h < 0)
		die("fork");
	if (h == 0)
		holder(id, key, steps);
	while (semval(id, 0) != 0)
		pace_ms(5);
	/* blocked here until the holder's exit gives the baton back */
	op(id, 0, -1, SEM_UNDO);
	int st;
	if (waitpid(h, &st, 0) != h)
		die("waitpid");
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
		return 137; /* the family is being killed (kill -9 of ckrun) */
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) {
		say("error: the holder ended with status %#x", st);
		return 2;
	}
	if (semval(id, 1) != steps || semval(id, 2) != 100 || semval(id, 0) != 0) {
		say("error: after the holder's exit: values %d %d %d, expected 0 %d 100", semval(id, 0), semval(id, 1),
		    semval(id, 2), steps);
		return 2;
	}
	op(id, 0, 1, SEM_UNDO);
	if (semval(id, 0) != 1) {
		say("error: the baton is %d after it was given back", semval(id, 0));
		return 2;
	}
	semctl(id, 0, IPC_RMID);
	say("done: %d steps, the holder's SEM_UNDO gave the baton and its additions back", steps);
	return 0;
}

struct msg {
	long type;
	char text[64];
};

static void send_one(int id, int n)
{
	struct msg m = {1 + n % 3, ""};
	int len = snprintf(m.text, sizeof m.text, "message %d", n) + 1;
	if (msgsnd(id, &m, (size_t)len, 0) != 0)
		die("msgsnd");
}

/* the receiver: takes every message in order, slower than they come at first, then faster */
static void receiver(int id, int total)
{
	for (int n = 1; n <= total; n++) {
		struct msg m;
		ssize_t r = msgrcv(id, &m, sizeof m.text, 0, 0);
		char want[64];
		int len = snprintf(want, sizeof want, "message %d", n) + 1;
		if (r != len || m.type != 1 + n % 3 || strcmp(m.text, want)) {
			say("error: received %zd bytes of type %ld (%s), expected \"%s\" of type %d", r, m.type, r > 0 ? m.text : strerror(errno),
			    want, 1 + n % 3);
			exit(2);
		}
		pace_ms(n < total / 2 ? PACE * 2 : 1);
	}
	exit(0);
}

static int run_msg(key_t key, int steps)
{
	int id = msgget(key, IPC_CREAT | IPC_EXCL | 0620);
	if (id < 0)
		die("msgget");
	struct msqid_ds ds;
	if (msgctl(id, IPC_STAT, &ds) != 0)
		die("msgctl IPC_STAT");
	ds.msg_qbytes = QBYTES;
	if (msgctl(id, IPC_SET, &ds) != 0)
		die("msgctl IPC_SET");
	int total = steps + BACKLOG;
	for (int n = 1; n <= BACKLOG; n++)
		send_one(id, n);
	pid_t r = fork();
	if (r < 0)
		die("fork");
	if (r == 0)
		receiver(id, total);
	for (int k = 1; k <= steps; k++) {
		if (msgctl(id, IPC_STAT, &ds) != 0)
			die("msgctl IPC_STAT");
		check_perm(&ds.msg_perm, key, 0620, "message queue");
		if (ds.msg_qbytes != QBYTES || msgget(key, 0) != id) {
			say("error: the queue's size is %lu (expected %d), its key leads to id %d (expected %d)", ds.msg_qbytes, QBYTES,
			    msgget(key, 0), id);
			return 2;
		}
		send_one(id, BACKLOG + k);
		say("step %d sent %d", k, BACKLOG + k);
		pace_ms(PACE);
	}
	int st;
	if (waitpid(r, &st, 0) != r)
		die("waitpid");
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
		return 137; /* the family is being killed (kill -9 of ckrun) */
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		say("error: the receiver ended with status %#x", st);
		return 2;
	}
	if (msgctl(id, IPC_STAT, &ds) != 0 || ds.msg_qnum != 0) {
		say("error: %lu messages left on the queue", ds.msg_qnum);
		return 2;
	}
	msgctl(id, IPC_RMID, 0);
	say("done: %d messages received in order", total);
	return 0;
}

static int squat(const char *kind, key_t key)
{
	int id = !strcmp(kind, "shm")   ? shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600)
		 : !strcmp(kind, "sem") ? semget(key, 1, IPC_CREAT | IPC_EXCL | 0600)
					: msgget(key, IPC_CREAT | IPC_EXCL | 0600);
	if (id < 0)
		die("squat");
	say("%d", id);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "squat"))
		return squat(argv[2], (key_t)strtoul(argv[3], 0, 0));
	if (argc != 4) {
		fprintf(stderr, "usage: sysv shm|sem|msg KEY STEPS | sysv squat shm|sem|msg KEY\n");
		return 64;
	}
	key_t key = (key_t)strtoul(argv[2], 0, 0);
	int steps = atoi(argv[3]);
	if (!strcmp(argv[1], "shm"))
		return run_shm(key, steps);
	if (!strcmp(argv[1], "sem"))
		return run_sem(key, steps);
	if (!strcmp(argv[1], "msg"))
		return run_msg(key, steps);
	return 64;
}
