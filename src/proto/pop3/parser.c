/* POP3 command-line parser (see parser.h). A line is collected up to its LF
 * (never past max_line_length), then split; an over-long line is skipped to
 * its LF without being stored, so one bad line never costs more memory than
 * the limit and the stream stays in step (POP3 has no literals). */
#include "proto/pop3/parser.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char pop3_err_unknown[] = "-ERR Unknown command";
const char pop3_err_args[] = "-ERR Wrong number of arguments";
const char pop3_err_too_long[] = "-ERR Line too long";
const char pop3_err_nul[] = "-ERR NUL byte in command line";
static const char pop3_err_nomem[] = "-ERR [SYS/TEMP] Out of memory";

struct pop3_parser {
	size_t max_line;
	char *buf;          /* the line so far, without its LF */
	size_t len, cap;
	bool skipping;      /* the current line went over the limit */
	bool continuation;  /* the next line is a raw SASL response */
	bool failed;
};

struct pop3_keyword {
	const char *name;
	unsigned min_args, max_args;
	bool rest_of_line;  /* one argument: everything after the first space */
};

static const struct pop3_keyword keywords[POP3_CMD_CONTINUATION] = {
	[POP3_CMD_USER] = {"USER", 1, 1, false},
	[POP3_CMD_PASS] = {"PASS", 1, 1, true},
	[POP3_CMD_APOP] = {"APOP", 2, 2, false},
	[POP3_CMD_AUTH] = {"AUTH", 0, 2, false},
	[POP3_CMD_CAPA] = {"CAPA", 0, 0, false},
	[POP3_CMD_STAT] = {"STAT", 0, 0, false},
	[POP3_CMD_LIST] = {"LIST", 0, 1, false},
	[POP3_CMD_UIDL] = {"UIDL", 0, 1, false},
	[POP3_CMD_RETR] = {"RETR", 1, 1, false},
	[POP3_CMD_TOP] = {"TOP", 2, 2, false},
	[POP3_CMD_DELE] = {"DELE", 1, 1, false},
	[POP3_CMD_RSET] = {"RSET", 0, 0, false},
	[POP3_CMD_NOOP] = {"NOOP", 0, 0, false},
	[POP3_CMD_QUIT] = {"QUIT", 0, 0, false},
	[POP3_CMD_STLS] = {"STLS", 0, 0, false},
};

const char *pop3_cmd_name(enum pop3_cmd_type type)
{
	if (type == POP3_CMD_CONTINUATION)
		return "(continuation)";
	return (unsigned)type < POP3_CMD_CONTINUATION ? keywords[type].name : "?";
}

struct pop3_parser *pop3_parser_new(const struct pop3_parser_limits *limits)
{
	if (limits == NULL || limits->max_line_length == 0)
		return NULL;
	struct pop3_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->max_line = limits->max_line_length;
	return p;
}

void pop3_parser_free(struct pop3_parser **pp)
{
	struct pop3_parser *p = *pp;
	if (p == NULL)
		return;
	*pp = NULL;
	free(p->buf);
	free(p);
}

void pop3_parser_expect_continuation(struct pop3_parser *p)
{
	p->continuation = true;
}

void pop3_cmd_free(struct pop3_cmd **cp)
{
	struct pop3_cmd *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	for (size_t i = 0; i < POP3_MAX_ARGS; i++) {
		if (c->args[i] != NULL) {
			/* arguments may be passwords: do not leave them in freed memory */
			explicit_bzero(c->args[i], strlen(c->args[i]));
			free(c->args[i]);
		}
	}
	free(c);
}

/* Appends n bytes to the line buffer; false if it cannot grow. */
static bool line_append(struct pop3_parser *p, const uint8_t *data, size_t n)
{
	if (p->len + n + 1 > p->cap) {
		size_t cap = p->cap > 0 ? p->cap : 128;
		while (cap < p->len + n + 1)
			cap *= 2;
		if (cap > p->max_line + 1)
			cap = p->max_line + 1;
		char *b = realloc(p->buf, cap);
		if (b == NULL)
			return false;
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, data, n);
	p->len += n;
	p->buf[p->len] = '\0';
	return true;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static enum pop3_cmd_type keyword_lookup(const char *word, size_t n)
{
	for (unsigned t = 0; t < POP3_CMD_CONTINUATION; t++) {
		if (strlen(keywords[t].name) == n && strncasecmp(keywords[t].name, word, n) == 0)
			return (enum pop3_cmd_type)t;
	}
	return POP3_CMD_COUNT;
}

/* Splits line into cmd's arguments. Returns an error reply or NULL. */
static const char *split_args(const struct pop3_keyword *kw, char *rest, struct pop3_cmd *cmd)
{
	if (kw->rest_of_line) {
		/* RFC 1939 §7: PASS has one argument that may contain spaces */
		if (*rest != '\0')
			rest++;
		if (*rest == '\0')
			return pop3_err_args;
		cmd->args[0] = strdup(rest);
		cmd->argc = 1;
		return cmd->args[0] != NULL ? NULL : pop3_err_nomem;
	}
	for (;;) {
		while (is_blank(*rest))
			rest++;
		if (*rest == '\0')
			break;
		size_t n = strcspn(rest, " \t");
		if (cmd->argc == kw->max_args)
			return pop3_err_args;
		cmd->args[cmd->argc] = strndup(rest, n);
		if (cmd->args[cmd->argc] == NULL)
			return pop3_err_nomem;
		cmd->argc++;
		rest += n;
	}
	return cmd->argc < kw->min_args ? pop3_err_args : NULL;
}

/* Turns the complete line in p->buf into a command. */
static enum tern_parse line_done(struct pop3_parser *p, struct pop3_cmd **cmd_r,
				 const char **error_r)
{
	if (p->len > 0 && p->buf[p->len - 1] == '\r')
		p->buf[--p->len] = '\0';
	bool continuation = p->continuation;
	p->continuation = false;
	if (memchr(p->buf, '\0', p->len) != NULL) {
		*error_r = pop3_err_nul;
		return TERN_PARSE_ERROR_RECOVERABLE;
	}
	struct pop3_cmd *cmd = calloc(1, sizeof(*cmd));
	if (cmd == NULL)
		goto nomem;
	const char *err = NULL;
	if (continuation) {
		cmd->type = POP3_CMD_CONTINUATION;
		cmd->args[0] = strdup(p->buf);
		cmd->argc = 1;
		if (cmd->args[0] == NULL)
			goto nomem;
	} else {
		size_t n = strcspn(p->buf, " \t");
		cmd->type = keyword_lookup(p->buf, n);
		err = cmd->type == POP3_CMD_COUNT ? pop3_err_unknown
						  : split_args(&keywords[cmd->type], p->buf + n, cmd);
	}
	if (err == pop3_err_nomem)
		goto nomem;
	if (err != NULL) {
		pop3_cmd_free(&cmd);
		*error_r = err;
		return TERN_PARSE_ERROR_RECOVERABLE;
	}
	*cmd_r = cmd;
	return TERN_PARSE_OK;
nomem:
	pop3_cmd_free(&cmd);
	p->failed = true;
	*error_r = pop3_err_nomem;
	return TERN_PARSE_ERROR_FATAL;
}

enum tern_parse pop3_parser_feed(struct pop3_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, struct pop3_cmd **cmd_r,
				 const char **error_r)
{
	if (p->failed) {
		*consumed_r = 0;
		*error_r = pop3_err_nomem;
		return TERN_PARSE_ERROR_FATAL;
	}
	const uint8_t *lf = memchr(data, '\n', len);
	size_t take = lf != NULL ? (size_t)(lf - data) : len;
	/* the LF itself counts towards the limit */
	if (!p->skipping && p->len + take + (lf != NULL ? 1 : 0) > p->max_line)
		p->skipping = true;
	if (!p->skipping && !line_append(p, data, take)) {
		p->failed = true;
		*consumed_r = len;
		*error_r = pop3_err_nomem;
		return TERN_PARSE_ERROR_FATAL;
	}
	if (lf == NULL) {
		*consumed_r = len;
		return TERN_PARSE_NEED_MORE;
	}
	*consumed_r = take + 1;
	enum tern_parse r;
	if (p->skipping) {
		p->continuation = false;
		*error_r = pop3_err_too_long;
		r = TERN_PARSE_ERROR_RECOVERABLE;
	} else {
		r = line_done(p, cmd_r, error_r);
	}
	p->skipping = false;
	if (p->buf != NULL)
		explicit_bzero(p->buf, p->len);
	p->len = 0;
	return r;
}
