/* IMAP flag lists (RFC 3501 §2.3.2) to and from the store's representation:
 * system flags as bits, keywords as one space-separated string. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "proto/imap/session.h"
#include "store/store.h"

static const struct {
	const char *name;
	uint32_t bit;
} system_flags[] = {
	/* the order flags are written in, as Dovecot does */
	{"\\Answered", STORE_FLAG_ANSWERED},
	{"\\Flagged", STORE_FLAG_FLAGGED},
	{"\\Deleted", STORE_FLAG_DELETED},
	{"\\Seen", STORE_FLAG_SEEN},
	{"\\Draft", STORE_FLAG_DRAFT},
};

#define SYSTEM_FLAG_COUNT (sizeof(system_flags) / sizeof(system_flags[0]))

/* RFC 3501 §9: flag-keyword = atom; ATOM-CHAR excludes atom-specials. */
static bool keyword_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

/* Appends kw to *buf unless it is already there (case-insensitively). */
static int keyword_add(char **buf, size_t *len, const char *kw, size_t kwlen)
{
	if (*buf != NULL) {
		for (const char *p = *buf; *p != '\0';) {
			size_t n = strcspn(p, " ");
			if (n == kwlen && strncasecmp(p, kw, n) == 0)
				return 0;
			p += n;
			if (*p == ' ')
				p++;
		}
	}
	char *grown = realloc(*buf, *len + kwlen + 2);
	if (grown == NULL)
		return -1;
	if (*len > 0)
		grown[(*len)++] = ' ';
	memcpy(grown + *len, kw, kwlen);
	*len += kwlen;
	grown[*len] = '\0';
	*buf = grown;
	return 0;
}

static int flag_parse_one(const struct imap_arg *a, uint32_t *flags, char **kw, size_t *kwlen,
			  const char **bad_r)
{
	const char *s;
	if (a->type != IMAP_ARG_ATOM || !imap_arg_atom(a, &s)) {
		*bad_r = "Invalid flag";
		return -1;
	}
	if (s[0] == '\\') {
		for (size_t i = 0; i < SYSTEM_FLAG_COUNT; i++) {
			if (strcasecmp(s, system_flags[i].name) == 0) {
				*flags |= system_flags[i].bit;
				return 0;
			}
		}
		/* \Recent is the server's to set (RFC 3501 §2.3.2) */
		*bad_r = strcasecmp(s, "\\Recent") == 0 ? "Cannot set \\Recent flag"
							 : "Invalid system flag";
		return -1;
	}
	if (!keyword_valid(s, strlen(s))) {
		*bad_r = "Invalid keyword";
		return -1;
	}
	if (keyword_add(kw, kwlen, s, strlen(s)) < 0) {
		*bad_r = "Out of memory";
		return -1;
	}
	return 0;
}

int imap_flags_parse(const struct imap_arg *arg, uint32_t *flags_r, char **keywords_r,
		     const char **bad_r)
{
	const struct imap_arg *list = arg;
	size_t count = 1;
	uint32_t flags = 0;
	char *kw = NULL;
	size_t kwlen = 0;
	if (arg == NULL) {
		*bad_r = "Missing flags";
		return -1;
	}
	if (arg->type == IMAP_ARG_LIST)
		(void)imap_arg_list(arg, &list, &count);
	for (size_t i = 0; i < count; i++) {
		if (flag_parse_one(&list[i], &flags, &kw, &kwlen, bad_r) < 0) {
			free(kw);
			return -1;
		}
	}
	*flags_r = flags;
	*keywords_r = kw;
	return 0;
}

void imap_flags_write(struct evbuffer *out, uint32_t flags, const char *keywords)
{
	bool first = true;
	evbuffer_add(out, "(", 1);
	for (size_t i = 0; i < SYSTEM_FLAG_COUNT; i++) {
		if ((flags & system_flags[i].bit) == 0)
			continue;
		if (!first)
			evbuffer_add(out, " ", 1);
		evbuffer_add(out, system_flags[i].name, strlen(system_flags[i].name));
		first = false;
	}
	if ((flags & IMAP_FLAG_RECENT) != 0) {
		evbuffer_add(out, first ? "\\Recent" : " \\Recent", first ? 7 : 8);
		first = false;
	}
	if (keywords != NULL && *keywords != '\0') {
		if (!first)
			evbuffer_add(out, " ", 1);
		evbuffer_add(out, keywords, strlen(keywords));
	}
	evbuffer_add(out, ")", 1);
}
