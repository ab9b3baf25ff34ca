/* Base subject extraction (RFC 5256 §2.1) and comparator keys: see
 * sort-subject.h. The steps work on a [start, end) window of one normalised
 * copy of the subject, so nothing is copied per step. */
#include "proto/imap/sort-subject.h"

#include <glib.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *heap_copy(const char *s, size_t n)
{
	char *r = malloc(n + 1);
	if (r != NULL) {
		memcpy(r, s, n);
		r[n] = '\0';
	}
	return r;
}

/* Step 1: encoded-words decoded, tabs and line breaks made spaces, runs of
 * spaces collapsed. g_free the result. */
static char *normalise(const char *subject)
{
	char *dec = strstr(subject, "=?") != NULL ? g_mime_utils_header_decode_text(NULL, subject)
						  : NULL;
	const char *src = dec != NULL ? dec : subject;
	char *valid = g_utf8_make_valid(src, -1);
	g_free(dec);
	char *o = valid;
	bool space = false;
	for (const char *p = valid; *p != '\0'; p++) {
		bool ws = *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n';
		if (ws) {
			if (!space)
				*o++ = ' ';
			space = true;
			continue;
		}
		space = false;
		*o++ = *p;
	}
	*o = '\0';
	return valid;
}

struct win {
	const char *s, *e;   /* the remaining text [s, e) */
};

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static size_t wsp_len(const char *p, const char *e)
{
	size_t n = 0;
	while (p + n < e && is_wsp(p[n]))
		n++;
	return n;
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP; its length at p, or 0. */
static size_t blob_len(const char *p, const char *e)
{
	if (p >= e || *p != '[')
		return 0;
	const char *q = p + 1;
	while (q < e && *q != '[' && *q != ']')
		q++;
	if (q >= e || *q != ']')
		return 0;
	q++;
	return (size_t)(q - p) + wsp_len(q, e);
}

/* subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"; its length, or 0. */
static size_t refwd_len(const char *p, const char *e)
{
	const char *q = p;
	if (e - q >= 2 && strncasecmp(q, "re", 2) == 0) {
		q += 2;
	} else if (e - q >= 2 && strncasecmp(q, "fw", 2) == 0) {
		q += 2;
		if (q < e && (*q == 'd' || *q == 'D'))
			q++;
	} else {
		return 0;
	}
	q += wsp_len(q, e);
	q += blob_len(q, e);
	if (q >= e || *q != ':')
		return 0;
	return (size_t)(q + 1 - p);
}

/* subj-leader = (*subj-blob subj-refwd) / WSP; its length, or 0. */
static size_t leader_len(const char *p, const char *e, bool *refwd_r)
{
	if (p < e && is_wsp(*p))
		return 1;
	const char *q = p;
	size_t b;
	while ((b = blob_len(q, e)) > 0)
		q += b;
	size_t r = refwd_len(q, e);
	if (r == 0)
		return 0;
	*refwd_r = true;
	return (size_t)(q - p) + r;
}

/* Step 2: trailing "(fwd)" and whitespace. */
static void strip_trailers(struct win *w, bool *reply)
{
	for (;;) {
		if (w->e > w->s && is_wsp(w->e[-1])) {
			w->e--;
		} else if (w->e - w->s >= 5 && strncasecmp(w->e - 5, "(fwd)", 5) == 0) {
			w->e -= 5;
			*reply = true;
		} else {
			return;
		}
	}
}

static bool has_nonwsp(const char *p, const char *e)
{
	for (; p < e; p++)
		if (!is_wsp(*p))
			return true;
	return false;
}

char *imap_base_subject(const char *subject, bool *is_reply_r)
{
	char *norm = normalise(subject != NULL ? subject : "");
	struct win w = { norm, norm + strlen(norm) };
	bool reply = false;

	for (;;) {
		strip_trailers(&w, &reply);
		/* steps 3-5 */
		for (bool changed = true; changed;) {
			changed = false;
			size_t n;
			while ((n = leader_len(w.s, w.e, &reply)) > 0) {
				w.s += n;
				changed = true;
			}
			n = blob_len(w.s, w.e);
			if (n > 0 && has_nonwsp(w.s + n, w.e)) {
				w.s += n;
				changed = true;
			}
		}
		/* step 6: "[fwd:" subj-base "]" */
		if (w.e - w.s >= 6 && strncasecmp(w.s, "[fwd:", 5) == 0 && w.e[-1] == ']') {
			w.s += 5;
			w.e--;
			reply = true;
			continue;
		}
		break;
	}
	char *r = heap_copy(w.s, (size_t)(w.e - w.s));
	g_free(norm);
	if (r != NULL && is_reply_r != NULL)
		*is_reply_r = reply;
	return r;
}

char *imap_sort_unicode_key(const char *s)
{
	char *valid = g_utf8_make_valid(s != NULL ? s : "", -1);
	GString *t = g_string_sized_new(strlen(valid) + 1);
	for (const char *p = valid; *p != '\0'; p = g_utf8_next_char(p))
		g_string_append_unichar(t, g_unichar_totitle(g_utf8_get_char(p)));
	g_free(valid);
	char *nfd = g_utf8_normalize(t->str, (gssize)t->len, G_NORMALIZE_NFD);
	g_string_free(t, TRUE);
	if (nfd == NULL)
		return heap_copy("", 0);
	char *r = heap_copy(nfd, strlen(nfd));
	g_free(nfd);
	return r;
}

char *imap_sort_ascii_key(const char *s)
{
	if (s == NULL)
		s = "";
	char *r = heap_copy(s, strlen(s));
	for (char *p = r; p != NULL && *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return r;
}
