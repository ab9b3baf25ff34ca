/* The directory's change counter (directory_ops.generation, schema 3):
 * every user change and every node row added, removed or re-addressed
 * bumps it; a heartbeat, a stop, a re-registration with the same cluster
 * address and a failed change do not. A version 2 file is migrated with
 * its rows intact and counts from there. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/directory.h"

#define T0 1700000000000ll

struct fixture {
	char tmpdir[64];
	char path[128];
	struct directory *dir;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char *err = NULL;

	strcpy(fx->tmpdir, "/tmp/tern-test-gen-XXXXXX");
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

static uint64_t gen_of(struct directory *dir)
{
	uint64_t gen = 0;
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(directory_generation(dir, &gen, &err), 0);
	assert_true(gen > 0);
	return gen;
}

/* Asserts the counter moved (changed) or not since *last, and updates it. */
static void expect(struct directory *dir, uint64_t *last, bool changed, const char *what)
{
	uint64_t now = gen_of(dir);

	if (changed != (now != *last))
		fail_msg("%s: generation %llu -> %llu, expected %s", what,
			 (unsigned long long)*last, (unsigned long long)now,
			 changed ? "a change" : "none");
	if (changed)
		assert_true(now > *last);
	*last = now;
}

static struct dir_node node(const char *name, const char *cluster)
{
	return (struct dir_node){ .name = (char *)name, .lmtp_addr = (char *)"127.0.0.1:24",
				  .cluster_addr = (char *)cluster, .version = (char *)"0.1.0",
				  .started_ms = T0 };
}

static void test_users_bump(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	struct dir_user alice = { .name = (char *)"alice", .password_hash = (char *)"{PLAIN}a",
				  .home = (char *)"node1" };
	uint64_t last = gen_of(dir);

	assert_int_equal(dir->ops->user_add(dir, &alice, &err), 0);
	expect(dir, &last, true, "user add");
	assert_int_equal(dir->ops->user_set_quota(dir, "alice", 1000, &err), 0);
	expect(dir, &last, true, "set quota");
	assert_int_equal(dir->ops->user_set_password(dir, "alice", "{PLAIN}b", &err), 0);
	expect(dir, &last, true, "set password");

	/* Failed changes and reads leave it alone. */
	assert_int_equal(dir->ops->user_add(dir, &alice, &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	expect(dir, &last, false, "duplicate add");
	assert_int_equal(dir->ops->user_set_quota(dir, "nobody", 1, &err), -1);
	expect(dir, &last, false, "set quota of nobody");
	assert_int_equal(dir->ops->user_delete(dir, "nobody", &err), -1);
	expect(dir, &last, false, "delete nobody");
	struct dir_user u = { 0 };
	assert_int_equal(directory_user_get(dir, "alice", &u, &err), 1);
	assert_int_equal(u.quota, 1000);   /* users behave as before */
	assert_int_equal(u.epoch, 1);
	assert_string_equal(u.state, "active");
	dir_user_clear(&u);
	expect(dir, &last, false, "a read");

	assert_int_equal(dir->ops->user_delete(dir, "alice", &err), 0);
	expect(dir, &last, true, "user delete");
	assert_int_equal(directory_user_get(dir, "alice", &u, &err), 0);
}

static void test_nodes_bump_on_address_only(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	struct dir_node n1 = node("node1", "127.0.0.1:7001");
	struct dir_node n1_moved = node("node1", "127.0.0.1:7009");
	uint64_t last = gen_of(dir);

	assert_int_equal(dir->ops->node_register(dir, &n1, T0, NULL, &err), 0);
	expect(dir, &last, true, "new node row");
	for (int i = 1; i <= 5; i++) {
		assert_int_equal(dir->ops->node_heartbeat(dir, "node1", T0 + i * 1000, &err), 0);
		expect(dir, &last, false, "heartbeat");
	}
	assert_int_equal(dir->ops->node_stop(dir, "node1", &err), 0);
	expect(dir, &last, false, "stop");
	/* A restart with the same addresses rewrites the row, same cluster address. */
	assert_int_equal(dir->ops->node_register(dir, &n1, T0 + 10000, NULL, &err), 0);
	expect(dir, &last, false, "re-registration, same address");
	assert_int_equal(dir->ops->node_heartbeat(dir, "node1", T0 + 11000, &err), 0);
	expect(dir, &last, false, "heartbeat");
	/* Down, then taken over at another cluster address. */
	assert_int_equal(dir->ops->node_stop(dir, "node1", &err), 0);
	assert_int_equal(dir->ops->node_register(dir, &n1_moved, T0 + 20000, NULL, &err), 0);
	expect(dir, &last, true, "cluster address change");
}

static void test_node_delete_bumps(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	struct dir_node n2 = node("node2", "127.0.0.1:7002");
	sqlite3 *db = NULL;

	assert_int_equal(dir->ops->node_register(dir, &n2, T0, NULL, &err), 0);
	uint64_t last = gen_of(dir);
	/* No op removes a node row yet; an administrator's DELETE must count. */
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM nodes WHERE name = 'node2'", NULL, NULL,
				      NULL), SQLITE_OK);
	sqlite3_close(db);
	expect(dir, &last, true, "node row deleted");
}

/* Two handles (two processes in real life): one writes, the other sees it. */
static void test_seen_by_another_handle(void **state)
{
	struct fixture *fx = *state;
	struct directory *other = NULL;
	char *errmsg = NULL;
	enum tern_error err = TERN_ERR_NONE;
	struct dir_user bob = { .name = (char *)"bob", .home = (char *)"node1" };

	assert_int_equal(directory_open(fx->path, &other, &errmsg), 0);
	uint64_t before = gen_of(other);
	assert_int_equal(fx->dir->ops->user_add(fx->dir, &bob, &err), 0);
	assert_true(gen_of(other) > before);
	directory_close(&other);
}

static int query_int(const char *path, const char *sql, int64_t *v_r)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int ret = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		*v_r = sqlite3_column_int64(st, 0);
		ret = 0;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ret;
}

/* What a version 2 build wrote: schema 2, one user, one registered node. */
static const char v2_schema[] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);"
	"INSERT INTO meta VALUES ('schema_version', '2');"
	"CREATE TABLE users (name TEXT PRIMARY KEY NOT NULL, password_hash TEXT NOT NULL "
	"DEFAULT '', home TEXT NOT NULL DEFAULT '', epoch INTEGER NOT NULL DEFAULT 1, "
	"state TEXT NOT NULL DEFAULT 'active', quota INTEGER NOT NULL DEFAULT 0, "
	"created INTEGER NOT NULL);"
	"CREATE TABLE nodes (name TEXT PRIMARY KEY NOT NULL, lmtp_addr TEXT NOT NULL DEFAULT '', "
	"imap_addr TEXT NOT NULL DEFAULT '', pop3_addr TEXT NOT NULL DEFAULT '', "
	"admin_addr TEXT NOT NULL DEFAULT '', updated INTEGER NOT NULL, "
	"cluster_addr TEXT NOT NULL DEFAULT '', version TEXT NOT NULL DEFAULT '', "
	"started INTEGER NOT NULL DEFAULT 0, heartbeat INTEGER NOT NULL DEFAULT 0, "
	"stopped INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE moves (id INTEGER PRIMARY KEY, user TEXT NOT NULL, source TEXT NOT NULL, "
	"destination TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued', "
	"phase_detail TEXT NOT NULL DEFAULT '', messages_total INTEGER NOT NULL DEFAULT 0, "
	"messages_done INTEGER NOT NULL DEFAULT 0, bytes_done INTEGER NOT NULL DEFAULT 0, "
	"lease_owner TEXT, lease_expires INTEGER, created INTEGER NOT NULL, "
	"updated INTEGER NOT NULL, error TEXT);"
	"CREATE INDEX moves_user ON moves (user);"
	"INSERT INTO users VALUES ('carol', '{PLAIN}c', 'node7', 4, 'moving', 77, 1600000000);"
	"INSERT INTO nodes VALUES ('node7', '10.0.0.7:24', '', '', '', 1600000000, "
	"'10.0.0.7:7000', '0.1.0', 1600000000000, 1600000001000, 0);";

static void test_migrates_v2(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = NULL;
	struct dir_user u = { 0 };
	struct dir_node n = { 0 };
	char path[160], *errmsg = NULL;
	enum tern_error err = TERN_ERR_NONE;
	sqlite3 *db = NULL;
	int64_t v = 0;

	snprintf(path, sizeof(path), "%s/v2.db", fx->tmpdir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v2_schema, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(directory_open(path, &dir, &errmsg), 0);
	assert_int_equal(query_int(path, "SELECT value FROM meta WHERE key = 'schema_version'",
				   &v), 0);
	assert_int_equal(v, DIRECTORY_SCHEMA_VERSION);   /* later versions migrate through 3 */
	assert_int_equal(directory_user_get(dir, "carol", &u, &err), 1);
	assert_string_equal(u.home, "node7");
	assert_string_equal(u.password_hash, "{PLAIN}c");
	assert_int_equal(u.epoch, 4);
	assert_string_equal(u.state, "moving");
	assert_int_equal(u.quota, 77);
	assert_int_equal(u.created, 1600000000);
	dir_user_clear(&u);
	assert_int_equal(dir->ops->node_get(dir, "node7", &n, &err), 1);
	assert_string_equal(n.cluster_addr, "10.0.0.7:7000");
	assert_int_equal(n.heartbeat_ms, 1600000001000);
	dir_node_clear(&n);
	uint64_t last = gen_of(dir);
	assert_int_equal(last, 1);   /* a migrated file starts counting at 1 */
	assert_int_equal(dir->ops->user_set_quota(dir, "carol", 78, &err), 0);
	expect(dir, &last, true, "set quota after the migration");
	assert_int_equal(dir->ops->node_heartbeat(dir, "node7", T0, &err), 0);
	expect(dir, &last, false, "heartbeat after the migration");
	directory_close(&dir);

	/* Opened again: no second migration, the counter kept. */
	assert_int_equal(directory_open(path, &dir, &errmsg), 0);
	assert_int_equal(gen_of(dir), last);
	assert_int_equal(query_int(path, "SELECT count(*) FROM generation", &v), 0);
	assert_int_equal(v, 1);
	directory_close(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_users_bump, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nodes_bump_on_address_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_node_delete_bumps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seen_by_another_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrates_v2, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
