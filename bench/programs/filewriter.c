/* filewriter: a database-like writer for the written-files measurements
 * (bench/suites/files.ts): fills PATH with MIB MiB of data once, then
 * rewrites 4 KiB pages in place at pseudo-random offsets, PER_S pages a
 * second, for ever.
 *
 *   filewriter PATH MIB PER_S
 *
 * stdout: "ready <pid>" once the file is full. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: filewriter PATH MIB PER_S\n");
		return 2;
	}
	uint64_t size = strtoull(argv[2], 0, 10) << 20;
	long per_s = strtol(argv[3], 0, 10);
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	static char buf[1 << 20];
	uint64_t x = 88172645463325252ull;
	for (uint64_t off = 0; off < size; off += sizeof buf) {
		for (size_t i = 0; i < sizeof buf; i += 8) {
			uint64_t v = next(&x);
			memcpy(buf + i, &v, 8);
		}
		if (pwrite(fd, buf, sizeof buf, (off_t)off) != (ssize_t)sizeof buf) {
			perror("pwrite");
			return 1;
		}
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	struct timespec gap = { 0, per_s > 0 ? 1000000000L / per_s : 1000000L };
	for (;;) {
		uint64_t page = next(&x) % (size / 4096);
		uint64_t v = next(&x);
		memcpy(buf, &v, 8);
		if (pwrite(fd, buf, 4096, (off_t)(page * 4096)) != 4096) {
			perror("pwrite");
			return 1;
		}
		nanosleep(&gap, 0);
	}
}
