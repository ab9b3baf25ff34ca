/* STORE and UID STORE (RFC 3501 §6.4.6) with the CONDSTORE modifier
 * (UNCHANGEDSINCE n) of RFC 7162 §3.1.3. One store_flags_update call does the
 * whole set in one transaction; the answer is built from the new state it
 * returns, so no message is read twice. */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/imap/commands.h"
#include "proto/imap/seqset.h"
#include "proto/imap/store-write.h"
#include "store/store.h"

struct store_req {
	enum store_flag_op op;
	bool silent;
	bool unchangedsince_given;
	uint64_t unchangedsince;
	uint32_t flags;
	char *keywords;
	bool too_many_keywords;    /* more than one message may have */
};

/* "[+-]FLAGS[.SILENT]" */
static bool parse_item(const char *s, struct store_req *r)
{
	r->op = STORE_FLAGS_SET;
	if (*s == '+' || *s == '-') {
		r->op = *s == '+' ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE;
		s++;
	}
	if (strncasecmp(s, "FLAGS", 5) != 0)
		return false;
	s += 5;
	r->silent = strcasecmp(s, ".SILENT") == 0;
	return *s == '\0' || r->silent;
}

/* "(UNCHANGEDSINCE n)" */
static bool parse_modifiers(const struct imap_arg *a, struct store_req *r)
{
	const struct imap_arg *list;
	size_t n;
	if (!imap_arg_list(a, &list, &n) || n != 2 || !imap_arg_is_atom_ci(&list[0], "UNCHANGEDSINCE") ||
	    !imap_arg_u64(&list[1], &r->unchangedsince) || r->unchangedsince > INT64_MAX)
		return false;   /* RFC 7162 §7: mod-sequence-value is at most 2^63-1 */
	r->unchangedsince_given = true;
	return true;
}

/* Everything after the sequence set; NULL or the BAD text. */
static const char *parse_args(const struct imap_cmd *cmd, struct store_req *r)
{
	size_t i = 1;
	const char *item;
	if (i < cmd->arg_count && cmd->args[i].type == IMAP_ARG_LIST) {
		if (!parse_modifiers(&cmd->args[i], r))
			return "Invalid STORE modifier";
		i++;
	}
	if (i + 1 >= cmd->arg_count || !imap_arg_atom(&cmd->args[i], &item) ||
	    !parse_item(item, r))
		return "Invalid STORE item";
	i++;
	/* flag-list, or flags as separate arguments (RFC 3501 §9 store-att-flags) */
	struct imap_arg spread = {
		.type = IMAP_ARG_LIST, .list = &cmd->args[i], .list_count = cmd->arg_count - i,
	};
	const struct imap_arg *flags = cmd->arg_count - i == 1 ? &cmd->args[i] : &spread;
	const char *bad = NULL;
	int ret = imap_flags_parse(flags, &r->flags, &r->keywords, &bad);
	if (ret == IMAP_FLAGS_TOO_MANY_KEYWORDS)
		r->too_many_keywords = true;   /* well-formed, refused with NO */
	else if (ret < 0)
		return bad != NULL ? bad : "Invalid flags";
	return NULL;
}

/* "* n FETCH (...)" for one message after the change. */
static void report(struct imap_session *s, const struct imap_cmd *cmd, const struct store_req *r,
		   const struct store_msg *m, uint32_t seq)
{
	/* RFC 7162 §3.1: UID and MODSEQ in every FETCH once CONDSTORE is on */
	bool uid = cmd->uid || s->condstore;
	const char *sep = "";
	imap_out_printf(s, "* %" PRIu32 " FETCH (", seq);
	if (uid) {
		imap_out_printf(s, "UID %" PRIu32, m->uid);
		sep = " ";
	}
	if (!r->silent) {
		imap_out_printf(s, "%sFLAGS ", sep);
		uint32_t flags = imap_view_flags_out(s->view, m->uid, m->flags);
		imap_out_check(s, imap_flags_write(imap_out(s), flags, m->keywords));
		sep = " ";
	}
	if (s->condstore)
		imap_out_printf(s, "%sMODSEQ (%" PRIu64 ")", sep, m->modseq);
	imap_out_add(s, ")\r\n", 3);
}

static bool uid_in(const uint32_t *uids, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (uids[mid] == uid)
			return true;
		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Untagged FETCH for the new state. Without .SILENT every message is
 * reported; with it, RFC 7162 §3.1.3 still wants MODSEQ for each message
 * whose mod-sequence the client does not know yet. */
static void report_all(struct imap_session *s, const struct imap_cmd *cmd,
		       const struct store_req *r, const struct store_msg *msgs, size_t n,
		       const uint32_t *failed, size_t failed_count)
{
	struct imap_view *v = s->view;
	/* the new state first, so that FLAGS lists every keyword before a FETCH uses it */
	for (size_t i = 0; i < n; i++) {
		if (!uid_in(failed, failed_count, msgs[i].uid))
			imap_view_learn_keywords(v, msgs[i].keywords);
	}
	imap_view_announce_keywords(s);
	for (size_t i = 0; i < n; i++) {
		const struct store_msg *m = &msgs[i];
		uint32_t seq = imap_view_seq(v, m->uid);
		if (seq == 0 || uid_in(failed, failed_count, m->uid))
			continue;
		bool modseq_new = v->msgs[seq - 1].modseq != m->modseq;
		if (!r->silent || (s->condstore && modseq_new))
			report(s, cmd, r, m, seq);
		/* the client asked for this state, so it is not news at the next sync */
		imap_view_update_msg(v, m->uid, m->flags, m->keywords, m->modseq);
	}
}

/* "7,9" of the failed messages: UIDs for UID STORE, else sequence numbers. */
static char *modified_set(struct imap_session *s, const struct imap_cmd *cmd, uint32_t *failed,
			  size_t n)
{
	if (!cmd->uid) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			uint32_t seq = imap_view_seq(s->view, failed[i]);
			if (seq != 0)
				failed[k++] = seq;
		}
		n = k;
	}
	return imap_seqset_format(failed, n);
}

static void finish(struct imap_session *s, const struct imap_cmd *cmd, uint32_t *failed,
		   size_t failed_count)
{
	char *set = failed_count > 0 ? modified_set(s, cmd, failed, failed_count) : NULL;
	if (set != NULL && *set != '\0')
		imap_tagged(s, cmd, "OK [MODIFIED %s] Conditional STORE failed", set);
	else
		imap_tagged(s, cmd, "OK Store completed");
	free(set);
}

/* The write, on the user's worker, and what it gives back to the loop. */
struct store_write {
	struct store_req r;
	char *folder;
	uint32_t *uids;
	size_t count;
	struct store_msg *msgs;
	size_t msgs_count;
	uint32_t *failed;
	size_t failed_count;
};

static void store_write_free(struct store_write *w)
{
	store_msgs_free(&w->msgs, w->msgs_count);
	free(w->failed);
	free(w->uids);
	free(w->folder);
	free(w->r.keywords);
	free(w);
}

static int store_write_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct store_write *w = arg;
	return store_flags_update(st, w->folder, w->uids, w->count, w->r.op, w->r.flags,
				  w->r.keywords, w->r.unchangedsince, &w->msgs, &w->msgs_count,
				  &w->failed, &w->failed_count, err_r);
}

static void store_write_done(struct imap_session *s, struct imap_cmd *cmd, void *arg, int result,
			     enum tern_error err, bool closing)
{
	struct store_write *w = arg;
	if (closing) {
		/* the client is gone; its change is made all the same */
	} else if (result < 0) {
		/* TOOBIG from a flag update: a message would pass
		 * TERN_KEYWORDS_PER_MESSAGE_MAX; the client's doing, not logged */
		if (err == TERN_ERR_TOOBIG)
			imap_tagged(s, cmd, "NO [LIMIT] Too many keywords");
		else
			imap_store_error(s, cmd, "STORE", err);
	} else {
		report_all(s, cmd, &w->r, w->msgs, w->msgs_count, w->failed, w->failed_count);
		finish(s, cmd, w->failed, w->failed_count);
	}
	if (result == 0 && w->msgs_count > w->failed_count)
		imap_notify_changed(s);
	store_write_free(w);
}

IMAP_HANDLER(cmd_store)
{
	struct store_write *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		imap_store_error(s, cmd, "STORE", TERN_ERR_NOMEM);
		return IMAP_CMD_DONE;
	}
	struct store_req *r = &w->r;
	const char *bad = parse_args(cmd, r);
	if (bad == NULL && imap_view_resolve(s, &cmd->args[0], cmd->uid, &w->uids, &w->count, &bad) < 0 &&
	    bad == NULL)
		bad = "Invalid messageset";
	if (bad != NULL) {
		imap_bad(s, cmd, bad);
		goto out;
	}
	if (s->view->readonly) {
		imap_tagged(s, cmd, "NO [READ-ONLY] Mailbox is read-only");
		goto out;
	}
	/* RFC 5530 [LIMIT]: past a keyword limit, checked before the store is
	 * touched; only keywords the folder does not have yet count against
	 * its limit, and removing never does */
	if (r->too_many_keywords ||
	    (r->op != STORE_FLAGS_REMOVE && !imap_view_keywords_fit(s->view, r->keywords))) {
		imap_tagged(s, cmd, "NO [LIMIT] Too many keywords");
		goto out;
	}
	if (r->unchangedsince_given)
		s->condstore = true;   /* RFC 7162 §3.1: CONDSTORE-enabling */
	if (r->unchangedsince_given && r->unchangedsince == 0) {
		/* RFC 7162 §3.1.3: UNCHANGEDSINCE 0 fails for every existing
		 * message; the store reads 0 as "no condition" */
		finish(s, cmd, w->uids, w->count);
		goto out;
	}
	if (w->count == 0) {
		finish(s, cmd, NULL, 0);
		goto out;
	}
	if ((w->folder = strdup(s->view->folder)) == NULL) {
		imap_store_error(s, cmd, "STORE", TERN_ERR_NOMEM);
		goto out;
	}
	return imap_store_write(s, cmd, store_write_run, w, store_write_done);
out:
	store_write_free(w);
	return IMAP_CMD_DONE;
}
