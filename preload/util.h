/* Small freestanding helpers shared by the checkpoint path and the restore
 * core. They live in the restore-core section (ckcore), so they must
 * stay free of libc calls, TLS and absolute relocations. */
#ifndef CK_UTIL_H
#define CK_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Code that runs after the restore host's address space is gone. */
#define CK_CORE_FN __attribute__((section("ckcore")))
#define CK_CORE CK_CORE_FN __attribute__((visibility("hidden")))
#define CK_HIDDEN __attribute__((visibility("hidden")))
#define CK_EXPORT __attribute__((visibility("default")))

CK_CORE void ck_memcpy(void *dst, const void *src, size_t n);
CK_CORE void ck_memset(void *dst, int c, size_t n);
CK_CORE size_t ck_strlen(const char *s);
CK_CORE int ck_streq(const char *a, const char *b);
CK_CORE int ck_strneq(const char *a, const char *b, size_t n);
CK_CORE int ck_starts_with(const char *s, const char *prefix);
CK_CORE int ck_ends_with(const char *s, const char *suffix);

/* A bounded text builder on caller memory; never overflows, always NUL-terminated. */
struct ck_str {
	char *buf;
	size_t cap;
	size_t len;
};
CK_CORE void ck_str_init(struct ck_str *s, char *buf, size_t cap);
CK_CORE void ck_str_add(struct ck_str *s, const char *text);
CK_CORE void ck_str_addn(struct ck_str *s, const char *text, size_t n);
CK_CORE void ck_str_dec(struct ck_str *s, int64_t v);
CK_CORE void ck_str_udec(struct ck_str *s, uint64_t v);
CK_CORE void ck_str_hex(struct ck_str *s, uint64_t v);
CK_CORE void ck_str_errno(struct ck_str *s, long negerr);

/* Parsers for /proc text: advance *p, return 0 when nothing was parsed. */
CK_CORE int ck_parse_hex(const char **p, uint64_t *out);
CK_CORE int ck_parse_dec(const char **p, uint64_t *out);

CK_CORE const char *ck_errno_name(long err);
/* Write a whole buffer (retrying short writes); returns 0 or -errno. */
CK_CORE long ck_write_all(int fd, const void *buf, size_t n);
/* Read a whole range with pread; returns 0 or -errno (-EIO on early EOF). */
CK_CORE long ck_pread_all(int fd, void *buf, size_t n, uint64_t off);

#endif
