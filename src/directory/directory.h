/* The directory: the one authority on users (password hash, home node, epoch,
 * state), nodes and moves. Callers see this interface only; a backend (SQLite
 * now, PostgreSQL later) fills struct directory_ops. A handle is not
 * thread-safe: open one per thread. Never logs (see core/error.h). */
#ifndef TERN_DIRECTORY_DIRECTORY_H
#define TERN_DIRECTORY_DIRECTORY_H

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

struct dir_node {
	char *name;
	char *lmtp_addr;     /* "host:port" or "" */
	char *imap_addr;
	char *pop3_addr;
	char *admin_addr;
	int64_t updated;     /* unix seconds of the last upsert */
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
	int (*node_upsert)(struct directory *dir, const struct dir_node *n, enum tern_error *err_r);
	int (*node_list)(struct directory *dir, struct dir_node **nodes_r, size_t *count_r,
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

void dir_user_clear(struct dir_user *u);
void dir_users_free(struct dir_user **users, size_t count);
void dir_node_clear(struct dir_node *n);
void dir_nodes_free(struct dir_node **nodes, size_t count);

/* The schema version this build writes (stored in the directory). */
#define DIRECTORY_SCHEMA_VERSION 1

#endif
