/* Header reading for THREAD=REFERENCES (RFC 5256 §2.2): one raw header field
 * unfolded, and the message-ids in a Message-ID, References or In-Reply-To
 * value. Pure code over the raw header bytes. */
#ifndef TERN_PROTO_IMAP_THREAD_REFS_H
#define TERN_PROTO_IMAP_THREAD_REFS_H

#include <stddef.h>

/* The first field called name (case-insensitive) in the header block at the
 * start of data, unfolded, as a heap string; NULL if absent or out of memory. */
char *imap_thread_header_field(const char *data, size_t size, const char *name);

/* The valid msg-ids ("<left@right>", whitespace inside removed, brackets
 * dropped) of value, in order: *ids_r is a heap array of heap strings
 * (free with imap_thread_ids_free). max = 0: all; else at most max. Returns
 * the count (0 leaves *ids_r NULL), or -1 when out of memory. */
int imap_thread_msgids(const char *value, size_t max, char ***ids_r);
void imap_thread_ids_free(char ***ids, size_t count);

#endif
