/* Other processes: the shim's join request, and watching any process's
 * exit (and signalling it) through its pidfd. */
#define _GNU_SOURCE
#include "native.h"

/* ------------------------------------------------------------------ */
/* askToJoin: the shim's join request                                   */

/* The parent of pid as /proc says, or -1. */
static long parent_of(long pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* the name may hold anything */
	long ppid;
	return p && sscanf(p + 1, " %*c %ld", &ppid) == 1 ? ppid : -1;
}

/* Whether pid shares neither its memory nor its descriptor table with its
 * parent, as far as ckrun may ask the kernel (a refused kcmp says nothing). */
static int separate_from_parent(long pid)
{
	long ppid = parent_of(pid);
	if (ppid <= 0)
		return 0;
	return syscall(SYS_kcmp, (pid_t)pid, (pid_t)ppid, CK_KCMP_VM, 0, 0) > 0 &&
	       syscall(SYS_kcmp, (pid_t)pid, (pid_t)ppid, CK_KCMP_FILES, 0, 0) > 0;
}

/* Queues the shim's internal signal, tagged as a join request, to the
 * main thread of a process of the session that has no connection yet. false when the
 * process is gone. */
napi_value js_ask_to_join(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], result = NULL;
	int64_t pid, sig;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2) {
		throw_type(env, "askToJoin(pid, signal): two arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "askToJoin: pid", 1, INT_MAX, &pid) ||
	    !get_int(env, argv[1], "askToJoin: signal", 1, 64, &sig))
		return NULL;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = (int)sig;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	/* ckrun tells what a process that dropped root cannot find out itself */
	si.si_value.sival_ptr = (void *)(CK_JOIN_MAGIC << 32 | (separate_from_parent((long)pid) ? CK_JOIN_SEPARATE : 0));
	/* to the main thread only (its TID is the PID): a signal to the whole
	 * process may wake another thread, whose call then fails with EINTR */
	if (syscall(SYS_rt_tgsigqueueinfo, (pid_t)pid, (pid_t)pid, (int)sig, &si) != 0) {
		int err = errno;
		if (err == ESRCH) {
			NAPI_CALL(env, napi_get_boolean(env, false, &result));
			return result;
		}
		throw_coded(env, errno_name(err), "askToJoin(%lld): %s", (long long)pid, strerror(err));
		return NULL;
	}
	NAPI_CALL(env, napi_get_boolean(env, true, &result));
	return result;
fail:
	return NULL;
}

/* ------------------------------------------------------------------ */
/* exit watchers: any process, through its pidfd                       */

/* struct pidfd_info of Linux 6.15's <linux/pidfd.h> (Debian 12's headers
 * lack it): how a process ended, once it has been reaped. */
struct ck_pidfd_info {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
	uint32_t coredump_mask;
	uint32_t spare1;
};
#define CK_PIDFD_GET_INFO _IOWR(0xFF, 11, struct ck_pidfd_info)
#define CK_PIDFD_INFO_EXIT (1ULL << 3)
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* How long an exited process may stay unreaped before its watcher is
 * told without a status (its reaper, ckrun's thread or a restore init,
 * reaps at once). */
#define EXITWATCH_TRY_MS 5
#define EXITWATCH_TRIES 200

struct exitwatch {
	uv_poll_t poll;
	uv_timer_t timer;
	napi_env env;
	napi_ref cb;
	napi_async_context actx;
	int pidfd;
	int tries;
	int open_handles; /* freed when both handles are closed */
	bool done;
	int32_t id;
	struct exitwatch *next;
};

static struct exitwatch *exitwatches; /* main thread only */
static int32_t exitwatch_next_id = 1;

static void exitwatch_closed(uv_handle_t *h)
{
	struct exitwatch *w = h->data;
	if (--w->open_handles > 0)
		return;
	napi_delete_reference(w->env, w->cb);
	napi_async_destroy(w->env, w->actx);
	free(w);
}

/* Stops watching: unlinks w and closes its handles and pidfd. */
static void exitwatch_end(struct exitwatch *w)
{
	if (w->done)
		return;
	w->done = true;
	for (struct exitwatch **pp = &exitwatches; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	uv_poll_stop(&w->poll);
	uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *)&w->poll, exitwatch_closed);
	uv_close((uv_handle_t *)&w->timer, exitwatch_closed);
	close(w->pidfd);
}

/* The wait status of the exited process: 1 known, 0 not yet (not reaped),
 * -1 never (a kernel before 6.15). */
static int exitwatch_status(struct exitwatch *w, int *status)
{
	struct ck_pidfd_info pi;
	memset(&pi, 0, sizeof pi);
	pi.mask = CK_PIDFD_INFO_EXIT;
	if (ioctl(w->pidfd, CK_PIDFD_GET_INFO, &pi) != 0)
		return errno == ESRCH ? 0 : -1;
	if (!(pi.mask & CK_PIDFD_INFO_EXIT))
		return 0;
	*status = pi.exit_code;
	return 1;
}

/* cb(code, signal): both null when the kernel cannot say how it ended. */
static void exitwatch_deliver(struct exitwatch *w, int known, int status)
{
	napi_env env = w->env;
	napi_handle_scope scope;
	napi_value fn, recv, argv[2], res;
	if (napi_open_handle_scope(env, &scope) != napi_ok) {
		exitwatch_end(w);
		return;
	}
	bool ok = napi_get_null(env, &argv[0]) == napi_ok && napi_get_null(env, &argv[1]) == napi_ok;
	if (ok && known && WIFEXITED(status))
		ok = napi_create_int32(env, WEXITSTATUS(status), &argv[0]) == napi_ok;
	else if (ok && known && WIFSIGNALED(status))
		ok = napi_create_int32(env, WTERMSIG(status), &argv[1]) == napi_ok;
	ok = ok && napi_get_reference_value(env, w->cb, &fn) == napi_ok && fn && napi_get_global(env, &recv) == napi_ok;
	exitwatch_end(w); /* before the callback, which may unwatch */
	if (ok) {
		napi_status s = napi_make_callback(env, w->actx, recv, fn, 2, argv, &res);
		if (s == napi_pending_exception) {
			napi_value exc;
			if (napi_get_and_clear_last_exception(env, &exc) == napi_ok)
				napi_fatal_exception(env, exc);
		}
	}
	napi_close_handle_scope(env, scope);
}

static void exitwatch_on_timer(uv_timer_t *h);

static void exitwatch_try(struct exitwatch *w)
{
	int status = 0, r = exitwatch_status(w, &status);
	if (r == 0 && ++w->tries < EXITWATCH_TRIES) {
		uv_timer_start(&w->timer, exitwatch_on_timer, EXITWATCH_TRY_MS, 0);
		return;
	}
	exitwatch_deliver(w, r == 1, status);
}

static void exitwatch_on_timer(uv_timer_t *h)
{
	exitwatch_try(h->data);
}

static void exitwatch_on_poll(uv_poll_t *h, int status, int events)
{
	struct exitwatch *w = h->data;
	(void)status;
	(void)events;
	uv_poll_stop(&w->poll); /* a pidfd stays readable once its process exited */
	exitwatch_try(w);
}

static struct exitwatch *exitwatch_find(int64_t id)
{
	for (struct exitwatch *w = exitwatches; w; w = w->next)
		if (w->id == id)
			return w;
	return NULL;
}

/* watchExit(pid, cb): calls cb(code, signal) once the process has exited
 * (and been reaped by whoever reaps it: ckrun or a restore init); throws
 * with code ESRCH when there is no such process (any more). A pidfd, so
 * a process of any parent, and never a later one with the same PID. */
napi_value js_watch_exit(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], name, result = NULL;
	napi_valuetype t;
	int64_t pid;
	uv_loop_t *loop;
	struct exitwatch *w = NULL;
	int err, pidfd = -1;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2) {
		throw_type(env, "watchExit(pid, cb): two arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "watchExit: pid", 1, INT_MAX, &pid))
		return NULL;
	if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
		throw_type(env, "watchExit(pid, cb): cb must be a function");
		return NULL;
	}
	NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
	pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (pidfd < 0) {
		err = errno;
		throw_coded(env, errno_name(err), "pidfd_open(%lld): %s", (long long)pid, strerror(err));
		return NULL;
	}
	(void)fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	w = calloc(1, sizeof *w);
	if (!w) {
		close(pidfd);
		throw_coded(env, "ENOMEM", "watchExit: out of memory");
		return NULL;
	}
	w->env = env;
	w->pidfd = pidfd;
	NAPI_CALL(env, napi_create_string_utf8(env, "ckrun-exit", NAPI_AUTO_LENGTH, &name));
	NAPI_CALL(env, napi_async_init(env, NULL, name, &w->actx));
	if (napi_create_reference(env, argv[1], 1, &w->cb) != napi_ok) {
		throw_napi(env, "napi_create_reference");
		goto fail;
	}
	if ((err = uv_poll_init(loop, &w->poll, pidfd)) != 0) {
		napi_delete_reference(env, w->cb);
		w->cb = NULL;
		throw_coded(env, uv_err_name(err), "watchExit(%lld): %s", (long long)pid, uv_strerror(err));
		goto fail;
	}
	uv_timer_init(loop, &w->timer);
	w->poll.data = w->timer.data = w;
	w->open_handles = 2;
	uv_unref((uv_handle_t *)&w->poll); /* never keeps ckrun alive */
	uv_unref((uv_handle_t *)&w->timer);
	w->id = exitwatch_next_id++;
	w->next = exitwatches;
	exitwatches = w;
	if ((err = uv_poll_start(&w->poll, UV_READABLE, exitwatch_on_poll)) != 0) {
		exitwatch_end(w);
		throw_coded(env, uv_err_name(err), "watchExit(%lld): %s", (long long)pid, uv_strerror(err));
		return NULL;
	}
	NAPI_CALL(env, napi_create_int32(env, w->id, &result));
	return result;
fail:
	if (w && !w->open_handles) {
		if (w->actx)
			napi_async_destroy(env, w->actx);
		close(pidfd);
		free(w);
	}
	return NULL;
}

/* unwatchExit(id): no callback any more. */
napi_value js_unwatch_exit(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	int64_t id;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "unwatchExit(id): id is required");
		return NULL;
	}
	if (!get_int(env, argv[0], "unwatchExit: id", 0, INT32_MAX, &id))
		return NULL;
	struct exitwatch *w = exitwatch_find(id);
	if (w)
		exitwatch_end(w);
fail:
	return NULL;
}

/* signalWatched(id, sig): sends sig to the watched process through its
 * pidfd (never to a later process with its PID); false when it has
 * exited or is no longer watched. */
napi_value js_signal_watched(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], result = NULL;
	int64_t id, sig;
	bool sent = false;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2) {
		throw_type(env, "signalWatched(id, signal): two arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "signalWatched: id", 0, INT32_MAX, &id) ||
	    !get_int(env, argv[1], "signalWatched: signal", 1, CK_NSIG, &sig))
		return NULL;
	struct exitwatch *w = exitwatch_find(id);
	if (w)
		sent = syscall(SYS_pidfd_send_signal, w->pidfd, (int)sig, NULL, 0) == 0;
	NAPI_CALL(env, napi_get_boolean(env, sent, &result));
	return result;
fail:
	return NULL;
}
