/* Parses a raw RFC 5322 message with GMime into what IMAP serves without
 * re-reading the message: ENVELOPE, BODYSTRUCTURE, BODY, the decoded subject
 * and Date, and (for SEARCH) section boundaries and decoded text. Pure
 * functions over bytes: no I/O, thread-safe after mime_init(). */
#ifndef TERN_STORE_MIME_H
#define TERN_STORE_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "store/address.h"
#include "store/store.h"

/* Once per process, before any other thread calls into this module. */
void mime_init(void);

/* Fills *c_r (all heap strings, free with store_msg_cache_clear). Never fails
 * on malformed input: a message GMime cannot parse is described as a single
 * text/plain part, as other servers do. Returns 0, or -1 on out-of-memory. */
int mime_summarize(const void *data, size_t size, struct store_msg_cache *c_r);

/* Byte range of a body section in the raw message (RFC 3501 §6.4.5).
 * part: dotted part numbers ("" = whole message, "1.2" ...); kind: one of
 * "" (the part's body; for "" the whole message), "HEADER", "TEXT", "MIME".
 * 1 found (*offset_r and *length_r set), 0 no such part, -1 error. */
int mime_section_range(const void *data, size_t size, const char *part, const char *kind,
		       size_t *offset_r, size_t *length_r);

/* Decoded searchable text: *headers_r = all header fields unfolded with
 * encoded-words decoded to UTF-8; *body_r = the text of every text part
 * after transfer decoding (base64/QP) and charset conversion to UTF-8.
 * Heap strings. Returns 0 or -1. */
int mime_search_text(const void *data, size_t size, char **headers_r, char **body_r);

/* Value of the first header field named name (case-insensitive), decoded to
 * UTF-8, or NULL. Heap string. */
char *mime_header_value(const void *data, size_t size, const char *name);

/* The addresses of the first header field named name (case-insensitive),
 * the field ENVELOPE shows, parsed as ENVELOPE parses them (address.h).
 * 1 found (*l_r set, maybe empty; free with mail_address_list_clear),
 * 0 no such field, -1 out of memory. */
int mime_header_addresses(const void *data, size_t size, const char *name,
			  struct mail_address_list *l_r);

#endif
