/* SORT keys and ordering: see sort-order.h. */
#include "proto/imap/sort-order.h"

#include <glib.h>
#include <gmime/gmime.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/lock.h"
#include "proto/imap/sort-envelope.h"
#include "proto/imap/sort-subject.h"

unsigned imap_sort_cache_needs(const struct imap_sort_program *prog)
{
	unsigned needs = 0;
	for (size_t i = 0; i < prog->crit_count; i++) {
		enum imap_sort_key k = prog->crit[i].key;
		if (k != IMAP_SORT_ARRIVAL && k != IMAP_SORT_SIZE)
			needs |= 1u << k;
	}
	return needs;
}

/* addr-mailbox of the first address (RFC 5256: FROM, TO, CC). */
static char *mailbox_key(const char *envelope, enum imap_env_field f, int *err)
{
	struct imap_env_addr a;
	int r = imap_env_first_addr(envelope, f, &a);
	if (r < 0) {
		*err = -1;
		return NULL;
	}
	char *key = imap_sort_ascii_key(r > 0 && a.mailbox != NULL ? a.mailbox : "");
	if (r > 0)
		imap_env_addr_clear(&a);
	if (key == NULL)
		*err = -1;
	return key;
}

/* RFC 5957 §3: the decoded display name if not empty, else the addr-spec. */
static char *display_key(const char *envelope, enum imap_env_field f, int *err)
{
	struct imap_env_addr a;
	int r = imap_env_first_addr(envelope, f, &a);
	char *text = NULL;
	if (r < 0) {
		*err = -1;
		return NULL;
	}
	if (r > 0 && a.name != NULL) {
		char *dec = g_mime_utils_header_decode_phrase(NULL, a.name);
		if (dec != NULL) {
			g_strstrip(dec);
			if (*dec != '\0')
				text = g_strdup(dec);
			g_free(dec);
		}
	}
	if (text == NULL && r > 0)
		text = g_strdup_printf("%s%s%s", a.mailbox != NULL ? a.mailbox : "",
				       a.host != NULL && *a.host != '\0' ? "@" : "",
				       a.host != NULL ? a.host : "");
	if (r > 0)
		imap_env_addr_clear(&a);
	char *key = imap_sort_unicode_key(text != NULL ? text : "");
	g_free(text);
	if (key == NULL)
		*err = -1;
	return key;
}

int imap_sort_fill_keys(struct imap_sort_msg *m, unsigned needs, const char *envelope,
			const char *subject, int64_t sent_date)
{
	int err = 0;
	m->date = sent_date != 0 ? sent_date : m->arrival;
	for (unsigned k = 0; k <= IMAP_SORT_DISPLAYTO && err == 0; k++) {
		if ((needs & (1u << k)) == 0 || m->keys[k] != NULL)
			continue;
		switch ((enum imap_sort_key)k) {
		case IMAP_SORT_SUBJECT: {
			char *base = imap_base_subject(subject != NULL ? subject : "", NULL);
			m->keys[k] = base != NULL ? imap_sort_unicode_key(base) : NULL;
			free(base);
			if (m->keys[k] == NULL)
				err = -1;
			break;
		}
		case IMAP_SORT_FROM:
			m->keys[k] = mailbox_key(envelope, IMAP_ENV_FROM, &err);
			break;
		case IMAP_SORT_TO:
			m->keys[k] = mailbox_key(envelope, IMAP_ENV_TO, &err);
			break;
		case IMAP_SORT_CC:
			m->keys[k] = mailbox_key(envelope, IMAP_ENV_CC, &err);
			break;
		case IMAP_SORT_DISPLAYFROM:
			m->keys[k] = display_key(envelope, IMAP_ENV_FROM, &err);
			break;
		case IMAP_SORT_DISPLAYTO:
			m->keys[k] = display_key(envelope, IMAP_ENV_TO, &err);
			break;
		default:
			break;
		}
	}
	return err;
}

static int cmp_num(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_i64(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int compare(const void *pa, const void *pb, void *arg)
{
	const struct imap_sort_msg *a = pa, *b = pb;
	const struct imap_sort_program *prog = arg;
	for (size_t i = 0; i < prog->crit_count; i++) {
		enum imap_sort_key k = prog->crit[i].key;
		int c;
		switch (k) {
		case IMAP_SORT_ARRIVAL:
			c = cmp_i64(a->arrival, b->arrival);
			break;
		case IMAP_SORT_DATE:
			c = cmp_i64(a->date, b->date);
			break;
		case IMAP_SORT_SIZE:
			c = cmp_num(a->size, b->size);
			break;
		default:
			c = strcmp(a->keys[k] != NULL ? a->keys[k] : "",
				   b->keys[k] != NULL ? b->keys[k] : "");
			break;
		}
		if (c != 0)
			return prog->crit[i].reverse ? -c : c;
	}
	return cmp_num(a->seq, b->seq);
}

int imap_sort_compare(const struct imap_sort_msg *a, const struct imap_sort_msg *b,
		      const struct imap_sort_program *prog)
{
	return compare(a, b, (void *)prog);
}

/* ---- merge sort in steps ---- */

struct imap_index_sort {
	size_t n;
	size_t *src, *dst;   /* a merge pass reads src, writes dst; then they swap */
	imap_index_cmp *cmp;
	void *arg;
	size_t sorted;       /* runs: the indices before this are sorted runs */
	size_t width;        /* merge passes: length of the runs being merged */
	size_t mid, hi, i, j, k;   /* the pair [i..mid) + [j..hi) merging to dst[k..hi) */
};

struct imap_index_sort *imap_index_sort_new(size_t n, imap_index_cmp *cmp, void *arg)
{
	struct imap_index_sort *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->src = malloc((n + 1) * sizeof(*s->src));
	s->dst = n > TERN_INDEX_SORT_RUN ? malloc((n + 1) * sizeof(*s->dst)) : NULL;
	if (s->src == NULL || (n > TERN_INDEX_SORT_RUN && s->dst == NULL)) {
		imap_index_sort_free(&s);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		s->src[i] = i;
	s->n = n;
	s->cmp = cmp;
	s->arg = arg;
	return s;
}

static void pair_at(struct imap_index_sort *s, size_t lo)
{
	s->i = s->k = lo;
	s->mid = s->j = lo + s->width < s->n ? lo + s->width : s->n;
	s->hi = s->mid + s->width < s->n ? s->mid + s->width : s->n;
}

int imap_index_sort_step(struct imap_index_sort *s, uint64_t deadline_ms)
{
	/* runs: one qsort_r each (about half a millisecond for SORT keys) */
	while (s->sorted < s->n) {
		size_t len = s->n - s->sorted < TERN_INDEX_SORT_RUN ? s->n - s->sorted
								   : TERN_INDEX_SORT_RUN;
		qsort_r(s->src + s->sorted, len, sizeof(*s->src), s->cmp, s->arg);
		s->sorted += len;
		if (s->sorted < s->n && tern_now_ms() >= deadline_ms)
			return 0;
	}
	if (s->width == 0) {
		s->width = TERN_INDEX_SORT_RUN;
		pair_at(s, 0);
	}
	unsigned since_check = 0;
	while (s->width < s->n) {
		while (s->k < s->hi) {
			/* ties from the left run: stable, though a total order has none */
			if (s->i < s->mid &&
			    (s->j >= s->hi || s->cmp(&s->src[s->i], &s->src[s->j], s->arg) <= 0))
				s->dst[s->k++] = s->src[s->i++];
			else
				s->dst[s->k++] = s->src[s->j++];
			if (++since_check == TERN_SORT_MERGE_CHECK) {
				since_check = 0;
				if (tern_now_ms() >= deadline_ms)
					return 0;
			}
		}
		if (s->hi < s->n) {
			pair_at(s, s->hi);
			continue;
		}
		size_t *t = s->src;   /* the pass is done: its output is the next input */
		s->src = s->dst;
		s->dst = t;
		s->width = s->width > s->n / 2 ? s->n : s->width * 2;
		if (s->width < s->n)
			pair_at(s, 0);
	}
	return 1;
}

const size_t *imap_index_sort_result(const struct imap_index_sort *s)
{
	return s->src;
}

void imap_index_sort_free(struct imap_index_sort **_s)
{
	struct imap_index_sort *s = *_s;
	if (s == NULL)
		return;
	free(s->src);
	free(s->dst);
	free(s);
	*_s = NULL;
}

/* ---- SORT's ordering ---- */

struct imap_sort_ordering {
	struct imap_sort_msg *msgs;
	size_t count;
	const struct imap_sort_program *prog;
	struct imap_index_sort *sort;
	struct imap_sort_msg *out;   /* the messages in order, then copied back */
	bool done;                   /* msgs is in order: never permute twice */
};

static int compare_index(const void *pa, const void *pb, void *arg)
{
	const struct imap_sort_ordering *o = arg;
	return compare(&o->msgs[*(const size_t *)pa], &o->msgs[*(const size_t *)pb],
		       (void *)o->prog);
}

struct imap_sort_ordering *imap_sort_order_begin(struct imap_sort_msg *msgs, size_t count,
						 const struct imap_sort_program *prog)
{
	struct imap_sort_ordering *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return NULL;
	*o = (struct imap_sort_ordering){ .msgs = msgs, .count = count, .prog = prog };
	/* taken now, so that the last step cannot fail */
	o->out = malloc((count + 1) * sizeof(*o->out));
	o->sort = imap_index_sort_new(count, compare_index, o);
	if (o->out == NULL || o->sort == NULL)
		imap_sort_order_free(&o);
	return o;
}

int imap_sort_order_step(struct imap_sort_ordering *o, uint64_t deadline_ms)
{
	if (o->done)
		return 1;
	if (imap_index_sort_step(o->sort, deadline_ms) == 0)
		return 0;
	/* the structs move, their key strings with them: about 2 MB for
	 * 20,000 messages, well within a step */
	const size_t *order = imap_index_sort_result(o->sort);
	for (size_t i = 0; i < o->count; i++)
		o->out[i] = o->msgs[order[i]];
	if (o->count > 0)
		memcpy(o->msgs, o->out, o->count * sizeof(*o->msgs));
	o->done = true;
	return 1;
}

void imap_sort_order_free(struct imap_sort_ordering **_o)
{
	struct imap_sort_ordering *o = *_o;
	if (o == NULL)
		return;
	imap_index_sort_free(&o->sort);
	free(o->out);
	free(o);
	*_o = NULL;
}

void imap_sort_order(struct imap_sort_msg *msgs, size_t count,
		     const struct imap_sort_program *prog)
{
	if (count < 2)
		return;
	struct imap_sort_ordering *o = imap_sort_order_begin(msgs, count, prog);
	if (o != NULL) {
		(void)imap_sort_order_step(o, UINT64_MAX);
		imap_sort_order_free(&o);
		return;
	}
	/* out of memory for the index arrays: sort in place, same order */
	qsort_r(msgs, count, sizeof(*msgs), compare, (void *)prog);
}

void imap_sort_msgs_free(struct imap_sort_msg **_msgs, size_t count)
{
	struct imap_sort_msg *msgs = *_msgs;
	if (msgs == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		for (size_t k = 0; k <= IMAP_SORT_DISPLAYTO; k++)
			free(msgs[i].keys[k]);
	free(msgs);
	*_msgs = NULL;
}
