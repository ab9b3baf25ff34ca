/* Unit tests for modified UTF-7 mailbox names (src/proto/imap/mutf7.c):
 * RFC 3501 §5.1.3 examples, round trips incl. surrogate pairs, and strict
 * rejection of every non-canonical spelling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/mutf7.h"

static void round_trip(const char *utf8, const char *mutf7)
{
	char *out = NULL;

	assert_int_equal(imap_utf8_to_mutf7(utf8, strlen(utf8), &out), 0);
	assert_string_equal(out, mutf7);
	free(out);
	out = NULL;
	assert_int_equal(imap_mutf7_to_utf8(mutf7, strlen(mutf7), &out), 0);
	assert_string_equal(out, utf8);
	free(out);
	assert_true(imap_mutf7_valid(mutf7, strlen(mutf7)));
}

static void test_examples(void **state)
{
	(void)state;
	round_trip("", "");
	round_trip("INBOX", "INBOX");
	round_trip("Entw\xc3\xbc" "rfe", "Entw&APw-rfe");
	round_trip("&", "&-");
	round_trip("Tom & Jerry", "Tom &- Jerry");
	/* RFC 3501 §5.1.3: "~peter/mail/台北/日本語". */
	round_trip("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		   "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	/* Emoji: a surrogate pair (U+1F600). */
	round_trip("\xf0\x9f\x98\x80", "&2D3eAA-");
	round_trip("a\xf0\x9f\x98\x80" "b\xc3\xa4\xc3\xb6", "a&2D3eAA-b&AOQA9g-");
	/* Control characters are encoded. */
	round_trip("a\tb", "a&AAk-b");
	round_trip("\x7f", "&AH8-");
}

/* A long CJK run: its UTF-8 is longer than its modified base64. */
static void test_long_run(void **state)
{
	(void)state;
	char utf8[3 * 200 + 1], *m = NULL, *back = NULL;
	for (int i = 0; i < 200; i++)
		memcpy(utf8 + 3 * i, "\xe6\x97\xa5", 3);
	utf8[600] = '\0';
	assert_int_equal(imap_utf8_to_mutf7(utf8, 600, &m), 0);
	assert_true(strlen(m) < 600);
	assert_int_equal(imap_mutf7_to_utf8(m, strlen(m), &back), 0);
	assert_string_equal(back, utf8);
	free(m);
	free(back);
}

static void expect_bad_mutf7(const char *s)
{
	char *out = (char *)0x1;
	assert_int_equal(imap_mutf7_to_utf8(s, strlen(s), &out), -1);
	assert_ptr_equal(out, (char *)0x1);
	assert_false(imap_mutf7_valid(s, strlen(s)));
}

static void test_decode_strict(void **state)
{
	(void)state;
	expect_bad_mutf7("&");               /* unterminated */
	expect_bad_mutf7("&APw");            /* unterminated */
	expect_bad_mutf7("a&&-");            /* '&' in base64 */
	expect_bad_mutf7("&AP*-");           /* bad base64 char */
	expect_bad_mutf7("&APw/-");          /* '/' is ',' in modified base64 */
	expect_bad_mutf7("&AGE-");           /* encodes "a": must be direct */
	expect_bad_mutf7("&ACY-");           /* encodes "&": must be "&-" */
	expect_bad_mutf7("&APx-");           /* non-zero padding bits */
	expect_bad_mutf7("&APwA-");          /* a whole spare base64 char */
	expect_bad_mutf7("&AOQ-&APY-");      /* two shifts where one would do */
	expect_bad_mutf7("&2D0-");           /* lone high surrogate */
	expect_bad_mutf7("&3gA-");           /* lone low surrogate */
	expect_bad_mutf7("&2D3YPQ-");        /* high surrogate followed by high */
	expect_bad_mutf7("&AAA-");           /* NUL */
	expect_bad_mutf7("Entw\xc3\xbcrfe"); /* raw 8-bit */
	expect_bad_mutf7("a\tb");            /* raw control */
	/* Not adjacent: fine. */
	char *out = NULL;
	assert_int_equal(imap_mutf7_to_utf8("&AOQ-x&APY-", 11, &out), 0);
	assert_string_equal(out, "\xc3\xa4x\xc3\xb6");
	free(out);
}

static void expect_bad_utf8(const char *s, size_t len)
{
	char *out = (char *)0x1;
	assert_int_equal(imap_utf8_to_mutf7(s, len, &out), -1);
	assert_ptr_equal(out, (char *)0x1);
}

static void test_encode_strict(void **state)
{
	(void)state;
	expect_bad_utf8("\xc0\xaf", 2);          /* overlong '/' */
	expect_bad_utf8("\xe0\x80\xaf", 3);      /* overlong */
	expect_bad_utf8("\xed\xa0\x80", 3);      /* UTF-8 encoded surrogate */
	expect_bad_utf8("\xf4\x90\x80\x80", 4);  /* > U+10FFFF */
	expect_bad_utf8("\xc3", 1);              /* truncated */
	expect_bad_utf8("a\xff", 2);
	expect_bad_utf8("a\0b", 3);              /* NUL */
	expect_bad_utf8("\x80", 1);              /* stray continuation */
}

/* Every BMP scalar (and a sweep of astral ones) survives a round trip, and
 * the encoding is the only accepted spelling. */
static void test_exhaustive(void **state)
{
	(void)state;
	for (uint32_t cp = 1; cp <= 0x10ffff; cp += cp < 0x10000 ? 1 : 97) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		char u[8];
		size_t n;
		if (cp < 0x80) {
			u[0] = (char)cp, n = 1;
		} else if (cp < 0x800) {
			u[0] = (char)(0xc0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
		} else if (cp < 0x10000) {
			u[0] = (char)(0xe0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
			u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
		} else {
			u[0] = (char)(0xf0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
			u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
		}
		u[n++] = 'x';
		char *m = NULL, *back = NULL;
		assert_int_equal(imap_utf8_to_mutf7(u, n, &m), 0);
		assert_int_equal(imap_mutf7_to_utf8(m, strlen(m), &back), 0);
		assert_int_equal(strlen(back), n);
		assert_memory_equal(back, u, n);
		free(m);
		free(back);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_long_run),
		cmocka_unit_test(test_decode_strict),
		cmocka_unit_test(test_encode_strict),
		cmocka_unit_test(test_exhaustive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
