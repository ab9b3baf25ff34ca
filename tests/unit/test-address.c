/* Unit tests for store/address.c: each address list is shown in the shape of
 * ENVELOPE address structures, (name route mailbox domain) with NIL for
 * NULL, so the expected values read like the IMAP answers they become. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/address.h"
#include "store/mime.h"

static void add(char *out, size_t cap, const char *s)
{
	size_t n = strlen(out);
	snprintf(out + n, cap - n, "%s", s);
}

static void add_field(char *out, size_t cap, const char *s)
{
	if (s == NULL) {
		add(out, cap, "NIL");
		return;
	}
	add(out, cap, "\"");
	add(out, cap, s);
	add(out, cap, "\"");
}

static void check(const char *field, const char *expect)
{
	struct mail_address_list l;
	memset(&l, 0xaa, sizeof(l));
	assert_int_equal(mail_address_parse(field, strlen(field), &l), 0);
	char out[4096] = "";
	for (size_t i = 0; i < l.count; i++) {
		const struct mail_address *a = &l.a[i];
		add(out, sizeof(out), "(");
		add_field(out, sizeof(out), a->name);
		add(out, sizeof(out), " ");
		add_field(out, sizeof(out), a->route);
		add(out, sizeof(out), " ");
		add_field(out, sizeof(out), a->mailbox);
		add(out, sizeof(out), " ");
		add_field(out, sizeof(out), a->domain);
		add(out, sizeof(out), ")");
	}
	if (strcmp(out, expect) != 0)
		fail_msg("%s\n  got    %s\n  wanted %s", field, out, expect);
	mail_address_list_clear(&l);
	assert_null(l.a);
}

static void check_text(const char *field, const char *expect)
{
	struct mail_address_list l;
	assert_int_equal(mail_address_parse(field, strlen(field), &l), 0);
	char *t = mail_address_list_text(&l);
	assert_non_null(t);
	if (strcmp(t, expect) != 0)
		fail_msg("%s\n  got    %s\n  wanted %s", field, t, expect);
	free(t);
	mail_address_list_clear(&l);
}

static void test_plain(void **state)
{
	(void)state;
	check("user-from@domain.org", "(NIL NIL \"user-from\" \"domain.org\")");
	check("RealFrom <user-from@domain.org>",
	      "(\"RealFrom\" NIL \"user-from\" \"domain.org\")");
	check("  \"Smith, John\"   <john@example.com> ",
	      "(\"Smith, John\" NIL \"john\" \"example.com\")");
	check("a@b, c@d,e@f", "(NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")(NIL NIL \"e\" \"f\")");
	check("John Q. Public <jqp@x.org>", "(\"John Q. Public\" NIL \"jqp\" \"x.org\")");
	check("\"user-to\"@domain.org", "(NIL NIL \"user-to\" \"domain.org\")");
	check("\"a \\\"b\\\" c\" <q@x>", "(\"a \"b\" c\" NIL \"q\" \"x\")"); /* unescaped */
	check("first.last@[192.0.2.1]", "(NIL NIL \"first.last\" \"[192.0.2.1]\")");
	check("=?utf-8?q?J=C3=B6rg?= <j@example.de>",
	      "(\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"example.de\")");
}

static void test_comments(void **state)
{
	(void)state;
	/* the issue's case: comments inside the angle address are no part of it */
	check("<user-from (comment)@ (comment) domain.org>",
	      "(NIL NIL \"user-from\" \"domain.org\")");
	/* a bare addr-spec's comment is its name */
	check("user-from@domain.org (RealFrom)", "(\"RealFrom\" NIL \"user-from\" \"domain.org\")");
	check("user@domain ( Real  (nested) Name )",
	      "(\"Real  (nested) Name\" NIL \"user\" \"domain\")");
	check("Name (comment) <a@b> (trailing)", "(\"Name\" NIL \"a\" \"b\")");
	check("a@b (x), c@d", "(\"x\" NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")");
	check("john . doe @ example . org", "(NIL NIL \"john.doe\" \"example.org\")");
	check("(unterminated a@b", "");
}

static void test_groups(void **state)
{
	(void)state;
	check("user2: blah@domain1.org;",
	      "(NIL NIL \"user2\" NIL)(NIL NIL \"blah\" \"domain1.org\")(NIL NIL NIL NIL)");
	check("empty:;", "(NIL NIL \"empty\" NIL)(NIL NIL NIL NIL)");
	check("undisclosed-recipients: ;", "(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)");
	check("group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;",
	      "(NIL NIL \"group\" NIL)(NIL NIL \"g1\" \"d1.org\")(NIL NIL \"g2\" \"d2.org\")"
	      "(NIL NIL NIL NIL)(NIL NIL \"group2\" NIL)(NIL NIL \"g3\" \"d3.org\")(NIL NIL NIL NIL)");
	check("a@b, Friends: \"C D\" <c@d>, e@f; , g@h",
	      "(NIL NIL \"a\" \"b\")(NIL NIL \"Friends\" NIL)(\"C D\" NIL \"c\" \"d\")"
	      "(NIL NIL \"e\" \"f\")(NIL NIL NIL NIL)(NIL NIL \"g\" \"h\")");
	/* an unterminated group ends with the field */
	check("team: a@b", "(NIL NIL \"team\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL)");
}

static void test_routes(void **state)
{
	(void)state;
	check("<@route:user@domain>", "(NIL \"@route\" \"user\" \"domain\")");
	check("Name <@a.example,@b.example:user@domain>",
	      "(\"Name\" \"@a.example,@b.example\" \"user\" \"domain\")");
	check("<@a, ,@b : user@domain>", "(NIL \"@a,@b\" \"user\" \"domain\")");
	check("<@domain>", "(NIL NIL \"\" \"domain\")");
}

static void test_odd(void **state)
{
	(void)state;
	check("", "");
	check("   ", "");
	check(",,;", "");
	check("<>", "(NIL NIL \"\" \"\")");
	check("user", "(NIL NIL \"user\" \"\")");
	check("foo bar", "(NIL NIL \"foo bar\" \"\")");
	check("a@b>, >c@d", "(NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")");
	check("<a@b", "(NIL NIL \"a\" \"b\")");
	check("<a@b, c@d>", "(NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")");
	check("\"unterminated <a@b>", "(NIL NIL \"unterminated <a@b>\" \"\")");
	check("a@", "(NIL NIL \"a\" \"\")");
	check("@b", "(NIL NIL \"\" \"b\")");
	check("a: b: c@d;", "(NIL NIL \"a\" NIL)(\"b\" NIL \"c\" \"d\")(NIL NIL NIL NIL)");
	/* words before a bare address: its name, as if in angle brackets */
	check("\"quoted name\" user@host", "(\"quoted name\" NIL \"user\" \"host\")");
	check("Some  Name user@host (c)", "(\"Some Name\" NIL \"user\" \"host\")");
	check("x . y z.w@h", "(\"x. y\" NIL \"z.w\" \"h\")");
}

static void test_text(void **state)
{
	(void)state;
	check_text("<user-from (comment)@ (comment) domain.org>", "user-from@domain.org");
	check_text("user-from@domain.org (RealFrom)", "RealFrom <user-from@domain.org>");
	check_text("groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n  groupname2: "
		   "groupuser3@domain.org;",
		   "groupname: groupuser1@domain.org, groupuser2@domain.org;, groupname2: "
		   "groupuser3@domain.org;");
	check_text("empty:;", "empty: ;");
	check_text("=?utf-8?q?J=C3=B6rg?= <j@example.de>, x@y", "J\xc3\xb6rg <j@example.de>, x@y");
	check_text("", "");
}

/* Arbitrary bytes must parse without crashing, and every entry has one of
 * the three shapes. */
static void test_garbage(void **state)
{
	(void)state;
	static const char alphabet[] = "<>@:;,.\"()[]\\ \tab=?\x80";
	unsigned seed = 1;
	char buf[64];
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(round % 63);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		struct mail_address_list l;
		assert_int_equal(mail_address_parse(buf, n, &l), 0);
		int depth = 0;
		for (size_t i = 0; i < l.count; i++) {
			const struct mail_address *a = &l.a[i];
			if (mail_address_is_group_start(a)) {
				assert_int_equal(depth, 0);
				assert_null(a->name);
				assert_null(a->route);
				depth++;
			} else if (mail_address_is_group_end(a)) {
				assert_int_equal(depth, 1);
				assert_null(a->name);
				assert_null(a->route);
				depth--;
			} else {
				assert_non_null(a->mailbox);
			}
		}
		assert_int_equal(depth, 0);
		char *t = mail_address_list_text(&l);
		assert_non_null(t);
		free(t);
		mail_address_list_clear(&l);
	}
}

int main(void)
{
	mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_odd),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
