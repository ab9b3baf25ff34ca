/* The search step shared by SORT and THREAD: evaluates a search program over
 * the selected folder (as SEARCH does, see search-eval.h) and returns the
 * matching messages with their metadata, in mailbox order. Session glue:
 * reads the session's store on the loop thread. */
#ifndef TERN_PROTO_IMAP_SORT_RUN_H
#define TERN_PROTO_IMAP_SORT_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "proto/imap/search-parse.h"

struct imap_session;

struct imap_sort_match {
	uint32_t seq, uid;
	int64_t internal_date;
	uint64_t size;
	uint64_t modseq;
};

/* Evaluates prog over s->view. *matches_r (heap, ascending seq) and
 * *count_r; *max_modseq_r the highest modseq among them. 0, or -1 with
 * *err_r set and the outputs untouched. */
int imap_sort_search(struct imap_session *s, struct imap_search_program *prog,
		     struct imap_sort_match **matches_r, size_t *count_r, uint64_t *max_modseq_r,
		     enum tern_error *err_r);

/* The header block of a message, or a prefix of it when the header is very
 * long (enough for Message-ID/References in practice). 1 found (*data_r
 * heap, *size_r), 0 gone, -1 error (*err_r). */
int imap_sort_read_header(struct imap_session *s, uint32_t uid, char **data_r, size_t *size_r,
			  enum tern_error *err_r);

#endif
