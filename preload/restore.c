/* The restore host's side of a restart: read and check the image, set up
 * what survives an address-space switch (descriptors, cwd, rlimits, signal
 * actions), then hand over to the restore core in a hole no saved mapping
 * uses. Everything that can fail is tried before anything is destroyed;
 * see docs/design.md. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckrun.h"
#include "crc32c.h"
#include "restore.h"
#include "schema.h"
#include "sys.h"

#define CORE_STACK (256UL << 10)

CK_HIDDEN const char *ck_image_name;

/* A metadata key for a message: printable characters only. */
static void key_text(char *out, size_t cap, const char *k, size_t kl)
{
	size_t n = 0;
	for (size_t i = 0; i < kl && n + 1 < cap; i++)
		out[n++] = k[i] >= 32 && k[i] < 127 ? k[i] : '?';
	out[n] = 0;
}

/* "image_ids": [[track_id, header_crc], ...], what each of "images" must be. */
static int parse_image_ids(struct cb_dec *d, struct ck_image *img)
{
	int64_t n, m;
	if (!cbd_array(d, &n))
		return 0;
	img->nimage_ids = 0;
	while (cbd_next_item(d, &n)) {
		uint64_t track, crc;
		if (img->nimage_ids >= CK_MAX_IMAGES || !cbd_array(d, &m) || !cbd_next_item(d, &m) || !cbd_uint(d, &track) ||
		    !cbd_next_item(d, &m) || !cbd_uint_max(d, UINT32_MAX, &crc) || cbd_next_item(d, &m))
			return 0;
		img->image_track[img->nimage_ids] = track;
		img->image_crc[img->nimage_ids++] = (uint32_t)crc;
	}
	return !d->error;
}

static void parse_metadata(struct ck_image *img)
{
	struct cb_dec d;
	int64_t left;
	const char *k;
	size_t kl;
	char key[64] = "";
	int have_version = 0;
	cbd_init(&d, img->meta, img->meta_len);
	int ok = cbd_map(&d, &left);
	img->ctl_fd = -1;
	img->nimage_ids = -1;
	while (ok && cbd_next_key(&d, &left, &k, &kl)) {
		key_text(key, sizeof key, k, kl);
		if (cbd_key_is(k, kl, "version")) {
			uint64_t v;
			ok = cbd_uint(&d, &v);
			if (ok && v != CK_IMAGE_VERSION)
				ck_refuse("image %s is corrupted: metadata version %llu differs from the header's", img->path,
					  (unsigned long long)v);
			have_version = 1;
		} else if (cbd_key_is(k, kl, "threads"))
			ok = ck_threads_parse(&d, img);
		else if (cbd_key_is(k, kl, "signals"))
			ok = ck_signals_parse(&d, img);
		else if (cbd_key_is(k, kl, "files"))
			ok = ck_files_parse(&d, img);
		else if (cbd_key_is(k, kl, "memory"))
			ok = ck_memory_parse(&d, img);
		else if (cbd_key_is(k, kl, "vdso"))
			ok = ck_vdso_parse(&d, img);
		else if (cbd_key_is(k, kl, "image_ids"))
			ok = parse_image_ids(&d, img);
		else if (cbd_key_is(k, kl, "sysv"))
			ok = ck_sysv_parse(&d, img);
		else {
			int r = ck_process_parse(&d, k, kl, img);
			if (r == 0)
				r = ck_mm_parse(&d, k, kl, img);
			if (r == 0)
				r = cbd_skip(&d) ? 1 : -1;
			ok = r > 0;
		}
	}
	if (!ok || d.error)
		ck_refuse("image %s is corrupted: its metadata cannot be read (at \"%s\")", img->path, key);
	if (!have_version)
		ck_refuse("image %s is corrupted: metadata version (none) differs from the header's", img->path);
	if (!img->pid)
		ck_refuse("image %s is corrupted: its metadata has no pid", img->path);
	if (!img->nthreads || !img->nregions)
		ck_refuse("image %s is incomplete: it lacks the process, its threads or its memory", img->path);
	if (img->shim_abi != CK_SHIM_ABI)
		ck_refuse("image %s was taken by a ckrun whose shim works differently (shim ABI %d; this ckrun's is %d); "
			  "restart it with the ckrun version that took it", img->path, img->shim_abi, CK_SHIM_ABI);
}

/* Frees what reading an image allocated (the restore host itself never
 * needs to: it exits or becomes the program; a fuzz target reads millions). */
CK_HIDDEN void ck_image_release(struct ck_image *img)
{
	ck_files_release(img);
	ck_sysv_release(img);
	for (size_t i = 0; img->regions && i < img->nregions; i++) {
		struct ck_img_region *r = &img->regions[i];
		free((char *)r->name);
		free((char *)r->path);
		free((char *)r->shm_name);
		free(r->runs);
		free(r->guards);
	}
	for (int i = 0; i < img->nimages; i++)
		free((char *)img->images[i]);
	free(img->files);
	free(img->regions);
	for (size_t i = 0; img->threads && i < img->nthreads; i++)
		free(img->threads[i].groups);
	free(img->threads);
	free(img->groups);
	free(img->children);
	free(img->actions);
	for (uint32_t i = 0; img->attrs.aio && i < img->attrs.naio; i++)
		free(img->attrs.aio[i].events);
	free(img->attrs.aio);
	free((char *)img->exe);
	free((char *)img->cwd);
	free((char *)img->kernel);
	free(img->meta);
	memset(img, 0, sizeof *img);
}

CK_HIDDEN void ck_manifest_release(struct ck_manifest *m)
{
	for (size_t i = 0; i < m->nprocs; i++)
		free((char *)m->procs[i].image);
	free(m->procs);
	free(m->groups);
	memset(m, 0, sizeof *m);
}

/* ---- what can be checked from the image alone ---- */

static void dir_of(const char *path, char *out, size_t cap)
{
	snprintf(out, cap, "%s", path);
	char *slash = strrchr(out, '/');
	if (!slash)
		snprintf(out, cap, ".");
	else if (slash == out)
		out[1] = 0;
	else
		*slash = 0;
}

/* The images an incremental one refers to (hard links beside it): each is
 * opened and its header and metadata checked, and it must be the very
 * image it was taken against (image_ids), not another file of that name. */
static void read_one(struct ck_image *img, const char *path, int with_refs);

static void check_refs(struct ck_image *img)
{
	char dir[4096], path[8192];
	static char context[8400];
	if (img->nimage_ids >= 0 && img->nimage_ids != img->nimages)
		ck_refuse("image %s is corrupted: it names %d referred images but %d identities", img->path, img->nimages,
			  img->nimage_ids);
	dir_of(img->path, dir, sizeof dir);
	for (int i = 0; i < img->nimages; i++) {
		static struct ck_image ref; /* released before it is used again (a refusal may leave it half read) */
		ck_image_release(&ref);
		snprintf(path, sizeof path, "%s/%s", dir, img->images[i]);
		snprintf(context, sizeof context, " (image %s refers to it for unchanged pages)", img->path);
		ck_refuse_context = context;
		read_one(&ref, path, 0);
		ck_refuse_context = 0;
		int found;
		uint64_t track = ck_meta_track_id(ref.meta, ref.meta_len, &found);
		if (img->nimage_ids >= 0 && (ref.header_crc != img->image_crc[i] || !found || track != img->image_track[i]))
			ck_refuse("image %s refers to %s for unchanged pages, but that file is not the image it was taken "
				  "against (header checksum %08x, track id %016llx; expected %08x, %016llx): it was replaced",
				  img->path, path, ref.header_crc, (unsigned long long)track, img->image_crc[i],
				  (unsigned long long)img->image_track[i]);
		img->image_fds[i] = ref.fd;
		img->image_data_len[i] = ref.data_length;
		ck_image_release(&ref);
	}
}

struct chunk_check {
	struct ck_image *img;
	uint64_t off, len;
	int ref;
	int refs_loaded; /* image_data_len is known: check where referred pages lie */
};

static int chunk_ok(void *ctx, uint64_t off, uint64_t len, uint32_t crc, int ref)
{
	struct chunk_check *c = ctx;
	struct ck_image *img = c->img;
	(void)crc;
	c->off = off;
	c->len = len;
	c->ref = ref;
	if (ref < 0)
		return ck_chunk_inside(img, off, len);
	if (!c->refs_loaded)
		return ref < img->nimages;
	return ref < img->nimages && off >= CK_IMAGE_HEADER_SIZE && off % CK_PAGE == 0 && len <= img->image_data_len[ref] &&
	       off - CK_IMAGE_HEADER_SIZE <= img->image_data_len[ref] - len;
}

/* Every chunk the metadata names lies in the data area it names. */
static void check_chunks(struct ck_image *img, int refs_loaded)
{
	struct chunk_check c = {img, 0, 0, -1, refs_loaded};
	if (ck_meta_chunks(img->meta, img->meta_len, chunk_ok, &c))
		return;
	if (c.ref >= img->nimages)
		ck_refuse("image %s is corrupted: pages it holds elsewhere refer to image %d of %d", img->path, c.ref,
			  img->nimages);
	if (c.ref >= 0)
		ck_refuse("image %s is corrupted: pages it refers to (offset %llu, %llu bytes) lie outside the data area of %s",
			  img->path, (unsigned long long)c.off, (unsigned long long)c.len, img->images[c.ref]);
	ck_refuse("image %s is corrupted: a chunk of saved data (offset %llu, %llu bytes) is malformed or lies outside "
		  "its data area", img->path, (unsigned long long)c.off, (unsigned long long)c.len);
}

/* Threads: distinct TIDs, one of them the process's own. Regions: page
 * aligned, in address order, not overlapping; their runs inside them. */
static void check_structure(struct ck_image *img)
{
	int has_main = 0;
	for (size_t i = 0; i < img->nthreads; i++) {
		has_main |= img->threads[i].tid == img->pid;
		for (size_t j = 0; j < i; j++)
			if (img->threads[j].tid == img->threads[i].tid)
				ck_refuse("image %s is corrupted: thread ID %d appears twice", img->path, img->threads[i].tid);
	}
	if (!has_main)
		ck_refuse("the image has no thread with the process's own ID %d (its main thread had exited); "
			  "ckrun cannot restore such a process yet", img->pid);
	for (size_t i = 0; i < img->nregions; i++) {
		struct ck_img_region *r = &img->regions[i];
		if (r->start % CK_PAGE || r->end % CK_PAGE || r->end <= r->start)
			ck_refuse("image %s is corrupted: region %#llx-%#llx is not page aligned", img->path,
				  (unsigned long long)r->start, (unsigned long long)r->end);
		if (i > 0 && r->start < img->regions[i - 1].end)
			ck_refuse("image %s is corrupted: region %#llx-%#llx overlaps the one before it", img->path,
				  (unsigned long long)r->start, (unsigned long long)r->end);
		for (size_t j = 0; j < r->nruns; j++) {
			struct ck_img_run *run = &r->runs[j];
			if (run->addr % CK_PAGE || run->addr < r->start || run->addr > r->end ||
			    run->npages > (r->end - run->addr) / CK_PAGE)
				ck_refuse("image %s is corrupted: a page run of region %#llx-%#llx lies outside it", img->path,
					  (unsigned long long)r->start, (unsigned long long)r->end);
		}
	}
}

/* One image: with_refs, also the images it refers to (whose own
 * references are not followed: every file an image's pages are in is in
 * its own list, and a referred image's list names files of its own
 * generation). */
static void read_one(struct ck_image *img, const char *path, int with_refs)
{
	for (int i = 0; i < CK_MAX_IMAGES; i++)
		img->image_fds[i] = -1;
	ck_image_load(img, path);
	parse_metadata(img);
	if (with_refs)
		check_refs(img);
	check_chunks(img, with_refs);
	check_structure(img);
}

CK_HIDDEN void ck_image_read(struct ck_image *img, const char *path)
{
	ck_image_name = path;
	read_one(img, path, 1);
}

/* ---- the manifest (docs/image-format.md, "manifest.cbor") ---- */

static int valid_image_name(const char *s, size_t n)
{
	if (memchr(s, '/', n) || memchr(s, 0, n))
		return 0;
	if (n > 5 && !memcmp(s + n - 5, ".ckpt", 5))
		return 1;
	return n > 8 && !memcmp(s + n - 8, ".ckpt.gz", 8);
}

/* One entry of "processes"; 0 when malformed. */
static int manifest_proc(struct cb_dec *d, struct ck_manifest_proc *p, int version)
{
	int64_t m;
	const char *k;
	size_t kl;
	uint64_t v;
	int has_bytes = 0, has_crc = 0;
	if (!cbd_map(d, &m))
		return 0;
	while (cbd_next_key(d, &m, &k, &kl)) {
		if (cbd_key_is(k, kl, "pid")) {
			if (!cbd_uint_max(d, CK_PID_MAX, &v) || v < 1)
				return 0;
			p->pid = (int)v;
		} else if (cbd_key_is(k, kl, "image")) {
			const char *s;
			size_t sl;
			if (cbd_peek(d) != CB_TEXT || !cbd_text(d, &s, &sl) || !valid_image_name(s, sl))
				return 0;
			p->image = ck_dup_text(s, sl);
		} else if (cbd_key_is(k, kl, "bytes")) {
			if (!cbd_uint(d, &p->bytes))
				return 0;
			has_bytes = 1;
		} else if (cbd_key_is(k, kl, "header_crc")) {
			if (!cbd_uint_max(d, UINT32_MAX, &v))
				return 0;
			p->header_crc = (uint32_t)v;
			has_crc = 1;
		} else if (cbd_key_is(k, kl, "ppid") || cbd_key_is(k, kl, "pgid") || cbd_key_is(k, kl, "sid")) {
			if (!cbd_uint_max(d, CK_PID_MAX, &v))
				return 0;
		} else if (cbd_key_is(k, kl, "pause_ns") || cbd_key_is(k, kl, "compressed_bytes")) {
			if (!cbd_uint(d, &v))
				return 0;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	p->has_identity = version >= 2;
	return !d->error && p->pid && p->image && (version < 2 || (has_bytes && has_crc));
}

/* "shared_files": [[[pid, fd], ...], ...] */
static int manifest_groups(struct cb_dec *d, struct ck_manifest *m)
{
	int64_t ng, nm, two;
	int group = 0;
	if (!cbd_array(d, &ng))
		return 0;
	while (cbd_next_item(d, &ng)) {
		if (!cbd_array(d, &nm))
			return 0;
		while (cbd_next_item(d, &nm)) {
			uint64_t pid, fd;
			if (!cbd_array(d, &two) || !cbd_next_item(d, &two) || !cbd_uint_max(d, CK_PID_MAX, &pid) ||
			    !cbd_next_item(d, &two) || !cbd_uint_max(d, INT32_MAX, &fd) || cbd_next_item(d, &two))
				return 0;
			m->groups = realloc(m->groups, (m->ngroups + 1) * sizeof *m->groups);
			m->groups[m->ngroups][0] = (int)pid;
			m->groups[m->ngroups][1] = (int)fd;
			m->groups[m->ngroups++][2] = group;
		}
		group++;
	}
	return !d->error;
}

/* "shm_owners": [[dev, ino, pid], ...] (read by node; checked here alike) */
static int manifest_owners(struct cb_dec *d)
{
	int64_t n;
	uint64_t v[3];
	if (!cbd_array(d, &n))
		return 0;
	while (cbd_next_item(d, &n)) {
		int64_t m;
		int i = 0;
		if (!cbd_array(d, &m))
			return 0;
		while (cbd_next_item(d, &m))
			if (i == 3 || !cbd_uint(d, &v[i++]))
				return 0;
		if (i != 3)
			return 0;
	}
	return !d->error;
}

/* A list of text (argv): read by node, checked here alike. */
static int text_list(struct cb_dec *d)
{
	int64_t n;
	const char *s;
	size_t sl;
	if (!cbd_array(d, &n))
		return 0;
	while (cbd_next_item(d, &n))
		if (cbd_peek(d) != CB_TEXT || !cbd_text(d, &s, &sl))
			return 0;
	return !d->error;
}

static __attribute__((noreturn)) void manifest_damaged(const char *dir, const char *why)
{
	ck_refuse("the manifest of generation %s is damaged: %s", dir, why);
}

/* Whether the directory's own name is a generation number (DIR/N), and which. */
static int dir_number(const char *dir, uint64_t *n)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", dir);
	size_t len = strlen(buf);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = 0;
	const char *base = strrchr(buf, '/');
	base = base ? base + 1 : buf;
	if (*base < '1' || *base > '9' || strlen(base) > 16)
		return 0;
	*n = 0;
	for (const char *p = base; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		*n = *n * 10 + (uint64_t)(*p - '0');
	}
	return 1;
}

CK_HIDDEN void ck_manifest_parse(struct ck_manifest *m, const uint8_t *buf, size_t len, const char *dir)
{
	struct cb_dec d;
	int64_t n;
	const char *k;
	size_t kl;
	const uint8_t *map = buf;
	size_t maplen = len;
	int framed = 0, format = 0, has_generation = 0;
	memset(m, 0, sizeof *m);
	if (!cbd_well_formed(buf, len))
		manifest_damaged(dir, "it is not well-formed CBOR");
	cbd_init(&d, buf, len);
	if (cbd_peek(&d) == CB_ARRAY) {
		/* version 2: [h'<manifest map>', crc32c] */
		const uint8_t *b;
		size_t bl;
		uint64_t crc;
		if (!cbd_array(&d, &n) || !cbd_next_item(&d, &n) || cbd_peek(&d) != CB_BYTES || !cbd_bytes(&d, &b, &bl) ||
		    !cbd_next_item(&d, &n) || cbd_peek(&d) != CB_UINT || !cbd_uint(&d, &crc) || cbd_next_item(&d, &n) ||
		    crc > UINT32_MAX)
			manifest_damaged(dir, "it is not a [manifest, checksum] pair");
		if (ck_crc32c(0, b, bl) != (uint32_t)crc)
			manifest_damaged(dir, "its checksum does not match");
		if (!cbd_well_formed(b, bl))
			manifest_damaged(dir, "it is not well-formed CBOR");
		map = b;
		maplen = bl;
		framed = 1;
	}
	char why[512];
	if (!ck_schema_check(map, maplen, CK_SCHEMA_MANIFEST, why, sizeof why))
		manifest_damaged(dir, why);
	cbd_init(&d, map, maplen);
	if (!cbd_map(&d, &n))
		manifest_damaged(dir, "it is not a map");
	while (cbd_next_key(&d, &n, &k, &kl)) {
		uint64_t v;
		int ok = 1;
		if (cbd_key_is(k, kl, "format")) {
			const char *s;
			size_t sl;
			ok = cbd_peek(&d) == CB_TEXT && cbd_text(&d, &s, &sl);
			format = ok && sl == 13 && !memcmp(s, "ckrun-session", 13);
		} else if (cbd_key_is(k, kl, "version")) {
			ok = cbd_peek(&d) == CB_UINT && cbd_uint_max(&d, 1000, &v);
			m->version = ok ? (int)v : 0;
		} else if (cbd_key_is(k, kl, "generation")) {
			ok = cbd_peek(&d) == CB_UINT && cbd_uint_max(&d, (1ULL << 53) - 1, &m->generation) && m->generation >= 1;
			has_generation = ok;
		} else if (cbd_key_is(k, kl, "root")) {
			ok = cbd_peek(&d) == CB_UINT && cbd_uint_max(&d, CK_PID_MAX, &v) && v >= 1;
			m->root = ok ? (int)v : 0;
		} else if (cbd_key_is(k, kl, "processes")) {
			int64_t np;
			ok = cbd_array(&d, &np);
			while (ok && cbd_next_item(&d, &np)) {
				m->procs = realloc(m->procs, (m->nprocs + 1) * sizeof *m->procs);
				struct ck_manifest_proc *p = &m->procs[m->nprocs++];
				memset(p, 0, sizeof *p);
				/* the version may come after the processes: identities are required below */
				ok = manifest_proc(&d, p, 1);
				p->has_identity = 0;
			}
		} else if (cbd_key_is(k, kl, "shared_files")) {
			ok = manifest_groups(&d, m);
		} else if (cbd_key_is(k, kl, "shm_owners")) {
			ok = manifest_owners(&d);
		} else if (cbd_key_is(k, kl, "files")) {
			m->has_files = 1;
			ok = cbd_skip(&d);
		} else if (cbd_key_is(k, kl, "argv")) {
			ok = text_list(&d);
		} else if (cbd_key_is(k, kl, "cwd")) {
			const char *s;
			size_t sl;
			ok = cbd_peek(&d) == CB_TEXT && cbd_text(&d, &s, &sl);
		} else if (cbd_key_is(k, kl, "created_ns")) {
			ok = cbd_peek(&d) == CB_UINT && cbd_uint(&d, &v);
		} else if (cbd_key_is(k, kl, "compressed")) {
			const char *s;
			size_t sl;
			ok = cbd_peek(&d) == CB_TEXT && cbd_text(&d, &s, &sl) && sl == 4 && !memcmp(s, "gzip", 4);
			if (!ok)
				ck_refuse("the manifest of generation %s says its images are compressed in a way this ckrun does not "
					  "read (it reads gzip only)", dir);
		} else {
			ok = cbd_skip(&d);
		}
		if (!ok || d.error) {
			char key[64];
			key_text(key, sizeof key, k, kl);
			ck_refuse("the manifest of generation %s is damaged: its \"%s\" is malformed", dir, key);
		}
	}
	if (d.error)
		manifest_damaged(dir, "it cannot be read");
	if (!format)
		ck_refuse("the manifest of generation %s is not a ckrun session manifest (format is not 'ckrun-session')", dir);
	if (m->version != (framed ? 2 : 1))
		ck_refuse("the manifest of generation %s has version %d%s; this ckrun reads versions 1 and 2", dir, m->version,
			  framed ? " in a version 2 frame" : " without the version 2 frame");
	if (!has_generation || !m->root)
		manifest_damaged(dir, "it lacks generation or root");
	if (!m->nprocs)
		manifest_damaged(dir, "it lists no valid process image");
	uint64_t number;
	if (dir_number(dir, &number) && number != m->generation)
		ck_refuse("the manifest in %s is that of generation %llu: the generation was replaced or mixed up with "
			  "another one", dir, (unsigned long long)m->generation);
	/* identities: re-read each entry now that the version is known */
	if (m->version >= 2) {
		cbd_init(&d, map, maplen);
		cbd_map(&d, &n);
		while (cbd_next_key(&d, &n, &k, &kl)) {
			if (!cbd_key_is(k, kl, "processes")) {
				cbd_skip(&d);
				continue;
			}
			int64_t np;
			cbd_array(&d, &np);
			for (size_t i = 0; cbd_next_item(&d, &np) && i < m->nprocs; i++) {
				free((char *)m->procs[i].image);
				m->procs[i].image = 0;
				if (!manifest_proc(&d, &m->procs[i], 2))
					manifest_damaged(dir, "a process entry lacks the image's size or header checksum");
			}
		}
	}
	for (size_t i = 0; i < m->nprocs; i++)
		for (size_t j = 0; j < i; j++)
			if (m->procs[i].pid == m->procs[j].pid || !strcmp(m->procs[i].image, m->procs[j].image))
				manifest_damaged(dir, "it lists a process or an image twice");
}

CK_HIDDEN void ck_manifest_read(struct ck_manifest *m, const char *dir)
{
	char path[8192];
	struct stat st;
	snprintf(path, sizeof path, "%s/manifest.cbor", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		ck_refuse("generation %s has no readable manifest (%s): it is incomplete or damaged", dir, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		ck_refuse("the manifest of generation %s is not a regular file", dir);
	if (st.st_size == 0)
		ck_refuse("the manifest of generation %s is empty", dir);
	if ((uint64_t)st.st_size > CK_MANIFEST_MAX)
		manifest_damaged(dir, "it is implausibly large");
	/* allocated, not a static array: every process that preloads the
	 * shim would carry its bss */
	uint8_t *buf = malloc((size_t)st.st_size);
	if (!buf || ck_pread_all(fd, buf, (size_t)st.st_size, 0) < 0)
		ck_refuse("cannot read the manifest of generation %s: %s", dir, buf ? strerror(errno) : "out of memory");
	close(fd);
	ck_manifest_parse(m, buf, (size_t)st.st_size, dir);
	free(buf);
}

CK_HIDDEN void ck_image_matches(const struct ck_image *img, const struct ck_manifest_proc *p, const char *dir)
{
	if (img->pid != p->pid)
		ck_refuse("image %s holds PID %d but the manifest of %s says %d; the generation is inconsistent", img->path,
			  img->pid, dir, p->pid);
	if (p->has_identity && (img->file_len != p->bytes || img->header_crc != p->header_crc))
		ck_refuse("image %s is not the image generation %s was made with (its manifest records %llu bytes with "
			  "header checksum %08x; the file has %llu bytes with %08x): it was replaced or mixed up with another "
			  "generation's", img->path, dir, (unsigned long long)p->bytes, p->header_crc,
			  (unsigned long long)img->file_len, img->header_crc);
}

/* ---- the session connection ---- */

static int connect_ckrun(void)
{
	const char *name = getenv("CKRUN_SOCK");
	struct sockaddr_un a;
	if (!name || !*name)
		return -1;
	unsigned alen = ck_session_addr(&a, name);
	if (!alen)
		ck_refuse("the session socket name %s is too long", name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, alen) != 0)
		ck_refuse("cannot reach ckrun at @%s: %s", name, strerror(errno));
	if (!ck_coordinator_trusted(fd))
		ck_refuse("the session socket @%s is held by another user, not by ckrun: the program is not handed to it", name);
	return fd;
}

static void fill_session_info(struct ck_restore_info *ri)
{
	ri->drop_caps = 0; /* the restore core set the image's capabilities already */
	const char *name = getenv("CKRUN_SOCK");
	const char *s = getenv("CKRUN_STDIO");
	if (name)
		snprintf(ri->sock, sizeof ri->sock, "%s", name);
	for (int k = 0; k < 3 && s && *s; k++) {
		unsigned long long dev, ino;
		int used;
		if (sscanf(s, "%llu:%llu%n", &dev, &ino, &used) != 2)
			break;
		ri->stdio_dev[k] = dev;
		ri->stdio_ino[k] = ino;
		s += used;
		if (*s == ',')
			s++;
	}
}

/* ---- the hole ---- */

struct span {
	uint64_t lo, hi;
};

static int by_lo(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* A free range that neither this process nor the image uses. */
static uint64_t find_hole(struct ck_image *img, uint64_t size)
{
	size_t cap = img->nregions + img->attrs.naio + 4096, n = 0;
	struct span *s = malloc(cap * sizeof *s);
	for (size_t i = 0; i < img->nregions; i++)
		s[n++] = (struct span){img->regions[i].start, img->regions[i].end};
	for (uint32_t i = 0; i < img->attrs.naio; i++) /* AIO rings go back there */
		s[n++] = (struct span){img->attrs.aio[i].ctx, img->attrs.aio[i].ctx + img->attrs.aio[i].len};
	for (int k = 0; k < 3; k++)
		if (img->vdso[k][0])
			s[n++] = (struct span){img->vdso[k][0], img->vdso[k][1]};
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	while (f && fgets(line, sizeof line, f) && n < cap) {
		unsigned long long lo, hi;
		if (sscanf(line, "%llx-%llx", &lo, &hi) == 2)
			s[n++] = (struct span){lo, hi};
	}
	if (f)
		fclose(f);
	qsort(s, n, sizeof *s, by_lo);
	/* keep clear of the lowest 1 GiB (where brk heaps of non-PIE programs live) */
	uint64_t cand = 1ULL << 30, guard = 1ULL << 20;
	for (size_t i = 0; i < n; i++) {
		if (s[i].lo >= cand + size + guard)
			break;
		if (s[i].hi + guard > cand)
			cand = CK_PAGE_UP(s[i].hi + guard);
	}
	free(s);
	if (cand + size >= 0x7fffffff0000ULL)
		ck_refuse("no room in the address space for the restore code");
	return cand;
}

/* The shim copied into the hole, segment by segment at the same offsets,
 * so the restore core's rip-relative references stay right. */
static void copy_self(const struct ck_self *ls, uint64_t dst)
{
	const ElfW(Phdr) *phdr = ls->phdr;
	for (int i = 0; i < ls->phnum; i++) {
		const ElfW(Phdr) *ph = &phdr[i];
		if (ph->p_type == PT_LOAD)
			memcpy((void *)(dst + ph->p_vaddr), (const void *)(ls->base + ph->p_vaddr), ph->p_memsz);
	}
}

static int max_program_fd(struct ck_image *img)
{
	int m = img->ctl_fd > 2 ? img->ctl_fd : 2;
	for (size_t i = 0; i < img->nfiles; i++)
		if (img->files[i].fd > m)
			m = img->files[i].fd;
	return m;
}

static int is_kept(const int *keep, int nkeep, int fd)
{
	for (int i = 0; i < nkeep; i++)
		if (keep[i] == fd)
			return 1;
	return 0;
}

static void close_others(const int *keep, int nkeep)
{
	DIR *d = opendir("/proc/self/fd");
	int fds[4096], n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) && n < 4096) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		int fd = atoi(e->d_name);
		if (fd != dirfd(d) && !is_kept(keep, nkeep, fd))
			fds[n++] = fd;
	}
	if (d)
		closedir(d);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static void unregister_rseq(void)
{
	extern const unsigned int __rseq_size __attribute__((weak));
	extern const ptrdiff_t __rseq_offset __attribute__((weak));
	if (&__rseq_size && __rseq_size && &__rseq_offset) {
		uint64_t fs;
		ck_arch_prctl(0x1003, (unsigned long)&fs);
		CK_SYS4(SYS_rseq, fs + (uint64_t)__rseq_offset, 32, 1 /* RSEQ_FLAG_UNREGISTER */, 0x53053053);
	}
}

CK_HIDDEN void ck_jump_to_core(void *arg, void *stack_top, void (*entry)(void *)) __attribute__((noreturn));

/* Each restore core of a family writes its process's PID here once the
 * process is rebuilt (restore_core.c): until all have, a process of the
 * family that ends has failed its restore (watch_restore). */
static int tree_done[2] = {-1, -1};
/* the orchestrator's go: one byte per process once every process is
 * rebuilt (and holds its file locks again, locks.c), so none runs before
 * the others are whole */
static int tree_go[2] = {-1, -1};
CK_CORE __attribute__((noreturn)) void ck_core_main(struct ck_plan *p);

/* Loads one image and checks what can be checked without changing
 * anything (files, pages, vdso). */
CK_HIDDEN void ck_load_and_check(struct ck_image *img, const char *path, int verify_data)
{
	ck_image_read(img, path);
	ck_creds_check(img);
	ck_attrs_check(img);
	ck_verbose("image %s: pid %d, %zu threads, %zu regions, %zu descriptors", path, img->pid, img->nthreads,
		   img->nregions, img->nfiles);
	ck_files_check(img);
	ck_memory_check(img, verify_data);
	struct ck_plan probe;
	ck_vdso_check(img, &probe);
}

/* Turns this process into the one in img (whose checks passed); objs are
 * the objects a tree's processes share, or NULL. */
static __attribute__((noreturn)) void become(struct ck_image *img, const struct ck_objects *objs)
{
	ck_image_name = img->path;
	ck_threads_check(img);
	ck_sysv_take_undo(img);

	struct ck_self ls;
	if (!ck_self_find(&ls))
		ck_refuse("cannot find the shim's own code");

	size_t nruns = 0;
	for (size_t i = 0; i < img->nregions; i++)
		nruns += img->regions[i].nruns + img->regions[i].nguards;
	uint64_t vdso_len = img->vdso[2][1] - img->vdso[0][0], vdso_len_now = ck_vdso_len_now();
	if (vdso_len_now > vdso_len) /* the spot the block moves through (bridged: this kernel's) */
		vdso_len = vdso_len_now;
	uint64_t plan_size = CK_PAGE_UP(sizeof(struct ck_plan) + img->nregions * sizeof(struct ck_plan_region) +
					nruns * sizeof(struct ck_plan_run) + img->nthreads * sizeof(struct ck_plan_thread) +
					ck_creds_plan_size(img) + ck_aio_plan_size(img) + 64);
	uint64_t stacks_size = (img->nthreads + 1) * CK_THREAD_STACK;
	uint64_t hole_size = ls.size + plan_size + CORE_STACK + stacks_size + CK_PAGE_UP(vdso_len) + CK_PAGE;
	uint64_t hole = find_hole(img, hole_size);
	long m = ck_mmap((void *)hole, hole_size, PROT_READ | PROT_WRITE | PROT_EXEC,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (m != (long)hole)
		ck_refuse("cannot map the restore code at %#llx: %s", (unsigned long long)hole, ck_errno_name(m));

	uint64_t plan_at = hole + ls.size;
	struct ck_plan *plan = (struct ck_plan *)plan_at;
	struct ck_plan_region *regions = (struct ck_plan_region *)(plan_at + sizeof *plan);
	struct ck_plan_run *runs = (struct ck_plan_run *)(regions + img->nregions);
	struct ck_plan_thread *threads = (struct ck_plan_thread *)(runs + nruns);
	uint32_t *groups = (uint32_t *)(threads + img->nthreads);
	uint64_t core_stack_top = plan_at + plan_size + CORE_STACK;
	uint64_t stacks = core_stack_top;
	plan->vdso_tmp = stacks + stacks_size;
	ck_vdso_check(img, plan);
	if (plan->vdso_proxy_len)
		/* bridged: this kernel's vdso stays where it is unless the image needs the place */
		ck_vdso_bridge_place(plan, ck_vdso_bridge_collides(img, plan)
						   ? find_hole(img, plan->vdso_now[2][1] - plan->vdso_now[0][0])
						   : plan->vdso_now[0][0]);

	/* descriptors the restore needs, above every number the program uses */
	int base = max_program_fd(img) + 1;
	struct rlimit nofile;
	getrlimit(RLIMIT_NOFILE, &nofile);
	if ((rlim_t)base + 64 + img->nregions > nofile.rlim_cur) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	plan->image_fd = fcntl(img->fd, F_DUPFD_CLOEXEC, base);
	if (plan->image_fd < 0)
		ck_refuse("cannot place the image descriptor: %s", strerror(errno));
	close(img->fd);
	img->fd = plan->image_fd;
	plan->exe_fd = -1;
	if (img->exe) {
		int fd = open(img->exe, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			plan->exe_fd = fcntl(fd, F_DUPFD_CLOEXEC, base);
			close(fd);
		}
	}
	/* a process of a family tells the orchestrator when it is rebuilt
	 * (above the program's descriptors, before they are put in place) */
	plan->done_fd = tree_done[1] >= 0 ? fcntl(tree_done[1], F_DUPFD_CLOEXEC, base) : -1;
	plan->go_fd = tree_go[0] >= 0 ? fcntl(tree_go[0], F_DUPFD_CLOEXEC, base) : -1;
	int ctl = connect_ckrun();
	if (ctl >= 0) {
		int moved = fcntl(ctl, F_DUPFD_CLOEXEC, base);
		close(ctl);
		ctl = moved;
	}
	ck_memory_open(img, base, objs);
	ck_memory_open_refs(img, base);
	ck_files_open(img, base, objs);

	/* process state; from here on the restore host is becoming the program */
	ck_process_restore(img, objs);
	ck_attrs_restore(img);
	ck_signals_restore(img);
	ck_files_install(img);
	if (ctl >= 0 && img->ctl_fd >= 0) {
		if (dup3(ctl, img->ctl_fd, O_CLOEXEC) < 0 || ck_arm_async(img->ctl_fd, img->sig, getpid()) != 0)
			ck_refuse("cannot place the session connection at descriptor %d: %s", img->ctl_fd, strerror(errno));
		close(ctl);
	}

	/* every descriptor of the program, however many (a server's
	 * connections), and the restore host's own that the core still needs */
	int keep_cap = (int)img->nfiles + 1024, nkeep = 0;
	int *keep = malloc((size_t)keep_cap * sizeof *keep);
	if (!keep)
		ck_refuse("no memory for the list of the %zu descriptors of process %d", img->nfiles, img->pid);
	for (size_t i = 0; i < img->nfiles; i++)
		keep[nkeep++] = img->files[i].fd;
	keep[nkeep++] = img->ctl_fd;
	keep[nkeep++] = plan->image_fd;
	keep[nkeep++] = plan->exe_fd;
	keep[nkeep++] = plan->done_fd;
	keep[nkeep++] = plan->go_fd;
	plan->nclose = 0;
	plan->close_fds[plan->nclose++] = plan->image_fd;
	/* the core closes done_fd and go_fd itself, after the locks */
	for (int i = 0; i < img->nimages; i++) {
		keep[nkeep++] = img->image_fds[i];
		plan->close_fds[plan->nclose++] = img->image_fds[i];
	}
	if (plan->exe_fd >= 0)
		plan->close_fds[plan->nclose++] = plan->exe_fd;
	for (size_t i = 0; i < img->nregions; i++) {
		int fd = img->regions[i].fd;
		if (fd >= 0 && !is_kept(keep, nkeep, fd) && nkeep < keep_cap && plan->nclose < 512) {
			keep[nkeep++] = fd;
			plan->close_fds[plan->nclose++] = fd;
		}
	}
	/* shared memory this process maps: its descriptor lives until the map */
	for (size_t i = 0; objs && i < objs->n && nkeep < keep_cap && plan->nclose < 512; i++) {
		if (strcmp(objs->v[i].type, "shm"))
			continue;
		keep[nkeep++] = objs->v[i].fd;
		plan->close_fds[plan->nclose++] = objs->v[i].fd;
	}
	close_others(keep, nkeep);
	free(keep);

	/* the plan */
	ck_memory_plan(img, plan, regions, runs, objs);
	ck_threads_plan(img, plan, threads, stacks);
	ck_creds_plan(img, plan, groups);
	ck_locks_plan(img, plan);
	ck_fown_plan(img, plan);
	ck_aio_plan(img, plan, (char *)groups + ck_creds_plan_size(img), base);
	plan->err_fd = 2;
	/* Saved pages are read into the program's memory, never mapped from
	 * the image: a private mapping of the image file would bring the
	 * checkpoint's bytes back where the program releases pages
	 * (MADV_DONTNEED must give zeros; allocators such as jemalloc rely on
	 * it), refuse MADV_FREE, name the image in /proc/self/maps and leave
	 * the pages out of core dumps. Mapping stays for measurements, and for
	 * the shim's own code (memory.c fill_runs). */
	plan->map_runs = getenv("CKRUN_RESTORE_MAP") != 0;
	plan->pid = img->pid;
	plan->nofile_cur = img->rlim[RLIMIT_NOFILE][0] < 0 ? ~0ULL : (uint64_t)img->rlim[RLIMIT_NOFILE][0];
	plan->nofile_max = img->rlim[RLIMIT_NOFILE][1] < 0 ? ~0ULL : (uint64_t)img->rlim[RLIMIT_NOFILE][1];
	plan->info.magic = CK_RESTORE_INFO_MAGIC;
	plan->info.nthreads = (uint32_t)img->nthreads;
	plan->info.restored = 0;
	plan->info.ctl_fd = ctl >= 0 ? img->ctl_fd : -1;
	plan->info.track_id = img->track_id;
	plan->info.vdso_bridge[0] = plan->vdso_proxy_len ? plan->vdso_proxy_at : 0;
	plan->info.vdso_bridge[1] = plan->vdso_proxy_len ? plan->vdso_proxy_at + CK_PAGE_UP(plan->vdso_proxy_len) : 0;
	plan->info.nimages = 0;
	for (int i = -1; i < img->nimages; i++) {
		struct stat ist;
		if (fstat(i < 0 ? plan->image_fd : img->image_fds[i], &ist) == 0) {
			plan->info.image_dev[plan->info.nimages] = ist.st_dev;
			plan->info.image_ino[plan->info.nimages++] = ist.st_ino;
		}
	}
	plan->info.hole_start = hole;
	plan->info.hole_len = hole_size;
	plan->info.nlate_seeks = 0;
	for (size_t i = 0; i < img->nfiles; i++) {
		const struct ck_img_file *f = &img->files[i];
		if (!f->seek_late)
			continue;
		if (plan->info.nlate_seeks == CK_MAX_LATE_SEEKS)
			ck_refuse("more than %d descriptors of /proc lists of mappings are read part way (descriptor %d: %s)",
				  CK_MAX_LATE_SEEKS, f->fd, f->path);
		plan->info.late_seeks[plan->info.nlate_seeks].fd = f->fd;
		plan->info.late_seeks[plan->info.nlate_seeks++].offset = f->offset;
	}
	fill_session_info(&plan->info);

	copy_self(&ls, hole);
	void (*entry)(void *) = (void (*)(void *))(hole + ((uint64_t)&ck_core_main - ls.base));
	fflush(stdout);
	fflush(stderr);
	unregister_rseq();
	ck_jump_to_core(plan, (void *)core_stack_top, entry);
}

/* Everything the processes of a restore share, made once before any of
 * them is forked: every kind's objects (pipes, sockets), shared memory. */
static void create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	ck_sysv_create_shared(imgs, n);
	ck_files_create_shared(imgs, n, objs, base_fd);
	ck_shm_create_shared(imgs, n, objs, base_fd);
}

struct tree;
static void spawn_zombies(struct tree *t, const struct ck_image *img, int before_session);
static void spawn_lone_placeholders(const struct ck_image *img, int *out, size_t *n);
static void reap_placeholders(const int *pids, size_t n);

CK_HIDDEN __attribute__((noreturn)) void ck_restore_loaded(struct ck_image *img)
{
	static struct ck_objects objs;
	/* the children it had not reaped yet (its only children, perhaps), in
	 * their process groups (whose leaders may have been reaped) */
	int placeholders[64];
	size_t nplaceholders = 0;
	spawn_lone_placeholders(img, placeholders, &nplaceholders);
	spawn_zombies(0, img, -1);
	reap_placeholders(placeholders, nplaceholders);
	/* shared memory and pipes are made as a tree makes them: a memfd
	 * mapped and held as a descriptor stays one object */
	create_shared(&img, 1, &objs, max_program_fd(img) + 64);
	become(img, &objs);
}

CK_HIDDEN __attribute__((noreturn)) void ck_restore_image(const char *path, int verify_data)
{
	static struct ck_image img;
	ck_load_and_check(&img, path, verify_data);
	ck_restore_loaded(&img);
}

/* ---- a process tree (docs/design.md, "Restoring a tree") ---- */

struct tree_proc {
	int pid;
	int born_sid; /* the session it must be forked into, when its descendants need one (-1: any; 0: one whose leader is outside the PID namespace) */
	int spawned;  /* forked already (through a stand-in shared with its siblings) */
	const char *image;
	struct ck_manifest_proc entry;
	struct ck_image img;
};

struct tree {
	const char *dir;
	int root;
	int outside_sid; /* the session ckrun ran in, as the images saw it */
	struct tree_proc *procs;
	size_t n;
	int (*groups)[3]; /* pid, fd, group: descriptors sharing one open file description */
	size_t ngroups;
	struct ck_objects objs;
};

static void read_manifest(struct tree *t, const char *dir)
{
	struct ck_manifest m;
	ck_manifest_read(&m, dir);
	t->dir = dir;
	t->root = m.root;
	t->n = m.nprocs;
	t->procs = calloc(m.nprocs, sizeof *t->procs);
	for (size_t i = 0; i < m.nprocs; i++) {
		t->procs[i].pid = m.procs[i].pid;
		t->procs[i].image = m.procs[i].image;
		t->procs[i].entry = m.procs[i];
		t->procs[i].born_sid = -1;
	}
	t->groups = m.groups;
	t->ngroups = m.ngroups;
}

static struct tree_proc *tree_find(struct tree *t, int pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->procs[i].pid == pid)
			return &t->procs[i];
	return 0;
}

static int by_pid(const void *a, const void *b)
{
	return ((const struct tree_proc *)a)->pid - ((const struct tree_proc *)b)->pid;
}

/* fork, but the child gets PID pid; -1 and errno on failure */
CK_HIDDEN long ck_spawn_with_pid(int pid)
{
	struct ck_clone_args args;
	pid_t want = pid;
	ck_clone_args_child(&args, 0, &want);
	return syscall(SYS_clone3, &args, sizeof args);
}

static long spawn_with_pid(int pid)
{
	long child = ck_spawn_with_pid(pid);
	/* taken since the orchestrator looked (a process of this machine
	 * forked meanwhile): ckrun restores the family in a new PID namespace */
	if (child < 0 && errno == EEXIST) {
		ck_verbose("PID %d was taken meanwhile", pid);
		exit(CK_EXIT_PIDS_TAKEN);
	}
	if (child < 0)
		ck_refuse("cannot create process %d with its original PID: %s", pid, strerror(errno));
	return child;
}

static void zombie_takes_its_place(struct tree *t, const struct ck_image *parent, const struct ck_img_child *z);

/* A child that had exited and was not yet reaped: it takes its place in its
 * session and group again, exits the same way, and waits for its parent's
 * wait() like the original did. */
static void spawn_zombie(struct tree *t, const struct ck_image *parent, const struct ck_img_child *z)
{
	if (spawn_with_pid(z->pid))
		return;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	zombie_takes_its_place(t, parent, z);
	int status = z->status;
	if (WIFSIGNALED(status)) {
		struct rlimit none = {0, 0};
		setrlimit(RLIMIT_CORE, &none);
		signal(WTERMSIG(status), SIG_DFL);
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_UNBLOCK, &all, 0);
		kill(getpid(), WTERMSIG(status));
	}
	_exit(WEXITSTATUS(status));
}

/* A zombie that stays in the session its parent left by setsid (it was
 * forked before it): it is forked before that setsid again. */
static int zombie_in_old_session(const struct ck_image *parent, const struct ck_img_child *z)
{
	return parent->sid == parent->pid && z->sid >= 0 && z->sid != parent->pid && z->sid != z->pid;
}

/* The children that had exited and were not yet reaped (before_session:
 * only those forked before the parent's setsid, or only the others; -1:
 * all); the leaders of their groups or sessions first, whose members
 * join them. */
static void spawn_zombies(struct tree *t, const struct ck_image *img, int before_session)
{
	for (int leaders = 1; leaders >= 0; leaders--)
		for (size_t i = 0; i < img->nchildren; i++) {
			const struct ck_img_child *z = &img->children[i];
			if (!z->zombie || (z->pgid == z->pid) != leaders ||
			    (before_session >= 0 && zombie_in_old_session(img, z) != before_session))
				continue;
			spawn_zombie(t, img, z);
		}
}

/* Whether pid is a zombie img had not reaped. */
static int zombie_of(const struct ck_image *img, int pid)
{
	for (size_t i = 0; i < img->nchildren; i++)
		if (img->children[i].zombie && img->children[i].pid == pid)
			return 1;
	return 0;
}

/* The group a zombie of a process restored alone was in, when its leader
 * had been reaped: made again by a placeholder with the leader's PID, which
 * exits once the zombies joined it (0: none needed). The parent's own group
 * is the restarter's here, and the zombie's if it was the parent's. */
CK_HIDDEN int ck_zombie_placeholder(const struct ck_image *img, size_t i)
{
	const struct ck_img_child *z = &img->children[i];
	if (!z->zombie || z->pgid <= 0 || z->pgid == z->pid || z->pgid == img->pgid || z->sid == z->pid || zombie_of(img, z->pgid))
		return 0;
	return z->pgid;
}

static int lone_group_complete(const struct ck_image *img, int pgid)
{
	for (size_t i = 0; i < img->nchildren; i++)
		if (img->children[i].zombie && img->children[i].pgid == pgid && getpgid(img->children[i].pid) != pgid)
			return 0;
	return 1;
}

static void spawn_lone_placeholders(const struct ck_image *img, int *out, size_t *n)
{
	for (size_t i = 0; i < img->nchildren; i++) {
		int g = ck_zombie_placeholder(img, i), seen = 0;
		for (size_t k = 0; k < *n; k++)
			seen |= out[k] == g;
		if (!g || seen)
			continue;
		if (*n >= 64)
			ck_refuse("the zombies of process %d are in more than 64 process groups whose leaders had exited; "
				  "ckrun restores at most 64", img->pid);
		if (kill(g, 0) == 0 || errno != ESRCH) {
			ck_verbose("process ID %d (a process group of a zombie) is in use here", g);
			exit(CK_EXIT_PIDS_TAKEN);
		}
		long pid = spawn_with_pid(g);
		if (pid) {
			out[(*n)++] = (int)pid;
			continue;
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (setpgid(0, 0) < 0)
			_exit(1);
		for (int tries = 0; tries < 20000 && !lone_group_complete(img, g); tries++)
			usleep(500);
		_exit(lone_group_complete(img, g) ? 0 : 2);
	}
}

static void spawn_member(struct tree *t, struct tree_proc *p);

/* In the forked restore host of one process: its children first (they
 * inherit everything shared), then its zombies, its session and group,
 * then it becomes the process. */
/* A child that stays in the session its parent had before the parent
 * opened one of its own (it was forked before the parent's setsid): it must
 * be forked before the parent's setsid again. */
static int in_parents_old_session(const struct tree_proc *p, const struct tree_proc *c)
{
	int need = c->born_sid >= 0 ? c->born_sid : c->img.sid != c->pid ? c->img.sid : -1;
	return p->img.sid == p->pid && need >= 0 && need != p->pid;
}

/* A process that stays in a session its parent left (by setsid) was forked
 * before that setsid, and so was every process between it and the session's
 * leader: each of those must be forked into that session again before its
 * own setsid (session00's chains). Two such needs through one process cannot
 * both be met: refused, naming them, before any process exists. */
static void need_born_session(struct tree *t, int pid, int ppid, int s);

static void find_born_sessions(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct tree_proc *c = &t->procs[i];
		need_born_session(t, c->pid, c->img.ppid, c->img.sid);
		for (size_t j = 0; j < c->img.nchildren; j++) {
			const struct ck_img_child *z = &c->img.children[j];
			if (z->zombie && z->sid >= 0)
				need_born_session(t, z->pid, c->pid, z->sid);
		}
	}
}

/* Process pid (parent ppid) is in session s: every ancestor up to the one
 * in s must be forked into s. */
static void need_born_session(struct tree *t, int pid, int ppid, int s)
{
	if (s == pid || !tree_find(t, ppid))
		return;
	struct tree_proc *q = tree_find(t, ppid);
	for (; q && q->pid != s; q = tree_find(t, q->img.ppid)) {
		if (q->img.sid == s)
			break;
		if (q->img.sid != q->pid)
			ck_refuse("process %d is in session %d, but its ancestor %d is in session %d, which it does not "
				  "lead: ckrun cannot make this tree again",
				  pid, s, q->pid, q->img.sid);
		if (q->born_sid >= 0 && q->born_sid != s)
			ck_refuse("process %d must be forked in session %d for one of its descendants and in session %d "
				  "for another: ckrun cannot make this tree again",
				  q->pid, q->born_sid, s);
		q->born_sid = s;
	}
	/* the chain left the family below the session's leader: only ckrun's
	 * own session is there to be born in (the orchestrator's) */
	if (!q && s != t->outside_sid)
		ck_refuse("process %d is in session %d, but none of its ancestors in the family leads or is in that session "
			  "(it was re-parented to a child subreaper): ckrun cannot make this tree again",
			  pid, s);
}

/* Joins a process group of the family, which another restore host may
 * still be creating: the one that leads it is forked concurrently. */
static void join_group(int pid, int pgid)
{
	for (int tries = 0;; tries++) {
		if (setpgid(0, pgid) == 0)
			return;
		if (errno != EPERM || tries >= 10000)
			ck_refuse("process %d cannot join its process group %d again: %s", pid, pgid, strerror(errno));
		usleep(500);
	}
}

/* The zombie with PID pid some process of the family had not reaped, or 0. */
static const struct ck_img_child *family_zombie(const struct tree *t, int pid)
{
	for (size_t i = 0; i < t->n; i++)
		for (size_t j = 0; j < t->procs[i].img.nchildren; j++) {
			const struct ck_img_child *z = &t->procs[i].img.children[j];
			if (z->zombie && z->pid == pid)
				return z;
		}
	return 0;
}

/* The group ckrun ran in (the root's, when it did not make its own): it
 * is inherited, never made. */
static int outside_group(const struct tree *t, int pgid)
{
	const struct tree_proc *root = tree_find((struct tree *)t, t->root ? t->root : t->procs[0].pid);
	return root && root->img.pgid != root->pid && root->img.pgid == pgid;
}

/* A process group of the family whose leader had exited (its members live
 * on): a placeholder with the leader's PID makes it again. */
static int group_needs_placeholder(struct tree *t, int pgid)
{
	return !tree_find(t, pgid) && !family_zombie(t, pgid) && !outside_group(t, pgid);
}

/* A group of the family exists (or is being made) for p to join. */
static int family_group(struct tree *t, int pgid)
{
	return tree_find(t, pgid) || family_zombie(t, pgid) || group_needs_placeholder(t, pgid);
}

/* Whether every process of group pgid is in it. */
static int group_complete(struct tree *t, int pgid)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct ck_image *img = &t->procs[i].img;
		if (img->pgid == pgid && getpgid(t->procs[i].pid) != pgid)
			return 0;
		for (size_t j = 0; j < img->nchildren; j++)
			if (img->children[j].zombie && img->children[j].pgid == pgid && getpgid(img->children[j].pid) != pgid)
				return 0;
	}
	return 1;
}

/* The placeholder leader of group pgid in session sid: it makes the group,
 * makes it its terminal's foreground group if it was, waits until every
 * member has joined and exits, as the original leader had. Its PID is free
 * again afterwards, as it was. Returns its PID (the caller reaps it). */
static int spawn_placeholder(struct tree *t, int pgid)
{
	long pid = spawn_with_pid(pgid);
	if (pid)
		return (int)pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (setpgid(0, 0) < 0)
		_exit(1);
	ck_pty_group_made(pgid, &t->objs);
	for (int tries = 0; tries < 20000 && !group_complete(t, pgid); tries++)
		usleep(500);
	_exit(group_complete(t, pgid) ? 0 : 2);
}

/* Whether process pid has exited (or never was): gone from /proc, or a
 * zombie, which no longer counts for its group. */
static int has_exited(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	const char *paren = strrchr(buf, ')');
	return !paren || paren[1] != ' ' || paren[2] == 'Z' || paren[2] == 'X';
}

/* A member of a group made by a placeholder runs only once the
 * placeholder has exited: while it lives the group is not as it was (an
 * orphaned group would not be orphaned). */
static void wait_for_placeholder(struct tree *t, const struct tree_proc *p)
{
	int g = p->img.pgid;
	if (g == p->img.sid || !group_needs_placeholder(t, g))
		return;
	for (int tries = 0; tries < 20000 && !has_exited(g); tries++)
		usleep(500);
	if (!has_exited(g))
		ck_refuse("process %d: the placeholder of its process group %d did not exit within 10 s", p->pid, g);
}

/* The groups of session sid whose leaders had exited, made again by
 * placeholders (in the caller's session, which is sid); their PIDs in
 * out, *n of them. */
static void spawn_placeholder_once(struct tree *t, int sid, int g, int *out, size_t *n);

static void spawn_placeholders(struct tree *t, int sid, int *out, size_t *n)
{
	if (sid < 0)
		return;
	for (size_t i = 0; i < t->n; i++) {
		const struct ck_image *img = &t->procs[i].img;
		spawn_placeholder_once(t, sid, img->sid == sid ? img->pgid : 0, out, n);
		for (size_t j = 0; j < img->nchildren; j++)
			if (img->children[j].zombie && img->children[j].sid == sid)
				spawn_placeholder_once(t, sid, img->children[j].pgid, out, n);
	}
}

/* The placeholder of group g of session sid, unless it needs none or has one. */
static void spawn_placeholder_once(struct tree *t, int sid, int g, int *out, size_t *n)
{
	/* a group that is its session's (pgid = sid) comes with the session */
	if (!g || g == sid || !group_needs_placeholder(t, g))
		return;
	int seen = 0;
	for (size_t k = 0; k < *n; k++)
		seen |= out[k] == g;
	if (!seen && *n >= 64)
		ck_refuse("session %d has more than 64 process groups whose leaders had exited; ckrun restores at most 64", sid);
	if (!seen)
		out[(*n)++] = spawn_placeholder(t, g);
}

/* Every placeholder has seen its members join and exited. */
static void reap_placeholders(const int *pids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			ck_refuse("process group %d (its leader had exited) could not be made again: not every member joined it "
				  "within 10 s", pids[i]);
	}
}

/* The children of p that stay in p's old session (before_session), or the
 * others; group leaders first, so that their siblings find their groups. */
static void spawn_children(struct tree *t, struct tree_proc *p, int before_session)
{
	for (int leaders = 1; leaders >= 0; leaders--)
		for (size_t i = 0; i < t->n; i++) {
			struct tree_proc *c = &t->procs[i];
			if (c->img.ppid != p->pid || in_parents_old_session(p, c) != before_session ||
			    (c->img.pgid == c->pid) != leaders)
				continue;
			spawn_member(t, c);
			/* as shells do (the child does it too); never for a session
			 * leader, whose setsid fails once it leads a group */
			if (c->img.sid != c->pid && family_group(t, c->img.pgid))
				setpgid(c->pid, c->img.pgid);
		}
}

/* A process of the family's session sid whose parent had exited (it had
 * become ckrun's, so its group may be orphaned): not the orchestrator's to
 * fork, which is in another session, but the session leader's. */
static int adopted_in_session(struct tree *t, const struct tree_proc *p, int sid)
{
	return !tree_find(t, p->img.ppid) && p->img.sid == sid && p->pid != sid && (tree_find(t, sid) || family_zombie(t, sid));
}

/* A PID above every one the family has or had (processes, groups,
 * sessions, zombies), where a helper process takes nothing of theirs. */
static int above_family_pids(struct tree *t)
{
	int top = 1;
	for (size_t i = 0; i < t->n; i++) {
		const struct ck_image *img = &t->procs[i].img;
		int ids[3] = {t->procs[i].pid, img->pgid, img->sid};
		for (int k = 0; k < 3; k++)
			top = ids[k] > top ? ids[k] : top;
		for (size_t j = 0; j < img->nchildren; j++)
			top = img->children[j].pid > top ? img->children[j].pid : top;
	}
	return top + 1;
}

static void member_main(struct tree *t, struct tree_proc *p, int via_stand_in) __attribute__((noreturn));

/* The adopted processes of session sid: each is forked by a helper that
 * exits at once, so that it becomes the orchestrator's (the subreaper's)
 * child again, in its session, as it had become ckrun's. */
static void spawn_adopted(struct tree *t, int sid)
{
	for (size_t i = 0; i < t->n; i++) {
		struct tree_proc *c = &t->procs[i];
		if (!adopted_in_session(t, c, sid))
			continue;
		long helper = -1;
		for (int pid = above_family_pids(t), tries = 0; tries < 4096; pid++, tries++)
			if ((helper = ck_spawn_with_pid(pid)) >= 0 || errno != EEXIST)
				break;
		if (helper < 0)
			ck_refuse("cannot create the helper that makes process %d again in session %d: %s", c->pid, sid,
				  strerror(errno));
		if (helper == 0) {
			if (spawn_with_pid(c->pid) == 0)
				member_main(t, c, 1);
			_exit(0);
		}
		waitpid((pid_t)helper, 0, 0);
	}
}

/* In a zombie forked again (before it exits): the session it led, with
 * the groups of that session whose leaders had exited and the processes of
 * it that had become ckrun's (zombie_leader: a session leader that exited
 * while its child lives on), or the group it led or was in. Images of older
 * builds do not say (pgid 0): it stays in its parent's group. */
static void zombie_takes_its_place(struct tree *t, const struct ck_image *parent, const struct ck_img_child *z)
{
	if (z->pgid < 0)
		return;
	if (z->sid == z->pid) {
		if (getsid(0) != z->pid && setsid() < 0)
			ck_refuse("zombie %d cannot lead its own session again: %s", z->pid, strerror(errno));
		if (!t)
			return;
		int placeholders[64];
		size_t nplaceholders = 0;
		spawn_placeholders(t, z->pid, placeholders, &nplaceholders);
		spawn_adopted(t, z->pid);
		reap_placeholders(placeholders, nplaceholders);
		return;
	}
	if (getpgid(0) == z->pgid)
		return;
	if (z->pgid == z->pid) {
		if (setpgid(0, 0) < 0)
			ck_refuse("zombie %d cannot lead its process group again: %s", z->pid, strerror(errno));
	} else if (t ? family_group(t, z->pgid) : z->pgid != parent->pgid) {
		join_group(z->pid, z->pgid);
	}
}

/* In the forked restore host of one process: its children that stay in
 * its old session, its session and group, its other children (they inherit
 * everything shared, and the session and group), its zombies, then it
 * becomes the process. */
static void member_main(struct tree *t, struct tree_proc *p, int via_stand_in)
{
	/* dies with the restore if its parent does (the restored shim sets the
	 * program's own back); not under a stand-in, which exits at once */
	if (!via_stand_in)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	spawn_children(t, p, 1);
	spawn_zombies(t, &p->img, 1);
	if (p->img.sid == p->pid && getsid(0) != p->pid) {
		if (setsid() < 0)
			ck_refuse("process %d cannot lead its own session again: %s", p->pid, strerror(errno));
		/* its controlling terminal, before any process of the session is forked */
		ck_pty_session_opened(p->pid, &t->objs);
	}
	/* a group of the family is made or joined; the group ckrun runs in is inherited */
	if (getpgid(0) != p->img.pgid) {
		if (p->img.pgid == p->pid && setpgid(0, 0) < 0)
			ck_refuse("process %d cannot lead its process group again: %s", p->pid, strerror(errno));
		else if (p->img.pgid != p->pid && family_group(t, p->img.pgid))
			join_group(p->pid, p->img.pgid);
	}
	if (p->img.pgid == p->pid)
		ck_pty_group_made(p->pid, &t->objs);
	int placeholders[64];
	size_t nplaceholders = 0;
	if (p->img.sid == p->pid)
		spawn_placeholders(t, p->pid, placeholders, &nplaceholders);
	spawn_children(t, p, 0);
	if (p->img.sid == p->pid)
		spawn_adopted(t, p->pid);
	spawn_zombies(t, &p->img, 0);
	reap_placeholders(placeholders, nplaceholders);
	wait_for_placeholder(t, p);
	become(&p->img, &t->objs);
}

/* A process whose session leader is gone (a daemon after the classic
 * double fork): a stand-in with the leader's PID opens the session again,
 * forks the process into it and exits, as the original leader did. */
static int needs_session_stand_in(struct tree *t, struct tree_proc *p)
{
	int s = p->img.sid;
	return s != p->pid && s != t->outside_sid && !tree_find(t, s) && !family_zombie(t, s) && getsid(0) != s;
}

/* Siblings in one session whose leader is gone share its stand-in: one
 * process can have the leader's PID (two children that became ckrun's, in
 * the session ckrun led). */
static int shares_stand_in(struct tree *t, const struct tree_proc *p, struct tree_proc *q)
{
	return !q->spawned && q->img.sid == p->img.sid && q->img.ppid == p->img.ppid && needs_session_stand_in(t, q);
}

static void spawn_member(struct tree *t, struct tree_proc *p)
{
	if (p->spawned)
		return;
	if (needs_session_stand_in(t, p)) {
		int mine[256];
		size_t n = 0;
		for (size_t i = 0; i < t->n && n < sizeof mine / sizeof *mine; i++)
			if (&t->procs[i] == p || shares_stand_in(t, p, &t->procs[i]))
				mine[n++] = (int)i;
		for (size_t k = 0; k < n; k++)
			t->procs[mine[k]].spawned = 1;
		if (spawn_with_pid(p->img.sid) == 0) {
			if (setsid() < 0)
				ck_refuse("cannot open session %d again for process %d: %s", p->img.sid, p->pid, strerror(errno));
			int placeholders[64];
			size_t nplaceholders = 0;
			spawn_placeholders(t, p->img.sid, placeholders, &nplaceholders);
			for (size_t k = 0; k < n; k++)
				if (spawn_with_pid(t->procs[mine[k]].pid) == 0)
					member_main(t, &t->procs[mine[k]], 1);
			reap_placeholders(placeholders, nplaceholders);
			_exit(0);
		}
		return;
	}
	p->spawned = 1;
	if (spawn_with_pid(p->pid) == 0)
		member_main(t, p, 0);
}

static volatile pid_t tree_root;

static void forward_to_root(int sig)
{
	if (tree_root > 0)
		kill(tree_root, sig);
}

static const int forwarded_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH};

/* Reaps until every process of the session is gone; the root's status is
 * the orchestrator's (code: already known when the root ended early). */
static __attribute__((noreturn)) void reap_tree(int root, int code)
{
	tree_root = root;
	for (;;) {
		int st;
		pid_t w = wait(&st);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			exit(code);
		if (w == root)
			code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
}

/* Loads and checks every image of the generation in dir, each against its
 * manifest entry: everything that can refuse, before any process exists. */
static struct ck_image **load_tree(struct tree *t, const char *dir, int verify_data)
{
	read_manifest(t, dir);
	qsort(t->procs, t->n, sizeof *t->procs, by_pid);
	t->outside_sid = -1;
	struct ck_image **imgs = calloc(t->n, sizeof *imgs);
	static int *pids;
	pids = calloc(t->n ? t->n : 1, sizeof *pids);
	for (size_t i = 0; i < t->n; i++)
		pids[i] = t->procs[i].pid;
	ck_proc_family_set(pids, t->n);
	for (size_t i = 0; i < t->n; i++) {
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", dir, t->procs[i].image);
		ck_load_and_check(&t->procs[i].img, ck_dup_text(path, strlen(path)), verify_data);
		ck_image_matches(&t->procs[i].img, &t->procs[i].entry, dir);
		imgs[i] = &t->procs[i].img;
		/* ckrun started the root without a session of its own */
		if (t->procs[i].pid == t->root && imgs[i]->sid != imgs[i]->pid)
			t->outside_sid = imgs[i]->sid;
	}
	find_born_sessions(t);
	return imgs;
}

/* Whether pid is a live descendant of this process (the orchestrator is
 * their subreaper: an orphan of the family is its child). */
static int is_descendant(int pid)
{
	int self = (int)getpid();
	for (int depth = 0; pid > 1 && depth < 64; depth++) {
		char path[64], line[256];
		int ppid = -1;
		snprintf(path, sizeof path, "/proc/%d/status", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			return 0;
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "PPid: %d", &ppid) == 1)
				break;
		fclose(f);
		if (ppid == self)
			return 1;
		pid = ppid;
	}
	return 0;
}

/* A process of the family failed before the family was whole: nothing of
 * it may run on. Every process of it that exists is killed and reaped. */
static void end_family_quietly(struct tree *t)
{
	for (int round = 0; round < 100; round++) {
		int left = 0;
		for (size_t i = 0; i < t->n; i++)
			if (is_descendant(t->procs[i].pid)) {
				kill(t->procs[i].pid, SIGKILL);
				left = 1;
			}
		while (waitpid(-1, 0, WNOHANG) > 0)
			;
		if (!left)
			break;
		usleep(10000);
	}
	while (wait(0) > 0 || errno == EINTR)
		;
}

static __attribute__((noreturn)) void end_family(struct tree *t, int failed, int st)
{
	end_family_quietly(t);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (code != CK_EXIT_PIDS_TAKEN)
		fprintf(stderr, "ckrun restart: process %d of the family of %s could not be restored (%s %d; the reason is "
				"above): every process of the family was ended, nothing of it runs\n",
			failed, t->dir, WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? code : WTERMSIG(st));
	exit(code ? code : CK_EXIT_REFUSED);
}


static int done_has(const int *done, size_t n, int pid)
{
	for (size_t i = 0; i < n; i++)
		if (done[i] == pid)
			return 1;
	return 0;
}

/* Reads the PIDs written so far; 1 at the end of the pipe (every writer gone). */
static int drain_done(int *done, size_t *ndone, size_t n)
{
	int pid;
	ssize_t k;
	while ((k = read(tree_done[0], &pid, sizeof pid)) == (ssize_t)sizeof pid)
		if (*ndone < n && !done_has(done, *ndone, pid))
			done[(*ndone)++] = pid;
	return k == 0;
}

/* How long the family may take to be rebuilt: in proportion to the work
 * (the images' bytes, read at 32 MiB/s or better even on a slow disk),
 * 10 s at least. CKRUN_RESTORE_BOUND_MS sets it (tests). */
static uint64_t restore_bound_ms(const struct tree *t)
{
	const char *env = getenv("CKRUN_RESTORE_BOUND_MS");
	if (env && *env)
		return strtoull(env, 0, 10);
	uint64_t bytes = 0;
	for (size_t i = 0; i < t->n; i++) {
		char path[8192];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", t->dir, t->procs[i].image);
		if (stat(path, &st) == 0)
			bytes += (uint64_t)st.st_size;
	}
	return 10000 + bytes / (32 << 20) * 1000;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The family was not rebuilt within its bound: it is ended, naming the
 * processes that had not finished. */
static __attribute__((noreturn)) void family_too_slow(struct tree *t, const int *done, size_t ndone, uint64_t bound)
{
	char who[1024];
	size_t len = 0, late = 0;
	who[0] = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (done_has(done, ndone, t->procs[i].pid))
			continue;
		const char *exe = t->procs[i].img.exe ? t->procs[i].img.exe : "?";
		const char *base = strrchr(exe, '/');
		if (len < sizeof who - 64)
			len += (size_t)snprintf(who + len, sizeof who - len, "%s%d (%s)", late ? ", " : "", t->procs[i].pid, base ? base + 1 : exe);
		late++;
	}
	fprintf(stderr, "ckrun restart: %zu process%s of the family of %s did not finish restoring within %llu s: %s; "
			"every process of the family was ended, nothing of it runs\n",
		late, late == 1 ? "" : "es", t->dir, (unsigned long long)((bound + 999) / 1000), who);
	end_family_quietly(t);
	exit(CK_EXIT_REFUSED);
}

/* Whether pid is a zombie, and then its wait status (the last field of
 * /proc/PID/stat): a process of the family that ended while its parent, a
 * restore host, cannot reap it yet. */
static int zombie_status(int pid, int *st)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] != 'Z')
		return 0;
	char *last = strrchr(buf, ' ');
	*st = last ? atoi(last + 1) : 0;
	return 1;
}

/* A process of the family that ended before it was rebuilt, though not
 * the orchestrator's child (its parent's restore host cannot reap it): it
 * ends the family at once. */
static void check_members(struct tree *t, int *done, size_t *ndone)
{
	for (size_t i = 0; i < t->n; i++) {
		int pid = t->procs[i].pid, st;
		if (done_has(done, *ndone, pid) || !zombie_status(pid, &st))
			continue;
		drain_done(done, ndone, t->n);
		if (!done_has(done, *ndone, pid))
			end_family(t, pid, st);
	}
}

/* Watches the family until every process is rebuilt (each waits then in
 * its restore core), then lets them all run at once; the root's exit
 * status so far (or 0) for reap_tree. A process that ends before, or a
 * family not rebuilt within its bound, ends the whole family. */
static int watch_restore(struct tree *t, int root)
{
	int *done = calloc(t->n + 1, sizeof *done);
	size_t ndone = 0;
	int code = 0, eof = 0;
	uint64_t bound = restore_bound_ms(t), deadline = monotonic_ms() + bound;
	close(tree_done[1]);
	close(tree_go[0]);
	fcntl(tree_done[0], F_SETFL, O_NONBLOCK);
	while (ndone < t->n) {
		if (monotonic_ms() >= deadline)
			family_too_slow(t, done, ndone, bound);
		struct pollfd pfd = {tree_done[0], POLLIN, 0};
		if (!eof)
			poll(&pfd, 1, 20);
		else
			usleep(20000);
		eof |= drain_done(done, &ndone, t->n);
		int st;
		pid_t w;
		while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
			if (!tree_find(t, w))
				continue; /* a stand-in session leader, or a zombie placeholder */
			/* its PID, if it wrote it, is in the pipe by now: it wrote before it ended */
			eof |= drain_done(done, &ndone, t->n);
			if (!done_has(done, ndone, w))
				end_family(t, w, st);
			if (w == root)
				code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		/* every end of the pipe is closed, and one has not written: it
		 * ended before its program ran, reaped by a restored parent of
		 * the family (whose wait took its status) */
		if (eof && ndone < t->n)
			for (size_t i = 0; i < t->n; i++)
				if (!done_has(done, ndone, t->procs[i].pid))
					end_family(t, t->procs[i].pid, CK_EXIT_REFUSED << 8);
		check_members(t, done, &ndone);
	}
	/* every process is rebuilt: they all run from here */
	for (size_t i = 0; i < t->n; i++) {
		char go = 1;
		if (write(tree_go[1], &go, 1) != 1)
			break;
	}
	close(tree_go[1]);
	close(tree_done[0]);
	free(done);
	return code;
}

/* Whether the family needs id in the new PID namespace: a process, a
 * thread, a zombie, or a group or session that a process of it is in. */
static int family_uses_id(const struct tree *t, int id)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct ck_image *img = &t->procs[i].img;
		if (t->procs[i].pid == id || img->pgid == id || img->sid == id)
			return 1;
		for (size_t j = 0; j < img->nthreads; j++)
			if (img->threads[j].tid == id)
				return 1;
		for (size_t j = 0; j < img->nchildren; j++) {
			const struct ck_img_child *c = &img->children[j];
			if (c->pid == id || (c->zombie && (c->pgid == id || c->sid == id)))
				return 1;
		}
	}
	return 0;
}

static int has_controlling_terminal(void)
{
	int fd = open("/dev/tty", O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* ---- PID 1 of a fresh PID namespace ---- */

static volatile pid_t init_child;

static void forward_signal(int sig)
{
	if (init_child > 0)
		kill(init_child, sig);
}

/* PID 1 passes the signals ckrun forwards on to the child it follows. */
static void forward_signals_to_init_child(void)
{
	for (size_t i = 0; i < sizeof forwarded_signals / sizeof forwarded_signals[0]; i++)
		signal(forwarded_signals[i], forward_signal);
}

/* PID 1 ends as its child ends, with its status. Its other children are
 * orphans of the program, which it reaps, or (links) the links of the
 * orchestrator's chain, one of which failing ends it too. */
static __attribute__((noreturn)) void init_follows(pid_t child, int links)
{
	init_child = child;
	for (;;) {
		int st;
		pid_t w = wait(&st);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			exit(1);
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (w == child || (links && code != 0))
			exit(code);
	}
}

/* In a fresh PID namespace every PID is free: the orchestrator takes the
 * PID of the ckrun the family ran under (getppid() of the root and of the
 * processes that had become ckrun's is unchanged) and, when there is no
 * controlling terminal to keep, the session and group ckrun ran in, made
 * again by a short chain of processes with those PIDs (else the family
 * would see session and group 0: they would be outside the namespace). */
static void take_ckrun_place(struct tree *t)
{
	const struct tree_proc *root = tree_find(t, t->root);
	int s = -1, g = -1, p = root ? root->img.ppid : -1;
	/* the program ckrun started has exited: its processes that had become
	 * ckrun's name ckrun as their parent */
	for (size_t i = 0; !root && p < 0 && i < t->n; i++)
		if (!tree_find(t, t->procs[i].img.ppid))
			p = t->procs[i].img.ppid;
	if (root && !has_controlling_terminal()) {
		s = t->outside_sid;
		g = outside_group(t, root->img.pgid) ? root->img.pgid : -1;
	}
	int ids[3], n = 0;
	if (s > 1)
		ids[n++] = s;
	if (g > 1 && g != s)
		ids[n++] = g;
	if (p > 1 && p != s && p != g && !family_uses_id(t, p))
		ids[n++] = p;
	if (n == 0)
		return;
	if (spawn_with_pid(ids[0]) > 0) {
		forward_signals_to_init_child();
		init_follows(ids[n - 1], 1);
	}
	for (int k = 0; k < n; k++) {
		if (ids[k] == s) {
			if (setsid() < 0)
				ck_refuse("cannot open session %d again in the new PID namespace: %s", s, strerror(errno));
		} else if (ids[k] == g && setpgid(0, 0) < 0) {
			ck_refuse("cannot make process group %d again in the new PID namespace: %s", g, strerror(errno));
		}
		if (k + 1 < n && spawn_with_pid(ids[k + 1]) > 0)
			_exit(0);
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
}

CK_HIDDEN __attribute__((noreturn)) void ck_restore_tree(const char *dir, int verify_data, int fresh_namespace)
{
	static struct tree t;
	struct ck_image **imgs = load_tree(&t, dir, verify_data);
	if (fresh_namespace) {
		ck_sysv_own_namespace(imgs, t.n);
		take_ckrun_place(&t);
	}
	int base = 3;
	for (size_t i = 0; i < t.n; i++) {
		int m = max_program_fd(imgs[i]) + 1;
		base = m > base ? m : base;
	}
	/* ckrun gave the orchestrator the PID of the ckrun that led the
	 * family's session (src/restart-tree.ts), whose root has exited: that
	 * session is ckrun's own again, which the orchestrator leads below */
	if (!fresh_namespace && t.outside_sid == -1 && family_uses_id(&t, (int)getpid()) && !tree_find(&t, (int)getpid()))
		t.outside_sid = (int)getpid();
	/* every PID and TID of the family must be free, before anything starts
	 * (a process group that outlives its leader keeps its ID taken too) */
	for (size_t i = 0; !fresh_namespace && i < t.n; i++) {
		struct ck_image *img = imgs[i];
		if (kill(-img->pid, 0) == 0 || errno == EPERM) {
			ck_verbose("PID %d is the ID of a process group here", img->pid);
			exit(CK_EXIT_PIDS_TAKEN);
		}
		for (size_t j = 0; j < img->nthreads; j++)
			if (kill(img->threads[j].tid, 0) == 0 || errno != ESRCH) {
				ck_verbose("thread ID %d is in use here", img->threads[j].tid);
				exit(CK_EXIT_PIDS_TAKEN);
			}
		for (size_t j = 0; j < img->nchildren; j++)
			if (img->children[j].zombie && (kill(img->children[j].pid, 0) == 0 || errno != ESRCH))
				exit(CK_EXIT_PIDS_TAKEN);
		/* the PID of a group's leader that had exited, for its placeholder */
		if (img->pgid != img->sid && group_needs_placeholder(&t, img->pgid) &&
		    (kill(img->pgid, 0) == 0 || errno != ESRCH))
			exit(CK_EXIT_PIDS_TAKEN);
		for (size_t j = 0; j < img->nchildren; j++) {
			const struct ck_img_child *z = &img->children[j];
			if (z->zombie && z->pgid > 0 && z->pgid != z->sid && group_needs_placeholder(&t, z->pgid) &&
			    (kill(z->pgid, 0) == 0 || errno != ESRCH))
				exit(CK_EXIT_PIDS_TAKEN);
		}
	}
	struct rlimit nofile;
	getrlimit(RLIMIT_NOFILE, &nofile);
	nofile.rlim_cur = nofile.rlim_max;
	setrlimit(RLIMIT_NOFILE, &nofile);
	create_shared(imgs, t.n, &t.objs, base + 64);
	ck_files_open_shared(imgs, t.n, &t.objs, (const int(*)[3])t.groups, t.ngroups, base + 64);
	/* above every descriptor number of the family, as the shared objects are */
	int raw[2];
	if (pipe2(raw, O_CLOEXEC) != 0 || (tree_done[0] = fcntl(raw[0], F_DUPFD_CLOEXEC, base + 64)) < 0 ||
	    (tree_done[1] = fcntl(raw[1], F_DUPFD_CLOEXEC, base + 64)) < 0)
		ck_refuse("cannot create the orchestrator's pipe: %s", strerror(errno));
	close(raw[0]);
	close(raw[1]);
	if (pipe2(raw, O_CLOEXEC) != 0 || (tree_go[0] = fcntl(raw[0], F_DUPFD_CLOEXEC, base + 64)) < 0 ||
	    (tree_go[1] = fcntl(raw[1], F_DUPFD_CLOEXEC, base + 64)) < 0)
		ck_refuse("cannot create the orchestrator's pipe: %s", strerror(errno));
	close(raw[0]);
	close(raw[1]);

	if (!fresh_namespace)
		prctl(PR_SET_CHILD_SUBREAPER, 1);
	/* ckrun gave the orchestrator the PID of the ckrun that led the
	 * family's session (src/restart-tree.ts): it leads it again */
	if (!fresh_namespace && (int)getpid() == t.outside_sid && getsid(0) != t.outside_sid && !has_controlling_terminal() &&
	    setsid() < 0)
		ck_refuse("cannot open session %d again: %s", t.outside_sid, strerror(errno));
	for (size_t i = 0; i < sizeof forwarded_signals / sizeof forwarded_signals[0]; i++)
		signal(forwarded_signals[i], forward_to_root);
	/* groups of ckrun's session whose leaders had exited: the placeholders
	 * are the orchestrator's children, reaped with the stand-ins */
	int placeholders[64];
	size_t nplaceholders = 0;
	spawn_placeholders(&t, t.outside_sid, placeholders, &nplaceholders);
	/* processes whose parent is not in the session (the root, daemons that
	 * became ckrun's) are the orchestrator's children */
	for (size_t i = 0; i < t.n; i++)
		if (!tree_find(&t, t.procs[i].img.ppid) && !adopted_in_session(&t, &t.procs[i], t.procs[i].img.sid))
			spawn_member(&t, &t.procs[i]);
	/* the orchestrator keeps nothing the processes share open */
	ck_objects_close(&t.objs);
	int root = t.root ? t.root : t.procs[0].pid;
	int code = watch_restore(&t, root);
	ck_sysv_keep(); /* the family runs: its SysV objects are its own */
	reap_tree(root, code);
}

/* `ckrun-restore --check PATH`: every check a restore of PATH (a
 * generation directory, or one image) makes before it creates a process,
 * and nothing else. Used by `ckrun verify`. */
CK_HIDDEN __attribute__((noreturn)) void ck_check_only(const char *path, int verify_data)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		static struct tree t;
		load_tree(&t, path, verify_data);
	} else {
		static struct ck_image img;
		ck_load_and_check(&img, path, verify_data);
	}
	exit(0);
}

/* ---- PID 1 of a fresh PID namespace (continued) ---- */

/* Every check of the image (not only its PID) before the namespace's first process exists. */
static int image_pid(const char *path)
{
	static struct ck_image img;
	ck_image_read(&img, path);
	struct ck_image *one = &img;
	ck_sysv_own_namespace(&one, 1); /* before the restore host exists: it inherits it */
	return img.pid;
}

CK_HIDDEN __attribute__((noreturn)) void ck_run_init(const char *path, int verify_data, int tree)
{
	if (tree) {
		if (mount(0, "/", 0, MS_REC | MS_PRIVATE, 0) != 0 ||
		    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0) != 0)
			ck_refuse("cannot mount /proc for the new PID namespace: %s", strerror(errno));
		ck_restore_tree(path, verify_data, 1);
	}
	int pid = image_pid(path);
	if (pid == 1)
		ck_refuse("image %s is of a process with PID 1, which ckrun cannot restore", path);
	if (mount(0, "/", 0, MS_REC | MS_PRIVATE, 0) != 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0) != 0)
		ck_refuse("cannot mount /proc for the new PID namespace: %s", strerror(errno));
	forward_signals_to_init_child();

	struct ck_clone_args args;
	pid_t want = pid;
	ck_clone_args_child(&args, 0, &want);
	long child = syscall(SYS_clone3, &args, sizeof args);
	if (child < 0)
		ck_refuse("cannot create PID %d in the new PID namespace: %s", pid, strerror(errno));
	if (child == 0) {
		for (size_t i = 0; i < sizeof forwarded_signals / sizeof forwarded_signals[0]; i++)
			signal(forwarded_signals[i], SIG_DFL);
		char *argv[] = {"ckrun-restore", verify_data ? (char *)path : "--no-verify-data", verify_data ? 0 : (char *)path, 0};
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	init_follows((pid_t)child, 0);
}
