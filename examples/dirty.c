/*
 * dirty: a large working set of which only a little changes per step, the
 * case incremental checkpoints are for.
 *
 *   dirty [--mib N] [--steps S]
 *
 * Fills N MiB (default 64) with pseudo-random words, then each step
 * rewrites one word in each of 0.5% of the pages (different pages every
 * step) and prints a hash of the whole buffer; the last line is the final
 * hash.
 */
#include "common.h"

int main(int argc, char **argv)
{
	size_t mib = 64;
	int steps = 120;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mib"))
			mib = (size_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--steps"))
			steps = atoi(argv[i + 1]);
	}
	size_t words = mib << 17, pages = words / 512;
	uint64_t *buf = malloc(words * sizeof *buf);
	if (!buf)
		die("malloc");
	for (size_t i = 0; i < words; i++)
		buf[i] = splitmix64(i);
	say("dirty: start mib=%zu steps=%d", mib, steps);
	for (int s = 1; s <= steps; s++) {
		for (size_t k = 0; k < pages / 200; k++) {
			size_t page = (k * 7919 + (size_t)s * 104729) % pages;
			buf[page * 512 + (size_t)s % 512] = mix64(buf[page * 512], (uint64_t)s);
		}
		say("step %d hash=%016" PRIx64, s, hash_words(0, buf, words));
		pace_ms(15);
	}
	say("dirty: done hash=%016" PRIx64, hash_words(0, buf, words));
	return 0;
}
