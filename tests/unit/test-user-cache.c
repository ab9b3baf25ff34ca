/* The user cache (src/server/user-cache.h): hits and misses, a new
 * generation turns old entries off, negative entries, distrust, the size
 * bound, strings too long to cache, and several threads putting and
 * getting while the generation moves (every hit must be an entry that was
 * put whole, at the generation in force). */
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

#include "core/limits.h"
#include "server/user-cache.h"

static int reset(void **state)
{
	(void)state;
	user_cache_clear();
	user_cache_distrust();
	return 0;
}

static void put_user(uint64_t gen, const char *name, const char *home, uint64_t quota)
{
	struct user_cache_entry e;

	assert_true(user_cache_entry_set(&e, gen, name, true, home, "127.0.0.1:7002", "active",
					 3, quota, 1600000000));
	assert_true(user_cache_put(&e));
}

static void test_hit_and_miss(void **state)
{
	(void)state;
	struct user_cache_entry e;

	/* Nothing answers before the first generation is published. */
	assert_false(user_cache_get("alice", &e));
	assert_true(user_cache_entry_set(&e, 0, "alice", true, "node1", "", "active", 1, 0, 0));
	assert_false(user_cache_put(&e));

	user_cache_set_generation(5);
	assert_int_equal(user_cache_generation(), 5);
	assert_false(user_cache_get("alice", &e));
	put_user(5, "alice", "node2", 1000);
	memset(&e, 0xaa, sizeof(e));
	assert_true(user_cache_get("alice", &e));
	assert_string_equal(e.name, "alice");
	assert_true(e.found);
	assert_string_equal(e.home, "node2");
	assert_string_equal(e.home_addr, "127.0.0.1:7002");
	assert_string_equal(e.state, "active");
	assert_int_equal(e.epoch, 3);
	assert_int_equal(e.quota, 1000);
	assert_int_equal(e.created, 1600000000);
	assert_int_equal(e.generation, 5);
	assert_false(user_cache_get("alic", &e));
	assert_false(user_cache_get("alice2", &e));

	/* A put for the same name replaces the entry. */
	put_user(5, "alice", "node3", 0);
	assert_true(user_cache_get("alice", &e));
	assert_string_equal(e.home, "node3");
	assert_int_equal(e.quota, 0);

	struct user_cache_stats st;
	user_cache_stats(&st);
	assert_int_equal(st.entries, 1);
	assert_true(st.hits >= 2);
}

static void test_generation_bump(void **state)
{
	(void)state;
	struct user_cache_entry e;

	user_cache_set_generation(7);
	put_user(7, "alice", "node1", 0);
	put_user(7, "bob", "node1", 0);
	assert_true(user_cache_get("alice", &e));
	/* The directory changed: nothing read before answers. */
	user_cache_set_generation(8);
	assert_false(user_cache_get("alice", &e));
	assert_false(user_cache_get("bob", &e));
	/* A slow reader's answer of the old generation is refused. */
	assert_true(user_cache_entry_set(&e, 7, "alice", true, "node1", "", "active", 1, 0, 0));
	assert_false(user_cache_put(&e));
	assert_false(user_cache_get("alice", &e));
	/* Read again at the new one. */
	put_user(8, "alice", "node4", 0);
	assert_true(user_cache_get("alice", &e));
	assert_string_equal(e.home, "node4");
	assert_false(user_cache_get("bob", &e));
	/* Same generation published again (a quiet beat): still answers. */
	user_cache_set_generation(8);
	assert_true(user_cache_get("alice", &e));
	/* A counter that goes back (a restored file) is a change too. */
	user_cache_set_generation(2);
	assert_false(user_cache_get("alice", &e));
}

static void test_negative_entries(void **state)
{
	(void)state;
	struct user_cache_entry e;

	user_cache_set_generation(11);
	assert_true(user_cache_entry_set(&e, 11, "nobody", false, NULL, NULL, NULL, 0, 0, 0));
	assert_true(user_cache_put(&e));
	memset(&e, 0x55, sizeof(e));
	assert_true(user_cache_get("nobody", &e));
	assert_false(e.found);
	assert_string_equal(e.name, "nobody");
	assert_string_equal(e.home, "");
	/* Added meanwhile: the add bumps the generation. */
	user_cache_set_generation(12);
	assert_false(user_cache_get("nobody", &e));
}

static void test_distrust(void **state)
{
	(void)state;
	struct user_cache_entry e;

	user_cache_set_generation(20);
	put_user(20, "alice", "node1", 0);
	assert_true(user_cache_get("alice", &e));
	/* The counter could not be read: no answers, though the entry stays. */
	user_cache_distrust();
	assert_false(user_cache_get("alice", &e));
	user_cache_set_generation(0);
	assert_false(user_cache_get("alice", &e));
	/* Read again, unchanged. */
	user_cache_set_generation(20);
	assert_true(user_cache_get("alice", &e));
}

static void test_too_long_not_cached(void **state)
{
	(void)state;
	struct user_cache_entry e;
	char long_name[TERN_USER_CACHE_NAME_MAX + 2];
	char long_addr[TERN_USER_CACHE_ADDR_MAX + 2];

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	memset(long_addr, '1', sizeof(long_addr) - 1);
	long_addr[sizeof(long_addr) - 1] = '\0';
	assert_false(user_cache_entry_set(&e, 1, long_name, false, NULL, NULL, NULL, 0, 0, 0));
	assert_false(user_cache_entry_set(&e, 1, "alice", true, "node1", long_addr, "active", 1,
					  0, 0));
	assert_false(user_cache_entry_set(&e, 1, "alice", true, "node1", "", "a-very-long-state",
					  1, 0, 0));
	/* The longest that fits does. */
	long_name[TERN_USER_CACHE_NAME_MAX] = '\0';
	user_cache_set_generation(30);
	assert_true(user_cache_entry_set(&e, 30, long_name, false, NULL, NULL, NULL, 0, 0, 0));
	assert_true(user_cache_put(&e));
	assert_true(user_cache_get(long_name, &e));
	/* An empty name is never stored. */
	assert_true(user_cache_entry_set(&e, 30, "", false, NULL, NULL, NULL, 0, 0, 0));
	assert_false(user_cache_put(&e));
}

static void test_bounded(void **state)
{
	(void)state;
	struct user_cache_entry e;
	struct user_cache_stats st;
	char name[32];
	const unsigned n = 3 * TERN_USER_CACHE_MAX;

	user_cache_set_generation(40);
	for (unsigned i = 0; i < n; i++) {
		if (i % 1024 == 0)
			user_cache_set_generation(40);   /* a heartbeat: slow builds outlast the trust */
		snprintf(name, sizeof(name), "user%u", i);
		put_user(40, name, "node1", i);
		user_cache_stats(&st);
		if (st.entries > TERN_USER_CACHE_MAX)
			fail_msg("%llu entries after %u puts", (unsigned long long)st.entries, i + 1);
		/* the one just put always answers */
		assert_true(user_cache_get(name, &e));
		assert_int_equal(e.quota, i);
	}
	user_cache_stats(&st);
	assert_true(st.clears > 0);
	assert_true(st.entries > 0);
	/* Whatever still answers answers right. */
	user_cache_set_generation(40);
	unsigned hits = 0;
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "user%u", i);
		if (user_cache_get(name, &e)) {
			assert_string_equal(e.name, name);
			assert_int_equal(e.quota, i);
			hits++;
		}
	}
	assert_int_equal(hits, st.entries);
}

/* ---- threads ---- */

#define THREADS 6
#define NAMES 3000
#define ROUNDS 200000

static atomic_bool stop_bumping;
static atomic_ulong bad_hits;

/* Every field is a function of the name and the generation, so a torn or
 * misfiled entry shows. */
static void expected_home(char *buf, size_t size, unsigned i, uint64_t gen)
{
	snprintf(buf, size, "node%u-%llu", i % 97, (unsigned long long)gen);
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
	char name[32], home[TERN_USER_CACHE_HOME_MAX + 1];
	struct user_cache_entry e;

	for (unsigned r = 0; r < ROUNDS; r++) {
		unsigned i = rand_r(&seed) % NAMES;
		snprintf(name, sizeof(name), "u%u", i);
		if (user_cache_get(name, &e)) {
			expected_home(home, sizeof(home), i, e.generation);
			if (strcmp(e.name, name) != 0 || strcmp(e.home, home) != 0 ||
			    e.quota != i || e.epoch != (int64_t)e.generation)
				atomic_fetch_add(&bad_hits, 1);
		} else {
			/* what a look-up worker does: generation, "read", put */
			uint64_t gen = user_cache_generation();
			expected_home(home, sizeof(home), i, gen);
			if (user_cache_entry_set(&e, gen, name, true, home, "", "active",
						 (int64_t)gen, i, 0))
				user_cache_put(&e);
		}
	}
	return NULL;
}

static void *bumper(void *arg)
{
	(void)arg;
	uint64_t gen = 100;
	while (!atomic_load(&stop_bumping)) {
		user_cache_set_generation(++gen);
		for (volatile int spin = 0; spin < 20000; spin++)
			;
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	pthread_t t[THREADS], b;
	struct user_cache_stats st;

	user_cache_set_generation(100);
	atomic_store(&stop_bumping, false);
	atomic_store(&bad_hits, 0);
	assert_int_equal(pthread_create(&b, NULL, bumper, NULL), 0);
	for (uintptr_t i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop_bumping, true);
	pthread_join(b, NULL);
	assert_int_equal(atomic_load(&bad_hits), 0);
	user_cache_stats(&st);
	assert_true(st.hits > 0);
	assert_true(st.puts > 0);
	assert_true(st.entries <= TERN_USER_CACHE_MAX);
	/* No hit may be of an old generation: checked by the field match above
	 * (home carries the generation the entry claims) and here, once
	 * quiet: an entry answers only at the generation in force. */
	uint64_t gen = user_cache_generation();
	char name[32];
	struct user_cache_entry e;
	for (unsigned i = 0; i < NAMES; i++) {
		snprintf(name, sizeof(name), "u%u", i);
		if (user_cache_get(name, &e))
			assert_int_equal(e.generation, gen);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_hit_and_miss, reset),
		cmocka_unit_test_setup(test_generation_bump, reset),
		cmocka_unit_test_setup(test_negative_entries, reset),
		cmocka_unit_test_setup(test_distrust, reset),
		cmocka_unit_test_setup(test_too_long_not_cached, reset),
		cmocka_unit_test_setup(test_bounded, reset),
		cmocka_unit_test_setup(test_threads, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
