/*
 * sockfilter: sockets with classic BPF packet filters (SO_ATTACH_FILTER),
 * as packet capture tools and some servers attach them:
 *  - a UDP socket connected to itself whose filter (locked: SO_LOCK_FILTER)
 *    passes only datagrams that start with 'A';
 *  - a Unix datagram socketpair whose receiving end has the same filter,
 *    unlocked.
 * Every step sends an 'A' and a 'B' datagram on each and checks that only
 * the 'A' arrives, that SO_GET_FILTER gives back the program as attached,
 * and that the lock holds (SO_DETACH_FILTER fails with EPERM). A wrong
 * answer prints "FAIL ...".
 *
 *   sockfilter [--steps N] [--ebpf]     prints "step K" per step, then "done"
 *
 * With --ebpf the UDP socket also gets an eBPF program (SO_ATTACH_BPF,
 * which replaces the classic filter and passes everything; root), which
 * the kernel does not give back: a checkpoint fails, naming the socket.
 */
#include "common.h"
#include <errno.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_LOCK_FILTER
#define SO_LOCK_FILTER 44
#endif

/* byte at `at` == 'A': pass the whole packet, else drop it */
static void program(struct sock_filter f[4], unsigned at)
{
	struct sock_filter p[4] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, at),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'A', 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	memcpy(f, p, sizeof p);
}

static void attach(int fd, struct sock_filter *f)
{
	struct sock_fprog p = {4, f};
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &p, sizeof p))
		die("SO_ATTACH_FILTER");
}

static int filter_is(long step, const char *what, int fd, const struct sock_filter *want)
{
	struct sock_filter got[8];
	socklen_t n = 8;
	memset(got, 0, sizeof got);
	if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, got, &n) || n != 4 || memcmp(got, want, 4 * sizeof *got)) {
		say("FAIL step %ld: %s: SO_GET_FILTER gives %u instructions, not the 4 attached", step, what, (unsigned)n);
		return 0;
	}
	return 1;
}

/* Sends "A<step>" and "B<step>" on out; only the A one may reach in. */
static int only_a_passes(long step, const char *what, int out, int in)
{
	char a[32], b[32], got[32];
	int la = snprintf(a, sizeof a, "A%ld", step), lb = snprintf(b, sizeof b, "B%ld", step);
	if (send(out, b, (size_t)lb, 0) != lb || send(out, a, (size_t)la, 0) != la)
		die("send");
	struct pollfd p = {in, POLLIN, 0};
	if (poll(&p, 1, 2000) != 1) {
		say("FAIL step %ld: %s: the 'A' datagram did not arrive", step, what);
		return 0;
	}
	ssize_t r = recv(in, got, sizeof got, 0);
	if (r != la || memcmp(got, a, (size_t)la)) {
		say("FAIL step %ld: %s: got '%.*s', not '%s' (the filter let a 'B' through?)", step, what, (int)(r > 0 ? r : 0), got, a);
		return 0;
	}
	if (poll(&p, 1, 20) != 0) {
		say("FAIL step %ld: %s: another datagram arrived (the filter let a 'B' through)", step, what);
		return 0;
	}
	return 1;
}

/* An eBPF socket filter that passes every packet whole: r0 = -1; exit. */
static void attach_ebpf(int fd)
{
	struct bpf_insn insns[2] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = -1},
		{.code = BPF_JMP | BPF_EXIT},
	};
	union bpf_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insn_cnt = 2;
	attr.insns = (uintptr_t)insns;
	attr.license = (uintptr_t) "GPL";
	int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
	if (prog < 0 || setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof prog))
		die("an eBPF socket filter (bpf(BPF_PROG_LOAD), SO_ATTACH_BPF: run as root)");
}

int main(int argc, char **argv)
{
	long steps = 40;
	int ebpf = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atol(argv[++i]);
		else if (!strcmp(argv[i], "--ebpf"))
			ebpf = 1;
	}
	struct sock_filter udp_f[4], unix_f[4];
	program(udp_f, 8); /* a UDP socket's filter sees the UDP header first */
	program(unix_f, 0);
	int u = socket(AF_INET, SOCK_DGRAM, 0), sp[2];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	if (u < 0 || bind(u, (struct sockaddr *)&a, sizeof a) || getsockname(u, (struct sockaddr *)&a, &alen) ||
	    connect(u, (struct sockaddr *)&a, sizeof a) || socketpair(AF_UNIX, SOCK_DGRAM, 0, sp))
		die("the sockets");
	attach(u, udp_f);
	int one = 1;
	if (setsockopt(u, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof one))
		die("SO_LOCK_FILTER");
	attach(sp[1], unix_f);
	if (ebpf) {
		/* the classic filter's lock would forbid replacing it: a socket of its own */
		int e = socket(AF_INET, SOCK_DGRAM, 0);
		if (e < 0)
			die("socket");
		attach_ebpf(e);
	}
	say("attached");
	for (long k = 1; k <= steps; k++) {
		int locked = 0;
		socklen_t ll = sizeof locked;
		if (!filter_is(k, "the UDP socket", u, udp_f) || !filter_is(k, "the Unix socket", sp[1], unix_f) ||
		    !only_a_passes(k, "the UDP socket", u, u) || !only_a_passes(k, "the Unix socket", sp[0], sp[1]))
			return 1;
		if (getsockopt(u, SOL_SOCKET, SO_LOCK_FILTER, &locked, &ll) || !locked ||
		    setsockopt(u, SOL_SOCKET, SO_DETACH_FILTER, &one, sizeof one) == 0 || errno != EPERM) {
			say("FAIL step %ld: the UDP socket's filter is not locked", k);
			return 1;
		}
		say("step %ld", k);
		pace_ms(50);
	}
	say("done");
	return 0;
}
