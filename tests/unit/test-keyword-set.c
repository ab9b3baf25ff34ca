/* Unit tests for keyword sets (src/core/keyword-set.c): case-insensitive
 * membership that keeps the first spelling and the order of first addition,
 * the space-separated text it hands over, list walking, and that adding
 * keeps costing the same per keyword however many there are (the quadratic
 * rescans it replaced took seconds for 10,000 keywords). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/keyword-set.h"

static int add(struct keyword_set *set, const char *kw)
{
	return keyword_set_add(set, kw, strlen(kw));
}

static bool has(const struct keyword_set *set, const char *kw)
{
	return keyword_set_contains(set, kw, strlen(kw));
}

static void test_case_insensitive_first_spelling_kept(void **state)
{
	struct keyword_set set = KEYWORD_SET_INIT;

	(void)state;
	assert_int_equal(keyword_set_count(&set), 0);
	assert_string_equal(keyword_set_text(&set), "");
	assert_false(has(&set, "Zeta"));
	assert_int_equal(add(&set, "Zeta"), 1);
	assert_int_equal(add(&set, "alpha"), 1);
	assert_int_equal(add(&set, "ZETA"), 0);
	assert_int_equal(add(&set, "$Work"), 1);
	assert_int_equal(add(&set, "Alpha"), 0);
	assert_int_equal(add(&set, "zeta"), 0);
	assert_int_equal(keyword_set_count(&set), 3);
	assert_string_equal(keyword_set_text(&set), "Zeta alpha $Work");
	assert_true(has(&set, "zEtA"));
	assert_true(has(&set, "$WORK"));
	assert_false(has(&set, "Zet"));
	assert_false(has(&set, "Zetaa"));
	/* a prefix of a keyword is not the keyword: lengths count */
	assert_false(keyword_set_contains(&set, "Zeta alpha", 3));
	assert_true(keyword_set_contains(&set, "Zeta alpha", 4));
	/* empty keywords are never members and never added */
	assert_int_equal(keyword_set_add(&set, "x", 0), 0);
	assert_false(keyword_set_contains(&set, "x", 0));
	keyword_set_clear(&set);
	assert_int_equal(keyword_set_count(&set), 0);
	assert_null(set.text);
}

/* SipHash reads 8 bytes at a time: case must not matter in whole blocks or
 * in the tail, whatever the length. */
static void test_case_folding_at_every_length(void **state)
{
	struct keyword_set set = KEYWORD_SET_INIT;
	char lower[40], upper[40];

	(void)state;
	for (size_t len = 1; len < sizeof(lower); len++) {
		for (size_t i = 0; i < len; i++) {
			lower[i] = (char)('a' + (len + i) % 26);
			upper[i] = (char)(lower[i] - 'a' + 'A');
		}
		assert_int_equal(keyword_set_add(&set, lower, len), 1);
		assert_true(keyword_set_contains(&set, upper, len));
		assert_int_equal(keyword_set_add(&set, upper, len), 0);
	}
	assert_int_equal(keyword_set_count(&set), sizeof(lower) - 1);
	keyword_set_clear(&set);
}

static void test_only_ascii_letters_fold(void **state)
{
	struct keyword_set set = KEYWORD_SET_INIT;

	(void)state;
	assert_int_equal(add(&set, "a[b"), 1);
	/* '[' and '{' are 0x20 apart like 'A' and 'a', but are not a case pair */
	assert_int_equal(add(&set, "a{b"), 1);
	assert_int_equal(add(&set, "A[B"), 0);
	assert_int_equal(add(&set, "$1"), 1);
	assert_int_equal(add(&set, "$\x11"), 1);
	assert_int_equal(keyword_set_count(&set), 4);
	keyword_set_clear(&set);
}

static void test_add_list_and_take_text(void **state)
{
	struct keyword_set set = KEYWORD_SET_INIT;
	size_t added = 99;

	(void)state;
	assert_int_equal(keyword_set_add_list(&set, NULL, &added), 0);
	assert_int_equal(added, 0);
	assert_int_equal(keyword_set_add_list(&set, "   ", &added), 0);
	assert_int_equal(added, 0);
	assert_null(keyword_set_take_text(&set));
	assert_int_equal(keyword_set_add_list(&set, "  b a  B c ", &added), 0);
	assert_int_equal(added, 3);
	assert_int_equal(keyword_set_add_list(&set, "A d", &added), 0);
	assert_int_equal(added, 1);
	assert_int_equal(keyword_set_add_list(&set, "a b", NULL), 0);

	char *text = keyword_set_take_text(&set);
	assert_string_equal(text, "b a c d");
	free(text);
	/* taken: the set is empty and usable again */
	assert_int_equal(keyword_set_count(&set), 0);
	assert_false(has(&set, "a"));
	assert_int_equal(add(&set, "e"), 1);
	assert_string_equal(keyword_set_text(&set), "e");
	keyword_set_clear(&set);
}

static void test_list_next(void **state)
{
	const char *list = "  one two   three ", *kw, *cursor = list;
	const char *want[] = { "one", "two", "three" };
	size_t len, n = 0;

	(void)state;
	while (keyword_list_next(&cursor, &kw, &len)) {
		assert_true(n < 3);
		assert_int_equal(len, strlen(want[n]));
		assert_memory_equal(kw, want[n], len);
		n++;
	}
	assert_int_equal(n, 3);
	assert_false(keyword_list_next(&cursor, &kw, &len));
	cursor = NULL;
	assert_false(keyword_list_next(&cursor, &kw, &len));
	cursor = "";
	assert_false(keyword_list_next(&cursor, &kw, &len));
}

/* 200,000 keywords: every one found, the text in order, and in far less
 * time than a rescan per keyword would take (2e10 comparisons, minutes). */
static void test_many_keywords_cost_linear_time(void **state)
{
	enum { COUNT = 200000 };
	struct keyword_set set = KEYWORD_SET_INIT;
	char kw[32];
	clock_t start = clock();

	(void)state;
	for (int i = 0; i < COUNT; i++) {
		int len = snprintf(kw, sizeof(kw), "k%d", i);
		assert_int_equal(keyword_set_add(&set, kw, (size_t)len), 1);
	}
	for (int i = 0; i < COUNT; i++) {
		int len = snprintf(kw, sizeof(kw), "K%d", i);
		assert_int_equal(keyword_set_add(&set, kw, (size_t)len), 0);
	}
	assert_int_equal(keyword_set_count(&set), COUNT);
	assert_false(has(&set, "k200000"));

	const char *cursor = keyword_set_text(&set), *p;
	size_t len;
	for (int i = 0; i < COUNT; i++) {
		int n = snprintf(kw, sizeof(kw), "k%d", i);
		assert_true(keyword_list_next(&cursor, &p, &len));
		assert_int_equal(len, (size_t)n);
		assert_memory_equal(p, kw, len);
	}
	assert_false(keyword_list_next(&cursor, &p, &len));
	double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
	assert_true(seconds < 5.0);
	keyword_set_clear(&set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_case_insensitive_first_spelling_kept),
		cmocka_unit_test(test_case_folding_at_every_length),
		cmocka_unit_test(test_only_ascii_letters_fold),
		cmocka_unit_test(test_add_list_and_take_text),
		cmocka_unit_test(test_list_next),
		cmocka_unit_test(test_many_keywords_cost_linear_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
