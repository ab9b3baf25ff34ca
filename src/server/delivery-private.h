/* Internals of the delivery pipeline shared by its files: the committer
 * (delivery.c: queue, journal, group fsync), the apply workers
 * (delivery-apply.c: per-user stores, sharded by user) and start-up replay
 * (delivery-replay.c). */
#ifndef TERN_SERVER_DELIVERY_PRIVATE_H
#define TERN_SERVER_DELIVERY_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/lock.h"
#include "server/delivery.h"

struct journal;
struct store;
struct store_cache;
struct store_msg_cache;

/* Journal flag bit (never a store flag): deliver to INBOX if the folder is gone. */
#define DELIVERY_FALLBACK_INBOX (1u << 31)

/* One stored copy: a recipient of a job. The message itself stays in the
 * job, once for all recipients; only the trace headers are per recipient. */
struct delivery_item {
	struct delivery_job *job;       /* NULL for a store task */
	struct delivery_rcpt *rcpt;     /* NULL for a store task */
	struct store_task *task;        /* a store write from a session, or NULL */
	uint64_t order;                 /* arrival at its worker */
	uint64_t id;                    /* node-unique delivery id */
	uint64_t gen;                   /* journal segment holding it */
	char *prefix;                   /* Return-Path/Delivered-To lines */
	size_t prefix_size;
	struct delivery_item *next;
};

struct apply_worker {
	struct delivery *d;
	unsigned index;
	pthread_t thread;
	struct tern_mutex mu;           /* guards everything below but stores */
	pthread_cond_t cond;
	struct delivery_item *head, *tail;
	uint64_t next_order;
	bool stopping;
	bool finished_clean;            /* every store checkpointed at stop */
	uint64_t busy_since_ms;         /* 0 = idle */
	uint64_t processing_min_gen;    /* of the batch being applied, UINT64_MAX = none */
	uint64_t dirty_min_gen;         /* oldest segment its stores still need */
	struct store_cache *stores;     /* touched by the worker thread only */
};

struct delivery {
	struct server *server;
	pthread_t thread;
	struct tern_mutex mu;           /* guards queue_*, stopping, inflight_since_ms */
	pthread_cond_t cond;
	struct delivery_job *queue_head, *queue_tail;
	bool stopping;
	uint64_t inflight_since_ms;
	/* Guards the journal: the committer appends deliveries, workers append
	 * abort records. Held across a write+fdatasync, never across network I/O. */
	struct tern_mutex journal_mu;
	struct journal *journal;        /* current segment */
	_Atomic uint64_t gen;           /* its number */
	uint64_t oldest_gen;            /* oldest segment still on disk (committer) */
	char *data_dir;
	uint64_t next_id;
	struct apply_worker *workers;
	unsigned worker_count;
	/* statistics, reported at stop */
	uint64_t rounds, items, journal_us;
};

/* delivery-apply.c */
int apply_workers_start(struct delivery *d, unsigned count, char **err_r);
/* Calls a store task's done (a loop_post callback). */
void delivery_task_done(void *arg);
/* The user an item writes to. */
const char *delivery_item_user(const struct delivery_item *it);
/* Queues one item on the worker that owns its user. */
void apply_worker_push(struct delivery *d, struct delivery_item *item);
/* Drains, checkpoints and joins every worker. True if all stores were
 * checkpointed (the journal is then no longer needed). */
bool apply_workers_stop(struct delivery *d);
/* The oldest journal segment any worker still needs (UINT64_MAX = none). */
uint64_t apply_workers_needed_gen(struct delivery *d);
/* Age in ms of the oldest batch a worker is applying (0 = none). */
uint64_t apply_workers_busy_ms(struct delivery *d);
/* Applies one message to an open store: the bytes are prefix + data (so a
 * message with many recipients is never copied per recipient ahead of
 * time). With fallback, a folder that is missing or whose name the store
 * refuses means INBOX: a +detail is the sender's choice, never a reason to
 * refuse mail. */
struct delivery_apply {
	const char *folder;
	bool fallback;
	uint64_t id;
	const void *prefix;
	size_t prefix_size;
	const void *data;
	size_t size;
	uint32_t flags;
	const char *keywords;
	int64_t date;
	int32_t tz;
	const struct store_msg_cache *cache;
};
int delivery_apply_one(struct store *st, const struct delivery_apply *a, uint32_t *uid_r,
		       uint32_t *uidvalidity_r, enum tern_error *err_r);
/* An error that belongs to one recipient and one message (its quota, its
 * size, its user gone): the others of a batch are not affected by it. */
bool delivery_error_is_item_own(enum tern_error err);
/* Counts one recipient of job as answered (its err set); the job's done
 * callback is posted after the last. Allocates nothing. */
void delivery_rcpt_finished(struct delivery_job *job);
/* Completes one recipient; the job's done callback is posted after the last. */
void delivery_item_finished(struct delivery_item *it);

/* delivery-replay.c */
/* Replays every segment an earlier run left, sets d->gen, d->oldest_gen and
 * d->next_id. -1 with *err_r if a segment cannot be read or applied. */
int delivery_replay(struct delivery *d, char **err_r);
char *delivery_segment_path(const struct delivery *d, uint64_t gen);
/* Deletes segments older than gen (and advances d->oldest_gen). */
void delivery_delete_segments_before(struct delivery *d, uint64_t gen);

#endif
