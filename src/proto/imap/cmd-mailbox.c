/* CREATE, DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE (RFC 3501 §6.3.3-6.3.7),
 * CREATE's USE option (RFC 6154 §3), and the mailbox helpers of mailbox.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/imap/commands.h"
#include "proto/imap/list-match.h"
#include "proto/imap/mailbox.h"
#include "store/store.h"

char *imap_mailbox_arg(struct imap_session *s, const struct imap_cmd *cmd,
		       const struct imap_arg *arg)
{
	const char *wire, *bad = NULL;
	size_t len;

	if (!imap_arg_astring(arg, &wire, &len)) {
		imap_bad(s, cmd, "Mailbox name expected");
		return NULL;
	}
	char *name = imap_name_from_wire(s, wire, len, &bad);
	if (name == NULL)
		imap_bad(s, cmd, bad != NULL ? bad : "Invalid mailbox name");
	return name;
}

void imap_mailbox_error(struct imap_session *s, const struct imap_cmd *cmd,
			const char *operation, enum tern_error err)
{
	switch (err) {
	case TERN_ERR_NOTFOUND:
		imap_tagged(s, cmd, "NO [NONEXISTENT] Mailbox does not exist");
		break;
	case TERN_ERR_EXISTS:
		imap_tagged(s, cmd, "NO [ALREADYEXISTS] Mailbox already exists");
		break;
	case TERN_ERR_INVALID:
		imap_tagged(s, cmd, "NO [CANNOT] Invalid mailbox name");
		break;
	default:
		imap_store_error(s, cmd, operation, err);
		break;
	}
}

/* Reads CREATE's "(USE (\Sent))" (RFC 6154 §3, RFC 4466 create-params).
 * 1 = *use_r set (static), 0 = no USE, -1 = replied (BAD or NO [USEATTR]). */
static int create_use(struct imap_session *s, const struct imap_cmd *cmd,
		      const struct imap_arg *params, const char **use_r)
{
	static const char *const known[] = {
		"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", NULL,
	};
	const struct imap_arg *list, *uses;
	size_t count, use_count;
	const char *flag;

	if (!imap_arg_list(params, &list, &count) || count != 2 ||
	    !imap_arg_is_atom_ci(&list[0], "USE") || !imap_arg_list(&list[1], &uses, &use_count)) {
		imap_bad(s, cmd, "Unknown CREATE parameter");
		return -1;
	}
	if (use_count == 0)
		return 0;
	/* The store keeps one special use per folder. */
	if (use_count > 1 || !imap_arg_atom(&uses[0], &flag)) {
		imap_tagged(s, cmd, "NO [USEATTR] Only one special-use attribute per mailbox");
		return -1;
	}
	for (size_t i = 0; known[i] != NULL; i++) {
		if (strcasecmp(flag, known[i]) == 0) {
			*use_r = known[i];
			return 1;
		}
	}
	imap_tagged(s, cmd, "NO [USEATTR] Unsupported special-use attribute");
	return -1;
}

IMAP_HANDLER(cmd_create)
{
	const char *wire, *use = NULL, *bad = NULL;
	size_t len;
	enum tern_error err = TERN_ERR_NONE;

	if (cmd->arg_count < 1 || cmd->arg_count > 2 ||
	    !imap_arg_astring(&cmd->args[0], &wire, &len)) {
		imap_bad(s, cmd, "CREATE needs a mailbox name");
		return IMAP_CMD_DONE;
	}
	if (cmd->arg_count == 2 && create_use(s, cmd, &cmd->args[1], &use) < 0)
		return IMAP_CMD_DONE;
	/* imap_name_from_wire drops one trailing separator (RFC 3501 §6.3.3:
	 * it only says the client means to create children). */
	char *name = imap_name_from_wire(s, wire, len, &bad);
	if (name == NULL) {
		imap_bad(s, cmd, bad != NULL ? bad : "Invalid mailbox name");
		return IMAP_CMD_DONE;
	}
	if (strcmp(name, "INBOX") == 0)
		imap_tagged(s, cmd, "NO [ALREADYEXISTS] INBOX always exists");
	else if (!imap_folder_name_valid(name, strlen(name), &bad))
		imap_tagged(s, cmd, "NO [CANNOT] %s", bad);
	else if (store_folder_create(s->store, name, use, &err) < 0)
		imap_mailbox_error(s, cmd, "create", err);
	else
		imap_tagged(s, cmd, "OK Create completed");
	free(name);
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_delete)
{
	enum tern_error err = TERN_ERR_NONE;

	if (cmd->arg_count != 1) {
		imap_bad(s, cmd, "DELETE needs a mailbox name");
		return IMAP_CMD_DONE;
	}
	char *name = imap_mailbox_arg(s, cmd, &cmd->args[0]);
	if (name == NULL)
		return IMAP_CMD_DONE;
	/* Children stay and the name lists as \Noselect (RFC 3501 §6.3.4). */
	if (strcmp(name, "INBOX") == 0) {
		imap_tagged(s, cmd, "NO [CANNOT] INBOX cannot be deleted");
		goto out;
	}
	/* The session's own selected folder may go: it is closed first (back
	 * to AUTH state, as Dovecot does), so the reply's sync does not find
	 * it vanished and end the session. */
	if (s->view != NULL && strcmp(s->view->folder, name) == 0)
		imap_view_close(s);
	if (store_folder_delete(s->store, name, &err) < 0)
		imap_mailbox_error(s, cmd, "delete", err);
	else
		imap_tagged(s, cmd, "OK Delete completed");
out:
	free(name);
	return IMAP_CMD_DONE;
}

/* Keeps the selected folder's name right when it, or a parent, was renamed
 * (renaming INBOX moves its messages but INBOX stays). */
static int view_follow_rename(struct imap_session *s, const char *from, const char *to)
{
	struct imap_view *v = s->view;

	if (v == NULL || strcmp(from, "INBOX") == 0)
		return 0;
	if (strcmp(v->folder, from) != 0 && !list_name_is_under(v->folder, from))
		return 0;
	size_t from_len = strlen(from), to_len = strlen(to), rest = strlen(v->folder) - from_len;
	char *name = malloc(to_len + rest + 1);
	if (name == NULL)
		return -1;
	memcpy(name, to, to_len);
	memcpy(name + to_len, v->folder + from_len, rest + 1);
	free(v->folder);
	v->folder = name;
	return 0;
}

IMAP_HANDLER(cmd_rename)
{
	enum tern_error err = TERN_ERR_NONE;
	char *from = NULL, *to = NULL;
	const char *bad = NULL;

	if (cmd->arg_count != 2) {
		imap_bad(s, cmd, "RENAME needs two mailbox names");
		return IMAP_CMD_DONE;
	}
	from = imap_mailbox_arg(s, cmd, &cmd->args[0]);
	if (from != NULL)
		to = imap_mailbox_arg(s, cmd, &cmd->args[1]);
	if (to == NULL)
		goto out;
	if (strcmp(to, "INBOX") == 0)
		imap_tagged(s, cmd, "NO [ALREADYEXISTS] INBOX always exists");
	else if (!imap_folder_name_valid(to, strlen(to), &bad))
		imap_tagged(s, cmd, "NO [CANNOT] %s", bad);
	else if (store_folder_rename(s->store, from, to, &err) < 0)
		imap_mailbox_error(s, cmd, "rename", err);
	else if (view_follow_rename(s, from, to) < 0)
		imap_store_error(s, cmd, "rename", TERN_ERR_NOMEM);
	else
		imap_tagged(s, cmd, "OK Rename completed");
out:
	free(from);
	free(to);
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_subscribe)
{
	bool subscribe = strcmp(cmd->name, "SUBSCRIBE") == 0;
	enum tern_error err = TERN_ERR_NONE;

	if (cmd->arg_count != 1) {
		imap_bad(s, cmd, "Mailbox name expected");
		return IMAP_CMD_DONE;
	}
	char *name = imap_mailbox_arg(s, cmd, &cmd->args[0]);
	if (name == NULL)
		return IMAP_CMD_DONE;
	/* RFC 3501 §6.3.6 lets a name be subscribed whether or not it exists. */
	if (store_folder_subscribe(s->store, name, subscribe, &err) < 0)
		imap_mailbox_error(s, cmd, subscribe ? "subscribe" : "unsubscribe", err);
	else
		imap_tagged(s, cmd, subscribe ? "OK Subscribe completed" :
						"OK Unsubscribe completed");
	free(name);
	return IMAP_CMD_DONE;
}
