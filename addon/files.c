/* Open files of other processes: shared descriptions (kcmp), locks. */
#define _GNU_SOURCE
#include "native.h"

/* ------------------------------------------------------------------ */
/* kcmp: shared open file descriptions across processes                */

napi_value js_kcmp_file(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4], result = NULL;
	int64_t v[4];
	static const char *const what[4] = { "kcmpFile: pid1", "kcmpFile: fd1", "kcmpFile: pid2", "kcmpFile: fd2" };

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 4) {
		throw_type(env, "kcmpFile(pid1, fd1, pid2, fd2): four arguments are required");
		return NULL;
	}
	for (int i = 0; i < 4; i++)
		if (!get_int(env, argv[i], what[i], i % 2 ? 0 : 1, INT_MAX, &v[i]))
			return NULL;
	long r = syscall(SYS_kcmp, (pid_t)v[0], (pid_t)v[2], CK_KCMP_FILE, (unsigned long)v[1], (unsigned long)v[3]);
	if (r < 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "kcmp(%lld, %lld, KCMP_FILE, %lld, %lld): %s", (long long)v[0],
			    (long long)v[2], (long long)v[1], (long long)v[3], strerror(err));
		return NULL;
	}
	NAPI_CALL(env, napi_get_boolean(env, r == 0, &result));
	return result;
fail:
	return NULL;
}

/* ------------------------------------------------------------------ */
/* tryLockExclusive: is a writer still writing this file?               */

/* A checkpoint writer holds flock(LOCK_EX) on its image from creation to
 * completion (preload/image.c): ckrun takes the lock without waiting to
 * learn that no writer is left before it removes an abandoned generation.
 * true: the lock is ours (until fd is closed); false: someone holds it. */
napi_value js_try_lock_exclusive(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result = NULL;
	int64_t fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "tryLockExclusive(fd): a descriptor is required");
		return NULL;
	}
	if (!get_int(env, argv[0], "tryLockExclusive: fd", 0, INT_MAX, &fd))
		return NULL;
	int r;
	do
		r = flock((int)fd, LOCK_EX | LOCK_NB);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno != EWOULDBLOCK) {
		int err = errno;
		throw_coded(env, errno_name(err), "flock(%lld, LOCK_EX|LOCK_NB): %s", (long long)fd, strerror(err));
		return NULL;
	}
	NAPI_CALL(env, napi_get_boolean(env, r == 0, &result));
	return result;
fail:
	return NULL;
}
