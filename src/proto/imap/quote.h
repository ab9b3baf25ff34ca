/* Writing IMAP strings into responses: picks atom, quoted string or literal
 * (RFC 3501 §4.3) so any bytes go out in a form the client parses back to
 * the same bytes; NIL for absent nstrings. Output goes to a libevent evbuffer. */
#ifndef TERN_PROTO_IMAP_QUOTE_H
#define TERN_PROTO_IMAP_QUOTE_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

enum imap_write_flags {
	/* The client enabled UTF8=ACCEPT (RFC 6855 §3): valid UTF-8 may go
	 * in a quoted string instead of a literal. */
	IMAP_WRITE_UTF8 = 1u << 0,
};

/* astring: an atom when every byte is an ASTRING-CHAR and s is not "NIL";
 * else as imap_write_string. All return 0, or -1 when the evbuffer failed. */
int imap_write_astring(struct evbuffer *out, const char *s, size_t len, unsigned flags);
/* string: quoted when possible (no CR, LF, NUL, 8-bit unless UTF8 flag and
 * valid UTF-8, at most TERN_IMAP_QUOTED_MAX bytes), else a literal. */
int imap_write_string(struct evbuffer *out, const char *s, size_t len, unsigned flags);
/* nstring: NIL for s == NULL, else as imap_write_string. */
int imap_write_nstring(struct evbuffer *out, const char *s, size_t len, unsigned flags);
/* Always "{len}" CRLF and the bytes; literal8 writes "~{len}" (RFC 3516). */
int imap_write_literal(struct evbuffer *out, const char *s, size_t len, bool literal8);
/* Always quoted, with '"' and '\' escaped; the caller guarantees the bytes
 * may be quoted (see imap_can_quote). */
int imap_write_quoted(struct evbuffer *out, const char *s, size_t len);

/* True if s may go in a quoted string under flags. */
bool imap_can_quote(const char *s, size_t len, unsigned flags);
/* True if s is a non-empty run of ASTRING-CHARs (RFC 3501 §9). */
bool imap_is_astring_atom(const char *s, size_t len);

#endif
