/* What the shim and ckrun's addon (addon/) both know: the join request's
 * tag, clone3's arguments, the session's abstract socket address and the
 * sock_diag request about Unix sockets. Header-only and free of libc
 * calls: the shim uses it in its signal handler (the loops below stay
 * loops there, as it is built with -fno-builtin and
 * -fno-tree-loop-distribute-patterns). */
#ifndef CK_WIRE_H
#define CK_WIRE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

/* Upper half of the value of ckrun's join request: the internal signal,
 * queued (SI_QUEUE) to a process of the session that has no connection
 * yet (forked since the last checkpoint). */
#define CK_JOIN_MAGIC 0x636aUL
/* Lower half, a flag: ckrun compared the process with its parent (kcmp)
 * and found that it shares neither memory nor descriptor table with it. A
 * process that changed its user ID may not kcmp its root parent itself. */
#define CK_JOIN_SEPARATE 0x1UL

static inline void ck_wire_zero(void *p, size_t n)
{
	for (unsigned char *b = p; n--; b++)
		*b = 0;
}

/* struct clone_args of <linux/sched.h>, declared here so that header's
 * CLONE_* macros do not clash with <sched.h>'s. */
struct ck_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

/* clone3's arguments for a child that ends with SIGCHLD, made with
 * flags, with the PID *pid when pid is not 0 (set_tid). */
static inline void ck_clone_args_child(struct ck_clone_args *a, uint64_t flags, const pid_t *pid)
{
	ck_wire_zero(a, sizeof *a);
	a->flags = flags;
	a->exit_signal = SIGCHLD;
	if (pid) {
		a->set_tid = (uint64_t)(uintptr_t)pid;
		a->set_tid_size = 1;
	}
}

/* The abstract Unix socket address of a name of n bytes: sun_path is a
 * NUL and the name, and the address ends there (its exact length, which
 * is part of the name; Node's net pads it to 108 bytes). Its length, or 0
 * when the name does not fit. */
static inline unsigned ck_abstract_addr(struct sockaddr_un *a, const char *name, size_t n)
{
	if (n + 1 > sizeof a->sun_path)
		return 0;
	ck_wire_zero(a, sizeof *a);
	a->sun_family = AF_UNIX;
	for (size_t i = 0; i < n; i++)
		a->sun_path[1 + i] = name[i];
	return (unsigned)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* A sock_diag request about Unix sockets (NETLINK_SOCK_DIAG, sent to the
 * kernel): the one with inode ino, or, with ino 0, a dump of those in
 * states (a bit per TCP_* state); show: the UDIAG_SHOW_* attributes. */
struct ck_unix_diag_query {
	struct nlmsghdr h;
	struct unix_diag_req r;
};
static inline void ck_unix_diag_query(struct ck_unix_diag_query *q, uint32_t ino, uint32_t states, uint32_t show)
{
	ck_wire_zero(q, sizeof *q);
	q->h.nlmsg_len = sizeof *q;
	q->h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q->h.nlmsg_flags = NLM_F_REQUEST | (ino ? 0 : NLM_F_DUMP);
	q->r.sdiag_family = AF_UNIX;
	q->r.udiag_states = states;
	q->r.udiag_show = show;
	if (ino) {
		q->r.udiag_ino = ino;
		q->r.udiag_cookie[0] = q->r.udiag_cookie[1] = ~0u; /* any: look up by inode */
	}
}
/* tags the stop requests a process sends its own threads (checkpoint.c) */
#define CK_QUEUE_MAGIC 0x636bUL

#endif
