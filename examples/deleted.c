/*
 * Files deleted while open, across a checkpoint (test/files-kinds.test.ts).
 *
 *   deleted DIR   makes DIR/sparse (3 MiB: "head" at 0, "middle" at 1 MiB,
 *                 holes elsewhere, owner nobody, mode 0640, fixed access
 *                 and modification times) and DIR/wronly (opened
 *                 write-only), deletes both and keeps them open. It counts
 *                 steps, checking at every step size, owner, mode, times
 *                 and that they are still deleted; when DIR/release exists
 *                 it checks the content and that the holes are holes.
 *                 Also DIR/shared, deleted, open in two descriptions of
 *                 its own and one of a child's: at every step the program
 *                 writes the step through one, reads it back through the
 *                 other, and the child (woken through a pipe) copies it
 *                 through its own; and an O_TMPFILE file in DIR (issue
 *                 12: zdtm unlink_fstat02, write_read10, unlink_fstat041).
 *                 And DIR/linked, hard-linked as DIR/linked.other, then
 *                 removed while open: the descriptor is the file the
 *                 other name shows (zdtm unlink_fstat03), checked at
 *                 every step through that name.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024)
static const struct timespec ATIME = {1000000000, 500}, MTIME = {1200000000, 250};

static int make(const char *dir, const char *name, int flags)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, flags | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		say("error: open %s: %s", path, strerror(errno)), exit(2);
	return fd;
}

static void unlink_in(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (unlink(path) != 0)
		say("error: unlink %s: %s", path, strerror(errno)), exit(2);
}

static int deleted(int fd)
{
	char proc[64], link[4096];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	return n > 10 && !strcmp(link + n - 10, " (deleted)");
}

static void check(long step, int fd, int wfd)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size != 3 * MIB || st.st_uid != 65534 || st.st_gid != 65534 ||
	    (st.st_mode & 07777) != 0640 || st.st_nlink != 0 || !deleted(fd))
		say("FAIL: step %ld: sparse: size %lld owner %u:%u mode %o nlink %lu deleted %d", step, (long long)st.st_size,
		    st.st_uid, st.st_gid, st.st_mode & 07777, (unsigned long)st.st_nlink, deleted(fd));
	if (st.st_mtim.tv_sec != MTIME.tv_sec || st.st_mtim.tv_nsec != MTIME.tv_nsec || st.st_atim.tv_sec != ATIME.tv_sec ||
	    st.st_atim.tv_nsec != ATIME.tv_nsec)
		say("FAIL: step %ld: sparse: times %lld.%09ld/%lld.%09ld", step, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
		    (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	if (fstat(wfd, &st) != 0 || st.st_size != 11 || (fcntl(wfd, F_GETFL) & O_ACCMODE) != O_WRONLY || !deleted(wfd) ||
	    lseek(wfd, 0, SEEK_CUR) != 11)
		say("FAIL: step %ld: wronly: size %lld, flags %#x, offset %lld", step, (long long)st.st_size, fcntl(wfd, F_GETFL),
		    (long long)lseek(wfd, 0, SEEK_CUR));
}

static void check_content(int fd)
{
	char buf[16];
	off_t hole = lseek(fd, 0, SEEK_HOLE), data = lseek(fd, hole, SEEK_DATA);
	struct stat st;
	fstat(fd, &st);
	if (pread(fd, buf, 4, 0) != 4 || memcmp(buf, "head", 4) || pread(fd, buf, 6, MIB) != 6 || memcmp(buf, "middle", 6))
		say("FAIL: sparse: the content differs");
	else if (hole >= MIB || data != MIB || st.st_blocks > 256)
		say("FAIL: sparse: the holes are gone (first hole at %lld, data again at %lld, %lld blocks)", (long long)hole,
		    (long long)data, (long long)st.st_blocks);
	else
		say("sparse: content and holes kept");
}

/* The child: for each byte from the parent, the value at 0 copied to 8
 * through its own description, then a byte back; ends on 'q'. */
static void copier(int fd, int in, int out)
{
	char c;
	while (read(in, &c, 1) == 1 && c != 'q') {
		long v = -1;
		if (pread(fd, &v, sizeof v, 0) != sizeof v || pwrite(fd, &v, sizeof v, 8) != sizeof v || write(out, "k", 1) != 1)
			_exit(3);
	}
	_exit(0);
}

/* One inode through three descriptions, two processes. */
static void check_shared(long step, int a, int b, int to, int from)
{
	long got = -1, copied = -1;
	char c;
	if (pwrite(a, &step, sizeof step, 0) != sizeof step || pread(b, &got, sizeof got, 0) != sizeof got || got != step)
		say("FAIL: step %ld: shared: read %ld through the other description", step, got);
	if (write(to, "s", 1) != 1 || read(from, &c, 1) != 1 || pread(a, &copied, sizeof copied, 8) != sizeof copied ||
	    copied != step)
		say("FAIL: step %ld: shared: the child's description wrote %ld", step, copied);
	struct stat sa, sb;
	if (fstat(a, &sa) != 0 || fstat(b, &sb) != 0 || sa.st_ino != sb.st_ino || sa.st_dev != sb.st_dev || sa.st_nlink != 0)
		say("FAIL: step %ld: shared: two inodes (%lu, %lu) or nlink %lu", step, (unsigned long)sa.st_ino,
		    (unsigned long)sb.st_ino, (unsigned long)sa.st_nlink);
}

static void check_tmpfile(long step, int fd)
{
	char buf[8] = "";
	if ((fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR || pread(fd, buf, 7, 0) != 7 || memcmp(buf, "tmpfile", 7))
		say("FAIL: step %ld: O_TMPFILE: flags %#x, content %.7s", step, fcntl(fd, F_GETFL), buf);
}

/* The descriptor of a removed name is the file its other name shows. */
static void check_linked(long step, int fd, const char *dir)
{
	char other[4096];
	snprintf(other, sizeof other, "%s/linked.other", dir);
	long got = -1;
	struct stat a, b;
	int o = open(other, O_RDONLY | O_CLOEXEC);
	if (pwrite(fd, &step, sizeof step, 0) != sizeof step || o < 0 || pread(o, &got, sizeof got, 0) != sizeof got || got != step ||
	    fstat(fd, &a) != 0 || fstat(o, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev || a.st_nlink != 1)
		say("FAIL: step %ld: linked: read %ld through the other name, nlink %lu, same inode %d", step, got,
		    (unsigned long)a.st_nlink, a.st_ino == b.st_ino);
	if (o >= 0)
		close(o);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: deleted DIR\n");
		return 2;
	}
	const char *dir = argv[1];
	int fd = make(dir, "sparse", O_RDWR), wfd = make(dir, "wronly", O_WRONLY);
	struct timespec times[2] = {ATIME, MTIME};
	if (pwrite(fd, "head", 4, 0) != 4 || pwrite(fd, "middle", 6, MIB) != 6 || ftruncate(fd, 3 * MIB) != 0 ||
	    fchown(fd, 65534, 65534) != 0 || fchmod(fd, 0640) != 0 || futimens(fd, times) != 0 || write(wfd, "write-only\n", 11) != 11) {
		say("error: setting up: %s", strerror(errno));
		return 2;
	}
	unlink_in(dir, "sparse");
	unlink_in(dir, "wronly");
	int sa = make(dir, "shared", O_RDWR), sb = make(dir, "shared", O_RDONLY), sc = make(dir, "shared", O_RDWR);
	unlink_in(dir, "shared");
	int down[2], up[2];
	if (pipe(down) != 0 || pipe(up) != 0)
		return say("error: pipe: %s", strerror(errno)), 2;
	pid_t child = fork();
	if (child == 0) {
		close(sa), close(sb), close(down[1]), close(up[0]);
		copier(sc, down[0], up[1]);
	}
	close(sc), close(down[0]), close(up[1]);
	int lfd = make(dir, "linked", O_RDWR);
	char linked[4096], other[4096];
	snprintf(linked, sizeof linked, "%s/linked", dir);
	snprintf(other, sizeof other, "%s/linked.other", dir);
	if (link(linked, other) != 0)
		return say("error: link: %s", strerror(errno)), 2;
	unlink_in(dir, "linked");
	int tfd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (child < 0 || tfd < 0 || write(tfd, "tmpfile", 7) != 7)
		return say("error: setting up: %s", strerror(errno)), 2;
	say("deleted: set up");
	char release[4096];
	snprintf(release, sizeof release, "%s/release", dir);
	for (long step = 1;; step++) {
		pace_ms(30);
		check(step, fd, wfd);
		check_shared(step, sa, sb, down[1], up[0]);
		check_tmpfile(step, tfd);
		check_linked(step, lfd, dir);
		say("step %ld", step);
		if (access(release, F_OK) == 0)
			break;
	}
	check_content(fd);
	int status;
	if (write(down[1], "q", 1) != 1 || waitpid(child, &status, 0) != child || status != 0)
		say("FAIL: the child ended with status %#x", status);
	say("deleted: done");
	return 0;
}
