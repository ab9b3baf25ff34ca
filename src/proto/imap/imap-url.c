/* IMAP URL parser: see imap-url.h. Grammar of RFC 5092 §11 (the parts named
 * there: imapurl, iserver, imessagepart, irelative-path). */
#include "proto/imap/imap-url.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unistr.h>

#include "core/limits.h"

/* A cursor over the URL text. */
struct cur {
	const char *s;
	size_t len, pos;
};

static bool at_key(const struct cur *c, const char *key)
{
	size_t n = strlen(key);
	return c->len - c->pos >= n && strncasecmp(c->s + c->pos, key, n) == 0;
}

static bool eat_key(struct cur *c, const char *key)
{
	if (!at_key(c, key))
		return false;
	c->pos += strlen(key);
	return true;
}

/* RFC 5092 bchar without pct-encoded: unreserved, sub-delims-sh, "&", "=",
 * ":", "@", "/". ";" is not one: it starts the next key. */
static bool is_bchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return strchr("-._~!$'()*+,&=:@/", ch) != NULL && ch != '\0';
}

static int hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Where the run of bchars from the cursor ends: the next ";" or the end. */
static size_t run_end(const struct cur *c)
{
	size_t end = c->pos;
	while (end < c->len && c->s[end] != ';')
		end++;
	return end;
}

/* 1*bchar (with %XX) in s[start..end), decoded into a heap string. NULL
 * with *error_r on bad text or an empty span; a decoded NUL is refused. */
static char *decode_span(const char *s, size_t start, size_t end, const char **error_r)
{
	if (end <= start) {
		*error_r = "Empty name or section in URL";
		return NULL;
	}
	char *out = malloc(end - start + 1), *o = out;
	if (out == NULL) {
		*error_r = "Out of memory";
		return NULL;
	}
	for (size_t i = start; i < end; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '%') {
			int hi = i + 2 < end ? hexval((unsigned char)s[i + 1]) : -1;
			int lo = hi >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
			if (lo < 0 || hi * 16 + lo == 0) {
				*error_r = "Invalid percent-encoding in URL";
				free(out);
				return NULL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else if (is_bchar(ch)) {
			*o++ = (char)ch;
		} else {
			*error_r = "Invalid character in URL (it must be percent-encoded)";
			free(out);
			return NULL;
		}
	}
	*o = '\0';
	return out;
}

/* A run that another "/;KEY=" follows: its raw text ends in that "/", which
 * stays for the cursor. */
static char *decode_before_slash(struct cur *c, const char **error_r)
{
	size_t end = run_end(c);
	if (end < c->len) {
		if (end == c->pos || c->s[end - 1] != '/') {
			*error_r = "Invalid URL";
			return NULL;
		}
		end--;
	}
	char *out = decode_span(c->s, c->pos, end, error_r);
	if (out != NULL)
		c->pos = end;
	return out;
}

/* nz-number (or number when zero_ok) that fits 32 bits: no sign, no
 * leading zero. */
static bool parse_number(struct cur *c, bool zero_ok, uint32_t *n_r)
{
	size_t start = c->pos;
	uint64_t v = 0;
	while (c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9') {
		v = v * 10 + (uint64_t)(c->s[c->pos] - '0');
		if (v > UINT32_MAX)
			return false;
		c->pos++;
	}
	size_t n = c->pos - start;
	if (n == 0 || (n > 1 && c->s[start] == '0') || (v == 0 && !zero_ok))
		return false;
	*n_r = (uint32_t)v;
	return true;
}

/* iserver = [iuserinfo "@"] host [":" port], up to the "/" that follows it. */
static int parse_server(struct cur *c, struct imap_url *u, const char **error_r)
{
	size_t start = c->pos, end = start, at = SIZE_MAX;
	while (end < c->len && c->s[end] != '/') {
		if (c->s[end] == '@')
			at = end;
		end++;
	}
	if (end == c->len) {
		*error_r = "URL names no message";
		return -1;
	}
	size_t host_start = start;
	if (at != SIZE_MAX) {
		/* enc-user [";AUTH=" ...]: the user is what comes before ";" */
		size_t semi = start;
		while (semi < at && c->s[semi] != ';')
			semi++;
		if (semi > start) {
			u->user = decode_span(c->s, start, semi, error_r);
			if (u->user == NULL)
				return -1;
		}
		if (semi < at) {
			struct cur ac = { c->s, at, semi };
			if (!eat_key(&ac, ";AUTH=") || ac.pos == at) {
				*error_r = "Invalid user part in URL";
				return -1;
			}
		}
		host_start = at + 1;
	}
	if (host_start == end) {
		*error_r = "URL names no host";
		return -1;
	}
	for (size_t i = host_start; i < end; i++) {
		unsigned char ch = (unsigned char)c->s[i];
		if (!is_bchar(ch) && ch != '[' && ch != ']' && ch != '%') {
			*error_r = "Invalid host in URL";
			return -1;
		}
	}
	u->host = strndup(c->s + host_start, end - host_start);
	if (u->host == NULL) {
		*error_r = "Out of memory";
		return -1;
	}
	c->pos = end + 1;
	return 0;
}

/* A decoded section goes inside "BODY[...]": printable ASCII only, no
 * brackets or angle brackets (which would end it or start a partial). */
static bool section_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch > 0x7e || strchr("[]<>", ch) != NULL)
			return false;
	}
	return true;
}

/* ";UID=n" ["/;SECTION=s"] ["/;PARTIAL=o[.l]"] to the end. */
static int parse_uid_on(struct cur *c, struct imap_url *u, const char **error_r)
{
	if (!eat_key(c, ";UID=") || !parse_number(c, false, &u->uid)) {
		*error_r = "URL names no message UID";
		return -1;
	}
	if (c->pos < c->len && eat_key(c, "/;SECTION=")) {
		/* enc-section may hold "/": a trailing one belongs to "/;PARTIAL" */
		u->section = decode_before_slash(c, error_r);
		if (u->section == NULL)
			return -1;
		if (!section_ok(u->section)) {
			*error_r = "Invalid section in URL";
			return -1;
		}
	}
	if (c->pos < c->len && eat_key(c, "/;PARTIAL=")) {
		u->partial = true;
		bool ok = parse_number(c, true, &u->partial_offset);
		if (ok && c->pos < c->len && c->s[c->pos] == '.') {
			c->pos++;
			ok = parse_number(c, false, &u->partial_length);
		}
		if (!ok) {
			*error_r = "Invalid partial range in URL";
			return -1;
		}
	}
	if (c->pos < c->len) {
		*error_r = at_key(c, ";EXPIRE=") || at_key(c, ";URLAUTH=") ||
				   at_key(c, "/;URLAUTH=") ?
			   "URLAUTH is not supported" : "Unexpected text in URL";
		return -1;
	}
	return 0;
}

/* enc-mailbox [";UIDVALIDITY=n"] "/" ";UID=n" ... */
static int parse_message_part(struct cur *c, struct imap_url *u, const char **error_r)
{
	size_t end = run_end(c);
	const struct cur key = { c->s, c->len, end };
	bool uidvalidity = at_key(&key, ";UIDVALIDITY=");
	u->mailbox = uidvalidity ? decode_span(c->s, c->pos, end, error_r)
				 : decode_before_slash(c, error_r);
	if (u->mailbox == NULL)
		return -1;
	if (u8_check((const uint8_t *)u->mailbox, strlen(u->mailbox)) != NULL) {
		*error_r = "Mailbox name in URL is not UTF-8";
		return -1;
	}
	if (uidvalidity) {
		c->pos = end + 13;
		if (!parse_number(c, false, &u->uidvalidity)) {
			*error_r = "Invalid UIDVALIDITY in URL";
			return -1;
		}
	}
	if (!eat_key(c, "/")) {
		*error_r = "URL names no message UID";
		return -1;
	}
	return parse_uid_on(c, u, error_r);
}

int imap_url_parse(const char *text, size_t len, struct imap_url *url_r, const char **error_r)
{
	struct imap_url u = { 0 };
	struct cur c = { text, len, 0 };
	int r;

	if (len == 0 || len > TERN_IMAP_URL_MAX || memchr(text, '\0', len) != NULL) {
		*error_r = len == 0 ? "Empty URL" : len > TERN_IMAP_URL_MAX ? "URL too long"
									: "NUL in URL";
		return -1;
	}
	if (eat_key(&c, "imap://")) {
		u.absolute = true;
		r = parse_server(&c, &u, error_r);
		if (r == 0)
			r = parse_message_part(&c, &u, error_r);
	} else if (c.s[0] == '/') {
		c.pos = 1;
		r = parse_message_part(&c, &u, error_r);
	} else if (at_key(&c, ";UID=")) {
		r = parse_uid_on(&c, &u, error_r);
	} else {
		*error_r = "Not an IMAP message URL";
		r = -1;
	}
	if (r < 0) {
		imap_url_clear(&u);
		return -1;
	}
	*url_r = u;
	return 0;
}

void imap_url_clear(struct imap_url *url)
{
	free(url->user);
	free(url->host);
	free(url->mailbox);
	free(url->section);
	*url = (struct imap_url){ 0 };
}

/* Bytes shown percent-encoded in url-resp-text: "]" ends it; CTLs and
 * 8-bit bytes would be allowed (but NUL, CR, LF, 0xFF) yet no URL has them
 * raw, and encoding them keeps the response 7-bit printable. */
static bool resp_escaped(unsigned char ch)
{
	return ch < 0x20 || ch >= 0x7f || ch == ']';
}

char *imap_url_resp_text(const char *text, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += resp_escaped((unsigned char)text[i]) ? 3 : 1;
	char *out = malloc(n + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (resp_escaped(ch)) {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		} else {
			*o++ = (char)ch;
		}
	}
	*o = '\0';
	return out;
}
