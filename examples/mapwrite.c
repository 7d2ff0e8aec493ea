/*
 * mapwrite: a file opened for writing and mapped shared but read-only,
 * its descriptor closed: mprotect may still make the mapping writable
 * (the kernel remembers the file was open for writing). Every step reads
 * the mapping; the last makes one page writable, writes through it and
 * checks the file holds the bytes. A difference prints "FAIL ...".
 *
 *   mapwrite [--steps N]     prints "step K" per step, then "done"
 */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long steps = 40;
	if (argc == 3 && !strcmp(argv[1], "--steps"))
		steps = atol(argv[2]);
	char path[] = "/tmp/ckrun-mapwrite-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, 8192))
		die("the file");
	char *m = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		die("mmap");
	close(fd);
	say("mapped");
	for (long k = 1; k <= steps; k++) {
		if (m[0] || m[4096]) {
			say("FAIL the mapping holds bytes nobody wrote");
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	if (mprotect(m + 4096, 4096, PROT_READ | PROT_WRITE)) {
		say("FAIL mprotect(PROT_WRITE) of the read-only mapping: %s", strerror(errno));
		unlink(path);
		return 1;
	}
	strcpy(m + 4096, "written through the mapping");
	msync(m, 8192, MS_SYNC);
	char back[32] = "";
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, back, sizeof back - 1, 4096) <= 0 || strcmp(back, "written through the mapping")) {
		say("FAIL the file does not hold what was written through the mapping");
		unlink(path);
		return 1;
	}
	unlink(path);
	say("done");
	return 0;
}
