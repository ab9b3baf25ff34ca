/* HEADER.FIELDS filtering: see header-filter.h. A field is its first line
 * plus every following line that starts with a space or tab (RFC 5322
 * §2.2.3 folding); its name is the text before the colon, trailing blanks
 * dropped (the obsolete "Subject :" form). */
#include "proto/imap/header-filter.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* End of the line starting at p (after its LF), or end. */
static size_t line_end(const char *hdr, size_t len, size_t p)
{
	const char *lf = memchr(hdr + p, '\n', len - p);
	return lf != NULL ? (size_t)(lf - hdr) + 1 : len;
}

static bool is_blank_line(const char *hdr, size_t p, size_t e)
{
	return (e - p == 1 && hdr[p] == '\n') || (e - p == 2 && hdr[p] == '\r' && hdr[p + 1] == '\n');
}

static bool name_listed(const char *name, size_t n, char *const *names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (strlen(names[i]) == n && strncasecmp(names[i], name, n) == 0)
			return true;
	return false;
}

int imap_header_filter(const char *hdr, size_t len, char *const *names, size_t name_count,
		       bool keep_listed, char **out_r, size_t *len_r)
{
	char *out = malloc(len + 5); /* + CRLF for a cut-off last line, CRLF, NUL */
	size_t o = 0, p = 0;

	if (out == NULL)
		return -1;
	while (p < len) {
		size_t e = line_end(hdr, len, p);
		if (is_blank_line(hdr, p, e))
			break;
		size_t fend = e;
		while (fend < len && (hdr[fend] == ' ' || hdr[fend] == '\t'))
			fend = line_end(hdr, len, fend);
		const char *colon = memchr(hdr + p, ':', e - p);
		size_t n = colon != NULL ? (size_t)(colon - (hdr + p)) : 0;
		while (n > 0 && (hdr[p + n - 1] == ' ' || hdr[p + n - 1] == '\t'))
			n--;
		/* A line without a colon has no name: never listed. */
		bool listed = colon != NULL && name_listed(hdr + p, n, names, name_count);
		if (listed == keep_listed) {
			memcpy(out + o, hdr + p, fend - p);
			o += fend - p;
			/* a last field cut off without its line end still ends a line */
			if (hdr[fend - 1] != '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
			}
		}
		p = fend;
	}
	out[o++] = '\r';
	out[o++] = '\n';
	out[o] = '\0';
	*out_r = out;
	*len_r = o;
	return 0;
}
