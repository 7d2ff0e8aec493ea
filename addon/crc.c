/* CRC-32C of buffers and of files, on threads. */
#define _GNU_SOURCE
#include "native.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* One part of a mapped range: its pages faulted in with one call (page
 * cache → page tables in a batch instead of a fault per few pages), then
 * checksummed. */
struct crc_part {
	const char *p;
	size_t n;
	uint32_t crc;
};

static void *crc_part_run(void *arg)
{
	struct crc_part *c = arg;
	uintptr_t lo = (uintptr_t)c->p & ~(uintptr_t)4095, hi = ((uintptr_t)c->p + c->n + 4095) & ~(uintptr_t)4095;
	madvise((void *)lo, hi - lo, MADV_POPULATE_READ); /* a hint: faults do it otherwise */
	c->crc = ck_crc32c(0, c->p, c->n);
	return NULL;
}

/* CRC-32C of mapped file data; large ranges in two halves on two threads
 * (restart verifies every image's data: on two cores this halves it),
 * joined with ck_crc32c_combine. */
static uint32_t crc_mapped(const char *p, size_t len)
{
	ck_crc32c(0, "", 0); /* its tables are built on first use: before any thread */
	struct crc_part a = {p, len, 0};
	if (len < ((size_t)16 << 20) || sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		crc_part_run(&a);
		return a.crc;
	}
	size_t half = (len / 2) & ~(size_t)4095;
	struct crc_part b = {p + half, len - half, 0};
	a.n = half;
	pthread_t t;
	if (pthread_create(&t, NULL, crc_part_run, &b) != 0) {
		a.n = len;
		crc_part_run(&a);
		return a.crc;
	}
	crc_part_run(&a);
	pthread_join(t, NULL);
	return ck_crc32c_combine(a.crc, b.crc, b.n);
}

napi_value js_crc32c(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], result = NULL;
	void *data = NULL;
	size_t len = 0;
	bool is;
	uint32_t crc = 0;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "crc32c(buf, crc?): buf is required");
		return NULL;
	}
	NAPI_CALL(env, napi_is_typedarray(env, argv[0], &is));
	if (is) {
		napi_typedarray_type tt;
		size_t count;
		NAPI_CALL(env, napi_get_typedarray_info(env, argv[0], &tt, &count, &data, NULL, NULL));
		if (tt != napi_uint8_array && tt != napi_uint8_clamped_array && tt != napi_int8_array) {
			throw_type(env, "crc32c: buf must be a Uint8Array (or Buffer)");
			return NULL;
		}
		len = count;
	} else {
		NAPI_CALL(env, napi_is_arraybuffer(env, argv[0], &is));
		if (!is) {
			throw_type(env, "crc32c: buf must be a Uint8Array (or Buffer)");
			return NULL;
		}
		NAPI_CALL(env, napi_get_arraybuffer_info(env, argv[0], &data, &len));
	}
	if (argc >= 2) {
		napi_valuetype t;
		NAPI_CALL(env, napi_typeof(env, argv[1], &t));
		if (t != napi_undefined) {
			int64_t x;
			if (!get_int(env, argv[1], "crc32c: crc (0 .. 2^32-1)", 0, UINT32_MAX, &x))
				return NULL;
			crc = (uint32_t)x;
		}
	}
	crc = ck_crc32c(crc, data ? data : "", len);
	NAPI_CALL(env, napi_create_uint32(env, crc, &result));
	return result;
fail:
	return NULL;
}

/* CRC-32C of a byte range, checksummed straight from a read-only mapping
 * of the file (no copy through a buffer). */
napi_value js_crc32c_file(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3], result = NULL;
	char *path = NULL;
	int fd = -1;
	int64_t off, len;
	struct stat st;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 3) {
		throw_type(env, "crc32cFile(path, offset, length): three arguments are required");
		return NULL;
	}
	if (!(path = dup_string(env, argv[0], "crc32cFile: path")))
		return NULL;
	if (!get_int(env, argv[1], "crc32cFile: offset", 0, (int64_t)1 << 53, &off) ||
	    !get_int(env, argv[2], "crc32cFile: length", 0, (int64_t)1 << 53, &len))
		goto fail;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "cannot open %s: %s", path, strerror(err));
		goto fail;
	}
	if (st.st_size < off + len) {
		throw_coded(env, "ERR_CKRUN_SHORT_FILE", "%s ends at byte %lld, but %lld bytes from offset %lld were expected",
			    path, (long long)st.st_size, (long long)len, (long long)off);
		goto fail;
	}
	uint32_t crc = 0;
	if (len > 0) {
		int64_t base = off & ~(int64_t)4095, skip = off - base;
		void *m = mmap(NULL, (size_t)(len + skip), PROT_READ, MAP_PRIVATE, fd, base);
		if (m == MAP_FAILED) {
			int err = errno;
			throw_coded(env, errno_name(err), "cannot read %s: %s", path, strerror(err));
			goto fail;
		}
		crc = crc_mapped((const char *)m + skip, (size_t)len);
		munmap(m, (size_t)(len + skip));
	}
	NAPI_CALL(env, napi_create_uint32(env, crc, &result));
fail:
	if (fd >= 0)
		close(fd);
	free(path);
	return result;
}

/* CRC-32C of many byte ranges of one file (ranges: a Float64Array of
 * offset, length pairs) into a Uint32Array: one open and one mapping for
 * all (an incremental image has thousands of small runs, and a call per
 * run cost 25 µs of open, mmap and munmap each). A range past the end of
 * the file throws ERR_CKRUN_SHORT_FILE. */
napi_value js_crc32c_file_ranges(napi_env env, napi_callback_info info)
{
	size_t argc = 2, count = 0;
	napi_value argv[2], result = NULL, buf;
	napi_typedarray_type tt;
	double *r = NULL;
	char *path = NULL;
	int fd = -1;
	struct stat st;
	uint32_t *out = NULL;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	bool is = false;
	if (argc < 2 || napi_is_typedarray(env, argv[1], &is) != napi_ok || !is) {
		throw_type(env, "crc32cFileRanges(path, ranges): ranges must be a Float64Array of offset, length pairs");
		return NULL;
	}
	NAPI_CALL(env, napi_get_typedarray_info(env, argv[1], &tt, &count, (void **)&r, NULL, NULL));
	if (tt != napi_float64_array || count % 2) {
		throw_type(env, "crc32cFileRanges(path, ranges): ranges must be a Float64Array of offset, length pairs");
		return NULL;
	}
	if (!(path = dup_string(env, argv[0], "crc32cFileRanges: path")))
		return NULL;
	size_t n = count / 2;
	int64_t lo = INT64_MAX, hi = 0;
	for (size_t i = 0; i < n; i++) {
		double o = r[2 * i], l = r[2 * i + 1];
		if (!(o >= 0 && l >= 0 && o + l <= 9007199254740992.0)) {
			throw_type(env, "crc32cFileRanges: a range is out of bounds");
			goto fail;
		}
		if (l > 0 && (int64_t)o < lo)
			lo = (int64_t)o;
		if ((int64_t)(o + l) > hi)
			hi = (int64_t)(o + l);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "cannot open %s: %s", path, strerror(err));
		goto fail;
	}
	if (st.st_size < hi) {
		throw_coded(env, "ERR_CKRUN_SHORT_FILE", "%s ends at byte %lld, but a range ends at %lld", path,
			    (long long)st.st_size, (long long)hi);
		goto fail;
	}
	NAPI_CALL(env, napi_create_arraybuffer(env, n * sizeof(uint32_t), (void **)&out, &buf));
	NAPI_CALL(env, napi_create_typedarray(env, napi_uint32_array, n, buf, 0, &result));
	const char *m = NULL;
	int64_t base = 0;
	if (hi > lo) {
		base = lo & ~(int64_t)4095;
		void *p = mmap(NULL, (size_t)(hi - base), PROT_READ, MAP_PRIVATE, fd, base);
		if (p == MAP_FAILED) {
			int err = errno;
			throw_coded(env, errno_name(err), "cannot read %s: %s", path, strerror(err));
			result = NULL;
			goto fail;
		}
		m = p;
		/* the pages in one call, not a call per range */
		madvise(p, (size_t)(hi - base), MADV_POPULATE_READ);
	}
	ck_crc32c(0, "", 0);
	for (size_t i = 0; i < n; i++) {
		int64_t o = (int64_t)r[2 * i], l = (int64_t)r[2 * i + 1];
		out[i] = l <= 0 ? 0 : l < ((int64_t)16 << 20) ? ck_crc32c(0, m + (o - base), (size_t)l) : crc_mapped(m + (o - base), (size_t)l);
	}
	if (m)
		munmap((void *)m, (size_t)(hi - base));
fail:
	if (fd >= 0)
		close(fd);
	free(path);
	return result;
}
