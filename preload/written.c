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
#include <time.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "ckrun.h"
#include "sys.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

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

/* Checkpoints and restores this process has been through: a request to
 * keep a file made across one is made again (for the newer generation). */
static unsigned checkpoints_seen;

/* What ck_written_before learnt, for ck_written_note: bit 0, the open may
 * make the file; bit 1, ckrun kept it; above, checkpoints_seen then. */
#define BEFORE_MADE 1
#define BEFORE_KEPT 2
#define BEFORE_SEEN(at) ((int)(((at) & 0xfffffffu) << 2))

/* After each checkpoint (and restore): ckrun forgets a file that is gone
 * at a checkpoint, and a file made again later at that path may get the
 * same inode number; it must be told again. */
CK_HIDDEN void ck_written_forget(void)
{
	for (int i = 0; i < TOLD_SLOTS; i++)
		__atomic_store_n(&told[i], 0, __ATOMIC_RELAXED);
	__atomic_add_fetch(&checkpoints_seen, 1, __ATOMIC_SEQ_CST);
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

/* One system call for the line (head + path): lines of threads and
 * processes sharing the connection never interleave, and a forked child
 * connects once. A line that cannot be sent is not: the file is told at
 * its next open. */
static int send_written_line(const char *head, size_t hlen, const char *path, size_t plen)
{
	struct iovec iov[3] = {{(void *)head, hlen}, {(void *)path, plen}, {(void *)"\n", 1}};
	long want = (long)(hlen + plen + 1), sent;
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 3};
	if (ck_session.self_pid == (int)ck_getpid())
		return send_on_own_connection(&msg, want);
	int fd = ck_session_connect(ck_session.sock);
	if (fd < 0)
		return 0;
	sent = CK_SYS3(SYS_sendmsg, fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	ck_close(fd);
	return sent == want;
}

/* After err on a connection to ckrun: whether ckrun is gone, which only
 * a new connection no one takes tells (ckrun also closes a connection it
 * refuses). */
static int ckrun_gone(long err)
{
	if (err != -EPIPE && err != -ECONNRESET && err != -ENOTCONN && err != -ECONNREFUSED && err != 0)
		return 0;
	int fd = ck_session_connect(ck_session.sock);
	if (fd >= 0)
		ck_close(fd);
	return fd == -ECONNREFUSED;
}

/* ckrun is gone (killed, crashed): the family ends with it an instant
 * later (checkpoint.c end_with_session), and what this process changes
 * meanwhile no restart could undo: no ckrun notes it. So it ends now,
 * before the change, with what it forked; a file it has just made (with
 * O_CREAT on no file, or O_EXCL: its own) is removed first, as if it had
 * ended before it made it. */
static void remove_made(const char *path)
{
	if (CK_SYS3(SYS_unlinkat, AT_FDCWD, path, 0) == -EISDIR)
		CK_SYS3(SYS_unlinkat, AT_FDCWD, path, AT_REMOVEDIR);
}

static void end_with_ckrun(const char *made_path)
{
	if (made_path)
		remove_made(made_path);
	ck_kill_descendants();
	ck_kill((int)ck_getpid(), SIGKILL);
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

/* "WORD DEV INO " (the path follows). */
static size_t line_head(char *buf, size_t size, const char *word, const struct stat *st)
{
	struct ck_str m;
	ck_str_init(&m, buf, size);
	ck_str_add(&m, word);
	ck_str_udec(&m, (uint64_t)st->st_dev);
	ck_str_add(&m, " ");
	ck_str_udec(&m, (uint64_t)st->st_ino);
	ck_str_add(&m, " ");
	return m.len;
}

/* Files this process made that ckrun has not noted yet (a thread waits
 * for its answer): removed if the family ends meanwhile because ckrun died
 * (ck_written_abandon), as if the process had ended before it made them. */
#define PENDING_SLOTS 8
static char pending_path[PENDING_SLOTS][4096];
static int pending_used[PENDING_SLOTS];

/* A slot of used[0..n) taken (-1 while its owner fills it, then
 * slot_filled: 1, what a signal handler may read), or -1 when all are. */
static int take_slot(int *used, int n)
{
	for (int i = 0; i < n; i++) {
		int free_slot = 0;
		if (__atomic_compare_exchange_n(&used[i], &free_slot, -1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return i;
	}
	return -1;
}

static void slot_filled(int *used, int slot)
{
	__atomic_store_n(&used[slot], 1, __ATOMIC_SEQ_CST);
}

static void release_slot(int *used, int slot)
{
	if (slot >= 0)
		__atomic_store_n(&used[slot], 0, __ATOMIC_SEQ_CST);
}

static int claim_pending(const char *path, long n)
{
	int i = take_slot(pending_used, PENDING_SLOTS);
	if (i < 0)
		return -1;
	ck_memcpy(pending_path[i], path, (size_t)n);
	pending_path[i][n] = 0;
	slot_filled(pending_used, i);
	return i;
}

static void release_pending(int slot)
{
	release_slot(pending_used, slot);
}

/* Files libc's mkstemp family is making right now: the template, whose
 * name libc fills in before each open, and the time (coarse, as file
 * times are) before the call. The family may end in the instant between
 * the open and claim_pending: the file is then removed if the template
 * names an empty file of this user born since, which only that open can
 * have made (a name libc tried and found taken is older). */
#define MAKING_SLOTS 8
static char *making_tmpl[MAKING_SLOTS];
static int64_t making_since[MAKING_SLOTS];
static int making_used[MAKING_SLOTS];

CK_HIDDEN int ck_written_making(char *tmpl)
{
	if (!tmpl || !ck_written_made())
		return -1;
	struct timespec now;
	if (CK_SYS2(SYS_clock_gettime, CLOCK_REALTIME_COARSE, &now) != 0)
		return -1;
	int i = take_slot(making_used, MAKING_SLOTS);
	if (i < 0)
		return -1;
	making_tmpl[i] = tmpl;
	making_since[i] = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	slot_filled(making_used, i);
	return i;
}

CK_HIDDEN void ck_written_making_done(int slot)
{
	release_slot(making_used, slot);
}

static void remove_if_just_made(const char *path, int64_t since)
{
	struct statx sx;
	if (CK_SYS5(SYS_statx, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &sx) != 0 ||
	    !(sx.stx_mask & STATX_BTIME) || !S_ISREG(sx.stx_mode) || sx.stx_size != 0 ||
	    sx.stx_uid != (uint32_t)CK_SYS0(SYS_geteuid) ||
	    (int64_t)sx.stx_btime.tv_sec * 1000000000 + sx.stx_btime.tv_nsec < since)
		return;
	CK_SYS3(SYS_unlinkat, AT_FDCWD, path, 0);
}

CK_HIDDEN void ck_written_abandon(void)
{
	for (int i = 0; i < MAKING_SLOTS; i++)
		if (__atomic_load_n(&making_used[i], __ATOMIC_SEQ_CST) == 1)
			remove_if_just_made(making_tmpl[i], making_since[i]);
	for (int i = 0; i < PENDING_SLOTS; i++)
		if (__atomic_load_n(&pending_used[i], __ATOMIC_SEQ_CST) == 1)
			remove_made(pending_path[i]);
}

static void keep_again_if_passed(int fd, int flags, int before);
enum keep_answer { KEEP_FAILED, KEEP_DONE, KEEP_NOTHING, KEEP_GONE };
static enum keep_answer ask_ckrun(const char *head, size_t hlen, const char *path, size_t plen);
static enum keep_answer ask_ckrun_iov(struct iovec *iov, int n);

/* fd was just opened with flags by the program; before: what
 * ck_written_before learnt (the path had no file: made). */
CK_HIDDEN void ck_written_note(int fd, int flags, int before)
{
	if (fd < 0 || !opens_for_writing(flags) || !ck_session.active || !ck_session.sock[0] ||
	    (flags & __O_TMPFILE) == __O_TMPFILE)
		return;
	keep_again_if_passed(fd, flags, before);
	int made = before & BEFORE_MADE;
	struct stat st;
	if (ck_fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink == 0)
		return;
	char how = how_written(flags);
	uint64_t key = told_key(&st, how);
	unsigned slot = (unsigned)(st.st_ino % TOLD_SLOTS);
	if (!made && __atomic_load_n(&told[slot], __ATOMIC_RELAXED) == key)
		return;
	char path[4096];
	long n = ck_fd_link(fd, path, sizeof path);
	/* a path with a line end in it cannot be told (the protocol is lines) */
	if (n <= 0 || n >= (long)sizeof path - 1 || path[0] != '/' || has_line_end(path, n))
		return;
	/* "madeq DEV INO PATH" first, for a file made since the last
	 * checkpoint, answered once ckrun noted it: a restart from that
	 * checkpoint removes it while it is still that very file
	 * (src/files-late.ts). The program goes on only then: a ckrun killed
	 * before it noted the file never answers, and the file goes with the
	 * process (end_with_ckrun). */
	if (made && st.st_nlink == 1) {
		char made_head[96];
		int slot = claim_pending(path, n);
		if (ask_ckrun(made_head, line_head(made_head, sizeof made_head, "madeq ", &st), path, (size_t)n) == KEEP_GONE)
			end_with_ckrun(path);
		release_pending(slot);
	}
	char wrote_head[96];
	char word[] = {'w', 'r', 'o', 't', 'e', ' ', how, ' ', 0};
	if (!send_written_line(wrote_head, line_head(wrote_head, sizeof wrote_head, word, &st), path, (size_t)n))
		return;
	__atomic_store_n(&told[slot], key, __ATOMIC_RELAXED);
}

/* ---- before the first open for writing after a checkpoint ----
 *
 * A file the program never had open for writing before the checkpoint is
 * in no generation: a job that first appends to it, or rewrites it in
 * place, after the checkpoint would find those writes still there after a
 * restart, and make them again. So before such an open of an existing
 * regular file the shim asks ckrun to keep the file as it is ("keep"),
 * which is as it was at the last checkpoint (no process of the session
 * has written it since: each would have asked first), and opens it only
 * once ckrun answers "kept" (or "kept none": no checkpoint yet).
 *
 * The request has a connection of its own, which a checkpoint leaves out
 * of the image like the session's (ck_is_session_fd). A restore resumes
 * the waiting thread with that descriptor gone: it asks again, as it
 * does after a checkpoint taken while it waited (for the new one). */

#define KEEP_WAIT_MS 100
#define KEEP_WAITS 1200 /* two minutes: ckrun copies the file before it answers */
/* ckrun had no checkpoint yet when checkpoints_seen was this (+1; 0:
 * not known): no request until that changes. A forked child inherits it:
 * a checkpoint that comes after the fork saves the child too, and counts
 * in its own copy. */
static unsigned nothing_kept_at;

/* In the restored process: a request that was under way is asked again. */
CK_HIDDEN void ck_written_restored(void)
{
	ck_session_requests_gone();
	nothing_kept_at = 0;
}

/* Sends the line and waits for ckrun's one-line answer. */
static enum keep_answer ask_ckrun(const char *head, size_t hlen, const char *path, size_t plen)
{
	struct iovec iov[3] = {{(void *)head, hlen}, {(void *)path, plen}, {(void *)"\n", 1}};
	return ask_ckrun_iov(iov, 3);
}

/* The line is iov[0..n), its end included. */
static enum keep_answer ask_ckrun_iov(struct iovec *iov, int n_iov)
{
	int fd = ck_session_connect(ck_session.sock);
	if (fd < 0)
		return fd == -ECONNREFUSED ? KEEP_GONE : KEEP_FAILED;
	int slot = ck_session_request_begin(fd);
	if (slot < 0) {
		ck_close(fd);
		return KEEP_FAILED;
	}
	long want = 0;
	for (int i = 0; i < n_iov; i++)
		want += (long)iov[i].iov_len;
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
	enum keep_answer a = KEEP_FAILED;
	unsigned at = __atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST);
	long sent = CK_SYS3(SYS_sendmsg, fd, &msg, MSG_NOSIGNAL);
	if (sent < 0 && ckrun_gone(sent))
		a = KEEP_GONE;
	if (sent == want) {
		char buf[32];
		for (int w = 0; w < KEEP_WAITS && __atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST) == at; w++) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (CK_SYS3(SYS_poll, &p, 1, KEEP_WAIT_MS) <= 0)
				continue;
			if (__atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST) != at)
				break;
			long n = ck_recvfrom(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
			if (n == -EAGAIN || n == -EINTR)
				continue;
			if (n > 0 && n >= 10 && buf[0] == 'k' && buf[5] == ' ' && buf[6] == 'n')
				a = KEEP_NOTHING; /* "kept none" */
			else if (n > 0)
				a = KEEP_DONE;
			else if ((n == 0 || n < 0) && ckrun_gone(n))
				a = KEEP_GONE; /* ckrun died before it answered */
			break;
		}
	}
	ck_session_request_end(slot, fd);
	return a;
}

/* One request for the file path names now; 1 when it was asked (or need
 * not be), 0 when ckrun has no checkpoint yet, 2 when there is no such
 * file, -1 when not asked. */
static int keep_once(int dirfd, const char *path, int flags)
{
	struct stat st;
	long e = CK_SYS4(SYS_newfstatat, dirfd, path, &st, (flags & O_NOFOLLOW) ? AT_SYMLINK_NOFOLLOW : 0);
	if (e == -ENOENT)
		return 2; /* not there: the open makes it, or fails */
	if (e != 0 || !S_ISREG(st.st_mode) || st.st_nlink == 0)
		return -1; /* not a file ckrun keeps */
	char how = how_written(flags);
	if (__atomic_load_n(&told[st.st_ino % TOLD_SLOTS], __ATOMIC_RELAXED) == told_key(&st, how))
		return 1; /* opened this way since the checkpoint: asked then */
	/* its absolute path, as the kernel resolves it: the same file's */
	long pf = ck_openat(dirfd, path, O_PATH | O_CLOEXEC | (flags & O_NOFOLLOW), 0);
	if (pf < 0)
		return -1;
	struct stat again;
	char real[4096];
	long n = -1;
	if (ck_fstat((int)pf, &again) == 0 && again.st_dev == st.st_dev && again.st_ino == st.st_ino)
		n = ck_fd_link((int)pf, real, sizeof real);
	ck_close((int)pf);
	if (n <= 0 || n >= (long)sizeof real - 1 || real[0] != '/' || has_line_end(real, n))
		return -1;
	if (ck_starts_with(real, "/proc/") || ck_starts_with(real, "/sys/") || ck_starts_with(real, "/dev/"))
		return 1; /* never the program's data (src/files.ts) */
	char head[96], word[] = {'k', 'e', 'e', 'p', ' ', how, ' ', 0};
	enum keep_answer a = ask_ckrun(head, line_head(head, sizeof head, word, &st), real, (size_t)n);
	if (a == KEEP_GONE)
		end_with_ckrun(0); /* before the open changes the file */
	return a == KEEP_NOTHING ? 0 : a == KEEP_DONE ? 1 : -1;
}

static int keep_rounds(int dirfd, const char *path, int flags)
{
	for (int round = 0; round < 4; round++) {
		unsigned at = __atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST);
		int r = keep_once(dirfd, path, flags);
		if (__atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST) != at)
			continue; /* a checkpoint or restore came meanwhile: for that one */
		if (r == 0)
			__atomic_store_n(&nothing_kept_at, at + 1, __ATOMIC_RELAXED);
		return BEFORE_SEEN(at) | (r == 1 ? BEFORE_KEPT : 0) | (r == 2 && (flags & O_CREAT) ? BEFORE_MADE : 0);
	}
	return 0;
}

/* path is about to be opened with flags by the program (relative to
 * dirfd); what was learnt (BEFORE_*) goes to ck_written_note. */
CK_HIDDEN int ck_written_before(int dirfd, const char *path, int flags)
{
	if (!path || !opens_for_writing(flags) || !ck_session.active || !ck_session.sock[0] ||
	    (flags & __O_TMPFILE) == __O_TMPFILE || ck_session.ctl_fd < 0)
		return 0;
	if (__atomic_load_n(&nothing_kept_at, __ATOMIC_RELAXED) == __atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST) + 1)
		return 0;
	return keep_rounds(dirfd, path, flags);
}

CK_HIDDEN int ck_written_made(void)
{
	if (!ck_session.active || !ck_session.sock[0] || ck_session.ctl_fd < 0)
		return 0;
	unsigned at = __atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&nothing_kept_at, __ATOMIC_RELAXED) == at + 1)
		return 0;
	return BEFORE_SEEN(at) | BEFORE_MADE;
}

/* Never the program's data (src/files.ts): not told. */
static int not_program_data(const char *path)
{
	return ck_starts_with(path, "/proc/") || ck_starts_with(path, "/sys/") || ck_starts_with(path, "/dev/");
}

/* The absolute path a rename gives its entry: the directory's as the
 * kernel resolves it, and the last component; 0 when it cannot be told. */
static long new_name_path(int dirfd, const char *to, char *out, size_t cap)
{
	size_t len = ck_strlen(to), end = len, start;
	while (end > 1 && to[end - 1] == '/')
		end--;
	start = end;
	while (start > 0 && to[start - 1] != '/')
		start--;
	size_t last = end - start;
	if (last == 0 || (last == 1 && to[start] == '.') || (last == 2 && to[start] == '.' && to[start + 1] == '.'))
		return 0;
	/* the directory's part first, in out (a thread's stack may be small) */
	if (start >= cap)
		return 0;
	if (start == 0) {
		out[0] = '.';
		out[1] = 0;
	} else {
		ck_memcpy(out, to, start);
		out[start] = 0;
	}
	long pd = ck_openat(dirfd, out, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	if (pd < 0)
		return 0;
	long n = ck_fd_link((int)pd, out, cap);
	ck_close((int)pd);
	if (n <= 0 || out[0] != '/' || (size_t)n + 1 + last >= cap)
		return 0;
	if (n > 1)
		out[n++] = '/';
	ck_memcpy(out + n, to + start, last);
	n += (long)last;
	out[n] = 0;
	return n;
}

/* "moveq DEV INO FROM\0TO" before a rename, answered once ckrun noted it:
 * a restart from the newest checkpoint (and the one before) moves the
 * entry at TO back to FROM while TO is still that very entry. Asked
 * before the rename, so that the note is only ever in checkpoints taken
 * before it; a checkpoint during the request: asked again for that one. A
 * checkpoint between the answer and the rename goes without the note (the
 * rename may have come before it). ckrun notes only an entry born before
 * the checkpoint: one born after is told as made, at its new name. */
static void tell_move(struct ck_moving *mv, const char *word, int fromdir, const char *from, int follow, int todir,
		      const char *to)
{
	for (int round = 0; round < 4; round++) {
		unsigned at = __atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST);
		struct stat st;
		char src[4096], dst[4096], head[96];
		long pf = ck_openat(fromdir, from, O_PATH | (follow ? 0 : O_NOFOLLOW) | O_CLOEXEC, 0);
		if (pf < 0)
			return;
		long n = ck_fstat((int)pf, &st) == 0 ? ck_fd_link((int)pf, src, sizeof src) : -1;
		ck_close((int)pf);
		if (n <= 0 || n >= (long)sizeof src - 1 || src[0] != '/' || has_line_end(src, n))
			return;
		long m = new_name_path(todir, to, dst, sizeof dst);
		if (m <= 0 || has_line_end(dst, m) || ck_streq(src, dst) || not_program_data(src) || not_program_data(dst))
			return;
		struct iovec iov[5] = {{head, line_head(head, sizeof head, word, &st)},
				       {src, (size_t)n},
				       {(void *)"", 1},
				       {dst, (size_t)m},
				       {(void *)"\n", 1}};
		enum keep_answer a = ask_ckrun_iov(iov, 5);
		if (a == KEEP_GONE)
			end_with_ckrun(0); /* before the rename */
		if (__atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST) == at) {
			*mv = (struct ck_moving){1, at, (uint64_t)st.st_dev, (uint64_t)st.st_ino};
			return;
		}
	}
}

/* A checkpoint that came between ckrun's answer and the call itself has
 * no note of it, so a restart from it leaves the entry at its new name,
 * and the restored process, taken back to before the call, makes it
 * again: the rename finds no entry at the old name (ENOENT), the link a
 * name that is there (EEXIST). When a checkpoint or restore came since the
 * answer and the new name holds the very entry, the call was done: it
 * succeeds (1). */
CK_HIDDEN int ck_written_done_before(const struct ck_moving *mv, int todir, const char *to, int err)
{
	struct stat st;
	if (!mv->told || (err != ENOENT && err != EEXIST) ||
	    __atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST) == mv->at ||
	    CK_SYS4(SYS_newfstatat, todir, to, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return 0;
	return (uint64_t)st.st_dev == mv->dev && (uint64_t)st.st_ino == mv->ino;
}

/* The file the rename replaces and the one it moves are kept as files the
 * program rewrites whole ('t': up to 8 MiB; a restart puts them back at
 * their names): copying a large file the program moves into place would
 * stall it. ckrun keeps neither when it was made after the checkpoint (a
 * temporary file renamed over the real one: a restart removes it anyway).
 * Then the move is told (tell_move). */
CK_HIDDEN int ck_written_moving(struct ck_moving *mv, int fromdir, const char *from, int todir, const char *to,
				unsigned flags)
{
	mv->told = 0;
	if (!from || !to)
		return 0;
	ck_written_before(todir, to, O_WRONLY | O_TRUNC);
	ck_written_before(fromdir, from, O_WRONLY | O_TRUNC);
	int before = ck_written_made();
	/* an exchange moves two entries, which a restart does not swap back */
	if (before && !(flags & RENAME_EXCHANGE))
		tell_move(mv, "moveq ", fromdir, from, 0, todir, to);
	return ck_written_made();
}

/* Before link(): a new name for an existing entry is told like a move
 * ("linkq"), and a restart from an earlier checkpoint removes that name
 * while another still holds the entry. Only a name that is free now: a
 * link that fails on a name that is there must not have it removed. */
CK_HIDDEN int ck_written_linking(struct ck_moving *mv, int fromdir, const char *from, int todir, const char *to,
				 int flags)
{
	int before = ck_written_made();
	mv->told = 0;
	struct stat st;
	if (!before || !from || !to || !from[0] || (flags & AT_EMPTY_PATH) ||
	    CK_SYS4(SYS_newfstatat, todir, to, &st, AT_SYMLINK_NOFOLLOW) != -ENOENT)
		return before;
	tell_move(mv, "linkq ", fromdir, from, flags & AT_SYMLINK_FOLLOW, todir, to);
	return ck_written_made();
}

/* A name made since the checkpoint (a directory, symbolic link, hard
 * link, FIFO, device node, or an entry a rename moved there) is told as
 * made, like a file an open made, and the program goes on once ckrun
 * noted it. ckrun notes only an entry born after the checkpoint (an old
 * file moved or linked to a new name is not: it is not ckrun's to remove)
 * and a restart removes it while the name still shows that very entry.
 * If ckrun is gone, a new name is taken back before the process ends; an
 * entry moved there stays, as nothing else holds it. */
static void tell_named(int dirfd, const char *path, int before, int take_back)
{
	if (!(before & BEFORE_MADE) || !path || !ck_session.active || !ck_session.sock[0])
		return;
	long pf = ck_openat(dirfd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
	if (pf < 0)
		return;
	struct stat st;
	char real[4096];
	long n = -1;
	if (ck_fstat((int)pf, &st) == 0)
		n = ck_fd_link((int)pf, real, sizeof real);
	ck_close((int)pf);
	if (n <= 0 || n >= (long)sizeof real - 1 || real[0] != '/' || has_line_end(real, n))
		return;
	if (not_program_data(real))
		return;
	char head[96];
	int slot = take_back ? claim_pending(real, n) : -1;
	if (ask_ckrun(head, line_head(head, sizeof head, "madeq ", &st), real, (size_t)n) == KEEP_GONE)
		end_with_ckrun(take_back ? real : 0);
	release_pending(slot);
}

CK_HIDDEN void ck_written_named(int dirfd, const char *path, int before)
{
	tell_named(dirfd, path, before, 1);
}

CK_HIDDEN void ck_written_moved(int dirfd, const char *path, int before)
{
	tell_named(dirfd, path, before, 0);
}

/* A checkpoint came between ckrun's keep and the open itself: nothing is
 * written yet (but what O_TRUNC cut, a file written whole again), so the
 * file is asked for again, for that checkpoint. */
static void keep_again_if_passed(int fd, int flags, int before)
{
	if (!(before & BEFORE_KEPT) || (flags & O_TRUNC) ||
	    BEFORE_SEEN(__atomic_load_n(&checkpoints_seen, __ATOMIC_SEQ_CST)) == (before & ~3))
		return;
	char proc[64];
	keep_rounds(AT_FDCWD, ck_proc_fd_path(proc, "fd", fd), flags & ~O_CREAT);
}
