/* Unit tests for src/proto/imap/header-filter.c: HEADER.FIELDS and
 * HEADER.FIELDS.NOT keep whole folded fields, match names case-insensitively
 * (also "Name :"), keep order and bytes, and always end with a blank line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/header-filter.h"

static const char hdr[] =
	"From: Alice <alice@example.com>\r\n"
	"To: bob@example.org,\r\n"
	"\tcarol@example.org\r\n"
	"Subject: Hello\r\n"
	" world\r\n"
	"X-Subject: decoy\r\n"
	"Subject-Extra: decoy\r\n"
	"Received: one\r\n"
	"Received: two\r\n"
	"\r\n";

static void expect(const char *in, size_t len, const char *const *names, size_t n, bool keep,
		   const char *want)
{
	char *out = NULL;
	size_t out_len = 0;
	assert_int_equal(imap_header_filter(in, len, (char *const *)names, n, keep, &out, &out_len), 0);
	assert_non_null(out);
	assert_int_equal(out_len, strlen(want));
	assert_memory_equal(out, want, out_len);
	assert_int_equal(out[out_len], '\0');
	free(out);
}

static void test_fields_keep(void **state)
{
	(void)state;
	const char *names[] = { "from", "SUBJECT" };
	expect(hdr, strlen(hdr), names, 2, true,
	       "From: Alice <alice@example.com>\r\n"
	       "Subject: Hello\r\n world\r\n"
	       "\r\n");
}

static void test_fields_folded_and_repeated(void **state)
{
	(void)state;
	const char *names[] = { "To", "received" };
	expect(hdr, strlen(hdr), names, 2, true,
	       "To: bob@example.org,\r\n\tcarol@example.org\r\n"
	       "Received: one\r\nReceived: two\r\n\r\n");
}

static void test_fields_not(void **state)
{
	(void)state;
	const char *names[] = { "Received", "To", "x-subject", "Subject-Extra" };
	expect(hdr, strlen(hdr), names, 4, false,
	       "From: Alice <alice@example.com>\r\n"
	       "Subject: Hello\r\n world\r\n"
	       "\r\n");
}

static void test_no_match_gives_blank_line(void **state)
{
	(void)state;
	const char *names[] = { "Cc" };
	expect(hdr, strlen(hdr), names, 1, true, "\r\n");
	/* NOT with nothing listed keeps everything */
	expect(hdr, strlen(hdr), names, 0, false, hdr);
}

static void test_space_before_colon_and_no_blank(void **state)
{
	(void)state;
	const char in[] = "Subject : spaced\r\nFrom: a\r\nbroken line\r\nTo: b";
	const char *names[] = { "subject", "to" };
	/* the header block may lack its blank line (message without a body) and
	 * its last line end: both are supplied */
	expect(in, strlen(in), names, 2, true, "Subject : spaced\r\nTo: b\r\n\r\n");
	expect(in, strlen(in), names, 2, false, "From: a\r\nbroken line\r\n\r\n");
}

static void test_bare_lf_and_stop_at_blank(void **state)
{
	(void)state;
	const char in[] = "From: a\nSubject: s\n\nSubject: in body\n";
	const char *names[] = { "Subject" };
	expect(in, strlen(in), names, 1, true, "Subject: s\n\r\n");
	expect("", 0, names, 1, true, "\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_keep),
		cmocka_unit_test(test_fields_folded_and_repeated),
		cmocka_unit_test(test_fields_not),
		cmocka_unit_test(test_no_match_gives_blank_line),
		cmocka_unit_test(test_space_before_colon_and_no_blank),
		cmocka_unit_test(test_bare_lf_and_stop_at_blank),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
