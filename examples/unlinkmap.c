/*
 * unlinkmap: private mappings (MAP_PRIVATE) of files the program still
 * holds open but that have no name any more: a regular file it removed
 * (as programs that keep scratch data in an unlinked file do) and a memfd
 * it maps only privately. Each file has 4 pages; each mapping covers them
 * all; the program writes page 3 of each mapping itself (a copy of its
 * own), and writes page 0 of each file through its descriptor at every
 * step.
 *
 * Every step checks, in each mapping: page 0 shows what the descriptor
 * wrote last (a page the program did not write follows the file), pages
 * 1 and 2 show the file's first bytes, page 3 its own bytes. A difference
 * prints "FAIL ...".
 *
 *   unlinkmap [--steps N]    prints "step K" per step, then "done"
 */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL

struct held {
	const char *what;
	int fd;
	unsigned char *map;
};

static void fill_file(int fd)
{
	unsigned char page[PAGE];
	for (int p = 0; p < 4; p++) {
		memset(page, 'A' + p, PAGE);
		if (pwrite(fd, page, PAGE, (off_t)(p * PAGE)) != (ssize_t)PAGE)
			die("pwrite");
	}
}

static void map_it(struct held *h)
{
	fill_file(h->fd);
	h->map = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, h->fd, 0);
	if (h->map == MAP_FAILED)
		die("mmap");
	(void)h->map[PAGE]; /* a page read, not written: still the file's */
	memset(h->map + 3 * PAGE, 'z', PAGE);
}

static int check(const struct held *h, unsigned char step)
{
	for (unsigned long i = 0; i < PAGE; i += 256) {
		if (h->map[i] != step) {
			say("FAIL the %s mapping's page 0 is %d, not the file's %d: it no longer follows the file", h->what,
			    h->map[i], step);
			return 0;
		}
		if (h->map[PAGE + i] != 'B' || h->map[2 * PAGE + i] != 'C') {
			say("FAIL the %s mapping's pages 1 and 2 changed", h->what);
			return 0;
		}
		if (h->map[3 * PAGE + i] != 'z') {
			say("FAIL the %s mapping lost the page it wrote", h->what);
			return 0;
		}
	}
	return 1;
}

int main(int argc, char **argv)
{
	long steps = steps_option(argc, argv, 60);
	char path[] = "/tmp/ckrun-unlinkmap-XXXXXX";
	struct held file = {"removed file", mkstemp(path), 0};
	if (file.fd < 0)
		die("mkstemp");
	map_it(&file);
	if (unlink(path) != 0)
		die("unlink");
	struct held mfd = {"memfd", memfd_create("ckrun-unlinkmap", MFD_CLOEXEC), 0};
	if (mfd.fd < 0)
		die("memfd_create");
	map_it(&mfd);
	say("mapped");
	for (long k = 1; k <= steps; k++) {
		unsigned char step = (unsigned char)(k % 200 + 1), page[PAGE];
		memset(page, step, PAGE);
		if (pwrite(file.fd, page, PAGE, 0) != (ssize_t)PAGE || pwrite(mfd.fd, page, PAGE, 0) != (ssize_t)PAGE)
			die("pwrite");
		if (!check(&file, step) || !check(&mfd, step))
			return 1;
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
