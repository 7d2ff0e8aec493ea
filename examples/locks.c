/*
 * File locks across a checkpoint (test/files-locks.test.ts).
 *
 *   locks DIR        the parent takes flock(DIR/A), a POSIX write lock on
 *                    bytes 0-99 of DIR/B and an OFD write lock on DIR/C,
 *                    forks a child that opens the three files itself and
 *                    waits for each lock in turn (flock, F_SETLKW,
 *                    F_OFD_SETLKW), then counts steps, checking at every
 *                    step that /proc/self/fdinfo still shows its three
 *                    locks and that the child has not got any. When
 *                    DIR/release exists it lets them go; the child must get
 *                    all three (never EINTR) and exit 0.
 *   locks probe DIR  an outside process: tries each lock without waiting
 *                    and prints "probe A held B held C held" (or "free").
 */
#include "common.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int open_in(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		say("error: open %s: %s", path, strerror(errno));
		exit(2);
	}
	return fd;
}

static struct flock range(short type, off_t start, off_t len)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	return l;
}

static int probe(const char *dir)
{
	int a = open_in(dir, "A"), b = open_in(dir, "B"), c = open_in(dir, "C");
	struct flock lb = range(F_WRLCK, 50, 1), lc = range(F_WRLCK, 0, 0);
	int fa = flock(a, LOCK_EX | LOCK_NB) != 0;
	int fb = fcntl(b, F_SETLK, &lb) != 0;
	int fc = fcntl(c, F_OFD_SETLK, &lc) != 0;
	say("probe A %s B %s C %s", fa ? "held" : "free", fb ? "held" : "free", fc ? "held" : "free");
	return 0;
}

/* The child: waits for each lock; a wait that ends with an error fails. */
static void child(const char *dir)
{
	int a = open_in(dir, "A"), b = open_in(dir, "B"), c = open_in(dir, "C");
	struct flock lb = range(F_WRLCK, 0, 100), lc = range(F_WRLCK, 0, 0);
	say("child: waiting");
	if (flock(a, LOCK_EX) != 0)
		say("FAIL: child flock: %s", strerror(errno)), _exit(1);
	say("child: got A");
	if (fcntl(b, F_SETLKW, &lb) != 0)
		say("FAIL: child F_SETLKW: %s", strerror(errno)), _exit(1);
	say("child: got B");
	if (fcntl(c, F_OFD_SETLKW, &lc) != 0)
		say("FAIL: child F_OFD_SETLKW: %s", strerror(errno)), _exit(1);
	say("child: got C");
	_exit(0);
}

/* The lock lines of fd's fdinfo, and whether one names kind. */
static int shows(int fd, const char *kind)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	int found = 0;
	while (f && fgets(buf, sizeof buf, f))
		if (!strncmp(buf, "lock:", 5) && strstr(buf, kind) && strstr(buf, "WRITE"))
			found = 1;
	if (f)
		fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "probe"))
		return probe(argv[2]);
	if (argc != 2) {
		fprintf(stderr, "usage: locks DIR | locks probe DIR\n");
		return 2;
	}
	const char *dir = argv[1];
	int a = open_in(dir, "A"), b = open_in(dir, "B"), c = open_in(dir, "C");
	struct flock lb = range(F_WRLCK, 0, 100), lc = range(F_WRLCK, 0, 0);
	char dpath[4096];
	snprintf(dpath, sizeof dpath, "%s/D", dir);
	close(open_in(dir, "D"));
	int d = open(dpath, O_RDONLY | O_CLOEXEC);
	if (flock(a, LOCK_EX) != 0 || fcntl(b, F_SETLK, &lb) != 0 || fcntl(c, F_OFD_SETLK, &lc) != 0 ||
	    fcntl(d, F_SETLEASE, F_RDLCK) != 0) {
		say("error: taking the locks: %s", strerror(errno));
		return 2;
	}
	say("parent: holds A B C, a lease on D");
	pid_t pid = fork();
	if (pid == 0)
		child(dir);
	char release[4096];
	snprintf(release, sizeof release, "%s/release", dir);
	for (long step = 1;; step++) {
		pace_ms(30);
		if (!shows(a, "FLOCK") || !shows(b, "POSIX") || !shows(c, "OFDLCK"))
			say("FAIL: step %ld: the parent's locks are gone (A %d B %d C %d)", step, shows(a, "FLOCK"),
			    shows(b, "POSIX"), shows(c, "OFDLCK"));
		if (fcntl(d, F_GETLEASE) != F_RDLCK)
			say("FAIL: step %ld: the parent's read lease on D is gone", step);
		int st;
		if (waitpid(pid, &st, WNOHANG) != 0)
			say("FAIL: step %ld: the child ended while the parent held the locks", step);
		say("step %ld", step);
		if (access(release, F_OK) == 0)
			break;
	}
	lb.l_type = F_UNLCK;
	lc.l_type = F_UNLCK;
	flock(a, LOCK_UN);
	fcntl(b, F_SETLK, &lb);
	fcntl(c, F_OFD_SETLK, &lc);
	say("parent: released");
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		say("FAIL: the child did not get the locks (status %#x)", st);
		return 1;
	}
	say("locks: done");
	return 0;
}
