/* Event descriptors: eventfd (counter and flags) and epoll (the whole
 * interest list: events, flags such as EPOLLET and EPOLLONESHOT, and the
 * user data). Readiness is not saved: the kernel derives it again from
 * the watched descriptors when they are added back. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ckrun.h"
#include "restore.h"
#include "sys.h"

static const char *find_field(const char *text, const char *field)
{
	size_t n = ck_strlen(field);
	for (const char *p = text; *p;) {
		if (ck_strneq(p, field, n))
			return p + n;
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return 0;
}

static const char *skip_spaces(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

CK_HIDDEN void ck_eventfd_save(struct ck_writer *w, const struct ck_fd *f)
{
	char buf[1024];
	struct cb_enc *e = &w->meta;
	uint64_t count = 0, sem = 0;
	if (ck_read_fdinfo(f->fd, buf, sizeof buf) <= 0) {
		ck_writer_fail(w, -EIO, "cannot read an eventfd's state from /proc/self/fdinfo");
		return;
	}
	const char *p = find_field(buf, "eventfd-count:");
	if (p) {
		p = skip_spaces(p);
		ck_parse_hex(&p, &count);
	}
	p = find_field(buf, "eventfd-semaphore:");
	if (p) {
		p = skip_spaces(p);
		ck_parse_dec(&p, &sem);
	}
	cb_text(e, "eventfd");
	cb_map(e, 2);
	cb_kv_uint(e, "count", count);
	cb_kv_bool(e, "semaphore", sem != 0);
}

CK_HIDDEN void ck_epoll_save(struct ck_writer *w, const struct ck_fd *f)
{
	static char buf[64 * 1024];
	struct cb_enc *e = &w->meta;
	if (ck_read_fdinfo(f->fd, buf, sizeof buf) <= 0) {
		ck_writer_fail(w, -EIO, "cannot read an epoll descriptor's interest list from /proc/self/fdinfo");
		return;
	}
	cb_text(e, "epoll");
	cb_array_open(e);
	for (const char *p = buf; (p = find_field(p, "tfd:"));) {
		uint64_t tfd = 0, events = 0, data = 0;
		p = skip_spaces(p);
		ck_parse_dec(&p, &tfd);
		p = skip_spaces(p);
		if (ck_starts_with(p, "events:"))
			p = skip_spaces(p + 7), ck_parse_hex(&p, &events);
		p = skip_spaces(p);
		if (ck_starts_with(p, "data:"))
			p = skip_spaces(p + 5), ck_parse_hex(&p, &data);
		cb_array(e, 3);
		cb_uint(e, tfd);
		cb_uint(e, events);
		cb_uint(e, data);
	}
	cb_close(e);
}

/* ---- restore host ---- */

CK_HIDDEN int ck_events_parse(struct cb_dec *d, const char *k, size_t kl, struct ck_img_file *f)
{
	if (cbd_key_is(k, kl, "eventfd")) {
		int64_t left;
		const char *mk;
		size_t mkl;
		if (!cbd_map(d, &left))
			return -1;
		while (cbd_next_key(d, &left, &mk, &mkl)) {
			if (cbd_key_is(mk, mkl, "count")) {
				if (!cbd_uint(d, &f->eventfd_count))
					return -1;
			} else if (cbd_key_is(mk, mkl, "semaphore")) {
				if (!cbd_bool(d, &f->eventfd_semaphore))
					return -1;
			} else if (!cbd_skip(d)) {
				return -1;
			}
		}
		return d->error ? -1 : 1;
	}
	if (cbd_key_is(k, kl, "epoll")) {
		int64_t n;
		size_t cap = 8;
		if (!cbd_array(d, &n))
			return -1;
		f->epoll = malloc(cap * sizeof *f->epoll);
		while (cbd_next_item(d, &n)) {
			int64_t m;
			uint64_t v[3];
			if (!cbd_array(d, &m) || m != 3 || !cbd_uint(d, &v[0]) || !cbd_uint(d, &v[1]) || !cbd_uint(d, &v[2]))
				return -1;
			if (f->nepoll == cap) {
				cap *= 2;
				f->epoll = realloc(f->epoll, cap * sizeof *f->epoll);
			}
			f->epoll[f->nepoll].tfd = (int)v[0];
			f->epoll[f->nepoll].events = (uint32_t)v[1];
			f->epoll[f->nepoll].data = v[2];
			f->nepoll++;
		}
		return d->error ? -1 : 1;
	}
	return 0;
}

CK_HIDDEN int ck_eventfd_open(struct ck_img_file *f)
{
	int flags = EFD_CLOEXEC | (f->eventfd_semaphore ? EFD_SEMAPHORE : 0) | (f->flags & O_NONBLOCK ? EFD_NONBLOCK : 0);
	if (f->eventfd_count > 0xffffffffULL)
		ck_refuse("the eventfd at descriptor %d holds %llu, more than eventfd() can be created with", f->fd,
			  (unsigned long long)f->eventfd_count);
	int fd = eventfd((unsigned)f->eventfd_count, flags);
	if (fd < 0)
		ck_refuse("cannot create the eventfd for descriptor %d: %s", f->fd, strerror(errno));
	return fd;
}

CK_HIDDEN int ck_epoll_open(struct ck_img_file *f)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		ck_refuse("cannot create the epoll descriptor %d: %s", f->fd, strerror(errno));
	return fd;
}

/* Interest lists refer to descriptor numbers: filled once every
 * descriptor is at its final number. */
CK_HIDDEN void ck_epoll_fill(struct ck_image *img)
{
	for (size_t i = 0; i < img->nfiles; i++) {
		struct ck_img_file *f = &img->files[i];
		for (size_t j = 0; j < f->nepoll; j++) {
			struct epoll_event ev;
			ev.events = f->epoll[j].events;
			ev.data.u64 = f->epoll[j].data;
			if (epoll_ctl(f->fd, EPOLL_CTL_ADD, f->epoll[j].tfd, &ev) != 0)
				ck_refuse("cannot add descriptor %d back to the epoll descriptor %d: %s", f->epoll[j].tfd, f->fd,
					  strerror(errno));
		}
	}
}
