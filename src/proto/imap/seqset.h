/* IMAP sequence sets (RFC 3501 §9 sequence-set, RFC 5182 "$"): parse
 * "1,3:5,7:*" into ranges, resolve "*" against the mailbox, test membership,
 * and format sorted numbers back into compact "1:3,5" for COPYUID, VANISHED
 * and ESEARCH responses. Pure code, no I/O. */
#ifndef TERN_PROTO_IMAP_SEQSET_H
#define TERN_PROTO_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

struct imap_seq_range {
	uint32_t lo, hi;            /* inclusive, lo <= hi, lo >= 1 */
};

struct imap_seqset;

/* Parses the syntax only ("*" stays symbolic until imap_seqset_resolve).
 * 0 = ok, -1 = invalid (empty, 0, garbage, number over 2^32-1, "$" mixed
 * with anything). *set_r untouched on failure. */
int imap_seqset_parse(const char *s, size_t len, struct imap_seqset **set_r);
void imap_seqset_free(struct imap_seqset **set);

/* True if the set is "$" (SEARCHRES, RFC 5182): the caller substitutes the
 * saved result; such a set has no ranges of its own. */
bool imap_seqset_is_saved(const struct imap_seqset *set);
/* True if the set mentions "*". */
bool imap_seqset_has_star(const struct imap_seqset *set);

/* Replaces "*" by max (the highest sequence number or UID; 0 for an empty
 * mailbox) and sorts and merges the ranges. "n:*" with n > max means max:n
 * (RFC 3501 §6.4.8); ranges are clamped to start at 1 and dropped when empty.
 * May be called again with another max. 0 = ok, -1 = out of memory. */
int imap_seqset_resolve(struct imap_seqset *set, uint32_t max);

/* Sorted, merged, disjoint ranges after resolve (none before). */
const struct imap_seq_range *imap_seqset_ranges(const struct imap_seqset *set, size_t *count_r);
/* Membership after resolve, by binary search. */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);
/* How many numbers the resolved set holds. */
uint64_t imap_seqset_count(const struct imap_seqset *set);

/* Builds a resolved set from ascending numbers (duplicates allowed); for
 * SEARCHRES SAVE. 0 = ok, -1 = out of memory or not ascending. */
int imap_seqset_from_sorted(const uint32_t *ids, size_t n, struct imap_seqset **set_r);

/* Writes ascending numbers as "1:3,5,9:10" (duplicates merged; an
 * out-of-order number just starts a new element). Nothing for n = 0.
 * 0 = ok, -1 = evbuffer failure. */
int imap_seqset_write(struct evbuffer *out, const uint32_t *ids, size_t n);
/* Writes the resolved ranges the same way. */
int imap_seqset_write_set(struct evbuffer *out, const struct imap_seqset *set);
/* Same as imap_seqset_write into a malloc'd NUL-terminated string ("" for
 * n = 0); NULL when out of memory. */
char *imap_seqset_format(const uint32_t *ids, size_t n);

#endif
