/* The SQLite directory backend. One file is shared by every ternd and ternctl
 * on a host, so it runs in WAL mode (readers never block the writer), waits
 * on a busy file for a bounded time instead of failing or hanging, and syncs
 * every write (synchronous=FULL): a user added or moved must survive a crash.
 * Schema changes are numbered steps applied in order under one write lock. */
#include "directory/directory-sqlite.h"

#include <errno.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/limits.h"
#include "core/username.h"

enum stmt_id {
	ST_USER_GET,
	ST_USER_ADD,
	ST_USER_SET_PASSWORD,
	ST_USER_SET_QUOTA,
	ST_USER_DELETE,
	ST_USER_LIST,
	ST_USER_COUNT,
	ST_NODE_GET,
	ST_NODE_REGISTER,
	ST_NODE_HEARTBEAT,
	ST_NODE_STOP,
	ST_NODE_LIST,
	ST_GENERATION,
	ST_COUNT
};

#define USER_COLUMNS "name, password_hash, home, epoch, state, quota, created"
#define NODE_COLUMNS "name, lmtp_addr, imap_addr, pop3_addr, admin_addr, cluster_addr, " \
	"version, started, heartbeat, stopped, updated"

static const char *const stmt_sql[ST_COUNT] = {
	[ST_USER_GET] = "SELECT " USER_COLUMNS " FROM users WHERE name = ?1",
	[ST_USER_ADD] = "INSERT INTO users (" USER_COLUMNS ") "
			"VALUES (?1, ?2, ?3, 1, 'active', ?4, ?5)",
	[ST_USER_SET_PASSWORD] = "UPDATE users SET password_hash = ?2 WHERE name = ?1",
	[ST_USER_SET_QUOTA] = "UPDATE users SET quota = ?2 WHERE name = ?1",
	[ST_USER_DELETE] = "DELETE FROM users WHERE name = ?1",
	[ST_USER_LIST] = "SELECT " USER_COLUMNS " FROM users ORDER BY name",
	[ST_USER_COUNT] = "SELECT count(*) FROM users",
	[ST_NODE_GET] = "SELECT " NODE_COLUMNS " FROM nodes WHERE name = ?1",
	[ST_NODE_REGISTER] = "INSERT INTO nodes (" NODE_COLUMNS ") "
			     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10) "
			     "ON CONFLICT (name) DO UPDATE SET lmtp_addr = excluded.lmtp_addr, "
			     "imap_addr = excluded.imap_addr, pop3_addr = excluded.pop3_addr, "
			     "admin_addr = excluded.admin_addr, "
			     "cluster_addr = excluded.cluster_addr, version = excluded.version, "
			     "started = excluded.started, heartbeat = excluded.heartbeat, "
			     "stopped = 0, updated = excluded.updated",
	[ST_NODE_HEARTBEAT] = "UPDATE nodes SET heartbeat = ?2, stopped = 0 WHERE name = ?1",
	[ST_NODE_STOP] = "UPDATE nodes SET stopped = 1 WHERE name = ?1",
	[ST_NODE_LIST] = "SELECT " NODE_COLUMNS " FROM nodes ORDER BY name",
	[ST_GENERATION] = "SELECT value FROM generation WHERE id = 1",
};

/* Schema steps, in ascending order. Step N upgrades version N-1 to N; to
 * change the schema, append a step and bump DIRECTORY_SCHEMA_VERSION. */
struct migration {
	int version;
	const char *sql;
};

static const struct migration migrations[] = {
	{ 1,
	  "CREATE TABLE users ("
	  " name TEXT PRIMARY KEY NOT NULL,"
	  " password_hash TEXT NOT NULL DEFAULT '',"
	  " home TEXT NOT NULL DEFAULT '',"
	  " epoch INTEGER NOT NULL DEFAULT 1,"
	  " state TEXT NOT NULL DEFAULT 'active',"
	  " quota INTEGER NOT NULL DEFAULT 0,"
	  " created INTEGER NOT NULL);"
	  "CREATE TABLE nodes ("
	  " name TEXT PRIMARY KEY NOT NULL,"
	  " lmtp_addr TEXT NOT NULL DEFAULT '',"
	  " imap_addr TEXT NOT NULL DEFAULT '',"
	  " pop3_addr TEXT NOT NULL DEFAULT '',"
	  " admin_addr TEXT NOT NULL DEFAULT '',"
	  " updated INTEGER NOT NULL);"
	  "CREATE TABLE moves ("
	  " id INTEGER PRIMARY KEY,"
	  " user TEXT NOT NULL,"
	  " source TEXT NOT NULL,"
	  " destination TEXT NOT NULL,"
	  " state TEXT NOT NULL DEFAULT 'queued',"
	  " phase_detail TEXT NOT NULL DEFAULT '',"
	  " messages_total INTEGER NOT NULL DEFAULT 0,"
	  " messages_done INTEGER NOT NULL DEFAULT 0,"
	  " bytes_done INTEGER NOT NULL DEFAULT 0,"
	  " lease_owner TEXT,"
	  " lease_expires INTEGER,"
	  " created INTEGER NOT NULL,"
	  " updated INTEGER NOT NULL,"
	  " error TEXT);"
	  "CREATE INDEX moves_user ON moves (user);" },
	/* The node registry: what other nodes dial, which build, and a heartbeat
	 * that says whether the node still runs. started and heartbeat are unix
	 * milliseconds; stopped = 1 after a clean shutdown. Rows of version 1
	 * have never beaten, so they read as down. */
	{ 2,
	  "ALTER TABLE nodes ADD COLUMN cluster_addr TEXT NOT NULL DEFAULT '';"
	  "ALTER TABLE nodes ADD COLUMN version TEXT NOT NULL DEFAULT '';"
	  "ALTER TABLE nodes ADD COLUMN started INTEGER NOT NULL DEFAULT 0;"
	  "ALTER TABLE nodes ADD COLUMN heartbeat INTEGER NOT NULL DEFAULT 0;"
	  "ALTER TABLE nodes ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;" },
	/* The change counter (directory_ops.generation): one row, bumped by
	 * triggers in the same transaction as any change to a user, and as a
	 * node row added, removed or given another cluster address. A
	 * heartbeat, a stop or a re-registration with the same cluster
	 * address leaves it alone: nodes beat every second, and each bump
	 * empties every node's user cache (src/server/user-cache.h). */
	{ 3,
	  "CREATE TABLE generation ("
	  " id INTEGER PRIMARY KEY CHECK (id = 1),"
	  " value INTEGER NOT NULL);"
	  "INSERT INTO generation (id, value) VALUES (1, 1);"
	  "CREATE TRIGGER generation_user_insert AFTER INSERT ON users BEGIN"
	  " UPDATE generation SET value = value + 1 WHERE id = 1; END;"
	  "CREATE TRIGGER generation_user_update AFTER UPDATE ON users BEGIN"
	  " UPDATE generation SET value = value + 1 WHERE id = 1; END;"
	  "CREATE TRIGGER generation_user_delete AFTER DELETE ON users BEGIN"
	  " UPDATE generation SET value = value + 1 WHERE id = 1; END;"
	  "CREATE TRIGGER generation_node_insert AFTER INSERT ON nodes BEGIN"
	  " UPDATE generation SET value = value + 1 WHERE id = 1; END;"
	  "CREATE TRIGGER generation_node_delete AFTER DELETE ON nodes BEGIN"
	  " UPDATE generation SET value = value + 1 WHERE id = 1; END;"
	  "CREATE TRIGGER generation_node_address AFTER UPDATE OF cluster_addr ON nodes"
	  " WHEN OLD.cluster_addr IS NOT NEW.cluster_addr BEGIN"
	  " UPDATE generation SET value = value + 1 WHERE id = 1; END;" },
};

struct dir_sqlite {
	struct directory dir;   /* first: the public handle points here */
	sqlite3 *db;
	sqlite3_stmt *stmts[ST_COUNT];
};

static struct dir_sqlite *ds_of(struct directory *dir)
{
	return (struct dir_sqlite *)dir;
}

/* Resets a cached statement on every way out of its scope, so no path can
 * leave a read transaction open (which would pin the WAL). */
static void stmt_resetp(sqlite3_stmt **st)
{
	if (*st != NULL) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
	}
}
#define STMT_SCOPED __attribute__((cleanup(stmt_resetp))) sqlite3_stmt *

static enum tern_error map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return TERN_ERR_TEMP;
	case SQLITE_FULL:
		return TERN_ERR_NOSPACE;
	case SQLITE_NOMEM:
		return TERN_ERR_NOMEM;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return TERN_ERR_CORRUPT;
	case SQLITE_CONSTRAINT:
		return TERN_ERR_EXISTS;
	case SQLITE_TOOBIG:
		return TERN_ERR_TOOBIG;
	default:
		return TERN_ERR_IO;
	}
}

static int fail(enum tern_error *err_r, enum tern_error err)
{
	if (err_r != NULL)
		*err_r = err;
	return -1;
}

/* Returns the cached statement for id, preparing it on first use. */
static sqlite3_stmt *stmt_get(struct dir_sqlite *ds, enum stmt_id id, enum tern_error *err_r)
{
	int rc;

	if (ds->stmts[id] != NULL)
		return ds->stmts[id];
	rc = sqlite3_prepare_v3(ds->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
				&ds->stmts[id], NULL);
	if (rc != SQLITE_OK) {
		fail(err_r, map_rc(rc));
		return NULL;
	}
	return ds->stmts[id];
}

static char *col_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return strdup(t != NULL ? (const char *)t : "");
}

static int row_to_user(sqlite3_stmt *st, struct dir_user *u_r)
{
	struct dir_user u = {
		.name = col_strdup(st, 0),
		.password_hash = col_strdup(st, 1),
		.home = col_strdup(st, 2),
		.epoch = sqlite3_column_int64(st, 3),
		.state = col_strdup(st, 4),
		.quota = (uint64_t)sqlite3_column_int64(st, 5),
		.created = sqlite3_column_int64(st, 6),
	};

	if (u.name == NULL || u.password_hash == NULL || u.home == NULL || u.state == NULL) {
		dir_user_clear(&u);
		return -1;
	}
	*u_r = u;
	return 0;
}

static int row_to_node(sqlite3_stmt *st, struct dir_node *n_r)
{
	struct dir_node n = {
		.name = col_strdup(st, 0),
		.lmtp_addr = col_strdup(st, 1),
		.imap_addr = col_strdup(st, 2),
		.pop3_addr = col_strdup(st, 3),
		.admin_addr = col_strdup(st, 4),
		.cluster_addr = col_strdup(st, 5),
		.version = col_strdup(st, 6),
		.started_ms = sqlite3_column_int64(st, 7),
		.heartbeat_ms = sqlite3_column_int64(st, 8),
		.stopped = sqlite3_column_int64(st, 9) != 0,
		.updated = sqlite3_column_int64(st, 10),
	};

	if (n.name == NULL || n.lmtp_addr == NULL || n.imap_addr == NULL ||
	    n.pop3_addr == NULL || n.admin_addr == NULL || n.cluster_addr == NULL ||
	    n.version == NULL) {
		dir_node_clear(&n);
		return -1;
	}
	*n_r = n;
	return 0;
}

static const char *or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static int sqlite_user_get(struct directory *dir, const char *name, struct dir_user *u_r,
			   enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_USER_GET, err_r);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return fail(err_r, map_rc(rc));
	if (row_to_user(st, u_r) < 0)
		return fail(err_r, TERN_ERR_NOMEM);
	return 1;
}

static int sqlite_user_add(struct directory *dir, const struct dir_user *u, enum tern_error *err_r)
{
	STMT_SCOPED st = NULL;
	int rc;

	if (!username_valid(u->name) || u->quota > INT64_MAX)
		return fail(err_r, TERN_ERR_INVALID);
	st = stmt_get(ds_of(dir), ST_USER_ADD, err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, u->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, or_empty(u->password_hash), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, or_empty(u->home), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)u->quota);
	sqlite3_bind_int64(st, 5, u->created != 0 ? u->created : (int64_t)time(NULL));
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return fail(err_r, map_rc(rc));
	return 0;
}

/* Runs an UPDATE/DELETE keyed by name in ?1; NOTFOUND when no row matched. */
static int step_for_one_row(struct dir_sqlite *ds, sqlite3_stmt *st, enum tern_error *err_r)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return fail(err_r, map_rc(rc));
	if (sqlite3_changes(ds->db) == 0)
		return fail(err_r, TERN_ERR_NOTFOUND);
	return 0;
}

static int sqlite_user_set_password(struct directory *dir, const char *name, const char *hash,
				    enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_USER_SET_PASSWORD, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, or_empty(hash), -1, SQLITE_STATIC);
	return step_for_one_row(ds_of(dir), st, err_r);
}

static int sqlite_user_set_quota(struct directory *dir, const char *name, uint64_t quota,
				 enum tern_error *err_r)
{
	STMT_SCOPED st = NULL;

	if (quota > INT64_MAX)
		return fail(err_r, TERN_ERR_INVALID);
	st = stmt_get(ds_of(dir), ST_USER_SET_QUOTA, err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)quota);
	return step_for_one_row(ds_of(dir), st, err_r);
}

static int sqlite_user_delete(struct directory *dir, const char *name, enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_USER_DELETE, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return step_for_one_row(ds_of(dir), st, err_r);
}

/* Appends one zeroed slot to a growing array of elem-sized items. */
static void *grow(void *array, size_t count, size_t *cap, size_t elem)
{
	void *bigger;
	size_t new_cap;

	if (count < *cap)
		return array;
	new_cap = *cap == 0 ? 16 : *cap * 2;
	bigger = reallocarray(array, new_cap, elem);
	if (bigger != NULL)
		*cap = new_cap;
	return bigger;
}

static int sqlite_user_list(struct directory *dir, struct dir_user **users_r, size_t *count_r,
			    enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_USER_LIST, err_r);
	struct dir_user *users = NULL, *bigger;
	size_t count = 0, cap = 0;
	int rc;

	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bigger = grow(users, count, &cap, sizeof(*users));
		if (bigger == NULL || row_to_user(st, &bigger[count]) < 0) {
			rc = SQLITE_NOMEM;
			if (bigger != NULL)
				users = bigger;
			break;
		}
		users = bigger;
		count++;
	}
	if (rc != SQLITE_DONE) {
		dir_users_free(&users, count);
		return fail(err_r, map_rc(rc));
	}
	*users_r = users;
	*count_r = count;
	return 0;
}

static int sqlite_user_count(struct directory *dir, uint64_t *count_r, enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_USER_COUNT, err_r);
	int rc;

	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return fail(err_r, map_rc(rc));
	*count_r = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

static bool node_name_valid(const char *name)
{
	size_t len = name != NULL ? strlen(name) : 0;

	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

static int sqlite_node_get(struct directory *dir, const char *name, struct dir_node *n_r,
			   enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_NODE_GET, err_r);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return fail(err_r, map_rc(rc));
	if (row_to_node(st, n_r) < 0)
		return fail(err_r, TERN_ERR_NOMEM);
	return 1;
}

/* Whether two registrations name the same listeners: then the newer one is
 * the same node come back (after a crash), not a second node. */
static bool node_same_addresses(const struct dir_node *a, const struct dir_node *b)
{
	return strcmp(or_empty(a->lmtp_addr), or_empty(b->lmtp_addr)) == 0 &&
	       strcmp(or_empty(a->imap_addr), or_empty(b->imap_addr)) == 0 &&
	       strcmp(or_empty(a->pop3_addr), or_empty(b->pop3_addr)) == 0 &&
	       strcmp(or_empty(a->admin_addr), or_empty(b->admin_addr)) == 0 &&
	       strcmp(or_empty(a->cluster_addr), or_empty(b->cluster_addr)) == 0;
}

static int node_write(struct dir_sqlite *ds, const struct dir_node *n, int64_t now_ms,
		      enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds, ST_NODE_REGISTER, err_r);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, n->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, or_empty(n->lmtp_addr), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, or_empty(n->imap_addr), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, or_empty(n->pop3_addr), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, or_empty(n->admin_addr), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, or_empty(n->cluster_addr), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, or_empty(n->version), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, n->started_ms);
	sqlite3_bind_int64(st, 9, now_ms);
	sqlite3_bind_int64(st, 10, now_ms / 1000);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return fail(err_r, map_rc(rc));
	return 0;
}

/* The check and the write of node_register, inside its transaction. */
static int node_register_locked(struct dir_sqlite *ds, const struct dir_node *n, int64_t now_ms,
				struct dir_node *conflict_r, enum tern_error *err_r)
{
	struct dir_node old;
	int found = sqlite_node_get(&ds->dir, n->name, &old, err_r);

	if (found < 0)
		return -1;
	if (found > 0) {
		bool conflict = dir_node_up(&old, now_ms) && !node_same_addresses(&old, n);

		if (conflict && conflict_r != NULL)
			*conflict_r = old;
		else
			dir_node_clear(&old);
		if (conflict)
			return fail(err_r, TERN_ERR_EXISTS);
	}
	return node_write(ds, n, now_ms, err_r);
}

static int sqlite_node_register(struct directory *dir, const struct dir_node *n, int64_t now_ms,
				struct dir_node *conflict_r, enum tern_error *err_r)
{
	struct dir_sqlite *ds = ds_of(dir);
	int rc;

	if (!node_name_valid(n->name))
		return fail(err_r, TERN_ERR_INVALID);
	/* IMMEDIATE takes the write lock before the read, so two nodes starting
	 * under one name cannot both see the row free and both take it. */
	rc = sqlite3_exec(ds->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return fail(err_r, map_rc(rc));
	if (node_register_locked(ds, n, now_ms, conflict_r, err_r) < 0) {
		sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	rc = sqlite3_exec(ds->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
		return fail(err_r, map_rc(rc));
	}
	return 0;
}

static int sqlite_node_heartbeat(struct directory *dir, const char *name, int64_t now_ms,
				 enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_NODE_HEARTBEAT, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	return step_for_one_row(ds_of(dir), st, err_r);
}

static int sqlite_node_stop(struct directory *dir, const char *name, enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_NODE_STOP, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return step_for_one_row(ds_of(dir), st, err_r);
}

static int sqlite_node_list(struct directory *dir, struct dir_node **nodes_r, size_t *count_r,
			    enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_NODE_LIST, err_r);
	struct dir_node *nodes = NULL, *bigger;
	size_t count = 0, cap = 0;
	int rc;

	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bigger = grow(nodes, count, &cap, sizeof(*nodes));
		if (bigger == NULL || row_to_node(st, &bigger[count]) < 0) {
			rc = SQLITE_NOMEM;
			if (bigger != NULL)
				nodes = bigger;
			break;
		}
		nodes = bigger;
		count++;
	}
	if (rc != SQLITE_DONE) {
		dir_nodes_free(&nodes, count);
		return fail(err_r, map_rc(rc));
	}
	*nodes_r = nodes;
	*count_r = count;
	return 0;
}

static int sqlite_generation(struct directory *dir, uint64_t *gen_r, enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_GENERATION, err_r);
	int rc;

	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return fail(err_r, TERN_ERR_CORRUPT);   /* the row is made with the table */
	if (rc != SQLITE_ROW)
		return fail(err_r, map_rc(rc));
	*gen_r = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

static void sqlite_close(struct directory *dir)
{
	struct dir_sqlite *ds = ds_of(dir);

	for (size_t i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(ds->stmts[i]);
	sqlite3_close_v2(ds->db);
	free(ds);
}

static const struct directory_ops sqlite_ops = {
	.user_get = sqlite_user_get,
	.user_add = sqlite_user_add,
	.user_set_password = sqlite_user_set_password,
	.user_set_quota = sqlite_user_set_quota,
	.user_delete = sqlite_user_delete,
	.user_list = sqlite_user_list,
	.user_count = sqlite_user_count,
	.node_get = sqlite_node_get,
	.node_register = sqlite_node_register,
	.node_heartbeat = sqlite_node_heartbeat,
	.node_stop = sqlite_node_stop,
	.node_list = sqlite_node_list,
	.generation = sqlite_generation,
	.close = sqlite_close,
};

/* ---- opening and migrating ---- */

static int open_error(char **err_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int open_error(char **err_r, const char *fmt, ...)
{
	va_list ap;

	if (err_r == NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(err_r, fmt, ap) < 0)
		*err_r = NULL;
	va_end(ap);
	return -1;
}

/* The file may be created, its directory may not: a missing data_dir is a
 * configuration mistake that should be reported, not papered over. */
static int check_parent(const char *path, char **err_r)
{
	char *copy = strdup(path);
	struct stat stbuf;
	int ret = 0;

	if (copy == NULL)
		return open_error(err_r, "directory %s: out of memory", path);
	const char *parent = dirname(copy);

	if (stat(parent, &stbuf) < 0)
		ret = open_error(err_r, "directory %s: parent directory %s: %s",
				 path, parent, strerror(errno));
	else if (!S_ISDIR(stbuf.st_mode))
		ret = open_error(err_r, "directory %s: %s is not a directory", path, parent);
	free(copy);
	return ret;
}

/* Reads meta.schema_version: 0 when the table or the row is absent. */
static int read_version(sqlite3 *db, int *version_r)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
				&st, NULL);
	if (rc != SQLITE_OK) {
		/* No meta table yet: a brand new file. */
		if (strstr(sqlite3_errmsg(db), "no such table") != NULL)
			rc = SQLITE_OK;
		*version_r = 0;
		return rc == SQLITE_OK ? 0 : -1;
	}
	rc = sqlite3_step(st);
	*version_r = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int exec(sqlite3 *db, const char *sql, const char *path, const char *what, char **err_r)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return open_error(err_r, "directory %s: %s: %s", path, what, sqlite3_errmsg(db));
	return 0;
}

static int migrate_locked(sqlite3 *db, const char *path, char **err_r)
{
	char sql[128];
	int version;

	if (exec(db, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, "
		 "value TEXT NOT NULL)", path, "creating meta", err_r) < 0)
		return -1;
	if (read_version(db, &version) < 0)
		return open_error(err_r, "directory %s: reading schema version: %s",
				  path, sqlite3_errmsg(db));
	if (version > DIRECTORY_SCHEMA_VERSION)
		return open_error(err_r, "directory %s: schema version %d is newer than this "
				  "build supports (%d)", path, version, DIRECTORY_SCHEMA_VERSION);
	for (size_t i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
		if (migrations[i].version <= version)
			continue;
		snprintf(sql, sizeof(sql), "upgrading schema to version %d", migrations[i].version);
		if (exec(db, migrations[i].sql, path, sql, err_r) < 0)
			return -1;
		version = migrations[i].version;
	}
	snprintf(sql, sizeof(sql), "INSERT INTO meta (key, value) VALUES ('schema_version', '%d') "
		 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", version);
	return exec(db, sql, path, "storing schema version", err_r);
}

/* Brings the schema to DIRECTORY_SCHEMA_VERSION. The common case (already
 * current) only reads; otherwise every step runs in one IMMEDIATE
 * transaction, so two processes opening a new file cannot both migrate. */
static int migrate(sqlite3 *db, const char *path, char **err_r)
{
	int version;

	if (read_version(db, &version) == 0 && version == DIRECTORY_SCHEMA_VERSION)
		return 0;
	if (exec(db, "BEGIN IMMEDIATE", path, "locking for migration", err_r) < 0)
		return -1;
	if (migrate_locked(db, path, err_r) < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return exec(db, "COMMIT", path, "committing migration", err_r);
}

static int set_wal(sqlite3 *db, const char *path, char **err_r)
{
	sqlite3_stmt *st = NULL;
	const char *mode;
	bool ok;
	int rc;

	rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return open_error(err_r, "directory %s: %s", path, sqlite3_errmsg(db));
	}
	mode = (const char *)sqlite3_column_text(st, 0);
	/* "memory" is what an in-memory database (tests) reports. */
	ok = mode != NULL && (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0);
	sqlite3_finalize(st);
	if (!ok)
		return open_error(err_r, "directory %s: cannot switch to WAL mode", path);
	return 0;
}

int directory_sqlite_open(const char *path, struct directory **dir_r, char **err_r)
{
	struct dir_sqlite *ds;
	sqlite3 *db = NULL;
	int rc;

	if (check_parent(path, err_r) < 0)
		return -1;
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		open_error(err_r, "directory %s: %s", path,
			   db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close_v2(db);
		return -1;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, TERN_DIRECTORY_BUSY_TIMEOUT_MS);
	if (set_wal(db, path, err_r) < 0 ||
	    exec(db, "PRAGMA synchronous = FULL", path, "setting synchronous", err_r) < 0 ||
	    migrate(db, path, err_r) < 0) {
		sqlite3_close_v2(db);
		return -1;
	}
	ds = calloc(1, sizeof(*ds));
	if (ds == NULL) {
		sqlite3_close_v2(db);
		return open_error(err_r, "directory %s: out of memory", path);
	}
	ds->dir.ops = &sqlite_ops;
	ds->db = db;
	*dir_r = &ds->dir;
	return 0;
}
