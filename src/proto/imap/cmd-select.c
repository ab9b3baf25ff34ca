/* Selecting and leaving a folder: SELECT/EXAMINE (RFC 3501 §6.3.1-2, with
 * the CONDSTORE and QRESYNC parameters of RFC 7162 §3.1.8 and §3.2.5, and
 * IMAP4rev2's forms of their answers, RFC 9051 §6.3.2-3),
 * CLOSE, UNSELECT (RFC 3691) and EXPUNGE / UID EXPUNGE (RFC 4315 §2.1). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "core/log.h"
#include "proto/imap/commands.h"
#include "proto/imap/list-match.h"
#include "proto/imap/seqset.h"
#include "proto/imap/store-write.h"
#include "store/store.h"

struct qresync_args {
	bool given;
	uint32_t uidvalidity;
	uint64_t modseq;
	struct imap_seqset *known;   /* NULL = all UIDs */
};

/* (QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])) */
static int parse_qresync(const struct imap_arg *a, struct qresync_args *q, const char **bad_r)
{
	const struct imap_arg *l;
	size_t n;
	const char *text;
	if (!imap_arg_list(a, &l, &n) || n < 2 || n > 4 || !imap_arg_u32(&l[0], &q->uidvalidity) ||
	    q->uidvalidity == 0 || !imap_arg_u64(&l[1], &q->modseq) || q->modseq > INT64_MAX) {
		*bad_r = "Invalid QRESYNC parameters";
		return -1;
	}
	size_t next = 2;
	if (n > next && l[next].type == IMAP_ARG_ATOM) {
		if (!imap_arg_atom(&l[next], &text) ||
		    imap_seqset_parse(text, strlen(text), &q->known) < 0 ||
		    imap_seqset_is_saved(q->known) || imap_seqset_has_star(q->known)) {
			/* RFC 7162 §7: known-uids is a sequence-set without "*" */
			*bad_r = "Invalid QRESYNC known-uids";
			return -1;
		}
		next++;
	}
	/* the sequence match data only helps servers without tombstones: we
	 * know exactly what vanished, so it is checked for syntax and unused */
	if (n > next) {
		const struct imap_arg *m;
		size_t mn;
		if (next + 1 != n || !imap_arg_list(&l[next], &m, &mn) || mn != 2 ||
		    m[0].type != IMAP_ARG_ATOM || m[1].type != IMAP_ARG_ATOM) {
			*bad_r = "Invalid QRESYNC sequence match data";
			return -1;
		}
	}
	q->given = true;
	return 0;
}

static int parse_select_params(struct imap_session *s, const struct imap_cmd *cmd,
			       struct qresync_args *q, const char **bad_r)
{
	const struct imap_arg *l;
	size_t n;
	if (cmd->arg_count == 1)
		return 0;
	if (cmd->arg_count != 2 || !imap_arg_list(&cmd->args[1], &l, &n)) {
		*bad_r = "Invalid arguments";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (imap_arg_is_atom_ci(&l[i], "CONDSTORE")) {
			s->condstore = true;     /* RFC 7162 §3.1.8 */
		} else if (imap_arg_is_atom_ci(&l[i], "QRESYNC") && i + 1 < n) {
			if (!s->qresync) {
				*bad_r = "QRESYNC not enabled";
				return -1;
			}
			if (parse_qresync(&l[++i], q, bad_r) < 0)
				return -1;
		} else {
			*bad_r = "Unknown SELECT parameter";
			return -1;
		}
	}
	return 0;
}

/* RFC 8474 §4.1: "* OK [MAILBOXID (id)]" on SELECT and EXAMINE. Read
 * apart from the view (one row); the folder, if renamed and replaced since
 * the view was loaded, is told by its UIDVALIDITY, and then nothing is
 * sent rather than another folder's id. */
static void write_mailboxid(struct imap_session *s)
{
	const struct imap_view *v = s->view;
	struct store_folder f;
	enum tern_error err;
	if (store_folder_get(s->store, v->folder, &f, &err) <= 0)
		return;
	if (f.uidvalidity == v->uidvalidity && f.mailboxid[0] != '\0')
		imap_untagged(s, "OK [MAILBOXID (%s)] Ok", f.mailboxid);
	store_folder_clear(&f);
}

/* RFC 9051 §6.3.2: in IMAP4rev2, SELECT and EXAMINE answer a LIST response
 * for the mailbox, under its own name ("inbox" comes back as INBOX), with
 * the attributes LIST gives it (children, special use). Without the folder
 * list (a read error) the attributes are left out, which says nothing
 * false. */
static void write_select_list(struct imap_session *s)
{
	const char *folder = s->view->folder;
	size_t len = strlen(folder);
	struct store_folder *folders = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;
	const char *children = NULL, *special = NULL;
	if (store_folder_list(s->store, &folders, &count, &err) < 0) {
		log_warn("imap: user=%s, rip=%s: listing folders for SELECT failed: %s", s->user,
			 s->conn->peer_addr, tern_error_str(err));
		count = 0;
	} else {
		children = "\\HasNoChildren";
	}
	for (size_t i = 0; i < count; i++) {
		const char *name = folders[i].name;
		if (strcmp(name, folder) == 0)
			special = folders[i].special_use;
		else if (strncmp(name, folder, len) == 0 && name[len] == LIST_SEPARATOR)
			children = "\\HasChildren";
	}
	imap_out_printf(s, "* LIST (%s%s%s) \"/\" ", children != NULL ? children : "",
			children != NULL && special != NULL ? " " : "", special != NULL ? special : "");
	imap_out_check(s, imap_name_write(s, imap_out(s), folder));
	imap_out_add(s, "\r\n", 2);
	store_folders_free(&folders, count);
}

static void write_select_untagged(struct imap_session *s)
{
	const struct imap_view *v = s->view;
	s->view->keywords_pending = true;
	imap_view_announce_keywords(s);
	imap_untagged(s, "%zu EXISTS", v->count);
	/* RFC 9051 removed the RECENT response and the UNSEEN code (its
	 * appendix E): a rev2 client learns the unseen by SEARCH or STATUS */
	if (!s->imap4rev2) {
		imap_untagged(s, "%zu RECENT", imap_view_recent_count(v));
		for (size_t i = 0; i < v->count; i++) {
			if ((v->msgs[i].flags & STORE_FLAG_SEEN) == 0) {
				imap_untagged(s, "OK [UNSEEN %zu] First unseen.", i + 1);
				break;
			}
		}
	}
	imap_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", v->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %u] Predicted next UID", v->uidnext);
	imap_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest", (unsigned long long)v->highestmodseq);
	write_mailboxid(s);
	if (s->imap4rev2)
		write_select_list(s);
}

/* RFC 7162 §3.2.5.1: what changed since the client's modseq. */
static int qresync_report(struct imap_session *s, const struct qresync_args *q,
			  enum tern_error *err_r)
{
	const struct imap_view *v = s->view;
	struct store_changes ch;
	if (q->uidvalidity != v->uidvalidity)
		return 0;    /* the client's cache is void: a full resync follows */
	if (q->modseq > 0) {
		if (store_changes_since(s->store, v->folder, q->modseq, &ch, err_r) < 0)
			return -1;
		if (q->known != NULL && imap_seqset_resolve(q->known, v->uidnext) < 0) {
			store_changes_clear(&ch);
			*err_r = TERN_ERR_NOMEM;
			return -1;
		}
		/* only UIDs the view does not show: a later expunge is the next sync's */
		size_t n = 0;
		for (size_t i = 0; i < ch.vanished_count; i++) {
			uint32_t uid = ch.vanished[i];
			if (imap_view_seq(v, uid) == 0 &&
			    (q->known == NULL || imap_seqset_contains(q->known, uid)))
				ch.vanished[n++] = uid;
		}
		if (n > 0) {
			imap_out_add(s, "* VANISHED (EARLIER) ", 21);
			imap_out_check(s, imap_seqset_write(imap_out(s), ch.vanished, n));
			imap_out_add(s, "\r\n", 2);
		}
		store_changes_clear(&ch);
	}
	for (size_t i = 0; i < v->count && !imap_out_failed(s); i++) {
		const struct imap_view_msg *m = &v->msgs[i];
		if (m->modseq <= q->modseq)
			continue;
		imap_out_printf(s, "* %zu FETCH (UID %u FLAGS ", i + 1, m->uid);
		uint32_t flags = imap_view_flags_out(v, m->uid, m->flags);
		imap_out_check(s, imap_flags_write(imap_out(s), flags, m->keywords));
		imap_out_printf(s, " MODSEQ (%llu))\r\n", (unsigned long long)m->modseq);
	}
	return 0;
}

/* The rest of SELECT once the view is open (and \Recent claimed): the
 * untagged state, QRESYNC's changes, the tagged OK. */
static void select_finish(struct imap_session *s, const struct imap_cmd *cmd,
			  const struct qresync_args *q)
{
	enum tern_error err = TERN_ERR_NONE;
	bool readonly = s->view->readonly;
	write_select_untagged(s);
	if (q->given && qresync_report(s, q, &err) < 0) {
		imap_view_close(s);
		imap_store_error(s, cmd, "select", err);
		return;
	}
	imap_tagged(s, cmd, readonly ? "OK [READ-ONLY] Examine completed"
				     : "OK [READ-WRITE] Select completed");
}

/* SELECT's \Recent claim (RFC 3501 §2.3.2) is a write: it moves the
 * folder's mark, so it runs on the user's worker like every other write,
 * and the reply, which counts the recent messages, waits for it. */
struct select_claim {
	char *folder;
	struct qresync_args q;
	uint32_t first, next;
};

static void select_claim_free(struct select_claim *w)
{
	imap_seqset_free(&w->q.known);
	free(w->folder);
	free(w);
}

static int select_claim_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct select_claim *w = arg;
	return store_folder_claim_recent(st, w->folder, &w->first, &w->next, err_r);
}

static void select_claim_done(struct imap_session *s, struct imap_cmd *cmd, void *arg,
			      int result, enum tern_error err, bool closing)
{
	struct select_claim *w = arg;
	(void)err;   /* \Recent is advisory: a failed claim only loses the flag */
	if (!closing && s->view != NULL) {
		if (result > 0)
			imap_view_add_recent(s->view, w->first, w->next);
		select_finish(s, cmd, &w->q);
	}
	select_claim_free(w);
}

IMAP_HANDLER(cmd_select)
{
	bool readonly = strcmp(cmd->name, "EXAMINE") == 0;
	struct qresync_args q = {0};
	const char *name, *bad = NULL;
	size_t len;
	enum tern_error err = TERN_ERR_NONE;
	if (cmd->arg_count < 1 || !imap_arg_astring(&cmd->args[0], &name, &len) ||
	    parse_select_params(s, cmd, &q, &bad) < 0) {
		imap_bad(s, cmd, bad != NULL ? bad : "Invalid arguments");
		imap_seqset_free(&q.known);
		return IMAP_CMD_DONE;
	}
	char *folder = imap_name_from_wire(s, name, len, &bad);
	if (folder == NULL) {
		imap_tagged(s, cmd, "NO %s", bad);
		return IMAP_CMD_DONE;
	}
	if (s->view != NULL) {
		/* RFC 7162 §3.2.11: the old mailbox's changes end here */
		imap_view_close(s);
		imap_untagged(s, "OK [CLOSED] Previous mailbox closed.");
	}
	/* the claim comes after, on the worker; EXAMINE only looks */
	int found = imap_view_load(s, folder, readonly, &err);
	if (found == 0)
		imap_tagged(s, cmd, "NO [NONEXISTENT] Mailbox doesn't exist");
	else if (found < 0)
		imap_store_error(s, cmd, "select", err);
	if (found <= 0) {
		free(folder);
		imap_seqset_free(&q.known);
		return IMAP_CMD_DONE;
	}
	/* an IMAP4rev2 session has no \Recent to claim (RFC 9051) */
	struct select_claim *w = readonly || s->imap4rev2 ? NULL : calloc(1, sizeof(*w));
	if (w == NULL) {
		/* EXAMINE, which counts the unclaimed messages as recent
		 * without claiming them (RFC 3501 §6.3.2); IMAP4rev2; or out
		 * of memory, which costs only the flag */
		if (readonly)
			imap_view_claim_recent(s);
		free(folder);
		select_finish(s, cmd, &q);
		imap_seqset_free(&q.known);
		return IMAP_CMD_DONE;
	}
	w->folder = folder;
	w->q = q;
	return imap_store_write(s, cmd, select_claim_run, w, select_claim_done);
}

/* EXPUNGE, UID EXPUNGE and CLOSE's implicit expunge, on the user's worker. */
struct expunge_write {
	char *folder;
	uint32_t *uids;          /* NULL = every message with \Deleted */
	size_t count;
	uint32_t *expunged;      /* what went, ascending */
	size_t expunged_count;
};

static void expunge_write_free(struct expunge_write *w)
{
	free(w->expunged);
	free(w->uids);
	free(w->folder);
	free(w);
}

/* Takes uids; NULL (uids freed) when out of memory. */
static struct expunge_write *expunge_write_new(const char *folder, uint32_t *uids, size_t count)
{
	struct expunge_write *w = calloc(1, sizeof(*w));
	if (w == NULL || (w->folder = strdup(folder)) == NULL) {
		free(w);
		free(uids);
		return NULL;
	}
	w->uids = uids;
	w->count = count;
	return w;
}

static int expunge_write_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct expunge_write *w = arg;
	return store_expunge(st, w->folder, w->uids, w->count, &w->expunged, &w->expunged_count,
			     err_r);
}

static void close_done(struct imap_session *s, struct imap_cmd *cmd, void *arg, int result,
		       enum tern_error err, bool closing)
{
	struct expunge_write *w = arg;
	if (result == 0 && w->expunged_count > 0)
		imap_notify_changed(s);
	if (!closing) {
		/* closed whatever the expunge gave, as RFC 3501 §6.4.2 has it */
		imap_view_close(s);
		if (result < 0)
			imap_store_error(s, cmd, "expunge on close", err);
		else
			imap_tagged(s, cmd, "OK Close completed");
	}
	expunge_write_free(w);
}

IMAP_HANDLER(cmd_close)
{
	/* RFC 3501 §6.4.2: silently expunge, unless the folder was EXAMINEd */
	if (s->view->readonly) {
		imap_view_close(s);
		imap_tagged(s, cmd, "OK Close completed");
		return IMAP_CMD_DONE;
	}
	struct expunge_write *w = expunge_write_new(s->view->folder, NULL, 0);
	if (w == NULL) {
		imap_view_close(s);
		imap_store_error(s, cmd, "expunge on close", TERN_ERR_NOMEM);
		return IMAP_CMD_DONE;
	}
	return imap_store_write(s, cmd, expunge_write_run, w, close_done);
}

IMAP_HANDLER(cmd_unselect)
{
	if (cmd->arg_count != 0) {
		imap_bad(s, cmd, "Invalid arguments");
		return IMAP_CMD_DONE;
	}
	imap_view_close(s);
	imap_tagged(s, cmd, "OK Unselect completed");
	return IMAP_CMD_DONE;
}

/* UID EXPUNGE: the named messages that have \Deleted now (RFC 4315 §2.1).
 * The view is brought up to date first so its flags are current. */
static int deleted_in_set(struct imap_session *s, const struct imap_cmd *cmd, uint32_t **uids_r,
			  size_t *count_r, enum tern_error *err_r, const char **bad_r)
{
	uint32_t *uids;
	size_t count, n = 0;
	if (imap_view_sync(s, true, err_r) < 0)
		return -1;
	if (imap_view_resolve(s, &cmd->args[0], true, &uids, &count, bad_r) < 0)
		return -2;
	for (size_t i = 0; i < count; i++) {
		uint32_t seq = imap_view_seq(s->view, uids[i]);
		if (seq != 0 && (s->view->msgs[seq - 1].flags & STORE_FLAG_DELETED) != 0)
			uids[n++] = uids[i];
	}
	*uids_r = uids;
	*count_r = n;
	return 0;
}

/* The tagged reply, after the view took the expunges. */
static void expunge_reply(struct imap_session *s, const struct imap_cmd *cmd)
{
	enum tern_error err = TERN_ERR_NONE;
	if (s->condstore) {
		/* the tagged reply carries the modseq after our own change */
		if (imap_view_sync(s, true, &err) < 0) {
			imap_store_error(s, cmd, "expunge", err);
			return;
		}
		imap_tagged(s, cmd, "OK [HIGHESTMODSEQ %llu] Expunge completed",
			    (unsigned long long)s->view->highestmodseq);
		return;
	}
	imap_tagged(s, cmd, "OK Expunge completed");
}

static void expunge_done(struct imap_session *s, struct imap_cmd *cmd, void *arg, int result,
			 enum tern_error err, bool closing)
{
	struct expunge_write *w = arg;
	if (!closing && result == 0)
		imap_view_expunged(s, w->expunged, w->expunged_count);
	if (result == 0 && w->expunged_count > 0)
		imap_notify_changed(s);
	if (!closing) {
		if (result < 0)
			imap_store_error(s, cmd, "expunge", err);
		else
			expunge_reply(s, cmd);
	}
	expunge_write_free(w);
}

IMAP_HANDLER(cmd_expunge)
{
	enum tern_error err = TERN_ERR_NONE;
	const char *bad = "Invalid arguments";
	uint32_t *uids = NULL;
	size_t count = 0;
	if (cmd->arg_count != (cmd->uid ? 1u : 0u)) {
		imap_bad(s, cmd, bad);
		return IMAP_CMD_DONE;
	}
	if (s->view->readonly) {
		imap_tagged(s, cmd, "NO [READ-ONLY] Mailbox is read-only");
		return IMAP_CMD_DONE;
	}
	if (cmd->uid) {
		int r = deleted_in_set(s, cmd, &uids, &count, &err, &bad);
		if (r == -2) {
			imap_bad(s, cmd, bad);
			return IMAP_CMD_DONE;
		}
		if (r < 0) {
			imap_store_error(s, cmd, "expunge", err);
			return IMAP_CMD_DONE;
		}
		if (count == 0) {
			free(uids);
			expunge_reply(s, cmd);
			return IMAP_CMD_DONE;
		}
	}
	struct expunge_write *w = expunge_write_new(s->view->folder, uids, count);
	if (w == NULL) {
		imap_store_error(s, cmd, "expunge", TERN_ERR_NOMEM);
		return IMAP_CMD_DONE;
	}
	return imap_store_write(s, cmd, expunge_write_run, w, expunge_done);
}
