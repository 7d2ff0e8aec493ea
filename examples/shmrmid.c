/*
 * shmrmid: a SysV segment the program removed (IPC_RMID) while it and its
 * child still have it attached. The segment lives on until the last
 * detach, with key IPC_PRIVATE and SHM_DEST in its mode: every step checks
 * the program's own view (shmctl IPC_STAT: mode 0640 and SHM_DEST, key 0,
 * two attachments, its bytes) and what ipcs shows (/proc/sysvipc/shm), and
 * that the old key is free. At the end both detach and the segment must be
 * gone. Before, 300 segments are attached, removed and detached, more than
 * ckrun notes at once. Any difference prints "FAIL ...".
 *
 *   shmrmid [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <signal.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE 8192

/* The perms and key ipcs shows for the segment, or -1 when it is not listed. */
static int ipcs_view(int id, unsigned *perms, int *key)
{
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	char line[512];
	int found = -1, k, i;
	unsigned p;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "%d %d %o", &k, &i, &p) == 3 && i == id) {
			*perms = p;
			*key = k;
			found = 0;
		}
	if (f)
		fclose(f);
	return found;
}

static int check(long step, int id, const unsigned char *seg, key_t key)
{
	struct shmid_ds ds;
	unsigned perms = 0;
	int ikey = -1;
	/* a checkpoint's writers (copies of the processes) count as attachments while they write */
	for (int i = 0; i < 200; i++) {
		if (shmctl(id, IPC_STAT, &ds) != 0) {
			say("FAIL step %ld: shmctl IPC_STAT: %s", step, strerror(errno));
			return 1;
		}
		if (ds.shm_nattch == 2)
			break;
		pace_ms(10);
	}
	if ((ds.shm_perm.mode & 0777) != 0640 || !(ds.shm_perm.mode & SHM_DEST) || ds.shm_perm.__key != IPC_PRIVATE ||
	    ds.shm_nattch != 2 || ds.shm_segsz != SIZE || ds.shm_perm.uid != getuid() || ds.shm_perm.cuid != getuid()) {
		say("FAIL step %ld: IPC_STAT shows mode %o, key %#x, %lu attachments, size %zu, owner %u, creator %u", step,
		    (unsigned)ds.shm_perm.mode, (unsigned)ds.shm_perm.__key, (unsigned long)ds.shm_nattch, ds.shm_segsz,
		    (unsigned)ds.shm_perm.uid, (unsigned)ds.shm_perm.cuid);
		return 1;
	}
	if (ipcs_view(id, &perms, &ikey) != 0 || perms != (01000 | 0640) || ikey != 0) {
		say("FAIL step %ld: ipcs shows the segment with perms %o and key %#x", step, perms, (unsigned)ikey);
		return 1;
	}
	for (int i = 0; i < SIZE; i++)
		if (seg[i] != (unsigned char)(i * 7 + 3)) {
			say("FAIL step %ld: byte %d of the segment changed", step, i);
			return 1;
		}
	/* the removed segment no longer holds its key */
	int other = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
	if (other < 0) {
		say("FAIL step %ld: the key %#x of the removed segment is taken: %s", step, (unsigned)key, strerror(errno));
		return 1;
	}
	shmctl(other, IPC_RMID, 0);
	return 0;
}

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	/* as an X client's MIT-SHM images do: attach, remove, later detach;
	 * more of them than ckrun notes at once (256) */
	for (int i = 0; i < 300; i++) {
		int t = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		void *a = t < 0 ? (void *)-1 : shmat(t, 0, 0);
		if (a == (void *)-1 || shmctl(t, IPC_RMID, 0) || shmdt(a))
			die("a short-lived segment");
	}
	key_t key = (key_t)(0x4b000000 | (getpid() & 0xffffff));
	int id = shmget(key, SIZE, IPC_CREAT | IPC_EXCL | 0640);
	unsigned char *seg = id < 0 ? (void *)-1 : shmat(id, 0, 0);
	if (seg == (void *)-1)
		die("the segment");
	for (int i = 0; i < SIZE; i++)
		seg[i] = (unsigned char)(i * 7 + 3);
	pid_t child = fork();
	if (child == 0) {
		for (;;)
			pause(); /* holds the attachment it inherited */
	}
	if (child < 0 || shmctl(id, IPC_RMID, 0) != 0)
		die("the removal");
	say("armed");
	for (long k = 1; k <= steps; k++) {
		if (check(k, id, seg, key))
			return 1;
		say("step %ld", k);
		pace_ms(50);
	}
	kill(child, SIGKILL);
	waitpid(child, 0, 0);
	shmdt(seg);
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) == 0 || errno != EINVAL) {
		say("FAIL the segment outlived its last detach: %s", strerror(errno));
		return 1;
	}
	say("done");
	return 0;
}
