/*
 * mapped: a program whose executable, shared library (mapped-lib.c) and
 * data file are all its own files, so that a test can replace each by a
 * copy (another inode and time, the same bytes) or by a changed one.
 *
 *   mapped DATA STEPS
 *
 * DATA (a multiple of 4096 bytes) is mapped MAP_PRIVATE read-only; step s
 * folds page s (modulo its pages) into a running hash with the library's
 * mapped_fold and prints "step s h=HASH". The end: "mapped: done h=HASH".
 */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096
#define PACE_MS 20

uint64_t mapped_fold(uint64_t h, const unsigned char *p, size_t n);

int main(int argc, char **argv)
{
	if (argc != 3)
		die("usage: mapped DATA STEPS");
	int steps = atoi(argv[2]);
	int fd = open(argv[1], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < PAGE || st.st_size % PAGE)
		die("open data");
	const unsigned char *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (data == MAP_FAILED)
		die("mmap");
	close(fd);
	size_t pages = (size_t)st.st_size / PAGE;
	uint64_t h = 1;
	for (int s = 1; s <= steps; s++) {
		h = mapped_fold(h, data + (size_t)s % pages * PAGE, PAGE);
		printf("step %d h=%016" PRIx64 "\n", s, h);
		fflush(stdout);
		pace_ms(PACE_MS);
	}
	printf("mapped: done h=%016" PRIx64 "\n", h);
	return 0;
}
