#include "util.h"

#include <errno.h>

#include "sys.h"

CK_CORE void ck_memcpy(void *dst, const void *src, size_t n)
{
	/* rep movsb: fast on every CPU this runs on, and gcc cannot turn it
	 * into a call to libc's memcpy. */
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

CK_CORE void ck_memset(void *dst, int c, size_t n)
{
	__asm__ volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(c) : "memory");
}

CK_CORE size_t ck_strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

CK_CORE int ck_streq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

CK_CORE int ck_strneq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return 0;
		if (!a[i])
			return 1;
	}
	return 1;
}

CK_CORE int ck_starts_with(const char *s, const char *prefix)
{
	return ck_strneq(s, prefix, ck_strlen(prefix));
}

CK_CORE int ck_ends_with(const char *s, const char *suffix)
{
	size_t ls = ck_strlen(s), lx = ck_strlen(suffix);
	return ls >= lx && ck_streq(s + ls - lx, suffix);
}

CK_CORE void ck_str_init(struct ck_str *s, char *buf, size_t cap)
{
	s->buf = buf;
	s->cap = cap;
	s->len = 0;
	if (cap)
		buf[0] = 0;
}

CK_CORE void ck_str_addn(struct ck_str *s, const char *text, size_t n)
{
	for (size_t i = 0; i < n && text[i] && s->len + 1 < s->cap; i++)
		s->buf[s->len++] = text[i];
	if (s->cap)
		s->buf[s->len] = 0;
}

CK_CORE void ck_str_add(struct ck_str *s, const char *text)
{
	ck_str_addn(s, text, (size_t)-1);
}

CK_CORE void ck_str_udec(struct ck_str *s, uint64_t v)
{
	char tmp[24];
	int i = 23;
	tmp[i] = 0;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	ck_str_add(s, tmp + i);
}

CK_CORE void ck_str_dec(struct ck_str *s, int64_t v)
{
	if (v < 0) {
		ck_str_add(s, "-");
		ck_str_udec(s, (uint64_t)0 - (uint64_t)v);
	} else {
		ck_str_udec(s, (uint64_t)v);
	}
}

CK_CORE void ck_str_hex(struct ck_str *s, uint64_t v)
{
	char tmp[20];
	int i = 19;
	tmp[i] = 0;
	do {
		unsigned d = (unsigned)(v & 15);
		tmp[--i] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v >>= 4;
	} while (v);
	ck_str_add(s, "0x");
	ck_str_add(s, tmp + i);
}

CK_CORE const char *ck_errno_name(long err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case EPERM: return "EPERM (operation not permitted)";
	case ENOENT: return "ENOENT (no such file or directory)";
	case ESRCH: return "ESRCH (no such process)";
	case EINTR: return "EINTR (interrupted)";
	case EIO: return "EIO (input/output error)";
	case EBADF: return "EBADF (bad descriptor)";
	case EAGAIN: return "EAGAIN (try again)";
	case ENOMEM: return "ENOMEM (out of memory)";
	case EACCES: return "EACCES (permission denied)";
	case EFAULT: return "EFAULT (bad address)";
	case EBUSY: return "EBUSY (busy)";
	case EEXIST: return "EEXIST (exists)";
	case ENOTDIR: return "ENOTDIR (not a directory)";
	case EISDIR: return "EISDIR (is a directory)";
	case EINVAL: return "EINVAL (invalid argument)";
	case ENFILE: return "ENFILE (too many open files in system)";
	case EMFILE: return "EMFILE (too many open files)";
	case ETXTBSY: return "ETXTBSY (text file busy)";
	case EFBIG: return "EFBIG (file too large)";
	case ENOSPC: return "ENOSPC (no space left on device)";
	case EROFS: return "EROFS (read-only file system)";
	case ENAMETOOLONG: return "ENAMETOOLONG (name too long)";
	case ENOSYS: return "ENOSYS (not implemented by this kernel)";
	case EDQUOT: return "EDQUOT (disk quota exceeded)";
	case ETIMEDOUT: return "ETIMEDOUT (timed out)";
	default: return 0;
	}
}

CK_CORE void ck_str_errno(struct ck_str *s, long negerr)
{
	const char *name = ck_errno_name(negerr);
	if (name) {
		ck_str_add(s, name);
	} else {
		ck_str_add(s, "errno ");
		ck_str_dec(s, negerr < 0 ? -negerr : negerr);
	}
}

static CK_CORE_FN int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

CK_CORE int ck_parse_hex(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int n = 0, d;
	while ((d = hex_digit(*s)) >= 0) {
		v = (v << 4) | (uint64_t)d;
		s++;
		n++;
	}
	*p = s;
	*out = v;
	return n > 0;
}

CK_CORE int ck_parse_dec(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int n = 0;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		s++;
		n++;
	}
	*p = s;
	*out = v;
	return n > 0;
}

CK_CORE long ck_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		/* The kernel caps one write at just under 2 GiB. */
		size_t chunk = n > 0x40000000UL ? 0x40000000UL : n;
		long r = ck_write(fd, p, chunk);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

CK_CORE long ck_pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	char *p = buf;
	while (n) {
		size_t chunk = n > 0x40000000UL ? 0x40000000UL : n;
		long r = ck_pread(fd, p, chunk, off);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		p += r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return 0;
}
