/* Apply workers: each owns the users whose name hashes to it, so every store
 * has exactly one delivery writer and different users are written in
 * parallel. A worker groups its queued messages by user (one transaction per
 * user), checkpoints a few stores per round so journal segments can go, and
 * completes each recipient. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"
#include "core/limits.h"
#include "core/log.h"
#include "server/delivery-private.h"
#include "server/journal.h"
#include "server/loop.h"
#include "server/store-cache.h"
#include "server/watchdog.h"
#include "store/store.h"


bool delivery_error_is_item_own(enum tern_error err)
{
	return err == TERN_ERR_NOQUOTA || err == TERN_ERR_TOOBIG || err == TERN_ERR_NOTFOUND ||
	       err == TERN_ERR_INVALID;
}

static int append_to(struct store *st, const struct delivery_apply *a, const char *folder,
		     const void *bytes, size_t size, uint32_t *uid_r, uint32_t *uidvalidity_r,
		     enum tern_error *err_r)
{
	struct store_new_msg m = {
		.folder = folder, .data = bytes, .size = size, .internal_date = a->date,
		.internal_tz = a->tz, .flags = a->flags, .keywords = a->keywords,
		.cache = a->cache, .delivery_id = a->id,
	};
	return store_append(st, &m, uid_r, uidvalidity_r, err_r);
}

int delivery_apply_one(struct store *st, const struct delivery_apply *a, uint32_t *uid_r,
		       uint32_t *uidvalidity_r, enum tern_error *err_r)
{
	size_t size = a->prefix_size + a->size;
	char *bytes = malloc(size + 1);
	if (bytes == NULL) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	if (a->prefix_size > 0)
		memcpy(bytes, a->prefix, a->prefix_size);
	if (a->size > 0)
		memcpy(bytes + a->prefix_size, a->data, a->size);
	int r = append_to(st, a, a->folder, bytes, size, uid_r, uidvalidity_r, err_r);
	if (r < 0 && a->fallback && strcmp(a->folder, "INBOX") != 0 &&
	    (*err_r == TERN_ERR_NOTFOUND || *err_r == TERN_ERR_INVALID))
		r = append_to(st, a, "INBOX", bytes, size, uid_r, uidvalidity_r, err_r);
	free(bytes);
	return r;
}

static void job_done_task(void *arg)
{
	struct delivery_job *job = arg;
	job->done(job);
}

void delivery_rcpt_finished(struct delivery_job *job)
{
	if (atomic_fetch_sub(&job->pending, 1) == 1)
		loop_post(job->loop, job_done_task, job);
}

void delivery_item_finished(struct delivery_item *it)
{
	struct delivery_job *job = it->job;
	free(it->prefix);
	free(it);
	delivery_rcpt_finished(job);
}

static unsigned user_shard(const char *user, unsigned count)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *user != '\0'; user++)
		h = (h ^ (unsigned char)*user) * 16777619u;
	return h % count;
}

const char *delivery_item_user(const struct delivery_item *it)
{
	return it->task != NULL ? it->task->user : it->rcpt->user;
}

void apply_worker_push(struct delivery *d, struct delivery_item *item)
{
	struct apply_worker *w =
		&d->workers[user_shard(delivery_item_user(item), d->worker_count)];
	item->next = NULL;
	TERN_LOCK_GUARD(&w->mu);
	item->order = w->next_order++;
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
	int c = strcmp(delivery_item_user(x), delivery_item_user(y));
	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* A refused delivery must not come back at replay: its abort record is
 * durable before the 4xx reply leaves. */
static void journal_aborts(struct delivery *d, struct delivery_item **items, const bool *which,
			   size_t n)
{
	TERN_LOCK_GUARD(&d->journal_mu);
	for (size_t i = 0; i < n; i++) {
		if (!which[i])
			continue;
		struct journal_record rec = {
			.type = JOURNAL_ABORT, .id = items[i]->id, .user = items[i]->rcpt->user,
			.folder = "", .keywords = "",
		};
		(void)journal_add(d->journal, &rec);
	}
	if (journal_sync(d->journal) < 0)
		log_error("delivery: journal abort records not synced: %s", strerror(errno));
}

static int apply_item(struct store *st, struct delivery_item *it, enum tern_error *err_r)
{
	const struct delivery_job *job = it->job;
	struct delivery_apply a = {
		.folder = it->rcpt->folder, .fallback = it->rcpt->fallback_inbox, .id = it->id,
		.prefix = it->prefix, .prefix_size = it->prefix_size, .data = job->data,
		.size = job->size, .flags = job->flags, .keywords = job->keywords,
		.date = job->internal_date, .tz = job->internal_tz, .cache = job->cache,
	};
	store_set_quota(st, it->rcpt->quota);
	int r = delivery_apply_one(st, &a, &it->rcpt->uid, &it->rcpt->uidvalidity, err_r);
	store_set_quota(st, 0);
	return r;
}

/* Applies one user's items in one transaction. An item refused for a reason
 * of its own (its quota, its size) is left out and the others commit; any
 * other failure fails the transaction, and then each item is tried alone,
 * so that one item never decides another item's reply. */
static bool apply_user(struct apply_worker *w, struct delivery_item **items, size_t n)
{
	const char *user = items[0]->rcpt->user;
	enum tern_error err = TERN_ERR_NONE;
	bool *refused = calloc(n, sizeof(*refused));
	struct store *st = refused != NULL ? store_cache_get(w->stores, user, items[0]->gen, true, &err)
					   : NULL;
	if (refused == NULL)
		err = TERN_ERR_NOMEM;
	size_t stored = 0;
	if (st != NULL && store_begin(st, &err) == 0) {
		size_t i;
		for (i = 0; i < n; i++) {
			enum tern_error item_err = TERN_ERR_NONE;
			if (apply_item(st, items[i], &item_err) == 0) {
				stored++;
				continue;
			}
			if (!delivery_error_is_item_own(item_err)) {
				err = item_err;
				break;
			}
			items[i]->rcpt->err = item_err;
			refused[i] = true;
		}
		if (i == n && store_commit(st, &err) == 0) {
			if (stored < n)
				journal_aborts(w->d, items, refused, n);
			free(refused);
			return stored > 0;
		}
		store_rollback(st);
	}
	free(refused);
	if (st != NULL)
		store_cache_drop(w->stores, user);
	if (n > 1) {
		bool any = false;
		for (size_t i = 0; i < n; i++) {
			items[i]->rcpt->err = TERN_ERR_NONE;
			any = apply_user(w, items + i, 1) || any;
		}
		return any;
	}
	if (err == TERN_ERR_NONE)
		err = TERN_ERR_IO;
	if (err == TERN_ERR_TEMP)
		/* the store is locked past the deadline, or fenced by a move: the
		 * sender retries; not a fault of this node */
		log_warn("delivery: user=%s: storing delivery %llu failed: %s", user,
			 (unsigned long long)items[0]->id, tern_error_str(err));
	else
		log_error("delivery: user=%s: storing delivery %llu failed: %s", user,
			  (unsigned long long)items[0]->id, tern_error_str(err));
	items[0]->rcpt->err = err;
	bool one = true;
	journal_aborts(w->d, items, &one, 1);
	return false;
}

void delivery_task_done(void *arg)
{
	struct store_task *t = arg;
	t->done(t);
}

/* A session's write, in its own durable transaction(s), within the task's
 * deadline: the store's lock is waited for only until then. */
static void run_task(struct apply_worker *w, struct delivery_item *it)
{
	struct store_task *t = it->task;
	uint64_t now = tern_now_ms();
	t->result = -1;
	if (now >= t->deadline_ms) {
		t->err = TERN_ERR_TEMP;
	} else {
		if (t->open == STORE_TASK_NO_STORE) {
			/* the task removes or closes the store's files: the
			 * cached handle goes first */
			if (t->drop_handle)
				store_cache_drop(w->stores, t->user);
			t->result = t->run(NULL, t->arg, &t->err);
			free(it);
			loop_post(t->loop, delivery_task_done, t);
			return;
		}
		/* A handle opened for a session's or a move's task is closed
		 * after it: kept, the handles of users who only read mail
		 * (one SELECT's \Recent claim each) filled the cache, 100 KiB
		 * apiece; deliveries keep theirs (group commit, checkpoints). */
		bool was_open = store_cache_contains(w->stores, t->user);
		struct store *st = store_cache_get(w->stores, t->user, it->gen,
						   t->open == STORE_TASK_CREATE, &t->err);
		enum tern_error ignored;
		if (st != NULL && store_set_durable(st, true, &t->err) == 0) {
			store_set_busy_timeout(st, (unsigned)(t->deadline_ms - now));
			t->result = t->run(st, t->arg, &t->err);
			store_set_busy_timeout(st, TERN_STORE_BUSY_TIMEOUT_MS);
			if (t->drop_handle || !was_open || store_set_durable(st, false, &ignored) < 0 ||
			    (t->result < 0 && !delivery_error_is_item_own(t->err) &&
			     t->err != TERN_ERR_EXISTS && t->err != TERN_ERR_TEMP))
				store_cache_drop(w->stores, t->user);
		}
	}
	free(it);
	loop_post(t->loop, delivery_task_done, t);
}

static void flush_deliveries(struct apply_worker *w, struct delivery_item **items, size_t n)
{
	if (n == 0)
		return;
	const char *user = items[0]->rcpt->user;
	watch_busy_text("user=%s, %zu item(s)", user, n);
	if (apply_user(w, items, n) && delivery_user_changed_hook != NULL)
		delivery_user_changed_hook(user);
	for (size_t i = 0; i < n; i++)
		delivery_item_finished(items[i]);
}

static void fail_batch(struct delivery_item *batch)
{
	for (struct delivery_item *it = batch, *next; it != NULL; it = next) {
		next = it->next;
		if (it->task != NULL) {
			it->task->result = -1;
			it->task->err = TERN_ERR_NOMEM;
			loop_post(it->task->loop, delivery_task_done, it->task);
			free(it);
			continue;
		}
		it->rcpt->err = TERN_ERR_NOMEM;
		delivery_item_finished(it);
	}
}

/* Per user, in arrival order: runs of deliveries are applied together (one
 * transaction), a session's write on its own between them. */
static void apply_batch(struct apply_worker *w, struct delivery_item *batch)
{
	size_t n = 0;
	for (struct delivery_item *it = batch; it != NULL; it = it->next)
		n++;
	struct delivery_item **items = malloc(n * sizeof(*items));
	if (items == NULL) {
		fail_batch(batch);
		return;
	}
	n = 0;
	for (struct delivery_item *it = batch; it != NULL; it = it->next)
		items[n++] = it;
	qsort(items, n, sizeof(*items), item_cmp_user);
	size_t run_start = 0;
	for (size_t i = 0; i < n; i++) {
		bool same_user = i > run_start && strcmp(delivery_item_user(items[i]),
							  delivery_item_user(items[run_start])) == 0;
		if (!same_user || items[i]->task != NULL) {
			flush_deliveries(w, items + run_start, i - run_start);
			run_start = i;
		}
		if (items[i]->task != NULL) {
			watch_busy_text("user=%s, a session's write", items[i]->task->user);
			run_task(w, items[i]);
			run_start = i + 1;
		}
	}
	flush_deliveries(w, items + run_start, n - run_start);
	free(items);
}

static void worker_housekeeping(struct apply_worker *w)
{
	enum tern_error err;
	const char *failed = "?";
	if (store_cache_checkpoint_older(w->stores, atomic_load(&w->d->gen),
					 TERN_WORKER_CHECKPOINTS_PER_ROUND, &failed, &err) < 0)
		log_error("delivery: checkpoint of user=%s failed (retried later): %s", failed,
			  tern_error_str(err));
}

static void *worker_main(void *arg)
{
	struct apply_worker *w = arg;
	watch_thread_begin(WATCH_WORKER, "apply worker %u", w->index);
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
		size_t n = 0;
		for (struct delivery_item *it = batch; it != NULL; it = it->next)
			n++;
		watch_busy("%zu item(s), first for user=%s", n, delivery_item_user(batch));
		/* Tests: a crash after the journal sync, before the stores. */
		fault_stall_once("APPLY_STALL");
		apply_batch(w, batch);
		watch_busy_text("checkpoints");
		worker_housekeeping(w);
		{
			TERN_LOCK_GUARD(&w->mu);
			w->busy_since_ms = 0;
			w->processing_min_gen = UINT64_MAX;
			w->dirty_min_gen = store_cache_oldest_dirty_gen(w->stores);
		}
		watch_idle();
	}
	watch_thread_end();
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
		w->stores = store_cache_new(d->data_dir, TERN_WORKER_STORE_HANDLES);
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
