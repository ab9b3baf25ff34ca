#include "server/delivery.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/delivery-id.h"
#include "core/fault.h"
#include "core/limits.h"
#include "core/log.h"
#include "server/delivery-private.h"
#include "server/journal.h"
#include "server/loop.h"
#include "server/node-registry.h"
#include "server/server.h"
#include "server/watchdog.h"
#include "store/mime.h"
#include "store/store.h"


void (*delivery_user_changed_hook)(const char *user);

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

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
	if (job->cache != NULL) {
		store_msg_cache_clear(job->cache);
		free(job->cache);
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

/* The trace headers stored in front of this recipient's copy. */
static char *build_prefix(const struct delivery_job *job, const struct delivery_rcpt *rcpt,
			  size_t *size_r)
{
	char *buf = NULL;
	int n = asprintf(&buf, "%s%s%s%s%s%s", job->return_path != NULL ? "Return-Path: <" : "",
			 job->return_path != NULL ? job->return_path : "",
			 job->return_path != NULL ? ">\r\n" : "",
			 rcpt->delivered_to != NULL ? "Delivered-To: " : "",
			 rcpt->delivered_to != NULL ? rcpt->delivered_to : "",
			 rcpt->delivered_to != NULL ? "\r\n" : "");
	if (n < 0)
		return NULL;
	*size_r = (size_t)n;
	return buf;
}

/* One parse per message, before the journal lock is taken: the trace
 * headers change neither ENVELOPE nor BODYSTRUCTURE, and a big message's
 * parse must not hold up every other delivery of the node. A failed parse
 * leaves job->cache NULL and the store parses it itself. */
static void summarize_job(struct delivery_job *job)
{
	if (job->cache != NULL || (job->cache = calloc(1, sizeof(*job->cache))) == NULL)
		return;
	if (mime_summarize(job->data, job->size, job->cache) < 0) {
		free(job->cache);
		job->cache = NULL;
	}
}

/* Builds a job's items (ids, trace headers) before the journal lock is
 * taken: only the journal writes themselves happen under it. The committer
 * is the one thread that assigns ids and changes segments, so neither moves
 * meanwhile. Returns 0, or -1 with the items built so far in *items_r. */
static int prepare_job(struct delivery *d, struct delivery_job *job,
		       struct delivery_item **items_r)
{
	uint64_t gen = atomic_load(&d->gen);
	job->journal_id = d->next_id++;
	for (size_t r = 0; r < job->rcpt_count; r++) {
		struct delivery_item *it = calloc(1, sizeof(*it));
		if (it == NULL)
			return -1;
		it->job = job;
		it->rcpt = &job->rcpts[r];
		it->id = d->next_id++;
		it->gen = gen;
		it->next = *items_r;
		*items_r = it;
		it->prefix = build_prefix(job, it->rcpt, &it->prefix_size);
		if (it->prefix == NULL)
			return -1;
	}
	return 0;
}

/* Adds the items (oldest first) to the journal: each job's message once,
 * just before the first of its recipients' records, which refer to it. */
static int journal_items(struct delivery *d, const struct delivery_item *oldest_first)
{
	const struct delivery_job *last = NULL;
	for (const struct delivery_item *it = oldest_first; it != NULL; it = it->next) {
		const struct delivery_job *job = it->job;
		if (job != last) {
			struct journal_record msg = {
				.type = JOURNAL_MESSAGE, .id = job->journal_id, .user = "", .folder = "",
				.keywords = job->keywords, .flags = job->flags,
				.internal_date = job->internal_date, .internal_tz = job->internal_tz,
				.data = job->data, .size = job->size,
			};
			if (journal_add(d->journal, &msg) < 0)
				return -1;
			last = job;
		}
		uint32_t flags = job->flags | (it->rcpt->fallback_inbox ? DELIVERY_FALLBACK_INBOX : 0);
		struct journal_record rec = {
			.type = JOURNAL_RCPT, .id = it->id, .user = it->rcpt->user,
			.folder = it->rcpt->folder, .keywords = job->keywords, .flags = flags,
			.internal_date = job->internal_date, .internal_tz = job->internal_tz,
			.data = it->prefix, .size = it->prefix_size, .message_id = job->journal_id,
		};
		if (journal_add(d->journal, &rec) < 0)
			return -1;
	}
	return 0;
}

static struct delivery_item *reversed(struct delivery_item *items)
{
	struct delivery_item *out = NULL;
	while (items != NULL) {
		struct delivery_item *next = items->next;
		items->next = out;
		out = items;
		items = next;
	}
	return out;
}

static void fail_items(struct delivery_item *items, enum tern_error err)
{
	while (items != NULL) {
		struct delivery_item *next = items->next;
		items->rcpt->err = err;
		delivery_item_finished(items);
		items = next;
	}
}

/* Journals a batch with one fdatasync, then hands each message to the
 * worker that owns its user; replies go out as workers finish. */
static void commit_batch(struct delivery *d, struct delivery_job *batch)
{
	struct delivery_item *items = NULL;
	int failed_errno = 0;
	for (struct delivery_job *j = batch; j != NULL; j = j->next) {
		atomic_store(&j->pending, j->rcpt_count);
		summarize_job(j);
	}
	for (struct delivery_job *j = batch; j != NULL && failed_errno == 0; j = j->next) {
		if (prepare_job(d, j, &items) < 0)
			failed_errno = ENOMEM;
	}
	/* oldest first from here on: the journal's order, and the order the
	 * workers must see (UIDs in arrival order) */
	items = reversed(items);
	{
		TERN_LOCK_GUARD(&d->journal_mu);
		if (failed_errno == 0 && journal_items(d, items) < 0)
			failed_errno = ENOMEM;
		uint64_t t0 = now_us();
		fault_stall_once("JOURNAL_STALL");
		if (failed_errno == 0 && journal_sync(d->journal) < 0)
			failed_errno = errno;
		if (failed_errno != 0)
			journal_discard(d->journal);
		d->journal_us += now_us() - t0;
	}
	size_t count = 0;
	for (struct delivery_item *it = items; it != NULL; it = it->next)
		count++;
	d->rounds++;
	d->items += count;
	if (failed_errno != 0) {
		log_error("delivery: journal write failed for %zu message(s): %s", count,
			  strerror(failed_errno));
		/* Recipients never reached by prepare_job complete here too. */
		for (struct delivery_job *j = batch; j != NULL; j = j->next) {
			size_t built = 0;
			for (struct delivery_item *it = items; it != NULL; it = it->next)
				built += it->job == j;
			for (size_t r = built; r < j->rcpt_count; r++) {
				j->rcpts[r].err = errno_to_tern(failed_errno);
				delivery_rcpt_finished(j);
			}
		}
		fail_items(items, errno_to_tern(failed_errno));
		return;
	}
	while (items != NULL) {
		struct delivery_item *next = items->next;
		apply_worker_push(d, items);
		items = next;
	}
}

static void rotate_segment(struct delivery *d)
{
	TERN_LOCK_GUARD(&d->journal_mu);
	if (journal_size(d->journal) < TERN_JOURNAL_SEGMENT_BYTES)
		return;
	uint64_t gen = atomic_load(&d->gen) + 1;
	char *path = delivery_segment_path(d, gen), *err = NULL;
	struct journal *next;
	if (path == NULL || journal_open(path, &next, &err) < 0) {
		log_error("delivery: cannot start journal segment %s: %s", path != NULL ? path : "?",
			  err != NULL ? err : "out of memory");
		free(err);
		free(path);
		return;
	}
	free(path);
	journal_close(&d->journal);
	d->journal = next;
	atomic_store(&d->gen, gen);
}

static void *committer_main(void *arg)
{
	struct delivery *d = arg;
	watch_thread_begin(WATCH_WORKER, "delivery committer");
	for (;;) {
		struct delivery_job *batch;
		{
			TERN_LOCK_GUARD(&d->mu);
			while (d->queue_head == NULL && !d->stopping)
				tern_cond_wait(&d->cond, &d->mu, 0);
			batch = d->queue_head;
			d->queue_head = d->queue_tail = NULL;
			d->inflight_since_ms = batch != NULL ? batch->submitted_ms : 0;
			if (batch == NULL)
				break; /* stopping and drained */
		}
		size_t jobs = 0;
		for (struct delivery_job *j = batch; j != NULL; j = j->next)
			jobs++;
		watch_busy("%zu job(s), first for user=%s", jobs,
			   batch->rcpt_count > 0 ? batch->rcpts[0].user : "-");
		commit_batch(d, batch);
		{
			TERN_LOCK_GUARD(&d->mu);
			d->inflight_since_ms = 0;
		}
		rotate_segment(d);
		uint64_t needed = apply_workers_needed_gen(d);
		uint64_t gen = atomic_load(&d->gen);
		delivery_delete_segments_before(d, needed < gen ? needed : gen);
		watch_idle();
	}
	watch_thread_end();
	return NULL;
}

static int open_current_segment(struct delivery *d, char **err_r)
{
	char *path = delivery_segment_path(d, atomic_load(&d->gen));
	if (path == NULL) {
		*err_r = strdup("out of memory");
		return -1;
	}
	int r = journal_open(path, &d->journal, err_r);
	free(path);
	return r;
}

static void delivery_free(struct delivery *d)
{
	journal_close(&d->journal);
	tern_mutex_destroy(&d->mu);
	tern_mutex_destroy(&d->journal_mu);
	pthread_cond_destroy(&d->cond);
	free(d->data_dir);
	free(d);
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
	tern_mutex_init(&d->journal_mu, "delivery journal");
	tern_cond_init(&d->cond);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Unique in the cluster (core/delivery-id.h): this node's number, and
	 * a sequence that starts past the wall clock in us and past anything
	 * an earlier run journaled (delivery_replay). Tests may pin the clock
	 * part so that two nodes hand out the same sequence. */
	uint64_t seq = fault_number("DELIVERY_ID_CLOCK");
	if (seq == 0)
		seq = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	d->next_id = delivery_id_make(node_registry_number(), seq);
	d->data_dir = strdup(srv->config->data_dir);
	if (d->data_dir == NULL) {
		*err_r = strdup("out of memory");
		delivery_free(d);
		return -1;
	}
	if (delivery_replay(d, err_r) < 0 || open_current_segment(d, err_r) < 0) {
		delivery_free(d);
		return -1;
	}
	if (apply_workers_start(d, TERN_APPLY_WORKERS, err_r) < 0) {
		(void)apply_workers_stop(d);
		delivery_free(d);
		return -1;
	}
	if (pthread_create(&d->thread, NULL, committer_main, d) != 0) {
		*err_r = strdup("cannot start the delivery thread");
		(void)apply_workers_stop(d);
		delivery_free(d);
		return -1;
	}
	*d_r = d;
	return 0;
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

void delivery_store_task(struct delivery *d, struct store_task *t)
{
	if (t->deadline_ms == 0)
		t->deadline_ms = tern_now_ms() + TERN_STORE_WRITE_DEADLINE_MS;
	struct delivery_item *it = calloc(1, sizeof(*it));
	if (it == NULL) {
		t->result = -1;
		t->err = TERN_ERR_NOMEM;
		loop_post(t->loop, delivery_task_done, t);
		return;
	}
	it->task = t;
	it->gen = atomic_load(&d->gen);
	apply_worker_push(d, it);
}

uint64_t delivery_oldest_ms(struct delivery *d)
{
	uint64_t age = apply_workers_busy_ms(d);
	TERN_LOCK_GUARD(&d->mu);
	uint64_t since = d->inflight_since_ms;
	if (since == 0 && d->queue_head != NULL)
		since = d->queue_head->submitted_ms;
	uint64_t queued = since == 0 ? 0 : tern_now_ms() - since;
	return queued > age ? queued : age;
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
	bool clean = apply_workers_stop(d);
	if (d->rounds > 0)
		log_info("delivery: %llu messages in %llu journal rounds (%.1f per round, "
			 "%.0f us per group fsync)",
			 (unsigned long long)d->items, (unsigned long long)d->rounds,
			 (double)d->items / (double)d->rounds,
			 (double)d->journal_us / (double)d->rounds);
	if (clean) {
		uint64_t gen = atomic_load(&d->gen);
		journal_close(&d->journal);
		delivery_delete_segments_before(d, gen + 1);
	}
	delivery_free(d);
}
