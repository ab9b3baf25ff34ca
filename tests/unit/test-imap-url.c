/* Unit tests for the IMAP URL parser (src/proto/imap/imap-url.c, RFC 5092 as
 * CATENATE uses it, RFC 4469 §3): the URLs of RFC 4469's examples, keys in
 * any case, percent-decoding of mailbox and section, absolute and relative
 * forms, and each kind of bad URL; the BADURL response text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/limits.h"
#include "proto/imap/imap-url.h"

static struct imap_url parse_ok(const char *text)
{
	struct imap_url u;
	const char *err = NULL;
	if (imap_url_parse(text, strlen(text), &u, &err) != 0)
		fail_msg("%s: refused (%s)", text, err);
	return u;
}

static void expect_bad(const char *text)
{
	struct imap_url u = { .uid = 12345 };
	const char *err = NULL;
	if (imap_url_parse(text, strlen(text), &u, &err) == 0)
		fail_msg("%s: accepted", text);
	assert_non_null(err);
	assert_int_equal(u.uid, 12345);   /* untouched */
}

static void test_rfc4469_examples(void **state)
{
	(void)state;
	struct imap_url u = parse_ok("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER");
	assert_false(u.absolute);
	assert_string_equal(u.mailbox, "Drafts");
	assert_int_equal(u.uidvalidity, 385759045);
	assert_int_equal(u.uid, 20);
	assert_string_equal(u.section, "HEADER");
	assert_false(u.partial);
	imap_url_clear(&u);

	u = parse_ok("/Drafts;UIDVALIDITY=385759045/;UID=20/;Section=2.MIME");
	assert_string_equal(u.section, "2.MIME");
	imap_url_clear(&u);

	u = parse_ok("/Drafts;UIDVALIDITY=385759045/;UID=30");
	assert_int_equal(u.uid, 30);
	assert_null(u.section);
	imap_url_clear(&u);

	u = parse_ok("/INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9");
	assert_string_equal(u.mailbox, "INBOX");
	assert_string_equal(u.section, "1.5.9");
	imap_url_clear(&u);
}

static void test_forms(void **state)
{
	(void)state;
	/* without UIDVALIDITY */
	struct imap_url u = parse_ok("/INBOX/;UID=7");
	assert_string_equal(u.mailbox, "INBOX");
	assert_int_equal(u.uidvalidity, 0);
	assert_int_equal(u.uid, 7);
	imap_url_clear(&u);

	/* hierarchy, percent-encoded UTF-8 and space */
	u = parse_ok("/Archive/2024/Gr%C3%BC%C3%9Fe%20und%3Bmehr;UIDVALIDITY=1/;UID=4294967295");
	assert_string_equal(u.mailbox, "Archive/2024/Grüße und;mehr");
	assert_int_equal(u.uid, UINT32_MAX);
	imap_url_clear(&u);

	/* section with a header list, partial with and without length */
	u = parse_ok("/INBOX;UIDVALIDITY=9/;UID=1/;SECTION=HEADER.FIELDS%20(From%20To)/;PARTIAL=0.100");
	assert_string_equal(u.section, "HEADER.FIELDS (From To)");
	assert_true(u.partial);
	assert_int_equal(u.partial_offset, 0);
	assert_int_equal(u.partial_length, 100);
	imap_url_clear(&u);
	u = parse_ok("/INBOX/;uid=1/;partial=17");
	assert_null(u.section);
	assert_true(u.partial);
	assert_int_equal(u.partial_offset, 17);
	assert_int_equal(u.partial_length, 0);
	imap_url_clear(&u);

	/* relative to the selected mailbox */
	u = parse_ok(";UID=20/;SECTION=1");
	assert_null(u.mailbox);
	assert_int_equal(u.uid, 20);
	assert_string_equal(u.section, "1");
	imap_url_clear(&u);

	/* absolute, with and without a user */
	u = parse_ok("imap://alice;AUTH=*@mail.example.org:143/INBOX;UIDVALIDITY=3/;UID=2");
	assert_true(u.absolute);
	assert_string_equal(u.user, "alice");
	assert_string_equal(u.host, "mail.example.org:143");
	assert_string_equal(u.mailbox, "INBOX");
	imap_url_clear(&u);
	u = parse_ok("IMAP://b%40c@[::1]/x/;UID=2");
	assert_string_equal(u.user, "b@c");
	assert_string_equal(u.host, "[::1]");
	assert_string_equal(u.mailbox, "x");
	imap_url_clear(&u);
	u = parse_ok("imap://host/x/;UID=2");
	assert_null(u.user);
	imap_url_clear(&u);
}

static void test_bad(void **state)
{
	(void)state;
	expect_bad("");
	expect_bad("INBOX");
	expect_bad("http://host/INBOX/;UID=1");
	expect_bad("/INBOX");                        /* no UID: a mailbox */
	expect_bad("/INBOX;UIDVALIDITY=1");
	expect_bad("/INBOX;UIDVALIDITY=1/");
	expect_bad("/INBOX;UIDVALIDITY=1/;UID=0");   /* nz-number */
	expect_bad("/INBOX;UIDVALIDITY=0/;UID=1");
	expect_bad("/INBOX;UIDVALIDITY=1/;UID=01");
	expect_bad("/INBOX;UIDVALIDITY=1/;UID=4294967296");
	expect_bad("/INBOX;UIDVALIDITY=1/;UID=-1");
	expect_bad("/INBOX;UIDVALIDITY=1/;UID=1x");
	expect_bad("/INBOX?SUBJECT%20x");            /* a message list */
	expect_bad("/;UID=1");                       /* empty mailbox */
	expect_bad("//;UID=1");
	expect_bad("/IN BOX/;UID=1");                /* space must be encoded */
	expect_bad("/IN\"BOX/;UID=1");
	expect_bad("/INBOX%/;UID=1");
	expect_bad("/INBOX%2/;UID=1");
	expect_bad("/INBOX%zz/;UID=1");
	expect_bad("/INBOX%00/;UID=1");              /* decoded NUL */
	expect_bad("/%FF%FE/;UID=1");                /* not UTF-8 */
	expect_bad("/INBOX/;UID=1/;SECTION=");
	expect_bad("/INBOX/;UID=1/;SECTION=1%5D");   /* ']' would end BODY[ */
	expect_bad("/INBOX/;UID=1/;SECTION=1%3C0.1%3E");
	expect_bad("/INBOX/;UID=1/;SECTION=%0D%0A");
	expect_bad("/INBOX/;UID=1/;PARTIAL=");
	expect_bad("/INBOX/;UID=1/;PARTIAL=1.0");
	expect_bad("/INBOX/;UID=1/;PARTIAL=1.");
	expect_bad("/INBOX/;UID=1/;PARTIAL=1.2.3");
	expect_bad("/INBOX/;UID=1;URLAUTH=anonymous");
	expect_bad("/INBOX/;UID=1/;SECTION=1;EXPIRE=2030-01-01T00:00:00Z");
	expect_bad("/INBOX/;UID=1/;FOO=1");
	expect_bad(";UIDVALIDITY=1/;UID=1");
	expect_bad("imap://");
	expect_bad("imap://host");
	expect_bad("imap:///INBOX/;UID=1");          /* no host */
	expect_bad("imap://a;AUTH=@host/INBOX/;UID=1");
	expect_bad("imap://a;FOO=x@host/INBOX/;UID=1");
	expect_bad("imap://ho st/INBOX/;UID=1");

	/* a NUL byte in the text, and length */
	struct imap_url u;
	const char *err;
	assert_int_equal(imap_url_parse("/IN\0BOX/;UID=1", 14, &u, &err), -1);
	size_t n = TERN_IMAP_URL_MAX + 1;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'a', n);
	memcpy(big, "/", 1);
	memcpy(big + n - 7, "/;UID=1", 7);
	assert_int_equal(imap_url_parse(big, n, &u, &err), -1);
	/* one byte less fits */
	assert_int_equal(imap_url_parse(big + 1, n - 1, &u, &err), -1);  /* no leading "/" */
	big[1] = '/';
	assert_int_equal(imap_url_parse(big + 1, n - 1, &u, &err), 0);
	assert_int_equal(strlen(u.mailbox), n - 1 - 1 - 7);
	imap_url_clear(&u);
	free(big);
}

static void test_resp_text(void **state)
{
	(void)state;
	char *t = imap_url_resp_text("/INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9", 55);
	assert_string_equal(t, "/INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9");
	free(t);
	t = imap_url_resp_text("a]b\r\n\0c\xff\xfe", 9);
	assert_string_equal(t, "a%5Db%0D%0A%00c%FF%FE");
	free(t);
	t = imap_url_resp_text("/Gr\xc3\xbc\x7f\t x/;UID=1", 16);
	assert_string_equal(t, "/Gr%C3%BC%7F%09 x/;UID=1");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4469_examples),
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_resp_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
