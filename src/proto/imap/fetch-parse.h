/* FETCH attribute parser: turns the arguments after the sequence set of
 * FETCH / UID FETCH into a list of items (RFC 3501 §6.4.5), including
 * BODY[section]<partial>, BINARY (RFC 3516), PREVIEW (RFC 8970), EMAILID and
 * THREADID (RFC 8474), SAVEDATE (RFC 8514) and the CONDSTORE/QRESYNC
 * modifiers (CHANGEDSINCE n) (VANISHED) of RFC 7162. Pure code. */
#ifndef TERN_PROTO_IMAP_FETCH_PARSE_H
#define TERN_PROTO_IMAP_FETCH_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap/parser.h"
#include "proto/imap/search-parse.h"

enum imap_fetch_type {
	IMAP_FETCH_FLAGS,
	IMAP_FETCH_INTERNALDATE,
	IMAP_FETCH_RFC822_SIZE,
	IMAP_FETCH_ENVELOPE,
	IMAP_FETCH_BODY,           /* BODY without section: non-extensible structure */
	IMAP_FETCH_BODYSTRUCTURE,
	IMAP_FETCH_UID,
	IMAP_FETCH_MODSEQ,
	IMAP_FETCH_RFC822,         /* = BODY[] (sets \Seen) */
	IMAP_FETCH_RFC822_HEADER,  /* = BODY.PEEK[HEADER] */
	IMAP_FETCH_RFC822_TEXT,    /* = BODY[TEXT] (sets \Seen) */
	IMAP_FETCH_BODY_SECTION,   /* BODY[...] and BODY.PEEK[...] */
	IMAP_FETCH_BINARY,         /* BINARY[...] and BINARY.PEEK[...] */
	IMAP_FETCH_BINARY_SIZE,    /* BINARY.SIZE[...] */
	IMAP_FETCH_PREVIEW,        /* PREVIEW [(LAZY)] (RFC 8970) */
	IMAP_FETCH_EMAILID,        /* EMAILID (RFC 8474 §5.1) */
	IMAP_FETCH_THREADID,       /* THREADID (RFC 8474 §5.2): always NIL */
	IMAP_FETCH_SAVEDATE,       /* SAVEDATE (RFC 8514) */
};

enum imap_section_spec {
	IMAP_SECTION_ALL,          /* BODY[] or BODY[1.2]: the whole part */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME,         /* only after a part number */
};

struct imap_fetch_section {
	uint32_t *parts;           /* 1.2.3 -> {1,2,3}; none for the top message */
	size_t part_count;
	enum imap_section_spec spec;
	char **fields;             /* HEADER.FIELDS[.NOT] names, as sent */
	size_t field_count;
};

struct imap_fetch_att {
	enum imap_fetch_type type;
	bool peek;                 /* BODY.PEEK / BINARY.PEEK */
	bool lazy;                 /* PREVIEW (LAZY): accepted; the preview is
	                              made at once all the same (RFC 8970 §3.1) */
	struct imap_fetch_section section;
	bool partial;              /* <offset.length> given */
	uint32_t partial_offset, partial_length;
	char *response_name;       /* how the answer names it: "FLAGS",
	                              "BODY[HEADER.FIELDS (From To)]<0>" ... */
};

struct imap_fetch_request {
	struct imap_fetch_att *atts;
	size_t count;
	bool changedsince_given;   /* (CHANGEDSINCE n) */
	uint64_t changedsince;
	bool vanished;             /* (VANISHED), UID FETCH with CHANGEDSINCE only */
	bool partial_given;        /* (PARTIAL m:n), UID FETCH only (RFC 9394 §3.3): */
	struct imap_search_partial partial_range; /* positions in the set's messages */
	bool sets_seen;            /* some item sets \Seen (RFC 3501 §6.4.5) */
};

/* Parses args (after the sequence set). uid: the command was UID FETCH, so
 * a UID item is added if absent (RFC 3501 §6.4.8); CHANGEDSINCE likewise adds
 * MODSEQ (RFC 7162 §3.2.4). 0 = ok; -1 = BAD with *error_r a static human
 * text, *req_r untouched. */
int imap_fetch_parse(const struct imap_arg *args, size_t count, bool uid,
		     struct imap_fetch_request **req_r, const char **error_r);
void imap_fetch_request_free(struct imap_fetch_request **req);

#endif
