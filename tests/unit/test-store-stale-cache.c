/* Unit tests of stale cached parses (store schema v6, store-stale.c): the
 * migration from v5 marks every blob, a read of a marked blob reparses its
 * raw bytes without writing (readers run on loop threads) and says so
 * through store_stale_seen, store_fix_stale (the worker's) writes the
 * parses back in parts, a write transaction takes the fix along, and an
 * append under a reused blob id is never taken as stale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/mime.h"
#include "store/store.h"

/* issue 11's addresses: comments inside an address, groups */
static const char MSG[] =
	"From: <user-from (comment)@ (comment) domain.org>\r\n"
	"To: empty:;\r\n"
	"Cc: user2: blah@domain1.org;\r\n"
	"Subject: old parse\r\n"
	"Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
	"\r\n"
	"body\r\n";

#define OLD_ENVELOPE "(NIL \"old parse\" NIL NIL NIL NIL NIL NIL NIL NIL)"

struct fixture {
	char dir[64];
	char *path;
	struct store *st;
};

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb, (void)type, (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	enum tern_error err;

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/tern-store-cache-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(store_open(fx->dir, "alice", true, &fx->st, &err), 0);
	fx->path = store_path(fx->dir, "alice");
	assert_non_null(fx->path);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	store_close(&fx->st);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx->path);
	free(fx);
	return 0;
}

static uint32_t put(struct store *st, const char *folder, const char *text,
		    const struct store_msg_cache *cache)
{
	struct store_new_msg m = {
		.folder = folder, .data = text, .size = strlen(text),
		.internal_date = 1600000000, .cache = cache,
	};
	uint32_t uid = 0, uidvalidity = 0;
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(store_append(st, &m, &uid, &uidvalidity, &err), 0);
	return uid;
}

static void sql(const char *path, const char *script)
{
	sqlite3 *db;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	int rc = sqlite3_exec(db, script, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		print_error("%s\n", msg);
	sqlite3_free(msg);
	sqlite3_close(db);
	assert_int_equal(rc, SQLITE_OK);
}

static int64_t sql_int(const char *path, const char *query)
{
	sqlite3 *db;
	sqlite3_stmt *stmt;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, query, -1, &stmt, NULL), SQLITE_OK);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

static int64_t stale_count(const struct fixture *fx)
{
	return sql_int(fx->path, "SELECT count(*) FROM blobs_stale");
}

static int64_t old_count(const struct fixture *fx)
{
	return sql_int(fx->path, "SELECT count(*) FROM blobs WHERE envelope = '" OLD_ENVELOPE "'");
}

/* What the parser makes of MSG now. */
static void current_parse(struct store_msg_cache *c)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(mime_summarize(MSG, strlen(MSG), c), 0);
	assert_non_null(c->envelope);
	assert_string_not_equal(c->envelope, OLD_ENVELOPE);
}

static void assert_current(struct store *st, const char *folder, uint32_t uid)
{
	struct store_msg_cache want, got = { 0 };
	enum tern_error err = TERN_ERR_NONE;

	current_parse(&want);
	assert_int_equal(store_msg_cache(st, folder, uid, &got, &err), 1);
	assert_string_equal(got.envelope, want.envelope);
	assert_string_equal(got.bodystructure, want.bodystructure);
	assert_string_equal(got.body, want.body);
	assert_string_equal(got.subject, want.subject);
	assert_int_equal(got.sent_date, want.sent_date);
	store_msg_cache_clear(&want);
	store_msg_cache_clear(&got);
}

/* Turns the store into a v5 one whose blobs hold an old parse. */
static void make_v5_with_old_parse(struct fixture *fx)
{
	store_close(&fx->st);
	sql(fx->path, "DROP TABLE blobs_stale;"
		      "UPDATE blobs SET envelope = '" OLD_ENVELOPE "', bodystructure = 'old',"
		      " body = 'old';"
		      "UPDATE meta SET value = 5 WHERE key = 'schema_version';");
	enum tern_error err;
	assert_int_equal(store_open(fx->dir, "alice", false, &fx->st, &err), 0);
}

static void test_new_store_has_nothing_stale(void **state)
{
	struct fixture *fx = *state;

	put(fx->st, "INBOX", MSG, NULL);
	assert_int_equal(sql_int(fx->path, "SELECT value FROM meta WHERE key = 'schema_version'"),
			 6);
	assert_int_equal(stale_count(fx), 0);
	assert_current(fx->st, "INBOX", 1);
}

/* A reader on a loop thread opens with store_open_current: an old schema
 * is not upgraded there (a write and a scan of the whole store) but
 * refused, and is current once a writer's store_open has upgraded it. */
static void test_open_current_leaves_the_upgrade_to_a_writer(void **state)
{
	struct fixture *fx = *state;
	enum tern_error err = TERN_ERR_NONE;
	struct store *reader = NULL;

	put(fx->st, "INBOX", MSG, NULL);
	store_close(&fx->st);
	sql(fx->path, "DROP TABLE blobs_stale;"
		      "UPDATE meta SET value = 5 WHERE key = 'schema_version';");
	assert_int_equal(store_open_current(fx->dir, "alice", &reader, &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_null(reader);
	assert_int_equal(sql_int(fx->path, "SELECT value FROM meta WHERE key = 'schema_version'"),
			 5);                                       /* untouched */
	assert_int_equal(store_open_current(fx->dir, "nobody", &reader, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(store_open(fx->dir, "alice", false, &fx->st, &err), 0);
	assert_int_equal(store_open_current(fx->dir, "alice", &reader, &err), 0);
	store_close(&reader);
}

static void test_migration_marks_then_first_read_reparses(void **state)
{
	struct fixture *fx = *state;
	enum tern_error err = TERN_ERR_NONE;

	put(fx->st, "INBOX", MSG, NULL);
	put(fx->st, "INBOX", MSG, NULL);
	uint32_t *src = NULL, *dst = NULL, uidvalidity = 0;
	size_t copied = 0;
	assert_int_equal(store_copy(fx->st, "INBOX", (uint32_t[]){ 1 }, 1, "Trash", false, &src,
				    &dst, &copied, &uidvalidity, &err), 0);
	assert_int_equal(copied, 1);
	free(src);
	free(dst);
	make_v5_with_old_parse(fx);
	assert_int_equal(stale_count(fx), 2);   /* two blobs, the copy shares one */
	assert_int_equal(old_count(fx), 2);

	assert_false(store_stale_seen(fx->st));
	assert_current(fx->st, "Trash", 1);     /* the copy: its blob is INBOX 1's */
	assert_current(fx->st, "INBOX", 1);
	assert_current(fx->st, "INBOX", 2);
	assert_int_equal(stale_count(fx), 2);   /* a read writes nothing */
	assert_int_equal(old_count(fx), 2);
	assert_true(store_stale_seen(fx->st));
	assert_false(store_stale_seen(fx->st)); /* said once */

	unsigned fixed = 0;
	assert_int_equal(store_fix_stale(fx->st, 100, &fixed, &err), 0);
	assert_int_equal(fixed, 2);
	assert_int_equal(stale_count(fx), 0);
	assert_int_equal(old_count(fx), 0);
	assert_current(fx->st, "INBOX", 1);
	assert_false(store_stale_seen(fx->st));
	assert_int_equal(store_integrity_check(fx->st, &err), 1);
}

static void test_fix_goes_in_parts(void **state)
{
	struct fixture *fx = *state;
	enum tern_error err = TERN_ERR_NONE;

	for (int i = 0; i < 70; i++)
		put(fx->st, "INBOX", MSG, NULL);
	make_v5_with_old_parse(fx);
	assert_int_equal(stale_count(fx), 70);
	unsigned fixed = 0;
	assert_int_equal(store_fix_stale(fx->st, 66, &fixed, &err), 0);
	assert_int_equal(fixed, 66);            /* 64 and 2, two transactions */
	assert_int_equal(stale_count(fx), 4);
	assert_int_equal(store_fix_stale(fx->st, 66, &fixed, &err), 0);
	assert_int_equal(fixed, 4);             /* fewer than asked: none left */
	assert_int_equal(stale_count(fx), 0);
	assert_int_equal(old_count(fx), 0);
	assert_int_equal(store_fix_stale(fx->st, 66, &fixed, &err), 0);
	assert_int_equal(fixed, 0);
}

static void test_read_transaction_writes_nothing(void **state)
{
	struct fixture *fx = *state;
	enum tern_error err = TERN_ERR_NONE;

	put(fx->st, "INBOX", MSG, NULL);
	put(fx->st, "INBOX", MSG, NULL);
	make_v5_with_old_parse(fx);
	assert_int_equal(store_read_begin(fx->st, &err), 0);
	assert_current(fx->st, "INBOX", 1);
	assert_current(fx->st, "INBOX", 2);
	store_read_end(fx->st);
	assert_int_equal(stale_count(fx), 2);
	assert_int_equal(old_count(fx), 2);
	assert_true(store_stale_seen(fx->st));
}

static void test_busy_store_keeps_the_mark(void **state)
{
	struct fixture *fx = *state;
	sqlite3 *other;

	put(fx->st, "INBOX", MSG, NULL);
	make_v5_with_old_parse(fx);
	assert_int_equal(sqlite3_open(fx->path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	/* the reader gets the new parse at once, without waiting */
	assert_current(fx->st, "INBOX", 1);
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	assert_int_equal(stale_count(fx), 1);
	assert_int_equal(old_count(fx), 1);
	unsigned fixed = 0;
	enum tern_error err = TERN_ERR_NONE;
	assert_int_equal(store_fix_stale(fx->st, 10, &fixed, &err), 0);
	assert_int_equal(fixed, 1);
	assert_int_equal(stale_count(fx), 0);
	assert_int_equal(old_count(fx), 0);
}

static void test_append_under_a_reused_id_is_not_stale(void **state)
{
	struct fixture *fx = *state;
	static const struct store_msg_cache given = {
		.envelope = "(NIL \"given\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		.bodystructure = "bs", .body = "b", .subject = "given",
	};
	struct store_msg_cache got = { 0 };
	enum tern_error err = TERN_ERR_NONE;

	put(fx->st, "INBOX", MSG, NULL);
	int64_t next = sql_int(fx->path, "SELECT max(id) + 1 FROM blobs");
	char mark[96];
	snprintf(mark, sizeof(mark), "INSERT INTO blobs_stale(blob_id) VALUES (%lld)",
		 (long long)next);
	sql(fx->path, mark);   /* a deleted blob's mark, as if id next had been */
	uint32_t uid = put(fx->st, "INBOX", MSG, &given);
	assert_int_equal(stale_count(fx), 0);
	assert_int_equal(store_msg_cache(fx->st, "INBOX", uid, &got, &err), 1);
	assert_string_equal(got.envelope, given.envelope);   /* not reparsed */
	store_msg_cache_clear(&got);
}

static void test_write_transaction_takes_the_fix_along(void **state)
{
	struct fixture *fx = *state;
	enum tern_error err = TERN_ERR_NONE;

	put(fx->st, "INBOX", MSG, NULL);
	make_v5_with_old_parse(fx);
	assert_int_equal(store_begin(fx->st, &err), 0);
	assert_current(fx->st, "INBOX", 1);
	assert_int_equal(store_commit(fx->st, &err), 0);
	assert_int_equal(stale_count(fx), 0);
	assert_int_equal(old_count(fx), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_store_has_nothing_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_current_leaves_the_upgrade_to_a_writer,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_marks_then_first_read_reparses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_transaction_writes_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fix_goes_in_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_store_keeps_the_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_under_a_reused_id_is_not_stale, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_transaction_takes_the_fix_along, setup,
						teardown),
	};
	mime_init();    /* the store parses messages given without a cache */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
