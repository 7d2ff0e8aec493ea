/* The peer credentials of Unix sockets (SO_PEERCRED) as the program first
 * saw them. A restart makes every socket again, and the kernel then names
 * whoever made it (the restore host or the orchestrator, with the
 * restarter's user IDs) as the peer, or, for a listener, as itself. So
 * each checkpoint notes, in the program's own memory, what SO_PEERCRED
 * says of each of its Unix sockets (the noted value for one ckrun made,
 * the kernel's for the others); a restored process learns the new inode
 * of each, and the shim's getsockopt answers SO_PEERCRED of those with the
 * noted credentials. A duplicate of the descriptor (or one passed to
 * another process of the family, which notes its own) answers the same.
 * Raw system calls only: the note is taken in the checkpoint's signal
 * handler, the inodes are learnt in the restore path. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "ckrun.h"
#include "sys.h"

#define MAX_NOTED 512

struct noted {
	int fd;       /* where it was at the checkpoint (to find it after a restart) */
	uint64_t ino; /* the socket's inode now */
	struct ucred cred;
};

static struct noted noted[MAX_NOTED], fresh[MAX_NOTED];
static int nnoted;

static const struct noted *noted_ino(uint64_t ino)
{
	for (int i = 0; i < nnoted; i++)
		if (noted[i].ino == ino)
			return &noted[i];
	return 0;
}

static int is_unix_socket(int fd, struct ck_stat *st)
{
	int domain = 0;
	unsigned len = sizeof domain;
	return ck_fstat(fd, st) == 0 && (st->mode & S_IFMT) == S_IFSOCK &&
	       ck_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
}

static int seen_ino(const struct noted *list, int n, uint64_t ino)
{
	for (int i = 0; i < n; i++)
		if (list[i].ino == ino)
			return 1;
	return 0;
}

/* Every Unix socket of the process, with the credentials its program sees:
 * taken while the process is stopped, before its writer forks (the image
 * holds the note). Sockets beyond MAX_NOTED are not noted: after a restart
 * they name the restorer. */
CK_HIDDEN void ck_peercred_note(void)
{
	struct ck_sock_walk walk;
	struct ck_stat st;
	int n = 0, fd;
	if (ck_sock_walk_open(&walk) < 0)
		return; /* the previous note stays */
	while (n < MAX_NOTED && (fd = ck_sock_walk_next(&walk, &st)) >= 0) {
		int domain = 0;
		unsigned len = sizeof domain;
		if (ck_is_session_fd(fd) || ck_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX ||
		    seen_ino(fresh, n, st.ino))
			continue;
		struct noted *e = &fresh[n];
		const struct noted *was = noted_ino(st.ino);
		len = sizeof e->cred;
		if (was)
			e->cred = was->cred;
		else if (ck_getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &e->cred, &len) != 0 || len != sizeof e->cred)
			continue;
		e->fd = fd;
		e->ino = st.ino;
		n++;
	}
	ck_sock_walk_close(&walk);
	ck_memcpy(noted, fresh, (size_t)n * sizeof *noted);
	nnoted = n;
}

/* In the restored process, before the program runs: the sockets ckrun
 * made again are at the descriptors the note names; their inodes are new. */
CK_HIDDEN void ck_peercred_after_restore(void)
{
	for (int i = 0; i < nnoted; i++) {
		struct ck_stat st;
		if (is_unix_socket(noted[i].fd, &st))
			noted[i].ino = st.ino;
		else
			noted[i].ino = 0; /* not made again (refused kinds never get here) */
	}
}

/* SO_PEERCRED of fd as the program saw it before its restarts: 1 and
 * filled in for a socket ckrun made again, 0 to ask the kernel. */
CK_HIDDEN int ck_peercred_answer(int fd, void *val, unsigned *len)
{
	if (ck_restores == 0 || nnoted == 0 || !val || !len)
		return 0;
	struct ck_stat st;
	if (ck_fstat(fd, &st) != 0 || (st.mode & S_IFMT) != S_IFSOCK)
		return 0;
	const struct noted *e = noted_ino(st.ino);
	if (!e || e->ino == 0)
		return 0;
	unsigned n = *len < sizeof e->cred ? *len : (unsigned)sizeof e->cred;
	ck_memcpy(val, &e->cred, n);
	*len = n;
	return 1;
}
