/*
 * creds: a program that prints its own credentials on every step.
 *
 * Each step prints one line with what the main thread and then a worker
 * thread each read of their own credentials (credentials are per thread in the
 * kernel): real, effective, saved and filesystem user and group IDs
 * (/proc/thread-self/status, and getresuid/getresgid), supplementary
 * groups (getgroups), the five capability sets, securebits, no_new_privs
 * and dumpable. A restarted program must print the same thing.
 *
 *   creds [--drop] [--split] [--steps N]
 *
 * --drop (as root): before anything else, the program drops to user and
 * group nobody (65534) with supplementary groups 27, 44 and 100 and keeps
 * CAP_NET_BIND_SERVICE (effective, permitted, inheritable, ambient) and
 * CAP_CHOWN (permitted only); CAP_SYS_BOOT leaves its bounding set; it
 * sets no_new_privs; securebits keep SECBIT_KEEP_CAPS; dumpable is what
 * the kernel made it (0 after the change of user). The worker thread is
 * started afterwards.
 *
 * --split: the worker thread alone changes its filesystem user ID to 65534
 * (glibc's setfsuid is a plain system call: only the calling thread's
 * changes), so the threads' credentials differ.
 */
#include "common.h"
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PACE_MS 40
#define NOBODY 65534

static void describe(char *out, size_t cap)
{
	char status[8192];
	FILE *f = fopen("/proc/thread-self/status", "r");
	if (!f)
		die("/proc/thread-self/status");
	size_t n = fread(status, 1, sizeof status - 1, f);
	fclose(f);
	status[n] = 0;
	static const char *const fields[] = {"Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:", "CapInh:", "CapBnd:", "CapAmb:", "NoNewPrivs:"};
	size_t len = 0;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		const char *p = strstr(status, fields[i]);
		if (!p)
			die("a field of /proc/thread-self/status");
		len += (size_t)snprintf(out + len, cap - len, "%s", len ? " " : "");
		for (; *p && *p != '\n' && len < cap - 1; p++)
			out[len++] = *p == '\t' ? ' ' : *p;
		while (len && out[len - 1] == ' ')
			len--;
		out[len] = 0;
	}
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[64];
	getresuid(&ru, &eu, &su);
	getresgid(&rg, &eg, &sg);
	int ng = getgroups(64, groups);
	len += (size_t)snprintf(out + len, cap - len, " | getresuid %u %u %u getresgid %u %u %u getgroups", ru, eu, su, rg, eg,
				sg);
	for (int i = 0; i < ng; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%u", i ? "," : " ", groups[i]);
	snprintf(out + len, cap - len, " securebits %d dumpable %d", prctl(PR_GET_SECUREBITS), prctl(PR_GET_DUMPABLE));
}

static void drop(void)
{
	gid_t groups[] = {27, 44, 100};
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	uint32_t bind = 1u << CAP_NET_BIND_SERVICE, chown_ = 1u << CAP_CHOWN;
	if (setgroups(3, groups) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0)
		die("dropping the groups (run --drop as root)");
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT) != 0)
		die("dropping CAP_SYS_BOOT from the bounding set");
	if (prctl(PR_SET_KEEPCAPS, 1) != 0 || setresuid(NOBODY, NOBODY, NOBODY) != 0)
		die("dropping the user");
	memset(d, 0, sizeof d);
	d[0].effective = bind;
	d[0].permitted = bind | chown_;
	d[0].inheritable = bind;
	if (syscall(SYS_capset, &h, d) != 0)
		die("capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) != 0)
		die("raising the ambient capability");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		die("no_new_privs");
}

/* The worker describes its own credentials when asked (step > done). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int asked, answered, ready;
static char worker_text[1024];

static int split;

static void *worker(void *arg)
{
	(void)arg;
	if (split)
		setfsuid(NOBODY);
	pthread_mutex_lock(&lock);
	ready = 1; /* its credentials are final: main may describe its own (dumpable is per process) */
	pthread_cond_broadcast(&cond);
	for (;;) {
		while (asked == answered)
			pthread_cond_wait(&cond, &lock);
		describe(worker_text, sizeof worker_text);
		answered = asked;
		pthread_cond_broadcast(&cond);
	}
	return NULL;
}

static void ask_worker(int step)
{
	pthread_mutex_lock(&lock);
	asked = step;
	pthread_cond_broadcast(&cond);
	while (answered != step)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv)
{
	int steps = 100, dropping = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--drop"))
			dropping = 1;
		else if (!strcmp(argv[i], "--split"))
			split = 1;
		else {
			fprintf(stderr, "usage: creds [--drop] [--split] [--steps N]\n");
			return 2;
		}
	}
	if (dropping)
		drop();
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL) != 0)
		die("pthread_create");
	pthread_mutex_lock(&lock);
	while (!ready)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	say("creds: start steps=%d", steps);
	for (int s = 1; s <= steps; s++) {
		char mine[1024];
		describe(mine, sizeof mine);
		ask_worker(s);
		say("step %d main: %s || worker: %s", s, mine, worker_text);
		pace_ms(PACE_MS);
	}
	say("creds: done steps=%d", steps);
	return 0;
}
