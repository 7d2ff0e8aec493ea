/* A small CBOR (RFC 8949) encoder and decoder of our own.
 *
 * The encoder writes into caller memory and never allocates: it runs in the
 * checkpoint signal handler. When the buffer is full it sets `overflow` and
 * drops further output, so callers check once at the end. The decoder is a
 * cursor over a byte range, used by the restore host (before the restore
 * core takes over) to read image metadata. */
#ifndef CK_CBOR_H
#define CK_CBOR_H

#include <stddef.h>
#include <stdint.h>

struct cb_enc {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int overflow;
};

void cb_init(struct cb_enc *e, void *buf, size_t cap);
void cb_uint(struct cb_enc *e, uint64_t v);
void cb_int(struct cb_enc *e, int64_t v);
void cb_bool(struct cb_enc *e, int v);
void cb_null(struct cb_enc *e);
void cb_text(struct cb_enc *e, const char *s);
void cb_textn(struct cb_enc *e, const char *s, size_t n);
void cb_bytes(struct cb_enc *e, const void *p, size_t n);
void cb_array(struct cb_enc *e, uint64_t n);
void cb_map(struct cb_enc *e, uint64_t n);
void cb_array_open(struct cb_enc *e); /* indefinite length, closed by cb_close */
void cb_map_open(struct cb_enc *e);
void cb_close(struct cb_enc *e);
/* key/value shorthands for maps with text keys */
void cb_kv_uint(struct cb_enc *e, const char *k, uint64_t v);
void cb_kv_int(struct cb_enc *e, const char *k, int64_t v);
void cb_kv_text(struct cb_enc *e, const char *k, const char *v);
void cb_kv_bool(struct cb_enc *e, const char *k, int v);
void cb_kv_range(struct cb_enc *e, const char *k, uint64_t a, uint64_t b);

/* Decoder */
enum cb_type {
	CB_UINT = 0, CB_NEGINT = 1, CB_BYTES = 2, CB_TEXT = 3,
	CB_ARRAY = 4, CB_MAP = 5, CB_TAG = 6, CB_SIMPLE = 7,
	CB_BREAK = 8, CB_END = 9, CB_ERROR = 10
};

struct cb_dec {
	const uint8_t *p;
	const uint8_t *end;
	int error;
};

void cbd_init(struct cb_dec *d, const void *buf, size_t len);
enum cb_type cbd_peek(struct cb_dec *d);
int cbd_uint(struct cb_dec *d, uint64_t *v);
int cbd_int(struct cb_dec *d, int64_t *v); /* uint or negint that fits int64_t */
/* the same, refusing values outside [0, max] or [lo, hi] (an error, like a wrong type) */
int cbd_uint_max(struct cb_dec *d, uint64_t max, uint64_t *v);
int cbd_int_range(struct cb_dec *d, int64_t lo, int64_t hi, int64_t *v);
int cbd_bool(struct cb_dec *d, int *v);
int cbd_is_null(struct cb_dec *d); /* consumes a null and returns 1, else 0 */
int cbd_text(struct cb_dec *d, const char **s, size_t *n);
int cbd_bytes(struct cb_dec *d, const uint8_t **p, size_t *n);
/* *n is -1 for indefinite length; then loop while !cbd_at_break(), and
 * cbd_at_break() consumes the break. */
int cbd_array(struct cb_dec *d, int64_t *n);
int cbd_map(struct cb_dec *d, int64_t *n);
int cbd_at_break(struct cb_dec *d);
int cbd_skip(struct cb_dec *d);
/* Iterate a map (definite or not): returns 1 with *key set, 0 at the end. */
int cbd_next_key(struct cb_dec *d, int64_t *remaining, const char **key, size_t *klen);
int cbd_key_is(const char *key, size_t klen, const char *want);
/* Iterate an array: returns 1 while an item follows. */
int cbd_next_item(struct cb_dec *d, int64_t *remaining);

/* The strict subset every image, header and manifest must keep to
 * (docs/image-format.md, "Well-formed CBOR"): exactly one item filling
 * buf; integers, definite-length byte and text strings, arrays and maps
 * (definite or not) with distinct text keys (at most CB_MAX_MAP of them),
 * false, true, null; nested at most CB_MAX_DEPTH containers deep. 1 when buf keeps to it. ckrun's reader
 * (src/cbor-check.ts) applies the same rule. */
#define CB_MAX_DEPTH 32
#define CB_MAX_MAP 256 /* entries of one map, whose keys are distinct */
int cbd_well_formed(const void *buf, size_t len);

#endif
