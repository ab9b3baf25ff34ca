/* COPY, MOVE and their UID forms (RFC 3501 §6.4.7, MOVE RFC 6851, COPYUID
 * from UIDPLUS RFC 4315 §3). store_copy does the whole set in one
 * transaction, so a MOVE never leaves a message in both folders or neither. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/commands.h"
#include "proto/imap/quota.h"
#include "proto/imap/seqset.h"
#include "proto/imap/store-write.h"
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

/* The copy, on the user's worker, and what it gives back to the loop. */
struct copy_write {
	char *folder, *dest;
	uint32_t *uids;
	size_t count;
	bool move;
	uint64_t quota;          /* the user's limit for a copy, 0 = none */
	uint32_t *src, *dst, uidvalidity;
	size_t copied;
};

static void copy_write_free(struct copy_write *w)
{
	free(w->folder);
	free(w->dest);
	free(w->uids);
	free(w->src);
	free(w->dst);
	free(w);
}

static int copy_write_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct copy_write *w = arg;
	/* The store counts the quota inside the copy's transaction; the
	 * worker's handle also writes deliveries, which carry their own
	 * limit, so it goes back to none afterwards. */
	store_set_quota(st, w->quota);
	int r = store_copy(st, w->folder, w->uids, w->count, w->dest, w->move, &w->src, &w->dst,
			   &w->copied, &w->uidvalidity, err_r);
	store_set_quota(st, 0);
	return r;
}

static void copy_write_done(struct imap_session *s, struct imap_cmd *cmd, void *arg, int result,
			    enum tern_error err, bool closing)
{
	struct copy_write *w = arg;
	if (result == 0 && w->copied > 0)
		imap_notify_changed(s);
	if (closing) {
		/* the client is gone; the copy is made all the same */
	} else if (result < 0 && err == TERN_ERR_NOTFOUND) {
		imap_tagged(s, cmd, "NO [TRYCREATE] Mailbox doesn't exist");
	} else if (result < 0) {
		imap_store_error(s, cmd, w->move ? "MOVE" : "COPY", err);
	} else if (w->copied == 0) {
		/* every message of the set was expunged by another session since
		 * this one last heard: an OK would claim a copy that was not made
		 * (with some left, those are copied: RFC 2180 §4.4.1) */
		imap_tagged(s, cmd, "NO [EXPUNGEISSUED] The messages no longer exist");
	} else {
		reply_copied(s, cmd, w->move, w->uidvalidity, w->src, w->dst, w->copied);
	}
	copy_write_free(w);
}

IMAP_HANDLER(cmd_copy)
{
	bool move = strcmp(cmd->name, "MOVE") == 0;
	const char *name, *bad = NULL;
	size_t name_len;
	char *dest = NULL;
	uint32_t *uids = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;
	struct copy_write *w = NULL;

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
	if (count == 0) {
		/* nothing to write: answered as an empty copy */
		reply_copied(s, cmd, move, 0, NULL, NULL, 0);
		goto out;
	}
	/* A move adds nothing and is never refused, so a full mailbox can be
	 * cleaned up. The limit is read here, the usage inside the copy. */
	uint64_t limit = 0, used;
	if (!move && imap_quota_get(s, &limit, &used, &err) < 0) {
		imap_store_error(s, cmd, "copy quota", err);
		goto out;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL || (w->folder = strdup(s->view->folder)) == NULL) {
		imap_store_error(s, cmd, move ? "MOVE" : "COPY", TERN_ERR_NOMEM);
		goto out;
	}
	w->dest = dest;
	w->uids = uids;
	w->count = count;
	w->move = move;
	w->quota = limit;
	return imap_store_write(s, cmd, copy_write_run, w, copy_write_done);
out:
	if (w != NULL)
		free(w->folder);
	free(w);
	free(dest);
	free(uids);
	return IMAP_CMD_DONE;
}
