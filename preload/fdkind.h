/* A kind of descriptor: how the checkpoint recognizes and saves it, and
 * how the restore host reads, checks and makes it again.
 *
 * Each kind is one `const struct ck_fd_kind ck_kind_<name>` in the file of
 * its kind (files.c, pipes.c, events.c, sockets.c, ...), listed once in
 * fds.c's CK_FD_KINDS, which walks every descriptor and calls the kind's
 * operations; its own part of a descriptor (what its key in the image
 * holds) stays private to its file, behind ck_img_file.priv. Any
 * operation may be 0: the kind has nothing to do there. docs/design.md,
 * "Kinds of descriptors". */
#ifndef CK_FDKIND_H
#define CK_FDKIND_H

#include <stddef.h>

#include "ckrun.h"
#include "restore.h"

struct ck_fd_kind {
	const char *name; /* "kind" in the image */

	/* ---- checkpoint: in the signal handler, raw code only. The handler
	 * check (scripts/check-handler-code.mjs) follows these fields of a
	 * ck_kind_* object, and only these: they end at CK_FD_KIND_HANDLER_END. */
	/* f is of this kind (kinds are tried in CK_FD_KINDS' order) */
	int (*detect)(const struct ck_fd *f);
	/* writes the kind's key and its part into the descriptor's map; not
	 * called for a descriptor that shares an earlier one's description */
	void (*save)(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f);
	/* how much of the descriptor's link is the path saved (0: all of it) */
	size_t (*path_len)(const struct ck_fd *f);

	/* ---- restore host ---- */
	const char *key; /* the key of the descriptor's map that holds the kind's part, or 0 */
	int key_optional; /* a descriptor of the kind may lack that key */
	/* reads that key's value into f->priv; 0 when it is damaged */
	int (*parse)(struct cb_dec *d, struct ck_img_file *f);
	/* frees f->priv (0: free() does) */
	void (*release)(struct ck_img_file *f);
	/* everything that can be checked before anything is changed */
	void (*check)(struct ck_image *img, struct ck_img_file *f);
	/* objects the processes of a restore share (a pipe, a connection),
	 * made once into objs before any process is forked; every image */
	void (*create_shared)(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd);
	/* a new descriptor for f, at any number (fds.c moves it up) */
	int (*open)(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs);
	/* the point of no return, before f takes its number */
	void (*install)(struct ck_img_file *f);
	/* once per image, when every descriptor is at its number (kind by
	 * kind, in CK_FD_KINDS' order) */
	void (*installed)(struct ck_image *img);
};

#define CK_FD_KIND_HANDLER_END 32 /* name, detect, save, path_len */
_Static_assert(offsetof(struct ck_fd_kind, key) == CK_FD_KIND_HANDLER_END,
	       "scripts/check-handler-code.mjs: the handler's operations end at CK_FD_KIND_HANDLER_END");

/* files.c: which of the session's stdio (ckrun's descriptors 0-2) f is,
 * or -1 (also for a regular file: that is saved as a file); saved with
 * every descriptor (one that shares another's description keeps it too) */
CK_HIDDEN int ck_fd_stdio_index(const struct ck_fd *f);
/* files.c: a /proc list of a process's mappings (maps, smaps, numa_maps),
 * and why one read part way cannot be restored */

/* pipes.c: the bytes in flight of a pipe or FIFO, copied without consuming
 * them (fifo.c saves a FIFO's the same way) */
CK_HIDDEN long ck_pipe_peek(int rfd, long capacity, char **data);

/* locks.c: the "locks" of a descriptor's open file description, in its
 * map (called for every descriptor that does not share an earlier one's) */
CK_HIDDEN void ck_locks_save(struct ck_writer *w, const struct ck_fd *f);
/* Whether a new description of fd's file, opened and closed by this
 * process, would cost it something: a POSIX lock it holds there (any close
 * drops them) or a lease (another description's open breaks it). */
CK_HIDDEN int ck_locks_bind_to_description(int fd);
/* fown.c: "owner" of the descriptor's description; 0 when the checkpoint must fail */
CK_HIDDEN int ck_fown_save(struct ck_writer *w, const struct ck_fd *f);

/* pty.c: a terminal's settings ("tty": termios, window size, session and
 * foreground group), saved with the session's stdio and put on the
 * terminal ckrun restart runs in */
CK_HIDDEN void ck_tty_save(struct cb_enc *e, int fd);
CK_HIDDEN int ck_tty_parse(struct cb_dec *d, struct ck_img_file *f);
CK_HIDDEN void ck_tty_install(struct ck_img_file *f);

/* deleted.c: a FIFO or device node deleted while open, made again and
 * removed, kept by the O_PATH descriptor returned (refuses on failure);
 * and a new open of it with the program's flags */
/* deleted.c: a removed name's file still linked elsewhere in its directory */
CK_HIDDEN int ck_deleted_other_name(char *link, long *len, const struct ck_stat *st);
CK_HIDDEN int ck_make_removed_node(const char *old, uint32_t mode, uint64_t rdev, int fdnum);
CK_HIDDEN int ck_open_removed_node(int keep, int flags, const char *old, int fdnum);

/* files.c: a process's list of its mappings in /proc: CK_TEXT_MAPS
 * (maps: the same text for the restored process, byte for byte),
 * CK_TEXT_COUNTS (smaps, numa_maps: with counts of pages, which differ),
 * or 0 (another file) */
enum { CK_TEXT_MAPS = 1, CK_TEXT_COUNTS = 2 };
CK_HIDDEN int ck_process_text(const char *path);
CK_HIDDEN extern const char ck_process_text_why[];

#endif