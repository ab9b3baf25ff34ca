/* Header field and msg-id extraction for THREAD: see thread-refs.h. */
#include "proto/imap/thread-refs.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *imap_thread_header_field(const char *data, size_t size, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = data, *end = data + size;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol != NULL ? eol : end;
		size_t len = (size_t)(le - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0)
			return NULL;   /* the blank line: end of the header */
		if (len > nlen && strncasecmp(p, name, nlen) == 0 &&
		    (p[nlen] == ':' || p[nlen] == ' ' || p[nlen] == '\t')) {
			const char *colon = memchr(p + nlen, ':', len - nlen);
			if (colon != NULL) {
				/* value up to the next line that does not start with WSP */
				const char *v = colon + 1, *ve = le;
				while (ve + 1 < end && (ve[1] == ' ' || ve[1] == '\t')) {
					const char *next = memchr(ve + 1, '\n', (size_t)(end - ve - 1));
					ve = next != NULL ? next : end;
				}
				char *out = malloc((size_t)(ve - v) + 1), *o = out;
				if (out == NULL)
					return NULL;
				for (const char *q = v; q < ve; q++)
					if (*q != '\r' && *q != '\n')
						*o++ = *q;
				*o = '\0';
				return out;
			}
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	return NULL;
}

void imap_thread_ids_free(char ***_ids, size_t count)
{
	char **ids = *_ids;
	if (ids == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);
	*_ids = NULL;
}

/* "<" ... ">" with an "@" in between and nothing but whitespace to drop. */
static char *one_id(const char *s, const char *e)
{
	char *id = malloc((size_t)(e - s) + 1), *o = id;
	bool at = false;
	if (id == NULL)
		return NULL;
	for (const char *q = s; q < e; q++) {
		if (*q == ' ' || *q == '\t')
			continue;
		at |= *q == '@';
		*o++ = *q;
	}
	*o = '\0';
	if (!at || id[0] == '@' || o[-1] == '@') {
		free(id);
		return (char *)"";   /* invalid, not out of memory */
	}
	return id;
}

int imap_thread_msgids(const char *value, size_t max, char ***ids_r)
{
	char **ids = NULL;
	size_t n = 0, cap = 0;
	const char *p = value;

	while (p != NULL && (max == 0 || n < max)) {
		const char *lt = strchr(p, '<');
		if (lt == NULL)
			break;
		const char *gt = strpbrk(lt + 1, "<>");
		if (gt == NULL)
			break;
		if (*gt == '<') {    /* "<a <b@c>": the first '<' opened nothing */
			p = gt;
			continue;
		}
		char *id = one_id(lt + 1, gt);
		p = gt + 1;
		if (id != NULL && *id == '\0')
			continue;
		if (id != NULL && n == cap) {
			size_t ncap = cap != 0 ? cap * 2 : 4;
			char **nids = realloc(ids, ncap * sizeof(*nids));
			if (nids == NULL) {
				free(id);
				id = NULL;
			} else {
				ids = nids;
				cap = ncap;
			}
		}
		if (id == NULL) {
			imap_thread_ids_free(&ids, n);
			return -1;
		}
		ids[n++] = id;
	}
	*ids_r = ids;
	return (int)n;
}
