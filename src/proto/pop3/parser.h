/* POP3 (RFC 1939, RFC 2449, RFC 5034) command-line parser: a pure, resumable
 * function over bytes. It splits a line into a known keyword and its
 * arguments and checks the argument count; it never does I/O and never
 * replies. For a SASL exchange the session asks for the next line raw. */
#ifndef TERN_PROTO_POP3_PARSER_H
#define TERN_PROTO_POP3_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

enum pop3_cmd_type {
	POP3_CMD_USER, POP3_CMD_PASS, POP3_CMD_APOP, POP3_CMD_AUTH, POP3_CMD_CAPA,
	POP3_CMD_STAT, POP3_CMD_LIST, POP3_CMD_UIDL, POP3_CMD_RETR, POP3_CMD_TOP,
	POP3_CMD_DELE, POP3_CMD_RSET, POP3_CMD_NOOP, POP3_CMD_QUIT, POP3_CMD_STLS,
	POP3_CMD_CONTINUATION, /* a raw line read after pop3_parser_expect_continuation */
	POP3_CMD_COUNT
};

#define POP3_MAX_ARGS 2

struct pop3_cmd {
	enum pop3_cmd_type type;
	size_t argc;
	/* Blank-separated arguments. PASS: the whole rest of the line after one
	 * space, blanks kept (RFC 1939 §7 lets a password hold spaces).
	 * CONTINUATION: the line without its CRLF. */
	char *args[POP3_MAX_ARGS];
};

struct pop3_parser_limits {
	size_t max_line_length; /* CRLF included; at least 1 */
};

struct pop3_parser;

/* NULL on a zero max_line_length or out of memory. The line buffer grows on
 * demand up to max_line_length. */
struct pop3_parser *pop3_parser_new(const struct pop3_parser_limits *limits);
void pop3_parser_free(struct pop3_parser **p);

/* The next complete line is returned raw as POP3_CMD_CONTINUATION (a SASL
 * response, RFC 5034 §4); then the parser reads commands again. */
void pop3_parser_expect_continuation(struct pop3_parser *p);

/* Feeds bytes. *consumed_r = bytes used (after OK or an error it may be < len:
 * feed the rest next; NEED_MORE consumes everything). Any split of the input
 * gives the same results. OK fills *cmd_r (free with pop3_cmd_free).
 * RECOVERABLE: the line (up to its LF) is dropped and *error_r is a static
 * "-ERR ..." reply (unknown command, wrong arguments, line too long, NUL byte).
 * FATAL (out of memory): *error_r is a static reply to send before closing.
 * Outputs are left untouched unless the verdict sets them. */
enum tern_parse pop3_parser_feed(struct pop3_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, struct pop3_cmd **cmd_r,
				 const char **error_r);

/* The keyword of a command type ("USER"), for logs. */
const char *pop3_cmd_name(enum pop3_cmd_type type);

void pop3_cmd_free(struct pop3_cmd **cmd);

/* Error replies the parser returns, so callers and tests can tell them apart. */
extern const char pop3_err_unknown[];   /* "-ERR Unknown command" */
extern const char pop3_err_args[];      /* wrong number of arguments */
extern const char pop3_err_too_long[];  /* line over max_line_length */
extern const char pop3_err_nul[];       /* NUL byte in the line */

#endif
