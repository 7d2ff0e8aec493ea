#include "cbor.h"

#include "util.h"

void cb_init(struct cb_enc *e, void *buf, size_t cap)
{
	e->buf = buf;
	e->cap = cap;
	e->len = 0;
	e->overflow = 0;
}

static void put(struct cb_enc *e, const void *p, size_t n)
{
	if (e->overflow || n > e->cap - e->len) {
		e->overflow = 1;
		return;
	}
	ck_memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static void head(struct cb_enc *e, unsigned major, uint64_t v)
{
	uint8_t b[9];
	size_t n;
	major <<= 5;
	if (v < 24) {
		b[0] = (uint8_t)(major | v);
		n = 1;
	} else if (v <= 0xff) {
		b[0] = (uint8_t)(major | 24);
		b[1] = (uint8_t)v;
		n = 2;
	} else if (v <= 0xffff) {
		b[0] = (uint8_t)(major | 25);
		b[1] = (uint8_t)(v >> 8);
		b[2] = (uint8_t)v;
		n = 3;
	} else if (v <= 0xffffffffu) {
		b[0] = (uint8_t)(major | 26);
		for (int i = 0; i < 4; i++)
			b[1 + i] = (uint8_t)(v >> (24 - 8 * i));
		n = 5;
	} else {
		b[0] = (uint8_t)(major | 27);
		for (int i = 0; i < 8; i++)
			b[1 + i] = (uint8_t)(v >> (56 - 8 * i));
		n = 9;
	}
	put(e, b, n);
}

void cb_uint(struct cb_enc *e, uint64_t v) { head(e, 0, v); }

void cb_int(struct cb_enc *e, int64_t v)
{
	if (v >= 0)
		head(e, 0, (uint64_t)v);
	else
		head(e, 1, (uint64_t)(-(v + 1)));
}

void cb_bool(struct cb_enc *e, int v)
{
	uint8_t b = v ? 0xf5 : 0xf4;
	put(e, &b, 1);
}

void cb_null(struct cb_enc *e)
{
	uint8_t b = 0xf6;
	put(e, &b, 1);
}

void cb_textn(struct cb_enc *e, const char *s, size_t n)
{
	head(e, 3, n);
	put(e, s, n);
}

void cb_text(struct cb_enc *e, const char *s) { cb_textn(e, s, ck_strlen(s)); }

void cb_bytes(struct cb_enc *e, const void *p, size_t n)
{
	head(e, 2, n);
	put(e, p, n);
}

void cb_array(struct cb_enc *e, uint64_t n) { head(e, 4, n); }
void cb_map(struct cb_enc *e, uint64_t n) { head(e, 5, n); }

void cb_array_open(struct cb_enc *e)
{
	uint8_t b = 0x9f;
	put(e, &b, 1);
}

void cb_map_open(struct cb_enc *e)
{
	uint8_t b = 0xbf;
	put(e, &b, 1);
}

void cb_close(struct cb_enc *e)
{
	uint8_t b = 0xff;
	put(e, &b, 1);
}

void cb_kv_uint(struct cb_enc *e, const char *k, uint64_t v) { cb_text(e, k); cb_uint(e, v); }
void cb_kv_int(struct cb_enc *e, const char *k, int64_t v) { cb_text(e, k); cb_int(e, v); }
void cb_kv_text(struct cb_enc *e, const char *k, const char *v) { cb_text(e, k); cb_text(e, v); }
void cb_kv_bool(struct cb_enc *e, const char *k, int v) { cb_text(e, k); cb_bool(e, v); }

void cb_kv_range(struct cb_enc *e, const char *k, uint64_t a, uint64_t b)
{
	cb_text(e, k);
	cb_array(e, 2);
	cb_uint(e, a);
	cb_uint(e, b);
}

/* ---- decoder ---- */

void cbd_init(struct cb_dec *d, const void *buf, size_t len)
{
	d->p = buf;
	d->end = d->p + len;
	d->error = 0;
}

enum cb_type cbd_peek(struct cb_dec *d)
{
	if (d->error)
		return CB_ERROR;
	if (d->p >= d->end)
		return CB_END;
	if (*d->p == 0xff)
		return CB_BREAK;
	return (enum cb_type)(*d->p >> 5);
}

/* Reads an item head; *indef set for indefinite lengths. */
static int read_head(struct cb_dec *d, unsigned *major, uint64_t *v, int *indef)
{
	if (d->error || d->p >= d->end) {
		d->error = 1;
		return 0;
	}
	uint8_t b = *d->p++;
	unsigned info = b & 31;
	*major = b >> 5;
	*indef = 0;
	if (info < 24) {
		*v = info;
		return 1;
	}
	if (info == 31) {
		*indef = 1;
		*v = 0;
		return 1;
	}
	if (info > 27) {
		d->error = 1;
		return 0;
	}
	size_t n = (size_t)1 << (info - 24);
	if ((size_t)(d->end - d->p) < n) {
		d->error = 1;
		return 0;
	}
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++)
		x = (x << 8) | *d->p++;
	*v = x;
	return 1;
}

int cbd_uint(struct cb_dec *d, uint64_t *v)
{
	unsigned major;
	int indef;
	if (cbd_peek(d) != CB_UINT) {
		d->error = 1;
		return 0;
	}
	return read_head(d, &major, v, &indef);
}

int cbd_int(struct cb_dec *d, int64_t *v)
{
	unsigned major;
	int indef;
	uint64_t x;
	enum cb_type t = cbd_peek(d);
	if (t != CB_UINT && t != CB_NEGINT) {
		d->error = 1;
		return 0;
	}
	if (!read_head(d, &major, &x, &indef))
		return 0;
	if (x > (uint64_t)INT64_MAX) {
		d->error = 1;
		return 0;
	}
	*v = major == 0 ? (int64_t)x : -1 - (int64_t)x;
	return 1;
}

int cbd_uint_max(struct cb_dec *d, uint64_t max, uint64_t *v)
{
	if (!cbd_uint(d, v))
		return 0;
	if (*v > max) {
		d->error = 1;
		return 0;
	}
	return 1;
}

int cbd_int_range(struct cb_dec *d, int64_t lo, int64_t hi, int64_t *v)
{
	if (!cbd_int(d, v))
		return 0;
	if (*v < lo || *v > hi) {
		d->error = 1;
		return 0;
	}
	return 1;
}

int cbd_bool(struct cb_dec *d, int *v)
{
	if (d->p < d->end && (*d->p == 0xf4 || *d->p == 0xf5)) {
		*v = *d->p++ == 0xf5;
		return 1;
	}
	d->error = 1;
	return 0;
}

int cbd_is_null(struct cb_dec *d)
{
	if (d->p < d->end && (*d->p == 0xf6 || *d->p == 0xf7)) {
		d->p++;
		return 1;
	}
	return 0;
}

static int string_item(struct cb_dec *d, unsigned want, const uint8_t **p, size_t *n)
{
	unsigned major;
	int indef;
	uint64_t len;
	if (!read_head(d, &major, &len, &indef))
		return 0;
	/* Our writer never splits strings into chunks. */
	if (major != want || indef || len > (uint64_t)(d->end - d->p)) {
		d->error = 1;
		return 0;
	}
	*p = d->p;
	*n = (size_t)len;
	d->p += len;
	return 1;
}

int cbd_text(struct cb_dec *d, const char **s, size_t *n)
{
	/* through a pointer of the right type: storing into *s as a uint8_t
	 * pointer breaks strict aliasing (gcc then keeps the old value) */
	const uint8_t *p;
	if (!string_item(d, 3, &p, n))
		return 0;
	*s = (const char *)p;
	return 1;
}

int cbd_bytes(struct cb_dec *d, const uint8_t **p, size_t *n)
{
	return string_item(d, 2, p, n);
}

static int container(struct cb_dec *d, unsigned want, int64_t *n)
{
	unsigned major;
	int indef;
	uint64_t len;
	if (!read_head(d, &major, &len, &indef))
		return 0;
	if (major != want || len > (uint64_t)(d->end - d->p)) {
		d->error = 1;
		return 0;
	}
	*n = indef ? -1 : (int64_t)len;
	return 1;
}

int cbd_array(struct cb_dec *d, int64_t *n) { return container(d, 4, n); }
int cbd_map(struct cb_dec *d, int64_t *n) { return container(d, 5, n); }

int cbd_at_break(struct cb_dec *d)
{
	if (d->p < d->end && *d->p == 0xff) {
		d->p++;
		return 1;
	}
	return 0;
}

static int skip_depth(struct cb_dec *d, int depth)
{
	unsigned major;
	int indef;
	uint64_t v;
	if (depth > 64) {
		d->error = 1;
		return 0;
	}
	if (!read_head(d, &major, &v, &indef))
		return 0;
	switch (major) {
	case 0:
	case 1:
		return 1;
	case 2:
	case 3:
		if (indef) {
			while (!cbd_at_break(d))
				if (!skip_depth(d, depth + 1))
					return 0;
			return 1;
		}
		if (v > (uint64_t)(d->end - d->p)) {
			d->error = 1;
			return 0;
		}
		d->p += v;
		return 1;
	case 4:
	case 5: {
		uint64_t items = major == 5 ? v * 2 : v;
		if (indef) {
			while (!cbd_at_break(d))
				if (!skip_depth(d, depth + 1))
					return 0;
			return 1;
		}
		for (uint64_t i = 0; i < items; i++)
			if (!skip_depth(d, depth + 1))
				return 0;
		return 1;
	}
	case 6:
		return skip_depth(d, depth + 1);
	default:
		return 1; /* simple values and floats: head already consumed */
	}
}

int cbd_skip(struct cb_dec *d) { return skip_depth(d, 0); }

int cbd_next_key(struct cb_dec *d, int64_t *remaining, const char **key, size_t *klen)
{
	if (d->error)
		return 0;
	if (*remaining < 0) {
		if (cbd_at_break(d))
			return 0;
	} else {
		if (*remaining == 0)
			return 0;
		(*remaining)--;
	}
	return cbd_text(d, key, klen);
}

int cbd_key_is(const char *key, size_t klen, const char *want)
{
	return klen == ck_strlen(want) && ck_strneq(key, want, klen);
}

int cbd_next_item(struct cb_dec *d, int64_t *remaining)
{
	if (d->error)
		return 0;
	if (*remaining < 0)
		return !cbd_at_break(d) && d->p < d->end;
	if (*remaining == 0)
		return 0;
	(*remaining)--;
	return 1;
}

/* ---- the strict subset (cbd_well_formed) ---- */

static int strict_item(struct cb_dec *d, int depth, int is_key);

/* The keys of one map, to find one given twice (a parser that meets a key
 * twice would read its value twice): open addressing by FNV-1a. */
struct key_set {
	const uint8_t *key[2 * CB_MAX_MAP];
	uint32_t len[2 * CB_MAX_MAP];
};

static int same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* 0 when the key (the text item at d) is there already (compared by its
 * text: a longer encoding of the same length is the same key). */
static int key_add(struct key_set *ks, const struct cb_dec *d)
{
	struct cb_dec probe = *d;
	const uint8_t *p;
	size_t n;
	if (!string_item(&probe, 3, &p, &n) || n > UINT32_MAX)
		return 0;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	for (uint32_t i = h % (2 * CB_MAX_MAP);; i = (i + 1) % (2 * CB_MAX_MAP)) {
		if (!ks->key[i]) {
			ks->key[i] = p;
			ks->len[i] = (uint32_t)n;
			return 1;
		}
		if (ks->len[i] == n && same_bytes(ks->key[i], p, n))
			return 0;
	}
}

/* The items of a container: count of them (pairs for a map), or up to a break. */
static int strict_items(struct cb_dec *d, int depth, int indef, uint64_t count, int map)
{
	struct key_set *ks = 0;
	struct key_set local;
	if (map) {
		ck_memset(&local, 0, sizeof local);
		ks = &local;
	}
	for (uint64_t i = 0; indef || i < count; i++) {
		if (indef && cbd_at_break(d))
			return 1;
		if (d->p >= d->end || (map && i >= CB_MAX_MAP))
			return 0;
		if (map && (!key_add(ks, d) || !strict_item(d, depth, 1)))
			return 0;
		if (!strict_item(d, depth, 0))
			return 0;
	}
	return 1;
}

static int strict_item(struct cb_dec *d, int depth, int is_key)
{
	unsigned major;
	uint64_t v;
	int indef;
	if (d->p >= d->end)
		return 0;
	uint8_t first = *d->p;
	if (first >> 5 == 7) {
		d->p++;
		return !is_key && (first == 0xf4 || first == 0xf5 || first == 0xf6);
	}
	if (!read_head(d, &major, &v, &indef))
		return 0;
	if (is_key && major != 3)
		return 0;
	switch (major) {
	case 0:
	case 1:
		return !indef;
	case 2:
	case 3:
		if (indef || v > (uint64_t)(d->end - d->p))
			return 0;
		d->p += v;
		return 1;
	case 4:
	case 5:
		if (depth >= CB_MAX_DEPTH || (!indef && v > (uint64_t)(d->end - d->p)))
			return 0;
		return strict_items(d, depth + 1, indef, v, major == 5);
	default:
		return 0; /* tags */
	}
}

int cbd_well_formed(const void *buf, size_t len)
{
	struct cb_dec d;
	cbd_init(&d, buf, len);
	return strict_item(&d, 0, 0) && !d.error && d.p == d.end;
}
