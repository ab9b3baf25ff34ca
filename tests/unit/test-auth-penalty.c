/* What the login penalties of proto/auth read off the failure counts: the
 * count and the time of the latest failure per key (auth_failures_peek). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/auth.h"

static void test_peek(void **state)
{
	(void)state;
	const uint64_t t = 5000000;
	uint64_t last = 42;
	/* unknown: 0, and the time is left alone */
	assert_int_equal(auth_failures_peek("a:192.0.2.50", t, &last), 0);
	assert_int_equal(last, 42);
	assert_int_equal(auth_failures_add("a:192.0.2.50", t), 1);
	assert_int_equal(auth_failures_add("a:192.0.2.50", t + 700), 2);
	assert_int_equal(auth_failures_peek("a:192.0.2.50", t + 900, &last), 2);
	assert_int_equal(last, t + 700);
	/* a pair key is a key like any other, apart from the user's own */
	assert_int_equal(auth_failures_add("p:192.0.2.50 dave", t + 800), 1);
	assert_int_equal(auth_failures_peek("p:192.0.2.51 dave", t + 900, &last), 0);
	assert_int_equal(auth_failures_peek("u:dave", t + 900, NULL), 0);
	/* the latest failure never goes back in time (threads race to count) */
	assert_int_equal(auth_failures_add("a:192.0.2.50", t + 600), 3);
	assert_int_equal(auth_failures_peek("a:192.0.2.50", t + 900, &last), 3);
	assert_int_equal(last, t + 700);
	/* expired after the window without failures */
	assert_int_equal(auth_failures_peek("a:192.0.2.50", t + 700 + AUTH_FAILURE_WINDOW_MS,
					    &last), 0);
	auth_failures_clear("p:192.0.2.50 dave");
	assert_int_equal(auth_failures_get("p:192.0.2.50 dave", t + 900), 0);
}

/* Refusal episodes: the previous time comes with the count, in one step. */
static void test_add_since(void **state)
{
	(void)state;
	const uint64_t t = 9000000;
	uint64_t prev = 99;
	assert_int_equal(auth_failures_add_since("r:198.51.100.9", t, &prev), 1);
	assert_int_equal(prev, 0);
	assert_int_equal(auth_failures_add_since("r:198.51.100.9", t + 30, &prev), 2);
	assert_int_equal(prev, t);
	assert_int_equal(auth_failures_add_since("r:198.51.100.9", t + 10, &prev), 3);
	assert_int_equal(prev, t + 30);
	/* after the window it starts over */
	assert_int_equal(auth_failures_add_since("r:198.51.100.9", t + 30 + AUTH_FAILURE_WINDOW_MS,
						 &prev), 1);
	assert_int_equal(prev, 0);
}

/* The penalty an address has earned, as auth.c computes its earliest start:
 * the delay for its count, from its latest failure. */
static void test_penalty_grows_and_caps(void **state)
{
	(void)state;
	assert_int_equal(auth_failure_delay_ms(1000, 1), 1000);
	assert_int_equal(auth_failure_delay_ms(1000, 4), 8000);
	assert_int_equal(auth_failure_delay_ms(1000, 8), AUTH_DELAY_CAP_MS);
	assert_int_equal(auth_failure_delay_ms(1000, UINT32_MAX), AUTH_DELAY_CAP_MS);
	assert_int_equal(auth_failure_delay_ms(0, 100), 0);
	assert_int_equal(auth_failure_delay_ms(30000, 3), 30000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peek),
		cmocka_unit_test(test_add_since),
		cmocka_unit_test(test_penalty_grows_and_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
