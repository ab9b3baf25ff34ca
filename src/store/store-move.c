/* Online mailbox moves, store side: a whole-store snapshot through SQLite's
 * backup API, deltas "since modseq N" written as SQLite files by an attached
 * database, their application on the destination in one transaction, and a
 * checksum both sides compare. See store-move.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/delivery-id.h"
#include "core/limits.h"
#include "store/store-move.h"
#include "store/store-private.h"

/* The schema name a delta file is attached under. */
#define MV "tern_move"

/* The tables a delta carries (view_snapshots is a cache and stays home). */
static const char *const delta_tables[] = {
	"meta", "folders", "deleted_folders", "subscriptions", "blobs",
	"messages", "expunged", "delivered", NULL,
};

/* Runs sql with ?1 = a, ?2 = b when it has them, to the end; *changes_r
 * (optional) = rows it changed. */
static int run_sql(struct store *st, const char *sql, int64_t a, int64_t b, uint64_t *changes_r,
		   enum tern_error *err_r)
{
	sqlite3_stmt *stmt;
	int rc, params;

	rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	params = sqlite3_bind_parameter_count(stmt);
	if (params >= 1)
		sqlite3_bind_int64(stmt, 1, a);
	if (params >= 2)
		sqlite3_bind_int64(stmt, 2, b);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		store_fail(st, rc, err_r);
		sqlite3_finalize(stmt);
		return -1;
	}
	if (changes_r != NULL)
		*changes_r = (uint64_t)sqlite3_changes64(st->db);
	sqlite3_finalize(stmt);
	return 0;
}

/* One integer from a query (?1 = a): 1 found (*value_r), 0 no row or NULL. */
static int query_int(sqlite3 *db, struct store *st, const char *sql, int64_t a, int64_t *value_r,
		     enum tern_error *err_r)
{
	sqlite3_stmt *stmt;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return st != NULL ? store_fail(st, rc, err_r) : store_err(store_sql_error(rc), err_r);
	if (sqlite3_bind_parameter_count(stmt) >= 1)
		sqlite3_bind_int64(stmt, 1, a);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
		*value_r = sqlite3_column_int64(stmt, 0);
		ret = 1;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		ret = st != NULL ? store_fail(st, rc, err_r) : store_err(store_sql_error(rc), err_r);
	}
	sqlite3_finalize(stmt);
	return ret;
}

/* No transaction may be open: ATTACH and DETACH need autocommit. */
static int need_idle(struct store *st, enum tern_error *err_r)
{
	if (st->depth != 0 || st->explicit_tx || !sqlite3_get_autocommit(st->db))
		return store_err(TERN_ERR_INVALID, err_r);
	return 0;
}

/* Creates path exclusively (mode 0600), empty: a valid empty database. */
static int create_new_file(const char *path, enum tern_error *err_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return store_err(errno == EEXIST ? TERN_ERR_EXISTS :
				 errno == ENOSPC ? TERN_ERR_NOSPACE :
				 errno == ENOENT ? TERN_ERR_NOTFOUND : TERN_ERR_IO, err_r);
	close(fd);
	return 0;
}

static int attach(struct store *st, const char *path, enum tern_error *err_r)
{
	sqlite3_stmt *stmt;
	int rc;

	rc = sqlite3_prepare_v2(st->db, "ATTACH DATABASE ?1 AS " MV, -1, &stmt, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(stmt, 1, path, -1, SQLITE_STATIC);
		rc = sqlite3_step(stmt);
		sqlite3_finalize(stmt);
	}
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	return 0;
}

static void detach(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_exec(st->db, "DETACH DATABASE " MV, NULL, NULL, NULL);
}

/* ---- snapshot ---- */

/* Drops what must not travel from a fresh copy: view snapshots (a cache)
 * and a fence (store_fence: the copy is to become the home). */
static int snapshot_trim(sqlite3 *db, uint64_t *modseq_r, enum tern_error *err_r)
{
	static const char *const drops[] = {
		"DELETE FROM view_snapshots",
		"DELETE FROM meta WHERE key = 'fenced'",
		NULL,
	};
	sqlite3_stmt *stmt;
	char *names[32], *sql;
	size_t count = 0;
	int64_t modseq = 0;
	int rc, ret = 0;

	/* A single file to ship: rollback journal, not WAL. */
	rc = sqlite3_exec(db, "PRAGMA journal_mode = DELETE; BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_err(store_sql_error(rc), err_r);
	for (size_t i = 0; drops[i] != NULL && rc == SQLITE_OK; i++)
		rc = sqlite3_exec(db, drops[i], NULL, NULL, NULL);
	/* Delivered ids too old to replay, of every node: the destination
	 * prunes only its own (store-message.c note_delivery). */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t now_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
	if (rc == SQLITE_OK && now_us > TERN_DELIVERED_KEEP_US) {
		sql = sqlite3_mprintf("DELETE FROM delivered WHERE (id & %lld) < %lld",
				      (long long)DELIVERY_ID_SEQ_MASK,
				      (long long)(now_us - TERN_DELIVERED_KEEP_US));
		rc = sql != NULL ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
		sqlite3_free(sql);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'trigger'"
					" AND name LIKE 'fence\\_%' ESCAPE '\\'", -1, &stmt, NULL);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && count < 32)
			names[count++] = sqlite3_mprintf("DROP TRIGGER \"%w\"",
							 (const char *)sqlite3_column_text(stmt, 0));
		if (rc == SQLITE_ROW || rc == SQLITE_DONE)
			rc = SQLITE_OK;
		sqlite3_finalize(stmt);
	}
	for (size_t i = 0; i < count; i++) {
		sql = names[i];
		if (rc == SQLITE_OK)
			rc = sql != NULL ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
		sqlite3_free(sql);
	}
	if (rc == SQLITE_OK) {
		ret = query_int(db, NULL, "SELECT value FROM meta WHERE key = 'modseq'", 0, &modseq,
				err_r);
		if (ret == 0)
			ret = store_err(TERN_ERR_CORRUPT, err_r);
	}
	if (rc == SQLITE_OK && ret > 0)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK || ret < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc != SQLITE_OK ? store_err(store_sql_error(rc), err_r) : -1;
	}
	*modseq_r = (uint64_t)modseq;
	return 0;
}

int store_move_snapshot(struct store *st, const char *path, uint64_t *modseq_r,
			enum tern_error *err_r)
{
	sqlite3_backup *bk;
	sqlite3 *db = NULL;
	int rc, ret = -1;

	if (need_idle(st, err_r) < 0 || create_new_file(path, err_r) < 0)
		return -1;
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		store_err(store_sql_error(rc) == TERN_ERR_NONE ? TERN_ERR_IO : store_sql_error(rc),
			  err_r);
		goto out;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	bk = sqlite3_backup_init(db, "main", st->db, "main");
	if (bk == NULL) {
		store_err(store_sql_error(sqlite3_errcode(db)), err_r);
		goto out;
	}
	/* -1: every page in one step, so from one read transaction of the
	 * source; writers on other connections go on meanwhile (WAL). */
	rc = sqlite3_backup_step(bk, -1);
	sqlite3_backup_finish(bk);
	if (rc != SQLITE_DONE) {
		store_err(store_sql_error(rc) == TERN_ERR_NONE ? TERN_ERR_IO : store_sql_error(rc),
			  err_r);
		goto out;
	}
	if (snapshot_trim(db, modseq_r, err_r) < 0)
		goto out;
	ret = 0;
out:
	if (db != NULL && sqlite3_close(db) != SQLITE_OK && ret == 0)
		ret = store_err(TERN_ERR_IO, err_r);
	if (ret < 0)
		unlink(path);
	return ret;
}

int store_move_install(const char *data_dir, const char *user, const char *path,
		       enum tern_error *err_r)
{
	sqlite3 *db = NULL;
	char *dest, *dir;
	int64_t version = 0;
	struct stat sb;
	int rc, ret;

	if (user == NULL || *user == '\0' || strchr(user, '/') != NULL || user[0] == '.')
		return store_err(TERN_ERR_INVALID, err_r);
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		return store_err(rc == SQLITE_CANTOPEN ? TERN_ERR_NOTFOUND : TERN_ERR_INVALID, err_r);
	}
	ret = query_int(db, NULL, "SELECT value FROM meta WHERE key = 'schema_version'"
			" AND EXISTS (SELECT 1 FROM folders WHERE name = 'INBOX')", 0, &version,
			err_r);
	sqlite3_close(db);
	if (ret <= 0 || version <= 0)
		return store_err(TERN_ERR_INVALID, err_r);
	dest = store_path(data_dir, user);
	if (dest == NULL || asprintf(&dir, "%s/mail", data_dir) < 0) {
		free(dest);
		return store_err(TERN_ERR_NOMEM, err_r);
	}
	ret = 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		ret = store_err(errno == ENOENT ? TERN_ERR_NOTFOUND : TERN_ERR_IO, err_r);
	else if (stat(dest, &sb) == 0)
		ret = store_err(TERN_ERR_EXISTS, err_r);
	else if (rename(path, dest) < 0)
		ret = store_err(errno == ENOSPC ? TERN_ERR_NOSPACE : TERN_ERR_IO, err_r);
	free(dir);
	free(dest);
	return ret;
}

/* ---- delta ---- */

/* Creates each delta table in the attached file from the store's own
 * definition (so added columns come along), without indexes or triggers. */
static int delta_schema(struct store *st, enum tern_error *err_r)
{
	static const char prefix[] = "CREATE TABLE ";
	sqlite3_stmt *stmt;
	char *sql;
	int rc;

	for (size_t i = 0; delta_tables[i] != NULL; i++) {
		rc = sqlite3_prepare_v2(st->db, "SELECT sql FROM main.sqlite_master"
					" WHERE type = 'table' AND name = ?1", -1, &stmt, NULL);
		if (rc != SQLITE_OK)
			return store_fail(st, rc, err_r);
		sqlite3_bind_text(stmt, 1, delta_tables[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(stmt);
		if (rc != SQLITE_ROW) {
			sqlite3_finalize(stmt);
			return rc == SQLITE_DONE ? store_err(TERN_ERR_CORRUPT, err_r) :
						   store_fail(st, rc, err_r);
		}
		const char *def = (const char *)sqlite3_column_text(stmt, 0);
		if (def == NULL || strncmp(def, prefix, sizeof(prefix) - 1) != 0) {
			sqlite3_finalize(stmt);
			return store_err(TERN_ERR_CORRUPT, err_r);
		}
		sql = sqlite3_mprintf("CREATE TABLE " MV ".%s", def + sizeof(prefix) - 1);
		sqlite3_finalize(stmt);
		if (sql == NULL)
			return store_err(TERN_ERR_NOMEM, err_r);
		rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
		sqlite3_free(sql);
		if (rc != SQLITE_OK)
			return store_fail(st, rc, err_r);
	}
	return 0;
}

/* The copy, inside the transaction; ?1 = since, ?2 = since_delivered. The
 * first read of main fixes the snapshot every later statement sees. */
static int delta_fill(struct store *st, uint64_t since, uint64_t since_delivered,
		      uint64_t *modseq_r, uint64_t *changes_r, enum tern_error *err_r)
{
	/* counted: 1 = the rows it copies are changes */
	static const struct {
		const char *sql;
		bool counted;
	} steps[] = {
		{ "INSERT INTO " MV ".meta SELECT * FROM main.meta"
		  " WHERE key IN ('schema_version', 'modseq', 'uidvalidity')", false },
		{ "INSERT INTO " MV ".folders SELECT * FROM main.folders", false },
		{ "INSERT INTO " MV ".deleted_folders SELECT * FROM main.deleted_folders"
		  " WHERE modseq > ?1", true },
		{ "INSERT INTO " MV ".subscriptions SELECT * FROM main.subscriptions"
		  " WHERE modseq > ?1", true },
		/* folder by folder through the (folder_id, modseq) index */
		{ "INSERT INTO " MV ".messages SELECT * FROM main.messages"
		  " WHERE folder_id IN (SELECT id FROM main.folders) AND modseq > ?1", true },
		{ "INSERT INTO " MV ".blobs SELECT * FROM main.blobs"
		  " WHERE id IN (SELECT blob_id FROM " MV ".messages)", false },
		{ "INSERT INTO " MV ".expunged SELECT * FROM main.expunged"
		  " WHERE folder_id IN (SELECT id FROM main.folders) AND modseq > ?1", true },
		/* the ids of ?2's node (the source's own) after ?2: ids of
		 * other nodes came with an earlier move and are in the copy */
		{ "INSERT INTO " MV ".delivered SELECT id FROM main.delivered WHERE id > ?2"
		  " AND id < (((?2 >> " DELIVERY_ID_SEQ_BITS_SQL ") + 1) << "
		  DELIVERY_ID_SEQ_BITS_SQL ")", false },
	};
	uint64_t n, changes = 0;
	int64_t value = 0;

	if (delta_schema(st, err_r) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (run_sql(st, steps[i].sql, (int64_t)since, (int64_t)since_delivered, &n,
			    err_r) < 0)
			return -1;
		if (steps[i].counted)
			changes += n;
	}
	if (query_int(st->db, st, "SELECT count(*) FROM " MV ".folders WHERE modseq > ?1",
		      (int64_t)since, &value, err_r) < 0)
		return -1;
	changes += (uint64_t)value;
	value = 0;
	if (query_int(st->db, st, "SELECT value FROM " MV ".meta WHERE key = 'modseq'", 0, &value,
		      err_r) <= 0)
		return store_err(TERN_ERR_CORRUPT, err_r);
	*modseq_r = (uint64_t)value;
	*changes_r = changes;
	return 0;
}

static int checksum_rows(struct store *st, uint64_t since, struct store_move_sum *sum,
			 enum tern_error *err_r);

int store_move_delta(struct store *st, const char *path, uint64_t since, uint64_t since_delivered,
		     uint64_t *modseq_r, uint64_t *changes_r, struct store_move_sum *sum_r,
		     enum tern_error *err_r)
{
	uint64_t modseq = 0, changes = 0;
	int ret = -1;

	if (since > INT64_MAX || since_delivered > INT64_MAX)
		return store_err(TERN_ERR_INVALID, err_r);
	if (need_idle(st, err_r) < 0 || create_new_file(path, err_r) < 0)
		return -1;
	if (attach(st, path, err_r) < 0) {
		unlink(path);
		return -1;
	}
	/* Transient: no journal file, no fsync (a failed round is redone). */
	if (run_sql(st, "PRAGMA " MV ".journal_mode = MEMORY", 0, 0, NULL, err_r) == 0 &&
	    run_sql(st, "PRAGMA " MV ".synchronous = OFF", 0, 0, NULL, err_r) == 0 &&
	    run_sql(st, "BEGIN", 0, 0, NULL, err_r) == 0 &&
	    delta_fill(st, since, since_delivered, &modseq, &changes, err_r) == 0 &&
	    (sum_r == NULL || checksum_rows(st, 0, sum_r, err_r) == 0) &&
	    run_sql(st, "COMMIT", 0, 0, NULL, err_r) == 0)
		ret = 0;
	detach(st);
	if (ret < 0) {
		unlink(path);
		return -1;
	}
	*modseq_r = modseq;
	*changes_r = changes;
	return 0;
}

/* ---- apply ---- */

/* A destination folder that the delta does not list with the same id and
 * UIDVALIDITY is gone at the source (deleted, or its id reused by a new
 * folder after a deletion). */
#define GONE_FOLDERS \
	"SELECT f.id FROM main.folders f WHERE NOT EXISTS (SELECT 1 FROM " MV ".folders d" \
	" WHERE d.id = f.id AND d.uidvalidity = f.uidvalidity)"

static const char *const apply_steps[] = {
	/* 1. folders gone: messages first so their triggers release blobs */
	"DELETE FROM main.messages WHERE folder_id IN (" GONE_FOLDERS ")",
	"DELETE FROM main.expunged WHERE folder_id IN (" GONE_FOLDERS ")",
	"DELETE FROM main.view_snapshots WHERE folder_id IN (" GONE_FOLDERS ")",
	"DELETE FROM main.folders WHERE id IN (" GONE_FOLDERS ")",
	/* 2. renamed folders step aside under a name no folder can have (a
	 * control character), so two folders swapping names never collide */
	"UPDATE main.folders SET name = char(1) || 'tern-move-' || id WHERE id IN"
	" (SELECT d.id FROM " MV ".folders d JOIN main.folders f ON f.id = d.id"
	" WHERE d.name != f.name)",
	/* 3. folders by id; the counters are the triggers' business */
	"INSERT INTO main.folders(id, name, special_use, uidvalidity, uidnext, highestmodseq,"
	" modseq, recent_uid, mailboxid) SELECT id, name, special_use, uidvalidity, uidnext,"
	" highestmodseq, modseq, recent_uid, mailboxid FROM " MV ".folders WHERE true"
	" ON CONFLICT(id) DO UPDATE SET"
	" name = excluded.name, special_use = excluded.special_use,"
	" uidvalidity = excluded.uidvalidity, uidnext = excluded.uidnext,"
	" highestmodseq = excluded.highestmodseq, modseq = excluded.modseq,"
	" recent_uid = excluded.recent_uid, mailboxid = excluded.mailboxid",
	/* 4. expunges before inserts: a message moved away hands its delivery
	 * id (unique) to its new copy, which arrives in the same delta */
	"DELETE FROM main.messages WHERE (folder_id, uid) IN"
	" (SELECT folder_id, uid FROM " MV ".expunged)",
	"INSERT OR REPLACE INTO main.expunged(folder_id, uid, modseq)"
	" SELECT folder_id, uid, modseq FROM " MV ".expunged",
	/* 5. blobs after every delete (a blob the deletes released, or whose id
	 * the source reused, comes back from the delta), with no references
	 * yet: the message triggers count them */
	"INSERT OR IGNORE INTO main.blobs(id, refs, envelope, bodystructure, body, subject, raw)"
	" SELECT id, 0, envelope, bodystructure, body, subject, raw FROM " MV ".blobs",
	/* 6. messages: changed ones, then new ones */
	/* (driven by the delta's rows: UPDATE ... FROM would scan the store) */
	"UPDATE main.messages SET (flags, keywords, modseq) = (SELECT d.flags, d.keywords,"
	" d.modseq FROM " MV ".messages d"
	" WHERE d.folder_id = messages.folder_id AND d.uid = messages.uid)"
	" WHERE (folder_id, uid) IN (SELECT d.folder_id, d.uid FROM " MV ".messages d"
	" JOIN main.messages m ON m.folder_id = d.folder_id AND m.uid = d.uid"
	" WHERE m.flags != d.flags OR m.keywords IS NOT d.keywords OR m.modseq != d.modseq)",
	"INSERT INTO main.messages(folder_id, uid, blob_id, flags, keywords, modseq,"
	" internal_date, internal_tz, size, sent_date, delivery_id, emailid, save_date)"
	" SELECT d.folder_id, d.uid, d.blob_id, d.flags, d.keywords, d.modseq, d.internal_date,"
	" d.internal_tz, d.size, d.sent_date, d.delivery_id, d.emailid, d.save_date"
	" FROM " MV ".messages d"
	" WHERE NOT EXISTS (SELECT 1 FROM main.messages m"
	" WHERE m.folder_id = d.folder_id AND m.uid = d.uid)",
	/* a shipped blob no message took (cannot happen; never leave one) */
	"DELETE FROM main.blobs WHERE refs <= 0 AND id IN (SELECT id FROM " MV ".blobs)",
	/* 7. the rest */
	"INSERT INTO main.subscriptions(name, subscribed, modseq)"
	" SELECT name, subscribed, modseq FROM " MV ".subscriptions WHERE true"
	" ON CONFLICT(name) DO UPDATE SET subscribed = excluded.subscribed,"
	" modseq = excluded.modseq",
	"INSERT OR REPLACE INTO main.deleted_folders(uidvalidity, name, modseq)"
	" SELECT uidvalidity, name, modseq FROM " MV ".deleted_folders",
	"INSERT OR IGNORE INTO main.delivered(id) SELECT id FROM " MV ".delivered",
	"INSERT OR IGNORE INTO main.delivered(id)"
	" SELECT delivery_id FROM " MV ".messages WHERE delivery_id != 0",
	"UPDATE main.meta SET value = (SELECT d.value FROM " MV ".meta d WHERE d.key = meta.key)"
	" WHERE key IN ('modseq', 'uidvalidity')"
	" AND EXISTS (SELECT 1 FROM " MV ".meta d WHERE d.key = meta.key)",
	NULL,
};

static int apply_locked(struct store *st, uint64_t *modseq_r, enum tern_error *err_r)
{
	STORE_TX(tx);
	int64_t ok = 0, modseq = 0;

	if (store_tx_begin(st, &tx, err_r) < 0)
		return -1;
	/* A delta of this schema, with an INBOX (a file that would empty the
	 * store is refused, not applied). */
	if (query_int(st->db, st,
		      "SELECT (SELECT value FROM " MV ".meta WHERE key = 'schema_version') ="
		      " (SELECT value FROM main.meta WHERE key = 'schema_version')"
		      " AND EXISTS (SELECT 1 FROM " MV ".folders WHERE name = 'INBOX')", 0, &ok,
		      err_r) < 0)
		return -1;
	if (ok != 1 || query_int(st->db, st, "SELECT value FROM " MV ".meta WHERE key = 'modseq'",
				 0, &modseq, err_r) != 1)
		return store_err(TERN_ERR_INVALID, err_r);
	for (size_t i = 0; apply_steps[i] != NULL; i++)
		if (run_sql(st, apply_steps[i], 0, 0, NULL, err_r) < 0)
			return -1;
	if (store_tx_commit(&tx, err_r) < 0)
		return -1;
	*modseq_r = (uint64_t)modseq;
	return 0;
}

int store_move_apply(struct store *st, const char *path, uint64_t *modseq_r,
		     enum tern_error *err_r)
{
	uint64_t modseq = 0;
	int64_t tables = 0;
	struct stat sb;
	int ret;

	if (need_idle(st, err_r) < 0)
		return -1;
	/* ATTACH would create a missing file. */
	if (stat(path, &sb) < 0)
		return store_err(errno == ENOENT ? TERN_ERR_NOTFOUND : TERN_ERR_IO, err_r);
	if (attach(st, path, err_r) < 0)
		return -1;
	/* every table a delta has, or it is not one */
	ret = query_int(st->db, st, "SELECT count(*) FROM " MV ".sqlite_master"
			" WHERE type = 'table' AND name IN ('meta', 'folders', 'deleted_folders',"
			" 'subscriptions', 'blobs', 'messages', 'expunged', 'delivered')", 0,
			&tables, err_r);
	if (ret >= 0 && tables != 8)
		ret = store_err(TERN_ERR_INVALID, err_r);
	if (ret >= 0)
		ret = apply_locked(st, &modseq, err_r);
	detach(st);
	if (ret < 0)
		return -1;
	if (modseq_r != NULL)
		*modseq_r = modseq;
	return 0;
}

/* ---- checksum ---- */

static void hash_u64(EVP_MD_CTX *md, uint64_t v)
{
	unsigned char b[8];

	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)(v & 0xff);
	EVP_DigestUpdate(md, b, sizeof(b));
}

/* Length-prefixed, NULL distinct from "": no two rows hash alike. */
static void hash_col(EVP_MD_CTX *md, sqlite3_stmt *stmt, int col)
{
	if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
		hash_u64(md, UINT64_MAX);
		return;
	}
	if (sqlite3_column_type(stmt, col) == SQLITE_INTEGER) {
		hash_u64(md, (uint64_t)sqlite3_column_int64(stmt, col));
		return;
	}
	const unsigned char *text = sqlite3_column_text(stmt, col);
	int len = sqlite3_column_bytes(stmt, col);
	hash_u64(md, (uint64_t)len);
	if (len > 0)
		EVP_DigestUpdate(md, text, (size_t)len);
}

/* Hashes every row of sql (?1 = bound, if it has it), each behind a tag
 * byte; *rows_r = rows. */
static int hash_rows(struct store *st, EVP_MD_CTX *md, const char *sql, uint64_t bound,
		     unsigned char tag, uint64_t *rows_r, enum tern_error *err_r)
{
	sqlite3_stmt *stmt;
	uint64_t rows = 0;
	int rc, cols;

	rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	if (sqlite3_bind_parameter_count(stmt) > 0)
		sqlite3_bind_int64(stmt, 1, (int64_t)bound);
	cols = sqlite3_column_count(stmt);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		EVP_DigestUpdate(md, &tag, 1);
		for (int i = 0; i < cols; i++)
			hash_col(md, stmt, i);
		rows++;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
		return store_fail(st, rc, err_r);
	if (rows_r != NULL)
		*rows_r = rows;
	return 0;
}

/* The sum (store-move.h) inside a transaction the caller holds. */
static int checksum_rows(struct store *st, uint64_t since, struct store_move_sum *sum,
			 enum tern_error *err_r)
{
	/* ?1 = since in every statement */
	static const char *const full[] = {
		"SELECT name, special_use, uidvalidity, uidnext, highestmodseq, mailboxid"
		" FROM main.folders ORDER BY name",
		"SELECT f.name, m.uid, m.modseq, m.flags, m.keywords, m.size,"
		" m.internal_date, m.internal_tz, m.emailid, m.save_date"
		" FROM main.folders f JOIN main.messages m"
		" ON m.folder_id = f.id ORDER BY f.name, m.uid",
	};
	static const char *const changes[] = {
		"SELECT name, special_use, uidvalidity, uidnext, highestmodseq, messages, unseen,"
		" bytes, mailboxid FROM main.folders ORDER BY name",
		/* folder by folder through the (folder_id, modseq) indexes */
		"SELECT f.name, m.uid, m.modseq, m.flags, m.keywords, m.size,"
		" m.internal_date, m.internal_tz, m.emailid, m.save_date"
		" FROM main.folders f JOIN main.messages m"
		" ON m.folder_id = f.id AND m.modseq > ?1 ORDER BY f.name, m.uid",
		"SELECT f.name, e.uid, e.modseq, EXISTS (SELECT 1 FROM main.messages m"
		" WHERE m.folder_id = e.folder_id AND m.uid = e.uid) FROM main.folders f JOIN main.expunged e"
		" ON e.folder_id = f.id AND e.modseq > ?1 ORDER BY f.name, e.uid",
	};
	const char *const *steps = since == 0 ? full : changes;
	size_t nsteps = since == 0 ? 2 : 3;
	uint64_t folders = 0, messages = 0, rows;
	int64_t count = 0;
	unsigned int len = 0;
	int ret = -1;

	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return store_err(TERN_ERR_NOMEM, err_r);
	}
	if (hash_rows(st, md, "SELECT value FROM main.meta WHERE key = 'modseq'", 0, 'S', NULL,
		      err_r) < 0)
		goto out;
	for (size_t i = 0; i < nsteps; i++) {
		if (hash_rows(st, md, steps[i], since, "FME"[i], &rows, err_r) < 0)
			goto out;
		if (i == 0)
			folders = rows;
		else if (i == 1 && since == 0)
			messages = rows;
	}
	if (hash_rows(st, md, "SELECT name, subscribed FROM main.subscriptions ORDER BY name", 0, 'U',
		      NULL, err_r) < 0)
		goto out;
	if (since > 0) {
		if (query_int(st->db, st, "SELECT coalesce(sum(messages), 0) FROM main.folders", 0,
			      &count, err_r) < 0)
			goto out;
		messages = (uint64_t)count;
	}
	if (EVP_DigestFinal_ex(md, sum->digest, &len) != 1 || len != 32) {
		store_err(TERN_ERR_IO, err_r);
		goto out;
	}
	sum->folders = folders;
	sum->messages = messages;
	ret = 0;
out:
	EVP_MD_CTX_free(md);
	return ret;
}

int store_move_checksum(struct store *st, uint64_t since, struct store_move_sum *sum,
			enum tern_error *err_r)
{
	STORE_TX(tx);

	if (since > INT64_MAX)
		return store_err(TERN_ERR_INVALID, err_r);
	if (store_tx_begin_read(st, &tx, err_r) < 0 || checksum_rows(st, since, sum, err_r) < 0)
		return -1;
	return store_tx_commit(&tx, err_r);
}

int store_move_max_delivered(struct store *st, uint32_t node, uint64_t *id_r,
			     enum tern_error *err_r)
{
	int64_t id = 0;
	uint64_t base = delivery_id_make(node, 0);
	char *sql = sqlite3_mprintf("SELECT max(id) FROM delivered WHERE id >= %lld AND id <= %lld",
				    (long long)base, (long long)(base | DELIVERY_ID_SEQ_MASK));

	if (sql == NULL)
		return store_err(TERN_ERR_NOMEM, err_r);
	int r = query_int(st->db, st, sql, 0, &id, err_r);
	sqlite3_free(sql);
	if (r < 0)
		return -1;
	*id_r = id > 0 ? (uint64_t)id : base;
	return 0;
}
