/* NOTIFY (RFC 5465): the command, and the reporting session.c calls into.
 * A session with NOTIFY SET keeps a snapshot of its folders (counters,
 * names by folder id) and subscriptions; each change of the user's store
 * (server/notify.h) is compared with it, and what changed in a watched
 * mailbox goes out as untagged STATUS and LIST responses, at once when the
 * session is between commands or in IDLE, else after the current command. */
#ifndef TERN_PROTO_IMAP_CMD_NOTIFY_H
#define TERN_PROTO_IMAP_CMD_NOTIFY_H

#include "proto/imap/session.h"

struct imap_notify;

enum imap_cmd_result cmd_notify(struct imap_session *s, struct imap_cmd *cmd);

/* The user's store changed: reports now or marks it for after the command.
 * Does nothing without NOTIFY SET. */
void imap_notify_wake(struct imap_session *s);
/* Between commands (the tagged reply sent): reports what waited. */
void imap_notify_after_command(struct imap_session *s);
void imap_notify_free(struct imap_notify **n);

#endif
