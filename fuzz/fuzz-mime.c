/* libFuzzer target for store/mime.c: every entry point over arbitrary bytes.
 * Besides "no crash, no hang", it checks that every section range lies inside
 * the message, since IMAP serves those bytes straight from the buffer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_section(const uint8_t *data, size_t size, const char *part, const char *kind)
{
	size_t off = 0, len = 0;
	if (mime_section_range(data, size, part, kind, &off, &len) == 1 &&
	    (off > size || len > size - off))
		abort();
}

/* The cached strings go to clients verbatim: parentheses must balance
 * outside quoted strings and literals, and CR/LF may appear only in literals. */
static void check_imap_syntax(const char *s)
{
	long depth = 0;
	while (*s != '\0') {
		if (*s == '"') {
			for (s++; *s != '"'; s++) {
				if (*s == '\0' || *s == '\r' || *s == '\n' || (unsigned char)*s >= 0x80)
					abort();
				if (*s == '\\' && *++s == '\0')
					abort();
			}
			s++;
		} else if (*s == '{') {
			char *end;
			unsigned long n = strtoul(s + 1, &end, 10);
			if (end[0] != '}' || end[1] != '\r' || end[2] != '\n' || strnlen(end + 3, n) < n)
				abort();
			s = end + 3 + n;
		} else {
			if (*s == '(')
				depth++;
			else if (*s == ')' && --depth < 0)
				abort();
			else if (*s == '\r' || *s == '\n')
				abort();
			s++;
		}
	}
	if (depth != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool initialised;
	if (!initialised) {
		mime_init();
		initialised = true;
	}

	struct store_msg_cache c;
	if (mime_summarize(data, size, &c) == 0) {
		check_imap_syntax(c.envelope);
		check_imap_syntax(c.bodystructure);
		check_imap_syntax(c.body);
		/* The strings are plain malloc; freeing them here keeps this
		 * target independent of the SQLite store code. */
		free(c.envelope);
		free(c.bodystructure);
		free(c.body);
		free(c.subject);
	}

	static const char *const sections[][2] = {
		{ "", "" },      { "", "HEADER" }, { "", "TEXT" },   { "1", "" },
		{ "1", "MIME" }, { "2", "" },      { "2", "HEADER" }, { "2", "TEXT" },
		{ "1.1", "" },   { "1.2", "MIME" }, { "2.1", "" },   { "3.1.2", "" },
	};
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		check_section(data, size, sections[i][0], sections[i][1]);

	char *headers = NULL, *body = NULL;
	if (mime_search_text(data, size, &headers, &body) == 0) {
		free(headers);
		free(body);
	}
	free(mime_header_value(data, size, "subject"));
	return 0;
}
