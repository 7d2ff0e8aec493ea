/* The connection to ckrun: the session's address, whether the listener
 * may have this process, joining (at start, or when ckrun asks a forked
 * child to), leaving, and which descriptors are the shim's own. Raw system
 * calls only: a forked child joins from the signal handler. Below the
 * kinds and the checkpoint, which use it (docs/design.md, "Layers"). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <linux/kcmp.h>

#include "ckrun.h"
#include "sys.h"
#include "wire.h"

/* Whether fd is the userfaultfd that tracks changed pages. Rare paths only. */
static int is_tracking_uffd(int fd)
{
	char link[32];
	return ck_fd_link(fd, link, sizeof link) > 0 && ck_streq(link, "anon_inode:[userfaultfd]");
}

/* The shim's state belongs to the process that joined the session
 * (self_pid). A forked child keeps a stale copy of it until it joins: it
 * closes the descriptors it inherited (below) but does not store anything,
 * because each store to a page still shared with the parent copies that
 * page, and most children never checkpoint. So in a child the numbers in
 * ck_session and ck_tracking may name its own files: code outside a joined
 * process asks these before it trusts them. */
static int holds_session(void)
{
	return ck_session.self_pid == (int)ck_getpid();
}

/* Whether fd is the session connection of holder: ckrun's socket is owned
 * (for its signals) by the process that joined with it. */
/* Whether fd is connected to ckrun's session socket (its peer's address). */
static int connected_to_session(int fd)
{
	struct sockaddr_un want, got;
	unsigned wlen = ck_session_addr(&want, ck_session.sock);
	unsigned glen = sizeof got;
	if (!wlen || CK_SYS3(SYS_getpeername, fd, &got, &glen) != 0 || glen != wlen)
		return 0;
	const unsigned char *a = (const unsigned char *)&want, *b = (const unsigned char *)&got;
	for (unsigned i = 0; i < wlen; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static int is_session_connection(int fd, int holder)
{
	long owner = ck_fcntl(fd, F_GETOWN, 0);
	if (owner == holder)
		return 1;
	/* a holder that has exited already (a parent that forks and exits at
	 * once, before its child runs) owns nothing any more: F_GETOWN says 0,
	 * and the child would keep the connection, and with it ckrun's view of
	 * its parent, for as long as it lives */
	return owner == 0 && connected_to_session(fd);
}

/* kcmp of this process's resource of that type with pid's: 0 when shared. */
static long compare_with(int pid, int type)
{
	return CK_SYS5(SYS_kcmp, ck_getpid(), pid, type, 0, 0);
}

/* Connections of requests to ckrun under way in some thread (written.c's
 * "keep"): the shim's own, like the session's; descriptor + 1, 0: free. */
#define REQUEST_SLOTS 8
static int request_fds[REQUEST_SLOTS];

static int is_request_fd(int fd)
{
	for (int i = 0; i < REQUEST_SLOTS; i++)
		if (fd >= 0 && __atomic_load_n(&request_fds[i], __ATOMIC_RELAXED) == fd + 1)
			return 1;
	return 0;
}

/* A slot for fd, or -1 when every one is taken. */
CK_HIDDEN int ck_session_request_begin(int fd)
{
	for (int i = 0; i < REQUEST_SLOTS; i++) {
		int free_slot = 0;
		if (__atomic_compare_exchange_n(&request_fds[i], &free_slot, fd + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return i;
	}
	return -1;
}

/* Closes fd unless a restore emptied its slot: the number is then not the
 * request's any more. */
CK_HIDDEN void ck_session_request_end(int slot, int fd)
{
	int mine = fd + 1;
	if (__atomic_compare_exchange_n(&request_fds[slot], &mine, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		ck_close(fd);
}

/* In a restored process: the requests' connections were never saved. */
CK_HIDDEN void ck_session_requests_gone(void)
{
	for (int i = 0; i < REQUEST_SLOTS; i++)
		__atomic_store_n(&request_fds[i], 0, __ATOMIC_RELAXED);
}

/* The shim's own descriptors: the connection to ckrun and the userfaultfd
 * that tracks changed pages. In a child that has not joined they are its
 * own copies (it may close them or use their numbers), unless it shares
 * the holder's descriptor table (clone with CLONE_FILES). */
CK_HIDDEN int ck_is_session_fd(int fd)
{
	if (is_request_fd(fd))
		return 1;
	if (fd < 0 || (fd != ck_session.ctl_fd && fd != ck_tracking.uffd))
		return 0;
	return holds_session() || compare_with(ck_session.self_pid, KCMP_FILES) == 0;
}

CK_HIDDEN void ck_session_reply(const char *line)
{
	if (ck_session.ctl_fd >= 0)
		ck_sendto(ck_session.ctl_fd, line, ck_strlen(line), MSG_NOSIGNAL);
}

CK_HIDDEN unsigned ck_session_addr(struct sockaddr_un *a, const char *name)
{
	return ck_abstract_addr(a, name, ck_strlen(name));
}

/* Whether the coordinator at the other end of fd may have this process:
 * it runs as root or as one of this process's own user IDs (real,
 * effective, saved). Anyone can bind an abstract name, and a coordinator
 * can make the process write all of its memory wherever it says.
 * Raw system calls: a forked child connects from a signal handler. */
CK_HIDDEN int ck_coordinator_trusted(int fd)
{
	struct ucred cr;
	unsigned len = sizeof cr;
	unsigned r, e, su;
	if (ck_getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || len != sizeof cr)
		return 0;
	if (CK_SYS3(SYS_getresuid, &r, &e, &su) != 0)
		return 0;
	return cr.uid == 0 || cr.uid == r || cr.uid == e || cr.uid == su;
}

/* Raw system calls only: a forked child connects from a signal handler.
 * A listener of another user is no coordinator: -1, as if none listened. */
CK_HIDDEN int ck_session_connect(const char *name)
{
	struct sockaddr_un a;
	unsigned alen = ck_session_addr(&a, name);
	if (!alen)
		return -EINVAL;
	long fd = CK_SYS3(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return (int)fd;
	long r = CK_SYS3(SYS_connect, fd, &a, alen);
	if (r != 0 || !ck_coordinator_trusted((int)fd)) {
		ck_close((int)fd);
		return r ? (int)r : -EPERM;
	}
	long high = ck_fcntl((int)fd, F_DUPFD_CLOEXEC, CK_CTL_FD_MIN);
	if (high < 0)
		high = ck_fcntl((int)fd, F_DUPFD_CLOEXEC, 3);
	ck_close((int)fd);
	return (int)high;
}

/* ckrun refused this process: it is not of the session (an environment
 * that carried CKRUN_SOCK out of it) or did not join as itself. The
 * connection goes, and the process runs on as if there were no
 * coordinator, rather than take the end of the connection for ckrun's
 * death. From the signal handler. */
CK_HIDDEN void ck_session_refused(void)
{
	int fd = ck_session.ctl_fd;
	ck_session.ctl_fd = -1;
	if (fd >= 0)
		ck_close(fd);
}

/* Requests arriving on the connection raise the internal signal in owner
 * (the process that joined with it). The kernel remembers the descriptor
 * number O_ASYNC was set through (it is si_fd), so this is done again
 * whenever the connection moves. The signal goes to the main thread
 * (its TID is the PID) only: a signal sent to the whole process wakes
 * one thread and may be taken by another, and the woken one's semop or
 * epoll_wait then fails with EINTR without any handler having run, which
 * no wrapper could tell from the program's own signal. */
CK_HIDDEN int ck_arm_async(int fd, int sig, int owner)
{
	struct f_owner_ex own = {F_OWNER_TID, owner};
	if (ck_fcntl(fd, F_SETSIG, sig) != 0 || ck_fcntl(fd, F_SETOWN_EX, (long)&own) != 0)
		return -1;
	long fl = ck_fcntl(fd, F_GETFL, 0);
	if (fl < 0 || ck_fcntl(fd, F_SETFL, fl & ~O_ASYNC) != 0)
		return -1;
	return ck_fcntl(fd, F_SETFL, fl | O_ASYNC) == 0 ? 0 : -1;
}

CK_HIDDEN void ck_session_hello(void)
{
	char hello[64];
	struct ck_str m;
	ck_str_init(&m, hello, sizeof hello);
	ck_str_add(&m, "hello ");
	ck_str_dec(&m, ck_getpid());
	ck_str_add(&m, " ");
	ck_str_dec(&m, CK_SYS0(SYS_getppid));
	ck_str_add(&m, "\n");
	ck_session_reply(hello);
}

/* Runs in the child of fork(): async-signal-safe calls, no stores. The
 * child must not keep its parent's connection (ckrun would not see the
 * parent leave while it lives) nor its userfaultfd; it joins the session
 * only when ckrun asks it to (a checkpoint found it below ckrun), so fork
 * costs no more than it would without ckrun. Its memory is not tracked
 * (fork drops the registrations): its first checkpoint is full. */
CK_HIDDEN void ck_session_forked_child(void)
{
	ck_sysv_forked(); /* the kernel gave the child no SEM_UNDO adjustments */
	/* a join request (our signal) must not come in between: it replaces
	 * the connection, possibly at the same number */
	uint64_t ours = 1ULL << (ck_session.sig - 1), mask;
	ck_rt_sigprocmask(SIG_BLOCK, &ours, &mask);
	int holder = ck_session.self_pid;
	if (holder != (int)ck_getpid()) { /* else a join request came first */
		int holders_child = ck_session.ctl_fd >= 0 && is_session_connection(ck_session.ctl_fd, holder);
		if (holders_child)
			ck_close(ck_session.ctl_fd);
		/* a grandchild's copy of the number was closed (and may be
		 * reused) in its parent; a child whose parent has exited
		 * already is known by the connection it still held */
		if (ck_tracking.uffd >= 0 &&
		    (CK_SYS0(SYS_getppid) == holder || (holders_child && is_tracking_uffd(ck_tracking.uffd))))
			ck_close(ck_tracking.uffd);
	}
	ck_rt_sigprocmask(SIG_SETMASK, &mask, 0);
}

/* A child joins: it makes the shim's state its own (the checkpoint's
 * reader of requests starts afresh, see ck_join_on_request). A child of clone()
 * without CLONE_VM, in which no fork handler ran, still holds copies of
 * its parent's descriptors and closes them here. */
static void take_over_session_state(void)
{
	if (ck_session.ctl_fd >= 0 && is_session_connection(ck_session.ctl_fd, ck_session.self_pid))
		ck_close(ck_session.ctl_fd);
	if (ck_tracking.uffd >= 0 && is_tracking_uffd(ck_tracking.uffd))
		ck_close(ck_tracking.uffd);
	ck_session.ctl_fd = -1;
	ck_session.self_pid = (int)ck_getpid();
	ck_tracking.uffd = -1;
	ck_tracking.base_id = 0;
	ck_tracking.failed = 0;
}

/* Whether this process shares its memory or its descriptor table with
 * pid (a vfork child, clone with CLONE_VM or CLONE_FILES): then the shim's
 * state is pid's, and this process must leave it alone. In doubt (kcmp
 * refused), it does. */
static int shares_with(int pid)
{
	long vm = compare_with(pid, KCMP_VM);
	long files = compare_with(pid, KCMP_FILES);
	if (vm == -ESRCH && files == -ESRCH)
		return 0; /* pid is gone: nothing is shared with it */
	return vm == 0 || files == 0 || vm < 0 || files < 0;
}

static int shares_table_with_parent(void)
{
	int ppid = (int)CK_SYS0(SYS_getppid);
	return compare_with(ppid, KCMP_FILES) == 0 && compare_with(ppid, KCMP_VM) != 0;
}

/* ckrun's join request (the signal, tagged): connect and say hello. From
 * the signal handler; ckrun asks again until it hears the hello, so a
 * request that comes too early (before fork's child handler ran, or in a
 * vfork child) is simply ignored. A child of clone() without CLONE_VM has
 * its own copy of the shim's state, as after fork, but fork's child
 * handler never ran in it: it leaves its parent's session here. Returns 1
 * when this process took its parent's state over (the caller drops what
 * it kept of the parent's requests). */
CK_HIDDEN int ck_join_on_request(uint64_t tag)
{
	int took_over = 0;
	if (!ck_session.active)
		return 0;
	if (!holds_session()) {
		/* sharing with the holder, or only the descriptor table with the
		 * parent (whose refusal ckrun hears): a connection of its own
		 * would sit in a table that is not its own. ckrun may have found
		 * out already (a process that dropped root cannot kcmp its parent:
		 * to it a refused kcmp means "perhaps shared"). */
		if (!(tag & CK_JOIN_SEPARATE) && (shares_with(ck_session.self_pid) || shares_table_with_parent()))
			return 0;
		take_over_session_state();
		took_over = 1;
	}
	if (ck_session.ctl_fd >= 0)
		return took_over;
	int fd = ck_session_connect(ck_session.sock);
	if (fd < 0)
		return took_over;
	if (ck_arm_async(fd, ck_session.sig, (int)ck_getpid()) != 0) {
		ck_close(fd);
		return took_over;
	}
	ck_session.ctl_fd = fd;
	ck_session_hello();
	return took_over;
}
