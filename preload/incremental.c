/* Incremental checkpoints: which pages changed since the last checkpoint,
 * and where the unchanged ones are already stored (see docs/design.md).
 *
 * Save half: while the program is stopped, PAGEMAP_SCAN collects the pages
 * written since the last protection (userfaultfd write-protect in async
 * mode) and protects them again; regions not yet tracked are registered.
 * The writer then reads the parent image's metadata to learn, for every
 * address, which file and offset hold its page, and hard-links those files
 * into the new generation. Restore half: the restored process protects its
 * memory at once, so its next checkpoint is incremental too. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "ckrun.h"
#include "crc32c.h"
#include "sys.h"

/* From the kernel's uapi (Debian's headers predate them). */
#define CK_UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#define CK_UFFD_FEATURE_WP_ASYNC (1 << 15)
struct pm_page_region {
	uint64_t start, end, categories;
};
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WRITTEN (1 << 1)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_FILE (1ULL << 61)
#define PM_GUARD_REGION (1ULL << 58)

#define PAGE_IS_PRESENT CK_PAGE_PRESENT
#define PAGE_IS_SWAPPED CK_PAGE_SWAPPED
#define PAGE_IS_GUARD (1 << 8)

/* Tracking costs what is present, never what is reserved. Asynchronous
 * write-protection marks every page of a range it is asked to protect,
 * touched or not (the kernel turns on UFFD_FEATURE_WP_UNPOPULATED with
 * WP_ASYNC): UFFDIO_WRITEPROTECT over a 2 TiB MAP_NORESERVE region took
 * 22 s and 4 GiB of page tables, which every later scan and fork walked.
 * So only the pages present are protected, by a PAGEMAP_SCAN that matches
 * them (PM_SCAN_WP_MATCHING with present or swapped as its filter). A page
 * that appears later is not protected, and the scan counts it as written;
 * one only read maps the zero page, written and zero; a page released
 * with MADV_DONTNEED is not present, so zero. */

CK_HIDDEN struct ck_tracking ck_tracking = {.uffd = -1};

/* ---- guard pages ----
 * A page behind a guard (madvise MADV_GUARD_INSTALL) holds nothing, and
 * reading it faults; the scans count it as swapped. Every scan for pages
 * leaves guards out when the kernel can tell them (PAGE_IS_GUARD, 6.14). */

static uint64_t scan_resume_at(const struct pm_scan_arg *a, const struct ck_written *vec, uint64_t n);

static int guard_category = -1; /* PAGEMAP_SCAN knows PAGE_IS_GUARD: 1, 0; -1: not asked yet */

static int knows_guard_category(int pmfd)
{
	if (guard_category < 0) {
		struct pm_scan_arg a;
		ck_memset(&a, 0, sizeof a);
		a.size = sizeof a;
		a.start = CK_PAGE;
		a.end = 2 * CK_PAGE;
		a.category_mask = PAGE_IS_GUARD;
		a.return_mask = PAGE_IS_GUARD;
		guard_category = CK_SYS3(SYS_ioctl, pmfd, PAGEMAP_SCAN, &a) >= 0;
	}
	return guard_category;
}

static void skip_guards(int pmfd, struct pm_scan_arg *a)
{
	if (knows_guard_category(pmfd)) {
		a->category_inverted |= PAGE_IS_GUARD;
		a->category_mask |= PAGE_IS_GUARD;
	}
}

CK_HIDDEN long ck_guard_ranges(int pmfd, uint64_t start, uint64_t end, struct ck_written *vec, uint64_t cap)
{
	uint64_t n = 0;
	while (start < end && n < cap && knows_guard_category(pmfd)) {
		struct pm_scan_arg a;
		ck_memset(&a, 0, sizeof a);
		a.size = sizeof a;
		a.start = start;
		a.end = end;
		a.vec = (uint64_t)(vec + n);
		a.vec_len = cap - n;
		a.category_mask = PAGE_IS_GUARD;
		a.return_mask = PAGE_IS_GUARD;
		long k = CK_SYS3(SYS_ioctl, pmfd, PAGEMAP_SCAN, &a);
		if (k < 0)
			return k;
		n += (uint64_t)k;
		if ((uint64_t)k < a.vec_len)
			return (long)n;
		start = scan_resume_at(&a, vec + n - k, (uint64_t)k);
	}
	return start < end && n >= cap ? -E2BIG : (long)n;
}

/* ---- which pages exist ---- */

static int no_pagemap_scan; /* the kernel predates PAGEMAP_SCAN */

CK_HIDDEN void ck_page_scan_init(struct ck_page_scan *ps, int pmfd, uint64_t start, uint64_t end, void *buf, size_t len)
{
	ck_memset(ps, 0, sizeof *ps);
	ps->pmfd = pmfd;
	ps->pos = start;
	ps->end = end;
	ps->vec = buf;
	ps->cap = len / sizeof(struct ck_written);
	ps->pm = buf;
	ps->pm_cap = len / sizeof(uint64_t);
}

static uint64_t pagemap_categories(uint64_t e)
{
	if (e & PM_GUARD_REGION)
		return 0; /* behind a guard: nothing there */
	return (e & PM_PRESENT ? CK_PAGE_PRESENT : 0) | (e & PM_SWAP ? CK_PAGE_SWAPPED : 0) | (e & PM_FILE ? CK_PAGE_FILE : 0);
}

/* Older kernels: pagemap read entry by entry, equal neighbours joined. */
static int scan_by_pagemap(struct ck_page_scan *ps, struct ck_written *out)
{
	for (;;) {
		if (ps->pm_i >= ps->pm_n) {
			if (ps->pos >= ps->end)
				return 0;
			uint64_t count = (ps->end - ps->pos) / CK_PAGE;
			if (count > ps->pm_cap)
				count = ps->pm_cap;
			long r = ck_pread_all(ps->pmfd, ps->pm, count * 8, ps->pos / CK_PAGE * 8);
			if (r < 0) {
				ps->err = r;
				return 0;
			}
			ps->pm_at = ps->pos;
			ps->pm_n = count;
			ps->pm_i = 0;
			ps->pos += count * CK_PAGE;
		}
		uint64_t i = ps->pm_i, cat = pagemap_categories(ps->pm[i]);
		uint64_t j = i + 1;
		while (j < ps->pm_n && pagemap_categories(ps->pm[j]) == cat)
			j++;
		ps->pm_i = j;
		if (cat & (CK_PAGE_PRESENT | CK_PAGE_SWAPPED)) {
			*out = (struct ck_written){ps->pm_at + i * CK_PAGE, ps->pm_at + j * CK_PAGE, cat};
			return 1;
		}
	}
}

/* Where the next PAGEMAP_SCAN goes on. The scan is complete when it
 * found fewer regions than it had room for; walk_end is not to be trusted
 * then (seen on 6.18: a walk_end in the middle of the range, with regions
 * up to its end already returned, after the kernel's own buffer filled). */
static uint64_t scan_resume_at(const struct pm_scan_arg *a, const struct ck_written *vec, uint64_t n)
{
	if (n < a->vec_len)
		return a->end;
	uint64_t at = a->walk_end > vec[n - 1].end ? a->walk_end : vec[n - 1].end;
	return at > a->start ? at : a->end;
}

/* The next PAGEMAP_SCAN region, or 0 at the end (or on an error). */
static int next_region(struct ck_page_scan *ps, struct ck_written *out)
{
	while (ps->next >= ps->n) {
		if (ps->pos >= ps->end)
			return 0;
		struct pm_scan_arg a;
		ck_memset(&a, 0, sizeof a);
		a.size = sizeof a;
		a.start = ps->pos;
		a.end = ps->end;
		a.vec = (uint64_t)ps->vec; /* struct ck_written is struct page_region */
		a.vec_len = ps->cap;
		a.category_anyof_mask = CK_PAGE_PRESENT | CK_PAGE_SWAPPED;
		a.return_mask = CK_PAGE_PRESENT | CK_PAGE_SWAPPED | CK_PAGE_FILE | CK_PAGE_PFNZERO;
		skip_guards(ps->pmfd, &a);
		long n = CK_SYS3(SYS_ioctl, ps->pmfd, PAGEMAP_SCAN, &a);
		if (n < 0) {
			if ((n == -ENOTTY || n == -EINVAL) && !ps->n && !ps->next) {
				no_pagemap_scan = 1;
				return scan_by_pagemap(ps, out);
			}
			ps->err = n;
			return 0;
		}
		ps->n = (uint64_t)n;
		ps->next = 0;
		ps->pos = scan_resume_at(&a, ps->vec, (uint64_t)n);
	}
	*out = ps->vec[ps->next++];
	return 1;
}

CK_HIDDEN int ck_page_scan_next(struct ck_page_scan *ps, struct ck_written *out)
{
	if (no_pagemap_scan)
		return scan_by_pagemap(ps, out);
	while (next_region(ps, out)) {
		/* never back: what lies before the last stretch handed out is not new */
		if (out->start < ps->last_end)
			out->start = ps->last_end;
		if (out->end > out->start) {
			ps->last_end = out->end;
			return 1;
		}
	}
	return 0;
}

static long tracking_setup(void)
{
	long fd = CK_SYS1(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd == -EPERM)
		fd = CK_SYS1(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return fd;
	struct uffdio_api api = {UFFD_API, CK_UFFD_FEATURE_WP_ASYNC | CK_UFFD_FEATURE_WP_UNPOPULATED, 0};
	long r = CK_SYS3(SYS_ioctl, fd, UFFDIO_API, &api);
	if (r < 0) {
		ck_close((int)fd);
		return r;
	}
	/* out of the program's way, like the session connection */
	long high = ck_fcntl((int)fd, F_DUPFD_CLOEXEC, CK_UFFD_FD_MIN);
	if (high >= 0) {
		ck_close((int)fd);
		fd = high;
	}
	return fd;
}

/* A fresh id for every image: the shim remembers the id of the image its
 * memory was protected against. */
static uint64_t new_track_id(void)
{
	uint64_t id = 0;
	CK_SYS3(SYS_getrandom, &id, sizeof id, 0);
	return id ? id : 1;
}

CK_HIDDEN void ck_track_begin(struct ck_scratch *s)
{
	s->scan_base = ck_tracking.base_id;
	s->track_id = new_track_id();
	s->nwritten = 0;
	s->nuntracked = 0;
	s->written_overflow = 0;
	if (ck_tracking.uffd < 0 && !ck_tracking.failed) {
		long fd = tracking_setup();
		if (fd < 0)
			ck_tracking.failed = (int)-fd;
		else
			ck_tracking.uffd = (int)fd;
	}
}

static void add_untracked(struct ck_scratch *s, uint64_t start, uint64_t end)
{
	if (s->nuntracked < CK_MAX_UNTRACKED)
		s->untracked[s->nuntracked++] = (struct ck_range){start, end};
	else
		s->written_overflow = 1;
}

/* Registers a region and protects its present pages (see above). */
static int protect_range(int pmfd, uint64_t start, uint64_t end)
{
	struct uffdio_register reg = {{start, end - start}, UFFDIO_REGISTER_MODE_WP, 0};
	if (CK_SYS3(SYS_ioctl, ck_tracking.uffd, UFFDIO_REGISTER, &reg) < 0)
		return 0;
	struct pm_scan_arg a;
	ck_memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
	a.start = start;
	a.end = end;
	a.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	a.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	skip_guards(pmfd, &a);
	return CK_SYS3(SYS_ioctl, pmfd, PAGEMAP_SCAN, &a) >= 0;
}

CK_HIDDEN void ck_track_protect(int pmfd, uint64_t start, uint64_t end)
{
	if (ck_tracking.uffd >= 0)
		protect_range(pmfd, start, end);
}

/* One private anonymous region, while the program is stopped: its pages
 * written since the last checkpoint (protected again as they are found),
 * or, when it is not tracked yet, registered now for the next one. */
CK_HIDDEN void ck_track_region(struct ck_scratch *s, int pmfd, uint64_t start, uint64_t end)
{
	if (ck_tracking.uffd < 0)
		return;
	uint64_t pos = start;
	while (pos < end) {
		uint64_t room = CK_MAX_WRITTEN - s->nwritten;
		if (room == 0) {
			s->written_overflow = 1;
			return;
		}
		struct pm_scan_arg a;
		ck_memset(&a, 0, sizeof a);
		a.size = sizeof a;
		a.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
		a.start = pos;
		a.end = end;
		a.vec = (uint64_t)(s->written + s->nwritten);
		/* struct ck_written is struct page_region */
		a.vec_len = room;
		/* written and present (or swapped): a page never there is zero,
		 * whatever the scan would call it */
		a.category_mask = PAGE_IS_WRITTEN;
		a.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
		a.return_mask = PAGE_IS_WRITTEN;
		skip_guards(pmfd, &a);
		long n = CK_SYS3(SYS_ioctl, pmfd, PAGEMAP_SCAN, &a);
		if (n < 0) {
			/* a region created since the last checkpoint: stored in full
			 * now, tracked from now on */
			add_untracked(s, start, end);
			protect_range(pmfd, start, end);
			return;
		}
		s->nwritten += (uint64_t)n;
		pos = scan_resume_at(&a, s->written + s->nwritten - n, (uint64_t)n);
	}
}

CK_HIDDEN void ck_track_end(struct ck_scratch *s)
{
	if (ck_tracking.uffd >= 0)
		ck_tracking.base_id = s->track_id;
}

/* ---- the writer: what changed, and where the rest is ---- */

CK_HIDDEN int ck_track_covers(struct ck_scratch *s, uint64_t start, uint64_t end)
{
	if (!s->parent_valid || s->written_overflow)
		return 0;
	for (uint64_t i = 0; i < s->nuntracked; i++)
		if (s->untracked[i].start < end && start < s->untracked[i].end)
			return 0;
	return 1;
}

CK_HIDDEN int ck_track_written(struct ck_scratch *s, uint64_t page)
{
	/* PAGEMAP_SCAN reports regions in address order, and regions are
	 * scanned in address order */
	uint64_t lo = 0, hi = s->nwritten;
	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;
		if (page < s->written[mid].start)
			hi = mid;
		else if (page >= s->written[mid].end)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

static int lookup_index(const struct ck_parent_run *idx, uint64_t n, uint64_t page, uint64_t *i_out)
{
	uint64_t lo = 0, hi = n;
	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;
		if (page < idx[mid].addr)
			hi = mid;
		else if (page >= idx[mid].addr + idx[mid].npages * CK_PAGE)
			lo = mid + 1;
		else {
			*i_out = mid;
			return 1;
		}
	}
	return 0;
}

static void dirname_of(const char *path, char *out, size_t cap)
{
	struct ck_str d;
	size_t len = ck_strlen(path), cut = 0;
	for (size_t i = 0; i < len; i++)
		if (path[i] == '/')
			cut = i;
	ck_str_init(&d, out, cap);
	ck_str_addn(&d, path, cut ? cut : 1);
}

/* /proc/self/map_files/...: a link to the file a region maps, which only
 * a link that follows it reaches (any other link is never followed). */
static int is_magic_link(const char *path)
{
	return ck_starts_with(path, "/proc/");
}

/* A file the new image may refer to: registered with where to link it from. */
static int ref_candidate(struct ck_scratch *s, const char *src)
{
	struct ck_stat st;
	if (CK_SYS4(SYS_newfstatat, AT_FDCWD, src, &st, is_magic_link(src) ? 0 : AT_SYMLINK_NOFOLLOW) < 0 ||
	    (st.mode & S_IFMT) != S_IFREG)
		return -1;
	for (int i = 0; i < s->nrefs; i++)
		if (s->refs[i].ino == st.ino && s->refs[i].dev == st.dev)
			return i;
	if (s->nrefs >= CK_MAX_REFS)
		return -1;
	struct ck_ref *r = &s->refs[s->nrefs];
	r->dev = st.dev;
	r->ino = st.ino;
	r->index = -1;
	struct ck_str p;
	ck_str_init(&p, r->src, sizeof r->src);
	ck_str_add(&p, src);
	ck_str_init(&p, r->name, sizeof r->name);
	ck_str_add(&p, "ref-");
	ck_str_udec(&p, st.ino);
	ck_str_add(&p, ".ckpt");
	return s->nrefs++;
}

/* The header block's CRC and the track_id of an image file: what the new
 * image names it by ("image_ids"), so that a restart can tell the very
 * image from another file put in its place. 0 when it is no sound image
 * (then nothing is referred to in it: the pages are stored again). */
static int image_identity(const char *path, uint64_t *track_id, uint32_t *header_crc)
{
	int fd = (int)ck_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	struct ck_stat st;
	if (fd < 0)
		return 0;
	if (ck_fstat(fd, &st) < 0 || st.size < 4096) {
		ck_close(fd);
		return 0;
	}
	long m = ck_mmap(0, (size_t)st.size, PROT_READ, MAP_PRIVATE, fd, 0);
	ck_close(fd);
	if (m < 0 && m > -4096)
		return 0;
	const uint8_t *img = (const uint8_t *)m;
	struct cb_dec d, h;
	int64_t n;
	const uint8_t *hb;
	size_t hl;
	uint64_t crc, meta_off = 0, meta_len = 0, meta_crc = 0;
	const char *k;
	size_t kl;
	int ok = 0;
	cbd_init(&d, img, 4096);
	if (!cbd_array(&d, &n) || n != 2 || !cbd_bytes(&d, &hb, &hl) || !cbd_uint(&d, &crc) ||
	    ck_crc32c(0, hb, hl) != (uint32_t)crc)
		goto out;
	cbd_init(&h, hb, hl);
	if (!cbd_map(&h, &n))
		goto out;
	while (cbd_next_key(&h, &n, &k, &kl)) {
		uint64_t v = 0;
		if (cbd_peek(&h) != CB_UINT) {
			if (!cbd_skip(&h))
				goto out;
			continue;
		}
		cbd_uint(&h, &v);
		if (cbd_key_is(k, kl, "meta_offset"))
			meta_off = v;
		else if (cbd_key_is(k, kl, "meta_length"))
			meta_len = v;
		else if (cbd_key_is(k, kl, "meta_crc"))
			meta_crc = v;
	}
	if (meta_off > (uint64_t)st.size || meta_len > (uint64_t)st.size - meta_off ||
	    ck_crc32c(0, img + meta_off, meta_len) != (uint32_t)meta_crc)
		goto out;
	cbd_init(&d, img + meta_off, meta_len);
	if (!cbd_map(&d, &n))
		goto out;
	while (!ok && cbd_next_key(&d, &n, &k, &kl)) {
		if (cbd_key_is(k, kl, "track_id") && cbd_peek(&d) == CB_UINT && cbd_uint(&d, track_id))
			ok = 1;
		else if (!cbd_skip(&d))
			break;
	}
	*header_crc = (uint32_t)crc;
out:
	ck_munmap((void *)m, (size_t)st.size);
	return ok;
}

/* Links a referred file into the new generation (once); returns its index
 * in the image's "images" list, or -1 when it cannot be referred to. */
CK_HIDDEN int ck_ref_use(struct ck_scratch *s, int cand)
{
	if (cand < 0)
		return -1;
	struct ck_ref *r = &s->refs[cand];
	if (r->index >= 0 || r->failed)
		return r->index;
	if (!image_identity(r->src, &r->track_id, &r->header_crc)) {
		r->failed = 1;
		return -1;
	}
	char dst[4096 + 64];
	struct ck_str d;
	ck_str_init(&d, dst, sizeof dst);
	ck_str_add(&d, s->new_dir);
	ck_str_add(&d, "/");
	ck_str_add(&d, r->name);
	/* the new name is never followed; a name already there (another
	 * process of the family linked the same file) must be that very file */
	long e = CK_SYS5(SYS_linkat, AT_FDCWD, r->src, AT_FDCWD, dst, is_magic_link(r->src) ? AT_SYMLINK_FOLLOW : 0);
	struct ck_stat st;
	if ((e < 0 && e != -EEXIST) || CK_SYS4(SYS_newfstatat, AT_FDCWD, dst, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (st.mode & S_IFMT) != S_IFREG || st.dev != r->dev || st.ino != r->ino) {
		r->failed = 1;
		return -1;
	}
	r->index = s->nused++;
	return r->index;
}

/* An image file the program maps (a region a restart mapped): the file
 * to refer to for its unchanged pages. */
CK_HIDDEN int ck_ref_for_mapping(struct ck_scratch *s, const char *map_files_path)
{
	return ck_ref_use(s, ref_candidate(s, map_files_path));
}

/* Where the parent (or an image it refers to) holds a page unchanged since. */
CK_HIDDEN int ck_parent_lookup(struct ck_scratch *s, uint64_t page, int *file, uint64_t *off)
{
	uint64_t i;
	if (!lookup_index(s->index, s->nindex, page, &i))
		return 0;
	int f = ck_ref_use(s, s->index[i].cand);
	if (f < 0)
		return -1; /* held there, but cannot be linked: the caller stores the page */
	*file = f;
	*off = s->index[i].off + (page - s->index[i].addr);
	return 1;
}

static int parse_parent_runs(struct ck_scratch *s, struct cb_dec *d, const int *cand_of, int ncand)
{
	int64_t nregions;
	if (!cbd_array(d, &nregions))
		return 0;
	while (cbd_next_item(d, &nregions)) {
		int64_t left;
		const char *k;
		size_t kl;
		if (!cbd_map(d, &left))
			return 0;
		while (cbd_next_key(d, &left, &k, &kl)) {
			if (!cbd_key_is(k, kl, "runs")) {
				if (!cbd_skip(d))
					return 0;
				continue;
			}
			int64_t nruns;
			if (!cbd_array(d, &nruns))
				return 0;
			while (cbd_next_item(d, &nruns)) {
				int64_t m, crc;
				uint64_t addr, np, off, f = 0;
				if (!cbd_array(d, &m) || (m != 4 && m != 5) || !cbd_uint(d, &addr) || !cbd_uint(d, &np) ||
				    !cbd_uint(d, &off) || !cbd_int(d, &crc) || (m == 5 && !cbd_uint(d, &f)))
					return 0;
				if (s->nindex >= CK_MAX_INDEX)
					return 0;
				int cand = m == 4 ? cand_of[0] : ((int64_t)f + 1 < ncand ? cand_of[f + 1] : -1);
				s->index[s->nindex++] = (struct ck_parent_run){addr, np, off, cand};
			}
		}
	}
	return !d->error;
}

/* Reads the parent image's metadata (through a read-only mapping: the
 * writer may not allocate). Incremental only if the parent is the image
 * the memory was protected against, and it reads back cleanly. */
CK_HIDDEN void ck_parent_load(struct ck_scratch *s, const char *parent, const char *image)
{
	s->parent_valid = 0;
	s->nindex = 0;
	s->nrefs = 0;
	s->nused = 0;
	dirname_of(image, s->new_dir, sizeof s->new_dir);
	if (!parent || !*parent || ck_tracking.uffd < 0 || !s->scan_base)
		return;
	int fd = (int)ck_openat(AT_FDCWD, parent, O_RDONLY | O_CLOEXEC, 0);
	struct ck_stat st;
	if (fd < 0)
		return;
	if (ck_fstat(fd, &st) < 0 || st.size < 4096) {
		ck_close(fd);
		return;
	}
	long m = ck_mmap(0, (size_t)st.size, PROT_READ, MAP_PRIVATE, fd, 0);
	ck_close(fd);
	if (m < 0 && m > -4096)
		return;
	const uint8_t *img = (const uint8_t *)m;
	struct cb_dec d, h;
	int64_t n;
	const uint8_t *hb;
	size_t hl;
	uint64_t crc, meta_off = 0, meta_len = 0, meta_crc = 0, track_id = 0;
	const char *k;
	size_t kl;
	cbd_init(&d, img, 4096);
	if (!cbd_array(&d, &n) || n != 2 || !cbd_bytes(&d, &hb, &hl) || !cbd_uint(&d, &crc) ||
	    ck_crc32c(0, hb, hl) != (uint32_t)crc)
		goto out;
	cbd_init(&h, hb, hl);
	if (!cbd_map(&h, &n))
		goto out;
	while (cbd_next_key(&h, &n, &k, &kl)) {
		uint64_t v = 0;
		if (cbd_peek(&h) != CB_UINT) {
			if (!cbd_skip(&h))
				goto out;
			continue;
		}
		cbd_uint(&h, &v);
		if (cbd_key_is(k, kl, "meta_offset"))
			meta_off = v;
		else if (cbd_key_is(k, kl, "meta_length"))
			meta_len = v;
		else if (cbd_key_is(k, kl, "meta_crc"))
			meta_crc = v;
	}
	if (meta_off + meta_len > (uint64_t)st.size || ck_crc32c(0, img + meta_off, meta_len) != (uint32_t)meta_crc)
		goto out;

	/* the files the parent's runs live in: itself, then its "images" */
	int cand_of[CK_MAX_REFS + 1], ncand = 0;
	char pdir[4096];
	dirname_of(parent, pdir, sizeof pdir);
	cand_of[ncand++] = ref_candidate(s, parent);
	const uint8_t *memory = 0;
	cbd_init(&d, img + meta_off, meta_len);
	if (!cbd_map(&d, &n))
		goto out;
	while (cbd_next_key(&d, &n, &k, &kl)) {
		if (cbd_key_is(k, kl, "track_id")) {
			if (!cbd_uint(&d, &track_id))
				goto out;
		} else if (cbd_key_is(k, kl, "images")) {
			int64_t ni;
			if (!cbd_array(&d, &ni))
				goto out;
			while (cbd_next_item(&d, &ni)) {
				const char *name;
				size_t nl;
				char path[4096 + 64];
				struct ck_str p;
				if (!cbd_text(&d, &name, &nl) || ncand > CK_MAX_REFS)
					goto out;
				ck_str_init(&p, path, sizeof path);
				ck_str_add(&p, pdir);
				ck_str_add(&p, "/");
				ck_str_addn(&p, name, nl);
				cand_of[ncand++] = ref_candidate(s, path);
			}
		} else if (cbd_key_is(k, kl, "memory")) {
			memory = d.p;
			if (!cbd_skip(&d))
				goto out;
		} else if (!cbd_skip(&d)) {
			goto out;
		}
	}
	if (!memory || track_id != s->scan_base)
		goto out;
	cbd_init(&d, memory, (size_t)(img + meta_off + meta_len - memory));
	if (parse_parent_runs(s, &d, cand_of, ncand))
		s->parent_valid = 1;
out:
	ck_munmap((void *)m, (size_t)st.size);
	if (!s->parent_valid) {
		s->nindex = 0;
		s->nrefs = 0;
	}
}

CK_HIDDEN void ck_refs_save(struct ck_writer *w, struct ck_scratch *s)
{
	struct cb_enc *e = &w->meta;
	cb_kv_uint(e, "track_id", s->track_id);
	cb_text(e, "images");
	cb_array(e, (uint64_t)s->nused);
	for (int idx = 0; idx < s->nused; idx++)
		for (int i = 0; i < s->nrefs; i++)
			if (s->refs[i].index == idx)
				cb_text(e, s->refs[i].name);
	/* what each of them is: a restart refuses another file in its place */
	cb_text(e, "image_ids");
	cb_array(e, (uint64_t)s->nused);
	for (int idx = 0; idx < s->nused; idx++)
		for (int i = 0; i < s->nrefs; i++)
			if (s->refs[i].index == idx) {
				cb_array(e, 2);
				cb_uint(e, s->refs[i].track_id);
				cb_uint(e, s->refs[i].header_crc);
			}
	cb_text(e, "incremental");
	cb_map(e, 2);
	cb_kv_bool(e, "parent_used", s->parent_valid);
	cb_text(e, "tracking");
	if (ck_tracking.uffd >= 0)
		cb_text(e, "userfaultfd write-protect");
	else
		cb_text(e, ck_errno_name(ck_tracking.failed) ? ck_errno_name(ck_tracking.failed) : "unavailable");
}

/* ---- restore: the restored memory is the image's; protect it now ---- */

/* Returns 1 when tracking works; the caller then protects every private
 * anonymous region (ck_track_protect). */
CK_HIDDEN int ck_track_restore_begin(uint64_t image_track_id)
{
	ck_tracking.uffd = -1;
	ck_tracking.failed = 0;
	ck_tracking.base_id = 0;
	long fd = tracking_setup();
	if (fd < 0) {
		ck_tracking.failed = (int)-fd;
		return 0;
	}
	ck_tracking.uffd = (int)fd;
	ck_tracking.base_id = image_track_id;
	return 1;
}
