/* HEADER.FIELDS / HEADER.FIELDS.NOT (RFC 3501 §6.4.5): keeps or drops whole
 * header fields (with their continuation lines) by name, case-insensitively,
 * and always ends the result with the blank line that ends a header. Pure. */
#ifndef TERN_PROTO_IMAP_HEADER_FILTER_H
#define TERN_PROTO_IMAP_HEADER_FILTER_H

#include <stdbool.h>
#include <stddef.h>

/* Filters the header block hdr (as in the message, blank line included or
 * not). keep_listed: true for HEADER.FIELDS (keep the named fields), false for
 * HEADER.FIELDS.NOT (drop them). Fields keep their original bytes and order;
 * the result ends with one CRLF blank line. *out_r is heap memory
 * (NUL-terminated, *len_r bytes). 0 ok, -1 out of memory. */
int imap_header_filter(const char *hdr, size_t len, char *const *names, size_t name_count,
		       bool keep_listed, char **out_r, size_t *len_r);

#endif
