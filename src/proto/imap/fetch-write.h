/* Writing one FETCH response ("* n FETCH (...)") from what the command loaded
 * for a message: metadata, the cached ENVELOPE/BODYSTRUCTURE, and the raw
 * bytes, which go into the output buffer by reference, not by copy. No
 * session and no store access, so it is unit-tested on its own. */
#ifndef TERN_PROTO_IMAP_FETCH_WRITE_H
#define TERN_PROTO_IMAP_FETCH_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap/fetch-parse.h"
#include "store/store.h"

struct evbuffer;

/* Raw message bytes [offset, offset + size) of a message of total bytes,
 * shared by reference count between the reader and the output buffer (whose
 * references go when the bytes have been sent). */
struct imap_fetch_raw {
	char *data;
	size_t size;
	uint64_t offset;
	uint64_t total;
	unsigned refs;
};

/* Takes over data (heap); refs = 1. NULL when out of memory (data freed). */
struct imap_fetch_raw *imap_fetch_raw_new(char *data, size_t size, uint64_t offset,
					  uint64_t total);
void imap_fetch_raw_unref(struct imap_fetch_raw **raw);

/* What to load for a request. */
struct imap_fetch_needs {
	bool cache;            /* ENVELOPE, BODY or BODYSTRUCTURE */
	bool ids;              /* EMAILID or SAVEDATE (store_msg_ids) */
	bool raw;              /* some body section, or PREVIEW */
	bool range_only;       /* the only section is BODY[]<o.n>: reading
	                          [range_offset, range_offset + range_length) is
	                          enough */
	uint64_t range_offset, range_length;
};
void imap_fetch_needs(const struct imap_fetch_request *req, struct imap_fetch_needs *needs_r);

struct imap_fetch_msg {
	uint32_t seq;
	const struct store_msg *meta;
	const struct store_msg_cache *cache;   /* NULL unless needs.cache */
	const struct store_msg_ids *ids;       /* NULL unless needs.ids */
	struct imap_fetch_raw *raw;            /* NULL unless needs.raw */
	bool add_flags;                        /* \Seen was set implicitly: report
						  FLAGS (RFC 3501 §6.4.5) */
	bool add_modseq;                       /* ... and MODSEQ (RFC 7162 §3.2) */
	bool recent;                           /* \Recent in this session */
	bool utf8;                             /* UTF8=ACCEPT enabled: PREVIEW may
						  go quoted with 8-bit text */
};

enum imap_fetch_write_result {
	IMAP_FETCH_WRITE_OK = 0,
	IMAP_FETCH_WRITE_NOMEM = -1,
	IMAP_FETCH_WRITE_UNKNOWN_CTE = -2,  /* BINARY of an encoding we cannot
					       decode: NO [UNKNOWN-CTE] (RFC 3516) */
	IMAP_FETCH_WRITE_NO_DATA = -3,      /* the loaded data does not cover a
					       section (a caller bug) */
};

/* The bytes a body item (BODY[section], RFC822*, BINARY[section]) stands
 * for, before any <partial> clip: what FETCH sends as its literal. raw
 * must hold the whole message. 1 = *data_r (heap, NUL-terminated) and
 * *len_r set; 0 = no such part (FETCH sends NIL); negative = an
 * imap_fetch_write_result. Used by APPEND's CATENATE URLs (RFC 4469 §3:
 * "as if the literal returned in a FETCH BODY response"). */
int imap_fetch_section_data(const struct imap_fetch_att *a, struct imap_fetch_raw *raw,
			    char **data_r, size_t *len_r);

/* Appends the whole response line for m to out, or nothing on failure. */
int imap_fetch_write(struct evbuffer *out, const struct imap_fetch_request *req,
		     const struct imap_fetch_msg *m);

#endif
