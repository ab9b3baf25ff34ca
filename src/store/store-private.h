/* Internals shared by the store's source files: the handle, the cache of
 * prepared statements, scope-guarded transactions and statement resets, and
 * the helpers every operation needs (error mapping, folder rows, modseqs). */
#ifndef TERN_STORE_STORE_PRIVATE_H
#define TERN_STORE_STORE_PRIVATE_H

#include <sqlite3.h>

#include "core/limits.h"
#include "store/store.h"

/* How long a handle waits for another's write lock before giving up. */
#define STORE_BUSY_TIMEOUT_MS TERN_STORE_BUSY_TIMEOUT_MS

/* Every statement the store runs more than once; prepared lazily, kept for
 * the life of the handle (see store_sql[] in store.c). */
enum store_stmt_id {
	STMT_BEGIN,
	STMT_BEGIN_READ,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SAVEPOINT,
	STMT_RELEASE,
	STMT_ROLLBACK_TO,
	STMT_META_GET,
	STMT_META_SET,
	STMT_MODSEQ_BUMP,
	STMT_FOLDER_ROW,
	STMT_FOLDER_LIST,
	STMT_FOLDER_GET,
	STMT_FOLDER_INSERT,
	STMT_FOLDER_SET_UIDNEXT,
	STMT_FOLDER_SET_HMS,
	STMT_FOLDER_CHILDREN,
	STMT_FOLDER_RENAME,
	STMT_FOLDER_DEL_EXPUNGED,
	STMT_FOLDER_DEL_MSGS,
	STMT_FOLDER_DEL,
	STMT_FOLDER_LOG_DELETE,
	STMT_SUB_SET,
	STMT_SUB_GET,
	STMT_SUB_LIST,
	STMT_BLOB_INSERT,
	STMT_MSG_INSERT,
	STMT_MSG_BY_DELIVERY,
	STMT_DELIVERED_GET,
	STMT_DELIVERED_ADD,
	STMT_DELIVERED_PRUNE,
	STMT_MSG_LIST,
	STMT_MSG_LIST_FROM,
	STMT_MSG_GET,
	STMT_MSG_ROW,
	STMT_MSG_IDS,
	STMT_MSG_RAW,
	STMT_MSG_BLOB_ID,
	STMT_MSG_CACHE,
	STMT_BLOB_RAW,
	STMT_BLOB_CACHE_SET,
	STMT_BLOB_FRESH,
	STMT_MSG_SET_FLAGS,
	STMT_MSG_SET_DELIVERY,
	STMT_MSG_DELETE,
	STMT_MSG_DELETED_UIDS,
	STMT_MSG_ALL_UIDS,
	STMT_TOMBSTONE_INSERT,
	STMT_CHANGES,
	STMT_CHANGES_SCAN,
	STMT_VANISHED,
	STMT_SNAPSHOT_GET,
	STMT_SNAPSHOT_AGE,
	STMT_SNAPSHOT_PUT,
	STMT_SNAPSHOT_DEL,
	STMT_USAGE,
	STMT_COUNT
};

struct store {
	sqlite3 *db;
	char *path;
	/* Open transaction levels: an explicit store_begin counts one, each
	 * operation inside it a savepoint on top. */
	int depth;
	bool explicit_tx;
	bool read_tx;       /* the explicit transaction is store_read_begin's */
	unsigned busy_ms;   /* the busy timeout set (store_set_busy_timeout) */
	bool durable;       /* synchronous=FULL (store_set_durable) */
	/* Set when SQLite rolled back the explicit transaction by itself (disk
	 * full, I/O error): store_commit must then fail, not commit half. */
	enum tern_error aborted;
	/* Bytes the user may hold (store_set_quota); 0 = no limit. */
	uint64_t quota_bytes;
	sqlite3_stmt *stmts[STMT_COUNT];
	/* A read reparsed a stale cached parse (store-stale.c) and wrote
	 * nothing: store_stale_seen() reports it once. */
	bool stale_seen;
};

/* ---- stale caches (store-stale.c; schema v6 says why) ---- */

/* c_r holds the row's cached columns of blob_id, which blobs_stale lists:
 * replaces them by mime_summarize's parse of the raw bytes (sent_date
 * kept); writes it back only inside a write transaction, else the blob
 * stays marked and stale_seen is set. 0, or -1 (*err_r) when the raw bytes
 * cannot be read or memory runs out; c_r is then unchanged. */
int store_cache_refresh(struct store *st, int64_t blob_id, struct store_msg_cache *c_r,
			enum tern_error *err_r);
/* An append made blob_id: a mark left by a deleted blob of that id goes. */
int store_cache_mark_fresh(struct store *st, int64_t blob_id, enum tern_error *err_r);

/* TERN_ERR_NOQUOTA when the handle has a quota and the user's messages,
 * plus `adding` bytes, would exceed it. Inside the write transaction, so two
 * writers cannot both fit into the last free bytes. */
int store_quota_check(struct store *st, uint64_t adding, enum tern_error *err_r);

/* The write state of a folder that operations update. */
struct store_frow {
	int64_t id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
};

/* One operation's modseq: taken from the per-user counter on first use, so an
 * operation that changes nothing bumps nothing, and all its changes share one
 * value (RFC 7162 allows several messages to share a mod-sequence). */
struct store_op {
	struct store *st;
	uint64_t modseq;
};

/* Maps a SQLite result code to a tern error. */
enum tern_error store_sql_error(int rc);
/* Sets *err_r from rc, notes an automatic rollback, returns -1. */
int store_fail(struct store *st, int rc, enum tern_error *err_r);
/* Sets *err_r = err, returns -1. */
int store_err(enum tern_error err, enum tern_error *err_r);

/* The cached statement id, reset and unbound; NULL (*err_r set) if it
 * cannot be prepared. Use through STORE_STMT so it is reset on scope exit. */
sqlite3_stmt *store_stmt(struct store *st, enum store_stmt_id id, enum tern_error *err_r);
void store_stmt_resetp(sqlite3_stmt **stmt);
#define STORE_STMT(var, st, id, err_r) \
	__attribute__((cleanup(store_stmt_resetp))) sqlite3_stmt *var = \
		store_stmt((st), (id), (err_r))

/* A write (or read) scope: BEGIN IMMEDIATE outside a transaction, SAVEPOINT
 * inside one. Leaving the scope without store_tx_commit rolls it back, so no
 * early return can leave partial state. */
struct store_tx {
	struct store *st;
	bool active;
	bool outer;
	bool savepoint;
};
void store_tx_cleanup(struct store_tx *tx);
#define STORE_TX(var) \
	__attribute__((cleanup(store_tx_cleanup))) struct store_tx var = { 0 }
int store_tx_begin(struct store *st, struct store_tx *tx, enum tern_error *err_r);
/* A consistent snapshot for multi-statement reads (BEGIN DEFERRED). */
int store_tx_begin_read(struct store *st, struct store_tx *tx, enum tern_error *err_r);
int store_tx_commit(struct store_tx *tx, enum tern_error *err_r);

/* Steps a statement that returns no rows (SQLITE_DONE expected). */
int store_exec_step(struct store *st, sqlite3_stmt *stmt, enum tern_error *err_r);

/* The operation's modseq, bumping the per-user counter the first time. */
int store_op_modseq(struct store_op *op, uint64_t *modseq_r, enum tern_error *err_r);
/* A fresh UIDVALIDITY: max(now, last + 1), recorded in meta. */
int store_new_uidvalidity(struct store *st, uint32_t *uidvalidity_r, enum tern_error *err_r);

/* Checks a folder name and writes its canonical form ("inbox" -> "INBOX",
 * "inbox/x" -> "INBOX/x") to buf (TERN_FOLDER_NAME_MAX + 1 bytes). 0 or -1. */
int store_folder_name_canon(const char *name, char *buf);
/* The folder row by canonical name: 1 found, 0 not, -1 error. */
int store_frow_get(struct store *st, const char *canon, struct store_frow *f_r,
		   enum tern_error *err_r);
/* Canonicalises name and fetches its row; NOTFOUND if invalid or missing. */
int store_frow_need(struct store *st, const char *name, struct store_frow *f_r,
		    enum tern_error *err_r);
/* Inserts a folder row with a fresh UIDVALIDITY (caller has checked absence). */
int store_folder_insert(struct store *st, struct store_op *op, const char *canon,
			const char *special_use, struct store_frow *f_r, enum tern_error *err_r);
/* Records a folder's new highestmodseq (and uidnext when non-zero). */
int store_frow_update(struct store *st, struct store_frow *f, enum tern_error *err_r);

/* Copies (move = and expunges) uids from src to dst inside an open tx.
 * src_out/dst_out (count entries, may be NULL) get the pairs actually copied. */
int store_copy_locked(struct store *st, struct store_op *op, struct store_frow *src,
		      struct store_frow *dst, const uint32_t *uids, size_t count, bool move,
		      uint32_t *src_out, uint32_t *dst_out, size_t *copied_r,
		      enum tern_error *err_r);
/* Copies one message (row and a reference to its blob) from src to dst with
 * UID dst->uidnext (then incremented) and the operation's modseq; move =
 * expunge the source too. 1 copied, 0 no such UID, -1 error. */
int store_copy_one_locked(struct store *st, struct store_op *op, const struct store_frow *src,
			  uint32_t uid, struct store_frow *dst, bool move, enum tern_error *err_r);
/* Deletes a message, leaving its tombstone at modseq: 1 done, 0 no such UID. */
int store_expunge_one_locked(struct store *st, int64_t folder_id, uint32_t uid,
			     uint64_t modseq, enum tern_error *err_r);
/* Steps stmt to the end, collecting store_msg_from_row() rows. */
int store_msgs_collect(struct store *st, sqlite3_stmt *stmt, struct store_msg **msgs_r,
		       size_t *count_r, enum tern_error *err_r);
/* Every UID of a folder, ascending (heap array; NULL when empty). */
int store_folder_uids(struct store *st, int64_t folder_id, bool deleted_only,
		      uint32_t **uids_r, size_t *count_r, enum tern_error *err_r);
/* Reads the metadata columns (uid, flags, keywords, modseq, internal_date,
 * internal_tz, size) of the current row into m_r. -1 only on out of memory. */
int store_msg_from_row(sqlite3_stmt *stmt, struct store_msg *m_r);

/* Keywords as stored: space-separated, no duplicates (case-insensitive, the
 * first spelling kept). NULL when there are none. *err_r on invalid/no memory. */
int store_keywords_normalize(const char *in, char **out_r, enum tern_error *err_r);

/* sqlite3 text column as a heap string (NULL for SQL NULL). */
int store_column_strdup(sqlite3_stmt *stmt, int col, char **out_r);

/* The view snapshot encoding (store-snapshot.c), pure, for the fuzz target.
 * encode: malloc'd bytes (UIDs must ascend), NULL on allocation failure.
 * decode: 0 with the messages; -1 when the bytes are not a valid snapshot,
 * or on allocation failure (*nomem_r set). */
unsigned char *store_snapshot_encode(const struct store_snapshot_msg *msgs, size_t count,
				     size_t *len_r);
int store_snapshot_decode(const void *data, size_t len, struct store_msg **msgs_r,
			  size_t *count_r, bool *nomem_r);

#endif
