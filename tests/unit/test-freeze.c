/* The freeze table (src/server/freeze.h): the fast path, a lease that ends
 * by itself, release outcomes (stay, moved), parked requests answered on
 * their loop (served, moved, deadline, cancelled), and several threads
 * freezing, releasing and checking at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>

#include "core/lock.h"
#include "server/freeze.h"
#include "server/loop.h"

/* ---- a loop thread to park on ---- */

static struct loop test_loop;

static int group_setup(void **state)
{
	(void)state;
	/* loop_post wakes the loop from other threads */
	if (evthread_use_pthreads() < 0)
		return -1;
	if (loop_init(&test_loop, NULL, 0) < 0 || loop_start(&test_loop) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	loop_join(&test_loop);
	loop_deinit(&test_loop);
	freeze_stop();
	return 0;
}

/* What a parked request was told, and when. */
struct answer {
	struct tern_mutex mu;
	pthread_cond_t cond;
	bool done;
	int calls;
	enum freeze_result result;
	char node[64], addr[96], why[96];
	uint64_t at_ms;
	/* the park, as its loop sees it */
	struct freeze_park *park;
	int parked;               /* freeze_park's answer */
	const char *user;
	uint64_t deadline_ms;
	bool on_loop;
};

static void answer_init(struct answer *a, const char *user, uint64_t deadline_ms)
{
	memset(a, 0, sizeof(*a));
	tern_mutex_init(&a->mu, "test answer");
	tern_cond_init(&a->cond);
	a->user = user;
	a->deadline_ms = deadline_ms;
}

static void answer_destroy(struct answer *a)
{
	tern_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cond);
}

static void on_answer(void *ctx, const struct freeze_outcome *o)
{
	struct answer *a = ctx;
	TERN_LOCK_GUARD(&a->mu);
	a->calls++;
	a->done = true;
	a->result = o->result;
	a->on_loop = loop_current() == &test_loop;
	a->at_ms = tern_now_ms();
	snprintf(a->node, sizeof(a->node), "%s", o->result == FREEZE_MOVED ? o->node : "");
	snprintf(a->addr, sizeof(a->addr), "%s", o->result == FREEZE_MOVED ? o->addr : "");
	snprintf(a->why, sizeof(a->why), "%s", o->why != NULL ? o->why : "");
	pthread_cond_broadcast(&a->cond);
}

/* Runs on the loop: the check a session makes. */
static void park_task(void *arg)
{
	struct answer *a = arg;
	int parked = freeze_park(&test_loop, a->user, "test rcpt", a->deadline_ms, on_answer, a,
				 &a->park);
	TERN_LOCK_GUARD(&a->mu);
	a->parked = parked + 1;   /* 1 free, 2 parked: 0 = not yet */
	pthread_cond_broadcast(&a->cond);
}

static void cancel_task(void *arg)
{
	struct answer *a = arg;
	freeze_park_cancel(&a->park);
	TERN_LOCK_GUARD(&a->mu);
	a->parked = 3;   /* cancelled */
	pthread_cond_broadcast(&a->cond);
}

/* Parks on the loop; returns freeze_park's answer (0 free, 1 parked). */
static int park(struct answer *a)
{
	loop_post(&test_loop, park_task, a);
	TERN_LOCK_GUARD(&a->mu);
	uint64_t deadline = tern_now_ms() + 5000;
	while (a->parked == 0 && tern_now_ms() < deadline)
		tern_cond_wait(&a->cond, &a->mu, deadline);
	assert_true(a->parked != 0);
	return a->parked - 1;
}

static bool wait_answer(struct answer *a, uint32_t within_ms)
{
	TERN_LOCK_GUARD(&a->mu);
	uint64_t deadline = tern_now_ms() + within_ms;
	while (!a->done && tern_now_ms() < deadline)
		tern_cond_wait(&a->cond, &a->mu, deadline);
	return a->done;
}

/* ---- tests ---- */

static void test_fast_path(void **state)
{
	(void)state;
	assert_true(freeze_none());
	assert_int_equal(freeze_count(), 0);
	struct answer a;
	answer_init(&a, "nobody", tern_now_ms() + 1000);
	assert_int_equal(park(&a), 0);
	assert_null(a.park);
	/* another user frozen: the slow path says "free" for this one */
	const char *why = NULL;
	assert_int_equal(freeze_user("other", 10000, &why), 0);
	assert_false(freeze_none());
	assert_int_equal(freeze_count(), 1);
	struct answer b;
	answer_init(&b, "nobody", tern_now_ms() + 1000);
	assert_int_equal(park(&b), 0);
	assert_int_equal(freeze_release("other", NULL, NULL, &why), 0);
	assert_true(freeze_none());
	assert_int_equal(freeze_release("other", NULL, NULL, &why), 1);
	answer_destroy(&a);
	answer_destroy(&b);
}

static void test_status_and_lease_expiry(void **state)
{
	(void)state;
	const char *why = NULL;
	uint64_t left;
	assert_int_equal(freeze_status("lease", &left, &why), 0);
	assert_int_equal(freeze_user("lease", 0, &why), -1);
	assert_int_equal(freeze_user("lease", 300, &why), 0);
	assert_int_equal(freeze_status("lease", &left, &why), 1);
	assert_true(left > 0 && left <= 300);
	/* a request parked with a deadline after the lease is served here
	 * when the lease ends, by the reaper, without any release */
	struct answer a;
	uint64_t t0 = tern_now_ms();
	answer_init(&a, "lease", t0 + 3000);
	assert_int_equal(park(&a), 1);
	assert_true(wait_answer(&a, 3000));
	assert_int_equal(a.result, FREEZE_SERVE_HERE);
	assert_true(a.on_loop);
	assert_true(a.at_ms - t0 >= 250 && a.at_ms - t0 < 2000);
	assert_int_equal(freeze_status("lease", &left, &why), 0);
	assert_true(freeze_none());
	answer_destroy(&a);
}

static void test_release_outcomes(void **state)
{
	(void)state;
	const char *why = NULL;
	assert_int_equal(freeze_user("rel", 10000, &why), 0);
	struct answer a, b;
	answer_init(&a, "rel", tern_now_ms() + 5000);
	answer_init(&b, "rel", tern_now_ms() + 5000);
	assert_int_equal(park(&a), 1);
	assert_int_equal(park(&b), 1);
	assert_false(wait_answer(&a, 50));
	assert_int_equal(freeze_release("rel", NULL, NULL, &why), 0);
	assert_true(wait_answer(&a, 2000));
	assert_true(wait_answer(&b, 2000));
	assert_int_equal(a.result, FREEZE_SERVE_HERE);
	assert_int_equal(b.result, FREEZE_SERVE_HERE);
	assert_int_equal(a.calls, 1);

	assert_int_equal(freeze_user("rel", 10000, &why), 0);
	struct answer c;
	answer_init(&c, "rel", tern_now_ms() + 5000);
	assert_int_equal(park(&c), 1);
	assert_int_equal(freeze_release("rel", "node-b", "127.0.0.1:7002", &why), 0);
	assert_true(wait_answer(&c, 2000));
	assert_int_equal(c.result, FREEZE_MOVED);
	assert_string_equal(c.node, "node-b");
	assert_string_equal(c.addr, "127.0.0.1:7002");
	assert_true(freeze_none());
	answer_destroy(&a);
	answer_destroy(&b);
	answer_destroy(&c);
}

struct parked_seen {
	int count;
	char why[96];
};

static void saw_parked(const char *what, const char *user, const char *why, uint64_t age_ms,
		       void *ctx)
{
	struct parked_seen *s = ctx;
	(void)age_ms;
	if (strcmp(what, "test rcpt") == 0 && strcmp(user, "late") == 0) {
		s->count++;
		snprintf(s->why, sizeof(s->why), "%s", why);
	}
}

static void test_deadline_and_cancel(void **state)
{
	(void)state;
	const char *why = NULL;
	assert_int_equal(freeze_user("late", 10000, &why), 0);
	struct answer a;
	uint64_t t0 = tern_now_ms();
	answer_init(&a, "late", t0 + 200);
	assert_int_equal(park(&a), 1);
	struct parked_seen seen = {0};
	freeze_foreach_parked(0, saw_parked, &seen);
	assert_int_equal(seen.count, 1);
	assert_string_equal(seen.why, "frozen by a move");
	assert_true(wait_answer(&a, 2000));
	assert_int_equal(a.result, FREEZE_TIMEOUT);
	assert_string_equal(a.why, "frozen by a move");
	assert_true(a.at_ms - t0 >= 200);
	seen.count = 0;
	freeze_foreach_parked(0, saw_parked, &seen);
	assert_int_equal(seen.count, 0);

	/* cancelled: the callback never runs, not even at the release */
	struct answer b;
	answer_init(&b, "late", tern_now_ms() + 5000);
	assert_int_equal(park(&b), 1);
	loop_post(&test_loop, cancel_task, &b);
	{
		TERN_LOCK_GUARD(&b.mu);
		uint64_t deadline = tern_now_ms() + 2000;
		while (b.parked != 3 && tern_now_ms() < deadline)
			tern_cond_wait(&b.cond, &b.mu, deadline);
		assert_int_equal(b.parked, 3);
	}
	assert_int_equal(freeze_release("late", NULL, NULL, &why), 0);
	/* a marker task behind the release's posts: when it has run, so have they */
	struct answer marker;
	answer_init(&marker, "nobody", tern_now_ms() + 1000);
	assert_int_equal(park(&marker), 0);
	assert_false(b.done);
	assert_int_equal(b.calls, 0);
	answer_destroy(&a);
	answer_destroy(&b);
	answer_destroy(&marker);
}

/* Several threads freeze, release and check their own users at once while
 * others check users never frozen: every check of a never-frozen user says
 * free, and the counter ends at zero. */
struct worker_arg {
	int id;
	atomic_int *errors;
};

static void *freezer(void *p)
{
	struct worker_arg *w = p;
	char user[32];
	snprintf(user, sizeof(user), "busy%d", w->id);
	for (int i = 0; i < 2000; i++) {
		const char *why = NULL;
		uint64_t left;
		if (freeze_user(user, 60000, &why) != 0)
			continue;   /* "busy": another thread is probing it */
		if (freeze_status(user, &left, &why) == 0)
			atomic_fetch_add(w->errors, 1);
		while (freeze_release(user, NULL, NULL, &why) < 0)
			;   /* tried again at once: the lock is held only for a probe */
	}
	return NULL;
}

static void *checker(void *p)
{
	struct worker_arg *w = p;
	char user[32];
	snprintf(user, sizeof(user), "calm%d", w->id);
	for (int i = 0; i < 20000; i++) {
		const char *why = NULL;
		uint64_t left;
		if (freeze_status(user, &left, &why) != 0)
			atomic_fetch_add(w->errors, 1);
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	atomic_int errors = 0;
	enum { N = 4 };
	pthread_t t[2 * N];
	struct worker_arg args[2 * N];
	for (int i = 0; i < N; i++) {
		args[i] = (struct worker_arg){i, &errors};
		args[N + i] = (struct worker_arg){i, &errors};
		assert_int_equal(pthread_create(&t[i], NULL, freezer, &args[i]), 0);
		assert_int_equal(pthread_create(&t[N + i], NULL, checker, &args[N + i]), 0);
	}
	/* and parked checks on the loop meanwhile, for users never frozen */
	for (int i = 0; i < 50; i++) {
		struct answer a;
		answer_init(&a, "calm0", tern_now_ms() + 1000);
		assert_int_equal(park(&a), 0);
		answer_destroy(&a);
	}
	for (int i = 0; i < 2 * N; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&errors), 0);
	assert_int_equal(freeze_count(), 0);
	assert_true(freeze_none());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast_path),
		cmocka_unit_test(test_status_and_lease_expiry),
		cmocka_unit_test(test_release_outcomes),
		cmocka_unit_test(test_deadline_and_cancel),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
