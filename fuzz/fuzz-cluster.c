/* libFuzzer target for the cluster channel's frame parser (src/cluster/frame.c).
 * The input is a stream of frames, parsed one after the other until INVALID
 * or NEED_MORE: whole, then fed the way a connection receives it (chunks of
 * sizes drawn from the input, the unconsumed rest re-parsed after each, in a
 * buffer holding exactly the bytes received so far), then byte by byte. The
 * three must give the same frames at the same offsets and the same final
 * verdict. Every frame parsed must re-encode to the very bytes it came from,
 * and the field helpers must agree with the field bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/frame.h"

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#endif

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One parsed frame, positions relative to the start of the stream. */
struct event {
	size_t start, used;
	enum cluster_frame_type type;
	size_t count;
	size_t field_at[CLUSTER_FIELDS_MAX], field_len[CLUSTER_FIELDS_MAX];
};

struct outcome {
	struct event *ev;
	size_t n, cap;
	enum cluster_parse verdict;
	size_t consumed;
};

static void outcome_init(struct outcome *o, size_t size)
{
	/* a frame is at least 5 bytes */
	o->cap = size / 5 + 1;
	o->ev = malloc(o->cap * sizeof(*o->ev));
	CHECK(o->ev != NULL);
	o->n = 0;
	o->verdict = CLUSTER_PARSE_NEED_MORE;
	o->consumed = 0;
}

/* Parses frames from buf[0..len), which holds stream bytes [base..base+len);
 * records them into o; returns the bytes consumed. Stops at INVALID or
 * NEED_MORE, leaving the verdict in o. */
static size_t parse_all(struct outcome *o, const uint8_t *buf, size_t len, size_t base)
{
	size_t off = 0;
	for (;;) {
		struct cluster_frame fr;
		size_t used = 777;
		enum cluster_parse r = cluster_frame_parse(buf + off, len - off, &fr, &used);
		o->verdict = r;
		if (r != CLUSTER_PARSE_OK) {
			CHECK(r == CLUSTER_PARSE_NEED_MORE || r == CLUSTER_PARSE_INVALID);
			CHECK(used == 0);
			return off;
		}
		CHECK(used >= 5 && used <= len - off && used <= CLUSTER_FRAME_MAX);
		CHECK(fr.type >= CLUSTER_HELLO && fr.type <= CLUSTER_PONG);
		CHECK(fr.field_count <= CLUSTER_FIELDS_MAX);
		CHECK(o->n < o->cap);
		struct event *e = &o->ev[o->n++];
		e->start = base + off;
		e->used = used;
		e->type = fr.type;
		e->count = fr.field_count;
		const uint8_t *frame = buf + off, *next = frame + 5;
		for (size_t k = 0; k < fr.field_count; k++) {
			/* fields tile the payload, in order */
			CHECK(fr.fields[k].data == next + 2);
			CHECK(fr.fields[k].len <= (size_t)(frame + used - fr.fields[k].data));
			next = fr.fields[k].data + fr.fields[k].len;
			e->field_at[k] = (size_t)(fr.fields[k].data - frame);
			e->field_len[k] = fr.fields[k].len;
		}
		CHECK(next == frame + used);
		off += used;
	}
}

static void check_same(const struct outcome *a, const struct outcome *b)
{
	CHECK(a->verdict == b->verdict);
	CHECK(a->consumed == b->consumed);
	CHECK(a->n == b->n);
	for (size_t i = 0; i < a->n; i++) {
		const struct event *x = &a->ev[i], *y = &b->ev[i];
		CHECK(x->start == y->start && x->used == y->used && x->type == y->type &&
		      x->count == y->count);
		for (size_t k = 0; k < x->count; k++)
			CHECK(x->field_at[k] == y->field_at[k] && x->field_len[k] == y->field_len[k]);
	}
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Chunks of pseudo-random sizes (mostly small, some large); after each,
 * the unconsumed bytes are moved into a buffer of exactly their size, so a
 * read past what has arrived is an out-of-bounds read. */
static void feed_chunks(const uint8_t *data, size_t size, uint64_t seed, struct outcome *o)
{
	size_t have = 0, off = 0;
	uint64_t s = seed | 1;
	while (have < size) {
		uint64_t r = rng_next(&s);
		size_t n = 1 + (size_t)((r >> 20) % ((r & 7) == 0 ? 5000 : (r & 8) ? 8 : 64));
		if (n > size - have)
			n = size - have;
		have += n;
		size_t pending = have - off;
		uint8_t *buf = malloc(pending);
		CHECK(buf != NULL);
		memcpy(buf, data + off, pending);
		off += parse_all(o, buf, pending, off);
		free(buf);
		if (o->verdict == CLUSTER_PARSE_INVALID)
			break;
	}
	o->consumed = off;
}

/* One byte at a time into one buffer; what has not arrived yet is
 * poisoned under ASan. */
static void feed_bytes(const uint8_t *data, size_t size, struct outcome *o)
{
	uint8_t *buf = malloc(size + 1);
	CHECK(buf != NULL);
	memcpy(buf, data, size);
	ASAN_POISON_MEMORY_REGION(buf, size + 1);
	size_t off = 0;
	for (size_t have = 1; have <= size; have++) {
		ASAN_UNPOISON_MEMORY_REGION(buf + have - 1, 1);
		off += parse_all(o, buf + off, have - off, off);
		if (o->verdict == CLUSTER_PARSE_INVALID)
			break;
	}
	o->consumed = off;
	ASAN_UNPOISON_MEMORY_REGION(buf, size + 1);
	free(buf);
}

/* Re-encoding each frame gives its bytes back; the field helpers agree. */
static void check_frames(const uint8_t *data, const struct outcome *o)
{
	static uint8_t out[CLUSTER_FRAME_MAX];
	for (size_t i = 0; i < o->n; i++) {
		const struct event *e = &o->ev[i];
		struct cluster_field f[CLUSTER_FIELDS_MAX];
		for (size_t k = 0; k < e->count; k++) {
			f[k].data = data + e->start + e->field_at[k];
			f[k].len = e->field_len[k];
		}
		size_t n = cluster_frame_encode(out, sizeof(out), e->type, f, e->count);
		CHECK(n == e->used);
		CHECK(memcmp(out, data + e->start, n) == 0);
		CHECK(cluster_frame_encode(out, e->used - 1, e->type, f, e->count) == 0);
		for (size_t k = 0; k < e->count; k++) {
			char s[64];
			bool fits = f[k].len < sizeof(s) && memchr(f[k].data, 0, f[k].len) == NULL;
			CHECK(cluster_field_str(&f[k], s, sizeof(s)) == fits);
			if (fits) {
				CHECK(strlen(s) == f[k].len);
				CHECK(cluster_field_is(&f[k], s));
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, chunks, bytes;
	outcome_init(&whole, size);
	outcome_init(&chunks, size);
	outcome_init(&bytes, size);

	whole.consumed = parse_all(&whole, data, size, 0);
	/* NEED_MORE is only ever a valid prefix of a frame */
	if (whole.verdict == CLUSTER_PARSE_NEED_MORE && size - whole.consumed >= 4) {
		const uint8_t *p = data + whole.consumed;
		uint32_t body = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		CHECK(body != 0 && body <= CLUSTER_FRAME_MAX - 4);
		CHECK(size - whole.consumed < 4 + (size_t)body);
		CHECK(size - whole.consumed == 4 || (p[4] >= CLUSTER_HELLO && p[4] <= CLUSTER_PONG));
	}
	check_frames(data, &whole);

	uint64_t seed = 0xcbf29ce484222325ull ^ size;
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 0x100000001b3ull;
	feed_chunks(data, size, seed, &chunks);
	check_same(&whole, &chunks);
	feed_bytes(data, size, &bytes);
	check_same(&whole, &bytes);

	free(whole.ev);
	free(chunks.ev);
	free(bytes.ev);
	return 0;
}
