/* The IMAP command table: name, handler, the states a command is legal in,
 * and how mailbox changes may be reported before its tagged reply. The
 * dispatcher in session.c checks state and UID use, so handlers never do. */
#include "proto/imap/commands.h"
#include "proto/imap/cmd-notify.h"

#include <stdlib.h>
#include <string.h>

#define ANY (IMAP_STATE_NOT_AUTH | IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define NOT_AUTH IMAP_STATE_NOT_AUTH
#define AUTH (IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define SELECTED IMAP_STATE_SELECTED

/* Sorted by name for bsearch. */
static const struct imap_command commands[] = {
	{"APPEND", cmd_append, AUTH, 0},
	{"AUTHENTICATE", cmd_authenticate, NOT_AUTH, IMAP_CMD_NO_SYNC},
	{"CANCELUPDATE", cmd_cancelupdate, SELECTED, 0},
	{"CAPABILITY", cmd_capability, ANY, IMAP_CMD_NO_SYNC | IMAP_CMD_NO_ARGS},
	{"CHECK", cmd_check, SELECTED, IMAP_CMD_NO_ARGS},
	{"CLOSE", cmd_close, SELECTED, IMAP_CMD_NO_SYNC | IMAP_CMD_NO_ARGS},
	{"COMPRESS", cmd_compress, AUTH, IMAP_CMD_NO_SYNC},
	{"COPY", cmd_copy, SELECTED, IMAP_CMD_UID_OK | IMAP_CMD_SYNC_NO_EXPUNGE},
	{"CREATE", cmd_create, AUTH, 0},
	{"DELETE", cmd_delete, AUTH, 0},
	{"ENABLE", cmd_enable, AUTH, 0},
	{"EXAMINE", cmd_select, AUTH, IMAP_CMD_NO_SYNC},
	{"EXPUNGE", cmd_expunge, SELECTED, IMAP_CMD_UID_OK},
	{"FETCH", cmd_fetch, SELECTED, IMAP_CMD_UID_OK | IMAP_CMD_SYNC_NO_EXPUNGE},
	{"GETQUOTA", cmd_getquota, AUTH, 0},
	{"GETQUOTAROOT", cmd_getquotaroot, AUTH, 0},
	{"ID", cmd_id, ANY, IMAP_CMD_NO_SYNC},
	{"IDLE", cmd_idle, AUTH, IMAP_CMD_NO_ARGS},
	{"LIST", cmd_list, AUTH, 0},
	{"LOGIN", cmd_login, NOT_AUTH, IMAP_CMD_NO_SYNC},
	{"LOGOUT", cmd_logout, ANY, IMAP_CMD_NO_SYNC | IMAP_CMD_NO_ARGS},
	{"LSUB", cmd_list, AUTH, 0},
	{"MOVE", cmd_copy, SELECTED, IMAP_CMD_UID_OK},
	{"NAMESPACE", cmd_namespace, AUTH, IMAP_CMD_NO_ARGS},
	{"NOOP", cmd_noop, ANY, IMAP_CMD_NO_ARGS},
	{"NOTIFY", cmd_notify, AUTH, 0},
	{"RENAME", cmd_rename, AUTH, 0},
	{"SEARCH", cmd_search, SELECTED, IMAP_CMD_UID_OK | IMAP_CMD_SYNC_NO_EXPUNGE},
	{"SELECT", cmd_select, AUTH, IMAP_CMD_NO_SYNC},
	{"SETQUOTA", cmd_setquota, AUTH, 0},
	{"SORT", cmd_sort, SELECTED, IMAP_CMD_UID_OK | IMAP_CMD_SYNC_NO_EXPUNGE},
	{"STARTTLS", cmd_starttls, NOT_AUTH, IMAP_CMD_NO_SYNC | IMAP_CMD_NO_ARGS},
	{"STATUS", cmd_status, AUTH, 0},
	{"STORE", cmd_store, SELECTED, IMAP_CMD_UID_OK | IMAP_CMD_SYNC_NO_EXPUNGE},
	{"SUBSCRIBE", cmd_subscribe, AUTH, 0},
	{"THREAD", cmd_thread, SELECTED, IMAP_CMD_UID_OK | IMAP_CMD_SYNC_NO_EXPUNGE},
	{"UNSELECT", cmd_unselect, SELECTED, IMAP_CMD_NO_SYNC | IMAP_CMD_NO_ARGS},
	{"UNSUBSCRIBE", cmd_subscribe, AUTH, 0},
};

static int command_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct imap_command *)elem)->name);
}

const struct imap_command *imap_command_find(const char *name)
{
	return bsearch(name, commands, sizeof(commands) / sizeof(commands[0]), sizeof(commands[0]),
		       command_cmp);
}
