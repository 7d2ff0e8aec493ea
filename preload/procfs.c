/* Reading /proc about the process itself: whole files, a descriptor's
 * link and fdinfo, and the files a non-dumpable process must be made
 * dumpable for. Raw system calls only: the checkpoint reads them in the
 * signal handler. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "ckrun.h"
#include "sys.h"

/* getpid() for a process whose own seccomp filter makes it fail: the PID
 * /proc/self names (sys.h ck_getpid). */
CK_HIDDEN long ck_pid_from_proc(void)
{
	char buf[24];
	uint64_t v;
	const char *p = buf;
	long n = CK_SYS4(SYS_readlinkat, AT_FDCWD, "/proc/self", buf, sizeof buf - 1);
	if (n <= 0)
		return -ESRCH;
	buf[n] = 0;
	return ck_parse_dec(&p, &v) && !*p ? (long)v : -ESRCH;
}

/* The whole file (at most cap - 1 bytes), NUL-terminated: its length, or
 * a negative errno. */
CK_HIDDEN long ck_read_file(const char *path, char *buf, size_t cap)
{
	int fd = (int)ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	size_t len = 0;
	for (;;) {
		long r = ck_read(fd, buf + len, cap - 1 - len);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == cap - 1)
			break;
	}
	ck_close(fd);
	buf[len] = 0;
	return (long)len;
}

CK_HIDDEN const char *ck_status_value(const char *text, const char *field)
{
	for (const char *p = text; *p;) {
		if (ck_starts_with(p, field)) {
			p += ck_strlen(field);
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return 0;
}

CK_HIDDEN int ck_status_field(const char *text, const char *field, int hex, uint64_t *out)
{
	const char *p = ck_status_value(text, field);
	return p && (hex ? ck_parse_hex(&p, out) : ck_parse_dec(&p, out));
}

/* A hex signal mask from a /proc/.../status line such as "SigPnd:". */
CK_HIDDEN uint64_t ck_read_pending_mask(const char *status_path, const char *field)
{
	char buf[4096];
	uint64_t v;
	if (ck_read_file(status_path, buf, sizeof buf) <= 0 || !ck_status_field(buf, field, 1, &v))
		return 0;
	return v;
}

/* A file or directory under /proc/PID of a process that has exited (st is
 * what the descriptor or working directory is): its link is marked
 * deleted, or its path names another file now (the PID was reused) or
 * none (st 0: not known, a dead process's directory may not be stat'ed
 * through the working directory). A restart opens such paths again, which
 * cannot give it back. */
CK_HIDDEN int ck_proc_entry_gone(const char *link, const struct ck_stat *st)
{
	struct ck_stat now;
	if (!ck_starts_with(link, "/proc/") || link[6] < '0' || link[6] > '9')
		return 0;
	if (ck_ends_with(link, " (deleted)"))
		return 1;
	if (CK_SYS4(SYS_newfstatat, AT_FDCWD, link, &now, 0) != 0)
		return 1;
	return st && (now.dev != st->dev || now.ino != st->ino);
}

/* /proc/self/DIR/FD into path[64]. */
CK_HIDDEN const char *ck_proc_fd_path(char *path, const char *dir, int fd)
{
	struct ck_str s;
	ck_str_init(&s, path, 64);
	ck_str_add(&s, "/proc/self/");
	ck_str_add(&s, dir);
	ck_str_add(&s, "/");
	ck_str_dec(&s, fd);
	return path;
}

CK_HIDDEN long ck_read_fdinfo(int fd, char *buf, size_t cap)
{
	char path[64];
	return ck_read_file(ck_proc_fd_path(path, "fdinfo", fd), buf, cap);
}

CK_HIDDEN long ck_fd_link(int fd, char *out, size_t cap)
{
	char path[64];
	long n = ck_readlinkat(AT_FDCWD, ck_proc_fd_path(path, "fd", fd), out, cap - 1);
	out[n > 0 ? n : 0] = 0;
	return n;
}

/* A process that is not dumpable (it changed its user ID, or asked for it)
 * cannot open its own /proc/self/pagemap or mem: they belong to root then,
 * mode 0400. It becomes dumpable for that one open and at once goes back:
 * the open file keeps working (the kernel checks access when it is
 * opened). The value 2 (fs.suid_dumpable) cannot be set again by a
 * program: such a process is not switched, the open fails and says so. */
CK_HIDDEN long ck_open_own_proc(const char *path)
{
	long was = ck_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	if (was != 0)
		return ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	ck_prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	long fd = ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	ck_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return fd;
}

CK_HIDDEN long ck_sock_walk_open(struct ck_sock_walk *w)
{
	w->len = w->off = 0;
	w->dfd = (int)ck_openat(AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	return w->dfd < 0 ? w->dfd : 0;
}

CK_HIDDEN int ck_sock_walk_next(struct ck_sock_walk *w, struct ck_stat *st)
{
	for (;;) {
		if (w->off >= w->len) {
			w->len = ck_getdents64(w->dfd, w->dents, sizeof w->dents);
			w->off = 0;
			if (w->len <= 0)
				return -1;
		}
		struct ck_dirent64 *d = (void *)(w->dents + w->off);
		w->off += d->reclen;
		const char *p = d->name;
		uint64_t fd;
		if (ck_parse_dec(&p, &fd) && !*p && (int)fd != w->dfd && ck_fstat((int)fd, st) == 0 &&
		    (st->mode & S_IFMT) == S_IFSOCK)
			return (int)fd;
	}
}

CK_HIDDEN void ck_sock_walk_close(struct ck_sock_walk *w)
{
	ck_close(w->dfd);
}

/* The parent of pid, from /proc/PID/stat; -1 when it cannot be read. */
CK_HIDDEN const char *ck_stat_field(const char *dir, int id, char *buf, size_t cap, int field)
{
	char path[64];
	struct ck_str s;
	ck_str_init(&s, path, sizeof path);
	ck_str_add(&s, dir);
	ck_str_dec(&s, id);
	ck_str_add(&s, "/stat");
	long n = ck_read_file(path, buf, cap);
	const char *q = 0;
	for (long i = 0; i < n; i++)
		if (buf[i] == ')') /* the name may hold ')' itself: the last one ends it */
			q = buf + i + 1;
	for (int f = 3; q && *q && f < field; f++) {
		while (*q == ' ')
			q++;
		while (*q && *q != ' ')
			q++;
	}
	while (q && *q == ' ')
		q++;
	return q && *q ? q : 0;
}

CK_HIDDEN int ck_parent_of(int pid)
{
	char buf[512];
	const char *p = ck_stat_field("/proc/", pid, buf, sizeof buf, 4);
	uint64_t v;
	return p && ck_parse_dec(&p, &v) ? (int)v : -1;
}

/* The coordinator's PID as this process sees it (0: outside our PID
 * namespace, or not connected). */
CK_HIDDEN int ck_coordinator_pid(void)
{
	struct ucred cr;
	unsigned len = sizeof cr;
	if (ck_session.ctl_fd < 0 || ck_getsockopt(ck_session.ctl_fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
		return 0;
	return cr.pid;
}

/* Whether pid descends from the coordinator: a process of the session
 * (ckrun is every session process's ancestor or subreaper). */
CK_HIDDEN int ck_in_session(int pid, int coordinator)
{
	for (int i = 0; i < 64 /* ancestors at most */ && pid > 1; i++) {
		if (pid == coordinator)
			return 1;
		pid = ck_parent_of(pid);
	}
	return 0;
}
