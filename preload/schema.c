/* The restore host's strict check of an image's header, its metadata and a
 * manifest against the image schema (src/image-schema.ts, as the tables of
 * the generated preload/schema.h): a key the schema does not list, a
 * required key that is missing, a value of another type are refused,
 * naming the path and the key, before anything is parsed or made. The
 * parsers behind it may then skip what they do not use. ckrun's reader
 * (src/image-schema.ts, checkRecord) applies the same rules, with the same
 * words. Host code (libc), never in the restore core. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cbor.h"
#include "restore.h"
#define CK_SCHEMA_TABLES
#include "schema.h"

#define SCHEMA_FILE "src/image-schema.ts"

_Static_assert(CK_SCHEMA_SHIM_ABI == CK_SHIM_ABI,
	       "a new shim ABI: check src/image-schema.ts against the new images, set its SHIM_ABI, run npm run schema");

struct walk {
	struct cb_dec d;
	char path[256]; /* where the walk is: files[3].pipe */
	size_t plen;
	char *why;
	size_t cap;
	int failed;
};

__attribute__((format(printf, 2, 3))) static int fail(struct walk *w, const char *fmt, ...)
{
	if (w->failed)
		return 0;
	w->failed = 1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->why, w->cap, fmt, ap);
	va_end(ap);
	return 0;
}

/* The path grows by ".key" or "[i]" while a value inside is checked. */
static size_t push_key(struct walk *w, const char *k, size_t kl)
{
	size_t at = w->plen;
	int n = snprintf(w->path + at, sizeof w->path - at, "%s%.*s", at ? "." : "", (int)kl, k);
	if (n > 0)
		w->plen = at + (size_t)n < sizeof w->path ? at + (size_t)n : sizeof w->path - 1;
	return at;
}

static size_t push_index(struct walk *w, long i)
{
	size_t at = w->plen;
	int n = snprintf(w->path + at, sizeof w->path - at, "[%ld]", i);
	if (n > 0)
		w->plen = at + (size_t)n < sizeof w->path ? at + (size_t)n : sizeof w->path - 1;
	return at;
}

static void pop(struct walk *w, size_t at)
{
	w->plen = at;
	w->path[at] = 0;
}

/* What the next item is, in the schema's words. */
static const char *what_is(struct cb_dec *d)
{
	switch (cbd_peek(d)) {
	case CB_UINT: return "uint";
	case CB_NEGINT: return "negative int";
	case CB_BYTES: return "bytes";
	case CB_TEXT: return "text";
	case CB_ARRAY: return "array";
	case CB_MAP: return "map";
	case CB_SIMPLE: return d->p[0] == 0xf6 ? "null" : "bool";
	default: return "damaged";
	}
}

/* The class a type needs (a union picks its alternative by it): CKS_INT
 * for any integer, else the op itself. */
static int class_of_type(unsigned op)
{
	return op == CKS_UINT || op == CKS_INT ? CKS_INT : op;
}

/* The schema's type of the next item, for the line a developer adds. */
static const char *guess_type(struct cb_dec *d)
{
	switch (cbd_peek(d)) {
	case CB_NEGINT: return "int";
	case CB_ARRAY: return "[...]";
	case CB_MAP: return "{...}";
	default: return what_is(d);
	}
}

static int class_of_item(struct cb_dec *d)
{
	switch (cbd_peek(d)) {
	case CB_UINT:
	case CB_NEGINT: return CKS_INT;
	case CB_BYTES: return CKS_BYTES;
	case CB_TEXT: return CKS_TEXT;
	case CB_ARRAY: return CKS_ARRAY;
	case CB_MAP: return CKS_RECORD;
	case CB_SIMPLE: return d->p[0] == 0xf6 ? CKS_NULL : CKS_BOOL;
	default: return -1;
	}
}

static void type_text(unsigned t, char *buf, size_t cap);

static int check_value(struct walk *w, unsigned t);

/* kinds is "a,b": is kind (kl bytes) one of them? */
static int kind_listed(const char *kinds, const char *kind, size_t kl)
{
	if (!kind)
		return 0;
	for (const char *p = kinds; *p;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == kl && !memcmp(p, kind, kl))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/* The map's own `kind` (a text), found before its keys are checked. */
static void find_kind(struct cb_dec d, const char **kind, size_t *kl)
{
	int64_t left;
	const char *k;
	size_t n;
	*kind = 0;
	*kl = 0;
	if (!cbd_map(&d, &left))
		return;
	while (cbd_next_key(&d, &left, &k, &n)) {
		if (cbd_key_is(k, n, "kind") && cbd_peek(&d) == CB_TEXT) {
			cbd_text(&d, kind, kl);
			return;
		}
		if (!cbd_skip(&d))
			return;
	}
}

static const char *at_prefix(struct walk *w, char *buf, size_t cap)
{
	if (!w->plen)
		return "";
	snprintf(buf, cap, "%s: ", w->path);
	return buf;
}

/* The bit of seen that stands for the record's key named k (0: no such key). */
static uint64_t key_bit(const struct ck_schema_record *rec, const char *k)
{
	for (unsigned i = 0; i < rec->nkeys; i++)
		if (!strcmp(rec->keys[i].name, k))
			return 1ULL << i;
	return 0;
}

static int check_record(struct walk *w, unsigned r)
{
	const struct ck_schema_record *rec = &ck_schema_records[r];
	const char *kind, *k;
	size_t kindl, kl;
	int64_t left;
	uint64_t seen = 0;
	char at[300];
	find_kind(w->d, &kind, &kindl);
	if (!cbd_map(&w->d, &left))
		return fail(w, "%sdamaged map", at_prefix(w, at, sizeof at));
	while (cbd_next_key(&w->d, &left, &k, &kl)) {
		unsigned i = 0;
		while (i < rec->nkeys && !cbd_key_is(k, kl, rec->keys[i].name))
			i++;
		if (i == rec->nkeys)
			return fail(w,
				    "%sunknown key \"%.*s\" (record \"%s\"%s%.*s): an image of a newer ckrun (restart it with that "
				    "one) or a damaged one; a ckrun developer adding the key adds a line such as %.*s: '%s?' to "
				    "%s.keys in " SCHEMA_FILE " and runs npm run schema",
				    at_prefix(w, at, sizeof at), (int)kl, k, rec->name, kind ? " of kind " : "", (int)kindl,
				    kind ? kind : "", (int)kl, k, guess_type(&w->d), rec->name);
		const struct ck_schema_key *key = &rec->keys[i];
		if (key->kinds && !kind_listed(key->kinds, kind, kindl))
			return fail(w, "%skey \"%s\" belongs to record \"%s\" of kind %s, not of kind %.*s",
				    at_prefix(w, at, sizeof at), key->name, rec->name, key->kinds, kind ? (int)kindl : 6,
				    kind ? kind : "(none)");
		seen |= 1ULL << i;
		size_t back = push_key(w, k, kl);
		int ok = check_value(w, key->type);
		pop(w, back);
		if (!ok)
			return 0;
	}
	if (w->d.error)
		return fail(w, "%sdamaged map", at_prefix(w, at, sizeof at));
	for (unsigned i = 0; i < rec->nkeys; i++) {
		const struct ck_schema_key *key = &rec->keys[i];
		if (!key->required || (seen & (1ULL << i)) || (key->kinds && !kind_listed(key->kinds, kind, kindl)) ||
		    (key->unless && (seen & key_bit(rec, key->unless))))
			continue;
		return fail(w,
			    "%srequired key \"%s\" (record \"%s\"%s%.*s) is missing: a damaged image, or a writer that no "
			    "longer writes it (a ckrun developer changing that updates %s.keys in " SCHEMA_FILE ")",
			    at_prefix(w, at, sizeof at), key->name, rec->name, key->kinds ? " of kind " : "",
			    key->kinds ? (int)kindl : 0, key->kinds ? kind : "", rec->name);
	}
	return 1;
}

static int check_value(struct walk *w, unsigned t)
{
	const struct ck_schema_type *ty = &ck_schema_types[t];
	char want[128];
	enum cb_type got = cbd_peek(&w->d);
	int ok;
	switch (ty->op) {
	case CKS_ANY:
		return cbd_skip(&w->d) || fail(w, "%s is damaged", w->path);
	case CKS_UINT:
		ok = got == CB_UINT;
		break;
	case CKS_INT:
		ok = got == CB_UINT || got == CB_NEGINT;
		break;
	case CKS_BOOL:
		ok = got == CB_SIMPLE && (w->d.p[0] == 0xf4 || w->d.p[0] == 0xf5);
		break;
	case CKS_NULL:
		ok = got == CB_SIMPLE && w->d.p[0] == 0xf6;
		break;
	case CKS_TEXT:
		ok = got == CB_TEXT;
		break;
	case CKS_BYTES:
		ok = got == CB_BYTES;
		break;
	case CKS_RECORD:
		if (got != CB_MAP)
			return fail(w, "%s is %s, not a map ({%s})", w->path, what_is(&w->d), ck_schema_records[ty->a].name);
		return check_record(w, ty->a);
	case CKS_ARRAY: {
		int64_t left;
		long i = 0;
		if (got != CB_ARRAY || !cbd_array(&w->d, &left)) {
			type_text(t, want, sizeof want);
			return fail(w, "%s is %s, not %s", w->path, what_is(&w->d), want);
		}
		while (cbd_next_item(&w->d, &left)) {
			size_t back = push_index(w, i++);
			ok = check_value(w, ty->a);
			pop(w, back);
			if (!ok)
				return 0;
		}
		return !w->d.error || fail(w, "%s is damaged", w->path);
	}
	case CKS_UNION:
		for (unsigned i = 0; i < ty->b; i++) {
			unsigned alt = ck_schema_alts[ty->a + i];
			unsigned op = ck_schema_types[alt].op;
			if (op == CKS_ANY || class_of_type(op) == class_of_item(&w->d))
				return check_value(w, alt);
		}
		ok = 0;
		break;
	default:
		ok = 0;
	}
	if (!ok) {
		type_text(t, want, sizeof want);
		return fail(w, "%s is %s, not %s", w->path, what_is(&w->d), want);
	}
	return cbd_skip(&w->d) || fail(w, "%s is damaged", w->path);
}

/* A type as the schema writes it: [uint|text], {pipe}. */
static void type_text(unsigned t, char *buf, size_t cap)
{
	static const char *const names[] = {"uint", "int", "bool", "text", "bytes", "null", "any"};
	const struct ck_schema_type *ty = &ck_schema_types[t];
	char inner[128];
	if (cap == 0)
		return;
	buf[0] = 0;
	switch (ty->op) {
	case CKS_ARRAY:
		type_text(ty->a, inner, sizeof inner);
		snprintf(buf, cap, "[%s]", inner);
		break;
	case CKS_RECORD:
		snprintf(buf, cap, "{%s}", ck_schema_records[ty->a].name);
		break;
	case CKS_UNION:
		for (unsigned i = 0; i < ty->b; i++) {
			size_t n = strlen(buf);
			type_text(ck_schema_alts[ty->a + i], inner, sizeof inner);
			snprintf(buf + n, cap - n, "%s%s", i ? "|" : "", inner);
		}
		break;
	default:
		snprintf(buf, cap, "%s", ty->op < sizeof names / sizeof names[0] ? names[ty->op] : "?");
	}
}

CK_HIDDEN int ck_schema_check(const void *buf, size_t len, int record, char *why, size_t cap)
{
	struct walk w;
	memset(&w, 0, sizeof w);
	cbd_init(&w.d, buf, len);
	w.why = why;
	w.cap = cap;
	if (cbd_peek(&w.d) != CB_MAP) {
		snprintf(why, cap, "the %s is %s, not a map", ck_schema_records[record].name, what_is(&w.d));
		return 0;
	}
	return check_record(&w, (unsigned)record);
}
