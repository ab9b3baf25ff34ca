/* COPY, MOVE and their UID forms (RFC 3501 §6.4.7, MOVE RFC 6851, COPYUID
 * from UIDPLUS RFC 4315 §3). store_copy does the whole set in one
 * transaction, so a MOVE never leaves a message in both folders or neither. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/commands.h"
#include "proto/imap/quota.h"
#include "proto/imap/seqset.h"
#include "store/store.h"

/* "uidvalidity src-set dst-set"; NULL when out of memory. */
static char *copyuid(uint32_t uidvalidity, const uint32_t *src, const uint32_t *dst, size_t n)
{
	char *a = imap_seqset_format(src, n), *b = imap_seqset_format(dst, n), *r = NULL;
	if (a != NULL && b != NULL && asprintf(&r, "%u %s %s", uidvalidity, a, b) < 0)
		r = NULL;
	free(a);
	free(b);
	return r;
}

static void reply_copied(struct imap_session *s, const struct imap_cmd *cmd, bool move,
			 uint32_t uidvalidity, const uint32_t *src, const uint32_t *dst, size_t n)
{
	char *code = n > 0 ? copyuid(uidvalidity, src, dst, n) : NULL;
	if (!move) {
		if (code != NULL)
			imap_tagged(s, cmd, "OK [COPYUID %s] Copy completed", code);
		else
			imap_tagged(s, cmd, "OK Copy completed");
		free(code);
		return;
	}
	/* RFC 6851 §4.3: COPYUID goes untagged, before the expunges */
	if (code != NULL)
		imap_untagged(s, "OK [COPYUID %s] Moved UIDs", code);
	free(code);
	imap_view_expunged(s, src, n);
	imap_tagged(s, cmd, "OK Move completed");
}

IMAP_HANDLER(cmd_copy)
{
	bool move = strcmp(cmd->name, "MOVE") == 0;
	const char *name, *bad = NULL;
	size_t name_len;
	char *dest = NULL;
	uint32_t *uids = NULL, *src = NULL, *dst = NULL, uidvalidity = 0;
	size_t count = 0, copied = 0;
	enum tern_error err = TERN_ERR_NONE;

	if (cmd->arg_count != 2 || !imap_arg_astring(&cmd->args[1], &name, &name_len))
		bad = "Invalid arguments";
	else if ((dest = imap_name_from_wire(s, name, name_len, &bad)) == NULL && bad == NULL)
		bad = "Invalid mailbox name";
	if (bad == NULL && imap_view_resolve(s, &cmd->args[0], cmd->uid, &uids, &count, &bad) < 0 &&
	    bad == NULL)
		bad = "Invalid messageset";
	if (bad != NULL) {
		imap_bad(s, cmd, bad);
		goto out;
	}
	if (move && s->view->readonly) {
		imap_tagged(s, cmd, "NO [READ-ONLY] Mailbox is read-only");
		goto out;
	}
	/* The store counts the quota inside the copy's transaction (a move adds
	 * nothing and is never refused, so a full mailbox can be cleaned up). */
	uint64_t limit = 0, used;
	if (!move && count > 0 && imap_quota_get(s, &limit, &used, &err) < 0) {
		imap_store_error(s, cmd, "copy quota", err);
		goto out;
	}
	store_set_quota(s->store, limit);
	int copy_r = count > 0 ? store_copy(s->store, s->view->folder, uids, count, dest, move,
					    &src, &dst, &copied, &uidvalidity, &err)
			       : 0;
	store_set_quota(s->store, 0);
	if (copy_r < 0) {
		if (err == TERN_ERR_NOTFOUND)
			imap_tagged(s, cmd, "NO [TRYCREATE] Mailbox doesn't exist");
		else
			imap_store_error(s, cmd, move ? "MOVE" : "COPY", err);
		goto out;
	}
	if (copied > 0)
		imap_notify_changed(s);
	reply_copied(s, cmd, move, uidvalidity, src, dst, copied);
out:
	free(dest);
	free(uids);
	free(src);
	free(dst);
	return IMAP_CMD_DONE;
}
