/* Stale cached parses (schema v6 in store.c): a blob that blobs_stale lists
 * is reparsed from its raw bytes when store_msg_cache reads it, and the new
 * parse is written back, so each old blob is parsed once more in its life.
 *
 * A reader never writes (an IMAP session reads on its loop thread, which
 * must not wait on a lock or an fsync): it gets the new parse, the blob
 * stays marked, and store_stale_seen() tells the reader's owner to have the
 * user's worker run store_fix_stale(). Inside store_begin's write
 * transaction (the worker's own) the fix goes with it. */
#include <stdlib.h>
#include <string.h>

#include "store/mime.h"
#include "store/store-private.h"

static int read_raw(struct store *st, int64_t blob_id, struct store_msg_cache *c_r,
		    enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_BLOB_RAW, err_r);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, blob_id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return store_err(TERN_ERR_CORRUPT, err_r);  /* the row joined it */
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	const void *raw = sqlite3_column_blob(stmt, 0);
	size_t size = (size_t)sqlite3_column_bytes(stmt, 0);
	if (mime_summarize(raw != NULL ? raw : "", size, c_r) < 0)
		return store_err(TERN_ERR_NOMEM, err_r);
	return 0;
}

static void bind_text_or_null(sqlite3_stmt *stmt, int col, const char *text)
{
	if (text != NULL)
		sqlite3_bind_text(stmt, col, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, col);
}

/* Inside the caller's write scope. */
static int write_fix(struct store *st, int64_t blob_id, const struct store_msg_cache *c,
		     enum tern_error *err_r)
{
	{
		STORE_STMT(stmt, st, STMT_BLOB_CACHE_SET, err_r);
		if (stmt == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, blob_id);
		bind_text_or_null(stmt, 2, c->envelope);
		bind_text_or_null(stmt, 3, c->bodystructure);
		bind_text_or_null(stmt, 4, c->body);
		bind_text_or_null(stmt, 5, c->subject);
		if (store_exec_step(st, stmt, err_r) < 0)
			return -1;
	}
	return store_cache_mark_fresh(st, blob_id, err_r);
}

int store_cache_mark_fresh(struct store *st, int64_t blob_id, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_BLOB_FRESH, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, blob_id);
	return store_exec_step(st, stmt, err_r);
}

int store_fix_stale(struct store *st, unsigned max, unsigned *fixed_r, enum tern_error *err_r)
{
	int64_t ids[64];
	unsigned fixed = 0;

	*fixed_r = 0;
	while (fixed < max) {
		size_t n = 0;
		{
			sqlite3_stmt *q = NULL;
			int rc = sqlite3_prepare_v2(st->db, "SELECT blob_id FROM blobs_stale LIMIT ?1",
						    -1, &q, NULL);
			if (rc != SQLITE_OK)
				return store_fail(st, rc, err_r);
			unsigned want = max - fixed < 64 ? max - fixed : 64;
			sqlite3_bind_int(q, 1, (int)want);
			while ((rc = sqlite3_step(q)) == SQLITE_ROW)
				ids[n++] = sqlite3_column_int64(q, 0);
			sqlite3_finalize(q);
			if (rc != SQLITE_DONE)
				return store_fail(st, rc, err_r);
		}
		if (n == 0)
			break;
		STORE_TX(tx);
		if (store_tx_begin(st, &tx, err_r) < 0)
			return -1;
		for (size_t i = 0; i < n; i++) {
			struct store_msg_cache fresh = { 0 };
			int r = read_raw(st, ids[i], &fresh, err_r);
			if (r == 0)
				r = write_fix(st, ids[i], &fresh, err_r);
			else if (*err_r == TERN_ERR_CORRUPT)   /* the blob went meanwhile */
				r = store_cache_mark_fresh(st, ids[i], err_r);
			store_msg_cache_clear(&fresh);
			if (r < 0)
				return -1;
		}
		if (store_tx_commit(&tx, err_r) < 0)
			return -1;
		fixed += (unsigned)n;
		*fixed_r = fixed;
	}
	return 0;
}

bool store_stale_seen(struct store *st)
{
	bool seen = st->stale_seen;
	st->stale_seen = false;
	return seen;
}

int store_cache_refresh(struct store *st, int64_t blob_id, struct store_msg_cache *c_r,
			enum tern_error *err_r)
{
	struct store_msg_cache fresh = { 0 };

	if (read_raw(st, blob_id, &fresh, err_r) < 0) {
		store_msg_cache_clear(&fresh);
		return -1;
	}
	if (st->depth == 0 || !st->explicit_tx || st->read_tx) {
		/* a reader (an IMAP session on its loop thread) never writes:
		 * its owner has the user's worker fix the marked blobs */
		st->stale_seen = true;
	} else {
		/* a write transaction holds the lock: the fix goes with it, in a
		 * savepoint of its own so that a failure leaves the rest alone */
		enum tern_error ignored = TERN_ERR_NONE;
		STORE_TX(tx);
		if (store_tx_begin(st, &tx, &ignored) == 0 &&
		    write_fix(st, blob_id, &fresh, &ignored) == 0)
			(void)store_tx_commit(&tx, &ignored);
	}
	fresh.sent_date = c_r->sent_date;   /* the message row's, as before */
	store_msg_cache_clear(c_r);
	*c_r = fresh;
	return 0;
}
