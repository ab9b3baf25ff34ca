/* Folders: name rules, create (with parents), delete, rename (with children,
 * and the INBOX special case), subscriptions, listings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/store-private.h"

static const char *const special_uses[] = {
	"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", NULL,
};

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static bool component_valid(const char *c, size_t len)
{
	if (len == 0)
		return false;
	if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
		return false;
	return true;
}

int store_folder_name_canon(const char *name, char *buf)
{
	size_t len, start = 0;

	if (name == NULL)
		return -1;
	len = strlen(name);
	if (len == 0 || len > TERN_FOLDER_NAME_MAX || name[0] == '/' || name[len - 1] == '/')
		return -1;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)name[i];

		/* '*' and '%' are LIST wildcards: a folder named so could never
		 * be listed unambiguously (RFC 3501 §6.3.8). */
		if ((c < 0x20 && c != '\0') || c == 0x7f || c == '*' || c == '%')
			return -1;
		if (c == '/' || c == '\0') {
			if (!component_valid(name + start, i - start))
				return -1;
			start = i + 1;
		}
	}
	if (!utf8_valid((const unsigned char *)name, len))
		return -1;
	memcpy(buf, name, len + 1);
	/* RFC 3501 §5.1: INBOX is case-insensitive; its children follow so that
	 * "inbox/x" and "INBOX/x" cannot be two folders. */
	if (strncasecmp(buf, "INBOX", 5) == 0 && (buf[5] == '\0' || buf[5] == '/'))
		memcpy(buf, "INBOX", 5);
	return 0;
}

bool store_folder_name_valid(const char *name)
{
	char canon[TERN_FOLDER_NAME_MAX + 1];

	return store_folder_name_canon(name, canon) == 0;
}

static bool special_use_valid(const char *su)
{
	if (su == NULL)
		return true;
	for (size_t i = 0; special_uses[i] != NULL; i++)
		if (strcmp(su, special_uses[i]) == 0)
			return true;
	return false;
}

int store_frow_get(struct store *st, const char *canon, struct store_frow *f_r,
		   enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_FOLDER_ROW, err_r);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, canon, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	f_r->id = sqlite3_column_int64(stmt, 0);
	f_r->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 1);
	f_r->uidnext = (uint32_t)sqlite3_column_int64(stmt, 2);
	f_r->highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 3);
	return 1;
}

int store_frow_need(struct store *st, const char *name, struct store_frow *f_r,
		    enum tern_error *err_r)
{
	char canon[TERN_FOLDER_NAME_MAX + 1];
	int ret;

	if (store_folder_name_canon(name, canon) < 0)
		return store_err(TERN_ERR_INVALID, err_r);
	ret = store_frow_get(st, canon, f_r, err_r);
	if (ret == 0)
		return store_err(TERN_ERR_NOTFOUND, err_r);
	return ret < 0 ? -1 : 0;
}

int store_frow_update(struct store *st, struct store_frow *f, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_FOLDER_SET_UIDNEXT, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, f->id);
	sqlite3_bind_int64(stmt, 2, f->uidnext);
	sqlite3_bind_int64(stmt, 3, (int64_t)f->highestmodseq);
	return store_exec_step(st, stmt, err_r);
}

int store_folder_insert(struct store *st, struct store_op *op, const char *canon,
			const char *special_use, struct store_frow *f_r, enum tern_error *err_r)
{
	uint32_t uidvalidity;
	uint64_t modseq;

	if (store_new_uidvalidity(st, &uidvalidity, err_r) < 0 ||
	    store_op_modseq(op, &modseq, err_r) < 0)
		return -1;
	STORE_STMT(stmt, st, STMT_FOLDER_INSERT, err_r);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, canon, -1, SQLITE_STATIC);
	if (special_use != NULL)
		sqlite3_bind_text(stmt, 2, special_use, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, uidvalidity);
	sqlite3_bind_int64(stmt, 4, (int64_t)modseq);
	if (store_exec_step(st, stmt, err_r) < 0)
		return -1;
	f_r->id = sqlite3_last_insert_rowid(st->db);
	f_r->uidvalidity = uidvalidity;
	f_r->uidnext = 1;
	f_r->highestmodseq = modseq;
	return 0;
}

/* Creates every missing parent of canon (RFC 3501 §6.3.3), unsubscribed. */
static int create_parents(struct store *st, struct store_op *op, const char *canon,
			  enum tern_error *err_r)
{
	char parent[TERN_FOLDER_NAME_MAX + 1];
	struct store_frow f;
	int ret;

	for (const char *p = strchr(canon, '/'); p != NULL; p = strchr(p + 1, '/')) {
		memcpy(parent, canon, (size_t)(p - canon));
		parent[p - canon] = '\0';
		ret = store_frow_get(st, parent, &f, err_r);
		if (ret < 0)
			return -1;
		if (ret == 0 && store_folder_insert(st, op, parent, NULL, &f, err_r) < 0)
			return -1;
	}
	return 0;
}

/* The MAILBOXID of folder row id, into buf (STORE_OBJECTID_SIZE bytes). */
static int folder_mailboxid(struct store *st, int64_t id, char *buf, enum tern_error *err_r)
{
	sqlite3_stmt *stmt = NULL;
	/* once per CREATE: not worth a cached statement */
	int rc = sqlite3_prepare_v2(st->db, "SELECT mailboxid FROM folders WHERE id = ?1", -1,
				    &stmt, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(stmt);
		return store_fail(st, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, err_r);
	}
	const unsigned char *text = sqlite3_column_text(stmt, 0);
	snprintf(buf, STORE_OBJECTID_SIZE, "%s", text != NULL ? (const char *)text : "");
	sqlite3_finalize(stmt);
	return 0;
}

int store_folder_create(struct store *st, const char *name, const char *special_use,
			enum tern_error *err_r)
{
	return store_folder_create_id(st, name, special_use, NULL, err_r);
}

int store_folder_create_id(struct store *st, const char *name, const char *special_use,
			   char *mailboxid_r, enum tern_error *err_r)
{
	char canon[TERN_FOLDER_NAME_MAX + 1];
	struct store_op op = { .st = st };
	struct store_frow f;
	STORE_TX(tx);
	int ret;

	if (store_folder_name_canon(name, canon) < 0 || !special_use_valid(special_use))
		return store_err(TERN_ERR_INVALID, err_r);
	if (store_tx_begin(st, &tx, err_r) < 0)
		return -1;
	ret = store_frow_get(st, canon, &f, err_r);
	if (ret != 0)
		return ret < 0 ? -1 : store_err(TERN_ERR_EXISTS, err_r);
	if (create_parents(st, &op, canon, err_r) < 0 ||
	    store_folder_insert(st, &op, canon, special_use, &f, err_r) < 0)
		return -1;
	if (mailboxid_r != NULL && folder_mailboxid(st, f.id, mailboxid_r, err_r) < 0)
		return -1;
	return store_tx_commit(&tx, err_r);
}

static int run_folder_stmt(struct store *st, enum store_stmt_id id, int64_t folder_id,
			   enum tern_error *err_r)
{
	STORE_STMT(stmt, st, id, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, folder_id);
	return store_exec_step(st, stmt, err_r);
}

static int log_folder_delete(struct store *st, const struct store_frow *f, const char *canon,
			     uint64_t modseq, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_FOLDER_LOG_DELETE, err_r);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, f->uidvalidity);
	sqlite3_bind_text(stmt, 2, canon, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, (int64_t)modseq);
	return store_exec_step(st, stmt, err_r);
}

int store_folder_delete(struct store *st, const char *name, enum tern_error *err_r)
{
	char canon[TERN_FOLDER_NAME_MAX + 1];
	struct store_op op = { .st = st };
	struct store_frow f;
	uint64_t modseq;
	STORE_TX(tx);
	int ret;

	if (store_folder_name_canon(name, canon) < 0 || strcmp(canon, "INBOX") == 0)
		return store_err(TERN_ERR_INVALID, err_r);
	if (store_tx_begin(st, &tx, err_r) < 0)
		return -1;
	ret = store_frow_get(st, canon, &f, err_r);
	if (ret <= 0)
		return ret < 0 ? -1 : store_err(TERN_ERR_NOTFOUND, err_r);
	/* Messages first, explicitly: their triggers release the shared blobs. */
	if (store_op_modseq(&op, &modseq, err_r) < 0 ||
	    run_folder_stmt(st, STMT_FOLDER_DEL_EXPUNGED, f.id, err_r) < 0 ||
	    run_folder_stmt(st, STMT_FOLDER_DEL_MSGS, f.id, err_r) < 0 ||
	    run_folder_stmt(st, STMT_SNAPSHOT_DEL, f.id, err_r) < 0 ||
	    run_folder_stmt(st, STMT_FOLDER_DEL, f.id, err_r) < 0 ||
	    log_folder_delete(st, &f, canon, modseq, err_r) < 0)
		return -1;
	return store_tx_commit(&tx, err_r);
}

/* ---- subscriptions ---- */

static int sub_get(struct store *st, const char *canon, bool *subscribed_r,
		   enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_SUB_GET, err_r);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, canon, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(st, rc, err_r);
	*subscribed_r = rc == SQLITE_ROW && sqlite3_column_int(stmt, 0) != 0;
	return 0;
}

/* Unsubscribing keeps the row (subscribed = 0) with its modseq, so the mover
 * can ship unsubscriptions as changes too. */
static int sub_set(struct store *st, struct store_op *op, const char *canon, bool subscribe,
		   enum tern_error *err_r)
{
	uint64_t modseq;

	if (store_op_modseq(op, &modseq, err_r) < 0)
		return -1;
	STORE_STMT(stmt, st, STMT_SUB_SET, err_r);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, canon, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 2, subscribe ? 1 : 0);
	sqlite3_bind_int64(stmt, 3, (int64_t)modseq);
	return store_exec_step(st, stmt, err_r);
}

int store_folder_subscribe(struct store *st, const char *name, bool subscribe,
			   enum tern_error *err_r)
{
	char canon[TERN_FOLDER_NAME_MAX + 1];
	struct store_op op = { .st = st };
	STORE_TX(tx);

	if (store_folder_name_canon(name, canon) < 0)
		return store_err(TERN_ERR_INVALID, err_r);
	if (store_tx_begin(st, &tx, err_r) < 0 || sub_set(st, &op, canon, subscribe, err_r) < 0)
		return -1;
	return store_tx_commit(&tx, err_r);
}

int store_subscriptions(struct store *st, char ***names_r, size_t *count_r,
			enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_SUB_LIST, err_r);
	char **names = NULL, **grown;
	size_t count = 0, alloc = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (count == alloc) {
			alloc = alloc == 0 ? 16 : alloc * 2;
			grown = realloc(names, alloc * sizeof(*names));
			if (grown == NULL)
				break;
			names = grown;
		}
		if (store_column_strdup(stmt, 0, &names[count]) < 0 || names[count] == NULL)
			break;
		count++;
	}
	if (rc != SQLITE_DONE) {
		store_names_free(&names, count);
		return rc == SQLITE_ROW ? store_err(TERN_ERR_NOMEM, err_r) :
					  store_fail(st, rc, err_r);
	}
	*names_r = names;
	*count_r = count;
	return 0;
}

void store_names_free(char ***names, size_t count)
{
	if (*names == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*names)[i]);
	free(*names);
	*names = NULL;
}

/* ---- rename ---- */

/* Renames one folder row and carries its subscription along. */
static int rename_one(struct store *st, struct store_op *op, int64_t id, const char *old_name,
		      const char *new_name, enum tern_error *err_r)
{
	uint64_t modseq;
	bool subscribed = false;
	int rc;

	if (store_op_modseq(op, &modseq, err_r) < 0)
		return -1;
	{
		STORE_STMT(stmt, st, STMT_FOLDER_RENAME, err_r);
		if (stmt == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, id);
		sqlite3_bind_text(stmt, 2, new_name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 3, (int64_t)modseq);
		rc = sqlite3_step(stmt);
		if (rc != SQLITE_DONE)
			return store_fail(st, rc, err_r); /* CONSTRAINT -> EXISTS */
	}
	if (sub_get(st, old_name, &subscribed, err_r) < 0)
		return -1;
	if (subscribed && (sub_set(st, op, old_name, false, err_r) < 0 ||
			   sub_set(st, op, new_name, true, err_r) < 0))
		return -1;
	return 0;
}

struct child {
	int64_t id;
	char *name;
};

static void children_free(struct child *c, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(c[i].name);
	free(c);
}

static int children_get(struct store *st, const char *canon, struct child **c_r,
			size_t *count_r, enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_FOLDER_CHILDREN, err_r);
	struct child *c = NULL, *grown;
	size_t count = 0, alloc = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, canon, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (count == alloc) {
			alloc = alloc == 0 ? 8 : alloc * 2;
			grown = realloc(c, alloc * sizeof(*c));
			if (grown == NULL)
				break;
			c = grown;
		}
		c[count].id = sqlite3_column_int64(stmt, 0);
		if (store_column_strdup(stmt, 1, &c[count].name) < 0)
			break;
		count++;
	}
	if (rc != SQLITE_DONE) {
		children_free(c, count);
		return rc == SQLITE_ROW ? store_err(TERN_ERR_NOMEM, err_r) :
					  store_fail(st, rc, err_r);
	}
	*c_r = c;
	*count_r = count;
	return 0;
}

static int rename_children(struct store *st, struct store_op *op, const char *from,
			   const char *to, enum tern_error *err_r)
{
	char new_name[TERN_FOLDER_NAME_MAX + 2];
	size_t from_len = strlen(from), to_len = strlen(to), count = 0, rest;
	struct child *c = NULL;
	int ret = 0;

	if (children_get(st, from, &c, &count, err_r) < 0)
		return -1;
	for (size_t i = 0; i < count && ret == 0; i++) {
		rest = strlen(c[i].name) - from_len;
		if (to_len + rest > TERN_FOLDER_NAME_MAX) {
			ret = store_err(TERN_ERR_INVALID, err_r);
			break;
		}
		memcpy(new_name, to, to_len);
		memcpy(new_name + to_len, c[i].name + from_len, rest + 1);
		ret = rename_one(st, op, c[i].id, c[i].name, new_name, err_r);
	}
	children_free(c, count);
	return ret;
}

/* RFC 3501 §6.3.5: renaming INBOX moves its messages to a new folder and
 * leaves INBOX empty; INBOX's children stay where they are. */
static int rename_inbox(struct store *st, struct store_op *op, struct store_frow *inbox,
			const char *to, enum tern_error *err_r)
{
	struct store_frow dst;
	uint32_t *uids;
	size_t count, copied;
	int ret;

	if (store_folder_insert(st, op, to, NULL, &dst, err_r) < 0 ||
	    store_folder_uids(st, inbox->id, false, &uids, &count, err_r) < 0)
		return -1;
	ret = store_copy_locked(st, op, inbox, &dst, uids, count, true, NULL, NULL, &copied,
				err_r);
	free(uids);
	return ret;
}

int store_folder_rename(struct store *st, const char *from, const char *to,
			enum tern_error *err_r)
{
	char cfrom[TERN_FOLDER_NAME_MAX + 1], cto[TERN_FOLDER_NAME_MAX + 1];
	struct store_op op = { .st = st };
	struct store_frow src, dst;
	size_t from_len;
	bool inbox;
	STORE_TX(tx);
	int ret;

	if (store_folder_name_canon(from, cfrom) < 0 || store_folder_name_canon(to, cto) < 0)
		return store_err(TERN_ERR_INVALID, err_r);
	inbox = strcmp(cfrom, "INBOX") == 0;
	from_len = strlen(cfrom);
	/* A folder cannot become its own descendant (INBOX can: its children
	 * do not move with it). */
	if (!inbox && strncmp(cto, cfrom, from_len) == 0 && cto[from_len] == '/')
		return store_err(TERN_ERR_INVALID, err_r);
	if (store_tx_begin(st, &tx, err_r) < 0)
		return -1;
	ret = store_frow_get(st, cfrom, &src, err_r);
	if (ret <= 0)
		return ret < 0 ? -1 : store_err(TERN_ERR_NOTFOUND, err_r);
	ret = store_frow_get(st, cto, &dst, err_r);
	if (ret != 0)
		return ret < 0 ? -1 : store_err(TERN_ERR_EXISTS, err_r);
	if (create_parents(st, &op, cto, err_r) < 0)
		return -1;
	if (inbox)
		ret = rename_inbox(st, &op, &src, cto, err_r);
	else
		ret = rename_one(st, &op, src.id, cfrom, cto, err_r) < 0 ? -1 :
		      rename_children(st, &op, cfrom, cto, err_r);
	if (ret < 0)
		return -1;
	return store_tx_commit(&tx, err_r);
}

/* ---- listing ---- */

static int folder_from_row(sqlite3_stmt *stmt, struct store_folder *f)
{
	memset(f, 0, sizeof(*f));
	if (store_column_strdup(stmt, 0, &f->name) < 0 || f->name == NULL ||
	    store_column_strdup(stmt, 1, &f->special_use) < 0) {
		store_folder_clear(f);
		return -1;
	}
	f->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 2);
	f->uidnext = (uint32_t)sqlite3_column_int64(stmt, 3);
	f->highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 4);
	f->messages = (uint32_t)sqlite3_column_int64(stmt, 5);
	f->unseen = (uint32_t)sqlite3_column_int64(stmt, 6);
	f->recent = 0;
	f->size = (uint64_t)sqlite3_column_int64(stmt, 7);
	f->subscribed = sqlite3_column_int(stmt, 8) != 0;
	f->id = sqlite3_column_int64(stmt, 9);
	const unsigned char *mailboxid = sqlite3_column_text(stmt, 10);
	if (mailboxid != NULL)
		snprintf(f->mailboxid, sizeof(f->mailboxid), "%s", (const char *)mailboxid);
	return 0;
}

int store_folder_list(struct store *st, struct store_folder **folders_r, size_t *count_r,
		      enum tern_error *err_r)
{
	STORE_STMT(stmt, st, STMT_FOLDER_LIST, err_r);
	struct store_folder *folders = NULL, *grown;
	size_t count = 0, alloc = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (count == alloc) {
			alloc = alloc == 0 ? 16 : alloc * 2;
			grown = realloc(folders, alloc * sizeof(*folders));
			if (grown == NULL)
				break;
			folders = grown;
		}
		if (folder_from_row(stmt, &folders[count]) < 0)
			break;
		count++;
	}
	if (rc != SQLITE_DONE) {
		store_folders_free(&folders, count);
		return rc == SQLITE_ROW ? store_err(TERN_ERR_NOMEM, err_r) :
					  store_fail(st, rc, err_r);
	}
	*folders_r = folders;
	*count_r = count;
	return 0;
}

int store_folder_get(struct store *st, const char *name, struct store_folder *f_r,
		     enum tern_error *err_r)
{
	char canon[TERN_FOLDER_NAME_MAX + 1];
	STORE_STMT(stmt, st, STMT_FOLDER_GET, err_r);
	int rc;

	if (stmt == NULL)
		return -1;
	if (store_folder_name_canon(name, canon) < 0)
		return 0;       /* no folder can have that name */
	sqlite3_bind_text(stmt, 1, canon, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(st, rc, err_r);
	if (folder_from_row(stmt, f_r) < 0)
		return store_err(TERN_ERR_NOMEM, err_r);
	return 1;
}

void store_folder_clear(struct store_folder *f)
{
	free(f->name);
	free(f->special_use);
	f->name = NULL;
	f->special_use = NULL;
}

void store_folders_free(struct store_folder **folders, size_t count)
{
	if (*folders == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		store_folder_clear(&(*folders)[i]);
	free(*folders);
	*folders = NULL;
}

int store_folder_claim_recent(struct store *st, const char *name, uint32_t *first_r,
			      uint32_t *next_r, enum tern_error *err_r)
{
	char canon[TERN_FOLDER_NAME_MAX + 1];
	sqlite3_stmt *sel = NULL, *upd = NULL;
	STORE_TX(tx);
	int ret = -1, rc;

	if (store_folder_name_canon(name, canon) < 0)
		return store_err(TERN_ERR_INVALID, err_r);
	if (store_tx_begin(st, &tx, err_r) < 0)
		return -1;
	/* Rare (once per SELECT and per batch of new mail): not worth a cached
	 * statement. */
	rc = sqlite3_prepare_v2(st->db, "SELECT id, recent_uid, uidnext FROM folders WHERE name = ?1",
				-1, &sel, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(sel, 1, canon, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(sel);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		store_fail(st, rc, err_r);
		goto out;
	}
	int64_t id = sqlite3_column_int64(sel, 0);
	uint32_t first = (uint32_t)sqlite3_column_int64(sel, 1);
	uint32_t next = (uint32_t)sqlite3_column_int64(sel, 2);
	if (first < next) {
		rc = sqlite3_prepare_v2(st->db, "UPDATE folders SET recent_uid = ?2 WHERE id = ?1", -1,
					&upd, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(upd, 1, id);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(upd, 2, next);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(upd);
		if (rc != SQLITE_DONE) {
			store_fail(st, rc, err_r);
			goto out;
		}
	}
	if (store_tx_commit(&tx, err_r) < 0)
		goto out;
	*first_r = first < next ? first : next;
	*next_r = next;
	ret = 1;
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	return ret;
}

/* Runs sql, a one-row query of the folder named ?1 (with ?2 = arg2 when
 * the query has it), for the ad-hoc reads below: rare enough not to take a
 * cached statement. 1 with *sel_r on the row (finalize it), 0 no such
 * folder, -1 error (*err_r). */
static int folder_row(struct store *st, const char *name, const char *sql, int64_t arg2,
		      sqlite3_stmt **sel_r, enum tern_error *err_r)
{
	char canon[TERN_FOLDER_NAME_MAX + 1];
	sqlite3_stmt *sel = NULL;

	*sel_r = NULL;
	if (store_folder_name_canon(name, canon) < 0)
		return 0;       /* no folder can have that name */
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &sel, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(sel, 1, canon, -1, SQLITE_TRANSIENT);
	if (rc == SQLITE_OK && sqlite3_bind_parameter_count(sel) >= 2)
		rc = sqlite3_bind_int64(sel, 2, arg2);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(sel);
	if (rc == SQLITE_ROW) {
		*sel_r = sel;
		return 1;
	}
	sqlite3_finalize(sel);
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, rc, err_r);
}

int store_folder_peek_recent(struct store *st, const char *name, uint32_t *first_r,
			     uint32_t *next_r, uint32_t *count_r, enum tern_error *err_r)
{
	sqlite3_stmt *sel;
	/* One statement, so the mark and the count come from one snapshot.
	 * The count walks the primary key from the mark: as cheap as the
	 * number of unclaimed messages. */
	int r = folder_row(st, name,
			   "SELECT f.recent_uid, f.uidnext, (SELECT count(*) FROM messages m"
			   " WHERE m.folder_id = f.id AND m.uid >= f.recent_uid)"
			   " FROM folders f WHERE f.name = ?1",
			   0, &sel, err_r);
	if (r <= 0)
		return r;
	uint32_t first = (uint32_t)sqlite3_column_int64(sel, 0);
	uint32_t next = (uint32_t)sqlite3_column_int64(sel, 1);
	*first_r = first < next ? first : next;
	*next_r = next;
	*count_r = (uint32_t)sqlite3_column_int64(sel, 2);
	sqlite3_finalize(sel);
	return 1;
}

int store_folder_deleted(struct store *st, const char *name, uint32_t *count_r,
			 uint64_t *bytes_r, enum tern_error *err_r)
{
	sqlite3_stmt *sel;
	*count_r = 0;
	*bytes_r = 0;
	/* One pass over the folder's rows inside SQLite: no index knows
	 * \Deleted, but no message is built either. */
	int r = folder_row(st, name,
			   "SELECT count(m.uid), total(m.size) FROM folders f LEFT JOIN messages m"
			   " ON m.folder_id = f.id AND (m.flags & ?2) != 0"
			   " WHERE f.name = ?1 GROUP BY f.id",
			   STORE_FLAG_DELETED, &sel, err_r);
	if (r <= 0)
		return r;
	*count_r = (uint32_t)sqlite3_column_int64(sel, 0);
	*bytes_r = (uint64_t)sqlite3_column_double(sel, 1);
	sqlite3_finalize(sel);
	return 1;
}
