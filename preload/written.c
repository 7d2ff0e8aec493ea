/* Files the program opens for writing, told to ckrun as they are opened.
 *
 * A checkpoint rolls back the files the program writes (src/files.ts). It
 * finds the ones still open or mapped in /proc; a file the program opened,
 * wrote and closed before the checkpoint (a job that appends a line to its
 * log with open(..., "a") in every iteration, a shell loop's `>> log`) is
 * open nowhere at that instant, yet the program will write it again after
 * the checkpoint: a restart that left it as it is would keep those lines
 * and the restarted program would write them a second time. So every open
 * of a regular file for writing is told to ckrun ("wrote"), which keeps
 * the file among those it saves at each checkpoint while the file exists.
 *
 * Raw system calls only: open() is async-signal-safe, and a program may
 * open a file in a signal handler or in a vfork child. A process with a
 * connection of its own sends the line on it (ahead of any answer to a
 * later checkpoint); a forked child that has none yet connects once for
 * the line. Each file is told once per process between checkpoints. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "ckrun.h"
#include "sys.h"

#define TOLD_SLOTS 64
/* (dev, ino, how) of files told since the last checkpoint, by ino; a
 * lost race only tells a file twice */
static uint64_t told[TOLD_SLOTS];

static uint64_t told_key(const struct stat *st, char how)
{
	return ((uint64_t)st->st_ino * 4 + (uint64_t)(how == 'a' ? 1 : how == 't' ? 2 : 3)) ^ ((uint64_t)st->st_dev << 44);
}

/* 'a': appends (O_APPEND); 't': rewrites it from the start (O_TRUNC); 'w':
 * writes it in place, where it may read what is there first. ckrun keeps
 * a file only truncated small enough: the program writes it whole again. */
static char how_written(int flags)
{
	if (flags & O_APPEND)
		return 'a';
	return (flags & O_TRUNC) ? 't' : 'w';
}

/* After each checkpoint (and restore): ckrun forgets a file that is gone
 * at a checkpoint, and a file made again later at that path may get the
 * same inode number; it must be told again. */
CK_HIDDEN void ck_written_forget(void)
{
	for (int i = 0; i < TOLD_SLOTS; i++)
		__atomic_store_n(&told[i], 0, __ATOMIC_RELAXED);
}

#define SEND_TRIES 100
#define SEND_WAIT_MS 20

/* On the process's own connection. A burst of opens can fill it faster
 * than ckrun reads (each small message takes a whole buffer's worth of
 * accounting): wait for room, at most about 2 s. The send itself never
 * blocks: a call the kernel would restart after a checkpoint's signal
 * would be restarted, after a restore, on a descriptor number that is no
 * longer the connection; a wait is never restarted (EINTR), and the
 * connection's number is read again after it. */
static int send_on_own_connection(struct msghdr *msg, long want)
{
	for (int tries = 0; tries < SEND_TRIES; tries++) {
		int fd = ck_session.ctl_fd;
		if (fd < 0) /* refused, or ckrun is gone */
			return 0;
		long r = CK_SYS3(SYS_sendmsg, fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r != -EAGAIN)
			return r == want;
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		CK_SYS3(SYS_poll, &p, 1, SEND_WAIT_MS);
	}
	return 0;
}

/* One system call per line: lines of threads and processes sharing the
 * connection never interleave. A line that cannot be sent is not: the
 * file is told at its next open. */
static int send_written_line(const char *head, size_t hlen, const char *path, size_t plen)
{
	struct iovec iov[3] = {{(void *)head, hlen}, {(void *)path, plen}, {(void *)"\n", 1}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 3};
	long want = (long)(hlen + plen + 1), sent;
	if (ck_session.self_pid == (int)ck_getpid())
		return send_on_own_connection(&msg, want);
	int fd = ck_session_connect(ck_session.sock);
	if (fd < 0)
		return 0;
	sent = CK_SYS3(SYS_sendmsg, fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	ck_close(fd);
	return sent == want;
}

static int has_line_end(const char *s, long n)
{
	for (long i = 0; i < n; i++)
		if (s[i] == '\n')
			return 1;
	return 0;
}

static int opens_for_writing(int flags)
{
	if (flags & O_PATH) /* the kernel ignores the access mode: nothing can be written through it */
		return 0;
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* fd was just opened with flags by the program. */
CK_HIDDEN void ck_written_note(int fd, int flags)
{
	if (fd < 0 || !opens_for_writing(flags) || !ck_session.active || !ck_session.sock[0] ||
	    (flags & __O_TMPFILE) == __O_TMPFILE)
		return;
	struct stat st;
	if (ck_fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink == 0)
		return;
	char how = how_written(flags);
	uint64_t key = told_key(&st, how);
	unsigned slot = (unsigned)(st.st_ino % TOLD_SLOTS);
	if (__atomic_load_n(&told[slot], __ATOMIC_RELAXED) == key)
		return;
	char proc[32], path[4096];
	struct ck_str p;
	ck_str_init(&p, proc, sizeof proc);
	ck_str_add(&p, "/proc/self/fd/");
	ck_str_dec(&p, fd);
	long n = ck_readlinkat(AT_FDCWD, proc, path, sizeof path);
	/* a path with a line end in it cannot be told (the protocol is lines) */
	if (n <= 0 || n >= (long)sizeof path || path[0] != '/' || has_line_end(path, n))
		return;
	char head[96];
	struct ck_str m;
	ck_str_init(&m, head, sizeof head);
	char word[] = {'w', 'r', 'o', 't', 'e', ' ', how, ' ', 0};
	ck_str_add(&m, word);
	ck_str_udec(&m, (uint64_t)st.st_dev);
	ck_str_add(&m, " ");
	ck_str_udec(&m, (uint64_t)st.st_ino);
	ck_str_add(&m, " ");
	if (!send_written_line(head, m.len, path, (size_t)n))
		return;
	__atomic_store_n(&told[slot], key, __ATOMIC_RELAXED);
}
