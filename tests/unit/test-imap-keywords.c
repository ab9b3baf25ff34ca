/* Unit tests for the keyword steps before the store writes: IMAP flag-list
 * parsing (src/proto/imap/flags.c) with its per-message limit, and the
 * store's normalising (src/store/store-flags.c). Both keep the meaning they
 * had: keywords compare case-insensitively (RFC 3501 §2.3.2), the first
 * spelling stays, in the client's order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/limits.h"
#include "proto/imap/session.h"
#include "store/store-private.h"

/* A flag list argument "(w1 w2 ...)" from words separated by spaces. */
struct flag_list {
	struct imap_arg list;
	struct imap_arg *items;
	char *words;
};

static void flag_list_make(struct flag_list *fl, const char *words)
{
	size_t n = 0, cap = 16;

	fl->words = strdup(words);
	fl->items = calloc(cap, sizeof(*fl->items));
	assert_non_null(fl->words);
	assert_non_null(fl->items);
	for (char *save = NULL, *w = strtok_r(fl->words, " ", &save); w != NULL;
	     w = strtok_r(NULL, " ", &save)) {
		if (n == cap) {
			cap *= 2;
			fl->items = realloc(fl->items, cap * sizeof(*fl->items));
			assert_non_null(fl->items);
		}
		fl->items[n++] = (struct imap_arg){ .type = IMAP_ARG_ATOM, .str = w, .len = strlen(w) };
	}
	fl->list = (struct imap_arg){ .type = IMAP_ARG_LIST, .list = fl->items, .list_count = n };
}

static void flag_list_free(struct flag_list *fl)
{
	free(fl->items);
	free(fl->words);
}

/* "k0 k1 ... k(n-1)", heap; upper = "K0 K1 ...". */
static char *numbered(size_t n, bool upper)
{
	size_t cap = n * 12 + 1, len = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	s[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%c%zu", i > 0 ? " " : "",
					upper ? 'K' : 'k', i);
	return s;
}

static int parse(const char *words, uint32_t *flags, char **kw, const char **bad)
{
	struct flag_list fl;

	flag_list_make(&fl, words);
	*flags = 0;
	*kw = NULL;
	*bad = NULL;
	int ret = imap_flags_parse(&fl.list, flags, kw, bad);
	flag_list_free(&fl);
	return ret;
}

static void test_parse_keeps_first_spelling_and_order(void **state)
{
	uint32_t flags;
	char *kw;
	const char *bad;

	(void)state;
	assert_int_equal(parse("Zeta alpha \\Seen ALPHA $Work zeta \\flagged", &flags, &kw, &bad), 0);
	assert_int_equal(flags, STORE_FLAG_SEEN | STORE_FLAG_FLAGGED);
	assert_string_equal(kw, "Zeta alpha $Work");
	free(kw);
	assert_int_equal(parse("\\Seen", &flags, &kw, &bad), 0);
	assert_null(kw);
	assert_int_equal(parse("", &flags, &kw, &bad), 0);
	assert_int_equal(flags, 0);
	assert_null(kw);
}

static void test_parse_refuses_as_before(void **state)
{
	uint32_t flags;
	char *kw;
	const char *bad;

	(void)state;
	assert_int_equal(parse("ok \\Recent", &flags, &kw, &bad), -1);
	assert_non_null(bad);
	assert_null(kw);
	assert_int_equal(parse("\\Bogus", &flags, &kw, &bad), -1);
	assert_int_equal(parse("a]b", &flags, &kw, &bad), -1);
	assert_string_equal(bad, "Invalid keyword");
}

/* flag-keyword = atom: the parser's NIL (any case) is the keyword "NIL",
 * alone (STORE's flag without parentheses) or in a list. */
static void test_parse_nil_is_a_keyword(void **state)
{
	uint32_t flags;
	char *kw;
	const char *bad;
	char nil[] = "NIL", lower[] = "nil", seen[] = "\\Seen";
	struct imap_arg one = { .type = IMAP_ARG_NIL, .str = nil, .len = 3 };
	struct imap_arg items[] = {
		{ .type = IMAP_ARG_ATOM, .str = seen, .len = 5 },
		{ .type = IMAP_ARG_NIL, .str = lower, .len = 3 },
	};
	struct imap_arg list = { .type = IMAP_ARG_LIST, .list = items, .list_count = 2 };

	(void)state;
	assert_int_equal(imap_flags_parse(&one, &flags, &kw, &bad), 0);
	assert_int_equal(flags, 0);
	assert_string_equal(kw, "NIL");
	free(kw);
	assert_int_equal(imap_flags_parse(&list, &flags, &kw, &bad), 0);
	assert_int_equal(flags, STORE_FLAG_SEEN);
	assert_string_equal(kw, "nil");
	free(kw);
}

static void test_parse_limit_counts_distinct_keywords(void **state)
{
	uint32_t flags;
	char *kw;
	const char *bad;
	char *full = numbered(TERN_KEYWORDS_PER_MESSAGE_MAX, false);
	char *upper = numbered(TERN_KEYWORDS_PER_MESSAGE_MAX, true);
	char *over = numbered(TERN_KEYWORDS_PER_MESSAGE_MAX + 1, false);
	char *hostile = numbered(10000, false);
	size_t both_len = 2 * strlen(full) + 2;
	char *both = malloc(both_len);

	(void)state;
	assert_non_null(both);
	snprintf(both, both_len, "%s %s", full, upper);
	assert_int_equal(parse(full, &flags, &kw, &bad), 0);
	assert_string_equal(kw, full);
	free(kw);
	/* the same keywords again in capitals are not more keywords */
	assert_int_equal(parse(both, &flags, &kw, &bad), 0);
	assert_string_equal(kw, full);
	free(kw);
	assert_int_equal(parse(over, &flags, &kw, &bad), IMAP_FLAGS_TOO_MANY_KEYWORDS);
	assert_null(kw);
	assert_string_equal(bad, "Too many keywords");
	assert_int_equal(parse(hostile, &flags, &kw, &bad), IMAP_FLAGS_TOO_MANY_KEYWORDS);
	assert_null(kw);
	free(full);
	free(upper);
	free(over);
	free(hostile);
	free(both);
}

static void test_normalize(void **state)
{
	enum tern_error err = TERN_ERR_NONE;
	char *out = (char *)"untouched";

	(void)state;
	assert_int_equal(store_keywords_normalize(NULL, &out, &err), 0);
	assert_null(out);
	assert_int_equal(store_keywords_normalize("   ", &out, &err), 0);
	assert_null(out);
	assert_int_equal(store_keywords_normalize(" b  a B c A ", &out, &err), 0);
	assert_string_equal(out, "b a c");
	free(out);
	assert_int_equal(store_keywords_normalize("ok \\Seen", &out, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_null(out);
	assert_int_equal(store_keywords_normalize("ok bad(", &out, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
}

/* The store has no limit of its own here (a journal replay must store what
 * was accepted before there was one), so it must stay linear: 100,000
 * keywords twice over, in capitals the second time. */
static void test_normalize_many(void **state)
{
	enum { COUNT = 100000 };
	enum tern_error err = TERN_ERR_NONE;
	char *lower = numbered(COUNT, false), *upper = numbered(COUNT, true);
	size_t len = strlen(lower) + strlen(upper) + 2;
	char *in = malloc(len), *out = NULL;

	(void)state;
	assert_non_null(in);
	snprintf(in, len, "%s %s", lower, upper);
	assert_int_equal(store_keywords_normalize(in, &out, &err), 0);
	assert_string_equal(out, lower);
	free(out);
	free(in);
	free(lower);
	free(upper);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_keeps_first_spelling_and_order),
		cmocka_unit_test(test_parse_refuses_as_before),
		cmocka_unit_test(test_parse_nil_is_a_keyword),
		cmocka_unit_test(test_parse_limit_counts_distinct_keywords),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_normalize_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
