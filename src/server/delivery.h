/* The delivery pipeline: sessions submit complete messages; a committer
 * thread journals every message that arrived meanwhile, makes the group
 * durable with one fdatasync, applies it to the per-user stores (no fsync
 * there), and hands each result back to the submitting loop thread. SQLite and
 * fsync never run on a loop thread. */
#ifndef TERN_SERVER_DELIVERY_H
#define TERN_SERVER_DELIVERY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct store;
struct store_msg_cache;

struct loop;
struct server;
struct delivery;

struct delivery_rcpt {
	char *user;            /* canonical user name */
	char *folder;          /* target folder; falls back to INBOX if missing
	                          and fallback_inbox is set */
	char *delivered_to;    /* Delivered-To header value, NULL = none */
	bool fallback_inbox;
	uint64_t quota;        /* the user's limit in bytes, 0 = none */
	/* results */
	enum tern_error err;   /* TERN_ERR_NONE = stored durably */
	uint32_t uid;
	uint32_t uidvalidity;
};

struct delivery_job {
	struct delivery_rcpt *rcpts;
	size_t rcpt_count;
	char *data;            /* the message as received (CRLF) */
	size_t size;
	char *return_path;     /* NULL = no Return-Path header (IMAP APPEND) */
	uint32_t flags;        /* store_flag bits */
	char *keywords;
	int64_t internal_date; /* 0 = now */
	int32_t internal_tz;
	/* Runs on `loop` when every recipient has a result. */
	void (*done)(struct delivery_job *job);
	void *ctx;
	struct loop *loop;
	/* private to the pipeline */
	uint64_t submitted_ms;
	uint64_t journal_id;              /* its JOURNAL_MESSAGE record */
	struct delivery_job *next;
	_Atomic size_t pending;           /* recipients not yet applied */
	struct store_msg_cache *cache;    /* one parse for every recipient */
};

/* A write to one user's store (IMAP STORE, EXPUNGE, COPY, folder changes,
 * POP3's QUIT, creating a store at first login), run on the apply worker
 * that owns the user: the one thread that writes that user's store, so
 * these writes and deliveries never wait on each other's locks, and a slow
 * disk or a lock held on the store stalls that worker, never a loop
 * thread. Commits made by run are durable (fsync) before done is called. */
/* How a store task gets the user's store. The default opens an existing
 * store only: a task of a session or a move must never bring back, empty, a
 * store that a move removed (that would be a second home for the user). */
enum store_task_open {
	STORE_TASK_OPEN = 0,     /* missing store: TERN_ERR_NOTFOUND, run not called */
	STORE_TASK_CREATE,       /* a new user's first login */
	STORE_TASK_NO_STORE,     /* run gets NULL: work on the store's files (remove,
	                            close a copy) that only needs the user's worker */
};

struct store_task {
	const char *user;        /* canonical; must outlive the task */
	/* Runs on the worker with the user's store, opened as `open` says. */
	int (*run)(struct store *st, void *arg, enum tern_error *err_r);
	enum store_task_open open;
	void *arg;
	/* Runs on `loop` afterwards, always exactly once. */
	void (*done)(struct store_task *t);
	struct loop *loop;
	/* tern_now_ms() by which the answer is due: a task still queued then
	 * is not run, and waits for the store's lock end there; both give
	 * TERN_ERR_TEMP. 0 = the default, TERN_STORE_WRITE_DEADLINE_MS. */
	uint64_t deadline_ms;
	/* The worker forgets its cached handle of the store afterwards (the
	 * task removed the store's files). */
	bool drop_handle;
	/* results, valid in done */
	int result;              /* what run returned, -1 if it did not run */
	enum tern_error err;
};

/* Queues t on the worker that owns t->user. Callable from any thread. */
void delivery_store_task(struct delivery *d, struct store_task *t);

/* Replays the journal left by an earlier run into the stores, then starts the
 * committer. -1 with *err_r (heap) if the journal cannot be replayed. */
int delivery_start(struct server *srv, struct delivery **d_r, char **err_r);
/* Queues a job; job->done runs later on job->loop. Callable from any thread. */
void delivery_submit(struct delivery *d, struct delivery_job *job);
/* Finishes the queued jobs, checkpoints the stores, empties the journal and
 * stops the committer. */
void delivery_stop(struct delivery **d);
/* Age in ms of the oldest job not yet finished (0 = none), for the watchdog. */
uint64_t delivery_oldest_ms(struct delivery *d);

struct delivery_job *delivery_job_new(size_t rcpt_count);
void delivery_job_free(struct delivery_job **job);

/* Called after a user's store changed (for IDLE notification); may be NULL. */
extern void (*delivery_user_changed_hook)(const char *user);

#endif
