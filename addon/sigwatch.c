/* Signal watchers for any signal number (libuv). */
#define _GNU_SOURCE
#include "native.h"

struct sigwatch {
	uv_signal_t handle;
	napi_env env;
	napi_ref cb;
	napi_async_context actx;
	int32_t id;
	struct sigwatch *next;
};

static struct sigwatch *sigwatches; /* main thread only */
static int32_t sigwatch_next_id = 1;

static void sigwatch_on_signal(uv_signal_t *h, int signum)
{
	struct sigwatch *w = h->data;
	napi_env env = w->env;
	napi_handle_scope scope;
	napi_value fn, recv, arg, res;
	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;
	if (napi_get_reference_value(env, w->cb, &fn) == napi_ok && fn && napi_get_global(env, &recv) == napi_ok &&
	    napi_create_int32(env, signum, &arg) == napi_ok) {
		napi_status s = napi_make_callback(env, w->actx, recv, fn, 1, &arg, &res);
		if (s == napi_pending_exception) {
			napi_value exc;
			if (napi_get_and_clear_last_exception(env, &exc) == napi_ok)
				napi_fatal_exception(env, exc);
		}
	}
	napi_close_handle_scope(env, scope);
}

static void sigwatch_closed(uv_handle_t *h)
{
	struct sigwatch *w = h->data;
	napi_delete_reference(w->env, w->cb);
	napi_async_destroy(w->env, w->actx);
	free(w);
}

napi_value js_watch_signal(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], name, result = NULL;
	napi_valuetype t;
	int64_t sig;
	uv_loop_t *loop;
	struct sigwatch *w = NULL;
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2) {
		throw_type(env, "watchSignal(signal, cb): two arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "watchSignal: signal number", 1, CK_NSIG, &sig))
		return NULL;
	if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
		throw_type(env, "watchSignal(signal, cb): cb must be a function");
		return NULL;
	}
	NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
	w = calloc(1, sizeof *w);
	if (!w) {
		throw_coded(env, "ENOMEM", "watchSignal: out of memory");
		return NULL;
	}
	w->env = env;
	NAPI_CALL(env, napi_create_string_utf8(env, "ckrun-signal", NAPI_AUTO_LENGTH, &name));
	NAPI_CALL(env, napi_async_init(env, NULL, name, &w->actx));
	if (napi_create_reference(env, argv[1], 1, &w->cb) != napi_ok) {
		throw_napi(env, "napi_create_reference");
		napi_async_destroy(env, w->actx);
		free(w);
		return NULL;
	}
	if ((err = uv_signal_init(loop, &w->handle)) != 0) {
		napi_delete_reference(env, w->cb);
		napi_async_destroy(env, w->actx);
		free(w);
		throw_coded(env, uv_err_name(err), "watchSignal(%d): %s", (int)sig, uv_strerror(err));
		return NULL;
	}
	w->handle.data = w;
	if ((err = uv_signal_start(&w->handle, sigwatch_on_signal, (int)sig)) != 0) {
		uv_close((uv_handle_t *)&w->handle, sigwatch_closed);
		throw_coded(env, uv_err_name(err), "watchSignal(%d): %s", (int)sig, uv_strerror(err));
		return NULL;
	}
	uv_unref((uv_handle_t *)&w->handle); /* never keeps ckrun alive */
	w->id = sigwatch_next_id++;
	w->next = sigwatches;
	sigwatches = w;
	NAPI_CALL(env, napi_create_int32(env, w->id, &result));
	return result;
fail:
	if (w && !w->cb) {
		if (w->actx)
			napi_async_destroy(env, w->actx);
		free(w);
	}
	return NULL;
}

napi_value js_unwatch_signal(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	int64_t id;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "unwatchSignal(id): id is required");
		return NULL;
	}
	if (!get_int(env, argv[0], "unwatchSignal: id", 0, INT32_MAX, &id))
		return NULL;
	for (struct sigwatch **pp = &sigwatches; *pp; pp = &(*pp)->next) {
		struct sigwatch *w = *pp;
		if (w->id != id)
			continue;
		*pp = w->next;
		uv_signal_stop(&w->handle);
		uv_close((uv_handle_t *)&w->handle, sigwatch_closed);
		break;
	}
fail:
	return NULL;
}
