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
	 * or a row that is down are taken over. TERN_ERR_INVALID for a bad name. */
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
#define DIRECTORY_SCHEMA_VERSION 3

#endif
