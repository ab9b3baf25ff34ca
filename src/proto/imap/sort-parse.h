/* Argument parsers of SORT (RFC 5256, SORT=DISPLAY RFC 5957, ESORT's RETURN
 * RFC 5267) and THREAD (RFC 5256): sort criteria or algorithm, the mandatory
 * charset, then search keys handed to the SEARCH parser (search-parse.h).
 * Pure code. */
#ifndef TERN_PROTO_IMAP_SORT_PARSE_H
#define TERN_PROTO_IMAP_SORT_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/limits.h"
#include "proto/imap/parser.h"
#include "proto/imap/search-parse.h"

enum imap_sort_key {
	IMAP_SORT_ARRIVAL, IMAP_SORT_CC, IMAP_SORT_DATE, IMAP_SORT_FROM, IMAP_SORT_SIZE,
	IMAP_SORT_SUBJECT, IMAP_SORT_TO, IMAP_SORT_DISPLAYFROM, IMAP_SORT_DISPLAYTO,
};

struct imap_sort_criterion {
	enum imap_sort_key key;
	bool reverse;
};

struct imap_sort_program {
	struct imap_sort_criterion crit[TERN_SORT_CRITERIA_MAX];
	size_t crit_count;
	/* Search keys; its esearch/return_opts carry SORT RETURN (RFC 5267),
	 * its charset the SORT charset. */
	struct imap_search_program *search;
};

enum imap_thread_algo { IMAP_THREAD_ORDEREDSUBJECT, IMAP_THREAD_REFERENCES };

/* Parses the arguments of SORT / UID SORT. Returns an imap_search_parse_result;
 * on failure *error_r is a static human text and *prog_r untouched. */
int imap_sort_parse(const struct imap_arg *args, size_t count, struct imap_sort_program **prog_r,
		    const char **error_r);
void imap_sort_program_free(struct imap_sort_program **prog);

/* Parses the arguments of THREAD / UID THREAD (same result convention). */
int imap_thread_parse(const struct imap_arg *args, size_t count, enum imap_thread_algo *algo_r,
		      struct imap_search_program **search_r, const char **error_r);

#endif
