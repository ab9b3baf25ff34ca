/* ENVELOPE reader: see sort-envelope.h. A tiny tokenizer for the subset of
 * IMAP syntax an ENVELOPE uses: lists, NIL, quoted strings and literals. */
#include "proto/imap/sort-envelope.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct tok {
	const char *p;
};

static void skip_sp(struct tok *t)
{
	while (*t->p == ' ')
		t->p++;
}

/* Skips one value (string, NIL, list); false if malformed. */
static bool skip_value(struct tok *t, unsigned depth);

/* Reads an nstring at t->p. *s_r = heap copy (NULL for NIL). Returns false
 * when malformed; sets *oom_r on allocation failure. */
static bool read_nstring(struct tok *t, char **s_r, bool *oom_r)
{
	skip_sp(t);
	const char *p = t->p;
	if (strncasecmp(p, "NIL", 3) == 0) {
		t->p += 3;
		*s_r = NULL;
		return true;
	}
	if (*p == '"') {
		size_t n = 0;
		const char *q = p + 1;
		for (; *q != '"'; q++) {
			if (*q == '\0')
				return false;
			if (*q == '\\' && q[1] != '\0')
				q++;
			n++;
		}
		char *s = malloc(n + 1);
		if (s == NULL) {
			*oom_r = true;
			return false;
		}
		size_t i = 0;
		for (q = p + 1; *q != '"'; q++) {
			if (*q == '\\')
				q++;
			s[i++] = *q;
		}
		s[i] = '\0';
		t->p = q + 1;
		*s_r = s;
		return true;
	}
	if (*p == '{') {
		char *end;
		unsigned long n = strtoul(p + 1, &end, 10);
		if (end == p + 1 || *end != '}' || end[1] != '\r' || end[2] != '\n')
			return false;
		const char *data = end + 3;
		if (strnlen(data, n) < n) /* a NUL, or the text ends early */
			return false;
		char *s = malloc(n + 1);
		if (s == NULL) {
			*oom_r = true;
			return false;
		}
		memcpy(s, data, n);
		s[n] = '\0';
		t->p = data + n;
		*s_r = s;
		return true;
	}
	return false;
}

static bool skip_value(struct tok *t, unsigned depth)
{
	skip_sp(t);
	if (*t->p != '(') {
		char *s = NULL;
		bool oom = false;
		bool ok = read_nstring(t, &s, &oom);
		free(s);
		return ok;
	}
	if (depth > 8)
		return false;
	t->p++;
	for (;;) {
		skip_sp(t);
		if (*t->p == ')') {
			t->p++;
			return true;
		}
		if (*t->p == '\0' || !skip_value(t, depth + 1))
			return false;
	}
}

/* Positions t at field's value; false if malformed. */
static bool seek_field(struct tok *t, const char *envelope, enum imap_env_field field)
{
	t->p = envelope;
	skip_sp(t);
	if (*t->p != '(')
		return false;
	t->p++;
	for (int i = 0; i < (int)field; i++)
		if (!skip_value(t, 1))
			return false;
	skip_sp(t);
	return true;
}

char *imap_env_string(const char *envelope, enum imap_env_field field)
{
	struct tok t;
	char *s = NULL;
	bool oom = false;
	if (envelope == NULL || !seek_field(&t, envelope, field) || !read_nstring(&t, &s, &oom))
		return NULL;
	return s;
}

void imap_env_addr_clear(struct imap_env_addr *a)
{
	free(a->name);
	free(a->mailbox);
	free(a->host);
	memset(a, 0, sizeof(*a));
}

int imap_env_first_addr(const char *envelope, enum imap_env_field field,
			struct imap_env_addr *a_r)
{
	struct tok t;
	if (envelope == NULL || !seek_field(&t, envelope, field) || *t.p != '(')
		return 0;
	t.p++;
	for (;;) {
		skip_sp(&t);
		if (*t.p != '(')
			return 0;
		t.p++;
		struct imap_env_addr a = { 0 };
		char *adl = NULL;
		bool oom = false;
		bool ok = read_nstring(&t, &a.name, &oom) && read_nstring(&t, &adl, &oom) &&
			  read_nstring(&t, &a.mailbox, &oom) && read_nstring(&t, &a.host, &oom);
		free(adl);
		skip_sp(&t);
		if (!ok || *t.p != ')') {
			imap_env_addr_clear(&a);
			return oom ? -1 : 0;
		}
		t.p++;
		/* A NIL host marks a group's start (its name as mailbox) or end
		 * (all NIL, RFC 3501 §7.4.2). A group start counts as the first
		 * address (RFC 5256: the addr-mailbox of the first address); an
		 * end marker before any start is skipped. */
		if (a.host != NULL || a.mailbox != NULL) {
			*a_r = a;
			return 1;
		}
		imap_env_addr_clear(&a);
	}
}
