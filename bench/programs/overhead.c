/* overhead: a microbenchmark of the calls a preloaded shim could slow down.
 * Each operation runs in BATCHES batches after a warm-up; the median batch
 * gives ns per operation.
 *
 *   overhead FILE [SCALE]
 *
 * FILE is an existing file of at least 64 KiB (opened, stat'ed and read);
 * SCALE multiplies the iteration counts (default 1).
 * stdout: "op <name> <ns_per_op> <iterations>" per operation, then "done". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCHES 5

static const char *file;
static int rfd;
static char rbuf[64];

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void op_open_close(long n)
{
	for (long i = 0; i < n; i++) {
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die("open");
		if (close(fd) != 0)
			die("close");
	}
}

static void op_stat(long n)
{
	struct stat st;
	for (long i = 0; i < n; i++)
		if (stat(file, &st) != 0)
			die("stat");
}

static void op_read(long n)
{
	for (long i = 0; i < n; i++) {
		ssize_t r = read(rfd, rbuf, sizeof rbuf);
		if (r < 0)
			die("read");
		if (r < (ssize_t)sizeof rbuf && lseek(rfd, 0, SEEK_SET) != 0)
			die("lseek");
	}
}

static void op_clock_gettime(long n)
{
	struct timespec ts;
	for (long i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		__asm__ volatile("" : : "r"(&ts) : "memory");
	}
}

static void op_malloc_free(long n)
{
	for (long i = 0; i < n; i++) {
		void *p = malloc(64 + (size_t)(i & 7) * 16);
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
}

static void *nothing(void *arg)
{
	return arg;
}

static void op_pthread(long n)
{
	for (long i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, 0, nothing, 0) != 0)
			die("pthread_create");
		if (pthread_join(t, 0) != 0)
			die("pthread_join");
	}
}

static void op_fork(long n)
{
	for (long i = 0; i < n; i++) {
		pid_t p = fork();
		if (p < 0)
			die("fork");
		if (p == 0)
			_exit(0);
		int st;
		if (waitpid(p, &st, 0) != p)
			die("waitpid");
	}
}

struct op {
	const char *name;
	void (*fn)(long);
	long iters;
};

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: overhead FILE [SCALE]\n");
		return 2;
	}
	file = argv[1];
	double scale = argc > 2 ? atof(argv[2]) : 1.0;
	rfd = open(file, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		die("open");
	static const struct op ops[] = {
		{"open_close", op_open_close, 200000},
		{"stat", op_stat, 300000},
		{"read", op_read, 500000},
		{"clock_gettime", op_clock_gettime, 5000000},
		{"malloc_free", op_malloc_free, 5000000},
		{"pthread_create_join", op_pthread, 30000},
		{"fork_waitpid", op_fork, 6000},
	};
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		long per = (long)(ops[k].iters * scale / BATCHES);
		if (per < 1)
			per = 1;
		ops[k].fn(per / 10 + 1); /* warm-up */
		double ns[BATCHES];
		for (int b = 0; b < BATCHES; b++) {
			uint64_t t0 = now_ns();
			ops[k].fn(per);
			ns[b] = (double)(now_ns() - t0) / (double)per;
		}
		qsort(ns, BATCHES, sizeof ns[0], cmp);
		printf("op %s %.3f %ld\n", ops[k].name, ns[BATCHES / 2], per * BATCHES);
		fflush(stdout);
	}
	printf("done\n");
	return 0;
}
