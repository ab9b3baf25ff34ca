/* Updating SEARCH and SORT contexts (RFC 5267 §4.3): see search-context.h.
 * Each context keeps its result as ascending UIDs (for membership) and, for
 * SORT, the matches with their sort keys in sort order (for positions).
 * A batch of changes costs one pass over each context's result plus the
 * evaluation of the changed messages alone.
 *
 * Both are bounded, since a sync runs on the loop thread in one go and the
 * results live as long as the selection: the text one sync may read
 * (CONTEXT_SYNC_BYTES besides IMAP_SEARCH_CONTEXT_READS) and what a
 * session's contexts may keep (CONTEXT_KEEP_BYTES); a context that would go
 * past either ends with "* NO [NOUPDATE tag]" (RFC 5267 §4.3.1 lets the
 * server refuse or end one), and one past the second is refused at once. */
#include "proto/imap/search-context.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"
#include "proto/imap/quote.h"
#include "proto/imap/search-eval.h"
#include "proto/imap/seqset.h"
#include "store/store.h"

/* Bytes of message text one sync may read for all contexts together, on
 * top of IMAP_SEARCH_CONTEXT_READS: 256 reads of 2 MiB messages held the
 * loop thread for 6 s. The sync's first read is never refused (a message
 * as big as SEARCH reads in one step), so one big new message alone does
 * not end a BODY context. */
#define CONTEXT_SYNC_BYTES  (8u << 20)
/* Bytes the contexts of one session may keep: their results (4 bytes a
 * UID) and, for SORT, every match's sort keys (about 180 bytes with
 * SUBJECT and FROM): 16 SORT contexts over a million messages would keep
 * about 3 GB. This keeps 8 million UIDs, or about 180,000 sorted matches. */
#define CONTEXT_KEEP_BYTES  (32u << 20)
/* Keys of a program a context may follow, and of them text keys (HEADER
 * and the address and subject keys, BODY, TEXT): each changed message is
 * evaluated against every key, and each text key scans the text read. 16
 * contexts of 7,000 FLAGGED keys each held the loop thread for 70 s when
 * 32,768 messages were flagged. A real client's list view has a few keys. */
#define CONTEXT_KEYS_MAX      64
#define CONTEXT_TEXT_KEYS_MAX 8
/* Work one sync may do for all contexts, in key evaluations (a message
 * costs its context's keys plus CONTEXT_MSG_WORK): about 20 ns each, so
 * some 40 ms at most. A context whose share would go past it ends (the
 * changes it would have to follow: n messages times its keys). */
#define CONTEXT_SYNC_WORK     2000000u
#define CONTEXT_MSG_WORK      4u

struct context {
	char *tag;
	bool uid;                          /* UID SEARCH/SORT: updates carry UIDs */
	struct imap_search_program *search;/* owned, or the sort program's */
	struct imap_sort_program *sort;    /* SORT context, else NULL */
	unsigned needs;                    /* imap_sort_cache_needs */
	uint32_t *saved;                   /* "$" as the search saw it */
	size_t saved_count;
	uint32_t *uids;                    /* the result, ascending */
	struct imap_sort_msg *msgs;        /* SORT: the result in sort order */
	size_t count;
	size_t bytes;                      /* what the result costs (see entry_bytes) */
	unsigned keys, text_keys;          /* of the program (see CONTEXT_KEYS_MAX) */
};

struct imap_search_contexts {
	struct context *c[IMAP_SEARCH_CONTEXTS_MAX];
	size_t n;
	size_t bytes;                      /* of all contexts' results */
	const char *refused;               /* why the last one was refused */
};

static void context_free(struct context **_k);

/* What one SORT match costs a context: its entry, its UID, its keys
 * (each a heap block: about 16 bytes of the allocator's besides). */
static size_t entry_bytes(const struct imap_sort_msg *m)
{
	size_t b = sizeof(*m) + sizeof(uint32_t);
	for (size_t j = 0; j <= IMAP_SORT_DISPLAYTO; j++)
		if (m->keys[j] != NULL)
			b += strlen(m->keys[j]) + 1 + 16;
	return b;
}

/* Takes k out of c (its place goes to the last one) and frees it. */
static void context_drop(struct imap_search_contexts *c, size_t i)
{
	c->bytes -= c->c[i]->bytes;
	context_free(&c->c[i]);
	c->c[i] = c->c[--c->n];
}

static void context_free(struct context **_k)
{
	struct context *k = *_k;
	*_k = NULL;
	if (k == NULL)
		return;
	if (k->sort != NULL)
		imap_sort_program_free(&k->sort);
	else
		imap_search_program_free(&k->search);
	imap_sort_msgs_free(&k->msgs, k->count);
	free(k->uids);
	free(k->saved);
	free(k->tag);
	free(k);
}

void imap_contexts_free(struct imap_search_contexts **_c)
{
	struct imap_search_contexts *c = *_c;
	*_c = NULL;
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		context_free(&c->c[i]);
	free(c);
}

bool imap_context_tag_in_use(const struct imap_session *s, const char *tag)
{
	const struct imap_search_contexts *c = s->view != NULL ? s->view->contexts : NULL;
	for (size_t i = 0; c != NULL && i < c->n; i++)
		if (strcmp(c->c[i]->tag, tag) == 0)
			return true;
	return false;
}

bool imap_context_cancel(struct imap_session *s, const char *tag)
{
	struct imap_search_contexts *c = s->view != NULL ? s->view->contexts : NULL;
	for (size_t i = 0; c != NULL && i < c->n; i++) {
		if (strcmp(c->c[i]->tag, tag) != 0)
			continue;
		context_drop(c, i);
		return true;
	}
	return false;
}

/* A new context with the common fields, or NULL (limit: *full_r). */
static struct context *context_new(struct imap_session *s, const struct imap_cmd *cmd,
				   const uint32_t *saved, size_t saved_count, bool *full_r)
{
	struct imap_view *v = s->view;
	*full_r = false;
	if (v->contexts == NULL && (v->contexts = calloc(1, sizeof(*v->contexts))) == NULL)
		return NULL;
	if (v->contexts->n >= IMAP_SEARCH_CONTEXTS_MAX) {
		v->contexts->refused = "Too many contexts";
		*full_r = true;
		return NULL;
	}
	struct context *k = calloc(1, sizeof(*k));
	if (k == NULL || (k->tag = strdup(cmd->tag)) == NULL ||
	    (k->saved = malloc(saved_count * sizeof(*saved) + 1)) == NULL) {
		context_free(&k);
		return NULL;
	}
	if (saved_count > 0)
		memcpy(k->saved, saved, saved_count * sizeof(*saved));
	k->saved_count = saved_count;
	k->uid = cmd->uid;
	return k;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* "* NO [NOUPDATE tag] why" */
static void noupdate(struct imap_session *s, const char *tag, const char *why)
{
	imap_out_add(s, "* NO [NOUPDATE ", 15);
	imap_out_check(s, imap_write_quoted(imap_out(s), tag, strlen(tag)));
	imap_out_printf(s, "] %s\r\n", why);
}

void imap_context_refused(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_search_contexts *c = s->view != NULL ? s->view->contexts : NULL;
	noupdate(s, cmd->tag, c != NULL && c->refused != NULL ? c->refused : "Too many contexts");
}

/* Whether bytes more fit in what the session's contexts may keep. */
static bool keep_allowed(const struct imap_search_contexts *c, size_t bytes)
{
	return bytes <= CONTEXT_KEEP_BYTES && c->bytes <= CONTEXT_KEEP_BYTES - bytes;
}

/* Counts the keys of the tree at key, and the text keys among them. */
static void count_keys(const struct imap_search_key *key, unsigned *keys, unsigned *text)
{
	(*keys)++;
	if (key->type == IMAP_SK_HEADER || key->type == IMAP_SK_BODY || key->type == IMAP_SK_TEXT)
		(*text)++;
	for (size_t i = 0; i < key->child_count && *keys <= CONTEXT_KEYS_MAX; i++)
		count_keys(&key->children[i], keys, text);
}

/* Whether k may follow prog (its key counts go to k). */
static bool program_allowed(struct imap_search_contexts *c, struct context *k,
			    const struct imap_search_program *prog)
{
	count_keys(prog->root, &k->keys, &k->text_keys);
	if (k->keys <= CONTEXT_KEYS_MAX && k->text_keys <= CONTEXT_TEXT_KEYS_MAX)
		return true;
	c->refused = "Search too complex to follow";
	return false;
}

/* A context too big to keep: refused like one too many. 0 */
static int refuse_big(struct imap_search_contexts *c, struct context **k, bool *full_r)
{
	c->refused = "Too many results to keep";
	*full_r = true;
	context_free(k);
	return 0;
}

int imap_context_add_search(struct imap_session *s, const struct imap_cmd *cmd,
			    struct imap_search_program **prog, const uint32_t *uids, size_t count,
			    const uint32_t *saved, size_t saved_count)
{
	bool full;
	struct context *k = context_new(s, cmd, saved, saved_count, &full);
	if (k == NULL)
		return full ? 0 : -1;
	if (!program_allowed(s->view->contexts, k, *prog)) {
		context_free(&k);
		return 0;
	}
	/* its copy of "$" counts too */
	size_t bytes = (count + saved_count) * sizeof(*uids);
	if (!keep_allowed(s->view->contexts, bytes))
		return refuse_big(s->view->contexts, &k, &full);
	if ((k->uids = malloc(count * sizeof(*uids) + 1)) == NULL) {
		context_free(&k);
		return -1;
	}
	if (count > 0)
		memcpy(k->uids, uids, count * sizeof(*uids));
	k->search = *prog;
	k->count = count;
	k->bytes = bytes;
	*prog = NULL;
	s->view->contexts->bytes += k->bytes;
	s->view->contexts->c[s->view->contexts->n++] = k;
	return 1;
}

int imap_context_add_sort(struct imap_session *s, const struct imap_cmd *cmd,
			  struct imap_sort_program **prog, struct imap_sort_msg **msgs,
			  size_t count, const uint32_t *saved, size_t saved_count)
{
	bool full;
	struct context *k = context_new(s, cmd, saved, saved_count, &full);
	if (k == NULL)
		return full ? 0 : -1;
	if (!program_allowed(s->view->contexts, k, (*prog)->search)) {
		context_free(&k);
		return 0;
	}
	struct imap_sort_msg *m = *msgs;
	size_t bytes = saved_count * sizeof(*saved);
	for (size_t i = 0; i < count; i++)
		bytes += entry_bytes(&m[i]);
	if (!keep_allowed(s->view->contexts, bytes))
		return refuse_big(s->view->contexts, &k, &full);
	if ((k->uids = malloc(count * sizeof(*k->uids) + 1)) == NULL) {
		context_free(&k);
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		k->uids[i] = m[i].uid;
		/* UIDs keep the order sequence numbers have and do not shift:
		 * the tie break stays the same as messages come and go */
		m[i].seq = m[i].uid;
	}
	qsort(k->uids, count, sizeof(*k->uids), cmp_u32);
	k->sort = *prog;
	k->search = k->sort->search;
	k->needs = imap_sort_cache_needs(k->sort);
	k->msgs = m;
	k->count = count;
	k->bytes = bytes;
	*prog = NULL;
	*msgs = NULL;
	s->view->contexts->bytes += bytes;
	s->view->contexts->c[s->view->contexts->n++] = k;
	return 1;
}

/* ---- updates ---- */

/* ADDTO or REMOVEFROM payload: pairs of a position and a run of ids
 * (RFC 5267 §4.3.2); pair i holds ids[end[i-1] .. end[i]). */
struct pairs {
	uint32_t *pos;
	size_t *end;
	size_t n;
	uint32_t *ids;
	size_t nids;
};

static int pairs_init(struct pairs *p, size_t max)
{
	*p = (struct pairs){ .pos = malloc((max + 1) * sizeof(*p->pos)),
			     .end = malloc((max + 1) * sizeof(*p->end)),
			     .ids = malloc((max + 1) * sizeof(*p->ids)) };
	return p->pos != NULL && p->end != NULL && p->ids != NULL ? 0 : -1;
}

static void pairs_clear(struct pairs *p)
{
	free(p->pos);
	free(p->end);
	free(p->ids);
	*p = (struct pairs){ 0 };
}

/* Appends id at pos, extending the last pair when it continues it:
 * for ADDTO the next position after the run, for REMOVEFROM the same one
 * (the run's first result occupies pos before removal, §4.3.4). */
static void pairs_add(struct pairs *p, uint32_t pos, uint32_t id, bool removing)
{
	if (p->n > 0) {
		size_t start = p->n > 1 ? p->end[p->n - 2] : 0;
		uint32_t next = removing ? p->pos[p->n - 1]
					 : p->pos[p->n - 1] + (uint32_t)(p->end[p->n - 1] - start);
		if (pos == next) {
			p->ids[p->nids++] = id;
			p->end[p->n - 1] = p->nids;
			return;
		}
	}
	p->ids[p->nids++] = id;
	p->pos[p->n] = pos;
	p->end[p->n++] = p->nids;
}

static void write_item(struct imap_session *s, const struct context *k, const char *item,
		       const struct pairs *p)
{
	if (p->nids == 0)
		return;
	imap_out_printf(s, " %s (", item);
	if (k->sort == NULL) {
		/* SEARCH: position 0, the set in mailbox order (§4.3.3) */
		imap_out_add(s, "0 ", 2);
		imap_out_check(s, imap_seqset_write(imap_out(s), p->ids, p->nids));
	}
	for (size_t i = 0; k->sort != NULL && i < p->n; i++) {
		size_t start = i > 0 ? p->end[i - 1] : 0;
		imap_out_printf(s, i > 0 ? " %" PRIu32 " " : "%" PRIu32 " ", p->pos[i]);
		/* in requested order: only ascending runs become ranges (§3.2) */
		imap_out_check(s, imap_seqset_write(imap_out(s), p->ids + start, p->end[i] - start));
	}
	imap_out_add(s, ")", 1);
}

static void write_update(struct imap_session *s, const struct context *k,
			 const struct pairs *removed, const struct pairs *added)
{
	if (removed->nids == 0 && (added == NULL || added->nids == 0))
		return;
	imap_out_add(s, "* ESEARCH (TAG ", 15);
	imap_out_check(s, imap_write_quoted(imap_out(s), k->tag, strlen(k->tag)));
	imap_out_add(s, k->uid ? ") UID" : ")", k->uid ? 5 : 1);
	write_item(s, k, "REMOVEFROM", removed);
	if (added != NULL)
		write_item(s, k, "ADDTO", added);
	imap_out_add(s, "\r\n", 2);
}

static bool uid_in(const uint32_t *set, size_t n, uint32_t uid)
{
	return bsearch(&uid, set, n, sizeof(*set), cmp_u32) != NULL;
}

static uint32_t id_of(const struct imap_session *s, const struct context *k, uint32_t uid)
{
	return k->uid ? uid : imap_view_seq(s->view, uid);
}

/* Drops the UIDs of rm (ascending, all members) from k, recording each
 * with its position at the time it goes. 0 or -1 (out of memory: k is
 * unchanged). */
static int context_remove(const struct imap_session *s, struct context *k, const uint32_t *rm,
			  size_t nrm, struct pairs *out)
{
	if (pairs_init(out, nrm) < 0)
		return -1;
	if (nrm == 0)
		return 0;
	size_t w = 0, before = k->count, bytes = k->bytes;
	struct imap_search_contexts *c = s->view->contexts;
	if (k->sort == NULL) {
		for (size_t r = 0; r < k->count; r++) {
			if (uid_in(rm, nrm, k->uids[r]))
				pairs_add(out, 0, id_of(s, k, k->uids[r]), true);
			else
				k->uids[w++] = k->uids[r];
		}
		k->bytes -= (k->count - w) * sizeof(*k->uids);
		c->bytes -= bytes - k->bytes;
		k->count = w;
		return 0;
	}
	for (size_t r = 0; r < k->count; r++) {
		struct imap_sort_msg *m = &k->msgs[r];
		if (!uid_in(rm, nrm, m->uid)) {
			k->msgs[w++] = *m;
			continue;
		}
		/* those before it that went are gone already: it is at w + 1 */
		pairs_add(out, (uint32_t)(w + 1), id_of(s, k, m->uid), true);
		k->bytes -= entry_bytes(m);
		for (size_t j = 0; j <= IMAP_SORT_DISPLAYTO; j++)
			free(m->keys[j]);
	}
	k->count = w;
	c->bytes -= bytes - k->bytes;
	w = 0;
	for (size_t r = 0; r < before; r++)
		if (!uid_in(rm, nrm, k->uids[r]))
			k->uids[w++] = k->uids[r];
	return 0;
}

/* Merges add (ascending, none a member) into k->uids. */
static int uids_merge(struct context *k, const uint32_t *add, size_t nadd)
{
	uint32_t *u = malloc((k->count + nadd + 1) * sizeof(*u));
	if (u == NULL)
		return -1;
	size_t i = 0, j = 0, w = 0;
	while (i < k->count || j < nadd)
		u[w++] = j == nadd || (i < k->count && k->uids[i] < add[j]) ? k->uids[i++] : add[j++];
	free(k->uids);
	k->uids = u;
	return 0;
}

/* Sort keys of a new match. 0, or -1 (out of memory or store error). */
static int sort_msg_fill(struct imap_session *s, const struct context *k,
			 const struct store_msg *sm, struct imap_sort_msg *m)
{
	*m = (struct imap_sort_msg){ .seq = sm->uid, .uid = sm->uid, .arrival = sm->internal_date,
				     .date = sm->internal_date, .size = sm->size,
				     .modseq = sm->modseq };
	if (k->needs == 0)
		return 0;
	struct store_msg_cache c = { 0 };
	enum tern_error err;
	if (store_msg_cache(s->store, s->view->folder, sm->uid, &c, &err) < 0)
		return -1;
	int r = imap_sort_fill_keys(m, k->needs, c.envelope, c.subject, c.sent_date);
	store_msg_cache_clear(&c);
	return r;
}

/* The first place at or after from where m goes in k's sort order. */
static size_t sort_place(const struct context *k, size_t from, const struct imap_sort_msg *m)
{
	size_t lo = from, hi = k->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (imap_sort_compare(&k->msgs[mid], m, k->sort) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Adds the messages add[0..nadd) (ascending UIDs, none a member) to k,
 * recording each with the position it takes. 0, -1 (k unchanged), or 1
 * when the session's contexts could not keep them (k unchanged). */
static int context_insert(struct imap_session *s, struct context *k,
			  const struct store_msg *const *add, size_t nadd, struct pairs *out)
{
	if (pairs_init(out, nadd) < 0)
		return -1;
	if (nadd == 0)
		return 0;
	uint32_t *uids = malloc(nadd * sizeof(*uids));
	struct imap_sort_msg *fresh = k->sort != NULL ? calloc(nadd, sizeof(*fresh)) : NULL;
	struct imap_sort_msg *merged = k->sort != NULL ?
		malloc((k->count + nadd + 1) * sizeof(*merged)) : NULL;
	int ret = uids == NULL || (k->sort != NULL && (fresh == NULL || merged == NULL)) ? -1 : 0;
	size_t added = k->sort == NULL ? nadd * sizeof(*uids) : 0;
	/* what they cost at least: refused before their keys are made */
	if (ret == 0 && !keep_allowed(s->view->contexts,
				      nadd * (k->sort != NULL ? sizeof(*fresh) + sizeof(*uids)
							      : sizeof(*uids))))
		ret = 1;
	for (size_t i = 0; ret == 0 && i < nadd; i++) {
		uids[i] = add[i]->uid;
		if (k->sort != NULL && sort_msg_fill(s, k, add[i], &fresh[i]) < 0)
			ret = -1;
		else if (k->sort != NULL)
			added += entry_bytes(&fresh[i]);
	}
	if (ret == 0 && !keep_allowed(s->view->contexts, added))
		ret = 1;
	if (ret == 0 && uids_merge(k, uids, nadd) < 0)
		ret = -1;
	if (ret != 0) {
		if (fresh != NULL)
			imap_sort_msgs_free(&fresh, nadd);
		free(merged);
		free(uids);
		return ret;
	}
	if (k->sort == NULL) {
		for (size_t i = 0; i < nadd; i++)
			pairs_add(out, 0, id_of(s, k, uids[i]), false);
	} else {
		/* the new ones in sort order, then one merge: each takes its
		 * final place, and the earlier ones are in place before it.
		 * Places are found by binary search, so a few new ones in a
		 * big result cost a few comparisons and block copies. */
		imap_sort_order(fresh, nadd, k->sort);
		size_t i = 0, w = 0;
		for (size_t j = 0; j < nadd; j++) {
			size_t p = sort_place(k, i, &fresh[j]);
			if (p > i)
				memcpy(merged + w, k->msgs + i, (p - i) * sizeof(*merged));
			w += p - i;
			i = p;
			pairs_add(out, (uint32_t)(w + 1), id_of(s, k, fresh[j].uid), false);
			merged[w++] = fresh[j];
		}
		if (k->count > i)
			memcpy(merged + w, k->msgs + i, (k->count - i) * sizeof(*merged));
		free(k->msgs);
		free(fresh);
		k->msgs = merged;
	}
	k->count += nadd;
	k->bytes += added;
	s->view->contexts->bytes += added;
	free(uids);
	return 0;
}

/* ---- hooks ---- */

void imap_contexts_expunging(struct imap_session *s, const size_t *idx, size_t n)
{
	struct imap_view *v = s->view;
	struct imap_search_contexts *c = v != NULL ? v->contexts : NULL;
	if (c == NULL || c->n == 0 || n == 0)
		return;
	uint32_t *rm = malloc(n * sizeof(*rm));
	if (rm == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		struct context *k = c->c[i];
		size_t nrm = 0;
		for (size_t j = 0; j < n; j++)
			if (uid_in(k->uids, k->count, v->msgs[idx[j]].uid))
				rm[nrm++] = v->msgs[idx[j]].uid;
		struct pairs removed;
		if (nrm > 0 && context_remove(s, k, rm, nrm, &removed) == 0) {
			struct pairs none = { 0 };
			write_update(s, k, &removed, &none);
		}
		if (nrm > 0)
			pairs_clear(&removed);
	}
	free(rm);
}

/* What one sync may still read, for all its contexts. */
struct sync_budget {
	size_t reads_left;         /* IMAP_SEARCH_CONTEXT_READS */
	uint64_t bytes_read;       /* of CONTEXT_SYNC_BYTES, times the text keys
	                              that scan them */
	uint64_t work_left;        /* CONTEXT_SYNC_WORK */
};

struct load_arg {
	struct imap_session *s;
	struct sync_budget *budget;
	unsigned scans;            /* the context's text keys (at least 1) */
	bool over;                 /* a read was refused for want of it */
};

/* Takes one read from the sync's budget; false (and l->over) when none is
 * left. */
static bool read_allowed(struct load_arg *l)
{
	if (l->budget->reads_left == 0) {
		l->over = true;
		return false;
	}
	l->budget->reads_left--;
	return true;
}

/* Reads a message's text, or its head, within the sync's bytes (each
 * counted once per text key that scans it): a message longer than what is
 * left is not read past that (l->over). The sync's first read may be as
 * long as the message when one key scans it, as one step of SEARCH. */
static int context_load(void *arg, uint32_t uid, bool head_only, char **data_r, size_t *size_r,
			uint64_t *total_r)
{
	struct load_arg *l = arg;
	struct sync_budget *b = l->budget;
	enum tern_error err;
	if (!read_allowed(l))
		return -1;
	uint64_t left = b->bytes_read == 0 && l->scans == 1 ? UINT64_MAX
		      : b->bytes_read < CONTEXT_SYNC_BYTES
		      ? (CONTEXT_SYNC_BYTES - b->bytes_read) / l->scans : 0;
	uint64_t want = head_only ? TERN_SEARCH_HEAD_BYTES : left;
	if (left < want || left == 0) {
		l->over = true;
		return -1;
	}
	char *data = NULL;
	size_t size = 0;
	uint64_t total = 0;
	int r = store_msg_raw_range(l->s->store, l->s->view->folder, uid, 0, want, &data, &size,
				    &total, &err);
	if (r > 0 && !head_only && size < total) {
		free(data);
		l->over = true;
		return -1;
	}
	if (r > 0) {
		b->bytes_read += (uint64_t)size * l->scans;
		*data_r = data;
		*size_r = size;
		*total_r = total;
	}
	return r;
}

/* 1 the message matches k's program, 0 not, -1 it could not be read (or
 * l->over: the budget is spent). */
static int context_match(struct imap_session *s, const struct context *k,
			 const struct store_msg *m, uint32_t seq, struct load_arg *l)
{
	struct imap_search_ctx ctx = {
		.now = time(NULL), .saved = k->saved, .saved_count = k->saved_count,
		.load = context_load, .load_arg = l,
	};
	/* flags and keywords as the view has them: the same values, and the
	 * sync has moved the keywords out of m */
	const struct imap_view_msg *vm = &s->view->msgs[seq - 1];
	struct imap_search_msg sm = {
		.seq = seq, .uid = m->uid, .flags = vm->flags, .keywords = vm->keywords,
		.modseq = m->modseq, .internal_date = m->internal_date,
		.internal_tz = m->internal_tz, .size = m->size,
		.recent = imap_view_is_recent(s->view, m->uid), .save_date = m->save_date,
		.emailid = m->emailid,
	};
	return imap_search_match(&ctx, k->search->root, &sm);
}

/* Evaluates the changed messages (seq[i] != 0: in the view) against k and
 * reports what joined and what left. NULL, or why k must end (nothing was
 * sent): the reads it needs are over the sync's budget, or the session's
 * contexts cannot keep its grown result. */
static const char *context_changed(struct imap_session *s, struct context *k,
			    const struct store_msg *msgs, const uint32_t *seq, size_t n,
			    uint32_t *rm, const struct store_msg **add, struct load_arg *l)
{
	size_t nrm = 0, nadd = 0;
	for (size_t i = 0; i < n; i++) {
		if (seq[i] == 0)
			continue;
		int r = context_match(s, k, &msgs[i], seq[i], l);
		if (l->over)
			return "Too many changes to follow";
		if (r < 0)
			continue;   /* unreadable (expunged meanwhile): leave it be */
		bool member = uid_in(k->uids, k->count, msgs[i].uid);
		if (r > 0 && !member)
			add[nadd++] = &msgs[i];
		else if (r == 0 && member)
			rm[nrm++] = msgs[i].uid;
	}
	if (nrm == 0 && nadd == 0)
		return NULL;
	/* SORT keys of the new ones: one cached-parse read each */
	for (size_t i = 0; k->sort != NULL && k->needs != 0 && i < nadd; i++)
		if (!read_allowed(l))
			return "Too many changes to follow";
	struct pairs removed = { 0 }, added = { 0 };
	const char *end = NULL;
	int inserted = -1;
	if (context_remove(s, k, rm, nrm, &removed) == 0 &&
	    (inserted = context_insert(s, k, add, nadd, &added)) == 0)
		write_update(s, k, &removed, &added);
	else if (inserted > 0)
		end = "Too many results to keep";
	else
		/* out of memory: the client learns what was applied */
		write_update(s, k, &removed, NULL);
	pairs_clear(&removed);
	pairs_clear(&added);
	return end;
}

void imap_contexts_changed(struct imap_session *s, const struct store_msg *msgs, size_t n)
{
	struct imap_view *v = s->view;
	struct imap_search_contexts *c = v != NULL ? v->contexts : NULL;
	if (c == NULL || c->n == 0 || n == 0)
		return;
	uint32_t *seq = malloc(n * sizeof(*seq));
	uint32_t *rm = malloc(n * sizeof(*rm));
	const struct store_msg **add = malloc(n * sizeof(*add));
	if (seq != NULL && rm != NULL && add != NULL) {
		size_t cursor = 0;
		struct sync_budget budget = { .reads_left = IMAP_SEARCH_CONTEXT_READS,
					      .work_left = CONTEXT_SYNC_WORK };
		size_t in_view = 0;
		for (size_t i = 0; i < n; i++) {
			seq[i] = imap_view_seq_walk(v, msgs[i].uid, &cursor);
			in_view += seq[i] != 0;
		}
		uint32_t max_uid = v->count > 0 ? v->msgs[v->count - 1].uid : 0;
		for (size_t i = 0; i < c->n;) {
			struct context *k = c->c[i];
			struct load_arg l = { .s = s, .budget = &budget,
					      .scans = k->text_keys > 0 ? k->text_keys : 1 };
			uint64_t work = (uint64_t)in_view * (k->keys + CONTEXT_MSG_WORK);
			const char *end = NULL;
			if (work > budget.work_left)
				end = "Too many changes to follow";
			else
				budget.work_left -= work;
			/* "*" is the highest number now, as in the same command
			 * issued now (§4.3); out of memory: next time */
			if (end == NULL &&
			    (imap_search_prepare(k->search, (uint32_t)v->count, max_uid) < 0 ||
			     (end = context_changed(s, k, msgs, seq, n, rm, add, &l)) == NULL)) {
				i++;
				continue;
			}
			/* following it would take more than one sync may do on
			 * the loop thread, or keep more than a session may: it
			 * ends, and the client is told as when a context is
			 * refused (RFC 5267 §4.3.1) */
			noupdate(s, c->c[i]->tag, end);
			context_drop(c, i);
		}
	}
	free(seq);
	free(rm);
	free(add);
}
