/* The SQLite directory: users, persistence across reopen, schema version
 * bookkeeping, and the refusals (missing parent, newer schema, PostgreSQL
 * not yet); nodes are in test-directory-nodes.c. Each test works in its own
 * temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "directory/directory.h"

struct fixture {
	char tmpdir[64];
	char path[128];
	struct directory *dir;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char *err = NULL;

	strcpy(fx->tmpdir, "/tmp/tern-test-dir-XXXXXX");
	if (mkdtemp(fx->tmpdir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/directory.db", fx->tmpdir);
	if (directory_open(fx->path, &fx->dir, &err) < 0) {
		fprintf(stderr, "directory_open: %s\n", err);
		free(err);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[160];

	directory_close(&fx->dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->tmpdir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static void add_user(struct directory *dir, const char *name, const char *hash, uint64_t quota)
{
	struct dir_user u = { .name = (char *)name, .password_hash = (char *)hash,
			      .home = (char *)"node1", .quota = quota };
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(dir->ops->user_add(dir, &u, &err), 0);
	assert_int_equal(err, TERN_ERR_NONE);
}

static void test_user_add_get(void **state)
{
	struct fixture *fx = *state;
	struct dir_user u = { 0 };
	enum tern_error err = TERN_ERR_NONE;
	uint64_t count = 99;

	assert_int_equal(fx->dir->ops->user_count(fx->dir, &count, &err), 0);
	assert_int_equal(count, 0);
	add_user(fx->dir, "alice", "{PLAIN}x", 1000);
	assert_int_equal(directory_user_get(fx->dir, "alice", &u, &err), 1);
	assert_string_equal(u.name, "alice");
	assert_string_equal(u.password_hash, "{PLAIN}x");
	assert_string_equal(u.home, "node1");
	assert_int_equal(u.epoch, 1);
	assert_string_equal(u.state, "active");
	assert_int_equal(u.quota, 1000);
	assert_true(u.created > 1600000000);
	dir_user_clear(&u);
	assert_null(u.name);

	assert_int_equal(directory_user_get(fx->dir, "bob", &u, &err), 0);
	assert_null(u.name);
	assert_int_equal(fx->dir->ops->user_count(fx->dir, &count, &err), 0);
	assert_int_equal(count, 1);
}

static void test_user_add_refusals(void **state)
{
	struct fixture *fx = *state;
	struct dir_user u = { .name = (char *)"alice", .home = (char *)"node1" };
	enum tern_error err = TERN_ERR_NONE;

	add_user(fx->dir, "alice", "", 0);
	assert_int_equal(fx->dir->ops->user_add(fx->dir, &u, &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	err = TERN_ERR_NONE;
	u.name = (char *)"Not Valid";
	assert_int_equal(fx->dir->ops->user_add(fx->dir, &u, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	u.name = (char *)"../etc";
	assert_int_equal(fx->dir->ops->user_add(fx->dir, &u, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
}

static void test_user_list_delete(void **state)
{
	struct fixture *fx = *state;
	struct dir_user *users = NULL;
	size_t n = 0;
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(fx->dir->ops->user_list(fx->dir, &users, &n, &err), 0);
	assert_int_equal(n, 0);
	dir_users_free(&users, n);
	/* Inserted out of order; listed sorted. Enough to grow the array. */
	for (int i = 39; i >= 0; i--) {
		char name[16];

		snprintf(name, sizeof(name), "user%02d", i);
		add_user(fx->dir, name, "h", (uint64_t)i);
	}
	assert_int_equal(fx->dir->ops->user_list(fx->dir, &users, &n, &err), 0);
	assert_int_equal(n, 40);
	assert_string_equal(users[0].name, "user00");
	assert_string_equal(users[39].name, "user39");
	assert_int_equal(users[39].quota, 39);
	dir_users_free(&users, n);
	assert_null(users);

	assert_int_equal(fx->dir->ops->user_delete(fx->dir, "user05", &err), 0);
	assert_int_equal(fx->dir->ops->user_delete(fx->dir, "user05", &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(fx->dir->ops->user_list(fx->dir, &users, &n, &err), 0);
	assert_int_equal(n, 39);
	assert_string_equal(users[5].name, "user06");
	dir_users_free(&users, n);
}

static void test_user_passwd_quota(void **state)
{
	struct fixture *fx = *state;
	struct dir_user u = { 0 };
	enum tern_error err = TERN_ERR_NONE;

	add_user(fx->dir, "carol", "old", 5);
	assert_int_equal(fx->dir->ops->user_set_password(fx->dir, "carol", "new", &err), 0);
	assert_int_equal(fx->dir->ops->user_set_quota(fx->dir, "carol", 1ull << 40, &err), 0);
	assert_int_equal(directory_user_get(fx->dir, "carol", &u, &err), 1);
	assert_string_equal(u.password_hash, "new");
	assert_int_equal(u.quota, 1ull << 40);
	dir_user_clear(&u);

	assert_int_equal(fx->dir->ops->user_set_password(fx->dir, "nobody", "x", &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	err = TERN_ERR_NONE;
	assert_int_equal(fx->dir->ops->user_set_quota(fx->dir, "nobody", 1, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(fx->dir->ops->user_set_quota(fx->dir, "carol", UINT64_MAX, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
}

static int query_int(const char *path, const char *sql, int64_t *v_r)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		*v_r = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

static void test_reopen_and_schema(void **state)
{
	struct fixture *fx = *state;
	struct dir_node n = { .name = (char *)"node9" };
	struct dir_user u = { 0 };
	struct dir_node *nodes = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;
	char *errmsg = NULL;
	int64_t v = 0;

	add_user(fx->dir, "dave", "{PLAIN}d", 7);
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &n, 1700000000000, NULL, &err), 0);
	directory_close(&fx->dir);
	assert_null(fx->dir);

	assert_int_equal(query_int(fx->path, "SELECT value FROM meta WHERE key = 'schema_version'",
				   &v), 0);
	assert_int_equal(v, DIRECTORY_SCHEMA_VERSION);
	/* The moves table exists, empty, from version 1 on. */
	assert_int_equal(query_int(fx->path, "SELECT count(*) FROM moves", &v), 0);
	assert_int_equal(v, 0);
	/* WAL is a property of the file, seen by any later connection. */
	assert_int_equal(query_int(fx->path, "SELECT count(*) FROM pragma_journal_mode "
				   "WHERE journal_mode = 'wal'", &v), 0);
	assert_int_equal(v, 1);

	assert_int_equal(directory_open(fx->path, &fx->dir, &errmsg), 0);
	assert_int_equal(directory_user_get(fx->dir, "dave", &u, &err), 1);
	assert_string_equal(u.password_hash, "{PLAIN}d");
	assert_int_equal(u.quota, 7);
	dir_user_clear(&u);
	assert_int_equal(fx->dir->ops->node_list(fx->dir, &nodes, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_string_equal(nodes[0].name, "node9");
	dir_nodes_free(&nodes, count);
}

static void test_two_handles(void **state)
{
	struct fixture *fx = *state;
	struct directory *other = NULL;
	struct dir_user u = { 0 };
	enum tern_error err = TERN_ERR_NONE;
	char *errmsg = NULL;

	/* Two handles on one file, as two ternd processes would have. */
	assert_int_equal(directory_open(fx->path, &other, &errmsg), 0);
	add_user(fx->dir, "erin", "h", 0);
	assert_int_equal(directory_user_get(other, "erin", &u, &err), 1);
	dir_user_clear(&u);
	assert_int_equal(other->ops->user_delete(other, "erin", &err), 0);
	assert_int_equal(directory_user_get(fx->dir, "erin", &u, &err), 0);
	directory_close(&other);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = NULL;
	sqlite3 *db = NULL;
	char *err = NULL;

	directory_close(&fx->dir);
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(directory_open(fx->path, &dir, &err), -1);
	assert_null(dir);
	assert_non_null(strstr(err, "schema version 99 is newer"));
	free(err);
}

static void test_migrates_empty_file(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = NULL;
	char path[160], *err = NULL;
	sqlite3 *db = NULL;
	int64_t v = 0;

	/* An existing SQLite file without meta counts as version 0. */
	snprintf(path, sizeof(path), "%s/old.db", fx->tmpdir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE unrelated (x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(directory_open(path, &dir, &err), 0);
	add_user(dir, "frank", "h", 0);
	directory_close(&dir);
	assert_int_equal(query_int(path, "SELECT value FROM meta WHERE key = 'schema_version'", &v), 0);
	assert_int_equal(v, DIRECTORY_SCHEMA_VERSION);
}

static void test_open_errors(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = NULL;
	char path[160], *err = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/missing/directory.db", fx->tmpdir);
	assert_int_equal(directory_open(path, &dir, &err), -1);
	assert_null(dir);
	assert_non_null(strstr(err, "missing"));
	assert_non_null(strstr(err, "No such file or directory"));
	free(err);
	err = NULL;
	/* The parent was not created behind our back. */
	snprintf(path, sizeof(path), "%s/missing", fx->tmpdir);
	assert_int_equal(access(path, F_OK), -1);

	assert_int_equal(directory_open("postgresql://db/tern", &dir, &err), -1);
	assert_string_equal(err, "PostgreSQL directory is not supported yet");
	free(err);
	err = NULL;

	assert_int_equal(directory_open("", &dir, &err), -1);
	free(err);
	err = NULL;

	snprintf(path, sizeof(path), "%s/garbage.db", fx->tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("this is not a database, just some text that is long enough to matter\n", f);
	fclose(f);
	assert_int_equal(directory_open(path, &dir, &err), -1);
	assert_null(dir);
	assert_non_null(err);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_user_add_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_add_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_list_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_passwd_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_and_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrates_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
