/* The node-local freeze table (issue 10, "Never hang"): which users of this
 * node are frozen by the final phase of a move, and the requests parked
 * until their freeze ends.
 *
 * The check. Every logon and delivery for a user homed here asks
 * freeze_park(). While no user of the node is frozen that is one atomic
 * load of a counter (freeze_none()); otherwise an O(1) probe of a sharded
 * hash (TERN_FREEZE_SHARDS shards, each shard lock held for the probe
 * only), then the user's own entry lock, which a loop thread only ever
 * TRIES: when it is taken the request retries from a timer every
 * TERN_FREEZE_RETRY_MS until its deadline, so even a lock a bug leaves held
 * ends in a temporary error, never a hung thread. No process-wide lock.
 *
 * A freeze is a lease: freeze_user(user, lease_ms) freezes (or renews) and
 * it ends by itself at its expiry (a reaper thread, and any check that sees
 * it expired), so nothing stays frozen if whoever froze it dies.
 * freeze_release() ends it with an outcome: the user stays homed here, or
 * was moved to NODE at ADDR.
 *
 * Parking. A request for a frozen user is parked: an event with a deadline
 * on the asking loop, not a blocked thread. Its callback runs once, on that
 * loop, with the outcome: serve here, moved (node and cluster address), or
 * the deadline passed (with why). The watchdog reports parked requests older
 * than its threshold (freeze_foreach_parked). */
#ifndef TERN_SERVER_FREEZE_H
#define TERN_SERVER_FREEZE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct loop;

/* Users frozen on this node (plus one for a leaked fault entry). Read it
 * through freeze_none(). */
extern _Atomic unsigned freeze_frozen_count;

/* The fast path: true when no user of the node is frozen. */
static inline bool freeze_none(void)
{
	return atomic_load_explicit(&freeze_frozen_count, memory_order_acquire) == 0;
}

enum freeze_result {
	FREEZE_SERVE_HERE,   /* not (or no longer) frozen, still homed here */
	FREEZE_MOVED,        /* the user now lives on node at addr */
	FREEZE_TIMEOUT,      /* the request's deadline passed first */
};

struct freeze_outcome {
	enum freeze_result result;
	const char *node;    /* FREEZE_MOVED: the new home's name */
	const char *addr;    /* FREEZE_MOVED: its cluster address */
	const char *why;     /* FREEZE_TIMEOUT: what it waited for */
};

/* Freezes user (canonical) for lease_ms (1 .. TERN_FREEZE_LEASE_MAX_MS)
 * from now, or renews a freeze in force. Any thread; never blocks on a
 * lock another request may hold (the entry lock is tried once). 0, or -1
 * with *why_r ("the user's freeze entry is busy", "out of memory", ...). */
int freeze_user(const char *user, uint32_t lease_ms, const char **why_r);

/* Ends user's freeze: moved_node NULL = it stays here, else it was moved to
 * moved_node at moved_addr; every request parked for it is woken with that
 * outcome. 0; 1 if the user was not frozen (nothing to end, the lease may
 * have expired); -1 with *why_r (entry busy, names too long). */
int freeze_release(const char *user, const char *moved_node, const char *moved_addr,
		   const char **why_r);

/* 1 and the lease's remaining ms if user is frozen, 0 if not, -1 if its
 * entry is busy (*why_r). */
int freeze_status(const char *user, uint64_t *ms_left_r, const char **why_r);

/* Runs on the parking loop, once; the outcome is valid during the call. */
typedef void freeze_park_fn(void *ctx, const struct freeze_outcome *o);

struct freeze_park;

/* The move check for a logon or delivery of user (canonical), on loop's
 * thread. 0: not frozen, go on now (cb never runs, *handle_r NULL). 1:
 * parked: cb(ctx) runs later on loop (never inside this call) by
 * deadline_ms (monotonic, tern_now_ms) at the latest, unless cancelled;
 * *handle_r names the park until then (set to NULL just before cb). what
 * ("lmtp rcpt", "imap login") is for the watchdog. Out of memory it answers
 * 1 and a timeout at once (on a later turn). */
int freeze_park(struct loop *loop, const char *user, const char *what, uint64_t deadline_ms,
		freeze_park_fn *cb, void *ctx, struct freeze_park **handle_r);

/* Forgets a park (on its loop): cb will not run. NULL is fine. */
void freeze_park_cancel(struct freeze_park **handle);

/* For the watchdog: calls fn for parked requests older than older_than_ms
 * (at most 64 a call), outside every freeze lock. */
typedef void freeze_parked_fn(const char *what, const char *user, const char *why,
			      uint64_t age_ms, void *ctx);
void freeze_foreach_parked(uint64_t older_than_ms, freeze_parked_fn *fn, void *ctx);

/* Users frozen now (the counter, less a leaked fault entry). */
unsigned freeze_count(void);

/* Stops the reaper thread (started by the first freeze_user); leases in
 * force are then ended only by the checks that find them expired. */
void freeze_stop(void);

#endif
