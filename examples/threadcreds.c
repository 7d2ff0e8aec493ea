/*
 * threadcreds: threads of one process with credentials of their own (CRIU's
 * zdtm thread_different_uid_gid and different_creds).
 *
 * The kernel keeps credentials per thread; glibc's setresuid() and friends
 * make every thread change its own, but a raw system call changes only the
 * calling thread's. Here each worker thread sets its own with raw system
 * calls (SYS_setgroups, SYS_setresgid, SYS_setfsgid, SYS_setresuid,
 * SYS_setfsuid, SYS_capset, prctl) and then, on every step, reads its own
 * (/proc/thread-self/status, raw getresuid/getresgid/getgroups/capget,
 * PR_GET_SECUREBITS) and compares them with what it read right after
 * setting them. A difference prints "FAIL: ..." and exits 1. Every step
 * prints one line with each thread's credentials and the work done so far.
 *
 *   threadcreds [--steps N] [--user] [--drop-main]
 *
 * As root (the default):
 *   main   keeps root and every capability
 *   ids    groups 27, 44; gids 100 101 102, fsgid 103; uids 1000 1001 1002,
 *          fsuid 1002 (no capabilities left)
 *   caps   stays uid 0 with fsuid 4321; CAP_SYS_BOOT leaves its bounding
 *          set; securebits SECBIT_KEEP_CAPS; CAP_NET_BIND_SERVICE effective,
 *          permitted, inheritable and ambient, CAP_CHOWN permitted only
 *   nnp    group 4242; uids 1000 1000 0 (permitted capabilities kept,
 *          none effective); no_new_privs
 * --user (any user): only the nnp thread changes anything (no_new_privs,
 * which an ordinary user may set); ids and caps keep the process's.
 * --drop-main (as root): once the workers have set theirs, the main thread
 * becomes user and group nobody (65534) without groups, by raw system
 * calls: its credentials are an ordinary user's, its workers' are not.
 */
#include "common.h"
#include <linux/capability.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PACE_MS 30
#define NWORKERS 3
#define SECBIT_KEEP_CAPS_ 0x10

static const char *const names[NWORKERS + 1] = {"main", "ids", "caps", "nnp"};
static int user_mode;

static void fail(const char *who, const char *what)
{
	printf("FAIL: thread %s: %s (errno %s)\n", who, what, errname(errno));
	fflush(stdout);
	_exit(1);
}

static void raw(long r, const char *who, const char *what)
{
	if (r != 0)
		fail(who, what);
}

static void raw_capset(const char *who, uint32_t eff, uint32_t prm, uint32_t inh)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	d[0].effective = eff;
	d[0].permitted = prm;
	d[0].inheritable = inh;
	raw(syscall(SYS_capset, &h, d), who, "capset");
}

static void set_ids(void)
{
	gid_t groups[] = {27, 44};
	raw(syscall(SYS_setgroups, 2, groups), "ids", "setgroups");
	raw(syscall(SYS_setresgid, 100, 101, 102), "ids", "setresgid");
	syscall(SYS_setfsgid, 103);
	raw(syscall(SYS_setresuid, 1000, 1001, 1002), "ids", "setresuid");
	syscall(SYS_setfsuid, 1002);
}

static void set_caps(void)
{
	raw(prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0), "caps", "dropping CAP_SYS_BOOT from the bounding set");
	raw(prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS_, 0, 0, 0), "caps", "PR_SET_SECUREBITS");
	syscall(SYS_setfsuid, 4321);
	uint32_t bind = 1u << CAP_NET_BIND_SERVICE, chown_ = 1u << CAP_CHOWN;
	raw_capset("caps", bind, bind | chown_, bind);
	raw(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0), "caps", "raising an ambient capability");
}

static void set_nnp(void)
{
	if (!user_mode) {
		gid_t group = 4242;
		raw(syscall(SYS_setgroups, 1, &group), "nnp", "setgroups");
		raw(syscall(SYS_setresuid, 1000, 1000, 0), "nnp", "setresuid");
	}
	raw(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "nnp", "PR_SET_NO_NEW_PRIVS");
}

#define NOBODY 65534

static void drop_main(void)
{
	raw(syscall(SYS_setgroups, 0, NULL), "main", "setgroups");
	raw(syscall(SYS_setresgid, NOBODY, NOBODY, NOBODY), "main", "setresgid");
	raw(syscall(SYS_setresuid, NOBODY, NOBODY, NOBODY), "main", "setresuid");
}

/* What the calling thread reads of its own credentials. */
static void describe(const char *who, char *out, size_t cap)
{
	char status[8192];
	FILE *f = fopen("/proc/thread-self/status", "r");
	if (!f)
		fail(who, "opening /proc/thread-self/status");
	size_t n = fread(status, 1, sizeof status - 1, f);
	fclose(f);
	status[n] = 0;
	static const char *const fields[] = {"Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:", "CapInh:", "CapBnd:", "CapAmb:", "NoNewPrivs:"};
	size_t len = 0;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		const char *p = strstr(status, fields[i]);
		if (!p)
			fail(who, "a field of /proc/thread-self/status is missing");
		len += (size_t)snprintf(out + len, cap - len, "%s", len ? " " : "");
		for (; *p && *p != '\n' && len < cap - 1; p++)
			out[len++] = *p == '\t' ? ' ' : *p;
		while (len && out[len - 1] == ' ')
			len--;
		out[len] = 0;
	}
	unsigned ru, eu, su, rg, eg, sg;
	gid_t groups[64];
	raw(syscall(SYS_getresuid, &ru, &eu, &su), who, "getresuid");
	raw(syscall(SYS_getresgid, &rg, &eg, &sg), who, "getresgid");
	long ng = syscall(SYS_getgroups, 64, groups);
	if (ng < 0)
		fail(who, "getgroups");
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	raw(syscall(SYS_capget, &h, d), who, "capget");
	len += (size_t)snprintf(out + len, cap - len, " | getresuid %u %u %u getresgid %u %u %u getgroups", ru, eu, su, rg, eg, sg);
	for (long i = 0; i < ng; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%u", i ? "," : " ", groups[i]);
	snprintf(out + len, cap - len, " capget %x/%x/%x securebits %ld", d[0].effective, d[0].permitted, d[0].inheritable,
		 (long)prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
}

/* Each thread: its credentials right after it set them, and its work. */
struct slot {
	char want[1024];
	char now[1024];
	uint64_t work;
};
static struct slot slots[NWORKERS + 1];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int asked, answered, ready;

/* One step of a thread: some work, then its credentials checked. */
static void step(int i, int s)
{
	struct slot *me = &slots[i];
	for (int k = 0; k < 1000; k++)
		me->work = mix64(me->work, (uint64_t)s * 1000 + (uint64_t)k + (uint64_t)i);
	describe(names[i], me->now, sizeof me->now);
	if (strcmp(me->now, me->want)) {
		printf("FAIL: thread %s at step %d: its credentials changed\n  were %s\n  are  %s\n", names[i], s, me->want, me->now);
		fflush(stdout);
		_exit(1);
	}
}

static void *worker(void *arg)
{
	int i = (int)(intptr_t)arg;
	if (i == 1 && !user_mode)
		set_ids();
	else if (i == 2 && !user_mode)
		set_caps();
	else if (i == 3)
		set_nnp();
	describe(names[i], slots[i].want, sizeof slots[i].want);
	pthread_mutex_lock(&lock);
	ready++;
	pthread_cond_broadcast(&cond);
	for (int done = 0;;) {
		while (asked == done)
			pthread_cond_wait(&cond, &lock);
		done = asked;
		pthread_mutex_unlock(&lock);
		step(i, done);
		pthread_mutex_lock(&lock);
		answered++;
		pthread_cond_broadcast(&cond);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int steps = 100, dropping = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--user"))
			user_mode = 1;
		else if (!strcmp(argv[i], "--drop-main"))
			dropping = 1;
		else {
			fprintf(stderr, "usage: threadcreds [--steps N] [--user] [--drop-main]\n");
			return 2;
		}
	}
	if (!user_mode && geteuid() != 0) {
		fprintf(stderr, "threadcreds: run it as root, or with --user\n");
		return 2;
	}
	pthread_t t[NWORKERS];
	for (int i = 1; i <= NWORKERS; i++)
		if (pthread_create(&t[i - 1], NULL, worker, (void *)(intptr_t)i) != 0)
			die("pthread_create");
	pthread_mutex_lock(&lock);
	while (ready < NWORKERS)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	if (dropping)
		drop_main();
	describe("main", slots[0].want, sizeof slots[0].want);
	say("threadcreds: start steps=%d", steps);
	for (int i = 0; i <= NWORKERS; i++)
		say("thread %s: %s", names[i], slots[i].want);
	for (int s = 1; s <= steps; s++) {
		pthread_mutex_lock(&lock);
		answered = 0;
		asked = s;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
		step(0, s);
		pthread_mutex_lock(&lock);
		while (answered < NWORKERS)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
		uint64_t all = 0;
		for (int i = 0; i <= NWORKERS; i++)
			all = mix64(all, slots[i].work);
		say("step %d ok: every thread has its own credentials; main %s; work %016" PRIx64, s, slots[0].now, all);
		pace_ms(PACE_MS);
	}
	say("done");
	return 0;
}
