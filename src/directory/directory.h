/* The directory: the one authority on users (password hash, home node, epoch,
 * state), nodes and moves. Callers see this interface only; a backend (SQLite
 * now, PostgreSQL later) fills struct directory_ops. A handle is not
 * thread-safe: open one per thread. Never logs (see core/error.h). */
#ifndef TERN_DIRECTORY_DIRECTORY_H
#define TERN_DIRECTORY_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct dir_user {
	char *name;          /* canonical (core/username.h) */
	char *password_hash; /* as stored, possibly "{SCHEME}..." */
	char *home;          /* node name */
	int64_t epoch;       /* bumped each time home changes; fences old homes */
	char *state;         /* "active", "moving", "frozen", ... */
	uint64_t quota;      /* bytes, 0 = node default */
	int64_t created;     /* unix seconds */
};

/* A node as registered in the directory. Times are wall-clock (every node
 * and ternctl compare them), in unix milliseconds except `updated`. */
struct dir_node {
	char *name;
	char *lmtp_addr;     /* "host:port" or "" */
	char *imap_addr;
	char *pop3_addr;
	char *admin_addr;
	char *cluster_addr;  /* what other nodes dial (cluster_advertise) or "" */
	char *version;       /* TERN_VERSION of the ternd that registered */
	int64_t started_ms;  /* when that ternd started */
	int64_t heartbeat_ms;/* its last heartbeat; 0 = never */
	bool stopped;        /* it stopped cleanly (node_stop) */
	int64_t updated;     /* unix seconds of the last registration */
	uint32_t number;     /* the node's number for good (core/delivery-id.h),
	                        given at its first registration; 0 = none yet */
};

/* A move's phase (DESIGN.md "Move, phase by phase"). Stored as its name. */
enum dir_move_phase {
	DIR_MOVE_QUEUED = 0,   /* created, no mover has started it */
	DIR_MOVE_COPYING,      /* bulk copy; the user stays online on the source */
	DIR_MOVE_SYNCING,      /* rounds of changes since copied_modseq */
	DIR_MOVE_READY,        /* delta small, held there by suspend_when_ready */
	DIR_MOVE_FINALIZING,   /* source frozen, last delta, then move_switch_home */
	DIR_MOVE_COMPLETED,    /* the directory names the destination */
	DIR_MOVE_FAILED,       /* home unchanged; last_error says why */
	DIR_MOVE_CANCELLED,    /* home unchanged, on an administrator's request */
	DIR_MOVE_PHASE_COUNT
};

/* A move as kept in the directory, so every node and ternctl sees one truth.
 * All times are wall-clock unix milliseconds (0 = not yet); counts are what
 * the mover last reported with move_progress. Strings are never NULL in a
 * filled struct ("" = none). */
struct dir_move {
	int64_t id;
	char *user;
	char *source;              /* the user's home when the move was created */
	char *destination;
	enum dir_move_phase phase;
	uint64_t messages_total, messages_done;
	uint64_t bytes_total, bytes_done;
	uint64_t rounds;           /* sync rounds done */
	uint64_t copied_modseq;    /* the source's modseq copied so far */
	char *wait_reason;         /* why it waits, e.g. "waiting for 2 in-flight deliveries" */
	char *last_error;
	bool suspend_when_ready;   /* stop in ready until move_set_suspend(false) */
	bool cancel_requested;     /* the mover should roll back and end cancelled */
	char *runner;              /* the node that last took the lease (runs the mover) */
	char *lease_owner;         /* the lease holder, "" when none */
	int64_t lease_expires_ms;  /* the lease is free from this instant on */
	int64_t created_ms;
	int64_t updated_ms;        /* the last write that carried a time */
	int64_t phase_since_ms;    /* when it entered its phase (watchdog) */
	int64_t started_ms;        /* first left queued */
	int64_t finished_ms;       /* reached completed, failed or cancelled */
};

struct directory;

struct directory_ops {
	/* 1 found (fills *u_r), 0 no such user, -1 error. */
	int (*user_get)(struct directory *dir, const char *name, struct dir_user *u_r,
			enum tern_error *err_r);
	/* TERN_ERR_EXISTS if the name is taken. epoch starts at 1, state "active". */
	int (*user_add)(struct directory *dir, const struct dir_user *u, enum tern_error *err_r);
	int (*user_set_password)(struct directory *dir, const char *name, const char *hash,
				 enum tern_error *err_r);
	int (*user_set_quota)(struct directory *dir, const char *name, uint64_t quota,
			      enum tern_error *err_r);
	/* TERN_ERR_NOTFOUND if absent. */
	int (*user_delete)(struct directory *dir, const char *name, enum tern_error *err_r);
	/* All users sorted by name; free with dir_users_free. */
	int (*user_list)(struct directory *dir, struct dir_user **users_r, size_t *count_r,
			 enum tern_error *err_r);
	/* Number of users (cheap; used by "make run" to decide on a demo user). */
	int (*user_count)(struct directory *dir, uint64_t *count_r, enum tern_error *err_r);
	/* 1 found (fills *n_r), 0 no such node, -1 error. */
	int (*node_get)(struct directory *dir, const char *name, struct dir_node *n_r,
			enum tern_error *err_r);
	/* Registers n (its heartbeat set to now_ms, stopped cleared) in one write
	 * transaction, unless another live node holds the name: a row that is up
	 * at now_ms (dir_node_up) with any address different from n's. Then
	 * nothing is written, *conflict_r (if not NULL) gets that row and the
	 * error is TERN_ERR_EXISTS. The same addresses (a restart after a crash)
	 * or a row that is down are taken over. TERN_ERR_INVALID for a bad name.
	 * A name registered for the first time gets its number (dir_node.number)
	 * in the same transaction; node_get reads it. */
	int (*node_register)(struct directory *dir, const struct dir_node *n, int64_t now_ms,
			     struct dir_node *conflict_r, enum tern_error *err_r);
	/* Sets the node's heartbeat to now_ms and clears stopped (a beat proves
	 * it runs). TERN_ERR_NOTFOUND if the row is gone. */
	int (*node_heartbeat)(struct directory *dir, const char *name, int64_t now_ms,
			      enum tern_error *err_r);
	/* Marks the node stopped cleanly, so it shows down at once. */
	int (*node_stop)(struct directory *dir, const char *name, enum tern_error *err_r);
	int (*node_list)(struct directory *dir, struct dir_node **nodes_r, size_t *count_r,
			 enum tern_error *err_r);
	/* The directory's change counter: it grows with every change to a user
	 * row (add, delete, password, quota, home, state) and every node row
	 * added, removed or given another cluster address, never with a
	 * heartbeat. A cache of directory rows read at generation G is current
	 * while this still reads G. Cheap: one indexed row. */
	int (*generation)(struct directory *dir, uint64_t *gen_r, enum tern_error *err_r);

	/* ---- moves (schema 4). A user has at most one active move (phase not
	 * completed, failed or cancelled): the file enforces it with a unique
	 * index. Moves rows do not bump the generation; move_switch_home does,
	 * through the user row it changes. Every write runs in one transaction.
	 * TERN_ERR_CONFLICT: a compare-and-set found another state, and nothing
	 * was written. NULL-safe on err_r like the rest. ---- */

	/* Queues a move of user from source to destination; *id_r gets its id.
	 * source NULL or "" means the user's current home; otherwise it must
	 * still be the home (TERN_ERR_CONFLICT if not). TERN_ERR_NOTFOUND: no
	 * such user. TERN_ERR_EXISTS: the user has an active move.
	 * TERN_ERR_INVALID: destination is the source, or no node of that name
	 * is registered. */
	int (*move_create)(struct directory *dir, const char *user, const char *source,
			   const char *destination, bool suspend_when_ready, int64_t now_ms,
			   int64_t *id_r, enum tern_error *err_r);
	/* 1 found (fills *m_r, free with dir_move_clear), 0 none, -1 error. */
	int (*move_get)(struct directory *dir, int64_t id, struct dir_move *m_r,
			enum tern_error *err_r);
	/* The user's active move: 1 found, 0 none, -1 error. */
	int (*move_get_active)(struct directory *dir, const char *user, struct dir_move *m_r,
			       enum tern_error *err_r);
	/* Active moves, or all when include_finished, by id; dir_moves_free. */
	int (*move_list)(struct directory *dir, bool include_finished, struct dir_move **moves_r,
			 size_t *count_r, enum tern_error *err_r);
	/* Completed moves out of source that finished at since_ms or later, by
	 * id; dir_moves_free. (What a source's orphan collector looks at.) */
	int (*move_list_completed_from)(struct directory *dir, const char *source,
					int64_t since_ms, struct dir_move **moves_r,
					size_t *count_r, enum tern_error *err_r);
	/* Compare-and-set of the phase: from expected (an active phase) to any
	 * phase but completed (only move_switch_home completes a move). Leaving
	 * queued sets started; reaching failed or cancelled sets finished and
	 * frees the lease. TERN_ERR_CONFLICT if the phase is not expected,
	 * TERN_ERR_INVALID for a finished expected or a completed new phase. */
	int (*move_set_phase)(struct directory *dir, int64_t id, enum dir_move_phase expected,
			      enum dir_move_phase new_phase, int64_t now_ms, enum tern_error *err_r);
	/* The mover's report: counts, rounds, the copied modseq and why it waits
	 * (NULL or "" = not waiting). TERN_ERR_CONFLICT if the move is finished
	 * (a late report from a mover that lost it). */
	int (*move_progress)(struct directory *dir, int64_t id, uint64_t messages_done,
			     uint64_t messages_total, uint64_t bytes_done, uint64_t bytes_total,
			     uint64_t rounds, uint64_t copied_modseq, const char *wait_reason,
			     int64_t now_ms, enum tern_error *err_r);
	/* Records error as last_error without changing the phase (a failure the
	 * mover retries). TERN_ERR_CONFLICT if finished. */
	int (*move_note_error)(struct directory *dir, int64_t id, const char *error,
			       int64_t now_ms, enum tern_error *err_r);
	/* Ends an active move as failed with error as last_error (sets finished,
	 * frees the lease). TERN_ERR_CONFLICT if it is already finished. */
	int (*move_fail)(struct directory *dir, int64_t id, const char *error, int64_t now_ms,
			 enum tern_error *err_r);
	/* Asks the mover to roll back (it ends the move cancelled). Idempotent;
	 * TERN_ERR_CONFLICT if the move is finished. */
	int (*move_request_cancel)(struct directory *dir, int64_t id, enum tern_error *err_r);
	/* Sets or clears suspend_when_ready (clearing it is "move complete").
	 * TERN_ERR_CONFLICT if the move is finished. */
	int (*move_set_suspend)(struct directory *dir, int64_t id, bool suspend,
				enum tern_error *err_r);
	/* Takes or renews the move's lease for owner (a node name) until
	 * now_ms + ttl_ms, when it is free, expired (lease_expires_ms <= now_ms)
	 * or already owner's; runner becomes owner. 1 taken, 0 another owner
	 * holds it (nothing written), -1 error: TERN_ERR_CONFLICT when the move
	 * is finished, TERN_ERR_INVALID for a bad owner or ttl. Expiry compares
	 * the callers' wall clocks: keep ttl well above the clock skew. */
	int (*move_lease)(struct directory *dir, int64_t id, const char *owner, int64_t now_ms,
			  int64_t ttl_ms, enum tern_error *err_r);
	/* Gives the lease up if owner holds it (1), else nothing (0). */
	int (*move_lease_release)(struct directory *dir, int64_t id, const char *owner,
				  enum tern_error *err_r);
	/* The switch, one compare-and-set in one transaction: if the move is
	 * user's, in finalizing, bound for new_home, and the user's home and
	 * epoch still are expected_home and expected_epoch, sets users.home =
	 * new_home, users.epoch = expected_epoch + 1 and the move completed
	 * (finished, lease freed). Otherwise nothing changes:
	 * TERN_ERR_CONFLICT (phase, home or epoch moved on), TERN_ERR_NOTFOUND
	 * (no such move or user), TERN_ERR_INVALID (another user's move, or
	 * new_home is not its destination), TERN_ERR_TEMP (deadline_ms, unix
	 * ms, non-zero, had passed once the directory's write lock was held:
	 * a switch that waited for a busy directory must not land after the
	 * source's freeze and fence ran out). */
	int (*move_switch_home)(struct directory *dir, int64_t id, const char *user,
				const char *expected_home, int64_t expected_epoch,
				const char *new_home, int64_t now_ms, int64_t deadline_ms,
				enum tern_error *err_r);
	void (*close)(struct directory *dir);
};

struct directory {
	const struct directory_ops *ops;
};

/* Opens the directory named by spec: a file path (SQLite, created with the
 * current schema, migrated if older) or, later, "postgresql://...".
 * On failure returns -1 and *err_r (heap) says why. */
int directory_open(const char *spec, struct directory **dir_r, char **err_r);
void directory_close(struct directory **dir);

/* Convenience wrappers over dir->ops. */
static inline int directory_user_get(struct directory *d, const char *name, struct dir_user *u_r,
				     enum tern_error *err_r)
{ return d->ops->user_get(d, name, u_r, err_r); }
/* -1 with TERN_ERR_IO for a backend without a change counter: then nothing
 * may be cached. */
static inline int directory_generation(struct directory *d, uint64_t *gen_r,
				       enum tern_error *err_r)
{
	if (d->ops->generation == NULL) {
		if (err_r != NULL)
			*err_r = TERN_ERR_IO;
		return -1;
	}
	return d->ops->generation(d, gen_r, err_r);
}

void dir_user_clear(struct dir_user *u);
void dir_users_free(struct dir_user **users, size_t count);
void dir_node_clear(struct dir_node *n);
void dir_nodes_free(struct dir_node **nodes, size_t count);
void dir_move_clear(struct dir_move *m);
void dir_moves_free(struct dir_move **moves, size_t count);

/* "queued", "copying", ...; "?" for a value out of range. */
const char *dir_move_phase_name(enum dir_move_phase phase);
/* 0 and *phase_r for a known name, -1 otherwise. */
int dir_move_phase_parse(const char *name, enum dir_move_phase *phase_r);
/* completed, failed or cancelled: the move is over. */
bool dir_move_phase_finished(enum dir_move_phase phase);

/* Whether a node counts as up at now_ms (unix ms): not stopped, and its last
 * heartbeat younger than TERN_NODE_DOWN_AFTER_MS. A heartbeat ahead of now
 * (clocks of two hosts apart) counts as fresh. */
bool dir_node_up(const struct dir_node *n, int64_t now_ms);
/* Milliseconds since the node's last heartbeat at now_ms, never negative;
 * -1 when it never beat. */
int64_t dir_node_heartbeat_age_ms(const struct dir_node *n, int64_t now_ms);
/* Wall-clock unix milliseconds, the clock node times are kept in. */
int64_t dir_wall_ms(void);

/* The schema version this build writes (stored in the directory). */
#define DIRECTORY_SCHEMA_VERSION 5

#endif
