/*
 * mmap: a file mapped MAP_SHARED and another MAP_PRIVATE, both written.
 *
 *   mmap SHARED_FILE PRIVATE_FILE
 *
 * Both files are created with 256 pages of a known pattern (byte i of page p
 * is (p*7 + i*13 + 1) & 0xff). SHARED_FILE is mapped whole, MAP_SHARED:
 * step s overwrites page s with a pattern of s (the same bytes however often
 * the step runs, so a re-run after a restart writes the same file) and the
 * header page records the last step. PRIVATE_FILE is mapped MAP_PRIVATE from
 * page 16 on: every step XORs into one of its pages, which must never reach
 * the file. Also: a shared anonymous region (read-modify-write every step),
 * and a guard layout of a read-write page, a PROT_NONE page and a read-only
 * page whose permissions are read back from /proc/self/maps at the end.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#define STEPS 200
#define PACE_MS 12
#define PAGE 4096
#define NPAGES 256
#define PRIV_OFF 16 /* pages */
#define PRIV_PAGES (NPAGES - PRIV_OFF)
#define SHM_PAGES 16

static unsigned char pattern(size_t p, size_t i) { return (unsigned char)((p * 7 + i * 13 + 1) & 0xff); }

static void make_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open");
	static unsigned char page[PAGE];
	for (size_t p = 0; p < NPAGES; p++) {
		for (size_t i = 0; i < PAGE; i++)
			page[i] = pattern(p, i);
		if (write(fd, page, PAGE) != PAGE)
			die("write");
	}
	close(fd);
}

static void *map_file(const char *path, size_t len, int flags, off_t off)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		die("open");
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, off);
	if (p == MAP_FAILED)
		die("mmap file");
	close(fd); /* the mappings live on without the descriptors */
	return p;
}

/* Permissions of the mapping holding addr, from /proc/self/maps. */
static const char *perms_of(const void *addr)
{
	static char perms[8];
	snprintf(perms, sizeof perms, "none");
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return perms;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char pr[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, pr) == 3 && (uintptr_t)addr >= lo &&
		    (uintptr_t)addr < hi) {
			snprintf(perms, sizeof perms, "%s", pr);
			break;
		}
	}
	fclose(f);
	return perms;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mmap SHARED_FILE PRIVATE_FILE\n");
		return 2;
	}
	say("mmap: start steps=%d", STEPS);
	make_file(argv[1]);
	make_file(argv[2]);
	unsigned char *sh = map_file(argv[1], NPAGES * PAGE, MAP_SHARED, 0);
	unsigned char *pv = map_file(argv[2], PRIV_PAGES * PAGE, MAP_PRIVATE, PRIV_OFF * PAGE);
	uint64_t *shm = mmap(NULL, SHM_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned char *guard = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED || guard == MAP_FAILED)
		die("mmap anon");
	for (size_t i = 0; i < 3 * PAGE; i++)
		guard[i] = (unsigned char)(i * 3);
	if (mprotect(guard + PAGE, PAGE, PROT_NONE) || mprotect(guard + 2 * PAGE, PAGE, PROT_READ))
		die("mprotect");

	uint64_t run = 0;
	for (int s = 1; s <= STEPS; s++) {
		/* shared: page s gets a pattern of s; page s-1 (written by the step
		 * before, or the file's own bytes) is read back */
		unsigned char *pg = sh + (size_t)s * PAGE;
		for (size_t i = 0; i < PAGE; i++)
			pg[i] = (unsigned char)((size_t)s * 5 + i * 3);
		uint64_t shs = hash_bytes(0, sh + (size_t)(s - 1) * PAGE, PAGE);
		memcpy(sh, &s, sizeof s); /* header page: last step */

		/* private: read-modify-write one page */
		unsigned char *pp = pv + (size_t)((s * 37) % PRIV_PAGES) * PAGE;
		for (size_t i = 0; i < PAGE; i += 8)
			pp[i] ^= (unsigned char)(s + i);
		uint64_t pvs = hash_bytes(0, pp, PAGE);

		/* shared anonymous */
		uint64_t *w = &shm[(size_t)(s % SHM_PAGES) * (PAGE / 8) + (size_t)s % 64];
		*w += (uint64_t)s * 0x1234567ULL;

		run = mix64(mix64(mix64(run, shs), pvs), *w);
		say("step %d shared=%08" PRIx64 " private=%08" PRIx64 " shmem=%08" PRIx64 " run=%016" PRIx64, s,
		    shs & 0xffffffff, pvs & 0xffffffff, *w & 0xffffffff, run);
		pace_ms(PACE_MS);
	}

	if (msync(sh, NPAGES * PAGE, MS_SYNC))
		die("msync");
	uint64_t hs = hash_bytes(0, sh, NPAGES * PAGE);
	uint64_t hp = hash_bytes(0, pv, PRIV_PAGES * PAGE);
	uint64_t hm = hash_words(0, shm, SHM_PAGES * PAGE / 8);
	uint64_t hg = hash_bytes(hash_bytes(0, guard, PAGE), guard + 2 * PAGE, PAGE);
	char p0[8], p1[8], p2[8];
	snprintf(p0, sizeof p0, "%s", perms_of(guard));
	snprintf(p1, sizeof p1, "%s", perms_of(guard + PAGE));
	snprintf(p2, sizeof p2, "%s", perms_of(guard + 2 * PAGE));
	say("guard: %s %s %s", p0, p1, p2);
	say("mmap: done shared=%016" PRIx64 " private=%016" PRIx64 " shmem=%016" PRIx64 " guard=%016" PRIx64
	    " run=%016" PRIx64,
	    hs, hp, hm, hg, run);
	return 0;
}
