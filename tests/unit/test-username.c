/* Canonical user names: validity, parsing of login names and RCPT
 * addresses, domain matching and "+detail". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/username.h"

static void test_valid(void **state)
{
	char name[80];

	(void)state;
	assert_true(username_valid("alice"));
	assert_true(username_valid("a"));
	assert_true(username_valid("0"));
	assert_true(username_valid("john.doe_1-x"));
	assert_true(username_valid("_x"));
	assert_false(username_valid(""));
	assert_false(username_valid(NULL));
	assert_false(username_valid("Alice"));
	assert_false(username_valid(".alice"));
	assert_false(username_valid("-alice"));
	assert_false(username_valid("al/ice"));
	assert_false(username_valid("al ice"));
	assert_false(username_valid("al+ice"));
	assert_false(username_valid("al@ice"));
	assert_false(username_valid("\xc3\xa9t\xc3\xa9"));
	memset(name, 'a', 64);
	name[64] = '\0';
	assert_true(username_valid(name));
	name[64] = 'a';
	name[65] = '\0';
	assert_false(username_valid(name));
}

static void test_parse_login(void **state)
{
	char user[65] = "untouched";

	(void)state;
	assert_int_equal(username_parse("alice", NULL, user, sizeof(user), NULL, 0), 0);
	assert_string_equal(user, "alice");
	assert_int_equal(username_parse("Alice@Example.ORG", "example.org", user, sizeof(user),
					NULL, 0), 0);
	assert_string_equal(user, "alice");
	assert_int_equal(username_parse("BOB", "", user, sizeof(user), NULL, 0), 0);
	assert_string_equal(user, "bob");
	/* Any domain when none is configured. */
	assert_int_equal(username_parse("carol@anything.test", "", user, sizeof(user), NULL, 0), 0);
	assert_string_equal(user, "carol");
	/* '+' is an error for logins. */
	strcpy(user, "untouched");
	assert_int_equal(username_parse("alice+x", NULL, user, sizeof(user), NULL, 0), -1);
	assert_string_equal(user, "untouched");
}

static void test_parse_domains(void **state)
{
	const char *domains = "example.org, Example.NET  other.test,";
	char user[65];

	(void)state;
	assert_int_equal(username_parse("a@example.org", domains, user, sizeof(user), NULL, 0), 0);
	assert_int_equal(username_parse("a@EXAMPLE.net", domains, user, sizeof(user), NULL, 0), 0);
	assert_int_equal(username_parse("a@other.test", domains, user, sizeof(user), NULL, 0), 0);
	assert_int_equal(username_parse("a@example.com", domains, user, sizeof(user), NULL, 0), -1);
	assert_int_equal(username_parse("a@example.or", domains, user, sizeof(user), NULL, 0), -1);
	assert_int_equal(username_parse("a@xexample.org", domains, user, sizeof(user), NULL, 0), -1);
	assert_int_equal(username_parse("a@", domains, user, sizeof(user), NULL, 0), -1);
	assert_int_equal(username_parse("a@", "", user, sizeof(user), NULL, 0), -1);
	assert_int_equal(username_parse("a@b@example.org", domains, user, sizeof(user), NULL, 0), -1);
	assert_int_equal(username_parse("a@b@c", "", user, sizeof(user), NULL, 0), -1);
	assert_int_equal(username_parse("a@ex ample", "", user, sizeof(user), NULL, 0), -1);
	/* No domain at all is accepted: the user is local. */
	assert_int_equal(username_parse("a", domains, user, sizeof(user), NULL, 0), 0);
}

static void test_parse_rcpt(void **state)
{
	char user[65], detail[32];

	(void)state;
	assert_int_equal(username_parse("<alice+Lists@example.org>", "example.org",
					user, sizeof(user), detail, sizeof(detail)), 0);
	assert_string_equal(user, "alice");
	assert_string_equal(detail, "Lists");
	assert_int_equal(username_parse("<Bob@example.org>", "example.org",
					user, sizeof(user), detail, sizeof(detail)), 0);
	assert_string_equal(user, "bob");
	assert_string_equal(detail, "");
	/* Only the first '+' separates. */
	assert_int_equal(username_parse("c+a+b", NULL, user, sizeof(user), detail, sizeof(detail)), 0);
	assert_string_equal(user, "c");
	assert_string_equal(detail, "a+b");
	assert_int_equal(username_parse("d+", NULL, user, sizeof(user), detail, sizeof(detail)), 0);
	assert_string_equal(detail, "");
	assert_int_equal(username_parse("+x@example.org", NULL, user, sizeof(user),
					detail, sizeof(detail)), -1);
	/* Detail too long for the buffer. */
	assert_int_equal(username_parse("e+0123456789012345678901234567890123", NULL,
					user, sizeof(user), detail, sizeof(detail)), -1);
	assert_int_equal(username_parse("e+a b", NULL, user, sizeof(user), detail, sizeof(detail)), -1);
}

static void test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"", "<>", "<", "<alice", "alice>", "<<alice>>", ".alice", "-alice",
		"al ice", "al/ice", "al\"ice", "\"alice\"@example.org", "@example.org",
		"al\xc3\xa9", "../etc",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 */
	};
	char user[65] = "untouched", detail[16] = "untouched";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(username_parse(bad[i], NULL, user, sizeof(user),
						detail, sizeof(detail)), -1);
		assert_string_equal(user, "untouched");
		assert_string_equal(detail, "untouched");
	}
	/* A buffer too small for the name is an error, not a truncation. */
	assert_int_equal(username_parse("alice", NULL, user, 5, NULL, 0), -1);
	assert_int_equal(username_parse("alice", NULL, user, 6, NULL, 0), 0);
	assert_string_equal(user, "alice");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_parse_login),
		cmocka_unit_test(test_parse_domains),
		cmocka_unit_test(test_parse_rcpt),
		cmocka_unit_test(test_parse_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
