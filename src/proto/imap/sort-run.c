/* SORT/THREAD search step: see sort-run.h. Same evaluation as SEARCH: the
 * view is joined by UID with the store's current metadata (messages
 * expunged meanwhile drop out) and message text is read only for messages
 * the cheap keys leave undecided. */
#include "proto/imap/sort-run.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/imap/search-eval.h"
#include "proto/imap/session.h"
#include "store/store.h"

/* Most headers end within this; longer ones are read up to HEAD_MAX. */
#define HEAD_FIRST (8u * 1024)
#define HEAD_MAX (256u * 1024)
/* A header-only search read (as in SEARCH). */
#define SEARCH_HEAD_BYTES (16u * 1024)

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
		return store_msg_raw_range(s->store, s->view->folder, uid, 0, SEARCH_HEAD_BYTES,
					   data_r, size_r, total_r, &l->err);
	int r = store_msg_raw(s->store, s->view->folder, uid, data_r, size_r, &l->err);
	if (r > 0)
		*total_r = *size_r;
	return r;
}

int imap_sort_search(struct imap_session *s, struct imap_search_program *prog,
		     struct imap_sort_match **matches_r, size_t *count_r, uint64_t *max_modseq_r,
		     enum tern_error *err_r)
{
	struct imap_view *v = s->view;
	struct store_msg *list = NULL;
	size_t list_count = 0, li = 0, n = 0;
	uint64_t max_modseq = 0;
	if (store_msg_list(s->store, v->folder, &list, &list_count, err_r) < 0)
		return -1;
	struct load_ctx l = { .s = s, .err = TERN_ERR_NONE };
	struct imap_search_ctx ctx = {
		.now = time(NULL), .saved = v->saved, .saved_count = v->saved_count,
		.load = load, .load_arg = &l,
	};
	struct imap_sort_match *m = malloc((v->count + 1) * sizeof(*m));
	if (m == NULL || imap_search_prepare(prog, (uint32_t)v->count,
					     v->count > 0 ? v->msgs[v->count - 1].uid : 0) < 0) {
		free(m);
		store_msgs_free(&list, list_count);
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	for (size_t i = 0; i < v->count; i++) {
		uint32_t uid = v->msgs[i].uid;
		while (li < list_count && list[li].uid < uid)
			li++;
		if (li == list_count || list[li].uid != uid)
			continue;
		const struct store_msg *sm = &list[li];
		struct imap_search_msg q = {
			.seq = (uint32_t)(i + 1), .uid = uid, .flags = sm->flags,
			.keywords = sm->keywords, .modseq = sm->modseq,
			.internal_date = sm->internal_date, .internal_tz = sm->internal_tz,
			.size = sm->size, .recent = imap_view_is_recent(v, uid),
		};
		int r = imap_search_match(&ctx, prog->root, &q);
		if (r < 0) {
			free(m);
			store_msgs_free(&list, list_count);
			*err_r = l.err != TERN_ERR_NONE ? l.err : TERN_ERR_IO;
			return -1;
		}
		if (r == 0)
			continue;
		m[n++] = (struct imap_sort_match){ q.seq, uid, sm->internal_date, sm->size,
						   sm->modseq };
		if (sm->modseq > max_modseq)
			max_modseq = sm->modseq;
	}
	store_msgs_free(&list, list_count);
	*matches_r = m;
	*count_r = n;
	*max_modseq_r = max_modseq;
	return 0;
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
	int r = store_msg_raw_range(s->store, s->view->folder, uid, 0, HEAD_FIRST, &d, &n, &total,
				    err_r);
	if (r <= 0)
		return r;
	if (total > n && !header_complete(d, n)) {
		free(d);
		d = NULL;
		r = store_msg_raw_range(s->store, s->view->folder, uid, 0, HEAD_MAX, &d, &n, NULL,
					err_r);
		if (r <= 0)
			return r;
	}
	*data_r = d;
	*size_r = n;
	return 1;
}
