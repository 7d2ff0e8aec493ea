/*
 * netlink: netlink sockets as a udev monitor and a link monitor hold them,
 * checked by the program itself at every step (run as root: sending to a
 * port ID or a group of NETLINK_KOBJECT_UEVENT takes CAP_NET_ADMIN).
 *
 *   netlink [--steps S] [--unread]
 *
 * Four NETLINK_KOBJECT_UEVENT sockets, as CRIU's zdtm sk-netlink has
 * them: `own` bound to a port ID of its own choosing (its PID), `group`
 * bound to multicast group 32 (port ID chosen by the kernel), `conn`
 * connected to own's port ID and group 32, `late` not bound (the kernel
 * binds it at its first send, in the first step), `never` never bound nor
 * used. One NETLINK_ROUTE socket `route` listens
 * to RTNLGRP_LINK and to group 36 (beyond the 32 getsockname shows), with
 * NETLINK_NO_ENOBUFS and NETLINK_EXT_ACK set.
 *
 * Each step: every socket's name, peer, groups and options are what they
 * were; conn sends a message (own and group get it), late sends one to
 * own (own sees late's port ID as the sender, the same at every step once
 * the kernel chose it); every 4th step route dumps the links and reads
 * the dump to its end (a checkpoint may find one under way: it then tries
 * again). Prints "step S <hash>" (of what is the same in every run); the
 * first difference prints "FAIL ..." and exits 1; the last line is
 * "done <hash>".
 *
 * --unread: late sends own a message at the start that own never reads
 * (the steps then only check names): a checkpoint must fail, naming own.
 */
#include "common.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_LIST_MEMBERSHIPS
#define NETLINK_LIST_MEMBERSHIPS 9
#endif
#define TEST_GROUP 32
#define HIGH_GROUP 36

static int own, group, conn, late, never, route;
static struct sockaddr_nl own_name, group_name, conn_name, late_name;

static int nl_socket(int protocol)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
	if (fd < 0)
		die("socket(AF_NETLINK)");
	return fd;
}

static struct sockaddr_nl nl_addr(uint32_t portid, uint32_t groups)
{
	struct sockaddr_nl a = {.nl_family = AF_NETLINK, .nl_pid = portid, .nl_groups = groups};
	return a;
}

static struct sockaddr_nl name_of(int fd, int peer)
{
	struct sockaddr_nl a;
	socklen_t l = sizeof a;
	memset(&a, 0, sizeof a);
	if ((peer ? getpeername(fd, (struct sockaddr *)&a, &l) : getsockname(fd, (struct sockaddr *)&a, &l)) != 0)
		die(peer ? "getpeername" : "getsockname");
	return a;
}

static void check_name(int s, const char *what, int fd, int peer, const struct sockaddr_nl *want)
{
	struct sockaddr_nl a = name_of(fd, peer);
	if (a.nl_pid != want->nl_pid || a.nl_groups != want->nl_groups)
		say_fail("step %d: %s's %s is port %u groups %#x, expected port %u groups %#x", s, what, peer ? "peer" : "name",
		     a.nl_pid, a.nl_groups, want->nl_pid, want->nl_groups);
}

static int int_option(int fd, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	if (getsockopt(fd, SOL_NETLINK, name, &v, &l) != 0)
		die("getsockopt(SOL_NETLINK)");
	return v;
}

static void check_route(int s)
{
	uint32_t groups[8];
	socklen_t l = sizeof groups;
	memset(groups, 0, sizeof groups);
	if (getsockopt(route, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &l) != 0)
		die("NETLINK_LIST_MEMBERSHIPS");
	uint32_t want0 = 1u << (RTNLGRP_LINK - 1), want1 = 1u << (HIGH_GROUP - 33);
	if (groups[0] != want0 || groups[1] != want1)
		say_fail("step %d: route listens to groups %#x %#x, expected %#x %#x", s, groups[0], groups[1], want0, want1);
	if (int_option(route, NETLINK_NO_ENOBUFS) != 1 || int_option(route, NETLINK_EXT_ACK) != 1 ||
	    int_option(route, NETLINK_PKTINFO) != 0)
		say_fail("step %d: route's options are NO_ENOBUFS %d EXT_ACK %d PKTINFO %d, expected 1 1 0", s,
		     int_option(route, NETLINK_NO_ENOBUFS), int_option(route, NETLINK_EXT_ACK),
		     int_option(route, NETLINK_PKTINFO));
}

struct note {
	struct nlmsghdr h;
	uint32_t step, from;
};

static void send_note(int fd, const struct sockaddr_nl *to, int s, uint32_t from)
{
	struct note n = {{sizeof n, 0x1234, NLM_F_REQUEST, (uint32_t)s, 0}, (uint32_t)s, from};
	ssize_t r = to ? sendto(fd, &n, sizeof n, 0, (const struct sockaddr *)to, sizeof *to) : send(fd, &n, sizeof n, 0);
	if (r != (ssize_t)sizeof n)
		say_fail("step %d: sending on a netlink socket failed: %s", s, strerror(errno));
}

static void expect_note(int s, const char *what, int fd, uint32_t from, uint32_t sender)
{
	struct note n;
	struct sockaddr_nl a;
	socklen_t al = sizeof a;
	ssize_t r = recvfrom(fd, &n, sizeof n, MSG_DONTWAIT, (struct sockaddr *)&a, &al);
	if (r != (ssize_t)sizeof n)
		say_fail("step %d: %s got no message (%zd: %s)", s, what, r, r < 0 ? strerror(errno) : "short");
	if (n.step != (uint32_t)s || n.from != from || a.nl_pid != sender)
		say_fail("step %d: %s got step %u from %u sent by port %u, expected step %d from %u by port %u", s, what, n.step,
		     n.from, a.nl_pid, s, from, sender);
	if (recv(fd, &n, sizeof n, MSG_DONTWAIT) >= 0 || errno != EAGAIN)
		say_fail("step %d: %s got more than one message", s, what);
}

/* RTM_GETLINK, read to NLMSG_DONE: how many links (loopback at least). */
static int dump_links(int s)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = {{sizeof req, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, (uint32_t)s, 0}, {.ifi_family = AF_UNSPEC}};
	struct sockaddr_nl kernel = nl_addr(0, 0);
	if (sendto(route, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)sizeof req)
		say_fail("step %d: RTM_GETLINK failed: %s", s, strerror(errno));
	static char buf[1 << 16];
	int links = 0;
	for (;;) {
		ssize_t r = recv(route, buf, sizeof buf, 0);
		if (r < 0)
			say_fail("step %d: reading the link dump failed: %s", s, strerror(errno));
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)r); h = NLMSG_NEXT(h, r)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return links;
			if (h->nlmsg_type == NLMSG_ERROR)
				say_fail("step %d: the link dump ended with an error", s);
			if (h->nlmsg_type == RTM_NEWLINK && h->nlmsg_seq == (uint32_t)s)
				links++;
		}
	}
}

static void open_sockets(void)
{
	own = nl_socket(NETLINK_KOBJECT_UEVENT);
	group = nl_socket(NETLINK_KOBJECT_UEVENT);
	conn = nl_socket(NETLINK_KOBJECT_UEVENT);
	late = nl_socket(NETLINK_KOBJECT_UEVENT);
	never = nl_socket(NETLINK_KOBJECT_UEVENT);
	route = nl_socket(NETLINK_ROUTE);
	struct sockaddr_nl a = nl_addr((uint32_t)getpid(), 0);
	if (bind(own, (struct sockaddr *)&a, sizeof a))
		die("bind own");
	a = nl_addr(0, 1u << (TEST_GROUP - 1));
	if (bind(group, (struct sockaddr *)&a, sizeof a))
		die("bind group");
	a = nl_addr((uint32_t)getpid(), 1u << (TEST_GROUP - 1));
	if (connect(conn, (struct sockaddr *)&a, sizeof a))
		die("connect conn");
	a = nl_addr(0, 1u << (RTNLGRP_LINK - 1));
	if (bind(route, (struct sockaddr *)&a, sizeof a))
		die("bind route");
	int g = HIGH_GROUP, one = 1;
	if (setsockopt(route, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof g) ||
	    setsockopt(route, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one) ||
	    setsockopt(route, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one))
		die("route options");
	own_name = name_of(own, 0);
	group_name = name_of(group, 0);
	conn_name = name_of(conn, 0);
	late_name = name_of(late, 0);
	if (late_name.nl_pid != 0)
		say_fail("late is bound before its first send (port %u)", late_name.nl_pid);
}

int main(int argc, char **argv)
{
	int steps = 150, unread = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--unread"))
			unread = 1;
	}
	open_sockets();
	if (unread)
		send_note(late, &own_name, 0, 2);
	struct sockaddr_nl conn_peer = nl_addr(own_name.nl_pid, 1u << (TEST_GROUP - 1));
	say("netlink: start steps=%d", steps);
	uint64_t h = 0;
	for (int s = 1; s <= steps; s++) {
		check_name(s, "own", own, 0, &own_name);
		check_name(s, "group", group, 0, &group_name);
		check_name(s, "conn", conn, 0, &conn_name);
		check_name(s, "conn", conn, 1, &conn_peer);
		if (!unread)
			check_name(s, "late", late, 0, &late_name);
		check_route(s);
		struct sockaddr_nl unbound = nl_addr(0, 0);
		check_name(s, "never", never, 0, &unbound);
		if (unread) {
			say("step %d", s);
			pace_ms(30);
			continue;
		}
		send_note(conn, 0, s, 1);
		expect_note(s, "own (from conn)", own, 1, conn_name.nl_pid);
		expect_note(s, "group (from conn)", group, 1, conn_name.nl_pid);
		send_note(late, &own_name, s, 2);
		if (s == 1)
			late_name = name_of(late, 0);
		expect_note(s, "own (from late)", own, 2, late_name.nl_pid);
		int links = s % 4 == 0 ? dump_links(s) : 1;
		if (links < 1)
			say_fail("step %d: the link dump listed no link", s);
		h = mix64(h, (uint64_t)s);
		say("step %d %016" PRIx64, s, h);
		pace_ms(30);
	}
	say("done %016" PRIx64, h);
	return 0;
}
