/* IMAP command parser: see parser.h. Input is cut into line fragments at LF;
 * each complete fragment is tokenised at once (in place when it arrived in
 * one feed), so the tokeniser never has to resume mid-token. A fragment may
 * end in a literal header; the literal bytes are then copied in spans into
 * one growable buffer and the next fragment continues the same command. */
#include "proto/imap/parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"

#define TAG_GUESS_MAX     64

static const char err_nomem[] = "Out of memory";
static const char err_too_long[] = "Line too long";
static const char err_empty[] = "Empty command";
static const char err_tag[] = "Invalid tag";
static const char err_name[] = "Invalid or missing command name";
static const char err_uid[] = "Missing command after UID";
static const char err_atom[] = "Invalid characters in atom";
static const char err_quoted[] = "Invalid characters in quoted string";
static const char err_escape[] = "Invalid escape in quoted string";
static const char err_unterminated[] = "Unterminated quoted string";
static const char err_unbalanced[] = "Unbalanced parentheses";
static const char err_depth[] = "Lists nested too deeply";
static const char err_space[] = "Missing space between arguments";
static const char err_literal[] = "Invalid literal";
static const char err_literal_eol[] = "Literal must end the line";
static const char err_toobig[] = "Literal too large";

/* ST_SKIP: an over-long line is being discarded up to its LF.
 * ST_DISCARD: the bytes of a refused non-synchronising literal are being
 * read and thrown away (RFC 7888 §4); the rest of its command is skipped
 * after them (ST_SKIP with discarding set). */
enum state { ST_LINE, ST_LITERAL, ST_SKIP, ST_DISCARD, ST_FATAL };
#define SKIP_TAIL 32

/* What a complete fragment turned out to be. */
enum frag { FRAG_DONE, FRAG_LITERAL, FRAG_ERROR, FRAG_FATAL };

struct arglist {
	struct imap_arg *v;
	size_t n, cap;
};

struct imap_parser {
	struct imap_parser_limits lim;
	enum state st;
	const char *fatal;

	char *line;                 /* a fragment split over feeds, LF included */
	size_t line_len, line_cap;
	size_t cmd_text;            /* text bytes of this command's earlier fragments */

	char *tag;                  /* current or last command's tag */
	struct imap_cmd *cmd;       /* command in progress (tag and name read) */
	struct arglist stack[TERN_IMAP_PARSER_DEPTH_MAX + 1];
	unsigned depth;
	bool need_sep;              /* last token wants SP, ')' or EOL next */

	char *lit;                  /* literal being read */
	size_t lit_len, lit_cap, lit_size;
	bool lit8;
	uint64_t msg_total, other_total;

	char skip_tail[SKIP_TAIL];  /* last bytes of a line being skipped */
	size_t skip_tail_len;

	char *atom_part;            /* an atom whose section holds a literal, so far */
	size_t atom_part_len;
	bool lit_in_atom;           /* the literal being read goes into atom_part */
	bool atom_bad;              /* that literal cannot stand in a quoted string */

	bool discarding;            /* a refused command's {n+} literals are skipped */
	uint64_t discard_left;      /* bytes of the literal still to throw away */
	const char *discard_err;    /* the refusal, reported once all is skipped */
	bool discard_toobig;

	bool cont_pending;
	bool toobig;
	bool too_long;              /* the last feed ended an over-long line */
	const char *err;            /* set by the tokeniser with FRAG_ERROR/FATAL */
};

/* ---- small helpers ------------------------------------------------------- */

bool imap_parse_u64(const char *s, size_t len, uint64_t *n_r)
{
	uint64_t n = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*n_r = n;
	return true;
}

bool imap_parse_u32(const char *s, size_t len, uint32_t *n_r)
{
	uint64_t n;

	if (!imap_parse_u64(s, len, &n) || n > UINT32_MAX)
		return false;
	*n_r = (uint32_t)n;
	return true;
}

/* RFC 3501 tag: ASTRING-CHAR except "+" (so resp-special ']' is allowed). */
static bool is_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\+", c) == NULL;
}

static bool is_name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static char *dup_mem(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d == NULL)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void set_tag(struct imap_parser *p, const char *s, size_t n)
{
	free(p->tag);
	p->tag = n == 0 ? NULL : dup_mem(s, n);
}

static void args_free(struct imap_arg *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].str);
		args_free(v[i].list, v[i].list_count);
	}
	free(v);
}

void imap_cmd_free(struct imap_cmd **_cmd)
{
	struct imap_cmd *cmd = *_cmd;

	if (cmd == NULL)
		return;
	free(cmd->tag);
	free(cmd->name);
	args_free(cmd->args, cmd->arg_count);
	free(cmd);
	*_cmd = NULL;
}

/* Forgets the command in progress (keeps the tag for the error reply). */
static void drop_command(struct imap_parser *p)
{
	imap_cmd_free(&p->cmd);
	for (unsigned i = 0; i <= p->depth; i++) {
		args_free(p->stack[i].v, p->stack[i].n);
		p->stack[i] = (struct arglist){ 0 };
	}
	p->depth = 0;
	p->need_sep = false;
	free(p->lit);
	p->lit = NULL;
	p->lit_len = p->lit_cap = p->lit_size = 0;
	free(p->atom_part);
	p->atom_part = NULL;
	p->atom_part_len = 0;
	p->lit_in_atom = p->atom_bad = false;
	p->msg_total = p->other_total = 0;
	p->cmd_text = 0;
	p->cont_pending = false;
	if (p->st == ST_LITERAL)
		p->st = ST_LINE;
}

static void line_clear(struct imap_parser *p)
{
	p->line_len = 0;
	if (p->line_cap > TERN_LINE_BUF_KEEP) {
		free(p->line);
		p->line = NULL;
		p->line_cap = 0;
	}
}

static bool line_append(struct imap_parser *p, const uint8_t *data, size_t n)
{
	if (p->line_len + n > p->line_cap) {
		size_t cap = p->line_cap == 0 ? 256 : p->line_cap;
		while (cap < p->line_len + n)
			cap *= 2;
		char *nl = realloc(p->line, cap);
		if (nl == NULL)
			return false;
		p->line = nl;
		p->line_cap = cap;
	}
	memcpy(p->line + p->line_len, data, n);
	p->line_len += n;
	return true;
}

static bool arg_push(struct arglist *l, const struct imap_arg *a)
{
	if (l->n == l->cap) {
		size_t cap = l->cap == 0 ? 8 : l->cap * 2;
		struct imap_arg *nv = realloc(l->v, cap * sizeof(*nv));
		if (nv == NULL)
			return false;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = *a;
	return true;
}

/* ---- lifetime ------------------------------------------------------------ */

bool imap_parser_set_limits(struct imap_parser *p, const struct imap_parser_limits *limits)
{
	if (limits->max_line_length < 16)
		return false;
	p->lim = *limits;
	/* A literal buffer holds its bytes plus a NUL. */
	if (p->lim.max_literal_size > SIZE_MAX / (2 * TERN_OTHER_LITERALS_FACTOR))
		p->lim.max_literal_size = SIZE_MAX / (2 * TERN_OTHER_LITERALS_FACTOR);
	if (p->lim.max_message_size > SIZE_MAX / 2)
		p->lim.max_message_size = SIZE_MAX / 2;
	return true;
}

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits)
{
	if (limits->max_line_length < 16)
		return NULL;
	struct imap_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	(void)imap_parser_set_limits(p, limits);
	return p;
}

void imap_parser_free(struct imap_parser **_p)
{
	struct imap_parser *p = *_p;

	if (p == NULL)
		return;
	drop_command(p);
	free(p->line);
	free(p->tag);
	free(p);
	*_p = NULL;
}

bool imap_parser_continuation_needed(struct imap_parser *p)
{
	bool r = p->cont_pending;
	p->cont_pending = false;
	return r;
}

void imap_parser_reset_line(struct imap_parser *p)
{
	drop_command(p);
	line_clear(p);
}

const char *imap_parser_tag(const struct imap_parser *p)
{
	return p->tag != NULL ? p->tag : "*";
}

bool imap_parser_error_toobig(const struct imap_parser *p)
{
	return p->toobig;
}

bool imap_parser_line_too_long(const struct imap_parser *p)
{
	return p->st == ST_SKIP || p->st == ST_DISCARD || p->too_long;
}

const char *imap_parser_cmd_name(const struct imap_parser *p)
{
	return p->cmd != NULL ? p->cmd->name : NULL;
}

/* ---- tokeniser ------------------------------------------------------------ */

static enum frag frag_error(struct imap_parser *p, const char *err)
{
	p->err = err;
	return FRAG_ERROR;
}

/* Reads "tag SP name [SP name2]" at the start of a command. */
static enum frag read_tag_name(struct imap_parser *p, const char *s, size_t n, size_t *i_r)
{
	size_t i = 0;

	set_tag(p, NULL, 0);
	if (n == 0)
		return frag_error(p, err_empty);
	while (i < n && s[i] != ' ') {
		if (!is_tag_char((unsigned char)s[i]))
			return frag_error(p, err_tag);
		i++;
	}
	if (i == 0)
		return frag_error(p, err_tag);
	set_tag(p, s, i);
	if (p->tag == NULL)
		return p->err = err_nomem, FRAG_FATAL;

	bool uid = false;
	size_t start;
	for (;;) {
		if (i >= n || s[i] != ' ')
			return frag_error(p, uid ? err_uid : err_name);
		start = ++i;
		while (i < n && is_name_char((unsigned char)s[i]))
			i++;
		if (i == start || (i < n && s[i] != ' '))
			return frag_error(p, uid ? err_uid : err_name);
		if (uid || i - start != 3 || strncasecmp(s + start, "UID", 3) != 0)
			break;
		uid = true;
	}

	struct imap_cmd *cmd = calloc(1, sizeof(*cmd));
	if (cmd == NULL)
		return p->err = err_nomem, FRAG_FATAL;
	cmd->uid = uid;
	cmd->name = dup_mem(s + start, i - start);
	cmd->tag = strdup(p->tag);
	if (cmd->name == NULL || cmd->tag == NULL) {
		imap_cmd_free(&cmd);
		return p->err = err_nomem, FRAG_FATAL;
	}
	for (char *c = cmd->name; *c != '\0'; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	p->cmd = cmd;
	*i_r = i;
	return FRAG_DONE;
}

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), 0 if there is none. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < len; k++)
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
	return len;
}

/* Quoted string (RFC 3501 quoted: only \" and \\ escapes). 8-bit is kept
 * for UTF8=ACCEPT (RFC 6855) when it is UTF-8 (RFC 9051 QUOTED-CHAR =/
 * UTF8-2 / UTF8-3 / UTF8-4); the session decides whether it is allowed.
 * The string is measured before anything is allocated: sizing the buffer by
 * the rest of the line made a line of many short strings cost the square of
 * its length. */
static enum frag read_quoted(struct imap_parser *p, const char *s, size_t n, size_t *i_r,
			     struct imap_arg *a)
{
	size_t start = *i_r + 1, i = start, unescaped = 0;

	for (;;) {
		if (i >= n)
			return frag_error(p, err_unterminated);
		unsigned char c = (unsigned char)s[i++];
		if (c == '"')
			break;
		if (c == '\\') {
			if (i >= n || (s[i] != '"' && s[i] != '\\'))
				return frag_error(p, i >= n ? err_unterminated : err_escape);
			i++;
		} else if (c == '\0' || c == '\r') {
			return frag_error(p, err_quoted);
		} else if (c >= 0x80) {
			size_t k = utf8_seq_len((const unsigned char *)s + i - 1, n - (i - 1));
			if (k == 0)
				return frag_error(p, err_quoted);
			i += k - 1;
			unescaped += k - 1;
		}
		unescaped++;
	}
	char *buf = malloc(unescaped + 1), *o = buf;
	if (buf == NULL)
		return p->err = err_nomem, FRAG_FATAL;
	for (size_t j = start; j < i - 1; j++) {
		if (s[j] == '\\')
			j++;
		*o++ = s[j];
	}
	*o = '\0';
	*a = (struct imap_arg){ .type = IMAP_ARG_STRING, .str = buf, .len = unescaped };
	*i_r = i;
	return FRAG_DONE;
}

/* Whether s[i..n) is a literal header "{n}" / "{n+}" ending the fragment. */
static bool literal_header_ends(const char *s, size_t n, size_t i)
{
	size_t j = i + 1;
	while (j < n && s[j] >= '0' && s[j] <= '9')
		j++;
	if (j == i + 1)
		return false;
	if (j < n && s[j] == '+')
		j++;
	return j + 1 == n && s[j] == '}';
}

/* Scans the inside of "[...]" in an atom from s[i] (just after the '['); the
 * section text may hold spaces, lists and quoted header names (RFC 3501
 * section / header-list, header-fld-name = astring). 1 = closed, *i_r after
 * the ']'; 2 = a literal header-fld-name's header ends the fragment inside
 * a header-list, *i_r at its '{'; 0 = not a section. parens: the lists
 * already open (1 after such a literal). */
static int scan_brackets(const char *s, size_t n, size_t i, unsigned parens, size_t *i_r)
{
	bool quoted = false;

	for (; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f)
			return 0;
		if (quoted) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '"')
				quoted = false;
		} else if (c == '"') {
			quoted = true;
		} else if (c == '(') {
			parens++;
		} else if (c == ')') {
			parens -= parens > 0;
		} else if (c == '{') {
			if (parens == 0 || !literal_header_ends(s, n, i))
				return 0;
			*i_r = i;
			return 2;
		} else if (c == '[') {
			return 0;
		} else if (c == ']') {
			*i_r = i + 1;
			return 1;
		}
	}
	return 0;
}

static bool atom_part_add(struct imap_parser *p, const char *s, size_t n)
{
	char *np = realloc(p->atom_part, p->atom_part_len + n + 1);
	if (np == NULL)
		return false;
	memcpy(np + p->atom_part_len, s, n);
	p->atom_part = np;
	p->atom_part_len += n;
	np[p->atom_part_len] = '\0';
	return true;
}

static enum frag read_literal_header(struct imap_parser *p, const char *s, size_t n, size_t i);

/* The atom s[start..hdr) goes on after the literal whose header is at hdr:
 * the literal becomes a quoted string inside it (BODY[HEADER.FIELDS ({7}
 * CRLF Subject)] reads as BODY[HEADER.FIELDS ("Subject")]). */
static enum frag atom_literal(struct imap_parser *p, const char *s, size_t n, size_t start,
			      size_t hdr)
{
	if (!atom_part_add(p, s + start, hdr - start))
		return p->err = err_nomem, FRAG_FATAL;
	enum frag r = read_literal_header(p, s, n, hdr);
	if (r == FRAG_LITERAL)
		p->lit_in_atom = true;
	return r;
}

/* An atom, or (inside) the rest of one that a literal interrupted. */
static enum frag read_atom(struct imap_parser *p, const char *s, size_t n, size_t *i_r,
			   struct imap_arg *a, bool inside)
{
	size_t start = *i_r, i = start, j;

	if (inside) {
		int b = scan_brackets(s, n, i, 1, &j);
		if (b == 2)
			return atom_literal(p, s, n, start, j);
		if (b == 0)
			return frag_error(p, err_atom);
		i = j;
	}
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || c == ')' || c == '(' || c == '{' || c == '"')
			break;
		if (c <= 0x20 || c >= 0x7f)
			return frag_error(p, err_atom);
		/* RFC 3501 lets '[' stand in an atom; only a closed "[...]" is
		 * taken as a FETCH section that may hold spaces. */
		if (c == '[') {
			int b = scan_brackets(s, n, i + 1, 0, &j);
			if (b == 2)
				return atom_literal(p, s, n, start, j);
			if (b == 1) {
				i = j;
				continue;
			}
		}
		i++;
	}
	if (i == start && !inside)
		return frag_error(p, err_atom);
	if (!atom_part_add(p, s + start, i - start))
		return p->err = err_nomem, FRAG_FATAL;
	char *str = p->atom_part;
	size_t len = p->atom_part_len;
	p->atom_part = NULL;
	p->atom_part_len = 0;
	bool nil = len == 3 && strncasecmp(str, "NIL", 3) == 0;
	*a = (struct imap_arg){ .type = nil ? IMAP_ARG_NIL : IMAP_ARG_ATOM, .str = str,
				.len = len };
	*i_r = i;
	return FRAG_DONE;
}

/* RFC 3502/4469 APPEND: every argument after the mailbox may be a message. */
static bool literal_is_message(const struct imap_parser *p)
{
	return strcmp(p->cmd->name, "APPEND") == 0 && p->stack[0].n >= 1;
}

/* "{n}", "{n+}" or "~{n}" that must end the fragment; checks the limits
 * before anything is allocated. */
static enum frag read_literal_header(struct imap_parser *p, const char *s, size_t n, size_t i)
{
	bool lit8 = s[i] == '~', plus = false, overflow = false;
	uint64_t size = 0;
	size_t digits = 0;

	i += lit8 ? 2 : 1;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (size > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			size = size * 10 + d;
	}
	if (i < n && s[i] == '+') {
		plus = true;
		i++;
	}
	if (digits == 0 || i >= n || s[i] != '}')
		return frag_error(p, err_literal);
	if (i + 1 != n)
		return frag_error(p, err_literal_eol);

	bool msg = literal_is_message(p);
	uint64_t limit = msg ? p->lim.max_message_size : p->lim.max_literal_size;
	uint64_t total = msg ? p->msg_total : p->other_total;
	uint64_t total_max = msg ? p->lim.max_message_size
				 : p->lim.max_literal_size * TERN_OTHER_LITERALS_FACTOR;
	/* total may exceed total_max once the limits were narrowed mid-command */
	/* A {n+} literal is then read and thrown away by the caller (it sees a
	 * rejected line that announced one), unless its size cannot be told or
	 * is past TERN_DISCARD_LITERAL_FACTOR times the message limit. */
	if (overflow || size > limit || total > total_max || size > total_max - total) {
		p->toobig = true;
		p->err = err_toobig;
		return plus && overflow ? FRAG_FATAL : FRAG_ERROR;
	}
	if (msg)
		p->msg_total += size;
	else
		p->other_total += size;
	p->lit_size = (size_t)size;
	p->lit_len = 0;
	p->lit8 = lit8;
	p->cont_pending = !plus;
	return FRAG_LITERAL;
}

static enum frag close_list(struct imap_parser *p)
{
	if (p->depth == 0)
		return frag_error(p, err_unbalanced);
	struct arglist *l = &p->stack[p->depth];
	struct imap_arg a = { .type = IMAP_ARG_LIST, .list = l->v, .list_count = l->n };
	if (!arg_push(&p->stack[p->depth - 1], &a))
		return p->err = err_nomem, FRAG_FATAL;
	*l = (struct arglist){ 0 };
	p->depth--;
	return FRAG_DONE;
}

/* Tokenises one complete fragment s[0..n) (line end stripped). */
static enum frag tokenise(struct imap_parser *p, const char *s, size_t n)
{
	size_t i = 0;
	enum frag r;

	if (p->cmd == NULL && (r = read_tag_name(p, s, n, &i)) != FRAG_DONE)
		return r;
	if (p->atom_part != NULL) {
		/* an atom's section goes on after its literal */
		struct imap_arg a;
		if (p->atom_bad)
			return frag_error(p, err_atom);
		if ((r = read_atom(p, s, n, &i, &a, true)) != FRAG_DONE)
			return r;
		if (!arg_push(&p->stack[p->depth], &a)) {
			free(a.str);
			return p->err = err_nomem, FRAG_FATAL;
		}
		p->need_sep = true;
	}
	while (i < n) {
		char c = s[i];
		struct imap_arg a;
		if (c == ' ') {
			p->need_sep = false;
			i++;
			continue;
		}
		if (c == ')') {
			if ((r = close_list(p)) != FRAG_DONE)
				return r;
			p->need_sep = true;
			i++;
			continue;
		}
		if (p->need_sep)
			return frag_error(p, err_space);

		if (c == '(') {
			if (p->depth >= TERN_IMAP_PARSER_DEPTH_MAX)
				return frag_error(p, err_depth);
			p->depth++;
			i++;
			continue;
		}
		if (c == '{' || (c == '~' && i + 1 < n && s[i + 1] == '{'))
			return read_literal_header(p, s, n, i);
		r = c == '"' ? read_quoted(p, s, n, &i, &a) : read_atom(p, s, n, &i, &a, false);
		if (r != FRAG_DONE)
			return r;
		if (!arg_push(&p->stack[p->depth], &a)) {
			free(a.str);
			return p->err = err_nomem, FRAG_FATAL;
		}
		p->need_sep = true;
	}
	if (p->depth != 0)
		return frag_error(p, err_unbalanced);
	return FRAG_DONE;
}

/* Whether a rejected fragment ends in a "{n+}" announcement: its literal is
 * on its way, so it is read and thrown away before the command's end can be
 * found (RFC 7888 §4). 1 = announced, *size_r set; 0 = not announced;
 * -1 = announced with a size that cannot be told (the stream is lost). */
static int announced_nonsync(const char *s, size_t n, uint64_t *size_r)
{
	if (n < 4 || s[n - 1] != '}' || s[n - 2] != '+')
		return 0;
	size_t i = n - 2;
	while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
		i--;
	if (i == n - 2 || i == 0 || s[i - 1] != '{')
		return 0;
	return imap_parse_u64(s + i, n - 2 - i, size_r) ? 1 : -1;
}

/* Whether a refused {n+} literal of this size is skipped (else fatal). */
static bool discardable(const struct imap_parser *p, uint64_t size)
{
	/* max_message_size <= SIZE_MAX / 2: the product fits */
	return size <= p->lim.max_message_size * TERN_DISCARD_LITERAL_FACTOR;
}

/* ---- feeding ---------------------------------------------------------------- */

static enum tern_parse fail(struct imap_parser *p, const char *err, const char **error_r)
{
	drop_command(p);
	line_clear(p);
	p->st = ST_FATAL;
	p->fatal = err;
	*error_r = err;
	return TERN_PARSE_ERROR_FATAL;
}

/* Discards an over-long line up to its LF. The line is refused with a
 * recoverable error, unless it announced a non-synchronising literal: the
 * client then sends the literal at once and it cannot be told from commands. */
static enum tern_parse skip_line(struct imap_parser *p, const uint8_t *data, size_t len,
				 size_t *pos_r, const char **error_r)
{
	const uint8_t *lf = memchr(data, '\n', len);
	size_t n = lf != NULL ? (size_t)(lf - data) : len;
	/* Keep the last SKIP_TAIL bytes of the line seen so far. */
	if (n >= SKIP_TAIL) {
		memcpy(p->skip_tail, data + n - SKIP_TAIL, SKIP_TAIL);
		p->skip_tail_len = SKIP_TAIL;
	} else {
		size_t keep = p->skip_tail_len + n > SKIP_TAIL ? SKIP_TAIL - n : p->skip_tail_len;
		memmove(p->skip_tail, p->skip_tail + p->skip_tail_len - keep, keep);
		memcpy(p->skip_tail + keep, data, n);
		p->skip_tail_len = keep + n;
	}
	if (lf == NULL) {
		*pos_r += len;
		return TERN_PARSE_NEED_MORE;
	}
	*pos_r += n + 1;
	p->st = ST_LINE;
	size_t tl = p->skip_tail_len;
	if (tl > 0 && p->skip_tail[tl - 1] == '\r')
		tl--;
	uint64_t size;
	int nonsync = announced_nonsync(p->skip_tail, tl, &size);
	if (!p->discarding) {
		p->discard_err = err_too_long;
		p->discard_toobig = false;
	}
	if (nonsync < 0 || (nonsync > 0 && !discardable(p, size)))
		return fail(p, p->discard_err, error_r);
	if (nonsync > 0) {
		/* the literal first, then the rest of the command */
		p->discarding = true;
		p->discard_left = size;
		p->st = ST_DISCARD;
		return TERN_PARSE_NEED_MORE;
	}
	p->discarding = false;
	p->too_long = p->discard_err == err_too_long;
	p->toobig = p->discard_toobig;
	*error_r = p->discard_err;
	return TERN_PARSE_ERROR_RECOVERABLE;
}

/* Starts throwing away a refused command's {n+} literal; err is the reply. */
static void discard_start(struct imap_parser *p, uint64_t size, const char *err)
{
	drop_command(p);
	p->discarding = true;
	p->discard_left = size;
	p->discard_err = err;
	p->discard_toobig = p->toobig;
	p->st = ST_DISCARD;
}

/* For a reply to a line that never completed: the tag if one was sent. */
static void guess_tag(struct imap_parser *p, const uint8_t *data, size_t len)
{
	const char *s = p->line_len > 0 ? p->line : (const char *)data;
	size_t n = p->line_len > 0 ? p->line_len : len, i = 0;

	if (p->cmd != NULL)
		return;
	while (i < n && i < TAG_GUESS_MAX && is_tag_char((unsigned char)s[i]))
		i++;
	set_tag(p, s, i < n && s[i] == ' ' ? i : 0);
}

static bool literal_append(struct imap_parser *p, const uint8_t *data, size_t n)
{
	if (p->lit_len + n + 1 > p->lit_cap) {
		size_t cap = p->lit_cap == 0 ? TERN_LITERAL_BUF_FIRST : p->lit_cap;
		while (cap < p->lit_len + n + 1)
			cap *= 2;
		if (cap > p->lit_size + 1)
			cap = p->lit_size + 1;
		char *nl = realloc(p->lit, cap);
		if (nl == NULL)
			return false;
		p->lit = nl;
		p->lit_cap = cap;
	}
	if (n > 0)
		memcpy(p->lit + p->lit_len, data, n);
	p->lit_len += n;
	return true;
}

/* A literal inside an atom's section becomes a quoted string there; one that
 * no quoted string can hold fails the command when its line is read. */
static bool literal_into_atom(struct imap_parser *p)
{
	bool ok = atom_part_add(p, "\"", 1);
	for (size_t i = 0; ok && i < p->lit_len; i++) {
		char c = p->lit[i];
		if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
			p->atom_bad = true;
		else if (c == '"' || c == '\\')
			ok = atom_part_add(p, "\\", 1) && atom_part_add(p, &c, 1);
		else
			ok = atom_part_add(p, &c, 1);
	}
	ok = ok && atom_part_add(p, "\"", 1);
	free(p->lit);
	p->lit = NULL;
	p->lit_len = p->lit_cap = p->lit_size = 0;
	p->lit_in_atom = false;
	p->need_sep = false;
	p->st = ST_LINE;
	return ok;
}

/* The literal is complete: it becomes an argument. */
static bool literal_finish(struct imap_parser *p)
{
	if (p->lit_in_atom)
		return literal_into_atom(p);
	if (p->lit == NULL && !literal_append(p, NULL, 0))
		return false;
	p->lit[p->lit_len] = '\0';
	struct imap_arg a = { .type = IMAP_ARG_LITERAL, .str = p->lit, .len = p->lit_len,
			      .literal8 = p->lit8 };
	if (!arg_push(&p->stack[p->depth], &a))
		return false;
	p->lit = NULL;
	p->lit_len = p->lit_cap = p->lit_size = 0;
	p->need_sep = true;
	p->st = ST_LINE;
	return true;
}

static struct imap_cmd *take_command(struct imap_parser *p)
{
	struct imap_cmd *cmd = p->cmd;

	cmd->args = p->stack[0].v;
	cmd->arg_count = p->stack[0].n;
	p->stack[0] = (struct arglist){ 0 };
	p->cmd = NULL;
	drop_command(p);
	return cmd;
}

enum tern_parse imap_parser_feed(struct imap_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, struct imap_cmd **cmd_r,
				 const char **error_r)
{
	size_t pos = 0;

	if (p->st == ST_FATAL) {
		*error_r = p->fatal;
		return TERN_PARSE_ERROR_FATAL;
	}
	p->cont_pending = false;
	p->toobig = false;
	p->too_long = false;
	while (pos < len) {
		if (p->st == ST_SKIP) {
			enum tern_parse r = skip_line(p, data + pos, len - pos, &pos, error_r);
			if (r != TERN_PARSE_NEED_MORE) {
				*consumed_r = pos;
				return r;
			}
			continue;
		}
		if (p->st == ST_DISCARD) {
			uint64_t n = p->discard_left < len - pos ? p->discard_left : len - pos;
			pos += (size_t)n;
			p->discard_left -= n;
			if (p->discard_left == 0) {
				p->st = ST_SKIP;   /* the rest of the command's line */
				p->skip_tail_len = 0;
			}
			continue;
		}
		if (p->st == ST_LITERAL) {
			size_t n = p->lit_size - p->lit_len;
			if (n > len - pos)
				n = len - pos;
			if (!literal_append(p, data + pos, n))
				return fail(p, err_nomem, error_r);
			pos += n;
			if (p->lit_len == p->lit_size && !literal_finish(p))
				return fail(p, err_nomem, error_r);
			continue;
		}
		const uint8_t *lf = memchr(data + pos, '\n', len - pos);
		size_t chunk = lf != NULL ? (size_t)(lf - (data + pos)) + 1 : len - pos;
		size_t used = p->cmd_text + p->line_len;
		if (used > p->lim.max_line_length || chunk > p->lim.max_line_length - used) {
			/* Skip to the LF and answer BAD: the session survives. */
			guess_tag(p, data + pos, len - pos);
			/* The skip step decides by the line's last bytes whether it
			 * announced a {n+} literal; some of them may be buffered
			 * already when the input came in pieces, so they carry over
			 * (fed whole or split, the verdict must be the same). */
			size_t keep = p->line_len < SKIP_TAIL ? p->line_len : SKIP_TAIL;
			if (keep > 0)
				memcpy(p->skip_tail, p->line + p->line_len - keep, keep);
			p->skip_tail_len = keep;
			drop_command(p);
			line_clear(p);
			p->st = ST_SKIP;
			continue;
		}
		if (lf == NULL || p->line_len > 0) {
			if (!line_append(p, data + pos, chunk))
				return fail(p, err_nomem, error_r);
		}
		pos += chunk;
		if (lf == NULL)
			break;

		const char *s = p->line_len > 0 ? p->line : (const char *)lf + 1 - chunk;
		size_t n = p->line_len > 0 ? p->line_len : chunk;
		p->cmd_text += n;
		n--;                                   /* LF */
		if (n > 0 && s[n - 1] == '\r')
			n--;
		enum frag r = tokenise(p, s, n);
		uint64_t nonsync_size = 0;
		int nonsync = r == FRAG_ERROR ? announced_nonsync(s, n, &nonsync_size) : 0;
		line_clear(p);
		switch (r) {
		case FRAG_DONE:
			*cmd_r = take_command(p);
			*consumed_r = pos;
			return TERN_PARSE_OK;
		case FRAG_LITERAL:
			p->st = ST_LITERAL;
			if (p->lit_size == 0 && !literal_finish(p))
				return fail(p, err_nomem, error_r);
			if (p->cont_pending) {
				*consumed_r = pos;
				return TERN_PARSE_NEED_MORE;
			}
			break;
		case FRAG_ERROR:
			if (nonsync < 0 || (nonsync > 0 && !discardable(p, nonsync_size)))
				return fail(p, p->err, error_r);
			if (nonsync > 0) {
				discard_start(p, nonsync_size, p->err);
				break;
			}
			drop_command(p);
			*error_r = p->err;
			*consumed_r = pos;
			return TERN_PARSE_ERROR_RECOVERABLE;
		case FRAG_FATAL:
			return fail(p, p->err, error_r);
		}
	}
	*consumed_r = len;
	return TERN_PARSE_NEED_MORE;
}

enum tern_parse imap_parser_read_line(struct imap_parser *p, const uint8_t *data, size_t len,
				      size_t *consumed_r, char **line_r)
{
	if (p->st == ST_FATAL)
		return TERN_PARSE_ERROR_FATAL;
	const uint8_t *lf = memchr(data, '\n', len);
	size_t chunk = lf != NULL ? (size_t)(lf - data) + 1 : len;
	const char *unused;

	if (chunk > p->lim.max_line_length - p->line_len)
		return fail(p, err_too_long, &unused);
	if (!line_append(p, data, chunk))
		return fail(p, err_nomem, &unused);
	if (lf == NULL) {
		*consumed_r = len;
		return TERN_PARSE_NEED_MORE;
	}
	size_t n = p->line_len - 1;
	if (n > 0 && p->line[n - 1] == '\r')
		n--;
	char *line = dup_mem(p->line, n);
	line_clear(p);
	if (line == NULL)
		return fail(p, err_nomem, &unused);
	*line_r = line;
	*consumed_r = chunk;
	return TERN_PARSE_OK;
}

/* ---- accessors ---------------------------------------------------------------- */

bool imap_arg_astring(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (a == NULL || a->type == IMAP_ARG_LIST)
		return false;
	*s_r = a->str;
	*len_r = a->len;
	return true;
}

bool imap_arg_string(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (a == NULL || (a->type != IMAP_ARG_STRING && a->type != IMAP_ARG_LITERAL))
		return false;
	*s_r = a->str;
	*len_r = a->len;
	return true;
}

bool imap_arg_nstring(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (a != NULL && a->type == IMAP_ARG_NIL) {
		*s_r = NULL;
		*len_r = 0;
		return true;
	}
	return imap_arg_string(a, s_r, len_r);
}

bool imap_arg_atom(const struct imap_arg *a, const char **s_r)
{
	if (a == NULL || (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL))
		return false;
	*s_r = a->str;
	return true;
}

bool imap_arg_is_atom_ci(const struct imap_arg *a, const char *name)
{
	const char *s;
	return imap_arg_atom(a, &s) && strcasecmp(s, name) == 0;
}

bool imap_arg_list(const struct imap_arg *a, const struct imap_arg **list_r, size_t *count_r)
{
	if (a == NULL || a->type != IMAP_ARG_LIST)
		return false;
	*list_r = a->list;
	*count_r = a->list_count;
	return true;
}

bool imap_arg_u32(const struct imap_arg *a, uint32_t *n_r)
{
	return a != NULL && a->type == IMAP_ARG_ATOM && imap_parse_u32(a->str, a->len, n_r);
}

bool imap_arg_u64(const struct imap_arg *a, uint64_t *n_r)
{
	return a != NULL && a->type == IMAP_ARG_ATOM && imap_parse_u64(a->str, a->len, n_r);
}
