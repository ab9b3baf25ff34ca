/* Read-only views of a mailbox homed on this node: its folders, the messages
 * of one folder, and one message's raw bytes. A user homed elsewhere is
 * refused with the node to run on; a user with no store yet gets one created
 * (with the default folders), as the first delivery or login would. */
#ifndef TERN_ADMIN_CTL_MAILBOX_H
#define TERN_ADMIN_CTL_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "admin/ctl.h"

/* Folders as an array of {name, messages, unseen, size, uidvalidity, uidnext,
 * highestmodseq, special_use (string or null), subscribed}. */
int ctl_mailbox_folders(struct ctl *c, const char *user, json_t **rows_r);

/* Messages of folder, ascending UID, as an array of {uid, flags (array of
 * strings), size, date (internal date, ISO 8601 UTC), subject}. */
int ctl_mailbox_list(struct ctl *c, const char *user, const char *folder, json_t **rows_r);

/* The raw message (heap, *size_r bytes) of uid in folder. */
int ctl_mailbox_raw(struct ctl *c, const char *user, const char *folder, uint32_t uid,
		    char **data_r, size_t *size_r);

#endif
