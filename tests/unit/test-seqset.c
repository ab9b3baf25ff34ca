/* Unit tests for IMAP sequence sets (src/proto/imap/seqset.c): syntax,
 * "*" resolution, normalisation, membership and compact formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "proto/imap/seqset.h"

static struct imap_seqset *parse(const char *s)
{
	struct imap_seqset *set = NULL;
	assert_int_equal(imap_seqset_parse(s, strlen(s), &set), 0);
	assert_non_null(set);
	return set;
}

/* Resolves s against max and checks the ranges, given as "lo-hi lo-hi". */
static void expect_ranges(const char *s, uint32_t max, const uint32_t *want, size_t nwant)
{
	struct imap_seqset *set = parse(s);
	size_t n;

	assert_int_equal(imap_seqset_resolve(set, max), 0);
	const struct imap_seq_range *r = imap_seqset_ranges(set, &n);
	assert_int_equal(n, nwant / 2);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].lo, want[2 * i]);
		assert_int_equal(r[i].hi, want[2 * i + 1]);
	}
	imap_seqset_free(&set);
	assert_null(set);
}

static void test_parse_valid(void **state)
{
	(void)state;
	static const uint32_t a[] = { 1, 1, 3, 5, 7, 10 };
	expect_ranges("1,3:5,7:*", 10, a, 6);
	static const uint32_t b[] = { 1, 6 };
	expect_ranges("5:3,1:2,6,4", 100, b, 2);            /* merged, reversed range */
	static const uint32_t c[] = { 8, 12 };
	expect_ranges("12:*", 8, c, 2);                      /* n:* with n > max */
	static const uint32_t d[] = { 4294967295u, 4294967295u };
	expect_ranges("4294967295", 3, d, 2);
	static const uint32_t e[] = { 1, 4294967295u };
	expect_ranges("1:4294967295,7", 3, e, 2);
	/* Empty mailbox: "*" is 0, which no message has. */
	expect_ranges("*", 0, NULL, 0);
	static const uint32_t f[] = { 1, 3 };
	expect_ranges("3:*", 0, f, 2);

	struct imap_seqset *set = parse("*");
	assert_true(imap_seqset_has_star(set));
	assert_false(imap_seqset_is_saved(set));
	imap_seqset_free(&set);
	set = parse("$");
	assert_true(imap_seqset_is_saved(set));
	imap_seqset_free(&set);
}

static void test_parse_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "0", "0:5", "1,0", "1,", ",1", "1,,2", "1:", ":1", "1::2", "a", "1a",
		"-1", "+1", "01", "4294967296", "1:2:3", "$,1", "1,$", "$$", " 1", "1 ", "**",
		"1:*:2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct imap_seqset *set = (struct imap_seqset *)0x1;
		assert_int_equal(imap_seqset_parse(bad[i], strlen(bad[i]), &set), -1);
		assert_ptr_equal(set, (struct imap_seqset *)0x1);
	}
}

static void test_contains_count(void **state)
{
	(void)state;
	struct imap_seqset *set = parse("2,4:6,10:*,100");
	assert_int_equal(imap_seqset_resolve(set, 12), 0);
	static const uint32_t in[] = { 2, 4, 5, 6, 10, 11, 12, 100 };
	static const uint32_t out[] = { 0, 1, 3, 7, 9, 13, 99, 101, UINT32_MAX };
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		assert_true(imap_seqset_contains(set, in[i]));
	for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
		assert_false(imap_seqset_contains(set, out[i]));
	assert_int_equal(imap_seqset_count(set), 1 + 3 + 3 + 1);
	/* Resolving again against a grown mailbox moves "*". */
	assert_int_equal(imap_seqset_resolve(set, 20), 0);
	assert_true(imap_seqset_contains(set, 20));
	assert_int_equal(imap_seqset_count(set), 1 + 3 + 11 + 1);
	imap_seqset_free(&set);
}

static void expect_format(const uint32_t *ids, size_t n, const char *want)
{
	char *s = imap_seqset_format(ids, n);
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

static void test_format(void **state)
{
	(void)state;
	static const uint32_t a[] = { 1, 2, 3, 5 };
	expect_format(a, 4, "1:3,5");
	static const uint32_t b[] = { 7 };
	expect_format(b, 1, "7");
	expect_format(NULL, 0, "");
	static const uint32_t c[] = { 1, 1, 2, 4, 4, 5, 9, 4294967294u, 4294967295u };
	expect_format(c, 9, "1:2,4:5,9,4294967294:4294967295");

	/* A set built from sorted ids writes back the same text. */
	struct imap_seqset *set = NULL;
	assert_int_equal(imap_seqset_from_sorted(c, 9, &set), 0);
	assert_true(imap_seqset_contains(set, 5));
	assert_false(imap_seqset_contains(set, 3));
	struct evbuffer *buf = evbuffer_new();
	assert_int_equal(imap_seqset_write_set(buf, set), 0);
	assert_int_equal(evbuffer_get_length(buf), strlen("1:2,4:5,9,4294967294:4294967295"));
	assert_memory_equal(evbuffer_pullup(buf, -1), "1:2,4:5,9,4294967294:4294967295",
			    evbuffer_get_length(buf));
	evbuffer_free(buf);
	imap_seqset_free(&set);
	static const uint32_t unsorted[] = { 5, 3 };
	set = NULL;
	assert_int_equal(imap_seqset_from_sorted(unsorted, 2, &set), -1);
	assert_null(set);
}

/* Round trip: format then parse gives the same membership. */
static void test_round_trip(void **state)
{
	(void)state;
	uint32_t ids[200];
	size_t n = 0;
	for (uint32_t v = 1; n < 200; v += (v % 7 == 0) ? 3 : 1)
		ids[n++] = v;
	char *s = imap_seqset_format(ids, n);
	struct imap_seqset *set = parse(s);
	assert_int_equal(imap_seqset_resolve(set, 1), 0);
	assert_int_equal(imap_seqset_count(set), n);
	for (size_t i = 0; i < n; i++)
		assert_true(imap_seqset_contains(set, ids[i]));
	free(s);
	imap_seqset_free(&set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_contains_count),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
