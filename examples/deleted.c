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
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>
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
	say("deleted: set up");
	char release[4096];
	snprintf(release, sizeof release, "%s/release", dir);
	for (long step = 1;; step++) {
		pace_ms(30);
		check(step, fd, wfd);
		say("step %ld", step);
		if (access(release, F_OK) == 0)
			break;
	}
	check_content(fd);
	say("deleted: done");
	return 0;
}
