/* The node registry thread (server/node-registry.c) against a real directory
 * file: refusal when a live node with other addresses holds the name, the
 * row it writes, a heartbeat that keeps moving, a failed heartbeat logged
 * once per episode without stopping anything, and an immediate stop that
 * marks the node down. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/limits.h"
#include "core/lock.h"
#include "directory/directory.h"
#include "server/node-registry.h"

struct fixture {
	char tmpdir[64];
	char path[128];
	char log_path[128];
	int saved_stderr;
	struct tern_config cfg;
	struct directory *dir; /* the test's own handle, as another process's */
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char *err = NULL;

	strcpy(fx->tmpdir, "/tmp/tern-test-registry-XXXXXX");
	if (fx == NULL || mkdtemp(fx->tmpdir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/directory.db", fx->tmpdir);
	snprintf(fx->log_path, sizeof(fx->log_path), "%s/stderr.log", fx->tmpdir);
	config_defaults(&fx->cfg);
	if (config_set(&fx->cfg, "node_name", "reg1", &err) < 0 ||
	    config_set(&fx->cfg, "directory", fx->path, &err) < 0 ||
	    config_set(&fx->cfg, "cluster_listen", "127.0.0.1:7777", &err) < 0 ||
	    directory_open(fx->path, &fx->dir, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err);
		free(err);
		return -1;
	}
	/* The registry logs to stderr: keep it in a file the tests read. */
	fflush(stderr);
	fx->saved_stderr = dup(STDERR_FILENO);
	int fd = open(fx->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || fx->saved_stderr < 0 || dup2(fd, STDERR_FILENO) < 0)
		return -1;
	close(fd);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[160];

	node_registry_stop();
	dup2(fx->saved_stderr, STDERR_FILENO);
	close(fx->saved_stderr);
	directory_close(&fx->dir);
	config_free(&fx->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->tmpdir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

/* How many times needle occurs in what the registry logged so far. */
static int log_count(const struct fixture *fx, const char *needle)
{
	char buf[16384];
	FILE *f = fopen(fx->log_path, "r");
	size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	int count = 0;

	if (f != NULL)
		fclose(f);
	buf[n] = '\0';
	for (const char *p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		count++;
	return count;
}

/* Polls cond until it holds or deadline_ms passes (no bare sleeps). */
#define WAIT_FOR(cond, deadline_ms)                                               \
	do {                                                                      \
		uint64_t until_ = tern_now_ms() + (deadline_ms);                  \
		while (!(cond) && tern_now_ms() < until_)                         \
			nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL); \
		assert_true(cond);                                                \
	} while (0)

static int64_t heartbeat_of(struct fixture *fx)
{
	struct dir_node n = { 0 };
	enum tern_error err = TERN_ERR_NONE;
	int64_t hb = -1;

	if (fx->dir->ops->node_get(fx->dir, "reg1", &n, &err) == 1)
		hb = n.heartbeat_ms;
	dir_node_clear(&n);
	return hb;
}

static void test_refused_while_another_runs(void **state)
{
	struct fixture *fx = *state;
	struct dir_node other = { .name = (char *)"reg1", .lmtp_addr = (char *)"10.9.9.9:24",
				  .cluster_addr = (char *)"10.9.9.9:7000" };
	enum tern_error err = TERN_ERR_NONE;
	char *msg = NULL;

	assert_int_equal(fx->dir->ops->node_register(fx->dir, &other, dir_wall_ms(), NULL, &err),
			 0);
	assert_int_equal(node_registry_start(&fx->cfg, &msg), -1);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "node reg1 is already running"));
	assert_non_null(strstr(msg, "cluster 10.9.9.9:7000"));
	assert_non_null(strstr(msg, "lmtp 10.9.9.9:24"));
	assert_non_null(strstr(msg, "ms ago"));
	free(msg);
	/* A refused start leaves the holder's row alone and stops nothing. */
	node_registry_stop();
	struct dir_node got = { 0 };
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "reg1", &got, &err), 1);
	assert_string_equal(got.lmtp_addr, "10.9.9.9:24");
	assert_false(got.stopped);
	dir_node_clear(&got);

	/* Once that node stopped cleanly, the name is ours. */
	assert_int_equal(fx->dir->ops->node_stop(fx->dir, "reg1", &err), 0);
	assert_int_equal(node_registry_start(&fx->cfg, &msg), 0);
	assert_null(msg);
}

static void test_beats_and_stops(void **state)
{
	struct fixture *fx = *state;
	struct dir_node got = { 0 };
	enum tern_error err = TERN_ERR_NONE;
	char *msg = NULL;

	assert_int_equal(node_registry_start(&fx->cfg, &msg), 0);
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "reg1", &got, &err), 1);
	assert_string_equal(got.lmtp_addr, fx->cfg.lmtp_listen);
	assert_string_equal(got.imap_addr, fx->cfg.imap_listen);
	assert_string_equal(got.cluster_addr, "127.0.0.1:7777");
	assert_string_equal(got.version, TERN_VERSION);
	assert_true(got.started_ms > 0 && got.started_ms <= got.heartbeat_ms);
	assert_true(dir_node_up(&got, dir_wall_ms()));
	int64_t first = got.heartbeat_ms;
	dir_node_clear(&got);

	WAIT_FOR(heartbeat_of(fx) > first, 3 * TERN_NODE_HEARTBEAT_MS + 2000);

	/* The thread sleeps on a condition variable: a stop does not wait out
	 * the beat period. */
	uint64_t t0 = tern_now_ms();
	node_registry_stop();
	assert_true(tern_now_ms() - t0 < TERN_NODE_HEARTBEAT_MS / 2);
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "reg1", &got, &err), 1);
	assert_true(got.stopped);
	assert_false(dir_node_up(&got, dir_wall_ms()));
	dir_node_clear(&got);
	node_registry_stop(); /* twice: a no-op */
}

static void test_failed_heartbeat_logged_once(void **state)
{
	struct fixture *fx = *state;
	struct dir_node self = { 0 };
	enum tern_error err = TERN_ERR_NONE;
	char *msg = NULL;

	assert_int_equal(node_registry_start(&fx->cfg, &msg), 0);
	assert_int_equal(fx->dir->ops->node_get(fx->dir, "reg1", &self, &err), 1);
	/* The row vanishes under the node: every beat now fails. */
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM nodes WHERE name = 'reg1'", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	WAIT_FOR(log_count(fx, "heartbeat of node reg1 failed") == 1,
		 3 * TERN_NODE_HEARTBEAT_MS + 2000);
	/* Let a few more beats fail: still one line for the episode. */
	nanosleep(&(struct timespec){ .tv_sec = 2, .tv_nsec = 500000000 }, NULL);
	assert_int_equal(log_count(fx, "heartbeat of node reg1 failed"), 1);

	/* The row comes back: the next beat works and says so, once. */
	assert_int_equal(fx->dir->ops->node_register(fx->dir, &self, dir_wall_ms(), NULL, &err), 0);
	WAIT_FOR(log_count(fx, "heartbeat of node reg1 works again") == 1,
		 3 * TERN_NODE_HEARTBEAT_MS + 2000);
	dir_node_clear(&self);
	node_registry_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refused_while_another_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_beats_and_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_heartbeat_logged_once, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
