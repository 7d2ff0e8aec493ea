/* spawn: clone3 with a chosen PID, in new PID, mount and user namespaces
 * if asked, then execve; and the child subreaper. */
#define _GNU_SOURCE
#include "native.h"

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

napi_value js_spawn(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result = NULL;
	struct spawn_req q;
	int pfd[2] = { -1, -1 }, idsync[2] = { -1, -1 };
	sigset_t all, old;
	struct ck_clone_args ca;
	pid_t tid;
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

	tid = (pid_t)q.tid;
	ck_clone_args_child(&ca, (q.newns ? (uint64_t)(CLONE_NEWPID | CLONE_NEWNS) : 0) | (q.newuser ? CLONE_NEWUSER : 0),
			    q.have_tid ? &tid : NULL);

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

napi_value js_set_child_subreaper(napi_env env, napi_callback_info info)
{
	(void)info;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		int err = errno;
		throw_coded(env, errno_name(err), "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(err));
	}
	return NULL;
}
