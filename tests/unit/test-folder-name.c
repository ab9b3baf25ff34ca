/* Unit tests for imap_folder_name_valid (src/proto/imap/names.c): the check
 * every new folder name passes (IMAP CREATE and RENAME, LMTP +detail):
 * UTF-8, Unicode NFC, no control or invisible formatting characters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/mailbox.h"

static void assert_valid(const char *name)
{
	const char *why = "untouched";
	if (!imap_folder_name_valid(name, strlen(name), &why))
		fail_msg("%s: refused (%s)", name, why);
	assert_string_equal(why, "untouched");
}

static void assert_invalid(const char *name, size_t len, const char *why_part)
{
	const char *why = NULL;
	if (imap_folder_name_valid(name, len, &why))
		fail_msg("accepted a name that should be refused for %s", why_part);
	assert_non_null(why);
	if (strstr(why, why_part) == NULL)
		fail_msg("refused for \"%s\", expected \"%s\"", why, why_part);
}

#define INVALID(lit, why) assert_invalid(lit, sizeof(lit) - 1, why)

static void test_accepts_ordinary_names(void **state)
{
	(void)state;
	assert_valid("INBOX");
	assert_valid("Archive/2024/Receipts & invoices");
	assert_valid("Caf\xc3\xa9");                           /* é precomposed */
	assert_valid("\xc3\x85rsrapport");                     /* Å */
	assert_valid("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"); /* 日本語 */
	assert_valid("\xed\x95\x9c\xea\xb8\x80");             /* 한글, precomposed syllables */
	assert_valid("\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7"); /* Arabic, right to left */
	/* ZWNJ and ZWJ spell words in Persian and Indic scripts and join emoji */
	assert_valid("\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae\xd9\x88\xd8\xa7\xd9\x87\xd9\x85");
	assert_valid("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7");
	assert_valid("\xf0\x9f\x93\xa7 mail");
}

static void test_refuses_format_characters(void **state)
{
	(void)state;
	INVALID("\xef\xbb\xbfINBOX", "formatting");             /* BOM in front of INBOX */
	INVALID("INBOX\xef\xbb\xbf", "formatting");
	INVALID("invoice\xe2\x80\xaetxt.exe", "formatting");    /* RIGHT-TO-LEFT OVERRIDE */
	INVALID("a\xe2\x80\xaa" "b", "formatting");              /* LRE */
	INVALID("a\xe2\x81\xa6" "b", "formatting");              /* LEFT-TO-RIGHT ISOLATE */
	INVALID("a\xe2\x81\xa9" "b", "formatting");              /* POP DIRECTIONAL ISOLATE */
	INVALID("a\xe2\x80\x8f" "b", "formatting");              /* RIGHT-TO-LEFT MARK */
	INVALID("In\xe2\x80\x8b" "box", "formatting");           /* ZERO WIDTH SPACE */
	INVALID("a\xe2\x81\xa0" "b", "formatting");              /* WORD JOINER */
	INVALID("a\xc2\xad" "b", "formatting");                  /* SOFT HYPHEN */
	INVALID("a\xd8\x9c" "b", "formatting");                  /* ARABIC LETTER MARK */
	INVALID("a\xe2\x80\xa8" "b", "formatting");              /* LINE SEPARATOR */
	INVALID("a\xe2\x80\xa9" "b", "formatting");              /* PARAGRAPH SEPARATOR */
}

static void test_refuses_controls(void **state)
{
	(void)state;
	INVALID("a\tb", "control");
	INVALID("a\x1b[31mred", "control");
	INVALID("a\x7f" "b", "control");
	INVALID("a\xc2\x85" "b", "control");                     /* NEL, C1 */
	INVALID("a\xc2\x9b" "31m", "control");                   /* CSI, C1 */
	INVALID("a\0b", "control");                              /* NUL inside len */
}

static void test_refuses_non_nfc(void **state)
{
	(void)state;
	INVALID("Cafe\xcc\x81", "normalization");               /* e + COMBINING ACUTE */
	INVALID("Archive/Cafe\xcc\x81", "normalization");
	INVALID("\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab", "normalization"); /* 한 as jamo */
	INVALID("\xe2\x84\xab", "normalization");               /* ANGSTROM SIGN -> Å */
}

static void test_refuses_bad_utf8(void **state)
{
	(void)state;
	INVALID("a\xff" "b", "UTF-8");
	INVALID("a\xc0\x80" "b", "UTF-8");                      /* overlong NUL */
	INVALID("a\xed\xa0\x80" "b", "UTF-8");                  /* surrogate */
	INVALID("a\xc3", "UTF-8");                              /* cut short */
	INVALID("a\xef\xbf\xbe" "b", "noncharacter");           /* U+FFFE */
	INVALID("", "Empty");
}

static void test_uses_len_not_nul(void **state)
{
	(void)state;
	const char name[] = "Caf\xc3\xa9\xe2\x80\xae";         /* valid in its first 5 bytes */
	const char *why = NULL;
	assert_true(imap_folder_name_valid(name, 5, &why));
	assert_false(imap_folder_name_valid(name, sizeof(name) - 1, &why));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_ordinary_names),
		cmocka_unit_test(test_refuses_format_characters),
		cmocka_unit_test(test_refuses_controls),
		cmocka_unit_test(test_refuses_non_nfc),
		cmocka_unit_test(test_refuses_bad_utf8),
		cmocka_unit_test(test_uses_len_not_nul),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
