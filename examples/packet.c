/*
 * packet: packet sockets as a capture tool, a DHCP or LLDP daemon holds
 * them, checked by the program itself at every step (run as root: a
 * packet socket takes CAP_NET_RAW).
 *
 *   packet [--steps S] [--mapped]
 *
 * `raw` (SOCK_RAW, every protocol): frame version TPACKET_V2, auxiliary
 * data on, a receive ring (not mapped), promiscuous on lo, in a hash fanout
 * group. `ip` (SOCK_DGRAM, IPv4 only) bound to lo: a reserve of 64 bytes,
 * the original device on, a multicast membership on lo, in a
 * load-balancing fanout group. `old` (SOCK_PACKET) bound to lo. A UDP
 * socket on 127.0.0.1 sends a marker to another at every step.
 *
 * Each step: every option is what it was, each ring is still there
 * (setting it again fails with EBUSY), and `ip` and `old` see the step's
 * marker go by on lo (a frame can be lost, as a checkpoint's restart
 * drops the frames not yet read: the marker is sent again until it is
 * seen). Prints "step S <hash>"; the first difference prints "FAIL ..."
 * and exits 1; at the end each membership is dropped (which fails if it is
 * gone) and the last line is "done <hash>".
 *
 * --mapped: raw's ring is mapped, which ckrun cannot save: a checkpoint
 * must fail, naming the socket.
 */
#include "common.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESERVE 64
#define RING_BLOCK 4096
#define RING_BLOCKS 4

static int raw, ip, old, udp_to, udp_from;
static int lo;
static uint32_t raw_fanout, ip_fanout;
static struct sockaddr_in to_addr;
static const unsigned char mcast[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb};

static int packet_socket(int type, int protocol)
{
	int fd = socket(AF_PACKET, type | SOCK_CLOEXEC, protocol);
	if (fd < 0)
		die("socket(AF_PACKET) (run as root)");
	return fd;
}

static void set_int(int fd, int name, int v, const char *what)
{
	if (setsockopt(fd, SOL_PACKET, name, &v, sizeof v) != 0)
		die(what);
}

static int get_int(int fd, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	if (getsockopt(fd, SOL_PACKET, name, &v, &l) != 0)
		die("getsockopt(SOL_PACKET)");
	return v;
}

static struct packet_mreq membership(int type)
{
	struct packet_mreq m;
	memset(&m, 0, sizeof m);
	m.mr_ifindex = lo;
	m.mr_type = (unsigned short)type;
	if (type == PACKET_MR_MULTICAST) {
		m.mr_alen = 6;
		memcpy(m.mr_address, mcast, 6);
	}
	return m;
}

static struct tpacket_req ring_req(void)
{
	struct tpacket_req r = {RING_BLOCK, RING_BLOCKS, 2048, RING_BLOCK / 2048 * RING_BLOCKS};
	return r;
}

static void open_sockets(int mapped)
{
	lo = (int)if_nametoindex("lo");
	if (!lo)
		die("if_nametoindex(lo)");
	raw = packet_socket(SOCK_RAW, htons(ETH_P_ALL));
	set_int(raw, PACKET_VERSION, TPACKET_V2, "PACKET_VERSION");
	set_int(raw, PACKET_AUXDATA, 1, "PACKET_AUXDATA");
	struct tpacket_req r = ring_req();
	if (setsockopt(raw, SOL_PACKET, PACKET_RX_RING, &r, sizeof r) != 0)
		die("PACKET_RX_RING");
	if (mapped && mmap(0, RING_BLOCK * RING_BLOCKS, PROT_READ | PROT_WRITE, MAP_SHARED, raw, 0) == MAP_FAILED)
		die("mmap of the ring");
	struct packet_mreq m = membership(PACKET_MR_PROMISC);
	if (setsockopt(raw, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &m, sizeof m) != 0)
		die("PACKET_ADD_MEMBERSHIP promisc");
	raw_fanout = (uint32_t)(getpid() & 0x7fff) | (uint32_t)PACKET_FANOUT_HASH << 16;
	set_int(raw, PACKET_FANOUT, (int)raw_fanout, "PACKET_FANOUT hash");

	ip = packet_socket(SOCK_DGRAM, htons(ETH_P_IP));
	struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = lo};
	if (bind(ip, (struct sockaddr *)&ll, sizeof ll) != 0)
		die("bind ip to lo");
	set_int(ip, PACKET_RESERVE, RESERVE, "PACKET_RESERVE");
	set_int(ip, PACKET_ORIGDEV, 1, "PACKET_ORIGDEV");
	m = membership(PACKET_MR_MULTICAST);
	if (setsockopt(ip, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &m, sizeof m) != 0)
		die("PACKET_ADD_MEMBERSHIP multicast");
	ip_fanout = (uint32_t)((getpid() & 0x7fff) | 0x8000) | (uint32_t)PACKET_FANOUT_LB << 16;
	set_int(ip, PACKET_FANOUT, (int)ip_fanout, "PACKET_FANOUT lb");

	old = packet_socket(SOCK_PACKET, htons(ETH_P_ALL));
	struct sockaddr sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_family = AF_PACKET;
	strcpy(sa.sa_data, "lo");
	if (bind(old, &sa, sizeof sa) != 0)
		die("bind old to lo");

	udp_to = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	udp_from = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (bind(udp_to, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(udp_to, (struct sockaddr *)&to_addr, &al) != 0)
		die("the UDP receiver");
}

static void check_options(int s)
{
	if (get_int(raw, PACKET_VERSION) != TPACKET_V2 || get_int(raw, PACKET_AUXDATA) != 1 ||
	    (uint32_t)get_int(raw, PACKET_FANOUT) != raw_fanout)
		say_fail("step %d: raw's version %d, auxdata %d, fanout %#x; expected %d, 1, %#x", s, get_int(raw, PACKET_VERSION),
			 get_int(raw, PACKET_AUXDATA), get_int(raw, PACKET_FANOUT), TPACKET_V2, raw_fanout);
	if (get_int(ip, PACKET_RESERVE) != RESERVE || get_int(ip, PACKET_ORIGDEV) != 1 ||
	    (uint32_t)get_int(ip, PACKET_FANOUT) != ip_fanout || get_int(ip, PACKET_VERSION) != TPACKET_V1)
		say_fail("step %d: ip's reserve %d, origdev %d, fanout %#x; expected %d, 1, %#x", s, get_int(ip, PACKET_RESERVE),
			 get_int(ip, PACKET_ORIGDEV), get_int(ip, PACKET_FANOUT), RESERVE, ip_fanout);
	struct sockaddr_ll ll;
	socklen_t l = sizeof ll;
	if (getsockname(ip, (struct sockaddr *)&ll, &l) != 0 || ll.sll_ifindex != lo || ll.sll_protocol != htons(ETH_P_IP))
		say_fail("step %d: ip is bound to interface %d protocol %#x, expected %d %#x", s, ll.sll_ifindex,
			 ntohs(ll.sll_protocol), lo, ETH_P_IP);
	struct sockaddr sa;
	l = sizeof sa;
	if (getsockname(old, &sa, &l) != 0 || strcmp(sa.sa_data, "lo"))
		say_fail("step %d: old is bound to \"%.14s\", expected lo", s, sa.sa_data);
	struct tpacket_req r = ring_req();
	if (setsockopt(raw, SOL_PACKET, PACKET_RX_RING, &r, sizeof r) == 0 || errno != EBUSY)
		say_fail("step %d: raw's receive ring is gone (setting it again: %s)", s, strerror(errno));
}

/* Whether a frame with the marker goes by on fd within ms milliseconds. */
static int sees(int fd, const char *marker, int ms)
{
	static char frame[65536];
	size_t n = strlen(marker);
	struct pollfd p = {fd, POLLIN, 0};
	while (poll(&p, 1, ms) > 0) {
		ssize_t r = recv(fd, frame, sizeof frame, MSG_DONTWAIT);
		for (ssize_t i = 0; r > 0 && i + (ssize_t)n <= r; i++)
			if (!memcmp(frame + i, marker, n))
				return 1;
	}
	return 0;
}

static void marker_goes_by(int s)
{
	char marker[32];
	snprintf(marker, sizeof marker, "ckrun-packet-mark-%d", s);
	int seen_ip = 0, seen_old = 0;
	for (int tries = 0; tries < 50 && !(seen_ip && seen_old); tries++) {
		if (sendto(udp_from, marker, strlen(marker), 0, (struct sockaddr *)&to_addr, sizeof to_addr) < 0)
			say_fail("step %d: sending the marker failed: %s", s, strerror(errno));
		seen_ip = seen_ip || sees(ip, marker, 20);
		seen_old = seen_old || sees(old, marker, 20);
	}
	if (!seen_ip || !seen_old)
		say_fail("step %d: the marker was not seen on %s", s, !seen_ip ? "ip" : "old");
	char drain[256];
	while (recv(udp_to, drain, sizeof drain, MSG_DONTWAIT) > 0)
		;
}

int main(int argc, char **argv)
{
	int steps = 100, mapped = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--mapped"))
			mapped = 1;
	}
	open_sockets(mapped);
	say("packet: start steps=%d", steps);
	uint64_t h = 0;
	for (int s = 1; s <= steps; s++) {
		check_options(s);
		marker_goes_by(s);
		h = mix64(h, (uint64_t)s);
		say("step %d %016" PRIx64, s, h);
		pace_ms(30);
	}
	struct packet_mreq promisc = membership(PACKET_MR_PROMISC), multi = membership(PACKET_MR_MULTICAST);
	if (setsockopt(raw, SOL_PACKET, PACKET_DROP_MEMBERSHIP, &promisc, sizeof promisc) != 0)
		say_fail("dropping raw's promiscuous membership failed (%s): it was gone", strerror(errno));
	if (setsockopt(ip, SOL_PACKET, PACKET_DROP_MEMBERSHIP, &multi, sizeof multi) != 0)
		say_fail("dropping ip's multicast membership failed (%s): it was gone", strerror(errno));
	say("done %016" PRIx64, h);
	return 0;
}
