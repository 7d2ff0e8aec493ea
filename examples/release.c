/*
 * release: releases memory it filled long before (a checkpoint may lie in
 * between) and checks what the kernel promises for released pages, at
 * every step.
 *
 *   release [--steps S] [--dir DIR]
 *
 * Fills 16 MiB of private anonymous memory and maps DIR/release.dat
 * (4 MiB of known words, made by the program) privately, writing over its
 * first half. Each step releases one 256 KiB chunk of each with
 * MADV_DONTNEED and checks it at once: the anonymous chunk reads as zero,
 * the file chunk as the file's own words again (what the program wrote
 * there is gone); it then frees another anonymous chunk with MADV_FREE
 * (which must succeed on anonymous memory), writes both chunks again with
 * this step's words, and checks every word of both regions. /proc/self/maps
 * must show the anonymous region as one mapping without a name and the file
 * region as one mapping of DIR/release.dat: what a program that reads its
 * own mappings (a garbage collector, a sanitizer) relies on. Allocators
 * such as jemalloc hand out released pages as zeroed memory.
 *
 * Prints "step S <hash>"; the first difference prints "FAIL ..." and exits
 * 1; the last line is "done <hash>".
 */
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK (256UL << 10)
#define ANON (16UL << 20)
#define FILELEN (4UL << 20)
#define ANON_CHUNKS (ANON / CHUNK)
#define FILE_CHUNKS (FILELEN / CHUNK)

static uint64_t *anon, *filemap;
/* the step whose words each chunk holds; 0: the first fill (the file's own
 * words for the file region's second half); -1: released, zero */
static int anon_gen[ANON_CHUNKS], file_gen[FILE_CHUNKS];

static uint64_t anon_word(size_t w, int gen)
{
	return gen < 0 ? 0 : mix64(splitmix64(w), (uint64_t)gen);
}

/* the file's own words are generation 0; the program's writes 1000+ */
static uint64_t file_word(size_t w, int gen)
{
	return mix64(splitmix64(w ^ 0xf11e), (uint64_t)gen);
}

static void fill(uint64_t *p, size_t first, size_t n, int gen, uint64_t (*word)(size_t, int))
{
	for (size_t w = first; w < first + n; w++)
		p[w] = word(w, gen);
}

static void check_region(const char *name, const uint64_t *p, const int *gens, size_t chunks,
			 uint64_t (*word)(size_t, int), int s)
{
	for (size_t c = 0; c < chunks; c++)
		for (size_t w = c * CHUNK / 8; w < (c + 1) * CHUNK / 8; w++)
			if (p[w] != word(w, gens[c]))
				say_fail("step %d: %s word %zu (chunk %zu) is %#" PRIx64 ", expected %#" PRIx64, s, name, w, c,
				     p[w], word(w, gens[c]));
}

static void make_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path);
	uint64_t *buf = malloc(FILELEN);
	if (!buf)
		die("malloc");
	fill(buf, 0, FILELEN / 8, 0, file_word);
	if (write(fd, buf, FILELEN) != (ssize_t)FILELEN)
		die("write");
	free(buf);
	filemap = mmap(0, FILELEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (filemap == MAP_FAILED)
		die("mmap file");
	close(fd);
}

/* The line of /proc/self/maps that holds addr: it must span [lo, hi) and
 * be named name ("" for none). */
static void check_mapping(const char *what, void *lo, size_t len, const char *name, int s)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		die("/proc/self/maps");
	char line[4096];
	int found = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long a, b;
		int off = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s%n", &a, &b, &off) != 2)
			continue;
		if ((uintptr_t)lo < a || (uintptr_t)lo >= b)
			continue;
		found = 1;
		char *n = line + off;
		while (*n == ' ')
			n++;
		n[strcspn(n, "\n")] = 0;
		if (a != (uintptr_t)lo || b != (uintptr_t)lo + len)
			say_fail("step %d: the %s region shows as %lx-%lx in /proc/self/maps, not %lx-%lx (\"%s\")", s, what, a, b,
			     (unsigned long)(uintptr_t)lo, (unsigned long)((uintptr_t)lo + len), n);
		if (strcmp(n, name))
			say_fail("step %d: the %s region is named \"%s\" in /proc/self/maps, not \"%s\"", s, what, n, name);
	}
	fclose(f);
	if (!found)
		say_fail("step %d: the %s region is not in /proc/self/maps", s, what);
}

int main(int argc, char **argv)
{
	int steps = 200;
	const char *dir = ".";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
	}
	char path[4096], real[4096];
	snprintf(path, sizeof path, "%s/release.dat", dir);
	make_file(path);
	if (!realpath(path, real))
		die("realpath");
	/* between two inaccessible pages, so that it merges with no other mapping */
	char *span = mmap(0, ANON + 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (span == MAP_FAILED)
		die("mmap");
	anon = mmap(span + 4096, ANON, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (anon == MAP_FAILED)
		die("mmap");
	fill(anon, 0, ANON / 8, 0, anon_word);
	/* the program's own words over the file's first half */
	for (size_t c = 0; c < FILE_CHUNKS / 2; c++) {
		file_gen[c] = 1000;
		fill(filemap, c * CHUNK / 8, CHUNK / 8, 1000, file_word);
	}
	say("release: start steps=%d", steps);
	uint64_t h = 0;
	for (int s = 1; s <= steps; s++) {
		size_t a = (size_t)(s * 7) % ANON_CHUNKS, fr = (size_t)(s * 3) % ANON_CHUNKS;
		size_t fc = (size_t)s % FILE_CHUNKS;
		if (fr == a)
			fr = (fr + 1) % ANON_CHUNKS;
		uint64_t *ap = anon + a * CHUNK / 8, *fp = filemap + fc * CHUNK / 8;
		if (madvise(ap, CHUNK, MADV_DONTNEED) || madvise(fp, CHUNK, MADV_DONTNEED))
			say_fail("step %d: madvise(MADV_DONTNEED) failed: %s", s, strerror(errno));
		anon_gen[a] = -1;
		file_gen[fc] = 0;
		check_region("anonymous", anon, anon_gen, ANON_CHUNKS, anon_word, s);
		check_region("file", filemap, file_gen, FILE_CHUNKS, file_word, s);
		if (madvise(anon + fr * CHUNK / 8, CHUNK, MADV_FREE))
			say_fail("step %d: madvise(MADV_FREE) of anonymous memory failed: %s", s, strerror(errno));
		/* freed pages keep their words or read as zero until written */
		fill(anon, fr * CHUNK / 8, CHUNK / 8, s, anon_word);
		anon_gen[fr] = s;
		fill(anon, a * CHUNK / 8, CHUNK / 8, s, anon_word);
		anon_gen[a] = s;
		if (s % 2) {
			fill(filemap, fc * CHUNK / 8, CHUNK / 8, 1000 + s, file_word);
			file_gen[fc] = 1000 + s;
		}
		check_region("anonymous", anon, anon_gen, ANON_CHUNKS, anon_word, s);
		check_region("file", filemap, file_gen, FILE_CHUNKS, file_word, s);
		check_mapping("anonymous", anon, ANON, "", s);
		check_mapping("file", filemap, FILELEN, real, s);
		h = mix64(hash_words(0, anon, ANON / 8), hash_words(0, filemap, FILELEN / 8));
		say("step %d %016" PRIx64, s, h);
		pace_ms(30);
	}
	say("done %016" PRIx64, h);
	return 0;
}
