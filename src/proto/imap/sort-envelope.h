/* Reads what SORT and THREAD need out of a cached IMAP ENVELOPE string
 * (RFC 3501 §7.4.2): the first address of From, To and Cc, Message-ID and
 * In-Reply-To. Pure code over the text the store cached. */
#ifndef TERN_PROTO_IMAP_SORT_ENVELOPE_H
#define TERN_PROTO_IMAP_SORT_ENVELOPE_H

#include <stddef.h>

enum imap_env_field {
	IMAP_ENV_DATE, IMAP_ENV_SUBJECT, IMAP_ENV_FROM, IMAP_ENV_SENDER, IMAP_ENV_REPLY_TO,
	IMAP_ENV_TO, IMAP_ENV_CC, IMAP_ENV_BCC, IMAP_ENV_IN_REPLY_TO, IMAP_ENV_MESSAGE_ID,
	IMAP_ENV_FIELDS
};

/* One address: heap strings, NULL when NIL. */
struct imap_env_addr {
	char *name;      /* display name as cached (encoded-words not decoded) */
	char *mailbox;   /* local part */
	char *host;
};

/* The first address of an address field: a mailbox, or a group's start
 * marker (name NIL, mailbox = the group's name, host NIL), as RFC 5256 sorts
 * by "the first address in the ENVELOPE". 1 found, 0 the field is NIL/empty
 * or the envelope is malformed, -1 out of memory. *a_r is set only on 1;
 * free with imap_env_addr_clear. */
int imap_env_first_addr(const char *envelope, enum imap_env_field field,
			struct imap_env_addr *a_r);
void imap_env_addr_clear(struct imap_env_addr *a);

/* A string field (DATE, SUBJECT, IN_REPLY_TO, MESSAGE_ID) as a heap string;
 * NULL if NIL, malformed or out of memory. */
char *imap_env_string(const char *envelope, enum imap_env_field field);

#endif
