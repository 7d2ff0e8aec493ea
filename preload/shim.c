/* The shim's entry points: joining the session at load time, and the
 * libc calls it must see.
 *
 * Wrapped, and why:
 *  - sigaction, signal, sysv_signal, bsd_signal, sigset: the internal
 *    signal is ours; the program's own handler for that number is kept
 *    virtually and called for signals that are not checkpoint requests.
 *  - sigprocmask, pthread_sigmask, sigsuspend, sigwait, sigwaitinfo,
 *    sigtimedwait, signalfd: the internal signal can never be blocked or
 *    taken away by the program.
 *  - close, close_range, closefrom, dup2, dup3: the connection to ckrun
 *    survives programs that close or overwrite every descriptor.
 *  - execve, execv, execvp, execvpe, execl, execle, execlp, fexecve,
 *    execveat, posix_spawn, posix_spawnp: a program exec'd in the session
 *    gets the shim and the session's variables back in its environment.
 *  - madvise: memory marked MADV_DONTFORK or MADV_WIPEONFORK would not be
 *    seen as it is by the forked writer; the checkpoint then looks for such
 *    regions and lifts the marks for the moment of the fork.
 *  - getsockopt (SO_PEERCRED): a Unix socket a restart made again names
 *    its original peer, not the restorer (peercred.c).
 *  - open, openat, creat (and their 64 and fortified forms), fopen,
 *    freopen: a regular file opened for writing is told to ckrun, which
 *    rolls it back at restart even when the program closed it before the
 *    checkpoint (written.c).
 *  - inotify_add_watch: the path of each watch is recorded for the
 *    checkpoint, which cannot always find it from the kernel (events.c).
 *  - prctl (PR_SET_SECCOMP, PR_SET_PTRACER, PR_SET_IO_FLUSHER,
 *    PR_SET_SYSCALL_USER_DISPATCH), and syscall() (resumed by syscalls.c)
 *    for those and the AIO calls: seccomp filters, AIO contexts and the
 *    settings the kernel does not show are recorded (seccomp.c, aio.c,
 *    attrs.c).
 * Each wrapper does one comparison on its fast path. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ckrun.h"
#include "wire.h"
#include "sys.h"

CK_HIDDEN extern struct sigaction ck_virtual_action;
CK_HIDDEN extern int ck_write_sync;
static char shim_path[4096]; /* for LD_PRELOAD in the environments of exec'd programs */

/* Present only in the restore host, which must not join a session. */
extern int ckrun_restore_host __attribute__((weak));

static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static int (*real_sigprocmask)(int, const sigset_t *, sigset_t *);
static int (*real_pthread_sigmask)(int, const sigset_t *, sigset_t *);
static int (*real_sigsuspend)(const sigset_t *);
static int (*real_sigwait)(const sigset_t *, int *);
static int (*real_sigwaitinfo)(const sigset_t *, siginfo_t *);
static int (*real_sigtimedwait)(const sigset_t *, siginfo_t *, const struct timespec *);
static int (*real_signalfd)(int, const sigset_t *, int);
static int (*real_inotify_add_watch)(int, const char *, uint32_t);
static sighandler_t (*real_signal)(int, sighandler_t);
static sighandler_t (*real_sysv_signal)(int, sighandler_t);
static sighandler_t (*real_bsd_signal)(int, sighandler_t);
static sighandler_t (*real_sigset)(int, sighandler_t);
static int (*real_close)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real___openat_2)(int, const char *, int);
static int (*real___openat64_2)(int, const char *, int);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real_mkstemp)(char *);
static int (*real_mkstemp64)(char *);
static int (*real_mkostemp)(char *, int);
static int (*real_mkostemp64)(char *, int);
static int (*real_mkstemps)(char *, int);
static int (*real_mkstemps64)(char *, int);
static int (*real_mkostemps)(char *, int, int);
static int (*real_mkostemps64)(char *, int, int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_symlink)(const char *, const char *);
static int (*real_symlinkat)(const char *, int, const char *);
static int (*real_link)(const char *, const char *);
static int (*real_linkat)(int, const char *, int, const char *, int);
static int (*real_mknod)(const char *, mode_t, dev_t);
static int (*real_mknodat)(int, const char *, mode_t, dev_t);
static int (*real_mkfifo)(const char *, mode_t);
static int (*real_mkfifoat)(int, const char *, mode_t);
static FILE *(*real_fopen)(const char *, const char *);
static FILE *(*real_fopen64)(const char *, const char *);
static FILE *(*real_freopen)(const char *, const char *, FILE *);
static FILE *(*real_freopen64)(const char *, const char *, FILE *);
static int (*real_close_range)(unsigned, unsigned, int);
static void (*real_closefrom)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_madvise)(void *, size_t, int);
static int (*real_getsockopt)(int, int, int, void *, socklen_t *);
static int (*real_prctl)(int, ...);
static int (*real_execve)(const char *, char *const[], char *const[]);
static int (*real_execvpe)(const char *, char *const[], char *const[]);
static int (*real_fexecve)(int, char *const[], char *const[]);
static int (*real_posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
			       char *const[], char *const[]);
static int (*real_posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
				char *const[], char *const[]);

static int (*real_shmget)(key_t, size_t, int);
static void *(*real_shmat)(int, const void *, int);
static int (*real_shmctl)(int, int, struct shmid_ds *);
static int (*real_semget)(key_t, int, int);
static int (*real_semctl)(int, int, int, ...);
static int (*real_msgget)(key_t, int);
static int (*real_msgctl)(int, int, struct msqid_ds *);

#define RESOLVE(name) (real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name))

static void resolve_all(void)
{
	RESOLVE(sigaction);
	RESOLVE(sigprocmask);
	RESOLVE(pthread_sigmask);
	RESOLVE(sigsuspend);
	RESOLVE(sigwait);
	RESOLVE(sigwaitinfo);
	RESOLVE(sigtimedwait);
	RESOLVE(signalfd);
	RESOLVE(inotify_add_watch);
	RESOLVE(signal);
	RESOLVE(sysv_signal);
	RESOLVE(bsd_signal);
	RESOLVE(sigset);
	RESOLVE(close);
	RESOLVE(open);
	RESOLVE(open64);
	RESOLVE(openat);
	RESOLVE(openat64);
	RESOLVE(__open_2);
	RESOLVE(__open64_2);
	RESOLVE(__openat_2);
	RESOLVE(__openat64_2);
	RESOLVE(creat);
	RESOLVE(creat64);
	RESOLVE(mkstemp);
	RESOLVE(mkstemp64);
	RESOLVE(mkostemp);
	RESOLVE(mkostemp64);
	RESOLVE(mkstemps);
	RESOLVE(mkstemps64);
	RESOLVE(mkostemps);
	RESOLVE(mkostemps64);
	RESOLVE(rename);
	RESOLVE(renameat);
	RESOLVE(renameat2);
	RESOLVE(mkdir);
	RESOLVE(mkdirat);
	RESOLVE(symlink);
	RESOLVE(symlinkat);
	RESOLVE(link);
	RESOLVE(linkat);
	RESOLVE(mknod);
	RESOLVE(mknodat);
	RESOLVE(mkfifo);
	RESOLVE(mkfifoat);
	RESOLVE(fopen);
	RESOLVE(fopen64);
	RESOLVE(freopen);
	RESOLVE(freopen64);
	RESOLVE(close_range);
	RESOLVE(closefrom);
	RESOLVE(dup2);
	RESOLVE(dup3);
	RESOLVE(madvise);
	RESOLVE(getsockopt);
	RESOLVE(prctl);
	RESOLVE(execve);
	RESOLVE(execvpe);
	RESOLVE(fexecve);
	RESOLVE(posix_spawn);
	RESOLVE(posix_spawnp);
	RESOLVE(shmget);
	RESOLVE(shmat);
	RESOLVE(shmctl);
	RESOLVE(semget);
	RESOLVE(semctl);
	RESOLVE(msgget);
	RESOLVE(msgctl);
}

/* A wrapper may run before our constructor (another library's). */
#define REAL(name) (real_##name ? real_##name : (resolve_all(), real_##name))

/* ---- joining the session ---- */

static void parse_stdio_ids(const char *s)
{
	for (int k = 0; k < 3 && s && *s; k++) {
		uint64_t dev, ino;
		if (!ck_parse_dec(&s, &dev) || *s++ != ':' || !ck_parse_dec(&s, &ino))
			return;
		ck_session.stdio_dev[k] = dev;
		ck_session.stdio_ino[k] = ino;
		if (*s == ',')
			s++;
		if (k == 2)
			ck_session.have_stdio = 1;
	}
}

__attribute__((constructor)) static void ck_init(void)
{
	resolve_all();
	ck_syscalls_resolve();
	if (&ckrun_restore_host)
		return;
	const char *sock = getenv("CKRUN_SOCK");
	if (!sock || !*sock)
		return;
	const char *sig = getenv("CKRUN_SIGNAL");
	if (sig && *sig) {
		int v = atoi(sig);
		if (v >= SIGRTMIN && v <= SIGRTMAX)
			ck_session.sig = v;
	}
	parse_stdio_ids(getenv("CKRUN_STDIO"));
	const char *root = getenv("CKRUN_ROOT");
	if (root && ck_parse_dec(&root, &ck_session.root_dev) && *root++ == ':' && ck_parse_dec(&root, &ck_session.root_ino))
		ck_session.have_root = 1;
	const char *tr = getenv("CKRUN_TRACE");
	ck_session.trace = tr && *tr && *tr != '0';
	const char *sync = getenv("CKRUN_SYNC_CHECKPOINT");
	if (sync && *sync && *sync != '0')
		ck_write_sync = 1;
	strncpy(ck_session.sock, sock, sizeof ck_session.sock - 1);
	/* where the shim is: its writable data (written while an image is
	 * being written) and its whole range (stored in every image, so an
	 * image does not need this very build of ckrun to restart) */
	struct ck_self self;
	if (ck_self_find(&self)) {
		ck_session.rw_start = self.rw_start;
		ck_session.rw_end = self.rw_end;
		ck_session.lo = self.lo;
		ck_session.hi = self.hi;
		if (self.path && self.path[0] == '/')
			strncpy(shim_path, self.path, sizeof shim_path - 1);
	}

	int fd = ck_session_connect(sock);
	if (fd < 0)
		return; /* no coordinator: run as if not under ckrun */
	ck_session.ctl_fd = fd;
	ck_session.self_pid = (int)ck_getpid();
	ck_install_handler();
	ck_session.active = 1;
	ck_calls_enabled = 1;
	if (ck_arm_async(fd, ck_session.sig, (int)ck_getpid()) != 0) {
		ck_close(fd);
		ck_session.ctl_fd = -1;
		ck_session.active = 0;
		return;
	}
	pthread_atfork(0, 0, ck_session_forked_child);
	ck_hold_init(getenv("CKRUN_HOLD_SIGNALS"), REAL(sigaction));
	ck_session_hello();
	/* ckrun's parent-death signal ended the program had ckrun died before
	 * this connection existed; from now on the connection's hangup tells
	 * (a signal to the whole process could interrupt any thread's call) */
	int pdeath = 0;
	if (ck_prctl(PR_GET_PDEATHSIG, (long)&pdeath, 0, 0, 0) == 0 && pdeath == ck_session.sig)
		ck_prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
}

/* ---- exec: the shim stays in the environment ---- */

static int env_is(const char *entry, const char *name)
{
	size_t n = strlen(name);
	return !strncmp(entry, name, n) && entry[n] == '=';
}

static int preload_has_shim(const char *value)
{
	size_t n = strlen(shim_path);
	for (const char *p = value; *p;) {
		if (!strncmp(p, shim_path, n) && (p[n] == 0 || p[n] == ':' || p[n] == ' '))
			return 1;
		while (*p && *p != ':' && *p != ' ')
			p++;
		while (*p == ':' || *p == ' ')
			p++;
	}
	return 0;
}

/* Copies envp into out (room for n + 6 entries) with the session's
 * variables put back. No allocation (this may run in a vfork child):
 * new strings go into buf. */
static char *const *session_env(char *const *envp, const char **out, char *buf, size_t cap)
{
	struct ck_str b;
	size_t k = 0;
	const char *preload = 0;
	ck_str_init(&b, buf, cap);
	for (char *const *e = envp; e && *e; e++) {
		if (env_is(*e, "CKRUN_SOCK") || env_is(*e, "CKRUN_STDIO") || env_is(*e, "CKRUN_SIGNAL") ||
		    env_is(*e, "CKRUN_HOLD_SIGNALS"))
			continue;
		if (env_is(*e, "LD_PRELOAD")) {
			preload = *e + 11;
			continue;
		}
		out[k++] = *e;
	}
	const char *start = b.buf + b.len;
	if (preload && preload_has_shim(preload)) {
		ck_str_add(&b, "LD_PRELOAD=");
		ck_str_add(&b, preload);
	} else {
		ck_str_add(&b, "LD_PRELOAD=");
		ck_str_add(&b, shim_path);
		if (preload && *preload) {
			ck_str_add(&b, ":");
			ck_str_add(&b, preload);
		}
	}
	out[k++] = start;
	b.len++; /* keep the NUL */
	start = b.buf + b.len;
	ck_str_add(&b, "CKRUN_SOCK=");
	ck_str_add(&b, ck_session.sock);
	out[k++] = start;
	b.len++;
	start = b.buf + b.len;
	ck_str_add(&b, "CKRUN_SIGNAL=");
	ck_str_dec(&b, ck_session.sig);
	out[k++] = start;
	b.len++;
	if (ck_session.have_stdio) {
		start = b.buf + b.len;
		ck_str_add(&b, "CKRUN_STDIO=");
		for (int i = 0; i < 3; i++) {
			if (i)
				ck_str_add(&b, ",");
			ck_str_udec(&b, ck_session.stdio_dev[i]);
			ck_str_add(&b, ":");
			ck_str_udec(&b, ck_session.stdio_ino[i]);
		}
		out[k++] = start;
		b.len++;
	}
	uint64_t held = ck_hold_mask();
	if (held) {
		start = b.buf + b.len;
		ck_str_add(&b, "CKRUN_HOLD_SIGNALS=");
		for (int sig = 1, first = 1; sig <= 64; sig++) {
			if (!(held & (1ULL << (sig - 1))))
				continue;
			if (!first)
				ck_str_add(&b, ",");
			ck_str_dec(&b, sig);
			first = 0;
		}
		out[k++] = start;
		b.len++;
	}
	out[k] = 0;
	return (char *const *)out;
}

static size_t env_count(char *const *envp)
{
	size_t n = 0;
	while (envp && envp[n])
		n++;
	return n;
}

/* In a session, every exec'd program gets the shim again. */
#define WITH_SESSION_ENV(envp, fixed)                                                                \
	const char *fixed##_v[ck_session.active && shim_path[0] ? env_count(envp) + 7 : 1];          \
	char fixed##_buf[ck_session.active && shim_path[0] ? 8192 + sizeof shim_path : 1];           \
	char *const *fixed = ck_session.active && shim_path[0]                                       \
				     ? session_env(envp, fixed##_v, fixed##_buf, sizeof fixed##_buf) \
				     : (envp)

CK_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	WITH_SESSION_ENV(envp, env);
	return REAL(execve)(path, argv, env);
}

CK_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	WITH_SESSION_ENV(envp, env);
	return REAL(execvpe)(file, argv, env);
}

CK_EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

CK_EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

CK_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	WITH_SESSION_ENV(envp, env);
	return REAL(fexecve)(fd, argv, env);
}

CK_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
	WITH_SESSION_ENV(envp, env);
	return (int)syscall(SYS_execveat, dirfd, path, argv, env, flags);
}

/* execl, execle, execlp: the arguments gathered on the stack */
#define GATHER_ARGS(first, ap, argv)                       \
	size_t n_##argv = 1;                               \
	va_start(ap, first);                               \
	while (va_arg(ap, const char *))                   \
		n_##argv++;                                \
	va_end(ap);                                        \
	const char *argv[n_##argv + 1];                    \
	argv[0] = first;                                   \
	va_start(ap, first);                               \
	for (size_t i_ = 1; i_ <= n_##argv; i_++)          \
		argv[i_] = i_ < n_##argv ? va_arg(ap, const char *) : 0

CK_EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	GATHER_ARGS(arg, ap, argv);
	va_end(ap);
	return execve(path, (char *const *)argv, environ);
}

CK_EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	GATHER_ARGS(arg, ap, argv);
	va_end(ap);
	return execvpe(file, (char *const *)argv, environ);
}

CK_EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	GATHER_ARGS(arg, ap, argv);
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, (char *const *)argv, envp);
}

CK_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
			  char *const argv[], char *const envp[])
{
	WITH_SESSION_ENV(envp, env);
	return REAL(posix_spawn)(pid, path, fa, at, argv, env);
}

CK_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
			   char *const argv[], char *const envp[])
{
	WITH_SESSION_ENV(envp, env);
	return REAL(posix_spawnp)(pid, file, fa, at, argv, env);
}

/* ---- signal wrappers ---- */

static int ours(int sig)
{
	return ck_session.active && sig == ck_session.sig;
}

static const sigset_t *without_ours(const sigset_t *set, sigset_t *copy)
{
	if (!ck_session.active || !set || !sigismember(set, ck_session.sig))
		return set;
	*copy = *set;
	sigdelset(copy, ck_session.sig);
	return copy;
}

CK_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (ck_hold_has(sig))
		return ck_hold_sigaction(sig, act, old, REAL(sigaction));
	if (ours(sig)) {
		if (old)
			*old = ck_virtual_action;
		if (act)
			ck_virtual_action = *act;
		return 0;
	}
	struct sigaction copy;
	if (act && ck_session.active && sigismember(&act->sa_mask, ck_session.sig)) {
		copy = *act;
		sigdelset(&copy.sa_mask, ck_session.sig);
		act = &copy;
	}
	return REAL(sigaction)(sig, act, old);
}

static sighandler_t virtual_signal(int sig, sighandler_t h, int flags)
{
	struct sigaction a, old;
	memset(&a, 0, sizeof a);
	a.sa_handler = h;
	a.sa_flags = flags;
	sigaction(sig, &a, &old);
	return old.sa_handler;
}

CK_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	return ours(sig) || ck_hold_has(sig) ? virtual_signal(sig, h, SA_RESTART) : REAL(signal)(sig, h);
}

CK_EXPORT sighandler_t sysv_signal(int sig, sighandler_t h)
{
	return ours(sig) || ck_hold_has(sig) ? virtual_signal(sig, h, SA_RESETHAND | SA_NODEFER) : REAL(sysv_signal)(sig, h);
}

CK_EXPORT sighandler_t bsd_signal(int sig, sighandler_t h)
{
	return ours(sig) || ck_hold_has(sig) ? virtual_signal(sig, h, SA_RESTART) : REAL(bsd_signal)(sig, h);
}

CK_EXPORT sighandler_t sigset(int sig, sighandler_t h)
{
	return ours(sig) || (ck_hold_has(sig) && h != SIG_HOLD) ? virtual_signal(sig, h, 0) : REAL(sigset)(sig, h);
}

CK_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;
	return REAL(sigprocmask)(how, how == SIG_UNBLOCK ? set : without_ours(set, &copy), old);
}

CK_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;
	return REAL(pthread_sigmask)(how, how == SIG_UNBLOCK ? set : without_ours(set, &copy), old);
}

CK_EXPORT int sigsuspend(const sigset_t *mask)
{
	sigset_t copy;
	return ck_wait_sigsuspend(REAL(sigsuspend), without_ours(mask, &copy));
}

CK_EXPORT int sigwait(const sigset_t *set, int *sig)
{
	sigset_t copy;
	return REAL(sigwait)(without_ours(set, &copy), sig);
}

CK_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
	sigset_t copy;
	return ck_wait_sigtimedwait(REAL(sigtimedwait), without_ours(set, &copy), info, 0);
}

CK_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout)
{
	sigset_t copy;
	return ck_wait_sigtimedwait(REAL(sigtimedwait), without_ours(set, &copy), info, timeout);
}

CK_EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
	sigset_t copy;
	return REAL(signalfd)(fd, without_ours(mask, &copy), flags);
}

/* ---- descriptor wrappers ---- */

/* The path of each watch, for the checkpoint (events.c says why). Costs
 * nothing but a copy on success, plus one getcwd for a relative path. */
CK_EXPORT int inotify_add_watch(int fd, const char *path, uint32_t mask)
{
	int wd = REAL(inotify_add_watch)(fd, path, mask);
	if (wd >= 0 && path)
		ck_inotify_record(fd, wd, path);
	return wd;
}

/* ---- opens for writing: told to ckrun (written.c) ---- */

static int takes_mode(int flags)
{
	return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE;
}

/* The errno of the open is the program's: telling ckrun uses raw calls. */
#define OPEN_WRAPPER(name)                                                     \
	CK_EXPORT int name(const char *path, int flags, ...)                  \
	{                                                                      \
		mode_t mode = 0;                                               \
		if (takes_mode(flags)) {                                       \
			va_list ap;                                            \
			va_start(ap, flags);                                   \
			mode = va_arg(ap, mode_t);                             \
			va_end(ap);                                            \
		}                                                              \
		int before = ck_written_before(AT_FDCWD, path, flags);         \
		int fd = REAL(name)(path, flags, mode);                        \
		ck_written_note(fd, flags, before);                            \
		return fd;                                                     \
	}
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

#define OPENAT_WRAPPER(name)                                                   \
	CK_EXPORT int name(int dirfd, const char *path, int flags, ...)       \
	{                                                                      \
		mode_t mode = 0;                                               \
		if (takes_mode(flags)) {                                       \
			va_list ap;                                            \
			va_start(ap, flags);                                   \
			mode = va_arg(ap, mode_t);                             \
			va_end(ap);                                            \
		}                                                              \
		int before = ck_written_before(dirfd, path, flags);            \
		int fd = REAL(name)(dirfd, path, flags, mode);                 \
		ck_written_note(fd, flags, before);                            \
		return fd;                                                     \
	}
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

CK_EXPORT int __open_2(const char *path, int flags)
{
	int before = ck_written_before(AT_FDCWD, path, flags);
	int fd = REAL(__open_2)(path, flags);
	ck_written_note(fd, flags, before);
	return fd;
}

CK_EXPORT int __open64_2(const char *path, int flags)
{
	int before = ck_written_before(AT_FDCWD, path, flags);
	int fd = REAL(__open64_2)(path, flags);
	ck_written_note(fd, flags, before);
	return fd;
}

CK_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	int before = ck_written_before(dirfd, path, flags);
	int fd = REAL(__openat_2)(dirfd, path, flags);
	ck_written_note(fd, flags, before);
	return fd;
}

CK_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	int before = ck_written_before(dirfd, path, flags);
	int fd = REAL(__openat64_2)(dirfd, path, flags);
	ck_written_note(fd, flags, before);
	return fd;
}

CK_EXPORT int creat(const char *path, mode_t mode)
{
	int before = ck_written_before(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC);
	int fd = REAL(creat)(path, mode);
	ck_written_note(fd, O_WRONLY | O_CREAT | O_TRUNC, before);
	return fd;
}

CK_EXPORT int creat64(const char *path, mode_t mode)
{
	int before = ck_written_before(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC);
	int fd = REAL(creat64)(path, mode);
	ck_written_note(fd, O_WRONLY | O_CREAT | O_TRUNC, before);
	return fd;
}

/* libc makes these files without going through open(): each is new
 * (O_EXCL), so one a restart from an earlier checkpoint removes. */
#define MKSTEMP_FLAGS (O_RDWR | O_CREAT | O_EXCL)
CK_EXPORT int mkstemp(char *tmpl)
{
	int making = ck_written_making(tmpl);
	int fd = REAL(mkstemp)(tmpl);
	ck_written_note(fd, MKSTEMP_FLAGS, ck_written_made());
	ck_written_making_done(making);
	return fd;
}

CK_EXPORT int mkstemp64(char *tmpl)
{
	int making = ck_written_making(tmpl);
	int fd = REAL(mkstemp64)(tmpl);
	ck_written_note(fd, MKSTEMP_FLAGS, ck_written_made());
	ck_written_making_done(making);
	return fd;
}

CK_EXPORT int mkostemp(char *tmpl, int flags)
{
	int making = ck_written_making(tmpl);
	int fd = REAL(mkostemp)(tmpl, flags);
	ck_written_note(fd, MKSTEMP_FLAGS | flags, ck_written_made());
	ck_written_making_done(making);
	return fd;
}

CK_EXPORT int mkostemp64(char *tmpl, int flags)
{
	int making = ck_written_making(tmpl);
	int fd = REAL(mkostemp64)(tmpl, flags);
	ck_written_note(fd, MKSTEMP_FLAGS | flags, ck_written_made());
	ck_written_making_done(making);
	return fd;
}

CK_EXPORT int mkstemps(char *tmpl, int suffixlen)
{
	int making = ck_written_making(tmpl);
	int fd = REAL(mkstemps)(tmpl, suffixlen);
	ck_written_note(fd, MKSTEMP_FLAGS, ck_written_made());
	ck_written_making_done(making);
	return fd;
}

CK_EXPORT int mkstemps64(char *tmpl, int suffixlen)
{
	int making = ck_written_making(tmpl);
	int fd = REAL(mkstemps64)(tmpl, suffixlen);
	ck_written_note(fd, MKSTEMP_FLAGS, ck_written_made());
	ck_written_making_done(making);
	return fd;
}

CK_EXPORT int mkostemps(char *tmpl, int suffixlen, int flags)
{
	int making = ck_written_making(tmpl);
	int fd = REAL(mkostemps)(tmpl, suffixlen, flags);
	ck_written_note(fd, MKSTEMP_FLAGS | flags, ck_written_made());
	ck_written_making_done(making);
	return fd;
}

CK_EXPORT int mkostemps64(char *tmpl, int suffixlen, int flags)
{
	int making = ck_written_making(tmpl);
	int fd = REAL(mkostemps64)(tmpl, suffixlen, flags);
	ck_written_note(fd, MKSTEMP_FLAGS | flags, ck_written_made());
	ck_written_making_done(making);
	return fd;
}

/* A rename replaces the file at the new name and takes the old name away:
 * both kept as they were at the checkpoint first, and the move told, so
 * that a restart moves the entry back (written.c). */
CK_EXPORT int rename(const char *from, const char *to)
{
	struct ck_moving mv;
	int before = ck_written_moving(&mv, AT_FDCWD, from, AT_FDCWD, to, 0);
	int r = REAL(rename)(from, to);
	if (r != 0 && ck_written_done_before(&mv, AT_FDCWD, to, errno))
		r = 0;
	if (r == 0)
		ck_written_moved(AT_FDCWD, to, before);
	return r;
}

CK_EXPORT int renameat(int fromdir, const char *from, int todir, const char *to)
{
	struct ck_moving mv;
	int before = ck_written_moving(&mv, fromdir, from, todir, to, 0);
	int r = REAL(renameat)(fromdir, from, todir, to);
	if (r != 0 && ck_written_done_before(&mv, todir, to, errno))
		r = 0;
	if (r == 0)
		ck_written_moved(todir, to, before);
	return r;
}

CK_EXPORT int renameat2(int fromdir, const char *from, int todir, const char *to, unsigned flags)
{
	struct ck_moving mv;
	int before = ck_written_moving(&mv, fromdir, from, todir, to, flags);
	int r = REAL(renameat2)(fromdir, from, todir, to, flags);
	if (r != 0 && ck_written_done_before(&mv, todir, to, errno))
		r = 0;
	if (r == 0) {
		ck_written_moved(todir, to, before);
		if (flags & RENAME_EXCHANGE)
			ck_written_moved(fromdir, from, before);
	}
	return r;
}

/* Directories, symbolic links, hard links, FIFOs and device nodes made
 * after a checkpoint are removed by a restart from it, like files
 * (written.c): a job that makes a directory per step would otherwise find
 * it there when it makes it again, and fail. */
CK_EXPORT int mkdir(const char *path, mode_t mode)
{
	int before = ck_written_made();
	int r = REAL(mkdir)(path, mode);
	if (r == 0)
		ck_written_named(AT_FDCWD, path, before);
	return r;
}

CK_EXPORT int mkdirat(int dirfd, const char *path, mode_t mode)
{
	int before = ck_written_made();
	int r = REAL(mkdirat)(dirfd, path, mode);
	if (r == 0)
		ck_written_named(dirfd, path, before);
	return r;
}

CK_EXPORT int symlink(const char *target, const char *path)
{
	int before = ck_written_made();
	int r = REAL(symlink)(target, path);
	if (r == 0)
		ck_written_named(AT_FDCWD, path, before);
	return r;
}

CK_EXPORT int symlinkat(const char *target, int dirfd, const char *path)
{
	int before = ck_written_made();
	int r = REAL(symlinkat)(target, dirfd, path);
	if (r == 0)
		ck_written_named(dirfd, path, before);
	return r;
}

CK_EXPORT int link(const char *from, const char *to)
{
	struct ck_moving mv;
	int before = ck_written_linking(&mv, AT_FDCWD, from, AT_FDCWD, to, 0);
	int r = REAL(link)(from, to);
	if (r != 0 && ck_written_done_before(&mv, AT_FDCWD, to, errno))
		r = 0;
	if (r == 0)
		ck_written_named(AT_FDCWD, to, before);
	return r;
}

CK_EXPORT int linkat(int fromdir, const char *from, int todir, const char *to, int flags)
{
	struct ck_moving mv;
	int before = ck_written_linking(&mv, fromdir, from, todir, to, flags);
	int r = REAL(linkat)(fromdir, from, todir, to, flags);
	if (r != 0 && ck_written_done_before(&mv, todir, to, errno))
		r = 0;
	if (r == 0)
		ck_written_named(todir, to, before);
	return r;
}

CK_EXPORT int mknod(const char *path, mode_t mode, dev_t dev)
{
	int before = ck_written_made();
	int r = REAL(mknod)(path, mode, dev);
	if (r == 0)
		ck_written_named(AT_FDCWD, path, before);
	return r;
}

CK_EXPORT int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev)
{
	int before = ck_written_made();
	int r = REAL(mknodat)(dirfd, path, mode, dev);
	if (r == 0)
		ck_written_named(dirfd, path, before);
	return r;
}

CK_EXPORT int mkfifo(const char *path, mode_t mode)
{
	int before = ck_written_made();
	int r = REAL(mkfifo)(path, mode);
	if (r == 0)
		ck_written_named(AT_FDCWD, path, before);
	return r;
}

CK_EXPORT int mkfifoat(int dirfd, const char *path, mode_t mode)
{
	int before = ck_written_made();
	int r = REAL(mkfifoat)(dirfd, path, mode);
	if (r == 0)
		ck_written_named(dirfd, path, before);
	return r;
}

/* libc's stdio opens its files without going through open(). */
static int stdio_mode_flags(const char *mode)
{
	int flags = O_RDONLY;
	if (!mode)
		return flags;
	if (mode[0] == 'w')
		flags = O_WRONLY | O_CREAT | O_TRUNC;
	else if (mode[0] == 'a')
		flags = O_WRONLY | O_CREAT | O_APPEND;
	for (const char *m = mode + 1; *m && *m != ','; m++)
		if (*m == '+')
			flags = (flags & ~O_ACCMODE) | O_RDWR;
	return flags;
}

static FILE *note_stream(FILE *f, const char *mode, int before)
{
	if (f)
		ck_written_note(fileno(f), stdio_mode_flags(mode), before);
	return f;
}

CK_EXPORT FILE *fopen(const char *path, const char *mode)
{
	int before = ck_written_before(AT_FDCWD, path, stdio_mode_flags(mode));
	return note_stream(REAL(fopen)(path, mode), mode, before);
}

CK_EXPORT FILE *fopen64(const char *path, const char *mode)
{
	int before = ck_written_before(AT_FDCWD, path, stdio_mode_flags(mode));
	return note_stream(REAL(fopen64)(path, mode), mode, before);
}

CK_EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream)
{
	int before = ck_written_before(AT_FDCWD, path, stdio_mode_flags(mode));
	return note_stream(REAL(freopen)(path, mode, stream), mode, before);
}

CK_EXPORT FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
	int before = ck_written_before(AT_FDCWD, path, stdio_mode_flags(mode));
	return note_stream(REAL(freopen64)(path, mode, stream), mode, before);
}

CK_EXPORT int close(int fd)
{
	if (ck_is_session_fd(fd))
		return 0; /* the program believes it closed it; nothing it opens will get this number */
	return REAL(close)(fd);
}

/* The program wants this number: our descriptor moves out of its way. */
static void move_session_fd(int fd)
{
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, fd + 1);
	if (moved < 0)
		return;
	REAL(close)(fd);
	if (fd == ck_session.ctl_fd) {
		ck_session.ctl_fd = moved;
		ck_arm_async(moved, ck_session.sig, ck_session.self_pid);
	} else {
		ck_tracking.uffd = moved;
	}
}

CK_EXPORT int dup2(int oldfd, int newfd)
{
	if (ck_is_session_fd(newfd) && oldfd != newfd)
		move_session_fd(newfd);
	return REAL(dup2)(oldfd, newfd);
}

CK_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (ck_is_session_fd(newfd) && oldfd != newfd)
		move_session_fd(newfd);
	return REAL(dup3)(oldfd, newfd, flags);
}

/* Closes [first, last] except the shim's own descriptors. */
static int close_range_around(unsigned first, unsigned last, int flags)
{
	int keep[2] = {ck_session.ctl_fd, ck_tracking.uffd};
	for (int i = 0; i < 2; i++) {
		int fd = keep[i];
		if (fd < 0 || (unsigned)fd < first || (unsigned)fd > last || !ck_is_session_fd(fd))
			continue;
		int r = (unsigned)fd > first ? close_range_around(first, (unsigned)fd - 1, flags) : 0;
		if (r == 0 && (unsigned)fd < last)
			r = close_range_around((unsigned)fd + 1, last, flags);
		return r;
	}
	return REAL(close_range)(first, last, flags);
}

CK_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	if (flags & CLOSE_RANGE_CLOEXEC)
		return REAL(close_range)(first, last, flags);
	return close_range_around(first, last, flags);
}

CK_EXPORT void closefrom(int lowfd)
{
	if (lowfd >= 0)
		close_range_around((unsigned)lowfd, ~0U, 0);
}

CK_EXPORT int madvise(void *addr, size_t len, int advice)
{
	if (advice == MADV_DONTFORK || advice == MADV_WIPEONFORK)
		ck_fork_flags_used = 1;
	return REAL(madvise)(addr, len, advice);
}

/* SO_PEERCRED of a Unix socket a restart made again names its original
 * peer, not the restorer (peercred.c). */
CK_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	if (level == SOL_SOCKET && name == SO_PEERCRED && ck_peercred_answer(fd, val, len))
		return 0;
	return REAL(getsockopt)(fd, level, name, val, len);
}

/* PR_SET_SECCOMP: the filter is recorded (seccomp.c); PR_SET_PTRACER,
 * PR_SET_IO_FLUSHER, PR_SET_SYSCALL_USER_DISPATCH, which the kernel shows
 * no one, are noted (attrs.c). */
CK_EXPORT int prctl(int option, ...)
{
	va_list ap;
	long a[5] = {option};
	va_start(ap, option);
	for (int i = 1; i < 5; i++)
		a[i] = (long)va_arg(ap, unsigned long);
	va_end(ap);
	if (!ck_prctl_watched(option))
		return REAL(prctl)(option, a[1], a[2], a[3], a[4]);
	ck_attrs_before(SYS_prctl, a);
	int r = REAL(prctl)(option, a[1], a[2], a[3], a[4]);
	int err = errno;
	ck_attrs_after(SYS_prctl, a, r == -1 ? -err : r);
	errno = err;
	return r;
}

/* Resumed when a checkpoint interrupts it (syscalls.c); seccomp filters and
 * AIO contexts made through it are recorded (seccomp.c, aio.c). */
CK_EXPORT long syscall(long nr, ...)
{
	long a[6];
	va_list ap;
	va_start(ap, nr);
	for (int k = 0; k < 6; k++)
		a[k] = va_arg(ap, long);
	va_end(ap);
	int watched = ck_attrs_watches(nr);
	if (watched)
		ck_attrs_before(nr, a);
	long r = ck_syscall_resumed(nr, a);
	if (nr == SYS_rseq)
		ck_rseq_note(a, r);
	if (watched) {
		int err = errno;
		ck_attrs_after(nr, a, r == -1 ? -err : r);
		errno = err;
	}
	return r;
}

/* ---- SysV IPC: the objects the program uses are the session's to save
 * (sysvnote.c, sysv.c) ---- */

CK_EXPORT int shmget(key_t key, size_t size, int flags)
{
	int id = REAL(shmget)(key, size, flags);
	ck_sysv_note(CK_SYSV_SHM, id);
	return id;
}

CK_EXPORT void *shmat(int id, const void *addr, int flags)
{
	ck_sysv_note(CK_SYSV_SHM, id);
	return REAL(shmat)(id, addr, flags);
}

CK_EXPORT int shmctl(int id, int cmd, struct shmid_ds *buf)
{
	int r = REAL(shmctl)(id, cmd, buf);
	/* a segment removed while attached lives on (SHM_DEST) until its last
	 * detach: it stays noted, saved as removed (sysv.c) */
	if (r == 0 && cmd == IPC_RMID) {
		int e = errno;
		struct shmid_ds ds;
		if (REAL(shmctl)(id, IPC_STAT, &ds) != 0 && (errno == EINVAL || errno == EIDRM))
			ck_sysv_forget(CK_SYSV_SHM, id);
		errno = e;
	}
	return r;
}

CK_EXPORT int semget(key_t key, int nsems, int flags)
{
	int id = REAL(semget)(key, nsems, flags);
	ck_sysv_note(CK_SYSV_SEM, id);
	return id;
}

/* The fourth argument, when the command has one, is a union semun passed
 * by value: one word. */
CK_EXPORT int semctl(int id, int num, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	int r = REAL(semctl)(id, num, cmd, arg);
	if (r >= 0 && cmd == IPC_RMID)
		ck_sysv_forget(CK_SYSV_SEM, id);
	else if (r >= 0 && (cmd == SETVAL || cmd == SETALL))
		ck_sysv_undo_clear(id, cmd == SETVAL ? num : -1); /* the kernel resets them */
	else if (r >= 0 && cmd != IPC_INFO && cmd != SEM_INFO && cmd != SEM_STAT && cmd != SEM_STAT_ANY)
		ck_sysv_note(CK_SYSV_SEM, id); /* those take an index, not an id */
	return r;
}

CK_EXPORT int msgget(key_t key, int flags)
{
	int id = REAL(msgget)(key, flags);
	ck_sysv_note(CK_SYSV_MSG, id);
	return id;
}

CK_EXPORT int msgctl(int id, int cmd, struct msqid_ds *buf)
{
	int r = REAL(msgctl)(id, cmd, buf);
	if (r == 0 && cmd == IPC_RMID)
		ck_sysv_forget(CK_SYSV_MSG, id);
	return r;
}
