/* RFC 5322 address lists: see address.h. A lexer turns the field into words
 * (atoms and quoted strings), dots, domain literals and the specials that
 * matter (< > @ : ; ,), skipping white space and comments (nested, with
 * quoted pairs) wherever they stand; the parser above it keeps no stack but
 * the one level a group adds. Every loop consumes input, so the work is
 * linear in the length of the field. */
#include "store/address.h"

#include <glib.h>
#include <gmime/gmime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing string (malloc) ---- */

struct buf {
	char *s;
	size_t n, cap;
	bool oom;
};

static void buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap != 0 ? b->cap : 32;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (s == NULL) {
			b->oom = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->n, p, n);
	b->n += n;
	b->s[b->n] = '\0';
}

static void buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

/* Adds the inside of a quoted string or comment with its quoted pairs
 * ("\x" = x) resolved. */
static void buf_add_unescaped(struct buf *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' && i + 1 < n)
			i++;
		buf_addc(b, p[i]);
	}
}

/* The text as a heap string ("" when empty); NULL when out of memory. */
static char *buf_take(struct buf *b)
{
	if (b->oom)
		return NULL;
	char *s = b->s != NULL ? b->s : strdup("");
	*b = (struct buf){ 0 };
	return s;
}

static void buf_free(struct buf *b)
{
	free(b->s);
	*b = (struct buf){ 0 };
}

/* ---- lexer ---- */

enum tok_kind { T_END, T_WORD, T_QUOTED, T_DOT, T_LITERAL, T_SPECIAL };

struct tok {
	enum tok_kind kind;
	char c;              /* T_SPECIAL: one of < > @ : ; , */
	const char *p;       /* T_WORD, T_LITERAL: the text; T_QUOTED: inside the quotes */
	size_t n;
	bool space_before;   /* white space or a comment stood before it */
};

struct lexer {
	const char *s;
	size_t len, pos;
	const char *comment; /* the first comment since the last lex_mark */
	size_t comment_len;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_special(char c)
{
	return c == '(' || c == '<' || c == '>' || c == '@' || c == ':' || c == ';' ||
	       c == ',' || c == '.' || c == '"' || c == '[';
}

/* Skips white space and comments; true if there were any. */
static bool skip_cfws(struct lexer *lx)
{
	bool skipped = false;
	while (lx->pos < lx->len) {
		char c = lx->s[lx->pos];
		if (is_space(c)) {
			lx->pos++;
			skipped = true;
			continue;
		}
		if (c != '(')
			break;
		size_t start = ++lx->pos;
		unsigned long depth = 1;
		while (lx->pos < lx->len && depth > 0) {
			char d = lx->s[lx->pos++];
			if (d == '\\' && lx->pos < lx->len)
				lx->pos++;
			else if (d == '(')
				depth++;
			else if (d == ')')
				depth--;
		}
		size_t end = depth == 0 ? lx->pos - 1 : lx->pos;
		if (lx->comment == NULL && end > start) {
			lx->comment = lx->s + start;
			lx->comment_len = end - start;
		}
		skipped = true;
	}
	return skipped;
}

static void lex(struct lexer *lx, struct tok *t)
{
	*t = (struct tok){ .kind = T_END };
	t->space_before = skip_cfws(lx);
	if (lx->pos >= lx->len)
		return;
	const char *s = lx->s;
	size_t start = lx->pos;
	char c = s[start];
	if (c == '"') {
		size_t i = start + 1;
		while (i < lx->len && s[i] != '"')
			i += s[i] == '\\' && i + 1 < lx->len ? 2 : 1;
		t->kind = T_QUOTED;
		t->p = s + start + 1;
		t->n = i - start - 1;
		lx->pos = i < lx->len ? i + 1 : i;
	} else if (c == '[') {
		size_t i = start + 1;
		while (i < lx->len && s[i] != ']')
			i += s[i] == '\\' && i + 1 < lx->len ? 2 : 1;
		lx->pos = i < lx->len ? i + 1 : i;
		t->kind = T_LITERAL;
		t->p = s + start;
		t->n = lx->pos - start;
	} else if (c == '.') {
		t->kind = T_DOT;
		lx->pos++;
	} else if (is_special(c)) {
		t->kind = T_SPECIAL;
		t->c = c;
		lx->pos++;
	} else {
		size_t i = start;
		while (i < lx->len && !is_space(s[i]) && !is_special(s[i]))
			i++;
		t->kind = T_WORD;
		t->p = s + start;
		t->n = i - start;
		lx->pos = i;
	}
}

/* The next token without consuming it. */
static void peek(const struct lexer *lx, struct tok *t)
{
	struct lexer copy = *lx;
	lex(&copy, t);
}

static bool is_sp(const struct tok *t, char c)
{
	return t->kind == T_SPECIAL && t->c == c;
}

/* ---- parser ---- */

struct parser {
	struct lexer lx;
	struct mail_address *a;
	size_t count, cap;
	bool oom;
};

/* Appends an entry taking the strings (freed on failure). */
static void emit(struct parser *p, char *name, char *route, char *mailbox, char *domain)
{
	if (!p->oom && p->count == p->cap) {
		size_t cap = p->cap != 0 ? p->cap * 2 : 4;
		struct mail_address *a = realloc(p->a, cap * sizeof(*a));
		if (a == NULL) {
			p->oom = true;
		} else {
			p->a = a;
			p->cap = cap;
		}
	}
	if (p->oom) {
		free(name);
		free(route);
		free(mailbox);
		free(domain);
		return;
	}
	p->a[p->count++] = (struct mail_address){ name, route, mailbox, domain };
}

static char *take_or_oom(struct parser *p, struct buf *b)
{
	char *s = buf_take(b);
	if (s == NULL) {
		p->oom = true;
		buf_free(b);
	}
	return s;
}

/* A non-empty buffer as a heap string, else NULL (NIL). */
static char *take_nonempty(struct parser *p, struct buf *b)
{
	if (b->n == 0 && !b->oom) {
		buf_free(b);
		return NULL;
	}
	return take_or_oom(p, b);
}

/* A domain: words, dots and domain literals joined without the white space
 * and comments between them (RFC 5322 obs-domain allows CFWS around dots),
 * up to the next special. */
static void parse_domain(struct parser *p, struct buf *d)
{
	for (;;) {
		struct tok t;
		peek(&p->lx, &t);
		if (t.kind == T_END || t.kind == T_SPECIAL)
			return;
		lex(&p->lx, &t);
		if (t.kind == T_DOT)
			buf_addc(d, '.');
		else if (t.kind == T_QUOTED)
			buf_add_unescaped(d, t.p, t.n);
		else
			buf_add(d, t.p, t.n);
	}
}

/* A local part inside <...>: words and dots (CFWS between them dropped) up
 * to "@", ">" or the end; stray specials are skipped. */
static void parse_local(struct parser *p, struct buf *l)
{
	for (;;) {
		struct tok t;
		peek(&p->lx, &t);
		if (t.kind == T_END || is_sp(&t, '@') || is_sp(&t, '>') || is_sp(&t, ','))
			return;
		lex(&p->lx, &t);
		if (t.kind == T_DOT)
			buf_addc(l, '.');
		else if (t.kind == T_QUOTED)
			buf_add_unescaped(l, t.p, t.n);
		else if (t.kind != T_SPECIAL)
			buf_add(l, t.p, t.n);
	}
}

/* After "<": [route ":"] local-part ["@" domain] [">"]. The obsolete route
 * (RFC 5322 obs-route: "@a,@b:") is kept as "@a,@b". */
static void parse_angle(struct parser *p, char *name)
{
	struct buf route = { 0 }, local = { 0 }, domain = { 0 };
	struct tok t;
	peek(&p->lx, &t);
	if (is_sp(&t, '@')) {
		struct lexer start = p->lx;
		bool colon = false;
		for (;;) {
			peek(&p->lx, &t);
			if (is_sp(&t, ',')) {   /* obs-domain-list allows empty items */
				lex(&p->lx, &t);
				continue;
			}
			if (!is_sp(&t, '@'))
				break;
			lex(&p->lx, &t);
			if (route.n > 0)
				buf_addc(&route, ',');
			buf_addc(&route, '@');
			parse_domain(p, &route);
		}
		if (is_sp(&t, ':')) {
			lex(&p->lx, &t);
			colon = true;
		}
		if (!colon) {   /* "<@domain>": no route after all */
			p->lx = start;
			buf_free(&route);
		}
	}
	parse_local(p, &local);
	peek(&p->lx, &t);
	bool at = is_sp(&t, '@');
	if (at) {
		lex(&p->lx, &t);
		parse_domain(p, &domain);
	}
	peek(&p->lx, &t);
	if (is_sp(&t, '>'))
		lex(&p->lx, &t);
	char *r = take_nonempty(p, &route);
	char *m = take_or_oom(p, &local);
	char *d = take_or_oom(p, &domain);
	emit(p, name, r, m, d);
}

/* Skips what follows a complete address up to the next "," ";" or the end. */
static void skip_rest(struct parser *p)
{
	for (;;) {
		struct tok t;
		peek(&p->lx, &t);
		if (t.kind == T_END || is_sp(&t, ',') || is_sp(&t, ';'))
			return;
		lex(&p->lx, &t);
	}
}

static void parse_address(struct parser *p, bool in_group);

/* After "name:": the members up to ";" (or the end), between the markers. */
static void parse_group(struct parser *p, char *name)
{
	emit(p, NULL, NULL, name, NULL);
	for (;;) {
		struct tok t;
		peek(&p->lx, &t);
		if (t.kind == T_END)
			break;
		if (is_sp(&t, ';')) {
			lex(&p->lx, &t);
			break;
		}
		if (is_sp(&t, ',')) {
			lex(&p->lx, &t);
			continue;
		}
		parse_address(p, true);
	}
	emit(p, NULL, NULL, NULL, NULL);
}

/* One address (a mailbox, or a group outside a group), leaving the
 * separator after it unconsumed. */
static void parse_address(struct parser *p, bool in_group)
{
	struct buf phrase = { 0 }, local = { 0 };
	size_t name_len = 0;   /* words before the local part ("Name user@host") */
	bool after_dot = false;
	struct tok t;
	p->lx.comment = NULL;
	for (;;) {
		peek(&p->lx, &t);
		if (t.kind == T_END || is_sp(&t, ',') || is_sp(&t, ';')) {
			/* words and no "@": a local address such as "user" */
			if (phrase.n > 0) {
				char *m = take_or_oom(p, &phrase);
				char *d = strdup("");
				if (d == NULL)
					p->oom = true;
				emit(p, NULL, NULL, m, d);
			}
			break;
		}
		lex(&p->lx, &t);
		if (t.kind == T_WORD || t.kind == T_QUOTED || t.kind == T_LITERAL) {
			if (t.space_before && phrase.n > 0) {
				/* a word after a space starts the local part anew,
				 * unless a dot joins it ("john . doe@x") */
				if (!after_dot) {
					name_len = phrase.n;
					local.n = 0;
				}
				buf_addc(&phrase, ' ');
			}
			after_dot = false;
			if (t.kind == T_QUOTED) {
				buf_add_unescaped(&phrase, t.p, t.n);
				buf_add_unescaped(&local, t.p, t.n);
			} else {
				buf_add(&phrase, t.p, t.n);
				buf_add(&local, t.p, t.n);
			}
		} else if (t.kind == T_DOT) {
			buf_addc(&phrase, '.');
			buf_addc(&local, '.');
			after_dot = true;
		} else if (t.c == ':' && !in_group) {
			char *name = take_or_oom(p, &phrase);
			buf_free(&local);
			if (name != NULL)
				parse_group(p, name);
			return;
		} else if (t.c == '<') {
			char *name = take_nonempty(p, &phrase);
			buf_free(&local);
			parse_angle(p, name);
			skip_rest(p);
			return;
		} else if (t.c == '@') {
			struct buf domain = { 0 }, comment = { 0 };
			parse_domain(p, &domain);
			/* the comment that follows a bare addr-spec names it */
			struct lexer after = p->lx;
			skip_cfws(&after);
			p->lx.comment = after.comment;
			p->lx.comment_len = after.comment_len;
			if (p->lx.comment != NULL) {
				buf_add_unescaped(&comment, p->lx.comment, p->lx.comment_len);
				if (comment.s != NULL)
					g_strstrip(comment.s);
				comment.n = comment.s != NULL ? strlen(comment.s) : 0;
			}
			if (name_len > 0 && !phrase.oom) {
				/* "Name user@host" (no angle brackets): the words
				 * before the address are its name */
				buf_free(&comment);
				buf_add(&comment, phrase.s, name_len);
			}
			buf_free(&phrase);
			char *name = take_nonempty(p, &comment);
			char *m = take_or_oom(p, &local);
			char *d = take_or_oom(p, &domain);
			emit(p, name, NULL, m, d);
			skip_rest(p);
			return;
		}
		/* other specials (">", ":" inside a group) are dropped */
	}
	buf_free(&phrase);
	buf_free(&local);
}

void mail_address_list_clear(struct mail_address_list *l)
{
	for (size_t i = 0; i < l->count; i++) {
		free(l->a[i].name);
		free(l->a[i].route);
		free(l->a[i].mailbox);
		free(l->a[i].domain);
	}
	free(l->a);
	*l = (struct mail_address_list){ 0 };
}

int mail_address_parse(const char *s, size_t len, struct mail_address_list *l_r)
{
	struct parser p = { .lx = { .s = s != NULL ? s : "", .len = s != NULL ? len : 0 } };
	for (;;) {
		struct tok t;
		peek(&p.lx, &t);
		if (t.kind == T_END || p.oom)
			break;
		if (t.kind == T_SPECIAL && t.c != '<' && t.c != '@') {
			lex(&p.lx, &t);   /* separators, and strays such as ";" or ">" */
			continue;
		}
		size_t before = p.lx.pos;
		parse_address(&p, false);
		if (p.lx.pos == before)   /* cannot happen; never loop forever */
			lex(&p.lx, &t);
	}
	struct mail_address_list l = { p.a, p.count };
	if (p.oom) {
		mail_address_list_clear(&l);
		return -1;
	}
	*l_r = l;
	return 0;
}

/* ---- text for SEARCH ---- */

static void add_decoded(struct buf *b, const char *phrase)
{
	char *dec = g_mime_utils_header_decode_phrase(NULL, phrase);
	char *valid = g_utf8_make_valid(dec != NULL ? dec : phrase, -1);
	buf_add(b, valid, strlen(valid));
	g_free(valid);
	g_free(dec);
}

char *mail_address_list_text(const struct mail_address_list *l)
{
	struct buf b = { 0 };
	bool sep = false;
	for (size_t i = 0; i < l->count; i++) {
		const struct mail_address *a = &l->a[i];
		if (mail_address_is_group_end(a)) {
			buf_addc(&b, ';');
			sep = true;
			continue;
		}
		if (sep)
			buf_add(&b, ", ", 2);
		if (mail_address_is_group_start(a)) {
			add_decoded(&b, a->mailbox);
			buf_add(&b, ": ", 2);
			sep = false;
			continue;
		}
		if (a->name != NULL) {
			add_decoded(&b, a->name);
			buf_add(&b, " <", 2);
		}
		char *mb = g_utf8_make_valid(a->mailbox != NULL ? a->mailbox : "", -1);
		buf_add(&b, mb, strlen(mb));
		g_free(mb);
		if (a->domain != NULL && *a->domain != '\0') {
			char *dom = g_utf8_make_valid(a->domain, -1);
			buf_addc(&b, '@');
			buf_add(&b, dom, strlen(dom));
			g_free(dom);
		}
		if (a->name != NULL)
			buf_addc(&b, '>');
		sep = true;
	}
	return buf_take(&b);
}
