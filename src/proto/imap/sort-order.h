/* SORT ordering (RFC 5256 §3, RFC 5957): per-message sort keys built from
 * the store's cached parse (ENVELOPE, decoded subject, Date:) and the
 * multi-key comparison with REVERSE and the sequence-number tie break. Pure
 * code: the command loads, this orders. */
#ifndef TERN_PROTO_IMAP_SORT_ORDER_H
#define TERN_PROTO_IMAP_SORT_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "proto/imap/sort-parse.h"

/* One message to order. String keys are heap (NULL counts as ""); compare
 * them with strcmp. */
struct imap_sort_msg {
	uint32_t seq, uid;
	int64_t arrival;        /* INTERNALDATE, unix seconds */
	int64_t date;           /* sent date (Date:), or INTERNALDATE without one */
	uint64_t size;
	char *keys[IMAP_SORT_DISPLAYTO + 1]; /* by enum imap_sort_key; string keys only */
};

/* Bit (1u << key) for every key of prog whose value comes from the cached
 * parse (everything but ARRIVAL and SIZE). 0 = metadata is enough. */
unsigned imap_sort_cache_needs(const struct imap_sort_program *prog);

/* Fills the string keys named in needs and m->date from a message's cached
 * ENVELOPE, decoded subject and sent date (0 = no usable Date:; then
 * m->arrival is used, so set it first). 0, or -1 when out of memory. */
int imap_sort_fill_keys(struct imap_sort_msg *m, unsigned needs, const char *envelope,
			const char *subject, int64_t sent_date);

/* Sorts msgs by prog's criteria; equal messages keep ascending sequence
 * number order (RFC 5256 §3). */
void imap_sort_order(struct imap_sort_msg *msgs, size_t count,
		     const struct imap_sort_program *prog);

void imap_sort_msgs_free(struct imap_sort_msg **msgs, size_t count);

#endif
