/* What every area of the addon uses: errors thrown with their errno's
 * name as code, and arguments read from JavaScript values. */
#define _GNU_SOURCE
#include "native.h"

/* ------------------------------------------------------------------ */
/* error helpers                                                       */

const char *errno_name(int err)
{
	const char *n = strerrorname_np(err);
	return n ? n : "EUNKNOWN";
}

/* Throws an Error with .code = code and the formatted message, unless an
 * exception is already pending (then that one wins). */
void throw_coded(napi_env env, const char *code, const char *fmt, ...)
{
	bool pending = false;
	if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	napi_value jcode, jmsg, err;
	if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
	    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
	    napi_create_error(env, jcode, jmsg, &err) != napi_ok ||
	    napi_throw(env, err) != napi_ok)
		napi_throw_error(env, code, msg);
}

void throw_type(napi_env env, const char *fmt, ...)
{
	bool pending = false;
	if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

/* An N-API call failed: throw a generic error naming it (unless one is
 * already pending). */
void throw_napi(napi_env env, const char *what)
{
	const napi_extended_error_info *info = NULL;
	const char *why = "unknown N-API error";
	if (napi_get_last_error_info(env, &info) == napi_ok && info && info->error_message)
		why = info->error_message;
	throw_coded(env, "ERR_CKRUN_NAPI", "%s failed: %s", what, why);
}


/* ------------------------------------------------------------------ */
/* argument helpers                                                    */

/* Looks up obj[name]; *present is false when missing, undefined or null. */
bool get_opt(napi_env env, napi_value obj, const char *name, napi_value *out, bool *present)
{
	bool has = false;
	*present = false;
	if (napi_has_named_property(env, obj, name, &has) != napi_ok) {
		throw_napi(env, "napi_has_named_property");
		return false;
	}
	if (!has)
		return true;
	if (napi_get_named_property(env, obj, name, out) != napi_ok) {
		throw_napi(env, "napi_get_named_property");
		return false;
	}
	napi_valuetype t;
	if (napi_typeof(env, *out, &t) != napi_ok) {
		throw_napi(env, "napi_typeof");
		return false;
	}
	*present = t != napi_undefined && t != napi_null;
	return true;
}

/* Copies a JS string into a fresh malloc'd NUL-terminated buffer.
 * Rejects strings containing NUL bytes (they cannot go to execve). */
char *dup_string(napi_env env, napi_value v, const char *what)
{
	napi_valuetype t;
	size_t len = 0, got = 0;
	char *s;
	if (napi_typeof(env, v, &t) != napi_ok) {
		throw_napi(env, "napi_typeof");
		return NULL;
	}
	if (t != napi_string) {
		throw_type(env, "%s must be a string", what);
		return NULL;
	}
	if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
		throw_napi(env, "napi_get_value_string_utf8");
		return NULL;
	}
	s = malloc(len + 1);
	if (!s) {
		throw_coded(env, "ENOMEM", "out of memory copying %s", what);
		return NULL;
	}
	if (napi_get_value_string_utf8(env, v, s, len + 1, &got) != napi_ok) {
		free(s);
		throw_napi(env, "napi_get_value_string_utf8");
		return NULL;
	}
	if (strlen(s) != got) {
		free(s);
		throw_type(env, "%s must not contain NUL characters", what);
		return NULL;
	}
	return s;
}

void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* JS string[] -> malloc'd NULL-terminated char*[] */
char **dup_strv(napi_env env, napi_value arr, const char *what)
{
	bool is_array = false;
	uint32_t n = 0;
	char **v = NULL;
	char label[64];
	if (napi_is_array(env, arr, &is_array) != napi_ok) {
		throw_napi(env, "napi_is_array");
		return NULL;
	}
	if (!is_array) {
		throw_type(env, "%s must be an array of strings", what);
		return NULL;
	}
	if (napi_get_array_length(env, arr, &n) != napi_ok) {
		throw_napi(env, "napi_get_array_length");
		return NULL;
	}
	v = calloc((size_t)n + 1, sizeof *v);
	if (!v) {
		throw_coded(env, "ENOMEM", "out of memory copying %s", what);
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		napi_value e;
		if (napi_get_element(env, arr, i, &e) != napi_ok) {
			throw_napi(env, "napi_get_element");
			free_strv(v);
			return NULL;
		}
		snprintf(label, sizeof label, "%s[%u]", what, i);
		v[i] = dup_string(env, e, label);
		if (!v[i]) {
			free_strv(v);
			return NULL;
		}
	}
	return v;
}

bool get_int(napi_env env, napi_value v, const char *what, int64_t lo, int64_t hi, int64_t *out)
{
	napi_valuetype t;
	double d;
	if (napi_typeof(env, v, &t) != napi_ok) {
		throw_napi(env, "napi_typeof");
		return false;
	}
	if (t != napi_number) {
		throw_type(env, "%s must be a number", what);
		return false;
	}
	if (napi_get_value_double(env, v, &d) != napi_ok) {
		throw_napi(env, "napi_get_value_double");
		return false;
	}
	if (d != d || d < (double)lo || d > (double)hi || d != (double)(int64_t)d) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", what);
		return false;
	}
	*out = (int64_t)d;
	return true;
}

bool get_fd_arg(napi_env env, napi_callback_info info, const char *what, int *fd)
{
	size_t argc = 1;
	napi_value argv[1];
	int64_t v;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
		throw_napi(env, "napi_get_cb_info");
		return false;
	}
	if (argc < 1) {
		throw_type(env, "%s(fd): fd is required", what);
		return false;
	}
	if (!get_int(env, argv[0], what, 0, INT_MAX, &v))
		return false;
	*fd = (int)v;
	return true;
}

bool set_int_prop(napi_env env, napi_value obj, const char *name, int64_t v)
{
	napi_value x;
	return napi_create_int64(env, v, &x) == napi_ok && napi_set_named_property(env, obj, name, x) == napi_ok;
}
