/* libFuzzer target for the relay's stream scanner (src/proxy/stream-scan.c).
 * The first byte picks IMAP (literals) or POP3; the rest is a relayed
 * stream, fed whole and then in pseudo-random slices. Both runs must report
 * the same lines (their heads) and end in the same state, and a reported
 * head is never longer than STREAM_SCAN_HEAD or holds its line's CR. */
#include <stdint.h>
#include <string.h>

#include "proxy/stream-scan.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	uint64_t hash;
	size_t lines;
};

static void on_line(void *ctx, const char *head, size_t len)
{
	struct run *r = ctx;
	CHECK(len <= STREAM_SCAN_HEAD);
	for (size_t i = 0; i < len; i++)
		r->hash = (r->hash ^ (uint8_t)head[i]) * 0x100000001b3ull;
	r->hash = (r->hash ^ 0x1ff) * 0x100000001b3ull;
	r->lines++;
}

static void play(const uint8_t *data, size_t size, bool literals, uint64_t rng, struct run *r,
		 struct stream_scan *s)
{
	stream_scan_init(s, literals);
	r->hash = 0xcbf29ce484222325ull;
	r->lines = 0;
	size_t at = 0;
	while (at < size) {
		size_t n = size - at;
		if (rng != 0) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			size_t want = 1 + (rng >> 20) % ((rng & 7) == 0 ? 200 : 5);
			n = want < n ? want : n;
		}
		stream_scan_feed(s, data + at, n, on_line, r);
		at += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	bool literals = (data[0] & 1) != 0;
	struct run whole, sliced;
	struct stream_scan a, b;
	play(data + 1, size - 1, literals, 0, &whole, &a);
	play(data + 1, size - 1, literals, 0x9e3779b97f4a7c15ull ^ size, &sliced, &b);
	CHECK(whole.hash == sliced.hash && whole.lines == sliced.lines);
	CHECK(a.literal_left == b.literal_left && a.after_literal == b.after_literal &&
	      stream_scan_at_boundary(&a) == stream_scan_at_boundary(&b));
	return 0;
}
