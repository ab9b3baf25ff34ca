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
	uint64_t modseq;        /* for the MODSEQ of ESORT's MIN and MAX */
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

/* <0, 0 or >0 as a sorts before, with or after b by prog's criteria, the
 * sequence number breaking ties (what imap_sort_order uses). */
int imap_sort_compare(const struct imap_sort_msg *a, const struct imap_sort_msg *b,
		      const struct imap_sort_program *prog);

/* Sorts msgs by prog's criteria; equal messages keep ascending sequence
 * number order (RFC 5256 §3). */
void imap_sort_order(struct imap_sort_msg *msgs, size_t count,
		     const struct imap_sort_program *prog);

/* The same in steps, so that ordering a big folder never holds the loop
 * thread for long: begin (NULL = out of memory), then step until it
 * returns 1 (msgs is sorted) rather than 0 (deadline_ms, on tern_now_ms's
 * clock, has passed; every call makes some progress, so a deadline of 0
 * gives the finest slicing), then free. msgs and prog are borrowed and
 * must not change meanwhile. The order is the one imap_sort_order gives:
 * the comparison is total (sequence numbers break every tie). */
struct imap_sort_ordering;
struct imap_sort_ordering *imap_sort_order_begin(struct imap_sort_msg *msgs, size_t count,
						 const struct imap_sort_program *prog);
int imap_sort_order_step(struct imap_sort_ordering *o, uint64_t deadline_ms);
void imap_sort_order_free(struct imap_sort_ordering **o);

/* A merge sort of the indices 0..n-1 in steps (the engine of the above,
 * shared with THREAD ORDEREDSUBJECT): runs of TERN_INDEX_SORT_RUN indices
 * are sorted with qsort_r, then merged pairwise, with a look at the clock
 * every few hundred elements. cmp gets pointers to two size_t indices (as
 * with qsort_r) and must be a total order, so that the result is the one
 * any other sort would give. */
#define TERN_INDEX_SORT_RUN 2048
typedef int imap_index_cmp(const void *a, const void *b, void *arg);
struct imap_index_sort;
/* NULL = out of memory. */
struct imap_index_sort *imap_index_sort_new(size_t n, imap_index_cmp *cmp, void *arg);
/* 1 done, 0 deadline_ms passed (after some progress). */
int imap_index_sort_step(struct imap_index_sort *s, uint64_t deadline_ms);
/* Once done: the n indices in order, valid until the sort is freed. */
const size_t *imap_index_sort_result(const struct imap_index_sort *s);
void imap_index_sort_free(struct imap_index_sort **s);

void imap_sort_msgs_free(struct imap_sort_msg **msgs, size_t count);

#endif
