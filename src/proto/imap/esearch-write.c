#include "proto/imap/esearch-write.h"

#include <inttypes.h>
#include <string.h>

#include "proto/imap/quote.h"
#include "proto/imap/search-parse.h"
#include "proto/imap/seqset.h"
#include "proto/imap/session.h"

void imap_esearch_write_items(struct imap_session *s, const struct imap_cmd *cmd, unsigned opts,
			      const uint32_t *ids, size_t n,
			      const struct imap_search_partial *partial)
{
	imap_out_add(s, "* ESEARCH (TAG ", 15);
	imap_out_check(s, imap_write_quoted(imap_out(s), cmd->tag, strlen(cmd->tag)));
	imap_out_add(s, ")", 1);
	if (cmd->uid)
		imap_out_add(s, " UID", 4);
	/* for SORT, MIN and MAX are the first and last in sort order */
	if ((opts & IMAP_SEARCH_RETURN_MIN) != 0 && n > 0)
		imap_out_printf(s, " MIN %" PRIu32, ids[0]);
	if ((opts & IMAP_SEARCH_RETURN_MAX) != 0 && n > 0)
		imap_out_printf(s, " MAX %" PRIu32, ids[n - 1]);
	if ((opts & IMAP_SEARCH_RETURN_COUNT) != 0)
		imap_out_printf(s, " COUNT %zu", n);
	if ((opts & IMAP_SEARCH_RETURN_ALL) != 0 && n > 0) {
		imap_out_add(s, " ALL ", 5);
		/* in result order: only ascending runs become ranges */
		imap_out_check(s, imap_seqset_write(imap_out(s), ids, n));
	}
	if ((opts & IMAP_SEARCH_RETURN_PARTIAL) != 0) {
		/* RFC 9394 §3.1: positions in result order; PARTIAL (range
		 * set), NIL when none falls in it */
		size_t start, k;
		imap_search_partial_slice(partial, n, &start, &k);
		imap_out_printf(s, " PARTIAL (" IMAP_SEARCH_PARTIAL_FMT " ",
				IMAP_SEARCH_PARTIAL_ARGS(partial));
		if (k == 0)
			imap_out_add(s, "NIL", 3);
		else
			imap_out_check(s, imap_seqset_write(imap_out(s), ids + start, k));
		imap_out_add(s, ")", 1);
	}
}
