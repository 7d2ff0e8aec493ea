/* The fast start of `ckrun restart` (bin/ckrun restart …).
 *
 * Node takes longer to start on its own than a whole restart may take.
 * So the restore host starts first: it finds the newest generation,
 * verifies the image as ckrun would, listens on the session's socket,
 * creates the process with its original PID and restores it, and hands
 * the session to node (`ckrun restart --adopt PID:FD IMAGE`), which starts
 * while the program already runs again and accepts the connection waiting
 * on the socket. Whatever this path does not take on (a family, a
 * compressed image, no root, a PID in use, a damaged image, an option it
 * does not know) goes to node's own restart from the beginning, which also
 * gives every refusal its full message. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ckrun.h"
#include "cbor.h"
#include "crc32c.h"
#include "restore.h"

struct front_args {
	const char *cli;     /* bin/ckrun.js */
	char **restart_args; /* what the user gave after `restart` */
	int nargs;
	const char *dir;     /* --dir */
	const char *target;  /* IMAGE: a generation or a checkpoint directory */
	int verbose, verify_data;
};

static __attribute__((noreturn)) void to_node(const struct front_args *a)
{
	char **argv = calloc((size_t)a->nargs + 4, sizeof *argv);
	if (!argv)
		_exit(70);
	argv[0] = "node";
	argv[1] = (char *)a->cli;
	argv[2] = "restart";
	for (int i = 0; i < a->nargs; i++)
		argv[3 + i] = a->restart_args[i];
	execvp("node", argv);
	fprintf(stderr, "ckrun restart: cannot run node: %s\n", strerror(errno));
	_exit(127);
}

/* Options that only matter to the session node runs are handed on as they are. */
static int passed_on(const char *s)
{
	return !strcmp(s, "--interval") || !strcmp(s, "--signal") || !strncmp(s, "--interval=", 11) ||
	       !strncmp(s, "--signal=", 9);
}

/* --keep N, --full-every K: handed on too, when N is a count node accepts
 * (node refuses anything else before a process exists). */
static int count_option(const char *s)
{
	return !strcmp(s, "--keep") || !strcmp(s, "--full-every");
}

static int plain_count(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 9 || *s < '1' || *s > '9')
		return 0;
	return strspn(s, "0123456789") == n;
}

/* 1: understood; 0: an option only node's restart knows. */
static int parse_args(struct front_args *a)
{
	a->verify_data = 1;
	for (int i = 0; i < a->nargs; i++) {
		const char *s = a->restart_args[i];
		if ((!strcmp(s, "--dir") || !strcmp(s, "--interval") || !strcmp(s, "--signal")) && i + 1 < a->nargs) {
			if (!strcmp(s, "--dir"))
				a->dir = a->restart_args[i + 1];
			i++;
		} else if (!strncmp(s, "--dir=", 6)) {
			a->dir = s + 6;
		} else if (!strcmp(s, "-v") || !strcmp(s, "--verbose")) {
			a->verbose = 1;
		} else if (!strcmp(s, "--no-verify-data")) {
			a->verify_data = 0;
		} else if (count_option(s)) {
			if (i + 1 >= a->nargs || !plain_count(a->restart_args[i + 1]))
				return 0;
			i++;
		} else if (passed_on(s)) {
			continue;
		} else if (s[0] == '-' || a->target) {
			return 0;
		} else {
			a->target = s;
		}
	}
	return !(a->dir && a->target);
}

static int has_manifest(const char *dir)
{
	char path[PATH_MAX + 32];
	struct stat st;
	snprintf(path, sizeof path, "%s/manifest.cbor", dir);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A restart runs what a checkpoint holds: the fast start takes on only
 * the restarter's own (node refuses others, or takes them with
 * --trust-owner, and says why). */
static int owned_by_me(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && st.st_uid == geteuid();
}

static int is_number(const char *s)
{
	if (*s < '1' || *s > '9')
		return 0;
	while (*s >= '0' && *s <= '9')
		s++;
	return !*s;
}

/* The newest generation of dir (into gen), or 0. One without a manifest
 * is damaged (the number appears only once the manifest is written):
 * node's restart says so and which older one it uses instead. */
static int newest_generation(const char *dir, char *gen, size_t cap)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	long best = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!is_number(e->d_name) || strlen(e->d_name) > 16)
			continue;
		long n = strtol(e->d_name, 0, 10);
		char path[PATH_MAX + 32];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (n > best && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			best = n;
	}
	closedir(d);
	return best > 0 && snprintf(gen, cap, "%s/%ld", dir, best) < (int)cap && has_manifest(gen);
}

/* ---- verifying an image's data, on two threads ---- */

struct chunk {
	const uint8_t *p;
	uint64_t len;
	uint32_t crc;
	uint32_t got_a, got_b; /* halves: [0, split) by the caller, [split, len) by the helper */
	uint64_t split;
};

struct chunk_list {
	struct chunk *c;
	size_t n, cap;
	const uint8_t *base;
	const struct ck_image *img;
};

/* ck_meta_chunks' callback: the image's own chunks (already checked to lie
 * in its data area by ck_image_read); pages held by other images are
 * checked with those. */
static int add_chunk(void *ctx, uint64_t off, uint64_t len, uint32_t crc, int ref)
{
	struct chunk_list *l = ctx;
	if (ref >= 0)
		return 1;
	if (!ck_chunk_inside(l->img, off, len))
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		struct chunk *c = realloc(l->c, l->cap * sizeof *l->c);
		if (!c)
			return 0;
		l->c = c;
	}
	l->c[l->n++] = (struct chunk){.p = l->base + off, .len = len, .crc = crc};
	return 1;
}

/* CRC of mapped image data; large parts are faulted in with one call
 * (page by page, faults would cost as much as the checksum). */
static uint32_t crc_mapped(const uint8_t *p, uint64_t len)
{
	if (len >= (64u << 10)) {
		uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(CK_PAGE - 1), hi = CK_PAGE_UP((uintptr_t)p + len);
		madvise((void *)lo, hi - lo, MADV_POPULATE_READ);
	}
	return ck_crc32c(0, p, len);
}

static void *check_second_halves(void *arg)
{
	struct chunk_list *l = arg;
	for (size_t i = 0; i < l->n; i++)
		if (l->c[i].split < l->c[i].len)
			l->c[i].got_b = crc_mapped(l->c[i].p + l->c[i].split, l->c[i].len - l->c[i].split);
	return 0;
}

/* Large chunks are halved between two threads; small ones go whole to
 * whichever thread has less to do (few halves: each join costs a little). */
static int check_chunks(struct chunk_list *l)
{
	uint64_t mine = 0, helper = 0;
	for (size_t i = 0; i < l->n; i++) {
		struct chunk *c = &l->c[i];
		if (c->len >= (4u << 20))
			c->split = CK_PAGE_DOWN(c->len / 2);
		else
			c->split = mine <= helper ? c->len : 0;
		mine += c->split;
		helper += c->len - c->split;
	}
	ck_crc32c(0, "", 0); /* its tables are built on first use: before the helper runs */
	pthread_t t;
	int threaded = helper > 0 && pthread_create(&t, 0, check_second_halves, l) == 0;
	if (!threaded)
		for (size_t i = 0; i < l->n; i++)
			l->c[i].split = l->c[i].len;
	for (size_t i = 0; i < l->n; i++)
		l->c[i].got_a = l->c[i].split ? crc_mapped(l->c[i].p, l->c[i].split) : 0;
	if (threaded)
		pthread_join(t, 0);
	for (size_t i = 0; i < l->n; i++) {
		struct chunk *c = &l->c[i];
		uint32_t got = c->split == c->len ? c->got_a
			       : c->split == 0    ? c->got_b
						  : ck_crc32c_combine(c->got_a, c->got_b, c->len - c->split);
		if (got != c->crc)
			return 0;
	}
	return 1;
}

/* 1 when every checksummed chunk of the loaded image passes (the file
 * is exactly file_len long: ck_image_load checked it). */
static int image_data_ok(const struct ck_image *img)
{
	void *whole = mmap(0, img->file_len, PROT_READ, MAP_PRIVATE, img->fd, 0);
	if (whole == MAP_FAILED)
		return 0;
	struct chunk_list l = {.base = whole, .img = img};
	int ok = ck_meta_chunks(img->meta, img->meta_len, add_chunk, &l) && check_chunks(&l);
	free(l.c);
	munmap(whole, img->file_len);
	return ok;
}

/* The same for an image the loaded one refers to (incremental): all of
 * its data, as node's reader verifies it. */
static int referenced_data_ok(const char *path)
{
	static struct ck_image ref;
	memset(&ref, 0, sizeof ref);
	ck_image_load(&ref, path);
	int ok = image_data_ok(&ref);
	close(ref.fd);
	free(ref.meta);
	return ok;
}

/* ---- the session ---- */

/* `ckrun-<16 hex digits of FNV-1a 64 of the canonical DIR>`: as src/protocol.ts names it. */
static void session_name(const char *canonical, char *out, size_t cap)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)canonical; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	snprintf(out, cap, "ckrun-%016llx", (unsigned long long)h);
}

/* The session's listening socket, or -1 (another session has it). */
static int listen_session(const char *name)
{
	struct sockaddr_un a;
	unsigned alen = ck_session_addr(&a, name);
	int fd = alen ? socket(AF_UNIX, SOCK_STREAM, 0) : -1; /* node inherits it */
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, alen) != 0 ||
	    listen(fd, 128) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void stdio_ids(char *out, size_t cap)
{
	size_t len = 0;
	out[0] = 0;
	for (int k = 0; k < 3; k++) {
		struct stat st;
		if (fstat(k, &st) != 0)
			st.st_dev = st.st_ino = 0;
		len += (size_t)snprintf(out + len, cap - len, "%s%llu:%llu", k ? "," : "", (unsigned long long)st.st_dev,
					(unsigned long long)st.st_ino);
		if (len >= cap)
			break;
	}
}

enum id_state { ID_FREE, ID_DYING, ID_LIVE };

/* Whether a PID/TID is free, held by a zombie or a task being killed, or
 * by a live one (as src/restart.ts's pidState tells them apart). */
static enum id_state id_state(int id)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", id);
	FILE *f = fopen(path, "r");
	if (!f)
		return ID_FREE;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *close_paren = strrchr(buf, ')');
	if (!close_paren)
		return ID_FREE;
	char st = close_paren[2];
	if (st == 'Z' || st == 'X' || st == 'x')
		return ID_DYING;
	snprintf(path, sizeof path, "/proc/%d/status", id);
	f = fopen(path, "r");
	if (!f)
		return ID_FREE;
	enum id_state s = ID_LIVE;
	char line[256];
	while (fgets(line, sizeof line, f)) {
		unsigned long long mask;
		if ((sscanf(line, "SigPnd: %llx", &mask) == 1 || sscanf(line, "ShdPnd: %llx", &mask) == 1) &&
		    (mask & (1ULL << (SIGKILL - 1))))
			s = ID_DYING;
	}
	fclose(f);
	return s;
}

/* Waits (3 s at most, as node's restart does) for every PID and TID of the
 * image held by a dying task to be free; 0 if one is live or stays taken. */
static int ids_free(const struct ck_image *img)
{
	for (int tries = 0; tries < 150; tries++) {
		int dying = 0;
		/* its threads, itself, and the zombies it had not reaped */
		for (size_t i = 0; i <= img->nthreads + img->nchildren; i++) {
			int id = i < img->nthreads ? img->threads[i].tid : i == img->nthreads ? img->pid : img->children[i - img->nthreads - 1].pid;
			if (i > img->nthreads && !img->children[i - img->nthreads - 1].zombie)
				continue;
			enum id_state s = id_state(id);
			if (s == ID_LIVE)
				return 0;
			dying |= s == ID_DYING;
		}
		/* the groups of its zombies whose leaders had been reaped */
		for (size_t i = 0; i < img->nchildren; i++) {
			int g = ck_zombie_placeholder(img, i);
			enum id_state s = g ? id_state(g) : ID_FREE;
			if (s == ID_LIVE)
				return 0;
			dying |= s == ID_DYING;
		}
		if (!dying)
			return 1;
		usleep(20000);
	}
	return 0;
}

static jmp_buf refused;
static uint64_t started_ns;

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Files kept after the checkpoint (src/files-late.ts) are put back by node. */
static int has_late_files(const char *gen)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/files-late.jsonl", gen);
	struct stat st;
	return lstat(path, &st) == 0 || errno != ENOENT;
}

/* CKRUN_TRACE=1: the phases of the fast start on stderr, as node marks its own. */
static void trace(const char *phase)
{
	if (getenv("CKRUN_TRACE"))
		fprintf(stderr, "ckrun-restore[%d]: %s at %.1f ms\n", (int)getpid(), phase, (double)(mono_ns() - started_ns) / 1e6);
}

/* The checkpoint directory as node's src/dirtrust.ts would accept it,
 * checked only as far as the fast start needs (it runs as root): the path
 * has no symbolic link (else node judges it), every directory on it is
 * root's and not writable by group or others unless sticky, and the
 * directory itself is writable by nobody else. Anything else goes to node,
 * which refuses it with a message before any process exists. */
static int dir_plainly_trusted(const char *dir, const char *canonical)
{
	char abs[PATH_MAX];
	if (dir[0] == '/') {
		if (snprintf(abs, sizeof abs, "%s", dir) >= (int)sizeof abs)
			return 0;
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd) || snprintf(abs, sizeof abs, "%s/%s", cwd, dir) >= (int)sizeof abs)
			return 0;
	}
	/* the path as given, without "." and repeated or trailing slashes,
	 * must be the canonical one: no link, no ".." on the way */
	char plain[PATH_MAX];
	size_t n = 0;
	for (const char *c = abs; *c;) {
		while (*c == '/')
			c++;
		size_t len = strcspn(c, "/");
		if (len == 0 || (len == 1 && c[0] == '.')) {
			c += len;
			continue;
		}
		if (n + 1 + len + 1 > sizeof plain)
			return 0;
		plain[n++] = '/';
		memcpy(plain + n, c, len);
		n += len;
		c += len;
	}
	plain[n] = 0;
	if (strcmp(n ? plain : "/", canonical) != 0)
		return 0;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s", canonical);
	struct stat root;
	if (lstat("/", &root) != 0 || root.st_uid != 0 || (root.st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	for (size_t end = 1;; end++) {
		int last = path[end] == 0;
		if (path[end] != '/' && !last)
			continue;
		char keep = path[end];
		path[end] = 0;
		struct stat st;
		int ok = lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 &&
			 (!(st.st_mode & (S_IWGRP | S_IWOTH)) || (!last && (st.st_mode & S_ISVTX)));
		path[end] = keep;
		if (!ok)
			return 0;
		if (last)
			return 1;
	}
}

CK_HIDDEN int ck_front_main(int argc, char **argv)
{
	struct front_args a = {.cli = argv[0], .restart_args = argv + 1, .nargs = argc - 1};
	started_ns = mono_ns();
	unsetenv("CKRUN_TRUST_OWNER"); /* only --trust-owner says so, and node handles it */
	/* only node's restart says so, having compared the files' content */
	unsetenv("CKRUN_FILES_SAME");
	unsetenv("CKRUN_FILES_CARRIED");
	unsetenv("CKRUN_CARRIED_DIR");
	if (!parse_args(&a) || geteuid() != 0)
		to_node(&a);

	/* the generation: named, or the newest in the checkpoint directory */
	char gen[PATH_MAX], dir[PATH_MAX], canonical[PATH_MAX];
	const char *target = a.target ? a.target : a.dir ? a.dir : "ckpt";
	if (strlen(target) >= sizeof gen - 32)
		to_node(&a);
	if (has_manifest(target)) {
		/* the checkpoint directory is the generation's, lexically (as node's dirname) */
		snprintf(gen, sizeof gen, "%s", target);
		snprintf(dir, sizeof dir, "%s", target);
		size_t n = strlen(dir);
		while (n > 1 && dir[n - 1] == '/')
			dir[--n] = 0;
		char *slash = strrchr(dir, '/');
		if (!slash)
			snprintf(dir, sizeof dir, ".");
		else if (slash == dir)
			dir[1] = 0;
		else
			*slash = 0;
	} else {
		if (!newest_generation(target, gen, sizeof gen))
			to_node(&a);
		snprintf(dir, sizeof dir, "%s", target);
	}
	if (a.dir)
		snprintf(dir, sizeof dir, "%s", a.dir);
	if (!realpath(dir, canonical) || access(canonical, W_OK) != 0 || !dir_plainly_trusted(dir, canonical))
		to_node(&a);

	char manifest[PATH_MAX + 32];
	snprintf(manifest, sizeof manifest, "%s/manifest.cbor", gen);
	if (!owned_by_me(dir) || !owned_by_me(gen) || !owned_by_me(manifest))
		to_node(&a); /* another user's checkpoint: node refuses it or, trusted, restores it */

	static struct ck_image img;
	static struct ck_manifest m;
	char image[PATH_MAX + 64];
	if (setjmp(refused)) {
		ck_refusal_escape = 0;
		to_node(&a); /* node says what is wrong, and which older generation it uses instead */
	}
	ck_refusal_escape = &refused;
	ck_manifest_read(&m, gen);
	/* a family, a daemon without its parents, compressed, or files to put
	 * back before the program runs (src/files.ts): node's */
	if (m.nprocs != 1 || m.procs[0].pid != m.root || strstr(m.procs[0].image, ".gz") || m.has_files || has_late_files(gen))
		to_node(&a);
	int pid = m.procs[0].pid;
	snprintf(image, sizeof image, "%s/%s", gen, m.procs[0].image);
	trace("generation found");
	ck_load_and_check(&img, image, 0);
	ck_image_matches(&img, &m.procs[0], gen);
	trace("image checked (header, metadata, files)");
	if (!ids_free(&img))
		to_node(&a);
	if (a.verify_data) {
		if (!image_data_ok(&img))
			to_node(&a);
		for (int i = 0; i < img.nimages; i++) {
			char ref[PATH_MAX + 64];
			snprintf(ref, sizeof ref, "%s/%s", gen, img.images[i]);
			if (!referenced_data_ok(ref))
				to_node(&a);
		}
	}
	ck_refusal_escape = 0;
	trace(a.verify_data ? "data verified" : "data not verified (--no-verify-data)");

	char sock[64], stdio[160], sig[16];
	session_name(canonical, sock, sizeof sock);
	int lfd = listen_session(sock);
	if (lfd < 0)
		to_node(&a); /* another session writes there: node says so */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	stdio_ids(stdio, sizeof stdio);
	snprintf(sig, sizeof sig, "%d", img.sig);
	long child = ck_spawn_with_pid(pid);
	if (child < 0) {
		close(lfd);
		to_node(&a); /* taken meanwhile */
	}
	if (child == 0) {
		/* ends with ckrun, as a host node spawned would */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(lfd);
		setenv("CKRUN_SOCK", sock, 1);
		setenv("CKRUN_STDIO", stdio, 1);
		setenv("CKRUN_SIGNAL", sig, 1);
		if (a.verbose)
			setenv("CKRUN_VERBOSE", "1", 1);
		ck_restore_loaded(&img);
	}

	trace("restore host forked");
	/* node takes the session over; the program runs meanwhile */
	char adopt[64];
	snprintf(adopt, sizeof adopt, "%ld:%d", child, lfd);
	char **nargv = calloc((size_t)a.nargs + 8, sizeof *nargv);
	int k = 0;
	if (!nargv) {
		kill((pid_t)child, SIGKILL);
		return 70;
	}
	nargv[k++] = "node";
	nargv[k++] = (char *)a.cli;
	nargv[k++] = "restart";
	nargv[k++] = "--adopt";
	nargv[k++] = adopt;
	for (int i = 0; i < a.nargs; i++)
		if (a.restart_args[i] != a.target)
			nargv[k++] = a.restart_args[i];
	nargv[k++] = image;
	nargv[k] = 0;
	execvp("node", nargv);
	fprintf(stderr, "ckrun restart: cannot run node to coordinate the restarted program: %s\n", strerror(errno));
	kill((pid_t)child, SIGKILL);
	return 127;
}
