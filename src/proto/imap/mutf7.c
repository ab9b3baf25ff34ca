/* Modified UTF-7: see mutf7.h. RFC 3501 §5.1.3: printable US-ASCII except
 * "&" stands for itself, "&" is "&-", anything else is UTF-16 in base64
 * (with "," for "/") between "&" and "-". */
#include "proto/imap/mutf7.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static bool is_direct(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* Decodes one UTF-8 scalar at s[*i]; -1 on malformed input. */
static int32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
	unsigned char c = s[*i];
	uint32_t cp, min;
	size_t extra;

	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if ((c & 0xe0) == 0xc0) {
		cp = c & 0x1f, extra = 1, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		cp = c & 0x0f, extra = 2, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		cp = c & 0x07, extra = 3, min = 0x10000;
	} else {
		return -1;
	}
	if (len - *i <= extra)
		return -1;
	for (size_t k = 1; k <= extra; k++) {
		if ((s[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[*i + k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += extra + 1;
	return (int32_t)cp;
}

static size_t utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

struct b64_out {
	char *o;
	uint32_t bits;
	unsigned nbits;
};

static void b64_put16(struct b64_out *w, uint32_t unit)
{
	w->bits = (w->bits << 16) | unit;
	w->nbits += 16;
	while (w->nbits >= 6) {
		w->nbits -= 6;
		*w->o++ = b64[(w->bits >> w->nbits) & 0x3f];
	}
	w->bits &= (1u << w->nbits) - 1;
}

int imap_utf8_to_mutf7(const char *in, size_t len, char **out_r)
{
	const unsigned char *s = (const unsigned char *)in;
	/* Worst case: each 4-byte scalar becomes 32 bits = 6 base64 chars,
	 * each 1-byte control 16 bits plus "&-"; 4 chars per input byte bounds both. */
	char *out = malloc(len * 4 + 3);
	struct b64_out w = { out, 0, 0 };
	size_t i = 0;

	if (out == NULL)
		return -1;
	while (i < len) {
		int32_t cp = utf8_next(s, len, &i);
		if (cp <= 0)
			goto fail;
		if (is_direct((uint32_t)cp)) {
			*w.o++ = (char)cp;
			if (cp == '&')
				*w.o++ = '-';
			continue;
		}
		*w.o++ = '&';
		for (;;) {
			if (cp >= 0x10000) {
				uint32_t v = (uint32_t)cp - 0x10000;
				b64_put16(&w, 0xd800 | (v >> 10));
				b64_put16(&w, 0xdc00 | (v & 0x3ff));
			} else {
				b64_put16(&w, (uint32_t)cp);
			}
			if (i >= len)
				break;
			size_t j = i;
			int32_t next = utf8_next(s, len, &j);
			if (next <= 0)
				goto fail;
			if (is_direct((uint32_t)next))
				break;
			cp = next;
			i = j;
		}
		if (w.nbits > 0)
			*w.o++ = b64[(w.bits << (6 - w.nbits)) & 0x3f];
		w.bits = w.nbits = 0;
		*w.o++ = '-';
	}
	*w.o = '\0';
	*out_r = out;
	return 0;
fail:
	free(out);
	return -1;
}

/* Decodes one "&...-" run starting after "&" at in[*i]; writes UTF-8. */
static bool decode_shift(const char *in, size_t len, size_t *i, char **o)
{
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0;
	size_t start = *i, k = *i;

	for (; k < len && in[k] != '-'; k++) {
		int v = b64_value((unsigned char)in[k]);
		if (v < 0)
			return false;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t unit = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		if (high != 0) {
			if (unit < 0xdc00 || unit > 0xdfff)
				return false;
			*o += utf8_put(*o, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
			high = 0;
		} else if (unit >= 0xd800 && unit <= 0xdbff) {
			high = unit;
		} else if (unit >= 0xdc00 && unit <= 0xdfff) {
			return false;
		} else if (unit == 0 || is_direct(unit)) {
			return false;           /* must have been written directly */
		} else {
			*o += utf8_put(*o, unit);
		}
	}
	/* Unterminated, empty, a dangling high surrogate, or padding that is
	 * a whole base64 char or not zero. */
	if (k >= len || k == start || high != 0 || nbits >= 6 || bits != 0)
		return false;
	*i = k + 1;
	return true;
}

int imap_mutf7_to_utf8(const char *in, size_t len, char **out_r)
{
	/* Each 16 bits (2.67 base64 chars) become at most 3 UTF-8 bytes, so
	 * the output is at most 9/8 of the input; twice it is plenty. */
	char *out = malloc(len * 2 + 1), *o = out;
	size_t i = 0;
	bool after_shift = false;

	if (out == NULL)
		return -1;
	while (i < len) {
		unsigned char c = (unsigned char)in[i++];
		if (!is_direct(c))
			goto fail;
		if (c != '&') {
			*o++ = (char)c;
			after_shift = false;
			continue;
		}
		if (i < len && in[i] == '-') {
			*o++ = '&';
			i++;
			after_shift = false;
			continue;
		}
		/* "&AOQ-&APY-" should have been one shift: a second spelling. */
		if (after_shift || !decode_shift(in, len, &i, &o))
			goto fail;
		after_shift = true;
	}
	*o = '\0';
	*out_r = out;
	return 0;
fail:
	free(out);
	return -1;
}

int imap_mutf7_valid(const char *in, size_t len)
{
	char *out;

	if (imap_mutf7_to_utf8(in, len, &out) < 0)
		return 0;
	free(out);
	return 1;
}
