/*
 * family: a parent and two children in a ring of pipes, sharing memory.
 *
 *   parent --pipe 1--> child A --pipe 2--> child B --pipe 3--> parent
 *
 * The parent keeps WINDOW tokens in the ring, so there are always bytes in
 * flight in the pipes (the parent is the slow one: results wait in pipe 3).
 * Child A stores a value derived from each token in a shared anonymous
 * mapping (MAP_SHARED|MAP_ANONYMOUS, inherited across fork); child B reads
 * it from there, not from the pipe, so a mapping that is no longer shared
 * changes what is printed. All three increment a counter in the same mapping
 * under a process-shared mutex. A fourth child exits at once with status 42
 * and stays a zombie until the parent reaps it at the very end; A and B exit
 * with 3 and 5 when the ring closes, and waitpid must report exactly these.
 * Children check that getppid() is still the parent. Child B is started
 * with clone() (a copy of the memory, no CLONE_VM), not fork(): no fork
 * handler runs in it.
 *
 *   family [--steps N]
 */
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define WINDOW 8
#define PACE_MS 25
#define SPINS 200
#define SLOTS 64

struct shared {
	pthread_mutex_t mu;
	uint64_t total;     /* +SPINS per token and process, under mu */
	uint64_t seen[3];   /* tokens handled by A, B, the parent */
	uint64_t val[SLOTS]; /* A writes val[step % SLOTS], B reads it */
};

struct token {
	uint32_t step;
	uint32_t pad;
	uint64_t value;
};

static struct shared *sh;
static pid_t parent;

static void read_full(int fd, void *buf, size_t n, const char *who)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0 && p == (char *)buf)
				return; /* caller checks for EOF via the zeroed token */
			say("error: %s: short read (%zd): %s", who, r, r < 0 ? strerror(errno) : "end of file");
			exit(2);
		}
		p += r;
		n -= (size_t)r;
	}
}

static int read_token(int fd, struct token *t, const char *who)
{
	memset(t, 0, sizeof *t);
	read_full(fd, t, sizeof *t, who);
	return t->step != 0;
}

static void write_token(int fd, const struct token *t, const char *who)
{
	ssize_t w;
	do
		w = write(fd, t, sizeof *t);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)sizeof *t) {
		say("error: %s: write: %s", who, w < 0 ? strerror(errno) : "short");
		exit(2);
	}
}

static void count(int who)
{
	pthread_mutex_lock(&sh->mu);
	sh->seen[who]++;
	for (int i = 0; i < SPINS; i++)
		__atomic_store_n(&sh->total, sh->total + 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&sh->mu);
}

static void check_parent(const char *who, int *warned)
{
	pid_t pp = getppid();
	if (pp != parent && !*warned) {
		say("error: %s: getppid() = %d, expected %d", who, (int)pp, (int)parent);
		*warned = 1;
	}
}

static void child_a(int in, int out)
{
	struct token t;
	int warned = 0;
	while (read_token(in, &t, "child A")) {
		check_parent("child A", &warned);
		pthread_mutex_lock(&sh->mu);
		sh->val[t.step % SLOTS] = mix64(t.value, t.step);
		pthread_mutex_unlock(&sh->mu);
		count(0);
		write_token(out, &t, "child A");
	}
	exit(3);
}

static void child_b(int in, int out)
{
	struct token t;
	int warned = 0;
	while (read_token(in, &t, "child B")) {
		check_parent("child B", &warned);
		pthread_mutex_lock(&sh->mu);
		uint64_t v = sh->val[t.step % SLOTS];
		pthread_mutex_unlock(&sh->mu);
		count(1);
		t.value = mix64(v, (uint64_t)t.step * 3);
		write_token(out, &t, "child B");
	}
	exit(5);
}

struct ring_ends {
	int in, out, close[4];
};

static int start_child_b(void *arg)
{
	struct ring_ends *e = arg;
	for (int i = 0; i < 4; i++)
		close(e->close[i]);
	child_b(e->in, e->out);
	return 0;
}

static int status_of(pid_t pid, const char *who)
{
	int st;
	pid_t r;
	do
		r = waitpid(pid, &st, 0);
	while (r < 0 && errno == EINTR);
	if (r != pid) {
		say("error: waitpid(%s %d) = %d: %s", who, (int)pid, (int)r, r < 0 ? strerror(errno) : "another child");
		return -1;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	say("error: %s was killed by signal %d", who, WIFSIGNALED(st) ? WTERMSIG(st) : -1);
	return -1;
}

static char zombie_state(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '-';
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

int main(int argc, char **argv)
{
	int steps = 160;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
	say("family: start steps=%d window=%d", steps, WINDOW);
	parent = getpid();

	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap");
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&sh->mu, &ma);

	int p1[2], p2[2], p3[2];
	if (pipe(p1) || pipe(p2) || pipe(p3))
		die("pipe");

	pid_t z = fork();
	if (z < 0)
		die("fork");
	if (z == 0)
		_exit(42); /* reaped only at the end */

	pid_t a = fork();
	if (a < 0)
		die("fork");
	if (a == 0) {
		close(p1[1]);
		close(p2[0]);
		close(p3[0]);
		close(p3[1]);
		child_a(p1[0], p2[1]);
	}
	static char b_stack[256 << 10] __attribute__((aligned(16)));
	struct ring_ends eb = { p2[0], p3[1], { p1[0], p1[1], p2[1], p3[0] } };
	pid_t b = clone(start_child_b, b_stack + sizeof b_stack, SIGCHLD, &eb);
	if (b < 0)
		die("clone");
	close(p1[0]);
	close(p2[0]);
	close(p2[1]);
	close(p3[1]);

	for (int s = 1; s <= WINDOW && s <= steps; s++) {
		struct token t = { (uint32_t)s, 0, splitmix64((uint64_t)s) };
		write_token(p1[1], &t, "parent");
	}
	uint64_t h = 0;
	for (int s = 1; s <= steps; s++) {
		struct token r;
		if (!read_token(p3[0], &r, "parent")) {
			say("error: the ring closed at step %d", s);
			return 2;
		}
		if ((int)r.step != s)
			say("error: step %d came back as %u", s, r.step);
		count(2);
		if (s + WINDOW <= steps) {
			struct token t = { (uint32_t)(s + WINDOW), 0, splitmix64((uint64_t)(s + WINDOW)) };
			write_token(p1[1], &t, "parent");
		}
		h = mix64(h, r.value);
		say("step %d value=%016" PRIx64 " hash=%016" PRIx64, s, r.value, h);
		pace_ms(PACE_MS);
	}

	char zs = zombie_state(z);
	close(p1[1]); /* A sees the end, exits, B sees the end, exits */
	int sa = status_of(a, "child A");
	int sb = status_of(b, "child B");
	int sz = status_of(z, "the zombie");
	pthread_mutex_lock(&sh->mu);
	uint64_t total = sh->total, seen0 = sh->seen[0], seen1 = sh->seen[1], seen2 = sh->seen[2];
	pthread_mutex_unlock(&sh->mu);
	if (total != (uint64_t)steps * 3 * SPINS)
		say("error: the shared counter is %" PRIu64 ", expected %" PRIu64, total, (uint64_t)steps * 3 * SPINS);
	say("family: zombie state before wait: %c", zs);
	say("family: done steps=%d hash=%016" PRIx64 " total=%" PRIu64 " seen=%" PRIu64 ",%" PRIu64 ",%" PRIu64
	    " a=%d b=%d zombie=%d",
	    steps, h, total, seen0, seen1, seen2, sa, sb, sz);
	return 0;
}
