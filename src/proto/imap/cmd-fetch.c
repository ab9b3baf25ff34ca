/* FETCH and UID FETCH (RFC 3501 §6.4.5, CONDSTORE/QRESYNC RFC 7162 §3.1.4,
 * §3.2.6). Metadata for many messages comes from one store_msg_list (or the
 * CHANGEDSINCE change list); bodies are read one message at a time and handed
 * to the output buffer by reference. When the client reads slower than we
 * produce, the command pauses until the output drains (conn_set_drain_hook),
 * so a whole-folder download never sits in memory at once. */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "proto/imap/commands.h"
#include "proto/imap/mailbox.h"
#include "proto/imap/fetch-parse.h"
#include "proto/imap/fetch-write.h"
#include "proto/imap/seqset.h"
#include "proto/imap/store-write.h"
#include "store/store.h"

/* Up to this many messages, one metadata query each beats listing the folder. */
#define FETCH_PER_MESSAGE_MAX 32

struct fetch_state {
	struct imap_session *s;
	struct imap_cmd *cmd;
	struct imap_fetch_request *req;
	struct imap_fetch_needs needs;
	uint32_t *uids;            /* requested, present in the view, ascending */
	size_t count, pos;
	struct store_msg *list;    /* bulk metadata, ascending UID; NULL: per message */
	size_t list_count, list_pos;
	bool list_is_changes;      /* CHANGEDSINCE: absent from list = unchanged */
	bool list_chunked;         /* list holds the next TERN_FETCH_LIST_CHUNK messages */
	bool list_more;            /* the last chunk was full: more may follow */
	uint32_t *seen_set;        /* UIDs whose \Seen this command set */
	size_t seen_count, seen_pos;
	/* the \Seen write, made on the user's worker before the responses */
	char *seen_folder;
	struct store_msg *seen_msgs;
	size_t seen_msgs_count;
	size_t view_cursor;        /* imap_view_seq_walk: uids are ascending */
	bool expunged;             /* a message vanished before it was sent */
	bool async;
};

static void fetch_state_free(void *p)
{
	struct fetch_state *f = p;
	if (f == NULL)
		return;
	imap_fetch_request_free(&f->req);
	free(f->uids);
	store_msgs_free(&f->list, f->list_count);
	free(f->seen_set);
	free(f->seen_folder);
	store_msgs_free(&f->seen_msgs, f->seen_msgs_count);
	free(f);
}

/* ---- before the loop ---- */

/* RFC 7162 §3.2.6: "* VANISHED (EARLIER)" for UIDs of the requested set
 * expunged after since. The set is taken as written (UIDs no longer in the
 * view are exactly the interesting ones). */
static int send_vanished(struct fetch_state *f, const struct store_changes *ch)
{
	const char *text;
	struct imap_seqset *set = NULL;
	if (ch->vanished_count == 0 || !imap_arg_atom(&f->cmd->args[0], &text) ||
	    imap_seqset_parse(text, strlen(text), &set) < 0)
		return 0;
	bool all = imap_seqset_is_saved(set);
	if (!all && imap_seqset_resolve(set, UINT32_MAX) < 0) {
		imap_seqset_free(&set);
		return -1;
	}
	uint32_t *uids = malloc(ch->vanished_count * sizeof(*uids));
	size_t n = 0;
	if (uids == NULL) {
		imap_seqset_free(&set);
		return -1;
	}
	for (size_t i = 0; i < ch->vanished_count; i++)
		if (all || imap_seqset_contains(set, ch->vanished[i]))
			uids[n++] = ch->vanished[i];
	imap_seqset_free(&set);
	if (n > 0) {
		imap_out_add(f->s, "* VANISHED (EARLIER) ", 21);
		imap_out_check(f->s, imap_seqset_write(imap_out(f->s), uids, n));
		imap_out_add(f->s, "\r\n", 2);
	}
	free(uids);
	return 0;
}

/* Sets \Seen on the requested messages the client knows as unseen, in one
 * transaction; their responses then carry FLAGS (RFC 3501 §6.4.5). */
/* The requested messages not yet \Seen, into f->seen_set: what the write
 * on the worker sets. 0 with none, -1 when out of memory. */
static int seen_todo(struct fetch_state *f, enum tern_error *err_r)
{
	struct imap_view *v = f->s->view;
	uint32_t *todo = malloc(f->count * sizeof(*todo) + 1);
	size_t n = 0;
	if (todo == NULL || (f->seen_folder = strdup(v->folder)) == NULL) {
		free(todo);
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	for (size_t i = 0; i < f->count; i++) {
		uint32_t seq = imap_view_seq(v, f->uids[i]);
		if (seq != 0 && (v->msgs[seq - 1].flags & STORE_FLAG_SEEN) == 0)
			todo[n++] = f->uids[i];
	}
	f->seen_set = todo;
	f->seen_count = n;
	return 0;
}

static int seen_write(struct store *st, void *arg, enum tern_error *err_r)
{
	struct fetch_state *f = arg;
	return store_flags_update(st, f->seen_folder, f->seen_set, f->seen_count, STORE_FLAGS_ADD,
				  STORE_FLAG_SEEN, NULL, 0, &f->seen_msgs, &f->seen_msgs_count,
				  NULL, NULL, err_r);
}

/* What the responses report is what the view now holds. */
static void seen_apply(struct fetch_state *f)
{
	struct imap_view *v = f->s->view;
	for (size_t i = 0; i < f->seen_msgs_count; i++)
		imap_view_update_msg(v, f->seen_msgs[i].uid, f->seen_msgs[i].flags,
				     f->seen_msgs[i].keywords, f->seen_msgs[i].modseq);
	f->seen_count = 0;
	for (size_t i = 0; i < f->seen_msgs_count; i++)
		f->seen_set[f->seen_count++] = f->seen_msgs[i].uid;
	store_msgs_free(&f->seen_msgs, f->seen_msgs_count);
	f->seen_msgs_count = 0;
	imap_notify_changed(f->s);
}

/* Bulk metadata: the CHANGEDSINCE change list, or the folder list when many
 * messages are asked for. */
/* The folder's messages from first_uid on, a chunk at a time: a whole
 * folder listed at once held the loop thread 6-10 ms on 20,000 messages. */
static int load_chunk(struct fetch_state *f, uint32_t first_uid, enum tern_error *err_r)
{
	struct imap_session *s = f->s;
	store_msgs_free(&f->list, f->list_count);
	f->list_count = f->list_pos = 0;
	if (store_msg_list_from(s->store, s->view->folder, first_uid, TERN_FETCH_LIST_CHUNK,
				&f->list, &f->list_count, err_r) < 0)
		return -1;
	f->list_more = f->list_count == TERN_FETCH_LIST_CHUNK;
	return 0;
}

static int load_list(struct fetch_state *f, enum tern_error *err_r)
{
	struct imap_session *s = f->s;
	if (f->req->changedsince_given) {
		struct store_changes ch;
		if (store_changes_since(s->store, s->view->folder, f->req->changedsince, &ch,
					err_r) < 0)
			return -1;
		int r = f->req->vanished ? send_vanished(f, &ch) : 0;
		f->list = ch.changed;
		f->list_count = ch.changed_count;
		f->list_is_changes = true;
		ch.changed = NULL;
		ch.changed_count = 0;
		store_changes_clear(&ch);
		if (r < 0)
			*err_r = TERN_ERR_NOMEM;
		return r;
	}
	if (f->count <= FETCH_PER_MESSAGE_MAX)
		return 0;
	f->list_chunked = true;
	return load_chunk(f, f->uids[0], err_r);
}

/* ---- one message ---- */

/* 1 found (*m_r filled, borrowed or owned per *owned_r), 0 skip, -1 error. */
static int msg_meta(struct fetch_state *f, uint32_t uid, struct store_msg *m_r, bool *owned_r,
		    enum tern_error *err_r)
{
	*owned_r = false;
	if (f->list != NULL || f->list_is_changes || f->list_chunked) {
		while (f->list_pos < f->list_count && f->list[f->list_pos].uid < uid)
			f->list_pos++;
		if (f->list_pos == f->list_count && f->list_chunked && f->list_more) {
			if (load_chunk(f, uid, err_r) < 0)
				return -1;
		}
		if (f->list_pos < f->list_count && f->list[f->list_pos].uid == uid) {
			*m_r = f->list[f->list_pos];
			return 1;
		}
		if (!f->list_is_changes)
			f->expunged = true;
		return 0;
	}
	int r = store_msg_get(f->s->store, f->s->view->folder, uid, m_r, err_r);
	if (r == 0)
		f->expunged = true;
	*owned_r = r > 0;
	return r;
}

static bool seen_just_set(struct fetch_state *f, uint32_t uid)
{
	while (f->seen_pos < f->seen_count && f->seen_set[f->seen_pos] < uid)
		f->seen_pos++;
	return f->seen_pos < f->seen_count && f->seen_set[f->seen_pos] == uid;
}

static int load_raw(struct fetch_state *f, uint32_t uid, struct imap_fetch_raw **raw_r,
		    enum tern_error *err_r)
{
	struct imap_session *s = f->s;
	char *data = NULL;
	size_t size = 0;
	uint64_t total = 0, offset = 0;
	int r;
	if (f->needs.range_only) {
		offset = f->needs.range_offset;
		r = store_msg_raw_range(s->store, s->view->folder, uid, offset,
					f->needs.range_length, &data, &size, &total, err_r);
		if (offset > total)
			offset = total;
	} else {
		r = store_msg_raw(s->store, s->view->folder, uid, &data, &size, err_r);
		total = size;
	}
	if (r <= 0)
		return r;
	*raw_r = imap_fetch_raw_new(data, size, offset, total);
	if (*raw_r == NULL) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	return 1;
}

static bool req_has(const struct imap_fetch_request *req, enum imap_fetch_type t)
{
	for (size_t i = 0; i < req->count; i++)
		if (req->atts[i].type == t)
			return true;
	return false;
}

/* Keeps the view in step with flags the response just reported. */
static void note_reported(struct fetch_state *f, const struct imap_fetch_msg *fm)
{
	struct imap_view *v = f->s->view;
	uint32_t seq = fm->seq;
	if (seq == 0 || !(fm->add_flags || req_has(f->req, IMAP_FETCH_FLAGS)))
		return;
	bool modseq_told = fm->add_modseq || req_has(f->req, IMAP_FETCH_MODSEQ);
	imap_view_update_seq(v, seq, fm->meta->flags, fm->meta->keywords,
			     modseq_told ? fm->meta->modseq : v->msgs[seq - 1].modseq);
}

/* Writes one message's response. 0 ok (or skipped), else an
 * imap_fetch_write_result, with err_r for store failures (-1). */
static int fetch_one(struct fetch_state *f, uint32_t uid, enum tern_error *err_r)
{
	struct store_msg meta;
	struct store_msg_cache cache = { 0 };
	struct store_msg_ids ids = { 0 };
	struct imap_fetch_raw *raw = NULL;
	bool owned;
	int r = msg_meta(f, uid, &meta, &owned, err_r);
	if (r <= 0)
		return r;
	if (f->needs.cache) {
		r = store_msg_cache(f->s->store, f->s->view->folder, uid, &cache, err_r);
		if (r == 0)
			f->expunged = true;
	}
	if (r > 0 && f->needs.ids) {
		r = store_msg_ids(f->s->store, f->s->view->folder, uid, &ids, err_r);
		if (r == 0)
			f->expunged = true;
	}
	if (r > 0 && f->needs.raw) {
		r = load_raw(f, uid, &raw, err_r);
		if (r == 0)
			f->expunged = true;
	}
	if (r > 0) {
		bool seen = seen_just_set(f, uid);
		struct imap_fetch_msg fm = {
			.seq = imap_view_seq_walk(f->s->view, uid, &f->view_cursor), .meta = &meta,
			.cache = f->needs.cache ? &cache : NULL, .raw = raw,
			.ids = f->needs.ids ? &ids : NULL,
			.add_flags = seen, .add_modseq = seen && f->s->condstore,
			.recent = imap_view_is_recent(f->s->view, uid),
			.utf8 = imap_names_utf8(f->s),
		};
		r = imap_fetch_write(imap_out(f->s), f->req, &fm);
		if (r == 0)
			note_reported(f, &fm);
	}
	imap_fetch_raw_unref(&raw);
	store_msg_cache_clear(&cache);
	if (owned)
		store_msg_clear(&meta);
	return r < 0 ? r : 0;
}

/* ---- the loop ---- */

static void fetch_finish(struct fetch_state *f, int r, enum tern_error err)
{
	struct imap_session *s = f->s;
	bool async = f->async;
	if (r == IMAP_FETCH_WRITE_UNKNOWN_CTE)
		imap_tagged(s, f->cmd, "NO [UNKNOWN-CTE] Cannot decode the part's content");
	else if (r == IMAP_FETCH_WRITE_NO_DATA) {
		log_error("imap: user=%s: FETCH: loaded data does not cover a section", s->user);
		imap_tagged(s, f->cmd, "NO [SERVERBUG] Internal error");
	} else if (r == IMAP_FETCH_WRITE_NOMEM && err == TERN_ERR_NONE)
		imap_store_error(s, f->cmd, "FETCH", TERN_ERR_NOMEM);
	else if (r < 0)
		imap_store_error(s, f->cmd, "FETCH", err);
	else if (f->expunged)
		imap_tagged(s, f->cmd, "OK [EXPUNGEISSUED] Some of the requested messages no longer exist");
	else
		imap_tagged(s, f->cmd, "OK Fetch completed");
	if (async)
		imap_command_finished(s);   /* frees f */
	else
		fetch_state_free(f);
}

static void fetch_drained(struct conn *c);

/* Writes responses until done or the output is full. true when finished. */
static bool fetch_run(struct fetch_state *f)
{
	struct imap_session *s = f->s;
	enum tern_error err = TERN_ERR_NONE;
	int r = 0;
	/* Outside a read transaction each message's reads take and drop the
	 * WAL read lock; in one held too long, writers wait
	 * (TERN_FETCH_READ_TX_MSGS). It always ends before waiting for the
	 * client. */
	bool in_read_tx = false;
	size_t read_tx_msgs = 0;
	/* A fast client drains as fast as it is written to: the time slice,
	 * not the output mark, is then what gives other sessions their turn. */
	uint64_t slice_end = tern_now_ms() + TERN_COMMAND_SLICE_MS;
	while (f->pos < f->count && r == 0) {
		if (conn_output_pending(s->conn) > TERN_FETCH_OUTPUT_HIGH) {
			if (in_read_tx)
				store_read_end(s->store);
			conn_set_drain_hook(s->conn, TERN_FETCH_OUTPUT_LOW, fetch_drained);
			return false;
		}
		if (tern_now_ms() >= slice_end) {
			if (in_read_tx)
				store_read_end(s->store);
			conn_yield(s->conn, fetch_drained);
			return false;
		}
		if (in_read_tx && read_tx_msgs == TERN_FETCH_READ_TX_MSGS) {
			store_read_end(s->store);
			in_read_tx = false;
		}
		if (!in_read_tx && f->count - f->pos > 1) {
			enum tern_error ignored;
			in_read_tx = store_read_begin(s->store, &ignored) == 0;
			read_tx_msgs = 0;
		}
		r = fetch_one(f, f->uids[f->pos++], &err);
		read_tx_msgs++;
	}
	if (in_read_tx)
		store_read_end(s->store);
	fetch_finish(f, r, err);
	return true;
}

static void fetch_drained(struct conn *c)
{
	struct imap_session *s = c->state;
	struct fetch_state *f = s->cmd_state;
	if (f != NULL && s->cmd_state_free == fetch_state_free)
		fetch_run(f);
}

/* ---- the command ---- */

static enum imap_cmd_result fetch_fail(struct imap_session *s, struct imap_cmd *cmd,
				       struct fetch_state *f, const char *bad, enum tern_error err)
{
	fetch_state_free(f);
	if (bad != NULL)
		imap_bad(s, cmd, bad);
	else
		imap_store_error(s, cmd, "FETCH", err);
	return IMAP_CMD_DONE;
}

/* Writes the responses: at once, or as the output drains. */
static enum imap_cmd_result fetch_start(struct imap_session *s, struct imap_cmd *cmd,
					struct fetch_state *f)
{
	enum tern_error err = TERN_ERR_NONE;
	if (load_list(f, &err) < 0)
		return fetch_fail(s, cmd, f, NULL, err);
	if (fetch_run(f))
		return IMAP_CMD_DONE;
	f->async = true;
	s->cmd_state = f;
	s->cmd_state_free = fetch_state_free;
	return IMAP_CMD_ASYNC;
}

static enum imap_cmd_result fetch_after_seen(struct imap_session *s, struct imap_cmd *cmd,
					     void *arg, int result, enum tern_error err,
					     bool closing)
{
	struct fetch_state *f = arg;
	if (closing) {
		fetch_state_free(f);
		return IMAP_CMD_DONE;
	}
	if (result < 0)
		return fetch_fail(s, cmd, f, NULL, err);
	seen_apply(f);
	return fetch_start(s, cmd, f);
}

IMAP_HANDLER(cmd_fetch)
{
	const char *bad = NULL;
	enum tern_error err = TERN_ERR_NONE;
	struct fetch_state *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return fetch_fail(s, cmd, f, NULL, TERN_ERR_NOMEM);
	f->s = s;
	f->cmd = cmd;
	if (cmd->arg_count < 2)
		return fetch_fail(s, cmd, f, "Missing arguments", err);
	if (imap_fetch_parse(cmd->args + 1, cmd->arg_count - 1, cmd->uid, &f->req, &bad) < 0)
		return fetch_fail(s, cmd, f, bad, err);
	/* RFC 7162 §3.2.6: VANISHED only once QRESYNC is enabled */
	if (f->req->vanished && !s->qresync)
		return fetch_fail(s, cmd, f, "VANISHED needs ENABLE QRESYNC", err);
	if (f->req->changedsince_given || req_has(f->req, IMAP_FETCH_MODSEQ))
		s->condstore = true;   /* RFC 7162 §3.1: a CONDSTORE-enabling command */
	if (s->condstore && !cmd->uid) {
		/* RFC 7162 §3.1: UID in every FETCH once CONDSTORE is on, from
		 * the enabling command's own on. Parsed again as UID FETCH:
		 * valid as FETCH, so valid as that too. */
		imap_fetch_request_free(&f->req);
		if (imap_fetch_parse(cmd->args + 1, cmd->arg_count - 1, true, &f->req, &bad) < 0)
			return fetch_fail(s, cmd, f, bad, err);
	}
	if (imap_view_resolve(s, &cmd->args[0], cmd->uid, &f->uids, &f->count, &bad) < 0)
		return fetch_fail(s, cmd, f, bad, err);
	if (f->req->partial_given) {
		/* RFC 9394 §3.3: only the messages at those positions of the set */
		size_t start, n;
		imap_search_partial_slice(&f->req->partial_range, f->count, &start, &n);
		memmove(f->uids, f->uids + start, n * sizeof(*f->uids));
		f->count = n;
	}
	imap_fetch_needs(f->req, &f->needs);
	if (f->req->sets_seen && !s->view->readonly) {
		if (seen_todo(f, &err) < 0)
			return fetch_fail(s, cmd, f, NULL, err);
		if (f->seen_count > 0)
			return imap_store_write_then(s, cmd, seen_write, f, fetch_after_seen);
	}
	return fetch_start(s, cmd, f);
}
