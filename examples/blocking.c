/*
 * blocking: threads that sit in the system calls a signal handler always
 * interrupts (man 7 signal), while checkpoints come and go.
 *
 *   blocking [--calls a,b,...] [--steps N] [--wait MS] [--late MS] [--list]
 *
 * Each call runs in a thread of its own, over and over, until the main
 * thread has printed N step lines (one every 50 ms). Untimed calls are
 * woken every 50 ms by a waker thread (a byte in a pipe, a semaphore, a
 * message, a futex wake, a signal); timed ones wait --wait ms (250) for
 * nothing and must time out, never early and at most --late ms (600000) late
 * (the time the program stood still or was gone). Socket calls with
 * SO_RCVTIMEO start their timeout again when a checkpoint interrupts them,
 * so they may be later by up to --wait per checkpoint. Any call that fails with
 * EINTR (or returns what it should not) prints "FAIL <call>: ..." and the
 * program exits 1 at once: ckrun's checkpoint must be invisible. A signal
 * the program sends itself still interrupts sigsuspend and pause, as it
 * should. At the end: "ok <call>" for every call, then "done".
 */
#include "common.h"
#include <fcntl.h>
#include <linux/futex.h>
#include <stddef.h>
#include <sys/un.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#define WAKE_MS 50
static int WAIT_MS = 250;
/* A timed call may end later than asked by the time the program stood
 * still or was gone (a checkpoint, a restart), never earlier. */
static int LATE_MS = 600000;

static volatile int stopping;

static void fail(const char *call, const char *what, int err)
{
	char buf[256];
	snprintf(buf, sizeof buf, "FAIL %s: %s%s%s\n", call, what, err ? ": " : "", err ? strerror(err) : "");
	(void)!write(1, buf, strlen(buf));
	_exit(1);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check_waited_within(const char *call, int64_t since, int64_t late)
{
	int64_t took = now_ms() - since;
	char what[96];
	if (took < WAIT_MS - 1) {
		snprintf(what, sizeof what, "timed out early (after %lld ms of %d)", (long long)took, WAIT_MS);
		fail(call, what, 0);
	}
	if (took > WAIT_MS + late) {
		snprintf(what, sizeof what, "timed out too late (after %lld ms of %d)", (long long)took, WAIT_MS);
		fail(call, what, 0);
	}
}

static void check_waited(const char *call, int64_t since)
{
	check_waited_within(call, since, LATE_MS);
}

/* ---- what the waker feeds ---- */

enum { P_POLL, P_PPOLL, P_EPOLL, P_EPWAIT, P_SELECT, P_PSELECT, P_READ, P_RAWPOLL, P_RAWEPOLL, P_ASMPOLL, NPIPES };
static int pipes[NPIPES][2];
static int epfd[NPIPES];
static volatile int futex_word;
static int semid = -1, msgid = -1, fullq = -1;
static pthread_t sig_threads[3];
static int sig_numbers[3];
static int nsig_threads;
static __thread volatile int usr2_seen; /* the handler runs in the thread the signal was sent to */

static void take_byte(const char *call, int fd)
{
	char c;
	ssize_t r = read(fd, &c, 1);
	if (r != 1 && !(r < 0 && errno == EAGAIN))
		fail(call, "read after wake-up", r < 0 ? errno : 0);
}

static void *waker(void *arg)
{
	(void)arg;
	while (!stopping) {
		pace_ms(WAKE_MS);
		for (int i = 0; i < NPIPES; i++)
			if (pipes[i][1] > 0)
				(void)!write(pipes[i][1], "x", 1);
		__atomic_fetch_add(&futex_word, 1, __ATOMIC_SEQ_CST);
		syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
		if (semid >= 0) {
			struct sembuf up = {0, 1, 0};
			semop(semid, &up, 1);
		}
		if (msgid >= 0) {
			struct { long type; char text[8]; } m = {1, "wake"};
			msgsnd(msgid, &m, sizeof m.text, IPC_NOWAIT);
		}
		if (fullq >= 0) {
			struct { long type; char text[64]; } m;
			msgrcv(fullq, &m, sizeof m.text, 0, IPC_NOWAIT);
		}
		for (int i = 0; i < nsig_threads; i++)
			pthread_kill(sig_threads[i], sig_numbers[i]);
	}
	return 0;
}

/* ---- untimed calls, woken by the waker ---- */

static void u_poll(const char *c)
{
	struct pollfd p = {pipes[P_POLL][0], POLLIN, 0};
	if (poll(&p, 1, -1) != 1)
		fail(c, "poll", errno);
	take_byte(c, p.fd);
}

static void u_ppoll(const char *c)
{
	struct pollfd p = {pipes[P_PPOLL][0], POLLIN, 0};
	if (ppoll(&p, 1, 0, 0) != 1)
		fail(c, "ppoll", errno);
	take_byte(c, p.fd);
}

static void u_epoll_wait(const char *c)
{
	struct epoll_event ev;
	if (epoll_wait(epfd[P_EPOLL], &ev, 1, -1) != 1)
		fail(c, "epoll_wait", errno);
	take_byte(c, pipes[P_EPOLL][0]);
}

static void u_epoll_pwait(const char *c)
{
	struct epoll_event ev;
	sigset_t none;
	sigemptyset(&none);
	sigaddset(&none, SIGUSR1);
	if (epoll_pwait(epfd[P_EPWAIT], &ev, 1, -1, &none) != 1)
		fail(c, "epoll_pwait", errno);
	take_byte(c, pipes[P_EPWAIT][0]);
}

static void u_select(const char *c)
{
	fd_set rd;
	FD_ZERO(&rd);
	FD_SET(pipes[P_SELECT][0], &rd);
	if (select(pipes[P_SELECT][0] + 1, &rd, 0, 0, 0) != 1)
		fail(c, "select", errno);
	take_byte(c, pipes[P_SELECT][0]);
}

static void u_pselect(const char *c)
{
	fd_set rd;
	FD_ZERO(&rd);
	FD_SET(pipes[P_PSELECT][0], &rd);
	if (pselect(pipes[P_PSELECT][0] + 1, &rd, 0, 0, 0, 0) != 1)
		fail(c, "pselect", errno);
	take_byte(c, pipes[P_PSELECT][0]);
}

static void u_read(const char *c)
{
	char b;
	if (read(pipes[P_READ][0], &b, 1) != 1)
		fail(c, "read", errno);
}

static void u_raw_poll(const char *c)
{
	struct pollfd p = {pipes[P_RAWPOLL][0], POLLIN, 0};
	if (syscall(SYS_poll, &p, 1, -1) != 1)
		fail(c, "syscall(SYS_poll)", errno);
	take_byte(c, p.fd);
}

static void u_raw_epoll(const char *c)
{
	struct epoll_event ev;
	if (syscall(SYS_epoll_wait, epfd[P_RAWEPOLL], &ev, 1, -1) != 1)
		fail(c, "syscall(SYS_epoll_wait)", errno);
	take_byte(c, pipes[P_RAWEPOLL][0]);
}

/* A program with its own syscall instruction (Go, hand-written code): no
 * libc function sees this call. */
static void u_asm_poll(const char *c)
{
	struct pollfd p = {pipes[P_ASMPOLL][0], POLLIN, 0};
	long r;
	register long r10 __asm__("r10") = 0;
	__asm__ volatile("mov $7, %%eax\n\tsyscall"
			 : "=a"(r)
			 : "D"(&p), "S"(1L), "d"(-1L), "r"(r10)
			 : "rcx", "r11", "memory");
	if (r != 1)
		fail(c, "inline syscall poll", r < 0 ? (int)-r : 0);
	take_byte(c, p.fd);
}

static void u_futex(const char *c)
{
	int seen = futex_word;
	while (futex_word == seen && !stopping)
		if (syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, seen, 0, 0, 0) < 0 && errno != EAGAIN)
			fail(c, "futex wait", errno);
}

static void u_sigwaitinfo(const char *c)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	if (sigwaitinfo(&s, 0) != SIGUSR1)
		fail(c, "sigwaitinfo", errno);
}

static void on_usr2(int sig)
{
	(void)sig;
	usr2_seen = 1;
}

/* The program's own signal (the waker's SIGUSR2) must still end
 * sigsuspend: that EINTR is the program's. */
static void u_sigsuspend(const char *c)
{
	sigset_t s;
	sigfillset(&s);
	sigdelset(&s, SIGUSR2);
	usr2_seen = 0;
	if (sigsuspend(&s) != -1 || errno != EINTR || !usr2_seen)
		fail(c, "sigsuspend ended without the program's signal", errno);
}

static void u_semop(const char *c)
{
	struct sembuf down = {0, -1, 0};
	if (semop(semid, &down, 1) != 0)
		fail(c, "semop", errno);
}

static void u_msgrcv(const char *c)
{
	struct { long type; char text[8]; } m;
	if (msgrcv(msgid, &m, sizeof m.text, 0, 0) < 0)
		fail(c, "msgrcv", errno);
}

static void u_msgsnd(const char *c)
{
	struct { long type; char text[64]; } m = {1, "full"};
	if (msgsnd(fullq, &m, sizeof m.text, 0) != 0)
		fail(c, "msgsnd on a full queue", errno);
}

/* ---- timed calls: nothing comes, they must time out ---- */

static int idle_pipe[2];
static int idle_ep;

static void t_poll(const char *c)
{
	struct pollfd p = {idle_pipe[0], POLLIN, 0};
	int64_t t0 = now_ms();
	if (poll(&p, 1, WAIT_MS) != 0)
		fail(c, "poll", errno);
	check_waited(c, t0);
}

static void t_ppoll(const char *c)
{
	struct pollfd p = {idle_pipe[0], POLLIN, 0};
	struct timespec ts = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000000L};
	int64_t t0 = now_ms();
	if (ppoll(&p, 1, &ts, 0) != 0)
		fail(c, "ppoll", errno);
	check_waited(c, t0);
}

static void t_epoll_wait(const char *c)
{
	struct epoll_event ev;
	int64_t t0 = now_ms();
	if (epoll_wait(idle_ep, &ev, 1, WAIT_MS) != 0)
		fail(c, "epoll_wait", errno);
	check_waited(c, t0);
}

static void t_epoll_pwait2(const char *c)
{
	struct epoll_event ev;
	struct timespec ts = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000000L};
	int64_t t0 = now_ms();
	if (epoll_pwait2(idle_ep, &ev, 1, &ts, 0) != 0)
		fail(c, "epoll_pwait2", errno);
	check_waited(c, t0);
}

static void t_select(const char *c)
{
	fd_set rd;
	FD_ZERO(&rd);
	FD_SET(idle_pipe[0], &rd);
	struct timeval tv = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000};
	int64_t t0 = now_ms();
	if (select(idle_pipe[0] + 1, &rd, 0, 0, &tv) != 0)
		fail(c, "select", errno);
	check_waited(c, t0);
}

static void t_pselect(const char *c)
{
	fd_set rd;
	FD_ZERO(&rd);
	FD_SET(idle_pipe[0], &rd);
	struct timespec ts = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000000L};
	int64_t t0 = now_ms();
	if (pselect(idle_pipe[0] + 1, &rd, 0, 0, &ts, 0) != 0)
		fail(c, "pselect", errno);
	check_waited(c, t0);
}

static void t_sigtimedwait(const char *c)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGWINCH);
	struct timespec ts = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000000L};
	int64_t t0 = now_ms();
	if (sigtimedwait(&s, 0, &ts) != -1 || errno != EAGAIN)
		fail(c, "sigtimedwait", errno);
	check_waited(c, t0);
}

static void t_nanosleep(const char *c)
{
	struct timespec ts = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000000L};
	int64_t t0 = now_ms();
	if (nanosleep(&ts, 0) != 0)
		fail(c, "nanosleep", errno);
	check_waited(c, t0);
}

static void t_clock_nanosleep(const char *c)
{
	struct timespec ts = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000000L};
	int64_t t0 = now_ms();
	int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, 0);
	if (r != 0)
		fail(c, "clock_nanosleep", r);
	check_waited(c, t0);
}

static void t_usleep(const char *c)
{
	int64_t t0 = now_ms();
	if (usleep((useconds_t)WAIT_MS * 1000) != 0)
		fail(c, "usleep", errno);
	check_waited(c, t0);
}

static void t_futex(const char *c)
{
	static volatile int never;
	struct timespec ts = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000000L};
	int64_t t0 = now_ms();
	if (syscall(SYS_futex, &never, FUTEX_WAIT_PRIVATE, 0, &ts, 0, 0) != -1 || errno != ETIMEDOUT)
		fail(c, "futex wait with a timeout", errno);
	check_waited(c, t0);
}

static void t_raw_poll(const char *c)
{
	struct pollfd p = {idle_pipe[0], POLLIN, 0};
	int64_t t0 = now_ms();
	if (syscall(SYS_poll, &p, 1, WAIT_MS) != 0)
		fail(c, "syscall(SYS_poll)", errno);
	check_waited(c, t0);
}

static void t_raw_epoll(const char *c)
{
	struct epoll_event ev;
	int64_t t0 = now_ms();
	if (syscall(SYS_epoll_wait, idle_ep, &ev, 1, WAIT_MS) != 0)
		fail(c, "syscall(SYS_epoll_wait)", errno);
	check_waited(c, t0);
}

static int idle_sock = -1, idle_listener = -1;

static void t_recv(const char *c)
{
	char b;
	int64_t t0 = now_ms();
	if (recv(idle_sock, &b, 1, 0) != -1 || (errno != EAGAIN && errno != EWOULDBLOCK))
		fail(c, "recv with SO_RCVTIMEO", errno);
	check_waited_within(c, t0, 600000);
}

static void t_accept(const char *c)
{
	int64_t t0 = now_ms();
	if (accept(idle_listener, 0, 0) != -1 || (errno != EAGAIN && errno != EWOULDBLOCK))
		fail(c, "accept with SO_RCVTIMEO", errno);
	check_waited_within(c, t0, 600000);
}

static void t_semtimedop(const char *c)
{
	static int idle_sem = -1;
	if (idle_sem < 0 && (idle_sem = semget(IPC_PRIVATE, 1, 0600)) < 0)
		fail(c, "semget", errno);
	struct sembuf down = {0, -1, 0};
	struct timespec ts = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000000L};
	int64_t t0 = now_ms();
	if (semtimedop(idle_sem, &down, 1, &ts) != -1 || errno != EAGAIN)
		fail(c, "semtimedop", errno);
	check_waited(c, t0);
}

/* ---- the program ---- */

struct call {
	const char *name;
	void (*fn)(const char *);
	int sysv;      /* SysV IPC, which ckrun cannot restore yet */
	int signal;    /* woken by this signal, which the waker sends its thread */
};

static const struct call calls[] = {
	{"poll", u_poll, 0, 0},
	{"ppoll", u_ppoll, 0, 0},
	{"epoll_wait", u_epoll_wait, 0, 0},
	{"epoll_pwait", u_epoll_pwait, 0, 0},
	{"select", u_select, 0, 0},
	{"pselect", u_pselect, 0, 0},
	{"read", u_read, 0, 0},
	{"syscall-poll", u_raw_poll, 0, 0},
	{"syscall-epoll_wait", u_raw_epoll, 0, 0},
	{"asm-poll", u_asm_poll, 0, 0},
	{"futex", u_futex, 0, 0},
	{"sigwaitinfo", u_sigwaitinfo, 0, SIGUSR1},
	{"sigsuspend", u_sigsuspend, 0, SIGUSR2},
	{"semop", u_semop, 1, 0},
	{"msgrcv", u_msgrcv, 1, 0},
	{"msgsnd", u_msgsnd, 1, 0},
	{"timed-poll", t_poll, 0, 0},
	{"timed-ppoll", t_ppoll, 0, 0},
	{"timed-epoll_wait", t_epoll_wait, 0, 0},
	{"timed-epoll_pwait2", t_epoll_pwait2, 0, 0},
	{"timed-select", t_select, 0, 0},
	{"timed-pselect", t_pselect, 0, 0},
	{"timed-sigtimedwait", t_sigtimedwait, 0, 0},
	{"nanosleep", t_nanosleep, 0, 0},
	{"clock_nanosleep", t_clock_nanosleep, 0, 0},
	{"usleep", t_usleep, 0, 0},
	{"timed-futex", t_futex, 0, 0},
	{"timed-syscall-poll", t_raw_poll, 0, 0},
	{"timed-syscall-epoll_wait", t_raw_epoll, 0, 0},
	{"timed-recv", t_recv, 0, 0},
	{"timed-accept", t_accept, 0, 0},
	{"semtimedop", t_semtimedop, 1, 0},
};
#define NCALLS (sizeof calls / sizeof calls[0])

static int chosen[NCALLS];
static pthread_t threads[NCALLS];

static void *run_call(void *arg)
{
	const struct call *c = arg;
	while (!stopping)
		c->fn(c->name);
	return 0;
}

static void choose(const char *list)
{
	if (!strcmp(list, "all") || !strcmp(list, "nosysv")) {
		for (size_t i = 0; i < NCALLS; i++)
			chosen[i] = !strcmp(list, "all") || !calls[i].sysv;
		return;
	}
	if (!strcmp(list, "sysv") || !strcmp(list, "timed")) {
		for (size_t i = 0; i < NCALLS; i++)
			chosen[i] = !strcmp(list, "sysv") ? calls[i].sysv : (calls[i].fn == t_semtimedop || !strncmp(calls[i].name, "timed", 5) ||
									     strstr(calls[i].name, "sleep") != 0);
		return;
	}
	char *copy = strdup(list);
	for (char *tok = strtok(copy, ","); tok; tok = strtok(0, ",")) {
		size_t i;
		for (i = 0; i < NCALLS && strcmp(calls[i].name, tok); i++)
			;
		if (i == NCALLS) {
			fprintf(stderr, "blocking: unknown call %s (--list lists them)\n", tok);
			exit(2);
		}
		chosen[i] = 1;
	}
	free(copy);
}

static void set_up(void)
{
	for (int i = 0; i < NPIPES; i++) {
		if (pipe(pipes[i]) != 0)
			fail("setup", "pipe", errno);
		epfd[i] = epoll_create1(0);
		struct epoll_event ev = {EPOLLIN, {.u32 = (uint32_t)i}};
		epoll_ctl(epfd[i], EPOLL_CTL_ADD, pipes[i][0], &ev);
	}
	if (pipe(idle_pipe) != 0)
		fail("setup", "pipe", errno);
	idle_ep = epoll_create1(0);
	struct epoll_event ev = {EPOLLIN, {.u32 = 0}};
	epoll_ctl(idle_ep, EPOLL_CTL_ADD, idle_pipe[0], &ev);

	/* a listener and a connection, both idle, with a receive timeout */
	struct timeval tv = {WAIT_MS / 1000, WAIT_MS % 1000 * 1000};
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0)
		fail("setup", "socketpair", errno);
	idle_sock = pair[0]; /* pair[1] stays open: the connection stays idle */
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "blocking-%d", (int)getpid());
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a.sun_path + 1));
	idle_listener = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(idle_listener, (struct sockaddr *)&a, alen) != 0 || listen(idle_listener, 4) != 0)
		fail("setup", "listener", errno);
	setsockopt(idle_sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(idle_listener, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

	for (size_t i = 0; i < NCALLS; i++) {
		if (!chosen[i] || !calls[i].sysv)
			continue;
		if (!strcmp(calls[i].name, "semop") && (semid = semget(IPC_PRIVATE, 1, 0600)) < 0)
			fail("setup", "semget", errno);
		if (!strcmp(calls[i].name, "msgrcv") && (msgid = msgget(IPC_PRIVATE, 0600)) < 0)
			fail("setup", "msgget", errno);
		if (!strcmp(calls[i].name, "msgsnd")) {
			if ((fullq = msgget(IPC_PRIVATE, 0600)) < 0)
				fail("setup", "msgget", errno);
			struct { long type; char text[64]; } m = {1, "full"};
			while (msgsnd(fullq, &m, sizeof m.text, IPC_NOWAIT) == 0)
				;
		}
	}

	/* SIGUSR1 is taken only by sigwaitinfo; SIGUSR2 ends sigsuspend */
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigaddset(&s, SIGWINCH);
	pthread_sigmask(SIG_BLOCK, &s, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, 0);
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s, 0);
}

static void remove_ipc(void)
{
	if (semid >= 0)
		semctl(semid, 0, IPC_RMID);
	if (msgid >= 0)
		msgctl(msgid, IPC_RMID, 0);
	if (fullq >= 0)
		msgctl(fullq, IPC_RMID, 0);
}

int main(int argc, char **argv)
{
	int steps = 200;
	const char *list = "nosysv";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--calls") && i + 1 < argc)
			list = argv[++i];
		else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
			WAIT_MS = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--late") && i + 1 < argc)
			LATE_MS = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--list")) {
			for (size_t k = 0; k < NCALLS; k++)
				printf("%s%s\n", calls[k].name, calls[k].sysv ? " (sysv)" : "");
			return 0;
		} else {
			fprintf(stderr, "usage: blocking [--calls a,b,...|all|nosysv|sysv|timed] [--steps N] [--wait MS] [--late MS] [--list]\n");
			return 2;
		}
	}
	setvbuf(stdout, 0, _IOLBF, 0);
	choose(list);
	set_up();
	atexit(remove_ipc);
	for (size_t i = 0; i < NCALLS; i++) {
		if (!chosen[i])
			continue;
		if (pthread_create(&threads[i], 0, run_call, (void *)&calls[i]) != 0)
			fail(calls[i].name, "pthread_create", errno);
		if (calls[i].signal) {
			sig_numbers[nsig_threads] = calls[i].signal;
			sig_threads[nsig_threads++] = threads[i];
		}
	}
	pthread_t w;
	pthread_create(&w, 0, waker, 0);
	for (int s = 1; s <= steps; s++) {
		say("step %d", s);
		pace_ms(WAKE_MS);
	}
	stopping = 1;
	for (size_t i = 0; i < NCALLS; i++)
		if (chosen[i])
			pthread_join(threads[i], 0);
	pthread_join(w, 0);
	for (size_t i = 0; i < NCALLS; i++)
		if (chosen[i])
			say("ok %s", calls[i].name);
	say("done");
	return 0;
}
