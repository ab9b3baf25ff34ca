/* LMTP command and body parser: see parser.h. Command lines are buffered only
 * when they arrive split (a whole line in one feed is parsed in place); DATA
 * bodies are scanned a line at a time with memchr and copied in runs. */
#include "proto/lmtp/parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"

#define BDAT_SIZE_MAX    (UINT64_C(1) << 63)
#define SIZE_DIGITS_MAX  20     /* RFC 1870 §3: size-value ::= 1*20DIGIT */

static const char err_too_long[] = "421 4.7.0 Line too long, closing connection";
static const char err_nomem[] = "421 4.3.0 Out of memory, closing connection";
static const char err_unknown[] = "500 5.5.1 Unknown command";
static const char err_empty[] = "500 5.5.2 Empty command";
static const char err_chars[] = "500 5.5.2 Invalid characters in command";
static const char err_param[] = "555 5.5.4 Unsupported parameter";
static const char err_size[] = "501 5.5.4 Invalid SIZE parameter";
static const char err_body[] = "501 5.5.4 Invalid BODY parameter";
static const char err_dup[] = "501 5.5.4 Duplicate parameter";

/* Where the DATA scanner is within the current body line (RFC 5321 §4.5.2). */
enum body_state {
	BODY_BOL,    /* at the start of a line */
	BODY_DOT,    /* after a "." that started a line */
	BODY_DOT_CR, /* after ".\r" at the start of a line */
	BODY_MID,    /* inside a line */
};

struct lmtp_parser {
	struct lmtp_parser_limits limits;
	enum lmtp_parser_mode mode;
	const char *fatal;         /* once set, every feed fails with it */

	char *line;                /* a command line split over feeds, LF excluded */
	size_t line_len, line_cap;

	enum body_state bstate;
	bool last_cr;              /* the last body byte stored on this line was CR */
	bool bol_bare;             /* this line began after a bare LF: it cannot end DATA */
	uint64_t chunk_left;       /* BDAT bytes still to read */

	char *body;                /* NUL-terminated when non-NULL */
	size_t body_len, body_cap;
	bool too_big;
};

/* ---- parser lifetime ---------------------------------------------------- */

struct lmtp_parser *lmtp_parser_new(const struct lmtp_parser_limits *limits)
{
	if (limits->max_line_length == 0)
		return NULL;
	struct lmtp_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->limits = *limits;
	/* The body buffer holds max_message_size bytes plus a NUL. */
	if (p->limits.max_message_size > SIZE_MAX - 1)
		p->limits.max_message_size = SIZE_MAX - 1;
	p->mode = LMTP_MODE_COMMAND;
	return p;
}

void lmtp_parser_free(struct lmtp_parser **_p)
{
	struct lmtp_parser *p = *_p;

	if (p == NULL)
		return;
	free(p->line);
	free(p->body);
	free(p);
	*_p = NULL;
}

void lmtp_cmd_free(struct lmtp_cmd **_cmd)
{
	if (*_cmd == NULL)
		return;
	free((*_cmd)->arg);
	free(*_cmd);
	*_cmd = NULL;
}

enum lmtp_parser_mode lmtp_parser_mode(const struct lmtp_parser *p)
{
	return p->mode;
}

/* ---- body storage ------------------------------------------------------- */

void lmtp_parser_discard_body(struct lmtp_parser *p)
{
	free(p->body);
	p->body = NULL;
	p->body_len = p->body_cap = 0;
	p->too_big = false;
}

bool lmtp_parser_body_too_big(const struct lmtp_parser *p)
{
	return p->too_big;
}

char *lmtp_parser_take_body(struct lmtp_parser *p, size_t *size_r)
{
	char *body = p->body;
	size_t len = p->body_len;

	if (p->too_big)
		body = NULL;
	else if (body == NULL)
		body = calloc(1, 1);
	else
		p->body = NULL;
	*size_r = body == NULL ? 0 : len;
	lmtp_parser_discard_body(p);
	return body;
}

/* Appends body bytes, or drops them once the body is over the limit.
 * -1 only when out of memory. */
static int body_append(struct lmtp_parser *p, const void *src, size_t n)
{
	if (p->too_big || n == 0)
		return 0;
	if (n > p->limits.max_message_size - p->body_len) {
		/* Nothing of an oversized body is delivered; free it now rather
		 * than hold up to the limit while the client keeps sending. */
		lmtp_parser_discard_body(p);
		p->too_big = true;
		return 0;
	}
	size_t need = p->body_len + n + 1;
	if (need > p->body_cap) {
		size_t cap = p->body_cap == 0 ? TERN_LMTP_BODY_BUF_FIRST : p->body_cap;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		if (cap > p->limits.max_message_size + 1)
			cap = p->limits.max_message_size + 1;
		char *nb = realloc(p->body, cap);
		if (nb == NULL)
			return -1;
		p->body = nb;
		p->body_cap = cap;
	}
	memcpy(p->body + p->body_len, src, n);
	p->body_len += n;
	p->body[p->body_len] = '\0';
	return 0;
}

void lmtp_parser_begin_data(struct lmtp_parser *p)
{
	lmtp_parser_discard_body(p);
	p->mode = LMTP_MODE_DATA;
	p->bstate = BODY_BOL;
	p->bol_bare = false;
	p->last_cr = false;
}

void lmtp_parser_begin_bdat(struct lmtp_parser *p, uint64_t chunk_size)
{
	p->mode = LMTP_MODE_BDAT;
	p->chunk_left = chunk_size;
}

/* ---- command line grammar ----------------------------------------------- */

/* A read position within one command line (CRLF already stripped). */
struct cursor {
	const char *s, *end;
};

static void skip_spaces(struct cursor *c)
{
	while (c->s < c->end && *c->s == ' ')
		c->s++;
}

/* Takes the next space-delimited token and skips the spaces after it. */
static struct cursor next_token(struct cursor *c)
{
	struct cursor tok = { c->s, c->s };

	while (tok.end < c->end && *tok.end != ' ')
		tok.end++;
	c->s = tok.end;
	skip_spaces(c);
	return tok;
}

static bool token_is(const struct cursor *tok, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(tok->end - tok->s) == n && strncasecmp(tok->s, word, n) == 0;
}

/* Case-insensitively consumes a literal prefix such as "FROM:". */
static bool take_prefix(struct cursor *c, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(c->end - c->s) < n || strncasecmp(c->s, word, n) != 0)
		return false;
	c->s += n;
	return true;
}

/* Decimal digits only, rejecting values above max. */
static bool parse_number(const struct cursor *tok, uint64_t max, uint64_t *value_r)
{
	uint64_t v = 0;

	if (tok->s == tok->end)
		return false;
	for (const char *s = tok->s; s < tok->end; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*value_r = v;
	return true;
}

/* Parses "<path>" (RFC 5321 §4.1.2) into the address between the brackets,
 * dropping a source route ("@a,@b:"), which §4.1.1.3 says to ignore. A quoted
 * local part may hold spaces and '>'. */
static bool parse_path(struct cursor *c, struct cursor *addr_r)
{
	const char *s = c->s;
	bool quoted = false;

	if (s == c->end || *s++ != '<')
		return false;
	const char *start = s;
	for (; s < c->end && (quoted || *s != '>'); s++) {
		if (*s == '"')
			quoted = !quoted;
		else if (quoted && *s == '\\' && s + 1 < c->end)
			s++;
		else if (!quoted && (*s == ' ' || *s == '<'))
			return false;
	}
	if (s == c->end)
		return false;
	struct cursor addr = { start, s };
	if (addr.s < addr.end && *addr.s == '@') {
		const char *colon = memchr(addr.s, ':', (size_t)(addr.end - addr.s));
		if (colon == NULL || colon + 1 == addr.end)
			return false;
		addr.s = colon + 1;
	}
	c->s = s + 1;
	if (c->s < c->end && *c->s != ' ')
		return false;
	skip_spaces(c);
	*addr_r = addr;
	return true;
}

/* One ESMTP parameter of MAIL FROM (RFC 5321 §4.1.2 esmtp-param). Returns
 * NULL or the reply for a bad one. */
static const char *parse_mail_param(const struct cursor *tok, struct lmtp_cmd *cmd,
				    unsigned *seen)
{
	const char *eq = memchr(tok->s, '=', (size_t)(tok->end - tok->s));
	struct cursor key = { tok->s, eq != NULL ? eq : tok->end };
	struct cursor val = { eq != NULL ? eq + 1 : tok->end, tok->end };

	if (token_is(&key, "SIZE")) {
		if ((*seen & 1) != 0)
			return err_dup;
		*seen |= 1;
		/* RFC 1870: up to 20 digits; a value past 2^64 saturates so the
		 * session refuses it as too big rather than as bad syntax. */
		if (eq == NULL || val.s == val.end || val.end - val.s > SIZE_DIGITS_MAX)
			return err_size;
		for (const char *s = val.s; s < val.end; s++)
			if (*s < '0' || *s > '9')
				return err_size;
		if (!parse_number(&val, UINT64_MAX, &cmd->size_param))
			cmd->size_param = UINT64_MAX;
		return NULL;
	}
	if (token_is(&key, "BODY")) {
		if ((*seen & 2) != 0)
			return err_dup;
		*seen |= 2;
		if (token_is(&val, "8BITMIME") && eq != NULL)
			cmd->body_8bitmime = true;
		else if (token_is(&val, "BINARYMIME") && eq != NULL)
			cmd->body_binarymime = true;
		else if (!token_is(&val, "7BIT") || eq == NULL)
			return err_body;
		return NULL;
	}
	return err_param;
}

static char *dup_span(const struct cursor *c)
{
	return strndup(c->s, (size_t)(c->end - c->s));
}

/* "MAIL FROM:<path> [params]" / "RCPT TO:<path>". A space after the colon
 * is not in RFC 5321 but common enough in the wild to accept. */
static const char *parse_mail_rcpt(struct cursor *c, struct lmtp_cmd *cmd,
				   const char *syntax)
{
	struct cursor addr;
	bool mail = cmd->type == LMTP_CMD_MAIL;
	unsigned seen = 0;

	if (!take_prefix(c, mail ? "FROM:" : "TO:"))
		return syntax;
	skip_spaces(c);
	if (!parse_path(c, &addr))
		return syntax;
	if (!mail && addr.s == addr.end)
		return syntax;
	while (c->s < c->end) {
		struct cursor tok = next_token(c);
		if (!mail)
			return err_param;
		const char *err = parse_mail_param(&tok, cmd, &seen);
		if (err != NULL)
			return err;
	}
	cmd->arg = dup_span(&addr);
	return cmd->arg == NULL ? err_nomem : NULL;
}

/* "BDAT" SP chunk-size [SP "LAST"] (RFC 3030 §2). */
static const char *parse_bdat(struct cursor *c, struct lmtp_cmd *cmd, const char *syntax)
{
	struct cursor tok = next_token(c);

	if (!parse_number(&tok, BDAT_SIZE_MAX, &cmd->bdat_size))
		return syntax;
	if (c->s == c->end)
		return NULL;
	tok = next_token(c);
	if (!token_is(&tok, "LAST") || c->s != c->end)
		return syntax;
	cmd->bdat_last = true;
	return NULL;
}

enum arg_kind {
	ARG_NONE,     /* arguments are a syntax error */
	ARG_IGNORED,  /* RFC 5321 §4.1.1.9: NOOP ignores its parameter */
	ARG_OPTIONAL, /* kept if present */
	ARG_REQUIRED, /* the rest of the line, kept */
	ARG_DOMAIN,   /* one token */
	ARG_MAIL_RCPT,
	ARG_BDAT,
};

static const struct verb {
	const char *name;
	enum lmtp_cmd_type type;
	enum arg_kind args;
	const char *syntax;  /* the 501 reply for bad arguments */
} verbs[] = {
	{ "LHLO", LMTP_CMD_LHLO, ARG_DOMAIN, "501 5.5.4 Syntax: LHLO hostname" },
	{ "HELO", LMTP_CMD_HELO, ARG_DOMAIN, "501 5.5.4 Syntax: HELO hostname" },
	{ "EHLO", LMTP_CMD_EHLO, ARG_DOMAIN, "501 5.5.4 Syntax: EHLO hostname" },
	{ "MAIL", LMTP_CMD_MAIL, ARG_MAIL_RCPT, "501 5.5.4 Syntax: MAIL FROM:<address>" },
	{ "RCPT", LMTP_CMD_RCPT, ARG_MAIL_RCPT, "501 5.5.4 Syntax: RCPT TO:<address>" },
	{ "DATA", LMTP_CMD_DATA, ARG_NONE, "501 5.5.4 Syntax: DATA" },
	{ "BDAT", LMTP_CMD_BDAT, ARG_BDAT, "501 5.5.4 Syntax: BDAT size [LAST]" },
	{ "RSET", LMTP_CMD_RSET, ARG_NONE, "501 5.5.4 Syntax: RSET" },
	{ "NOOP", LMTP_CMD_NOOP, ARG_IGNORED, NULL },
	{ "QUIT", LMTP_CMD_QUIT, ARG_NONE, "501 5.5.4 Syntax: QUIT" },
	{ "VRFY", LMTP_CMD_VRFY, ARG_REQUIRED, "501 5.5.4 Syntax: VRFY address" },
	{ "HELP", LMTP_CMD_HELP, ARG_OPTIONAL, NULL },
	{ "STARTTLS", LMTP_CMD_STARTTLS, ARG_NONE, "501 5.5.4 Syntax: STARTTLS" },
};

/* Fills cmd from the arguments after the verb; NULL or the reply. */
static const char *parse_args(const struct verb *v, struct cursor *c, struct lmtp_cmd *cmd)
{
	bool have = c->s < c->end;

	switch (v->args) {
	case ARG_NONE:
		return have ? v->syntax : NULL;
	case ARG_IGNORED:
		return NULL;
	case ARG_DOMAIN:
		if (!have || memchr(c->s, ' ', (size_t)(c->end - c->s)) != NULL)
			return v->syntax;
		break;
	case ARG_REQUIRED:
		if (!have)
			return v->syntax;
		break;
	case ARG_OPTIONAL:
		if (!have)
			return NULL;
		break;
	case ARG_MAIL_RCPT:
		return parse_mail_rcpt(c, cmd, v->syntax);
	case ARG_BDAT:
		return parse_bdat(c, cmd, v->syntax);
	}
	cmd->arg = dup_span(c);
	return cmd->arg == NULL ? err_nomem : NULL;
}

static const struct verb *find_verb(const struct cursor *tok)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (token_is(tok, verbs[i].name))
			return &verbs[i];
	return NULL;
}

/* Only printable US-ASCII: we offer no SMTPUTF8, and NUL or control bytes in
 * a command are never legitimate (RFC 5321 §4.1.1). */
static bool line_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Parses one line (LF excluded) into *cmd_r, or returns the reply. */
static const char *parse_line(const char *s, size_t n, struct lmtp_cmd **cmd_r)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (!line_chars_ok(s, n))
		return err_chars;
	while (n > 0 && s[n - 1] == ' ')
		n--;
	if (n == 0)
		return err_empty;

	struct cursor c = { s, s + n };
	struct cursor tok = next_token(&c);
	const struct verb *v = find_verb(&tok);
	if (v == NULL)
		return err_unknown;
	struct lmtp_cmd *cmd = calloc(1, sizeof(*cmd));
	if (cmd == NULL)
		return err_nomem;
	cmd->type = v->type;
	const char *err = parse_args(v, &c, cmd);
	if (err != NULL) {
		lmtp_cmd_free(&cmd);
		return err;
	}
	*cmd_r = cmd;
	return NULL;
}

/* ---- feeding ------------------------------------------------------------ */

static enum tern_parse fail(struct lmtp_parser *p, const char *err, const char **error_r)
{
	p->fatal = err;
	*error_r = err;
	return TERN_PARSE_ERROR_FATAL;
}

static int line_append(struct lmtp_parser *p, const uint8_t *src, size_t n)
{
	size_t need = p->line_len + n;

	if (need > p->line_cap) {
		size_t cap = p->line_cap == 0 ? TERN_LMTP_LINE_BUF_FIRST : p->line_cap;
		while (cap < need)
			cap *= 2;
		if (cap > p->limits.max_line_length)
			cap = p->limits.max_line_length;
		char *nl = realloc(p->line, cap);
		if (nl == NULL)
			return -1;
		p->line = nl;
		p->line_cap = cap;
	}
	memcpy(p->line + p->line_len, src, n);
	p->line_len += n;
	return 0;
}

/* Parses a complete line (LF excluded) and sets the verdict's outputs. */
static enum tern_parse finish_line(struct lmtp_parser *p, const char *s, size_t n,
				   size_t consumed, size_t *consumed_r,
				   struct lmtp_cmd **cmd_r, const char **error_r)
{
	const char *err = parse_line(s, n, cmd_r);

	if (err == err_nomem)
		return fail(p, err, error_r);
	*consumed_r = consumed;
	if (err == NULL)
		return TERN_PARSE_OK;
	*error_r = err;
	return TERN_PARSE_ERROR_RECOVERABLE;
}

static enum tern_parse feed_command(struct lmtp_parser *p, const uint8_t *data, size_t len,
				    size_t *consumed_r, struct lmtp_cmd **cmd_r,
				    const char **error_r)
{
	const uint8_t *lf = memchr(data, '\n', len);
	size_t take = lf != NULL ? (size_t)(lf - data) : len;

	/* The line with its LF must fit; without the LF yet, it already will
	 * not once line_len + take + 1 exceeds the limit. */
	if (take >= p->limits.max_line_length - p->line_len)
		return fail(p, err_too_long, error_r);
	if (lf != NULL && p->line_len == 0)   /* the common case: no copy */
		return finish_line(p, (const char *)data, take, take + 1,
				   consumed_r, cmd_r, error_r);
	if (line_append(p, data, take) < 0)
		return fail(p, err_nomem, error_r);
	if (lf == NULL) {
		*consumed_r = len;
		return TERN_PARSE_NEED_MORE;
	}
	size_t n = p->line_len;
	p->line_len = 0;
	enum tern_parse r = finish_line(p, p->line, n, take + 1, consumed_r, cmd_r, error_r);
	if (p->line_cap > TERN_LINE_BUF_KEEP) {
		free(p->line);
		p->line = NULL;
		p->line_cap = 0;
	}
	return r;
}

/* Inside a body line: stores a run of CRLF lines that do not start with "."
 * with one copy, stopping at a bare LF (stored as CRLF), at a line starting
 * with "." or at the end of the input. Returns the new offset, or -1 when
 * out of memory. */
static ptrdiff_t data_scan_lines(struct lmtp_parser *p, const uint8_t *data, size_t len,
				 size_t i)
{
	size_t start = i;
	bool bare = false;

	for (;;) {
		const uint8_t *lf = memchr(data + i, '\n', len - i);
		if (lf == NULL) {
			if (body_append(p, data + start, len - start) < 0)
				return -1;
			if (len > start)
				p->last_cr = data[len - 1] == '\r';
			return (ptrdiff_t)len;
		}
		size_t at = (size_t)(lf - data);
		bool crlf = at > start ? data[at - 1] == '\r' : p->last_cr;
		if (!crlf) {
			if (body_append(p, data + start, at - start) < 0 ||
			    body_append(p, "\r\n", 2) < 0)
				return -1;
			i = at + 1;
			bare = true;
			break;
		}
		i = at + 1;
		if (i == len || data[i] == '.') {
			if (body_append(p, data + start, i - start) < 0)
				return -1;
			break;
		}
	}
	p->bstate = BODY_BOL;
	/* Only CRLF "." CRLF ends DATA: a dot line reached through a bare LF is
	 * content, or a second transaction could be smuggled in. */
	p->bol_bare = bare;
	p->last_cr = false;
	return (ptrdiff_t)i;
}

/* One DATA step at data[i]; returns the new offset, -1 on out of memory, or
 * -2 after the terminating ".CRLF" (*end_r = offset just past it). */
static ptrdiff_t data_step(struct lmtp_parser *p, const uint8_t *data, size_t len,
			   size_t i, size_t *end_r)
{
	switch (p->bstate) {
	case BODY_BOL:
		if (data[i] == '.') {
			p->bstate = BODY_DOT;
			return (ptrdiff_t)(i + 1);
		}
		p->bstate = BODY_MID;
		return (ptrdiff_t)i;
	case BODY_DOT:
		if (data[i] == '\r') {
			p->bstate = BODY_DOT_CR;
			return (ptrdiff_t)(i + 1);
		}
		if (data[i] == '\n') {
			/* ".\n": never an end; the stuffing dot goes, the LF becomes CRLF. */
			if (body_append(p, "\r\n", 2) < 0)
				return -1;
			p->bstate = BODY_BOL;
			p->bol_bare = true;
			return (ptrdiff_t)(i + 1);
		}
		/* RFC 5321 §4.5.2: drop the leading dot of any other line. */
		p->bstate = BODY_MID;
		return (ptrdiff_t)i;
	case BODY_DOT_CR:
		if (data[i] == '\n' && p->bol_bare) {
			if (body_append(p, "\r\n", 2) < 0)
				return -1;
			p->bstate = BODY_BOL;
			p->bol_bare = false;
			return (ptrdiff_t)(i + 1);
		}
		if (data[i] == '\n')
			break;
		/* ".\r" + other: the dot was stuffing, the CR is content. */
		if (body_append(p, "\r", 1) < 0)
			return -1;
		p->last_cr = true;
		p->bstate = BODY_MID;
		return (ptrdiff_t)i;
	case BODY_MID:
		return data_scan_lines(p, data, len, i);
	}
	*end_r = i + 1;
	return -2;
}

static enum tern_parse feed_data(struct lmtp_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, const char **error_r)
{
	size_t i = 0, end = 0;

	while (i < len) {
		ptrdiff_t r = data_step(p, data, len, i, &end);
		if (r == -1)
			return fail(p, err_nomem, error_r);
		if (r == -2) {
			p->mode = LMTP_MODE_COMMAND;
			*consumed_r = end;
			return TERN_PARSE_OK;
		}
		i = (size_t)r;
	}
	*consumed_r = len;
	return TERN_PARSE_NEED_MORE;
}

/* RFC 3030 §2: a chunk is exactly its announced size, raw, no unstuffing. */
static enum tern_parse feed_bdat(struct lmtp_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, const char **error_r)
{
	size_t n = p->chunk_left < len ? (size_t)p->chunk_left : len;

	if (body_append(p, data, n) < 0)
		return fail(p, err_nomem, error_r);
	p->chunk_left -= n;
	*consumed_r = n;
	if (p->chunk_left > 0)
		return TERN_PARSE_NEED_MORE;
	p->mode = LMTP_MODE_COMMAND;
	return TERN_PARSE_OK;
}

enum tern_parse lmtp_parser_feed(struct lmtp_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, struct lmtp_cmd **cmd_r,
				 const char **error_r)
{
	if (p->fatal != NULL) {
		*error_r = p->fatal;
		return TERN_PARSE_ERROR_FATAL;
	}
	switch (p->mode) {
	case LMTP_MODE_DATA:
		return feed_data(p, data, len, consumed_r, error_r);
	case LMTP_MODE_BDAT:
		return feed_bdat(p, data, len, consumed_r, error_r);
	case LMTP_MODE_COMMAND:
		break;
	}
	if (len == 0) {
		*consumed_r = 0;
		return TERN_PARSE_NEED_MORE;
	}
	return feed_command(p, data, len, consumed_r, cmd_r, error_r);
}
