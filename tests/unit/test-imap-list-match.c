/* Unit tests for LIST patterns (src/proto/imap/list-match.c): the '*' and
 * '%' wildcards, reference joining, INBOX case rules, hierarchy ordering and
 * that hostile patterns stay cheap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/limits.h"
#include "proto/imap/list-match.h"

static bool match_ref(const char *ref, const char *pattern, const char *name)
{
	struct list_pattern *p = list_pattern_new(ref, pattern);
	assert_non_null(p);
	bool r = list_pattern_match(p, name);
	list_pattern_free(&p);
	assert_null(p);
	return r;
}

static bool match(const char *pattern, const char *name)
{
	return match_ref("", pattern, name);
}

static void test_literal(void **state)
{
	(void)state;
	assert_true(match("Sent", "Sent"));
	assert_false(match("Sent", "sent"));
	assert_false(match("Sent", "Sent/x"));
	assert_false(match("Sent", "Sen"));
	assert_false(match("Sen", "Sent"));
	assert_true(match("a/b", "a/b"));
	assert_false(match("", "a"));
	assert_true(match("", ""));
}

static void test_star(void **state)
{
	(void)state;
	assert_true(match("*", "INBOX"));
	assert_true(match("*", "a/b/c"));
	assert_true(match("a*", "a"));
	assert_true(match("a*", "a/b/c"));
	assert_true(match("a/*", "a/b/c"));
	assert_false(match("a/*", "a"));
	assert_true(match("*c", "a/b/c"));
	assert_false(match("*c", "a/b/cd"));
	assert_true(match("*b*", "a/b/c"));
	assert_true(match("a**c", "abc"));
	assert_true(match("**", ""));
	assert_false(match("x*", "a"));
}

static void test_percent(void **state)
{
	(void)state;
	assert_true(match("%", "INBOX"));
	assert_true(match("%", "Sent"));
	assert_false(match("%", "a/b"));
	assert_true(match("a/%", "a/b"));
	assert_false(match("a/%", "a/b/c"));
	assert_false(match("a/%", "a"));
	assert_true(match("a/%/c", "a/b/c"));
	assert_true(match("%/%", "a/b"));
	assert_false(match("%/%", "a"));
	assert_true(match("a%", "abc"));
	assert_true(match("%c", "abc"));
	assert_false(match("%c", "a/c"));
	assert_true(match("%/*", "a/b/c"));
	assert_true(match("*/%", "a/b/c"));
	assert_false(match("*/%", "abc"));
	/* '%' matches the empty string too. */
	assert_true(match("a%", "a"));
	assert_true(match("a/%", "a/"));
}

static void test_inbox_case(void **state)
{
	(void)state;
	assert_true(match("inbox", "INBOX"));
	assert_true(match("InBoX", "INBOX"));
	assert_true(match("in%", "INBOX"));
	assert_true(match("i*", "INBOX/sub"));
	assert_true(match("inbox/sub", "INBOX/sub"));
	assert_true(match("Inbox/%", "INBOX/sub"));
	/* Only the INBOX part is case-insensitive. */
	assert_false(match("inbox/SUB", "INBOX/sub"));
	/* A folder merely starting with "Inbox" is an ordinary name. */
	assert_false(match("inboxes", "INBOXES"));
	assert_false(match("INBOX", "Inbox"));
	assert_false(match("inbox", "inbox2"));
}

static void test_reference(void **state)
{
	(void)state;
	assert_true(match_ref("a/", "%", "a/b"));
	assert_false(match_ref("a/", "%", "a"));
	assert_false(match_ref("a/", "%", "b"));
	assert_true(match_ref("a/", "/%", "a/b"));
	assert_true(match_ref("a", "/b", "a/b"));
	assert_true(match_ref("a", "*", "a/b"));
	assert_true(match_ref("a", "*", "ab"));

	struct list_pattern *p = list_pattern_new("x/", "/y**z%");
	assert_non_null(p);
	assert_string_equal(list_pattern_text(p), "x/y*z%");
	assert_true(list_pattern_has_percent(p));
	list_pattern_free(&p);
	p = list_pattern_new("", "*");
	assert_false(list_pattern_has_percent(p));
	list_pattern_free(&p);
}

static void test_utf8(void **state)
{
	(void)state;
	assert_true(match("Entw\xc3\xbcrfe", "Entw\xc3\xbcrfe"));
	assert_true(match("Entw%", "Entw\xc3\xbcrfe"));
	assert_true(match("%\xc3\xbc%", "Entw\xc3\xbcrfe"));
	assert_false(match("Entw\xc3\xbcrfe", "Entwurfe"));
}

static void test_too_long(void **state)
{
	(void)state;
	char *big = malloc(TERN_LIST_PATTERN_MAX + 2);
	assert_non_null(big);
	memset(big, 'a', TERN_LIST_PATTERN_MAX + 1);
	big[TERN_LIST_PATTERN_MAX + 1] = '\0';
	assert_null(list_pattern_new("", big));
	big[TERN_LIST_PATTERN_MAX] = '\0';
	struct list_pattern *p = list_pattern_new("", big);
	assert_non_null(p);
	list_pattern_free(&p);
	assert_null(list_pattern_new("a", big));
	free(big);
}

/* Backtracking matchers take exponential time on "%a%a%a...b"; the table
 * matcher must stay linear in the name for a fixed pattern. */
static void test_no_blowup(void **state)
{
	(void)state;
	char pattern[2 * 200 + 2], name[TERN_FOLDER_NAME_MAX + 1];
	size_t n = 0;
	for (int i = 0; i < 200; i++) {
		pattern[n++] = i % 2 ? '*' : '%';
		pattern[n++] = 'a';
	}
	pattern[n++] = 'b';
	pattern[n] = '\0';
	memset(name, 'a', TERN_FOLDER_NAME_MAX);
	name[TERN_FOLDER_NAME_MAX] = '\0';
	struct list_pattern *p = list_pattern_new("", pattern);
	assert_non_null(p);
	clock_t t0 = clock();
	for (int i = 0; i < 100; i++)
		assert_false(list_pattern_match(p, name));
	name[TERN_FOLDER_NAME_MAX - 1] = 'b';
	assert_true(list_pattern_match(p, name));
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	assert_true(secs < 2.0);
	list_pattern_free(&p);
}

static int cmp_sign(int x)
{
	return x < 0 ? -1 : x > 0;
}

static void test_name_order(void **state)
{
	(void)state;
	assert_int_equal(list_name_cmp("a", "a"), 0);
	assert_int_equal(cmp_sign(list_name_cmp("a", "a/b")), -1);
	assert_int_equal(cmp_sign(list_name_cmp("a/b", "a b")), -1);
	assert_int_equal(cmp_sign(list_name_cmp("a b", "a/b")), 1);
	assert_int_equal(cmp_sign(list_name_cmp("a/z", "a-b")), -1);
	assert_int_equal(cmp_sign(list_name_cmp("b", "a/b")), 1);
	assert_int_equal(cmp_sign(list_name_cmp("a\xc3\xbc", "az")), 1);

	/* After sorting, every name's descendants follow it directly. */
	const char *names[] = { "a b", "a/b/c", "b", "a", "a-", "a/b", "a/c", "a.x/y" };
	size_t count = sizeof(names) / sizeof(names[0]);
	for (size_t i = 1; i < count; i++)
		for (size_t j = i; j > 0 && list_name_cmp(names[j - 1], names[j]) > 0; j--) {
			const char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	const char *want[] = { "a", "a/b", "a/b/c", "a/c", "a b", "a-", "a.x/y", "b" };
	for (size_t i = 0; i < count; i++)
		assert_string_equal(names[i], want[i]);

	assert_true(list_name_is_under("a/b", "a"));
	assert_true(list_name_is_under("a/b/c", "a"));
	assert_false(list_name_is_under("a", "a"));
	assert_false(list_name_is_under("ab/c", "a"));
	assert_false(list_name_is_under("b/a", "a"));
}

/* CHILDINFO (RFC 5258 §3.5) over names in hierarchy order: "subs" are the
 * names that meet the selection (subscribed), "pats" the patterns. Returns
 * the names marked CHILDINFO, comma-separated, in a static buffer. */
static const char *childinfo(const char *const *names, size_t n, const char *const *subs,
			     size_t nsubs, const char *const *pats, size_t npats)
{
	static char out[512];
	unsigned char marks[32];

	assert_true(n <= sizeof(marks));
	for (size_t i = 0; i < n; i++) {
		marks[i] = 0;
		for (size_t k = 0; k < npats; k++) {
			struct list_pattern *p = list_pattern_new("", pats[k]);
			assert_non_null(p);
			if (list_pattern_match(p, names[i]))
				marks[i] |= LIST_MARK_MATCHED;
			list_pattern_free(&p);
		}
		for (size_t k = 0; k < nsubs; k++)
			if (strcmp(subs[k], names[i]) == 0)
				marks[i] |= LIST_MARK_MEETS;
		if (i > 0)
			assert_true(list_name_cmp(names[i - 1], names[i]) < 0);
	}
	assert_int_equal(list_mark_childinfo(names, marks, n), 0);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		/* the input bits stay as they were */
		if ((marks[i] & LIST_MARK_CHILDINFO) == 0)
			continue;
		if (out[0] != '\0')
			strcat(out, ",");
		strcat(out, names[i]);
	}
	return out;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_childinfo_listed_child(void **state)
{
	(void)state;
	/* issue 11: a/b/c subscribed, a/b not */
	static const char *const names[] = { "a", "a/b", "a/b/c" };
	static const char *const subs[] = { "a/b/c" };
	static const char *const both[] = { "a/b", "a/b/c" };
	static const char *const ab[] = { "a/b" };
	static const char *const two[] = { "%", "a/%" };
	static const char *const star[] = { "a*" };
	assert_string_equal(childinfo(names, N(names), subs, N(subs), both, N(both)), "");
	assert_string_equal(childinfo(names, N(names), subs, N(subs), ab, N(ab)), "a,a/b");
	assert_string_equal(childinfo(names, N(names), subs, N(subs), two, N(two)), "a,a/b");
	assert_string_equal(childinfo(names, N(names), subs, N(subs), star, N(star)), "");
	/* nothing that meets the selection below: nothing to report */
	assert_string_equal(childinfo(names, N(names), NULL, 0, ab, N(ab)), "");
	assert_int_equal(list_mark_childinfo(NULL, NULL, 0), 0);
}

static void test_childinfo_rfc5258_example_9(void **state)
{
	(void)state;
	static const char *const names[] = {
		"baz2", "baz2/bar2", "baz2/bar22", "baz2/bar222", "eps2", "eps2/mamba",
		"foo2", "foo2/bar1", "foo2/bar2", "qux2", "qux2/bar2",
	};
	static const char *const subs[] = {
		"foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222",
		"eps2", "eps2/mamba", "qux2/bar2",
	};
	static const char *const d03[] = { "*2" };
	static const char *const d04[] = { "%2" };
	/* D03: baz2's and qux2's subscribed children are all listed */
	assert_string_equal(childinfo(names, N(names), subs, N(subs), d03, N(d03)), "eps2,foo2");
	/* D04 */
	assert_string_equal(childinfo(names, N(names), subs, N(subs), d04, N(d04)),
			    "baz2,eps2,foo2,qux2");
}

static void test_childinfo_depth_and_siblings(void **state)
{
	(void)state;
	/* "a b" sorts after a's subtree and is no child of "a" */
	static const char *const names[] = { "a", "a/b", "a/b/c", "a b", "b", "b/x" };
	static const char *const subs[] = { "a/b/c", "a b", "b/x" };
	static const char *const pa[] = { "a" };
	static const char *const pab[] = { "a", "a/b/c" };
	static const char *const pb[] = { "b/x" };
	static const char *const pall[] = { "*" };
	static const char *const sibling[] = { "a b" };
	/* a grandchild counts, through a parent that meets nothing; every
	 * ancestor is marked (LIST then reports the ones a pattern matches) */
	assert_string_equal(childinfo(names, N(names), subs, N(subs), pa, N(pa)), "a,a/b,b");
	assert_string_equal(childinfo(names, N(names), subs, N(subs), pab, N(pab)), "b");
	assert_string_equal(childinfo(names, N(names), subs, N(subs), pb, N(pb)), "a,a/b");
	assert_string_equal(childinfo(names, N(names), subs, N(subs), pall, N(pall)), "");
	/* "a b", unlisted, is a sibling of "a", not below it */
	assert_string_equal(childinfo(names, N(names), sibling, N(sibling), pa, N(pa)), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literal),
		cmocka_unit_test(test_star),
		cmocka_unit_test(test_percent),
		cmocka_unit_test(test_inbox_case),
		cmocka_unit_test(test_reference),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_no_blowup),
		cmocka_unit_test(test_name_order),
		cmocka_unit_test(test_childinfo_listed_child),
		cmocka_unit_test(test_childinfo_rfc5258_example_9),
		cmocka_unit_test(test_childinfo_depth_and_siblings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
