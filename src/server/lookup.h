/* Directory look-ups for the loop threads (issue 8): a loop thread never
 * reads the directory itself. A request is queued for a small pool of
 * worker threads, each with its own directory handle; the answer comes back
 * to the asking loop through loop_post, and the session that asked resumes
 * from it. Every request has a deadline (TERN_LOOKUP_DEADLINE_MS) kept by a
 * timer on the loop: a directory that cannot be read in time (locked by
 * another process, wedged, a stalled disk) gives a temporary error then,
 * whatever the worker is doing; its late answer is dropped.
 *
 * Most requests never reach a worker: what the workers read is kept in the
 * per-node user cache (server/user-cache.h), valid while the directory's
 * change counter has not moved (read every heartbeat), and a request it can
 * answer (no store usage needed) is answered from it, still on a later turn.
 *
 * The pool is separate from the password workers (proto/auth.c) on
 * purpose: an LMTP RCPT costs microseconds and must not wait behind
 * password hashes, which cost milliseconds each and come in storms, nor
 * pass through the login admission rules meant for guessers. */
#ifndef TERN_SERVER_LOOKUP_H
#define TERN_SERVER_LOOKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

struct loop;
struct dir_user;

struct lookup_result {
	int found;                  /* 1 found, 0 no such user, -1 failed (err) */
	enum tern_error err;        /* for -1: TERN_ERR_TEMP when the deadline passed,
	                               TERN_ERR_NOMEM when there was no memory for the
	                               request */
	const struct dir_user *user;/* found: the directory row, valid during the call */
	bool here;                  /* found: homed on this node */
	const char *home_addr;      /* found, not here: the home's cluster address
	                               ("" if it has none); valid during the call */
	uint64_t quota;             /* found: the limit in force (the user's, else the
	                               node default), bytes; 0 = none */
	bool usage_known;           /* LOOKUP_USAGE: the store's usage was read */
	uint64_t used;              /* bytes stored now, when usage_known */
};

/* Runs on the asking loop thread, never inside lookup_user(). */
typedef void lookup_done_fn(const struct lookup_result *r, void *ctx);

enum lookup_flags {
	/* Also read how many bytes the user stores, when the user is homed
	 * here and has a limit (the RCPT-time quota check). The store is
	 * opened, never created: a user without a store uses nothing. */
	LOOKUP_USAGE = 1u << 0,
	/* Read the directory, not the user cache (a move deciding whether
	 * the user still lives here). */
	LOOKUP_FRESH = 1u << 1,
};

struct lookup_request;

/* Looks name (canonical) up for the caller on `loop` (the calling thread's
 * loop). done(ctx) runs exactly once, later, on that loop, unless the
 * request is cancelled first. *req_r names the request until done runs
 * (it is set back to NULL just before): keep it in the session and pass it
 * to lookup_cancel() when the session goes away. */
void lookup_user(struct loop *loop, const char *name, unsigned flags, lookup_done_fn *done,
		 void *ctx, struct lookup_request **req_r);

/* Forgets a request (on its loop): done will not run. NULL is fine. */
void lookup_cancel(struct lookup_request **req);

/* Starts the workers (the first lookup_user starts them too). */
void lookup_pool_start(void);
/* Answers what is still queued with TERN_ERR_TEMP and joins the workers.
 * Call at server stop while the loops still run (answers are posted to
 * them); lookup_user() answers TERN_ERR_TEMP from then on. */
void lookup_pool_stop(void);

#endif
