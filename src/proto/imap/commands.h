/* Every IMAP command handler, one per command file, collected by the table in
 * commands.c. Handlers reply with the tagged result (or go async). */
#ifndef TERN_PROTO_IMAP_COMMANDS_H
#define TERN_PROTO_IMAP_COMMANDS_H

#include "proto/imap/session.h"

#define IMAP_HANDLER(fn) enum imap_cmd_result fn(struct imap_session *s, struct imap_cmd *cmd)

/* cmd-auth.c */
IMAP_HANDLER(cmd_capability);
IMAP_HANDLER(cmd_login);
IMAP_HANDLER(cmd_authenticate);
IMAP_HANDLER(cmd_starttls);
/* cmd-misc.c */
IMAP_HANDLER(cmd_noop);
IMAP_HANDLER(cmd_logout);
IMAP_HANDLER(cmd_id);
IMAP_HANDLER(cmd_enable);
IMAP_HANDLER(cmd_namespace);
IMAP_HANDLER(cmd_check);
IMAP_HANDLER(cmd_compress);
/* cmd-select.c */
IMAP_HANDLER(cmd_select);       /* SELECT and EXAMINE (cmd->name tells) */
IMAP_HANDLER(cmd_close);
IMAP_HANDLER(cmd_unselect);
IMAP_HANDLER(cmd_expunge);      /* EXPUNGE and UID EXPUNGE */
/* cmd-idle.c */
IMAP_HANDLER(cmd_idle);
/* cmd-mailbox.c */
IMAP_HANDLER(cmd_create);
IMAP_HANDLER(cmd_delete);
IMAP_HANDLER(cmd_rename);
IMAP_HANDLER(cmd_subscribe);    /* SUBSCRIBE and UNSUBSCRIBE */
/* cmd-list.c */
IMAP_HANDLER(cmd_list);         /* LIST (with LIST-EXTENDED/LIST-STATUS) and LSUB */
IMAP_HANDLER(cmd_status);
/* cmd-append.c */
IMAP_HANDLER(cmd_append);
/* cmd-quota.c */
IMAP_HANDLER(cmd_getquota);
IMAP_HANDLER(cmd_getquotaroot);
IMAP_HANDLER(cmd_setquota);     /* refused: quota is set by the administrator */
/* cmd-fetch.c */
IMAP_HANDLER(cmd_fetch);
/* cmd-store.c */
IMAP_HANDLER(cmd_store);
/* cmd-search.c */
IMAP_HANDLER(cmd_search);
/* cmd-sort.c */
IMAP_HANDLER(cmd_sort);         /* SORT and UID SORT (with ESORT RETURN) */
/* cmd-cancelupdate.c */
IMAP_HANDLER(cmd_cancelupdate); /* RFC 5267 §4.3.5 */
/* cmd-thread.c */
IMAP_HANDLER(cmd_thread);       /* THREAD and UID THREAD */
/* cmd-copy.c */
IMAP_HANDLER(cmd_copy);         /* COPY and MOVE (cmd->name tells) */

#endif
