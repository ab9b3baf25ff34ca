/* IMAP string output: see quote.h. */
#include "proto/imap/quote.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"

/* ASTRING-CHAR = ATOM-CHAR / resp-specials: no SP, CTL, 8-bit, "(", ")",
 * "{", "%", "*", '"', "\". "[" is an ATOM-CHAR but gets quoted anyway, since
 * parsers (ours too) read "[...]" in an atom as a FETCH section. */
bool imap_is_astring_atom(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\[", c) != NULL)
			return false;
	}
	return true;
}

static bool valid_utf8(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t extra;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			extra = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			extra = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			extra = 3, cp = c & 0x07, min = 0x10000;
		else
			return false;
		if (len - i <= extra)
			return false;
		for (size_t k = 1; k <= extra; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += extra + 1;
	}
	return true;
}

bool imap_can_quote(const char *s, size_t len, unsigned flags)
{
	bool high = false;

	if (len > TERN_IMAP_QUOTED_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0' || c == '\r' || c == '\n')
			return false;
		high |= c >= 0x80;
	}
	return !high || ((flags & IMAP_WRITE_UTF8) && valid_utf8((const unsigned char *)s, len));
}

int imap_write_quoted(struct evbuffer *out, const char *s, size_t len)
{
	size_t start = 0;

	if (evbuffer_add(out, "\"", 1) < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '"' && s[i] != '\\')
			continue;
		if (evbuffer_add(out, s + start, i - start) < 0 || evbuffer_add(out, "\\", 1) < 0)
			return -1;
		start = i;
	}
	if (evbuffer_add(out, s + start, len - start) < 0 || evbuffer_add(out, "\"", 1) < 0)
		return -1;
	return 0;
}

int imap_write_literal(struct evbuffer *out, const char *s, size_t len, bool literal8)
{
	if (evbuffer_add_printf(out, "%s{%zu}\r\n", literal8 ? "~" : "", len) < 0)
		return -1;
	return evbuffer_add(out, s, len) < 0 ? -1 : 0;
}

int imap_write_string(struct evbuffer *out, const char *s, size_t len, unsigned flags)
{
	if (imap_can_quote(s, len, flags))
		return imap_write_quoted(out, s, len);
	/* A NUL cannot travel in a plain literal (RFC 3501 §4.3: CHAR8 excludes
	 * it); callers wanting NULs send literal8 themselves. */
	return imap_write_literal(out, s, len, false);
}

int imap_write_nstring(struct evbuffer *out, const char *s, size_t len, unsigned flags)
{
	if (s == NULL)
		return evbuffer_add(out, "NIL", 3) < 0 ? -1 : 0;
	return imap_write_string(out, s, len, flags);
}

int imap_write_astring(struct evbuffer *out, const char *s, size_t len, unsigned flags)
{
	if (imap_is_astring_atom(s, len) && !(len == 3 && strncasecmp(s, "NIL", 3) == 0))
		return evbuffer_add(out, s, len) < 0 ? -1 : 0;
	return imap_write_string(out, s, len, flags);
}
