/* LMTP (RFC 2033) / ESMTP command and message-body parser: a pure, resumable
 * state machine over bytes. It reads command lines, DATA bodies (with
 * dot-unstuffing, RFC 5321 §4.5.2) and BDAT chunks (RFC 3030); it never does
 * I/O and never replies. The session tells it when to expect a body. */
#ifndef TERN_PROTO_LMTP_PARSER_H
#define TERN_PROTO_LMTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

enum lmtp_cmd_type {
	LMTP_CMD_LHLO, LMTP_CMD_HELO, LMTP_CMD_EHLO, /* HELO/EHLO are refused by the session */
	LMTP_CMD_MAIL, LMTP_CMD_RCPT, LMTP_CMD_DATA, LMTP_CMD_BDAT,
	LMTP_CMD_RSET, LMTP_CMD_NOOP, LMTP_CMD_QUIT, LMTP_CMD_VRFY, LMTP_CMD_HELP,
	LMTP_CMD_STARTTLS,
};

struct lmtp_cmd {
	enum lmtp_cmd_type type;
	char *arg;            /* LHLO/HELO/EHLO: domain; MAIL/RCPT: the path without
	                         <> and without any source route ("" for the null
	                         reverse-path); VRFY, HELP: argument; else NULL */
	uint64_t size_param;  /* MAIL FROM SIZE=n, 0 if absent */
	bool body_8bitmime;   /* MAIL FROM BODY=8BITMIME */
	bool body_binarymime; /* MAIL FROM BODY=BINARYMIME */
	uint64_t bdat_size;   /* BDAT n */
	bool bdat_last;       /* BDAT n LAST */
};

/* What the parser is reading; set by the session after it accepts DATA/BDAT. */
enum lmtp_parser_mode { LMTP_MODE_COMMAND, LMTP_MODE_DATA, LMTP_MODE_BDAT };

struct lmtp_parser_limits {
	size_t max_line_length;   /* command line, CRLF included (a bare-LF line
	                             counts its LF only); at least 1 */
	uint64_t max_message_size;/* body bytes kept; beyond, the body is read and dropped */
};

struct lmtp_parser;

/* NULL on a zero max_line_length or out of memory. Memory grows with use:
 * a line buffer up to max_line_length, a body buffer up to max_message_size. */
struct lmtp_parser *lmtp_parser_new(const struct lmtp_parser_limits *limits);
void lmtp_parser_free(struct lmtp_parser **p);

/* Switches to reading a DATA body (up to "CRLF.CRLF") or a BDAT chunk of
 * chunk_size bytes. Body bytes from successive BDAT chunks accumulate until
 * lmtp_parser_take_body(). In BDAT mode, call it even for a chunk the session
 * rejects, so the chunk is still read and dropped and the stream stays aligned
 * (then call lmtp_parser_discard_body()). */
void lmtp_parser_begin_data(struct lmtp_parser *p);   /* drops any earlier body */
void lmtp_parser_begin_bdat(struct lmtp_parser *p, uint64_t chunk_size);
enum lmtp_parser_mode lmtp_parser_mode(const struct lmtp_parser *p);

/* Feeds bytes. *consumed_r = bytes used (may be < len after OK or an error:
 * feed the rest next; NEED_MORE always consumes everything). Any split of the
 * input gives the same results. Command mode: OK fills *cmd_r (free with
 * lmtp_cmd_free); RECOVERABLE: the line up to its LF is skipped and *error_r =
 * a static "501 5.5.4 ..." / "500 5.5.1 ..." / "555 5.5.4 ..." reply.
 * FATAL (line over the limit, out of memory): *error_r = a static 421 reply
 * to send before closing; the parser stays failed. DATA/BDAT mode: OK when
 * the body or the chunk is complete; the parser then returns to command mode.
 * Outputs are left untouched unless the verdict sets them. */
enum tern_parse lmtp_parser_feed(struct lmtp_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, struct lmtp_cmd **cmd_r,
				 const char **error_r);

/* After a complete DATA body (or BDAT LAST): true if it went over
 * max_message_size (its bytes were dropped). */
bool lmtp_parser_body_too_big(const struct lmtp_parser *p);
/* Takes the accumulated body (dot-unstuffed, CRLF line ends, without the final
 * ".CRLF"), NUL-terminated; the caller frees it. Resets the body state (also
 * too_big). NULL (*size_r = 0) if the body was too big or out of memory. */
char *lmtp_parser_take_body(struct lmtp_parser *p, size_t *size_r);
void lmtp_parser_discard_body(struct lmtp_parser *p);

void lmtp_cmd_free(struct lmtp_cmd **cmd);

#endif
