/* O_PATH descriptors: of a file, a directory, a symlink (opened with
 * O_NOFOLLOW), or anything else with a name. They hold no content and no
 * offset: opened again by path with O_PATH, the symlink itself not
 * followed, and checked to be the same type of file. One whose file was
 * deleted is refused at the checkpoint (there is nothing to open). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdkind.h"
#include "sys.h"

static int opath_detect(const struct ck_fd *f)
{
	return f->flags >= 0 && (f->flags & O_PATH) && f->link[0] == '/';
}

static void opath_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	if (f->st.nlink == 0 || ck_ends_with(f->link, " (deleted)")) {
		struct ck_str m;
		ck_writer_fail(w, -EOPNOTSUPP, "the program has an O_PATH descriptor of a deleted file");
		ck_str_init(&m, w->err_detail, sizeof w->err_detail);
		ck_str_add(&m, "descriptor ");
		ck_str_dec(&m, f->fd);
		ck_str_add(&m, " (");
		ck_str_add(&m, f->link);
		ck_str_add(&m, ") is an O_PATH descriptor of a file deleted since; ckrun cannot make it again: close it "
			       "before the checkpoint, or keep the file");
	}
}

/* ---- restore host ---- */

static void opath_check(struct ck_image *img, struct ck_img_file *f)
{
	struct stat st;
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
	.check = opath_check,
	.open = opath_open,
};
