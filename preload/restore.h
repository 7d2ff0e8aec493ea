/* The restore side: the image as the restore host reads it, and the plan
 * it hands to the restore core. */
#ifndef CK_RESTORE_H
#define CK_RESTORE_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "ckrun.h"

#define CK_EXIT_REFUSED 2       /* nothing was changed; the message says why */
#define CK_EXIT_PIDS_TAKEN 75   /* PIDs/TIDs in use: ckrun retries in a new PID namespace */
#define CK_EXIT_CORE_FAILED 70  /* failed after the old address space was gone */

#define CK_IMAGE_HEADER_SIZE 4096          /* the header block; the data area starts after it */
#define CK_IMAGE_META_MAX (1ULL << 30)     /* larger metadata is damage (src/image.ts: META_MAX) */
#define CK_PID_MAX 4194304                 /* PID_MAX_LIMIT: no PID or TID is larger */
#define CK_MANIFEST_MAX (4u << 20)         /* larger manifests are damage (src/generations.ts) */
#define CK_VDSO_TEXT_MAX (32u << 10)       /* a vdso's bytes an image keeps (x86-64: 8 KiB) */
#define CK_VDSO_ENTRIES 64                 /* the vdso's exported functions a bridge redirects */

struct ck_img_run {
	uint64_t addr, npages, off;
	uint32_t crc;
	int file; /* -1: this image; else index into the image's "images" */
};

struct ck_img_region {
	uint64_t start, end;
	int prot, shared;
	char kind[12];
	const char *name;
	int has_file;
	const char *path;
	uint64_t foff, dev, ino, size, mtime_ns;
	struct ck_img_run *runs;
	size_t nruns;
	int fd; /* opened by the restore host */
	int has_shm;
	uint64_t shm_dev, shm_ino, shm_off; /* a shared memory object's identity */
	char shm_kind[8];                    /* anon, memfd, sysv, posix */
	const char *shm_name;                /* memfd name, or path under /dev/shm */
	uint64_t shm_key, shm_id, shm_mode;  /* SysV */
	uint64_t shm_size;                   /* SysV: the segment's size (0: not saved) */
	uint32_t vm_flags;                   /* CK_VM_*: madvise marks, locks, ... */
	char vm_unknown[4];                  /* a mark this restorer does not know */
	uint64_t (*guards)[2];               /* stretches behind guards (MADV_GUARD_INSTALL) */
	int has_shim_file;                   /* kind "stored": the library's dev, inode, offset */
	uint64_t shim_file[3];
	int has_open_deleted;                /* kind "deleted": mapped from the file a descriptor holds */
	uint64_t open_deleted[3];            /* its dev, inode, offset */
	size_t nguards;
};

/* A process's or a thread's credentials (process.c): read from the image,
 * checked against what the restore may grant, set by the restore core in
 * every thread before any of them returns to the program. dumpable is the
 * process's alone. */
#define CK_MAX_GROUPS 65536 /* NGROUPS_MAX */
struct ck_creds {
	uint32_t uid[4], gid[4]; /* real, effective, saved, filesystem */
	uint64_t cap_eff, cap_prm, cap_inh, cap_bnd, cap_amb;
	uint64_t securebits;
	int no_new_privs;
	int dumpable;
	uint32_t ngroups;
};

struct ck_img_thread {
	int tid, leader;
	uint64_t rip; /* where the checkpoint interrupted it */
	uint64_t fs_base, clear_tid;
	struct ck_ctx resume;
	int has_resume;
	struct ck_core_attrs attrs; /* attrs.h */
	int has_creds; /* its own credentials ("creds"); else the process's */
	struct ck_creds creds;
	uint32_t *groups;
};

/* One descriptor of the image. What every descriptor has is here; its
 * kind's own part (its key in the image) is the kind's, in priv. */
struct ck_fd_kind;
/* A lock a descriptor held at the checkpoint (locks.c) */
enum { CK_LOCK_FLOCK = 1, CK_LOCK_POSIX, CK_LOCK_OFD, CK_LOCK_LEASE };
struct ck_img_lock {
	int how, write, sig; /* sig: a lease's F_SETSIG, or 0 */
	int64_t start, len;  /* len 0: to the end of the file */
};

struct ck_img_file {
	int fd;
	char kind[12];                /* its name in the image */
	const struct ck_fd_kind *ops; /* 0: a kind this ckrun does not know */
	void *priv;                   /* the kind's part, read by its parse */
	const char *path;
	int flags, cloexec, stdio, same_as, has_offset;
	int64_t offset;
	uint64_t size, mode, dev, ino, rdev, mtime_ns;
	int newfd; /* where the restore host opened it */
	int deferred; /* opened once every descriptor is at its number (files.c) */
	int seek_late; /* a /proc list of mappings read part way: its offset set by the restored shim (files.c) */
	struct ck_img_lock *locks; /* "locks" (locks.c) */
	size_t nlocks;
	int has_owner, owner_type, owner_id, owner_sig; /* "owner" (fown.c) */
};

struct ck_img_child {
	int pid, zombie, status;
	int pgid, sid; /* a zombie's (-1: not recorded; 0: outside the PID namespace) */
};

struct ck_img_action {
	int sig;
	uint64_t handler, flags, restorer, mask;
};

struct ck_image {
	const char *path;
	int fd;
	uint32_t header_crc; /* the header block's CRC: the image's identity (it covers meta_crc) */
	uint64_t file_len;
	uint64_t data_offset, data_length;
	uint8_t *meta;
	size_t meta_len;
	const uint8_t *whole; /* the file mapped read-only while its data is checked */

	int pid, ppid, pgid, sid;
	uint64_t pdeathsig;
	struct ck_img_child *children;
	size_t nchildren;
	const char *exe, *cwd, *kernel;
	int cwd_deleted; /* "cwd_deleted": [mode, uid, gid, dev?, ino?] (process.c) */
	uint32_t cwd_mode, cwd_uid, cwd_gid;
	int cwd_has_inode; /* its dev and ino: one inode with descriptors of it (deleted.c) */
	uint64_t cwd_dev, cwd_ino;
	uint64_t umask, personality;
	int has_creds;
	struct ck_creds creds;
	uint32_t *groups;
	int nrlimits;
	int64_t rlim[16][2];
	uint64_t mm[11];
	int have_mm;
	const uint8_t *auxv;
	size_t auxv_len;
	uint64_t vdso[3][2]; /* vvar, vvar_vclock, vdso; 0 when absent */
	uint32_t vdso_crc;
	const uint8_t *vdso_text; /* the vdso's bytes (images since issue 14), or 0 */
	size_t vdso_text_len;
	uint32_t mlockall;   /* CK_VM_LOCKED[|CK_VM_LOCKONFAULT]: mlockall(MCL_FUTURE[|MCL_ONFAULT]) */
	int sig, ctl_fd, shim_abi;

	struct ck_img_thread *threads;
	size_t nthreads;
	struct ck_img_region *regions;
	size_t nregions;
	struct ck_img_file *files;
	size_t nfiles;
	struct ck_img_action *actions;
	size_t nactions;
	size_t nptimers; /* POSIX timers: restored from the shim's memory (signals.c) */
	struct ck_img_attrs attrs; /* process attributes, seccomp, AIO (attrs.h) */

	/* incremental: the files runs may refer to, in this image's directory */
	uint64_t track_id;
	int has_track_id;
	const char *images[CK_MAX_IMAGES];
	int nimages;
	int image_fds[CK_MAX_IMAGES]; /* opened (and checked) by ck_image_check_refs */
	/* image_ids: what each of them must be, [track_id, header_crc] (absent in images of older shims) */
	int nimage_ids;
	uint64_t image_track[CK_MAX_IMAGES];
	uint32_t image_crc[CK_MAX_IMAGES];
	uint64_t image_data_len[CK_MAX_IMAGES]; /* each one's data area, which its runs must lie in */
	void *sysv; /* its SysV objects and SEM_UNDO adjustments (sysv.c) */
};

/* ---- objects the processes of a restore share (objects.c): made once
 * before any process is forked and inherited by every restore host. Each
 * has a type (the name of the kind that made it: "pipe", "socket", "shm",
 * "description"), an identity in that type (a pipe's id and end, a
 * socket's inode, ...) and a descriptor. ---- */
struct ck_obj {
	const char *type;
	uint64_t id, sub;
	int fd;
};
struct ck_objects {
	struct ck_obj *v;
	size_t n, cap;
};
CK_HIDDEN void ck_objects_add(struct ck_objects *objs, const char *type, uint64_t id, uint64_t sub, int fd);
/* The object's descriptor, or -1 (objs may be 0). */
CK_HIDDEN int ck_objects_find(const struct ck_objects *objs, const char *type, uint64_t id, uint64_t sub);
/* The orchestrator keeps none of them once the processes have them. */
CK_HIDDEN void ck_objects_close(struct ck_objects *objs);

/* ---- the plan: everything the restore core needs, inside the hole ---- */
struct ck_plan_region {
	uint64_t start, end, foff;
	int prot, shared, fd, anon, growsdown;
	int sysv_id; /* a SysV segment: attached with shmat, not mapped; else -1 */
	int sysv_write; /* attached for writing (a piece of the attachment is writable) */
	int sysv_piece; /* a later piece of the attachment an earlier region made: only its protection */
	int sysv_rmid;  /* the program had removed the segment while attached: removed again once attached */
	uint32_t vm_flags; /* CK_VM_* */
	int shim_code; /* the shim's own mappings (kind "stored"): mapped from the image, so that
			* ckrun-hold finds the shim's code by its file (addon/ckrun-hold.c find_shim) */
	uint64_t first_run, nruns;
	uint64_t first_guard, nguards; /* in the runs: stretches to put guards on (addr, len) */
};

/* With CKRUN_RESTORE_MAP=1 (measurements), runs at least this long are
 * mapped from the image (private, copy on write) instead of read. */
#define CK_MAP_RUN_MIN (64UL << 10)

struct ck_plan_run {
	uint64_t addr, len, off;
	int fd; /* the image file that holds it */
};

#define CK_THREAD_STACK 16384 /* each new thread's stack inside the hole */

/* The credentials the restore core sets in one thread */
struct ck_plan_creds {
	struct ck_creds c;
	uint32_t *groups;       /* c.ngroups of them, inside the hole */
	int set_groups;         /* 0 where setgroups is denied (a user namespace of ckrun's) or not needed */
};

struct ck_plan_thread {
	int tid;
	uint64_t fs_base, clear_tid;
	struct ck_ctx resume;
	uint64_t stack_top;
	uint64_t info; /* resume value: the restore info for the shim */
	struct ck_plan *plan;
	struct ck_core_attrs attrs; /* set before the credentials (attrs.c) */
	struct ck_plan_creds creds; /* its own, or a copy of the process's */
};

/* A lock the restore core takes again (locks.c) */
struct ck_plan_lock {
	int fd, how, write, sig;
	int64_t start, len;
};
#define CK_PLAN_LOCKS 256

/* An owner of a description's I/O signals the restore core sets (fown.c) */
struct ck_plan_owner {
	int fd, type, id, sig, async;
	int done;
};
#define CK_PLAN_OWNERS 256

struct ck_plan {
	int image_fd;
	int nlocks;
	struct ck_plan_lock locks[CK_PLAN_LOCKS];
	int nowners;
	struct ck_plan_owner owners[CK_PLAN_OWNERS];
	int done_fd;            /* a family's: the PID is written here once the process is rebuilt, or -1 */
	int go_fd;              /* a family's: a byte comes here once every process is rebuilt, or -1 */
	int map_runs;           /* 1: map runs from the image (CKRUN_RESTORE_MAP=1, measurements only) */
	int exe_fd;
	int err_fd;
	int pid;
	uint64_t vdso_now[3][2];
	uint64_t vdso_want[3][2];
	uint64_t vdso_tmp;      /* free spot inside the hole for moves */
	/* the bridge to another kernel build's vdso (vdso.c): the image's vdso
	 * put back at its address, each entry point jumping to this kernel's */
	uint64_t vdso_proxy_at, vdso_proxy_len;
	uint64_t vdso_old_vvar[2][2]; /* the image's vvar ranges: kept mapped (read-only, zero) */
	int vdso_nentries;
	uint32_t vdso_entry[CK_VDSO_ENTRIES][2]; /* offset in the image's vdso, in this kernel's */
	uint8_t vdso_proxy[CK_VDSO_TEXT_MAX];
	uint64_t mm[11];
	uint64_t auxv[64];
	uint64_t auxv_len;
	int have_mm;
	uint64_t nofile_cur, nofile_max;
	uint32_t mlockall;      /* CK_VM_LOCKED[|CK_VM_LOCKONFAULT] */
	int close_fds[512];
	int nclose;
	struct ck_plan_region *regions;
	uint64_t nregions;
	struct ck_plan_run *runs;
	uint64_t nruns;
	struct ck_plan_thread *threads;
	uint64_t nthreads;
	/* credentials: every thread sets its own (ck_plan_thread), then
	 * waits until all have (creds_set counts them) and the main thread
	 * puts back the process's dumpable and lets them go */
	int dumpable;
	int last_cap;           /* /proc/sys/kernel/cap_last_cap */
	volatile int creds_set;
	volatile int creds_go;
	/* AIO contexts made again once the memory is back (aio.c) */
	struct ck_plan_aio *aio;
	uint32_t naio;
	int aio_null_fd;
	struct ck_restore_info info;
};

/* image.c */
CK_HIDDEN void ck_image_load(struct ck_image *img, const char *path);
/* schema.c: 1 when buf (one CBOR map) keeps to the image schema's record
 * (CK_SCHEMA_* of schema.h); else 0, and why says where and what, naming
 * the key */
CK_HIDDEN int ck_schema_check(const void *buf, size_t len, int record, char *why, size_t cap);
/* Every chunk of the data area the metadata names (docs/image-format.md):
 * fn(ctx, offset, length, crc, ref) for each, ref -1 for the image's own
 * pages and data, else the index into "images" of the image that holds
 * them. 0 when a chunk is malformed or fn returned 0. */
typedef int (*ck_chunk_fn)(void *ctx, uint64_t off, uint64_t len, uint32_t crc, int ref);
CK_HIDDEN int ck_meta_chunks(const uint8_t *meta, size_t len, ck_chunk_fn fn, void *ctx);
CK_HIDDEN int ck_chunk_inside(const struct ck_image *img, uint64_t off, uint64_t len);
/* The track_id of a metadata map (0 with *found 0 when it has none). */
CK_HIDDEN uint64_t ck_meta_track_id(const uint8_t *meta, size_t len, int *found);

/* report.c: refusals and verbose lines */
__attribute__((format(printf, 1, 2), noreturn)) CK_HIDDEN void ck_refuse(const char *fmt, ...);
/* While set, a refusal jumps there instead of printing and exiting. */
CK_HIDDEN extern jmp_buf *ck_refusal_escape;
/* Appended to every refusal while set (which image refers to the one refused). */
CK_HIDDEN extern const char *ck_refuse_context;
__attribute__((format(printf, 1, 2))) CK_HIDDEN void ck_verbose(const char *fmt, ...);
CK_HIDDEN char *ck_dup_text(const char *s, size_t n);

/* restore.c */
CK_HIDDEN void ck_load_and_check(struct ck_image *img, const char *path, int verify_data);
/* The image-only part of ck_load_and_check: header, metadata, every
 * offset, length and range, the images it refers to and their identity;
 * nothing outside the image is looked at (the fuzz targets run it). */
CK_HIDDEN void ck_image_read(struct ck_image *img, const char *path);
/* One process of a generation's manifest. */
struct ck_manifest_proc {
	int pid;
	const char *image;
	uint64_t bytes;
	uint32_t header_crc;
	int has_identity; /* version 2 manifests name each image's size and header CRC */
};
/* The manifest of the generation in dir, checked (framing, CRC, every
 * field); refuses with the reason. *procs: the processes, root first as
 * listed; returns how many. */
struct ck_manifest {
	int version, root;
	uint64_t generation;
	struct ck_manifest_proc *procs;
	size_t nprocs;
	int (*groups)[3];
	size_t ngroups;
	/* "files": written files to put back or stdio files to reopen, which
	 * ckrun does before any process exists (src/files.ts) */
	int has_files;
};
CK_HIDDEN void ck_manifest_read(struct ck_manifest *m, const char *dir);
/* files.c: `ckrun verify` said (CKRUN_FILES_SAVED) that a restart puts this
 * file back before the restore host runs: whether it is there now says nothing */
CK_HIDDEN int ck_files_kept_by_ckrun(uint64_t dev, uint64_t ino);
/* Free what reading allocated (the fuzz targets read millions). */
CK_HIDDEN void ck_image_release(struct ck_image *img);
CK_HIDDEN void ck_manifest_release(struct ck_manifest *m);
CK_HIDDEN void ck_manifest_parse(struct ck_manifest *m, const uint8_t *buf, size_t len, const char *dir);
/* The image is the one the manifest names (size and header CRC), with the PID it says. */
CK_HIDDEN void ck_image_matches(const struct ck_image *img, const struct ck_manifest_proc *p, const char *dir);
CK_HIDDEN __attribute__((noreturn)) void ck_restore_loaded(struct ck_image *img);
/* What `ckrun-restore` runs (restore_main.c chooses): one image, a family,
 * a check only, or PID 1 of a fresh PID namespace for either. */
CK_HIDDEN __attribute__((noreturn)) void ck_restore_image(const char *path, int verify_data);
CK_HIDDEN __attribute__((noreturn)) void ck_restore_tree(const char *dir, int verify_data, int fresh_namespace);
CK_HIDDEN __attribute__((noreturn)) void ck_check_only(const char *path, int verify_data);
CK_HIDDEN __attribute__((noreturn)) void ck_run_init(const char *path, int verify_data, int tree);
CK_HIDDEN long ck_spawn_with_pid(int pid);
/* The PID of the placeholder leader child i of img (a zombie) needs for its
 * process group when img is restored alone, or 0 (restore.c). */
CK_HIDDEN int ck_zombie_placeholder(const struct ck_image *img, size_t i);
/* front.c: `ckrun-restore --front CLI ARGS...`, the fast start of `ckrun restart ARGS...` */
CK_HIDDEN int ck_front_main(int argc, char **argv);
CK_HIDDEN extern const char *ck_image_name;

/* per-kind parsers (restore host) */
CK_HIDDEN int ck_process_parse(struct cb_dec *d, const char *key, size_t klen, struct ck_image *img);
CK_HIDDEN int ck_threads_parse(struct cb_dec *d, struct ck_image *img);
CK_HIDDEN int ck_signals_parse(struct cb_dec *d, struct ck_image *img);
CK_HIDDEN int ck_files_parse(struct cb_dec *d, struct ck_image *img);
CK_HIDDEN int ck_memory_parse(struct cb_dec *d, struct ck_image *img);
CK_HIDDEN int ck_vdso_parse(struct cb_dec *d, struct ck_image *img);
CK_HIDDEN int ck_mm_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_image *img);

/* per-kind checks and set-up before the switch (restore host) */
CK_HIDDEN void ck_memory_check(struct ck_image *img, int verify_data);
CK_HIDDEN void ck_vdso_check(struct ck_image *img, struct ck_plan *plan);
CK_HIDDEN uint64_t ck_vdso_len_now(void);
/* vdso.c */
CK_HIDDEN int ck_vdso_bridge_forced(void);
CK_HIDDEN void ck_vdso_bridge_plan(struct ck_image *img, struct ck_plan *plan, const uint64_t now[3][2]);
CK_HIDDEN int ck_vdso_bridge_collides(const struct ck_image *img, const struct ck_plan *plan);
CK_HIDDEN void ck_vdso_bridge_place(struct ck_plan *plan, uint64_t block);
CK_HIDDEN void ck_threads_check(struct ck_image *img);
CK_HIDDEN void ck_process_restore(struct ck_image *img, const struct ck_objects *objs);
CK_HIDDEN void ck_creds_check(struct ck_image *img);
CK_HIDDEN size_t ck_creds_plan_size(const struct ck_image *img);
CK_HIDDEN void ck_creds_plan(const struct ck_image *img, struct ck_plan *plan, uint32_t *groups);
CK_HIDDEN int ck_thread_creds_parse(struct cb_dec *d, struct ck_img_thread *t);
CK_HIDDEN void ck_signals_restore(struct ck_image *img);
CK_HIDDEN void ck_memory_open(struct ck_image *img, int base_fd, const struct ck_objects *objs);
CK_HIDDEN void ck_memory_open_refs(struct ck_image *img, int base_fd);
CK_HIDDEN void ck_memory_plan(struct ck_image *img, struct ck_plan *plan,
			      struct ck_plan_region *regions, struct ck_plan_run *runs, const struct ck_objects *objs);
CK_HIDDEN void ck_shm_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd);

/* sysv.c: SysV objects, made once for the whole restore */
CK_HIDDEN int ck_sysv_parse(struct cb_dec *d, struct ck_image *img);
CK_HIDDEN void ck_sysv_release(struct ck_image *img);
CK_HIDDEN int ck_sysv_present(struct ck_image **imgs, size_t n);
CK_HIDDEN void ck_sysv_create_shared(struct ck_image **imgs, size_t n);
CK_HIDDEN int ck_sysv_made_shm(uint64_t id);
CK_HIDDEN void ck_sysv_take_undo(const struct ck_image *img);
CK_HIDDEN void ck_sysv_keep(void);
CK_HIDDEN void ck_sysv_own_namespace(struct ck_image **imgs, size_t n);
CK_HIDDEN void ck_threads_plan(struct ck_image *img, struct ck_plan *plan,
			       struct ck_plan_thread *threads, uint64_t stacks);

/* fds.c: every descriptor, each through its kind (fdkind.h) */
CK_HIDDEN void ck_files_check(struct ck_image *img);
/* Every kind's objects the processes share (pipes, sockets), in objs. */
CK_HIDDEN void ck_files_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd);
/* pty.c: a process that leads its session again takes the family's
 * pseudo-terminal that was its controlling terminal; a group made again
 * becomes its terminal's foreground group again if it was */
CK_HIDDEN void ck_pty_session_opened(int pid, const struct ck_objects *objs);
CK_HIDDEN void ck_pty_group_made(int pgid, const struct ck_objects *objs);
CK_HIDDEN void ck_files_open(struct ck_image *img, int base_fd, const struct ck_objects *objs);
CK_HIDDEN void ck_files_open_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, const int (*groups)[3], size_t ngroups, int base_fd);
CK_HIDDEN void ck_files_install(struct ck_image *img);
CK_HIDDEN void ck_files_release(struct ck_image *img);

/* the restore core (no libc from here); core.c */
CK_CORE __attribute__((noreturn)) void ck_core_fail(struct ck_plan *p, const char *what, long err);
/* restore_core.c */
CK_CORE void ck_core_unmap_all(struct ck_plan *p, uint64_t keep_lo, uint64_t keep_hi);
CK_CORE void ck_core_move_vdso(struct ck_plan *p);
CK_CORE void ck_core_vdso_proxy(struct ck_plan *p);
CK_CORE void ck_core_map_regions(struct ck_plan *p);
CK_CORE void ck_core_check_regions(struct ck_plan *p);
CK_CORE void ck_core_set_mm(struct ck_plan *p);
CK_CORE void ck_core_set_creds(struct ck_plan *p, const struct ck_plan_creds *c);
CK_CORE void ck_core_creds_barrier(struct ck_plan *p, int main_thread);
CK_CORE __attribute__((noreturn)) void ck_core_start_threads(struct ck_plan *p);
/* locks.c */
CK_HIDDEN int ck_locks_parse(struct cb_dec *d, struct ck_img_file *f);
CK_HIDDEN void ck_locks_check(struct ck_image *img, struct ck_img_file *f);
CK_HIDDEN int ck_locks_any(struct ck_image **imgs, size_t n);
CK_HIDDEN void ck_locks_plan(const struct ck_image *img, struct ck_plan *plan);
CK_CORE void ck_core_take_locks(struct ck_plan *p);
/* fown.c */
CK_HIDDEN int ck_fown_parse(struct cb_dec *d, struct ck_img_file *f);
CK_HIDDEN void ck_fown_plan(const struct ck_image *img, struct ck_plan *plan);
CK_CORE void ck_core_set_owners(struct ck_plan *p, int last);

#endif
