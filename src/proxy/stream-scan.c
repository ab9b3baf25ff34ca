#include "proxy/stream-scan.h"

#include <string.h>

void stream_scan_init(struct stream_scan *s, bool literals)
{
	memset(s, 0, sizeof(*s));
	s->literals = literals;
}

bool stream_scan_at_boundary(const struct stream_scan *s)
{
	return s->literal_left == 0 && !s->mid_line && !s->after_literal;
}

/* The literal a line's last bytes announce ("{123}", "{123+}", CR stripped
 * by the caller), or -1. */
static int64_t announced(const char *tail, size_t len)
{
	if (len < 3 || tail[len - 1] != '}')
		return -1;
	size_t end = len - 1;
	if (tail[end - 1] == '+')
		end--;
	size_t start = end;
	while (start > 0 && tail[start - 1] >= '0' && tail[start - 1] <= '9')
		start--;
	if (start == end || start == 0 || tail[start - 1] != '{' || end - start > 18)
		return -1;
	int64_t n = 0;
	for (size_t i = start; i < end; i++)
		n = n * 10 + (tail[i] - '0');
	return n;
}

static void keep(struct stream_scan *s, const uint8_t *p, size_t n)
{
	if (!s->after_literal && s->head_len < sizeof(s->head)) {
		size_t room = sizeof(s->head) - s->head_len;
		size_t take = n < room ? n : room;
		memcpy(s->head + s->head_len, p, take);
		s->head_len += take;
	}
	if (n >= sizeof(s->tail)) {
		memcpy(s->tail, p + n - sizeof(s->tail), sizeof(s->tail));
		s->tail_len = sizeof(s->tail);
	} else {
		size_t drop = s->tail_len + n > sizeof(s->tail) ? s->tail_len + n - sizeof(s->tail) : 0;
		memmove(s->tail, s->tail + drop, s->tail_len - drop);
		s->tail_len -= drop;
		memcpy(s->tail + s->tail_len, p, n);
		s->tail_len += n;
	}
	if (n > 0)
		s->mid_line = true;
}

void stream_scan_feed(struct stream_scan *s, const uint8_t *data, size_t len, stream_line_fn *fn,
		      void *ctx)
{
	const uint8_t *p = data, *end = data + len;
	while (p < end) {
		if (s->literal_left > 0) {
			size_t skip = (size_t)(end - p) < s->literal_left ? (size_t)(end - p)
									 : (size_t)s->literal_left;
			p += skip;
			s->literal_left -= skip;
			continue;
		}
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			keep(s, p, (size_t)(end - p));
			return;
		}
		keep(s, p, (size_t)(nl - p));
		p = nl + 1;
		size_t tlen = s->tail_len;
		if (tlen > 0 && s->tail[tlen - 1] == '\r')
			tlen--;
		int64_t lit = s->literals ? announced(s->tail, tlen) : -1;
		s->tail_len = 0;
		s->mid_line = false;
		if (lit >= 0) {
			/* the line goes on after the literal's bytes */
			s->literal_left = (uint64_t)lit;
			s->after_literal = true;
			continue;
		}
		size_t hlen = s->head_len;
		if (hlen > 0 && hlen < sizeof(s->head) && s->head[hlen - 1] == '\r')
			hlen--;
		if (fn != NULL)
			fn(ctx, s->head, hlen);
		s->head_len = 0;
		s->after_literal = false;
	}
}
