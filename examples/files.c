/*
 * files: appends numbered lines to a log and reads an input file at an
 * advancing offset.
 *
 *   files LOG INPUT
 *
 * LOG is created (truncated) and opened O_APPEND; every step appends one
 * line "line N <hash>" with a single write(2). INPUT (made by the caller,
 * at least 16 KiB) is read 37 bytes per step, alternately through its
 * descriptor and a dup() of it (they share one offset), plus one pread at a
 * step-dependent offset; what is read is folded into a checksum.
 *
 * Also kept across a checkpoint: a scratch file that is deleted while open
 * (records appended every step, read back at the end), a descriptor for
 * /dev/null, a directory descriptor, the working directory (chdir to LOG's
 * directory), the umask, a lowered RLIMIT_NOFILE, close-on-exec flags and
 * O_APPEND.
 *
 * After a restart the log must hold every line exactly once: ckrun puts a
 * file the program writes back to its size at checkpoint time.
 */
#include "common.h"
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define STEPS 200
#define PACE_MS 12
#define CHUNK 37
#define RECORD 64

static struct stat st_of(int fd)
{
	struct stat st;
	if (fstat(fd, &st))
		die("fstat");
	return st;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: files LOG INPUT\n");
		return 2;
	}
	say("files: start steps=%d", STEPS);

	char logpath[PATH_MAX], inpath[PATH_MAX], dirbuf[PATH_MAX], cwd[PATH_MAX];
	if (!realpath(argv[2], inpath))
		die("realpath input");
	snprintf(dirbuf, sizeof dirbuf, "%s", argv[1]);
	const char *dir = dirname(dirbuf);
	if (chdir(dir))
		die("chdir");
	if (!getcwd(cwd, sizeof cwd))
		die("getcwd");
	snprintf(dirbuf, sizeof dirbuf, "%s", argv[1]);
	snprintf(logpath, sizeof logpath, "%s", basename(dirbuf)); /* relative to cwd */
	umask(027);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit");
	rl.rlim_cur = 200; /* a soft limit of its own, below any usual default */
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("setrlimit");

	int in = open(inpath, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		die("open input");
	int in2 = dup(in);
	int log = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0666);
	if (log < 0)
		die("open log");
	int null = open("/dev/null", O_WRONLY);
	int dfd = open(".", O_RDONLY | O_DIRECTORY);
	char scratch_name[PATH_MAX + 16];
	snprintf(scratch_name, sizeof scratch_name, "%s.scratch", logpath);
	int scratch = open(scratch_name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (in2 < 0 || null < 0 || dfd < 0 || scratch < 0)
		die("open");
	if (unlink(scratch_name))
		die("unlink scratch");
	int fds[] = { in, in2, log, null, dfd, scratch };
	struct stat sts[6];
	for (int i = 0; i < 6; i++)
		sts[i] = st_of(fds[i]);
	off_t insize = sts[0].st_size;
	if (insize < 16384) {
		say("error: input too small (%lld bytes)", (long long)insize);
		return 2;
	}

	uint64_t sum = 0;
	for (int s = 1; s <= STEPS; s++) {
		unsigned char b[CHUNK];
		int fd = (s & 1) ? in : in2;
		ssize_t n = read(fd, b, sizeof b);
		if (n != CHUNK)
			die("read input");
		sum = hash_bytes(sum, b, (size_t)n);
		off_t at = ((off_t)s * 101) % (insize - 64);
		if (pread(in, b, 16, at) != 16)
			die("pread input");
		sum = mix64(hash_bytes(sum, b, 16), (uint64_t)s);

		char line[128];
		int len = snprintf(line, sizeof line, "line %d %016" PRIx64 "\n", s, sum);
		if (write(log, line, (size_t)len) != len)
			die("write log");
		if (write(null, line, (size_t)len) != len)
			die("write /dev/null");
		char rec[RECORD];
		memset(rec, '.', sizeof rec);
		snprintf(rec, sizeof rec, "record %d %016" PRIx64, s, sum);
		if (write(scratch, rec, sizeof rec) != RECORD)
			die("write scratch");

		off_t off = lseek(in, 0, SEEK_CUR);
		say("step %d off=%lld sum=%016" PRIx64, s, (long long)off, sum);
		pace_ms(PACE_MS);
	}

	/* the deleted scratch file holds every record */
	uint64_t scr = 0;
	int records = 0;
	if (lseek(scratch, 0, SEEK_SET) != 0)
		die("lseek scratch");
	for (;;) {
		char rec[RECORD];
		ssize_t n = read(scratch, rec, sizeof rec);
		if (n <= 0)
			break;
		scr = hash_bytes(scr, rec, (size_t)n);
		records++;
	}

	/* descriptors are the same files at the same numbers (the deleted
	 * scratch file cannot keep its inode across a restart: it must still be
	 * open, deleted, and hold every record) */
	int same = 1;
	for (int i = 0; i < 5; i++) {
		struct stat st;
		if (fstat(fds[i], &st) || st.st_ino != sts[i].st_ino || st.st_dev != sts[i].st_dev)
			same = 0;
	}
	struct stat sst;
	int scratch_deleted = fstat(scratch, &sst) == 0 && sst.st_nlink == 0 && S_ISREG(sst.st_mode) &&
			      sst.st_size == (off_t)STEPS * RECORD;
	struct stat lst;
	memset(&lst, 0, sizeof lst);
	int dir_ok = fstatat(dfd, logpath, &lst, 0) == 0 && lst.st_ino == sts[2].st_ino;
	char now[PATH_MAX];
	int cwd_ok = getcwd(now, sizeof now) && !strcmp(now, cwd);
	mode_t um = umask(027);
	int fl = fcntl(log, F_GETFL);
	say("fds: %s dirfd: %s cwd: %s umask: %03o", same ? "same" : "changed", dir_ok ? "ok" : "bad",
	    cwd_ok ? "ok" : "changed", (unsigned)um);
	say("scratch: %s", scratch_deleted ? "open, deleted, complete" : "changed");
	getrlimit(RLIMIT_NOFILE, &rl);
	say("rlimit nofile: %llu", (unsigned long long)rl.rlim_cur);
	say("flags: log append=%d wronly=%d cloexec in=%d dup=%d", !!(fl & O_APPEND),
	    (fl & O_ACCMODE) == O_WRONLY, !!(fcntl(in, F_GETFD) & FD_CLOEXEC),
	    !!(fcntl(in2, F_GETFD) & FD_CLOEXEC));
	say("files: done lines=%d log=%lld bytes input=%lld records=%d scratch=%016" PRIx64 " sum=%016" PRIx64,
	    STEPS, (long long)lst.st_size, (long long)lseek(in, 0, SEEK_CUR), records, scr, sum);
	return 0;
}
