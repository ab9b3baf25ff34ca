/* SEARCH evaluation: decides whether one message matches a parsed search
 * program (search-parse.h). Metadata keys are answered from the message list;
 * header and body keys load the message through a caller-supplied callback,
 * and only when the cheap keys could not already decide. No session, no I/O. */
#ifndef TERN_PROTO_IMAP_SEARCH_EVAL_H
#define TERN_PROTO_IMAP_SEARCH_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap/search-parse.h"

/* What the evaluator knows of a message without reading it. */
struct imap_search_msg {
	uint32_t seq, uid;
	uint32_t flags;            /* enum store_flag bits */
	const char *keywords;      /* space separated; NULL = none */
	bool recent;
	uint64_t modseq;
	int64_t internal_date;     /* unix seconds */
	int32_t internal_tz;       /* minutes east of UTC */
	uint64_t size;
	int64_t save_date;         /* unix seconds (RFC 8514) */
	const char *emailid;       /* RFC 8474; NULL or "" = unknown */
};

/* Loads the raw message for uid. head_only: the caller may return just a
 * prefix (at least the header block when it can; *total_r says the full
 * size). *data_r is heap memory the evaluator frees. 1 found, 0 gone,
 * -1 error. */
typedef int imap_search_load_fn(void *arg, uint32_t uid, bool head_only, char **data_r,
				size_t *size_r, uint64_t *total_r);

struct imap_search_ctx {
	int64_t now;               /* unix seconds, for OLDER/YOUNGER */
	const uint32_t *saved;     /* "$" (RFC 5182): UIDs ascending */
	size_t saved_count;
	imap_search_load_fn *load;
	void *load_arg;
};

/* Resolves every sequence set of the program ("*" = max_seq or max_uid).
 * 0 ok, -1 out of memory. Call once before matching. */
int imap_search_prepare(struct imap_search_program *prog, uint32_t max_seq, uint32_t max_uid);

/* True if the program needs more than the metadata of a message. */
bool imap_search_needs_content(const struct imap_search_key *key);

/* 1 the message matches, 0 it does not (or it was expunged meanwhile),
 * -1 the load callback failed. */
int imap_search_match(const struct imap_search_ctx *ctx, const struct imap_search_key *root,
		      const struct imap_search_msg *m);

/* Case-insensitive (Unicode case folding) substring test on UTF-8; an empty
 * needle matches. Exposed for tests. */
bool imap_search_contains(const char *haystack, const char *needle);

#endif
