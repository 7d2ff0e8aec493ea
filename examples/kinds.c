/*
 * Descriptor kinds across a checkpoint (test/files-kinds.test.ts).
 *
 *   kinds DIR   holds: a memfd with seals (grow, shrink, seal) and one made
 *               MFD_NOEXEC_SEAL, one MFD_EXEC (each with content); O_PATH
 *               descriptors of a file, a directory and a symlink (not
 *               followed); a directory deleted while open; and works in a
 *               deleted directory (its cwd), also open as a descriptor;
 *               a directory removed with its parent; an O_PATH descriptor
 *               of a symlink removed since (zdtm symlink01); a memfd holding a
 *               script, with a second description opened through /proc;
 *               its own /proc/self/fdinfo of the O_PATH file, open.
 *               It counts steps, checking all of them at every step (a
 *               write through one description of the memfd is read
 *               through the other, the cwd and its descriptor are one
 *               inode); when DIR/release exists it checks the memfds'
 *               content, that their seals still refuse, and runs the
 *               script memfd with execveat (issue 12: zdtm cwd02,
 *               rmdir_open, memfd01, memfd04).
 */
#include "common.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#define MFD_EXEC 0x0010U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

static const char CONTENT[] = "memfd content";

static int memfd(const char *name, unsigned flags, int seals)
{
	int fd = memfd_create(name, flags | MFD_CLOEXEC);
	if (fd < 0 || write(fd, CONTENT, sizeof CONTENT) != (ssize_t)sizeof CONTENT || (seals && fcntl(fd, F_ADD_SEALS, seals) != 0))
		say("error: memfd %s: %s", name, strerror(errno)), exit(2);
	return fd;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static void check_link(long step, const char *what, int fd, const char *want)
{
	char proc[64], link[4096];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	if (strcmp(link, want))
		say("FAIL: step %ld: %s is %s, expected %s", step, what, link, want);
}

static void check_memfd(long step, const char *what, int fd, int seals, mode_t exec)
{
	struct stat st = {0};
	int got = fcntl(fd, F_GET_SEALS), r = fstat(fd, &st);
	if (got != seals || r != 0 || st.st_size != sizeof CONTENT || (st.st_mode & 0111) != exec)
		say("FAIL: step %ld: %s: seals %#x (expected %#x), size %lld, mode %o", step, what, got, seals, (long long)st.st_size,
		    st.st_mode & 07777);
}

static void check_type(long step, const char *what, int fd, mode_t type, int opath)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	if (fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != type || !(fl & O_PATH) != !opath)
		say("FAIL: step %ld: %s: type %o, flags %#x", step, what, st.st_mode & S_IFMT, fl);
}

/* execveat of the memfd: 0 when the script ran */
static int exec_memfd(int fd)
{
	pid_t pid = fork();
	if (pid == 0) {
		char *args[] = {"true", 0}, *env[] = {0};
		syscall(SYS_execveat, fd, "", args, env, AT_EMPTY_PATH);
		_exit(errno);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: kinds DIR\n");
		return 2;
	}
	char dir[2048], p[4096], gone[4096], cwd[4096], want[4200], release[4096];
	if (!realpath(argv[1], dir))
		return 2;
	int sealed = memfd("sealed", MFD_ALLOW_SEALING, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
	int noexec = memfd("noexec", MFD_NOEXEC_SEAL, 0);
	int exec = memfd("exec", MFD_EXEC, 0);
	path_in(p, sizeof p, dir, "file");
	close(open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	int pfile = open(p, O_PATH | O_CLOEXEC);
	int pdir = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	path_in(p, sizeof p, dir, "link");
	if (symlink("file", p) != 0)
		return say("error: symlink: %s", strerror(errno)), 2;
	int plink = open(p, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	/* a symlink removed while open O_PATH */
	char gonelink[4096];
	path_in(gonelink, sizeof gonelink, dir, "gone-link");
	if (symlink("file", gonelink) != 0)
		return say("error: symlink: %s", strerror(errno)), 2;
	int pgone = open(gonelink, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pgone < 0 || unlink(gonelink) != 0)
		return say("error: the removed symlink: %s", strerror(errno)), 2;
	path_in(gone, sizeof gone, dir, "gone");
	path_in(cwd, sizeof cwd, dir, "cwd");
	if (mkdir(gone, 0750) != 0 || mkdir(cwd, 0700) != 0)
		return say("error: mkdir: %s", strerror(errno)), 2;
	int dgone = open(gone, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dcwd = open(cwd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfile < 0 || pdir < 0 || plink < 0 || dgone < 0 || dcwd < 0 || rmdir(gone) != 0 || chdir(cwd) != 0 || rmdir(cwd) != 0)
		return say("error: setting up: %s", strerror(errno)), 2;
	char top[4096], sub[4200];
	path_in(top, sizeof top, dir, "top");
	snprintf(sub, sizeof sub, "%s/sub", top);
	if (mkdir(top, 0700) != 0 || mkdir(sub, 0700) != 0)
		return say("error: mkdir: %s", strerror(errno)), 2;
	int dsub = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dsub < 0 || rmdir(sub) != 0 || rmdir(top) != 0)
		return say("error: removing %s: %s", sub, strerror(errno)), 2;
	static const char SCRIPT[] = "#!/bin/true\n";
	int script = memfd_create("script", 0); /* not close-on-exec: the interpreter reads the script by /dev/fd */
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", script);
	int script_ro = open(proc, O_RDONLY | O_CLOEXEC);
	if (script < 0 || script_ro < 0 || write(script, SCRIPT, sizeof SCRIPT - 1) != sizeof SCRIPT - 1 || exec_memfd(script) != 0)
		return say("error: the script memfd: %s", strerror(errno ? errno : exec_memfd(script))), 2;
	/* the program reading its own descriptors' state (lsof-like code, zdtm's /proc/self tests) */
	snprintf(proc, sizeof proc, "/proc/self/fdinfo/%d", pfile);
	int info = open(proc, O_RDONLY | O_CLOEXEC);
	if (info < 0)
		return say("error: %s: %s", proc, strerror(errno)), 2;
	path_in(release, sizeof release, dir, "release");
	say("kinds: set up");
	for (long step = 1;; step++) {
		pace_ms(30);
		check_memfd(step, "sealed memfd", sealed, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL, 0111);
		check_memfd(step, "MFD_NOEXEC_SEAL memfd", noexec, F_SEAL_EXEC, 0);
		check_memfd(step, "MFD_EXEC memfd", exec, F_SEAL_SEAL, 0111);
		check_link(step, "the sealed memfd", sealed, "/memfd:sealed (deleted)");
		check_type(step, "O_PATH file", pfile, S_IFREG, 1);
		check_type(step, "O_PATH directory", pdir, S_IFDIR, 1);
		check_type(step, "O_PATH symlink", plink, S_IFLNK, 1);
		check_type(step, "deleted directory", dgone, S_IFDIR, 0);
		snprintf(want, sizeof want, "%s/file", dir);
		check_link(step, "O_PATH file", pfile, want);
		snprintf(want, sizeof want, "%s/link", dir);
		check_link(step, "O_PATH symlink", plink, want);
		snprintf(want, sizeof want, "%s (deleted)", gone);
		check_link(step, "deleted directory", dgone, want);
		struct stat st;
		if (fstat(dgone, &st) != 0 || (st.st_mode & 07777) != 0750 || st.st_nlink != 0)
			say("FAIL: step %ld: deleted directory: mode %o, nlink %lu", step, st.st_mode & 07777, (unsigned long)st.st_nlink);
		char here[4096];
		if (!getcwd(here, sizeof here))
			snprintf(here, sizeof here, "(getcwd: %s)", strerror(errno));
		snprintf(want, sizeof want, "%s (deleted)", cwd);
		char link[4096];
		ssize_t n = readlink("/proc/self/cwd", link, sizeof link - 1);
		link[n > 0 ? n : 0] = 0;
		if (strcmp(link, want) || stat(".", &st) != 0 || st.st_nlink != 0)
			say("FAIL: step %ld: the working directory is %s, expected %s", step, link, want);
		struct stat sc;
		if (fstat(dcwd, &sc) != 0 || stat(".", &st) != 0 || sc.st_ino != st.st_ino || sc.st_dev != st.st_dev)
			say("FAIL: step %ld: the working directory and its descriptor are not one directory", step);
		if (fstat(dsub, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_nlink != 0)
			say("FAIL: step %ld: the directory removed with its parent: mode %o, nlink %lu", step, st.st_mode,
			    (unsigned long)st.st_nlink);
		/* past the script's text: it stays a script */
		long got = -1;
		if (pwrite(script, &step, sizeof step, 64) != sizeof step || pread(script_ro, &got, sizeof got, 64) != sizeof got ||
		    got != step)
			say("FAIL: step %ld: memfd: read %ld through its other description", step, got);
		char target[64] = "";
		ssize_t tl = readlinkat(pgone, "", target, sizeof target - 1);
		if (fstat(pgone, &st) != 0 || !S_ISLNK(st.st_mode) || tl != 4 || memcmp(target, "file", 4) ||
		    access(gonelink, F_OK) == 0)
			say("FAIL: step %ld: the removed symlink: mode %o, target %.*s", step, st.st_mode, (int)(tl > 0 ? tl : 0), target);
		char ib[512];
		ssize_t il = pread(info, ib, sizeof ib - 1, 0);
		unsigned long fl = 0;
		if (il > 0) {
			ib[il] = 0;
			const char *f = strstr(ib, "flags:");
			fl = f ? strtoul(f + 6, 0, 8) : 0;
		}
		if (il <= 0 || !(fl & O_PATH))
			say("FAIL: step %ld: its own /proc/self/fdinfo of the O_PATH file: %s", step, il <= 0 ? strerror(errno) : "no O_PATH in its flags");
		say("step %ld", step);
		if (access(release, F_OK) == 0)
			break;
	}
	char buf[64];
	if (pread(sealed, buf, sizeof buf, 0) != sizeof CONTENT || memcmp(buf, CONTENT, sizeof CONTENT) ||
	    pread(exec, buf, sizeof buf, 0) != sizeof CONTENT || memcmp(buf, CONTENT, sizeof CONTENT))
		say("FAIL: memfd content differs");
	if (ftruncate(sealed, 1) == 0 || write(sealed, "x", 1) == 1 || fchmod(noexec, 0777) == 0)
		say("FAIL: a seal no longer refuses");
	int err = exec_memfd(script);
	if (err)
		say("FAIL: execveat of the memfd: %s", strerror(err));
	say("kinds: memfd content and seals kept");
	say("kinds: done");
	return 0;
}
