/* writelimit: the machine's limit for writing an image: a plain sequential
 * write of BYTES bytes from memory into a new file at PATH in 8 MiB
 * writes (as ckrun writes an image), then fsync and close; the file is removed afterwards (not timed).
 *
 *   writelimit PATH BYTES
 *
 * stdout: "write <total_ns> <write_ns> <fsync_ns> <bytes>" */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (8u << 20) /* the writes ckrun makes (preload/image.c CK_WRITE_CHUNK) */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: writelimit PATH BYTES\n");
		return 2;
	}
	const char *path = argv[1];
	uint64_t bytes = strtoull(argv[2], 0, 10);
	size_t bufsize = bytes < CHUNK ? (size_t)((bytes + 4095) & ~4095ull) : CHUNK;
	if (bufsize == 0)
		bufsize = 4096;
	uint64_t *buf = mmap(0, bufsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("writelimit: mmap");
		return 1;
	}
	uint64_t x = 0x2545f4914f6cdd1dull;
	for (size_t i = 0; i < bufsize / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = x;
	}
	uint64_t t0 = now_ns();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror("writelimit: open");
		return 1;
	}
	uint64_t left = bytes;
	while (left > 0) {
		size_t n = left < bufsize ? (size_t)left : bufsize;
		ssize_t w = write(fd, buf, n);
		if (w <= 0) {
			perror("writelimit: write");
			unlink(path);
			return 1;
		}
		left -= (uint64_t)w;
	}
	uint64_t t1 = now_ns();
	if (fsync(fd) != 0) {
		perror("writelimit: fsync");
		unlink(path);
		return 1;
	}
	close(fd);
	uint64_t t2 = now_ns();
	unlink(path);
	printf("write %llu %llu %llu %llu\n", (unsigned long long)(t2 - t0), (unsigned long long)(t1 - t0),
	       (unsigned long long)(t2 - t1), (unsigned long long)bytes);
	return 0;
}
