/* Helpers shared by the mailbox commands (CREATE ... LIST, STATUS, APPEND,
 * QUOTA): reading a mailbox argument and replying to the store errors a
 * client can cause (missing, existing, invalid names) without logging them
 * as server faults. */
#ifndef TERN_PROTO_IMAP_MAILBOX_H
#define TERN_PROTO_IMAP_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/imap/session.h"

/* Whether a new folder may get this name (UTF-8, '/'-separated, as the store
 * keeps it): valid UTF-8 in Unicode normalization form C, without control
 * characters (C0, DEL, C1) or invisible formatting ones (a byte-order mark,
 * bidi marks, embeddings, overrides and isolates, zero-width spaces, line
 * separators, noncharacters), per RFC 9051 §5.1 and RFC 5198: such a name
 * can pass for another ("<BOM>INBOX") or show reversed. ZWNJ and ZWJ are
 * allowed: Persian, Indic scripts and emoji need them. On false, *reason_r
 * is static text for a "NO [CANNOT]" reply. Pure and thread-safe: every
 * path that makes a folder (IMAP CREATE and RENAME, LMTP +detail) uses it.
 * Existing folders are not checked, so one made before can still be
 * renamed or deleted. */
bool imap_folder_name_valid(const char *name, size_t len, const char **reason_r);

/* Whether mailbox names go over the wire as UTF-8 (after ENABLE UTF8=ACCEPT,
 * RFC 6855 §3, or ENABLE IMAP4rev2, RFC 9051 §5.1) rather than modified
 * UTF-7 (RFC 3501 §5.1.3). Also what may carry UTF-8 in other strings
 * (PREVIEW). */
bool imap_names_utf8(const struct imap_session *s);

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
