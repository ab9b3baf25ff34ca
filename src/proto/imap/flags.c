/* IMAP flag lists (RFC 3501 §2.3.2) to and from the store's representation:
 * system flags as bits, keywords as one space-separated string, each
 * keyword once (compared case-insensitively) and at most
 * TERN_KEYWORDS_PER_MESSAGE_MAX of them. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "core/keyword-set.h"
#include "core/limits.h"
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

static int flag_parse_one(const struct imap_arg *a, uint32_t *flags, struct keyword_set *kws,
			  const char **bad_r)
{
	const char *s;
	/* flag-keyword = atom: an unquoted NIL is the keyword "NIL" here */
	if (!imap_arg_atom(a, &s)) {
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
	/* the same keyword in another case is the same keyword: the first
	 * spelling stays, in the client's order */
	if (keyword_set_add(kws, s, strlen(s)) < 0) {
		*bad_r = "Out of memory";
		return -1;
	}
	if (keyword_set_count(kws) > TERN_KEYWORDS_PER_MESSAGE_MAX) {
		/* stop here: the rest of a hostile list is not even looked at */
		*bad_r = "Too many keywords";
		return IMAP_FLAGS_TOO_MANY_KEYWORDS;
	}
	return 0;
}

int imap_flags_parse(const struct imap_arg *arg, uint32_t *flags_r, char **keywords_r,
		     const char **bad_r)
{
	const struct imap_arg *list = arg;
	size_t count = 1;
	uint32_t flags = 0;
	struct keyword_set kws = KEYWORD_SET_INIT;
	if (arg == NULL) {
		*bad_r = "Missing flags";
		return -1;
	}
	if (arg->type == IMAP_ARG_LIST)
		(void)imap_arg_list(arg, &list, &count);
	for (size_t i = 0; i < count; i++) {
		int ret = flag_parse_one(&list[i], &flags, &kws, bad_r);
		if (ret < 0) {
			keyword_set_clear(&kws);
			return ret;
		}
	}
	*flags_r = flags;
	*keywords_r = keyword_set_take_text(&kws);
	return 0;
}

int imap_flags_write(struct evbuffer *out, uint32_t flags, const char *keywords)
{
	bool first = true;
	if (evbuffer_add(out, "(", 1) < 0)
		return -1;
	for (size_t i = 0; i < SYSTEM_FLAG_COUNT; i++) {
		if ((flags & system_flags[i].bit) == 0)
			continue;
		if ((!first && evbuffer_add(out, " ", 1) < 0) ||
		    evbuffer_add(out, system_flags[i].name, strlen(system_flags[i].name)) < 0)
			return -1;
		first = false;
	}
	if ((flags & IMAP_FLAG_RECENT) != 0) {
		if (evbuffer_add(out, first ? "\\Recent" : " \\Recent", first ? 7 : 8) < 0)
			return -1;
		first = false;
	}
	if (keywords != NULL && *keywords != '\0') {
		if ((!first && evbuffer_add(out, " ", 1) < 0) ||
		    evbuffer_add(out, keywords, strlen(keywords)) < 0)
			return -1;
	}
	return evbuffer_add(out, ")", 1) < 0 ? -1 : 0;
}
