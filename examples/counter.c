/*
 * counter: a program with a lot of memory.
 *
 * It fills a 64 MiB buffer a slice per step (deterministic contents), reads
 * back an older slice, grows a linked list on the heap (brk must keep working
 * after a restart) and recurses deeper every step (the stack must keep
 * growing after a restart); a constructor prints a line before main (a
 * restart must run neither again). Each step prints a line with hashes of what it
 * wrote and read; the last line hashes the whole buffer and the whole list.
 *
 *   counter [--steps N] [--exit STATUS] [--signal SIGNO]
 *
 * --exit makes it exit with STATUS after its last line, --signal makes it
 * kill itself with SIGNO instead (for the exit-status tests).
 */
#include "common.h"
#include <signal.h>

#define BUF_BYTES ((size_t)64 << 20)
#define NWORDS (BUF_BYTES / 8)
#define PACE_MS 12

struct node {
	struct node *next;
	int step;
	unsigned char pad[3000];
};

/* Recurse depth frames of about 4 KiB each. */
static uint64_t __attribute__((noinline)) deep(int depth, uint64_t h)
{
	volatile unsigned char frame[4096];
	for (int i = 0; i < 4096; i += 64)
		frame[i] = (unsigned char)(depth * 7 + i);
	if (depth > 0)
		h = deep(depth - 1, h);
	for (int i = 0; i < 4096; i += 64)
		h = mix64(h, frame[i]);
	return h;
}

/* A restart must not run the program's initialization again: this line
 * appears once, at the very start, and never in a restarted run. */
__attribute__((constructor)) static void announce(void)
{
	say("counter: constructor ran");
}

static size_t slice_lo(int s, int steps) { return NWORDS * (size_t)(s - 1) / (size_t)steps; }
static size_t slice_hi(int s, int steps) { return NWORDS * (size_t)s / (size_t)steps; }

int main(int argc, char **argv)
{
	int steps = 200, status = 0, signo = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--exit") && i + 1 < argc)
			status = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--signal") && i + 1 < argc)
			signo = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: counter [--steps N] [--exit STATUS] [--signal SIGNO]\n");
			return 2;
		}
	}
	if (steps < 1)
		steps = 1;

	say("counter: start steps=%d", steps);
	uint64_t *buf = malloc(BUF_BYTES);
	if (!buf)
		die("malloc");
	struct node *list = NULL;
	uint64_t run = 0;

	for (int s = 1; s <= steps; s++) {
		size_t lo = slice_lo(s, steps), hi = slice_hi(s, steps);
		for (size_t i = lo; i < hi; i++)
			buf[i] = splitmix64(i * 0x100000001b3ULL + (uint64_t)s);
		uint64_t chunk = hash_words(0, buf + lo, hi - lo);

		/* memory written steps ago (maybe before a checkpoint) is still there */
		int p = (s + 1) / 2;
		uint64_t back = hash_words(1, buf + slice_lo(p, steps), slice_hi(p, steps) - slice_lo(p, steps));

		struct node *n = malloc(sizeof *n);
		if (!n)
			die("malloc node");
		n->step = s;
		for (size_t i = 0; i < sizeof n->pad; i++)
			n->pad[i] = (unsigned char)(s * 31 + i);
		n->next = list;
		list = n;

		uint64_t stack = deep(2 * s, (uint64_t)s);
		run = mix64(mix64(mix64(run, chunk), back), stack);
		say("step %d chunk=%016" PRIx64 " back=%016" PRIx64 " run=%016" PRIx64, s, chunk, back, run);
		pace_ms(PACE_MS);
	}

	uint64_t whole = hash_words(2, buf, NWORDS);
	uint64_t heap = 0;
	int nodes = 0;
	for (struct node *n = list; n; n = n->next, nodes++)
		heap = mix64(hash_bytes(heap, n->pad, sizeof n->pad), (uint64_t)n->step);
	say("counter: done steps=%d nodes=%d buf=%016" PRIx64 " heap=%016" PRIx64 " run=%016" PRIx64,
	    steps, nodes, whole, heap, run);
	if (signo) {
		signal(signo, SIG_DFL);
		raise(signo);
	}
	return status;
}
