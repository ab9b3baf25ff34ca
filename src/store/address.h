/* RFC 5322 §3.4 address lists (From, To, Cc, ...) parsed into the shape of
 * IMAP's ENVELOPE address structures (RFC 3501 §7.4.2): one entry per
 * mailbox, with a group written as a start marker, its members and an end
 * marker. ENVELOPE, SEARCH FROM/TO/CC/BCC and SORT all read addresses from
 * this one parse. Handles comments anywhere CFWS may stand, quoted strings,
 * groups (empty ones too) and obsolete source routes; never fails on
 * malformed text, which is read as leniently as other servers do. Pure code
 * over bytes. */
#ifndef TERN_STORE_ADDRESS_H
#define TERN_STORE_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

/* One entry. Heap strings; NULL stands for NIL.
 *   mailbox:     name = display name or NULL, route = NULL or "@a,@b",
 *                mailbox = local part (unquoted), domain = domain ("" if none)
 *   group start: mailbox = group name, everything else NULL
 *   group end:   all NULL */
struct mail_address {
	char *name;     /* as written: quotes and comments removed, runs of
	                   white space made one space, encoded-words kept; a
	                   bare addr-spec's trailing comment stands in for it */
	char *route;
	char *mailbox;
	char *domain;
};

struct mail_address_list {
	struct mail_address *a;
	size_t count;
};

/* Parses an unfolded header value of len bytes. Never rejects input; 0, or
 * -1 when out of memory (then *l_r is untouched). An empty list (count 0)
 * means the field holds no address. Free with mail_address_list_clear. */
int mail_address_parse(const char *s, size_t len, struct mail_address_list *l_r);
void mail_address_list_clear(struct mail_address_list *l);

static inline bool mail_address_is_group_start(const struct mail_address *a)
{
	return a->domain == NULL && a->mailbox != NULL;
}

static inline bool mail_address_is_group_end(const struct mail_address *a)
{
	return a->domain == NULL && a->mailbox == NULL;
}

/* The list as text for SEARCH FROM/TO/CC/BCC: "name <mailbox@domain>" or
 * "mailbox@domain" for each mailbox, "group: ...;" for a group, joined by
 * ", ", display names with their encoded-words decoded (valid UTF-8; needs
 * mime_init). Heap string, NULL when out of memory. */
char *mail_address_list_text(const struct mail_address_list *l);

#endif
