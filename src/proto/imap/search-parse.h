/* SEARCH program parser: turns the arguments of SEARCH / UID SEARCH into a
 * key tree (RFC 3501 §6.4.4), with ESEARCH RETURN options (RFC 4731, SAVE
 * from RFC 5182), MODSEQ (RFC 7162 §3.1.5) and CHARSET. Pure code; the
 * session resolves sequence sets and evaluates the tree against the store. */
#ifndef TERN_PROTO_IMAP_SEARCH_PARSE_H
#define TERN_PROTO_IMAP_SEARCH_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>

#include "proto/imap/parser.h"
#include "proto/imap/seqset.h"

enum imap_search_key_type {
	IMAP_SK_ALL,
	IMAP_SK_AND,        /* children; also "( ... )" and the top level */
	IMAP_SK_OR,         /* exactly 2 children */
	IMAP_SK_NOT,        /* exactly 1 child */
	IMAP_SK_SEQSET,     /* set: message sequence numbers ("$" possible) */
	IMAP_SK_UIDSET,     /* set: UIDs ("$" possible) */
	IMAP_SK_FLAG,       /* str: system flag ("\Seen", "\Recent"...) or keyword;
	                       flag_set: must have it (true) or lack it (false).
	                       NEW = \Recent and not \Seen; OLD = not \Recent */
	IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE,                /* INTERNALDATE; day */
	IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE,    /* Date: header; day */
	IMAP_SK_LARGER, IMAP_SK_SMALLER,                          /* number: RFC822.SIZE */
	IMAP_SK_OLDER, IMAP_SK_YOUNGER,                           /* number: seconds (RFC 5032) */
	IMAP_SK_HEADER,     /* str: field name (BCC/CC/FROM/SUBJECT/TO map here);
	                       value: substring, "" = the field exists;
	                       address: BCC/CC/FROM/TO, which look in the parsed
	                       addresses (the envelope's), not in the text */
	IMAP_SK_BODY,       /* value */
	IMAP_SK_TEXT,       /* value */
	IMAP_SK_MODSEQ,     /* number: mod-sequence >= it; str: entry name or NULL */
	IMAP_SK_SAVEDBEFORE, IMAP_SK_SAVEDON, IMAP_SK_SAVEDSINCE, /* save date (RFC 8514), UTC day */
	IMAP_SK_EMAILID,    /* str: objectid (RFC 8474 §6) */
	IMAP_SK_THREADID,   /* str: objectid; never matches (THREADID is always NIL) */
};

enum imap_search_entry_type { IMAP_SEARCH_ENTRY_ALL, IMAP_SEARCH_ENTRY_PRIV,
			      IMAP_SEARCH_ENTRY_SHARED };

struct imap_search_key {
	enum imap_search_key_type type;
	bool flag_set;
	bool address;                /* IMAP_SK_HEADER: see above */
	char *str;
	char *value;                 /* NUL-terminated; may hold UTF-8 */
	size_t value_len;
	int64_t day;                 /* days since 1970-01-01 */
	uint64_t number;
	enum imap_search_entry_type entry_type;
	struct imap_seqset *set;     /* unresolved */
	struct imap_search_key *children;
	size_t child_count;
};

enum imap_search_return {
	IMAP_SEARCH_RETURN_MIN = 1u << 0,
	IMAP_SEARCH_RETURN_MAX = 1u << 1,
	IMAP_SEARCH_RETURN_ALL = 1u << 2,
	IMAP_SEARCH_RETURN_COUNT = 1u << 3,
	IMAP_SEARCH_RETURN_SAVE = 1u << 4,
	IMAP_SEARCH_RETURN_PARTIAL = 1u << 5, /* RFC 5267 §4.4, RFC 9394 */
	IMAP_SEARCH_RETURN_UPDATE = 1u << 6,  /* RFC 5267 §4.3: keep the result up to date */
	IMAP_SEARCH_RETURN_CONTEXT = 1u << 7, /* RFC 5267 §4.2: a hint, ignored */
};
/* The options that produce return data: without any of them (SAVE, UPDATE
 * or CONTEXT alone) no ESEARCH response is sent (RFC 5182 §2.4). */
#define IMAP_SEARCH_RETURN_DATA (IMAP_SEARCH_RETURN_MIN | IMAP_SEARCH_RETURN_MAX | \
				 IMAP_SEARCH_RETURN_ALL | IMAP_SEARCH_RETURN_COUNT | \
				 IMAP_SEARCH_RETURN_PARTIAL)

/* PARTIAL's range (RFC 9394 §3.1): first:last counted from 1 at the lowest
 * result (SEARCH) or the first in sort order (SORT), or -first:-last counted
 * from -1 at the other end; kept with |first| <= |last|. reversed: the
 * client wrote them the other way round ("10:1"), and the answer gives
 * back "the original range" as it was written. */
struct imap_search_partial {
	int64_t first, last;
	bool reversed;
};

/* "PARTIAL (first:last " as the client wrote the range. */
#define IMAP_SEARCH_PARTIAL_FMT "%" PRId64 ":%" PRId64
#define IMAP_SEARCH_PARTIAL_ARGS(p) ((p)->reversed ? (p)->last : (p)->first), \
				    ((p)->reversed ? (p)->first : (p)->last)

enum imap_search_charset { IMAP_SEARCH_CHARSET_US_ASCII, IMAP_SEARCH_CHARSET_UTF8 };

struct imap_search_program {
	struct imap_search_key *root;       /* IMAP_SK_AND of the top-level keys */
	bool esearch;                       /* RETURN given: answer with ESEARCH */
	unsigned return_opts;               /* enum imap_search_return bits; RETURN ()
	                                       means ALL (RFC 4731 §3.1) */
	enum imap_search_charset charset;   /* US-ASCII when not given */
	bool uses_modseq;                   /* a MODSEQ key: append (MODSEQ n) to the
	                                       answer (RFC 7162 §3.1.5) */
	bool uses_saved;                    /* "$" appears (RFC 5182) */
	struct imap_search_partial partial; /* with IMAP_SEARCH_RETURN_PARTIAL */
};

enum imap_search_parse_result {
	IMAP_SEARCH_PARSE_OK = 0,
	IMAP_SEARCH_PARSE_BAD = -1,         /* reply BAD error_r */
	IMAP_SEARCH_PARSE_BADCHARSET = -2,  /* reply NO [BADCHARSET (US-ASCII UTF-8)] */
};

/* Parses args (everything after "SEARCH"). On failure *error_r is a static
 * human text and *prog_r untouched. Out of memory is reported as BAD. */
int imap_search_parse(const struct imap_arg *args, size_t count,
		      struct imap_search_program **prog_r, const char **error_r);
void imap_search_program_free(struct imap_search_program **prog);

/* The options of a RETURN list (MIN MAX ALL COUNT SAVE, PARTIAL range,
 * UPDATE and CONTEXT of RFC 5267); () and (CONTEXT) are ALL. 0, or -1 with *error_r a static text. Shared with SORT. */
int imap_search_return_parse(const struct imap_arg *list, size_t n, unsigned *opts_r,
			     struct imap_search_partial *partial_r, const char **error_r);
/* Parses the range after PARTIAL ("1:10", "-1:-5"; both ends non-zero and of
 * one sign, at most 2^32-1 away; "10:1" is "1:10"). false if invalid. */
bool imap_search_partial_parse(const struct imap_arg *a, struct imap_search_partial *p_r);
/* The results of a count-long list that PARTIAL p selects: *start_r (0-based)
 * and *n_r (0 when the range is past the end). */
void imap_search_partial_slice(const struct imap_search_partial *p, size_t count,
			       size_t *start_r, size_t *n_r);

#endif
