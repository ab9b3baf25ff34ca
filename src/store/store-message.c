/* Messages: append (idempotent by delivery id), metadata listings that never
 * touch the bodies, the raw bytes (whole or a range) and the cached parse. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/delivery-id.h"
#include "core/limits.h"
#include "store/mime.h"
#include "store/store-private.h"

#define STORE_FLAGS_ALL (STORE_FLAG_SEEN | STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED | \
			 STORE_FLAG_DELETED | STORE_FLAG_DRAFT)

int store_msg_from_row(sqlite3_stmt *stmt, struct store_msg *m_r)
{
	m_r->uid = (uint32_t)sqlite3_column_int64(stmt, 0);
	m_r->flags = (uint32_t)sqlite3_column_int64(stmt, 1);
	if (store_column_strdup(stmt, 2, &m_r->keywords) < 0)
		return -1;
	m_r->modseq = (uint64_t)sqlite3_column_int64(stmt, 3);
	m_r->internal_date = sqlite3_column_int64(stmt, 4);
	m_r->internal_tz = sqlite3_column_int(stmt, 5);
	m_r->size = (uint64_t)sqlite3_column_int64(stmt, 6);
	m_r->save_date = sqlite3_column_int64(stmt, 7);
	const unsigned char *emailid = sqlite3_column_text(stmt, 8);
	snprintf(m_r->emailid, sizeof(m_r->emailid), "%s",
		 emailid != NULL ? (const char *)emailid : "");
	return 0;
}

/* 1 = the delivery was applied before: *uid_r, *uidvalidity_r are its
 * message, or 0 if the user has expunged it since; 0 = new. */
static int find_delivery(struct store *st, uint64_t delivery_id, uint32_t *uid_r,
			 uint32_t *uidvalidity_r, enum tern_error *err_r)
{
	int rc;
	{
		STORE_STMT(seen, st, STMT_DELIVERED_GET, err_r);
		if (seen == NULL)
			return -1;
		sqlite3_bind_int64(seen, 1, (int64_t)delivery_id);
		rc = sqlite3_step(seen);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return store_fail(st, rc, err_r);
	}
	*uid_r = 0;
	*uidvalidity_r = 0;
	STORE_STMT(stmt, st, STMT_MSG_BY_DELIVERY, err_r);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, (int64_t)delivery_id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 1;   /* applied, then expunged */
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	*uid_r = (uint32_t)sqlite3_column_int64(stmt, 0);
	*uidvalidity_r = (uint32_t)sqlite3_column_int64(stmt, 1);
	return 1;
}

/* Remembers an applied delivery id and forgets those too old to replay:
 * now and then (1 id in 256), the ids of delivery_id's own node and the
 * bare-clock ids of builds before node numbers (core/delivery-id.h), both
 * ranges of the primary key. Other nodes' ids, which a move brought, were
 * pruned by age when the move's snapshot was taken (store-move.c) and are
 * at most TERN_DELIVERED_KEEP_US of that node's deliveries. */
static int note_delivery(struct store *st, uint64_t delivery_id, enum tern_error *err_r)
{
	{
		STORE_STMT(add, st, STMT_DELIVERED_ADD, err_r);
		if (add == NULL)
			return -1;
		sqlite3_bind_int64(add, 1, (int64_t)delivery_id);
		int rc = sqlite3_step(add);
		if (rc != SQLITE_DONE)
			return store_fail(st, rc, err_r);
	}
	uint64_t seq = delivery_id_seq(delivery_id);
	if (delivery_id % 256 != 0 || seq <= TERN_DELIVERED_KEEP_US)
		return 0;
	uint64_t own = delivery_id_make(delivery_id_node(delivery_id), 0);
	STORE_STMT(prune, st, STMT_DELIVERED_PRUNE, err_r);
	if (prune == NULL)
		return -1;
	sqlite3_bind_int64(prune, 1, (int64_t)(seq - TERN_DELIVERED_KEEP_US));
	sqlite3_bind_int64(prune, 2, (int64_t)own);
	sqlite3_bind_int64(prune, 3, (int64_t)(own + seq - TERN_DELIVERED_KEEP_US));
	int rc = sqlite3_step(prune);
	return rc == SQLITE_DONE ? 0 : store_fail(st, rc, err_r);
}

static void bind_text_or_null(sqlite3_stmt *stmt, int col, const char *text)
{
	if (text != NULL)
		sqlite3_bind_text(stmt, col, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, col);
}

static int insert_blob(struct store *st, const struct store_new_msg *m,
		       const struct store_msg_cache *c, int64_t *blob_id_r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_BLOB_INSERT, err_r);

	if (stmt == NULL)
		return -1;
	bind_text_or_null(stmt, 1, c->envelope);
	bind_text_or_null(stmt, 2, c->bodystructure);
	bind_text_or_null(stmt, 3, c->body);
	bind_text_or_null(stmt, 4, c->subject);
	sqlite3_bind_blob64(stmt, 5, m->size > 0 ? m->data : "", m->size, SQLITE_STATIC);
	if (store_exec_step(st, stmt, err_r) < 0)
		return -1;
	*blob_id_r = sqlite3_last_insert_rowid(st->db);
	/* parsed just now: a stale mark of a deleted blob of this id goes */
	return store_cache_mark_fresh(st, *blob_id_r, err_r);
}

struct msg_row {
	int64_t blob_id;
	uint32_t flags;
	const char *keywords;
	int64_t internal_date;
	int32_t internal_tz;
	uint64_t size;
	int64_t sent_date;
	uint64_t delivery_id;
	const char *emailid;   /* NULL: a new message, the insert makes one */
	int64_t save_date;
};

/* Inserts one message row; shared by append and copy. */
static int insert_msg(struct store *st, int64_t folder_id, uint32_t uid, uint64_t modseq,
		      const struct msg_row *r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_INSERT, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, folder_id);
	sqlite3_bind_int64(stmt, 2, uid);
	sqlite3_bind_int64(stmt, 3, r->blob_id);
	sqlite3_bind_int64(stmt, 4, r->flags);
	bind_text_or_null(stmt, 5, r->keywords);
	sqlite3_bind_int64(stmt, 6, (int64_t)modseq);
	sqlite3_bind_int64(stmt, 7, r->internal_date);
	sqlite3_bind_int(stmt, 8, r->internal_tz);
	sqlite3_bind_int64(stmt, 9, (int64_t)r->size);
	sqlite3_bind_int64(stmt, 10, r->sent_date);
	sqlite3_bind_int64(stmt, 11, (int64_t)r->delivery_id);
	bind_text_or_null(stmt, 12, r->emailid);
	sqlite3_bind_int64(stmt, 13, r->save_date);
	return store_exec_step(st, stmt, err_r);
}

static int append_locked(struct store *st, const struct store_new_msg *m,
			 const struct store_msg_cache *c, struct msg_row *r, uint32_t *uid_r,
			 uint32_t *uidvalidity_r, enum tern_error *err_r)
{
	struct store_op op = { .st = st };
	struct store_frow f;
	uint64_t modseq;

	if (store_frow_need(st, m->folder, &f, err_r) < 0)
		return -1;
	if (f.uidnext == 0 || f.uidnext == UINT32_MAX)
		return store_err(TERN_ERR_INVALID, err_r); /* UID space used up */
	if (store_op_modseq(&op, &modseq, err_r) < 0 ||
	    insert_blob(st, m, c, &r->blob_id, err_r) < 0 ||
	    insert_msg(st, f.id, f.uidnext, modseq, r, err_r) < 0)
		return -1;
	*uid_r = f.uidnext++;
	*uidvalidity_r = f.uidvalidity;
	f.highestmodseq = modseq;
	return store_frow_update(st, &f, err_r);
}

static int32_t local_tz_minutes(time_t now)
{
	struct tm tm;

	if (localtime_r(&now, &tm) == NULL)
		return 0;
	return (int32_t)(tm.tm_gmtoff / 60);
}

int store_append(struct store *st, const struct store_new_msg *m, uint32_t *uid_r,
		 uint32_t *uidvalidity_r, enum tern_error *err_r)
{
	struct store_msg_cache computed = { 0 };
	const struct store_msg_cache *c = m->cache;
	struct msg_row r = { 0 };
	char *keywords = NULL;
	uint32_t uid = 0, uidvalidity = 0;
	int ret = -1;
	STORE_TX(tx);

	if (m->folder == NULL || (m->data == NULL && m->size > 0) ||
	    (m->flags & ~(uint32_t)STORE_FLAGS_ALL) != 0)
		return store_err(TERN_ERR_INVALID, err_r);
	if (m->size > TERN_MESSAGE_SIZE_CEILING)
		return store_err(TERN_ERR_TOOBIG, err_r);
	if (store_keywords_normalize(m->keywords, &keywords, err_r) < 0)
		return -1;
	/* Parse before taking the write lock: other writers wait meanwhile. */
	if (c == NULL) {
		if (mime_summarize(m->data, m->size, &computed) < 0) {
			free(keywords);
			return store_err(TERN_ERR_NOMEM, err_r);
		}
		c = &computed;
	}
	r.flags = m->flags;
	r.keywords = keywords;
	r.internal_date = m->internal_date;
	r.internal_tz = m->internal_tz;
	if (r.internal_date == 0) {
		r.internal_date = (int64_t)time(NULL);
		r.internal_tz = local_tz_minutes((time_t)r.internal_date);
	}
	r.size = m->size;
	r.sent_date = c->sent_date;
	r.delivery_id = m->delivery_id;
	r.save_date = (int64_t)time(NULL);

	if (store_tx_begin(st, &tx, err_r) == 0) {
		/* A replayed journal entry: the first append stays the only one. */
		ret = m->delivery_id != 0 ?
			      find_delivery(st, m->delivery_id, &uid, &uidvalidity, err_r) : 0;
		if (ret == 0)
			ret = store_quota_check(st, m->size, err_r);
		if (ret == 0)
			ret = append_locked(st, m, c, &r, &uid, &uidvalidity, err_r);
		if (ret == 0 && m->delivery_id != 0)
			ret = note_delivery(st, m->delivery_id, err_r);
		if (ret >= 0)
			ret = store_tx_commit(&tx, err_r);
	}
	store_msg_cache_clear(&computed);
	free(keywords);
	if (ret < 0)
		return -1;
	if (uid_r != NULL)
		*uid_r = uid;
	if (uidvalidity_r != NULL)
		*uidvalidity_r = uidvalidity;
	return 0;
}

static int msg_row_get(struct store *st, int64_t folder_id, uint32_t uid, struct msg_row *r,
		       char **keywords_r, char **emailid_r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_ROW, err_r);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, folder_id);
	sqlite3_bind_int64(stmt, 2, uid);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	r->blob_id = sqlite3_column_int64(stmt, 0);
	r->flags = (uint32_t)sqlite3_column_int64(stmt, 1);
	if (store_column_strdup(stmt, 2, keywords_r) < 0)
		return store_err(TERN_ERR_NOMEM, err_r);
	r->keywords = *keywords_r;
	r->internal_date = sqlite3_column_int64(stmt, 3);
	r->internal_tz = sqlite3_column_int(stmt, 4);
	r->size = (uint64_t)sqlite3_column_int64(stmt, 5);
	r->sent_date = sqlite3_column_int64(stmt, 6);
	r->delivery_id = (uint64_t)sqlite3_column_int64(stmt, 7);
	if (store_column_strdup(stmt, 8, emailid_r) < 0)
		return store_err(TERN_ERR_NOMEM, err_r);
	r->emailid = *emailid_r;
	return 1;
}

/* 1 deleted (tombstone left at modseq), 0 no such message, -1 error. */
int store_expunge_one_locked(struct store *st, int64_t folder_id, uint32_t uid,
			     uint64_t modseq, enum tern_error *err_r)
{
	{
		STORE_STMT(del, st, STMT_MSG_DELETE, err_r);
		if (del == NULL)
			return -1;
		sqlite3_bind_int64(del, 1, folder_id);
		sqlite3_bind_int64(del, 2, uid);
		if (store_exec_step(st, del, err_r) < 0)
			return -1;
		/* Counts the statement's own rows, not its triggers'. */
		if (sqlite3_changes(st->db) == 0)
			return 0;
	}
	STORE_STMT(tomb, st, STMT_TOMBSTONE_INSERT, err_r);
	if (tomb == NULL)
		return -1;
	sqlite3_bind_int64(tomb, 1, folder_id);
	sqlite3_bind_int64(tomb, 2, uid);
	sqlite3_bind_int64(tomb, 3, (int64_t)modseq);
	return store_exec_step(st, tomb, err_r) < 0 ? -1 : 1;
}

static int set_delivery(struct store *st, int64_t folder_id, uint32_t uid, uint64_t delivery_id,
			enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_SET_DELIVERY, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, folder_id);
	sqlite3_bind_int64(stmt, 2, uid);
	sqlite3_bind_int64(stmt, 3, (int64_t)delivery_id);
	return store_exec_step(st, stmt, err_r);
}

int store_copy_one_locked(struct store *st, struct store_op *op, const struct store_frow *src,
			  uint32_t uid, struct store_frow *dst, bool move, enum tern_error *err_r)
{
	struct msg_row r;
	char *keywords = NULL, *emailid = NULL;
	uint64_t modseq;
	int ret;

	ret = msg_row_get(st, src->id, uid, &r, &keywords, &emailid, err_r);
	if (ret <= 0) {
		free(keywords);
		return ret;
	}
	/* The copy keeps the EMAILID (RFC 8474 §5.1) and is saved now into
	 * its new folder (RFC 8514). */
	r.save_date = (int64_t)time(NULL);
	ret = store_op_modseq(op, &modseq, err_r);
	if (ret == 0 && (dst->uidnext == 0 || dst->uidnext == UINT32_MAX))
		ret = store_err(TERN_ERR_INVALID, err_r); /* UID space used up */
	/* A move hands the delivery id over (a replayed delivery must still
	 * find the message); the source lets go of it first because the id is
	 * unique. The copy is inserted before the source is deleted so the
	 * shared blob never drops to zero references. A plain copy is a new
	 * message with no delivery id. */
	if (!move)
		r.delivery_id = 0;
	else if (ret == 0 && r.delivery_id != 0)
		ret = set_delivery(st, src->id, uid, 0, err_r);
	if (ret == 0)
		ret = insert_msg(st, dst->id, dst->uidnext, modseq, &r, err_r);
	if (ret == 0 && move)
		ret = store_expunge_one_locked(st, src->id, uid, modseq, err_r) < 0 ? -1 : 0;
	free(keywords);
	free(emailid);
	if (ret < 0)
		return -1;
	dst->uidnext++;
	return 1;
}

int store_folder_uids(struct store *st, int64_t folder_id, bool deleted_only,
		      uint32_t **uids_r, size_t *count_r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, deleted_only ? STMT_MSG_DELETED_UIDS : STMT_MSG_ALL_UIDS, err_r);
	uint32_t *uids = NULL, *grown;
	size_t count = 0, alloc = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, folder_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (count == alloc) {
			alloc = alloc == 0 ? 64 : alloc * 2;
			grown = realloc(uids, alloc * sizeof(*uids));
			if (grown == NULL) {
				free(uids);
				return store_err(TERN_ERR_NOMEM, err_r);
			}
			uids = grown;
		}
		uids[count++] = (uint32_t)sqlite3_column_int64(stmt, 0);
	}
	if (rc != SQLITE_DONE) {
		free(uids);
		return store_fail(st, rc, err_r);
	}
	*uids_r = uids;
	*count_r = count;
	return 0;
}

/* Collects every row of a metadata query (store_msg_from_row columns). */
int store_msgs_collect(struct store *st, sqlite3_stmt *stmt, struct store_msg **msgs_r,
		       size_t *count_r, enum tern_error *err_r)
{
	struct store_msg *msgs = NULL, *grown;
	size_t count = 0, alloc = 0;
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (count == alloc) {
			alloc = alloc == 0 ? 256 : alloc * 2;
			grown = realloc(msgs, alloc * sizeof(*msgs));
			if (grown == NULL)
				break;
			msgs = grown;
		}
		if (store_msg_from_row(stmt, &msgs[count]) < 0)
			break;
		count++;
	}
	if (rc != SQLITE_DONE) {
		store_msgs_free(&msgs, count);
		return rc == SQLITE_ROW ? store_err(TERN_ERR_NOMEM, err_r) :
					  store_fail(st, rc, err_r);
	}
	*msgs_r = msgs;
	*count_r = count;
	return 0;
}

int store_msg_list(struct store *st, const char *folder, struct store_msg **msgs_r,
		   size_t *count_r, enum tern_error *err_r)
{
	struct store_frow f;

	if (store_frow_need(st, folder, &f, err_r) < 0)
		return -1;
	STORE_STMT(stmt, st, STMT_MSG_LIST, err_r);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, f.id);
	return store_msgs_collect(st, stmt, msgs_r, count_r, err_r);
}

int store_msg_list_from(struct store *st, const char *folder, uint32_t first_uid, size_t limit,
			struct store_msg **msgs_r, size_t *count_r, enum tern_error *err_r)
{
	struct store_frow f;

	if (store_frow_need(st, folder, &f, err_r) < 0)
		return -1;
	STORE_STMT(stmt, st, STMT_MSG_LIST_FROM, err_r);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, f.id);
	sqlite3_bind_int64(stmt, 2, first_uid);
	sqlite3_bind_int64(stmt, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	return store_msgs_collect(st, stmt, msgs_r, count_r, err_r);
}

/* Looks the folder up and binds (folder_id, uid) to ?1/?2 of stmt. */
static int bind_msg(struct store *st, sqlite3_stmt *stmt, const char *folder, uint32_t uid,
		    enum tern_error *err_r)
{
	struct store_frow f;

	if (stmt == NULL || store_frow_need(st, folder, &f, err_r) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, f.id);
	sqlite3_bind_int64(stmt, 2, uid);
	return 0;
}

int store_msg_get(struct store *st, const char *folder, uint32_t uid, struct store_msg *m_r,
		  enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_GET, err_r);
	struct store_msg m;
	int rc;

	if (bind_msg(st, stmt, folder, uid, err_r) < 0)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	if (store_msg_from_row(stmt, &m) < 0)
		return store_err(TERN_ERR_NOMEM, err_r);
	*m_r = m;
	return 1;
}

int store_msg_raw(struct store *st, const char *folder, uint32_t uid, char **data_r,
		  size_t *size_r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_RAW, err_r);
	const void *blob;
	size_t size;
	char *data;
	int rc;

	if (bind_msg(st, stmt, folder, uid, err_r) < 0)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	blob = sqlite3_column_blob(stmt, 0);
	size = (size_t)sqlite3_column_bytes(stmt, 0);
	data = malloc(size + 1);
	if (data == NULL)
		return store_err(TERN_ERR_NOMEM, err_r);
	if (size > 0)
		memcpy(data, blob, size);
	data[size] = '\0';
	*data_r = data;
	*size_r = size;
	return 1;
}

static int blob_lookup(struct store *st, const char *folder, uint32_t uid, int64_t *blob_id_r,
		       uint64_t *size_r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_BLOB_ID, err_r);
	int rc;

	if (bind_msg(st, stmt, folder, uid, err_r) < 0)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	*blob_id_r = sqlite3_column_int64(stmt, 0);
	*size_r = (uint64_t)sqlite3_column_int64(stmt, 1);
	return 1;
}

static int blob_read(struct store *st, int64_t blob_id, uint64_t offset, size_t len,
		     char *buf, enum tern_error *err_r)
{
	sqlite3_blob *b;
	int rc;

	if (len == 0)
		return 0;
	rc = sqlite3_blob_open(st->db, "main", "blobs", "raw", blob_id, 0, &b);
	if (rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	rc = sqlite3_blob_read(b, buf, (int)len, (int)offset);
	sqlite3_blob_close(b);
	if (rc != SQLITE_OK)
		return store_fail(st, rc, err_r);
	return 0;
}

int store_msg_raw_range(struct store *st, const char *folder, uint32_t uid, uint64_t offset,
			uint64_t length, char **data_r, size_t *size_r, uint64_t *total_r,
			enum tern_error *err_r)
{
	int64_t blob_id = 0;
	uint64_t total = 0;
	size_t len;
	char *data;
	STORE_TX(tx);
	int ret;

	if (store_tx_begin_read(st, &tx, err_r) < 0)
		return -1;
	ret = blob_lookup(st, folder, uid, &blob_id, &total, err_r);
	if (ret <= 0)
		return ret;
	if (total > INT_MAX)
		return store_err(TERN_ERR_TOOBIG, err_r);
	len = offset >= total ? 0 : (size_t)(total - offset < length ? total - offset : length);
	data = malloc(len + 1);
	if (data == NULL)
		return store_err(TERN_ERR_NOMEM, err_r);
	if (blob_read(st, blob_id, offset, len, data, err_r) < 0 ||
	    store_tx_commit(&tx, err_r) < 0) {
		free(data);
		return -1;
	}
	data[len] = '\0';
	*data_r = data;
	*size_r = len;
	if (total_r != NULL)
		*total_r = total;
	return 1;
}

int store_msg_ids(struct store *st, const char *folder, uint32_t uid, struct store_msg_ids *ids_r,
		  enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_IDS, err_r);
	int rc;

	if (bind_msg(st, stmt, folder, uid, err_r) < 0)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	const unsigned char *emailid = sqlite3_column_text(stmt, 0);
	memset(ids_r, 0, sizeof(*ids_r));
	if (emailid != NULL)
		snprintf(ids_r->emailid, sizeof(ids_r->emailid), "%s", (const char *)emailid);
	ids_r->save_date = sqlite3_column_int64(stmt, 1);
	return 1;
}

int store_msg_cache(struct store *st, const char *folder, uint32_t uid,
		    struct store_msg_cache *c_r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_CACHE, err_r);
	struct store_msg_cache c = { 0 };
	int rc;

	if (bind_msg(st, stmt, folder, uid, err_r) < 0)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	if (store_column_strdup(stmt, 0, &c.envelope) < 0 ||
	    store_column_strdup(stmt, 1, &c.bodystructure) < 0 ||
	    store_column_strdup(stmt, 2, &c.body) < 0 ||
	    store_column_strdup(stmt, 3, &c.subject) < 0) {
		store_msg_cache_clear(&c);
		return store_err(TERN_ERR_NOMEM, err_r);
	}
	c.sent_date = sqlite3_column_int64(stmt, 4);
	int64_t blob_id = sqlite3_column_int64(stmt, 5);
	bool stale = sqlite3_column_int(stmt, 6) != 0;
	sqlite3_reset(stmt);   /* the refresh reads and may write */
	if (stale && store_cache_refresh(st, blob_id, &c, err_r) < 0) {
		store_msg_cache_clear(&c);
		return -1;
	}
	*c_r = c;
	return 1;
}

void store_msg_clear(struct store_msg *m)
{
	free(m->keywords);
	m->keywords = NULL;
}

void store_msgs_free(struct store_msg **msgs, size_t count)
{
	if (*msgs == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		store_msg_clear(&(*msgs)[i]);
	free(*msgs);
	*msgs = NULL;
}

void store_msg_cache_clear(struct store_msg_cache *c)
{
	free(c->envelope);
	free(c->bodystructure);
	free(c->body);
	free(c->subject);
	c->envelope = c->bodystructure = c->body = c->subject = NULL;
}
