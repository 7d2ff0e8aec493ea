/*
 * sparse: a huge MAP_NORESERVE region of which only a little is touched,
 * the case where a checkpoint must cost what is present, not what is
 * reserved.
 *
 *   sparse [--gib G] [--runs N] [--run-pages P] [--steps S]
 *
 * Maps G GiB (default 2048: 2 TiB) MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,
 * and fills N runs (default 300) of P pages each (default 1) at scattered
 * places with contents known from their place. Each step rewrites one word
 * in a few runs, then checks every word of every run and a few never
 * touched pages (which must read as zero) against what it expects, and
 * prints "step S <hash>"; the first wrong word prints "FAIL ..." and exits
 * 1. The last line is "done <hash>".
 */
#include "common.h"

#include <sys/mman.h>

#define PAGE 4096UL
#define WORDS (PAGE / 8)

static size_t region_pages, nruns, run_pages;
static uint64_t *base;
static int steps = 200;

/* The first page of run r: scattered over the whole region, never
 * overlapping (each run owns its own slice of the region). */
static size_t run_start(size_t r)
{
	size_t slice = region_pages / nruns;
	return r * slice + splitmix64(r) % (slice - run_pages);
}

/* What word w of page p of run r holds after `writes` rewrites of it. */
static uint64_t expected(size_t r, size_t p, size_t w, uint64_t writes)
{
	uint64_t v = splitmix64(((uint64_t)r << 40) ^ ((uint64_t)p << 20) ^ w);
	return writes ? mix64(v, writes) : v;
}

/* rewrites[r]: how often word 7 of the last page of run r was rewritten */
static uint64_t *rewrites;

static uint64_t *page_at(size_t r, size_t p)
{
	return base + (run_start(r) + p) * WORDS;
}

static void fill(void)
{
	for (size_t r = 0; r < nruns; r++)
		for (size_t p = 0; p < run_pages; p++) {
			uint64_t *pg = page_at(r, p);
			for (size_t w = 0; w < WORDS; w++)
				pg[w] = expected(r, p, w, 0);
		}
}

static void step(int s)
{
	for (size_t k = 0; k < 5; k++) {
		size_t r = ((size_t)s * 31 + k * 97) % nruns;
		rewrites[r]++;
		page_at(r, run_pages - 1)[7] = expected(r, run_pages - 1, 7, rewrites[r]);
	}
}

/* Checks every run word by word; returns a hash of all of them. */
static uint64_t check(int s)
{
	uint64_t h = 0;
	for (size_t r = 0; r < nruns; r++)
		for (size_t p = 0; p < run_pages; p++) {
			const uint64_t *pg = page_at(r, p);
			for (size_t w = 0; w < WORDS; w++) {
				uint64_t want = expected(r, p, w, p == run_pages - 1 && w == 7 ? rewrites[r] : 0);
				if (pg[w] != want) {
					say("FAIL step %d: run %zu page %zu word %zu is %#" PRIx64 ", expected %#" PRIx64, s, r, p, w,
					    pg[w], want);
					exit(1);
				}
			}
			h = mix64(h, pg[7]);
		}
	/* a page between runs was never written: it reads as zero */
	for (size_t r = 0; r + 1 < nruns; r += nruns / 7 + 1) {
		const uint64_t *gap = base + (run_start(r) + run_pages) * WORDS;
		if (run_start(r) + run_pages < run_start(r + 1) && gap[s % WORDS] != 0) {
			say("FAIL step %d: the page after run %zu was never written but holds %#" PRIx64, s, r, gap[s % WORDS]);
			exit(1);
		}
	}
	return h;
}

int main(int argc, char **argv)
{
	size_t gib = 2048;
	nruns = 300;
	run_pages = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--gib"))
			gib = strtoul(argv[i + 1], 0, 10);
		else if (!strcmp(argv[i], "--runs"))
			nruns = strtoul(argv[i + 1], 0, 10);
		else if (!strcmp(argv[i], "--run-pages"))
			run_pages = strtoul(argv[i + 1], 0, 10);
		else if (!strcmp(argv[i], "--steps"))
			steps = atoi(argv[i + 1]);
	}
	region_pages = (gib << 30) / PAGE;
	if (!nruns || !run_pages || region_pages / nruns <= run_pages + 1) {
		say("error: %zu runs of %zu pages do not fit in %zu GiB", nruns, run_pages, gib);
		return 2;
	}
	void *m = mmap(0, region_pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		die("mmap");
	base = m;
	rewrites = calloc(nruns, sizeof *rewrites);
	if (!rewrites)
		die("calloc");
	fill();
	say("sparse: start gib=%zu runs=%zu run_pages=%zu steps=%d", gib, nruns, run_pages, steps);
	uint64_t h = 0;
	for (int s = 1; s <= steps; s++) {
		step(s);
		h = check(s);
		say("step %d %016" PRIx64, s, h);
		pace_ms(run_pages > 16 ? 100 : 30);
	}
	say("done %016" PRIx64, h);
	return 0;
}
