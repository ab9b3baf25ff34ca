#include "server/delivery.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/lock.h"
#include "core/log.h"
#include "server/journal.h"
#include "server/loop.h"
#include "server/server.h"
#include "server/store-cache.h"
#include "store/mime.h"
#include "store/store.h"

/* Journal flag bit (never a store flag): deliver to INBOX if the folder is gone. */
#define DELIVERY_FALLBACK_INBOX (1u << 31)
/* Start a new journal segment once the current one grows past this. A
 * segment is deleted when every store written under it has been checkpointed. */
#define DELIVERY_SEGMENT_BYTES (64ull * 1024 * 1024)
/* Stores checkpointed per committer round: spreads the fsyncs of a segment's
 * stores over many rounds instead of stalling one. */
#define DELIVERY_CHECKPOINTS_PER_ROUND 4u
#define DELIVERY_SEGMENT_PREFIX "delivery.journal."
#define DELIVERY_MAX_SEGMENTS 1024u
/* Open store handles kept by the committer. */
#define DELIVERY_STORE_HANDLES 2048u

void (*delivery_user_changed_hook)(const char *user);

struct delivery {
	struct server *server;
	pthread_t thread;
	struct tern_mutex mu;           /* guards queue_*, stopping, oldest */
	pthread_cond_t cond;
	struct delivery_job *queue_head, *queue_tail;
	bool stopping;
	uint64_t inflight_since_ms;     /* submit time of the oldest job being committed */
	struct journal *journal;        /* the current segment */
	uint64_t gen;                   /* its number */
	uint64_t oldest_gen;            /* the oldest segment still on disk */
	char *data_dir;
	struct store_cache *stores;
	uint64_t next_id;
};

static char *segment_path(const struct delivery *d, uint64_t gen)
{
	char *path;
	if (asprintf(&path, "%s/" DELIVERY_SEGMENT_PREFIX "%020llu", d->data_dir,
		     (unsigned long long)gen) < 0)
		return NULL;
	return path;
}

/* One stored copy: a recipient of a job, with the bytes to store. */
struct delivery_item {
	struct delivery_job *job;
	struct delivery_rcpt *rcpt;
	uint64_t id;
	char *bytes;                   /* prefix headers + job->data */
	size_t size;
	const struct store_msg_cache *cache;
};

struct delivery_job *delivery_job_new(size_t rcpt_count)
{
	struct delivery_job *job = calloc(1, sizeof(*job));
	if (job == NULL)
		return NULL;
	job->rcpts = calloc(rcpt_count > 0 ? rcpt_count : 1, sizeof(*job->rcpts));
	if (job->rcpts == NULL) {
		free(job);
		return NULL;
	}
	job->rcpt_count = rcpt_count;
	return job;
}

void delivery_job_free(struct delivery_job **jp)
{
	struct delivery_job *job = *jp;
	if (job == NULL)
		return;
	*jp = NULL;
	for (size_t i = 0; i < job->rcpt_count; i++) {
		free(job->rcpts[i].user);
		free(job->rcpts[i].folder);
		free(job->rcpts[i].delivered_to);
	}
	free(job->rcpts);
	free(job->data);
	free(job->return_path);
	free(job->keywords);
	free(job);
}

static enum tern_error errno_to_tern(int e)
{
	return e == ENOSPC || e == EDQUOT ? TERN_ERR_NOSPACE : TERN_ERR_IO;
}

/* ---- applying records to stores (shared by the committer and replay) ---- */

static int apply_one(struct store *st, const char *folder, bool fallback, uint64_t id,
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

/* ---- replay ---- */

struct replay_ctx {
	struct delivery *d;
	uint64_t *aborted;
	size_t aborted_count, aborted_cap;
	size_t applied;
	bool collecting_aborts;
};

static bool replay_is_aborted(const struct replay_ctx *rc, uint64_t id)
{
	for (size_t i = 0; i < rc->aborted_count; i++) {
		if (rc->aborted[i] == id)
			return true;
	}
	return false;
}

static int replay_record(const struct journal_record *rec, void *ctx)
{
	struct replay_ctx *rc = ctx;
	if (rc->collecting_aborts) {
		if (rec->type != JOURNAL_ABORT)
			return 0;
		if (rc->aborted_count == rc->aborted_cap) {
			size_t cap = rc->aborted_cap > 0 ? rc->aborted_cap * 2 : 64;
			uint64_t *a = realloc(rc->aborted, cap * sizeof(*a));
			if (a == NULL)
				return -1;
			rc->aborted = a;
			rc->aborted_cap = cap;
		}
		rc->aborted[rc->aborted_count++] = rec->id;
		return 0;
	}
	if (rec->type != JOURNAL_DELIVER || replay_is_aborted(rc, rec->id))
		return 0;
	enum tern_error err = TERN_ERR_NONE;
	struct store *st = store_cache_get(rc->d->stores, rec->user, rc->d->gen, &err);
	if (st == NULL) {
		log_error("journal replay: user=%s delivery=%llu: open store: %s", rec->user,
			  (unsigned long long)rec->id, tern_error_str(err));
		return -1;
	}
	uint32_t uid;
	if (apply_one(st, rec->folder, (rec->flags & DELIVERY_FALLBACK_INBOX) != 0, rec->id,
		      rec->data, rec->size, rec->flags & ~DELIVERY_FALLBACK_INBOX, rec->keywords,
		      rec->internal_date, rec->internal_tz, NULL, &uid, NULL, &err) < 0) {
		log_error("journal replay: user=%s delivery=%llu folder=%s: %s", rec->user,
			  (unsigned long long)rec->id, rec->folder, tern_error_str(err));
		return -1;
	}
	rc->applied++;
	return 0;
}

static int gen_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The numbers of the segments an earlier run left, ascending. */
static int list_segments(const char *data_dir, uint64_t **gens_r, size_t *count_r,
			 char **err_r)
{
	DIR *dir = opendir(data_dir);
	if (dir == NULL) {
		if (asprintf(err_r, "%s: %s", data_dir, strerror(errno)) < 0)
			*err_r = NULL;
		return -1;
	}
	uint64_t *gens = calloc(DELIVERY_MAX_SEGMENTS, sizeof(*gens));
	size_t n = 0;
	struct dirent *de;
	size_t plen = strlen(DELIVERY_SEGMENT_PREFIX);
	while (gens != NULL && (de = readdir(dir)) != NULL && n < DELIVERY_MAX_SEGMENTS) {
		char *end;
		if (strncmp(de->d_name, DELIVERY_SEGMENT_PREFIX, plen) != 0)
			continue;
		unsigned long long g = strtoull(de->d_name + plen, &end, 10);
		if (*end == '\0' && end != de->d_name + plen)
			gens[n++] = g;
	}
	closedir(dir);
	if (gens == NULL) {
		*err_r = strdup("out of memory");
		return -1;
	}
	qsort(gens, n, sizeof(*gens), gen_cmp);
	*gens_r = gens;
	*count_r = n;
	return 0;
}

static void delete_segments_before(struct delivery *d, uint64_t gen)
{
	for (; d->oldest_gen < gen; d->oldest_gen++) {
		char *path = segment_path(d, d->oldest_gen);
		if (path != NULL && unlink(path) < 0 && errno != ENOENT)
			log_error("delivery: cannot delete journal segment %s: %s", path,
				  strerror(errno));
		free(path);
	}
}

static int replay_segments(struct delivery *d, struct replay_ctx *rc, const uint64_t *gens,
			   size_t n, char **err_r)
{
	for (size_t i = 0; i < n; i++) {
		char *path = segment_path(d, gens[i]);
		uint64_t max_id = 0;
		int r = path != NULL ? journal_replay(path, replay_record, rc, &max_id, err_r) : -1;
		free(path);
		if (r < 0)
			return -1;
		if (max_id >= d->next_id)
			d->next_id = max_id + 1;
	}
	return 0;
}

/* Applies what earlier runs journaled. A store that cannot be checkpointed
 * afterwards keeps its segments on disk (they replay again next time); the
 * node still starts. */
static int delivery_replay(struct delivery *d, char **err_r)
{
	uint64_t *gens = NULL;
	size_t n = 0;
	if (list_segments(d->data_dir, &gens, &n, err_r) < 0)
		return -1;
	d->gen = n > 0 ? gens[n - 1] + 1 : 1;
	d->oldest_gen = n > 0 ? gens[0] : d->gen;
	struct replay_ctx rc = {.d = d, .collecting_aborts = true};
	int ret = replay_segments(d, &rc, gens, n, err_r);
	if (ret == 0) {
		rc.collecting_aborts = false;
		ret = replay_segments(d, &rc, gens, n, err_r);
	}
	free(rc.aborted);
	free(gens);
	if (ret < 0)
		return -1;
	if (rc.applied > 0)
		log_info("journal replay: %zu deliveries checked and stored", rc.applied);
	enum tern_error err;
	const char *failed = "?";
	if (store_cache_checkpoint(d->stores, &failed, &err) < 0)
		log_error("journal replay: checkpoint of user=%s failed, journal kept: %s", failed,
			  tern_error_str(err));
	else
		delete_segments_before(d, d->gen);
	return 0;
}

/* ---- the committer ---- */

static char *build_bytes(const struct delivery_job *job, const struct delivery_rcpt *rcpt,
			 size_t *size_r)
{
	char prefix[2200];
	int n = 0;
	if (job->return_path != NULL)
		n += snprintf(prefix + n, sizeof(prefix) - (size_t)n, "Return-Path: <%s>\r\n",
			      job->return_path);
	if (rcpt->delivered_to != NULL && (size_t)n < sizeof(prefix))
		n += snprintf(prefix + n, sizeof(prefix) - (size_t)n, "Delivered-To: %s\r\n",
			      rcpt->delivered_to);
	if ((size_t)n >= sizeof(prefix))
		n = 0; /* addresses are bounded by the line limit; never truncate a header */
	char *buf = malloc((size_t)n + job->size + 1);
	if (buf == NULL)
		return NULL;
	memcpy(buf, prefix, (size_t)n);
	memcpy(buf + n, job->data, job->size);
	*size_r = (size_t)n + job->size;
	return buf;
}

static int item_cmp_user(const void *a, const void *b)
{
	const struct delivery_item *x = a, *y = b;
	int c = strcmp(x->rcpt->user, y->rcpt->user);
	if (c != 0)
		return c;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void journal_abort(struct delivery *d, const struct delivery_item *it)
{
	struct journal_record rec = {
		.type = JOURNAL_ABORT, .id = it->id, .user = it->rcpt->user, .folder = "",
		.keywords = "",
	};
	(void)journal_add(d->journal, &rec);
}

/* Applies the items of one user (items[0..n)) in one transaction. */
static bool apply_user(struct delivery *d, struct delivery_item *items, size_t n)
{
	const char *user = items[0].rcpt->user;
	enum tern_error err = TERN_ERR_NONE;
	struct store *st = store_cache_get(d->stores, user, d->gen, &err);
	if (st != NULL && store_begin(st, &err) == 0) {
		size_t i;
		for (i = 0; i < n; i++) {
			struct delivery_item *it = &items[i];
			const struct delivery_job *job = it->job;
			if (apply_one(st, it->rcpt->folder, it->rcpt->fallback_inbox, it->id,
				      it->bytes, it->size, job->flags, job->keywords,
				      job->internal_date, job->internal_tz, it->cache,
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
		store_cache_drop(d->stores, user);
	for (size_t i = 0; i < n; i++) {
		items[i].rcpt->err = err != TERN_ERR_NONE ? err : TERN_ERR_IO;
		journal_abort(d, &items[i]);
	}
	return false;
}

static void job_done_task(void *arg)
{
	struct delivery_job *job = arg;
	job->done(job);
}

static void commit_batch(struct delivery *d, struct delivery_job *batch)
{
	size_t count = 0;
	for (struct delivery_job *j = batch; j != NULL; j = j->next)
		count += j->rcpt_count;
	struct delivery_item *items = calloc(count > 0 ? count : 1, sizeof(*items));
	struct store_msg_cache *caches = calloc(count > 0 ? count : 1, sizeof(*caches));
	size_t n = 0;
	bool journal_failed = items == NULL || caches == NULL;
	int sync_errno = ENOMEM;
	for (struct delivery_job *j = batch; j != NULL && !journal_failed; j = j->next) {
		for (size_t r = 0; r < j->rcpt_count; r++) {
			struct delivery_item *it = &items[n];
			it->job = j;
			it->rcpt = &j->rcpts[r];
			it->id = d->next_id++;
			it->bytes = build_bytes(j, it->rcpt, &it->size);
			if (it->bytes == NULL) {
				journal_failed = true;
				break;
			}
			/* One parse per message: the added trace headers change neither
			 * ENVELOPE nor BODYSTRUCTURE. */
			if (r == 0)
				(void)mime_summarize(it->bytes, it->size, &caches[n]);
			it->cache = &caches[n - r];
			uint32_t flags = j->flags | (it->rcpt->fallback_inbox ? DELIVERY_FALLBACK_INBOX : 0);
			struct journal_record rec = {
				.type = JOURNAL_DELIVER, .id = it->id, .user = it->rcpt->user,
				.folder = it->rcpt->folder, .keywords = j->keywords, .flags = flags,
				.internal_date = j->internal_date, .internal_tz = j->internal_tz,
				.data = it->bytes, .size = it->size,
			};
			n++;
			if (journal_add(d->journal, &rec) < 0) {
				journal_failed = true;
				break;
			}
		}
	}
	if (!journal_failed && journal_sync(d->journal) < 0) {
		sync_errno = errno;
		journal_failed = true;
	}
	if (journal_failed) {
		log_error("delivery: journal write failed for %zu message(s): %s", count,
			  strerror(sync_errno));
		for (struct delivery_job *j = batch; j != NULL; j = j->next)
			for (size_t r = 0; r < j->rcpt_count; r++)
				j->rcpts[r].err = errno_to_tern(sync_errno);
	} else {
		qsort(items, n, sizeof(*items), item_cmp_user);
		bool aborted = false;
		for (size_t i = 0; i < n;) {
			size_t k = i + 1;
			while (k < n && strcmp(items[k].rcpt->user, items[i].rcpt->user) == 0)
				k++;
			if (!apply_user(d, items + i, k - i))
				aborted = true;
			else if (delivery_user_changed_hook != NULL)
				delivery_user_changed_hook(items[i].rcpt->user);
			i = k;
		}
		/* A refused delivery must not come back at replay. */
		if (aborted && journal_sync(d->journal) < 0)
			log_error("delivery: journal abort record not synced: %s", strerror(errno));
	}
	for (size_t i = 0; i < n; i++)
		free(items[i].bytes);
	for (size_t i = 0; i < count && caches != NULL; i++)
		store_msg_cache_clear(&caches[i]);
	free(items);
	free(caches);
	while (batch != NULL) {
		struct delivery_job *next = batch->next;
		batch->next = NULL;
		loop_post(batch->loop, job_done_task, batch);
		batch = next;
	}
}

static int open_segment(struct delivery *d, char **err_r)
{
	char *path = segment_path(d, d->gen);
	if (path == NULL) {
		*err_r = strdup("out of memory");
		return -1;
	}
	int r = journal_open(path, &d->journal, err_r);
	free(path);
	return r;
}

/* After each round: rotate a full segment, checkpoint a few stores that hold
 * older segments, and delete the segments no store needs any more. */
static void journal_housekeeping(struct delivery *d)
{
	if (journal_size(d->journal) >= DELIVERY_SEGMENT_BYTES) {
		char *err = NULL;
		struct journal *old = d->journal;
		d->gen++;
		if (open_segment(d, &err) < 0) {
			log_error("delivery: cannot start journal segment %llu: %s",
				  (unsigned long long)d->gen, err != NULL ? err : "?");
			free(err);
			d->gen--;
			d->journal = old;
		} else {
			journal_close(&old);
		}
	}
	enum tern_error err;
	const char *failed = "?";
	if (store_cache_checkpoint_older(d->stores, d->gen, DELIVERY_CHECKPOINTS_PER_ROUND, &failed,
					 &err) < 0)
		log_error("delivery: checkpoint of user=%s failed (retried later): %s", failed,
			  tern_error_str(err));
	uint64_t needed = store_cache_oldest_dirty_gen(d->stores);
	delete_segments_before(d, needed < d->gen ? needed : d->gen);
}

/* Clean stop: every store checkpointed, every segment deleted. */
static void journal_finish(struct delivery *d)
{
	enum tern_error err;
	const char *failed = "?";
	if (store_cache_checkpoint(d->stores, &failed, &err) < 0) {
		log_error("delivery: checkpoint of user=%s failed, journal kept for replay: %s",
			  failed, tern_error_str(err));
		return;
	}
	journal_close(&d->journal);
	delete_segments_before(d, d->gen + 1);
}

static void *committer_main(void *arg)
{
	struct delivery *d = arg;
	for (;;) {
		struct delivery_job *batch;
		{
			TERN_LOCK_GUARD(&d->mu);
			while (d->queue_head == NULL && !d->stopping)
				tern_cond_wait(&d->cond, &d->mu, 0);
			batch = d->queue_head;
			d->queue_head = d->queue_tail = NULL;
			d->inflight_since_ms = batch != NULL ? batch->submitted_ms : 0;
			if (batch == NULL && d->stopping)
				break;
		}
		commit_batch(d, batch);
		{
			TERN_LOCK_GUARD(&d->mu);
			d->inflight_since_ms = 0;
		}
		journal_housekeeping(d);
	}
	journal_finish(d);
	return NULL;
}

int delivery_start(struct server *srv, struct delivery **d_r, char **err_r)
{
	struct delivery *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		*err_r = strdup("out of memory");
		return -1;
	}
	d->server = srv;
	tern_mutex_init(&d->mu, "delivery queue");
	tern_cond_init(&d->cond);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Ids only need to be unique per node: start past the wall clock in us,
	 * and past anything an earlier run journaled. */
	d->next_id = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	d->data_dir = strdup(srv->config->data_dir);
	d->stores = store_cache_new(srv->config->data_dir, DELIVERY_STORE_HANDLES);
	if (d->stores == NULL || d->data_dir == NULL) {
		*err_r = strdup("out of memory");
		goto fail;
	}
	if (delivery_replay(d, err_r) < 0 || open_segment(d, err_r) < 0)
		goto fail;
	if (pthread_create(&d->thread, NULL, committer_main, d) != 0) {
		*err_r = strdup("cannot start the delivery thread");
		goto fail;
	}
	*d_r = d;
	return 0;
fail:
	journal_close(&d->journal);
	free(d->data_dir);
	store_cache_free(&d->stores);
	tern_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cond);
	free(d);
	return -1;
}

void delivery_submit(struct delivery *d, struct delivery_job *job)
{
	job->submitted_ms = tern_now_ms();
	job->next = NULL;
	TERN_LOCK_GUARD(&d->mu);
	if (d->queue_tail != NULL)
		d->queue_tail->next = job;
	else
		d->queue_head = job;
	d->queue_tail = job;
	pthread_cond_signal(&d->cond);
}

uint64_t delivery_oldest_ms(struct delivery *d)
{
	TERN_LOCK_GUARD(&d->mu);
	uint64_t since = d->inflight_since_ms;
	if (since == 0 && d->queue_head != NULL)
		since = d->queue_head->submitted_ms;
	return since == 0 ? 0 : tern_now_ms() - since;
}

void delivery_stop(struct delivery **dp)
{
	struct delivery *d = *dp;
	if (d == NULL)
		return;
	*dp = NULL;
	{
		TERN_LOCK_GUARD(&d->mu);
		d->stopping = true;
		pthread_cond_signal(&d->cond);
	}
	pthread_join(d->thread, NULL);
	journal_close(&d->journal);
	store_cache_free(&d->stores);
	tern_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cond);
	free(d->data_dir);
	free(d);
}
