/* fanotify descriptors of the notification class: the group's flags and
 * every mark (on an inode, a mount or a filesystem) with its masks, from
 * /proc/self/fdinfo. At restart the group is made again and each mark
 * added again: a mount by its ID, a filesystem by its device, an inode by
 * its file handle (open_by_handle_at on that filesystem, which needs
 * CAP_DAC_READ_SEARCH). Refused at the checkpoint, naming the descriptor:
 * events queued and not yet read (the kernel cannot show them without
 * handing them over), and the permission classes (FAN_CLASS_CONTENT,
 * FAN_CLASS_PRE_CONTENT), whose answers cannot be carried over. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fdkind.h"
#include "sys.h"

#define MAX_HANDLE 128

static int fanotify_detect(const struct ck_fd *f)
{
	return ck_starts_with(f->link, "anon_inode:[fanotify]");
}

static void fail_fan(struct ck_writer *w, const struct ck_fd *f, const char *why)
{
	struct ck_str m;
	ck_writer_fail(w, -EOPNOTSUPP, "the program has a fanotify descriptor ckrun cannot save");
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, f->fd);
	ck_str_add(&m, " (fanotify) ");
	ck_str_add(&m, why);
}

/* The hex value after "key:" in line, or 0 when absent. */
static int field_hex(const char *line, const char *key, uint64_t *v)
{
	size_t n = ck_strlen(key);
	for (const char *p = line; *p && *p != '\n'; p++)
		if ((p == line || p[-1] == ' ') && ck_strneq(p, key, n)) {
			p += n;
			return ck_parse_hex(&p, v);
		}
	return 0;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One mark line ("fanotify ino:… sdev:… mflags:… mask:… ignored_mask:… …"). */
static int save_mark(struct cb_enc *e, const char *line)
{
	uint64_t mnt, ino, sdev, mflags, mask, ignored, type;
	if (!field_hex(line, "mflags:", &mflags) || !field_hex(line, "mask:", &mask) ||
	    !field_hex(line, "ignored_mask:", &ignored))
		return 0;
	cb_map_open(e);
	cb_kv_uint(e, "mflags", mflags);
	cb_kv_uint(e, "mask", mask);
	cb_kv_uint(e, "ignored_mask", ignored);
	if (field_hex(line, "mnt_id:", &mnt)) {
		cb_kv_text(e, "on", "mount");
		cb_kv_uint(e, "mnt_id", mnt);
	} else if (field_hex(line, "ino:", &ino)) {
		uint8_t handle[MAX_HANDLE];
		size_t n = 0;
		const char *h = 0;
		for (const char *p = line; *p && *p != '\n' && !h; p++)
			if (ck_strneq(p, "f_handle:", 9))
				h = p + 9;
		if (!h || !field_hex(line, "sdev:", &sdev) || !field_hex(line, "fhandle-type:", &type))
			return 0;
		for (; n < MAX_HANDLE && hex_digit(h[0]) >= 0 && hex_digit(h[1]) >= 0; h += 2)
			handle[n++] = (uint8_t)(hex_digit(h[0]) << 4 | hex_digit(h[1]));
		cb_kv_text(e, "on", "inode");
		cb_kv_uint(e, "sdev", sdev);
		cb_kv_uint(e, "handle_type", type);
		cb_text(e, "handle");
		cb_bytes(e, handle, n);
	} else if (field_hex(line, "sdev:", &sdev)) {
		cb_kv_text(e, "on", "filesystem");
		cb_kv_uint(e, "sdev", sdev);
	} else {
		return 0;
	}
	cb_close(e);
	return 1;
}

static void fanotify_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	static char buf[64 * 1024];
	struct cb_enc *e = &w->meta;
	int queued = 0;
	uint64_t flags = 0, event_flags = 0;
	long n = ck_read_fdinfo(f->fd, buf, sizeof buf);
	const char *init = 0;
	for (const char *p = buf; n > 0 && *p && !init; p++)
		if (ck_strneq(p, "fanotify flags:", 15))
			init = p + 9;
	const char *why =
		n <= 0 || n >= (long)sizeof buf - 1 || !init || !field_hex(init, "flags:", &flags) ||
				!field_hex(init, "event-flags:", &event_flags)
			? "does not show its marks in /proc/self/fdinfo"
		: flags & (FAN_CLASS_CONTENT | FAN_CLASS_PRE_CONTENT)
			? "is of a permission class (FAN_CLASS_CONTENT or FAN_CLASS_PRE_CONTENT), whose pending answers "
			  "ckrun cannot carry over; only FAN_CLASS_NOTIF is saved"
		: ck_ioctl(f->fd, FIONREAD, &queued) == 0 && queued > 0
			? "has events queued that the program has not read; ckrun cannot save them: checkpoint again once "
			  "they are read"
			: 0;
	if (why) {
		fail_fan(w, f, why);
		return;
	}
	cb_text(e, "fanotify");
	cb_map_open(e);
	cb_kv_uint(e, "flags", flags);
	cb_kv_uint(e, "event_flags", event_flags);
	cb_text(e, "marks");
	cb_array_open(e);
	for (const char *p = buf; *p && !w->err;) {
		if (ck_strneq(p, "fanotify ", 9) && !ck_strneq(p, "fanotify flags:", 15) && !save_mark(e, p + 9))
			fail_fan(w, f, "has a mark ckrun cannot read");
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	cb_close(e);
	cb_close(e);
}

/* ---- restore host ---- */

enum { ON_MOUNT = 1, ON_INODE, ON_FILESYSTEM };

struct fan_mark {
	int on;
	uint64_t mflags, mask, ignored, mnt_id, sdev, handle_type;
	uint8_t handle[MAX_HANDLE];
	size_t handle_len;
};

struct fan {
	uint64_t flags, event_flags;
	struct fan_mark *marks;
	size_t n;
};

static int parse_mark(struct cb_dec *d, struct fan_mark *m)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		uint64_t *v = cbd_key_is(k, kl, "mflags")         ? &m->mflags
			      : cbd_key_is(k, kl, "mask")         ? &m->mask
			      : cbd_key_is(k, kl, "ignored_mask") ? &m->ignored
			      : cbd_key_is(k, kl, "mnt_id")       ? &m->mnt_id
			      : cbd_key_is(k, kl, "sdev")         ? &m->sdev
			      : cbd_key_is(k, kl, "handle_type")  ? &m->handle_type
								  : 0;
		const char *s;
		const uint8_t *b;
		size_t sl;
		if (v) {
			if (!cbd_uint_max(d, UINT32_MAX, v))
				return 0;
		} else if (cbd_key_is(k, kl, "on")) {
			if (!cbd_text(d, &s, &sl))
				return 0;
			m->on = sl == 5 && !memcmp(s, "mount", 5)        ? ON_MOUNT
				: sl == 5 && !memcmp(s, "inode", 5)      ? ON_INODE
				: sl == 10 && !memcmp(s, "filesystem", 10) ? ON_FILESYSTEM
									   : 0;
		} else if (cbd_key_is(k, kl, "handle")) {
			if (!cbd_bytes(d, &b, &sl) || sl > MAX_HANDLE)
				return 0;
			memcpy(m->handle, b, sl);
			m->handle_len = sl;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error && m->on;
}

static int fanotify_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left, n;
	const char *k;
	size_t kl;
	struct fan *fan = calloc(1, sizeof *fan);
	f->priv = fan;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "flags")) {
			if (!cbd_uint_max(d, UINT32_MAX, &fan->flags))
				return 0;
		} else if (cbd_key_is(k, kl, "event_flags")) {
			if (!cbd_uint_max(d, UINT32_MAX, &fan->event_flags))
				return 0;
		} else if (cbd_key_is(k, kl, "marks")) {
			if (!cbd_array(d, &n))
				return 0;
			for (int64_t i = 0; n < 0 ? !cbd_at_break(d) : i < n; i++) {
				fan->marks = realloc(fan->marks, (fan->n + 1) * sizeof *fan->marks);
				memset(&fan->marks[fan->n], 0, sizeof *fan->marks);
				if (!parse_mark(d, &fan->marks[fan->n++]))
					return 0;
			}
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error;
}

static void fanotify_release(struct ck_img_file *f)
{
	struct fan *fan = f->priv;
	if (fan)
		free(fan->marks);
	free(fan);
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++, o++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o = *s;
		}
	}
	*o = 0;
}

/* The mount point of the mount with this ID, or of one on this device
 * (the kernel's dev_t: major << 20 | minor); 0 when there is none. */
static int find_mount(const struct fan_mark *m, char *out, size_t cap)
{
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	int found = 0;
	while (mi && !found && fgets(line, sizeof line, mi)) {
		unsigned id, parent, major, minor;
		char root[4096], point[4096];
		if (sscanf(line, "%u %u %u:%u %4095s %4095s", &id, &parent, &major, &minor, root, point) != 6)
			continue;
		int match = m->on == ON_MOUNT ? id == m->mnt_id
					      : major == (m->sdev >> 20) && minor == (m->sdev & 0xfffff) && !strcmp(root, "/");
		if (match) {
			unescape(point);
			snprintf(out, cap, "%s", point);
			found = 1;
		}
	}
	if (mi)
		fclose(mi);
	return found;
}

/* Adds one mark again (its mask, then its ignored mask). */
static void add_mark(struct ck_img_file *f, int fd, const struct fan_mark *m)
{
	char path[4096];
	int obj = -1;
	unsigned type = m->on == ON_MOUNT ? FAN_MARK_MOUNT : m->on == ON_FILESYSTEM ? FAN_MARK_FILESYSTEM : 0;
	if (!find_mount(m, path, sizeof path))
		ck_refuse("descriptor %d (fanotify) had a mark on a %s that is not mounted here (%s %#llx); restart where it is",
			  f->fd, m->on == ON_MOUNT ? "mount" : "filesystem", m->on == ON_MOUNT ? "mount ID" : "device",
			  (unsigned long long)(m->on == ON_MOUNT ? m->mnt_id : m->sdev));
	if (m->on == ON_INODE) {
		int mfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct {
			struct file_handle h;
			unsigned char bytes[MAX_HANDLE];
		} fh;
		fh.h.handle_bytes = (unsigned)m->handle_len;
		fh.h.handle_type = (int)m->handle_type;
		memcpy(fh.h.f_handle, m->handle, m->handle_len);
		obj = mfd < 0 ? -1 : open_by_handle_at(mfd, &fh.h, O_PATH | O_CLOEXEC);
		if (mfd >= 0)
			close(mfd);
		if (obj < 0)
			ck_refuse("descriptor %d (fanotify) had a mark on a file of %s that ckrun cannot find again (%s); "
				  "restart as root, or close the descriptor before the checkpoint",
				  f->fd, path, strerror(errno));
		snprintf(path, sizeof path, "/proc/self/fd/%d", obj);
	}
	unsigned surv = (unsigned)m->mflags & FAN_MARK_IGNORED_SURV_MODIFY;
	if ((m->mask && fanotify_mark(fd, FAN_MARK_ADD | type, m->mask, AT_FDCWD, path) != 0) ||
	    (m->ignored && fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | surv | type, m->ignored, AT_FDCWD, path) != 0))
		ck_refuse("cannot add the marks of descriptor %d (fanotify) again on %s: %s", f->fd, path, strerror(errno));
	if (obj >= 0)
		close(obj);
}

static int fanotify_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	const struct fan *fan = f->priv;
	int fd = fanotify_init(((unsigned)fan->flags & ~(unsigned)FAN_NONBLOCK) | FAN_CLOEXEC, (unsigned)fan->event_flags);
	if (fd < 0)
		ck_refuse("cannot make descriptor %d (fanotify) again: %s", f->fd, strerror(errno));
	for (size_t i = 0; i < fan->n; i++)
		add_mark(f, fd, &fan->marks[i]);
	if (fcntl(fd, F_SETFL, f->flags & O_NONBLOCK) < 0)
		ck_refuse("cannot give descriptor %d (fanotify) its flags: %s", f->fd, strerror(errno));
	return fd;
}

CK_HIDDEN const struct ck_fd_kind ck_kind_fanotify = {
	.name = "fanotify",
	.detect = fanotify_detect,
	.save = fanotify_save,
	.key = "fanotify",
	.parse = fanotify_parse,
	.release = fanotify_release,
	.open = fanotify_open,
};
