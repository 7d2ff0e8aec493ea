/*
 * ckrun_native: what Node cannot do by itself.
 *
 *   spawn(opts)              clone3 (optionally with set_tid / new PID+mount
 *                            namespace with its own /proc) + execve, errors
 *                            reported through a close-on-exec pipe
 *   setChildSubreaper()      prctl(PR_SET_CHILD_SUBREAPER)
 *   onChildExit(cb)          a reaper thread: wait4(-1, __WALL) delivered to
 *                            JS through an unref'd threadsafe function
 *   watchSignal(sig, cb)     a libuv signal watcher for any signal number
 *   unwatchSignal(id)        (Node's process.on knows no real-time signals)
 *   crc32c(buf, crc?)        CRC-32C of a Uint8Array / ArrayBuffer
 *   crc32cFile(path, off, n) CRC-32C of a byte range of a file (mapped, not copied)
 *   unixListen(name)         listening socket on an abstract name
 *   unixConnect(name)        connected socket to an abstract name
 *                            (Node 20's net pads abstract names to 108
 *                            bytes; the shim uses the exact length)
 *   kcmpFile(p1, fd1, p2, fd2) kcmp(KCMP_FILE): do two descriptors of two
 *                            processes share one open file description?
 *   unixPeers(name)          inodes of the client ends of every connection
 *                            accepted on the abstract name (sock_diag)
 *   peerCred(fd)             SO_PEERCRED of a Unix socket: {pid, uid, gid}
 *   peerAlive(fd)            whether that peer process still runs (SO_PEERPIDFD)
 *   watchExit(pid, cb)       cb(code, signal) when a process (any parent's)
 *   unwatchExit(id)          has exited, through its pidfd; signalWatched(id,
 *   signalWatched(id, sig)   sig) signals it through that pidfd
 *
 * Plain N-API (node_api.h) plus libuv for the signal and exit watchers.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include "crc32c.h" /* preload/: the shim's CRC-32C */
#include "wire.h"   /* preload/: the join request's tag */

/* struct clone_args of <linux/sched.h>, declared here so that header's
 * CLONE_* macros do not clash with <sched.h>'s. */
struct ck_clone_args {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
	uint64_t cgroup;
};

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define CK_NSIG 64          /* highest signal number on x86-64 Linux */
#define CK_MAX_FDS 4096     /* sanity limit on opts.fds */

/* ------------------------------------------------------------------ */
/* error helpers                                                       */

static const char *errno_name(int err)
{
	const char *n = strerrorname_np(err);
	return n ? n : "EUNKNOWN";
}

/* Throws an Error with .code = code and the formatted message, unless an
 * exception is already pending (then that one wins). */
static void throw_coded(napi_env env, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void throw_coded(napi_env env, const char *code, const char *fmt, ...)
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

static void throw_type(napi_env env, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void throw_type(napi_env env, const char *fmt, ...)
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
static void throw_napi(napi_env env, const char *what)
{
	const napi_extended_error_info *info = NULL;
	const char *why = "unknown N-API error";
	if (napi_get_last_error_info(env, &info) == napi_ok && info && info->error_message)
		why = info->error_message;
	throw_coded(env, "ERR_CKRUN_NAPI", "%s failed: %s", what, why);
}

#define NAPI_CALL(env, call)                          \
	do {                                          \
		if ((call) != napi_ok) {              \
			throw_napi((env), #call);     \
			goto fail;                    \
		}                                     \
	} while (0)

/* ------------------------------------------------------------------ */
/* argument helpers                                                    */

/* Looks up obj[name]; *present is false when missing, undefined or null. */
static bool get_opt(napi_env env, napi_value obj, const char *name, napi_value *out, bool *present)
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
static char *dup_string(napi_env env, napi_value v, const char *what)
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

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* JS string[] -> malloc'd NULL-terminated char*[] */
static char **dup_strv(napi_env env, napi_value arr, const char *what)
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

static bool get_int(napi_env env, napi_value v, const char *what, int64_t lo, int64_t hi, int64_t *out)
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

/* ------------------------------------------------------------------ */
/* reaper: wait4(-1) in a thread                                       */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t spawn_gen;   /* bumped on every successful clone */
	bool started;
	bool tsfn_dead;       /* the threadsafe function was finalized */
	napi_threadsafe_function tsfn;
} reaper = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, false, NULL };

static void reaper_note_spawn(void)
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

static napi_value js_on_child_exit(napi_env env, napi_callback_info info)
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

/* ------------------------------------------------------------------ */
/* spawn                                                               */

enum { STAGE_SETUP = 1, STAGE_FD = 2, STAGE_CHDIR = 3, STAGE_EXEC = 4, STAGE_PROC = 5, STAGE_USERNS = 6 };

struct child_report {
	int32_t stage;
	int32_t err;
	int32_t arg;   /* for STAGE_FD: index of the descriptor */
};

struct spawn_req {
	char *file;
	char **argv;
	char **envp;
	char *cwd;
	int *fds;      /* child fd i <- parent fd fds[i]; -1 = closed */
	int *tmp;      /* scratch for the child (its own copy of the memory) */
	int nfds;
	bool have_tid;
	pid_t tid;
	bool newns;
	bool newuser;    /* only with newns: a user namespace too (not root) */
	bool mount_proc; /* only with newns: private mounts + a fresh /proc */
	int pdeathsig;
};

static void spawn_req_free(struct spawn_req *q)
{
	free(q->file);
	free_strv(q->argv);
	free_strv(q->envp);
	free(q->cwd);
	free(q->fds);
	free(q->tmp);
	memset(q, 0, sizeof *q);
}

/* The kernel's struct sigaction for rt_sigaction (x86-64). */
struct k_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	uint64_t mask;
};

static __attribute__((noreturn)) void child_fail(int efd, int stage, int err, int arg)
{
	struct child_report r = { stage, err, arg };
	ssize_t n;
	do
		n = write(efd, &r, sizeof r);
	while (n < 0 && errno == EINTR);
	syscall(SYS_exit_group, 127);
	__builtin_unreachable();
}

/* In a new user namespace the child has every capability until it execs
 * as its own (non-zero) UID; the ones a restore needs are made ambient so
 * they survive exec (CAP_SETPCAP: the bounding set and securebits the
 * program had). The restore core sets the program's own again. */
static int keep_restore_caps(void)
{
	struct { uint32_t version; int pid; } hdr = { 0x20080522 /* v3 */, 0 };
	struct { uint32_t effective, permitted, inheritable; } data[2];
	static const int caps[] = { 8 /* CAP_SETPCAP */, 21 /* CAP_SYS_ADMIN */, 40 /* CAP_CHECKPOINT_RESTORE */ };
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -1;
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
		data[caps[i] / 32].inheritable |= 1u << (caps[i] % 32);
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -1;
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, caps[i], 0, 0) < 0)
			return -1;
	return 0;
}

/* Runs in the child of clone3 (a copy of the calling thread, no CLONE_VM).
 * Only async-signal-safe calls: no malloc, no stdio, no locks. */
static __attribute__((noreturn)) void child_main(struct spawn_req *q, int efd, const int *idsync, pid_t parent)
{
	struct k_sigaction dfl;
	uint64_t none = 0;
	int n = q->nfds;

	if (q->newuser) {
		/* wait until the parent has written our UID and GID maps */
		char b;
		ssize_t got;
		close(idsync[1]);
		do
			got = read(idsync[0], &b, 1);
		while (got < 0 && errno == EINTR);
		if (got != 1)
			syscall(SYS_exit_group, 127);
		if (keep_restore_caps() < 0)
			child_fail(efd, STAGE_USERNS, errno, 0);
	}
	if (idsync[0] >= 0)
		close(idsync[0]);

	if (q->pdeathsig) {
		if (prctl(PR_SET_PDEATHSIG, q->pdeathsig, 0, 0, 0) < 0)
			child_fail(efd, STAGE_SETUP, errno, 0);
		/* The parent may have died before prctl: then nobody will
		 * send the signal (in a new PID namespace getppid() is 0). */
		if (!q->newns && getppid() != parent)
			syscall(SYS_exit_group, 127);
	}

	/* Every disposition back to default (Node ignores SIGPIPE, libuv
	 * has handlers), then unblock everything (the parent blocked all
	 * signals around clone3, so nothing ran a Node handler here). */
	memset(&dfl, 0, sizeof dfl);
	dfl.handler = SIG_DFL;
	for (int s = 1; s <= CK_NSIG; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof(uint64_t)) < 0)
			child_fail(efd, STAGE_SETUP, errno, s);
	}

	/* Descriptors: move the error pipe and every source above the target
	 * range first, so no dup2 can clobber a source still needed. */
	int e2 = fcntl(efd, F_DUPFD_CLOEXEC, n);
	if (e2 < 0)
		child_fail(efd, STAGE_SETUP, errno, 0);
	efd = e2;
	for (int i = 0; i < n; i++) {
		q->tmp[i] = -1;
		if (q->fds[i] < 0)
			continue;
		q->tmp[i] = fcntl(q->fds[i], F_DUPFD_CLOEXEC, n);
		if (q->tmp[i] < 0)
			child_fail(efd, STAGE_FD, errno, i);
	}
	for (int i = 0; i < n; i++) {
		if (q->tmp[i] >= 0) {
			if (dup2(q->tmp[i], i) < 0) /* dup2 clears FD_CLOEXEC on i */
				child_fail(efd, STAGE_FD, errno, i);
		} else {
			(void)close(i); /* EBADF when already closed is fine */
		}
	}
	/* Close everything from n up, except the error pipe. */
	if (efd > n && syscall(SYS_close_range, (unsigned)n, (unsigned)efd - 1, 0) < 0)
		child_fail(efd, STAGE_SETUP, errno, 0);
	if (syscall(SYS_close_range, (unsigned)efd + 1, ~0U, 0) < 0)
		child_fail(efd, STAGE_SETUP, errno, 0);

	/* In a new PID namespace, /proc must show that namespace: stop mount
	 * propagation back to ckrun's namespace first. */
	if (q->mount_proc) {
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			child_fail(efd, STAGE_PROC, errno, 0);
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			child_fail(efd, STAGE_PROC, errno, 1);
	}

	if (q->cwd && chdir(q->cwd) < 0)
		child_fail(efd, STAGE_CHDIR, errno, 0);

	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none) < 0)
		child_fail(efd, STAGE_SETUP, errno, 0);

	execve(q->file, q->argv, q->envp);
	child_fail(efd, STAGE_EXEC, errno, 0);
}

static bool parse_spawn(napi_env env, napi_value opts, struct spawn_req *q)
{
	napi_value v;
	bool present;
	int64_t x;
	napi_valuetype t;

	memset(q, 0, sizeof *q);
	q->pdeathsig = SIGKILL;
	if (napi_typeof(env, opts, &t) != napi_ok || t != napi_object) {
		throw_type(env, "spawn(opts): opts must be an object");
		return false;
	}
	if (!get_opt(env, opts, "file", &v, &present))
		return false;
	if (!present) {
		throw_type(env, "spawn: opts.file is required");
		return false;
	}
	if (!(q->file = dup_string(env, v, "opts.file")))
		return false;
	if (!q->file[0]) {
		throw_type(env, "spawn: opts.file must not be empty");
		return false;
	}

	if (!get_opt(env, opts, "argv", &v, &present))
		return false;
	if (!present) {
		throw_type(env, "spawn: opts.argv is required");
		return false;
	}
	if (!(q->argv = dup_strv(env, v, "opts.argv")))
		return false;

	if (!get_opt(env, opts, "env", &v, &present))
		return false;
	if (!present) {
		throw_type(env, "spawn: opts.env is required");
		return false;
	}
	if (!(q->envp = dup_strv(env, v, "opts.env")))
		return false;

	if (!get_opt(env, opts, "cwd", &v, &present))
		return false;
	if (present && !(q->cwd = dup_string(env, v, "opts.cwd")))
		return false;

	if (!get_opt(env, opts, "fds", &v, &present))
		return false;
	if (present) {
		bool is_array = false;
		uint32_t n = 0;
		if (napi_is_array(env, v, &is_array) != napi_ok || !is_array) {
			throw_type(env, "spawn: opts.fds must be an array of descriptor numbers");
			return false;
		}
		if (napi_get_array_length(env, v, &n) != napi_ok) {
			throw_napi(env, "napi_get_array_length");
			return false;
		}
		if (n > CK_MAX_FDS) {
			napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "spawn: opts.fds is too long");
			return false;
		}
		q->nfds = (int)n;
		q->fds = calloc(n ? n : 1, sizeof *q->fds);
		if (!q->fds) {
			throw_coded(env, "ENOMEM", "spawn: out of memory");
			return false;
		}
		for (uint32_t i = 0; i < n; i++) {
			napi_value e;
			char label[32];
			snprintf(label, sizeof label, "opts.fds[%u]", i);
			if (napi_get_element(env, v, i, &e) != napi_ok) {
				throw_napi(env, "napi_get_element");
				return false;
			}
			if (!get_int(env, e, label, -1, INT_MAX, &x))
				return false;
			q->fds[i] = (int)x;
		}
	} else {
		q->nfds = 3;
		q->fds = malloc(3 * sizeof *q->fds);
		if (!q->fds) {
			throw_coded(env, "ENOMEM", "spawn: out of memory");
			return false;
		}
		q->fds[0] = 0;
		q->fds[1] = 1;
		q->fds[2] = 2;
	}
	q->tmp = calloc(q->nfds ? (size_t)q->nfds : 1, sizeof *q->tmp);
	if (!q->tmp) {
		throw_coded(env, "ENOMEM", "spawn: out of memory");
		return false;
	}

	if (!get_opt(env, opts, "setTid", &v, &present))
		return false;
	if (present) {
		if (!get_int(env, v, "opts.setTid", 1, INT_MAX, &x))
			return false;
		q->have_tid = true;
		q->tid = (pid_t)x;
	}

	if (!get_opt(env, opts, "newPidNs", &v, &present))
		return false;
	if (present) {
		bool b = false;
		if (napi_get_value_bool(env, v, &b) != napi_ok) {
			throw_type(env, "spawn: opts.newPidNs must be a boolean");
			return false;
		}
		q->newns = b;
	}
	if (!get_opt(env, opts, "newUserNs", &v, &present))
		return false;
	if (present) {
		bool b = false;
		if (napi_get_value_bool(env, v, &b) != napi_ok) {
			throw_type(env, "spawn: opts.newUserNs must be a boolean");
			return false;
		}
		if (b && !q->newns) {
			throw_type(env, "spawn: opts.newUserNs needs opts.newPidNs");
			return false;
		}
		q->newuser = b;
	}
	q->mount_proc = q->newns;
	if (!get_opt(env, opts, "mountProc", &v, &present))
		return false;
	if (present) {
		bool b = false;
		if (napi_get_value_bool(env, v, &b) != napi_ok) {
			throw_type(env, "spawn: opts.mountProc must be a boolean");
			return false;
		}
		if (b && !q->newns) {
			throw_type(env, "spawn: opts.mountProc needs opts.newPidNs");
			return false;
		}
		q->mount_proc = b;
	}

	if (!get_opt(env, opts, "pdeathsig", &v, &present))
		return false;
	if (present) {
		if (!get_int(env, v, "opts.pdeathsig", 0, CK_NSIG, &x))
			return false;
		q->pdeathsig = (int)x;
	}
	return true;
}

/* Maps the child's UID and GID to ours, one to one: the restored program
 * keeps its own identity inside its user namespace. */
static int write_id_maps(pid_t pid)
{
	char path[64], line[64];
	struct { const char *file; const char *text; } steps[3];
	char uidl[32], gidl[32];
	snprintf(uidl, sizeof uidl, "%u %u 1\n", (unsigned)geteuid(), (unsigned)geteuid());
	snprintf(gidl, sizeof gidl, "%u %u 1\n", (unsigned)getegid(), (unsigned)getegid());
	steps[0].file = "setgroups", steps[0].text = "deny\n";
	steps[1].file = "uid_map", steps[1].text = uidl;
	steps[2].file = "gid_map", steps[2].text = gidl;
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, steps[i].file);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		snprintf(line, sizeof line, "%s", steps[i].text);
		ssize_t w = write(fd, line, strlen(line));
		int e = errno;
		close(fd);
		if (w != (ssize_t)strlen(line)) {
			errno = w < 0 ? e : EIO;
			return -1;
		}
	}
	return 0;
}

static napi_value js_spawn(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result = NULL;
	struct spawn_req q;
	int pfd[2] = { -1, -1 }, idsync[2] = { -1, -1 };
	sigset_t all, old;
	struct ck_clone_args ca;
	uint64_t tid_arr[1];
	pid_t parent = getpid();
	long r;
	int err;

	memset(&q, 0, sizeof q);
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "spawn(opts): opts is required");
		goto fail;
	}
	if (!parse_spawn(env, argv[0], &q))
		goto fail;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		err = errno;
		throw_coded(env, errno_name(err), "spawn %s: cannot create a pipe: %s", q.file, strerror(err));
		goto fail;
	}

	if (q.newuser && pipe2(idsync, O_CLOEXEC) < 0) {
		err = errno;
		throw_coded(env, errno_name(err), "spawn %s: cannot create a pipe: %s", q.file, strerror(err));
		goto fail;
	}

	memset(&ca, 0, sizeof ca);
	ca.flags = q.newns ? (uint64_t)(CLONE_NEWPID | CLONE_NEWNS) : 0;
	if (q.newuser)
		ca.flags |= CLONE_NEWUSER;
	ca.exit_signal = SIGCHLD;
	if (q.have_tid) {
		tid_arr[0] = (uint64_t)q.tid;
		ca.set_tid = (uint64_t)(uintptr_t)tid_arr;
		ca.set_tid_size = 1;
	}

	/* Block every signal around clone3 so the child cannot run one of
	 * Node's handlers before it has reset them (as posix_spawn does). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = syscall(SYS_clone3, &ca, sizeof ca);
	if (r == 0)
		child_main(&q, pfd[1], idsync, parent); /* never returns */
	err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(pfd[1]);
	pfd[1] = -1;
	if (idsync[0] >= 0) {
		close(idsync[0]);
		idsync[0] = -1;
	}
	if (r > 0 && q.newuser) {
		int merr = write_id_maps((pid_t)r) < 0 ? errno : 0;
		if (!merr && write(idsync[1], "x", 1) != 1)
			merr = errno;
		close(idsync[1]);
		idsync[1] = -1;
		if (merr) {
			int st;
			kill((pid_t)r, SIGKILL);
			while (waitpid((pid_t)r, &st, __WALL) < 0 && errno == EINTR)
				;
			close(pfd[0]);
			pfd[0] = -1;
			throw_coded(env, errno_name(merr), "spawn %s: cannot map the user and group IDs into the new user namespace: %s",
				    q.file, strerror(merr));
			goto fail;
		}
	}

	if (r < 0) {
		if (err == EEXIST || err == EBUSY) {
			throw_coded(env, "EEXIST", "spawn %s: PID %d is already in use", q.file, (int)q.tid);
		} else if (err == ENOSYS) {
			throw_coded(env, "ENOSYS", "spawn %s: this kernel has no clone3 (Linux 5.3 or newer is needed)", q.file);
		} else if (err == EPERM && (q.have_tid || q.newns)) {
			throw_coded(env, "EPERM", "spawn %s: %s needs CAP_CHECKPOINT_RESTORE/CAP_SYS_ADMIN: %s", q.file,
				    q.have_tid ? "choosing the PID" : "a new PID namespace", strerror(err));
		} else {
			throw_coded(env, errno_name(err), "spawn %s: clone3 failed: %s", q.file, strerror(err));
		}
		goto fail;
	}
	pid_t pid = (pid_t)r;
	reaper_note_spawn();

	struct child_report rep;
	ssize_t n;
	size_t got = 0;
	do {
		n = read(pfd[0], (char *)&rep + got, sizeof rep - got);
		if (n > 0)
			got += (size_t)n;
	} while ((n < 0 && errno == EINTR) || (n > 0 && got < sizeof rep));
	err = n < 0 ? errno : 0;
	close(pfd[0]);
	pfd[0] = -1;

	if (got == 0 && n == 0) {
		NAPI_CALL(env, napi_create_int32(env, pid, &result));
		spawn_req_free(&q);
		return result;
	}

	/* The child failed (or we could not hear from it): make sure it is
	 * gone and reaped (unless the reaper thread got it first). */
	if (got != sizeof rep)
		kill(pid, SIGKILL);
	{
		int st;
		pid_t w;
		do
			w = waitpid(pid, &st, __WALL);
		while (w < 0 && errno == EINTR);
	}
	if (got != sizeof rep) {
		throw_coded(env, errno_name(err ? err : EIO), "spawn %s: lost contact with the child: %s", q.file,
			    strerror(err ? err : EIO));
		goto fail;
	}
	switch (rep.stage) {
	case STAGE_CHDIR:
		throw_coded(env, errno_name(rep.err), "spawn %s: cannot change directory to %s: %s", q.file,
			    q.cwd ? q.cwd : "?", strerror(rep.err));
		break;
	case STAGE_FD:
		throw_coded(env, errno_name(rep.err), "spawn %s: cannot pass descriptor %d as the child's %d: %s",
			    q.file, rep.arg >= 0 && rep.arg < q.nfds ? q.fds[rep.arg] : -1, rep.arg,
			    strerror(rep.err));
		break;
	case STAGE_EXEC:
		throw_coded(env, errno_name(rep.err), "cannot execute %s: %s", q.file, strerror(rep.err));
		break;
	case STAGE_PROC:
		throw_coded(env, errno_name(rep.err), "spawn %s: cannot %s in the new namespace: %s", q.file,
			    rep.arg ? "mount /proc" : "make the mounts private", strerror(rep.err));
		break;
	case STAGE_USERNS:
		throw_coded(env, errno_name(rep.err), "spawn %s: cannot keep the capabilities a restore needs in the new user namespace: %s",
			    q.file, strerror(rep.err));
		break;
	default:
		throw_coded(env, errno_name(rep.err), "spawn %s: setting up the child failed: %s", q.file,
			    strerror(rep.err));
		break;
	}
fail:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (idsync[0] >= 0)
		close(idsync[0]);
	if (idsync[1] >= 0)
		close(idsync[1]);
	spawn_req_free(&q);
	return NULL;
}

static napi_value js_set_child_subreaper(napi_env env, napi_callback_info info)
{
	(void)info;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(err));
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* signal watchers (libuv)                                             */

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

static napi_value js_watch_signal(napi_env env, napi_callback_info info)
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

static napi_value js_unwatch_signal(napi_env env, napi_callback_info info)
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

/* ------------------------------------------------------------------ */
/* crc32c                                                              */

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

static napi_value js_crc32c(napi_env env, napi_callback_info info)
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
static napi_value js_crc32c_file(napi_env env, napi_callback_info info)
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

/* ------------------------------------------------------------------ */
/* abstract Unix sockets, addressed by their exact length               */

static bool abstract_addr(napi_env env, napi_value v, struct sockaddr_un *a, socklen_t *len, char **name)
{
	*name = dup_string(env, v, "socket name");
	if (!*name)
		return false;
	size_t n = strlen(*name);
	if (n == 0 || n + 1 > sizeof a->sun_path) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "abstract socket name must be 1 to 107 bytes");
		return false;
	}
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path + 1, *name, n); /* sun_path[0] = 0: abstract */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	return true;
}

static napi_value unix_socket(napi_env env, napi_callback_info info, bool listening)
{
	size_t argc = 2;
	napi_value argv[2], result = NULL;
	struct sockaddr_un a;
	socklen_t len;
	char *name = NULL;
	int fd = -1, err;
	int64_t backlog = 64;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "a socket name is required");
		return NULL;
	}
	if (!abstract_addr(env, argv[0], &a, &len, &name))
		goto fail;
	if (listening && argc >= 2) {
		napi_valuetype t;
		NAPI_CALL(env, napi_typeof(env, argv[1], &t));
		if (t != napi_undefined && !get_int(env, argv[1], "backlog", 1, 65535, &backlog))
			goto fail;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		throw_coded(env, errno_name(err), "socket: %s", strerror(err));
		goto fail;
	}
	if (listening) {
		if (bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, (int)backlog) < 0) {
			err = errno;
			throw_coded(env, errno_name(err), "cannot listen on @%s: %s", name, strerror(err));
			goto fail;
		}
	} else {
		int r;
		do
			r = connect(fd, (struct sockaddr *)&a, len);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			err = errno;
			throw_coded(env, errno_name(err), "cannot connect to @%s: %s", name, strerror(err));
			goto fail;
		}
	}
	NAPI_CALL(env, napi_create_int32(env, fd, &result));
	free(name);
	return result;
fail:
	if (fd >= 0)
		close(fd);
	free(name);
	return NULL;
}

static napi_value js_unix_listen(napi_env env, napi_callback_info info)
{
	return unix_socket(env, info, true);
}

static napi_value js_unix_connect(napi_env env, napi_callback_info info)
{
	return unix_socket(env, info, false);
}

/* ------------------------------------------------------------------ */
/* kcmp: shared open file descriptions across processes                */

#ifndef SYS_kcmp
#define SYS_kcmp 312
#endif
#define CK_KCMP_FILE 0
#define CK_KCMP_VM 1
#define CK_KCMP_FILES 2

static napi_value js_kcmp_file(napi_env env, napi_callback_info info)
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
static napi_value js_try_lock_exclusive(napi_env env, napi_callback_info info)
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
static napi_value js_ask_to_join(napi_env env, napi_callback_info info)
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
/* sendWithFd: a line to a shim with a descriptor attached               */

/* Sends a line on a connected Unix socket in one sendmsg, with fd attached
 * (SCM_RIGHTS): the image file ckrun created for a process, which may no
 * longer be able to create files in the directory itself. Returns the
 * bytes sent (the caller writes the rest of a partly sent line). */
static napi_value js_send_with_fd(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	int64_t sock, fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 3) {
		throw_type(env, "sendWithFd(socket, line, fd): three arguments are required");
		return NULL;
	}
	if (!get_int(env, argv[0], "sendWithFd: socket", 0, INT_MAX, &sock) ||
	    !get_int(env, argv[2], "sendWithFd: fd", 0, INT_MAX, &fd))
		return NULL;
	char *line = dup_string(env, argv[1], "sendWithFd: line");
	if (!line)
		return NULL;
	size_t len = strlen(line);
	struct iovec iov = { line, len };
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg;
	memset(&msg, 0, sizeof msg);
	memset(&ctl, 0, sizeof ctl);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = &ctl;
	msg.msg_controllen = sizeof ctl;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	int one = (int)fd;
	memcpy(CMSG_DATA(c), &one, sizeof one);
	ssize_t r;
	do
		r = sendmsg((int)sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	int err = errno;
	free(line);
	if (r < 0) {
		throw_coded(env, errno_name(err), "sendWithFd: %s", strerror(err));
		return NULL;
	}
	napi_value result;
	NAPI_CALL(env, napi_create_int64(env, (int64_t)r, &result));
	return result;
fail:
	return NULL;
}

/* ------------------------------------------------------------------ */
/* unixPeers: the client ends of the connections ckrun accepted         */

/* A connection accepted on a listening socket carries the listener's
 * address, so a sock_diag dump of every Unix socket with its name and its
 * peer finds, for the abstract name, the inode of each connected client's
 * socket: what /proc/PID/fd/N of the shim's connection links to. */
static napi_value js_unix_peers(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result = NULL;
	char *name = NULL;
	int fd = -1, err = 0;
	uint32_t *peers = NULL;
	size_t npeers = 0, cap = 0;
	static char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		throw_type(env, "unixPeers(name): a socket name is required");
		return NULL;
	}
	if (!(name = dup_string(env, argv[0], "unixPeers: name")))
		return NULL;
	size_t nlen = strlen(name);
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		err = errno;
		throw_coded(env, errno_name(err), "sock_diag: socket: %s", strerror(err));
		goto fail;
	}
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} q;
	memset(&q, 0, sizeof q);
	q.nlh.nlmsg_len = sizeof q;
	q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.nlh.nlmsg_seq = 1;
	q.req.sdiag_family = AF_UNIX;
	q.req.udiag_states = 1u << 1; /* TCP_ESTABLISHED */
	q.req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER;
	struct sockaddr_nl nladdr = { .nl_family = AF_NETLINK };
	ssize_t sent;
	do
		sent = sendto(fd, &q, sizeof q, 0, (struct sockaddr *)&nladdr, sizeof nladdr);
	while (sent < 0 && errno == EINTR);
	if (sent < 0) {
		err = errno;
		throw_coded(env, errno_name(err), "sock_diag: send: %s", strerror(err));
		goto fail;
	}
	for (bool done = false; !done;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			throw_coded(env, errno_name(err), "sock_diag: recv: %s", strerror(err));
			goto fail;
		}
		if (n == 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				err = e->error < 0 ? -e->error : EPROTO;
				throw_coded(env, errno_name(err), "sock_diag: %s", strerror(err));
				goto fail;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
				continue;
			struct unix_diag_msg *m = NLMSG_DATA(h);
			size_t alen = h->nlmsg_len - NLMSG_LENGTH(sizeof *m);
			bool named = false;
			uint32_t peer = 0;
			for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				if (a->rta_type == UNIX_DIAG_NAME) {
					const char *nm = RTA_DATA(a);
					size_t l = RTA_PAYLOAD(a);
					named = l == nlen + 1 && nm[0] == 0 && memcmp(nm + 1, name, nlen) == 0;
				} else if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
					memcpy(&peer, RTA_DATA(a), sizeof peer);
				}
			}
			if (!named || peer == 0)
				continue;
			if (npeers == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				uint32_t *np = realloc(peers, ncap * sizeof *np);
				if (!np) {
					throw_coded(env, "ENOMEM", "unixPeers: out of memory");
					goto fail;
				}
				peers = np;
				cap = ncap;
			}
			peers[npeers++] = peer;
		}
	}
	NAPI_CALL(env, napi_create_array_with_length(env, npeers, &result));
	for (size_t i = 0; i < npeers; i++) {
		napi_value x;
		NAPI_CALL(env, napi_create_uint32(env, peers[i], &x));
		NAPI_CALL(env, napi_set_element(env, result, (uint32_t)i, x));
	}
	close(fd);
	free(peers);
	free(name);
	return result;
fail:
	if (fd >= 0)
		close(fd);
	free(peers);
	free(name);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* peer credentials of a Unix socket                                    */

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* The descriptor argument of peerCred / peerAlive. */
static bool get_fd_arg(napi_env env, napi_callback_info info, const char *what, int *fd)
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

static bool set_int_prop(napi_env env, napi_value obj, const char *name, int64_t v)
{
	napi_value x;
	return napi_create_int64(env, v, &x) == napi_ok && napi_set_named_property(env, obj, name, x) == napi_ok;
}

/* SO_PEERCRED of a connected Unix socket: who made the other end (its
 * PID in our PID namespace, 0 when it is not visible here; its user and
 * group in our user namespace), as the kernel recorded it at connect()
 * or listen(). */
static napi_value js_peer_cred(napi_env env, napi_callback_info info)
{
	int fd;
	struct ucred cr;
	socklen_t len = sizeof cr;
	napi_value result = NULL;
	if (!get_fd_arg(env, info, "peerCred", &fd))
		return NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "getsockopt(%d, SO_PEERCRED): %s", fd, strerror(err));
		return NULL;
	}
	NAPI_CALL(env, napi_create_object(env, &result));
	if (!set_int_prop(env, result, "pid", cr.pid) || !set_int_prop(env, result, "uid", cr.uid) ||
	    !set_int_prop(env, result, "gid", cr.gid)) {
		throw_napi(env, "peerCred: building the result");
		return NULL;
	}
	return result;
fail:
	return NULL;
}

/* Whether the process that made the other end of a Unix socket still
 * runs: its pidfd (SO_PEERPIDFD) is not readable. A check of /proc/PID
 * followed by this one was about that very process, not about a later one
 * that got its PID. True when the kernel cannot tell (before Linux 6.5). */
static napi_value js_peer_alive(napi_env env, napi_callback_info info)
{
	int fd, pidfd = -1;
	socklen_t len = sizeof pidfd;
	bool alive = true;
	napi_value result = NULL;
	if (!get_fd_arg(env, info, "peerAlive", &fd))
		return NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
		struct pollfd p = { pidfd, POLLIN, 0 };
		int r;
		do
			r = poll(&p, 1, 0);
		while (r < 0 && errno == EINTR);
		alive = r == 0;
		close(pidfd);
	} else if (errno == ESRCH) {
		alive = false; /* already reaped */
	}
	NAPI_CALL(env, napi_get_boolean(env, alive, &result));
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
static napi_value js_watch_exit(napi_env env, napi_callback_info info)
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
static napi_value js_unwatch_exit(napi_env env, napi_callback_info info)
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
static napi_value js_signal_watched(napi_env env, napi_callback_info info)
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

/* ------------------------------------------------------------------ */

NAPI_MODULE_INIT()
{
	napi_property_descriptor props[] = {
		{ "spawn", NULL, js_spawn, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "setChildSubreaper", NULL, js_set_child_subreaper, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "onChildExit", NULL, js_on_child_exit, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "watchSignal", NULL, js_watch_signal, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unwatchSignal", NULL, js_unwatch_signal, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "crc32c", NULL, js_crc32c, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "crc32cFile", NULL, js_crc32c_file, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unixListen", NULL, js_unix_listen, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unixConnect", NULL, js_unix_connect, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "kcmpFile", NULL, js_kcmp_file, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unixPeers", NULL, js_unix_peers, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "askToJoin", NULL, js_ask_to_join, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "tryLockExclusive", NULL, js_try_lock_exclusive, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "sendWithFd", NULL, js_send_with_fd, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "peerCred", NULL, js_peer_cred, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "peerAlive", NULL, js_peer_alive, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "watchExit", NULL, js_watch_exit, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unwatchExit", NULL, js_unwatch_exit, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "signalWatched", NULL, js_signal_watched, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
		return NULL;
	return exports;
}
