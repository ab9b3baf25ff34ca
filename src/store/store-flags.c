/* Changes to existing messages: flags and keywords (with CONDSTORE's
 * UNCHANGEDSINCE), expunge with tombstones, copy and move, and the changes
 * since a modseq that CONDSTORE/QRESYNC resync and the mover read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/keyword-set.h"
#include "core/limits.h"
#include "store/store-private.h"

#define STORE_FLAGS_ALL (STORE_FLAG_SEEN | STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED | \
			 STORE_FLAG_DELETED | STORE_FLAG_DRAFT)

/* ---- keywords ---- */

/* RFC 3501 §9: a keyword is an atom; a leading '\' would make it a system
 * flag, which travel as bits instead. */
static bool keyword_valid(const char *kw, size_t len)
{
	if (len == 0 || kw[0] == '\\')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)kw[i];

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

struct flags_req {
	enum store_flag_op op;
	uint32_t flags;
	const char *keywords;          /* normalized */
	struct keyword_set keyword_set;/* the same keywords, for look-ups */
	bool keywords_given;
	uint64_t unchangedsince;
};

int store_keywords_normalize(const char *in, char **out_r, enum tern_error *err_r)
{
	struct keyword_set set = KEYWORD_SET_INIT;
	const char *p = in, *kw;
	size_t len;

	*out_r = NULL;
	while (keyword_list_next(&p, &kw, &len)) {
		if (!keyword_valid(kw, len)) {
			keyword_set_clear(&set);
			return store_err(TERN_ERR_INVALID, err_r);
		}
		if (keyword_set_add(&set, kw, len) < 0) {
			keyword_set_clear(&set);
			return store_err(TERN_ERR_NOMEM, err_r);
		}
	}
	*out_r = keyword_set_take_text(&set);
	return 0;
}

/* The keyword list after op (NULL = none). req->keywords is normalized and
 * req->keyword_set holds the same keywords. A message may not grow past
 * TERN_KEYWORDS_PER_MESSAGE_MAX (TOOBIG); one already past it (stored
 * before the limit) keeps working as long as it does not grow. */
static int keywords_apply(const struct flags_req *req, const char *cur, char **out_r,
			  enum tern_error *err_r)
{
	struct keyword_set out = KEYWORD_SET_INIT;
	const char *p = cur, *kw;
	size_t len, before = 0;
	int ret = 0;

	*out_r = NULL;
	switch (req->op) {
	case STORE_FLAGS_SET:
		ret = keyword_set_add_list(&out, req->keywords, NULL);
		if (ret == 0 && keyword_set_count(&out) > TERN_KEYWORDS_PER_MESSAGE_MAX) {
			/* only now is the old count worth working out */
			struct keyword_set old = KEYWORD_SET_INIT;

			ret = keyword_set_add_list(&old, cur, NULL);
			before = keyword_set_count(&old);
			keyword_set_clear(&old);
		}
		break;
	case STORE_FLAGS_ADD:
		ret = keyword_set_add_list(&out, cur, NULL);
		before = keyword_set_count(&out);
		if (ret == 0)
			ret = keyword_set_add_list(&out, req->keywords, NULL);
		break;
	case STORE_FLAGS_REMOVE:
		while (ret == 0 && keyword_list_next(&p, &kw, &len)) {
			if (!keyword_set_contains(&req->keyword_set, kw, len))
				ret = keyword_set_add(&out, kw, len) < 0 ? -1 : 0;
		}
		before = SIZE_MAX;      /* removing never grows a message */
		break;
	}
	if (ret < 0) {
		keyword_set_clear(&out);
		return store_err(TERN_ERR_NOMEM, err_r);
	}
	if (keyword_set_count(&out) > TERN_KEYWORDS_PER_MESSAGE_MAX &&
	    keyword_set_count(&out) > before) {
		keyword_set_clear(&out);
		return store_err(TERN_ERR_TOOBIG, err_r);
	}
	*out_r = keyword_set_take_text(&out);
	return 0;
}

static uint32_t flags_apply(enum store_flag_op op, uint32_t cur, uint32_t flags)
{
	switch (op) {
	case STORE_FLAGS_SET:
		return flags;
	case STORE_FLAGS_ADD:
		return cur | flags;
	case STORE_FLAGS_REMOVE:
		return cur & ~flags;
	}
	return cur;
}

static bool str_eq(const char *a, const char *b)
{
	return (a == NULL || *a == '\0') ? (b == NULL || *b == '\0') :
	       (b != NULL && strcmp(a, b) == 0);
}

/* ---- growing arrays ---- */

static int uids_push(uint32_t **uids, size_t *count, size_t *alloc, uint32_t uid)
{
	uint32_t *grown;

	if (*count == *alloc) {
		*alloc = *alloc == 0 ? 16 : *alloc * 2;
		grown = realloc(*uids, *alloc * sizeof(**uids));
		if (grown == NULL)
			return -1;
		*uids = grown;
	}
	(*uids)[(*count)++] = uid;
	return 0;
}

static int folder_set_hms(struct store *st, int64_t folder_id, uint64_t modseq,
			  enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_FOLDER_SET_HMS, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, folder_id);
	sqlite3_bind_int64(stmt, 2, (int64_t)modseq);
	return store_exec_step(st, stmt, err_r);
}

/* ---- flags ---- */

static int msg_read(struct store *st, int64_t folder_id, uint32_t uid, struct store_msg *m_r,
		    enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_GET, err_r);
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
	if (store_msg_from_row(stmt, m_r) < 0)
		return store_err(TERN_ERR_NOMEM, err_r);
	return 1;
}

static int msg_write_flags(struct store *st, int64_t folder_id, const struct store_msg *m,
			   enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_MSG_SET_FLAGS, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, folder_id);
	sqlite3_bind_int64(stmt, 2, m->uid);
	sqlite3_bind_int64(stmt, 3, m->flags);
	if (m->keywords != NULL)
		sqlite3_bind_text(stmt, 4, m->keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 5, (int64_t)m->modseq);
	return store_exec_step(st, stmt, err_r);
}

/* Applies req to one message m (read, current state). 1 = changed. */
static int flags_one(struct store *st, struct store_op *op, int64_t folder_id,
		     const struct flags_req *req, struct store_msg *m, enum tern_error *err_r)
{
	uint32_t flags = flags_apply(req->op, m->flags, req->flags);
	char *kw = NULL;
	uint64_t modseq;

	if (req->keywords_given) {
		if (keywords_apply(req, m->keywords, &kw, err_r) < 0)
			return -1;
	} else if (m->keywords != NULL && (kw = strdup(m->keywords)) == NULL) {
		return store_err(TERN_ERR_NOMEM, err_r);
	}
	if (flags == m->flags && str_eq(kw, m->keywords)) {
		free(kw);
		return 0;
	}
	if (store_op_modseq(op, &modseq, err_r) < 0) {
		free(kw);
		return -1;
	}
	free(m->keywords);
	m->keywords = kw;
	m->flags = flags;
	m->modseq = modseq;
	return msg_write_flags(st, folder_id, m, err_r) < 0 ? -1 : 1;
}

struct flags_out {
	struct store_msg *msgs;
	size_t count, alloc;
	uint32_t *failed;
	size_t failed_count, failed_alloc;
};

static void flags_out_free(struct flags_out *o)
{
	store_msgs_free(&o->msgs, o->count);
	free(o->failed);
	o->failed = NULL;
}

static int msgs_push(struct flags_out *o, struct store_msg *m)
{
	struct store_msg *grown;

	if (o->count == o->alloc) {
		o->alloc = o->alloc == 0 ? 16 : o->alloc * 2;
		grown = realloc(o->msgs, o->alloc * sizeof(*o->msgs));
		if (grown == NULL)
			return -1;
		o->msgs = grown;
	}
	o->msgs[o->count++] = *m;
	return 0;
}

static int flags_update_locked(struct store *st, const char *folder, const uint32_t *uids,
			       size_t count, const struct flags_req *req, bool want_msgs,
			       struct flags_out *o, enum tern_error *err_r)
{
	struct store_op op = { .st = st };
	struct store_frow f;
	struct store_msg m;
	int ret;

	if (store_frow_need(st, folder, &f, err_r) < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		ret = msg_read(st, f.id, uids[i], &m, err_r);
		if (ret <= 0) {
			if (ret < 0)
				return -1;
			continue;       /* expunged meanwhile: nothing to do */
		}
		if (req->unchangedsince != 0 && m.modseq > req->unchangedsince) {
			if (uids_push(&o->failed, &o->failed_count, &o->failed_alloc, m.uid) < 0)
				ret = store_err(TERN_ERR_NOMEM, err_r);
		} else {
			ret = flags_one(st, &op, f.id, req, &m, err_r);
		}
		if (ret >= 0 && want_msgs) {
			if (msgs_push(o, &m) == 0)
				continue;       /* o owns m's keywords now */
			ret = store_err(TERN_ERR_NOMEM, err_r);
		}
		store_msg_clear(&m);
		if (ret < 0)
			return -1;
	}
	if (op.modseq != 0)
		return folder_set_hms(st, f.id, op.modseq, err_r);
	return 0;
}

int store_flags_update(struct store *st, const char *folder, const uint32_t *uids, size_t count,
		       enum store_flag_op op, uint32_t flags, const char *keywords,
		       uint64_t unchangedsince, struct store_msg **msgs_r, size_t *msgs_count_r,
		       uint32_t **failed_r, size_t *failed_count_r, enum tern_error *err_r)
{
	struct flags_req req = { .op = op, .flags = flags, .unchangedsince = unchangedsince };
	struct flags_out o = { 0 };
	char *kw = NULL;
	STORE_TX(tx);
	int ret = -1;

	if ((flags & ~(uint32_t)STORE_FLAGS_ALL) != 0 || (uids == NULL && count > 0) ||
	    (op != STORE_FLAGS_SET && op != STORE_FLAGS_ADD && op != STORE_FLAGS_REMOVE))
		return store_err(TERN_ERR_INVALID, err_r);
	if (store_keywords_normalize(keywords, &kw, err_r) < 0)
		return -1;
	/* SET with no keywords clears them; ADD/REMOVE with none leave them. */
	req.keywords = kw;
	req.keywords_given = kw != NULL || op == STORE_FLAGS_SET;
	if (keyword_set_add_list(&req.keyword_set, kw, NULL) < 0)
		(void)store_err(TERN_ERR_NOMEM, err_r);
	else if (store_tx_begin(st, &tx, err_r) == 0 &&
		 flags_update_locked(st, folder, uids, count, &req, msgs_r != NULL, &o, err_r) == 0)
		ret = store_tx_commit(&tx, err_r);
	keyword_set_clear(&req.keyword_set);
	free(kw);
	if (ret < 0) {
		flags_out_free(&o);
		return -1;
	}
	if (msgs_r != NULL) {
		*msgs_r = o.msgs;
		*msgs_count_r = o.count;
		o.msgs = NULL;
	}
	if (failed_r != NULL) {
		*failed_r = o.failed;
		*failed_count_r = o.failed_count;
		o.failed = NULL;
	}
	flags_out_free(&o);
	return 0;
}

/* ---- expunge ---- */

static int uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int expunge_locked(struct store *st, const char *folder, const uint32_t *uids,
			  size_t count, uint32_t **done_r, size_t *done_count_r,
			  enum tern_error *err_r)
{
	struct store_op op = { .st = st };
	struct store_frow f;
	uint32_t *all = NULL, *done = NULL;
	size_t done_count = 0, done_alloc = 0;
	uint64_t modseq;
	int ret = 0;

	if (store_frow_need(st, folder, &f, err_r) < 0)
		return -1;
	if (uids == NULL) {
		if (store_folder_uids(st, f.id, true, &all, &count, err_r) < 0)
			return -1;
		uids = all;
	}
	for (size_t i = 0; i < count && ret >= 0; i++) {
		ret = store_op_modseq(&op, &modseq, err_r);
		if (ret == 0)
			ret = store_expunge_one_locked(st, f.id, uids[i], modseq, err_r);
		if (ret > 0 && uids_push(&done, &done_count, &done_alloc, uids[i]) < 0)
			ret = store_err(TERN_ERR_NOMEM, err_r);
	}
	free(all);
	/* Nothing expunged: give the modseq back with the savepoint. */
	if (ret >= 0 && done_count > 0)
		ret = folder_set_hms(st, f.id, op.modseq, err_r);
	if (ret < 0) {
		free(done);
		return -1;
	}
	if (done_count > 1)
		qsort(done, done_count, sizeof(*done), uid_cmp);
	*done_r = done;
	*done_count_r = done_count;
	return 0;
}

int store_expunge(struct store *st, const char *folder, const uint32_t *uids, size_t count,
		  uint32_t **expunged_r, size_t *expunged_count_r, enum tern_error *err_r)
{
	uint32_t *done = NULL;
	size_t done_count = 0;
	STORE_TX(tx);

	if (uids == NULL)
		count = 0;
	if (store_tx_begin(st, &tx, err_r) < 0 ||
	    expunge_locked(st, folder, uids, count, &done, &done_count, err_r) < 0)
		return -1;
	if (done_count == 0) {
		/* Roll back the modseq bump so a no-op stays a no-op. */
		store_tx_cleanup(&tx);
	} else if (store_tx_commit(&tx, err_r) < 0) {
		free(done);
		return -1;
	}
	if (expunged_r != NULL) {
		*expunged_r = done;
		*expunged_count_r = done_count;
	} else {
		free(done);
	}
	return 0;
}

/* ---- copy / move ---- */

int store_copy_locked(struct store *st, struct store_op *op, struct store_frow *src,
		      struct store_frow *dst, const uint32_t *uids, size_t count, bool move,
		      uint32_t *src_out, uint32_t *dst_out, size_t *copied_r,
		      enum tern_error *err_r)
{
	size_t copied = 0;
	uint32_t uid;
	int ret;

	for (size_t i = 0; i < count; i++) {
		uid = dst->uidnext;
		ret = store_copy_one_locked(st, op, src, uids[i], dst, move, err_r);
		if (ret < 0)
			return -1;
		if (ret == 0)
			continue;
		if (src_out != NULL)
			src_out[copied] = uids[i];
		if (dst_out != NULL)
			dst_out[copied] = uid;
		copied++;
	}
	/* Counted after the copy, in the same transaction: a move leaves the
	 * total unchanged and is never refused. */
	if (copied > 0 && !move && store_quota_check(st, 0, err_r) < 0)
		return -1;
	if (copied > 0) {
		dst->highestmodseq = op->modseq;
		if (store_frow_update(st, dst, err_r) < 0)
			return -1;
		/* Only highestmodseq: with src == dst the uidnext above wins. */
		if (move && folder_set_hms(st, src->id, op->modseq, err_r) < 0)
			return -1;
	}
	*copied_r = copied;
	return 0;
}

int store_copy(struct store *st, const char *folder, const uint32_t *uids, size_t count,
	       const char *dest, bool move, uint32_t **src_uids_r, uint32_t **dst_uids_r,
	       size_t *copied_r, uint32_t *dest_uidvalidity_r, enum tern_error *err_r)
{
	struct store_op op = { .st = st };
	struct store_frow src, dst;
	uint32_t *src_out, *dst_out;
	size_t copied = 0;
	STORE_TX(tx);
	int ret = -1;

	if (uids == NULL && count > 0)
		return store_err(TERN_ERR_INVALID, err_r);
	src_out = malloc((count + 1) * sizeof(*src_out));
	dst_out = malloc((count + 1) * sizeof(*dst_out));
	if (src_out == NULL || dst_out == NULL) {
		ret = store_err(TERN_ERR_NOMEM, err_r);
	} else if (store_tx_begin(st, &tx, err_r) == 0 &&
		   store_frow_need(st, folder, &src, err_r) == 0 &&
		   store_frow_need(st, dest, &dst, err_r) == 0 &&
		   store_copy_locked(st, &op, &src, &dst, uids, count, move, src_out, dst_out,
				     &copied, err_r) == 0) {
		ret = store_tx_commit(&tx, err_r);
	}
	if (ret < 0) {
		free(src_out);
		free(dst_out);
		return -1;
	}
	if (src_uids_r != NULL)
		*src_uids_r = src_out;
	else
		free(src_out);
	if (dst_uids_r != NULL)
		*dst_uids_r = dst_out;
	else
		free(dst_out);
	if (copied_r != NULL)
		*copied_r = copied;
	if (dest_uidvalidity_r != NULL)
		*dest_uidvalidity_r = dst.uidvalidity;
	return 0;
}

/* ---- changes ---- */

static int vanished_get(struct store *st, int64_t folder_id, uint64_t since, uint32_t **uids_r,
			size_t *count_r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_VANISHED, err_r);
	uint32_t *uids = NULL;
	size_t count = 0, alloc = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, folder_id);
	sqlite3_bind_int64(stmt, 2, (int64_t)since);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (uids_push(&uids, &count, &alloc, (uint32_t)sqlite3_column_int64(stmt, 0)) < 0) {
			free(uids);
			return store_err(TERN_ERR_NOMEM, err_r);
		}
	}
	if (rc != SQLITE_DONE) {
		free(uids);
		return store_fail(st, rc, err_r);
	}
	*uids_r = uids;
	*count_r = count;
	return 0;
}

/* Modseqs behind the folder from which a primary key scan is the better plan. */
#define CHANGES_SCAN_FROM 4096

static int changed_get(struct store *st, const struct store_frow *f, uint64_t since,
		       struct store_changes *ch, enum tern_error *err_r)
{
	/* A resync from far back (since = 0 above all) wants most rows: the
	 * primary key scan beats the modseq index, which would need a sort and
	 * a table look-up per row. A recent since wants few: the index. */
	enum store_stmt_id id = since == 0 ? STMT_MSG_LIST
				: f->highestmodseq - since > CHANGES_SCAN_FROM ? STMT_CHANGES_SCAN
				: STMT_CHANGES;
	STORE_STMT(stmt, st, id, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, f->id);
	if (since != 0)
		sqlite3_bind_int64(stmt, 2, (int64_t)since);
	return store_msgs_collect(st, stmt, &ch->changed, &ch->changed_count, err_r);
}

int store_changes_since(struct store *st, const char *folder, uint64_t since,
			struct store_changes *ch_r, enum tern_error *err_r)
{
	struct store_changes ch = { 0 };
	struct store_frow f;
	STORE_TX(tx);

	/* One snapshot: the changes, the tombstones and highestmodseq must
	 * agree, or a resync could miss what happened between two reads. */
	if (store_tx_begin_read(st, &tx, err_r) < 0 ||
	    store_frow_need(st, folder, &f, err_r) < 0 ||
	    changed_get(st, &f, since, &ch, err_r) < 0)
		return -1;
	if ((since > 0 && vanished_get(st, f.id, since, &ch.vanished, &ch.vanished_count,
				       err_r) < 0) ||
	    store_tx_commit(&tx, err_r) < 0) {
		store_changes_clear(&ch);
		return -1;
	}
	ch.highestmodseq = f.highestmodseq;
	ch.uidnext = f.uidnext;
	*ch_r = ch;
	return 0;
}

void store_changes_clear(struct store_changes *ch)
{
	store_msgs_free(&ch->changed, ch->changed_count);
	free(ch->vanished);
	ch->vanished = NULL;
	ch->changed_count = 0;
	ch->vanished_count = 0;
}
