/* Follows the line structure of a relayed IMAP or POP3 byte stream without
 * buffering it: where lines start and end, and which bytes are literal data
 * ({n} / {n+} / ~{n} announcements, IMAP only). The relay uses it to notice
 * a client's QUIT or COMPRESS and the home node's BYE, and to know whether
 * a line of its own can be put in the stream. Pure; fuzzed by
 * fuzz/fuzz-stream-scan.c. */
#ifndef TERN_PROXY_STREAM_SCAN_H
#define TERN_PROXY_STREAM_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STREAM_SCAN_HEAD 64   /* bytes of a line's start kept for on_line */

struct stream_scan {
	bool literals;            /* IMAP: lines ending in {n} announce n bytes */
	uint64_t literal_left;    /* bytes of literal data still to pass */
	bool mid_line;            /* some of the current line has passed */
	bool after_literal;       /* the current line continues after a literal */
	char head[STREAM_SCAN_HEAD];
	size_t head_len;
	char tail[24];            /* the last bytes of the current line */
	size_t tail_len;
};

/* Called for each line completed, with its first bytes (literal data and
 * the CRLF excluded; a line continued after a literal reports its start). */
typedef void stream_line_fn(void *ctx, const char *head, size_t len);

void stream_scan_init(struct stream_scan *s, bool literals);
void stream_scan_feed(struct stream_scan *s, const uint8_t *data, size_t len, stream_line_fn *fn,
		      void *ctx);
/* Nothing of a line or literal is pending: a whole line may be inserted. */
bool stream_scan_at_boundary(const struct stream_scan *s);

#endif
