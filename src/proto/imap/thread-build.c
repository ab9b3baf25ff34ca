/* THREAD algorithms and writer: see thread-build.h. Containers live in one
 * array and point at each other by index (index 0 is a virtual root whose
 * children are the threads), so growing the array never leaves a dangling
 * pointer. Sibling lists are doubly linked, so unlinking is O(1): with a
 * scan of the parent's list instead, gathering the threads of a big folder
 * by subject (thousands of roots, each unlinked from the virtual root's
 * list) was quadratic, 14 ms of the 24 ms REFERENCES took on 20,000
 * messages.
 *
 * The build runs in steps (imap_thread_build_step), each a loop over
 * messages, roots or containers that looks at the clock every TERN_THREAD_STEP_CHECK
 * items, so that a big folder never holds the loop thread for long. */
#include "proto/imap/thread-build.h"

#include <event2/buffer.h>
#include <glib.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/lock.h"
#include "proto/imap/sort-order.h"

#define NONE UINT32_MAX
#define VROOT 0u

struct cont {
	int64_t msg;             /* index into msgs, -1 = dummy */
	uint32_t parent, child, next, prev;
};

struct tree {
	const struct imap_thread_msg *msgs;
	struct cont *c;
	size_t count, cap;
	bool oom;
};

static uint32_t cont_new(struct tree *t, int64_t msg)
{
	if (t->count == t->cap) {
		size_t ncap = t->cap != 0 ? t->cap * 2 : 64;
		struct cont *nc = realloc(t->c, ncap * sizeof(*nc));
		if (nc == NULL) {
			t->oom = true;
			return NONE;
		}
		t->c = nc;
		t->cap = ncap;
	}
	t->c[t->count] = (struct cont){ msg, NONE, NONE, NONE, NONE };
	return (uint32_t)t->count++;
}

static void add_child(struct tree *t, uint32_t p, uint32_t c)
{
	uint32_t first = t->c[p].child;
	t->c[c].parent = p;
	t->c[c].next = first;
	t->c[c].prev = NONE;
	if (first != NONE)
		t->c[first].prev = c;
	t->c[p].child = c;
}

static void unlink_cont(struct tree *t, uint32_t c)
{
	struct cont *k = &t->c[c];
	if (k->parent == NONE)
		return;
	if (k->prev != NONE)
		t->c[k->prev].next = k->next;
	else
		t->c[k->parent].child = k->next;
	if (k->next != NONE)
		t->c[k->next].prev = k->prev;
	k->parent = NONE;
	k->next = NONE;
	k->prev = NONE;
}

/* After p's list was rebuilt through next links alone. */
static void fix_prev(struct tree *t, uint32_t p)
{
	uint32_t prev = NONE;
	for (uint32_t ch = t->c[p].child; ch != NONE; ch = t->c[ch].next) {
		t->c[ch].prev = prev;
		prev = ch;
	}
}

/* Making c a child of p would close a loop: c is p or one of p's ancestors. */
static bool would_loop(const struct tree *t, uint32_t p, uint32_t c)
{
	for (uint32_t x = p; x != NONE; x = t->c[x].parent)
		if (x == c)
			return true;
	return false;
}

/* ---- ordering: by sent date, then mailbox order ---- */

/* The message a container stands for: its own, or a dummy's earliest child's. */
static int64_t rep_msg(const struct tree *t, uint32_t c)
{
	if (t->c[c].msg >= 0)
		return t->c[c].msg;
	int64_t best = -1;
	for (uint32_t ch = t->c[c].child; ch != NONE; ch = t->c[ch].next) {
		int64_t m = rep_msg(t, ch);
		if (m < 0)
			continue;
		const struct imap_thread_msg *a = &t->msgs[m];
		if (best < 0 || a->date < t->msgs[best].date ||
		    (a->date == t->msgs[best].date && a->seq < t->msgs[best].seq))
			best = m;
	}
	return best;
}

struct sort_ent {
	uint32_t cont;
	int64_t date;
	uint32_t seq;
};

static int ent_cmp(const void *pa, const void *pb)
{
	const struct sort_ent *a = pa, *b = pb;
	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sorts p's children by date. The order of other lists does not matter
 * (rep_msg takes the earliest of all children, and the comparison is
 * total), so sorting every list (RFC 5256 §2.2 step 6 sorts all siblings)
 * can go container by container, in slices, instead of down the tree. */
static void sort_children(struct tree *t, uint32_t p)
{
	size_t n = 0;
	for (uint32_t ch = t->c[p].child; ch != NONE; ch = t->c[ch].next)
		n++;
	if (n < 2)
		return;
	struct sort_ent *e = malloc(n * sizeof(*e));
	if (e == NULL) {
		t->oom = true;
		return;
	}
	size_t i = 0;
	for (uint32_t ch = t->c[p].child; ch != NONE; ch = t->c[ch].next) {
		int64_t m = rep_msg(t, ch);
		e[i++] = (struct sort_ent){ ch, m >= 0 ? t->msgs[m].date : 0,
					    m >= 0 ? t->msgs[m].seq : 0 };
	}
	qsort(e, n, sizeof(*e), ent_cmp);
	t->c[p].child = e[0].cont;
	for (i = 0; i + 1 < n; i++)
		t->c[e[i].cont].next = e[i + 1].cont;
	t->c[e[n - 1].cont].next = NONE;
	free(e);
	fix_prev(t, p);
}

/* ---- REFERENCES ---- */

static uint32_t id_cont(struct tree *t, GHashTable *ids, const char *id)
{
	gpointer v = g_hash_table_lookup(ids, id);
	if (v != NULL)
		return (uint32_t)GPOINTER_TO_UINT(v) - 1;
	uint32_t c = cont_new(t, -1);
	if (c != NONE)
		g_hash_table_insert(ids, (gpointer)id, GUINT_TO_POINTER(c + 1));
	return c;
}

/* Step 1 for message i: containers for it and every id it references,
 * linked. Containers are created in mailbox order, so the first of
 * duplicate ids wins. */
static void link_message(struct tree *t, GHashTable *ids, size_t i)
{
	const struct imap_thread_msg *m = &t->msgs[i];
	uint32_t c = NONE;
	if (m->msgid != NULL && *m->msgid != '\0') {
		c = id_cont(t, ids, m->msgid);
		if (c != NONE && t->c[c].msg >= 0)
			c = NONE;        /* a duplicate id: thread it as id-less */
	}
	if (c == NONE)
		c = cont_new(t, -1);
	if (c == NONE)
		return;
	t->c[c].msg = (int64_t)i;
	uint32_t prev = NONE;
	for (size_t r = 0; r < m->ref_count && !t->oom; r++) {
		uint32_t rc = id_cont(t, ids, m->refs[r]);
		if (rc == NONE)
			return;
		if (prev != NONE && t->c[rc].parent == NONE && !would_loop(t, prev, rc))
			add_child(t, prev, rc);
		prev = rc;
	}
	/* step 1C: the last reference is the parent; an older link
	 * (from a truncated References of another message) gives way */
	unlink_cont(t, c);
	if (prev != NONE && !would_loop(t, prev, c))
		add_child(t, prev, c);
}

/* Step 2: the root set. */
static void root_set(struct tree *t)
{
	for (uint32_t c = 1; c < t->count; c++)
		if (t->c[c].parent == NONE && (t->c[c].msg >= 0 || t->c[c].child != NONE))
			add_child(t, VROOT, c);
}

/* Step 3: drops empty dummies and promotes a dummy's children, but at the
 * top level only when there is just one. */
static void prune(struct tree *t, uint32_t p, bool top)
{
	uint32_t cur = t->c[p].child, head = NONE, tail = NONE;
	while (cur != NONE) {
		uint32_t next = t->c[cur].next;
		prune(t, cur, false);
		struct cont *c = &t->c[cur];
		uint32_t first = cur, last = cur;
		if (c->msg < 0) {
			if (c->child == NONE) {
				c->parent = NONE;
				cur = next;
				continue;
			}
			if (!top || t->c[c->child].next == NONE) {
				first = c->child;
				for (last = first; ; last = t->c[last].next) {
					t->c[last].parent = p;
					if (t->c[last].next == NONE)
						break;
				}
				c->child = NONE;
				c->parent = NONE;
			}
		}
		if (tail == NONE)
			head = first;
		else
			t->c[tail].next = first;
		tail = last;
		t->c[tail].next = NONE;
		cur = next;
	}
	t->c[p].child = head;
	fix_prev(t, p);
}

static const struct imap_thread_msg *rep(const struct tree *t, uint32_t c)
{
	int64_t m = rep_msg(t, c);
	return m >= 0 ? &t->msgs[m] : NULL;
}

static const char *cont_subject(const struct tree *t, uint32_t c)
{
	const struct imap_thread_msg *m = rep(t, c);
	return m != NULL && m->subject != NULL ? m->subject : "";
}

static bool cont_reply(const struct tree *t, uint32_t c)
{
	const struct imap_thread_msg *m = rep(t, c);
	return m != NULL && m->is_reply;
}

/* Step 5: threads whose roots share a base subject are gathered, a root
 * at a time: 5A over every root (gather_table), then 5B (gather_root). */
struct gather {
	uint32_t *roots;         /* the roots after step 4, in order */
	size_t count;
	GHashTable *subj;        /* base subject -> container + 1 */
};

static void gather_begin(struct tree *t, struct gather *g)
{
	size_t n = 0;
	for (uint32_t r = t->c[VROOT].child; r != NONE; r = t->c[r].next)
		n++;
	g->roots = malloc((n + 1) * sizeof(*g->roots));
	if (g->roots == NULL) {
		t->oom = true;
		return;
	}
	g->subj = g_hash_table_new(g_str_hash, g_str_equal);
	n = 0;
	for (uint32_t r = t->c[VROOT].child; r != NONE; r = t->c[r].next)
		g->roots[n++] = r;
	g->count = n;
}

static void gather_end(struct gather *g)
{
	if (g->subj != NULL)
		g_hash_table_destroy(g->subj);
	free(g->roots);
	*g = (struct gather){ 0 };
}

/* 5A: the subject table prefers a dummy, then a non-reply */
static void gather_table(struct tree *t, struct gather *g, size_t i)
{
	uint32_t root = g->roots[i];
	const char *s = cont_subject(t, root);
	if (*s == '\0')
		return;
	gpointer v = g_hash_table_lookup(g->subj, s);
	if (v == NULL) {
		g_hash_table_insert(g->subj, (gpointer)s, GUINT_TO_POINTER(root + 1));
		return;
	}
	uint32_t old = GPOINTER_TO_UINT(v) - 1;
	bool cur_dummy = t->c[root].msg < 0, old_dummy = t->c[old].msg < 0;
	if ((cur_dummy && !old_dummy) ||
	    (!cur_dummy && !old_dummy && cont_reply(t, old) && !cont_reply(t, root)))
		g_hash_table_insert(g->subj, (gpointer)s, GUINT_TO_POINTER(root + 1));
}

/* 5B */
static void gather_root(struct tree *t, struct gather *g, size_t i)
{
	uint32_t c = g->roots[i];
	if (t->c[c].parent != VROOT)
		return;   /* already gathered under a new dummy */
	const char *s = cont_subject(t, c);
	if (*s == '\0')
		return;
	gpointer v = g_hash_table_lookup(g->subj, s);
	if (v == NULL)
		return;
	uint32_t tc = GPOINTER_TO_UINT(v) - 1;
	if (tc == c)
		return;
	bool c_dummy = t->c[c].msg < 0, t_dummy = t->c[tc].msg < 0;
	if (c_dummy && t_dummy) {
		unlink_cont(t, c);
		while (t->c[c].child != NONE) {
			uint32_t ch = t->c[c].child;
			unlink_cont(t, ch);
			add_child(t, tc, ch);
		}
	} else if (t_dummy || (!cont_reply(t, tc) && cont_reply(t, c) && !c_dummy)) {
		unlink_cont(t, c);
		add_child(t, tc, c);
	} else if (c_dummy) {
		unlink_cont(t, tc);
		add_child(t, c, tc);
		g_hash_table_insert(g->subj, (gpointer)s, GUINT_TO_POINTER(c + 1));
	} else {
		uint32_t d = cont_new(t, -1);
		if (d == NONE)
			return;
		/* s points into a message, which stays valid */
		unlink_cont(t, tc);
		unlink_cont(t, c);
		add_child(t, VROOT, d);
		add_child(t, d, tc);
		add_child(t, d, c);
		g_hash_table_insert(g->subj, (gpointer)s, GUINT_TO_POINTER(d + 1));
	}
}

/* ---- ORDEREDSUBJECT ---- */

/* Base subject, then sent date, then mailbox order. */
static int os_cmp(const void *pa, const void *pb, void *arg)
{
	const struct imap_thread_msg *msgs = arg;
	const struct imap_thread_msg *a = &msgs[*(const size_t *)pa];
	const struct imap_thread_msg *b = &msgs[*(const size_t *)pb];
	int c = strcmp(a->subject != NULL ? a->subject : "", b->subject != NULL ? b->subject : "");
	if (c != 0)
		return c;
	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* One message, in subject order: a new thread at each new subject, else a
 * child of the subject's first message. */
static void os_add(struct tree *t, size_t msg, uint32_t *root, const char **subject)
{
	const struct imap_thread_msg *m = &t->msgs[msg];
	const char *s = m->subject != NULL ? m->subject : "";
	uint32_t c = cont_new(t, (int64_t)msg);
	if (c == NONE)
		return;
	if (*root == NONE || strcmp(s, *subject) != 0) {
		add_child(t, VROOT, c);
		*root = c;
		*subject = s;
	} else {
		add_child(t, *root, c);
	}
}

/* ---- the build in steps ---- */

enum stage {
	ST_LINK,         /* REFERENCES step 1, a message at a time */
	ST_ROOTS,        /* steps 2-4 at once: a few linear walks, about 1 ms
	                    for 20,000 messages */
	ST_TABLE,        /* step 5A, a root at a time */
	ST_GATHER,       /* step 5B, a root at a time */
	ST_OS_SORT,      /* ORDEREDSUBJECT: messages by subject (sliced merge sort) */
	ST_OS_BUILD,     /* a message at a time */
	ST_SORT,         /* both: every sibling list by date, a container at a time */
	ST_DONE,
};

struct imap_thread_build {
	struct tree t;
	size_t count;
	enum stage stage;
	size_t pos;                     /* the stage's cursor */
	GHashTable *ids;                /* ST_LINK: msg-id -> container + 1 */
	struct gather gather;           /* ST_TABLE, ST_GATHER */
	struct imap_index_sort *order;  /* ST_OS_SORT, ST_OS_BUILD */
	uint32_t os_root;               /* ST_OS_BUILD: the current subject's thread */
	const char *os_subject;
	bool writing;                   /* imap_thread_build_write has begun */
	uint32_t write_next;            /* the next thread it writes */
};

struct imap_thread_build *imap_thread_build_new(enum imap_thread_algo algo,
						const struct imap_thread_msg *msgs, size_t count)
{
	struct imap_thread_build *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->t.msgs = msgs;
	b->count = count;
	b->os_root = NONE;
	if (cont_new(&b->t, -1) != VROOT) {
		imap_thread_build_free(&b);
		return NULL;
	}
	if (algo == IMAP_THREAD_REFERENCES) {
		b->stage = ST_LINK;
		b->ids = g_hash_table_new(g_str_hash, g_str_equal);
	} else {
		b->stage = ST_OS_SORT;
		b->order = imap_index_sort_new(count, os_cmp, (void *)msgs);
		if (b->order == NULL)
			imap_thread_build_free(&b);
	}
	return b;
}

/* One item of the current stage, or the move to the next stage. */
static void advance(struct imap_thread_build *b)
{
	struct tree *t = &b->t;
	switch (b->stage) {
	case ST_LINK:
		if (b->pos < b->count) {
			link_message(t, b->ids, b->pos++);
			return;
		}
		g_hash_table_destroy(b->ids);
		b->ids = NULL;
		b->stage = ST_ROOTS;
		return;
	case ST_ROOTS:
		root_set(t);
		prune(t, VROOT, true);
		sort_children(t, VROOT);          /* step 4 */
		gather_begin(t, &b->gather);
		b->stage = ST_TABLE;
		b->pos = 0;
		return;
	case ST_TABLE:
		if (b->pos < b->gather.count) {
			gather_table(t, &b->gather, b->pos++);
			return;
		}
		b->stage = ST_GATHER;
		b->pos = 0;
		return;
	case ST_GATHER:
		if (b->pos < b->gather.count) {
			gather_root(t, &b->gather, b->pos++);
			return;
		}
		gather_end(&b->gather);
		b->stage = ST_SORT;              /* step 6 */
		b->pos = 0;
		return;
	case ST_OS_SORT:
		return;                          /* imap_thread_build_step runs it */
	case ST_OS_BUILD:
		if (b->pos < b->count) {
			os_add(t, imap_index_sort_result(b->order)[b->pos++], &b->os_root,
			       &b->os_subject);
			return;
		}
		imap_index_sort_free(&b->order);
		b->stage = ST_SORT;
		b->pos = 0;
		return;
	case ST_SORT:
		if (b->pos < t->count) {
			sort_children(t, (uint32_t)b->pos++);
			return;
		}
		b->stage = ST_DONE;
		return;
	case ST_DONE:
		return;
	}
}

int imap_thread_build_step(struct imap_thread_build *b, uint64_t deadline_ms)
{
	for (unsigned n = 1; ; n++) {
		if (b->t.oom)
			return -1;
		if (b->stage == ST_DONE)
			return 1;
		if (b->stage == ST_OS_SORT) {
			/* the merge sort looks at the clock itself */
			if (imap_index_sort_step(b->order, deadline_ms) == 0)
				return 0;
			b->stage = ST_OS_BUILD;
			b->pos = 0;
		} else {
			advance(b);
		}
		if (n % TERN_THREAD_STEP_CHECK == 0 && tern_now_ms() >= deadline_ms)
			return b->t.oom ? -1 : b->stage == ST_DONE;
	}
}

void imap_thread_build_free(struct imap_thread_build **_b)
{
	struct imap_thread_build *b = *_b;
	if (b == NULL)
		return;
	if (b->ids != NULL)
		g_hash_table_destroy(b->ids);
	gather_end(&b->gather);
	imap_index_sort_free(&b->order);
	free(b->t.c);
	free(b);
	*_b = NULL;
}

/* ---- writer ---- */

/* 0, or -1 when out failed. */
static int write_members(struct evbuffer *out, const struct tree *t, uint32_t c)
{
	bool wrote = false;
	for (;;) {
		const struct cont *k = &t->c[c];
		if (k->msg >= 0) {
			if (evbuffer_add_printf(out, wrote ? " %" PRIu32 : "%" PRIu32,
						t->msgs[k->msg].id) < 0)
				return -1;
			wrote = true;
		}
		if (k->child == NONE)
			return 0;
		if (k->msg >= 0 && t->c[k->child].next == NONE) {
			c = k->child;      /* a chain: "1 2 3" */
			continue;
		}
		if (wrote && evbuffer_add(out, " ", 1) < 0)
			return -1;
		for (uint32_t ch = k->child; ch != NONE; ch = t->c[ch].next) {
			if (evbuffer_add(out, "(", 1) < 0 || write_members(out, t, ch) < 0 ||
			    evbuffer_add(out, ")", 1) < 0)
				return -1;
		}
		return 0;
	}
}

int imap_thread_build_write(struct imap_thread_build *b, struct evbuffer *out,
			    uint64_t deadline_ms)
{
	const struct tree *t = &b->t;
	if (t->oom || b->stage != ST_DONE)
		return -1;
	if (!b->writing) {
		b->writing = true;
		b->write_next = t->c[VROOT].child;
	}
	for (unsigned n = 1; b->write_next != NONE; n++) {
		uint32_t r = b->write_next;
		if (evbuffer_add(out, "(", 1) < 0 || write_members(out, t, r) < 0 ||
		    evbuffer_add(out, ")", 1) < 0)
			return -1;
		b->write_next = t->c[r].next;
		if (n % TERN_THREAD_STEP_CHECK == 0 && b->write_next != NONE && tern_now_ms() >= deadline_ms)
			return 0;
	}
	return 1;
}

int imap_thread_write(struct evbuffer *out, enum imap_thread_algo algo,
		      const struct imap_thread_msg *msgs, size_t count)
{
	struct imap_thread_build *b = imap_thread_build_new(algo, msgs, count);
	if (b == NULL)
		return -1;
	int r = imap_thread_build_step(b, UINT64_MAX);
	if (r > 0)
		r = imap_thread_build_write(b, out, UINT64_MAX);
	imap_thread_build_free(&b);
	return r < 0 ? -1 : 0;
}
