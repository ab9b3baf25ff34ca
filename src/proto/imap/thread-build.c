/* THREAD algorithms and writer: see thread-build.h. Containers live in one
 * array and point at each other by index (index 0 is a virtual root whose
 * children are the threads), so growing the array never leaves a dangling
 * pointer. */
#include "proto/imap/thread-build.h"

#include <event2/buffer.h>
#include <glib.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define VROOT 0u

struct cont {
	int64_t msg;             /* index into msgs, -1 = dummy */
	uint32_t parent, child, next;
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
	t->c[t->count] = (struct cont){ msg, NONE, NONE, NONE };
	return (uint32_t)t->count++;
}

static void add_child(struct tree *t, uint32_t p, uint32_t c)
{
	t->c[c].parent = p;
	t->c[c].next = t->c[p].child;
	t->c[p].child = c;
}

static void unlink_cont(struct tree *t, uint32_t c)
{
	uint32_t p = t->c[c].parent;
	if (p == NONE)
		return;
	for (uint32_t *link = &t->c[p].child; *link != NONE; link = &t->c[*link].next) {
		if (*link == c) {
			*link = t->c[c].next;
			break;
		}
	}
	t->c[c].parent = NONE;
	t->c[c].next = NONE;
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

/* Sorts p's children by date; deep: their children first (RFC 5256 §2.2
 * step 6 sorts the youngest siblings first). */
static void sort_children(struct tree *t, uint32_t p, bool deep)
{
	size_t n = 0;
	for (uint32_t ch = t->c[p].child; ch != NONE; ch = t->c[ch].next) {
		if (deep)
			sort_children(t, ch, true);
		n++;
	}
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

/* Step 1: containers for every message and every referenced id, linked. */
static void link_messages(struct tree *t, size_t count)
{
	GHashTable *ids = g_hash_table_new(g_str_hash, g_str_equal);
	/* creation order = mailbox order, so the first of duplicate ids wins */
	for (size_t i = 0; i < count && !t->oom; i++) {
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
			break;
		t->c[c].msg = (int64_t)i;
		uint32_t prev = NONE;
		for (size_t r = 0; r < m->ref_count && !t->oom; r++) {
			uint32_t rc = id_cont(t, ids, m->refs[r]);
			if (rc == NONE)
				break;
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
	g_hash_table_destroy(ids);
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

/* Step 5: threads whose roots share a base subject are gathered. */
static void merge_subjects(struct tree *t)
{
	size_t n = 0;
	for (uint32_t r = t->c[VROOT].child; r != NONE; r = t->c[r].next)
		n++;
	uint32_t *roots = malloc((n + 1) * sizeof(*roots));
	GHashTable *subj = g_hash_table_new(g_str_hash, g_str_equal);
	if (roots == NULL) {
		t->oom = true;
		g_hash_table_destroy(subj);
		return;
	}
	n = 0;
	for (uint32_t r = t->c[VROOT].child; r != NONE; r = t->c[r].next)
		roots[n++] = r;
	/* 5A: the subject table prefers a dummy, then a non-reply */
	for (size_t i = 0; i < n; i++) {
		const char *s = cont_subject(t, roots[i]);
		if (*s == '\0')
			continue;
		gpointer v = g_hash_table_lookup(subj, s);
		if (v == NULL) {
			g_hash_table_insert(subj, (gpointer)s, GUINT_TO_POINTER(roots[i] + 1));
			continue;
		}
		uint32_t old = GPOINTER_TO_UINT(v) - 1;
		bool cur_dummy = t->c[roots[i]].msg < 0, old_dummy = t->c[old].msg < 0;
		if ((cur_dummy && !old_dummy) ||
		    (!cur_dummy && !old_dummy && cont_reply(t, old) && !cont_reply(t, roots[i])))
			g_hash_table_insert(subj, (gpointer)s, GUINT_TO_POINTER(roots[i] + 1));
	}
	/* 5B */
	for (size_t i = 0; i < n && !t->oom; i++) {
		uint32_t c = roots[i];
		if (t->c[c].parent != VROOT)
			continue;   /* already gathered under a new dummy */
		const char *s = cont_subject(t, c);
		if (*s == '\0')
			continue;
		gpointer v = g_hash_table_lookup(subj, s);
		if (v == NULL)
			continue;
		uint32_t tc = GPOINTER_TO_UINT(v) - 1;
		if (tc == c)
			continue;
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
			g_hash_table_insert(subj, (gpointer)s, GUINT_TO_POINTER(c + 1));
		} else {
			uint32_t d = cont_new(t, -1);
			if (d == NONE)
				break;
			/* s points into a message, which stays valid */
			unlink_cont(t, tc);
			unlink_cont(t, c);
			add_child(t, VROOT, d);
			add_child(t, d, tc);
			add_child(t, d, c);
			g_hash_table_insert(subj, (gpointer)s, GUINT_TO_POINTER(d + 1));
		}
	}
	g_hash_table_destroy(subj);
	free(roots);
}

static void build_references(struct tree *t, size_t count)
{
	link_messages(t, count);
	if (t->oom)
		return;
	/* step 2: the root set */
	for (uint32_t c = 1; c < t->count; c++)
		if (t->c[c].parent == NONE && (t->c[c].msg >= 0 || t->c[c].child != NONE))
			add_child(t, VROOT, c);
	prune(t, VROOT, true);
	sort_children(t, VROOT, false);   /* step 4 */
	merge_subjects(t);
	sort_children(t, VROOT, true);    /* step 6 */
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

static void build_ordered_subject(struct tree *t, size_t count)
{
	size_t *order = malloc((count + 1) * sizeof(*order));
	if (order == NULL) {
		t->oom = true;
		return;
	}
	for (size_t i = 0; i < count; i++)
		order[i] = i;
	qsort_r(order, count, sizeof(*order), os_cmp, (void *)t->msgs);
	uint32_t root = NONE;
	const char *subject = NULL;
	for (size_t i = 0; i < count; i++) {
		const struct imap_thread_msg *m = &t->msgs[order[i]];
		const char *s = m->subject != NULL ? m->subject : "";
		uint32_t c = cont_new(t, (int64_t)order[i]);
		if (c == NONE)
			break;
		if (root == NONE || strcmp(s, subject) != 0) {
			add_child(t, VROOT, c);
			root = c;
			subject = s;
		} else {
			add_child(t, root, c);
		}
	}
	free(order);
	sort_children(t, VROOT, true);
}

/* ---- writer ---- */

static void write_members(struct evbuffer *out, const struct tree *t, uint32_t c)
{
	bool wrote = false;
	for (;;) {
		const struct cont *k = &t->c[c];
		if (k->msg >= 0) {
			evbuffer_add_printf(out, wrote ? " %" PRIu32 : "%" PRIu32, t->msgs[k->msg].id);
			wrote = true;
		}
		if (k->child == NONE)
			return;
		if (k->msg >= 0 && t->c[k->child].next == NONE) {
			c = k->child;      /* a chain: "1 2 3" */
			continue;
		}
		if (wrote)
			evbuffer_add(out, " ", 1);
		for (uint32_t ch = k->child; ch != NONE; ch = t->c[ch].next) {
			evbuffer_add(out, "(", 1);
			write_members(out, t, ch);
			evbuffer_add(out, ")", 1);
		}
		return;
	}
}

int imap_thread_write(struct evbuffer *out, enum imap_thread_algo algo,
		      const struct imap_thread_msg *msgs, size_t count)
{
	struct tree t = { .msgs = msgs };
	if (cont_new(&t, -1) != VROOT)
		return -1;
	if (algo == IMAP_THREAD_REFERENCES)
		build_references(&t, count);
	else
		build_ordered_subject(&t, count);
	if (!t.oom) {
		for (uint32_t r = t.c[VROOT].child; r != NONE; r = t.c[r].next) {
			evbuffer_add(out, "(", 1);
			write_members(out, &t, r);
			evbuffer_add(out, ")", 1);
		}
	}
	free(t.c);
	return t.oom ? -1 : 0;
}
