/* The directory's node registry: registration and its conflict rule (a live
 * node with other addresses keeps its name; a restart with the same
 * addresses or a stale row is taken over), heartbeats, clean stops, the
 * up/down rule, and the migration of a version 1 file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "directory/directory.h"

#define T0 1700000000000ll /* an arbitrary "now", unix ms */

struct fixture {
	char tmpdir[64];
	char path[128];
	struct directory *dir;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char *err = NULL;

	strcpy(fx->tmpdir, "/tmp/tern-test-nodes-XXXXXX");
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

static struct dir_node node_at(const char *name, const char *host)
{
	static char addrs[4][4][64];
	static int next;
	char (*a)[64] = addrs[next++ % 4];

	snprintf(a[0], 64, "%s:24", host);
	snprintf(a[1], 64, "%s:143", host);
	snprintf(a[2], 64, "%s:110", host);
	snprintf(a[3], 64, "%s:7000", host);
	return (struct dir_node){ .name = (char *)name, .lmtp_addr = a[0], .imap_addr = a[1],
				  .pop3_addr = a[2], .cluster_addr = a[3],
				  .version = (char *)"0.1.0", .started_ms = T0 - 10 };
}

static void test_register_get_list(void **state)
{
	struct fixture *fx = *state;
	struct dir_node n2 = node_at("node2", "10.0.0.2");
	struct dir_node n1 = node_at("node1", "10.0.0.1");
	struct dir_node bad = { .name = (char *)"" };
	struct dir_node spaced = { .name = (char *)"node 3" };
	struct dir_node got = { 0 }, *nodes = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(fx->dir->ops->node_get(fx->dir, "node1", &got, &err), 0);
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &n2, T0, NULL, &err), 0);
	n1.admin_addr = (char *)"10.0.0.1:8080";
	n1.pop3_addr = NULL; /* off: stored as "" */
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &n1, T0, NULL, &err), 0);
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &bad, T0, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &spaced, T0, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);

	assert_int_equal(fx->dir->ops->node_get(fx->dir, "node1", &got, &err), 1);
	assert_string_equal(got.lmtp_addr, "10.0.0.1:24");
	assert_string_equal(got.imap_addr, "10.0.0.1:143");
	assert_string_equal(got.pop3_addr, "");
	assert_string_equal(got.admin_addr, "10.0.0.1:8080");
	assert_string_equal(got.cluster_addr, "10.0.0.1:7000");
	assert_string_equal(got.version, "0.1.0");
	assert_int_equal(got.started_ms, T0 - 10);
	assert_int_equal(got.heartbeat_ms, T0);
	assert_false(got.stopped);
	assert_int_equal(got.updated, T0 / 1000);
	assert_true(dir_node_up(&got, T0));
	dir_node_clear(&got);
	assert_null(got.name);

	assert_int_equal(fx->dir->ops->node_list(fx->dir, &nodes, &count, &err), 0);
	assert_int_equal(count, 2);
	assert_string_equal(nodes[0].name, "node1");
	assert_string_equal(nodes[1].name, "node2");
	assert_string_equal(nodes[1].cluster_addr, "10.0.0.2:7000");
	dir_nodes_free(&nodes, count);
	assert_null(nodes);
}

static void test_up_down_rule(void **state)
{
	struct dir_node n = { .heartbeat_ms = T0 };

	(void)state;
	assert_true(dir_node_up(&n, T0));
	assert_true(dir_node_up(&n, T0 + TERN_NODE_DOWN_AFTER_MS - 1));
	assert_false(dir_node_up(&n, T0 + TERN_NODE_DOWN_AFTER_MS));
	assert_int_equal(dir_node_heartbeat_age_ms(&n, T0 + 1234), 1234);
	/* Another host's clock ahead of ours: fresh, age 0. */
	assert_true(dir_node_up(&n, T0 - 3000));
	assert_int_equal(dir_node_heartbeat_age_ms(&n, T0 - 3000), 0);
	n.stopped = true;
	assert_false(dir_node_up(&n, T0));
	n.stopped = false;
	n.heartbeat_ms = 0;
	assert_false(dir_node_up(&n, T0));
	assert_int_equal(dir_node_heartbeat_age_ms(&n, T0), -1);
	assert_true(dir_wall_ms() > T0);
}

static void test_conflict_and_takeover(void **state)
{
	struct fixture *fx = *state;
	struct dir_node first = node_at("node1", "127.0.0.1");
	struct dir_node second = node_at("node1", "127.0.0.2");
	struct dir_node restart = node_at("node1", "127.0.0.1");
	struct dir_node other = { 0 }, got = { 0 };
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(fx->dir->ops->node_register(fx->dir, &first, T0, NULL, &err), 0);

	/* Live, other addresses: refused, the holder reported, nothing written. */
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &second, T0 + 1000, &other, &err),
			 -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	assert_string_equal(other.name, "node1");
	assert_string_equal(other.cluster_addr, "127.0.0.1:7000");
	assert_int_equal(dir_node_heartbeat_age_ms(&other, T0 + 1000), 1000);
	dir_node_clear(&other);
	/* Without conflict_r the refusal is the same. */
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &second, T0 + 1000, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	/* A cluster address alone differing is a conflict too. */
	restart.cluster_addr = (char *)"127.0.0.1:7001";
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &restart, T0 + 1000, NULL, &err),
			 -1);
	restart.cluster_addr = first.cluster_addr;
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "node1", &got, &err), 1);
	assert_string_equal(got.imap_addr, "127.0.0.1:143");
	assert_int_equal(got.heartbeat_ms, T0);
	dir_node_clear(&got);

	/* The same addresses: a restart after a crash takes the row at once. */
	restart.started_ms = T0 + 2000;
	restart.version = (char *)"0.2.0";
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &restart, T0 + 2000, NULL, &err), 0);
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "node1", &got, &err), 1);
	assert_int_equal(got.started_ms, T0 + 2000);
	assert_string_equal(got.version, "0.2.0");
	dir_node_clear(&got);

	/* Stale heartbeat: another node may take the name. */
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &second,
						     T0 + 2000 + TERN_NODE_DOWN_AFTER_MS, NULL, &err),
			 0);
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "node1", &got, &err), 1);
	assert_string_equal(got.imap_addr, "127.0.0.2:143");
	dir_node_clear(&got);

	/* Stopped cleanly: taken over at once, even with a fresh heartbeat. */
	assert_int_equal(fx->dir->ops->node_stop(fx->dir, "node1", &err), 0);
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &first,
						     T0 + 2001 + TERN_NODE_DOWN_AFTER_MS, NULL, &err),
			 0);
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "node1", &got, &err), 1);
	assert_string_equal(got.imap_addr, "127.0.0.1:143");
	assert_false(got.stopped);
	dir_node_clear(&got);
}

static void test_heartbeat_and_stop(void **state)
{
	struct fixture *fx = *state;
	struct dir_node n = node_at("node1", "10.0.0.1");
	struct dir_node got = { 0 };
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(fx->dir->ops->node_register(fx->dir, &n, T0, NULL, &err), 0);
	assert_int_equal(fx->dir->ops->node_heartbeat(fx->dir, "node1", T0 + 1000, &err), 0);
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "node1", &got, &err), 1);
	assert_int_equal(got.heartbeat_ms, T0 + 1000);
	assert_int_equal(got.started_ms, T0 - 10);
	assert_true(dir_node_up(&got, T0 + 1000 + TERN_NODE_DOWN_AFTER_MS - 1));
	dir_node_clear(&got);

	assert_int_equal(fx->dir->ops->node_stop(fx->dir, "node1", &err), 0);
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "node1", &got, &err), 1);
	assert_true(got.stopped);
	assert_int_equal(got.heartbeat_ms, T0 + 1000);
	assert_false(dir_node_up(&got, T0 + 1000));
	dir_node_clear(&got);

	/* A beat proves the node runs: it clears a stop written by a failed
	 * second start under the same name and addresses. */
	assert_int_equal(fx->dir->ops->node_heartbeat(fx->dir, "node1", T0 + 2000, &err), 0);
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "node1", &got, &err), 1);
	assert_false(got.stopped);
	dir_node_clear(&got);

	err = TERN_ERR_NONE;
	assert_int_equal(fx->dir->ops->node_heartbeat(fx->dir, "ghost", T0, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	err = TERN_ERR_NONE;
	assert_int_equal(fx->dir->ops->node_stop(fx->dir, "ghost", &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
}

static void test_two_handles_one_name(void **state)
{
	struct fixture *fx = *state;
	struct directory *other = NULL;
	struct dir_node a = node_at("node1", "10.0.0.1");
	struct dir_node b = node_at("node1", "10.0.0.2");
	enum tern_error err = TERN_ERR_NONE;
	char *errmsg = NULL;

	/* Two processes on one file: the second sees the first's live row. */
	assert_int_equal(directory_open(fx->path, &other, &errmsg), 0);
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &a, T0, NULL, &err), 0);
	assert_int_equal(other->ops->node_register(other, &b, T0 + 10, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	/* The refused registration left no transaction open on that handle. */
	assert_int_equal(other->ops->node_heartbeat(other, "node1", T0 + 20, &err), 0);
	assert_int_equal(fx->dir->ops->node_heartbeat(fx->dir, "node1", T0 + 30, &err), 0);
	directory_close(&other);
}

static int64_t query_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The schema a version 1 build wrote, with one user and one node. */
static const char v1_schema[] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);"
	"INSERT INTO meta VALUES ('schema_version', '1');"
	"CREATE TABLE users (name TEXT PRIMARY KEY NOT NULL, password_hash TEXT NOT NULL "
	"DEFAULT '', home TEXT NOT NULL DEFAULT '', epoch INTEGER NOT NULL DEFAULT 1, "
	"state TEXT NOT NULL DEFAULT 'active', quota INTEGER NOT NULL DEFAULT 0, "
	"created INTEGER NOT NULL);"
	"CREATE TABLE nodes (name TEXT PRIMARY KEY NOT NULL, lmtp_addr TEXT NOT NULL DEFAULT '', "
	"imap_addr TEXT NOT NULL DEFAULT '', pop3_addr TEXT NOT NULL DEFAULT '', "
	"admin_addr TEXT NOT NULL DEFAULT '', updated INTEGER NOT NULL);"
	"CREATE TABLE moves (id INTEGER PRIMARY KEY, user TEXT NOT NULL, source TEXT NOT NULL, "
	"destination TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued', "
	"phase_detail TEXT NOT NULL DEFAULT '', messages_total INTEGER NOT NULL DEFAULT 0, "
	"messages_done INTEGER NOT NULL DEFAULT 0, bytes_done INTEGER NOT NULL DEFAULT 0, "
	"lease_owner TEXT, lease_expires INTEGER, created INTEGER NOT NULL, "
	"updated INTEGER NOT NULL, error TEXT);"
	"CREATE INDEX moves_user ON moves (user);"
	"INSERT INTO users VALUES ('alice', '{PLAIN}a', 'old1', 3, 'active', 42, 1600000000);"
	"INSERT INTO nodes VALUES ('old1', '10.0.0.9:24', '10.0.0.9:143', '', '', 1600000000);";

static void test_migrates_v1(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = NULL;
	struct dir_user u = { 0 };
	struct dir_node got = { 0 };
	struct dir_node again = node_at("old1", "10.0.0.7");
	char path[160], *errmsg = NULL;
	enum tern_error err = TERN_ERR_NONE;
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/v1.db", fx->tmpdir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v1_schema, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(directory_open(path, &dir, &errmsg), 0);
	assert_int_equal(query_int(path, "SELECT value FROM meta WHERE key = 'schema_version'"),
			 DIRECTORY_SCHEMA_VERSION);
	assert_true(DIRECTORY_SCHEMA_VERSION >= 2);   /* later versions migrate through 2 */
	/* Users are untouched. */
	assert_int_equal(directory_user_get(dir, "alice", &u, &err), 1);
	assert_string_equal(u.home, "old1");
	assert_int_equal(u.epoch, 3);
	assert_int_equal(u.quota, 42);
	dir_user_clear(&u);
	/* The old node row keeps its addresses and reads as down: it never beat. */
	assert_int_equal(dir->ops->node_get(dir, "old1", &got, &err), 1);
	assert_string_equal(got.lmtp_addr, "10.0.0.9:24");
	assert_string_equal(got.imap_addr, "10.0.0.9:143");
	assert_string_equal(got.cluster_addr, "");
	assert_string_equal(got.version, "");
	assert_int_equal(got.started_ms, 0);
	assert_int_equal(got.heartbeat_ms, 0);
	assert_false(got.stopped);
	assert_int_equal(got.updated, 1600000000);
	assert_int_equal(got.number, 1);   /* numbered by the migration */
	assert_false(dir_node_up(&got, dir_wall_ms()));
	dir_node_clear(&got);
	/* So a new node may take its name, with other addresses. */
	assert_int_equal(dir->ops->node_register(dir, &again, T0, NULL, &err), 0);
	directory_close(&dir);

	/* Opening again does not migrate twice. */
	assert_int_equal(directory_open(path, &dir, &errmsg), 0);
	assert_int_equal(dir->ops->node_get(dir, "old1", &got, &err), 1);
	assert_string_equal(got.cluster_addr, "10.0.0.7:7000");
	dir_node_clear(&got);
	directory_close(&dir);
}

/* The number the directory gave name (asserts the node exists). */
static uint32_t number_of(struct directory *dir, const char *name)
{
	struct dir_node got = { 0 };
	enum tern_error err = TERN_ERR_NONE;
	assert_int_equal(dir->ops->node_get(dir, name, &got, &err), 1);
	uint32_t number = got.number;
	dir_node_clear(&got);
	return number;
}

/* Every name gets a number of its own at its first registration and keeps
 * it through restarts and take-overs; a name that comes later never gets a
 * number another name had, even when that name's row was deleted. */
static void test_node_numbers(void **state)
{
	struct fixture *fx = *state;
	struct dir_node a = node_at("alpha", "10.0.0.1");
	struct dir_node b = node_at("beta", "10.0.0.2");
	struct dir_node c = node_at("gamma", "10.0.0.3");
	enum tern_error err = TERN_ERR_NONE;
	char sql[256];
	sqlite3 *db = NULL;

	assert_int_equal(fx->dir->ops->node_register(fx->dir, &a, T0, NULL, &err), 0);
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &b, T0, NULL, &err), 0);
	assert_int_equal(number_of(fx->dir, "alpha"), 1);
	assert_int_equal(number_of(fx->dir, "beta"), 2);
	/* A restart, and a take-over of a stopped row with other addresses. */
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &a, T0 + 1000, NULL, &err), 0);
	assert_int_equal(fx->dir->ops->node_stop(fx->dir, "beta", &err), 0);
	b = node_at("beta", "10.0.0.9");
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &b, T0 + 2000, NULL, &err), 0);
	assert_int_equal(number_of(fx->dir, "alpha"), 1);
	assert_int_equal(number_of(fx->dir, "beta"), 2);
	/* An operator deletes beta's row by hand: gamma still gets 3, and
	 * beta, registering again, its old 2. */
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	snprintf(sql, sizeof(sql), "DELETE FROM nodes WHERE name = 'beta'");
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &c, T0 + 3000, NULL, &err), 0);
	assert_int_equal(number_of(fx->dir, "gamma"), 3);
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &b, T0 + 4000, NULL, &err), 0);
	assert_int_equal(number_of(fx->dir, "beta"), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_get_list, setup, teardown),
		cmocka_unit_test(test_up_down_rule),
		cmocka_unit_test_setup_teardown(test_conflict_and_takeover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_and_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles_one_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrates_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_node_numbers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
