/* SORT/THREAD runs: see sort-run.h. The search is the same evaluation as
 * SEARCH's: the view is joined by UID with the store's current metadata
 * (messages expunged meanwhile drop out) and message text is read only for
 * messages the cheap keys leave undecided. Before it was sliced, a SORT of
 * 20,000 messages held the loop thread for 250 ms (nearly all of it one
 * cached-envelope read per message) and THREAD REFERENCES for 450 ms. */
#include "proto/imap/sort-run.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"
#include "core/lock.h"
#include "proto/imap/search-eval.h"
#include "store/store.h"


struct load_ctx {
	struct imap_session *s;
	enum tern_error err;
};

static int load(void *arg, uint32_t uid, bool head_only, char **data_r, size_t *size_r,
		uint64_t *total_r)
{
	struct load_ctx *l = arg;
	struct imap_session *s = l->s;
	if (head_only)
		return store_msg_raw_range(s->store, s->view->folder, uid, 0, TERN_SEARCH_HEAD_BYTES,
					   data_r, size_r, total_r, &l->err);
	int r = store_msg_raw(s->store, s->view->folder, uid, data_r, size_r, &l->err);
	if (r > 0)
		*total_r = *size_r;
	return r;
}

enum run_phase {
	RUN_LIST,       /* the folder's metadata: one query, about 6 ms for 20,000 */
	RUN_SEARCH,     /* the search program, a message at a time */
	RUN_PREPARE,
	RUN_LOAD,       /* ops->load, a match at a time */
	RUN_COMPUTE,    /* ops->compute until done */
};

struct sort_run {
	struct imap_session *s;
	struct imap_cmd *cmd;
	struct imap_search_program *prog;
	const struct imap_sort_run_ops *ops;
	void *arg;
	enum run_phase phase;
	struct store_msg *list;         /* RUN_SEARCH: the store's, ascending UID */
	size_t list_count, li, pos;
	struct load_ctx l;
	struct imap_search_ctx ctx;
	struct imap_sort_match *m;      /* the matches, ascending seq */
	size_t n;
	uint64_t max_modseq;
	size_t load_pos;
	bool cheap_search;              /* the search reads no message text */
	bool async;
};

static void run_free(void *p)
{
	struct sort_run *r = p;
	if (r == NULL)
		return;
	store_msgs_free(&r->list, r->list_count);
	free(r->m);
	if (r->ops != NULL)
		r->ops->free(r->arg);
	free(r);
}

static int run_list(struct sort_run *r, enum tern_error *err_r)
{
	struct imap_session *s = r->s;
	struct imap_view *v = s->view;
	if (store_msg_list(s->store, v->folder, &r->list, &r->list_count, err_r) < 0)
		return -1;
	r->l = (struct load_ctx){ .s = s, .err = TERN_ERR_NONE };
	r->ctx = (struct imap_search_ctx){
		.now = time(NULL), .saved = v->saved, .saved_count = v->saved_count,
		.load = load, .load_arg = &r->l,
	};
	r->cheap_search = !imap_search_needs_content(r->prog->root);
	r->m = malloc((v->count + 1) * sizeof(*r->m));
	if (r->m == NULL || imap_search_prepare(r->prog, (uint32_t)v->count,
						v->count > 0 ? v->msgs[v->count - 1].uid : 0) < 0) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	return 0;
}

/* One message of the view: 1 the view is done, 0 more, -1 error. */
static int run_search_one(struct sort_run *r, enum tern_error *err_r)
{
	struct imap_view *v = r->s->view;
	if (r->pos == v->count) {
		store_msgs_free(&r->list, r->list_count);
		r->list_count = 0;
		return 1;
	}
	size_t i = r->pos++;
	uint32_t uid = v->msgs[i].uid;
	while (r->li < r->list_count && r->list[r->li].uid < uid)
		r->li++;
	if (r->li == r->list_count || r->list[r->li].uid != uid)
		return 0;
	const struct store_msg *sm = &r->list[r->li];
	struct imap_search_msg q = {
		.seq = (uint32_t)(i + 1), .uid = uid, .flags = sm->flags,
		.keywords = sm->keywords, .modseq = sm->modseq,
		.internal_date = sm->internal_date, .internal_tz = sm->internal_tz,
		.size = sm->size, .recent = imap_view_is_recent(v, uid),
		.save_date = sm->save_date, .emailid = sm->emailid,
	};
	int m = imap_search_match(&r->ctx, r->prog->root, &q);
	if (m < 0) {
		*err_r = r->l.err != TERN_ERR_NONE ? r->l.err : TERN_ERR_IO;
		return -1;
	}
	if (m > 0) {
		r->m[r->n++] = (struct imap_sort_match){ q.seq, uid, sm->internal_date, sm->size,
							 sm->modseq };
		if (sm->modseq > r->max_modseq)
			r->max_modseq = sm->modseq;
	}
	return 0;
}

/* One item of the current phase (a message, a match) or the move to the
 * next: 0 go on, -1 error (*err_r). */
static int run_item(struct sort_run *r, enum tern_error *err_r)
{
	switch (r->phase) {
	case RUN_LIST:
		if (run_list(r, err_r) < 0)
			return -1;
		r->phase = RUN_SEARCH;
		return 0;
	case RUN_SEARCH: {
		int d = run_search_one(r, err_r);
		if (d > 0)
			r->phase = RUN_PREPARE;
		return d < 0 ? -1 : 0;
	}
	case RUN_PREPARE: {
		int p = r->ops->prepare(r->arg, r->m, r->n, r->max_modseq, err_r);
		if (p < 0)
			return -1;
		r->phase = p > 0 && r->n > 0 ? RUN_LOAD : RUN_COMPUTE;
		return 0;
	}
	case RUN_LOAD:
		if (r->ops->load(r->s, r->arg, r->load_pos, err_r) < 0)
			return -1;
		if (++r->load_pos == r->n)
			r->phase = RUN_COMPUTE;
		return 0;
	case RUN_COMPUTE:
		break;
	}
	return 0;
}

/* Runs until the command is done (1), the slice is used up (0) or an
 * error (-1, *err_r). Store reads share one read snapshot (one WAL read
 * lock instead of one per message), always ended before the thread is
 * given back: a snapshot held across turns would keep writers'
 * checkpoints waiting on this session. */
static int run_slice(struct sort_run *r, enum tern_error *err_r)
{
	uint64_t deadline = tern_now_ms() + TERN_COMMAND_SLICE_MS;
	bool in_read_tx = false;
	if (r->phase != RUN_COMPUTE) {
		enum tern_error ignored;
		in_read_tx = store_read_begin(r->s->store, &ignored) == 0;
	}
	int ret = 0;
	bool out_of_time = false;
	for (unsigned k = 1; ret == 0 && r->phase != RUN_COMPUTE; k++) {
		bool cheap = r->phase == RUN_SEARCH && r->cheap_search;
		ret = run_item(r, err_r);
		if ((!cheap || k % TERN_SORT_RUN_CHECK == 0) && tern_now_ms() >= deadline) {
			out_of_time = true;
			break;
		}
	}
	if (in_read_tx)
		store_read_end(r->s->store);
	if (ret < 0 || out_of_time)
		return ret;
	/* looks at the clock itself, and makes progress however late it is */
	return r->ops->compute(r->arg, deadline, err_r);
}

/* Answers and frees r (through the session when it went async). */
static void run_finish(struct sort_run *r, int ret, enum tern_error err)
{
	struct imap_session *s = r->s;
	r->ops->finish(s, r->cmd, r->arg, ret < 0 ? -1 : 0, err);
	if (r->async)
		imap_command_finished(s);   /* frees r */
	else
		run_free(r);
}

static void run_resume(struct conn *c)
{
	struct imap_session *s = c->state;
	struct sort_run *r = s->cmd_state;
	if (r == NULL || s->cmd_state_free != run_free)
		return;
	enum tern_error err = TERN_ERR_NONE;
	int ret = run_slice(r, &err);
	if (ret == 0)
		conn_yield(c, run_resume);
	else
		run_finish(r, ret, err);
}

enum imap_cmd_result imap_sort_run(struct imap_session *s, struct imap_cmd *cmd,
				   struct imap_search_program *prog,
				   const struct imap_sort_run_ops *ops, void *arg)
{
	struct sort_run *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		ops->finish(s, cmd, arg, -1, TERN_ERR_NOMEM);
		ops->free(arg);
		return IMAP_CMD_DONE;
	}
	*r = (struct sort_run){ .s = s, .cmd = cmd, .prog = prog, .ops = ops, .arg = arg };
	enum tern_error err = TERN_ERR_NONE;
	int ret = run_slice(r, &err);
	if (ret != 0) {
		run_finish(r, ret, err);
		return IMAP_CMD_DONE;
	}
	r->async = true;
	s->cmd_state = r;
	s->cmd_state_free = run_free;
	conn_yield(s->conn, run_resume);
	return IMAP_CMD_ASYNC;
}

static bool header_complete(const char *d, size_t n)
{
	return memmem(d, n, "\r\n\r\n", 4) != NULL || memmem(d, n, "\n\n", 2) != NULL;
}

int imap_sort_read_header(struct imap_session *s, uint32_t uid, char **data_r, size_t *size_r,
			  enum tern_error *err_r)
{
	char *d = NULL;
	size_t n = 0;
	uint64_t total = 0;
	int r = store_msg_raw_range(s->store, s->view->folder, uid, 0, TERN_SORT_HEAD_FIRST, &d, &n, &total,
				    err_r);
	if (r <= 0)
		return r;
	if (total > n && !header_complete(d, n)) {
		free(d);
		d = NULL;
		r = store_msg_raw_range(s->store, s->view->folder, uid, 0, TERN_SORT_HEAD_MAX, &d, &n, NULL,
					err_r);
		if (r <= 0)
			return r;
	}
	*data_r = d;
	*size_r = n;
	return 1;
}
