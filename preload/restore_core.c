/* The restore core: runs inside a copy of the shim placed in the hole,
 * on its own stack, after the restore host's address space is gone. No
 * libc, no TLS, no relocations (scripts/check-restore-code.sh verifies the
 * ckcore section with objdump). A failure here can only end the
 * process; ckrun reports that the restart failed. */
#include <errno.h>
#include <sys/mman.h>

#include "restore.h"
#include "sys.h"

#define USER_TOP 0x7ffffffff000ULL

static CK_CORE_FN void unmap_range(struct ck_plan *p, uint64_t lo, uint64_t hi)
{
	if (hi > lo) {
		long r = ck_munmap((void *)lo, hi - lo);
		if (r < 0)
			ck_core_fail(p, "unmapping the restore host failed", r);
	}
}

/* Everything goes except the hole and this kernel's vdso block. */
CK_CORE void ck_core_unmap_all(struct ck_plan *p, uint64_t keep_lo, uint64_t keep_hi)
{
	uint64_t v_lo = p->vdso_now[0][0], v_hi = p->vdso_now[2][1];
	uint64_t a_lo = keep_lo, a_hi = keep_hi, b_lo = v_lo, b_hi = v_hi;
	if (!v_lo) {
		b_lo = b_hi = USER_TOP;
	} else if (v_lo < keep_lo) {
		a_lo = v_lo;
		a_hi = v_hi;
		b_lo = keep_lo;
		b_hi = keep_hi;
	}
	unmap_range(p, CK_PAGE, a_lo);
	unmap_range(p, a_hi, b_lo);
	unmap_range(p, b_hi, USER_TOP);
}

static CK_CORE_FN void close_plan_fds(struct ck_plan *p)
{
	for (int i = 0; i < p->nclose; i++)
		ck_close(p->close_fds[i]);
}

static CK_CORE_FN void set_nofile(struct ck_plan *p)
{
	uint64_t lim[2] = {p->nofile_cur, p->nofile_max};
	long r = CK_SYS4(SYS_prlimit64, 0, 7 /* RLIMIT_NOFILE */, lim, 0);
	if (r < 0)
		ck_core_fail(p, "setting RLIMIT_NOFILE back to the saved value failed", r);
}

/* No process of a family runs before every process is rebuilt: each waits
 * here for the orchestrator's byte. An end of the pipe without it (the
 * orchestrator ended the family, or died) ends this process too. */
static CK_CORE_FN void await_family(struct ck_plan *p)
{
	if (p->go_fd < 0)
		return;
	char c;
	long r;
	do
		r = ck_read(p->go_fd, &c, 1);
	while (r == -4 /* EINTR */);
	if (r != 1)
		ck_core_fail(p, "the restore of the family ended before every process was rebuilt", r < 0 ? r : -32 /* EPIPE */);
}

CK_CORE __attribute__((noreturn)) void ck_core_main(struct ck_plan *p)
{
	ck_core_unmap_all(p, p->info.hole_start, p->info.hole_start + p->info.hole_len);
	ck_core_move_vdso(p);
	ck_core_vdso_proxy(p);
	ck_core_map_regions(p);
	ck_core_set_mm(p);
	ck_core_aio(p);
	ck_core_check_regions(p);
	/* locks after every other descriptor of their files is closed (a
	 * close drops the process's POSIX locks); "rebuilt" once they are
	 * held; then, in a family, wait until every process is rebuilt and
	 * holds its own */
	close_plan_fds(p);
	ck_core_take_locks(p);
	ck_core_set_owners(p, 0);
	if (p->done_fd >= 0) {
		int pid = p->pid;
		ck_write(p->done_fd, &pid, sizeof pid);
		ck_close(p->done_fd);
	}
	await_family(p);
	/* owners that did not exist before: every process of the family does now */
	ck_core_set_owners(p, 1);
	if (p->go_fd >= 0)
		ck_close(p->go_fd);
	set_nofile(p);
	ck_core_start_threads(p);
}
