/* libFuzzer target for src/proto/imap/preview.c (PREVIEW, RFC 8970): the
 * normaliser over arbitrary bytes, as text and as HTML, and the whole
 * message path. Besides "no crash, no hang", it checks what a client is
 * promised: valid UTF-8, at most 256 characters, no control characters, no
 * leading, trailing or doubled space. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/preview.h"
#include "store/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *s, size_t len)
{
	size_t chars = 0;
	if (len > IMAP_PREVIEW_MAX_BYTES || strlen(s) != len)
		abort();
	if (len > 0 && (s[0] == ' ' || s[len - 1] == ' '))
		abort();
	for (size_t i = 0; i < len; chars++) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
			 : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (n == 0 || i + n > len || c < 0x20 || c == 0x7f)
			abort();
		for (size_t k = 1; k < n; k++)
			if (((unsigned char)s[i + k] & 0xc0) != 0x80)
				abort();
		if (c == ' ' && i + 1 < len && s[i + 1] == ' ')
			abort();
		i += n;
	}
	if (chars > IMAP_PREVIEW_MAX_CHARS)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		mime_init();
		ready = true;
	}
	char out[IMAP_PREVIEW_MAX_BYTES + 1];
	for (int html = 0; html < 2; html++) {
		size_t n = imap_preview_normalize((const char *)data, size, html, out, sizeof(out));
		check(out, n);
	}
	char *p = NULL;
	if (imap_preview_text((const char *)data, size, &p) == 0) {
		check(p, strlen(p));
		free(p);
	}
	return 0;
}
