/* NOTIFY (RFC 5465 section 8) argument parser: a pure function over the
 * command's parsed arguments, no session and no store, so it is unit-tested
 * and fuzzed on its own. Mailbox names stay as sent (the caller converts
 * them); the result points into the arguments and lives as long as they. */
#ifndef TERN_PROTO_IMAP_NOTIFY_PARSE_H
#define TERN_PROTO_IMAP_NOTIFY_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/imap/parser.h"

enum imap_notify_filter {
	IMAP_NOTIFY_SELECTED,
	IMAP_NOTIFY_SELECTED_DELAYED,
	IMAP_NOTIFY_INBOXES,
	IMAP_NOTIFY_PERSONAL,
	IMAP_NOTIFY_SUBSCRIBED,
	IMAP_NOTIFY_SUBTREE,
	IMAP_NOTIFY_MAILBOXES,
};

/* Event bits (RFC 5465 section 5). */
enum imap_notify_event {
	IMAP_NOTIFY_MESSAGE_NEW = 1u << 0,
	IMAP_NOTIFY_MESSAGE_EXPUNGE = 1u << 1,
	IMAP_NOTIFY_FLAG_CHANGE = 1u << 2,
	IMAP_NOTIFY_MAILBOX_NAME = 1u << 3,
	IMAP_NOTIFY_SUBSCRIPTION_CHANGE = 1u << 4,
};

/* The events Tern reports, as NO [BADEVENT (...)] lists them. */
#define IMAP_NOTIFY_SUPPORTED_EVENTS \
	"MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange"

/* At most this many event groups and mailbox names in one NOTIFY SET. */
#define IMAP_NOTIFY_MAX_GROUPS 64
#define IMAP_NOTIFY_MAX_MAILBOXES 1000

struct imap_notify_group {
	enum imap_notify_filter filter;
	unsigned events;                   /* enum imap_notify_event bits; 0 = NONE */
	const struct imap_arg *mailboxes;  /* SUBTREE/MAILBOXES: mailbox arguments */
	size_t mailbox_count;
	const struct imap_arg *fetch_list; /* MessageNew (fetch-att ...) of SELECTED:
	                                      the list, as FETCH takes it */
	const struct imap_arg *fetch_atts; /* ... and its items */
	size_t fetch_att_count;
};

struct imap_notify_spec {
	bool none;                         /* NOTIFY NONE */
	bool status;                       /* NOTIFY SET STATUS */
	struct imap_notify_group groups[IMAP_NOTIFY_MAX_GROUPS];
	size_t count;
};

enum imap_notify_parse_result {
	IMAP_NOTIFY_PARSE_OK = 0,
	IMAP_NOTIFY_PARSE_BAD = -1,        /* syntax: BAD (*bad_r) */
	IMAP_NOTIFY_PARSE_BADEVENT = -2,   /* an event Tern does not report:
	                                      NO [BADEVENT (...)] */
};

/* Parses the arguments after "NOTIFY". Returns an imap_notify_parse_result;
 * on BAD, *bad_r is the reply text. */
int imap_notify_parse(const struct imap_arg *args, size_t count,
		      struct imap_notify_spec *spec_r, const char **bad_r);

#endif
