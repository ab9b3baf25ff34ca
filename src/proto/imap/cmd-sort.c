/* SORT and UID SORT (RFC 5256) with SORT=DISPLAY keys (RFC 5957), ESORT's
 * RETURN options (RFC 5267), SAVE (RFC 5182), MODSEQ (RFC 7162 §3.1.5) and
 * UPDATE contexts (RFC 5267 §4.3, search-context.c).
 * The search runs as for SEARCH (sort-run.c); keys come from the cached
 * ENVELOPE and subject, never from the message text. Search, key loading
 * and ordering all run in slices (sort-run.h), so a big folder does not
 * hold up the other sessions of the loop thread. */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/commands.h"
#include "proto/imap/esearch-write.h"
#include "proto/imap/quote.h"
#include "proto/imap/search-context.h"
#include "proto/imap/seqset.h"
#include "proto/imap/sort-order.h"
#include "proto/imap/sort-parse.h"
#include "proto/imap/sort-run.h"
#include "store/store.h"

/* A SORT in progress (sort-run.h's arg). */
struct sort_state {
	struct imap_sort_program *prog;
	unsigned needs;                      /* imap_sort_cache_needs */
	struct imap_sort_msg *msgs;
	size_t n;
	uint64_t max_modseq;
	struct imap_sort_ordering *ordering;
};

static void sort_state_free(void *arg)
{
	struct sort_state *st = arg;
	imap_sort_order_free(&st->ordering);
	imap_sort_msgs_free(&st->msgs, st->n);
	imap_sort_program_free(&st->prog);
	free(st);
}

static int sort_prepare(void *arg, const struct imap_sort_match *matches, size_t n,
			uint64_t max_modseq, enum tern_error *err_r)
{
	struct sort_state *st = arg;
	st->msgs = calloc(n + 1, sizeof(*st->msgs));
	if (st->msgs == NULL) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	st->n = n;
	st->max_modseq = max_modseq;
	for (size_t i = 0; i < n; i++) {
		st->msgs[i].seq = matches[i].seq;
		st->msgs[i].uid = matches[i].uid;
		st->msgs[i].arrival = matches[i].internal_date;
		st->msgs[i].date = matches[i].internal_date;
		st->msgs[i].size = matches[i].size;
		st->msgs[i].modseq = matches[i].modseq;
	}
	return st->needs != 0;
}

static int sort_load(struct imap_session *s, void *arg, size_t i, enum tern_error *err_r)
{
	struct sort_state *st = arg;
	struct imap_sort_msg *m = &st->msgs[i];
	struct store_msg_cache c = { 0 };
	int r = store_msg_cache(s->store, s->view->folder, m->uid, &c, err_r);
	if (r < 0)
		return -1;
	/* expunged meanwhile: sorts with empty keys */
	r = imap_sort_fill_keys(m, st->needs, c.envelope, c.subject, c.sent_date);
	store_msg_cache_clear(&c);
	if (r < 0) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	return 0;
}

static int sort_compute(void *arg, uint64_t deadline_ms, enum tern_error *err_r)
{
	struct sort_state *st = arg;
	if (st->ordering == NULL) {
		st->ordering = imap_sort_order_begin(st->msgs, st->n, st->prog);
		if (st->ordering == NULL) {
			*err_r = TERN_ERR_NOMEM;
			return -1;
		}
	}
	return imap_sort_order_step(st->ordering, deadline_ms);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* RFC 5182 §2.4 with RFC 5267: MIN/MAX alone save the first and last in
 * sort order; PARTIAL (without COUNT) the messages it returns, with the
 * MIN and MAX messages when those are asked for too (RFC 9394 §3.2);
 * otherwise every match. "$" is kept ascending. */
static int save_result(struct imap_view *v, const struct imap_search_program *sp,
		       const struct imap_sort_msg *msgs, size_t n)
{
	unsigned o = sp->return_opts;
	uint32_t *saved = malloc((n + 3) * sizeof(*saved));
	size_t k = 0;
	if (saved == NULL)
		return -1;
	bool minmax_only = (o & (IMAP_SEARCH_RETURN_MIN | IMAP_SEARCH_RETURN_MAX)) != 0 &&
			   (o & (IMAP_SEARCH_RETURN_ALL | IMAP_SEARCH_RETURN_COUNT)) == 0;
	if ((o & IMAP_SEARCH_RETURN_PARTIAL) != 0 && (o & IMAP_SEARCH_RETURN_COUNT) == 0) {
		/* PARTIAL without COUNT: the messages it returns */
		size_t start, m;
		imap_search_partial_slice(&sp->partial, n, &start, &m);
		for (; k < m; k++)
			saved[k] = msgs[start + k].uid;
		if ((o & IMAP_SEARCH_RETURN_MIN) != 0 && n > 0 && (start > 0 || m == 0))
			saved[k++] = msgs[0].uid;
		if ((o & IMAP_SEARCH_RETURN_MAX) != 0 && n > 0 && start + m < n &&
		    (k == 0 || n > 1))
			saved[k++] = msgs[n - 1].uid;
	} else if (!minmax_only) {
		for (; k < n; k++)
			saved[k] = msgs[k].uid;
	} else if (n > 0) {
		if ((o & IMAP_SEARCH_RETURN_MIN) != 0)
			saved[k++] = msgs[0].uid;
		if ((o & IMAP_SEARCH_RETURN_MAX) != 0 && (k == 0 || n > 1))
			saved[k++] = msgs[n - 1].uid;
	}
	qsort(saved, k, sizeof(*saved), cmp_u32);
	free(v->saved);
	v->saved = saved;
	v->saved_count = k;
	return 0;
}

/* -1 when out of memory before anything was written. */
static int write_result(struct imap_session *s, const struct imap_cmd *cmd,
			const struct imap_search_program *sp, const struct imap_sort_msg *msgs,
			size_t n, uint64_t max_modseq)
{
	unsigned o = sp->return_opts & ~(unsigned)IMAP_SEARCH_RETURN_SAVE;
	uint32_t *ids = malloc((n + 1) * sizeof(*ids));
	if (ids == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		ids[i] = cmd->uid ? msgs[i].uid : msgs[i].seq;
	if (!sp->esearch) {
		imap_out_add(s, "* SORT", 6);
		for (size_t i = 0; i < n && !imap_out_failed(s); i++)
			imap_out_printf(s, " %" PRIu32, ids[i]);
		if (sp->uses_modseq && n > 0)
			imap_out_printf(s, " (MODSEQ %" PRIu64 ")", max_modseq);
		imap_out_add(s, "\r\n", 2);
	} else if ((o & IMAP_SEARCH_RETURN_DATA) != 0) {
		imap_esearch_write_items(s, cmd, o, ids, n, &sp->partial);
		if (sp->uses_modseq && n > 0) {
			/* RFC 4731 §3.2: MIN or MAX alone gives that message's
			 * mod-sequence, both (without ALL or COUNT) the higher of
			 * their two; MIN and MAX are first and last in sort order */
			uint64_t ms = max_modseq;
			bool min = (o & IMAP_SEARCH_RETURN_MIN) != 0;
			bool max = (o & IMAP_SEARCH_RETURN_MAX) != 0;
			if ((min || max) &&
			    (o & (IMAP_SEARCH_RETURN_ALL | IMAP_SEARCH_RETURN_COUNT)) == 0) {
				uint64_t first = msgs[0].modseq, last = msgs[n - 1].modseq;
				ms = !max ? first : !min ? last : first > last ? first : last;
			}
			imap_out_printf(s, " MODSEQ %" PRIu64, ms);
		}
		imap_out_add(s, "\r\n", 2);
	}
	free(ids);
	return 0;
}

static void sort_finish(struct imap_session *s, struct imap_cmd *cmd, void *arg, int r,
			enum tern_error err)
{
	struct sort_state *st = arg;
	struct imap_search_program *sp = st->prog->search;
	bool save = sp->esearch && (sp->return_opts & IMAP_SEARCH_RETURN_SAVE) != 0;
	bool update = sp->esearch && (sp->return_opts & IMAP_SEARCH_RETURN_UPDATE) != 0;
	/* "$" as the search saw it, for an UPDATE context */
	size_t npre = r >= 0 && update ? s->view->saved_count : 0;
	uint32_t *pre_saved = npre > 0 ? malloc(npre * sizeof(*pre_saved)) : NULL;
	if (pre_saved != NULL)
		memcpy(pre_saved, s->view->saved, npre * sizeof(*pre_saved));
	else
		npre = 0;
	if (r >= 0 && save && save_result(s->view, sp, st->msgs, st->n) < 0) {
		r = -1;
		err = TERN_ERR_NOMEM;
	}
	if (r < 0) {
		if (save) {
			/* RFC 5182 §2.1: a failed command with SAVE empties "$" */
			free(s->view->saved);
			s->view->saved = NULL;
			s->view->saved_count = 0;
		}
		imap_store_error(s, cmd, "SORT", err);
		free(pre_saved);
		return;
	}
	int kept = 1;
	if (write_result(s, cmd, sp, st->msgs, st->n, st->max_modseq) < 0 ||
	    (update && (kept = imap_context_add_sort(s, cmd, &st->prog, &st->msgs, st->n,
						      pre_saved, npre)) < 0)) {
		free(pre_saved);
		imap_store_error(s, cmd, "SORT", TERN_ERR_NOMEM);
		return;
	}
	free(pre_saved);
	if (kept == 0)
		imap_context_refused(s, cmd);   /* RFC 5267 §4.3.1 */
	else if (update)
		st->n = 0;   /* the context has the messages */
	imap_tagged(s, cmd, "OK Sort completed");
}

static const struct imap_sort_run_ops sort_ops = {
	.prepare = sort_prepare,
	.load = sort_load,
	.compute = sort_compute,
	.finish = sort_finish,
	.free = sort_state_free,
};

IMAP_HANDLER(cmd_sort)
{
	struct imap_sort_program *prog = NULL;
	const char *error = NULL;
	int r = imap_sort_parse(cmd->args, cmd->arg_count, &prog, &error);
	if (r == IMAP_SEARCH_PARSE_BADCHARSET) {
		imap_tagged(s, cmd, "NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
		return IMAP_CMD_DONE;
	}
	if (r < 0) {
		imap_bad(s, cmd, error != NULL ? error : "Invalid SORT");
		return IMAP_CMD_DONE;
	}
	if ((prog->search->return_opts & IMAP_SEARCH_RETURN_UPDATE) != 0 &&
	    imap_context_tag_in_use(s, cmd->tag)) {
		/* RFC 5267 §4.3: updates are told apart by tag */
		imap_sort_program_free(&prog);
		imap_bad(s, cmd, "Tag reuse");
		return IMAP_CMD_DONE;
	}
	if (prog->search->uses_modseq)
		s->condstore = true;   /* RFC 7162 §3.1: CONDSTORE-enabling */
	struct sort_state *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		imap_sort_program_free(&prog);
		imap_store_error(s, cmd, "SORT", TERN_ERR_NOMEM);
		return IMAP_CMD_DONE;
	}
	st->prog = prog;
	st->needs = imap_sort_cache_needs(prog);
	return imap_sort_run(s, cmd, prog->search, &sort_ops, st);
}
