/* CREATE, DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE (RFC 3501 §6.3.3-6.3.7),
 * CREATE's USE option (RFC 6154 §3), and the mailbox helpers of mailbox.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/imap/commands.h"
#include "proto/imap/list-match.h"
#include "proto/imap/mailbox.h"
#include "proto/imap/store-write.h"
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

/* One folder change, made on the user's worker. */
struct mailbox_write {
	char *name;
	char *to;                /* RENAME's new name */
	const char *use;         /* CREATE's special use (static), or NULL */
	bool subscribe;
	const char *operation;   /* for the log */
	const char *ok;          /* the tagged OK */
	char mailboxid[STORE_OBJECTID_SIZE]; /* CREATE's new MAILBOXID (RFC 8474) */
};

static void mailbox_write_free(struct mailbox_write *w)
{
	free(w->name);
	free(w->to);
	free(w);
}

/* Takes name; NULL (name freed, NO sent) when out of memory. */
static struct mailbox_write *mailbox_write_new(struct imap_session *s, const struct imap_cmd *cmd,
					       char *name, const char *operation, const char *ok)
{
	struct mailbox_write *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		free(name);
		imap_store_error(s, cmd, operation, TERN_ERR_NOMEM);
		return NULL;
	}
	w->name = name;
	w->operation = operation;
	w->ok = ok;
	return w;
}

static int create_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct mailbox_write *w = arg;
	return store_folder_create_id(st, w->name, w->use, w->mailboxid, err_r);
}

static int delete_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct mailbox_write *w = arg;
	return store_folder_delete(st, w->name, err_r);
}

static int rename_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct mailbox_write *w = arg;
	return store_folder_rename(st, w->name, w->to, err_r);
}

static int subscribe_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct mailbox_write *w = arg;
	return store_folder_subscribe(st, w->name, w->subscribe, err_r);
}

static void mailbox_write_done(struct imap_session *s, struct imap_cmd *cmd, void *arg,
			       int result, enum tern_error err, bool closing)
{
	struct mailbox_write *w = arg;
	if (closing) {
		/* the client is gone; the change is made all the same */
	} else if (result < 0) {
		imap_mailbox_error(s, cmd, w->operation, err);
	} else if (w->to != NULL && view_follow_rename(s, w->name, w->to) < 0) {
		/* before the reply: its sync reads the view's folder by name */
		imap_store_error(s, cmd, w->operation, TERN_ERR_NOMEM);
	} else {
		imap_notify_changed(s);   /* NOTIFY sessions report names, subscriptions */
		if (w->mailboxid[0] != '\0')   /* RFC 8474 §4.1 */
			imap_tagged(s, cmd, "OK [MAILBOXID (%s)] %s", w->mailboxid, w->ok + 3);
		else
			imap_tagged(s, cmd, "%s", w->ok);
	}
	mailbox_write_free(w);
}

IMAP_HANDLER(cmd_create)
{
	const char *wire, *use = NULL, *bad = NULL;
	size_t len;

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
	if (strcmp(name, "INBOX") == 0) {
		imap_tagged(s, cmd, "NO [ALREADYEXISTS] INBOX always exists");
	} else if (!imap_folder_name_valid(name, strlen(name), &bad)) {
		imap_tagged(s, cmd, "NO [CANNOT] %s", bad);
	} else {
		struct mailbox_write *w = mailbox_write_new(s, cmd, name, "create",
							    "OK Create completed");
		if (w == NULL)
			return IMAP_CMD_DONE;
		w->use = use;
		return imap_store_write(s, cmd, create_run, w, mailbox_write_done);
	}
	free(name);
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_delete)
{
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
	struct mailbox_write *w = mailbox_write_new(s, cmd, name, "delete", "OK Delete completed");
	if (w == NULL)
		return IMAP_CMD_DONE;
	return imap_store_write(s, cmd, delete_run, w, mailbox_write_done);
out:
	free(name);
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_rename)
{
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
	if (strcmp(to, "INBOX") == 0) {
		imap_tagged(s, cmd, "NO [ALREADYEXISTS] INBOX always exists");
	} else if (!imap_folder_name_valid(to, strlen(to), &bad)) {
		imap_tagged(s, cmd, "NO [CANNOT] %s", bad);
	} else {
		struct mailbox_write *w = mailbox_write_new(s, cmd, from, "rename",
							    "OK Rename completed");
		if (w == NULL) {
			free(to);
			return IMAP_CMD_DONE;
		}
		w->to = to;
		return imap_store_write(s, cmd, rename_run, w, mailbox_write_done);
	}
out:
	free(from);
	free(to);
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_subscribe)
{
	bool subscribe = strcmp(cmd->name, "SUBSCRIBE") == 0;

	if (cmd->arg_count != 1) {
		imap_bad(s, cmd, "Mailbox name expected");
		return IMAP_CMD_DONE;
	}
	char *name = imap_mailbox_arg(s, cmd, &cmd->args[0]);
	if (name == NULL)
		return IMAP_CMD_DONE;
	/* RFC 3501 §6.3.6 lets a name be subscribed whether or not it exists. */
	struct mailbox_write *w =
		mailbox_write_new(s, cmd, name, subscribe ? "subscribe" : "unsubscribe",
				  subscribe ? "OK Subscribe completed" : "OK Unsubscribe completed");
	if (w == NULL)
		return IMAP_CMD_DONE;
	w->subscribe = subscribe;
	return imap_store_write(s, cmd, subscribe_run, w, mailbox_write_done);
}
