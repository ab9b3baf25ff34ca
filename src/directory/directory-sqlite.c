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
	ST_NODE_NUMBER,
	ST_GENERATION,
	ST_MOVE_GET,
	ST_MOVE_GET_ACTIVE,
	ST_MOVE_LIST_ACTIVE,
	ST_MOVE_LIST_ALL,
	ST_MOVE_LIST_COMPLETED_FROM,
	ST_MOVE_INSERT,
	ST_MOVE_SET_PHASE,
	ST_MOVE_PROGRESS,
	ST_MOVE_NOTE_ERROR,
	ST_MOVE_FAIL,
	ST_MOVE_CANCEL,
	ST_MOVE_SUSPEND,
	ST_MOVE_LEASE,
	ST_MOVE_RELEASE,
	ST_MOVE_COMPLETE,
	ST_USER_SWITCH_HOME,
	ST_COUNT
};

#define USER_COLUMNS "name, password_hash, home, epoch, state, quota, created"
#define NODE_COLUMNS "name, lmtp_addr, imap_addr, pop3_addr, admin_addr, cluster_addr, " \
	"version, started, heartbeat, stopped, updated"
/* A node's row with its number (node_numbers: kept when the row goes). */
#define NODE_SELECT "SELECT nodes.name, lmtp_addr, imap_addr, pop3_addr, admin_addr, " \
	"cluster_addr, version, started, heartbeat, stopped, updated, " \
	"coalesce(node_numbers.number, 0) FROM nodes " \
	"LEFT JOIN node_numbers ON node_numbers.name = nodes.name"

#define MOVE_COLUMNS "id, user, source, destination, phase, messages_total, messages_done, " \
	"bytes_total, bytes_done, rounds, copied_modseq, wait_reason, last_error, " \
	"suspend_when_ready, cancel_requested, runner, lease_owner, lease_expires, created, " \
	"updated, phase_since, started, finished"
/* Must match dir_move_phase_finished() and the moves_one_active index. */
#define MOVE_FINISHED "('completed', 'failed', 'cancelled')"
#define MOVE_ACTIVE "phase NOT IN " MOVE_FINISHED
/* What reaching a finished phase also does: the lease and the wait end. */
#define MOVE_END_SET "finished = ?3, lease_owner = '', lease_expires = 0, wait_reason = ''"

static const char *const stmt_sql[ST_COUNT] = {
	[ST_USER_GET] = "SELECT " USER_COLUMNS " FROM users WHERE name = ?1",
	[ST_USER_ADD] = "INSERT INTO users (" USER_COLUMNS ") "
			"VALUES (?1, ?2, ?3, 1, 'active', ?4, ?5)",
	[ST_USER_SET_PASSWORD] = "UPDATE users SET password_hash = ?2 WHERE name = ?1",
	[ST_USER_SET_QUOTA] = "UPDATE users SET quota = ?2 WHERE name = ?1",
	[ST_USER_DELETE] = "DELETE FROM users WHERE name = ?1",
	[ST_USER_LIST] = "SELECT " USER_COLUMNS " FROM users ORDER BY name",
	[ST_USER_COUNT] = "SELECT count(*) FROM users",
	[ST_NODE_GET] = NODE_SELECT " WHERE nodes.name = ?1",
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
	[ST_NODE_LIST] = NODE_SELECT " ORDER BY nodes.name",
	/* Numbers are never reused: rows are never deleted, so max only grows. */
	[ST_NODE_NUMBER] = "INSERT OR IGNORE INTO node_numbers (name, number) "
			   "SELECT ?1, coalesce(max(number), 0) + 1 FROM node_numbers",
	[ST_GENERATION] = "SELECT value FROM generation WHERE id = 1",
	[ST_MOVE_GET] = "SELECT " MOVE_COLUMNS " FROM moves WHERE id = ?1",
	[ST_MOVE_GET_ACTIVE] = "SELECT " MOVE_COLUMNS " FROM moves WHERE user = ?1 AND "
			       MOVE_ACTIVE,
	[ST_MOVE_LIST_ACTIVE] = "SELECT " MOVE_COLUMNS " FROM moves WHERE " MOVE_ACTIVE
				" ORDER BY id",
	[ST_MOVE_LIST_ALL] = "SELECT " MOVE_COLUMNS " FROM moves ORDER BY id",
	[ST_MOVE_LIST_COMPLETED_FROM] = "SELECT " MOVE_COLUMNS " FROM moves WHERE source = ?1 "
					"AND phase = 'completed' AND finished >= ?2 ORDER BY id",
	[ST_MOVE_INSERT] = "INSERT INTO moves (user, source, destination, phase, "
			   "suspend_when_ready, created, updated, phase_since) "
			   "VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?5, ?5)",
	/* ?2 expected, ?3 new phase, ?4 now. */
	[ST_MOVE_SET_PHASE] = "UPDATE moves SET phase = ?3, updated = ?4, phase_since = ?4, "
			      "started = CASE WHEN started = 0 AND ?3 != 'queued' THEN ?4 "
			      "ELSE started END, "
			      "finished = CASE WHEN ?3 IN " MOVE_FINISHED " THEN ?4 ELSE 0 END, "
			      "lease_owner = CASE WHEN ?3 IN " MOVE_FINISHED " THEN '' "
			      "ELSE lease_owner END, "
			      "lease_expires = CASE WHEN ?3 IN " MOVE_FINISHED " THEN 0 "
			      "ELSE lease_expires END, "
			      "wait_reason = CASE WHEN ?3 IN " MOVE_FINISHED " THEN '' "
			      "ELSE wait_reason END "
			      "WHERE id = ?1 AND phase = ?2",
	[ST_MOVE_PROGRESS] = "UPDATE moves SET messages_done = ?2, messages_total = ?3, "
			     "bytes_done = ?4, bytes_total = ?5, rounds = ?6, copied_modseq = ?7, "
			     "wait_reason = ?8, updated = ?9 WHERE id = ?1 AND " MOVE_ACTIVE,
	[ST_MOVE_NOTE_ERROR] = "UPDATE moves SET last_error = ?2, updated = ?3 "
			       "WHERE id = ?1 AND " MOVE_ACTIVE,
	[ST_MOVE_FAIL] = "UPDATE moves SET phase = 'failed', last_error = ?2, updated = ?3, "
			 "phase_since = ?3, " MOVE_END_SET " WHERE id = ?1 AND " MOVE_ACTIVE,
	[ST_MOVE_CANCEL] = "UPDATE moves SET cancel_requested = 1 WHERE id = ?1 AND " MOVE_ACTIVE,
	[ST_MOVE_SUSPEND] = "UPDATE moves SET suspend_when_ready = ?2 "
			    "WHERE id = ?1 AND " MOVE_ACTIVE,
	/* ?2 owner, ?3 now, ?4 ttl. */
	[ST_MOVE_LEASE] = "UPDATE moves SET lease_owner = ?2, lease_expires = ?3 + ?4, "
			  "runner = ?2, updated = ?3 WHERE id = ?1 AND " MOVE_ACTIVE " AND "
			  "(lease_owner = '' OR lease_expires <= ?3 OR lease_owner = ?2)",
	[ST_MOVE_RELEASE] = "UPDATE moves SET lease_owner = '', lease_expires = 0 "
			    "WHERE id = ?1 AND lease_owner = ?2 AND lease_owner != ''",
	[ST_MOVE_COMPLETE] = "UPDATE moves SET phase = 'completed', updated = ?3, "
			     "phase_since = ?3, " MOVE_END_SET
			     " WHERE id = ?1 AND phase = 'finalizing' AND user = ?2",
	/* ?1 user, ?2 expected home, ?3 expected epoch, ?4 new home. */
	[ST_USER_SWITCH_HOME] = "UPDATE users SET home = ?4, epoch = ?3 + 1 "
				"WHERE name = ?1 AND home = ?2 AND epoch = ?3",
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
	/* Online moves (issue 10): the moves table of version 1 was never
	 * written, so it is rebuilt with what a move's status needs (state
	 * becomes phase, phase_detail wait_reason, error last_error; every time
	 * in unix ms) and a partial unique index allowing one active move per
	 * user. Rows a build wrote by hand keep their values; an unknown state
	 * becomes failed, and all but the newest active move of a user fail. */
	{ 4,
	  "CREATE TABLE moves_v4 ("
	  " id INTEGER PRIMARY KEY,"
	  " user TEXT NOT NULL,"
	  " source TEXT NOT NULL,"
	  " destination TEXT NOT NULL,"
	  " phase TEXT NOT NULL DEFAULT 'queued' CHECK (phase IN ('queued', 'copying',"
	  "  'syncing', 'ready', 'finalizing', 'completed', 'failed', 'cancelled')),"
	  " messages_total INTEGER NOT NULL DEFAULT 0,"
	  " messages_done INTEGER NOT NULL DEFAULT 0,"
	  " bytes_total INTEGER NOT NULL DEFAULT 0,"
	  " bytes_done INTEGER NOT NULL DEFAULT 0,"
	  " rounds INTEGER NOT NULL DEFAULT 0,"
	  " copied_modseq INTEGER NOT NULL DEFAULT 0,"
	  " wait_reason TEXT NOT NULL DEFAULT '',"
	  " last_error TEXT NOT NULL DEFAULT '',"
	  " suspend_when_ready INTEGER NOT NULL DEFAULT 0,"
	  " cancel_requested INTEGER NOT NULL DEFAULT 0,"
	  " runner TEXT NOT NULL DEFAULT '',"
	  " lease_owner TEXT NOT NULL DEFAULT '',"
	  " lease_expires INTEGER NOT NULL DEFAULT 0,"
	  " created INTEGER NOT NULL,"
	  " updated INTEGER NOT NULL,"
	  " phase_since INTEGER NOT NULL DEFAULT 0,"
	  " started INTEGER NOT NULL DEFAULT 0,"
	  " finished INTEGER NOT NULL DEFAULT 0);"
	  "INSERT INTO moves_v4 (id, user, source, destination, phase, messages_total,"
	  " messages_done, bytes_done, wait_reason, last_error, lease_owner, lease_expires,"
	  " created, updated, phase_since)"
	  " SELECT id, user, source, destination,"
	  "  CASE WHEN state IN ('queued', 'copying', 'syncing', 'ready', 'finalizing',"
	  "   'completed', 'failed', 'cancelled') THEN state ELSE 'failed' END,"
	  "  messages_total, messages_done, bytes_done, phase_detail, coalesce(error, ''),"
	  "  coalesce(lease_owner, ''), coalesce(lease_expires, 0), created, updated, updated"
	  " FROM moves;"
	  "DROP TABLE moves;"
	  "ALTER TABLE moves_v4 RENAME TO moves;"
	  "UPDATE moves SET phase = 'failed', last_error = 'superseded by a newer move'"
	  " WHERE phase NOT IN ('completed', 'failed', 'cancelled') AND id NOT IN"
	  " (SELECT max(id) FROM moves WHERE phase NOT IN ('completed', 'failed', 'cancelled')"
	  "  GROUP BY user);"
	  "CREATE INDEX moves_user ON moves (user);"
	  "CREATE UNIQUE INDEX moves_one_active ON moves (user)"
	  " WHERE phase NOT IN ('completed', 'failed', 'cancelled');" },
	/* Node numbers (core/delivery-id.h): each node name gets a number
	 * once, for good, so the delivery ids a move carries from one node to
	 * another never equal ids the other node hands out. Nodes already
	 * registered get theirs here, in name order. */
	{ 5,
	  "CREATE TABLE node_numbers ("
	  " name TEXT PRIMARY KEY NOT NULL,"
	  " number INTEGER NOT NULL UNIQUE CHECK (number > 0));"
	  "INSERT INTO node_numbers (name, number)"
	  " SELECT name, row_number() OVER (ORDER BY name) FROM nodes;" },
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
		.number = (uint32_t)sqlite3_column_int64(st, 11),
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

/* Steps st to its end, one element of elem bytes per row filled by fill;
 * on failure clears the filled ones and frees the array. */
static int collect_rows(sqlite3_stmt *st, size_t elem, int (*fill)(sqlite3_stmt *, void *),
			void (*clear)(void *), void **rows_r, size_t *count_r,
			enum tern_error *err_r)
{
	char *rows = NULL, *bigger;
	size_t count = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bigger = grow(rows, count, &cap, elem);
		if (bigger == NULL || fill(st, bigger + count * elem) < 0) {
			rc = SQLITE_NOMEM;
			if (bigger != NULL)
				rows = bigger;
			break;
		}
		rows = bigger;
		count++;
	}
	if (rc != SQLITE_DONE) {
		for (size_t i = 0; i < count; i++)
			clear(rows + i * elem);
		free(rows);
		return fail(err_r, map_rc(rc));
	}
	*rows_r = rows;
	*count_r = count;
	return 0;
}

static int fill_user(sqlite3_stmt *st, void *row) { return row_to_user(st, row); }
static void clear_user(void *row) { dir_user_clear(row); }

static int sqlite_user_list(struct directory *dir, struct dir_user **users_r, size_t *count_r,
			    enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_USER_LIST, err_r);
	if (st == NULL)
		return -1;
	void *rows;
	if (collect_rows(st, sizeof(struct dir_user), fill_user, clear_user, &rows, count_r, err_r) < 0)
		return -1;
	*users_r = rows;
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
	if (node_write(ds, n, now_ms, err_r) < 0)
		return -1;
	STMT_SCOPED st = stmt_get(ds, ST_NODE_NUMBER, err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, n->name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : fail(err_r, map_rc(rc));
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

static int fill_node(sqlite3_stmt *st, void *row) { return row_to_node(st, row); }
static void clear_node(void *row) { dir_node_clear(row); }

static int sqlite_node_list(struct directory *dir, struct dir_node **nodes_r, size_t *count_r,
			    enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_NODE_LIST, err_r);
	if (st == NULL)
		return -1;
	void *rows;
	if (collect_rows(st, sizeof(struct dir_node), fill_node, clear_node, &rows, count_r, err_r) < 0)
		return -1;
	*nodes_r = rows;
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

/* ---- moves ---- */

/* Runs fn inside one BEGIN IMMEDIATE transaction: the write lock is taken
 * before the first read, so a check and the write it allows cannot be split
 * by another process. Commits when fn returns >= 0 (its value is returned),
 * rolls back otherwise. */
static int in_write_tx(struct dir_sqlite *ds,
		       int (*fn)(struct dir_sqlite *ds, void *ctx, enum tern_error *err_r),
		       void *ctx, enum tern_error *err_r)
{
	int rc, ret;

	rc = sqlite3_exec(ds->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return fail(err_r, map_rc(rc));
	ret = fn(ds, ctx, err_r);
	if (ret < 0) {
		sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	rc = sqlite3_exec(ds->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
		return fail(err_r, map_rc(rc));
	}
	return ret;
}

static int row_to_move(sqlite3_stmt *st, struct dir_move *m_r)
{
	struct dir_move m = {
		.id = sqlite3_column_int64(st, 0),
		.user = col_strdup(st, 1),
		.source = col_strdup(st, 2),
		.destination = col_strdup(st, 3),
		.messages_total = (uint64_t)sqlite3_column_int64(st, 5),
		.messages_done = (uint64_t)sqlite3_column_int64(st, 6),
		.bytes_total = (uint64_t)sqlite3_column_int64(st, 7),
		.bytes_done = (uint64_t)sqlite3_column_int64(st, 8),
		.rounds = (uint64_t)sqlite3_column_int64(st, 9),
		.copied_modseq = (uint64_t)sqlite3_column_int64(st, 10),
		.wait_reason = col_strdup(st, 11),
		.last_error = col_strdup(st, 12),
		.suspend_when_ready = sqlite3_column_int64(st, 13) != 0,
		.cancel_requested = sqlite3_column_int64(st, 14) != 0,
		.runner = col_strdup(st, 15),
		.lease_owner = col_strdup(st, 16),
		.lease_expires_ms = sqlite3_column_int64(st, 17),
		.created_ms = sqlite3_column_int64(st, 18),
		.updated_ms = sqlite3_column_int64(st, 19),
		.phase_since_ms = sqlite3_column_int64(st, 20),
		.started_ms = sqlite3_column_int64(st, 21),
		.finished_ms = sqlite3_column_int64(st, 22),
	};
	const unsigned char *phase = sqlite3_column_text(st, 4);

	/* The CHECK constraint keeps phase to the known names. */
	if (dir_move_phase_parse((const char *)phase, &m.phase) < 0)
		m.phase = DIR_MOVE_FAILED;
	if (m.user == NULL || m.source == NULL || m.destination == NULL ||
	    m.wait_reason == NULL || m.last_error == NULL || m.runner == NULL ||
	    m.lease_owner == NULL) {
		dir_move_clear(&m);
		return -1;
	}
	*m_r = m;
	return 0;
}

/* Steps a statement that reads at most one move. */
static int move_read_one(sqlite3_stmt *st, struct dir_move *m_r, enum tern_error *err_r)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return fail(err_r, map_rc(rc));
	if (row_to_move(st, m_r) < 0)
		return fail(err_r, TERN_ERR_NOMEM);
	return 1;
}

static int sqlite_move_get(struct directory *dir, int64_t id, struct dir_move *m_r,
			   enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_MOVE_GET, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return move_read_one(st, m_r, err_r);
}

static int sqlite_move_get_active(struct directory *dir, const char *user, struct dir_move *m_r,
				  enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_MOVE_GET_ACTIVE, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, or_empty(user), -1, SQLITE_STATIC);
	return move_read_one(st, m_r, err_r);
}

static int fill_move(sqlite3_stmt *st, void *row) { return row_to_move(st, row); }
static void clear_move(void *row) { dir_move_clear(row); }

static int sqlite_move_list(struct directory *dir, bool include_finished,
			    struct dir_move **moves_r, size_t *count_r, enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), include_finished ? ST_MOVE_LIST_ALL :
				  ST_MOVE_LIST_ACTIVE, err_r);
	if (st == NULL)
		return -1;
	void *rows;
	if (collect_rows(st, sizeof(struct dir_move), fill_move, clear_move, &rows, count_r, err_r) < 0)
		return -1;
	*moves_r = rows;
	return 0;
}

static int sqlite_move_list_completed_from(struct directory *dir, const char *source,
					   int64_t since_ms, struct dir_move **moves_r,
					   size_t *count_r, enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_MOVE_LIST_COMPLETED_FROM, err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since_ms);
	void *rows;
	if (collect_rows(st, sizeof(struct dir_move), fill_move, clear_move, &rows, count_r, err_r) < 0)
		return -1;
	*moves_r = rows;
	return 0;
}

struct move_create_ctx {
	const char *user, *source, *destination;
	bool suspend_when_ready;
	int64_t now_ms;
	int64_t id;
};

static int move_insert(struct dir_sqlite *ds, const struct dir_user *u,
		       struct move_create_ctx *c, enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds, ST_MOVE_INSERT, err_r);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, u->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, u->home, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, c->destination, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, c->suspend_when_ready ? 1 : 0);
	sqlite3_bind_int64(st, 5, c->now_ms);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return fail(err_r, map_rc(rc));   /* a constraint: the one-active index */
	c->id = sqlite3_last_insert_rowid(ds->db);
	return 0;
}

/* The checks of move_create, in the order of its errors, then the insert. */
static int move_create_checked(struct dir_sqlite *ds, const struct dir_user *u,
			       struct move_create_ctx *c, enum tern_error *err_r)
{
	struct dir_node n;
	struct dir_move m;
	int found;

	if (c->source != NULL && c->source[0] != '\0' && strcmp(c->source, u->home) != 0)
		return fail(err_r, TERN_ERR_CONFLICT);
	if (strcmp(c->destination, u->home) == 0)
		return fail(err_r, TERN_ERR_INVALID);
	found = sqlite_node_get(&ds->dir, c->destination, &n, err_r);
	if (found <= 0)
		return found < 0 ? -1 : fail(err_r, TERN_ERR_INVALID);
	dir_node_clear(&n);
	found = sqlite_move_get_active(&ds->dir, c->user, &m, err_r);
	if (found > 0)
		dir_move_clear(&m);
	if (found != 0)
		return found < 0 ? -1 : fail(err_r, TERN_ERR_EXISTS);
	return move_insert(ds, u, c, err_r);
}

static int move_create_locked(struct dir_sqlite *ds, void *ctx, enum tern_error *err_r)
{
	struct move_create_ctx *c = ctx;
	struct dir_user u;
	int found, ret;

	found = sqlite_user_get(&ds->dir, c->user, &u, err_r);
	if (found <= 0)
		return found < 0 ? -1 : fail(err_r, TERN_ERR_NOTFOUND);
	ret = move_create_checked(ds, &u, c, err_r);
	dir_user_clear(&u);
	return ret;
}

static int sqlite_move_create(struct directory *dir, const char *user, const char *source,
			      const char *destination, bool suspend_when_ready, int64_t now_ms,
			      int64_t *id_r, enum tern_error *err_r)
{
	struct move_create_ctx c = {
		.user = user, .source = source, .destination = destination,
		.suspend_when_ready = suspend_when_ready, .now_ms = now_ms,
	};

	if (user == NULL || !node_name_valid(destination))
		return fail(err_r, TERN_ERR_INVALID);
	if (in_write_tx(ds_of(dir), move_create_locked, &c, err_r) < 0)
		return -1;
	if (id_r != NULL)
		*id_r = c.id;
	return 0;
}

/* After an UPDATE of a move that matched no row: NOTFOUND when the move does
 * not exist, else CONFLICT (it is in another state than the update asked). */
static int move_missed(struct dir_sqlite *ds, int64_t id, enum tern_error *err_r)
{
	struct dir_move m;
	int found = sqlite_move_get(&ds->dir, id, &m, err_r);

	if (found < 0)
		return -1;
	if (found == 0)
		return fail(err_r, TERN_ERR_NOTFOUND);
	dir_move_clear(&m);
	return fail(err_r, TERN_ERR_CONFLICT);
}

/* Steps an UPDATE of move id that must change it: 0, or -1 with NOTFOUND or
 * CONFLICT. The statement is reset before the follow-up read. */
static int move_update(struct dir_sqlite *ds, sqlite3_stmt *st, int64_t id,
		       enum tern_error *err_r)
{
	int rc = sqlite3_step(st);
	int changed = sqlite3_changes(ds->db);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return fail(err_r, map_rc(rc));
	if (changed == 0)
		return move_missed(ds, id, err_r);
	return 0;
}

static int sqlite_move_set_phase(struct directory *dir, int64_t id, enum dir_move_phase expected,
				 enum dir_move_phase new_phase, int64_t now_ms,
				 enum tern_error *err_r)
{
	STMT_SCOPED st = NULL;

	if ((unsigned)expected >= DIR_MOVE_PHASE_COUNT ||
	    (unsigned)new_phase >= DIR_MOVE_PHASE_COUNT ||
	    dir_move_phase_finished(expected) || new_phase == DIR_MOVE_COMPLETED)
		return fail(err_r, TERN_ERR_INVALID);
	st = stmt_get(ds_of(dir), ST_MOVE_SET_PHASE, err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, dir_move_phase_name(expected), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, dir_move_phase_name(new_phase), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now_ms);
	return move_update(ds_of(dir), st, id, err_r);
}

static int sqlite_move_progress(struct directory *dir, int64_t id, uint64_t messages_done,
				uint64_t messages_total, uint64_t bytes_done, uint64_t bytes_total,
				uint64_t rounds, uint64_t copied_modseq, const char *wait_reason,
				int64_t now_ms, enum tern_error *err_r)
{
	STMT_SCOPED st = NULL;

	if (messages_done > INT64_MAX || messages_total > INT64_MAX || bytes_done > INT64_MAX ||
	    bytes_total > INT64_MAX || rounds > INT64_MAX || copied_modseq > INT64_MAX)
		return fail(err_r, TERN_ERR_INVALID);
	st = stmt_get(ds_of(dir), ST_MOVE_PROGRESS, err_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)messages_done);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)messages_total);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)bytes_done);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)bytes_total);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)rounds);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)copied_modseq);
	sqlite3_bind_text(st, 8, or_empty(wait_reason), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, now_ms);
	return move_update(ds_of(dir), st, id, err_r);
}

/* note_error and fail: ?1 id, ?2 error, ?3 now. */
static int move_error_write(struct directory *dir, enum stmt_id sid, int64_t id,
			    const char *error, int64_t now_ms, enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), sid, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, or_empty(error), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	return move_update(ds_of(dir), st, id, err_r);
}

static int sqlite_move_note_error(struct directory *dir, int64_t id, const char *error,
				  int64_t now_ms, enum tern_error *err_r)
{
	return move_error_write(dir, ST_MOVE_NOTE_ERROR, id, error, now_ms, err_r);
}

static int sqlite_move_fail(struct directory *dir, int64_t id, const char *error, int64_t now_ms,
			    enum tern_error *err_r)
{
	return move_error_write(dir, ST_MOVE_FAIL, id, error, now_ms, err_r);
}

static int sqlite_move_request_cancel(struct directory *dir, int64_t id, enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_MOVE_CANCEL, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return move_update(ds_of(dir), st, id, err_r);
}

static int sqlite_move_set_suspend(struct directory *dir, int64_t id, bool suspend,
				   enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_MOVE_SUSPEND, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, suspend ? 1 : 0);
	return move_update(ds_of(dir), st, id, err_r);
}

struct move_lease_ctx {
	int64_t id;
	const char *owner;
	int64_t now_ms, ttl_ms;
};

static int move_lease_locked(struct dir_sqlite *ds, void *ctx, enum tern_error *err_r)
{
	struct move_lease_ctx *c = ctx;
	STMT_SCOPED st = stmt_get(ds, ST_MOVE_LEASE, err_r);
	struct dir_move m;
	int rc, found;
	bool finished;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, c->id);
	sqlite3_bind_text(st, 2, c->owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, c->now_ms);
	sqlite3_bind_int64(st, 4, c->ttl_ms);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return fail(err_r, map_rc(rc));
	if (sqlite3_changes(ds->db) > 0)
		return 1;
	/* Not taken: held by another owner, or no such active move. */
	found = sqlite_move_get(&ds->dir, c->id, &m, err_r);
	if (found < 0)
		return -1;
	if (found == 0)
		return fail(err_r, TERN_ERR_NOTFOUND);
	finished = dir_move_phase_finished(m.phase);
	dir_move_clear(&m);
	return finished ? fail(err_r, TERN_ERR_CONFLICT) : 0;
}

static int sqlite_move_lease(struct directory *dir, int64_t id, const char *owner, int64_t now_ms,
			     int64_t ttl_ms, enum tern_error *err_r)
{
	struct move_lease_ctx c = { .id = id, .owner = owner, .now_ms = now_ms, .ttl_ms = ttl_ms };

	if (!node_name_valid(owner) || ttl_ms <= 0 || now_ms > INT64_MAX - ttl_ms)
		return fail(err_r, TERN_ERR_INVALID);
	return in_write_tx(ds_of(dir), move_lease_locked, &c, err_r);
}

static int sqlite_move_lease_release(struct directory *dir, int64_t id, const char *owner,
				     enum tern_error *err_r)
{
	STMT_SCOPED st = stmt_get(ds_of(dir), ST_MOVE_RELEASE, err_r);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, or_empty(owner), -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return fail(err_r, map_rc(rc));
	return sqlite3_changes(ds_of(dir)->db) > 0 ? 1 : 0;
}

struct move_switch_ctx {
	int64_t id;
	const char *user, *expected_home, *new_home;
	int64_t expected_epoch, now_ms, deadline_ms;
};

/* The checks give the precise error; the two UPDATEs repeat them in their
 * WHERE clauses, so a row that does not match changes nothing either way. */
static int move_switch_locked(struct dir_sqlite *ds, void *ctx, enum tern_error *err_r)
{
	struct move_switch_ctx *c = ctx;
	struct dir_move m;
	struct dir_user u;
	enum tern_error err = TERN_ERR_NONE;
	int found, rc;

	/* the write lock is held from here: a clock read now bounds when the
	 * switch lands (a busy directory may have kept us waiting) */
	if (c->deadline_ms > 0 && dir_wall_ms() > c->deadline_ms)
		return fail(err_r, TERN_ERR_TEMP);
	found = sqlite_move_get(&ds->dir, c->id, &m, err_r);
	if (found <= 0)
		return found < 0 ? -1 : fail(err_r, TERN_ERR_NOTFOUND);
	if (strcmp(m.user, c->user) != 0 || strcmp(m.destination, c->new_home) != 0)
		err = TERN_ERR_INVALID;
	else if (m.phase != DIR_MOVE_FINALIZING)
		err = TERN_ERR_CONFLICT;
	dir_move_clear(&m);
	if (err != TERN_ERR_NONE)
		return fail(err_r, err);
	found = sqlite_user_get(&ds->dir, c->user, &u, err_r);
	if (found <= 0)
		return found < 0 ? -1 : fail(err_r, TERN_ERR_NOTFOUND);
	if (strcmp(u.home, c->expected_home) != 0 || u.epoch != c->expected_epoch)
		err = TERN_ERR_CONFLICT;
	dir_user_clear(&u);
	if (err != TERN_ERR_NONE)
		return fail(err_r, err);

	STMT_SCOPED su = stmt_get(ds, ST_USER_SWITCH_HOME, err_r);

	if (su == NULL)
		return -1;
	sqlite3_bind_text(su, 1, c->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(su, 2, c->expected_home, -1, SQLITE_STATIC);
	sqlite3_bind_int64(su, 3, c->expected_epoch);
	sqlite3_bind_text(su, 4, c->new_home, -1, SQLITE_STATIC);
	rc = sqlite3_step(su);
	if (rc != SQLITE_DONE)
		return fail(err_r, map_rc(rc));
	if (sqlite3_changes(ds->db) != 1)
		return fail(err_r, TERN_ERR_CONFLICT);

	STMT_SCOPED sm = stmt_get(ds, ST_MOVE_COMPLETE, err_r);

	if (sm == NULL)
		return -1;
	sqlite3_bind_int64(sm, 1, c->id);
	sqlite3_bind_text(sm, 2, c->user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sm, 3, c->now_ms);
	rc = sqlite3_step(sm);
	if (rc != SQLITE_DONE)
		return fail(err_r, map_rc(rc));
	if (sqlite3_changes(ds->db) != 1)
		return fail(err_r, TERN_ERR_CONFLICT);
	return 0;
}

static int sqlite_move_switch_home(struct directory *dir, int64_t id, const char *user,
				   const char *expected_home, int64_t expected_epoch,
				   const char *new_home, int64_t now_ms, int64_t deadline_ms,
				   enum tern_error *err_r)
{
	struct move_switch_ctx c = {
		.id = id, .user = user, .expected_home = expected_home, .new_home = new_home,
		.expected_epoch = expected_epoch, .now_ms = now_ms, .deadline_ms = deadline_ms,
	};

	if (user == NULL || expected_home == NULL || !node_name_valid(new_home) ||
	    expected_epoch == INT64_MAX)
		return fail(err_r, TERN_ERR_INVALID);
	return in_write_tx(ds_of(dir), move_switch_locked, &c, err_r);
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
	.move_create = sqlite_move_create,
	.move_get = sqlite_move_get,
	.move_get_active = sqlite_move_get_active,
	.move_list = sqlite_move_list,
	.move_list_completed_from = sqlite_move_list_completed_from,
	.move_set_phase = sqlite_move_set_phase,
	.move_progress = sqlite_move_progress,
	.move_note_error = sqlite_move_note_error,
	.move_fail = sqlite_move_fail,
	.move_request_cancel = sqlite_move_request_cancel,
	.move_set_suspend = sqlite_move_set_suspend,
	.move_lease = sqlite_move_lease,
	.move_lease_release = sqlite_move_lease_release,
	.move_switch_home = sqlite_move_switch_home,
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
