/* The cluster channel's frames and handshake primitives (src/cluster/):
 * encode/parse round trips for every type, prefixes, every way a frame can
 * be invalid and how early that is decided, back-to-back frames, the same
 * result for any split of a stream, field helpers, the encoder's limits;
 * the HMAC proof's inputs, its role binding, constant-time compare, nonces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/frame.h"
#include "cluster/handshake.h"

#define NTYPES 9

/* Field counts and fixed sizes per type, as docs/cluster.md gives them
 * (0 = any size). */
static const struct {
	enum cluster_frame_type type;
	size_t count;
	size_t sizes[4];
} spec[NTYPES] = {
	{CLUSTER_HELLO, 3, {0, 0, CLUSTER_NONCE_LEN}},
	{CLUSTER_CHALLENGE, 3, {0, CLUSTER_NONCE_LEN, CLUSTER_MAC_LEN}},
	{CLUSTER_AUTH, 1, {CLUSTER_MAC_LEN}},
	{CLUSTER_READY, 0, {0}},
	{CLUSTER_OPEN, 4, {0, 0, 0, 0}},
	{CLUSTER_OPENED, 2, {0, 0}},
	{CLUSTER_ERROR, 1, {0}},
	{CLUSTER_PING, 0, {0}},
	{CLUSTER_PONG, 0, {0}},
};

static const uint8_t nonce_a[CLUSTER_NONCE_LEN] = "0123456789abcdef0123456789abcde";
static const uint8_t filler[64] = "the quick brown fox jumps over the lazy dog, 0123456789 ABCDEFG";
static const char *const texts[] = {"imap", "alice@example.com", "192.0.2.7", "t"};

/* Valid fields for spec[i] into f (data from nonce_a/filler/texts). */
static size_t valid_fields(size_t i, struct cluster_field *f)
{
	for (size_t k = 0; k < spec[i].count; k++) {
		if (spec[i].sizes[k] != 0) {
			f[k].data = k % 2 == 0 ? nonce_a : filler;
			f[k].len = spec[i].sizes[k];
		} else {
			f[k].data = (const uint8_t *)texts[k];
			f[k].len = strlen(texts[k]);
		}
	}
	return spec[i].count;
}

/* A valid frame of spec[i] in out; its size. */
static size_t valid_frame(size_t i, uint8_t *out, size_t cap)
{
	struct cluster_field f[CLUSTER_FIELDS_MAX];
	size_t n = valid_fields(i, f);
	size_t size = cluster_frame_encode(out, cap, spec[i].type, f, n);
	assert_true(size > 0);
	return size;
}

static enum cluster_parse parse(const uint8_t *data, size_t len, struct cluster_frame *fr,
				size_t *used)
{
	*used = 12345;
	memset(fr, 0, sizeof(*fr));
	return cluster_frame_parse(data, len, fr, used);
}

static void expect(const uint8_t *data, size_t len, enum cluster_parse want)
{
	struct cluster_frame fr;
	size_t used;
	assert_int_equal(parse(data, len, &fr, &used), want);
	if (want != CLUSTER_PARSE_OK)
		assert_int_equal(used, 0);
}

/* A raw frame: 4-byte length (type + payload), type, payload. */
static size_t raw(uint8_t *out, uint32_t body, uint8_t type, const void *payload, size_t plen)
{
	out[0] = (uint8_t)(body >> 24);
	out[1] = (uint8_t)(body >> 16);
	out[2] = (uint8_t)(body >> 8);
	out[3] = (uint8_t)body;
	out[4] = type;
	if (plen > 0)
		memcpy(out + 5, payload, plen);
	return 5 + plen;
}

static void test_round_trip_every_type(void **state)
{
	(void)state;
	for (size_t i = 0; i < NTYPES; i++) {
		uint8_t buf[512];
		struct cluster_field f[CLUSTER_FIELDS_MAX];
		size_t n = valid_fields(i, f);
		size_t size = cluster_frame_encode(buf, sizeof(buf), spec[i].type, f, n);
		size_t expect_size = 5;
		for (size_t k = 0; k < n; k++)
			expect_size += 2 + f[k].len;
		assert_int_equal(size, expect_size);
		assert_int_equal(buf[4], spec[i].type);

		struct cluster_frame fr;
		size_t used;
		assert_int_equal(parse(buf, size, &fr, &used), CLUSTER_PARSE_OK);
		assert_int_equal(used, size);
		assert_int_equal(fr.type, spec[i].type);
		assert_int_equal(fr.field_count, n);
		for (size_t k = 0; k < n; k++) {
			assert_int_equal(fr.fields[k].len, f[k].len);
			assert_memory_equal(fr.fields[k].data, f[k].data, f[k].len);
			assert_true(fr.fields[k].data >= buf && fr.fields[k].data + f[k].len <= buf + size);
		}
		/* re-encoding the parsed frame gives the same bytes */
		uint8_t again[512];
		assert_int_equal(cluster_frame_encode(again, sizeof(again), fr.type, fr.fields,
						      fr.field_count), size);
		assert_memory_equal(again, buf, size);
	}
}

static void test_round_trip_empty_and_largest(void **state)
{
	(void)state;
	/* empty variable fields are fine */
	struct cluster_field f[4] = {{NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};
	uint8_t buf[CLUSTER_FRAME_MAX + 16];
	size_t size = cluster_frame_encode(buf, sizeof(buf), CLUSTER_OPEN, f, 4);
	assert_int_equal(size, 5 + 4 * 2);
	struct cluster_frame fr;
	size_t used;
	assert_int_equal(parse(buf, size, &fr, &used), CLUSTER_PARSE_OK);
	assert_int_equal(fr.field_count, 4);
	for (size_t k = 0; k < 4; k++)
		assert_int_equal(fr.fields[k].len, 0);

	/* exactly CLUSTER_FRAME_MAX bytes, length included */
	static uint8_t text[CLUSTER_FRAME_MAX];
	memset(text, 'x', sizeof(text));
	struct cluster_field big = {text, CLUSTER_FRAME_MAX - 7};
	size = cluster_frame_encode(buf, sizeof(buf), CLUSTER_ERROR, &big, 1);
	assert_int_equal(size, CLUSTER_FRAME_MAX);
	assert_int_equal(parse(buf, size, &fr, &used), CLUSTER_PARSE_OK);
	assert_int_equal(used, CLUSTER_FRAME_MAX);
	assert_int_equal(fr.fields[0].len, CLUSTER_FRAME_MAX - 7);
	/* one byte more does not encode */
	big.len++;
	assert_int_equal(cluster_frame_encode(buf, sizeof(buf), CLUSTER_ERROR, &big, 1), 0);
}

static void test_need_more_every_prefix(void **state)
{
	(void)state;
	for (size_t i = 0; i < NTYPES; i++) {
		uint8_t buf[512];
		size_t size = valid_frame(i, buf, sizeof(buf));
		for (size_t k = 0; k < size; k++)
			expect(buf, k, CLUSTER_PARSE_NEED_MORE);
		expect(NULL, 0, CLUSTER_PARSE_NEED_MORE);
	}
}

static void test_length_zero(void **state)
{
	(void)state;
	const uint8_t zero[4] = {0, 0, 0, 0};
	for (size_t k = 0; k < 4; k++)
		expect(zero, k, CLUSTER_PARSE_NEED_MORE);
	expect(zero, 4, CLUSTER_PARSE_INVALID);
	const uint8_t zero_then_type[5] = {0, 0, 0, 0, CLUSTER_READY};
	expect(zero_then_type, 5, CLUSTER_PARSE_INVALID);
}

static void test_length_over_max(void **state)
{
	(void)state;
	/* decided from the 4 length bytes alone */
	static const uint32_t bad[] = {CLUSTER_FRAME_MAX - 3, CLUSTER_FRAME_MAX, CLUSTER_FRAME_MAX + 1,
				       0x10000, 0x7fffffff, 0x80000000, 0xffffffff};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t b[5];
		raw(b, bad[i], CLUSTER_ERROR, NULL, 0);
		expect(b, 3, CLUSTER_PARSE_NEED_MORE);
		expect(b, 4, CLUSTER_PARSE_INVALID);
		expect(b, 5, CLUSTER_PARSE_INVALID);
	}
	/* the largest allowed length waits for its body */
	uint8_t b[5];
	raw(b, CLUSTER_FRAME_MAX - 4, CLUSTER_ERROR, NULL, 0);
	expect(b, 4, CLUSTER_PARSE_NEED_MORE);
	expect(b, 5, CLUSTER_PARSE_NEED_MORE);
}

static void test_unknown_type(void **state)
{
	(void)state;
	static const uint8_t types[] = {0, 10, 11, 0x7f, 0x80, 0xff};
	for (size_t i = 0; i < sizeof(types); i++) {
		uint8_t b[5];
		/* a long body that has not arrived: the type alone decides */
		raw(b, 100, types[i], NULL, 0);
		expect(b, 4, CLUSTER_PARSE_NEED_MORE);
		expect(b, 5, CLUSTER_PARSE_INVALID);
		/* and a complete frame of that type, no fields */
		raw(b, 1, types[i], NULL, 0);
		expect(b, 5, CLUSTER_PARSE_INVALID);
	}
}

static void test_fields_do_not_tile(void **state)
{
	(void)state;
	uint8_t b[64];
	/* a lone byte after the type: half a field length */
	size_t n = raw(b, 2, CLUSTER_READY, "\x00", 1);
	expect(b, n, CLUSTER_PARSE_INVALID);
	n = raw(b, 2, CLUSTER_ERROR, "\x00", 1);
	expect(b, n, CLUSTER_PARSE_INVALID);
	/* a field longer than what is left of the payload */
	n = raw(b, 1 + 2 + 5, CLUSTER_ERROR, "\x00\x0a" "hello", 7);
	expect(b, n, CLUSTER_PARSE_INVALID);
	n = raw(b, 1 + 2 + 5, CLUSTER_ERROR, "\xff\xff" "hello", 7);
	expect(b, n, CLUSTER_PARSE_INVALID);
	/* one byte too many after the last field */
	n = raw(b, 1 + 2 + 5 + 1, CLUSTER_ERROR, "\x00\x05" "hello!", 8);
	expect(b, n, CLUSTER_PARSE_INVALID);
	/* half a field length after a complete field */
	n = raw(b, 1 + 2 + 5 + 1, CLUSTER_OPENED, "\x00\x05" "hello\x00", 8);
	expect(b, n, CLUSTER_PARSE_INVALID);
	/* the same bytes tiling exactly are fine */
	n = raw(b, 1 + 2 + 5, CLUSTER_ERROR, "\x00\x05" "hello", 7);
	expect(b, n, CLUSTER_PARSE_OK);
	/* a field running past the frame into the next frame's bytes */
	n = raw(b, 1 + 2 + 1, CLUSTER_ERROR, "\x00\x05" "h", 3);
	memcpy(b + n, "ello", 4);
	expect(b, n + 4, CLUSTER_PARSE_INVALID);
}

static void test_wrong_field_count(void **state)
{
	(void)state;
	static uint8_t big[64];
	memset(big, 'n', sizeof(big));
	for (size_t i = 0; i < NTYPES; i++) {
		struct cluster_field f[CLUSTER_FIELDS_MAX + 1];
		size_t n = valid_fields(i, f);
		uint8_t buf[1024];
		size_t size;
		/* one field fewer */
		if (n > 0) {
			size = cluster_frame_encode(buf, sizeof(buf), spec[i].type, f, n - 1);
			assert_true(size > 0);
			expect(buf, size, CLUSTER_PARSE_INVALID);
		}
		/* one, two ... up to past CLUSTER_FIELDS_MAX fields more, each of
		 * a size any fixed field would accept */
		for (size_t extra = 1; n + extra <= CLUSTER_FIELDS_MAX + 1; extra++) {
			for (size_t k = n; k < n + extra; k++) {
				f[k].data = big;
				f[k].len = CLUSTER_NONCE_LEN;
			}
			size = cluster_frame_encode(buf, sizeof(buf), spec[i].type, f, n + extra);
			assert_true(size > 0);
			expect(buf, size, CLUSTER_PARSE_INVALID);
		}
	}
}

static void test_wrong_fixed_sizes(void **state)
{
	(void)state;
	static uint8_t big[128];
	memset(big, 'z', sizeof(big));
	static const size_t sizes[] = {0, 1, CLUSTER_NONCE_LEN - 1, CLUSTER_NONCE_LEN + 1,
				       2 * CLUSTER_NONCE_LEN, 100};
	size_t checked = 0;
	for (size_t i = 0; i < NTYPES; i++) {
		for (size_t k = 0; k < spec[i].count; k++) {
			if (spec[i].sizes[k] == 0)
				continue;
			for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
				struct cluster_field f[CLUSTER_FIELDS_MAX];
				size_t n = valid_fields(i, f);
				f[k].data = big;
				f[k].len = sizes[s];
				uint8_t buf[512];
				size_t size = cluster_frame_encode(buf, sizeof(buf), spec[i].type, f, n);
				assert_true(size > 0);
				expect(buf, size, CLUSTER_PARSE_INVALID);
				checked++;
			}
		}
	}
	/* HELLO's nonce, CHALLENGE's nonce and mac, AUTH's mac */
	assert_int_equal(checked, 4 * sizeof(sizes) / sizeof(sizes[0]));
	/* the variable fields next to them take any size, the empty one too */
	struct cluster_field f[3] = {{(const uint8_t *)"", 0}, {big, 100}, {nonce_a, CLUSTER_NONCE_LEN}};
	uint8_t buf[512];
	size_t size = cluster_frame_encode(buf, sizeof(buf), CLUSTER_HELLO, f, 3);
	expect(buf, size, CLUSTER_PARSE_OK);
}

static void test_back_to_back(void **state)
{
	(void)state;
	uint8_t buf[2048];
	size_t sizes[NTYPES], total = 0;
	for (size_t i = 0; i < NTYPES; i++) {
		sizes[i] = valid_frame(i, buf + total, sizeof(buf) - total);
		total += sizes[i];
	}
	size_t off = 0;
	for (size_t i = 0; i < NTYPES; i++) {
		struct cluster_frame fr;
		size_t used;
		/* the whole rest of the buffer is there: one frame at a time */
		assert_int_equal(parse(buf + off, total - off, &fr, &used), CLUSTER_PARSE_OK);
		assert_int_equal(used, sizes[i]);
		assert_int_equal(fr.type, spec[i].type);
		assert_int_equal(fr.field_count, spec[i].count);
		for (size_t k = 0; k < fr.field_count; k++)
			assert_true(fr.fields[k].data + fr.fields[k].len <= buf + off + used);
		off += used;
	}
	assert_int_equal(off, total);
	expect(buf + off, 0, CLUSTER_PARSE_NEED_MORE);
}

/* What parsing a stream yields: each frame (type, count, where it and its
 * fields are, relative to the stream) and the final verdict. */
struct event {
	enum cluster_frame_type type;
	size_t start, used, count;
	size_t field_at[CLUSTER_FIELDS_MAX], field_len[CLUSTER_FIELDS_MAX];
};

struct outcome {
	struct event ev[64];
	size_t n;
	enum cluster_parse verdict;
	size_t consumed;
};

static void record(struct outcome *o, const uint8_t *base, size_t start,
		   const struct cluster_frame *fr, size_t used)
{
	assert_true(o->n < 64);
	struct event *e = &o->ev[o->n++];
	e->type = fr->type;
	e->start = start;
	e->used = used;
	e->count = fr->field_count;
	for (size_t k = 0; k < fr->field_count; k++) {
		e->field_at[k] = (size_t)(fr->fields[k].data - base);
		e->field_len[k] = fr->fields[k].len;
	}
}

/* Feeds data in chunks ending at cuts[0..ncuts) (then the rest) into a
 * connection-style buffer, parsing from its unconsumed start each time. */
static void feed(const uint8_t *data, size_t len, const size_t *cuts, size_t ncuts,
		 struct outcome *o)
{
	uint8_t *conn = malloc(len + 1);
	assert_non_null(conn);
	memset(o, 0, sizeof(*o));
	size_t have = 0, off = 0;
	enum cluster_parse r = CLUSTER_PARSE_NEED_MORE;
	for (size_t c = 0; c <= ncuts; c++) {
		size_t upto = c < ncuts ? cuts[c] : len;
		if (upto < have)
			continue;
		memcpy(conn + have, data + have, upto - have);
		have = upto;
		for (;;) {
			struct cluster_frame fr;
			size_t used;
			r = parse(conn + off, have - off, &fr, &used);
			if (r != CLUSTER_PARSE_OK)
				break;
			assert_true(used > 0 && used <= have - off);
			record(o, conn, off, &fr, used);
			off += used;
		}
		if (r == CLUSTER_PARSE_INVALID)
			break;
	}
	o->verdict = r;
	o->consumed = off;
	free(conn);
}

static void assert_same(const struct outcome *a, const struct outcome *b)
{
	assert_int_equal(a->verdict, b->verdict);
	assert_int_equal(a->consumed, b->consumed);
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		const struct event *x = &a->ev[i], *y = &b->ev[i];
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->start, y->start);
		assert_int_equal(x->used, y->used);
		assert_int_equal(x->count, y->count);
		for (size_t k = 0; k < x->count; k++) {
			assert_int_equal(x->field_at[k], y->field_at[k]);
			assert_int_equal(x->field_len[k], y->field_len[k]);
		}
	}
}

/* Every one- and two-cut split, and byte by byte, against the whole. */
static void check_splits(const uint8_t *data, size_t len, size_t want_frames,
			 enum cluster_parse want_verdict)
{
	struct outcome whole, split;
	feed(data, len, NULL, 0, &whole);
	assert_int_equal(whole.n, want_frames);
	assert_int_equal(whole.verdict, want_verdict);
	for (size_t a = 0; a <= len; a++) {
		feed(data, len, &a, 1, &split);
		assert_same(&whole, &split);
	}
	for (size_t a = 0; a <= len; a += 3) {
		for (size_t b = a; b <= len; b += 2) {
			size_t cuts[2] = {a, b};
			feed(data, len, cuts, 2, &split);
			assert_same(&whole, &split);
		}
	}
	size_t *each = malloc((len + 1) * sizeof(*each));
	assert_non_null(each);
	for (size_t i = 0; i <= len; i++)
		each[i] = i;
	feed(data, len, each, len + 1, &split);
	assert_same(&whole, &split);
	free(each);
}

static size_t handshake_stream(uint8_t *buf, size_t cap)
{
	size_t total = 0;
	static const size_t order[] = {0, 1, 2, 3, 4, 5, 7, 8, 6}; /* HELLO .. OPENED, PING, PONG, ERROR */
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		total += valid_frame(order[i], buf + total, cap - total);
	return total;
}

static void test_any_split_same_result(void **state)
{
	(void)state;
	uint8_t buf[2048];
	size_t total = handshake_stream(buf, sizeof(buf));

	/* a valid stream: all frames, then waiting for more */
	check_splits(buf, total, 9, CLUSTER_PARSE_NEED_MORE);
	/* a truncated last frame */
	check_splits(buf, total - 3, 8, CLUSTER_PARSE_NEED_MORE);

	/* followed by a frame of unknown type, a zero and an oversized length,
	 * a wrong field count, a field overrunning its frame */
	static const uint8_t tails[][12] = {
		{0, 0, 0, 3, 42, 0, 0},
		{0, 0, 0, 0, 1, 2, 3},
		{0, 0, 0x10, 0x01, CLUSTER_ERROR},
		{0, 0, 0, 1, CLUSTER_AUTH, 0, 0, 0, 1, CLUSTER_PING},
		{0, 0, 0, 4, CLUSTER_ERROR, 0, 9, 'x', 0, 0, 0, 1},
	};
	static const size_t tail_len[] = {7, 7, 5, 10, 12};
	for (size_t t = 0; t < sizeof(tail_len) / sizeof(tail_len[0]); t++) {
		memcpy(buf + total, tails[t], tail_len[t]);
		check_splits(buf, total + tail_len[t], 9, CLUSTER_PARSE_INVALID);
	}
}

static void test_field_str(void **state)
{
	(void)state;
	char out[16];
	struct cluster_field f = {(const uint8_t *)"node1", 5};
	assert_true(cluster_field_str(&f, out, sizeof(out)));
	assert_string_equal(out, "node1");
	assert_true(cluster_field_str(&f, out, 6));
	assert_string_equal(out, "node1");
	/* too long: no room for the NUL */
	memset(out, '#', sizeof(out));
	assert_false(cluster_field_str(&f, out, 5));
	assert_false(cluster_field_str(&f, out, 1));
	assert_false(cluster_field_str(&f, out, 0));
	assert_int_equal(out[0], '#');
	/* embedded, leading and trailing NUL bytes */
	struct cluster_field nul = {(const uint8_t *)"no\0de", 5};
	assert_false(cluster_field_str(&nul, out, sizeof(out)));
	nul.data = (const uint8_t *)"\0node";
	assert_false(cluster_field_str(&nul, out, sizeof(out)));
	nul.data = (const uint8_t *)"node\0";
	assert_false(cluster_field_str(&nul, out, sizeof(out)));
	/* empty */
	struct cluster_field empty = {NULL, 0};
	assert_true(cluster_field_str(&empty, out, 1));
	assert_string_equal(out, "");
	assert_false(cluster_field_str(&empty, out, 0));

	assert_true(cluster_field_is(&f, "node1"));
	assert_false(cluster_field_is(&f, "node"));
	assert_false(cluster_field_is(&f, "node12"));
	assert_false(cluster_field_is(&f, "Node1"));
	assert_false(cluster_field_is(&f, ""));
	assert_true(cluster_field_is(&empty, ""));
	assert_false(cluster_field_is(&empty, "x"));
	struct cluster_field proto = {(const uint8_t *)CLUSTER_PROTOCOL "\0x", strlen(CLUSTER_PROTOCOL) + 2};
	assert_false(cluster_field_is(&proto, CLUSTER_PROTOCOL));
}

static void test_encode_does_not_fit(void **state)
{
	(void)state;
	for (size_t i = 0; i < NTYPES; i++) {
		uint8_t ref[512];
		size_t size = valid_frame(i, ref, sizeof(ref));
		struct cluster_field f[CLUSTER_FIELDS_MAX];
		size_t n = valid_fields(i, f);
		for (size_t cap = 0; cap < size; cap++) {
			uint8_t buf[512];
			memset(buf, 0xa5, sizeof(buf));
			assert_int_equal(cluster_frame_encode(buf, cap, spec[i].type, f, n), 0);
			/* nothing written past cap (nor, here, at all) */
			for (size_t k = cap; k < sizeof(buf); k++)
				assert_int_equal(buf[k], 0xa5);
		}
		uint8_t buf[512];
		assert_int_equal(cluster_frame_encode(buf, size, spec[i].type, f, n), size);
		assert_memory_equal(buf, ref, size);
	}
	/* a field over 65535 bytes, and a frame over CLUSTER_FRAME_MAX with
	 * all the room in the world */
	static uint8_t big[0x10001], out[0x20000];
	struct cluster_field f = {big, 0x10000};
	assert_int_equal(cluster_frame_encode(out, sizeof(out), CLUSTER_ERROR, &f, 1), 0);
	f.len = 0xffff;
	assert_int_equal(cluster_frame_encode(out, sizeof(out), CLUSTER_ERROR, &f, 1), 0);
	struct cluster_field two[2] = {{big, CLUSTER_FRAME_MAX / 2}, {big, CLUSTER_FRAME_MAX / 2}};
	assert_int_equal(cluster_frame_encode(out, sizeof(out), CLUSTER_OPENED, two, 2), 0);
}

/* ---- handshake ---- */

static const char *const secret = "correct horse battery staple";

static void mac_of(const char *s, enum cluster_role role, const uint8_t *dn, const uint8_t *ln,
		   const char *dname, const char *lname, uint8_t mac[CLUSTER_MAC_LEN])
{
	memset(mac, 0, CLUSTER_MAC_LEN);
	cluster_mac(s, role, dn, ln, dname, lname, mac);
}

static void test_mac_deterministic_and_bound(void **state)
{
	(void)state;
	uint8_t dn[CLUSTER_NONCE_LEN], ln[CLUSTER_NONCE_LEN];
	for (size_t i = 0; i < CLUSTER_NONCE_LEN; i++) {
		dn[i] = (uint8_t)i;
		ln[i] = (uint8_t)(0x80 + i);
	}
	uint8_t base[CLUSTER_MAC_LEN], again[CLUSTER_MAC_LEN], m[CLUSTER_MAC_LEN];
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, "alpha", "beta", base);
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, "alpha", "beta", again);
	assert_memory_equal(base, again, CLUSTER_MAC_LEN);
	static const uint8_t zero[CLUSTER_MAC_LEN];
	assert_memory_not_equal(base, zero, CLUSTER_MAC_LEN);

	/* secret */
	mac_of("correct horse battery stapl", CLUSTER_ROLE_DIALLER, dn, ln, "alpha", "beta", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	mac_of("", CLUSTER_ROLE_DIALLER, dn, ln, "alpha", "beta", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	/* role */
	mac_of(secret, CLUSTER_ROLE_LISTENER, dn, ln, "alpha", "beta", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	/* either nonce, any byte, and the two swapped */
	for (size_t i = 0; i < CLUSTER_NONCE_LEN; i++) {
		uint8_t d2[CLUSTER_NONCE_LEN], l2[CLUSTER_NONCE_LEN];
		memcpy(d2, dn, sizeof(d2));
		memcpy(l2, ln, sizeof(l2));
		d2[i] ^= 1;
		mac_of(secret, CLUSTER_ROLE_DIALLER, d2, ln, "alpha", "beta", m);
		assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
		l2[i] ^= 0x80;
		mac_of(secret, CLUSTER_ROLE_DIALLER, dn, l2, "alpha", "beta", m);
		assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	}
	mac_of(secret, CLUSTER_ROLE_DIALLER, ln, dn, "alpha", "beta", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	/* either name, the two swapped, and the boundary between them moved */
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, "alphb", "beta", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, "alpha", "betb", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, "beta", "alpha", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, "alphab", "eta", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, "alph", "abeta", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, "", "alphabeta", m);
	assert_memory_not_equal(base, m, CLUSTER_MAC_LEN);
}

static void test_mac_no_reflection(void **state)
{
	(void)state;
	uint8_t dn[CLUSTER_NONCE_LEN], ln[CLUSTER_NONCE_LEN];
	memset(dn, 7, sizeof(dn));
	memset(ln, 7, sizeof(ln));
	/* even with equal nonces and equal names, the roles' proofs differ */
	static const char *const names[][2] = {{"a", "b"}, {"node", "node"}, {"", ""}};
	for (size_t i = 0; i < 3; i++) {
		uint8_t d[CLUSTER_MAC_LEN], l[CLUSTER_MAC_LEN];
		mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, names[i][0], names[i][1], d);
		mac_of(secret, CLUSTER_ROLE_LISTENER, dn, ln, names[i][0], names[i][1], l);
		assert_memory_not_equal(d, l, CLUSTER_MAC_LEN);
		assert_false(cluster_mac_equal(d, l));
	}
}

/* Names are not silently cut short: two names that differ only past the
 * part that fits never give the same proof. */
static void test_mac_long_names(void **state)
{
	(void)state;
	uint8_t dn[CLUSTER_NONCE_LEN] = {1}, ln[CLUSTER_NONCE_LEN] = {2};
	char a[400], b[400];
	for (size_t len = 250; len < sizeof(a) - 1; len += 3) {
		memset(a, 'n', len);
		memset(b, 'n', len);
		a[len] = b[len] = '\0';
		b[len - 1] = 'm';
		uint8_t ma[CLUSTER_MAC_LEN], mb[CLUSTER_MAC_LEN];
		mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, a, "beta", ma);
		mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, b, "beta", mb);
		assert_false(cluster_mac_equal(ma, mb));
		mac_of(secret, CLUSTER_ROLE_LISTENER, dn, ln, "alpha", a, ma);
		mac_of(secret, CLUSTER_ROLE_LISTENER, dn, ln, "alpha", b, mb);
		assert_false(cluster_mac_equal(ma, mb));
	}
	/* a 255-byte name is still an ordinary, reproducible proof */
	memset(a, 'n', 255);
	a[255] = '\0';
	uint8_t m1[CLUSTER_MAC_LEN], m2[CLUSTER_MAC_LEN];
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, a, a, m1);
	mac_of(secret, CLUSTER_ROLE_DIALLER, dn, ln, a, a, m2);
	assert_true(cluster_mac_equal(m1, m2));
}

static void test_mac_equal(void **state)
{
	(void)state;
	uint8_t a[CLUSTER_MAC_LEN], b[CLUSTER_MAC_LEN];
	for (size_t i = 0; i < CLUSTER_MAC_LEN; i++)
		a[i] = (uint8_t)(i * 37 + 5);
	memcpy(b, a, sizeof(b));
	assert_true(cluster_mac_equal(a, b));
	assert_true(cluster_mac_equal(a, a));
	for (size_t i = 0; i < CLUSTER_MAC_LEN; i++) {
		b[i] ^= 0x01;
		assert_false(cluster_mac_equal(a, b));
		assert_false(cluster_mac_equal(b, a));
		b[i] ^= 0x01;
	}
	assert_true(cluster_mac_equal(a, b));
}

static void test_nonce(void **state)
{
	(void)state;
	uint8_t a[CLUSTER_NONCE_LEN], b[CLUSTER_NONCE_LEN];
	static const uint8_t zero[CLUSTER_NONCE_LEN];
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	assert_int_equal(cluster_nonce(a), 0);
	assert_int_equal(cluster_nonce(b), 0);
	assert_memory_not_equal(a, b, CLUSTER_NONCE_LEN);
	assert_memory_not_equal(a, zero, CLUSTER_NONCE_LEN);
	assert_memory_not_equal(b, zero, CLUSTER_NONCE_LEN);
}

/* A whole handshake with the primitives, as the two ends would run it. */
static void test_handshake_exchange(void **state)
{
	(void)state;
	uint8_t wire[1024], dn[CLUSTER_NONCE_LEN], ln[CLUSTER_NONCE_LEN];
	struct cluster_frame fr;
	size_t used, n;
	char name[64];

	/* dialler -> HELLO */
	assert_int_equal(cluster_nonce(dn), 0);
	struct cluster_field hello[3] = {{(const uint8_t *)CLUSTER_PROTOCOL, strlen(CLUSTER_PROTOCOL)},
					 {(const uint8_t *)"mx1", 3}, {dn, CLUSTER_NONCE_LEN}};
	n = cluster_frame_encode(wire, sizeof(wire), CLUSTER_HELLO, hello, 3);
	assert_int_equal(parse(wire, n, &fr, &used), CLUSTER_PARSE_OK);
	assert_true(cluster_field_is(&fr.fields[0], CLUSTER_PROTOCOL));
	assert_true(cluster_field_str(&fr.fields[1], name, sizeof(name)));
	assert_string_equal(name, "mx1");

	/* listener -> CHALLENGE with its proof */
	assert_int_equal(cluster_nonce(ln), 0);
	uint8_t lmac[CLUSTER_MAC_LEN];
	cluster_mac(secret, CLUSTER_ROLE_LISTENER, fr.fields[2].data, ln, name, "store2", lmac);
	struct cluster_field chal[3] = {{(const uint8_t *)"store2", 6}, {ln, CLUSTER_NONCE_LEN},
					{lmac, CLUSTER_MAC_LEN}};
	n = cluster_frame_encode(wire, sizeof(wire), CLUSTER_CHALLENGE, chal, 3);
	assert_int_equal(parse(wire, n, &fr, &used), CLUSTER_PARSE_OK);

	/* dialler checks it, answers AUTH */
	uint8_t want[CLUSTER_MAC_LEN];
	cluster_mac(secret, CLUSTER_ROLE_LISTENER, dn, fr.fields[1].data, "mx1", "store2", want);
	assert_true(cluster_mac_equal(want, fr.fields[2].data));
	cluster_mac("wrong secret", CLUSTER_ROLE_LISTENER, dn, fr.fields[1].data, "mx1", "store2", want);
	assert_false(cluster_mac_equal(want, fr.fields[2].data));
	/* reflecting the listener's proof back as AUTH does not pass */
	uint8_t dmac[CLUSTER_MAC_LEN];
	cluster_mac(secret, CLUSTER_ROLE_DIALLER, dn, ln, "mx1", "store2", dmac);
	assert_false(cluster_mac_equal(dmac, lmac));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_type),
		cmocka_unit_test(test_round_trip_empty_and_largest),
		cmocka_unit_test(test_need_more_every_prefix),
		cmocka_unit_test(test_length_zero),
		cmocka_unit_test(test_length_over_max),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_fields_do_not_tile),
		cmocka_unit_test(test_wrong_field_count),
		cmocka_unit_test(test_wrong_fixed_sizes),
		cmocka_unit_test(test_back_to_back),
		cmocka_unit_test(test_any_split_same_result),
		cmocka_unit_test(test_field_str),
		cmocka_unit_test(test_encode_does_not_fit),
		cmocka_unit_test(test_mac_deterministic_and_bound),
		cmocka_unit_test(test_mac_no_reflection),
		cmocka_unit_test(test_mac_long_names),
		cmocka_unit_test(test_mac_equal),
		cmocka_unit_test(test_nonce),
		cmocka_unit_test(test_handshake_exchange),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
