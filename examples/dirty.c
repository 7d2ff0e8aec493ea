/*
 * dirty: a large working set of which only a little changes per step, the
 * case incremental checkpoints are for.
 *
 *   dirty [--mib N] [--steps S] [--permille P] [--pace MS] [--hash-every K]
 *
 * Fills N MiB (default 64) with pseudo-random words, then each step
 * rewrites one word in each of P per mille of the pages (default 5: 0.5%;
 * different pages every step), prints a hash of the whole buffer (every
 * K-th step, default 1; the other steps print only their number) and
 * sleeps MS ms (default 15); the last line is the final hash.
 * (`--mib 1024 --permille 10 --pace 100 --hash-every 0` is the program of
 * the migration figure: 1% of 1 GiB written per 100 ms.)
 */
#include "common.h"

int main(int argc, char **argv)
{
	size_t mib = 64;
	int steps = 120, permille = 5, pace = 15, hash_every = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mib"))
			mib = (size_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--steps"))
			steps = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--permille"))
			permille = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--pace"))
			pace = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--hash-every"))
			hash_every = atoi(argv[i + 1]);
	}
	size_t words = mib << 17, pages = words / 512;
	uint64_t *buf = malloc(words * sizeof *buf);
	if (!buf)
		die("malloc");
	for (size_t i = 0; i < words; i++)
		buf[i] = splitmix64(i);
	say("dirty: start mib=%zu steps=%d", mib, steps);
	for (int s = 1; s <= steps; s++) {
		for (size_t k = 0; k < pages * (size_t)permille / 1000; k++) {
			size_t page = (k * 7919 + (size_t)s * 104729) % pages;
			buf[page * 512 + (size_t)s % 512] = mix64(buf[page * 512], (uint64_t)s);
		}
		if (hash_every > 0 && s % hash_every == 0)
			say("step %d hash=%016" PRIx64, s, hash_words(0, buf, words));
		else
			say("step %d", s);
		pace_ms(pace);
	}
	say("dirty: done hash=%016" PRIx64, hash_words(0, buf, words));
	return 0;
}
