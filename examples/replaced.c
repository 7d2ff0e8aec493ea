/*
 * replaced: a job that keeps its state in a file it replaces atomically, as
 * editors, package managers and training loops do: each step writes the
 * new state into a temporary file made by mkstemp() and renames it over
 * the old one; it also leaves a scratch file (mkstemp) per step.
 *
 *   replaced DIR STEPS
 *
 * Step i (1..STEPS) first checks that DIR/state holds i - 1 and that DIR
 * holds i - 1 scratch files, then replaces the state with i, makes its
 * scratch file and appends "a i" to DIR/a.log; "end" at the end. A restart
 * from a checkpoint taken at step c must find the state file and the
 * scratch files as they were then (the state c, c scratch files), not as
 * the steps after it left them: else "FAIL ..." and status 1.
 */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

static long read_state(const char *dir)
{
	char path[4096], buf[32] = {0};
	snprintf(path, sizeof path, "%s/state", dir);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	return n > 0 ? atol(buf) : -1;
}

static long scratch_files(const char *dir)
{
	DIR *d = opendir(dir);
	long n = 0;
	if (!d)
		die("opendir");
	for (struct dirent *e; (e = readdir(d));)
		n += !strncmp(e->d_name, "scratch-", 8);
	closedir(d);
	return n;
}

static void replace_state(const char *dir, long i)
{
	char tmp[4096], path[4096], text[32];
	snprintf(tmp, sizeof tmp, "%s/state.XXXXXX", dir);
	snprintf(path, sizeof path, "%s/state", dir);
	int fd = mkstemp(tmp);
	int len = snprintf(text, sizeof text, "%ld\n", i);
	if (fd < 0 || write(fd, text, (size_t)len) != len || close(fd) != 0)
		die("the new state");
	if (rename(tmp, path) != 0)
		die("rename");
}

static void make_scratch(const char *dir, long i)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/scratch-%ld-XXXXXX", dir, i);
	int fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0 || write(fd, "x", 1) != 1 || close(fd) != 0)
		die("a scratch file");
}

static void log_step(const char *dir, long i)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/a.log", dir);
	FILE *f = fopen(path, "a");
	if (!f || fprintf(f, "a %ld\n", i) < 0 || fclose(f) != 0)
		die("a.log");
}

int main(int argc, char **argv)
{
	if (argc != 3)
		say_fail("usage: replaced DIR STEPS");
	const char *dir = argv[1];
	long steps = atol(argv[2]);
	replace_state(dir, 0);
	for (long i = 1; i <= steps; i++) {
		long state = read_state(dir), scratch = scratch_files(dir);
		if (state != i - 1)
			say_fail("step %ld: the state file holds %ld, not %ld", i, state, i - 1);
		if (scratch != i - 1)
			say_fail("step %ld: %ld scratch files, not %ld", i, scratch, i - 1);
		replace_state(dir, i);
		make_scratch(dir, i);
		log_step(dir, i);
		pace_ms(10);
	}
	say("end");
	return 0;
}
