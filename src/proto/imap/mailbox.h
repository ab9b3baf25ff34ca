/* Helpers shared by the mailbox commands (CREATE ... LIST, STATUS, APPEND,
 * QUOTA): reading a mailbox argument and replying to the store errors a
 * client can cause (missing, existing, invalid names) without logging them
 * as server faults. */
#ifndef TERN_PROTO_IMAP_MAILBOX_H
#define TERN_PROTO_IMAP_MAILBOX_H

#include <stddef.h>

#include "proto/imap/session.h"

/* The store name of a mailbox argument (astring from the wire); heap. NULL
 * after replying BAD (not an astring, or an invalid name). */
char *imap_mailbox_arg(struct imap_session *s, const struct imap_cmd *cmd,
		       const struct imap_arg *arg);

/* Replies NO for a failed mailbox operation: [NONEXISTENT], [ALREADYEXISTS]
 * and [CANNOT] for the client's mistakes, imap_store_error (logged) for
 * everything else. */
void imap_mailbox_error(struct imap_session *s, const struct imap_cmd *cmd,
			const char *operation, enum tern_error err);

#endif
