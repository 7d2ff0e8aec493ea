/* O_PATH descriptors: of a file, a directory, a symlink (opened with
 * O_NOFOLLOW), or anything else with a name. They hold no content and no
 * offset: opened again by path with O_PATH, the symlink itself not
 * followed, and checked to be the same type of file. A symlink deleted
 * while open keeps its target ("symlink"): made again (under its old
 * name, beside it, or in the nearest directory that exists), opened and
 * removed. Another file deleted is refused at the checkpoint. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdkind.h"
#include "sys.h"

static int opath_detect(const struct ck_fd *f)
{
	return f->flags >= 0 && (f->flags & O_PATH) && f->link[0] == '/';
}

/* A deleted symlink: its target, read through the descriptor itself. */
static int save_symlink(struct ck_writer *w, const struct ck_fd *f)
{
	char target[4096];
	if ((f->st.mode & S_IFMT) != S_IFLNK)
		return 0;
	long n = ck_readlinkat(f->fd, "", target, sizeof target);
	if (n <= 0 || n >= (long)sizeof target)
		return 0;
	cb_text(&w->meta, "symlink");
	cb_map(&w->meta, 1);
	cb_text(&w->meta, "target");
	cb_textn(&w->meta, target, (size_t)n);
	return 1;
}

static void opath_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	if ((f->st.nlink == 0 || ck_ends_with(f->link, " (deleted)")) && !save_symlink(w, f)) {
		struct ck_str m;
		ck_writer_fail_fd(w, -EOPNOTSUPP, "the program has an O_PATH descriptor of a deleted file", f, &m);
		ck_str_add(&m, "is an O_PATH descriptor of a file deleted since; ckrun cannot make it again: close it "
			       "before the checkpoint, or keep the file");
	}
}

/* ---- restore host ---- */

static int symlink_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "target")) {
			const char *t;
			size_t tl;
			if (!cbd_text(d, &t, &tl) || tl == 0 || tl >= 4096 || memchr(t, 0, tl))
				return 0;
			char *copy = malloc(tl + 1);
			memcpy(copy, t, tl);
			copy[tl] = 0;
			free(f->priv);
			f->priv = copy;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error && f->priv;
}

/* Its old name, without " (deleted)". */
static void old_name(const struct ck_img_file *f, char *out, size_t cap)
{
	size_t n = strlen(f->path);
	if (n > 10 && !strcmp(f->path + n - 10, " (deleted)"))
		n -= 10;
	snprintf(out, cap, "%.*s", (int)n, f->path);
}

static int try_symlink(const char *target, char *path, size_t cap, const char *fmt, const char *base, int i)
{
	snprintf(path, cap, fmt, base, (int)getpid(), i);
	return symlink(target, path) == 0 ? 0 : errno;
}

/* The link made again and removed, held by an O_PATH descriptor. */
static int make_removed_symlink(struct ck_img_file *f)
{
	const char *target = f->priv;
	char old[4096], where[4096], path[4200];
	old_name(f, old, sizeof old);
	snprintf(path, sizeof path, "%s", old);
	int e = symlink(target, path) == 0 ? 0 : errno;
	for (int i = 0; e == EEXIST && i < 100; i++)
		e = try_symlink(target, path, sizeof path, "%s.ckrun-%d-%d", old, i);
	snprintf(where, sizeof where, "%s", old);
	while (e == ENOENT) {
		char *slash = strrchr(where, '/');
		if (!slash || slash == where) {
			e = try_symlink(target, path, sizeof path, "%s/.ckrun-link-%d-%d", "/tmp", 0);
			break;
		}
		*slash = 0;
		e = try_symlink(target, path, sizeof path, "%s/.ckrun-link-%d-%d", where, 0);
	}
	if (e)
		ck_refuse("cannot make the deleted symbolic link %s (descriptor %d, O_PATH) again: %s", old, f->fd, strerror(e));
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	char got[4096];
	struct stat st;
	long n = fd >= 0 ? readlinkat(fd, "", got, sizeof got - 1) : -1;
	if (n >= 0)
		got[n] = 0;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISLNK(st.st_mode) || n < 0 || strcmp(got, target) || unlink(path) != 0)
		ck_refuse("cannot make the deleted symbolic link %s (descriptor %d, O_PATH) again: %s", old, f->fd,
			  fd < 0 ? strerror(errno) : "another file took its place");
	return fd;
}

static void opath_check(struct ck_image *img, struct ck_img_file *f)
{
	struct stat st;
	if (f->priv)
		return; /* a deleted symlink, made again */
	if (lstat(f->path, &st) != 0)
		ck_refuse("image %s: descriptor %d (O_PATH) refers to %s, which is gone (%s); put it back or restart from an "
			  "image taken without it",
			  img->path, f->fd, f->path, strerror(errno));
	if ((st.st_mode & S_IFMT) != (f->mode & S_IFMT))
		ck_refuse("image %s: descriptor %d (O_PATH) refers to %s, which is now another type of file", img->path, f->fd,
			  f->path);
}

static int opath_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd, (void)objs;
	if (f->priv)
		return make_removed_symlink(f);
	int fd = open(f->path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		ck_refuse("cannot open %s again as descriptor %d (O_PATH): %s", f->path, f->fd, strerror(errno));
	if (fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != (f->mode & S_IFMT))
		ck_refuse("descriptor %d (O_PATH): %s is now another type of file", f->fd, f->path);
	return fd;
}

CK_HIDDEN const struct ck_fd_kind ck_kind_opath = {
	.name = "opath",
	.detect = opath_detect,
	.save = opath_save,
	.key = "symlink",
	.key_optional = 1,
	.parse = symlink_parse,
	.check = opath_check,
	.open = opath_open,
};
