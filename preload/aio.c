/* AIO contexts (io_setup). A context is a ring the kernel maps into the
 * process ("/[aio] (deleted)" in /proc/self/maps); its address is the
 * context ID the program holds. The kernel keeps the ring's write position
 * to itself, so a restart cannot copy the ring back: the restore core
 * creates a context of the same size, moves its ring to the old address
 * (mremap, which moves the ID with it), and brings head and tail back to
 * where they were by completing requests of its own: writes of nothing to
 * /dev/null, reaped, for the completions the program had reaped, then, for
 * each completion not yet reaped, a write to /dev/null of exactly its
 * result's length from an iocb placed for a moment at its iocb's address
 * (which the completion names), with its aio_data.
 *
 * Requests still in flight cannot be given back. The kernel does not show
 * them, so the shim counts what the program submits and reaps through
 * libc's syscall() (glibc has no wrappers for these calls; libaio uses
 * syscall() too): a context with requests in flight, one made behind
 * libc's back, or a completion that is not a plain byte count fails the
 * checkpoint. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

#define MAX_CONTEXTS 64
#define AIO_RING_MAGIC 0xa10a10a1u
#define MAX_RESULT 0x7ffff000LL /* MAX_RW_COUNT: the longest write the core can replay */

struct aio_ring_hdr {
	uint32_t id, nr, head, tail, magic, compat_features, incompat_features, header_length;
	struct io_event events[];
};

/* a context the program made through syscall(), with what it submitted
 * and reaped there */
struct context {
	uint64_t ctx;
	uint32_t nr_events;
	uint64_t submitted, reaped;
};

static struct context contexts[MAX_CONTEXTS];
static volatile int lock; /* the TID that holds it, 0: free (ck_records_lock) */

/* rings found at the checkpoint */
static struct {
	uint64_t ctx, len;
	uint32_t nr_events;
} rings[MAX_CONTEXTS];
static int nrings;

/* ---- counting, in the syscall() wrapper ---- */

static struct context *context_of(uint64_t ctx)
{
	for (int i = 0; i < MAX_CONTEXTS; i++)
		if (contexts[i].ctx == ctx && ctx)
			return &contexts[i];
	return 0;
}

CK_HIDDEN void ck_aio_after(long nr, const long *a, long r)
{
	if (r < 0)
		return;
	struct context *c;
	switch (nr) {
	case SYS_io_setup: {
		uint64_t ctx = *(const uint64_t *)a[1];
		ck_records_lock(&lock);
		for (int i = 0; i < MAX_CONTEXTS; i++)
			if (!contexts[i].ctx) {
				contexts[i] = (struct context){ctx, (uint32_t)a[0], 0, 0};
				break;
			}
		ck_records_unlock(&lock);
		break; /* no room: found unrecorded at the checkpoint, and refused */
	}
	case SYS_io_destroy:
		if ((c = context_of((uint64_t)a[0])))
			__atomic_store_n(&c->ctx, 0, __ATOMIC_SEQ_CST);
		break;
	case SYS_io_submit:
		if ((c = context_of((uint64_t)a[0])))
			__atomic_fetch_add(&c->submitted, (uint64_t)r, __ATOMIC_SEQ_CST);
		break;
	case SYS_io_getevents:
	case SYS_io_pgetevents:
		if ((c = context_of((uint64_t)a[0])))
			__atomic_fetch_add(&c->reaped, (uint64_t)r, __ATOMIC_SEQ_CST);
		break;
	default:
		break;
	}
}

/* ---- the checkpoint ---- */

CK_HIDDEN int ck_is_aio_ring(const char *name)
{
	return ck_starts_with(name, "/[aio]");
}

static int say(char *why, size_t cap, const char *a, uint64_t ctx, const char *b)
{
	struct ck_str m;
	ck_str_init(&m, why, cap);
	ck_str_add(&m, a);
	ck_str_hex(&m, ctx);
	ck_str_add(&m, b);
	return 0;
}

static uint32_t unreaped(const struct aio_ring_hdr *r)
{
	return r->nr ? (r->tail % r->nr + r->nr - r->head % r->nr) % r->nr : 0;
}

static char *line_end(char *p)
{
	for (; *p; p++)
		if (*p == '\n')
			return p;
	return 0;
}

static long in_flight(const struct context *c, const struct aio_ring_hdr *r)
{
	return (long)(c->submitted - c->reaped) - (long)unreaped(r);
}

/* One ring mapping found in /proc/self/maps: the process's live context,
 * made through syscall(), with nothing in flight. */
static int check_ring(uint64_t start, uint64_t end, char *why, size_t cap)
{
	struct ck_timespec zero = {0, 0};
	if (CK_SYS5(SYS_io_getevents, start, 0, 0, 0, &zero) < 0)
		return say(why, cap, "the process maps the ring of an AIO context at ", start,
			   " that is not its own (a child keeps its parent's ring mapped after fork); ckrun cannot give it back");
	struct context *c = context_of(start);
	if (!c)
		return say(why, cap, "AIO context ", start,
			   " was created behind libc's back (io_setup by a system call instruction of its own), so ckrun "
			   "cannot tell whether requests are in flight; let the program use syscall() or libaio");
	const struct aio_ring_hdr *r = (const struct aio_ring_hdr *)start;
	if (r->magic != AIO_RING_MAGIC || !r->nr || (uint64_t)r->nr * sizeof r->events[0] + sizeof *r > end - start)
		return say(why, cap, "the ring of AIO context ", start, " is damaged");
	/* what is in flight completes on its own: a moment's wait, no more */
	for (int i = 0; i < 100 && in_flight(c, r) > 0; i++) {
		struct ck_timespec ms10 = {0, 10 * 1000000L};
		CK_SYS2(SYS_nanosleep, &ms10, 0);
	}
	long left = in_flight(c, r);
	if (left != 0)
		return say(why, cap, "AIO context ", start,
			   left > 0 ? " has requests in flight (submitted, not completed within 1 s), which no restart "
				      "could give back; checkpoint it when they are done"
				    : " has completions reaped without io_getevents (the program reads its ring itself), so "
				      "ckrun cannot tell whether requests are in flight");
	for (uint32_t k = 0, n = unreaped(r); k < n; k++) {
		const struct io_event *ev = &r->events[(r->head + k) % r->nr];
		if (ev->res < 0 || ev->res > MAX_RESULT || ev->res2 != 0)
			return say(why, cap, "AIO context ", start,
				   " holds a completion, not yet reaped, whose result is an error or not a byte count; "
				   "ckrun can give back only completions of reads and writes that succeeded");
	}
	rings[nrings].ctx = start;
	rings[nrings].len = end - start;
	rings[nrings].nr_events = c->nr_events;
	nrings++;
	return 1;
}

/* The leader, while every thread stands still: every ring mapping must
 * be one ckrun can make again. 0 with the reason in why otherwise. */
CK_HIDDEN int ck_aio_capture(char *why, size_t cap)
{
	char buf[4096 + 512];
	size_t have = 0;
	nrings = 0;
	int fd = (int)ck_openat(AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 1;
	int ok = 1;
	for (;;) {
		long got = ck_read(fd, buf + have, sizeof buf - 1 - have);
		if (got <= 0)
			break;
		have += (size_t)got;
		buf[have] = 0;
		char *line = buf, *nl;
		while ((nl = line_end(line))) {
			*nl = 0;
			const char *p = line, *name = line;
			uint64_t lo, hi;
			while (*name && *name != '/')
				name++;
			if (ck_is_aio_ring(name) && ck_parse_hex(&p, &lo) && *p++ == '-' && ck_parse_hex(&p, &hi) && ok) {
				if (nrings == MAX_CONTEXTS)
					ok = say(why, cap, "the process has more than 64 AIO contexts (the last at ", lo, ")");
				else
					ok = check_ring(lo, hi, why, cap);
			}
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		for (size_t i = 0; i < have; i++)
			buf[i] = line[i];
		if (have == sizeof buf - 1)
			have = 0; /* a line longer than any ring's */
	}
	ck_close(fd);
	return ok;
}

CK_HIDDEN void ck_aio_save(struct cb_enc *e)
{
	if (!nrings)
		return;
	cb_text(e, "aio");
	cb_array(e, (uint64_t)nrings);
	for (int i = 0; i < nrings; i++) {
		const struct aio_ring_hdr *r = (const struct aio_ring_hdr *)rings[i].ctx;
		uint32_t n = unreaped(r);
		cb_map(e, 7);
		cb_kv_uint(e, "ctx", rings[i].ctx);
		cb_kv_uint(e, "len", rings[i].len);
		cb_kv_uint(e, "nr_events", rings[i].nr_events);
		cb_kv_uint(e, "nr", r->nr);
		cb_kv_uint(e, "head", r->head % r->nr);
		cb_kv_uint(e, "tail", r->tail % r->nr);
		cb_text(e, "events");
		cb_array(e, n);
		for (uint32_t k = 0; k < n; k++) {
			const struct io_event *ev = &r->events[(r->head + k) % r->nr];
			cb_array(e, 4);
			cb_uint(e, ev->data);
			cb_uint(e, ev->obj);
			cb_int(e, ev->res);
			cb_int(e, ev->res2);
		}
	}
}

/* ---- the restore host ---- */

static int parse_ring(struct cb_dec *d, struct ck_img_aio *a)
{
	int64_t left, n, m;
	const char *k;
	size_t kl;
	uint64_t v;
	int seen = 0;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		int ok = 1;
		if (cbd_key_is(k, kl, "ctx")) {
			ok = cbd_uint(d, &a->ctx) && a->ctx && !(a->ctx & (CK_PAGE - 1));
			seen |= 1;
		} else if (cbd_key_is(k, kl, "len")) {
			ok = cbd_uint_max(d, 1ULL << 32, &a->len) && a->len && !(a->len & (CK_PAGE - 1));
			seen |= 2;
		} else if (cbd_key_is(k, kl, "nr_events") || cbd_key_is(k, kl, "nr") || cbd_key_is(k, kl, "head") ||
			   cbd_key_is(k, kl, "tail")) {
			ok = cbd_uint_max(d, UINT32_MAX, &v);
			uint32_t *f = cbd_key_is(k, kl, "nr_events") ? &a->nr_events
				      : cbd_key_is(k, kl, "nr")      ? &a->nr
				      : cbd_key_is(k, kl, "head")    ? &a->head
								     : &a->tail;
			*f = (uint32_t)v;
			seen |= cbd_key_is(k, kl, "nr_events") ? 4 : cbd_key_is(k, kl, "nr") ? 8 : cbd_key_is(k, kl, "head") ? 16 : 32;
		} else if (cbd_key_is(k, kl, "events")) {
			ok = cbd_array(d, &n) && n >= 0 && n < (1 << 24);
			a->events = ok ? calloc((size_t)n + 1, sizeof *a->events) : 0;
			for (int64_t i = 0; ok && i < n; i++) {
				struct ck_img_aio_event *ev = &a->events[i];
				ok = cbd_array(d, &m) && m == 4 && cbd_uint(d, &ev->data) && cbd_uint(d, &ev->obj) &&
				     cbd_int(d, &ev->res) && cbd_int(d, &ev->res2);
			}
			a->nevents = (uint32_t)n;
			seen |= 64;
		} else {
			ok = cbd_skip(d);
		}
		if (!ok)
			return 0;
	}
	return !d->error && seen == 127 && a->nr && a->head < a->nr && a->tail < a->nr &&
	       a->nevents == (a->tail + a->nr - a->head) % a->nr && a->ctx + a->len > a->ctx;
}

CK_HIDDEN int ck_aio_parse(struct cb_dec *d, struct ck_image *img)
{
	int64_t n;
	if (!cbd_array(d, &n) || n < 0 || n > MAX_CONTEXTS)
		return 0;
	img->attrs.aio = calloc((size_t)n + 1, sizeof *img->attrs.aio);
	img->attrs.naio = (uint32_t)n;
	for (int64_t i = 0; i < n; i++)
		if (!parse_ring(d, &img->attrs.aio[i]))
			return 0;
	return !d->error;
}

static const struct ck_img_region *region_at(const struct ck_image *img, uint64_t addr, uint64_t len)
{
	for (size_t i = 0; i < img->nregions; i++)
		if (img->regions[i].start <= addr && addr + len <= img->regions[i].end && addr + len > addr)
			return &img->regions[i];
	return 0;
}

/* The same kind of context must be possible here (its ring as large as
 * before: the kernel sizes it by the CPUs it may run on), and every
 * completion's iocb address writable memory of the image. */
CK_HIDDEN void ck_aio_check(struct ck_image *img)
{
	for (uint32_t i = 0; i < img->attrs.naio; i++) {
		const struct ck_img_aio *a = &img->attrs.aio[i];
		aio_context_t ctx = 0;
		long r = CK_SYS2(SYS_io_setup, a->nr_events, &ctx);
		if (r < 0)
			ck_refuse("image %s: cannot create AIO context %#llx again (io_setup of %u events): %s; see "
				  "/proc/sys/fs/aio-max-nr", img->path, (unsigned long long)a->ctx, a->nr_events, ck_errno_name(r));
		uint32_t nr = ((const struct aio_ring_hdr *)ctx)->nr;
		CK_SYS1(SYS_io_destroy, ctx);
		if (nr != a->nr)
			ck_refuse("image %s: AIO context %#llx had a ring of %u completions, and io_setup of %u events makes one "
				  "of %u here (the kernel sizes it by the number of CPUs): restart it on a machine like the "
				  "one it ran on", img->path, (unsigned long long)a->ctx, a->nr, a->nr_events, nr);
		if (region_at(img, a->ctx, a->len))
			ck_refuse("image %s is damaged: AIO context %#llx overlaps a memory region", img->path,
				  (unsigned long long)a->ctx);
		for (uint32_t k = 0; k < a->nevents; k++) {
			const struct ck_img_aio_event *ev = &a->events[k];
			const struct ck_img_region *r = region_at(img, ev->obj, sizeof(struct iocb));
			if (ev->res < 0 || ev->res > MAX_RESULT || ev->res2 != 0 || !r || !(r->prot & PROT_WRITE) || r->shared)
				ck_refuse("image %s: a completion of AIO context %#llx not yet reaped names an iocb at %#llx, "
					  "where ckrun cannot complete a request again (it needs the address in private "
					  "writable memory and a byte count as its result)", img->path,
					  (unsigned long long)a->ctx, (unsigned long long)ev->obj);
		}
	}
}

CK_HIDDEN uint64_t ck_aio_plan_size(const struct ck_image *img)
{
	uint64_t n = 16 + img->attrs.naio * sizeof(struct ck_plan_aio);
	for (uint32_t i = 0; i < img->attrs.naio; i++)
		n += img->attrs.aio[i].nevents * sizeof(struct ck_img_aio_event);
	return n;
}

/* The contexts into the plan (area: ck_aio_plan_size bytes in the hole),
 * with /dev/null above every descriptor of the program, closed by the
 * core once it is done. */
CK_HIDDEN void ck_aio_plan(struct ck_image *img, struct ck_plan *plan, void *area, int base_fd)
{
	plan->naio = img->attrs.naio;
	plan->aio_null_fd = -1;
	if (!plan->naio)
		return;
	uint64_t at = ((uint64_t)area + 15) & ~15ULL;
	plan->aio = (struct ck_plan_aio *)at;
	struct ck_img_aio_event *events = (struct ck_img_aio_event *)(plan->aio + plan->naio);
	for (uint32_t i = 0; i < plan->naio; i++) {
		struct ck_plan_aio *p = &plan->aio[i];
		memset(p, 0, sizeof *p);
		p->ring = img->attrs.aio[i];
		memcpy(events, p->ring.events, p->ring.nevents * sizeof *events);
		p->ring.events = events;
		events += p->ring.nevents;
	}
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || (plan->aio_null_fd = fcntl(fd, F_DUPFD_CLOEXEC, base_fd)) < 0)
		ck_refuse("cannot open /dev/null for the AIO contexts: %s", strerror(errno));
	close(fd);
	if (plan->nclose < (int)(sizeof plan->close_fds / sizeof plan->close_fds[0]))
		plan->close_fds[plan->nclose++] = plan->aio_null_fd;
}

/* ---- the restore core ---- */

static CK_CORE_FN long submit_one(struct ck_plan *p, uint64_t ctx, uint64_t at, uint64_t data, uint64_t nbytes, uint64_t buf)
{
	struct iocb *cb = (struct iocb *)at;
	ck_memset(cb, 0, sizeof *cb);
	cb->aio_data = data;
	cb->aio_lio_opcode = IOCB_CMD_PWRITE;
	cb->aio_fildes = (uint32_t)p->aio_null_fd;
	cb->aio_buf = buf;
	cb->aio_nbytes = nbytes;
	uint64_t list[1] = {at};
	return CK_SYS3(SYS_io_submit, ctx, 1, list);
}

/* The ring's head and tail where they were, with the completions not yet
 * reaped in it, each as it was. */
static CK_CORE_FN void replay(struct ck_plan *p, struct ck_plan_aio *a)
{
	const struct ck_img_aio *r = &a->ring;
	volatile struct aio_ring_hdr *ring = (volatile struct aio_ring_hdr *)r->ctx;
	struct io_event ev;
	long n;
	for (uint32_t k = 0; k < r->head; k++) {
		if ((n = submit_one(p, r->ctx, (uint64_t)a->iocb, 0, 0, r->ctx)) != 1 ||
		    (n = CK_SYS5(SYS_io_getevents, r->ctx, 1, 1, &ev, 0)) != 1)
			ck_core_fail(p, "bringing an AIO ring back to its position failed", n < 0 ? n : -EIO);
	}
	for (uint32_t k = 0; k < r->nevents; k++) {
		const struct ck_img_aio_event *e = &r->events[k];
		/* the completion names its iocb by address: one is placed there for a moment */
		ck_memcpy(a->save, (const void *)e->obj, sizeof a->save);
		n = submit_one(p, r->ctx, e->obj, e->data, (uint64_t)e->res, r->ctx);
		ck_memcpy((void *)e->obj, a->save, sizeof a->save);
		if (n != 1)
			ck_core_fail(p, "completing an AIO request again failed", n < 0 ? n : -EIO);
	}
	if (ring->head != r->head || ring->tail != r->tail)
		ck_core_fail(p, "an AIO ring did not come back to its position", -EIO);
}

CK_CORE void ck_core_aio(struct ck_plan *p)
{
	for (uint32_t i = 0; i < p->naio; i++) {
		struct ck_plan_aio *a = &p->aio[i];
		uint64_t ctx = 0;
		long r = CK_SYS2(SYS_io_setup, a->ring.nr_events, &ctx);
		if (r < 0)
			ck_core_fail(p, "creating an AIO context again failed", r);
		if (((volatile struct aio_ring_hdr *)ctx)->nr != a->ring.nr)
			ck_core_fail(p, "an AIO context came back with another ring size", -EINVAL);
		if (ctx != a->ring.ctx) {
			r = CK_SYS5(SYS_mremap, ctx, a->ring.len, a->ring.len, MREMAP_MAYMOVE | MREMAP_FIXED, a->ring.ctx);
			if (r != (long)a->ring.ctx)
				ck_core_fail(p, "moving an AIO ring to its address failed", r < 0 ? r : -EINVAL);
		}
		replay(p, a);
	}
}
