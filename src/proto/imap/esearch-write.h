/* The ESEARCH response (RFC 4731, ESORT RFC 5267, PARTIAL RFC 9394) that
 * SEARCH and SORT share: the correlator and the MIN, MAX, COUNT, ALL and
 * PARTIAL items over ids in result order (mailbox order for SEARCH, sort
 * order for SORT). Each caller adds its MODSEQ and the line end. */
#ifndef TERN_PROTO_IMAP_ESEARCH_WRITE_H
#define TERN_PROTO_IMAP_ESEARCH_WRITE_H

#include <stddef.h>
#include <stdint.h>

struct imap_session;
struct imap_cmd;
struct imap_search_partial;

/* opts: IMAP_SEARCH_RETURN_* bits; partial is read with ..._PARTIAL. */
void imap_esearch_write_items(struct imap_session *s, const struct imap_cmd *cmd, unsigned opts,
			      const uint32_t *ids, size_t n,
			      const struct imap_search_partial *partial);

#endif
