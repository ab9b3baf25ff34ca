/* MIME structure for IMAP. The framing (where each header and body starts and
 * ends) is found here over the raw bytes, so BODYSTRUCTURE sizes and the
 * section ranges come from one tree and index the stored message exactly;
 * GMime parses the fields (content types, RFC 2231 parameters, encoded-words,
 * dates) and decodes bodies (base64, QP, charsets); address fields are read
 * by address.c, the one parser ENVELOPE, SEARCH and SORT share. */
#include "core/limits.h"
#include "store/mime.h"
#include "store/address.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIME_MAX_DEPTH TERN_MIME_DEPTH_MAX
#define MIME_MAX_PARTS TERN_MIME_PARTS_MAX
#define MIME_BOUNDARY_MAX TERN_MIME_BOUNDARY_MAX

/* ---- growing output buffer (malloc, so callers can free()) ---- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void sb_add(struct sbuf *b, const void *p, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (s == NULL) {
			b->failed = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_adds(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_num(struct sbuf *b, unsigned long long n)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof(tmp), "%llu", n);
	sb_add(b, tmp, (size_t)len);
}

/* Takes the buffer (never NULL on success, "" when empty); -1 on OOM. */
static int sb_take(struct sbuf *b, char **s_r)
{
	if (!b->failed && b->s == NULL)
		sb_add(b, "", 0);
	if (b->failed) {
		free(b->s);
		b->s = NULL;
		return -1;
	}
	*s_r = b->s;
	b->s = NULL;
	return 0;
}

/* IMAP string (RFC 3501 §4.3): quoted when it can be, else a literal. */
static void sb_string(struct sbuf *b, const char *s, size_t n)
{
	bool literal = n > TERN_IMAP_QUOTED_MAX;
	for (size_t i = 0; i < n && !literal; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n' || c >= 0x80)
			literal = true;
	}
	if (literal) {
		sb_add(b, "{", 1);
		sb_num(b, n);
		sb_add(b, "}\r\n", 3);
		sb_add(b, s, n);
		return;
	}
	sb_add(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			sb_add(b, s + run, i - run);
			sb_add(b, "\\", 1);
			run = i;
		}
	}
	sb_add(b, s + run, n - run);
	sb_add(b, "\"", 1);
}

/* NIL for NULL or "", else a string. */
static void sb_nstring(struct sbuf *b, const char *s)
{
	if (s == NULL || *s == '\0')
		sb_adds(b, "NIL");
	else
		sb_string(b, s, strlen(s));
}

/* ---- raw header scanning ---- */

enum field {
	F_CONTENT_TYPE,
	F_CTE,
	F_CONTENT_ID,
	F_CONTENT_DESC,
	F_CONTENT_DISP,
	F_CONTENT_LANG,
	F_CONTENT_LOC,
	F_DATE,
	F_SUBJECT,
	F_FROM,
	F_SENDER,
	F_REPLY_TO,
	F_TO,
	F_CC,
	F_BCC,
	F_IN_REPLY_TO,
	F_MESSAGE_ID,
	F_COUNT
};

static const char *const field_names[F_COUNT] = {
	[F_CONTENT_TYPE] = "content-type",
	[F_CTE] = "content-transfer-encoding",
	[F_CONTENT_ID] = "content-id",
	[F_CONTENT_DESC] = "content-description",
	[F_CONTENT_DISP] = "content-disposition",
	[F_CONTENT_LANG] = "content-language",
	[F_CONTENT_LOC] = "content-location",
	[F_DATE] = "date",
	[F_SUBJECT] = "subject",
	[F_FROM] = "from",
	[F_SENDER] = "sender",
	[F_REPLY_TO] = "reply-to",
	[F_TO] = "to",
	[F_CC] = "cc",
	[F_BCC] = "bcc",
	[F_IN_REPLY_TO] = "in-reply-to",
	[F_MESSAGE_ID] = "message-id",
};

/* One header field in the raw buffer; the value may contain folds. */
struct hfield {
	size_t name_off, name_len;
	size_t val_off, val_len;
};

struct span {
	size_t off, len;
	bool set;
};

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* The line starting at p: *eol_r = end of its content (before CRLF/LF),
 * *next_r = start of the next line (or end). */
static void line_bounds(const unsigned char *d, size_t p, size_t end, size_t *eol_r,
			size_t *next_r)
{
	const unsigned char *nl = memchr(d + p, '\n', end - p);
	size_t eol = nl != NULL ? (size_t)(nl - d) : end;
	*next_r = nl != NULL ? eol + 1 : end;
	if (eol > p && d[eol - 1] == '\r')
		eol--;
	*eol_r = eol;
}

/* RFC 5322 §2.2 field name: printable ASCII but ':', then optional WSP and
 * ':'. Returns the colon position or 0 if the line is not a field. */
static size_t field_colon(const unsigned char *d, size_t p, size_t eol)
{
	size_t i = p;
	while (i < eol && d[i] > 32 && d[i] < 127 && d[i] != ':')
		i++;
	if (i == p)
		return 0;
	while (i < eol && is_wsp(d[i]))
		i++;
	return i < eol && d[i] == ':' ? i : 0;
}

/* Iterates the header fields from *pos up to end. 1 = *f filled; 0 = header
 * over, *pos = first body byte (after the blank line). Lines that are not
 * fields are skipped, as other servers do. */
static int next_field(const unsigned char *d, size_t end, size_t *pos, struct hfield *f)
{
	size_t p = *pos, eol, next;

	for (;;) {
		if (p >= end) {
			*pos = end;
			return 0;
		}
		line_bounds(d, p, end, &eol, &next);
		if (eol == p) {
			*pos = next;
			return 0;
		}
		size_t colon = is_wsp(d[p]) ? 0 : field_colon(d, p, eol);
		if (colon == 0) {
			p = next;
			continue;
		}
		f->name_off = p;
		f->name_len = colon - p;
		while (f->name_len > 0 && is_wsp(d[p + f->name_len - 1]))
			f->name_len--;
		f->val_off = colon + 1;
		size_t vend = eol;
		p = next;
		while (p < end && is_wsp(d[p])) {
			line_bounds(d, p, end, &eol, &next);
			vend = eol;
			p = next;
		}
		f->val_len = vend - f->val_off;
		*pos = p;
		return 1;
	}
}

/* Value unfolded (RFC 5322 §2.2.3: CR/LF dropped, NULs too since the
 * result is a C string), trimmed. g_free it. */
static char *unfold(const unsigned char *d, size_t off, size_t len)
{
	char *s = g_malloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = d[off + i];
		if (c != '\r' && c != '\n' && c != '\0')
			s[n++] = (char)c;
	}
	while (n > 0 && is_wsp((unsigned char)s[n - 1]))
		n--;
	s[n] = '\0';
	size_t lead = 0;
	while (is_wsp((unsigned char)s[lead]))
		lead++;
	memmove(s, s + lead, n - lead + 1);
	return s;
}

static char *span_unfold(const unsigned char *d, const struct span *sp)
{
	return sp->set ? unfold(d, sp->off, sp->len) : NULL;
}

/* Decodes encoded-words and undeclared 8-bit text to valid UTF-8. g_free. */
static char *decode_text(const char *raw)
{
	char *dec = g_mime_utils_header_decode_text(NULL, raw);
	if (dec == NULL)
		dec = g_strdup(raw);
	char *valid = g_utf8_make_valid(dec, -1);
	g_free(dec);
	g_strstrip(valid);
	return valid;
}

/* ---- the entity tree ---- */

enum ent_kind { ENT_LEAF, ENT_MULTIPART, ENT_MESSAGE };

/* A message or body part. Header [hdr_start, body_start) includes the blank
 * line; body [body_start, body_end). */
struct entity {
	size_t hdr_start, body_start, body_end;
	struct span fields[F_COUNT];
	enum ent_kind kind;
	char *type, *subtype;  /* uppercase */
	GMimeContentType *ct;  /* parameters; NULL when defaulted or replaced */
	char *encoding;        /* uppercase, "7BIT" by default */
	uint64_t lines;        /* LFs in the body (text and message/rfc822 parts) */
	struct entity *child;  /* multipart children, or the embedded message */
	struct entity *next;
};

struct parser {
	const unsigned char *d;
	size_t size;
	unsigned parts;
};

static void entity_free(struct entity *e)
{
	while (e != NULL) {
		struct entity *next = e->next;
		entity_free(e->child);
		g_free(e->type);
		g_free(e->subtype);
		g_free(e->encoding);
		if (e->ct != NULL)
			g_object_unref(e->ct);
		g_free(e);
		e = next;
	}
}

/* RFC 2045 §5.1 token. */
static bool is_token_char(unsigned char c)
{
	return c > 32 && c < 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* RFC 2045 §5.2: a Content-Type that is not "type/subtype" counts as absent. */
static bool type_syntax_ok(const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	if (!is_token_char(*p))
		return false;
	while (is_token_char(*p))
		p++;
	while (is_wsp(*p))
		p++;
	if (*p++ != '/')
		return false;
	while (is_wsp(*p))
		p++;
	return is_token_char(*p);
}

static void set_type(struct entity *e, const char *type, const char *subtype)
{
	g_free(e->type);
	g_free(e->subtype);
	e->type = g_ascii_strup(type, -1);
	e->subtype = g_ascii_strup(subtype, -1);
	if (e->ct != NULL) {
		g_object_unref(e->ct);
		e->ct = NULL;
	}
}

static void parse_content_type(struct entity *e, const unsigned char *d, bool digest)
{
	char *v = span_unfold(d, &e->fields[F_CONTENT_TYPE]);
	if (v != NULL && type_syntax_ok(v)) {
		GMimeContentType *ct = g_mime_content_type_parse(NULL, v);
		const char *t = ct ? g_mime_content_type_get_media_type(ct) : NULL;
		const char *s = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;
		if (t != NULL && *t != '\0' && s != NULL && *s != '\0') {
			set_type(e, t, s);
			e->ct = ct;
			ct = NULL;
		}
		if (ct != NULL)
			g_object_unref(ct);
	}
	g_free(v);
	if (e->type == NULL) {
		/* RFC 2046 §5.1.5: parts of a digest default to message/rfc822. */
		if (digest)
			set_type(e, "message", "rfc822");
		else
			set_type(e, "text", "plain");
	}

	v = span_unfold(d, &e->fields[F_CTE]);
	size_t n = 0;
	while (v != NULL && v[n] != '\0' && is_token_char((unsigned char)v[n]))
		n++;
	e->encoding = n > 0 ? g_ascii_strup(v, (gssize)n) : g_strdup("7BIT");
	g_free(v);
}

static const char *param_get(const struct entity *e, const char *name)
{
	if (e->ct == NULL)
		return NULL;
	return g_mime_content_type_get_parameter(e->ct, name);
}

static uint64_t count_lines(const unsigned char *d, size_t start, size_t end)
{
	uint64_t n = 0;
	const unsigned char *p = d + start, *e = d + end;
	while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		n++;
		p++;
	}
	return n;
}

/* Does a delimiter line "--boundary" or "--boundary--" (RFC 2046 §5.1.1,
 * trailing whitespace allowed) start at p? Sets *next_r past the line. */
static bool delim_at(const unsigned char *d, size_t p, size_t end, const char *bnd, size_t blen,
		     size_t *next_r, bool *close_r)
{
	if (end - p < 2 + blen || d[p] != '-' || d[p + 1] != '-' ||
	    memcmp(d + p + 2, bnd, blen) != 0)
		return false;
	size_t q = p + 2 + blen;
	bool close = false;
	if (end - q >= 2 && d[q] == '-' && d[q + 1] == '-') {
		close = true;
		q += 2;
	}
	while (q < end && (is_wsp(d[q]) || d[q] == '\r'))
		q++;
	if (q < end && d[q] != '\n')
		return false;
	*next_r = q < end ? q + 1 : end;
	*close_r = close;
	return true;
}

/* Next delimiter line at or after line start `from` in [from, end).
 * Searching for "\n--boundary" keeps this linear: hits are a line apart. */
static bool find_delim(const unsigned char *d, size_t from, size_t end, const char *needle,
		       size_t nlen, size_t *at_r, size_t *next_r, bool *close_r)
{
	const char *bnd = needle + 3;
	size_t blen = nlen - 3;
	if (delim_at(d, from, end, bnd, blen, next_r, close_r)) {
		*at_r = from;
		return true;
	}
	size_t p = from;
	while (p < end) {
		const unsigned char *hit = memmem(d + p, end - p, needle, nlen);
		if (hit == NULL)
			return false;
		size_t at = (size_t)(hit - d) + 1;
		if (delim_at(d, at, end, bnd, blen, next_r, close_r)) {
			*at_r = at;
			return true;
		}
		p = at;
	}
	return false;
}

static struct entity *parse_entity(struct parser *ps, size_t start, size_t end, unsigned depth,
				   bool digest);

/* Splits a multipart body into children; false when it has none. */
static bool parse_children(struct parser *ps, struct entity *e, unsigned depth)
{
	const char *bnd = param_get(e, "boundary");
	size_t blen = bnd != NULL ? strlen(bnd) : 0;
	if (blen == 0 || blen > MIME_BOUNDARY_MAX)
		return false;
	char needle[3 + MIME_BOUNDARY_MAX + 1];
	memcpy(needle, "\n--", 3);
	memcpy(needle + 3, bnd, blen + 1);
	bool digest = strcmp(e->subtype, "DIGEST") == 0;

	const unsigned char *d = ps->d;
	size_t at, next, end = e->body_end;
	bool close;
	if (!find_delim(d, e->body_start, end, needle, blen + 3, &at, &next, &close) || close)
		return false;
	struct entity **tail = &e->child;
	while (ps->parts < MIME_MAX_PARTS) {
		size_t part_start = next, part_end = end;
		bool found = find_delim(d, part_start, end, needle, blen + 3, &at, &next, &close);
		/* RFC 2046 §5.1.1: the CRLF before a delimiter belongs to it. */
		if (found) {
			part_end = at;
			if (at > part_start) {
				part_end = at - 1;
				if (part_end > part_start && d[part_end - 1] == '\r')
					part_end--;
			}
		}
		*tail = parse_entity(ps, part_start, part_end, depth + 1, digest);
		tail = &(*tail)->next;
		if (!found || close)
			break;
	}
	return e->child != NULL;
}

static bool identity_encoding(const char *enc)
{
	return strcmp(enc, "7BIT") == 0 || strcmp(enc, "8BIT") == 0 ||
	       strcmp(enc, "BINARY") == 0;
}

/* The header ends at the blank line; an entity whose first line is not a
 * header field has no header at all (a part that starts with its text). */
static size_t header_end(struct entity *e, const unsigned char *d, size_t start, size_t end)
{
	size_t eol, next;
	if (start < end) {
		line_bounds(d, start, end, &eol, &next);
		if (eol > start && (is_wsp(d[start]) || field_colon(d, start, eol) == 0))
			return start;
	}
	size_t pos = start;
	struct hfield f;
	while (next_field(d, end, &pos, &f) == 1) {
		for (int i = 0; i < F_COUNT; i++) {
			if (e->fields[i].set || strlen(field_names[i]) != f.name_len ||
			    g_ascii_strncasecmp((const char *)d + f.name_off, field_names[i],
						f.name_len) != 0)
				continue;
			e->fields[i] = (struct span){ f.val_off, f.val_len, true };
			break;
		}
	}
	return pos;
}

static struct entity *parse_entity(struct parser *ps, size_t start, size_t end, unsigned depth,
				   bool digest)
{
	struct entity *e = g_new0(struct entity, 1);
	ps->parts++;
	e->hdr_start = start;
	e->body_start = header_end(e, ps->d, start, end);
	e->body_end = end;
	parse_content_type(e, ps->d, digest);

	bool deep = depth >= MIME_MAX_DEPTH;
	if (strcmp(e->type, "MULTIPART") == 0) {
		if (!deep && parse_children(ps, e, depth))
			e->kind = ENT_MULTIPART;
		else    /* RFC 2046 §5.1.1 gives no structure without a boundary */
			set_type(e, "text", "plain");
	} else if (strcmp(e->type, "MESSAGE") == 0 &&
		   (strcmp(e->subtype, "RFC822") == 0 || strcmp(e->subtype, "GLOBAL") == 0)) {
		if (!deep && identity_encoding(e->encoding) && ps->parts < MIME_MAX_PARTS) {
			e->kind = ENT_MESSAGE;
			e->child = parse_entity(ps, e->body_start, end, depth + 1, false);
		} else {
			/* IMAP's message/rfc822 form needs an envelope we can't give. */
			set_type(e, "application", "octet-stream");
		}
	}
	if (e->kind == ENT_MESSAGE || strcmp(e->type, "TEXT") == 0)
		e->lines = count_lines(ps->d, e->body_start, e->body_end);
	return e;
}

static struct entity *parse_message(const void *data, size_t size)
{
	struct parser ps = { .d = data, .size = size, .parts = 0 };
	if (ps.d == NULL)
		ps.d = (const unsigned char *)"";
	return parse_entity(&ps, 0, size, 0, false);
}

/* ---- ENVELOPE (RFC 3501 §7.4.2) ---- */

/* One address structure (RFC 3501 §7.4.2). The display name goes out as the
 * header has it, encoded-words and all; a group start is (NIL NIL name NIL)
 * and its end (NIL NIL NIL NIL); an address without a domain gets "" since
 * a NIL host would mark a group. */
static void sb_address(struct sbuf *b, const struct mail_address *a)
{
	if (mail_address_is_group_end(a)) {
		sb_adds(b, "(NIL NIL NIL NIL)");
		return;
	}
	if (mail_address_is_group_start(a)) {
		sb_adds(b, "(NIL NIL ");
		sb_string(b, a->mailbox, strlen(a->mailbox));
		sb_adds(b, " NIL)");
		return;
	}
	sb_adds(b, "(");
	sb_nstring(b, a->name);
	sb_adds(b, " ");
	sb_nstring(b, a->route);
	sb_adds(b, " ");
	sb_string(b, a->mailbox, strlen(a->mailbox));
	sb_adds(b, " ");
	sb_string(b, a->domain, strlen(a->domain));
	sb_adds(b, ")");
}

/* Parses an address field into *l (count 0 when absent or empty). */
static void addr_list(struct sbuf *b, const unsigned char *d, const struct span *sp,
		      struct mail_address_list *l)
{
	*l = (struct mail_address_list){ 0 };
	char *v = span_unfold(d, sp);
	if (v != NULL && mail_address_parse(v, strlen(v), l) < 0)
		b->failed = true;
	g_free(v);
}

static void sb_addr_list(struct sbuf *b, const struct mail_address_list *l)
{
	if (l->count == 0) {
		sb_adds(b, "NIL");
		return;
	}
	sb_adds(b, "(");
	for (size_t i = 0; i < l->count; i++)
		sb_address(b, &l->a[i]);
	sb_adds(b, ")");
}

static void sb_env_string(struct sbuf *b, const unsigned char *d, const struct span *sp)
{
	char *v = span_unfold(d, sp);
	sb_nstring(b, v);
	g_free(v);
}

static void sb_envelope(struct sbuf *b, const unsigned char *d, const struct entity *e)
{
	sb_adds(b, "(");
	sb_env_string(b, d, &e->fields[F_DATE]);
	sb_adds(b, " ");
	sb_env_string(b, d, &e->fields[F_SUBJECT]);

	struct mail_address_list from;
	addr_list(b, d, &e->fields[F_FROM], &from);
	static const enum field addr_fields[] = { F_SENDER, F_REPLY_TO, F_TO, F_CC, F_BCC };
	sb_adds(b, " ");
	sb_addr_list(b, &from);
	for (size_t i = 0; i < G_N_ELEMENTS(addr_fields); i++) {
		struct mail_address_list l;
		addr_list(b, d, &e->fields[addr_fields[i]], &l);
		/* RFC 3501 §7.4.2: absent or empty Sender/Reply-To mean From. */
		bool dflt = l.count == 0 && i < 2;
		sb_adds(b, " ");
		sb_addr_list(b, dflt ? &from : &l);
		mail_address_list_clear(&l);
	}
	mail_address_list_clear(&from);

	sb_adds(b, " ");
	sb_env_string(b, d, &e->fields[F_IN_REPLY_TO]);
	sb_adds(b, " ");
	sb_env_string(b, d, &e->fields[F_MESSAGE_ID]);
	sb_adds(b, ")");
}

/* ---- BODY / BODYSTRUCTURE (RFC 3501 §7.4.2) ---- */

static bool is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* A parameter; GMime merged and decoded RFC 2231/2047 forms, so a non-ASCII
 * value goes back out in RFC 2231 form as UTF-8. */
static void sb_param(struct sbuf *b, const char *name, const char *value)
{
	char *uname = g_ascii_strup(name, -1);
	if (is_ascii(value)) {
		sb_nstring(b, uname);
		sb_adds(b, " ");
		sb_string(b, value, strlen(value));
	} else {
		char *n2 = g_strconcat(uname, "*", NULL);
		GString *v = g_string_new("utf-8''");
		for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
			if (is_token_char(*p) && *p != '*' && *p != '\'' && *p != '%')
				g_string_append_c(v, (char)*p);
			else
				g_string_append_printf(v, "%%%02X", *p);
		}
		sb_nstring(b, n2);
		sb_adds(b, " ");
		sb_string(b, v->str, v->len);
		g_string_free(v, TRUE);
		g_free(n2);
	}
	g_free(uname);
}

static void sb_param_list(struct sbuf *b, GMimeParamList *l, const char *text_charset)
{
	int n = l != NULL ? g_mime_param_list_length(l) : 0;
	bool add_charset = text_charset != NULL;
	for (int i = 0; i < n && add_charset; i++) {
		const char *pn = g_mime_param_get_name(g_mime_param_list_get_parameter_at(l, i));
		if (pn != NULL && g_ascii_strcasecmp(pn, "charset") == 0)
			add_charset = false;
	}
	if (n == 0 && !add_charset) {
		sb_adds(b, "NIL");
		return;
	}
	sb_adds(b, "(");
	bool first = true;
	if (add_charset) {
		/* RFC 2045 §5.2: text defaults to charset us-ascii. */
		sb_param(b, "charset", text_charset);
		first = false;
	}
	for (int i = 0; i < n; i++) {
		GMimeParam *p = g_mime_param_list_get_parameter_at(l, i);
		const char *pn = g_mime_param_get_name(p), *pv = g_mime_param_get_value(p);
		if (pn == NULL || *pn == '\0')
			continue;
		if (!first)
			sb_adds(b, " ");
		sb_param(b, pn, pv != NULL ? pv : "");
		first = false;
	}
	sb_adds(b, ")");
}

static void sb_params(struct sbuf *b, const struct entity *e)
{
	bool text = strcmp(e->type, "TEXT") == 0;
	sb_param_list(b, e->ct ? g_mime_content_type_get_parameters(e->ct) : NULL,
		      text ? "us-ascii" : NULL);
}

static void sb_disposition(struct sbuf *b, const unsigned char *d, const struct entity *e)
{
	char *v = span_unfold(d, &e->fields[F_CONTENT_DISP]);
	GMimeContentDisposition *cd =
		v != NULL && *v != '\0' ? g_mime_content_disposition_parse(NULL, v) : NULL;
	g_free(v);
	const char *disp = cd ? g_mime_content_disposition_get_disposition(cd) : NULL;
	if (disp == NULL || *disp == '\0') {
		sb_adds(b, "NIL");
	} else {
		char *up = g_ascii_strup(disp, -1);
		sb_adds(b, "(");
		sb_nstring(b, up);
		sb_adds(b, " ");
		sb_param_list(b, g_mime_content_disposition_get_parameters(cd), NULL);
		sb_adds(b, ")");
		g_free(up);
	}
	if (cd != NULL)
		g_object_unref(cd);
}

/* RFC 3066 tags separated by commas: NIL, "tag", or ("tag" ...). */
static void sb_language(struct sbuf *b, const unsigned char *d, const struct entity *e)
{
	char *v = span_unfold(d, &e->fields[F_CONTENT_LANG]);
	char **tags = g_strsplit_set(v != NULL ? v : "", ", \t", -1);
	size_t n = 0;
	for (size_t i = 0; tags[i] != NULL; i++)
		if (*tags[i] != '\0')
			tags[n++] = tags[i];
		else
			g_free(tags[i]);
	tags[n] = NULL;
	if (n == 0)
		sb_adds(b, "NIL");
	else if (n == 1)
		sb_nstring(b, tags[0]);
	for (size_t i = 0; n > 1 && i < n; i++) {
		sb_adds(b, i == 0 ? "(" : " ");
		sb_nstring(b, tags[i]);
		sb_adds(b, i + 1 == n ? ")" : "");
	}
	g_strfreev(tags);
	g_free(v);
}

static void sb_location(struct sbuf *b, const unsigned char *d, const struct entity *e)
{
	char *v = span_unfold(d, &e->fields[F_CONTENT_LOC]);
	if (v != NULL) {
		/* RFC 2557 §4.4: a folded URI has its whitespace removed. */
		size_t n = 0;
		for (size_t i = 0; v[i] != '\0'; i++)
			if (!is_wsp((unsigned char)v[i]))
				v[n++] = v[i];
		v[n] = '\0';
	}
	sb_nstring(b, v);
	g_free(v);
}

static void sb_body(struct sbuf *b, const unsigned char *d, const struct entity *e, bool ext);

static void sb_multipart(struct sbuf *b, const unsigned char *d, const struct entity *e, bool ext)
{
	sb_adds(b, "(");
	for (const struct entity *c = e->child; c != NULL; c = c->next)
		sb_body(b, d, c, ext);
	sb_adds(b, " ");
	sb_nstring(b, e->subtype);
	if (ext) {
		sb_adds(b, " ");
		sb_params(b, e);
		sb_adds(b, " ");
		sb_disposition(b, d, e);
		sb_adds(b, " ");
		sb_language(b, d, e);
		sb_adds(b, " ");
		sb_location(b, d, e);
	}
	sb_adds(b, ")");
}

static void sb_body(struct sbuf *b, const unsigned char *d, const struct entity *e, bool ext)
{
	if (e->kind == ENT_MULTIPART) {
		sb_multipart(b, d, e, ext);
		return;
	}
	sb_adds(b, "(");
	sb_nstring(b, e->type);
	sb_adds(b, " ");
	sb_nstring(b, e->subtype);
	sb_adds(b, " ");
	sb_params(b, e);
	sb_adds(b, " ");
	sb_env_string(b, d, &e->fields[F_CONTENT_ID]);
	sb_adds(b, " ");
	sb_env_string(b, d, &e->fields[F_CONTENT_DESC]);
	sb_adds(b, " ");
	sb_nstring(b, e->encoding);
	sb_adds(b, " ");
	sb_num(b, e->body_end - e->body_start);
	if (e->kind == ENT_MESSAGE) {
		sb_adds(b, " ");
		sb_envelope(b, d, e->child);
		sb_adds(b, " ");
		sb_body(b, d, e->child, ext);
	}
	if (e->kind == ENT_MESSAGE || strcmp(e->type, "TEXT") == 0) {
		sb_adds(b, " ");
		sb_num(b, e->lines);
	}
	if (ext) {
		sb_adds(b, " NIL "); /* body-fld-md5 */
		sb_disposition(b, d, e);
		sb_adds(b, " ");
		sb_language(b, d, e);
		sb_adds(b, " ");
		sb_location(b, d, e);
	}
	sb_adds(b, ")");
}

/* ---- public API ---- */

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;

static void mime_init_once(void)
{
	g_mime_init();
}

void mime_init(void)
{
	pthread_once(&mime_once, mime_init_once);
}

static char *malloc_copy(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static int64_t sent_date(const unsigned char *d, const struct entity *root)
{
	char *v = span_unfold(d, &root->fields[F_DATE]);
	GDateTime *dt = v != NULL ? g_mime_utils_header_decode_date(v) : NULL;
	g_free(v);
	if (dt == NULL)
		return 0;
	int64_t t = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return t;
}

int mime_summarize(const void *data, size_t size, struct store_msg_cache *c_r)
{
	struct entity *root = parse_message(data, size);
	const unsigned char *d = data != NULL ? data : (const unsigned char *)"";
	struct store_msg_cache c = { 0 };
	struct sbuf env = { 0 }, bs = { 0 }, body = { 0 };

	sb_envelope(&env, d, root);
	sb_body(&bs, d, root, true);
	sb_body(&body, d, root, false);
	char *raw = span_unfold(d, &root->fields[F_SUBJECT]);
	char *subject = raw != NULL ? decode_text(raw) : NULL;
	c.subject = malloc_copy(subject);
	g_free(subject);
	g_free(raw);
	c.sent_date = sent_date(d, root);
	entity_free(root);

	int r1 = sb_take(&env, &c.envelope), r2 = sb_take(&bs, &c.bodystructure);
	int r3 = sb_take(&body, &c.body);
	if (r1 < 0 || r2 < 0 || r3 < 0 || c.subject == NULL) {
		free(c.envelope);
		free(c.bodystructure);
		free(c.body);
		free(c.subject);
		return -1;
	}
	*c_r = c;
	return 0;
}

static const struct entity *nth_child(const struct entity *e, unsigned long k)
{
	const struct entity *c = e->child;
	while (c != NULL && --k > 0)
		c = c->next;
	return c;
}

/* RFC 3501 §6.4.5 numbering: part n of a message is its n-th child when it
 * is multipart, else part 1 is the message's own body. */
static const struct entity *section_part(const struct entity *root, const char *part)
{
	const struct entity *cur = NULL;
	const char *p = part;
	while (*p != '\0') {
		if (*p < '1' || *p > '9')
			return NULL;
		char *endp;
		unsigned long k = strtoul(p, &endp, 10);
		if (k == 0 || k > MIME_MAX_PARTS || (*endp != '.' && *endp != '\0'))
			return NULL;
		p = *endp == '.' ? endp + 1 : endp;
		if (*endp == '.' && *p == '\0')
			return NULL;
		if (cur != NULL && cur->kind == ENT_MULTIPART) {
			cur = nth_child(cur, k);
		} else {
			const struct entity *msg = cur == NULL ? root
						 : cur->kind == ENT_MESSAGE ? cur->child : NULL;
			if (msg == NULL)
				return NULL;
			cur = msg->kind == ENT_MULTIPART ? nth_child(msg, k) : k == 1 ? msg : NULL;
		}
		if (cur == NULL)
			return NULL;
	}
	return cur;
}

static int section_of(const struct entity *root, size_t size, const char *part, const char *kind,
		      size_t *off_r, size_t *len_r)
{
	const struct entity *cur = section_part(root, part);
	if (cur == NULL && *part != '\0')
		return 0;
	const struct entity *msg = cur == NULL ? root : cur->kind == ENT_MESSAGE ? cur->child : NULL;
	size_t start, end;
	if (*kind == '\0') {
		start = cur ? cur->body_start : 0;
		end = cur ? cur->body_end : size;
	} else if (g_ascii_strcasecmp(kind, "MIME") == 0 && cur != NULL) {
		start = cur->hdr_start;
		end = cur->body_start;
	} else if (g_ascii_strncasecmp(kind, "HEADER", 6) == 0 && msg != NULL &&
		   (kind[6] == '\0' || kind[6] == '.')) {
		start = msg->hdr_start;
		end = msg->body_start;
	} else if (g_ascii_strcasecmp(kind, "TEXT") == 0 && msg != NULL) {
		start = msg->body_start;
		end = msg->body_end;
	} else {
		return 0;
	}
	*off_r = start;
	*len_r = end - start;
	return 1;
}

int mime_section_range(const void *data, size_t size, const char *part, const char *kind,
		       size_t *offset_r, size_t *length_r)
{
	if (part == NULL || kind == NULL)
		return -1;
	struct entity *root = parse_message(data, size);
	int r = section_of(root, size, part, kind, offset_r, length_r);
	entity_free(root);
	return r;
}

/* Transfer-decodes and converts a text part to UTF-8 onto b. */
static void append_text(struct sbuf *b, const unsigned char *d, const struct entity *e)
{
	size_t len = e->body_end - e->body_start;
	GMimeStream *src = g_mime_stream_mem_new_with_buffer((const char *)d + e->body_start, len);
	GMimeStream *filt = g_mime_stream_filter_new(src);
	GMimeContentEncoding enc = g_mime_content_encoding_from_string(e->encoding);
	if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);
		g_mime_stream_filter_add(GMIME_STREAM_FILTER(filt), f);
		g_object_unref(f);
	}
	const char *cs = param_get(e, "charset");
	if (cs != NULL && g_ascii_strcasecmp(cs, "utf-8") != 0 &&
	    g_ascii_strcasecmp(cs, "us-ascii") != 0) {
		/* NULL for a charset iconv does not know: keep the bytes. */
		GMimeFilter *f = g_mime_filter_charset_new(cs, "UTF-8");
		if (f != NULL) {
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(filt), f);
			g_object_unref(f);
		}
	}
	GByteArray *out = g_byte_array_new();
	GMimeStream *dst = g_mime_stream_mem_new_with_byte_array(out);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(dst), FALSE);
	g_mime_stream_write_to_stream(filt, dst);
	g_object_unref(dst);
	g_object_unref(filt);
	g_object_unref(src);

	for (guint i = 0; i < out->len; i++)
		if (out->data[i] == '\0')
			out->data[i] = ' ';
	if (out->len > 0) {
		char *valid = g_utf8_make_valid((const char *)out->data, out->len);
		sb_adds(b, valid);
		sb_adds(b, "\n");
		g_free(valid);
	}
	g_byte_array_free(out, TRUE);
}

static void append_texts(struct sbuf *b, const unsigned char *d, const struct entity *e)
{
	for (; e != NULL; e = e->next) {
		if (e->kind != ENT_LEAF)
			append_texts(b, d, e->child);
		else if (strcmp(e->type, "TEXT") == 0)
			append_text(b, d, e);
	}
}

int mime_search_text(const void *data, size_t size, char **headers_r, char **body_r)
{
	struct entity *root = parse_message(data, size);
	const unsigned char *d = data != NULL ? data : (const unsigned char *)"";
	struct sbuf hb = { 0 }, bb = { 0 };
	size_t pos = root->hdr_start;
	struct hfield f;
	while (next_field(d, root->body_start, &pos, &f) == 1) {
		char *name = unfold(d, f.name_off, f.name_len);
		char *raw = unfold(d, f.val_off, f.val_len);
		char *val = decode_text(raw);
		sb_adds(&hb, name);
		sb_adds(&hb, ": ");
		sb_adds(&hb, val);
		sb_adds(&hb, "\n");
		g_free(val);
		g_free(raw);
		g_free(name);
	}
	append_texts(&bb, d, root);
	entity_free(root);

	char *h = NULL, *bd = NULL;
	int r1 = sb_take(&hb, &h), r2 = sb_take(&bb, &bd);
	if (r1 < 0 || r2 < 0) {
		free(h);
		free(bd);
		return -1;
	}
	*headers_r = h;
	*body_r = bd;
	return 0;
}

/* The unfolded value (g_free) of the first field called name in the
 * message's header, as ENVELOPE takes it (header_end), or NULL. */
static char *first_field_value(const void *data, size_t size, const char *name)
{
	const unsigned char *d = data != NULL ? data : (const unsigned char *)"";
	struct entity root = { 0 };
	size_t end = header_end(&root, d, 0, size), pos = 0, nlen = strlen(name);
	struct hfield f;
	while (next_field(d, end, &pos, &f) == 1) {
		if (f.name_len == nlen &&
		    g_ascii_strncasecmp((const char *)d + f.name_off, name, nlen) == 0)
			return unfold(d, f.val_off, f.val_len);
	}
	return NULL;
}

char *mime_header_value(const void *data, size_t size, const char *name)
{
	char *raw = first_field_value(data, size, name);
	if (raw == NULL)
		return NULL;
	char *val = decode_text(raw);
	char *out = val != NULL ? strdup(val) : NULL; /* NULL: as if absent */
	g_free(val);
	g_free(raw);
	return out;
}

int mime_header_addresses(const void *data, size_t size, const char *name,
			  struct mail_address_list *l_r)
{
	char *v = first_field_value(data, size, name);
	if (v != NULL) {
		int r = mail_address_parse(v, strlen(v), l_r);
		g_free(v);
		return r < 0 ? -1 : 1;
	}
	return 0;
}
