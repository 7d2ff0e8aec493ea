/* The reaper: wait4(-1) in a thread, delivered to JavaScript. */
#define _GNU_SOURCE
#include "native.h"

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t spawn_gen;   /* bumped on every successful clone */
	bool started;
	bool tsfn_dead;       /* the threadsafe function was finalized */
	napi_threadsafe_function tsfn;
} reaper = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, false, NULL };

void reaper_note_spawn(void)
{
	pthread_mutex_lock(&reaper.mu);
	reaper.spawn_gen++;
	pthread_cond_broadcast(&reaper.cv);
	pthread_mutex_unlock(&reaper.mu);
}

/* pid and wait status travel inside the pointer: no allocation, no leak. */
static void *pack_exit(pid_t pid, int status)
{
	return (void *)(uintptr_t)(((uint64_t)(uint32_t)pid << 32) | (uint32_t)status);
}

static void *reaper_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t gen;
		int status = 0;
		pthread_mutex_lock(&reaper.mu);
		gen = reaper.spawn_gen;
		pthread_mutex_unlock(&reaper.mu);

		pid_t pid = wait4(-1, &status, __WALL, NULL);
		if (pid > 0) {
			pthread_mutex_lock(&reaper.mu);
			if (!reaper.tsfn_dead)
				(void)napi_call_threadsafe_function(reaper.tsfn, pack_exit(pid, status),
								    napi_tsfn_nonblocking);
			pthread_mutex_unlock(&reaper.mu);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == ECHILD) {
			/* No children at all: sleep until the next spawn. */
			pthread_mutex_lock(&reaper.mu);
			while (reaper.spawn_gen == gen)
				pthread_cond_wait(&reaper.cv, &reaper.mu);
			pthread_mutex_unlock(&reaper.mu);
			continue;
		}
		/* Unexpected: do not spin. */
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void reaper_call_js(napi_env env, napi_value cb, void *context, void *data)
{
	(void)context;
	if (!env || !cb)
		return;
	uint64_t packed = (uint64_t)(uintptr_t)data;
	pid_t pid = (pid_t)(uint32_t)(packed >> 32);
	int status = (int)(uint32_t)packed;
	napi_value argv[3], undef;
	if (napi_get_undefined(env, &undef) != napi_ok || napi_get_null(env, &argv[1]) != napi_ok ||
	    napi_get_null(env, &argv[2]) != napi_ok || napi_create_int32(env, pid, &argv[0]) != napi_ok)
		return;
	if (WIFEXITED(status)) {
		if (napi_create_int32(env, WEXITSTATUS(status), &argv[1]) != napi_ok)
			return;
	} else if (WIFSIGNALED(status)) {
		if (napi_create_int32(env, WTERMSIG(status), &argv[2]) != napi_ok)
			return;
	} else {
		return; /* stopped/continued are not requested; ignore */
	}
	/* An exception thrown by cb is left pending: Node reports it as
	 * uncaught when call_js returns. */
	(void)napi_call_function(env, undef, cb, 3, argv, NULL);
}

static void reaper_finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)data;
	(void)hint;
	pthread_mutex_lock(&reaper.mu);
	reaper.tsfn_dead = true;
	pthread_mutex_unlock(&reaper.mu);
}

napi_value js_on_child_exit(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], name;
	napi_valuetype t;
	napi_threadsafe_function tsfn = NULL;
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t thr;
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function) {
		throw_type(env, "onChildExit(cb): cb must be a function");
		return NULL;
	}
	pthread_mutex_lock(&reaper.mu);
	bool started = reaper.started;
	pthread_mutex_unlock(&reaper.mu);
	if (started) {
		throw_coded(env, "ERR_CKRUN_REAPER", "onChildExit: a reaper is already installed in this process");
		return NULL;
	}
	NAPI_CALL(env, napi_create_string_utf8(env, "ckrun-reaper", NAPI_AUTO_LENGTH, &name));
	NAPI_CALL(env, napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL,
						       reaper_finalize, NULL, reaper_call_js, &tsfn));
	/* ckrun stays alive through its socket server, not through this. */
	if (napi_unref_threadsafe_function(env, tsfn) != napi_ok) {
		throw_napi(env, "napi_unref_threadsafe_function");
		napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
		return NULL;
	}
	pthread_mutex_lock(&reaper.mu);
	reaper.tsfn = tsfn;
	reaper.tsfn_dead = false;
	pthread_mutex_unlock(&reaper.mu);

	/* The thread inherits a fully blocked mask: signals go to Node's threads. */
	sigfillset(&all);
	if ((err = pthread_attr_init(&attr)) != 0)
		goto thread_fail;
	if ((err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) != 0 ||
	    (err = pthread_attr_setstacksize(&attr, 64 * 1024)) != 0) {
		pthread_attr_destroy(&attr);
		goto thread_fail;
	}
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&thr, &attr, reaper_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (err != 0)
		goto thread_fail;
	pthread_mutex_lock(&reaper.mu);
	reaper.started = true;
	pthread_mutex_unlock(&reaper.mu);
	return NULL;

thread_fail:
	pthread_mutex_lock(&reaper.mu);
	reaper.tsfn = NULL;
	pthread_mutex_unlock(&reaper.mu);
	napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
	throw_coded(env, errno_name(err), "onChildExit: cannot start the reaper thread: %s", strerror(err));
	return NULL;
fail:
	return NULL;
}
