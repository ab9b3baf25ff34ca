/* Apply workers: each owns the users whose name hashes to it, so every store
 * has exactly one delivery writer and different users are written in
 * parallel. A worker groups its queued messages by user (one transaction per
 * user), checkpoints a few stores per round so journal segments can go, and
 * completes each recipient. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/delivery-private.h"
#include "server/journal.h"
#include "server/loop.h"
#include "server/store-cache.h"
#include "store/store.h"

/* Open store handles per worker (three descriptors each). */
#define WORKER_STORE_HANDLES 1024u
/* Stores checkpointed per round: spreads a segment's fsyncs over many rounds. */
#define WORKER_CHECKPOINTS_PER_ROUND 4u

int delivery_apply_one(struct store *st, const char *folder, bool fallback, uint64_t id,
		       const void *data, size_t size, uint32_t flags, const char *keywords,
		       int64_t date, int32_t tz, const struct store_msg_cache *cache,
		       uint32_t *uid_r, uint32_t *uidvalidity_r, enum tern_error *err_r)
{
	struct store_new_msg m = {
		.folder = folder, .data = data, .size = size, .internal_date = date,
		.internal_tz = tz, .flags = flags, .keywords = keywords, .cache = cache,
		.delivery_id = id,
	};
	if (store_append(st, &m, uid_r, uidvalidity_r, err_r) == 0)
		return 0;
	if (*err_r != TERN_ERR_NOTFOUND || !fallback || strcmp(folder, "INBOX") == 0)
		return -1;
	m.folder = "INBOX";
	return store_append(st, &m, uid_r, uidvalidity_r, err_r);
}

static void job_done_task(void *arg)
{
	struct delivery_job *job = arg;
	job->done(job);
}

void delivery_item_finished(struct delivery_item *it)
{
	struct delivery_job *job = it->job;
	free(it->bytes);
	free(it);
	if (atomic_fetch_sub(&job->pending, 1) == 1)
		loop_post(job->loop, job_done_task, job);
}

static unsigned user_shard(const char *user, unsigned count)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *user != '\0'; user++)
		h = (h ^ (unsigned char)*user) * 16777619u;
	return h % count;
}

void apply_worker_push(struct delivery *d, struct delivery_item *item)
{
	struct apply_worker *w = &d->workers[user_shard(item->rcpt->user, d->worker_count)];
	item->next = NULL;
	TERN_LOCK_GUARD(&w->mu);
	if (w->tail != NULL)
		w->tail->next = item;
	else
		w->head = item;
	w->tail = item;
	pthread_cond_signal(&w->cond);
}

static int item_cmp_user(const void *a, const void *b)
{
	const struct delivery_item *x = *(struct delivery_item *const *)a;
	const struct delivery_item *y = *(struct delivery_item *const *)b;
	int c = strcmp(x->rcpt->user, y->rcpt->user);
	if (c != 0)
		return c;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* A refused delivery must not come back at replay: its abort record is
 * durable before the 4xx reply leaves. */
static void journal_aborts(struct delivery *d, struct delivery_item **items, size_t n)
{
	TERN_LOCK_GUARD(&d->journal_mu);
	for (size_t i = 0; i < n; i++) {
		struct journal_record rec = {
			.type = JOURNAL_ABORT, .id = items[i]->id, .user = items[i]->rcpt->user,
			.folder = "", .keywords = "",
		};
		(void)journal_add(d->journal, &rec);
	}
	if (journal_sync(d->journal) < 0)
		log_error("delivery: journal abort records not synced: %s", strerror(errno));
}

/* Applies one user's items in one transaction. */
static bool apply_user(struct apply_worker *w, struct delivery_item **items, size_t n)
{
	const char *user = items[0]->rcpt->user;
	enum tern_error err = TERN_ERR_NONE;
	struct store *st = store_cache_get(w->stores, user, items[0]->gen, &err);
	if (st != NULL && store_begin(st, &err) == 0) {
		size_t i;
		for (i = 0; i < n; i++) {
			struct delivery_item *it = items[i];
			const struct delivery_job *job = it->job;
			if (delivery_apply_one(st, it->rcpt->folder, it->rcpt->fallback_inbox, it->id,
					       it->bytes, it->size, job->flags, job->keywords,
					       job->internal_date, job->internal_tz, job->cache,
					       &it->rcpt->uid, &it->rcpt->uidvalidity, &err) < 0)
				break;
		}
		if (i == n && store_commit(st, &err) == 0)
			return true;
		store_rollback(st);
	}
	log_error("delivery: user=%s: storing %zu message(s) failed: %s", user, n,
		  tern_error_str(err));
	if (st != NULL)
		store_cache_drop(w->stores, user);
	for (size_t i = 0; i < n; i++)
		items[i]->rcpt->err = err != TERN_ERR_NONE ? err : TERN_ERR_IO;
	journal_aborts(w->d, items, n);
	return false;
}

static void apply_batch(struct apply_worker *w, struct delivery_item *batch)
{
	size_t n = 0;
	for (struct delivery_item *it = batch; it != NULL; it = it->next)
		n++;
	struct delivery_item **items = malloc(n * sizeof(*items));
	if (items == NULL) {
		for (struct delivery_item *it = batch, *next; it != NULL; it = next) {
			next = it->next;
			it->rcpt->err = TERN_ERR_NOMEM;
			delivery_item_finished(it);
		}
		return;
	}
	n = 0;
	for (struct delivery_item *it = batch; it != NULL; it = it->next)
		items[n++] = it;
	qsort(items, n, sizeof(*items), item_cmp_user);
	for (size_t i = 0; i < n;) {
		size_t k = i + 1;
		while (k < n && strcmp(items[k]->rcpt->user, items[i]->rcpt->user) == 0)
			k++;
		if (apply_user(w, items + i, k - i) && delivery_user_changed_hook != NULL)
			delivery_user_changed_hook(items[i]->rcpt->user);
		i = k;
	}
	for (size_t i = 0; i < n; i++)
		delivery_item_finished(items[i]);
	free(items);
}

static void worker_housekeeping(struct apply_worker *w)
{
	enum tern_error err;
	const char *failed = "?";
	if (store_cache_checkpoint_older(w->stores, atomic_load(&w->d->gen),
					 WORKER_CHECKPOINTS_PER_ROUND, &failed, &err) < 0)
		log_error("delivery: checkpoint of user=%s failed (retried later): %s", failed,
			  tern_error_str(err));
}

static void *worker_main(void *arg)
{
	struct apply_worker *w = arg;
	for (;;) {
		struct delivery_item *batch;
		{
			TERN_LOCK_GUARD(&w->mu);
			while (w->head == NULL && !w->stopping)
				tern_cond_wait(&w->cond, &w->mu, 0);
			batch = w->head;
			w->head = w->tail = NULL;
			if (batch == NULL)
				break; /* stopping and drained */
			w->busy_since_ms = tern_now_ms();
			w->processing_min_gen = batch->gen;
		}
		apply_batch(w, batch);
		worker_housekeeping(w);
		{
			TERN_LOCK_GUARD(&w->mu);
			w->busy_since_ms = 0;
			w->processing_min_gen = UINT64_MAX;
			w->dirty_min_gen = store_cache_oldest_dirty_gen(w->stores);
		}
	}
	enum tern_error err;
	const char *failed = "?";
	bool clean = store_cache_checkpoint(w->stores, &failed, &err) == 0;
	if (!clean)
		log_error("delivery: checkpoint of user=%s failed at stop, journal kept: %s", failed,
			  tern_error_str(err));
	TERN_LOCK_GUARD(&w->mu);
	w->finished_clean = clean;
	return NULL;
}

int apply_workers_start(struct delivery *d, unsigned count, char **err_r)
{
	d->workers = calloc(count, sizeof(*d->workers));
	if (d->workers == NULL) {
		*err_r = strdup("out of memory");
		return -1;
	}
	for (unsigned i = 0; i < count; i++) {
		struct apply_worker *w = &d->workers[i];
		w->d = d;
		w->index = i;
		w->processing_min_gen = UINT64_MAX;
		w->dirty_min_gen = UINT64_MAX;
		tern_mutex_init(&w->mu, "delivery worker queue");
		tern_cond_init(&w->cond);
		w->stores = store_cache_new(d->data_dir, WORKER_STORE_HANDLES);
		if (w->stores == NULL || pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			store_cache_free(&w->stores);
			*err_r = strdup("cannot start a delivery worker");
			return -1;
		}
		d->worker_count = i + 1;
	}
	return 0;
}

bool apply_workers_stop(struct delivery *d)
{
	bool clean = true;
	for (unsigned i = 0; i < d->worker_count; i++) {
		struct apply_worker *w = &d->workers[i];
		TERN_LOCK_GUARD(&w->mu);
		w->stopping = true;
		pthread_cond_signal(&w->cond);
	}
	for (unsigned i = 0; i < d->worker_count; i++) {
		struct apply_worker *w = &d->workers[i];
		pthread_join(w->thread, NULL);
		clean = clean && w->finished_clean;
		store_cache_free(&w->stores);
		tern_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cond);
	}
	free(d->workers);
	d->workers = NULL;
	d->worker_count = 0;
	return clean;
}

uint64_t apply_workers_needed_gen(struct delivery *d)
{
	uint64_t needed = UINT64_MAX;
	for (unsigned i = 0; i < d->worker_count; i++) {
		struct apply_worker *w = &d->workers[i];
		TERN_LOCK_GUARD(&w->mu);
		uint64_t g = w->dirty_min_gen;
		if (w->processing_min_gen < g)
			g = w->processing_min_gen;
		if (w->head != NULL && w->head->gen < g)
			g = w->head->gen;
		if (g < needed)
			needed = g;
	}
	return needed;
}

uint64_t apply_workers_busy_ms(struct delivery *d)
{
	uint64_t oldest = 0, now = tern_now_ms();
	for (unsigned i = 0; i < d->worker_count; i++) {
		struct apply_worker *w = &d->workers[i];
		TERN_LOCK_GUARD(&w->mu);
		if (w->busy_since_ms != 0 && now - w->busy_since_ms > oldest)
			oldest = now - w->busy_since_ms;
	}
	return oldest;
}
