#include "server/store-cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

#define STORE_CACHE_BUCKETS 4096u

struct cache_entry {
	char *user;
	struct store *st;
	bool dirty;
	uint64_t dirty_gen;        /* journal segment of the oldest unsynced write */
	struct cache_entry *dirty_prev, *dirty_next; /* FIFO, so ordered by dirty_gen */
	struct cache_entry *hash_next;
	struct cache_entry *lru_prev, *lru_next; /* head = most recent */
};

struct store_cache {
	char *data_dir;
	size_t capacity, count;
	struct cache_entry *buckets[STORE_CACHE_BUCKETS];
	struct cache_entry *lru_head, *lru_tail;
	struct cache_entry *dirty_head, *dirty_tail;
};

static void dirty_unlink(struct store_cache *c, struct cache_entry *e)
{
	if (!e->dirty)
		return;
	if (e->dirty_prev != NULL)
		e->dirty_prev->dirty_next = e->dirty_next;
	else
		c->dirty_head = e->dirty_next;
	if (e->dirty_next != NULL)
		e->dirty_next->dirty_prev = e->dirty_prev;
	else
		c->dirty_tail = e->dirty_prev;
	e->dirty_prev = e->dirty_next = NULL;
	e->dirty = false;
}

static void dirty_mark(struct store_cache *c, struct cache_entry *e, uint64_t gen)
{
	if (e->dirty)
		return;
	e->dirty = true;
	e->dirty_gen = gen;
	e->dirty_prev = c->dirty_tail;
	e->dirty_next = NULL;
	if (c->dirty_tail != NULL)
		c->dirty_tail->dirty_next = e;
	else
		c->dirty_head = e;
	c->dirty_tail = e;
}

static unsigned name_hash(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % STORE_CACHE_BUCKETS;
}

struct store_cache *store_cache_new(const char *data_dir, size_t capacity)
{
	struct store_cache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->data_dir = strdup(data_dir);
	c->capacity = capacity > 0 ? capacity : 1;
	if (c->data_dir == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

static void lru_unlink(struct store_cache *c, struct cache_entry *e)
{
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct store_cache *c, struct cache_entry *e)
{
	e->lru_next = c->lru_head;
	if (c->lru_head != NULL)
		c->lru_head->lru_prev = e;
	c->lru_head = e;
	if (c->lru_tail == NULL)
		c->lru_tail = e;
}

static void entry_remove(struct store_cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->buckets[name_hash(e->user)];
	while (*pp != e)
		pp = &(*pp)->hash_next;
	*pp = e->hash_next;
	lru_unlink(c, e);
	dirty_unlink(c, e);
	/* Closing the last connection checkpoints the WAL with a sync, so an
	 * evicted store is durable and the journal no longer needs it. */
	store_close(&e->st);
	free(e->user);
	free(e);
	c->count--;
}

/* The delivery side checkpoints a store only after writing to it, so this
 * is where the view snapshots of its big folders catch up with the mail
 * delivered while nobody was reading (store.h); a failed refresh costs the
 * next SELECT a full read, nothing more. */
static int checkpoint(struct cache_entry *e, enum tern_error *err_r)
{
	enum tern_error ignored;
	(void)store_snapshots_refresh(e->st, &ignored);
	return store_checkpoint(e->st, err_r);
}

static struct cache_entry *entry_find(struct store_cache *c, const char *user)
{
	for (struct cache_entry *e = c->buckets[name_hash(user)]; e != NULL; e = e->hash_next) {
		if (strcmp(e->user, user) == 0)
			return e;
	}
	return NULL;
}

struct store *store_cache_get(struct store_cache *c, const char *user, uint64_t gen,
			      bool create, enum tern_error *err_r)
{
	struct cache_entry *e = entry_find(c, user);
	if (e != NULL) {
		lru_unlink(c, e);
		lru_push_front(c, e);
		dirty_mark(c, e, gen);
		return e->st;
	}
	if (c->count >= c->capacity && c->lru_tail != NULL) {
		struct cache_entry *old = c->lru_tail;
		enum tern_error ignored;
		if (old->dirty)
			(void)checkpoint(old, &ignored);
		entry_remove(c, old);
	}
	struct store *st;
	if (store_open(c->data_dir, user, create, &st, err_r) < 0)
		return NULL;
	if (store_set_durable(st, false, err_r) < 0) {
		store_close(&st);
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL || (e->user = strdup(user)) == NULL) {
		free(e);
		store_close(&st);
		*err_r = TERN_ERR_NOMEM;
		return NULL;
	}
	e->st = st;
	dirty_mark(c, e, gen);
	unsigned h = name_hash(user);
	e->hash_next = c->buckets[h];
	c->buckets[h] = e;
	lru_push_front(c, e);
	c->count++;
	return st;
}

bool store_cache_contains(struct store_cache *c, const char *user)
{
	return entry_find(c, user) != NULL;
}

void store_cache_drop(struct store_cache *c, const char *user)
{
	struct cache_entry *e = entry_find(c, user);
	if (e != NULL)
		entry_remove(c, e);
}

int store_cache_checkpoint(struct store_cache *c, const char **failed_user_r,
			   enum tern_error *err_r)
{
	int ret = 0;
	for (struct cache_entry *e = c->dirty_head, *next; e != NULL; e = next) {
		next = e->dirty_next;
		if (checkpoint(e, err_r) < 0) {
			if (ret == 0 && failed_user_r != NULL)
				*failed_user_r = e->user;
			ret = -1;
		} else {
			dirty_unlink(c, e);
		}
	}
	return ret;
}

int store_cache_checkpoint_older(struct store_cache *c, uint64_t gen, unsigned max,
				 const char **failed_user_r, enum tern_error *err_r)
{
	int done = 0;
	while (c->dirty_head != NULL && c->dirty_head->dirty_gen < gen && (unsigned)done < max) {
		struct cache_entry *e = c->dirty_head;
		if (checkpoint(e, err_r) < 0) {
			/* It stays at the head, retried next round; its segments
			 * stay on disk meanwhile. */
			if (failed_user_r != NULL)
				*failed_user_r = e->user;
			return -1;
		}
		dirty_unlink(c, e);
		done++;
	}
	return done;
}

uint64_t store_cache_oldest_dirty_gen(const struct store_cache *c)
{
	/* Marking appends, so the FIFO head is the oldest. */
	return c->dirty_head != NULL ? c->dirty_head->dirty_gen : UINT64_MAX;
}

void store_cache_free(struct store_cache **cp)
{
	struct store_cache *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	while (c->lru_head != NULL)
		entry_remove(c, c->lru_head);
	free(c->data_dir);
	free(c);
}
