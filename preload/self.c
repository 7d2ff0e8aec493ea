/* Where the shim itself is loaded: its whole range and its writable data
 * (a checkpoint stores the range in every image and copies the data
 * first, as it changes while it is written), and its segments (the
 * restore host copies them into the hole at the same offsets). */
#define _GNU_SOURCE
#include <link.h>
#include <string.h>

#include "ckrun.h"

static int find(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct ck_self *self = data;
	uint64_t me = (uint64_t)&ck_self_find, state = (uint64_t)&ck_session;
	uint64_t lo_all = ~0ULL, hi_all = 0, end = 0;
	int mine = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		lo_all = lo < lo_all ? lo : lo_all;
		hi_all = hi > hi_all ? hi : hi_all;
		end = ph->p_vaddr + ph->p_memsz > end ? ph->p_vaddr + ph->p_memsz : end;
		if (me >= lo && me < hi)
			mine = 1;
		if ((ph->p_flags & PF_W) && state >= lo && state < hi) {
			self->rw_start = lo;
			self->rw_end = hi;
		}
	}
	if (!mine) {
		self->rw_start = self->rw_end = 0;
		return 0;
	}
	self->base = info->dlpi_addr;
	self->size = CK_PAGE_UP(end);
	self->lo = CK_PAGE_DOWN(lo_all);
	self->hi = CK_PAGE_UP(hi_all);
	self->path = info->dlpi_name;
	self->phdr = info->dlpi_phdr;
	self->phnum = info->dlpi_phnum;
	return 1;
}

CK_HIDDEN int ck_self_find(struct ck_self *self)
{
	memset(self, 0, sizeof *self);
	return dl_iterate_phdr(find, self);
}
