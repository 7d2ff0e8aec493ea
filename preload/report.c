/* How the restore host speaks: a refusal (the reason and the way out,
 * then exit, or a jump back to the fast start, which hands the restart to
 * node), and the lines CKRUN_VERBOSE asks for. Every kind and every step
 * of a restore refuses through here. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "restore.h"

CK_HIDDEN jmp_buf *ck_refusal_escape;
CK_HIDDEN const char *ck_refuse_context;

CK_HIDDEN void ck_refuse(const char *fmt, ...)
{
	if (ck_refusal_escape)
		longjmp(*ck_refusal_escape, 1); /* front.c: node's restart says it */
	va_list ap;
	fputs("ckrun restart: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (ck_refuse_context)
		fputs(ck_refuse_context, stderr);
	fputc('\n', stderr);
	exit(CK_EXIT_REFUSED);
}

CK_HIDDEN void ck_verbose(const char *fmt, ...)
{
	if (!getenv("CKRUN_VERBOSE"))
		return;
	va_list ap;
	fputs("ckrun restore: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

CK_HIDDEN char *ck_dup_text(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}
