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
/* dupProcessFd: another process's open file description, without an open */

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* dupProcessFd(pid, fd) → a descriptor of ckrun (close-on-exec) for the
 * very open file description process pid has at fd (pidfd_getfd): reading
 * a file through it opens nothing, so it breaks no lease the program holds
 * on the file. Needs ptrace-attach permission over pid. */
napi_value js_dup_process_fd(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], result = NULL;
	int64_t pid, fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2) {
		throw_type(env, "dupProcessFd(pid, fd): two arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "dupProcessFd: pid", 1, INT_MAX, &pid) || !get_int(env, argv[1], "dupProcessFd: fd", 0, INT_MAX, &fd))
		return NULL;
	int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (pidfd < 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "pidfd_open(%lld): %s", (long long)pid, strerror(err));
		return NULL;
	}
	int got = (int)syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);
	int err = errno;
	close(pidfd);
	if (got < 0) {
		throw_coded(env, errno_name(err), "pidfd_getfd(process %lld, descriptor %lld): %s", (long long)pid, (long long)fd, strerror(err));
		return NULL;
	}
	NAPI_CALL(env, napi_create_int32(env, got, &result));
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
