/* Moves in the directory (schema 4, issue 10): creation and its refusals,
 * the one-active-move rule, phase compare-and-set, progress, errors, cancel
 * and suspend requests, the mover's lease, the home switch (one transaction:
 * all or nothing), two handles on one file, and the migration of a version 3
 * file. */
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

static void add_user(struct directory *dir, const char *name, const char *home)
{
	struct dir_user u = { .name = (char *)name, .password_hash = (char *)"{PLAIN}x",
			      .home = (char *)home };
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(dir->ops->user_add(dir, &u, &err), 0);
}

static void add_node(struct directory *dir, const char *name)
{
	struct dir_node n = { .name = (char *)name, .version = (char *)"0.1.0",
			      .started_ms = T0 };
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(dir->ops->node_register(dir, &n, T0, NULL, &err), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char *err = NULL;

	strcpy(fx->tmpdir, "/tmp/tern-test-moves-XXXXXX");
	if (mkdtemp(fx->tmpdir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/directory.db", fx->tmpdir);
	if (directory_open(fx->path, &fx->dir, &err) < 0) {
		fprintf(stderr, "directory_open: %s\n", err);
		free(err);
		return -1;
	}
	add_node(fx->dir, "node1");
	add_node(fx->dir, "node2");
	add_node(fx->dir, "node3");
	add_user(fx->dir, "alice", "node1");
	add_user(fx->dir, "bob", "node1");
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

static int64_t create(struct directory *dir, const char *user, const char *to, int64_t now)
{
	enum tern_error err = TERN_ERR_NONE;
	int64_t id = 0;

	assert_int_equal(dir->ops->move_create(dir, user, NULL, to, false, now, &id, &err), 0);
	assert_true(id > 0);
	return id;
}

/* Returns the move (the caller clears it); fails the test if absent. */
static struct dir_move get(struct directory *dir, int64_t id)
{
	struct dir_move m = { 0 };
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(dir->ops->move_get(dir, id, &m, &err), 1);
	return m;
}

static enum dir_move_phase phase_of(struct directory *dir, int64_t id)
{
	struct dir_move m = get(dir, id);
	enum dir_move_phase p = m.phase;

	dir_move_clear(&m);
	return p;
}

static void set_phase(struct directory *dir, int64_t id, enum dir_move_phase from,
		      enum dir_move_phase to, int64_t now)
{
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(dir->ops->move_set_phase(dir, id, from, to, now, &err), 0);
}

static void expect_user(struct directory *dir, const char *name, const char *home,
			int64_t epoch)
{
	struct dir_user u = { 0 };
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(directory_user_get(dir, name, &u, &err), 1);
	assert_string_equal(u.home, home);
	assert_int_equal(u.epoch, epoch);
	dir_user_clear(&u);
}

static void test_phase_names(void **state)
{
	enum dir_move_phase p;

	(void)state;
	for (int i = 0; i < DIR_MOVE_PHASE_COUNT; i++) {
		assert_int_equal(dir_move_phase_parse(dir_move_phase_name(i), &p), 0);
		assert_int_equal(p, i);
	}
	assert_string_equal(dir_move_phase_name(DIR_MOVE_READY), "ready");
	assert_string_equal(dir_move_phase_name(DIR_MOVE_PHASE_COUNT), "?");
	assert_int_equal(dir_move_phase_parse("done", &p), -1);
	assert_int_equal(dir_move_phase_parse(NULL, &p), -1);
	assert_false(dir_move_phase_finished(DIR_MOVE_FINALIZING));
	assert_true(dir_move_phase_finished(DIR_MOVE_COMPLETED));
	assert_true(dir_move_phase_finished(DIR_MOVE_FAILED));
	assert_true(dir_move_phase_finished(DIR_MOVE_CANCELLED));
	assert_string_equal(tern_error_str(TERN_ERR_CONFLICT), "changed concurrently");
}

static void test_create_and_get(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	struct dir_move m = { 0 }, *moves = NULL;
	size_t count = 0;
	int64_t id = 0, id2 = 0;

	assert_int_equal(dir->ops->move_create(dir, "alice", "node1", "node2", true, T0, &id,
					       &err), 0);
	m = get(dir, id);
	assert_int_equal(m.id, id);
	assert_string_equal(m.user, "alice");
	assert_string_equal(m.source, "node1");
	assert_string_equal(m.destination, "node2");
	assert_int_equal(m.phase, DIR_MOVE_QUEUED);
	assert_true(m.suspend_when_ready);
	assert_false(m.cancel_requested);
	assert_int_equal(m.messages_total + m.messages_done + m.bytes_total + m.bytes_done, 0);
	assert_int_equal(m.rounds + m.copied_modseq, 0);
	assert_string_equal(m.wait_reason, "");
	assert_string_equal(m.last_error, "");
	assert_string_equal(m.runner, "");
	assert_string_equal(m.lease_owner, "");
	assert_int_equal(m.lease_expires_ms, 0);
	assert_int_equal(m.created_ms, T0);
	assert_int_equal(m.updated_ms, T0);
	assert_int_equal(m.phase_since_ms, T0);
	assert_int_equal(m.started_ms, 0);
	assert_int_equal(m.finished_ms, 0);
	dir_move_clear(&m);
	assert_null(m.user);

	/* Source left out: the user's home. */
	assert_int_equal(dir->ops->move_create(dir, "bob", "", "node3", false, T0 + 1, &id2,
					       &err), 0);
	assert_true(id2 > id);
	assert_int_equal(dir->ops->move_get_active(dir, "bob", &m, &err), 1);
	assert_int_equal(m.id, id2);
	assert_string_equal(m.source, "node1");
	assert_false(m.suspend_when_ready);
	dir_move_clear(&m);
	assert_int_equal(dir->ops->move_get_active(dir, "carol", &m, &err), 0);
	assert_int_equal(dir->ops->move_get(dir, id2 + 100, &m, &err), 0);

	assert_int_equal(dir->ops->move_list(dir, false, &moves, &count, &err), 0);
	assert_int_equal(count, 2);
	assert_int_equal(moves[0].id, id);
	assert_int_equal(moves[1].id, id2);
	assert_string_equal(moves[1].user, "bob");
	dir_moves_free(&moves, count);
	assert_null(moves);

	/* Finished moves are listed only on request. */
	assert_int_equal(dir->ops->move_fail(dir, id, "test", T0 + 2, &err), 0);
	assert_int_equal(dir->ops->move_list(dir, false, &moves, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_int_equal(moves[0].id, id2);
	dir_moves_free(&moves, count);
	assert_int_equal(dir->ops->move_list(dir, true, &moves, &count, &err), 0);
	assert_int_equal(count, 2);
	assert_int_equal(moves[0].phase, DIR_MOVE_FAILED);
	dir_moves_free(&moves, count);
	assert_int_equal(dir->ops->move_get_active(dir, "alice", &m, &err), 0);

	/* Moves do not bump the directory's change counter. */
	uint64_t g1 = 0, g2 = 0;
	assert_int_equal(directory_generation(dir, &g1, &err), 0);
	id = create(dir, "alice", "node3", T0 + 3);
	assert_int_equal(dir->ops->move_progress(dir, id, 1, 2, 3, 4, 0, 5, NULL, T0 + 4, &err), 0);
	assert_int_equal(directory_generation(dir, &g2, &err), 0);
	assert_int_equal(g1, g2);
}

static void test_create_refusals(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	struct dir_move *moves = NULL;
	size_t count = 0;
	int64_t id = -5;
	sqlite3 *db = NULL;

	assert_int_equal(dir->ops->move_create(dir, "nobody", NULL, "node2", false, T0, &id, &err),
			 -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(dir->ops->move_create(dir, "alice", NULL, "node1", false, T0, &id, &err),
			 -1);
	assert_int_equal(err, TERN_ERR_INVALID);   /* to its own home */
	assert_int_equal(dir->ops->move_create(dir, "alice", NULL, "node9", false, T0, &id, &err),
			 -1);
	assert_int_equal(err, TERN_ERR_INVALID);   /* not registered */
	assert_int_equal(dir->ops->move_create(dir, "alice", NULL, "", false, T0, &id, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_create(dir, "alice", NULL, NULL, false, T0, &id, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_create(dir, "alice", "node3", "node2", false, T0, &id,
					       &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);  /* the caller's idea of home is stale */
	assert_int_equal(id, -5);
	assert_int_equal(dir->ops->move_list(dir, true, &moves, &count, &err), 0);
	assert_int_equal(count, 0);

	/* One active move per user; another user is not affected. */
	id = create(dir, "alice", "node2", T0);
	assert_int_equal(dir->ops->move_create(dir, "alice", NULL, "node3", false, T0, &id, &err),
			 -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	create(dir, "bob", "node2", T0);
	/* The file itself refuses a second active row (the partial unique index),
	 * whoever writes it, and allows any number of finished ones. */
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "INSERT INTO moves (user, source, destination, "
					  "phase, created, updated) VALUES ('alice', 'node1', "
					  "'node3', 'syncing', 0, 0)", NULL, NULL, NULL),
			     SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO moves (user, source, destination, phase, "
				      "created, updated) VALUES ('alice', 'node1', 'node3', "
				      "'failed', 0, 0), ('alice', 'node1', 'node3', 'cancelled', "
				      "0, 0)", NULL, NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE moves SET phase = 'done' WHERE id = 1",
					  NULL, NULL, NULL), SQLITE_OK);   /* CHECK */
	sqlite3_close(db);

	/* Once the active move ends, a new one may start. */
	set_phase(dir, id, DIR_MOVE_QUEUED, DIR_MOVE_CANCELLED, T0 + 1);
	int64_t again = create(dir, "alice", "node3", T0 + 2);
	assert_true(again > id);
}

static void test_set_phase(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	int64_t id = create(dir, "alice", "node2", T0);
	struct dir_move m;

	set_phase(dir, id, DIR_MOVE_QUEUED, DIR_MOVE_COPYING, T0 + 10);
	m = get(dir, id);
	assert_int_equal(m.phase, DIR_MOVE_COPYING);
	assert_int_equal(m.started_ms, T0 + 10);
	assert_int_equal(m.phase_since_ms, T0 + 10);
	assert_int_equal(m.updated_ms, T0 + 10);
	assert_int_equal(m.finished_ms, 0);
	dir_move_clear(&m);

	/* Wrong expected phase: nothing changes. */
	assert_int_equal(dir->ops->move_set_phase(dir, id, DIR_MOVE_QUEUED, DIR_MOVE_SYNCING,
						  T0 + 20, &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	m = get(dir, id);
	assert_int_equal(m.phase, DIR_MOVE_COPYING);
	assert_int_equal(m.updated_ms, T0 + 10);
	dir_move_clear(&m);

	/* Only the switch completes a move; a finished phase is never left. */
	assert_int_equal(dir->ops->move_set_phase(dir, id, DIR_MOVE_COPYING, DIR_MOVE_COMPLETED,
						  T0 + 20, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_set_phase(dir, id, DIR_MOVE_FAILED, DIR_MOVE_COPYING,
						  T0 + 20, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_set_phase(dir, id, DIR_MOVE_PHASE_COUNT, DIR_MOVE_COPYING,
						  T0 + 20, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_set_phase(dir, id + 1, DIR_MOVE_COPYING, DIR_MOVE_SYNCING,
						  T0 + 20, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);

	/* Through the active phases; started is kept, phase_since follows. */
	set_phase(dir, id, DIR_MOVE_COPYING, DIR_MOVE_SYNCING, T0 + 30);
	set_phase(dir, id, DIR_MOVE_SYNCING, DIR_MOVE_READY, T0 + 40);
	set_phase(dir, id, DIR_MOVE_READY, DIR_MOVE_SYNCING, T0 + 50);
	set_phase(dir, id, DIR_MOVE_SYNCING, DIR_MOVE_FINALIZING, T0 + 60);
	assert_int_equal(dir->ops->move_lease(dir, id, "node2", T0 + 60, 5000, &err), 1);
	assert_int_equal(dir->ops->move_progress(dir, id, 1, 1, 1, 1, 1, 1, "waiting for 2 "
						 "in-flight deliveries", T0 + 61, &err), 0);
	m = get(dir, id);
	assert_int_equal(m.started_ms, T0 + 10);
	assert_int_equal(m.phase_since_ms, T0 + 60);
	dir_move_clear(&m);

	/* Cancelled: finished, lease and wait end; nothing moves it again. */
	set_phase(dir, id, DIR_MOVE_FINALIZING, DIR_MOVE_CANCELLED, T0 + 70);
	m = get(dir, id);
	assert_int_equal(m.phase, DIR_MOVE_CANCELLED);
	assert_int_equal(m.finished_ms, T0 + 70);
	assert_string_equal(m.lease_owner, "");
	assert_int_equal(m.lease_expires_ms, 0);
	assert_string_equal(m.runner, "node2");    /* who ran it stays on record */
	assert_string_equal(m.wait_reason, "");
	dir_move_clear(&m);
	assert_int_equal(dir->ops->move_set_phase(dir, id, DIR_MOVE_FINALIZING, DIR_MOVE_FAILED,
						  T0 + 80, &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_int_equal(phase_of(dir, id), DIR_MOVE_CANCELLED);
}

static void test_progress_errors_requests(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	int64_t id = create(dir, "alice", "node2", T0);
	struct dir_move m;

	set_phase(dir, id, DIR_MOVE_QUEUED, DIR_MOVE_COPYING, T0 + 1);
	assert_int_equal(dir->ops->move_progress(dir, id, 10, 20000, 40960, 81920000, 0, 1234,
						 NULL, T0 + 2, &err), 0);
	m = get(dir, id);
	assert_int_equal(m.messages_done, 10);
	assert_int_equal(m.messages_total, 20000);
	assert_int_equal(m.bytes_done, 40960);
	assert_int_equal(m.bytes_total, 81920000);
	assert_int_equal(m.rounds, 0);
	assert_int_equal(m.copied_modseq, 1234);
	assert_string_equal(m.wait_reason, "");
	assert_int_equal(m.updated_ms, T0 + 2);
	assert_int_equal(m.phase_since_ms, T0 + 1);   /* progress is not a phase change */
	dir_move_clear(&m);
	assert_int_equal(dir->ops->move_progress(dir, id, 20000, 20000, 81920000, 81920000, 3,
						 5000, "destination node2 down since 12:01:07",
						 T0 + 3, &err), 0);
	m = get(dir, id);
	assert_int_equal(m.rounds, 3);
	assert_int_equal(m.copied_modseq, 5000);
	assert_string_equal(m.wait_reason, "destination node2 down since 12:01:07");
	dir_move_clear(&m);
	assert_int_equal(dir->ops->move_progress(dir, id, 0, 0, 0, 0, 0, (uint64_t)INT64_MAX + 1,
						 NULL, T0 + 4, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_progress(dir, id + 1, 0, 0, 0, 0, 0, 0, NULL, T0, &err),
			 -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);

	/* A noted error stays beside the phase. */
	assert_int_equal(dir->ops->move_note_error(dir, id, "channel reset", T0 + 5, &err), 0);
	m = get(dir, id);
	assert_int_equal(m.phase, DIR_MOVE_COPYING);
	assert_string_equal(m.last_error, "channel reset");
	dir_move_clear(&m);

	/* Suspend and cancel requests are flags for the mover. */
	assert_int_equal(dir->ops->move_set_suspend(dir, id, true, &err), 0);
	assert_true((m = get(dir, id)).suspend_when_ready);
	dir_move_clear(&m);
	assert_int_equal(dir->ops->move_set_suspend(dir, id, false, &err), 0);
	assert_false((m = get(dir, id)).suspend_when_ready);
	dir_move_clear(&m);
	assert_int_equal(dir->ops->move_request_cancel(dir, id, &err), 0);
	assert_int_equal(dir->ops->move_request_cancel(dir, id, &err), 0);   /* idempotent */
	m = get(dir, id);
	assert_true(m.cancel_requested);
	assert_int_equal(m.phase, DIR_MOVE_COPYING);
	dir_move_clear(&m);
	assert_int_equal(dir->ops->move_request_cancel(dir, id + 1, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);

	/* Failed: the error, the end; later writes are refused. */
	assert_int_equal(dir->ops->move_lease(dir, id, "node2", T0 + 6, 1000, &err), 1);
	assert_int_equal(dir->ops->move_fail(dir, id, "destination: no space left", T0 + 7, &err),
			 0);
	m = get(dir, id);
	assert_int_equal(m.phase, DIR_MOVE_FAILED);
	assert_string_equal(m.last_error, "destination: no space left");
	assert_int_equal(m.finished_ms, T0 + 7);
	assert_int_equal(m.phase_since_ms, T0 + 7);
	assert_string_equal(m.lease_owner, "");
	assert_int_equal(m.messages_done, 20000);   /* the last report is kept */
	dir_move_clear(&m);
	assert_int_equal(dir->ops->move_fail(dir, id, "again", T0 + 8, &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_int_equal(dir->ops->move_progress(dir, id, 1, 1, 1, 1, 1, 1, NULL, T0 + 8, &err),
			 -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_int_equal(dir->ops->move_note_error(dir, id, "late", T0 + 8, &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_int_equal(dir->ops->move_request_cancel(dir, id, &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_int_equal(dir->ops->move_set_suspend(dir, id, true, &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	m = get(dir, id);
	assert_string_equal(m.last_error, "destination: no space left");
	assert_int_equal(m.messages_done, 20000);
	assert_int_equal(m.updated_ms, T0 + 7);
	dir_move_clear(&m);
	assert_int_equal(dir->ops->move_fail(dir, id + 1, "x", T0, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
}

static void expect_lease(struct directory *dir, int64_t id, const char *owner, int64_t expires,
			 const char *runner)
{
	struct dir_move m = get(dir, id);

	assert_string_equal(m.lease_owner, owner);
	assert_int_equal(m.lease_expires_ms, expires);
	assert_string_equal(m.runner, runner);
	dir_move_clear(&m);
}

static void test_lease(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	int64_t id = create(dir, "alice", "node2", T0);

	/* Take, renew. */
	assert_int_equal(dir->ops->move_lease(dir, id, "node2", T0, 5000, &err), 1);
	expect_lease(dir, id, "node2", T0 + 5000, "node2");
	assert_int_equal(dir->ops->move_lease(dir, id, "node2", T0 + 2000, 5000, &err), 1);
	expect_lease(dir, id, "node2", T0 + 7000, "node2");
	/* Refused while held, up to the last millisecond; nothing written. */
	assert_int_equal(dir->ops->move_lease(dir, id, "node3", T0 + 3000, 5000, &err), 0);
	assert_int_equal(dir->ops->move_lease(dir, id, "node3", T0 + 6999, 5000, &err), 0);
	expect_lease(dir, id, "node2", T0 + 7000, "node2");
	/* Expired: stolen; the old owner is then refused. */
	assert_int_equal(dir->ops->move_lease(dir, id, "node3", T0 + 7000, 5000, &err), 1);
	expect_lease(dir, id, "node3", T0 + 12000, "node3");
	assert_int_equal(dir->ops->move_lease(dir, id, "node2", T0 + 8000, 5000, &err), 0);
	expect_lease(dir, id, "node3", T0 + 12000, "node3");
	/* Release: only by its owner; then anyone may take it at once. */
	assert_int_equal(dir->ops->move_lease_release(dir, id, "node2", &err), 0);
	expect_lease(dir, id, "node3", T0 + 12000, "node3");
	assert_int_equal(dir->ops->move_lease_release(dir, id, "node3", &err), 1);
	expect_lease(dir, id, "", 0, "node3");
	assert_int_equal(dir->ops->move_lease_release(dir, id, "", &err), 0);
	assert_int_equal(dir->ops->move_lease(dir, id, "node1", T0 + 9000, 5000, &err), 1);
	expect_lease(dir, id, "node1", T0 + 14000, "node1");

	/* Refusals. */
	assert_int_equal(dir->ops->move_lease(dir, id, "", T0, 5000, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_lease(dir, id, NULL, T0, 5000, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_lease(dir, id, "node1", T0, 0, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_lease(dir, id, "node1", INT64_MAX - 10, 100, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_lease(dir, id + 1, "node1", T0, 5000, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	expect_lease(dir, id, "node1", T0 + 14000, "node1");

	/* A finished move has no lease to give. */
	set_phase(dir, id, DIR_MOVE_QUEUED, DIR_MOVE_CANCELLED, T0 + 10000);
	expect_lease(dir, id, "", 0, "node1");
	assert_int_equal(dir->ops->move_lease(dir, id, "node1", T0 + 10001, 5000, &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	expect_lease(dir, id, "", 0, "node1");
}

/* alice's move to node2, driven to finalizing. */
static int64_t finalizing_move(struct directory *dir)
{
	int64_t id = create(dir, "alice", "node2", T0);

	set_phase(dir, id, DIR_MOVE_QUEUED, DIR_MOVE_COPYING, T0 + 1);
	set_phase(dir, id, DIR_MOVE_COPYING, DIR_MOVE_SYNCING, T0 + 2);
	set_phase(dir, id, DIR_MOVE_SYNCING, DIR_MOVE_FINALIZING, T0 + 3);
	return id;
}

static uint64_t gen_of(struct directory *dir)
{
	uint64_t gen = 0;
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(directory_generation(dir, &gen, &err), 0);
	return gen;
}

static void test_switch_home(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	int64_t id = create(dir, "alice", "node2", T0);
	struct dir_move m;
	uint64_t gen;

	set_phase(dir, id, DIR_MOVE_QUEUED, DIR_MOVE_COPYING, T0 + 1);
	set_phase(dir, id, DIR_MOVE_COPYING, DIR_MOVE_SYNCING, T0 + 2);
	gen = gen_of(dir);
	/* Not finalizing yet. */
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", "node1", 1, "node2", T0 + 3, 0,
						    &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	expect_user(dir, "alice", "node1", 1);
	assert_int_equal(phase_of(dir, id), DIR_MOVE_SYNCING);

	set_phase(dir, id, DIR_MOVE_SYNCING, DIR_MOVE_FINALIZING, T0 + 4);
	assert_int_equal(dir->ops->move_lease(dir, id, "node2", T0 + 4, 5000, &err), 1);
	/* Wrong epoch, wrong home, another user, another destination, no such
	 * move or user: nothing changes anywhere. */
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", "node1", 2, "node2", T0 + 5, 0,
						    &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", "node3", 1, "node2", T0 + 5, 0,
						    &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_int_equal(dir->ops->move_switch_home(dir, id, "bob", "node1", 1, "node2", T0 + 5, 0,
						    &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", "node1", 1, "node3", T0 + 5, 0,
						    &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(dir->ops->move_switch_home(dir, id + 1, "alice", "node1", 1, "node2",
						    T0 + 5, 0, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", NULL, 1, "node2", T0 + 5, 0,
						    &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	/* A deadline (unix ms, checked under the write lock) already past. */
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", "node1", 1, "node2", T0 + 5,
						    dir_wall_ms() - 1, &err), -1);
	assert_int_equal(err, TERN_ERR_TEMP);
	expect_user(dir, "alice", "node1", 1);
	expect_user(dir, "bob", "node1", 1);
	m = get(dir, id);
	assert_int_equal(m.phase, DIR_MOVE_FINALIZING);
	assert_int_equal(m.finished_ms, 0);
	assert_string_equal(m.lease_owner, "node2");
	dir_move_clear(&m);
	assert_int_equal(gen_of(dir), gen);

	/* The switch: home, epoch + 1, completed, lease freed, caches told
	 * (in time: the deadline is still ahead). */
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", "node1", 1, "node2", T0 + 6,
						    dir_wall_ms() + 60000, &err), 0);
	expect_user(dir, "alice", "node2", 2);
	m = get(dir, id);
	assert_int_equal(m.phase, DIR_MOVE_COMPLETED);
	assert_int_equal(m.finished_ms, T0 + 6);
	assert_int_equal(m.phase_since_ms, T0 + 6);
	assert_string_equal(m.lease_owner, "");
	assert_string_equal(m.runner, "node2");
	dir_move_clear(&m);
	assert_true(gen_of(dir) > gen);
	assert_int_equal(dir->ops->move_get_active(dir, "alice", &m, &err), 0);

	/* A replay of the same switch (a mover retrying) is refused. */
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", "node1", 1, "node2", T0 + 7, 0,
						    &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	expect_user(dir, "alice", "node2", 2);

	/* And back: the source is now node2, moving to node1 is allowed. */
	int64_t back = 0;
	assert_int_equal(dir->ops->move_create(dir, "alice", "node1", "node1", false, T0 + 8,
					       &back, &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_int_equal(dir->ops->move_create(dir, "alice", "node2", "node1", false, T0 + 8,
					       &back, &err), 0);
	set_phase(dir, back, DIR_MOVE_QUEUED, DIR_MOVE_FINALIZING, T0 + 9);
	assert_int_equal(dir->ops->move_switch_home(dir, back, "alice", "node2", 2, "node1",
						    T0 + 10, 0, &err), 0);
	expect_user(dir, "alice", "node1", 3);
}

/* A switch whose second write fails after its first succeeded rolls both
 * back: the file refuses the move's completion (a trigger the test adds). */
static void test_switch_all_or_nothing(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = fx->dir;
	enum tern_error err = TERN_ERR_NONE;
	int64_t id = finalizing_move(dir);
	sqlite3 *db = NULL;
	uint64_t gen = gen_of(dir);

	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TRIGGER test_refuse_completion BEFORE UPDATE "
				      "OF phase ON moves WHEN NEW.phase = 'completed' BEGIN "
				      "SELECT RAISE(ABORT, 'refused by the test'); END", NULL, NULL,
				      NULL), SQLITE_OK);
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", "node1", 1, "node2", T0 + 5, 0,
						    &err), -1);
	expect_user(dir, "alice", "node1", 1);
	assert_int_equal(phase_of(dir, id), DIR_MOVE_FINALIZING);
	assert_int_equal(gen_of(dir), gen);
	/* No transaction was left open: the next write goes through. */
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER test_refuse_completion", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(dir->ops->move_switch_home(dir, id, "alice", "node1", 1, "node2", T0 + 6, 0,
						    &err), 0);
	expect_user(dir, "alice", "node2", 2);
	assert_int_equal(phase_of(dir, id), DIR_MOVE_COMPLETED);
}

/* Two handles on one file (two nodes, or a node and ternctl). */
static void test_two_handles(void **state)
{
	struct fixture *fx = *state;
	struct directory *a = fx->dir, *b = NULL;
	enum tern_error err = TERN_ERR_NONE;
	char *errmsg = NULL;
	struct dir_move m;
	int64_t id, other = 0;

	assert_int_equal(directory_open(fx->path, &b, &errmsg), 0);
	id = create(a, "alice", "node2", T0);
	/* b sees a's move and the one-active rule across handles. */
	assert_int_equal(b->ops->move_get_active(b, "alice", &m, &err), 1);
	assert_int_equal(m.id, id);
	dir_move_clear(&m);
	assert_int_equal(b->ops->move_create(b, "alice", NULL, "node3", false, T0, &other, &err),
			 -1);
	assert_int_equal(err, TERN_ERR_EXISTS);

	/* The lease held through a is refused to b until it expires. */
	assert_int_equal(a->ops->move_lease(a, id, "node2", T0, 5000, &err), 1);
	assert_int_equal(b->ops->move_lease(b, id, "node3", T0 + 1000, 5000, &err), 0);
	assert_int_equal(b->ops->move_lease(b, id, "node3", T0 + 5000, 5000, &err), 1);
	assert_int_equal(a->ops->move_lease(a, id, "node2", T0 + 5001, 5000, &err), 0);

	/* Phase CAS: b advances, a's stale expectation is refused. */
	assert_int_equal(b->ops->move_set_phase(b, id, DIR_MOVE_QUEUED, DIR_MOVE_COPYING, T0 + 6000,
						&err), 0);
	assert_int_equal(a->ops->move_set_phase(a, id, DIR_MOVE_QUEUED, DIR_MOVE_COPYING, T0 + 6001,
						&err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	assert_int_equal(b->ops->move_progress(b, id, 5, 10, 50, 100, 0, 42, NULL, T0 + 6002, &err),
			 0);
	m = get(a, id);
	assert_int_equal(m.phase, DIR_MOVE_COPYING);
	assert_int_equal(m.copied_modseq, 42);
	assert_string_equal(m.runner, "node3");
	dir_move_clear(&m);

	/* ternctl (a) asks to cancel; the mover (b) sees it. */
	assert_int_equal(a->ops->move_request_cancel(a, id, &err), 0);
	m = get(b, id);
	assert_true(m.cancel_requested);
	dir_move_clear(&m);
	assert_int_equal(b->ops->move_set_phase(b, id, DIR_MOVE_COPYING, DIR_MOVE_CANCELLED,
						T0 + 7000, &err), 0);
	assert_int_equal(phase_of(a, id), DIR_MOVE_CANCELLED);

	/* A switch through b is seen by a. */
	id = finalizing_move(a);
	assert_int_equal(b->ops->move_switch_home(b, id, "alice", "node1", 1, "node2", T0 + 8000, 0,
						  &err), 0);
	expect_user(a, "alice", "node2", 2);
	assert_int_equal(a->ops->move_switch_home(a, id, "alice", "node1", 1, "node2", T0 + 8001, 0,
						  &err), -1);
	assert_int_equal(err, TERN_ERR_CONFLICT);
	directory_close(&b);
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

/* What a version 3 build wrote: users, nodes, the change counter at 9, and
 * moves rows written by hand (no version 3 build wrote any): carol's active
 * one, an unknown state, and two active ones for dave. */
static const char v3_schema[] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);"
	"INSERT INTO meta VALUES ('schema_version', '3');"
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
	"INSERT INTO users VALUES ('carol', '{PLAIN}c', 'node7', 4, 'active', 77, 1600000000);"
	"INSERT INTO users VALUES ('dave', '{PLAIN}d', 'node7', 1, 'active', 0, 1600000000);"
	"INSERT INTO nodes VALUES ('node7', '10.0.0.7:24', '', '', '', 1600000000, "
	"'10.0.0.7:7000', '0.1.0', 1600000000000, 1600000001000, 0);"
	"INSERT INTO nodes VALUES ('node8', '10.0.0.8:24', '', '', '', 1600000000, "
	"'10.0.0.8:7000', '0.1.0', 1600000000000, 1600000001000, 0);"
	"INSERT INTO moves VALUES (1, 'carol', 'node7', 'node8', 'copying', 'waiting', 10, 4, "
	"4096, 'node8', 1600000009000, 1600000000000, 1600000002000, NULL);"
	"INSERT INTO moves VALUES (2, 'carol', 'node7', 'node8', 'done', '', 0, 0, 0, NULL, NULL, "
	"1500000000000, 1500000000000, 'old');"
	"INSERT INTO moves VALUES (3, 'dave', 'node7', 'node8', 'queued', '', 0, 0, 0, NULL, NULL, "
	"1600000000000, 1600000000000, NULL);"
	"INSERT INTO moves VALUES (4, 'dave', 'node7', 'node8', 'syncing', '', 0, 0, 0, NULL, "
	"NULL, 1600000000001, 1600000000001, NULL);"
	"CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);"
	"INSERT INTO generation VALUES (1, 9);"
	"CREATE TRIGGER generation_user_update AFTER UPDATE ON users BEGIN"
	" UPDATE generation SET value = value + 1 WHERE id = 1; END;";

static void test_migrates_v3(void **state)
{
	struct fixture *fx = *state;
	struct directory *dir = NULL;
	struct dir_user u = { 0 };
	struct dir_node n = { 0 };
	struct dir_move m = { 0 };
	char path[160], *errmsg = NULL;
	enum tern_error err = TERN_ERR_NONE;
	sqlite3 *db = NULL;
	int64_t v = 0, id = 0;

	snprintf(path, sizeof(path), "%s/v3.db", fx->tmpdir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v3_schema, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(directory_open(path, &dir, &errmsg), 0);
	assert_int_equal(query_int(path, "SELECT value FROM meta WHERE key = 'schema_version'",
				   &v), 0);
	assert_int_equal(v, DIRECTORY_SCHEMA_VERSION);
	assert_true(DIRECTORY_SCHEMA_VERSION >= 4);   /* later versions migrate through 4 */
	assert_int_equal(directory_user_get(dir, "carol", &u, &err), 1);
	assert_string_equal(u.home, "node7");
	assert_string_equal(u.password_hash, "{PLAIN}c");
	assert_int_equal(u.epoch, 4);
	assert_int_equal(u.quota, 77);
	assert_int_equal(u.created, 1600000000);
	dir_user_clear(&u);
	assert_int_equal(dir->ops->node_get(dir, "node8", &n, &err), 1);
	assert_string_equal(n.cluster_addr, "10.0.0.8:7000");
	assert_int_equal(n.heartbeat_ms, 1600000001000);
	dir_node_clear(&n);
	assert_int_equal(gen_of(dir), 9);   /* the counter is kept */

	/* carol's active move, its values under their new names. */
	assert_int_equal(dir->ops->move_get_active(dir, "carol", &m, &err), 1);
	assert_int_equal(m.id, 1);
	assert_int_equal(m.phase, DIR_MOVE_COPYING);
	assert_string_equal(m.wait_reason, "waiting");
	assert_int_equal(m.messages_total, 10);
	assert_int_equal(m.messages_done, 4);
	assert_int_equal(m.bytes_done, 4096);
	assert_string_equal(m.lease_owner, "node8");
	assert_int_equal(m.lease_expires_ms, 1600000009000);
	assert_string_equal(m.last_error, "");
	assert_int_equal(m.created_ms, 1600000000000);
	assert_int_equal(m.updated_ms, 1600000002000);
	dir_move_clear(&m);
	m = get(dir, 2);
	assert_int_equal(m.phase, DIR_MOVE_FAILED);   /* unknown state */
	assert_string_equal(m.last_error, "old");
	dir_move_clear(&m);
	/* dave had two active moves: the newer one stays. */
	assert_int_equal(dir->ops->move_get_active(dir, "dave", &m, &err), 1);
	assert_int_equal(m.id, 4);
	assert_int_equal(m.phase, DIR_MOVE_SYNCING);
	dir_move_clear(&m);
	m = get(dir, 3);
	assert_int_equal(m.phase, DIR_MOVE_FAILED);
	assert_string_equal(m.last_error, "superseded by a newer move");
	dir_move_clear(&m);

	/* The rule holds on the migrated file, and the ops work on it. */
	assert_int_equal(dir->ops->move_create(dir, "carol", NULL, "node8", false, T0, &id, &err),
			 -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	assert_int_equal(dir->ops->move_set_phase(dir, 1, DIR_MOVE_COPYING, DIR_MOVE_FINALIZING,
						  T0, &err), 0);
	assert_int_equal(dir->ops->move_switch_home(dir, 1, "carol", "node7", 4, "node8", T0 + 1, 0,
						    &err), 0);
	assert_int_equal(directory_user_get(dir, "carol", &u, &err), 1);
	assert_string_equal(u.home, "node8");
	assert_int_equal(u.epoch, 5);
	dir_user_clear(&u);
	assert_int_equal(gen_of(dir), 10);
	assert_int_equal(dir->ops->move_create(dir, "carol", NULL, "node7", false, T0 + 2, &id,
					       &err), 0);
	assert_int_equal(id, 5);
	directory_close(&dir);

	/* Opened again: no second migration. */
	assert_int_equal(directory_open(path, &dir, &errmsg), 0);
	assert_int_equal(query_int(path, "SELECT count(*) FROM moves", &v), 0);
	assert_int_equal(v, 5);
	directory_close(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phase_names),
		cmocka_unit_test_setup_teardown(test_create_and_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_phase, setup, teardown),
		cmocka_unit_test_setup_teardown(test_progress_errors_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_home, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrates_v3, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
