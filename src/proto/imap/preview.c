/* PREVIEW (RFC 8970): see preview.h. */
#include "proto/imap/preview.h"

#include <gmime/gmime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the normaliser (pure) ---- */

struct pv {
	char *out;
	size_t cap, len, chars;
	bool space;          /* whitespace seen since the last character */
	bool full;
};

static void pv_space(struct pv *p)
{
	p->space = true;
}

/* One code point, as its n valid UTF-8 bytes. */
static void pv_put(struct pv *p, const char *bytes, size_t n)
{
	bool sep = p->space && p->len > 0;
	if (p->full || p->chars + sep + 1 > IMAP_PREVIEW_MAX_CHARS || p->len + sep + n >= p->cap) {
		p->full = true;
		return;
	}
	if (sep) {
		p->out[p->len++] = ' ';
		p->chars++;
	}
	p->space = false;
	memcpy(p->out + p->len, bytes, n);
	p->len += n;
	p->chars++;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), its code point
 * in *cp_r; 0 when the bytes are not one (overlong, surrogate, too large,
 * cut short). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp_r)
{
	uint32_t cp;
	size_t len;
	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		cp = s[0] & 0x1f;
		len = 2;
	} else if ((s[0] & 0xf0) == 0xe0) {
		cp = s[0] & 0x0f;
		len = 3;
	} else if ((s[0] & 0xf8) == 0xf0) {
		cp = s[0] & 0x07;
		len = 4;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return len;
}

static bool is_space_cp(uint32_t cp)
{
	return cp < 0x20 || cp == 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0x2028 ||
	       cp == 0x2029 || cp == 0xfeff;
}

/* One code point: whitespace and controls become a separator. */
static void pv_cp(struct pv *p, uint32_t cp)
{
	char b[4];
	size_t n;
	if (is_space_cp(cp)) {
		pv_space(p);
		return;
	}
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	pv_put(p, b, n);
}

static bool ci_prefix(const char *s, size_t n, const char *word)
{
	size_t w = strlen(word);
	return n >= w && strncasecmp(s, word, w) == 0;
}

/* Position just past the first occurrence of needle (case-insensitive) in
 * [pos, len), or len. */
static size_t skip_past(const char *s, size_t len, size_t pos, const char *needle)
{
	size_t w = strlen(needle);
	for (; pos + w <= len; pos++)
		if (strncasecmp(s + pos, needle, w) == 0)
			return pos + w;
	return len;
}

/* HTML elements whose content is no text of the message. */
static const char *const hidden_elements[] = { "style", "script", "head", "title", NULL };
/* Inline elements: no word break at their tags. */
static const char *const inline_elements[] = {
	"a", "abbr", "b", "big", "code", "em", "font", "i", "small", "span", "strong", "sub",
	"sup", "u", NULL,
};

static bool in_list(const char *const *list, const char *name, size_t n)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strlen(list[i]) == n && strncasecmp(list[i], name, n) == 0)
			return true;
	return false;
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* At s[pos] == '<': skips the tag (and a hidden element's content);
 * returns the position after it. */
static size_t html_tag(struct pv *p, const char *s, size_t len, size_t pos)
{
	if (ci_prefix(s + pos, len - pos, "<!--"))
		return skip_past(s, len, pos + 4, "-->");
	size_t name = pos + 1 + (pos + 1 < len && s[pos + 1] == '/');
	size_t e = name;
	while (e < len && is_alnum(s[e]))
		e++;
	bool closing = name > pos + 1;
	size_t after = e;
	while (after < len && s[after] != '>')
		after++;
	after = after < len ? after + 1 : len;
	if (!closing && in_list(hidden_elements, s + name, e - name)) {
		char end_tag[16] = "</";
		memcpy(end_tag + 2, s + name, e - name);   /* at most 6 bytes */
		end_tag[2 + e - name] = '\0';
		size_t close = skip_past(s, len, after, end_tag);
		while (close < len && s[close] != '>')
			close++;
		after = close < len ? close + 1 : len;
	}
	if (!in_list(inline_elements, s + name, e - name))
		pv_space(p);
	return after;
}

static const struct {
	const char *name;
	uint32_t cp;
} entities[] = {
	{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
	{ "nbsp", ' ' }, { "copy", 0xa9 }, { "reg", 0xae }, { "hellip", 0x2026 },
	{ "mdash", 0x2014 }, { "ndash", 0x2013 }, { "rsquo", 0x2019 }, { "lsquo", 0x2018 },
	{ "rdquo", 0x201d }, { "ldquo", 0x201c }, { "euro", 0x20ac }, { "zwnj", 0x200c },
};

/* At s[pos] == '&': a character reference, decoded; returns the position
 * after it, or pos + 1 with a plain '&' when it is none. */
static size_t html_entity(struct pv *p, const char *s, size_t len, size_t pos)
{
	size_t e = pos + 1;
	uint32_t cp = 0;
	bool ok = false;
	if (e < len && s[e] == '#') {
		bool hex = e + 1 < len && (s[e + 1] == 'x' || s[e + 1] == 'X');
		e += hex ? 2 : 1;
		size_t digits = 0;
		for (; e < len && digits < 7; e++, digits++) {
			char c = s[e];
			int v = c >= '0' && c <= '9' ? c - '0'
				: hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
				: hex && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
			if (v < 0)
				break;
			cp = cp * (hex ? 16 : 10) + (uint32_t)v;
		}
		ok = digits > 0 && cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
	} else {
		while (e < len && e - pos <= 8 && is_alnum(s[e]))
			e++;
		for (size_t i = 0; i < sizeof(entities) / sizeof(entities[0]) && !ok; i++) {
			if (strlen(entities[i].name) == e - pos - 1 &&
			    strncmp(entities[i].name, s + pos + 1, e - pos - 1) == 0) {
				cp = entities[i].cp;
				ok = true;
			}
		}
	}
	if (!ok) {
		pv_put(p, "&", 1);
		return pos + 1;
	}
	pv_cp(p, cp);
	return e < len && s[e] == ';' ? e + 1 : e;
}

size_t imap_preview_normalize(const char *text, size_t len, bool html, char *out, size_t cap)
{
	struct pv p = { .out = out, .cap = cap };
	bool line_start = true;
	size_t pos = 0;
	if (cap == 0)
		return 0;
	while (pos < len && !p.full) {
		unsigned char c = (unsigned char)text[pos];
		if (html && c == '<') {
			pos = html_tag(&p, text, len, pos);
			continue;
		}
		if (html && c == '&') {
			pos = html_entity(&p, text, len, pos);
			continue;
		}
		if (!html && line_start && c == '>') {
			const char *lf = memchr(text + pos, '\n', len - pos);
			pos = lf != NULL ? (size_t)(lf - text) + 1 : len;
			pv_space(&p);
			continue;
		}
		uint32_t cp;
		size_t n = utf8_seq((const unsigned char *)text + pos, len - pos, &cp);
		if (n == 0) {
			pos++;          /* not UTF-8: dropped */
			continue;
		}
		line_start = c == '\n';
		pv_cp(&p, cp);
		pos += n;
	}
	out[p.len] = '\0';
	return p.len;
}

/* ---- finding the text (GMime) ---- */

/* Nesting looked into: deeper parts are no message's first text. */
#define PREVIEW_DEPTH_MAX 16

/* The first text/<subtype> part that is no attachment, depth first. */
static GMimeTextPart *find_text(GMimeObject *o, const char *subtype, unsigned depth)
{
	if (o == NULL || depth > PREVIEW_DEPTH_MAX)
		return NULL;
	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n; i++) {
			GMimeTextPart *t = find_text(g_mime_multipart_get_part(mp, i), subtype,
						     depth + 1);
			if (t != NULL)
				return t;
		}
		return NULL;
	}
	if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		return m != NULL ? find_text(g_mime_message_get_mime_part(m), subtype, depth + 1)
				 : NULL;
	}
	if (!GMIME_IS_TEXT_PART(o) || g_mime_part_is_attachment(GMIME_PART(o)))
		return NULL;
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	if (ct == NULL || !g_mime_content_type_is_type(ct, "text", subtype))
		return NULL;
	return GMIME_TEXT_PART(o);
}

int imap_preview_text(const char *raw, size_t size, char **preview_r)
{
	char buf[IMAP_PREVIEW_MAX_BYTES + 1];
	size_t n = 0;
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(raw, size);
	GMimeParser *parser = g_mime_parser_new_with_stream(st);
	g_object_unref(st);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (msg != NULL) {
		GMimeObject *body = g_mime_message_get_mime_part(msg);
		bool html = false;
		GMimeTextPart *t = find_text(body, "plain", 0);
		if (t == NULL) {
			t = find_text(body, "html", 0);
			html = t != NULL;
		}
		char *text = t != NULL ? g_mime_text_part_get_text(t) : NULL;
		if (text != NULL) {
			size_t len = strlen(text);
			n = imap_preview_normalize(text, len < IMAP_PREVIEW_SCAN_MAX ? len
						   : IMAP_PREVIEW_SCAN_MAX, html, buf, sizeof(buf));
			g_free(text);
		}
		g_object_unref(msg);
	}
	buf[n] = '\0';
	*preview_r = strdup(buf);
	return *preview_r != NULL ? 0 : -1;
}
