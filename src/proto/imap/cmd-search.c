/* SEARCH and UID SEARCH (RFC 3501 §6.4.4) with ESEARCH RETURN options
 * (RFC 4731), SAVE and "$" (RFC 5182), MODSEQ (RFC 7162 §3.1.5), UPDATE
 * contexts (RFC 5267 §4.3, search-context.c) and IMAP4rev2's ESEARCH
 * answer (RFC 9051 §6.4.4). The
 * metadata of the folder comes from one query; message text is read only for
 * messages the cheap keys leave undecided (search-eval.c). */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"
#include "core/lock.h"
#include "proto/imap/commands.h"
#include "proto/imap/esearch-write.h"
#include "proto/imap/quote.h"
#include "proto/imap/search-context.h"
#include "proto/imap/search-eval.h"
#include "proto/imap/search-parse.h"
#include "proto/imap/seqset.h"
#include "store/store.h"

struct search_load {
	struct imap_session *s;
	enum tern_error err;
};

static int search_load(void *arg, uint32_t uid, bool head_only, char **data_r, size_t *size_r,
		       uint64_t *total_r)
{
	struct search_load *l = arg;
	struct imap_session *s = l->s;
	if (head_only)
		return store_msg_raw_range(s->store, s->view->folder, uid, 0, TERN_SEARCH_HEAD_BYTES,
					   data_r, size_r, total_r, &l->err);
	int r = store_msg_raw(s->store, s->view->folder, uid, data_r, size_r, &l->err);
	if (r > 0)
		*total_r = *size_r;
	return r;
}

struct search_result {
	uint32_t *uids, *seqs;
	uint64_t *modseqs;   /* of each match */
	size_t count;
	uint64_t max_modseq;
};

/* A SEARCH in progress. Messages whose text must be read are evaluated in
 * slices of TERN_COMMAND_SLICE_MS (shared with SORT and THREAD), giving the
 * loop thread back in between, so one user's SEARCH BODY over a big folder
 * does not hold up every other session on the same thread (FETCH pauses
 * the same way for output). */

struct search_state {
	struct imap_session *s;
	struct imap_cmd *cmd;
	struct imap_search_program *prog;
	struct store_msg *list;
	size_t list_count, li, pos;
	struct search_load load;
	struct imap_search_ctx ctx;
	struct search_result res;
	bool async;
};

static void search_state_free(void *arg)
{
	struct search_state *st = arg;
	if (st == NULL)
		return;
	store_msgs_free(&st->list, st->list_count);
	free(st->res.uids);
	free(st->res.seqs);
	free(st->res.modseqs);
	imap_search_program_free(&st->prog);
	free(st);
}

/* Loads the store's metadata, which the view is joined with by UID
 * (messages expunged meanwhile drop out). 0 or -1 (*err_r). */
static int search_begin(struct search_state *st, enum tern_error *err_r)
{
	struct imap_session *s = st->s;
	struct imap_view *v = s->view;
	if (store_msg_list(s->store, v->folder, &st->list, &st->list_count, err_r) < 0)
		return -1;
	st->load = (struct search_load){ .s = s, .err = TERN_ERR_NONE };
	st->ctx = (struct imap_search_ctx){
		.now = time(NULL), .saved = v->saved, .saved_count = v->saved_count,
		.load = search_load, .load_arg = &st->load,
	};
	st->res.uids = malloc(v->count * sizeof(uint32_t) + 1);
	st->res.seqs = malloc(v->count * sizeof(uint32_t) + 1);
	st->res.modseqs = malloc(v->count * sizeof(uint64_t) + 1);
	if (st->res.uids == NULL || st->res.seqs == NULL || st->res.modseqs == NULL ||
	    imap_search_prepare(st->prog, (uint32_t)v->count,
				v->count > 0 ? v->msgs[v->count - 1].uid : 0) < 0) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	return 0;
}

/* Evaluates messages until done (1) or the slice is used up (0); -1 on a
 * store error (*err_r). The view does not change meanwhile: the session
 * runs no other command and syncs only when the reply is written. */
static int search_slice(struct search_state *st, enum tern_error *err_r)
{
	struct imap_session *s = st->s;
	struct imap_view *v = s->view;
	uint64_t deadline = tern_now_ms() + TERN_COMMAND_SLICE_MS;
	bool needs_content = imap_search_needs_content(st->prog->root);
	for (; st->pos < v->count; st->pos++) {
		if (needs_content && st->pos % 16 == 0 && tern_now_ms() >= deadline)
			return 0;
		uint32_t uid = v->msgs[st->pos].uid;
		while (st->li < st->list_count && st->list[st->li].uid < uid)
			st->li++;
		if (st->li == st->list_count || st->list[st->li].uid != uid)
			continue;
		const struct store_msg *m = &st->list[st->li];
		struct imap_search_msg sm = {
			.seq = (uint32_t)(st->pos + 1), .uid = uid, .flags = m->flags,
			.keywords = m->keywords, .modseq = m->modseq,
			.internal_date = m->internal_date, .internal_tz = m->internal_tz,
			.size = m->size, .recent = imap_view_is_recent(v, uid),
			.save_date = m->save_date, .emailid = m->emailid,
		};
		int r = imap_search_match(&st->ctx, st->prog->root, &sm);
		if (r < 0) {
			*err_r = st->load.err;
			return -1;
		}
		if (r > 0) {
			st->res.uids[st->res.count] = uid;
			st->res.modseqs[st->res.count] = m->modseq;
			st->res.seqs[st->res.count++] = sm.seq;
			if (m->modseq > st->res.max_modseq)
				st->res.max_modseq = m->modseq;
		}
	}
	return 1;
}

/* RFC 5182 §2.4: with SAVE, MIN and/or MAX (and no ALL or COUNT) save just
 * those messages; PARTIAL (without COUNT) the messages it returns, with
 * the MIN and MAX messages when those are asked for too (RFC 9394 §3.2);
 * otherwise the whole result. */
static int save_result(struct imap_view *v, const struct imap_search_program *prog,
		       const struct search_result *res)
{
	unsigned o = prog->return_opts;
	uint32_t *saved = malloc(res->count * sizeof(*saved) + 1);
	size_t n = 0;
	if (saved == NULL)
		return -1;
	bool minmax_only = (o & (IMAP_SEARCH_RETURN_MIN | IMAP_SEARCH_RETURN_MAX)) != 0 &&
			   (o & (IMAP_SEARCH_RETURN_ALL | IMAP_SEARCH_RETURN_COUNT)) == 0;
	if ((o & IMAP_SEARCH_RETURN_PARTIAL) != 0 && (o & IMAP_SEARCH_RETURN_COUNT) == 0) {
		/* PARTIAL without COUNT: the messages it returns */
		size_t start, k;
		imap_search_partial_slice(&prog->partial, res->count, &start, &k);
		if ((o & IMAP_SEARCH_RETURN_MIN) != 0 && res->count > 0 && (start > 0 || k == 0))
			saved[n++] = res->uids[0];
		memcpy(saved + n, res->uids + start, k * sizeof(*saved));
		n += k;
		if ((o & IMAP_SEARCH_RETURN_MAX) != 0 && res->count > 0 &&
		    (n == 0 || saved[n - 1] != res->uids[res->count - 1]))
			saved[n++] = res->uids[res->count - 1];
	} else if (!minmax_only) {
		memcpy(saved, res->uids, res->count * sizeof(*saved));
		n = res->count;
	} else if (res->count > 0) {
		if ((o & IMAP_SEARCH_RETURN_MIN) != 0)
			saved[n++] = res->uids[0];
		if ((o & IMAP_SEARCH_RETURN_MAX) != 0 && (n == 0 || res->count > 1))
			saved[n++] = res->uids[res->count - 1];
	}
	free(v->saved);
	v->saved = saved;
	v->saved_count = n;
	return 0;
}

/* The MODSEQ result option (RFC 4731 §3.2, RFC 7162 §3.1.5): with MIN or
 * MAX alone, the mod-sequence of that message; with MIN and MAX but no ALL
 * or COUNT, the higher of those two; otherwise the highest of all matches.
 * res->count > 0. */
static uint64_t esearch_modseq(unsigned o, const struct search_result *res)
{
	bool min = (o & IMAP_SEARCH_RETURN_MIN) != 0, max = (o & IMAP_SEARCH_RETURN_MAX) != 0;
	if ((!min && !max) || (o & (IMAP_SEARCH_RETURN_ALL | IMAP_SEARCH_RETURN_COUNT)) != 0)
		return res->max_modseq;
	uint64_t first = res->modseqs[0], last = res->modseqs[res->count - 1];
	if (!max)
		return first;
	if (!min)
		return last;
	return first > last ? first : last;
}

static void write_esearch(struct imap_session *s, const struct imap_cmd *cmd,
			  const struct imap_search_program *prog, const struct search_result *res)
{
	const uint32_t *ids = cmd->uid ? res->uids : res->seqs;
	unsigned o = prog->return_opts;
	imap_esearch_write_items(s, cmd, o, ids, res->count, &prog->partial);
	if (prog->uses_modseq && res->count > 0)
		imap_out_printf(s, " MODSEQ %" PRIu64, esearch_modseq(o, res));
	imap_out_add(s, "\r\n", 2);
}

static void write_search(struct imap_session *s, const struct imap_cmd *cmd,
			 const struct imap_search_program *prog, const struct search_result *res)
{
	const uint32_t *ids = cmd->uid ? res->uids : res->seqs;
	imap_out_add(s, "* SEARCH", 8);
	for (size_t i = 0; i < res->count && !imap_out_failed(s); i++)
		imap_out_printf(s, " %" PRIu32, ids[i]);
	if (prog->uses_modseq && res->count > 0)
		imap_out_printf(s, " (MODSEQ %" PRIu64 ")", res->max_modseq);
	imap_out_add(s, "\r\n", 2);
}

/* A copy of "$" (NULL for none or out of memory: *n_r = 0). */
static uint32_t *saved_copy(const struct imap_view *v, size_t *n_r)
{
	uint32_t *c = v->saved_count > 0 ? malloc(v->saved_count * sizeof(*c)) : NULL;
	*n_r = c != NULL ? v->saved_count : 0;
	if (c != NULL)
		memcpy(c, v->saved, v->saved_count * sizeof(*c));
	return c;
}

/* RFC 5267 §4.3: RETURN (UPDATE) keeps the program and the result as a
 * context; NOUPDATE when there are too many. pre_saved: "$" as the search
 * saw it. The program then belongs to the context (st->prog NULL). */
static int search_keep(struct search_state *st, const uint32_t *pre_saved, size_t npre)
{
	int r = imap_context_add_search(st->s, st->cmd, &st->prog, st->res.uids, st->res.count,
					pre_saved, npre);
	if (r == 0)
		imap_context_refused(st->s, st->cmd);
	return r < 0 ? -1 : 0;
}

/* Writes the answer and the tagged reply; frees st. */
static void search_finish(struct search_state *st, int r, enum tern_error err)
{
	struct imap_session *s = st->s;
	struct imap_search_program *prog = st->prog;
	bool save = prog->esearch && (prog->return_opts & IMAP_SEARCH_RETURN_SAVE) != 0;
	bool update = prog->esearch && (prog->return_opts & IMAP_SEARCH_RETURN_UPDATE) != 0;
	size_t npre = 0;
	uint32_t *pre_saved = r >= 0 && update ? saved_copy(s->view, &npre) : NULL;
	if (r >= 0 && save && save_result(s->view, prog, &st->res) < 0) {
		r = -1;
		err = TERN_ERR_NOMEM;
	}
	if (r < 0) {
		if (save) {
			/* RFC 5182 §2.1: a failed SEARCH ... SAVE empties "$" */
			free(s->view->saved);
			s->view->saved = NULL;
			s->view->saved_count = 0;
		}
		imap_store_error(s, st->cmd, "SEARCH", err);
	} else {
		/* RFC 5182 §2.4: SAVE alone sends no ESEARCH (nor UPDATE alone) */
		if (!prog->esearch)
			write_search(s, st->cmd, prog, &st->res);
		else if ((prog->return_opts & IMAP_SEARCH_RETURN_DATA) != 0)
			write_esearch(s, st->cmd, prog, &st->res);
		if (update && search_keep(st, pre_saved, npre) < 0)
			imap_store_error(s, st->cmd, "SEARCH", TERN_ERR_NOMEM);
		else
			imap_tagged(s, st->cmd, "OK Search completed");
	}
	free(pre_saved);
	if (st->async)
		imap_command_finished(s);   /* frees st */
	else
		search_state_free(st);
}

static void search_resume(struct conn *c)
{
	struct imap_session *s = c->state;
	struct search_state *st = s->cmd_state;
	if (st == NULL || s->cmd_state_free != search_state_free)
		return;
	enum tern_error err = TERN_ERR_NONE;
	int r = search_slice(st, &err);
	if (r == 0)
		conn_yield(c, search_resume);
	else
		search_finish(st, r, err);
}

IMAP_HANDLER(cmd_search)
{
	struct imap_search_program *prog = NULL;
	const char *error = NULL;
	int r = imap_search_parse(cmd->args, cmd->arg_count, &prog, &error);
	if (r == IMAP_SEARCH_PARSE_BADCHARSET) {
		imap_tagged(s, cmd, "NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
		return IMAP_CMD_DONE;
	}
	if (r < 0) {
		imap_bad(s, cmd, error != NULL ? error : "Invalid search");
		return IMAP_CMD_DONE;
	}
	if (!prog->esearch && s->imap4rev2) {
		/* RFC 9051 §6.4.4: IMAP4rev2 answers with ESEARCH, ALL assumed */
		prog->esearch = true;
		prog->return_opts = IMAP_SEARCH_RETURN_ALL;
	}
	if ((prog->return_opts & IMAP_SEARCH_RETURN_UPDATE) != 0 &&
	    imap_context_tag_in_use(s, cmd->tag)) {
		/* RFC 5267 §4.3: updates are told apart by tag */
		imap_search_program_free(&prog);
		imap_bad(s, cmd, "Tag reuse");
		return IMAP_CMD_DONE;
	}
	if (prog->uses_modseq)
		s->condstore = true;   /* RFC 7162 §3.1: CONDSTORE-enabling */
	struct search_state *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		imap_search_program_free(&prog);
		imap_store_error(s, cmd, "SEARCH", TERN_ERR_NOMEM);
		return IMAP_CMD_DONE;
	}
	*st = (struct search_state){ .s = s, .cmd = cmd, .prog = prog };
	enum tern_error err = TERN_ERR_NONE;
	r = search_begin(st, &err);
	if (r == 0)
		r = search_slice(st, &err);
	if (r != 0) {
		search_finish(st, r, err);
		return IMAP_CMD_DONE;
	}
	st->async = true;
	s->cmd_state = st;
	s->cmd_state_free = search_state_free;
	conn_yield(s->conn, search_resume);
	return IMAP_CMD_ASYNC;
}
