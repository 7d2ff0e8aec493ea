/* Memory: every mapping, the pages worth storing, the vdso block and the
 * mm fields (brk, stack, arguments, auxv).
 *
 * Stored: pages of private anonymous memory (heap, stacks, anonymous
 * mappings) that exist, pages of private file mappings that the program
 * changed (pagemap says they are no longer the file's), shared anonymous
 * memory, and whole private mappings of files that are gone. Not stored:
 * pages never touched, unchanged file pages, shared file mappings (the
 * file is their storage). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ckrun.h"
#include "crc32c.h"
#include "restore.h"
#include "sys.h"

enum mm_field {
	MM_START_CODE, MM_END_CODE, MM_START_DATA, MM_END_DATA, MM_START_BRK, MM_BRK,
	MM_START_STACK, MM_ARG_START, MM_ARG_END, MM_ENV_START, MM_ENV_END, MM_COUNT
};
static const char *const mm_names[MM_COUNT] = {
	"start_code", "end_code", "start_data", "end_data", "start_brk", "brk",
	"start_stack", "arg_start", "arg_end", "env_start", "env_end",
};

/* CK_VM_* in bit order, as /proc/PID/smaps names them in VmFlags */
static const char vm_names[CK_VM_COUNT][3] = {"dc", "wf", "dd", "hg", "nh", "sr", "rr", "mg",
					       "lo", "lf", "nr", "gd", "sl", "mw", "dp", "ht"};

struct map_line {
	uint64_t start, end, offset, dev, ino;
	uint64_t vma_start, vma_end; /* the kernel's mapping this is (a part of) */
	int prot, shared;
	const char *name; /* NUL-terminated inside the maps text */
};

static uint64_t kernel_dev(uint64_t major, uint64_t minor)
{
	return ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xffULL) << 12) | ((major & ~0xfffULL) << 32);
}

/* Parses one line of /proc/self/maps in place; returns the next line. */
static char *parse_map_line(char *p, struct map_line *m)
{
	const char *q = p;
	uint64_t major, minor;
	ck_parse_hex(&q, &m->start);
	q++;
	ck_parse_hex(&q, &m->end);
	q++;
	m->prot = (q[0] == 'r' ? PROT_READ : 0) | (q[1] == 'w' ? PROT_WRITE : 0) | (q[2] == 'x' ? PROT_EXEC : 0);
	m->shared = q[3] == 's';
	q += 5;
	ck_parse_hex(&q, &m->offset);
	q++;
	ck_parse_hex(&q, &major);
	q++;
	ck_parse_hex(&q, &minor);
	m->dev = kernel_dev(major, minor);
	q++;
	ck_parse_dec(&q, &m->ino);
	while (*q == ' ')
		q++;
	char *name = (char *)q;
	char *e = name;
	while (*e && *e != '\n')
		e++;
	char *next = *e ? e + 1 : e;
	*e = 0;
	m->name = name;
	m->vma_start = m->start;
	m->vma_end = m->end;
	return next;
}

/* ---- checkpoint ---- */

static void save_mm(struct ck_writer *w, struct ck_scratch *s)
{
	struct cb_enc *e = &w->meta;
	uint64_t f[MM_COUNT];
	ck_memset(f, 0, sizeof f);
	long n = ck_read_file("/proc/self/stat", s->text, 4096);
	const char *p = s->text, *last = 0;
	for (long i = 0; i < n; i++)
		if (s->text[i] == ')')
			last = s->text + i;
	if (last) {
		/* field 3 starts after ") " */
		p = last + 2;
		for (int field = 3; field <= 51 && *p; field++) {
			uint64_t v = 0;
			if (*p == '-')
				p++;
			ck_parse_dec(&p, &v);
			switch (field) {
			case 26: f[MM_START_CODE] = v; break;
			case 27: f[MM_END_CODE] = v; break;
			case 28: f[MM_START_STACK] = v; break;
			case 45: f[MM_START_DATA] = v; break;
			case 46: f[MM_END_DATA] = v; break;
			case 47: f[MM_START_BRK] = v; break;
			case 48: f[MM_ARG_START] = v; break;
			case 49: f[MM_ARG_END] = v; break;
			case 50: f[MM_ENV_START] = v; break;
			case 51: f[MM_ENV_END] = v; break;
			default: break;
			}
			while (*p && *p != ' ')
				p++;
			while (*p == ' ')
				p++;
		}
	}
	f[MM_BRK] = (uint64_t)CK_SYS1(SYS_brk, 0);
	cb_text(e, "mm");
	cb_map(e, MM_COUNT);
	for (int i = 0; i < MM_COUNT; i++)
		cb_kv_uint(e, mm_names[i], f[i]);
	n = ck_read_file("/proc/self/auxv", s->text, 4096);
	cb_text(e, "auxv");
	cb_bytes(e, s->text, n > 0 ? (size_t)n : 0);
}

static void add_volatile(struct ck_writer *w, uint64_t lo, uint64_t hi)
{
	if (w->nvolatile < 4 && hi > lo) {
		w->volatile_lo[w->nvolatile] = CK_PAGE_DOWN(lo);
		w->volatile_hi[w->nvolatile] = CK_PAGE_UP(hi);
		w->nvolatile++;
	}
}

static int contains(const struct map_line *m, uint64_t a)
{
	return a >= m->start && a < m->end;
}

struct region_kind {
	const char *kind;
	int store_all;   /* every page, present or not */
	int anon_only;   /* only pages that are no longer the file's */
	int store_none;
};

/* Memory that a restart mapped from an image: anonymous memory whose
 * pages not changed since the restart are still the image's. */
static int from_restore_image(const struct map_line *m)
{
	if (m->shared || !m->ino)
		return 0;
	for (int i = 0; i < ck_session.nimages && i < CK_MAX_IMAGES; i++)
		if (m->ino == ck_session.image_ino[i] && m->dev == ck_session.image_dev[i])
			return 1;
	return 0;
}

/* The mappings of the process being saved (set where /proc/self/maps was
 * read), for classify to look at the others. */
static const struct map_line *maps_now;
static int nmaps_now;

/* A deleted shared memory object (a memfd, shared anonymous memory, a
 * removed /dev/shm file) that this process also maps shared: a private
 * mapping of it is a view of that object, whose pages not written through
 * it follow the object; it is restored as such (the object comes back
 * whole from the shared mapping), only its own written pages stored. */
static int private_view_of_shared(const struct map_line *m)
{
	const char *n = m->name;
	if (m->shared || !ck_ends_with(n, " (deleted)") ||
	    !(ck_starts_with(n, "/memfd:") || ck_starts_with(n, "/dev/zero") || ck_starts_with(n, "/dev/shm/")))
		return 0;
	for (int i = 0; i < nmaps_now; i++)
		if (maps_now[i].shared && maps_now[i].dev == m->dev && maps_now[i].ino == m->ino)
			return 1;
	return 0;
}

/* Decides what a mapping is and which of its pages are worth storing. */
static struct region_kind classify(const struct map_line *m, int file_replaced)
{
	struct region_kind k = {"anon", 0, 0, 0};
	const char *n = m->name;
	if (from_restore_image(m)) {
		k.store_all = 1;
	} else if (n[0] == '/' && !m->shared && m->start >= ck_session.lo && m->end <= ck_session.hi) {
		/* the shim's own code travels with the image */
		k.kind = "stored";
		k.store_all = 1;
	} else if (ck_streq(n, "[heap]")) {
		k.kind = "heap";
	} else if (ck_streq(n, "[stack]")) {
		k.kind = "stack";
	} else if (n[0] == '/') {
		int gone = ck_ends_with(n, " (deleted)") || file_replaced;
		if (m->shared) {
			/* POSIX shared memory lives in tmpfs, which a reboot empties:
			 * saved like any shared memory */
			if (gone || ck_starts_with(n, "/SYSV") || ck_starts_with(n, "/dev/shm/")) {
				k.kind = "shmem";
			} else {
				k.kind = "file";
				k.store_none = 1;
			}
		} else if (private_view_of_shared(m)) {
			k.kind = "shmem";
			k.anon_only = 1;
		} else if (gone) {
			k.kind = "deleted";
			k.store_all = 1;
		} else {
			k.kind = "file";
			k.anon_only = 1;
		}
	} else if (m->shared) {
		k.kind = "shmem";
	}
	return k;
}

/* A stored page worth keeping: not the zero page, and in a file mapping
 * not the file's own page. */
static int stretch_wanted(const struct region_kind *k, uint64_t cat)
{
	if (cat & CK_PAGE_PFNZERO)
		return 0;
	return k->anon_only ? !(cat & CK_PAGE_FILE) : 1;
}

static void list_run(struct cb_enc *e, uint64_t addr, uint64_t npages, uint64_t off, uint32_t crc)
{
	cb_array(e, 4);
	cb_uint(e, addr);
	cb_uint(e, npages);
	cb_uint(e, off);
	cb_uint(e, crc);
}

/* Stores a run of pages; lists it in the metadata, or, while shared memory
 * is collected before the fork, in the scratch table. */
static void emit_run(struct ck_writer *w, struct ck_scratch *s, uint64_t addr, uint64_t npages, int readable,
		     uint64_t *bytes)
{
	uint32_t crc = 0;
	if (s->collecting_shared && s->nshared_runs >= CK_MAX_SHARED_RUNS) {
		ck_writer_fail(w, -E2BIG, "the program's shared memory is too fragmented (more than 8192 runs)");
		return;
	}
	uint64_t off = ck_image_put_memory(w, addr, npages * CK_PAGE, readable, &crc);
	if (w->err)
		return;
	if (s->collecting_shared)
		s->shared_runs[s->nshared_runs++] = (struct ck_shared_run){addr, npages, off, crc};
	else
		list_run(&w->meta, addr, npages, off, crc);
	*bytes += npages * CK_PAGE;
}

static void list_ref_run(struct cb_enc *e, uint64_t addr, uint64_t npages, uint64_t off, int file)
{
	cb_array(e, 5);
	cb_uint(e, addr);
	cb_uint(e, npages);
	cb_uint(e, off);
	cb_int(e, -1); /* checked by the image that holds it */
	cb_uint(e, (uint64_t)file);
}

/* Consecutive pages with the same source become one run: stored here
 * (file -1), or referred to in another image at consecutive offsets. */
struct run_builder {
	uint64_t start, n, off;
	int file;
	int readable;
};

static void flush_run(struct ck_writer *w, struct ck_scratch *s, struct run_builder *rb, uint64_t *bytes)
{
	if (!rb->n || w->err)
		return;
	if (rb->file < 0)
		emit_run(w, s, rb->start, rb->n, rb->readable, bytes);
	else
		list_ref_run(&w->meta, rb->start, rb->n, rb->off, rb->file);
	rb->n = 0;
}

static void add_pages(struct ck_writer *w, struct ck_scratch *s, struct run_builder *rb, uint64_t addr, uint64_t n,
		      int file, uint64_t off, uint64_t *bytes)
{
	if (!n)
		return;
	if (rb->n && rb->start + rb->n * CK_PAGE == addr && rb->file == file &&
	    (file < 0 || rb->off + rb->n * CK_PAGE == off)) {
		rb->n += n;
		return;
	}
	flush_run(w, s, rb, bytes);
	rb->start = addr;
	rb->n = n;
	rb->file = file;
	rb->off = off;
}

/* The guards of the region being saved (madvise MADV_GUARD_INSTALL): its
 * stretches that hold nothing and cannot be read. The writer saves one
 * region at a time. */
#define MAX_GUARDS 1024
static struct ck_written guards[MAX_GUARDS];
static uint64_t nguards;

/* Every page of [addr, addr + n pages) but those behind guards. */
static void add_unguarded(struct ck_writer *w, struct ck_scratch *s, struct run_builder *rb, uint64_t addr, uint64_t n,
			  uint64_t *bytes)
{
	uint64_t end = addr + n * CK_PAGE;
	for (uint64_t i = 0; i < nguards && addr < end; i++) {
		if (guards[i].end <= addr || guards[i].start >= end)
			continue;
		if (guards[i].start > addr)
			add_pages(w, s, rb, addr, (guards[i].start - addr) / CK_PAGE, -1, 0, bytes);
		addr = guards[i].end;
	}
	if (addr < end)
		add_pages(w, s, rb, addr, (end - addr) / CK_PAGE, -1, 0, bytes);
}

/* How the pages of one region are found: by what exists alone, against the
 * image the region was mapped from, or against the parent image. */
enum page_mode { BY_PRESENCE, BY_MAPPED_IMAGE, BY_PARENT };

/* Pages written since the parent image are stored; the others are
 * referred to where the parent chain holds them, or were never stored
 * (the zero page). */
static void add_parent_stretch(struct ck_writer *w, struct ck_scratch *s, struct run_builder *rb,
			       const struct ck_written *st, uint64_t *bytes)
{
	for (uint64_t addr = st->start; addr < st->end && !w->err; addr += CK_PAGE) {
		int file = -1;
		uint64_t off = 0;
		/* a lookup that finds the page in a parent that cannot be
		 * linked (-1) leaves file at -1: the page is stored */
		if (!ck_track_written(s, addr) && ck_parent_lookup(s, addr, &file, &off) == 0)
			continue;
		add_pages(w, s, rb, addr, 1, file, off, bytes);
	}
}

/* Runs of pages, found by asking the kernel which pages exist (at a cost
 * that follows the pages present, not the region's size): present or
 * swapped pages that are not unchanged file pages; in incremental
 * checkpoints, unchanged pages refer to where an older image holds them. */
static void save_runs_present(struct ck_writer *w, struct ck_scratch *s, int pmfd, const struct map_line *m,
			      const struct region_kind *k, enum page_mode mode, int image_file, uint64_t *bytes)
{
	struct run_builder rb = {0, 0, 0, -1, m->prot & PROT_READ};
	if (k->store_all && mode == BY_PRESENCE) {
		add_unguarded(w, s, &rb, m->start, (m->end - m->start) / CK_PAGE, bytes);
		flush_run(w, s, &rb, bytes);
		return;
	}
	struct ck_page_scan ps;
	struct ck_written st;
	uint64_t image_from = m->start; /* mapped from an image: pages before this are handled */
	ck_page_scan_init(&ps, pmfd, m->start, m->end, s->pagemap, CK_SCRATCH_PM);
	while (!w->err && ck_page_scan_next(&ps, &st)) {
		uint64_t n = (st.end - st.start) / CK_PAGE;
		if (mode == BY_MAPPED_IMAGE) {
			/* a changed page is an anonymous copy; the others are the image's */
			if (st.categories & CK_PAGE_FILE)
				continue;
			add_pages(w, s, &rb, image_from, (st.start - image_from) / CK_PAGE, image_file,
				  m->offset + (image_from - m->start), bytes);
			add_pages(w, s, &rb, st.start, n, -1, 0, bytes);
			image_from = st.end;
		} else if (mode == BY_PARENT) {
			if (!(st.categories & CK_PAGE_PFNZERO)) /* else released since, or only read: zero */
				add_parent_stretch(w, s, &rb, &st, bytes);
		} else if (stretch_wanted(k, st.categories)) {
			add_pages(w, s, &rb, st.start, n, -1, 0, bytes);
		}
	}
	if (ps.err) {
		ck_writer_fail(w, ps.err, "cannot read which pages exist (/proc/self/pagemap)");
		return;
	}
	if (mode == BY_MAPPED_IMAGE)
		add_pages(w, s, &rb, image_from, (m->end - image_from) / CK_PAGE, image_file,
			  m->offset + (image_from - m->start), bytes);
	flush_run(w, s, &rb, bytes);
}

static void map_files_path(const struct map_line *m, char *path, size_t cap)
{
	char hex[20];
	struct ck_str p, h;
	ck_str_init(&p, path, cap);
	ck_str_add(&p, "/proc/self/map_files/");
	ck_str_init(&h, hex, sizeof hex);
	ck_str_hex(&h, m->vma_start);
	ck_str_add(&p, hex + 2);
	ck_str_add(&p, "-");
	ck_str_init(&h, hex, sizeof hex);
	ck_str_hex(&h, m->vma_end);
	ck_str_add(&p, hex + 2);
}

/* Shared memory: its page tables are not what counts (a forked writer has
 * none of them); the shmem file knows which ranges hold data, swapped or not. */
static int save_runs_shmem(struct ck_writer *w, struct ck_scratch *s, const struct map_line *m, uint64_t *bytes)
{
	char path[96];
	map_files_path(m, path, sizeof path);
	int fd = (int)ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	uint64_t lo = m->offset, hi = m->offset + (m->end - m->start);
	for (uint64_t pos = lo; pos < hi && !w->err;) {
		long data = ck_lseek(fd, (int64_t)pos, 3 /* SEEK_DATA */);
		if (data < 0 || (uint64_t)data >= hi)
			break;
		long hole = ck_lseek(fd, data, 4 /* SEEK_HOLE */);
		uint64_t a = CK_PAGE_DOWN((uint64_t)data), b = hole < 0 ? hi : CK_PAGE_UP((uint64_t)hole);
		if (b > hi)
			b = hi;
		emit_run(w, s, m->start + (a - lo), (b - a) / CK_PAGE, m->prot & PROT_READ, bytes);
		pos = b;
	}
	ck_close(fd);
	return 1;
}

/* Shared memory, already stored before the fork: only listed. */
static void list_shared_runs(struct ck_writer *w, struct ck_scratch *s, const struct map_line *m, uint64_t *bytes)
{
	for (int i = 0; i < s->nshared_runs; i++) {
		const struct ck_shared_run *r = &s->shared_runs[i];
		if (r->addr >= m->start && r->addr < m->end) {
			list_run(&w->meta, r->addr, r->npages, r->off, r->crc);
			*bytes += r->npages * CK_PAGE;
		}
	}
}

static void save_shmem_runs(struct ck_writer *w, struct ck_scratch *s, int pmfd, const struct map_line *m,
			    const struct region_kind *k, uint64_t *bytes)
{
	if (save_runs_shmem(w, s, m, bytes))
		return;
	struct region_kind all = *k;
	all.store_all = 1;
	save_runs_present(w, s, pmfd, m, &all, BY_PRESENCE, -1, bytes);
}

/* Memory that can be write-protected to find what changed; not hugetlb
 * memory, which write-protection covers only by whole huge page: its
 * regions are saved by the pages present (hugetlb_kind). */
static int trackable(const struct map_line *m, const struct region_kind *k)
{
	return !m->shared && !from_restore_image(m) && !ck_starts_with(m->name, "/anon_hugepage") &&
	       (ck_streq(k->kind, "anon") || ck_streq(k->kind, "heap") || ck_streq(k->kind, "stack"));
}

static void save_runs(struct ck_writer *w, struct ck_scratch *s, int pmfd, const struct map_line *m,
		      const struct region_kind *k, uint64_t *bytes)
{
	if (k->store_none)
		return;
	if (ck_streq(k->kind, "shmem") && m->shared) {
		list_shared_runs(w, s, m, bytes);
		return;
	}
	if (from_restore_image(m)) {
		char path[96];
		map_files_path(m, path, sizeof path);
		int file = ck_ref_for_mapping(s, path);
		if (file >= 0) {
			save_runs_present(w, s, pmfd, m, k, BY_MAPPED_IMAGE, file, bytes);
			return;
		}
	} else if (trackable(m, k) && ck_track_covers(s, m->start, m->end)) {
		save_runs_present(w, s, pmfd, m, k, BY_PARENT, -1, bytes);
		return;
	}
	save_runs_present(w, s, pmfd, m, k, BY_PRESENCE, -1, bytes);
}

/* The identity of the file actually mapped (not whatever the path names
 * now). /proc/self/map_files answers only with CAP_CHECKPOINT_RESTORE or
 * CAP_SYS_ADMIN; without them the file at the path is the mapped one when
 * it has the device and inode /proc/self/maps shows (a file replaced since
 * cannot have them: the mapping keeps the old inode alive). Where they
 * differ though the file is the same (overlayfs shows the lower file's)
 * the mapping counts as replaced and is stored in full, as before. */
static int mapped_file_stat(const struct map_line *m, struct ck_stat *st)
{
	char path[96];
	map_files_path(m, path, sizeof path);
	long r = CK_SYS4(SYS_newfstatat, AT_FDCWD, path, st, 0);
	if (r == 0)
		return 1;
	if (r != -EPERM && r != -EACCES)
		return 0;
	return CK_SYS4(SYS_newfstatat, AT_FDCWD, m->name, st, 0) == 0 && st->dev == m->dev && st->ino == m->ino;
}

/* /proc/sysvipc/shm prints a segment's permissions in octal. */
static void parse_oct(const char **p, uint64_t *out)
{
	uint64_t v = 0;
	while (**p >= '0' && **p <= '7')
		v = v * 8 + (uint64_t)(*(*p)++ - '0');
	*out = v;
}

/* What kind of shared memory object a mapping is, so that restart makes
 * the same kind again: memfd (with its name), SysV segment (key, id,
 * mode), POSIX shared memory (its path under /dev/shm), or anonymous. */
/* The size of the object a shared memory mapping maps, -1 when unknown
 * (/proc/self/map_files answers only with CAP_CHECKPOINT_RESTORE or
 * CAP_SYS_ADMIN). A mapping may reach beyond the object's end. */
static int64_t shm_object_size(const struct map_line *m)
{
	char path[96];
	struct ck_stat st;
	map_files_path(m, path, sizeof path);
	if (CK_SYS4(SYS_newfstatat, AT_FDCWD, path, &st, 0) != 0 || st.dev != m->dev || st.ino != m->ino)
		return -1;
	return st.size;
}

static void save_shm_object(struct cb_enc *e, const struct map_line *m)
{
	const char *n = m->name;
	int64_t size = ck_starts_with(n, "/SYSV") ? -1 : shm_object_size(m);
	int with_size = size >= 0;
	cb_text(e, "shm_object");
	if (ck_starts_with(n, "/memfd:")) {
		size_t l = ck_strlen(n) - 7;
		if (ck_ends_with(n, " (deleted)"))
			l -= 10;
		cb_map(e, 2 + (uint64_t)with_size);
		cb_kv_text(e, "kind", "memfd");
		cb_text(e, "name");
		cb_textn(e, n + 7, l);
		if (with_size)
			cb_kv_uint(e, "size", (uint64_t)size);
	} else if (ck_starts_with(n, "/SYSV")) {
		const char *q = n + 5;
		uint64_t key = 0, mode = 0600, size = 0;
		ck_parse_hex(&q, &key);
		char buf[8192];
		/* "key shmid perms size ..." for every segment */
		long len = ck_read_file("/proc/sysvipc/shm", buf, sizeof buf);
		for (const char *p = buf; len > 0 && *p;) {
			uint64_t k2, id, perms, sz;
			const char *r = p;
			while (*r == ' ')
				r++;
			int neg = *r == '-';
			r += neg;
			if (ck_parse_dec(&r, &k2)) {
				while (*r == ' ')
					r++;
				ck_parse_dec(&r, &id);
				while (*r == ' ')
					r++;
				parse_oct(&r, &perms);
				while (*r == ' ')
					r++;
				ck_parse_dec(&r, &sz);
				if (id == m->ino) {
					mode = perms & 0777; /* without SHM_DEST, SHM_LOCKED */
					size = sz;
				}
			}
			while (*p && *p != '\n')
				p++;
			if (*p)
				p++;
		}
		cb_map(e, 5);
		cb_kv_text(e, "kind", "sysv");
		cb_kv_uint(e, "key", key);
		cb_kv_uint(e, "id", m->ino);
		cb_kv_uint(e, "mode", mode);
		cb_kv_uint(e, "size", size);
	} else if (ck_starts_with(n, "/dev/shm/")) {
		cb_map(e, 2 + (uint64_t)with_size);
		cb_kv_text(e, "kind", "posix");
		cb_text(e, "path");
		cb_textn(e, n, ck_ends_with(n, " (deleted)") ? ck_strlen(n) - 10 : ck_strlen(n));
		if (with_size)
			cb_kv_uint(e, "size", (uint64_t)size);
	} else {
		cb_map(e, 1 + (uint64_t)with_size);
		cb_kv_text(e, "kind", "anon");
		if (with_size)
			cb_kv_uint(e, "size", (uint64_t)size);
	}
}

/* What a mapping is, with the identity of its file when it has one. */
static struct region_kind region_of(const struct map_line *m, struct ck_stat *st)
{
	struct ck_stat now;
	int replaced = 0;
	if (m->name[0] == '/' && !ck_ends_with(m->name, " (deleted)") && m->ino) {
		int have_file = mapped_file_stat(m, st);
		replaced = !have_file || CK_SYS4(SYS_newfstatat, AT_FDCWD, m->name, &now, 0) != 0 ||
			   now.ino != st->ino || now.dev != st->dev;
	}
	return classify(m, replaced);
}

static void save_vm_flags(struct cb_enc *e, uint32_t flags)
{
	uint64_t n = 0;
	for (int b = 0; b < CK_VM_COUNT; b++)
		n += (flags >> b) & 1;
	if (!n)
		return;
	cb_text(e, "vmflags");
	cb_array(e, n);
	for (int b = 0; b < CK_VM_COUNT; b++)
		if (flags & (1u << b))
			cb_textn(e, vm_names[b], 2);
}

/* A page of m the writer could not read (ck_image_put_memory failed with
 * EFAULT): the checkpoint fails naming the mapping, never the writer. */
static void name_unreadable(struct ck_writer *w, const struct map_line *m)
{
	if (w->err != -EFAULT || !ck_streq(w->err_what, "cannot read the program's memory"))
		return;
	w->err_what = "cannot save the program's memory";
	struct ck_str d;
	ck_str_init(&d, w->err_detail, sizeof w->err_detail);
	ck_str_add(&d, "the region ");
	ck_str_hex(&d, m->start);
	ck_str_add(&d, "-");
	ck_str_hex(&d, m->end);
	if (m->name[0]) {
		ck_str_add(&d, " (");
		ck_str_add(&d, m->name);
		ck_str_add(&d, ")");
	}
	ck_str_add(&d, " holds pages that cannot be read: pages of a file mapping beyond the end of its file, or guard "
		       "pages (madvise MADV_GUARD_INSTALL) on a kernel that does not tell them (before 6.14); ckrun "
		       "cannot save them yet, the program runs on");
}

static void fail_at(struct ck_writer *w, const char *what, uint64_t start, uint64_t end, const char *why);

/* "guards": [[start, end], ...], the region's stretches behind guards,
 * installed again at restart. */
static void save_guards(struct ck_writer *w, int pmfd, const struct map_line *m)
{
	long n = ck_guard_ranges(pmfd, m->start, m->end, guards, MAX_GUARDS);
	nguards = n > 0 ? (uint64_t)n : 0;
	if (n < 0) {
		fail_at(w, "cannot list the guard pages (madvise MADV_GUARD_INSTALL) of a region", m->start, m->end,
			n == -E2BIG ? "it has more than 1024 stretches of them" : "PAGEMAP_SCAN failed");
		return;
	}
	if (!nguards)
		return;
	cb_text(&w->meta, "guards");
	cb_array(&w->meta, nguards);
	for (uint64_t i = 0; i < nguards; i++) {
		cb_array(&w->meta, 2);
		cb_uint(&w->meta, guards[i].start);
		cb_uint(&w->meta, guards[i].end);
	}
}

/* hugetlb memory comes back as hugetlb memory of the same page size: a
 * private anonymous mapping (its name is the hugetlbfs file behind it)
 * as anonymous memory with MAP_HUGETLB, shared memory as a memfd with
 * MFD_HUGETLB (the object kinds say which), a file of a hugetlbfs mount
 * mapped shared as that file, a private view of a memfd the process also
 * maps shared as a private mapping of it. Another private mapping of a
 * hugetlbfs file is not made again yet. */
static struct region_kind hugetlb_kind(struct ck_writer *w, const struct map_line *m, struct region_kind k)
{
	if (!m->shared && ck_starts_with(m->name, "/anon_hugepage")) {
		k.kind = "anon";
		k.store_all = 0;
		k.anon_only = 0;
	} else if (!m->shared && !private_view_of_shared(m)) {
		fail_at(w, "cannot save the program's memory", m->start, m->end,
			"is a private mapping of a file on hugetlbfs (or a memfd made with MFD_HUGETLB); ckrun cannot "
			"make it again yet: map it shared, or unmap it before the checkpoint; the program runs on");
	}
	return k;
}

/* A private mapping of a deleted regular file that a descriptor of this
 * process still holds: the restore makes that file again for the
 * descriptor (deleted.c), so the mapping is made from it with only the
 * pages the program wrote, and its other pages follow the file as before
 * (writes through the descriptor show; zdtm unlink_mmap02). */
static int held_open_deleted(const struct map_line *m)
{
	if (!ck_ends_with(m->name, " (deleted)"))
		return 0;
	/* the program's table: a forked writer has closed its copy */
	char path[64];
	struct ck_str p;
	ck_str_init(&p, path, sizeof path);
	ck_str_add(&p, "/proc/");
	ck_str_udec(&p, (uint64_t)ck_session.self_pid);
	ck_str_add(&p, "/fd");
	long dfd = ck_openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return 0;
	char buf[2048];
	int found = 0;
	for (long n; !found && (n = ck_getdents64((int)dfd, buf, sizeof buf)) > 0;)
		for (long off = 0; off < n && !found;) {
			struct ck_dirent64 *d = (struct ck_dirent64 *)(buf + off);
			off += d->reclen;
			struct ck_stat st;
			if (d->name[0] == '.' || CK_SYS4(SYS_newfstatat, dfd, d->name, &st, 0) != 0)
				continue;
			found = (st.mode & S_IFMT) == S_IFREG && st.dev == m->dev && st.ino == m->ino && st.nlink == 0;
		}
	ck_close((int)dfd);
	return found;
}

static void save_region(struct ck_writer *w, struct ck_scratch *s, int pmfd, const struct map_line *m, uint32_t flags)
{
	struct cb_enc *e = &w->meta;
	struct ck_stat st;
	struct region_kind k = region_of(m, &st);
	uint64_t bytes = 0;
	if (flags & CK_VM_HUGETLB)
		k = hugetlb_kind(w, m, k);
	int open_deleted = ck_streq(k.kind, "deleted") && !m->shared && held_open_deleted(m);
	if (open_deleted) {
		k.store_all = 0;
		k.anon_only = 1;
	}

	cb_map_open(e);
	cb_kv_uint(e, "start", m->start);
	cb_kv_uint(e, "end", m->end);
	cb_kv_uint(e, "prot", (uint64_t)m->prot);
	cb_kv_bool(e, "shared", m->shared);
	cb_kv_text(e, "kind", k.kind);
	cb_kv_text(e, "name", from_restore_image(m) ? "" : m->name);
	/* only a shared file mapping's file is opened for it: for writing
	 * when mprotect may make it writable (the program's descriptor was) */
	if (!m->shared || !ck_streq(k.kind, "file"))
		flags &= ~CK_VM_MAYWRITE;
	save_vm_flags(e, flags);
	if (flags & CK_VM_HUGETLB)
		cb_kv_uint(e, "huge_page", 1ull << CK_VM_HUGE_SHIFT(flags));
	if (open_deleted) {
		cb_text(e, "open_deleted");
		cb_array(e, 3);
		cb_uint(e, m->dev);
		cb_uint(e, m->ino);
		cb_uint(e, m->offset);
	}
	if (ck_streq(k.kind, "stored") && m->name[0] == '/') {
		/* the library the shim's code was mapped from: mapped from it
		 * again when a restart finds that very file, so that the program
		 * sees the same /proc/self/maps (open_shim_file) */
		cb_text(e, "shim_file");
		cb_array(e, 3);
		cb_uint(e, m->dev);
		cb_uint(e, m->ino);
		cb_uint(e, m->offset);
	}
	if (ck_streq(k.kind, "shmem")) {
		/* the object's identity, shared between processes, and where this
		 * mapping starts in it */
		cb_text(e, "shm");
		cb_array(e, 3);
		cb_uint(e, m->dev);
		cb_uint(e, m->ino);
		cb_uint(e, m->offset);
		save_shm_object(e, m);
	}
	if (ck_streq(k.kind, "file")) {
		cb_text(e, "file");
		cb_map(e, 6);
		cb_kv_text(e, "path", m->name);
		cb_kv_uint(e, "offset", m->offset);
		cb_kv_uint(e, "dev", st.dev);
		cb_kv_uint(e, "ino", st.ino);
		cb_kv_uint(e, "size", (uint64_t)st.size);
		cb_kv_uint(e, "mtime_ns", st.mtime * 1000000000ULL + st.mtime_ns);
	}
	save_guards(w, pmfd, m);
	cb_text(e, "runs");
	cb_array_open(e);
	save_runs(w, s, pmfd, m, &k, &bytes);
	name_unreadable(w, m);
	cb_close(e);
	cb_kv_uint(e, "bytes", bytes);
	cb_close(e);
}

static void save_vdso(struct ck_writer *w, const struct map_line *maps, int n)
{
	struct cb_enc *e = &w->meta;
	static const char *const names[3] = {"[vvar]", "[vvar_vclock]", "[vdso]"};
	static const char *const keys[3] = {"vvar", "vvar_vclock", "vdso"};
	uint32_t crc = 0;
	cb_text(e, "vdso");
	cb_map_open(e);
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < n; i++) {
			if (!ck_streq(maps[i].name, names[k]))
				continue;
			cb_kv_range(e, keys[k], maps[i].start, maps[i].end);
			if (k == 2) {
				crc = ck_crc32c(0, (const void *)maps[i].start, maps[i].end - maps[i].start);
				/* its bytes: a restart on another kernel build puts
				 * them back with each entry point sent to that
				 * kernel's vdso (vdso.c) */
				if (maps[i].end - maps[i].start <= CK_VDSO_TEXT_MAX) {
					cb_text(e, "text");
					cb_bytes(e, (const void *)maps[i].start, maps[i].end - maps[i].start);
				}
			}
		}
	}
	cb_kv_uint(e, "vdso_crc", crc);
	cb_close(e);
}

static int read_maps(struct ck_writer *w, struct ck_scratch *s, struct map_line **out)
{
	long len = ck_read_file("/proc/self/maps", s->text, CK_SCRATCH_TEXT / 2);
	if (len < 0 || len >= (long)(CK_SCRATCH_TEXT / 2) - 1) {
		ck_writer_fail(w, len < 0 ? len : -E2BIG, "cannot read /proc/self/maps");
		return 0;
	}
	struct map_line *maps = (struct map_line *)(s->text + CK_SCRATCH_TEXT / 2);
	int max = (int)(CK_SCRATCH_TEXT / 2 / sizeof *maps), n = 0;
	for (char *p = s->text; *p && n < max;)
		p = parse_map_line(p, &maps[n++]);
	*out = maps;
	maps_now = maps;
	nmaps_now = n;
	return n;
}

/* The scratch buffers the list lives in are no part of the program. */
static void forget_maps(void)
{
	maps_now = 0;
	nmaps_now = 0;
}

/* Shared memory whose pages another process's image holds. */
static int skipped(const struct ck_scratch *s, const struct map_line *m)
{
	for (int i = 0; i < s->nskip; i++)
		if (s->skip[i].start == m->dev && s->skip[i].end == m->ino)
			return 1;
	return 0;
}

/* ---- the attributes of mappings (VmFlags) ---- */

static uint32_t parse_vm_flags(const char *f)
{
	uint32_t flags = 0;
	for (; *f; f++) {
		if (f[0] != ' ' || !f[1] || !f[2] || (f[3] && f[3] != ' ' && f[3] != '\n'))
			continue;
		for (int b = 0; b < CK_VM_COUNT; b++)
			if (f[1] == vm_names[b][0] && f[2] == vm_names[b][1])
				flags |= 1u << b;
	}
	return flags;
}

/* The stopped mapping that holds addr, or the first after it. */
static uint64_t vma_index(const struct ck_scratch *s, uint64_t addr)
{
	uint64_t lo = 0, hi = s->nvmas;
	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;
		if (s->vmas[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int in_scratch(const struct ck_scratch *s, uint64_t start, uint64_t end)
{
	return start >= s->start && end <= s->end;
}

/* ckrun's scratch mapping is no part of the program, but the kernel merges
 * it with a neighbouring mapping of the program's that is private,
 * anonymous and MAP_NORESERVE too: the parts of m outside it (0 to 2). */
static int outside_scratch(const struct ck_scratch *s, const struct map_line *m, struct map_line part[2])
{
	int n = 0;
	if (m->end <= s->start || m->start >= s->end) {
		part[0] = *m;
		return 1;
	}
	if (m->start < s->start) {
		part[n] = *m;
		part[n++].end = s->start;
	}
	if (m->end > s->end) {
		part[n] = *m;
		part[n].start = s->end;
		part[n++].offset = m->offset + (s->end - m->start);
	}
	return n;
}

static void fail_at(struct ck_writer *w, const char *what, uint64_t start, uint64_t end, const char *why)
{
	if (w->err)
		return;
	ck_writer_fail(w, -EINVAL, what);
	struct ck_str d;
	ck_str_init(&d, w->err_detail, sizeof w->err_detail);
	ck_str_add(&d, "the region ");
	ck_str_hex(&d, start);
	ck_str_add(&d, "-");
	ck_str_hex(&d, end);
	ck_str_add(&d, " ");
	ck_str_add(&d, why);
}

/* One mapping's VmFlags. While stopped every mark is taken, and ckrun's
 * own scratch mapping tells whether new mappings are locked (mlockall
 * MCL_FUTURE). A forked writer's own marks add what a fork passes on; a
 * region still marked wipe-on-fork there was not unmarked for the fork,
 * so the writer holds zeros instead of its pages. */
static void note_vm_flags(struct ck_writer *w, struct ck_scratch *s, uint64_t start, uint64_t end, uint32_t flags,
			  int in_writer)
{
	if (!in_writer && start <= s->start && s->end <= end) /* the scratch, or what it merged into */
		s->mlockall = flags & (CK_VM_LOCKED | CK_VM_LOCKONFAULT);
	if (in_scratch(s, start, end))
		return;
	if (in_writer && s->writer_forked) {
		/* MAP_DROPPABLE memory is wipe-on-fork by nature, and the
		 * kernel may drop its pages whenever it likes: saved empty */
		if ((flags & CK_VM_WIPEONFORK) && !(flags & CK_VM_DROPPABLE))
			fail_at(w, "cannot save the program's memory", start, end,
				"is marked MADV_WIPEONFORK by a raw system call ckrun did not see, so the checkpoint writer "
				"cannot read it; let the program call madvise() through libc");
		flags &= ~(CK_VM_NOT_INHERITED | CK_VM_WIPEONFORK);
	}
	for (uint64_t i = vma_index(s, start); i < s->nvmas && s->vmas[i].start < end; i++)
		s->vmas[i].flags |= flags;
}

/* /proc/self/smaps, streamed through the text buffer (a screenful for each
 * mapping): every mapping's VmFlags to note_vm_flags. */
static void read_vm_flags(struct ck_writer *w, struct ck_scratch *s, int in_writer)
{
	int fd = (int)ck_openat(AT_FDCWD, "/proc/self/smaps", O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		ck_writer_fail(w, fd, "cannot open /proc/self/smaps");
		return;
	}
	char *buf = s->text;
	size_t len = 0;
	uint64_t start = 0, end = 0, page_kb = 4;
	for (;;) {
		long r = ck_read(fd, buf + len, CK_SCRATCH_TEXT - 1 - len);
		if (r < 0) {
			ck_writer_fail(w, r, "cannot read /proc/self/smaps");
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		buf[len] = 0;
		char *line = buf;
		for (char *nl; *(nl = line); line = nl + 1) {
			while (*nl && *nl != '\n')
				nl++;
			if (!*nl)
				break;
			*nl = 0;
			const char *q = line;
			uint64_t a, b;
			if (ck_parse_hex(&q, &a) && *q == '-') {
				q++;
				if (ck_parse_hex(&q, &b) && *q == ' ') {
					start = a;
					end = b;
				}
			} else if (ck_starts_with(line, "KernelPageSize:")) {
				q = line + 15;
				while (*q == ' ')
					q++;
				if (!ck_parse_dec(&q, &page_kb))
					page_kb = 4;
			} else if (ck_starts_with(line, "VmFlags:")) {
				uint32_t flags = parse_vm_flags(line + 8);
				if (flags & CK_VM_HUGETLB)
					flags |= (uint32_t)(__builtin_ctzll(page_kb) + 10) << CK_VM_HUGE_SHIFT_AT;
				note_vm_flags(w, s, start, end, flags, in_writer);
			}
		}
		len = (size_t)(buf + len - line);
		for (size_t i = 0; i < len; i++)
			buf[i] = line[i];
	}
	ck_close(fd);
}

/* Locked memory (VmLck in /proc/self/status) is not passed on by a fork. */
static int has_locked_memory(struct ck_scratch *s)
{
	long n = ck_read_file("/proc/self/status", s->text, 8192);
	for (long i = 0; i + 6 < n; i++) {
		if ((i == 0 || s->text[i - 1] == '\n') && ck_strneq(s->text + i, "VmLck:", 6)) {
			const char *q = s->text + i + 6;
			uint64_t kb = 0;
			while (*q == ' ' || *q == '\t')
				q++;
			ck_parse_dec(&q, &kb);
			return kb > 0;
		}
	}
	return 0;
}

/* Mappings the kernel makes and a restart makes again (or never had):
 * not the program's memory. [uprobes] is not passed on by a fork. */
static int is_kernels_own(const struct map_line *m)
{
	if (ck_is_aio_ring(m->name))
		return 1; /* an AIO context's ring: aio.c makes it again */
	return m->name[0] == '[' && (ck_streq(m->name, "[vsyscall]") || ck_streq(m->name, "[vvar]") ||
				     ck_streq(m->name, "[vvar_vclock]") || ck_streq(m->name, "[vdso]") ||
				     ck_streq(m->name, "[uprobes]"));
}

static void record_vmas(struct ck_writer *w, struct ck_scratch *s, const struct map_line *maps, int n)
{
	s->nvmas = 0;
	s->mlockall = 0;
	for (int i = 0; i < n; i++) {
		if (is_kernels_own(&maps[i]))
			continue;
		struct map_line part[2];
		for (int j = 0, np = outside_scratch(s, &maps[i], part); j < np; j++) {
			if (s->nvmas >= CK_MAX_VMAS) {
				ck_writer_fail(w, -E2BIG, "the program has more than 65536 mappings");
				return;
			}
			s->vmas[s->nvmas++] = (struct ck_vma){part[j].start, part[j].end, 0, 0};
		}
	}
}

/* While the program is stopped: its mappings as they are (a forked writer's
 * copy lacks what a fork does not pass on), the pages of its shared memory,
 * which no fork can freeze, and which pages of the rest changed since the
 * last checkpoint (protected again for the next one). */
CK_HIDDEN void ck_memory_save_stopped(struct ck_writer *w, struct ck_scratch *s)
{
	struct map_line *maps;
	int n = read_maps(w, s, &maps);
	record_vmas(w, s, maps, n);
	int pmfd = (int)ck_open_own_proc("/proc/self/pagemap");
	if (pmfd < 0) {
		forget_maps();
		ck_writer_fail(w, pmfd, "cannot open /proc/self/pagemap");
		return;
	}
	ck_track_begin(s);
	for (int i = 0; i < n && !w->err; i++) {
		struct ck_stat st;
		if (ck_is_aio_ring(maps[i].name))
			continue;
		struct region_kind k = region_of(&maps[i], &st);
		struct map_line part[2];
		int np = outside_scratch(s, &maps[i], part);
		if (ck_streq(k.kind, "shmem") && maps[i].shared && !skipped(s, &maps[i])) {
			uint64_t bytes = 0;
			s->collecting_shared = 1;
			save_shmem_runs(w, s, pmfd, &maps[i], &k, &bytes);
			s->collecting_shared = 0;
			name_unreadable(w, &maps[i]);
		} else if (trackable(&maps[i], &k)) {
			for (int j = 0; j < np; j++)
				ck_track_region(s, pmfd, part[j].start, part[j].end);
		}
	}
	ck_track_end(s);
	ck_close(pmfd);
	forget_maps();
	/* the marks a fork does not pass on; reading them walks every page
	 * table, so only when there are any */
	if (!w->err && (ck_fork_flags_used || has_locked_memory(s)))
		read_vm_flags(w, s, 0);
}

/* In a restored process: its private anonymous memory is the image's now;
 * protected, the next checkpoint finds what changed since. */
CK_HIDDEN void ck_memory_protect_after_restore(uint64_t skip_lo, uint64_t skip_hi)
{
	forget_maps();
	long buf = ck_mmap(0, CK_SCRATCH_TEXT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (buf < 0 && buf > -4096)
		return;
	int pmfd = (int)ck_open_own_proc("/proc/self/pagemap");
	char *text = (char *)buf;
	long n = pmfd < 0 ? -1 : ck_read_file("/proc/self/maps", text, CK_SCRATCH_TEXT);
	for (char *p = text; n > 0 && *p;) {
		struct map_line ml;
		p = parse_map_line(p, &ml);
		struct region_kind k = classify(&ml, 0);
		if (trackable(&ml, &k) && !(ml.start <= (uint64_t)buf && (uint64_t)buf < ml.end) &&
		    !(ml.start < skip_hi && skip_lo < ml.end))
			ck_track_protect(pmfd, ml.start, ml.end);
	}
	if (pmfd >= 0)
		ck_close(pmfd);
	ck_munmap(text, CK_SCRATCH_TEXT);
}

/* The image's regions are the mappings as they were while the program was
 * stopped: a writer's mapping that joined several of them (lifting a
 * fork mark can merge neighbours) is cut where they met, and each piece
 * has its own attributes. */
static void save_pieces(struct ck_writer *w, struct ck_scratch *s, int pmfd, const struct map_line *m)
{
	uint64_t i = vma_index(s, m->start), at = m->start;
	if (i >= s->nvmas || s->vmas[i].start >= m->end) {
		save_region(w, s, pmfd, m, 0);
		return;
	}
	while (!w->err && at < m->end) {
		struct ck_vma *v = &s->vmas[i];
		uint64_t cut = i + 1 < s->nvmas && s->vmas[i + 1].start < m->end ? s->vmas[i + 1].start : m->end;
		struct map_line piece = *m;
		piece.start = at;
		piece.end = cut;
		piece.offset = m->offset + (at - m->start);
		v->seen = 1;
		save_region(w, s, pmfd, &piece, v->flags);
		at = cut;
		i++;
	}
}

static void mark_seen(struct ck_scratch *s, const struct map_line *m)
{
	for (uint64_t i = vma_index(s, m->start); i < s->nvmas && s->vmas[i].start < m->end; i++)
		s->vmas[i].seen = 1;
}

/* A mapping of the stopped program that the writer's copy lacks was
 * marked MADV_DONTFORK behind the shim's back: its pages cannot be read. */
static void check_all_seen(struct ck_writer *w, struct ck_scratch *s)
{
	for (uint64_t i = 0; i < s->nvmas && !w->err; i++) {
		const struct ck_vma *v = &s->vmas[i];
		if (!v->seen && !in_scratch(s, v->start, v->end))
			fail_at(w, "cannot save the program's memory", v->start, v->end,
				"is missing from the checkpoint writer's copy of the program (marked MADV_DONTFORK by a raw "
				"system call ckrun did not see?); let the program call madvise() through libc");
	}
}

static void save_mlockall(struct cb_enc *e, uint32_t mlockall)
{
	if (!(mlockall & CK_VM_LOCKED))
		return;
	int onfault = (mlockall & CK_VM_LOCKONFAULT) != 0;
	cb_text(e, "mlockall");
	cb_array(e, 1 + (uint64_t)onfault);
	cb_text(e, "future");
	if (onfault)
		cb_text(e, "onfault");
}

CK_HIDDEN void ck_memory_save(struct ck_writer *w, struct ck_scratch *s)
{
	struct cb_enc *e = &w->meta;
	save_mm(w, s);
	read_vm_flags(w, s, 1);

	struct map_line *maps;
	int n = read_maps(w, s, &maps);

	/* What changes while it is being written: the leader's stack and its
	 * thread area (the kernel updates rseq), and the shim's own data. */
	uint64_t sp = (uint64_t)__builtin_frame_address(0);
	for (int i = 0; i < n; i++)
		if (contains(&maps[i], sp))
			add_volatile(w, maps[i].start, maps[i].end);
	add_volatile(w, ck_threads[0].fs_base - CK_PAGE, ck_threads[0].fs_base + 2 * CK_PAGE);
	add_volatile(w, ck_session.rw_start, ck_session.rw_end);

	save_vdso(w, maps, n);

	int pmfd = (int)ck_open_own_proc("/proc/self/pagemap");
	if (pmfd < 0) {
		forget_maps();
		ck_writer_fail(w, pmfd, "cannot open /proc/self/pagemap");
		return;
	}
	cb_text(e, "memory");
	cb_array_open(e);
	for (int i = 0; i < n && !w->err; i++) {
		const struct map_line *m = &maps[i];
		mark_seen(s, m);
		if (is_kernels_own(m))
			continue;
		struct map_line part[2];
		for (int j = 0, np = outside_scratch(s, m, part); j < np && !w->err; j++)
			save_pieces(w, s, pmfd, &part[j]);
	}
	cb_close(e);
	ck_close(pmfd);
	forget_maps();
	check_all_seen(w, s);
	save_mlockall(e, s->mlockall);
}

/* ---- restore host ---- */

/* A list of VmFlags names; one this restorer does not know is kept, and
 * refused by ck_memory_check (never silently dropped). */
static int parse_names(struct cb_dec *d, uint32_t *flags, char unknown[4])
{
	int64_t n;
	if (!cbd_array(d, &n))
		return 0;
	while (cbd_next_item(d, &n)) {
		const char *t;
		size_t tl;
		int known = 0;
		if (!cbd_text(d, &t, &tl))
			return 0;
		for (int b = 0; b < CK_VM_COUNT; b++)
			if (tl == 2 && t[0] == vm_names[b][0] && t[1] == vm_names[b][1]) {
				*flags |= 1u << b;
				known = 1;
			}
		if (!known && !unknown[0])
			memcpy(unknown, t, tl < 3 ? tl : 3);
	}
	return !d->error;
}

/* [[start, end], ...]: page-aligned, in order, inside the region (checked
 * once the region's bounds are known: check_guards). */
static int parse_guards(struct cb_dec *d, struct ck_img_region *r)
{
	int64_t n, m;
	if (!cbd_array(d, &n) || n < 1 || n > 1 << 20)
		return 0;
	r->guards = calloc((size_t)n, sizeof *r->guards);
	for (r->nguards = 0; r->nguards < (size_t)n; r->nguards++) {
		uint64_t *g = r->guards[r->nguards];
		if (!cbd_array(d, &m) || m != 2 || !cbd_uint(d, &g[0]) || !cbd_uint(d, &g[1]))
			return 0;
	}
	return 1;
}

static int check_guards(const struct ck_img_region *r)
{
	uint64_t at = r->start;
	for (size_t i = 0; i < r->nguards; i++) {
		const uint64_t *g = r->guards[i];
		if (g[0] < at || g[1] <= g[0] || g[1] > r->end || (g[0] | g[1]) % CK_PAGE)
			return 0;
		at = g[1];
	}
	return 1;
}

static int parse_region(struct cb_dec *d, struct ck_img_region *r)
{
	int64_t left;
	const char *k;
	size_t kl;
	uint64_t v;
	if (!cbd_map(d, &left))
		return 0;
	r->fd = -1;
	while (cbd_next_key(d, &left, &k, &kl)) {
		const char *s;
		size_t sl;
		if (cbd_key_is(k, kl, "start")) {
			if (!cbd_uint(d, &r->start)) return 0;
		} else if (cbd_key_is(k, kl, "end")) {
			if (!cbd_uint(d, &r->end)) return 0;
		} else if (cbd_key_is(k, kl, "prot")) {
			if (!cbd_uint_max(d, 7, &v)) return 0;
			r->prot = (int)v;
		} else if (cbd_key_is(k, kl, "shared")) {
			if (!cbd_bool(d, &r->shared)) return 0;
		} else if (cbd_key_is(k, kl, "kind")) {
			if (!cbd_text(d, &s, &sl) || sl >= sizeof r->kind) return 0;
			memcpy(r->kind, s, sl);
		} else if (cbd_key_is(k, kl, "name")) {
			if (!cbd_text(d, &s, &sl)) return 0;
			r->name = ck_dup_text(s, sl);
		} else if (cbd_key_is(k, kl, "file")) {
			int64_t fl;
			const char *fk;
			size_t fkl;
			if (!cbd_map(d, &fl)) return 0;
			r->has_file = 1;
			while (cbd_next_key(d, &fl, &fk, &fkl)) {
				if (cbd_key_is(fk, fkl, "path")) {
					if (!cbd_text(d, &s, &sl)) return 0;
					r->path = ck_dup_text(s, sl);
					continue;
				}
				if (!cbd_uint(d, &v)) return 0;
				if (cbd_key_is(fk, fkl, "offset")) r->foff = v;
				else if (cbd_key_is(fk, fkl, "dev")) r->dev = v;
				else if (cbd_key_is(fk, fkl, "ino")) r->ino = v;
				else if (cbd_key_is(fk, fkl, "size")) r->size = v;
				else if (cbd_key_is(fk, fkl, "mtime_ns")) r->mtime_ns = v;
			}
		} else if (cbd_key_is(k, kl, "shm_object")) {
			int64_t ol;
			const char *ok;
			size_t okl;
			if (!cbd_map(d, &ol))
				return 0;
			while (cbd_next_key(d, &ol, &ok, &okl)) {
				if (cbd_key_is(ok, okl, "kind") || cbd_key_is(ok, okl, "name") || cbd_key_is(ok, okl, "path")) {
					if (!cbd_text(d, &s, &sl))
						return 0;
					if (ok[0] == 'k') {
						if (sl >= sizeof r->shm_kind)
							return 0;
						memcpy(r->shm_kind, s, sl);
					} else {
						r->shm_name = ck_dup_text(s, sl);
					}
				} else if (cbd_key_is(ok, okl, "key")) {
					if (!cbd_uint(d, &r->shm_key)) return 0;
				} else if (cbd_key_is(ok, okl, "id")) {
					if (!cbd_uint(d, &r->shm_id)) return 0;
				} else if (cbd_key_is(ok, okl, "mode")) {
					if (!cbd_uint(d, &r->shm_mode)) return 0;
				} else if (cbd_key_is(ok, okl, "size")) {
					if (!cbd_uint(d, &r->shm_size)) return 0;
				} else if (!cbd_skip(d)) {
					return 0;
				}
			}
		} else if (cbd_key_is(k, kl, "vmflags")) {
			if (!parse_names(d, &r->vm_flags, r->vm_unknown))
				return 0;
		} else if (cbd_key_is(k, kl, "huge_page")) {
			/* a power of two from 64 KiB to 16 GiB */
			if (!cbd_uint(d, &v) || v < (1ull << 16) || v > (1ull << 34) || (v & (v - 1)))
				return 0;
			r->vm_flags |= (uint32_t)__builtin_ctzll(v) << CK_VM_HUGE_SHIFT_AT;
		} else if (cbd_key_is(k, kl, "shm")) {
			int64_t sn;
			if (!cbd_array(d, &sn) || sn != 3 || !cbd_uint(d, &r->shm_dev) || !cbd_uint(d, &r->shm_ino) ||
			    !cbd_uint(d, &r->shm_off))
				return 0;
			r->has_shm = 1;
		} else if (cbd_key_is(k, kl, "shim_file")) {
			int64_t n;
			if (!cbd_array(d, &n) || n != 3 || !cbd_uint(d, &r->shim_file[0]) || !cbd_uint(d, &r->shim_file[1]) ||
			    !cbd_uint(d, &r->shim_file[2]))
				return 0;
			r->has_shim_file = 1;
		} else if (cbd_key_is(k, kl, "open_deleted")) {
			int64_t n;
			if (!cbd_array(d, &n) || n != 3 || !cbd_uint(d, &r->open_deleted[0]) ||
			    !cbd_uint(d, &r->open_deleted[1]) || !cbd_uint(d, &r->open_deleted[2]))
				return 0;
			r->has_open_deleted = 1;
		} else if (cbd_key_is(k, kl, "guards")) {
			if (!parse_guards(d, r))
				return 0;
		} else if (cbd_key_is(k, kl, "runs")) {
			int64_t n;
			size_t cap = 4;
			if (!cbd_array(d, &n)) return 0;
			r->runs = malloc(cap * sizeof *r->runs);
			while (cbd_next_item(d, &n)) {
				int64_t m;
				if (r->nruns == cap) {
					cap *= 2;
					r->runs = realloc(r->runs, cap * sizeof *r->runs);
				}
				struct ck_img_run *run = &r->runs[r->nruns++];
				int64_t c;
				uint64_t f = 0;
				if (!cbd_array(d, &m) || (m != 4 && m != 5) || !cbd_uint(d, &run->addr) || !cbd_uint(d, &run->npages) ||
				    !cbd_uint(d, &run->off) || !cbd_int(d, &c) || (m == 5 && !cbd_uint(d, &f)))
					return 0;
				/* a CRC, or -1 with the index of the image that holds the pages */
				if (m == 4 ? c < 0 || c > UINT32_MAX : c != -1 || f >= CK_MAX_IMAGES)
					return 0;
				if (run->npages > UINT64_MAX / CK_PAGE)
					return 0;
				run->crc = (uint32_t)c;
				run->file = m == 5 ? (int)f : -1;
			}
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error && r->end > r->start && r->kind[0] && (!r->has_file || r->path) && check_guards(r);
}

static int parse_vdso(struct cb_dec *d, struct ck_image *img)
{
	int64_t left;
	const char *k;
	size_t kl;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		int idx = cbd_key_is(k, kl, "vvar") ? 0 : cbd_key_is(k, kl, "vvar_vclock") ? 1 : cbd_key_is(k, kl, "vdso") ? 2 : -1;
		if (idx >= 0) {
			int64_t m;
			if (!cbd_array(d, &m) || m != 2 || !cbd_uint(d, &img->vdso[idx][0]) || !cbd_uint(d, &img->vdso[idx][1]))
				return 0;
		} else if (cbd_key_is(k, kl, "vdso_crc")) {
			uint64_t v;
			if (!cbd_uint(d, &v))
				return 0;
			img->vdso_crc = (uint32_t)v;
		} else if (cbd_key_is(k, kl, "text")) {
			if (!cbd_bytes(d, &img->vdso_text, &img->vdso_text_len) || img->vdso_text_len > CK_VDSO_TEXT_MAX)
				return 0;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error;
}

/* Handles the top-level keys about the address space. */
CK_HIDDEN int ck_memory_parse(struct cb_dec *d, struct ck_image *img)
{
	int64_t n;
	size_t cap = 64;
	if (!cbd_array(d, &n))
		return 0;
	img->regions = calloc(cap, sizeof *img->regions);
	while (cbd_next_item(d, &n)) {
		if (img->nregions == cap) {
			cap *= 2;
			img->regions = realloc(img->regions, cap * sizeof *img->regions);
			memset(img->regions + img->nregions, 0, (cap - img->nregions) * sizeof *img->regions);
		}
		if (!parse_region(d, &img->regions[img->nregions++]))
			return 0;
	}
	return !d->error;
}

CK_HIDDEN int ck_vdso_parse(struct cb_dec *d, struct ck_image *img)
{
	return parse_vdso(d, img);
}

CK_HIDDEN int ck_mm_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_image *img)
{
	if (cbd_key_is(k, kl, "track_id"))
		return cbd_uint(d, &img->track_id) ? 1 : -1;
	if (cbd_key_is(k, kl, "images")) {
		int64_t n;
		if (!cbd_array(d, &n))
			return -1;
		while (cbd_next_item(d, &n)) {
			const char *s;
			size_t sl;
			/* CK_MAX_IMAGES counts the image itself */
			if (!cbd_text(d, &s, &sl) || img->nimages >= CK_MAX_IMAGES - 1 || memchr(s, '/', sl) || memchr(s, 0, sl))
				return -1;
			img->images[img->nimages++] = ck_dup_text(s, sl);
		}
		return d->error ? -1 : 1;
	}
	if (cbd_key_is(k, kl, "mlockall")) {
		int64_t n;
		if (!cbd_array(d, &n))
			return -1;
		while (cbd_next_item(d, &n)) {
			const char *t;
			size_t tl;
			if (!cbd_text(d, &t, &tl))
				return -1;
			img->mlockall |= tl == 6 && !memcmp(t, "future", 6) ? CK_VM_LOCKED
				       : tl == 7 && !memcmp(t, "onfault", 7) ? CK_VM_LOCKONFAULT
				       : 0;
		}
		return d->error ? -1 : 1;
	}
	if (cbd_key_is(k, kl, "auxv")) {
		if (!cbd_bytes(d, &img->auxv, &img->auxv_len) || img->auxv_len > 64 * 8)
			return -1;
		return 1;
	}
	if (!cbd_key_is(k, kl, "mm"))
		return 0;
	int64_t left;
	const char *mk;
	size_t mkl;
	if (!cbd_map(d, &left))
		return -1;
	while (cbd_next_key(d, &left, &mk, &mkl)) {
		int found = 0;
		for (int i = 0; i < MM_COUNT; i++) {
			if (cbd_key_is(mk, mkl, mm_names[i])) {
				if (!cbd_uint(d, &img->mm[i]))
					return -1;
				found = 1;
			}
		}
		if (!found && !cbd_skip(d))
			return -1;
	}
	img->have_mm = 1;
	return d->error ? -1 : 1;
}

/* Every run must lie inside its region and inside the data area; with
 * verify_data, its bytes must pass their checksum (read through a
 * read-only mapping of the image: no copy). */
static void check_runs(struct ck_image *img, struct ck_img_region *r, int verify_data)
{
	if (verify_data && !img->whole) {
		void *a = mmap(0, img->file_len, PROT_READ, MAP_PRIVATE, img->fd, 0);
		if (a == MAP_FAILED)
			ck_refuse("cannot read image %s: %s", img->path, strerror(errno));
		madvise(a, img->file_len, MADV_SEQUENTIAL);
		img->whole = a;
	}
	const uint8_t *whole = img->whole;
	for (size_t i = 0; i < r->nruns; i++) {
		struct ck_img_run *run = &r->runs[i];
		/* (ck_image_read checked every run against its region and its data area, overflow-safe) */
		uint64_t len = run->npages * CK_PAGE;
		if (run->addr < r->start || run->addr > r->end || run->npages > (r->end - run->addr) / CK_PAGE ||
		    run->off % CK_PAGE)
			ck_refuse("image %s is corrupted: a page run of region %#llx-%#llx lies outside it", img->path,
				  (unsigned long long)r->start, (unsigned long long)r->end);
		if (run->file >= 0) {
			if (run->file >= img->nimages)
				ck_refuse("image %s is corrupted: a page run refers to image %d of %d", img->path, run->file,
					  img->nimages);
			continue; /* in an older image, checked as part of it */
		}
		if (!ck_chunk_inside(img, run->off, len))
			ck_refuse("image %s is corrupted: a page run of region %#llx-%#llx lies outside it", img->path,
				  (unsigned long long)r->start, (unsigned long long)r->end);
		if (verify_data && ck_crc32c(0, whole + run->off, len) != run->crc)
			ck_refuse("image %s is corrupted: the saved pages at %#llx (region %s) fail their checksum; "
				  "restart from an earlier image", img->path, (unsigned long long)run->addr,
				  r->name && r->name[0] ? r->name : r->kind);
	}
}

static uint64_t ns_of(struct timespec t)
{
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* CKRUN_FILES_SAME ("dev:ino:size:mtime_ns:ctime_ns,..."): files ckrun found
 * to hold, byte for byte, the content the checkpoint recorded (their
 * SHA-256, src/contents.ts), with the identity they had when it read them. */
static int same_content(const struct stat *st)
{
	const char *s = getenv("CKRUN_FILES_SAME");
	while (s && *s) {
		unsigned long long dev, ino, size, mt, ct;
		int used = 0;
		if (sscanf(s, "%llu:%llu:%llu:%llu:%llu%n", &dev, &ino, &size, &mt, &ct, &used) != 5)
			return 0;
		if (dev == (uint64_t)st->st_dev && ino == (uint64_t)st->st_ino && size == (uint64_t)st->st_size &&
		    mt == ns_of(st->st_mtim) && ct == ns_of(st->st_ctim))
			return 1;
		s += used;
		if (*s == ',')
			s++;
	}
	return 0;
}

/* The file the image maps: the same size and modification time, or a copy
 * ckrun compared by content. */
static int same_file_ok(const struct ck_img_region *r, const struct stat *st)
{
	if ((uint64_t)st->st_size != r->size)
		return 0;
	return ns_of(st->st_mtim) == r->mtime_ns || same_content(st);
}

/* A portable generation's copy of the region's file (CKRUN_FILES_CARRIED,
 * "dev:ino:size:mtime_ns:sha256,...", copies in CKRUN_CARRIED_DIR named by
 * their SHA-256): ckrun found the file gone or changed and checked that the
 * copy holds the checkpoint's content. Its path (malloc'd), or 0. */
static char *carried_copy(const struct ck_img_region *r)
{
	const char *s = getenv("CKRUN_FILES_CARRIED"), *dir = getenv("CKRUN_CARRIED_DIR");
	while (s && dir && *s) {
		unsigned long long dev, ino, size, mt;
		char sha[65];
		int used = 0;
		if (sscanf(s, "%llu:%llu:%llu:%llu:%64[0-9a-f]%n", &dev, &ino, &size, &mt, sha, &used) != 5 || strlen(sha) != 64)
			return 0;
		if (dev == r->dev && ino == r->ino && size == r->size && mt == r->mtime_ns) {
			size_t n = strlen(dir) + 66;
			char *p = malloc(n);
			if (p)
				snprintf(p, n, "%s/%s", dir, sha);
			return p;
		}
		s += used;
		if (*s == ',')
			s++;
	}
	return 0;
}

/* The region maps the generation's copy of its file instead (and the
 * executable link names it, when the file was the executable): the copy
 * must pass the same check as a copy in the file's place. */
static int use_carried(struct ck_image *img, struct ck_img_region *r, struct stat *st)
{
	char *p = carried_copy(r);
	struct stat cst;
	if (!p || stat(p, &cst) != 0 || !S_ISREG(cst.st_mode) || !same_file_ok(r, &cst)) {
		free(p);
		return 0;
	}
	if (img->exe && !strcmp(img->exe, r->path)) {
		free((char *)img->exe);
		img->exe = strdup(p);
	}
	free((char *)r->path);
	r->path = p;
	*st = cst;
	return 1;
}

static const char *region_label(const struct ck_img_region *r)
{
	return r->name && r->name[0] ? r->name : r->kind;
}

/* Whether this process may lock memory beyond RLIMIT_MEMLOCK
 * (CAP_IPC_LOCK in the initial user namespace): with the limit at 0 the
 * kernel lets only such a process lock anything. */
static int can_lock_beyond_limit(void)
{
	struct rlimit old, zero;
	if (getrlimit(RLIMIT_MEMLOCK, &old) != 0)
		return 0;
	void *probe = mmap(0, CK_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (probe == MAP_FAILED)
		return 0;
	zero.rlim_cur = 0;
	zero.rlim_max = old.rlim_max;
	int ok = setrlimit(RLIMIT_MEMLOCK, &zero) == 0 && mlock2(probe, CK_PAGE, MLOCK_ONFAULT) == 0;
	setrlimit(RLIMIT_MEMLOCK, &old);
	munmap(probe, CK_PAGE);
	return ok;
}

/* The kernel's own answer: locking that much (on fault, so nothing is
 * touched) in a reserved range that is unmapped again. */
static int lock_trial(uint64_t bytes)
{
	void *a = mmap(0, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a == MAP_FAILED)
		return 0;
	int ok = mlock2(a, bytes, MLOCK_ONFAULT) == 0;
	munmap(a, bytes);
	return ok;
}

/* Locked memory comes back locked, in a process with the image's
 * RLIMIT_MEMLOCK: more than that only with CAP_IPC_LOCK, which a restart
 * in a user namespace (or as another user) does not have. Checked from
 * the limit before anything is made, and by a trial once the restored
 * process's limits are set (by_trial). */
static void check_locked_memory(struct ck_image *img, int by_trial)
{
	int64_t cur = img->nrlimits > RLIMIT_MEMLOCK ? img->rlim[RLIMIT_MEMLOCK][0] : -1;
	uint64_t limit = cur < 0 ? UINT64_MAX : (uint64_t)cur, need = 0;
	const struct ck_img_region *over = 0;
	for (size_t i = 0; i < img->nregions; i++) {
		const struct ck_img_region *r = &img->regions[i];
		if (!(r->vm_flags & CK_VM_LOCKED))
			continue;
		need += r->end - r->start;
		if (need > limit && !over)
			over = r;
	}
	int future = (img->mlockall & CK_VM_LOCKED) != 0;
	if (!need && !future)
		return;
	if (by_trial ? lock_trial(need ? need : CK_PAGE) : (!over && !(future && !limit)) || can_lock_beyond_limit())
		return;
	if (over)
		ck_refuse("region %#llx-%#llx (%s) of image %s was locked in memory (mlock): the program had %llu KiB locked, "
			  "more than its RLIMIT_MEMLOCK of %llu KiB, which takes CAP_IPC_LOCK; this restart does not have it "
			  "(run ckrun restart as root, where the program's PIDs are free)",
			  (unsigned long long)over->start, (unsigned long long)over->end, region_label(over), img->path,
			  (unsigned long long)(need >> 10), (unsigned long long)(limit >> 10));
	ck_refuse("image %s: the program locked its memory (%s%llu KiB), which this restart is not allowed to do "
		  "(RLIMIT_MEMLOCK %llu KiB%s); run ckrun restart as root, where the program's PIDs are free",
		  img->path, future ? "mlockall(MCL_FUTURE), " : "", (unsigned long long)(need >> 10),
		  (unsigned long long)(limit == UINT64_MAX ? 0 : limit >> 10), limit == UINT64_MAX ? " (unlimited)" : "");
}

/* Files the image maps must be the very files it was taken with; saved
 * pages must pass their checksums; attributes must be ones this restorer
 * can put back. Nothing is changed here. */
CK_HIDDEN void ck_memory_check(struct ck_image *img, int verify_data)
{
	check_locked_memory(img, 0);
	for (size_t i = 0; i < img->nregions; i++) {
		struct ck_img_region *r = &img->regions[i];
		if (r->vm_unknown[0])
			ck_refuse("region %#llx-%#llx (%s) of image %s carries the memory attribute \"%s\", which this ckrun "
				  "cannot restore; restart it with the ckrun that took it",
				  (unsigned long long)r->start, (unsigned long long)r->end, region_label(r), img->path,
				  r->vm_unknown);
		if (r->start % CK_PAGE || r->end % CK_PAGE)
			ck_refuse("image %s is corrupted: region %#llx-%#llx is not page aligned", img->path,
				  (unsigned long long)r->start, (unsigned long long)r->end);
		if (r->has_file && !(r->shared && ck_files_kept_by_ckrun(r->dev, r->ino))) {
			struct stat st;
			int have = stat(r->path, &st) == 0, err = errno;
			if (!r->shared && (!have || !same_file_ok(r, &st)) && use_carried(img, r, &st))
				have = 1;
			if (!have)
				ck_refuse("%s is gone (%s), but the program had it mapped; the image needs that file",
					  r->path, strerror(err));
			/* a shared mapping's file is its storage: it may have changed, it must still cover the mapping */
			if (r->shared && (uint64_t)st.st_size < r->foff + (r->end - r->start) && (uint64_t)st.st_size < r->size)
				ck_refuse("%s is shorter than at checkpoint time (%lld bytes, was %llu) and no longer covers the "
					  "program's shared mapping of it", r->path, (long long)st.st_size, (unsigned long long)r->size);
			if (!r->shared && !same_file_ok(r, &st))
				ck_refuse("%s changed since the checkpoint (size %lld, was %llu; modified %lld.%09ld, was %llu.%09llu); "
					  "the image needs the file as it was, or a copy of the same content (reinstall that version, or take a new checkpoint)",
					  r->path, (long long)st.st_size, (unsigned long long)r->size, (long long)st.st_mtim.tv_sec,
					  st.st_mtim.tv_nsec, (unsigned long long)(r->mtime_ns / 1000000000ULL),
					  (unsigned long long)(r->mtime_ns % 1000000000ULL));
		}
		check_runs(img, r, verify_data);
	}
	if (img->whole) {
		munmap((void *)img->whole, img->file_len);
		img->whole = 0;
	}
}

/* A shared mapping that is writable, or that mprotect may make writable
 * (the file was open for writing when it was mapped), needs its file
 * open for writing. */
static int opened_for_writing(const struct ck_img_region *r)
{
	return r->shared && ((r->prot & PROT_WRITE) || (r->vm_flags & CK_VM_MAYWRITE));
}

/* The shim's code, from the library it was mapped from when that very
 * file (device and inode) is still at its path: /proc/self/maps then
 * names it as before (a program that reads its own list, part way too:
 * files.c). Its saved pages are read over it; otherwise the image's are
 * mapped, as before. */
static void open_shim_file(struct ck_img_region *r, int base_fd)
{
	struct stat st;
	int fd = r->name && r->name[0] == '/' ? open(r->name, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_dev == r->shim_file[0] && (uint64_t)st.st_ino == r->shim_file[1])
		r->fd = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	close(fd);
}

CK_HIDDEN void ck_memory_open(struct ck_image *img, int base_fd, const struct ck_objects *objs)
{
	for (size_t i = 0; i < img->nregions; i++) {
		struct ck_img_region *r = &img->regions[i];
		if (r->has_shim_file && !strcmp(r->kind, "stored"))
			open_shim_file(r, base_fd);
		if (r->has_open_deleted) {
			/* the file made again for its descriptors (deleted.c; checked
			 * to be there by ck_shm_create_shared) */
			int made = ck_objects_find(objs, "inode", r->open_deleted[0], r->open_deleted[1]);
			r->fd = made < 0 ? -1 : fcntl(made, F_DUPFD_CLOEXEC, base_fd);
			if (r->fd < 0)
				ck_refuse("cannot map the deleted file %s again: %s", r->name ? r->name : "?",
					  made < 0 ? "it was not made again" : strerror(errno));
			continue;
		}
		if (!r->has_file)
			continue;
		int want_rw = opened_for_writing(r);
		for (size_t j = 0; j < i; j++) {
			struct ck_img_region *o = &img->regions[j];
			if (o->has_file && o->fd >= 0 && !strcmp(o->path, r->path) && opened_for_writing(o) == want_rw) {
				r->fd = o->fd;
				break;
			}
		}
		if (r->fd >= 0)
			continue;
		int fd = open(r->path, (want_rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (fd < 0)
			ck_refuse("cannot open %s to map it again: %s", r->path, strerror(errno));
		r->fd = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
		close(fd);
		if (r->fd < 0)
			ck_refuse("cannot place a descriptor for %s: %s", r->path, strerror(errno));
	}
}

/* The older images an incremental one refers to (hard links beside it),
 * opened and checked with the image (ck_image_read): placed above the
 * program's descriptors. */
CK_HIDDEN void ck_memory_open_refs(struct ck_image *img, int base_fd)
{
	for (int i = 0; i < img->nimages; i++) {
		int fd = fcntl(img->image_fds[i], F_DUPFD_CLOEXEC, base_fd);
		if (fd < 0)
			ck_refuse("cannot place a descriptor for %s: %s", img->images[i], strerror(errno));
		close(img->image_fds[i]);
		img->image_fds[i] = fd;
	}
}

/* Shared memory objects are objects "shm" (dev, ino) of the restore. */
static int find_shm(const struct ck_objects *objs, uint64_t dev, uint64_t ino)
{
	return ck_objects_find(objs, "shm", dev, ino);
}

/* SysV segments stay attached while they are filled: through the
 * attachment, as /proc/self/map_files (a descriptor of the segment) takes
 * CAP_SYS_ADMIN of the system, which an ordinary user's restart lacks. */
static struct sysv_attachment {
	uint64_t id, size;
	char *at;
} sysv_att[256];
static size_t nsysv_att;

static char *sysv_attached(uint64_t id)
{
	for (size_t i = 0; i < nsysv_att; i++)
		if (sysv_att[i].id == id)
			return sysv_att[i].at;
	return 0;
}

/* A SysV segment with its key and, through shm_next_id, its id again
 * (sysv.c made it, with its owner and mode, unless the image is of an older
 * shim); attached to be filled. Its object's descriptor is a stand-in: the
 * restore core attaches the segment by its id (shmdt must work on it). */
static int create_sysv(const struct ck_img_region *r)
{
	/* the whole segment, not the region: a piece of it may come first */
	uint64_t size = r->shm_size ? r->shm_size : r->shm_off + (r->end - r->start);
	/* sysv.c made it (with its key, ID, owner and mode), images of older shims aside */
	int id = ck_sysv_made_shm(r->shm_id) ? (int)r->shm_id : -1;
	FILE *f = id < 0 ? fopen("/proc/sys/kernel/shm_next_id", "w") : 0;
	if (f) {
		fprintf(f, "%llu", (unsigned long long)r->shm_id);
		fclose(f);
	}
	if (id < 0)
		id = shmget((key_t)r->shm_key, size, IPC_CREAT | IPC_EXCL | (int)(r->shm_mode & 0777));
	if (id < 0)
		ck_refuse("cannot create the SysV shared memory segment (key %#llx) again: %s%s", (unsigned long long)r->shm_key,
			  strerror(errno), errno == EEXIST ? " (a segment with that key exists; remove it with ipcrm)" : "");
	if ((uint64_t)id != r->shm_id)
		ck_refuse("the SysV shared memory segment (key %#llx) got id %d, not its original %llu", (unsigned long long)r->shm_key,
			  id, (unsigned long long)r->shm_id);
	void *a = shmat(id, 0, 0);
	if (a == (void *)-1)
		ck_refuse("cannot attach the SysV segment %d: %s", id, strerror(errno));
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) == 0)
		size = ds.shm_segsz;
	if (nsysv_att == sizeof sysv_att / sizeof sysv_att[0])
		ck_refuse("the program attaches more than %zu SysV segments, more than ckrun restores", nsysv_att);
	sysv_att[nsysv_att++] = (struct sysv_attachment){(uint64_t)id, size, a};
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		ck_refuse("cannot open /dev/null: %s", strerror(errno));
	return fd;
}

/* The same kind of object as the saved one, empty. */
static int create_shm_object(const struct ck_img_region *r)
{
	int fd;
	if (!strcmp(r->shm_kind, "sysv"))
		return create_sysv(r);
	if (!strcmp(r->shm_kind, "posix") && r->shm_name) {
		fd = open(r->shm_name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			ck_refuse("cannot create the POSIX shared memory %s again: %s", r->shm_name, strerror(errno));
		return fd;
	}
	/* sealable: a memfd the program holds gets its own seals back (deleted.c) */
	fd = memfd_create(!strcmp(r->shm_kind, "memfd") && r->shm_name ? r->shm_name : "ckrun-shm",
			  MFD_CLOEXEC | MFD_ALLOW_SEALING |
				  (r->vm_flags & CK_VM_HUGETLB ? MFD_HUGETLB | CK_VM_HUGE_SHIFT(r->vm_flags) << 26 /* MFD_HUGE_SHIFT */ : 0));
	if (fd < 0)
		ck_refuse("cannot create shared memory: %s", strerror(errno));
	return fd;
}

static int sysv_piece_of(const struct ck_img_region *a, const struct ck_img_region *b)
{
	return b->has_shm && !strcmp(b->shm_kind, "sysv") && b->shm_id == a->shm_id && b->start == a->end &&
	       b->shm_off == a->shm_off + (a->end - a->start);
}

/* The bytes of a SysV attachment from region i on: it and the pieces
 * that follow it (the program split it with mprotect); whether one of
 * them is writable. */
static uint64_t sysv_attachment(const struct ck_image *img, size_t i, int *write)
{
	uint64_t covered = 0;
	*write = 0;
	for (size_t j = i; j < img->nregions && (j == i || sysv_piece_of(&img->regions[j - 1], &img->regions[j])); j++) {
		covered += img->regions[j].end - img->regions[j].start;
		*write |= (img->regions[j].prot & PROT_WRITE) != 0;
	}
	return covered;
}

static void refuse_partial_sysv(const struct ck_image *img, const struct ck_img_region *r, uint64_t covered,
				uint64_t size)
{
	ck_refuse("process %d has only part of the SysV shared memory segment %llu attached (%llu of its %llu bytes, "
		  "from byte %llu, at %#llx): ckrun attaches whole segments; keep the whole segment attached, or "
		  "detach it, before the checkpoint",
		  img->pid, (unsigned long long)r->shm_id, (unsigned long long)covered, (unsigned long long)size,
		  (unsigned long long)r->shm_off, (unsigned long long)r->start);
}

/* shmat attaches a whole segment from its start: an attachment the
 * program split into regions of different protections (mprotect) is
 * attached once, at its first region, and the others only get their
 * protection; one of which a piece is gone (munmap) cannot be made again,
 * which is refused before anything is made (ck_shm_create_shared). */
static void check_whole_sysv(const struct ck_image *img)
{
	for (size_t i = 0; i < img->nregions; i++) {
		const struct ck_img_region *r = &img->regions[i];
		if (!r->has_shm || strcmp(r->shm_kind, "sysv") || !r->shm_size ||
		    (i > 0 && r->shm_off && sysv_piece_of(&img->regions[i - 1], r)))
			continue;
		int write;
		uint64_t size = (r->shm_size + CK_PAGE - 1) & ~(uint64_t)(CK_PAGE - 1);
		uint64_t covered = sysv_attachment(img, i, &write);
		if (r->shm_off || covered != size)
			refuse_partial_sysv(img, r, covered, size);
	}
}

static void plan_sysv(const struct ck_image *img, size_t i, struct ck_plan_region *p)
{
	const struct ck_img_region *r = &img->regions[i];
	if (r->shm_off && i > 0 && sysv_piece_of(&img->regions[i - 1], r)) {
		p->sysv_piece = 1;
		return;
	}
	struct shmid_ds ds;
	if (shmctl((int)r->shm_id, IPC_STAT, &ds) != 0)
		ck_refuse("cannot look at the SysV shared memory segment %llu: %s", (unsigned long long)r->shm_id,
			  strerror(errno));
	int write;
	uint64_t size = (ds.shm_segsz + CK_PAGE - 1) & ~(uint64_t)(CK_PAGE - 1);
	uint64_t covered = sysv_attachment(img, i, &write);
	if (r->shm_off || covered != size)
		refuse_partial_sysv(img, r, covered, size);
	p->sysv_id = (int)r->shm_id;
	p->sysv_write = write;
	p->sysv_rmid = ck_sysv_made_shm(r->shm_id) == 2;
}

/* A hugetlb shared memory object mapped whole, for its pages to be read
 * into; unmapped once every object is filled (with the SysV ones). */
static char *map_hugetlb_object(int fd, const struct ck_img_region *r)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size <= 0)
		ck_refuse("cannot size hugetlb shared memory for the tree: %s", strerror(errno));
	void *a = mmap(0, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED)
		ck_refuse("cannot map hugetlb shared memory (%llu bytes in pages of %llu KiB) to fill it: %s",
			  (unsigned long long)st.st_size, (1ull << CK_VM_HUGE_SHIFT(r->vm_flags)) >> 10, strerror(errno));
	if (nsysv_att == sizeof sysv_att / sizeof sysv_att[0])
		ck_refuse("the program has more than %zu SysV segments and hugetlb objects, more than ckrun restores", nsysv_att);
	sysv_att[nsysv_att++] = (struct sysv_attachment){(uint64_t)-1, (uint64_t)st.st_size, a};
	return a;
}

/* A number in a file of /sys; -1 when there is none. */
static long long read_sys_number(const char *path)
{
	FILE *f = fopen(path, "re");
	long long v = -1;
	if (f && fscanf(f, "%lld", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

/* The huge pages the family's hugetlb memory needs, of each size, must be
 * free (and not reserved) before anything is made: a mapping the kernel
 * cannot back fails, or kills the program later (SIGBUS). Shared objects
 * count once. */
static void check_huge_pages(struct ck_image **imgs, size_t n)
{
	uint64_t need[64] = {0};
	uint64_t seen[256][2];
	size_t nseen = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nregions; j++) {
			const struct ck_img_region *r = &imgs[i]->regions[j];
			if (!(r->vm_flags & CK_VM_HUGETLB) || (r->has_file && !r->has_shm))
				continue;
			uint64_t bytes = r->end - r->start;
			unsigned shift = CK_VM_HUGE_SHIFT(r->vm_flags);
			if (r->has_shm && !r->shared) {
				/* a private view: its own written pages, each a copy */
				uint64_t last = UINT64_MAX;
				for (size_t k = 0; k < r->nruns; k++) {
					uint64_t from = r->runs[k].addr >> shift;
					uint64_t to = (r->runs[k].addr + r->runs[k].npages * CK_PAGE - 1) >> shift;
					need[shift] += to - from + 1 - (from == last);
					last = to;
				}
				continue;
			}
			if (r->has_shm) {
				size_t k = 0;
				while (k < nseen && !(seen[k][0] == r->shm_dev && seen[k][1] == r->shm_ino))
					k++;
				if (k < nseen)
					continue;
				if (nseen < sizeof seen / sizeof seen[0])
					seen[nseen][0] = r->shm_dev, seen[nseen++][1] = r->shm_ino;
				if (r->shm_size > bytes)
					bytes = r->shm_size;
			}
			need[shift] += (bytes + (1ull << shift) - 1) >> shift;
		}
	for (unsigned shift = 0; shift < 64; shift++) {
		if (!need[shift])
			continue;
		char path[128];
		unsigned long long kb = (1ull << shift) >> 10;
		snprintf(path, sizeof path, "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages", kb);
		long long free_pages = read_sys_number(path);
		snprintf(path, sizeof path, "/sys/kernel/mm/hugepages/hugepages-%llukB/resv_hugepages", kb);
		long long resv = read_sys_number(path);
		if (free_pages < 0)
			ck_refuse("the program has hugetlb memory in pages of %llu KiB, which this kernel does not have: "
				  "restart it on a machine that has them",
				  kb);
		long long avail = free_pages - (resv > 0 ? resv : 0);
		if (avail < (long long)need[shift])
			ck_refuse("the program has hugetlb memory that needs %llu huge pages of %llu KiB, and only %lld are "
				  "free: reserve more (echo N > /sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages) and "
				  "restart again",
				  (unsigned long long)need[shift], kb, avail < 0 ? 0 : avail, kb);
	}
}

/* A private mapping of a deleted file holds only the pages the program
 * wrote: the file itself must have been made again (for a descriptor of
 * the same process: deleted.c, before this), or nothing may run. */
static void check_open_deleted(struct ck_image **imgs, size_t n, const struct ck_objects *objs)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < imgs[i]->nregions; j++) {
			const struct ck_img_region *r = &imgs[i]->regions[j];
			if (r->has_open_deleted && ck_objects_find(objs, "inode", r->open_deleted[0], r->open_deleted[1]) < 0)
				ck_refuse("image %s maps the deleted file %s privately with only the pages the program wrote, "
					  "and no descriptor of it is restored: the image is damaged",
					  imgs[i]->path, r->name ? r->name : "?");
		}
}

/* Every shared memory object once, of its kind, filled with the pages the
 * image that holds them saved; every process maps (and may hold a
 * descriptor of) the same one. */
CK_HIDDEN void ck_shm_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	check_huge_pages(imgs, n);
	check_open_deleted(imgs, n, objs);
	for (size_t i = 0; i < n; i++)
		check_whole_sysv(imgs[i]);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < imgs[i]->nregions; j++) {
			struct ck_img_region *r = &imgs[i]->regions[j];
			if (!r->has_shm)
				continue;
			int ofd = find_shm(objs, r->shm_dev, r->shm_ino);
			if (ofd < 0) {
				int fd = create_shm_object(r);
				ofd = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
				close(fd);
				if (ofd < 0)
					ck_refuse("cannot place a shared memory descriptor: %s", strerror(errno));
				ck_objects_add(objs, "shm", r->shm_dev, r->shm_ino, ofd);
			}
			/* a private view of the object: its runs are its own pages,
			 * not the object's, and it does not make the object longer */
			if (!r->shared)
				continue;
			struct stat st;
			uint64_t need = r->shm_off + (r->end - r->start);
			char *seg = !strcmp(r->shm_kind, "sysv") ? sysv_attached(r->shm_id) : 0;
			/* the object's own size when the image knows it (a mapping
			 * may reach beyond its end: SIGBUS there, as before) */
			if (!seg && r->shm_size && fstat(ofd, &st) == 0 && (uint64_t)st.st_size != r->shm_size &&
			    ftruncate(ofd, (off_t)r->shm_size) != 0)
				ck_refuse("cannot size shared memory for the tree: %s", strerror(errno));
			if (!seg && !r->shm_size && fstat(ofd, &st) == 0 && (uint64_t)st.st_size < need &&
			    ftruncate(ofd, (off_t)need) != 0)
				ck_refuse("cannot size shared memory for the tree: %s", strerror(errno));
			/* hugetlbfs has no write(): filled through a mapping */
			if (!seg && (r->vm_flags & CK_VM_HUGETLB) && r->nruns)
				seg = map_hugetlb_object(ofd, r);
			for (size_t k = 0; k < r->nruns; k++) {
				struct ck_img_run *run = &r->runs[k];
				uint64_t len = run->npages * CK_PAGE, at = r->shm_off + (run->addr - r->start);
				if (seg) {
					if (ck_pread_all(imgs[i]->fd, seg + at, len, run->off) < 0)
						ck_refuse("cannot fill shared memory from image %s", imgs[i]->path);
					continue;
				}
				/* the last page stored whole: only what lies inside the
				 * object goes back, or the write would make it longer */
				uint64_t put = !r->shm_size ? len : at >= r->shm_size ? 0 : r->shm_size - at < len ? r->shm_size - at : len;
				if (!put)
					continue;
				char *buf = malloc(len);
				if (!buf || ck_pread_all(imgs[i]->fd, buf, len, run->off) < 0 ||
				    pwrite(ofd, buf, put, (off_t)at) != (ssize_t)put)
					ck_refuse("cannot fill shared memory from image %s", imgs[i]->path);
				free(buf);
			}
		}
	}
	for (size_t i = 0; i < nsysv_att; i++) {
		if (sysv_att[i].id == (uint64_t)-1)
			munmap(sysv_att[i].at, sysv_att[i].size);
		else
			shmdt(sysv_att[i].at);
	}
	nsysv_att = 0;
}

CK_HIDDEN void ck_memory_plan(struct ck_image *img, struct ck_plan *plan,
			      struct ck_plan_region *regions, struct ck_plan_run *runs, const struct ck_objects *objs)
{
	uint64_t nruns = 0;
	for (size_t i = 0; i < img->nregions; i++) {
		struct ck_img_region *r = &img->regions[i];
		struct ck_plan_region *p = &regions[i];
		p->start = r->start;
		p->end = r->end;
		p->prot = r->prot;
		p->shared = r->shared;
		p->fd = r->has_file ? r->fd : -1;
		p->foff = r->foff;
		p->anon = !r->has_file;
		if (r->has_open_deleted) {
			/* its own written pages over the file made again */
			p->fd = r->fd;
			p->foff = r->open_deleted[2];
			p->anon = 0;
		}
		p->growsdown = !strcmp(r->kind, "stack") || (r->vm_flags & CK_VM_GROWSDOWN);
		p->vm_flags = r->vm_flags;
		p->shim_code = !strcmp(r->kind, "stored");
		if (p->shim_code && r->fd >= 0) {
			/* from its library (open_shim_file), its pages read over it */
			p->fd = r->fd;
			p->anon = 0;
			p->foff = r->shim_file[2];
			p->shim_code = 0;
		}
		p->first_guard = nruns;
		p->nguards = r->nguards;
		for (size_t j = 0; j < r->nguards; j++, nruns++)
			runs[nruns] = (struct ck_plan_run){r->guards[j][0], r->guards[j][1] - r->guards[j][0], 0, -1};
		p->first_run = nruns;
		p->nruns = r->nruns;
		p->sysv_id = -1;
		p->sysv_write = p->sysv_piece = p->sysv_rmid = 0;
		int shm = r->has_shm ? find_shm(objs, r->shm_dev, r->shm_ino) : -1;
		if (shm >= 0) {
			/* the one object, filled already; a private view of it
			 * maps it privately and gets its own written pages */
			p->anon = 0;
			p->fd = shm;
			p->foff = r->shm_off;
			if (r->shared) {
				p->nruns = 0;
				if (!strcmp(r->shm_kind, "sysv"))
					plan_sysv(img, i, p);
				continue;
			}
		}
		for (size_t j = 0; j < r->nruns; j++) {
			runs[nruns].addr = r->runs[j].addr;
			runs[nruns].len = r->runs[j].npages * CK_PAGE;
			runs[nruns].off = r->runs[j].off;
			runs[nruns].fd = r->runs[j].file < 0 ? plan->image_fd : img->image_fds[r->runs[j].file];
			nruns++;
		}
	}
	plan->regions = regions;
	plan->nregions = img->nregions;
	plan->runs = runs;
	plan->nruns = nruns;
	for (int i = 0; i < MM_COUNT; i++)
		plan->mm[i] = img->mm[i];
	plan->have_mm = img->have_mm;
	plan->mlockall = img->mlockall;
	check_locked_memory(img, 1);
	memcpy(plan->auxv, img->auxv, img->auxv_len);
	plan->auxv_len = img->auxv_len;
}

static void own_vdso(uint64_t out[3][2])
{
	static const char *const names[3] = {"[vvar]", "[vvar_vclock]", "[vdso]"};
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	memset(out, 0, sizeof(uint64_t) * 6);
	while (f && fgets(line, sizeof line, f)) {
		struct map_line m;
		parse_map_line(line, &m);
		for (int k = 0; k < 3; k++)
			if (!strcmp(m.name, names[k])) {
				out[k][0] = m.start;
				out[k][1] = m.end;
			}
	}
	if (f)
		fclose(f);
}

/* The saved program holds pointers into its vdso; the restore core moves
 * this kernel's vdso block to the same place. That is only right when the
 * block is the same: same sizes, same offsets, same code. Otherwise the
 * image's vdso is bridged to this kernel's (vdso.c). */
CK_HIDDEN void ck_vdso_check(struct ck_image *img, struct ck_plan *plan)
{
	uint64_t now[3][2];
	own_vdso(now);
	uint32_t crc = now[2][0] ? ck_crc32c(0, (const void *)now[2][0], now[2][1] - now[2][0]) : 0;
	int same = crc == img->vdso_crc;
	for (int k = 0; k < 3; k++) {
		uint64_t a = now[k][1] - now[k][0], b = img->vdso[k][1] - img->vdso[k][0];
		uint64_t oa = now[k][0] - now[0][0], ob = img->vdso[k][0] - img->vdso[0][0];
		if (a != b || (now[k][0] && oa != ob))
			same = 0;
	}
	plan->vdso_proxy_len = 0;
	if (!img->vdso[0][0] && !img->vdso[1][0] && !img->vdso[2][0]) {
		/* the program had unmapped its vdso block: the restore core
		 * unmaps this kernel's too */
		memset(plan->vdso_now, 0, sizeof plan->vdso_now);
		memset(plan->vdso_want, 0, sizeof plan->vdso_want);
		return;
	}
	if (!same || ck_vdso_bridge_forced()) {
		ck_vdso_bridge_plan(img, plan, now);
		return;
	}
	memcpy(plan->vdso_now, now, sizeof now);
	memcpy(plan->vdso_want, img->vdso, sizeof now);
}

/* The length of this kernel's vdso block (vvar to the vdso's end). */
CK_HIDDEN uint64_t ck_vdso_len_now(void)
{
	uint64_t now[3][2];
	own_vdso(now);
	return now[2][1] - now[0][0];
}

/* ---- restore core ---- */

CK_CORE void ck_core_move_vdso(struct ck_plan *p)
{
	if (!p->vdso_now[0][0] || p->vdso_now[0][0] == p->vdso_want[0][0])
		return;
	/* through a spot inside the hole: old and new ranges may overlap */
	for (int k = 0; k < 3; k++) {
		uint64_t len = p->vdso_now[k][1] - p->vdso_now[k][0];
		if (!len)
			continue;
		uint64_t tmp = p->vdso_tmp + (p->vdso_now[k][0] - p->vdso_now[0][0]);
		long r = ck_mremap((void *)p->vdso_now[k][0], len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)tmp);
		if (r < 0)
			ck_core_fail(p, "moving the vdso aside failed", r);
	}
	for (int k = 0; k < 3; k++) {
		uint64_t len = p->vdso_now[k][1] - p->vdso_now[k][0];
		if (!len)
			continue;
		uint64_t tmp = p->vdso_tmp + (p->vdso_now[k][0] - p->vdso_now[0][0]);
		long r = ck_mremap((void *)tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)p->vdso_want[k][0]);
		if (r < 0)
			ck_core_fail(p, "moving the vdso to its saved address failed", r);
	}
}

static CK_CORE_FN int map_flags(const struct ck_plan_region *r)
{
	int type = r->shared ? MAP_SHARED : r->vm_flags & CK_VM_DROPPABLE ? 0x08 /* MAP_DROPPABLE */ : MAP_PRIVATE;
	return type | (!r->shared && (r->vm_flags & CK_VM_NORESERVE) ? MAP_NORESERVE : 0);
}

/* Runs read from an image file where each starts where the one before
 * ended in that file, wherever they go in memory: one preadv for them all.
 * An incremental image holds the scattered pages written since the one
 * before one after the other, each a run of its own, interleaved with runs
 * of the older images; a pread per run made most of a restore's time. */
#define READ_BATCH 64
#define READ_BATCHES 4
#define READ_BATCH_BYTES (1UL << 30)
struct read_batch {
	int fd, n;
	uint64_t off, next, len;
	struct iovec iov[READ_BATCH];
};

static CK_CORE_FN void flush_batch(struct ck_plan *p, struct read_batch *b)
{
	long r = b->n > 1 ? CK_SYS5(SYS_preadv, b->fd, b->iov, b->n, b->off, 0) : -1;
	if (r != (long)b->len) {
		/* one run, or a short or failed read: run by run */
		uint64_t off = b->off;
		for (int i = 0; i < b->n; i++) {
			long e = ck_pread_all(b->fd, b->iov[i].iov_base, b->iov[i].iov_len, off);
			if (e < 0)
				ck_core_fail(p, "reading saved pages from the image failed", e);
			off += b->iov[i].iov_len;
		}
	}
	b->n = 0;
	b->len = 0;
}

static CK_CORE_FN void batch_read(struct ck_plan *p, struct read_batch *bs, const struct ck_plan_run *run)
{
	struct read_batch *b = 0;
	for (int i = 0; i < READ_BATCHES && !b; i++)
		if (bs[i].n && bs[i].fd == run->fd)
			b = &bs[i];
	for (int i = 0; i < READ_BATCHES && !b; i++)
		if (!bs[i].n)
			b = &bs[i];
	if (!b) {
		b = &bs[run->fd % READ_BATCHES];
		flush_batch(p, b);
	}
	if (b->n && (b->next != run->off || b->n == READ_BATCH || b->len + run->len > READ_BATCH_BYTES))
		flush_batch(p, b);
	if (!b->n) {
		b->fd = run->fd;
		b->off = run->off;
	}
	b->iov[b->n].iov_base = (void *)run->addr;
	b->iov[b->n].iov_len = run->len;
	b->n++;
	b->next = run->off + run->len;
	b->len += run->len;
}

static CK_CORE_FN void fill_runs(struct ck_plan *p, struct ck_plan_region *r, int prot)
{
	/* wipe-on-fork memory must stay anonymous (the kernel refuses the mark
	 * on a file mapping) */
	int mappable = (p->map_runs || r->shim_code) && !r->shared && !r->growsdown && !(r->vm_flags & CK_VM_WIPEONFORK);
	struct read_batch bs[READ_BATCHES];
	for (int i = 0; i < READ_BATCHES; i++)
		bs[i].n = 0, bs[i].len = 0;
	for (uint64_t i = 0; i < r->nruns; i++) {
		struct ck_plan_run *run = &p->runs[r->first_run + i];
		if (mappable && (run->len >= CK_MAP_RUN_MIN || r->shim_code)) {
			long a = ck_mmap((void *)run->addr, run->len, prot, map_flags(r) | MAP_FIXED, run->fd, (int64_t)run->off);
			if (a == (long)run->addr)
				continue;
			/* not mappable (a file system without mmap): read it */
		}
		batch_read(p, bs, run);
	}
	for (int i = 0; i < READ_BATCHES; i++)
		if (bs[i].n)
			flush_batch(p, &bs[i]);
}

/* Guards where the program had put them: after the pages (a guard drops
 * what is under it), before locks (the kernel refuses guards in locked
 * memory; the program installed them before it locked, or mlock would
 * have refused). */
static CK_CORE_FN void put_guards(struct ck_plan *p, const struct ck_plan_region *r)
{
	for (uint64_t i = 0; i < r->nguards; i++) {
		const struct ck_plan_run *g = &p->runs[r->first_guard + i];
		long e = CK_SYS3(SYS_madvise, g->addr, g->len, 102 /* MADV_GUARD_INSTALL */);
		if (e < 0)
			ck_core_fail(p, "putting back guard pages (madvise MADV_GUARD_INSTALL) failed", e);
	}
}

/* The region's madvise marks, in CK_VM_* bit order. */
static CK_CORE_FN void set_advice(struct ck_plan *p, const struct ck_plan_region *r)
{
	static const int advice[CK_VM_ADVICE] = {MADV_DONTFORK, MADV_WIPEONFORK, MADV_DONTDUMP, MADV_HUGEPAGE,
						 MADV_NOHUGEPAGE, MADV_SEQUENTIAL, MADV_RANDOM, MADV_MERGEABLE};
	for (int b = 0; b < CK_VM_ADVICE; b++) {
		if (!(r->vm_flags & (1u << b)))
			continue;
		long e = CK_SYS3(SYS_madvise, r->start, r->end - r->start, advice[b]);
		if (e < 0)
			ck_core_fail(p, "putting back a region's madvise() mark failed", e);
	}
}

/* Locked as it was: populated now (mlock), or as pages come (MLOCK_ONFAULT).
 * An inaccessible region cannot be populated: it is locked on fault first
 * (which the limit check covers), then marked plainly locked, which the
 * kernel does before it fails to populate. */
static CK_CORE_FN void lock_region(struct ck_plan *p, const struct ck_plan_region *r)
{
	uint64_t len = r->end - r->start;
	int onfault = (r->vm_flags & CK_VM_LOCKONFAULT) != 0;
	long e = 0;
	if (onfault || !r->prot)
		e = CK_SYS3(SYS_mlock2, r->start, len, 1 /* MLOCK_ONFAULT */);
	if (e == 0 && !onfault) {
		e = CK_SYS3(SYS_mlock2, r->start, len, 0);
		if (e == -ENOMEM && !r->prot)
			e = 0;
	}
	if (e < 0)
		ck_core_fail(p, "locking a region in memory (mlock) failed", e);
}

CK_CORE void ck_core_map_regions(struct ck_plan *p)
{
	for (uint64_t i = 0; i < p->nregions; i++) {
		struct ck_plan_region *r = &p->regions[i];
		int prot = r->prot | (r->nruns ? PROT_READ | PROT_WRITE : 0);
		int flags = MAP_FIXED | map_flags(r);
		long a;
		if (r->sysv_piece)
			/* attached with an earlier region: only its own protection */
			a = ck_mprotect((void *)r->start, r->end - r->start, r->prot);
		else if (r->sysv_id >= 0) {
			/* a SysV attachment (shmdt must work on it), not a mapping of its file */
			a = CK_SYS3(SYS_shmat, r->sysv_id, r->start, SHM_REMAP | (r->sysv_write ? 0 : SHM_RDONLY));
			if (!(a < 0 && a > -4096))
				a = ck_mprotect((void *)r->start, r->end - r->start, r->prot);
			/* removed as the program had: the attachment keeps it, and
			 * the family's other processes may still attach it by id
			 * (Linux allows that until the last detach) */
			if (!(a < 0 && a > -4096) && r->sysv_rmid)
				a = CK_SYS3(SYS_shmctl, r->sysv_id, IPC_RMID, 0);
		} else if (r->anon)
			a = ck_mmap((void *)r->start, r->end - r->start, prot,
				    flags | MAP_ANONYMOUS | (r->growsdown ? MAP_GROWSDOWN : 0) |
					    (r->vm_flags & CK_VM_HUGETLB ? MAP_HUGETLB | (int)(CK_VM_HUGE_SHIFT(r->vm_flags) << MAP_HUGE_SHIFT) : 0),
				    -1, 0);
		else
			a = ck_mmap((void *)r->start, r->end - r->start, prot, flags, r->fd, (int64_t)r->foff);
		if (a < 0 && a > -4096)
			ck_core_fail(p, "mapping a saved region failed", a);
		if (r->vm_flags & CK_VM_HUGEPAGE)
			/* before the pages come: they may come as huge pages again */
			CK_SYS3(SYS_madvise, r->start, r->end - r->start, MADV_HUGEPAGE);
		fill_runs(p, r, prot);
		put_guards(p, r);
		if (prot != r->prot) {
			long e = ck_mprotect((void *)r->start, r->end - r->start, r->prot);
			if (e < 0)
				ck_core_fail(p, "setting a region's protection failed", e);
		}
		set_advice(p, r);
		if (r->vm_flags & CK_VM_LOCKED)
			lock_region(p, r);
	}
	if (p->mlockall & CK_VM_LOCKED) {
		/* only new mappings: the current ones are locked region by region */
		long e = CK_SYS1(SYS_mlockall, MCL_FUTURE | (p->mlockall & CK_VM_LOCKONFAULT ? MCL_ONFAULT : 0));
		if (e < 0)
			ck_core_fail(p, "locking future memory (mlockall MCL_FUTURE) failed", e);
	}
	/* sealed last: nothing may change a sealed region */
	for (uint64_t i = 0; i < p->nregions; i++) {
		struct ck_plan_region *r = &p->regions[i];
		if (!(r->vm_flags & CK_VM_SEALED))
			continue;
		long e = CK_SYS3(462 /* mseal */, r->start, r->end - r->start, 0);
		if (e < 0)
			ck_core_fail(p, "sealing a region (mseal) failed", e);
	}
}

/* Every saved region is mapped, whatever happened since it was (the vdso
 * moved, AIO rings put back): a region missing would be memory the program
 * finds gone, so the restore fails instead. msync fails with ENOMEM on a
 * range with any unmapped page in it. */
CK_CORE void ck_core_check_regions(struct ck_plan *p)
{
	for (uint64_t i = 0; i < p->nregions; i++) {
		const struct ck_plan_region *r = &p->regions[i];
		long e = CK_SYS3(SYS_msync, r->start, r->end - r->start, MS_ASYNC);
		if (e == -ENOMEM)
			ck_core_fail(p, "a saved region is not mapped after the restore mapped it", e);
	}
}

struct ck_prctl_mm_map {
	uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint64_t *auxv;
	uint32_t auxv_size;
	uint32_t exe_fd;
};

CK_CORE void ck_core_set_mm(struct ck_plan *p)
{
	if (!p->have_mm)
		return;
	struct ck_prctl_mm_map m;
	m.start_code = p->mm[MM_START_CODE];
	m.end_code = p->mm[MM_END_CODE];
	m.start_data = p->mm[MM_START_DATA];
	m.end_data = p->mm[MM_END_DATA];
	m.start_brk = p->mm[MM_START_BRK];
	m.brk = p->mm[MM_BRK];
	m.start_stack = p->mm[MM_START_STACK];
	m.arg_start = p->mm[MM_ARG_START];
	m.arg_end = p->mm[MM_ARG_END];
	m.env_start = p->mm[MM_ENV_START];
	m.env_end = p->mm[MM_ENV_END];
	m.auxv = p->auxv;
	m.auxv_size = (uint32_t)p->auxv_len;
	m.exe_fd = (uint32_t)p->exe_fd;
	long e = ck_prctl(PR_SET_MM, PR_SET_MM_MAP, (long)&m, sizeof m, 0);
	if (e < 0)
		ck_core_fail(p, "setting the memory layout (PR_SET_MM_MAP) failed", e);
}
