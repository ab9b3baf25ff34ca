/* View snapshots (store.h): a folder's message list packed into one row.
 * Encoding, version 1: "TV1", then varints: count, and per message the UID
 * step from the previous one (at least 1), flags, modseq, keyword bytes
 * followed by the keywords. About 5 bytes a message without keywords. */
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "store/store-private.h"

#define SNAPSHOT_MAGIC "TV1"
#define SNAPSHOT_MAGIC_LEN 3
#define VARINT_MAX 10
/* flags a snapshot may carry: the store's system flags */
#define SNAPSHOT_FLAGS_VALID 0x1fu

static size_t varint_put(unsigned char *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

/* 0 and *v_r, or -1 when the input ends or the number is over 64 bits. */
static int varint_get(const unsigned char **p, const unsigned char *end, uint64_t *v_r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		unsigned char b = *(*p)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*v_r = v;
			return 0;
		}
	}
	return -1;
}

unsigned char *store_snapshot_encode(const struct store_snapshot_msg *msgs, size_t count,
				     size_t *len_r)
{
	size_t cap = SNAPSHOT_MAGIC_LEN + VARINT_MAX;
	for (size_t i = 0; i < count; i++)
		cap += 4 * VARINT_MAX + (msgs[i].keywords != NULL ? strlen(msgs[i].keywords) : 0);
	unsigned char *buf = malloc(cap), *p = buf;
	if (buf == NULL)
		return NULL;
	memcpy(p, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN);
	p += SNAPSHOT_MAGIC_LEN;
	p += varint_put(p, count);
	uint32_t prev = 0;
	for (size_t i = 0; i < count; i++) {
		size_t kwlen = msgs[i].keywords != NULL ? strlen(msgs[i].keywords) : 0;
		p += varint_put(p, msgs[i].uid - prev);
		p += varint_put(p, msgs[i].flags);
		p += varint_put(p, msgs[i].modseq);
		p += varint_put(p, kwlen);
		memcpy(p, msgs[i].keywords != NULL ? msgs[i].keywords : "", kwlen);
		p += kwlen;
		prev = msgs[i].uid;
	}
	*len_r = (size_t)(p - buf);
	return buf;
}

int store_snapshot_decode(const void *data, size_t len, struct store_msg **msgs_r,
			  size_t *count_r, bool *nomem_r)
{
	const unsigned char *p = data;
	const unsigned char *end = p + len;
	uint64_t count, step, flags, modseq, kwlen;
	*nomem_r = false;
	if (len < SNAPSHOT_MAGIC_LEN || memcmp(p, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN) != 0)
		return -1;
	p += SNAPSHOT_MAGIC_LEN;
	/* each message takes at least 4 bytes: a count beyond that is a lie */
	if (varint_get(&p, end, &count) < 0 || count > (uint64_t)(end - p) / 4)
		return -1;
	struct store_msg *msgs = calloc(count > 0 ? count : 1, sizeof(*msgs));
	if (msgs == NULL) {
		*nomem_r = true;
		return -1;
	}
	uint64_t uid = 0;
	size_t i = 0;
	for (; i < count; i++) {
		if (varint_get(&p, end, &step) < 0 || step == 0 || step > UINT32_MAX - uid ||
		    varint_get(&p, end, &flags) < 0 || (flags & ~(uint64_t)SNAPSHOT_FLAGS_VALID) ||
		    varint_get(&p, end, &modseq) < 0 || modseq > INT64_MAX ||
		    varint_get(&p, end, &kwlen) < 0 || kwlen > (uint64_t)(end - p))
			break;
		uid += step;
		msgs[i].uid = (uint32_t)uid;
		msgs[i].flags = (uint32_t)flags;
		msgs[i].modseq = modseq;
		if (kwlen > 0) {
			if (memchr(p, '\0', kwlen) != NULL)
				break;
			msgs[i].keywords = malloc(kwlen + 1);
			if (msgs[i].keywords == NULL) {
				*nomem_r = true;
				break;
			}
			memcpy(msgs[i].keywords, p, kwlen);
			msgs[i].keywords[kwlen] = '\0';
			p += kwlen;
		}
	}
	if (i < count || p != end) {
		store_msgs_free(&msgs, count);   /* calloc'd: unread entries are empty */
		return -1;
	}
	*msgs_r = msgs;
	*count_r = count;
	return 0;
}

/* 1 found (row fields read through stmt), 0 none or other UIDVALIDITY. */
static int snapshot_row(struct store *st, sqlite3_stmt *stmt, int64_t folder_id,
			uint32_t uidvalidity, enum tern_error *err_r)
{
	sqlite3_bind_int64(stmt, 1, folder_id);
	int rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	return (uint32_t)sqlite3_column_int64(stmt, 0) == uidvalidity ? 1 : 0;
}

int store_snapshot_age(struct store *st, const char *folder, uint32_t uidvalidity,
		       uint64_t *modseq_r, enum tern_error *err_r)
{
	struct store_frow f;
	STORE_STMT(stmt, st, STMT_SNAPSHOT_AGE, err_r);
	if (stmt == NULL || store_frow_need(st, folder, &f, err_r) < 0)
		return -1;
	int r = snapshot_row(st, stmt, f.id, uidvalidity, err_r);
	if (r > 0)
		*modseq_r = (uint64_t)sqlite3_column_int64(stmt, 1);
	return r;
}

int store_snapshot_due(struct store *st, const char *folder, uint32_t uidvalidity,
		       uint64_t modseq, enum tern_error *err_r)
{
	uint64_t have = 0;
	int r = store_snapshot_age(st, folder, uidvalidity, &have, err_r);
	if (r < 0)
		return -1;
	return r == 0 || modseq >= have + TERN_SNAPSHOT_STALE;
}

int store_snapshot_get(struct store *st, const char *folder, uint32_t uidvalidity,
		       uint64_t *modseq_r, struct store_msg **msgs_r, size_t *count_r,
		       enum tern_error *err_r)
{
	struct store_frow f;
	STORE_STMT(stmt, st, STMT_SNAPSHOT_GET, err_r);
	if (stmt == NULL || store_frow_need(st, folder, &f, err_r) < 0)
		return -1;
	int r = snapshot_row(st, stmt, f.id, uidvalidity, err_r);
	if (r <= 0)
		return r;
	uint64_t modseq = (uint64_t)sqlite3_column_int64(stmt, 1);
	/* newer than the folder: a store restored from an older copy */
	if (f.uidvalidity != uidvalidity || modseq > f.highestmodseq)
		return 0;
	const unsigned char *data = sqlite3_column_blob(stmt, 2);
	size_t len = (size_t)sqlite3_column_bytes(stmt, 2);
	bool nomem;
	if (data == NULL || store_snapshot_decode(data, len, msgs_r, count_r, &nomem) < 0)
		return data != NULL && nomem ? store_err(TERN_ERR_NOMEM, err_r) : 0;
	*modseq_r = modseq;
	return 1;
}

/* Runs while the caller's busy timeout is 0 and its sync is off. */
static int snapshot_write(struct store *st, const char *folder, uint32_t uidvalidity,
			  uint64_t modseq, const unsigned char *data, size_t len,
			  enum tern_error *err_r)
{
	struct store_frow f;
	STORE_TX(tx);
	/* the folder is checked inside the write, so a folder deleted meanwhile
	 * cannot leave a row behind */
	if (store_tx_begin(st, &tx, err_r) < 0 || store_frow_need(st, folder, &f, err_r) < 0)
		return -1;
	if (f.uidvalidity != uidvalidity || modseq > f.highestmodseq)
		return store_err(TERN_ERR_INVALID, err_r);
	{
		STORE_STMT(stmt, st, STMT_SNAPSHOT_PUT, err_r);
		if (stmt == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, f.id);
		sqlite3_bind_int64(stmt, 2, uidvalidity);
		sqlite3_bind_int64(stmt, 3, (int64_t)modseq);
		sqlite3_bind_blob64(stmt, 4, data, len, SQLITE_STATIC);
		if (store_exec_step(st, stmt, err_r) < 0)
			return -1;
	}
	return store_tx_commit(&tx, err_r);
}

int store_snapshot_put(struct store *st, const char *folder, uint32_t uidvalidity,
		       uint64_t modseq, const struct store_snapshot_msg *msgs, size_t count,
		       enum tern_error *err_r)
{
	size_t len;
	for (size_t i = 1; i < count; i++)
		if (msgs[i].uid <= msgs[i - 1].uid)
			return store_err(TERN_ERR_INVALID, err_r);
	unsigned char *data = store_snapshot_encode(msgs, count, &len);
	if (data == NULL)
		return store_err(TERN_ERR_NOMEM, err_r);
	/* One try: another handle writing means a delivery is on its way, which
	 * would make this snapshot old anyway. No sync: a cache lost in a crash
	 * costs one full read, and an IMAP handle must not wait for the disk. */
	sqlite3_busy_timeout(st->db, 0);
	if (st->durable)
		(void)sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	int ret = snapshot_write(st, folder, uidvalidity, modseq, data, len, err_r);
	if (st->durable)
		(void)sqlite3_exec(st->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	free(data);
	return ret;
}

/* A full read of one folder (its messages and highestmodseq from one
 * snapshot) saved as its view snapshot. */
static int refresh_one(struct store *st, const struct store_folder *folder,
		       enum tern_error *err_r)
{
	struct store_frow f;
	struct store_msg *msgs = NULL;
	size_t count = 0;
	{
		STORE_TX(tx);
		STORE_STMT(stmt, st, STMT_MSG_LIST, err_r);
		if (stmt == NULL || store_tx_begin_read(st, &tx, err_r) < 0 ||
		    store_frow_need(st, folder->name, &f, err_r) < 0)
			return -1;
		sqlite3_bind_int64(stmt, 1, f.id);
		if (store_msgs_collect(st, stmt, &msgs, &count, err_r) < 0)
			return -1;
		sqlite3_reset(stmt);   /* done reading before the COMMIT */
		if (store_tx_commit(&tx, err_r) < 0) {
			store_msgs_free(&msgs, count);
			return -1;
		}
	}
	struct store_snapshot_msg *snap = malloc((count > 0 ? count : 1) * sizeof(*snap));
	int ret = -1;
	if (snap == NULL) {
		store_err(TERN_ERR_NOMEM, err_r);
	} else {
		for (size_t i = 0; i < count; i++)
			snap[i] = (struct store_snapshot_msg){ .uid = msgs[i].uid,
				.flags = msgs[i].flags, .modseq = msgs[i].modseq,
				.keywords = msgs[i].keywords };
		ret = store_snapshot_put(st, folder->name, f.uidvalidity, f.highestmodseq, snap,
					 count, err_r);
	}
	free(snap);
	store_msgs_free(&msgs, count);
	return ret;
}

int store_snapshots_refresh(struct store *st, enum tern_error *err_r)
{
	struct store_folder *folders = NULL;
	size_t count = 0;
	int ret = 0;
	if (store_folder_list(st, &folders, &count, err_r) < 0)
		return -1;
	for (size_t i = 0; i < count && ret == 0; i++) {
		const struct store_folder *f = &folders[i];
		if (f->messages < TERN_SNAPSHOT_MIN_MSGS)
			continue;
		int r = store_snapshot_due(st, f->name, f->uidvalidity, f->highestmodseq, err_r);
		if (r != 0)
			ret = r < 0 ? -1 : refresh_one(st, f, err_r);
	}
	store_folders_free(&folders, count);
	return ret;
}
