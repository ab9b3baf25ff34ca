/* Sequence sets: see seqset.h. The parsed form keeps "*" symbolic so one set
 * can be resolved against a mailbox that changes under an IDLE or a NOOP. */
#include "proto/imap/seqset.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/parser.h"

/* One element as written: a or a:b, each end possibly "*". */
struct raw_range {
	uint32_t a, b;
	bool a_star, b_star;
};

struct imap_seqset {
	struct raw_range *raw;
	size_t raw_count;
	bool saved, star;
	struct imap_seq_range *ranges;
	size_t count;
};

/* One seq-number: nz-number or "*". */
static bool parse_number(const char *s, size_t len, uint32_t *n_r, bool *star_r)
{
	if (len == 1 && s[0] == '*') {
		*star_r = true;
		*n_r = 0;
		return true;
	}
	/* nz-number = digit-nz *DIGIT: no leading zero, not 0. */
	if (len == 0 || s[0] == '0' || !imap_parse_u32(s, len, n_r))
		return false;
	*star_r = false;
	return true;
}

static bool parse_element(const char *s, size_t len, struct raw_range *r)
{
	const char *colon = memchr(s, ':', len);

	if (colon == NULL) {
		if (!parse_number(s, len, &r->a, &r->a_star))
			return false;
		r->b = r->a;
		r->b_star = r->a_star;
		return true;
	}
	size_t alen = (size_t)(colon - s);
	return parse_number(s, alen, &r->a, &r->a_star) &&
	       parse_number(colon + 1, len - alen - 1, &r->b, &r->b_star);
}

int imap_seqset_parse(const char *s, size_t len, struct imap_seqset **set_r)
{
	struct imap_seqset *set;

	if (len == 0)
		return -1;
	set = calloc(1, sizeof(*set));
	if (set == NULL)
		return -1;
	if (len == 1 && s[0] == '$') {
		set->saved = true;
		*set_r = set;
		return 0;
	}
	size_t elems = 1;
	for (size_t i = 0; i < len; i++)
		elems += s[i] == ',';
	set->raw = calloc(elems, sizeof(*set->raw));
	if (set->raw == NULL) {
		free(set);
		return -1;
	}
	for (size_t i = 0; i <= len;) {
		const char *comma = memchr(s + i, ',', len - i);
		size_t elen = (comma != NULL ? (size_t)(comma - s) : len) - i;
		struct raw_range *r = &set->raw[set->raw_count++];
		if (!parse_element(s + i, elen, r)) {
			imap_seqset_free(&set);
			return -1;
		}
		set->star |= r->a_star || r->b_star;
		i += elen + 1;
	}
	*set_r = set;
	return 0;
}

void imap_seqset_free(struct imap_seqset **_set)
{
	struct imap_seqset *set = *_set;

	if (set == NULL)
		return;
	free(set->raw);
	free(set->ranges);
	free(set);
	*_set = NULL;
}

bool imap_seqset_is_saved(const struct imap_seqset *set)
{
	return set->saved;
}

bool imap_seqset_has_star(const struct imap_seqset *set)
{
	return set->star;
}

static int range_cmp(const void *x, const void *y)
{
	const struct imap_seq_range *a = x, *b = y;
	return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Sorts and merges overlapping or adjacent ranges in place. */
static size_t normalise(struct imap_seq_range *r, size_t n)
{
	size_t out = 0;

	if (n > 1)
		qsort(r, n, sizeof(*r), range_cmp);
	for (size_t i = 0; i < n; i++) {
		if (out > 0 && (uint64_t)r[out - 1].hi + 1 >= r[i].lo) {
			if (r[i].hi > r[out - 1].hi)
				r[out - 1].hi = r[i].hi;
		} else {
			r[out++] = r[i];
		}
	}
	return out;
}

int imap_seqset_resolve(struct imap_seqset *set, uint32_t max)
{
	struct imap_seq_range *r = NULL;
	size_t n = 0;

	if (set->raw_count > 0) {
		r = malloc(set->raw_count * sizeof(*r));
		if (r == NULL)
			return -1;
	}
	for (size_t i = 0; i < set->raw_count; i++) {
		const struct raw_range *w = &set->raw[i];
		uint32_t a = w->a_star ? max : w->a, b = w->b_star ? max : w->b;
		struct imap_seq_range x = { a < b ? a : b, a < b ? b : a };
		if (x.lo == 0)
			x.lo = 1;
		if (x.hi >= x.lo)
			r[n++] = x;
	}
	free(set->ranges);
	set->ranges = r;
	set->count = normalise(r, n);
	return 0;
}

const struct imap_seq_range *imap_seqset_ranges(const struct imap_seqset *set, size_t *count_r)
{
	*count_r = set->count;
	return set->ranges;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	size_t lo = 0, hi = set->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (n < set->ranges[mid].lo)
			hi = mid;
		else if (n > set->ranges[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

uint64_t imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t total = 0;

	for (size_t i = 0; i < set->count; i++)
		total += (uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
	return total;
}

/* Calls fn for each maximal run of consecutive ascending numbers. */
static int for_each_run(const uint32_t *ids, size_t n,
			int (*fn)(void *ctx, uint32_t lo, uint32_t hi), void *ctx)
{
	size_t i = 0;

	while (i < n) {
		uint32_t lo = ids[i], hi = ids[i];
		for (i++; i < n && (ids[i] == hi || (hi != UINT32_MAX && ids[i] == hi + 1)); i++)
			hi = ids[i];
		if (fn(ctx, lo, hi) < 0)
			return -1;
	}
	return 0;
}

static int collect_run(void *ctx, uint32_t lo, uint32_t hi)
{
	struct imap_seqset *set = ctx;
	if (set->count > 0 && set->ranges[set->count - 1].hi >= lo)
		return -1;
	set->ranges[set->count++] = (struct imap_seq_range){ lo, hi };
	return 0;
}

int imap_seqset_from_sorted(const uint32_t *ids, size_t n, struct imap_seqset **set_r)
{
	struct imap_seqset *set = calloc(1, sizeof(*set));

	if (set == NULL)
		return -1;
	if (n > 0 && (set->ranges = malloc(n * sizeof(*set->ranges))) == NULL) {
		free(set);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == 0) {
			imap_seqset_free(&set);
			return -1;
		}
	}
	if (for_each_run(ids, n, collect_run, set) < 0) {
		imap_seqset_free(&set);
		return -1;
	}
	*set_r = set;
	return 0;
}

struct write_ctx {
	struct evbuffer *out;
	bool first;
};

static int write_run(void *ctx, uint32_t lo, uint32_t hi)
{
	struct write_ctx *w = ctx;
	int r = lo == hi ? evbuffer_add_printf(w->out, "%s%u", w->first ? "" : ",", lo)
			 : evbuffer_add_printf(w->out, "%s%u:%u", w->first ? "" : ",", lo, hi);
	w->first = false;
	return r < 0 ? -1 : 0;
}

int imap_seqset_write(struct evbuffer *out, const uint32_t *ids, size_t n)
{
	struct write_ctx w = { out, true };
	return for_each_run(ids, n, write_run, &w);
}

int imap_seqset_write_set(struct evbuffer *out, const struct imap_seqset *set)
{
	struct write_ctx w = { out, true };

	for (size_t i = 0; i < set->count; i++)
		if (write_run(&w, set->ranges[i].lo, set->ranges[i].hi) < 0)
			return -1;
	return 0;
}

char *imap_seqset_format(const uint32_t *ids, size_t n)
{
	struct evbuffer *buf = evbuffer_new();
	char *s = NULL;

	if (buf == NULL)
		return NULL;
	if (imap_seqset_write(buf, ids, n) == 0) {
		size_t len = evbuffer_get_length(buf);
		s = malloc(len + 1);
		if (s != NULL) {
			evbuffer_remove(buf, s, len);
			s[len] = '\0';
		}
	}
	evbuffer_free(buf);
	return s;
}
