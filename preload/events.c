/* Event descriptors: eventfd (counter and flags), epoll (the whole
 * interest list: events, flags such as EPOLLET and EPOLLONESHOT, and the
 * user data), timerfd (clock, remaining time, interval, expirations not
 * yet read), signalfd (its mask), inotify (every watch, with its watch
 * descriptor number) and pidfd (the process it refers to). Readiness is
 * not saved: the kernel derives it again from the watched descriptors,
 * timers and queues when they are set up again. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <stdio.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fdkind.h"
#include "wire.h"
#include "sys.h"

/* Each of them is an anonymous inode, known by its link's name. */
static int eventfd_detect(const struct ck_fd *f)
{
	return ck_streq(f->link, "anon_inode:[eventfd]");
}

static int epoll_detect(const struct ck_fd *f)
{
	return ck_streq(f->link, "anon_inode:[eventpoll]");
}

static int timerfd_detect(const struct ck_fd *f)
{
	return ck_streq(f->link, "anon_inode:[timerfd]");
}

static int signalfd_detect(const struct ck_fd *f)
{
	return ck_streq(f->link, "anon_inode:[signalfd]");
}

static int inotify_detect(const struct ck_fd *f)
{
	return ck_streq(f->link, "anon_inode:inotify");
}

static int pidfd_detect(const struct ck_fd *f)
{
	return ck_streq(f->link, "anon_inode:[pidfd]");
}

static const char *find_field(const char *text, const char *field)
{
	size_t n = ck_strlen(field);
	for (const char *p = text; *p;) {
		if (ck_strneq(p, field, n))
			return p + n;
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return 0;
}

static const char *skip_spaces(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static void eventfd_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	char buf[1024];
	struct cb_enc *e = &w->meta;
	uint64_t count = 0, sem = 0;
	if (ck_read_fdinfo(f->fd, buf, sizeof buf) <= 0) {
		ck_writer_fail(w, -EIO, "cannot read an eventfd's state from /proc/self/fdinfo");
		return;
	}
	const char *p = find_field(buf, "eventfd-count:");
	if (p) {
		p = skip_spaces(p);
		ck_parse_hex(&p, &count);
	}
	p = find_field(buf, "eventfd-semaphore:");
	if (p) {
		p = skip_spaces(p);
		ck_parse_dec(&p, &sem);
	}
	cb_text(e, "eventfd");
	cb_map(e, 2);
	cb_kv_uint(e, "count", count);
	cb_kv_bool(e, "semaphore", sem != 0);
}

/* Fails the checkpoint with the descriptor named in the detail. */
static void fail_fd(struct ck_writer *w, long err, const char *what, int fd, const char *detail)
{
	struct ck_str m;
	ck_writer_fail(w, err, what);
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, fd);
	ck_str_add(&m, ": ");
	ck_str_add(&m, detail);
}

/* The whole of /proc/self/fdinfo/FD in memory mapped for it, however
 * long (a busy server's epoll lists thousands of entries): its length,
 * with *buf and *cap for ck_munmap, or a negative errno. */
static long read_fdinfo_whole(int fd, char **buf, size_t *cap)
{
	char path[64];
	long pfd = ck_openat(AT_FDCWD, ck_proc_fd_path(path, "fdinfo", fd), O_RDONLY | O_CLOEXEC, 0);
	if (pfd < 0)
		return pfd;
	size_t len = 0, size = 64 * 1024;
	long m = ck_mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (;;) {
		if (m < 0 && m > -4096)
			break;
		if (len + 1 == size) {
			long g = ck_mremap((void *)m, size, size * 2, MREMAP_MAYMOVE, 0);
			if (g < 0 && g > -4096) {
				ck_munmap((void *)m, size);
				m = g;
				break;
			}
			m = g, size *= 2;
		}
		long r = ck_read((int)pfd, (char *)m + len, size - 1 - len);
		if (r == -EINTR)
			continue;
		if (r < 0) {
			ck_munmap((void *)m, size);
			m = r;
		}
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	ck_close((int)pfd);
	if (m < 0 && m > -4096)
		return m;
	((char *)m)[len] = 0;
	*buf = (char *)m, *cap = size;
	return (long)len;
}

struct epoll_saved {
	uint32_t tfd, events;
	uint64_t data;
};

/* Which entry of those under the same descriptor number each one is (the
 * kernel's kcmp counts them in the order fdinfo lists them), through a
 * hash of the numbers in ctr[size] (size a power of two above n). */
static uint32_t epoll_nth_under(uint64_t *ctr, size_t size, uint32_t tfd)
{
	size_t h = (tfd * 2654435761u) & (size - 1);
	for (;; h = (h + 1) & (size - 1)) {
		uint32_t key = (uint32_t)(ctr[h] >> 32), count = (uint32_t)ctr[h];
		if (count && key != tfd)
			continue;
		ctr[h] = (uint64_t)tfd << 32 | (count + 1);
		return count;
	}
}

/* The descriptor of this process that holds the file an entry watches:
 * the entry's own number while it still refers to that file (almost
 * always), else any other (the number was closed, or given to another
 * file, after the file was added), else -1 (only another process, or no
 * descriptor at all, holds it). */
static int epoll_target_holder(int pid, const struct ck_fdtab *t, int epfd, uint32_t tfd, uint32_t nth)
{
	struct kcmp_epoll_slot slot = {(uint32_t)epfd, tfd, nth};
	if (CK_SYS5(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, tfd, &slot) == 0)
		return (int)tfd;
	for (int i = 0; i < t->n; i++)
		if (t->fds[i].fd != (int)tfd && CK_SYS5(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, t->fds[i].fd, &slot) == 0)
			return t->fds[i].fd;
	return -1;
}

static void fail_epoll_orphan(struct ck_writer *w, int epfd, const struct epoll_saved *x)
{
	struct ck_str m;
	ck_writer_fail(w, -EOPNOTSUPP, "an epoll descriptor watches a file that no descriptor of its process holds, which ckrun cannot add back");
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "epoll descriptor ");
	ck_str_dec(&m, epfd);
	ck_str_add(&m, ": its entry for descriptor ");
	ck_str_dec(&m, x->tfd);
	ck_str_add(&m, " (data ");
	ck_str_hex(&m, x->data);
	ck_str_add(&m, ") watches a file that descriptor ");
	ck_str_dec(&m, x->tfd);
	ck_str_add(&m, " no longer refers to and no other descriptor of this process holds (closed after it was added, kept open elsewhere);"
		       " checkpoint again once that file is closed everywhere; the program runs on");
}

/* Every entry as [fd, events, data], with a fourth element, the number of
 * a descriptor that holds the watched file, when fd no longer refers to it
 * (dup2 over a registered number, or a registered number closed while a
 * duplicate stays open: the kernel keeps such an entry). */
static void epoll_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	struct cb_enc *e = &w->meta;
	char *buf = 0;
	size_t cap = 0, n = 0;
	long len = read_fdinfo_whole(f->fd, &buf, &cap);
	if (len <= 0) {
		fail_fd(w, len < 0 ? len : -EIO, "cannot read an epoll descriptor's interest list", f->fd, "/proc/self/fdinfo failed");
		return;
	}
	for (const char *p = buf; (p = find_field(p, "tfd:"));)
		n++;
	/* the parsed entries, then the counters, in one mapping */
	size_t slots = 16;
	while (slots < 2 * n)
		slots *= 2;
	size_t size = CK_PAGE_UP(n * sizeof(struct epoll_saved) + slots * sizeof(uint64_t));
	long m = ck_mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m < 0 && m > -4096) {
		ck_munmap(buf, cap);
		fail_fd(w, m, "cannot read an epoll descriptor's interest list", f->fd, "no memory for it");
		return;
	}
	struct epoll_saved *v = (void *)m;
	uint64_t *ctr = (uint64_t *)(v + n);
	size_t k = 0;
	for (const char *p = buf; k < n && (p = find_field(p, "tfd:")); k++) {
		uint64_t tfd = 0, events = 0, data = 0;
		p = skip_spaces(p);
		ck_parse_dec(&p, &tfd);
		p = skip_spaces(p);
		if (ck_starts_with(p, "events:"))
			p = skip_spaces(p + 7), ck_parse_hex(&p, &events);
		p = skip_spaces(p);
		if (ck_starts_with(p, "data:"))
			p = skip_spaces(p + 5), ck_parse_hex(&p, &data);
		v[k] = (struct epoll_saved){(uint32_t)tfd, (uint32_t)events, data};
	}
	ck_munmap(buf, cap);
	int pid = (int)ck_getpid();
	cb_text(e, "epoll");
	cb_array_open(e);
	for (size_t i = 0; i < k; i++) {
		int holder = epoll_target_holder(pid, t, f->fd, v[i].tfd, epoll_nth_under(ctr, slots, v[i].tfd));
		if (holder < 0) {
			fail_epoll_orphan(w, f->fd, &v[i]);
			break;
		}
		cb_array(e, holder == (int)v[i].tfd ? 3 : 4);
		cb_uint(e, v[i].tfd);
		cb_uint(e, v[i].events);
		cb_uint(e, v[i].data);
		if (holder != (int)v[i].tfd)
			cb_uint(e, (uint64_t)holder);
	}
	cb_close(e);
	ck_munmap(v, size);
}

static int parse_field_dec(const char *text, const char *field, uint64_t *v)
{
	const char *p = find_field(text, field);
	if (!p)
		return 0;
	p = skip_spaces(p);
	return ck_parse_dec(&p, v);
}

/* A signed decimal such as fdinfo's "Pid:\t-1". */
static int parse_field_int(const char *text, const char *field, int64_t *v)
{
	const char *p = find_field(text, field);
	uint64_t u;
	if (!p)
		return 0;
	p = skip_spaces(p);
	int neg = *p == '-';
	if (neg)
		p++;
	if (!ck_parse_dec(&p, &u))
		return 0;
	*v = neg ? -(int64_t)u : (int64_t)u;
	return 1;
}

static uint64_t timespec_ns(const struct ck_timespec *t)
{
	return (uint64_t)t->sec * 1000000000ULL + (uint64_t)t->nsec;
}

/* timerfd. timerfd_gettime first: for an interval timer that expired
 * and was not read, it moves the timer to its next expiry and adds the
 * missed periods to the tick count, so fdinfo then shows both exactly.
 * An absolute CLOCK_REALTIME timer keeps its deadline (wall time), every
 * other one its remaining time (the clocks it counts on start again at a
 * reboot, and time spent checkpointed is not the program's). */
static void timerfd_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	char buf[1024];
	struct cb_enc *e = &w->meta;
	struct ck_timespec cur[2], now;
	uint64_t clock = 0, ticks = 0, tflags = 0;
	long r = CK_SYS2(SYS_timerfd_gettime, f->fd, cur);
	if (r < 0 || ck_read_fdinfo(f->fd, buf, sizeof buf) <= 0 || !parse_field_dec(buf, "clockid:", &clock)) {
		fail_fd(w, r < 0 ? r : -EIO, "cannot read a timerfd's state", f->fd, "timerfd_gettime or /proc/self/fdinfo failed");
		return;
	}
	parse_field_dec(buf, "ticks:", &ticks);
	const char *p = find_field(buf, "settime flags:");
	if (p) {
		p = skip_spaces(p);
		while (*p >= '0' && *p <= '7')
			tflags = tflags * 8 + (uint64_t)(*p++ - '0'); /* printed in octal */
	}
	uint64_t value = timespec_ns(&cur[1]), interval = timespec_ns(&cur[0]);
	int wall = (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_ALARM) && (tflags & TFD_TIMER_ABSTIME) && value;
	cb_text(e, "timerfd");
	cb_map(e, wall ? 6 : 5);
	cb_kv_uint(e, "clock", clock);
	cb_kv_uint(e, "settime_flags", tflags);
	cb_kv_uint(e, "value_ns", value);
	cb_kv_uint(e, "interval_ns", interval);
	cb_kv_uint(e, "ticks", ticks);
	if (wall) {
		ck_clock_gettime(CLOCK_REALTIME, &now);
		cb_kv_uint(e, "deadline_ns", timespec_ns(&now) + value);
	}
}

/* signalfd: the mask as the kernel holds it, which never contains the
 * shim's internal signal (shim.c's signalfd wrapper takes it out). */
static void signalfd_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	char buf[1024];
	uint64_t mask = 0;
	const char *p;
	if (ck_read_fdinfo(f->fd, buf, sizeof buf) <= 0 || !(p = find_field(buf, "sigmask:"))) {
		fail_fd(w, -EIO, "cannot read a signalfd's mask", f->fd, "no sigmask in /proc/self/fdinfo");
		return;
	}
	p = skip_spaces(p);
	ck_parse_hex(&p, &mask);
	cb_text(&w->meta, "signalfd");
	cb_map(&w->meta, 1);
	cb_kv_uint(&w->meta, "mask", mask);
}


/* ---- the paths of inotify watches, recorded by shim.c's wrapper ----
 * A wrapper runs in the program's threads at any time, and the save reads
 * the table from a signal handler: no locks. Entries are claimed with an
 * atomic add and published by a release store of `ready`; an entry is
 * never changed afterwards. The newest entry for (fd, wd) wins, and the
 * save checks that its path still names the watched inode, so entries
 * left by closed descriptors or removed watches do no harm. When the
 * table is full, later watches are not recorded (the file handle is then
 * the only way to find their path). */
#define WATCH_SLOTS 1024
#define WATCH_TEXT (128 * 1024)

static struct watch_rec {
	int fd, wd;
	uint32_t off;
	int ready;
} watch_recs[WATCH_SLOTS];
static char watch_text[WATCH_TEXT];
static unsigned watch_nrecs, watch_ntext;

CK_HIDDEN void ck_inotify_record(int fd, int wd, const char *path)
{
	char cwd[4096];
	size_t cl = 0, pl = ck_strlen(path);
	if (path[0] != '/') {
		/* relative to the working directory of now: one getcwd, only here */
		long r = CK_SYS2(SYS_getcwd, cwd, sizeof cwd);
		if (r <= 0 || cwd[0] != '/')
			return;
		cl = ck_strlen(cwd);
	}
	size_t need = cl + 1 + pl + 1;
	unsigned slot = __atomic_fetch_add(&watch_nrecs, 1, __ATOMIC_RELAXED);
	unsigned off = __atomic_fetch_add(&watch_ntext, (unsigned)need, __ATOMIC_RELAXED);
	if (slot >= WATCH_SLOTS || off + need > WATCH_TEXT || need > 8192)
		return;
	char *t = watch_text + off;
	if (cl) {
		ck_memcpy(t, cwd, cl);
		t[cl] = '/';
		ck_memcpy(t + cl + 1, path, pl + 1);
	} else {
		ck_memcpy(t, path, pl + 1);
	}
	watch_recs[slot].fd = fd;
	watch_recs[slot].wd = wd;
	watch_recs[slot].off = off;
	__atomic_store_n(&watch_recs[slot].ready, 1, __ATOMIC_RELEASE);
}

static const char *ck_inotify_recorded(int fd, int wd)
{
	unsigned n = __atomic_load_n(&watch_nrecs, __ATOMIC_ACQUIRE);
	for (unsigned i = n < WATCH_SLOTS ? n : WATCH_SLOTS; i-- > 0;)
		if (__atomic_load_n(&watch_recs[i].ready, __ATOMIC_ACQUIRE) && watch_recs[i].fd == fd && watch_recs[i].wd == wd)
			return watch_text + watch_recs[i].off;
	return 0;
}

/* ---- inotify ----
 * A watch is re-added by path at restart, so the save needs each watched
 * inode's path. fdinfo names the inode only by (sdev, ino) and a file
 * handle. Two sources, in this order:
 *  1. the path the program gave inotify_add_watch, recorded by the shim's
 *     wrapper (absolute), used only if it still names that very inode:
 *     works for every user, but not for a watch added before the shim was
 *     loaded (inherited across exec) or whose file was renamed since;
 *  2. the file handle, opened with open_by_handle_at against the root of
 *     a mount of that filesystem, then readlink of /proc/self/fd: follows
 *     renames, but needs CAP_DAC_READ_SEARCH (root) and a filesystem that
 *     exports handles.
 * Neither working fails the checkpoint, naming the watch. */

struct fhandle_buf {
	uint32_t bytes;
	int32_t type;
	unsigned char data[128];
};

/* The kernel's dev_t (major << 20 | minor) as stat's st_dev encodes it. */
static uint64_t user_dev(uint64_t kdev)
{
	return makedev((unsigned)(kdev >> 20), (unsigned)(kdev & 0xfffff));
}

static int same_inode(const char *path, uint64_t dev, uint64_t ino)
{
	struct ck_stat st;
	return CK_SYS4(SYS_newfstatat, AT_FDCWD, path, &st, 0) == 0 && st.dev == dev && st.ino == ino;
}

static int has_backslash(const char *s)
{
	for (; *s; s++)
		if (*s == '\\')
			return 1;
	return 0;
}

/* A mount of the filesystem with device dev (userspace encoding), opened
 * O_PATH, from /proc/self/mountinfo ("id parent major:minor root point"). */
static int open_mount_of(uint64_t dev)
{
	static char info[64 * 1024];
	if (ck_read_file("/proc/self/mountinfo", info, sizeof info) <= 0)
		return -1;
	for (const char *p = info; *p;) {
		uint64_t id, parent, maj, min;
		const char *q = p;
		int ok = ck_parse_dec(&q, &id) && *q++ == ' ' && ck_parse_dec(&q, &parent) && *q++ == ' ' &&
			 ck_parse_dec(&q, &maj) && *q++ == ':' && ck_parse_dec(&q, &min) && *q++ == ' ';
		if (ok && makedev((unsigned)maj, (unsigned)min) == dev) {
			while (*q && *q != ' ')
				q++; /* root within the filesystem */
			if (*q == ' ')
				q++;
			char point[4096];
			size_t n = 0;
			while (*q && *q != ' ' && *q != '\n' && n < sizeof point - 1)
				point[n++] = *q++;
			point[n] = 0;
			/* names with escaped spaces (\040) are skipped, not guessed */
			int fd = has_backslash(point) ? -1 : (int)ck_openat(AT_FDCWD, point, O_PATH | O_CLOEXEC, 0);
			if (fd >= 0)
				return fd;
		}
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return -1;
}

static int path_from_handle(struct fhandle_buf *h, uint64_t dev, uint64_t ino, char *out, size_t cap)
{
	int mfd = open_mount_of(dev);
	if (mfd < 0)
		return 0;
	int fd = (int)CK_SYS3(SYS_open_by_handle_at, mfd, h, O_PATH | O_CLOEXEC);
	ck_close(mfd);
	if (fd < 0)
		return 0;
	long n = ck_fd_link(fd, out, cap);
	ck_close(fd);
	if (n <= 0)
		return 0;
	return out[0] == '/' && same_inode(out, dev, ino);
}

static int hex_nibble(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One fdinfo line: "inotify wd:1 ino:3f7e8 sdev:fe00000 mask:100
 * ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e8f7...". */
struct watch_line {
	uint64_t wd, ino, sdev, mask;
	struct fhandle_buf h;
};

static const char *parse_watch(const char *p, struct watch_line *wl)
{
	uint64_t v;
	ck_memset(wl, 0, sizeof *wl);
	while (*p && *p != '\n') {
		p = skip_spaces(p);
		const char *key = p;
		while (*p && *p != ':' && *p != ' ' && *p != '\n')
			p++;
		if (*p != ':')
			continue;
		size_t kl = (size_t)(p - key);
		p++;
		if (kl == 8 && ck_strneq(key, "f_handle", 8)) {
			uint32_t n = 0;
			for (int hi, lo; (hi = hex_nibble(p[0])) >= 0 && (lo = hex_nibble(p[1])) >= 0; p += 2)
				if (n < sizeof wl->h.data)
					wl->h.data[n++] = (unsigned char)(hi << 4 | lo);
			continue;
		}
		int hex = !(kl == 2 && ck_strneq(key, "wd", 2)) && !(kl == 12 && ck_strneq(key, "fhandle-type", 12)) &&
			  !(kl == 13 && ck_strneq(key, "fhandle-bytes", 13));
		if (!(hex ? ck_parse_hex(&p, &v) : ck_parse_dec(&p, &v)))
			continue;
		if (kl == 2 && ck_strneq(key, "wd", 2)) wl->wd = v;
		else if (kl == 3 && ck_strneq(key, "ino", 3)) wl->ino = v;
		else if (kl == 4 && ck_strneq(key, "sdev", 4)) wl->sdev = v;
		else if (kl == 4 && ck_strneq(key, "mask", 4)) wl->mask = v;
		else if (kl == 13 && ck_strneq(key, "fhandle-bytes", 13)) wl->h.bytes = (uint32_t)v;
		else if (kl == 12 && ck_strneq(key, "fhandle-type", 12)) wl->h.type = (int32_t)v;
	}
	return p;
}

static void fail_watch(struct ck_writer *w, int fd, uint64_t wd, const char *recorded)
{
	struct ck_str m;
	ck_writer_fail(w, -EOPNOTSUPP, "cannot find the path an inotify watch is on");
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, fd);
	ck_str_add(&m, ", watch ");
	ck_str_udec(&m, wd);
	ck_str_add(&m, recorded ? ": its file was renamed or replaced since inotify_add_watch(" : ": added before ckrun's shim was loaded");
	if (recorded) {
		ck_str_add(&m, recorded);
		ck_str_add(&m, ")");
	}
	ck_str_add(&m, ", and its file handle cannot be opened (needs root); add the watch again by its path, or checkpoint as root");
}

/* A deleted file the process still holds a descriptor of: the restore
 * makes its inode again (deleted.c, object "inode"), and a watch on it
 * goes on that inode. */
static int deleted_file_held(const struct ck_fdtab *t, uint64_t dev, uint64_t ino)
{
	for (int i = 0; i < t->n; i++) {
		const struct ck_stat *st = &t->fds[i].st;
		if (st->dev == dev && st->ino == ino && (st->mode & S_IFMT) == S_IFREG && st->nlink == 0)
			return 1;
	}
	return 0;
}

static void inotify_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	static char buf[64 * 1024];
	static char path[4096];
	struct cb_enc *e = &w->meta;
	int queued = 0;
	if (ck_read_fdinfo(f->fd, buf, sizeof buf) <= 0) {
		fail_fd(w, -EIO, "cannot read an inotify descriptor's watches", f->fd, "/proc/self/fdinfo failed");
		return;
	}
	CK_SYS3(SYS_ioctl, f->fd, FIONREAD, &queued);
	cb_text(e, "inotify");
	cb_map(e, 2);
	cb_kv_uint(e, "queued", (uint64_t)(queued > 0 ? queued : 0));
	cb_text(e, "watches");
	cb_array_open(e);
	for (const char *p = buf; !w->err && (p = find_field(p, "inotify "));) {
		struct watch_line wl;
		p = parse_watch(p, &wl);
		uint64_t dev = user_dev(wl.sdev);
		const char *rec = ck_inotify_recorded(f->fd, (int)wl.wd);
		const char *at = 0;
		if (rec && same_inode(rec, dev, wl.ino))
			at = rec;
		else if (wl.h.bytes && wl.h.bytes <= sizeof wl.h.data && path_from_handle(&wl.h, dev, wl.ino, path, sizeof path))
			at = path;
		if (!at && deleted_file_held(t, dev, wl.ino)) {
			/* [wd, mask, "", dev, ino]: on the inode made again */
			cb_array(e, 5);
			cb_uint(e, wl.wd);
			cb_uint(e, wl.mask);
			cb_text(e, "");
			cb_uint(e, dev);
			cb_uint(e, wl.ino);
			continue;
		}
		if (!at) {
			fail_watch(w, f->fd, wl.wd, rec);
			break;
		}
		cb_array(e, 3);
		cb_uint(e, wl.wd);
		cb_uint(e, wl.mask);
		cb_text(e, at);
	}
	cb_close(e);
}

/* pidfd: only for processes a restart brings back with the same PID
 * (this process, its children, any other process of the session, restored
 * with it as one family); any other PID may be gone or belong to another
 * process by then, so such a pidfd fails the checkpoint. */
static int is_own_thread(int64_t pid)
{
	char path[64];
	struct ck_str s;
	struct ck_stat st;
	ck_str_init(&s, path, sizeof path);
	ck_str_add(&s, "/proc/self/task/");
	ck_str_dec(&s, pid);
	return CK_SYS4(SYS_newfstatat, AT_FDCWD, path, &st, 0) == 0;
}

static void pidfd_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	char buf[1024];
	int64_t pid = 0;
	if (ck_read_fdinfo(f->fd, buf, sizeof buf) <= 0 || !parse_field_int(buf, "Pid:", &pid)) {
		fail_fd(w, -EIO, "cannot read a pidfd's process", f->fd, "no Pid in /proc/self/fdinfo");
		return;
	}
	/* the threads of a restored process are created after its descriptors:
	 * only the process itself (its leader) can be pidfd_open'ed then */
	if (pid > 0 && pid != ck_getpid() && is_own_thread(pid)) {
		fail_fd(w, -EOPNOTSUPP, "the program holds a pidfd ckrun cannot bring back", f->fd,
			"it refers to one of the program's own threads other than the main one; close it before the checkpoint");
		return;
	}
	/* Pid -1: the process exited (and was reaped); 0 would be one outside
	 * this PID namespace, which a restart cannot promise */
	const char *relation = pid == -1                                    ? "dead"
			       : pid > 0 && pid == ck_getpid()               ? "self"
			       : pid > 0 && ck_parent_of((int)pid) == (int)ck_getpid() ? "child"
			       : pid > 0 && ck_in_session((int)pid, ck_coordinator_pid()) ? "family"
									     : 0;
	if (!relation) {
		struct ck_str m;
		ck_writer_fail(w, -EOPNOTSUPP, "the program holds a pidfd ckrun cannot bring back");
		ck_str_init(&m, w->err_detail, sizeof w->err_detail);
		ck_str_add(&m, "descriptor ");
		ck_str_dec(&m, f->fd);
		ck_str_add(&m, pid > 0 ? " is a pidfd of process " : " is a pidfd of a process outside this PID namespace");
		if (pid > 0) {
			ck_str_dec(&m, pid);
			ck_str_add(&m, ", which is not a process of the session (the family ckrun runs), so a restart cannot promise it exists");
		}
		ck_str_add(&m, "; close it before the checkpoint");
		return;
	}
	cb_text(&w->meta, "pidfd");
	cb_map(&w->meta, 2);
	cb_kv_uint(&w->meta, "pid", (uint64_t)(pid > 0 ? pid : 0));
	cb_kv_text(&w->meta, "relation", relation);
}

/* ---- restore host ---- */

CK_HIDDEN extern const struct ck_fd_kind ck_kind_epoll, ck_kind_timerfd, ck_kind_pidfd;

/* {key: uint, ...} into the fields named in keys (NULL-terminated). */
static int parse_uint_map(struct cb_dec *d, const char *const *keys, uint64_t *vals, int *seen)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		int i = 0;
		while (keys[i] && !cbd_key_is(k, kl, keys[i]))
			i++;
		if (keys[i] && cbd_peek(d) == CB_UINT) {
			if (!cbd_uint(d, &vals[i]))
				return 0;
			seen[i] = 1;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error;
}

/* ---- eventfd: its counter and flags ---- */

struct eventfd {
	uint64_t count;
	int semaphore;
};

static int eventfd_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left;
	const char *k;
	size_t kl;
	struct eventfd *e = calloc(1, sizeof *e);
	f->priv = e;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "count")) {
			if (!cbd_uint(d, &e->count))
				return 0;
		} else if (cbd_key_is(k, kl, "semaphore")) {
			if (!cbd_bool(d, &e->semaphore))
				return 0;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error;
}

static int eventfd_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	const struct eventfd *e = f->priv;
	int flags = EFD_CLOEXEC | (e->semaphore ? EFD_SEMAPHORE : 0) | (f->flags & O_NONBLOCK ? EFD_NONBLOCK : 0);
	if (e->count > 0xffffffffULL)
		ck_refuse("the eventfd at descriptor %d holds %llu, more than eventfd() can be created with", f->fd,
			  (unsigned long long)e->count);
	int fd = eventfd((unsigned)e->count, flags);
	if (fd < 0)
		ck_refuse("cannot create the eventfd for descriptor %d: %s", f->fd, strerror(errno));
	return fd;
}

/* ---- epoll: the interest list ---- */

struct epoll {
	struct epoll_entry {
		int tfd;
		uint32_t events;
		uint64_t data;
		int holder; /* the descriptor that holds the file when tfd no longer does, or -1 */
	} *v;
	size_t n;
};

static int epoll_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t n;
	size_t cap = 8;
	struct epoll *ep = calloc(1, sizeof *ep);
	f->priv = ep;
	if (!cbd_array(d, &n))
		return 0;
	ep->v = malloc(cap * sizeof *ep->v);
	while (cbd_next_item(d, &n)) {
		int64_t m;
		uint64_t v[4] = {0, 0, 0, 0};
		if (!cbd_array(d, &m) || (m != 3 && m != 4) || !cbd_uint_max(d, INT32_MAX, &v[0]) ||
		    !cbd_uint_max(d, UINT32_MAX, &v[1]) || !cbd_uint(d, &v[2]) || (m == 4 && !cbd_uint_max(d, INT32_MAX, &v[3])))
			return 0;
		if (ep->n == cap) {
			cap *= 2;
			ep->v = realloc(ep->v, cap * sizeof *ep->v);
		}
		ep->v[ep->n++] = (struct epoll_entry){(int)v[0], (uint32_t)v[1], v[2], m == 4 ? (int)v[3] : -1};
	}
	return !d->error;
}

static void epoll_release(struct ck_img_file *f)
{
	struct epoll *ep = f->priv;
	if (ep)
		free(ep->v);
	free(ep);
}

/* An entry's holder must be a descriptor the image restores. */
static void epoll_check(struct ck_image *img, struct ck_img_file *f)
{
	const struct epoll *ep = f->priv;
	for (size_t j = 0; ep && j < ep->n; j++) {
		int found = ep->v[j].holder < 0;
		for (size_t i = 0; i < img->nfiles && !found; i++)
			found = img->files[i].fd == ep->v[j].holder;
		if (!found)
			ck_refuse("image %s is damaged: the epoll descriptor %d watches the file of descriptor %d, which the image does not have",
				  img->path, f->fd, ep->v[j].holder);
	}
}

static int epoll_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		ck_refuse("cannot create the epoll descriptor %d: %s", f->fd, strerror(errno));
	return fd;
}

/* Adds the file of descriptor holder under the number tfd, as the program
 * once did before it closed tfd or gave it to another file: holder's file
 * is put at tfd for the call, and whatever tfd holds now goes back there,
 * with its close-on-exec flag (the entries of that file are kept: the
 * kernel drops them only when the file's last descriptor goes). */
static int epoll_add_under(int epfd, int tfd, int holder, struct epoll_event *ev)
{
	int had = fcntl(tfd, F_GETFD), keep = -1;
	if (had >= 0 && (keep = fcntl(tfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -1;
	int r = -1, err = 0;
	if (dup2(holder, tfd) == tfd) {
		r = epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, ev);
		err = errno;
	} else
		err = errno;
	if (keep >= 0) {
		if (dup2(keep, tfd) != tfd || fcntl(tfd, F_SETFD, had) != 0)
			ck_refuse("cannot give descriptor %d back its file after adding another under its number to an epoll: %s", tfd,
				  strerror(errno));
		close(keep);
	} else
		close(tfd);
	errno = err;
	return r;
}

/* Interest lists refer to descriptor numbers: filled once every
 * descriptor is at its final number. */
static void epoll_installed(struct ck_image *img)
{
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		const struct epoll *ep = f->priv;
		if (f->ops != &ck_kind_epoll || !ep)
			continue;
		for (size_t j = 0; j < ep->n; j++) {
			const struct epoll_entry *x = &ep->v[j];
			struct epoll_event ev;
			ev.events = x->events;
			ev.data.u64 = x->data;
			int r = x->holder < 0 ? epoll_ctl(f->fd, EPOLL_CTL_ADD, x->tfd, &ev) : epoll_add_under(f->fd, x->tfd, x->holder, &ev);
			if (r != 0 && x->holder < 0)
				ck_refuse("cannot add descriptor %d back to the epoll descriptor %d: %s", x->tfd, f->fd, strerror(errno));
			if (r != 0)
				ck_refuse("cannot add the file of descriptor %d back to the epoll descriptor %d under the number %d it was added with: %s",
					  x->holder, f->fd, x->tfd, strerror(errno));
		}
	}
}

/* ---- timerfd: clock, time left, interval, expirations not read ---- */

struct timerfd {
	int clock, settime_flags, has_deadline;
	uint64_t value_ns, interval_ns, ticks, deadline_ns;
};

static int timerfd_parse(struct cb_dec *d, struct ck_img_file *f)
{
	static const char *const keys[] = {"clock", "settime_flags", "value_ns", "interval_ns", "ticks", "deadline_ns", 0};
	uint64_t v[6] = {0};
	int seen[6] = {0};
	struct timerfd *t = calloc(1, sizeof *t);
	f->priv = t;
	if (!parse_uint_map(d, keys, v, seen) || !seen[0] || v[0] > INT32_MAX || v[1] > INT32_MAX)
		return 0;
	*t = (struct timerfd){
		.clock = (int)v[0], .settime_flags = (int)v[1], .value_ns = v[2], .interval_ns = v[3],
		.ticks = v[4], .deadline_ns = v[5], .has_deadline = seen[5],
	};
	return 1;
}

/* Created here, armed by timerfd_installed as late as the restore host
 * can: the time until the program runs again is not the program's. */
static int timerfd_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	const struct timerfd *t = f->priv;
	int fd = timerfd_create(t->clock, TFD_CLOEXEC | (f->flags & O_NONBLOCK ? TFD_NONBLOCK : 0));
	if (fd < 0)
		ck_refuse("cannot create the timerfd for descriptor %d on clock %d: %s%s", f->fd, t->clock, strerror(errno),
			  errno == EPERM ? " (alarm clocks need CAP_WAKE_ALARM)" : "");
	return fd;
}

static struct timespec ns_to_timespec(uint64_t ns)
{
	return (struct timespec){(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
}

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t) /* linux/timerfd.h, which clashes with fcntl.h */
#endif

/* Expirations counted but not read are put back as they were with
 * TFD_IOC_SET_TICKS (after settime, which zeroes them). A kernel built
 * without CONFIG_CHECKPOINT_RESTORE lacks it: then a disarmed timer
 * fires once at once, so the program still sees that it expired. */
static void arm_timerfd(struct ck_img_file *f)
{
	struct timerfd *t = f->priv;
	struct itimerspec its = {ns_to_timespec(t->interval_ns), ns_to_timespec(t->value_ns)};
	int flags = 0;
	if (t->has_deadline) {
		its.it_value = ns_to_timespec(t->deadline_ns);
		flags = TFD_TIMER_ABSTIME | (t->settime_flags & TFD_TIMER_CANCEL_ON_SET);
	}
	if ((its.it_value.tv_sec || its.it_value.tv_nsec) && timerfd_settime(f->fd, flags, &its, 0) != 0)
		ck_refuse("cannot arm the timerfd at descriptor %d: %s", f->fd, strerror(errno));
	if (!t->ticks || ioctl(f->fd, TFD_IOC_SET_TICKS, &t->ticks) == 0)
		return;
	if (!t->value_ns) {
		struct itimerspec now = {{0, 0}, {0, 1}};
		timerfd_settime(f->fd, 0, &now, 0);
	}
}

static void timerfd_installed(struct ck_image *img)
{
	for (size_t i = 0; i < img->nfiles; i++)
		if (img->files[i].ops == &ck_kind_timerfd && img->files[i].same_as < 0 && img->files[i].priv)
			arm_timerfd(&img->files[i]);
}

/* ---- signalfd: its mask ---- */

static int signalfd_parse(struct cb_dec *d, struct ck_img_file *f)
{
	static const char *const keys[] = {"mask", 0};
	uint64_t v[1] = {0};
	int seen[1] = {0};
	uint64_t *mask = calloc(1, sizeof *mask);
	f->priv = mask;
	if (!parse_uint_map(d, keys, v, seen) || !seen[0])
		return 0;
	*mask = v[0];
	return 1;
}

/* The image's mask never holds the shim's signal; taking it out again
 * keeps that true even for an image written by another build. The raw
 * call bypasses the shim's own signalfd wrapper, which is not needed. */
static int signalfd_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)base_fd, (void)objs;
	uint64_t mask = *(const uint64_t *)f->priv;
	if (img->sig > 0 && img->sig <= 64)
		mask &= ~(1ULL << (img->sig - 1));
	int fd = (int)syscall(SYS_signalfd4, -1, &mask, sizeof mask, SFD_CLOEXEC | (f->flags & O_NONBLOCK ? SFD_NONBLOCK : 0));
	if (fd < 0)
		ck_refuse("cannot create the signalfd for descriptor %d (mask %#llx): %s", f->fd, (unsigned long long)mask,
			  strerror(errno));
	return fd;
}

/* ---- inotify: every watch, with its number ---- */

struct inotify {
	struct watch {
		int wd;
		uint32_t mask;
		const char *path; /* "": on a deleted file's inode (dev, ino) */
		uint64_t dev, ino;
	} *watches;
	size_t nwatches;
	uint64_t queued;
};

static int inotify_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left, n;
	const char *k;
	size_t kl;
	struct inotify *in = calloc(1, sizeof *in);
	f->priv = in;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "queued")) {
			if (!cbd_uint(d, &in->queued))
				return 0;
			continue;
		}
		if (!cbd_key_is(k, kl, "watches")) {
			if (!cbd_skip(d))
				return 0;
			continue;
		}
		if (!cbd_array(d, &n))
			return 0;
		size_t cap = 8;
		in->watches = calloc(cap, sizeof *in->watches);
		while (cbd_next_item(d, &n)) {
			int64_t m;
			uint64_t wd, mask;
			const char *s;
			size_t sl;
			uint64_t dev = 0, ino = 0;
			if (!cbd_array(d, &m) || (m != 3 && m != 5) || !cbd_uint(d, &wd) || !cbd_uint_max(d, UINT32_MAX, &mask) ||
			    !cbd_text(d, &s, &sl) || wd < 1 || wd > INT32_MAX || (m == 5) != (sl == 0) ||
			    (m == 5 && (!cbd_uint(d, &dev) || !cbd_uint(d, &ino))))
				return 0;
			if (in->nwatches == cap)
				in->watches = realloc(in->watches, (cap *= 2) * sizeof *in->watches);
			in->watches[in->nwatches++] = (struct watch){(int)wd, (uint32_t)mask, ck_dup_text(s, sl), dev, ino};
		}
	}
	return !d->error;
}

static void inotify_release(struct ck_img_file *f)
{
	struct inotify *in = f->priv;
	for (size_t i = 0; in && i < in->nwatches; i++)
		free((char *)in->watches[i].path);
	if (in)
		free(in->watches);
	free(in);
}

static int by_wd(const void *a, const void *b)
{
	const struct watch *x = a, *y = b;
	return (x->wd > y->wd) - (x->wd < y->wd);
}

/* Watch descriptors come from a cyclic allocator (each new watch gets the
 * number after the last one given, even if lower ones are free again):
 * a number below the wanted one is used up by adding a watch and removing
 * it at once. The inode must not be watched already (that would return
 * its existing number): candidates are tried until one gives a new number. */
static void burn_watch_number(int fd, struct ck_img_file *f, int wanted)
{
	static const char *const spare[] = {"/", "/proc", "/dev", "/tmp", "/etc", "/usr", "/sys", "/run"};
	for (size_t i = 0; i < sizeof spare / sizeof spare[0]; i++) {
		int wd = inotify_add_watch(fd, spare[i], IN_ATTRIB | IN_MASK_CREATE);
		if (wd < 0)
			continue;
		inotify_rm_watch(fd, wd);
		if (wd > wanted)
			ck_refuse("cannot give inotify descriptor %d its watch %d back: the kernel handed out %d", f->fd, wanted, wd);
		return;
	}
	ck_refuse("cannot give inotify descriptor %d its watch %d back: no spare directory to use up the numbers below it",
		  f->fd, wanted);
}

/* Every watch again, on the same path with the same mask and the same
 * number. Events queued at checkpoint time, and those of the few moments
 * the restore takes, are not restored: the queue starts empty (the IN_IGNORED
 * events of the spare watches are read away here). */
static int inotify_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd;
	struct inotify *in = f->priv;
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0)
		ck_refuse("cannot create the inotify descriptor %d: %s", f->fd, strerror(errno));
	qsort(in->watches, in->nwatches, sizeof *in->watches, by_wd);
	int next = 1;
	for (size_t i = 0; i < in->nwatches; i++) {
		struct watch *w = &in->watches[i];
		if (w->wd < next)
			ck_refuse("the image lists watch %d of inotify descriptor %d twice", w->wd, f->fd);
		if (w->wd - next > (1 << 20))
			ck_refuse("inotify descriptor %d has watch number %d: using up the %d numbers below it would take too long",
				  f->fd, w->wd, w->wd - next);
		for (; next < w->wd; next++)
			burn_watch_number(fd, f, w->wd);
		char proc[64];
		const char *at = w->path;
		if (!at[0]) {
			int made = ck_objects_find(objs, "inode", w->dev, w->ino);
			if (made < 0)
				ck_refuse("inotify descriptor %d watches a deleted file (watch %d) that the restore did not make again",
					  f->fd, w->wd);
			snprintf(proc, sizeof proc, "/proc/self/fd/%d", made);
			at = proc;
		}
		int wd = inotify_add_watch(fd, at, w->mask | IN_MASK_CREATE);
		if (wd < 0)
			ck_refuse("cannot watch %s again (inotify descriptor %d, watch %d): %s; put the file back or restart from an "
				  "image taken without the watch", w->path, f->fd, w->wd, strerror(errno));
		if (wd != w->wd)
			ck_refuse("inotify descriptor %d: the watch on %s came back as number %d, not %d", f->fd, w->path, wd, w->wd);
		next = wd + 1;
	}
	char drain[4096];
	while (read(fd, drain, sizeof drain) > 0)
		;
	if (!(f->flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* ---- pidfd: the process it refers to ---- */

struct pidfd {
	int pid;     /* 0 for a dead one */
	int dead;    /* its process had exited and been reaped */
	int family;  /* another process of the family (neither itself nor its child) */
	size_t made; /* dead: which description made for its inode is its own */
};

static int pidfd_parse(struct cb_dec *d, struct ck_img_file *f)
{
	struct pidfd *p = calloc(1, sizeof *p);
	int64_t left;
	const char *k;
	size_t kl;
	uint64_t v = 0;
	int seen = 0;
	f->priv = p;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "pid") && cbd_peek(d) == CB_UINT) {
			if (!cbd_uint_max(d, CK_PID_MAX, &v))
				return 0;
			seen = 1;
		} else if (cbd_key_is(k, kl, "relation") && cbd_peek(d) == CB_TEXT) {
			const char *t;
			size_t tl;
			if (!cbd_text(d, &t, &tl))
				return 0;
			p->dead = tl == 4 && !memcmp(t, "dead", 4);
			p->family = tl == 6 && !memcmp(t, "family", 6);
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	p->pid = (int)v;
	return !d->error && seen && (p->dead ? v == 0 : v >= 1);
}

/* A pidfd of a process that had exited: one short-lived child per inode
 * (pidfds of one process share an inode, of two processes do not), a
 * description of it for every descriptor of the family that had its own,
 * the child reaped before any process runs. It exits with no signal to
 * this process (exit_signal 0). */
static void make_dead_pidfds(uint64_t ino, struct ck_img_file **files, size_t n, struct ck_objects *objs, int base_fd)
{
	struct ck_clone_args args;
	ck_clone_args_child(&args, 0, 0);
	args.exit_signal = 0;
	long child = syscall(SYS_clone3, &args, sizeof args);
	if (child == 0)
		syscall(SYS_exit, 0);
	if (child < 0)
		ck_refuse("cannot make a process for the pidfd of an exited process (descriptor %d): %s", files[0]->fd,
			  strerror(errno));
	for (size_t i = 0; i < n; i++) {
		int fd = (int)syscall(SYS_pidfd_open, (int)child, files[i]->flags & (O_NONBLOCK | O_EXCL));
		int moved = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
		if (moved < 0)
			ck_refuse("cannot open the pidfd of an exited process for descriptor %d: %s", files[i]->fd, strerror(errno));
		close(fd);
		ck_objects_add(objs, "pidfd_dead", ino, i, moved);
		((struct pidfd *)files[i]->priv)->made = i;
	}
	int st;
	if (waitpid((pid_t)child, &st, __WALL) != (pid_t)child)
		ck_refuse("cannot reap the process made for the pidfd of an exited process: %s", strerror(errno));
}

static int is_dead_pidfd(const struct ck_img_file *f)
{
	return f->ops == &ck_kind_pidfd && f->priv && f->same_as < 0 && ((const struct pidfd *)f->priv)->dead;
}

static void pidfd_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nfiles; j++) {
			struct ck_img_file *f = &imgs[i]->files[j];
			if (!is_dead_pidfd(f) || ck_objects_find(objs, "pidfd_dead", f->ino, 0) >= 0)
				continue;
			size_t count = 0, cap = 4;
			struct ck_img_file **same = malloc(cap * sizeof *same);
			for (size_t i2 = i; i2 < n; i2++)
				for (size_t j2 = 0; j2 < imgs[i2]->nfiles; j2++) {
					struct ck_img_file *g = &imgs[i2]->files[j2];
					if (!is_dead_pidfd(g) || g->ino != f->ino)
						continue;
					if (count == cap)
						same = realloc(same, (cap *= 2) * sizeof *same);
					same[count++] = g;
				}
			make_dead_pidfds(f->ino, same, count, objs, base_fd);
			free(same);
		}
}

/* PIDs are restored: the process (or its child, spawned before it becomes
 * itself) has its PID again by now. O_NONBLOCK and O_EXCL are the
 * PIDFD_NONBLOCK and PIDFD_THREAD flags. */
static int pidfd_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd;
	const struct pidfd *p = f->priv;
	if (p->dead) {
		int made = ck_objects_find(objs, "pidfd_dead", f->ino, p->made);
		int fd = made < 0 ? -1 : dup(made);
		if (fd < 0)
			ck_refuse("the pidfd of an exited process (descriptor %d) was not made by the restore", f->fd);
		return fd;
	}
	int fd = (int)syscall(SYS_pidfd_open, p->pid, f->flags & (O_NONBLOCK | O_EXCL));
	/* another process of the family (a grandchild, a sibling) is made by
	 * its own parent's restore, which runs beside this one: it comes */
	for (int tries = 0; fd < 0 && errno == ESRCH && p->family && tries < 300; tries++) {
		usleep(20000);
		fd = (int)syscall(SYS_pidfd_open, p->pid, f->flags & (O_NONBLOCK | O_EXCL));
	}
	if (fd < 0)
		ck_refuse("cannot open the pidfd of process %d for descriptor %d: %s%s", p->pid, f->fd, strerror(errno),
			  errno == ESRCH ? " (the process is not part of this restart: restart its whole family)" : "");
	return fd;
}

/* ---- the kinds ---- */

CK_HIDDEN const struct ck_fd_kind ck_kind_eventfd = {
	.name = "eventfd",
	.detect = eventfd_detect,
	.save = eventfd_save,
	.key = "eventfd",
	.parse = eventfd_parse,
	.open = eventfd_open,
};

CK_HIDDEN const struct ck_fd_kind ck_kind_epoll = {
	.name = "epoll",
	.detect = epoll_detect,
	.save = epoll_save,
	.key = "epoll",
	.parse = epoll_parse,
	.release = epoll_release,
	.check = epoll_check,
	.open = epoll_open,
	.installed = epoll_installed,
};

CK_HIDDEN const struct ck_fd_kind ck_kind_timerfd = {
	.name = "timerfd",
	.detect = timerfd_detect,
	.save = timerfd_save,
	.key = "timerfd",
	.parse = timerfd_parse,
	.open = timerfd_open,
	.installed = timerfd_installed,
};

CK_HIDDEN const struct ck_fd_kind ck_kind_signalfd = {
	.name = "signalfd",
	.detect = signalfd_detect,
	.save = signalfd_save,
	.key = "signalfd",
	.parse = signalfd_parse,
	.open = signalfd_open,
};

CK_HIDDEN const struct ck_fd_kind ck_kind_inotify = {
	.name = "inotify",
	.detect = inotify_detect,
	.save = inotify_save,
	.key = "inotify",
	.parse = inotify_parse,
	.release = inotify_release,
	.open = inotify_open,
};

CK_HIDDEN const struct ck_fd_kind ck_kind_pidfd = {
	.name = "pidfd",
	.detect = pidfd_detect,
	.save = pidfd_save,
	.key = "pidfd",
	.parse = pidfd_parse,
	.create_shared = pidfd_create_shared,
	.open = pidfd_open,
};
