/* Opening, creating, migrating and closing a user's store; transactions and
 * the prepared-statement cache every other store file goes through. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store-private.h"

#define STORE_SCHEMA_VERSION 6

const char *const store_default_folders[][2] = {
	{ "INBOX", NULL },
	{ "Sent", "\\Sent" },
	{ "Drafts", "\\Drafts" },
	{ "Trash", "\\Trash" },
	{ "Junk", "\\Junk" },
	{ NULL, NULL },
};

/* Schema v1. Notes for the mover and for whoever adds v2:
 * - folders are identified across nodes by uidvalidity (unique per user);
 *   folders.modseq is the modseq of the last create/rename, deleted_folders
 *   records deletions, so "what changed since modseq M" is answerable for
 *   folders, subscriptions (rows are kept with subscribed = 0), messages
 *   (messages.modseq) and expunges (expunged.modseq).
 * - bodies live in blobs, shared by copies through refs (kept by triggers),
 *   so metadata scans never touch them. raw is the last column so reading the
 *   cached strings does not walk the raw bytes' overflow pages.
 * - folders.messages/unseen/bytes are kept by triggers, so STATUS and QUOTA
 *   cost one row read whatever path changed the messages.
 * - messages.blob_id has no foreign key on purpose: checking it on every blob
 *   delete would need another index on messages, paid by every append. */
static const char schema_v1[] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO meta(key, value) VALUES ('schema_version', 1), ('modseq', 0),"
	" ('uidvalidity', 0);"
	"CREATE TABLE folders ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" special_use TEXT,"
	" uidvalidity INTEGER NOT NULL UNIQUE,"
	" uidnext INTEGER NOT NULL DEFAULT 1,"
	" highestmodseq INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" messages INTEGER NOT NULL DEFAULT 0,"
	" unseen INTEGER NOT NULL DEFAULT 0,"
	" bytes INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE deleted_folders ("
	" uidvalidity INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" modseq INTEGER NOT NULL);"
	"CREATE TABLE subscriptions ("
	" name TEXT PRIMARY KEY,"
	" subscribed INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE blobs ("
	" id INTEGER PRIMARY KEY,"
	" refs INTEGER NOT NULL DEFAULT 0,"
	" envelope TEXT,"
	" bodystructure TEXT,"
	" body TEXT,"
	" subject TEXT,"
	" raw BLOB NOT NULL);"
	"CREATE TABLE messages ("
	" folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,"
	" uid INTEGER NOT NULL,"
	" blob_id INTEGER NOT NULL,"
	" flags INTEGER NOT NULL DEFAULT 0,"
	" keywords TEXT,"
	" modseq INTEGER NOT NULL,"
	" internal_date INTEGER NOT NULL,"
	" internal_tz INTEGER NOT NULL DEFAULT 0,"
	" size INTEGER NOT NULL,"
	" sent_date INTEGER NOT NULL DEFAULT 0,"
	" delivery_id INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (folder_id, uid)) WITHOUT ROWID;"
	"CREATE INDEX messages_modseq ON messages(folder_id, modseq);"
	"CREATE UNIQUE INDEX messages_delivery ON messages(delivery_id) WHERE delivery_id != 0;"
	"CREATE TABLE expunged ("
	" folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,"
	" uid INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" PRIMARY KEY (folder_id, uid)) WITHOUT ROWID;"
	"CREATE INDEX expunged_modseq ON expunged(folder_id, modseq);"
	"CREATE TRIGGER messages_ins AFTER INSERT ON messages BEGIN"
	" UPDATE folders SET messages = messages + 1,"
	"  unseen = unseen + ((NEW.flags & 1) = 0), bytes = bytes + NEW.size"
	"  WHERE id = NEW.folder_id;"
	" UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob_id;"
	"END;"
	"CREATE TRIGGER messages_del AFTER DELETE ON messages BEGIN"
	" UPDATE folders SET messages = messages - 1,"
	"  unseen = unseen - ((OLD.flags & 1) = 0), bytes = bytes - OLD.size"
	"  WHERE id = OLD.folder_id;"
	" UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;"
	" DELETE FROM blobs WHERE id = OLD.blob_id AND refs <= 0;"
	"END;"
	"CREATE TRIGGER messages_seen AFTER UPDATE OF flags ON messages"
	" WHEN (OLD.flags & 1) != (NEW.flags & 1) BEGIN"
	" UPDATE folders SET unseen = unseen + ((NEW.flags & 1) = 0) - ((OLD.flags & 1) = 0)"
	"  WHERE id = NEW.folder_id;"
	"END;";

/* migrations[v] turns schema version v into v + 1; index 0 creates v1. */
/* v2: the first UID no session has yet seen as \\Recent (RFC 3501 §2.3.2). */
static const char schema_v2[] =
	"ALTER TABLE folders ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 1;";

/* v3: every delivery id ever applied, so that a journal replayed after a
 * crash does not bring back a message the user has since expunged. */
static const char schema_v3[] =
	"CREATE TABLE delivered (id INTEGER PRIMARY KEY);"
	"INSERT INTO delivered(id) SELECT delivery_id FROM messages WHERE delivery_id != 0;";

/* v4: per-folder view snapshots (store-snapshot.c), a cache for SELECT. */
static const char schema_v4[] =
	"CREATE TABLE view_snapshots ("
	" folder_id INTEGER PRIMARY KEY,"
	" uidvalidity INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" data BLOB NOT NULL);";

/* v5: object ids (RFC 8474) and save dates (RFC 8514).
 * - folders.mailboxid: MAILBOXID, random, made when the folder is created and
 *   kept through renames; never reused (96 random bits, and unique here).
 * - messages.emailid: EMAILID, random, made when the message is appended and
 *   carried by COPY and MOVE (RFC 8474 §5.1 lets copies of one message share
 *   it), so copies of one message share it whatever happens to the others.
 *   On the message row, not on the blob: blob ids are SQLite rowids, which
 *   come back after the last reference goes, and a column added to blobs
 *   would lie after raw, so reading it would walk the raw bytes' overflow
 *   pages.
 * - messages.save_date: when the message was saved into its folder (append,
 *   delivery, COPY or MOVE target), unix seconds. Messages stored before
 *   this version get their internal date: the best the store knows.
 * Both ids are made by SQLite's randomblob (a CSPRNG seeded from the OS):
 * 'F' or 'M' and 24 lowercase hex digits, objectid syntax (RFC 8474 §4). */
#define STORE_MAILBOXID_SQL "'F' || lower(hex(randomblob(12)))"
#define STORE_EMAILID_SQL "'M' || lower(hex(randomblob(12)))"
static const char schema_v5[] =
	"ALTER TABLE folders ADD COLUMN mailboxid TEXT;"
	"UPDATE folders SET mailboxid = " STORE_MAILBOXID_SQL ";"
	"CREATE UNIQUE INDEX folders_mailboxid ON folders(mailboxid);"
	"ALTER TABLE messages ADD COLUMN emailid TEXT;"
	"ALTER TABLE messages ADD COLUMN save_date INTEGER NOT NULL DEFAULT 0;"
	"UPDATE messages SET emailid = " STORE_EMAILID_SQL ", save_date = internal_date;";

/* v6: the cached parse of every blob stored so far (blobs.envelope,
 * bodystructure, body, subject) came from before the RFC 5322 address
 * parser (store/address.c: comments, groups, source routes), so it is
 * marked stale, not recomputed here: store_msg_cache recomputes a stale
 * blob from its raw bytes when it is first read (store-stale.c), and no
 * upgrade reads a whole store at once.
 * - blobs_stale: ids whose cached columns an older mime_summarize wrote.
 *   A separate table, not a column of blobs: marking is a scan of the ids,
 *   and a column after raw would make every read walk raw's overflow pages.
 *   An id is removed when its cache is recomputed, and by the append that
 *   makes a new blob under a reused id; a deleted blob leaves its id here
 *   (harmless: it is reparsed once if it comes back, e.g. in a move delta).
 * - a later change of what mime_summarize writes adds a migration that
 *   inserts every blob id again.
 * Move deltas do not carry the table (the cache is not in the move
 * checksum either): each node recomputes its own stale blobs. */
static const char schema_v6[] =
	"CREATE TABLE IF NOT EXISTS blobs_stale (blob_id INTEGER PRIMARY KEY);"
	"INSERT OR IGNORE INTO blobs_stale(blob_id) SELECT id FROM blobs;";

static const char *const migrations[STORE_SCHEMA_VERSION] = {
	schema_v1,
	schema_v2,
	schema_v3,
	schema_v4,
	schema_v5,
	schema_v6,
};

/* The columns store_msg_from_row reads, in its order. */
#define MSG_COLUMNS "SELECT uid, flags, keywords, modseq, internal_date, internal_tz, size," \
		    " save_date, emailid"

static const char *const store_sql[STMT_COUNT] = {
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_BEGIN_READ] = "BEGIN",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_SAVEPOINT] = "SAVEPOINT op",
	[STMT_RELEASE] = "RELEASE op",
	[STMT_ROLLBACK_TO] = "ROLLBACK TO op",
	[STMT_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[STMT_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2)"
			  " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[STMT_MODSEQ_BUMP] = "UPDATE meta SET value = value + 1 WHERE key = 'modseq'"
			     " RETURNING value",
	[STMT_FOLDER_ROW] = "SELECT id, uidvalidity, uidnext, highestmodseq"
			    " FROM folders WHERE name = ?1",
	[STMT_FOLDER_LIST] = "SELECT f.name, f.special_use, f.uidvalidity, f.uidnext,"
			     " f.highestmodseq, f.messages, f.unseen, f.bytes,"
			     " coalesce(s.subscribed, 0), f.id, f.mailboxid"
			     " FROM folders f LEFT JOIN subscriptions s ON s.name = f.name"
			     " ORDER BY f.name != 'INBOX', f.name",
	[STMT_FOLDER_GET] = "SELECT f.name, f.special_use, f.uidvalidity, f.uidnext,"
			    " f.highestmodseq, f.messages, f.unseen, f.bytes,"
			    " coalesce(s.subscribed, 0), f.id, f.mailboxid"
			    " FROM folders f LEFT JOIN subscriptions s ON s.name = f.name"
			    " WHERE f.name = ?1",
	[STMT_FOLDER_INSERT] = "INSERT INTO folders(name, special_use, uidvalidity, uidnext,"
			       " highestmodseq, modseq, mailboxid)"
			       " VALUES (?1, ?2, ?3, 1, ?4, ?4, " STORE_MAILBOXID_SQL ")",
	[STMT_FOLDER_SET_UIDNEXT] = "UPDATE folders SET uidnext = ?2, highestmodseq = ?3"
				    " WHERE id = ?1",
	[STMT_FOLDER_SET_HMS] = "UPDATE folders SET highestmodseq = ?2 WHERE id = ?1",
	/* '0' is '/' + 1: the range holds exactly the names under "?1/". */
	[STMT_FOLDER_CHILDREN] = "SELECT id, name FROM folders"
				 " WHERE name > ?1 || '/' AND name < ?1 || '0' ORDER BY name",
	[STMT_FOLDER_RENAME] = "UPDATE folders SET name = ?2, modseq = ?3 WHERE id = ?1",
	[STMT_FOLDER_DEL_EXPUNGED] = "DELETE FROM expunged WHERE folder_id = ?1",
	[STMT_FOLDER_DEL_MSGS] = "DELETE FROM messages WHERE folder_id = ?1",
	[STMT_FOLDER_DEL] = "DELETE FROM folders WHERE id = ?1",
	[STMT_FOLDER_LOG_DELETE] = "INSERT OR REPLACE INTO deleted_folders(uidvalidity, name,"
				   " modseq) VALUES (?1, ?2, ?3)",
	[STMT_SUB_SET] = "INSERT INTO subscriptions(name, subscribed, modseq) VALUES (?1, ?2, ?3)"
			 " ON CONFLICT(name) DO UPDATE SET subscribed = excluded.subscribed,"
			 " modseq = excluded.modseq",
	[STMT_SUB_GET] = "SELECT subscribed FROM subscriptions WHERE name = ?1",
	[STMT_SUB_LIST] = "SELECT name FROM subscriptions WHERE subscribed != 0 ORDER BY name",
	[STMT_BLOB_INSERT] = "INSERT INTO blobs(envelope, bodystructure, body, subject, raw)"
			     " VALUES (?1, ?2, ?3, ?4, ?5)",
	/* ?12 NULL: a new message, with a new EMAILID; else a copy's */
	[STMT_MSG_INSERT] = "INSERT INTO messages(folder_id, uid, blob_id, flags, keywords, modseq,"
			    " internal_date, internal_tz, size, sent_date, delivery_id, emailid,"
			    " save_date) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
			    " coalesce(?12, " STORE_EMAILID_SQL "), ?13)",
	[STMT_DELIVERED_GET] = "SELECT 1 FROM delivered WHERE id = ?1",
	[STMT_DELIVERED_ADD] = "INSERT INTO delivered(id) VALUES (?1)",
	[STMT_DELIVERED_PRUNE] = "DELETE FROM delivered WHERE id < ?1 OR (id >= ?2 AND id < ?3)",
	[STMT_MSG_BY_DELIVERY] = "SELECT m.uid, f.uidvalidity FROM messages m"
				 " JOIN folders f ON f.id = m.folder_id WHERE m.delivery_id = ?1",
	[STMT_MSG_LIST] = MSG_COLUMNS " FROM messages WHERE folder_id = ?1 ORDER BY uid",
	[STMT_MSG_LIST_FROM] = MSG_COLUMNS " FROM messages WHERE folder_id = ?1 AND uid >= ?2"
				     " ORDER BY uid LIMIT ?3",
	[STMT_MSG_GET] = MSG_COLUMNS " FROM messages WHERE folder_id = ?1 AND uid = ?2",
	[STMT_MSG_ROW] = "SELECT blob_id, flags, keywords, internal_date, internal_tz, size,"
			 " sent_date, delivery_id, emailid"
			 " FROM messages WHERE folder_id = ?1 AND uid = ?2",
	[STMT_MSG_IDS] = "SELECT emailid, save_date FROM messages WHERE folder_id = ?1 AND uid = ?2",
	[STMT_MSG_RAW] = "SELECT b.raw FROM messages m JOIN blobs b ON b.id = m.blob_id"
			 " WHERE m.folder_id = ?1 AND m.uid = ?2",
	[STMT_MSG_BLOB_ID] = "SELECT blob_id, size FROM messages WHERE folder_id = ?1 AND uid = ?2",
	[STMT_MSG_CACHE] = "SELECT b.envelope, b.bodystructure, b.body, b.subject, m.sent_date,"
			   " m.blob_id, EXISTS (SELECT 1 FROM blobs_stale s WHERE s.blob_id = m.blob_id)"
			   " FROM messages m JOIN blobs b ON b.id = m.blob_id"
			   " WHERE m.folder_id = ?1 AND m.uid = ?2",
	[STMT_BLOB_RAW] = "SELECT raw FROM blobs WHERE id = ?1",
	/* only while still marked: the id may have been reused meanwhile */
	[STMT_BLOB_CACHE_SET] = "UPDATE blobs SET envelope = ?2, bodystructure = ?3, body = ?4,"
				" subject = ?5 WHERE id = ?1"
				" AND EXISTS (SELECT 1 FROM blobs_stale WHERE blob_id = ?1)"
				" AND (envelope IS NOT ?2 OR bodystructure IS NOT ?3"
				" OR body IS NOT ?4 OR subject IS NOT ?5)",
	[STMT_BLOB_FRESH] = "DELETE FROM blobs_stale WHERE blob_id = ?1",
	[STMT_MSG_SET_FLAGS] = "UPDATE messages SET flags = ?3, keywords = ?4, modseq = ?5"
			       " WHERE folder_id = ?1 AND uid = ?2",
	[STMT_MSG_SET_DELIVERY] = "UPDATE messages SET delivery_id = ?3"
				  " WHERE folder_id = ?1 AND uid = ?2",
	[STMT_MSG_DELETE] = "DELETE FROM messages WHERE folder_id = ?1 AND uid = ?2",
	[STMT_MSG_DELETED_UIDS] = "SELECT uid FROM messages WHERE folder_id = ?1"
				  " AND (flags & 8) != 0 ORDER BY uid",
	[STMT_MSG_ALL_UIDS] = "SELECT uid FROM messages WHERE folder_id = ?1 ORDER BY uid",
	[STMT_TOMBSTONE_INSERT] = "INSERT OR REPLACE INTO expunged(folder_id, uid, modseq)"
				  " VALUES (?1, ?2, ?3)",
	/* INDEXED BY: left alone, the planner walks the primary key to save the
	 * sort, reading the whole folder for the few rows a sync wants. */
	[STMT_CHANGES] = MSG_COLUMNS " FROM messages INDEXED BY messages_modseq"
			 " WHERE folder_id = ?1 AND modseq > ?2 ORDER BY uid",
	/* "+modseq": keeps the planner off the modseq index, for a scan */
	[STMT_CHANGES_SCAN] = MSG_COLUMNS " FROM messages WHERE folder_id = ?1 AND +modseq > ?2"
			      " ORDER BY uid",
	[STMT_VANISHED] = "SELECT uid FROM expunged INDEXED BY expunged_modseq"
			  " WHERE folder_id = ?1 AND modseq > ?2 ORDER BY uid",
	[STMT_SNAPSHOT_GET] = "SELECT uidvalidity, modseq, data FROM view_snapshots"
			      " WHERE folder_id = ?1",
	[STMT_SNAPSHOT_AGE] = "SELECT uidvalidity, modseq FROM view_snapshots WHERE folder_id = ?1",
	[STMT_SNAPSHOT_PUT] = "INSERT OR REPLACE INTO view_snapshots(folder_id, uidvalidity, modseq,"
			      " data) VALUES (?1, ?2, ?3, ?4)",
	[STMT_SNAPSHOT_DEL] = "DELETE FROM view_snapshots WHERE folder_id = ?1",
	[STMT_USAGE] = "SELECT coalesce(sum(bytes), 0), coalesce(sum(messages), 0) FROM folders",
};

enum tern_error store_sql_error(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return TERN_ERR_NONE;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return TERN_ERR_TEMP;
	case SQLITE_FULL:
		return TERN_ERR_NOSPACE;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return TERN_ERR_CORRUPT;
	case SQLITE_NOMEM:
		return TERN_ERR_NOMEM;
	case SQLITE_TOOBIG:
		return TERN_ERR_TOOBIG;
	case SQLITE_CONSTRAINT:
		return TERN_ERR_EXISTS;
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
		return TERN_ERR_INVALID;
	default:
		return TERN_ERR_IO;
	}
}

int store_err(enum tern_error err, enum tern_error *err_r)
{
	*err_r = err;
	return -1;
}

/* The triggers store_fence installs: every write to the user's folders,
 * messages and subscriptions is refused while meta 'fenced' (a wall-clock
 * ms deadline, INT64_MAX = for good) lies ahead, by SQLite itself,
 * whichever connection or path attempts it. A fence with a deadline lapses
 * by itself: a move whose runner died before its switch leaves nothing
 * fenced for longer than its freeze. */
#define FENCE_MESSAGE "tern: this store was moved to another node"
#define FENCE_NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
#define FENCE_ON(table, op)                                                                \
	"CREATE TRIGGER IF NOT EXISTS fence_" table "_" op " BEFORE " op " ON " table      \
	" WHEN (SELECT value FROM meta WHERE key = 'fenced') > " FENCE_NOW_MS              \
	" BEGIN SELECT RAISE(ABORT, '" FENCE_MESSAGE "'); END;"
static const char fence_sql[] =
	FENCE_ON("messages", "INSERT") FENCE_ON("messages", "UPDATE") FENCE_ON("messages", "DELETE")
	FENCE_ON("folders", "INSERT") FENCE_ON("folders", "UPDATE") FENCE_ON("folders", "DELETE")
	FENCE_ON("subscriptions", "INSERT") FENCE_ON("subscriptions", "UPDATE")
	FENCE_ON("subscriptions", "DELETE");

int store_fence(struct store *st, int64_t until_ms, enum tern_error *err_r)
{
	char *msg = NULL;
	char *set = sqlite3_mprintf("INSERT OR REPLACE INTO meta(key, value) VALUES ('fenced', %lld);",
				    (long long)(until_ms > 0 ? until_ms : INT64_MAX));
	if (set == NULL)
		return store_err(TERN_ERR_NOMEM, err_r);
	int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE;", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(st->db, fence_sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(st->db, set, NULL, NULL, &msg);
	sqlite3_free(msg);
	sqlite3_free(set);
	if (rc != SQLITE_OK) {
		sqlite3_exec(st->db, "ROLLBACK;", NULL, NULL, NULL);
		return store_err(store_sql_error(rc), err_r);
	}
	rc = sqlite3_exec(st->db, "COMMIT;", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(st->db, "ROLLBACK;", NULL, NULL, NULL);
		return store_err(store_sql_error(rc), err_r);
	}
	return 0;
}

int store_unfence(struct store *st, enum tern_error *err_r)
{
	static const char sql[] =
		"BEGIN IMMEDIATE;"
		"DROP TRIGGER IF EXISTS fence_messages_INSERT; DROP TRIGGER IF EXISTS fence_messages_UPDATE;"
		"DROP TRIGGER IF EXISTS fence_messages_DELETE; DROP TRIGGER IF EXISTS fence_folders_INSERT;"
		"DROP TRIGGER IF EXISTS fence_folders_UPDATE; DROP TRIGGER IF EXISTS fence_folders_DELETE;"
		"DROP TRIGGER IF EXISTS fence_subscriptions_INSERT;"
		"DROP TRIGGER IF EXISTS fence_subscriptions_UPDATE;"
		"DROP TRIGGER IF EXISTS fence_subscriptions_DELETE;"
		"DELETE FROM meta WHERE key = 'fenced';"
		"COMMIT;";
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(st->db, "ROLLBACK;", NULL, NULL, NULL);
		return store_err(store_sql_error(rc), err_r);
	}
	return 0;
}

int store_fenced(struct store *st, bool *fenced_r, enum tern_error *err_r)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(st->db, "SELECT value > " FENCE_NOW_MS
				    " FROM meta WHERE key = 'fenced'", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return store_err(store_sql_error(rc), err_r);
	rc = sqlite3_step(q);
	*fenced_r = rc == SQLITE_ROW && sqlite3_column_int64(q, 0) != 0;
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_err(store_sql_error(rc), err_r);
}

int store_fail(struct store *st, int rc, enum tern_error *err_r)
{
	enum tern_error err = store_sql_error(rc);
	/* a fenced store (moved away): a temporary error, the client or MTA
	 * retries and reaches the new home */
	if ((rc & 0xff) == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(st->db), FENCE_MESSAGE) != NULL)
		err = TERN_ERR_TEMP;

	if (err == TERN_ERR_NONE)
		err = TERN_ERR_IO;
	/* SQLite rolls the whole transaction back by itself on some errors. */
	if (st->explicit_tx && sqlite3_get_autocommit(st->db) && st->aborted == TERN_ERR_NONE)
		st->aborted = err;
	*err_r = err;
	return -1;
}

sqlite3_stmt *store_stmt(struct store *st, enum store_stmt_id id, enum tern_error *err_r)
{
	int rc;

	if (st->stmts[id] != NULL)
		return st->stmts[id];
	rc = sqlite3_prepare_v3(st->db, store_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
				&st->stmts[id], NULL);
	if (rc != SQLITE_OK) {
		st->stmts[id] = NULL;
		store_fail(st, rc, err_r);
		return NULL;
	}
	return st->stmts[id];
}

void store_stmt_resetp(sqlite3_stmt **stmt)
{
	if (*stmt == NULL)
		return;
	sqlite3_reset(*stmt);
	sqlite3_clear_bindings(*stmt);
}

int store_exec_step(struct store *st, sqlite3_stmt *stmt, enum tern_error *err_r)
{
	int rc = sqlite3_step(stmt);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	return 0;
}

static int store_run(struct store *st, enum store_stmt_id id, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, id, err_r);
	if (stmt == NULL)
		return -1;
	return store_exec_step(st, stmt, err_r);
}

static int store_tx_start(struct store *st, struct store_tx *tx, enum store_stmt_id begin,
			  enum tern_error *err_r)
{
	if (st->aborted != TERN_ERR_NONE)
		return store_err(st->aborted, err_r);
	tx->st = st;
	tx->outer = st->depth == 0;
	tx->savepoint = !tx->outer;
	if (store_run(st, tx->outer ? begin : STMT_SAVEPOINT, err_r) < 0)
		return -1;
	tx->active = true;
	st->depth++;
	return 0;
}

int store_tx_begin(struct store *st, struct store_tx *tx, enum tern_error *err_r)
{
	return store_tx_start(st, tx, STMT_BEGIN, err_r);
}

int store_tx_begin_read(struct store *st, struct store_tx *tx, enum tern_error *err_r)
{
	return store_tx_start(st, tx, STMT_BEGIN_READ, err_r);
}

int store_tx_commit(struct store_tx *tx, enum tern_error *err_r)
{
	struct store *st = tx->st;

	if (store_run(st, tx->outer ? STMT_COMMIT : STMT_RELEASE, err_r) < 0)
		return -1;      /* the cleanup rolls back */
	tx->active = false;
	st->depth--;
	return 0;
}

void store_tx_cleanup(struct store_tx *tx)
{
	struct store *st = tx->st;
	enum tern_error err;

	if (!tx->active)
		return;
	tx->active = false;
	st->depth--;
	if (sqlite3_get_autocommit(st->db))
		return;         /* SQLite already rolled everything back */
	if (tx->outer) {
		store_run(st, STMT_ROLLBACK, &err);
	} else {
		/* ROLLBACK TO keeps the savepoint open; RELEASE pops it. */
		store_run(st, STMT_ROLLBACK_TO, &err);
		store_run(st, STMT_RELEASE, &err);
	}
}

/* ---- meta ---- */

static int meta_get(struct store *st, const char *key, int64_t *value_r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_META_GET, err_r);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*value_r = sqlite3_column_int64(stmt, 0);
		return 1;
	}
	if (rc != SQLITE_DONE)
		return store_fail(st, rc, err_r);
	return 0;
}

static int meta_set(struct store *st, const char *key, int64_t value, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_META_SET, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, value);
	return store_exec_step(st, stmt, err_r);
}

int store_op_modseq(struct store_op *op, uint64_t *modseq_r, enum tern_error *err_r)
{
	int rc;

	if (op->modseq == 0) {
		STORE_STMT(stmt, op->st, STMT_MODSEQ_BUMP, err_r);
		if (stmt == NULL)
			return -1;
		rc = sqlite3_step(stmt);
		if (rc != SQLITE_ROW)
			return store_fail(op->st, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, err_r);
		op->modseq = (uint64_t)sqlite3_column_int64(stmt, 0);
	}
	*modseq_r = op->modseq;
	return 0;
}

int store_new_uidvalidity(struct store *st, uint32_t *uidvalidity_r, enum tern_error *err_r)
{
	int64_t last = 0, now = (int64_t)time(NULL), next;

	if (meta_get(st, "uidvalidity", &last, err_r) < 0)
		return -1;
	next = now > last ? now : last + 1;
	if (next > (int64_t)UINT32_MAX)
		return store_err(TERN_ERR_INVALID, err_r);
	if (meta_set(st, "uidvalidity", next, err_r) < 0)
		return -1;
	*uidvalidity_r = (uint32_t)next;
	return 0;
}

/* ---- open / close ---- */

char *store_path(const char *data_dir, const char *user)
{
	char *path;

	if (asprintf(&path, "%s/mail/%s.db", data_dir, user) < 0)
		return NULL;
	return path;
}

static int store_pragmas(struct store *st, enum tern_error *err_r)
{
	static const char pragmas[] =
		"PRAGMA journal_mode = WAL;"
		"PRAGMA foreign_keys = ON;"
		"PRAGMA synchronous = FULL;"
		"PRAGMA temp_store = MEMORY;";
	int rc;

	st->busy_ms = STORE_BUSY_TIMEOUT_MS;
	rc = sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(st->db, pragmas, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	return 0;
}

static int store_create_defaults(struct store *st, enum tern_error *err_r)
{
	struct store_op op = { .st = st };
	struct store_frow f;
	uint64_t modseq;

	for (size_t i = 0; store_default_folders[i][0] != NULL; i++) {
		STORE_STMT(sub, st, STMT_SUB_SET, err_r);
		if (sub == NULL)
			return -1;
		if (store_folder_insert(st, &op, store_default_folders[i][0],
					store_default_folders[i][1], &f, err_r) < 0)
			return -1;
		if (store_op_modseq(&op, &modseq, err_r) < 0)
			return -1;
		sqlite3_bind_text(sub, 1, store_default_folders[i][0], -1, SQLITE_STATIC);
		sqlite3_bind_int(sub, 2, 1);
		sqlite3_bind_int64(sub, 3, (int64_t)modseq);
		if (store_exec_step(st, sub, err_r) < 0)
			return -1;
	}
	return 0;
}

/* The schema version, 0 for a store whose creation has not committed. */
static int schema_version(struct store *st, int64_t *version_r, enum tern_error *err_r)
{
	sqlite3_stmt *probe;
	int rc, has_meta;

	*version_r = 0;
	rc = sqlite3_prepare_v2(st->db, "SELECT 1 FROM sqlite_master WHERE name = 'meta'",
				-1, &probe, NULL);
	if (rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	rc = sqlite3_step(probe);
	has_meta = rc == SQLITE_ROW;
	sqlite3_finalize(probe);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(st, rc, err_r);
	if (has_meta && meta_get(st, "schema_version", version_r, err_r) < 0)
		return -1;
	if (*version_r > STORE_SCHEMA_VERSION)
		return store_err(TERN_ERR_CORRUPT, err_r); /* written by a newer Tern */
	return 0;
}

/* Brings the schema to STORE_SCHEMA_VERSION. The common case (current) takes
 * no write lock; otherwise the check is redone inside one write transaction,
 * so two processes opening a new store at once cannot both create it. A store
 * found existing but empty (its creation crashed) is created now. */
static int store_migrate(struct store *st, enum tern_error *err_r)
{
	STORE_TX(tx);
	int64_t version;

	if (schema_version(st, &version, err_r) < 0)
		return -1;
	if (version == STORE_SCHEMA_VERSION)
		return 0;
	if (store_tx_begin(st, &tx, err_r) < 0 || schema_version(st, &version, err_r) < 0)
		return -1;
	for (int64_t v = version; v < STORE_SCHEMA_VERSION; v++) {
		int rc = sqlite3_exec(st->db, migrations[v], NULL, NULL, NULL);

		if (rc != SQLITE_OK)
			return store_fail(st, rc, err_r);
		if (meta_set(st, "schema_version", v + 1, err_r) < 0)
			return -1;
	}
	if (version == 0 && store_create_defaults(st, err_r) < 0)
		return -1;
	return store_tx_commit(&tx, err_r);
}

static int store_mkdir(const char *data_dir, enum tern_error *err_r)
{
	char *dir;
	int ret = 0;

	if (asprintf(&dir, "%s/mail", data_dir) < 0)
		return store_err(TERN_ERR_NOMEM, err_r);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		ret = store_err(errno == ENOSPC ? TERN_ERR_NOSPACE :
				errno == ENOENT ? TERN_ERR_NOTFOUND : TERN_ERR_IO, err_r);
	free(dir);
	return ret;
}

static void store_free(struct store *st)
{
	for (size_t i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(st->stmts[i]);
	sqlite3_close(st->db);
	free(st->path);
	free(st);
}

/* migrate = bring an older schema up to date (a write, perhaps a scan of
 * the whole store); else an older schema is TERN_ERR_CONFLICT. */
static int open_store(const char *data_dir, const char *user, bool create, bool migrate,
		      struct store **st_r, enum tern_error *err_r)
{
	struct store *st;
	struct stat sb;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	int rc;

	if (user == NULL || *user == '\0' || strchr(user, '/') != NULL || user[0] == '.')
		return store_err(TERN_ERR_INVALID, err_r);
	st = calloc(1, sizeof(*st));
	if (st == NULL || (st->path = store_path(data_dir, user)) == NULL) {
		free(st);
		return store_err(TERN_ERR_NOMEM, err_r);
	}
	if (stat(st->path, &sb) < 0) {
		if (errno != ENOENT || !create) {
			free(st->path);
			free(st);
			return store_err(errno == ENOENT ? TERN_ERR_NOTFOUND : TERN_ERR_IO, err_r);
		}
		if (store_mkdir(data_dir, err_r) < 0) {
			free(st->path);
			free(st);
			return -1;
		}
		flags |= SQLITE_OPEN_CREATE;
	}
	rc = sqlite3_open_v2(st->path, &st->db, flags, NULL);
	if (rc != SQLITE_OK) {
		*err_r = rc == SQLITE_CANTOPEN ? TERN_ERR_IO : store_sql_error(rc);
		store_free(st);
		return -1;
	}
	sqlite3_extended_result_codes(st->db, 1);
	/* Closing must not checkpoint on the closing thread (an IMAP loop
	 * thread parking an idle session): the delivery workers checkpoint. */
	(void)sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	int64_t version = 0;
	if (store_pragmas(st, err_r) < 0 ||
	    (migrate ? store_migrate(st, err_r) < 0
		     : schema_version(st, &version, err_r) < 0 ||
		       (version != STORE_SCHEMA_VERSION && store_err(TERN_ERR_CONFLICT, err_r) < 0))) {
		store_free(st);
		return -1;
	}
	st->durable = true;     /* store_pragmas: synchronous = FULL */
	*st_r = st;
	return 0;
}

int store_open(const char *data_dir, const char *user, bool create, struct store **st_r,
	       enum tern_error *err_r)
{
	return open_store(data_dir, user, create, true, st_r, err_r);
}

int store_open_current(const char *data_dir, const char *user, struct store **st_r,
		       enum tern_error *err_r)
{
	return open_store(data_dir, user, false, false, st_r, err_r);
}

void store_close(struct store **_st)
{
	struct store *st = *_st;

	if (st == NULL)
		return;
	*_st = NULL;
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	store_free(st);
}

void store_library_init(void)
{
	/* Each connection would otherwise take a bulk page-cache allocation
	 * (~90 KiB) at its first read; a node keeps one connection per
	 * logged-in session, most of them idle, so pages come one at a time. */
	(void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	/* Allocation statistics take a process-wide mutex on every SQLite
	 * malloc; nothing here reads them. */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int store_remove(const char *data_dir, const char *user, enum tern_error *err_r)
{
	static const char *const suffixes[] = { "-wal", "-shm", "" };
	char *path, *file;

	if (user == NULL || *user == '\0' || strchr(user, '/') != NULL || user[0] == '.')
		return store_err(TERN_ERR_INVALID, err_r);
	path = store_path(data_dir, user);
	if (path == NULL)
		return store_err(TERN_ERR_NOMEM, err_r);
	/* The database goes last: while it exists the store is still whole. */
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (asprintf(&file, "%s%s", path, suffixes[i]) < 0) {
			free(path);
			return store_err(TERN_ERR_NOMEM, err_r);
		}
		if (unlink(file) < 0 && errno != ENOENT) {
			free(file);
			free(path);
			return store_err(TERN_ERR_IO, err_r);
		}
		free(file);
	}
	free(path);
	return 0;
}

int store_set_durable(struct store *st, bool durable, enum tern_error *err_r)
{
	int rc = sqlite3_exec(st->db, durable ? "PRAGMA synchronous = FULL" :
			      "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	st->durable = durable;
	return 0;
}

int store_checkpoint(struct store *st, enum tern_error *err_r)
{
	/* FULL, not PASSIVE: a passive checkpoint blocked by readers may skip
	 * the WAL fsync that makes NORMAL-mode commits durable. */
	int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_FULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	return 0;
}

/* ---- explicit transactions ---- */

static int explicit_begin(struct store *st, enum store_stmt_id begin, enum tern_error *err_r)
{
	if (st->depth != 0)
		return store_err(TERN_ERR_INVALID, err_r);
	if (store_run(st, begin, err_r) < 0)
		return -1;
	st->depth = 1;
	st->explicit_tx = true;
	st->read_tx = begin == STMT_BEGIN_READ;
	st->aborted = TERN_ERR_NONE;
	return 0;
}

int store_begin(struct store *st, enum tern_error *err_r)
{
	return explicit_begin(st, STMT_BEGIN, err_r);
}

int store_read_begin(struct store *st, enum tern_error *err_r)
{
	return explicit_begin(st, STMT_BEGIN_READ, err_r);
}

void store_read_end(struct store *st)
{
	enum tern_error err;
	if (!st->explicit_tx)
		return;
	/* nothing was written: COMMIT only releases the snapshot */
	if (!sqlite3_get_autocommit(st->db) && store_run(st, STMT_COMMIT, &err) < 0)
		store_run(st, STMT_ROLLBACK, &err);
	st->depth = 0;
	st->explicit_tx = false;
	st->read_tx = false;
	st->aborted = TERN_ERR_NONE;   /* a read that failed inside ends here too */
}

int store_commit(struct store *st, enum tern_error *err_r)
{
	enum tern_error aborted = st->aborted;

	if (!st->explicit_tx)
		return store_err(TERN_ERR_INVALID, err_r);
	if (aborted != TERN_ERR_NONE) {
		store_rollback(st);
		return store_err(aborted, err_r);
	}
	if (store_run(st, STMT_COMMIT, err_r) < 0) {
		store_rollback(st);
		return -1;
	}
	st->depth = 0;
	st->explicit_tx = false;
	st->read_tx = false;
	return 0;
}

void store_rollback(struct store *st)
{
	enum tern_error err;

	if (!st->explicit_tx)
		return;
	if (!sqlite3_get_autocommit(st->db))
		store_run(st, STMT_ROLLBACK, &err);
	st->depth = 0;
	st->explicit_tx = false;
	st->read_tx = false;
	st->aborted = TERN_ERR_NONE;
}

/* ---- whole-store queries ---- */

void store_set_busy_timeout(struct store *st, unsigned ms)
{
	st->busy_ms = ms > INT32_MAX ? INT32_MAX : ms;
	sqlite3_busy_timeout(st->db, (int)st->busy_ms);
}

void store_set_quota(struct store *st, uint64_t bytes)
{
	st->quota_bytes = bytes;
}

int store_quota_check(struct store *st, uint64_t adding, enum tern_error *err_r)
{
	uint64_t used, messages;

	if (st->quota_bytes == 0)
		return 0;
	if (store_usage(st, &used, &messages, err_r) < 0)
		return -1;
	if (used > st->quota_bytes || adding > st->quota_bytes - used)
		return store_err(TERN_ERR_NOQUOTA, err_r);
	return 0;
}

int store_usage(struct store *st, uint64_t *bytes_r, uint64_t *messages_r,
		enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_USAGE, err_r);
	int rc;

	if (stmt == NULL)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	*bytes_r = (uint64_t)sqlite3_column_int64(stmt, 0);
	*messages_r = (uint64_t)sqlite3_column_int64(stmt, 1);
	return 0;
}

int store_highestmodseq(struct store *st, uint64_t *modseq_r, enum tern_error *err_r)
{
	int64_t value = 0;
	int ret = meta_get(st, "modseq", &value, err_r);

	if (ret < 0)
		return -1;
	*modseq_r = (uint64_t)value;
	return 0;
}

/* Runs a check query whose every row must be the single value want
 * ("ok" or 0). 1 all good, 0 not, -1 error. */
static int check_query(struct store *st, const char *sql, const char *want,
		       enum tern_error *err_r)
{
	sqlite3_stmt *stmt;
	int rc, ok = 1;
	const unsigned char *text;

	rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		text = sqlite3_column_text(stmt, 0);
		if (text == NULL || strcmp((const char *)text, want) != 0)
			ok = 0;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE) {
		if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
			return 0;
		return store_fail(st, rc, err_r);
	}
	return ok;
}

int store_integrity_check(struct store *st, enum tern_error *err_r)
{
	/* Beyond SQLite's own check: the counters the triggers keep, and the
	 * blob reference counts, must match the rows they summarise. */
	static const char *const checks[][2] = {
		{ "PRAGMA integrity_check", "ok" },
		{ "SELECT count(*) FROM folders f LEFT JOIN (SELECT folder_id, count(*) n,"
		  " sum(size) b, sum((flags & 1) = 0) u FROM messages GROUP BY folder_id) m"
		  " ON m.folder_id = f.id WHERE f.messages != coalesce(m.n, 0)"
		  " OR f.bytes != coalesce(m.b, 0) OR f.unseen != coalesce(m.u, 0)", "0" },
		{ "SELECT count(*) FROM blobs b LEFT JOIN (SELECT blob_id, count(*) n"
		  " FROM messages GROUP BY blob_id) m ON m.blob_id = b.id"
		  " WHERE b.refs != coalesce(m.n, 0)", "0" },
		{ "SELECT count(*) FROM messages m LEFT JOIN blobs b ON b.id = m.blob_id"
		  " WHERE b.id IS NULL", "0" },
	};
	int ret;

	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		ret = check_query(st, checks[i][0], checks[i][1], err_r);
		if (ret <= 0)
			return ret;
	}
	return 1;
}

int store_column_strdup(sqlite3_stmt *stmt, int col, char **out_r)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);
	int len = sqlite3_column_bytes(stmt, col);

	*out_r = NULL;
	if (text == NULL)
		return sqlite3_column_type(stmt, col) == SQLITE_NULL ? 0 : -1;
	*out_r = malloc((size_t)len + 1);
	if (*out_r == NULL)
		return -1;
	memcpy(*out_r, text, (size_t)len + 1);
	return 0;
}
