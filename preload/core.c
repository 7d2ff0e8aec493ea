/* What every part of the restore core uses to fail: a message on the
 * restore's stderr and the end of the half-built process. Freestanding,
 * in the ckcore section like the rest of the core. */
#include "restore.h"
#include "sys.h"

CK_CORE __attribute__((noreturn)) void ck_core_fail(struct ck_plan *p, const char *what, long err)
{
	char buf[256];
	struct ck_str m;
	ck_str_init(&m, buf, sizeof buf);
	ck_str_add(&m, "ckrun restart: ");
	ck_str_add(&m, what);
	ck_str_add(&m, ": ");
	ck_str_errno(&m, err);
	ck_str_add(&m, " (the half-restored process is ended)\n");
	ck_write(p->err_fd, buf, m.len);
	ck_exit_group(CK_EXIT_CORE_FAILED);
	__builtin_unreachable();
}
