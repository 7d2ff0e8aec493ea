/* Sockets: what sockets.c (the "socket" kind) and the files of the
 * families it hands each socket to (sk-unix.c, sk-inet.c) share. The
 * image's "socket" part of a descriptor is a struct ck_img_socket: what
 * every socket has, and the family's own part. */
#ifndef CK_SOCKETS_H
#define CK_SOCKETS_H

#include "ckrun.h"
#include "restore.h"

struct ck_img_sockopt {
	int level, name;
	unsigned len;
	uint8_t val[32];
};
struct ck_img_unix; /* sk-unix.c: the "unix" map of a Unix socket */
struct ck_img_inet;
struct ck_img_netlink; /* sk-netlink.c: the "netlink" map of a netlink socket */
struct ck_img_packet;  /* sk-packet.c: the "packet" map of a packet socket */
/* sk-inet.c: an address is kept as 16 bytes (IPv4 as ::ffff:a.b.c.d) so
 * ends of one connection compare equal whatever their socket's family */
struct ck_img_inaddr {
	int set;
	uint8_t addr[16];
	int port;
};
struct ck_img_dgram {
	struct ck_img_inaddr from;
	uint64_t off, len;
	uint32_t crc;
};
struct ck_img_queue {
	uint64_t off, len;
	uint32_t crc;
};
struct ck_img_inet {
	struct ck_img_inaddr local, peer;
	int tcp_state; /* TCP_ESTABLISHED...; 0 for UDP */
	int ended;     /* state CLOSE after both ends were shut down; its other end is in the same process */
	uint64_t shutdown; /* UDP: the kernel's shutdown bits (1 receive, 2 send) */
	uint64_t backlog;
	int has_backlog;
	struct ck_img_queue recv_q, unsent_q, send_q;
	uint64_t send_unsent;     /* send_q's last bytes TCP had not sent */
	uint32_t send_seq, recv_seq; /* the sequence numbers of the queues' first bytes */
	int has_send_seq, has_recv_seq;
	uint64_t repair[11]; /* the "repair" key (sk-inet.c, save_repair_state) */
	int has_repair;
	struct ck_img_dgram *dgrams;
	size_t ndgrams;
};
struct ck_img_unix {
	uint64_t ino, peer;  /* inodes at checkpoint time; peer 0: none or gone */
	int state;           /* 1 connected, 7 unconnected, 10 listening */
	uint8_t name[108], peer_name[108]; /* sun_path bytes; abstract: a leading 0 */
	unsigned namelen, peer_namelen;
	uint64_t backlog, shutdown, sndbuf, rcvbuf;
	uint64_t *pending;   /* listening: the clients of connections not yet accepted */
	size_t npending;
	uint64_t *msgs;      /* the lengths of the queued messages (stream: runs) */
	size_t nmsgs;
	struct ck_img_passed { /* descriptors in flight (SCM_RIGHTS) */
		size_t msg;      /* with message msgs[msg] */
		char kind[8];    /* file, pipe, socket */
		char *path;
		int flags, read_end;
		int64_t offset;
		uint64_t id;     /* a pipe's id, a socket's inode */
		uint64_t capacity, data_off, data_len; /* a pipe: its bytes (read end) */
		uint32_t data_crc;
	} *passed;
	size_t npassed;
	struct ck_img_uname { /* the sender's name of each message (datagrams; len 0: unnamed) */
		uint8_t name[108];
		unsigned len;
	} *from;
	int has_msgs;
	int reset;           /* the kernel held a reset (ECONNRESET) for it */
	int has_file;        /* the socket file's mode and owner (path names) */
	int file_gone;       /* its socket file was no longer at its name */
	uint32_t file_mode, file_uid, file_gid;
	uint64_t qoff, qlen; /* the receive queue's bytes in the image */
	uint32_t qcrc;
};
struct ck_img_socket {
	int family, type, protocol;
	struct ck_img_sockopt *opts;
	size_t nopts;
	void *filter; /* a classic BPF program (struct sock_filter[]), attached again after the queues */
	unsigned filter_len;
	int filter_locked;
	struct ck_img_unix *unix_part;
	struct ck_img_inet *inet_part;
	struct ck_img_netlink *netlink_part;
	struct ck_img_packet *packet_part;
};

/* One socket descriptor of an image, as sockets.c hands it to its family. */
struct ck_sock_file {
	struct ck_image *img;
	struct ck_img_file *f;
	struct ck_img_socket *s;
};

/* sockopt.c: the options of the socket layer and of the family's
 * protocols, saved as raw bytes (ck_sockopt_put) and set again on a new
 * socket (of one level, or of every level with level < 0, skipping those
 * in except[], which ends with -1) */
CK_HIDDEN int ck_sockopt_int(int fd, int level, int name, int *v);
CK_HIDDEN void ck_sockopt_put(struct cb_enc *e, int fd, int level, int name);
CK_HIDDEN void ck_sockopt_put_changed(struct cb_enc *e, int fd, int level, int name);
CK_HIDDEN void ck_sockopts_apply(int fd, const struct ck_img_file *f, const struct ck_img_socket *s, int level,
				 const int *except);
CK_HIDDEN void ck_sockopt_apply_one(int fd, const struct ck_img_socket *s, int name);
CK_HIDDEN void ck_sockopts_apply_buffers(int fd, const struct ck_img_file *f, const struct ck_img_socket *s);

/* sk-unix.c */
CK_HIDDEN void ck_unix_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f, int type);
/* The "unix" key of a socket's map; 1 when it was ours, -1 when damaged. */
CK_HIDDEN int ck_unix_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s);
CK_HIDDEN void ck_unix_create_shared(struct ck_sock_file *socks, size_t n, struct ck_objects *objs, int base_fd);
CK_HIDDEN int ck_unix_open(struct ck_image *img, struct ck_img_file *f, const struct ck_img_socket *s, int base_fd,
			   const struct ck_objects *objs);

/* sk-inet.c */
CK_HIDDEN void ck_inet_options_save(struct cb_enc *e, const struct ck_fd *f, int family, int type);
CK_HIDDEN void ck_inet_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f, int family, int type,
			    int protocol);
CK_HIDDEN int ck_inet_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s);
CK_HIDDEN void ck_inet_create_shared(struct ck_sock_file *socks, size_t n, struct ck_objects *objs, int base_fd);
CK_HIDDEN int ck_inet_open(struct ck_image *img, struct ck_img_file *f, const struct ck_img_socket *s, int base_fd,
			   const struct ck_objects *objs);

/* sk-netlink.c */
CK_HIDDEN void ck_netlink_save(struct ck_writer *w, const struct ck_fd *f);
/* The "netlink" key of a socket's map; 1 when it was ours, -1 when damaged. */
CK_HIDDEN int ck_netlink_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s);
/* The socket made again, above base_fd (sockets.c makes each once) */
CK_HIDDEN int ck_netlink_make(const struct ck_sock_file *sf, int base_fd);

/* sk-packet.c */
CK_HIDDEN void ck_packet_save(struct ck_writer *w, const struct ck_fd *f, int type);
/* The "packet" key of a socket's map; 1 when it was ours, -1 when damaged. */
CK_HIDDEN int ck_packet_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_socket *s);
/* The socket made again, above base_fd (sockets.c makes each once) */
CK_HIDDEN int ck_packet_make(const struct ck_sock_file *sf, int base_fd);

/* sk-timewait.c: the addresses of a connection the restart brings back
 * (peer unset: a listener's address, whose accepted connections the
 * killed run had) */
struct ck_tw_own {
	struct ck_img_inaddr local, peer;
};
/* Removes the TIME-WAIT entries of these connections where allowed (says
 * what it did in -v). */
CK_HIDDEN void ck_tw_clear(const struct ck_tw_own *own, size_t n);
/* After EADDRINUSE on at: 1 when only TIME-WAIT entries of own held it
 * and they have now expired (waited for), so bind again; -1 when other
 * TIME-WAIT entries hold it, 0 when a socket holds it, with why in why. */
CK_HIDDEN int ck_tw_port_wait(const struct ck_img_inaddr *at, const struct ck_tw_own *own, size_t n, char *why,
			      size_t whylen);

#endif
