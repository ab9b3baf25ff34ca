/* Updating SEARCH and SORT contexts (RFC 5267 §4.3, CONTEXT=SEARCH and
 * CONTEXT=SORT): a SEARCH or SORT with RETURN (UPDATE) leaves its program
 * and result in the selected view, and view.c's sync tells this module
 * which messages changed, arrived or are about to be expunged. Only those
 * messages are evaluated against each context, never the whole folder; the
 * differences go out as "* ESEARCH (TAG ...) ADDTO/REMOVEFROM". Contexts
 * end with the view (SELECT, EXAMINE, CLOSE, UNSELECT) or CANCELUPDATE. */
#ifndef TERN_PROTO_IMAP_SEARCH_CONTEXT_H
#define TERN_PROTO_IMAP_SEARCH_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap/search-parse.h"
#include "proto/imap/session.h"
#include "proto/imap/sort-order.h"
#include "proto/imap/sort-parse.h"

struct store_msg;

/* Updating contexts one selected mailbox may hold. Each costs one result
 * list (for SORT with its sort keys) and an evaluation of every changed
 * message: 16 is more than clients use (one per open list view) and bounds
 * that work. More gets "* NO [NOUPDATE tag]" (RFC 5267 §4.3.1), the search
 * itself is still answered. */
#define IMAP_SEARCH_CONTEXTS_MAX 16

/* Message reads (text for BODY/TEXT/HEADER keys, cached parse for SORT
 * keys) one sync may spend on re-evaluating contexts. The sync runs on the
 * loop thread unsliced, so a client that flags a whole big folder while a
 * BODY context is live must not hold every other session up for minutes:
 * a context that would need more ends with "* NO [NOUPDATE tag]", as one
 * refused. Metadata keys need no read; search-context.c bounds the rest
 * of a sync's work (bytes of text, key evaluations) and what contexts
 * keep, and refuses programs of too many keys. */
#define IMAP_SEARCH_CONTEXT_READS 256

/* True if tag names a live context (RFC 5267 §4.3: reusing it with UPDATE
 * is BAD). */
bool imap_context_tag_in_use(const struct imap_session *s, const char *tag);

/* Keeps a SEARCH context for cmd (its tag and UID form): takes *prog
 * (already prepared, see imap_search_prepare), NULLing it, and copies uids
 * (the result, ascending) and saved ("$" as the search saw it). Returns 1,
 * or 0 (the limit is reached: the caller sends NOUPDATE) or -1 (out of
 * memory), where the caller keeps *prog. */
int imap_context_add_search(struct imap_session *s, const struct imap_cmd *cmd,
			    struct imap_search_program **prog, const uint32_t *uids, size_t count,
			    const uint32_t *saved, size_t saved_count);

/* Writes "* NO [NOUPDATE tag] ..." (RFC 5267 §4.3.1). */
void imap_context_refused(struct imap_session *s, const struct imap_cmd *cmd);

/* The same for a SORT, except that msgs (heap, count, with the sort keys
 * filled and in sort order) become the context's (*msgs NULLed) on 1. */
int imap_context_add_sort(struct imap_session *s, const struct imap_cmd *cmd,
			  struct imap_sort_program **prog, struct imap_sort_msg **msgs,
			  size_t count, const uint32_t *saved, size_t saved_count);

/* Ends the context named tag: true, or false when there is none. */
bool imap_context_cancel(struct imap_session *s, const char *tag);

/* Frees every context (the view closes). */
void imap_contexts_free(struct imap_search_contexts **c);

/* view.c, before it reports the expunge of the view's messages at the
 * ascending indexes idx: REMOVEFROM goes out first, so that its sequence
 * numbers are still valid (RFC 5267 §4.3.4). */
void imap_contexts_expunging(struct imap_session *s, const size_t *idx, size_t n);

/* view.c, after EXISTS and FETCH FLAGS: msgs (ascending UIDs) changed or
 * arrived; each one in the view is evaluated again (RFC 5267 §4.3.3). */
void imap_contexts_changed(struct imap_session *s, const struct store_msg *msgs, size_t n);

#endif
