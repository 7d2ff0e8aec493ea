/* The vdso across kernel builds. A program holds pointers into the vdso it
 * started with (glibc caches them at start-up), so a restart on a kernel
 * whose vdso differs cannot simply move this kernel's vdso there. Instead
 * the image's own vdso bytes go back at their address, and each function
 * it exports starts with a jump to the function of the same name in this
 * kernel's vdso, which (with its vvar pages) moves where no saved mapping
 * is. The copy keeps the old ELF header, symbols and unwind tables, which
 * dl_iterate_phdr and unwinders read through the program's link map. Only
 * calls that start after the restart are bridged: the copy's code past an
 * entry reads vvar pages that are not there, so an image with a thread
 * interrupted inside the vdso is refused.
 *
 * CKRUN_TEST_VDSO_BRIDGE=1 makes a restart bridge an identical vdso too,
 * =2 also moves this kernel's vdso as if it were in the image's way: for
 * tests only (there is one kernel on a test machine). */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "restore.h"
#include "sys.h"

#define JUMP_ABS_LEN 14 /* jmp *0(%rip); .quad target */

struct vdso_fn {
	const char *name;
	uint64_t off, size;
};

CK_HIDDEN int ck_vdso_bridge_forced(void)
{
	const char *v = getenv("CKRUN_TEST_VDSO_BRIDGE");
	return !v ? 0 : !strcmp(v, "1") ? 1 : !strcmp(v, "2") ? 2 : 0;
}

static int in_bounds(uint64_t off, uint64_t len, uint64_t total)
{
	return off <= total && len <= total - off;
}

/* The offset the vdso's symbol values count from: its first load segment
 * maps file offset p_offset at p_vaddr. */
static int load_bias(const uint8_t *p, size_t n, const Elf64_Ehdr *eh, uint64_t *bias)
{
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || !in_bounds(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), n))
		return 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, p + eh->e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
		if (ph.p_type == PT_LOAD) {
			*bias = ph.p_vaddr - ph.p_offset;
			return 1;
		}
	}
	return 0;
}

/* The functions a vdso (its bytes p..p+n) exports, with their offsets in
 * it; -1 when the bytes are not such an ELF object. */
static int vdso_functions(const uint8_t *p, size_t n, struct vdso_fn *out, int max)
{
	Elf64_Ehdr eh;
	uint64_t bias;
	if (n < sizeof eh)
		return -1;
	memcpy(&eh, p, sizeof eh);
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
	    !in_bounds(eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr), n) || !load_bias(p, n, &eh, &bias))
		return -1;
	int count = 0;
	for (int i = 0; i < eh.e_shnum; i++) {
		Elf64_Shdr sh, st;
		memcpy(&sh, p + eh.e_shoff + (uint64_t)i * sizeof sh, sizeof sh);
		if (sh.sh_type != SHT_DYNSYM)
			continue;
		if (sh.sh_link >= eh.e_shnum || !in_bounds(sh.sh_offset, sh.sh_size, n))
			return -1;
		memcpy(&st, p + eh.e_shoff + (uint64_t)sh.sh_link * sizeof st, sizeof st);
		if (!in_bounds(st.sh_offset, st.sh_size, n) || !st.sh_size || p[st.sh_offset + st.sh_size - 1])
			return -1;
		for (uint64_t k = 0; k + sizeof(Elf64_Sym) <= sh.sh_size; k += sizeof(Elf64_Sym)) {
			Elf64_Sym sym;
			memcpy(&sym, p + sh.sh_offset + k, sizeof sym);
			int bind = ELF64_ST_BIND(sym.st_info);
			if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF ||
			    (bind != STB_GLOBAL && bind != STB_WEAK))
				continue;
			if (sym.st_name >= st.sh_size || count == max)
				return -1;
			uint64_t off = sym.st_value - bias;
			if (!in_bounds(off, sym.st_size, n))
				return -1;
			out[count++] = (struct vdso_fn){(const char *)p + st.sh_offset + sym.st_name, off, sym.st_size};
		}
	}
	return count;
}

static const struct vdso_fn *by_name(const struct vdso_fn *fns, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(fns[i].name, name))
			return &fns[i];
	return NULL;
}

/* The image's function a thread was interrupted in, or NULL. */
static const struct vdso_fn *by_address(const struct vdso_fn *fns, int n, uint64_t off)
{
	for (int i = 0; i < n; i++)
		if (off >= fns[i].off && off < fns[i].off + fns[i].size)
			return &fns[i];
	return NULL;
}

/* Each entry of the image's vdso gets a jump of up to JUMP_ABS_LEN bytes:
 * it must fit in its function, before the next entry. */
static void check_room(const struct vdso_fn *fns, int n, const struct ck_image *img)
{
	for (int i = 0; i < n; i++) {
		uint64_t room = fns[i].size;
		for (int j = 0; j < n; j++)
			if (fns[j].off > fns[i].off && fns[j].off - fns[i].off < room)
				room = fns[j].off - fns[i].off;
		if (room < JUMP_ABS_LEN)
			ck_refuse("the image's vdso function %s is too short (%llu bytes) to be sent to this kernel's vdso; "
				  "restart it on the kernel build it was taken on (%s)",
				  fns[i].name, (unsigned long long)room, img->kernel ? img->kernel : "unknown");
	}
}

/* A thread stopped inside the image's vdso would run on in code whose
 * data is gone: only a thread at an entry can be sent over. */
static void check_threads(const struct ck_image *img, const struct vdso_fn *fns, int n)
{
	uint64_t lo = img->vdso[0][0], hi = img->vdso[2][1], text = img->vdso[2][0];
	for (size_t i = 0; i < img->nthreads; i++) {
		uint64_t rip = img->threads[i].rip;
		if (rip < lo || rip >= hi)
			continue;
		const struct vdso_fn *f = rip >= text ? by_address(fns, n, rip - text) : NULL;
		if (f && f->off == rip - text)
			continue;
		ck_refuse("thread %d was inside the vdso (%s+%#llx) when the checkpoint was taken, and this kernel's vdso "
			  "differs: only calls that start after the restart can be sent to it; restart it on the kernel build "
			  "it was taken on (%s), or from another checkpoint",
			  img->threads[i].tid, f ? f->name : "no function", f ? (unsigned long long)(rip - text - f->off) : 0ULL,
			  img->kernel ? img->kernel : "unknown");
	}
}

/* Checks that every function the image's vdso exports exists in this
 * kernel's (now: vvar, vvar_vclock, vdso) and plans the bridge; the jumps
 * are written once this kernel's vdso has its place (ck_vdso_bridge_place). */
CK_HIDDEN void ck_vdso_bridge_plan(struct ck_image *img, struct ck_plan *plan, const uint64_t now[3][2])
{
	static struct vdso_fn old[CK_VDSO_ENTRIES], cur[CK_VDSO_ENTRIES];
	const char *kernel = img->kernel ? img->kernel : "unknown";
	uint64_t old_len = img->vdso[2][1] - img->vdso[2][0], cur_len = now[2][1] - now[2][0];
	if (!img->vdso[2][0] || !now[2][0])
		ck_refuse("the image or this kernel has no vdso (image: %s, here: %s); restart it on the kernel build it was "
			  "taken on (%s)", img->vdso[2][0] ? "one" : "none", now[2][0] ? "one" : "none", kernel);
	if (!img->vdso_text || img->vdso_text_len != old_len)
		ck_refuse("this kernel's vdso differs from the one the image was taken on (kernel %s) and the image does not "
			  "keep its vdso's bytes (taken by an older ckrun); restart it on the kernel build it was taken on",
			  kernel);
	int nold = vdso_functions(img->vdso_text, img->vdso_text_len, old, CK_VDSO_ENTRIES);
	int ncur = vdso_functions((const uint8_t *)now[2][0], cur_len, cur, CK_VDSO_ENTRIES);
	if (nold < 0)
		ck_refuse("the image's vdso (kernel %s) is not an ELF object ckrun can read; restart it on the kernel build it "
			  "was taken on", kernel);
	if (ncur < 0)
		ck_refuse("this kernel's vdso is not an ELF object ckrun can read; restart the image on the kernel build it "
			  "was taken on (%s)", kernel);
	check_room(old, nold, img);
	check_threads(img, old, nold);
	plan->vdso_nentries = 0;
	for (int i = 0; i < nold; i++) {
		const struct vdso_fn *c = by_name(cur, ncur, old[i].name);
		if (!c)
			ck_refuse("the image's vdso (kernel %s) has %s, this kernel's vdso does not; restart it on a kernel "
				  "whose vdso has it", kernel, old[i].name);
		plan->vdso_entry[plan->vdso_nentries][0] = (uint32_t)old[i].off;
		plan->vdso_entry[plan->vdso_nentries][1] = (uint32_t)c->off;
		plan->vdso_nentries++;
	}
	memcpy(plan->vdso_proxy, img->vdso_text, img->vdso_text_len);
	memcpy(plan->vdso_old_vvar, img->vdso, sizeof plan->vdso_old_vvar);
	plan->vdso_proxy_at = img->vdso[2][0];
	plan->vdso_proxy_len = img->vdso_text_len;
	memcpy(plan->vdso_now, now, sizeof plan->vdso_now);
	memcpy(plan->vdso_want, now, sizeof plan->vdso_want);
	ck_verbose("vdso: bridging %d entry points of the image's vdso (kernel %s) to this kernel's", nold, kernel);
}

static int overlaps(uint64_t lo, uint64_t hi, uint64_t a, uint64_t b)
{
	return a < hi && lo < b;
}

/* Whether this kernel's vdso block, where it is now, is in the way of the
 * image: its mappings, its AIO rings or its vdso (where the bridge goes). */
CK_HIDDEN int ck_vdso_bridge_collides(const struct ck_image *img, const struct ck_plan *plan)
{
	uint64_t lo = plan->vdso_now[0][0], hi = plan->vdso_now[2][1];
	if (ck_vdso_bridge_forced() == 2 || overlaps(lo, hi, img->vdso[0][0], img->vdso[2][1]))
		return 1;
	for (size_t i = 0; i < img->nregions; i++)
		if (overlaps(lo, hi, img->regions[i].start, img->regions[i].end))
			return 1;
	for (uint32_t i = 0; i < img->attrs.naio; i++)
		if (overlaps(lo, hi, img->attrs.aio[i].ctx, img->attrs.aio[i].ctx + img->attrs.aio[i].len))
			return 1;
	return 0;
}

/* This kernel's vdso block goes to block (its vvar's address); the image's
 * entry points jump to its functions there. */
CK_HIDDEN void ck_vdso_bridge_place(struct ck_plan *plan, uint64_t block)
{
	uint64_t text = block + (plan->vdso_now[2][0] - plan->vdso_now[0][0]);
	if (block != plan->vdso_now[0][0])
		ck_verbose("vdso: this kernel's vdso block moves from %#llx to %#llx, out of the image's way",
			   (unsigned long long)plan->vdso_now[0][0], (unsigned long long)block);
	for (int k = 0; k < 3; k++)
		for (int e = 0; e < 2; e++)
			plan->vdso_want[k][e] = plan->vdso_now[k][e] ? block + (plan->vdso_now[k][e] - plan->vdso_now[0][0]) : 0;
	for (int i = 0; i < plan->vdso_nentries; i++) {
		/* always the absolute form: the two blocks are rarely within
		 * 2 GiB of each other, and one form is one to test */
		static const uint8_t jmp_rip[6] = {0xff, 0x25, 0, 0, 0, 0};
		uint8_t *at = plan->vdso_proxy + plan->vdso_entry[i][0];
		uint64_t to = text + plan->vdso_entry[i][1];
		memcpy(at, jmp_rip, sizeof jmp_rip);
		memcpy(at + sizeof jmp_rip, &to, 8);
	}
}

/* ---- restore core ---- */

/* After the vdso block moved: the image's vdso, bridged, at its address;
 * its vvar ranges stay mapped (a program that lists its mappings finds
 * them where they were), without the old kernel's data. */
CK_CORE void ck_core_vdso_proxy(struct ck_plan *p)
{
	if (!p->vdso_proxy_len)
		return;
	for (int k = 0; k < 2; k++) {
		uint64_t lo = p->vdso_old_vvar[k][0], hi = p->vdso_old_vvar[k][1];
		if (!lo || hi <= lo)
			continue;
		long v = ck_mmap((void *)lo, hi - lo, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (v != (long)lo)
			ck_core_fail(p, "mapping the image's vvar range again failed", v < 0 && v > -4096 ? v : -EEXIST);
	}
	void *at = (void *)p->vdso_proxy_at;
	uint64_t len = CK_PAGE_UP(p->vdso_proxy_len);
	long a = ck_mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (a != (long)at)
		ck_core_fail(p, "mapping the bridge to this kernel's vdso failed", a < 0 && a > -4096 ? a : -EEXIST);
	ck_memcpy(at, p->vdso_proxy, p->vdso_proxy_len);
	long e = ck_mprotect(at, len, PROT_READ | PROT_EXEC);
	if (e < 0)
		ck_core_fail(p, "making the bridge to this kernel's vdso executable failed", e);
}
