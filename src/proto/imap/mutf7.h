/* Modified UTF-7 mailbox names (RFC 3501 §5.1.3) to and from UTF-8. Clients
 * without UTF8=ACCEPT (RFC 6855) send and expect names in this form; the
 * store keeps UTF-8. Decoding is strict, so one name has one spelling. */
#ifndef TERN_PROTO_IMAP_MUTF7_H
#define TERN_PROTO_IMAP_MUTF7_H

#include <stddef.h>

/* Encodes valid UTF-8 (no overlongs, surrogates or NUL) into modified UTF-7.
 * *out_r is malloc'd and NUL-terminated. 0 = ok, -1 = invalid UTF-8 or out
 * of memory (*out_r untouched). */
int imap_utf8_to_mutf7(const char *in, size_t len, char **out_r);

/* Decodes modified UTF-7 into UTF-8. Rejects: bytes outside 0x20..0x7e,
 * an unterminated or empty "&...-" shift (only "&-" means "&"), base64 that
 * encodes printable ASCII or leaves non-zero or whole-char padding bits,
 * adjacent shifts ("-&"), unpaired surrogates and NUL. 0 = ok, -1 = invalid
 * or out of memory (*out_r untouched). */
int imap_mutf7_to_utf8(const char *in, size_t len, char **out_r);

/* True if in is valid modified UTF-7 (same rules as decoding). */
int imap_mutf7_valid(const char *in, size_t len);

#endif
