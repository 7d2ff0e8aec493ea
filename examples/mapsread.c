/*
 * mapsread: a program that reads its own /proc/self/maps a little at a
 * time, as a profiler or a leak checker does, so that a checkpoint finds
 * it read part way.
 *
 *   mapsread [--steps N]
 *
 * Each step reads 64 more bytes of the list (from the start again after
 * its end) and prints "step K"; at the end of each pass the bytes read
 * must be the whole list as a fresh read shows it (the program maps
 * nothing meanwhile), else "FAIL ...". The last line is "done".
 */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

#define MAX (1 << 20)

static char got[MAX], fresh[MAX];

static long read_all(const char *path, char *buf)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long n = 0, r;
	if (fd < 0)
		die("open /proc/self/maps");
	while ((r = read(fd, buf + n, MAX - n)) > 0)
		n += r;
	close(fd);
	return n;
}

int main(int argc, char **argv)
{
	long steps = 200, passes = 0;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	say("mapsread: start");
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open /proc/self/maps");
	long have = 0;
	for (long k = 1; k <= steps; k++) {
		long r = read(fd, got + have, 64);
		if (r < 0)
			die("read /proc/self/maps");
		have += r;
		if (r == 0) {
			long n = read_all("/proc/self/maps", fresh);
			if (n != have || memcmp(fresh, got, (size_t)n))
				say_fail("pass %ld: the list read 64 bytes at a time (%ld bytes) is not the list (%ld bytes)", passes, have, n);
			passes++;
			have = 0;
			lseek(fd, 0, SEEK_SET);
		}
		say("step %ld", k);
		pace_ms(20);
	}
	say("done");
	return 0;
}
