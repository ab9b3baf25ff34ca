/* Stale cached parses (schema v6 in store.c): a blob that blobs_stale lists
 * is reparsed from its raw bytes when store_msg_cache reads it, and the new
 * parse is written back, so each old blob is parsed once more in its life.
 *
 * Writing back is best effort and never waits for another writer: a read
 * path must not stall behind a delivery for a cache. Outside transactions
 * the write happens at once; inside a read transaction (FETCH and SORT
 * read in batches) it is queued and written when the batch ends; inside
 * store_begin's write transaction it joins it. A busy store leaves the
 * blob marked. */
#include <stdlib.h>
#include <string.h>

#include "store/mime.h"
#include "store/store-private.h"

struct store_cache_fix {
	int64_t blob_id;
	struct store_msg_cache cache;
};

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

/* Writes fixes[0..count) in one transaction of its own, without waiting
 * for the write lock. */
static void write_now(struct store *st, const struct store_cache_fix *fixes, size_t count)
{
	enum tern_error err = TERN_ERR_NONE;
	STORE_TX(tx);

	sqlite3_busy_timeout(st->db, 0);
	if (store_tx_begin(st, &tx, &err) == 0) {
		size_t i = 0;
		while (i < count && write_fix(st, fixes[i].blob_id, &fixes[i].cache, &err) == 0)
			i++;
		if (i == count)
			(void)store_tx_commit(&tx, &err);
	}
	sqlite3_busy_timeout(st->db, (int)st->busy_ms);
}

void store_cache_fixes_clear(struct store *st)
{
	for (size_t i = 0; i < st->fix_count; i++)
		store_msg_cache_clear(&st->fixes[i].cache);
	free(st->fixes);
	st->fixes = NULL;
	st->fix_count = 0;
}

void store_cache_fixes_write(struct store *st)
{
	if (st->fix_count == 0 || st->depth != 0)
		return;
	write_now(st, st->fixes, st->fix_count);
	store_cache_fixes_clear(st);
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d = s != NULL ? strdup(s) : NULL;
	if (s != NULL && d == NULL)
		*oom = true;
	return d;
}

/* Keeps a copy of c for the end of the read transaction (none when the
 * queue is full or memory is short: the blob stays marked). */
static void queue_fix(struct store *st, int64_t blob_id, const struct store_msg_cache *c)
{
	if (st->fixes == NULL) {
		st->fixes = calloc(TERN_STORE_CACHE_FIXES_MAX, sizeof(*st->fixes));
		if (st->fixes == NULL)
			return;
	}
	if (st->fix_count >= TERN_STORE_CACHE_FIXES_MAX)
		return;
	for (size_t i = 0; i < st->fix_count; i++)
		if (st->fixes[i].blob_id == blob_id)
			return;     /* a copy of the same message, read again */
	bool oom = false;
	struct store_cache_fix f = {
		.blob_id = blob_id,
		.cache = {
			.envelope = dup_or_null(c->envelope, &oom),
			.bodystructure = dup_or_null(c->bodystructure, &oom),
			.body = dup_or_null(c->body, &oom),
			.subject = dup_or_null(c->subject, &oom),
		},
	};
	if (oom) {
		store_msg_cache_clear(&f.cache);
		return;
	}
	st->fixes[st->fix_count++] = f;
}

int store_cache_refresh(struct store *st, int64_t blob_id, struct store_msg_cache *c_r,
			enum tern_error *err_r)
{
	struct store_msg_cache fresh = { 0 };

	if (read_raw(st, blob_id, &fresh, err_r) < 0) {
		store_msg_cache_clear(&fresh);
		return -1;
	}
	if (st->depth == 0) {
		struct store_cache_fix f = { .blob_id = blob_id, .cache = fresh };
		write_now(st, &f, 1);
	} else if (!st->explicit_tx || st->read_tx) {
		queue_fix(st, blob_id, &fresh);
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
