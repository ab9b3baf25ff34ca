/* IMAP4rev1 (RFC 3501) command parser: a pure, resumable state machine over
 * bytes that turns client input into tagged commands with an argument tree.
 * It handles synchronising and LITERAL+ (RFC 7888) literals and literal8
 * (RFC 3516), never does I/O and never replies: the session does both. */
#ifndef TERN_PROTO_IMAP_PARSER_H
#define TERN_PROTO_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

enum imap_arg_type {
	IMAP_ARG_ATOM,     /* case kept; includes flags (\Seen, \*), sequence
	                      sets, and FETCH atoms with brackets verbatim:
	                      "BODY.PEEK[HEADER.FIELDS (From To)]<0.512>" */
	IMAP_ARG_STRING,   /* quoted string, unescaped (may hold UTF-8) */
	IMAP_ARG_LITERAL,  /* {n} / {n+} / ~{n}; may hold NULs: use len */
	IMAP_ARG_NIL,      /* unquoted NIL (any case); str is the atom as sent */
	IMAP_ARG_LIST,     /* ( ... ): list/list_count */
};

struct imap_arg {
	enum imap_arg_type type;
	char *str;                /* NUL-terminated; NULL for a LIST */
	size_t len;
	struct imap_arg *list;    /* LIST only */
	size_t list_count;
	bool literal8;            /* LITERAL sent as ~{n} (RFC 3516) */
};

struct imap_cmd {
	char *tag;
	char *name;               /* uppercased; "UID FETCH" gives "FETCH" */
	bool uid;                 /* the command came as "UID <name>" */
	struct imap_arg *args;
	size_t arg_count;
};

struct imap_parser_limits {
	size_t max_line_length;   /* bytes of command text (CRLF included, literal
	                             data excluded), summed over all lines of one
	                             command; at least 16 */
	uint64_t max_literal_size;/* one literal that is not an APPEND message */
	uint64_t max_message_size;/* one APPEND message literal (any APPEND argument
	                             but the mailbox name); also the cap on the sum
	                             of all literals in one APPEND (MULTIAPPEND) */
};

struct imap_parser;

/* NULL on bad limits (max_line_length < 16) or out of memory. The literal
 * bytes of other commands are capped, summed over one command, at
 * 4 * max_literal_size, so a command never holds more than that plus its
 * line text in memory. */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
void imap_parser_free(struct imap_parser **p);

/* Replaces the limits; false (nothing changed) on bad limits. A session
 * keeps literals to a login's size until the client has logged in (a
 * literal's bytes are buffered, so an anonymous client must not get to
 * announce a message's worth). A literal already announced keeps the size
 * it was accepted with; the next literal header is checked against the new
 * limits. */
bool imap_parser_set_limits(struct imap_parser *p, const struct imap_parser_limits *limits);

/* Feeds bytes; resumable at any byte boundary, and any split of the input
 * gives the same results. *consumed_r = bytes used; feed the rest next.
 *
 * NEED_MORE: normally every byte was consumed. The one exception: right after
 * the header of a synchronising literal ("{n}" CRLF) the parser stops (bytes
 * after it are left unconsumed) and imap_parser_continuation_needed() turns
 * true once: send "+ Ready" (or refuse: reply tagged and call
 * imap_parser_reset_line()), then feed the rest.
 * OK: *cmd_r = one complete command (free with imap_cmd_free).
 * ERROR_RECOVERABLE: the command was dropped, its line up to LF consumed;
 * *error_r = static human text ("Unbalanced parentheses", "Literal too large"
 * ...) to send as "<imap_parser_tag()> BAD <text>" (or NO [TOOBIG] when
 * imap_parser_error_toobig()). Covers: syntax errors, 8-bit/NUL/CTL in atoms,
 * empty line, nesting deeper than TERN_IMAP_PARSER_DEPTH_MAX, a synchronising
 * literal over its limit (the client still waits, so nothing else to skip),
 * a line over max_line_length (skipped to its LF). A refused command that
 * announced a non-synchronising literal ({n+} over its limit, RFC 7888 §4;
 * a bad or over-long line ending in {n+}) is answered only after the
 * literal's bytes were read and thrown away, and the rest of the command
 * with them (NEED_MORE meanwhile): they are never run as commands.
 * ERROR_FATAL: such a {n+} literal whose size does not fit 64 bits or is
 * over TERN_DISCARD_LITERAL_FACTOR times max_message_size, or out of memory;
 * send "* BYE <text>" and close. The parser stays failed.
 * Outputs are left untouched unless the verdict sets them. */
enum tern_parse imap_parser_feed(struct imap_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, struct imap_cmd **cmd_r,
				 const char **error_r);

/* True exactly once after a feed stopped at a synchronising literal header. */
bool imap_parser_continuation_needed(struct imap_parser *p);

/* Drops the partial command (after the session refused a synchronising
 * literal); the next byte fed starts a new command. Clears a pending
 * continuation. Does not clear a fatal state. */
void imap_parser_reset_line(struct imap_parser *p);

/* Tag of the command being parsed or last failed, "*" if none was read. Valid
 * until the next feed. */
const char *imap_parser_tag(const struct imap_parser *p);

/* After ERROR_RECOVERABLE/FATAL: true if the cause was a literal over its
 * limit (reply with [TOOBIG], RFC 7888 §4 / RFC 4469). */
bool imap_parser_error_toobig(const struct imap_parser *p);

/* True while a line over max_line_length or a refused {n+} literal is being
 * discarded (the feed said NEED_MORE), and after the ERROR_RECOVERABLE that
 * ends an over-long line. In clear the bytes cost the client as much as it
 * costs the server to skip; behind COMPRESS they may have cost the client a
 * thousandth of that. */
bool imap_parser_line_too_long(const struct imap_parser *p);

/* Name (uppercased, "UID" resolved) of the command being parsed, NULL before
 * it was read. Lets the session refuse a literal per command. */
const char *imap_parser_cmd_name(const struct imap_parser *p);

/* Raw line mode, for IDLE's "DONE" and AUTHENTICATE continuation lines:
 * reads one LF- or CRLF-terminated line (CRLF stripped) into *line_r
 * (NUL-terminated, caller frees). Call only between commands. NEED_MORE
 * consumes everything; OK leaves the bytes after the line unconsumed;
 * FATAL on a line over max_line_length or out of memory (*line_r untouched). */
enum tern_parse imap_parser_read_line(struct imap_parser *p, const uint8_t *data, size_t len,
				      size_t *consumed_r, char **line_r);

void imap_cmd_free(struct imap_cmd **cmd);

/* ---- argument accessors (NULL-safe: a NULL arg gives false) ------------- */

/* atom, quoted string, literal or NIL (RFC 3501 astring: "NIL" is a name). */
bool imap_arg_astring(const struct imap_arg *a, const char **s_r, size_t *len_r);
/* quoted string or literal only. */
bool imap_arg_string(const struct imap_arg *a, const char **s_r, size_t *len_r);
/* NIL gives *s_r = NULL, *len_r = 0; a string or literal gives its text. */
bool imap_arg_nstring(const struct imap_arg *a, const char **s_r, size_t *len_r);
/* atom only (NIL counts as the atom "NIL"). */
bool imap_arg_atom(const struct imap_arg *a, const char **s_r);
/* atom (or NIL atom) equal to name, ASCII case-insensitively. */
bool imap_arg_is_atom_ci(const struct imap_arg *a, const char *name);
bool imap_arg_list(const struct imap_arg *a, const struct imap_arg **list_r, size_t *count_r);
/* An atom of 1..N decimal digits without sign, no overflow. */
bool imap_arg_u32(const struct imap_arg *a, uint32_t *n_r);
bool imap_arg_u64(const struct imap_arg *a, uint64_t *n_r);

/* Same number rules over raw text (used by the FETCH/SEARCH parsers). */
bool imap_parse_u32(const char *s, size_t len, uint32_t *n_r);
bool imap_parse_u64(const char *s, size_t len, uint64_t *n_r);

#endif
