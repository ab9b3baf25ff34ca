/* Unit tests for store/mime.c: exact ENVELOPE/BODY/BODYSTRUCTURE strings with
 * sizes worked out by hand, section ranges, decoding for SEARCH, and hostile
 * input that must neither crash nor produce unparseable IMAP. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/mime.h"

/* The strings are plain malloc (what store_msg_cache_clear frees). */
static void cache_free(struct store_msg_cache *c)
{
	free(c->envelope);
	free(c->bodystructure);
	free(c->body);
	free(c->subject);
}

static struct store_msg_cache summarize(const char *msg)
{
	struct store_msg_cache c;
	memset(&c, 0xaa, sizeof(c));
	assert_int_equal(mime_summarize(msg, strlen(msg), &c), 0);
	return c;
}

/* Asserts the range of (part, kind) starts at the first occurrence of
 * `expect` in msg and is `len` bytes long (worked out by hand). */
static void assert_section(const char *msg, const char *part, const char *kind,
			   const char *expect, size_t len)
{
	size_t off = 0, got = 0;
	assert_int_equal(mime_section_range(msg, strlen(msg), part, kind, &off, &got), 1);
	const char *at = strstr(msg, expect);
	assert_non_null(at);
	assert_int_equal(off, (size_t)(at - msg));
	assert_int_equal(got, len);
}

static void assert_no_section(const char *msg, const char *part, const char *kind)
{
	size_t off = 12345, len = 678;
	assert_int_equal(mime_section_range(msg, strlen(msg), part, kind, &off, &len), 0);
	assert_int_equal(off, 12345);
	assert_int_equal(len, 678);
}

static const char simple_msg[] =
	"Date: Mon, 1 Jan 2024 10:00:00 +0100\r\n" /* 38 */
	"From: Alice <alice@example.com>\r\n"      /* 33 */
	"To: bob@example.org\r\n"                  /* 21 */
	"Subject: Hello\r\n"                       /* 16 */
	"Message-ID: <1@example.com>\r\n"          /* 29 */
	"\r\n"                                     /* 2: header = 139 */
	"Hi Bob,\r\n"                              /* 9 */
	"see you.\r\n";                            /* 10: body = 19, 2 lines */

static void test_simple(void **state)
{
	(void)state;
	struct store_msg_cache c = summarize(simple_msg);
	assert_string_equal(c.envelope,
		"(\"Mon, 1 Jan 2024 10:00:00 +0100\" \"Hello\" "
		"((\"Alice\" NIL \"alice\" \"example.com\")) "
		"((\"Alice\" NIL \"alice\" \"example.com\")) "
		"((\"Alice\" NIL \"alice\" \"example.com\")) "
		"((NIL NIL \"bob\" \"example.org\")) NIL NIL NIL \"<1@example.com>\")");
	assert_string_equal(c.bodystructure,
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 19 2 NIL NIL NIL NIL)");
	assert_string_equal(c.body,
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 19 2)");
	assert_string_equal(c.subject, "Hello");
	assert_int_equal(c.sent_date, 1704099600); /* 2024-01-01 09:00:00 UTC */
	cache_free(&c);

	size_t off, len;
	assert_int_equal(mime_section_range(simple_msg, 158, "", "", &off, &len), 1);
	assert_int_equal(off, 0);
	assert_int_equal(len, 158);
	assert_int_equal(mime_section_range(simple_msg, 158, "", "HEADER", &off, &len), 1);
	assert_int_equal(off, 0);
	assert_int_equal(len, 139);
	assert_int_equal(mime_section_range(simple_msg, 158, "", "TEXT", &off, &len), 1);
	assert_int_equal(off, 139);
	assert_int_equal(len, 19);
	/* RFC 3501 §6.4.5: a non-multipart message has part 1, its body. */
	assert_int_equal(mime_section_range(simple_msg, 158, "1", "", &off, &len), 1);
	assert_int_equal(off, 139);
	assert_int_equal(len, 19);
	assert_no_section(simple_msg, "2", "");
	assert_no_section(simple_msg, "1.1", "");
	assert_no_section(simple_msg, "1", "HEADER");
	assert_no_section(simple_msg, "", "MIME");
	assert_no_section(simple_msg, "0", "");
	assert_no_section(simple_msg, "01", "");
	assert_no_section(simple_msg, "1.", "");
	assert_no_section(simple_msg, "x", "");
	assert_no_section(simple_msg, "", "BOGUS");
}

static const char alt_msg[] =
	"From: a@example.com\r\n"
	"Subject: alt\r\n"
	"Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--b1\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"\r\n"
	"plain text\r\n"                              /* 10, 0 lines: CRLF is the delimiter's */
	"--b1\r\n"
	"Content-Type: text/html; charset=utf-8\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"<p>html</p>\r\n"
	"line2\r\n"                                   /* 11 + 2 + 5 = 18, 1 line */
	"--b1--  \r\n"
	"epilogue\r\n";

static void test_alternative(void **state)
{
	(void)state;
	struct store_msg_cache c = summarize(alt_msg);
	assert_string_equal(c.envelope,
		"(NIL \"alt\" ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) "
		"((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)");
	assert_string_equal(c.bodystructure,
		"((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 10 0 NIL NIL NIL NIL)"
		"(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 18 1 NIL NIL NIL NIL)"
		" \"ALTERNATIVE\" (\"BOUNDARY\" \"b1\") NIL NIL NIL)");
	assert_string_equal(c.body,
		"((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 10 0)"
		"(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 18 1)"
		" \"ALTERNATIVE\")");
	assert_int_equal(c.sent_date, 0);
	cache_free(&c);

	assert_section(alt_msg, "1", "", "plain text", 10);
	assert_section(alt_msg, "2", "", "<p>html</p>\r\nline2", 18);
	assert_section(alt_msg, "1", "MIME", "Content-Type: text/plain; charset=utf-8\r\n\r\n", 43);
	assert_section(alt_msg, "", "TEXT", "preamble", strlen(strstr(alt_msg, "preamble")));
	assert_no_section(alt_msg, "3", "");
	assert_no_section(alt_msg, "1", "TEXT");
}

static const char nested_msg[] =
	"From: a@example.com\r\n"
	"Subject: nested\r\n"
	"Content-Type: multipart/mixed; boundary=outer\r\n"
	"\r\n"
	"--outer\r\n"
	"Content-Type: multipart/alternative; boundary=inner\r\n"
	"\r\n"
	"--inner\r\n"
	"Content-Type: text/plain\r\n"
	"\r\n"
	"text\r\n"
	"--inner\r\n"
	"Content-Type: text/html\r\n"
	"\r\n"
	"<b>text</b>\r\n"
	"--inner--\r\n"
	"\r\n"
	"--outer\r\n"
	"Content-Type: message/rfc822\r\n"
	"Content-Description: forwarded\r\n"
	"\r\n"
	"From: Carol <carol@example.net>\r\n" /* 33 */
	"Subject: inner\r\n"                 /* 16 */
	"\r\n"                               /* 2: embedded header = 51 */
	"inner body\r\n"                     /* 10: part body = 61, 3 lines */
	"--outer\r\n"
	"Content-Type: application/pdf; name=\"doc.pdf\"\r\n"
	"Content-Disposition: attachment; filename=\"doc.pdf\"\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"Content-ID: <pdf1@example.com>\r\n"
	"Content-Language: en, de\r\n"
	"Content-Location: http://example.com/\r\n"
	" doc.pdf\r\n"
	"\r\n"
	"JVBERi0xLjQK\r\n"
	"--outer--\r\n";

static void test_nested_rfc822(void **state)
{
	(void)state;
	struct store_msg_cache c = summarize(nested_msg);
	const char *carol = "((\"Carol\" NIL \"carol\" \"example.net\"))";
	char inner_env[512];
	snprintf(inner_env, sizeof(inner_env), "(NIL \"inner\" %s %s %s NIL NIL NIL NIL NIL)", carol,
		 carol, carol);
	char expect[4096];
	snprintf(expect, sizeof(expect),
		 "("
		 "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 4 0 NIL NIL NIL NIL)"
		 "(\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 0 NIL NIL NIL NIL)"
		 " \"ALTERNATIVE\" (\"BOUNDARY\" \"inner\") NIL NIL NIL)"
		 "(\"MESSAGE\" \"RFC822\" NIL NIL \"forwarded\" \"7BIT\" 61 %s "
		 "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 0 NIL NIL NIL NIL)"
		 " 3 NIL NIL NIL NIL)"
		 "(\"APPLICATION\" \"PDF\" (\"NAME\" \"doc.pdf\") \"<pdf1@example.com>\" NIL \"BASE64\" 12"
		 " NIL (\"ATTACHMENT\" (\"FILENAME\" \"doc.pdf\")) (\"en\" \"de\")"
		 " \"http://example.com/doc.pdf\")"
		 " \"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)",
		 inner_env);
	assert_string_equal(c.bodystructure, expect);
	snprintf(expect, sizeof(expect),
		 "("
		 "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 4 0)"
		 "(\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 0)"
		 " \"ALTERNATIVE\")"
		 "(\"MESSAGE\" \"RFC822\" NIL NIL \"forwarded\" \"7BIT\" 61 %s "
		 "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 0) 3)"
		 "(\"APPLICATION\" \"PDF\" (\"NAME\" \"doc.pdf\") \"<pdf1@example.com>\" NIL \"BASE64\" 12)"
		 " \"MIXED\")",
		 inner_env);
	assert_string_equal(c.body, expect);
	cache_free(&c);

	assert_section(nested_msg, "1", "MIME",
		       "Content-Type: multipart/alternative; boundary=inner\r\n\r\n", 55);
	assert_section(nested_msg, "1.1", "", "text\r\n--inner", 4);
	assert_section(nested_msg, "1.2", "", "<b>text</b>", 11);
	assert_section(nested_msg, "1.2", "MIME", "Content-Type: text/html\r\n\r\n", 27);
	assert_section(nested_msg, "2", "", "From: Carol <carol@example.net>\r\nSubject: inner\r\n\r\n"
		       "inner body", 61);
	assert_section(nested_msg, "2", "HEADER",
		       "From: Carol <carol@example.net>\r\nSubject: inner\r\n\r\n", 51);
	assert_section(nested_msg, "2", "TEXT", "inner body", 10);
	/* The embedded message is not multipart: its part 1 is its body. */
	assert_section(nested_msg, "2.1", "", "inner body", 10);
	assert_section(nested_msg, "3", "", "JVBERi0xLjQK", 12);
	assert_no_section(nested_msg, "4", "");
	assert_no_section(nested_msg, "1.3", "");
	assert_no_section(nested_msg, "1.1.1", "");
	assert_no_section(nested_msg, "2.2", "");
	assert_no_section(nested_msg, "3", "HEADER");
	assert_no_section(nested_msg, "1", "TEXT");

	/* The multipart part's own body runs to the CRLF before "--outer". */
	size_t off, len;
	assert_int_equal(mime_section_range(nested_msg, strlen(nested_msg), "1", "", &off, &len), 1);
	assert_memory_equal(nested_msg + off, "--inner\r\n", 9);
	assert_memory_equal(nested_msg + off + len - 11, "--inner--\r\n", 11);

	char *h = NULL, *b = NULL;
	assert_int_equal(mime_search_text(nested_msg, strlen(nested_msg), &h, &b), 0);
	assert_string_equal(b, "text\n<b>text</b>\ninner body\n");
	free(h);
	free(b);
}

static void test_groups_and_quoting(void **state)
{
	(void)state;
	static const char msg[] =
		"From: \"Smith, John\" <john@example.com>\r\n"
		"Sender: sec@example.com\r\n"
		"Reply-To:\r\n"
		"To: undisclosed-recipients:;\r\n"
		"Cc: team: a@x.org, \"B \\\"Q\\\"\" <b@y.org>;, c@z.org\r\n"
		"Bcc: nodomain\r\n"
		"Subject: a \"quoted\" \\ subject,\r\n"
		"  folded\r\n"
		"In-Reply-To: <0@example.com>\r\n"
		"\r\n"
		"x";
	struct store_msg_cache c = summarize(msg);
	assert_string_equal(c.envelope,
		"(NIL \"a \\\"quoted\\\" \\\\ subject,  folded\" "
		"((\"Smith, John\" NIL \"john\" \"example.com\")) "
		"((NIL NIL \"sec\" \"example.com\")) "
		"((\"Smith, John\" NIL \"john\" \"example.com\")) "
		"((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) "
		"((NIL NIL \"team\" NIL)(NIL NIL \"a\" \"x.org\")(\"B \\\"Q\\\"\" NIL \"b\" \"y.org\")"
		"(NIL NIL NIL NIL)(NIL NIL \"c\" \"z.org\")) "
		"((NIL NIL \"nodomain\" \"\")) "
		"\"<0@example.com>\" NIL)");
	assert_string_equal(c.subject, "a \"quoted\" \\ subject,  folded");
	cache_free(&c);
}

/* The cases: comments inside an address, a group and an empty
 * group, a source route; and the addresses SEARCH reads are the same. */
static void test_envelope_addresses(void **state)
{
	(void)state;
	static const char msg[] =
		"From: <user-from (comment)@ (comment) domain.org>\r\n"
		"Sender: Name <@route:user@domain>\r\n"
		"Reply-To: user@domain (Real Name)\r\n"
		"To: empty:;\r\n"
		"Cc: user2: blah@domain1.org;\r\n"
		"Bcc: =?utf-8?q?J=C3=B6rg?= <j@example.de>\r\n"
		"\r\n"
		"x";
	struct store_msg_cache c = summarize(msg);
	assert_string_equal(c.envelope,
		"(NIL NIL "
		"((NIL NIL \"user-from\" \"domain.org\")) "
		"((\"Name\" \"@route\" \"user\" \"domain\")) "
		"((\"Real Name\" NIL \"user\" \"domain\")) "
		"((NIL NIL \"empty\" NIL)(NIL NIL NIL NIL)) "
		"((NIL NIL \"user2\" NIL)(NIL NIL \"blah\" \"domain1.org\")(NIL NIL NIL NIL)) "
		"((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"example.de\")) "
		"NIL NIL)");
	cache_free(&c);

	struct mail_address_list l;
	assert_int_equal(mime_header_addresses(msg, sizeof(msg) - 1, "from", &l), 1);
	assert_int_equal(l.count, 1);
	assert_string_equal(l.a[0].mailbox, "user-from");
	assert_string_equal(l.a[0].domain, "domain.org");
	mail_address_list_clear(&l);
	assert_int_equal(mime_header_addresses(msg, sizeof(msg) - 1, "CC", &l), 1);
	assert_int_equal(l.count, 3);
	assert_true(mail_address_is_group_start(&l.a[0]));
	assert_true(mail_address_is_group_end(&l.a[2]));
	mail_address_list_clear(&l);
	assert_int_equal(mime_header_addresses(msg, sizeof(msg) - 1, "X-None", &l), 0);
	/* the first of two fields, as ENVELOPE takes it */
	static const char two[] = "To: a@b\r\nTo: c@d\r\n\r\n";
	assert_int_equal(mime_header_addresses(two, sizeof(two) - 1, "to", &l), 1);
	assert_string_equal(l.a[0].mailbox, "a");
	mail_address_list_clear(&l);
}

static void test_missing_headers(void **state)
{
	(void)state;
	struct store_msg_cache c = summarize("\r\nbody only\r\n");
	assert_string_equal(c.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_string_equal(c.bodystructure,
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 1 NIL NIL NIL NIL)");
	assert_string_equal(c.subject, "");
	assert_int_equal(c.sent_date, 0);
	cache_free(&c);

	c = summarize("");
	assert_string_equal(c.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_string_equal(c.body,
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)");
	cache_free(&c);

	/* An invalid Date: gives 0 but is still the raw ENVELOPE date. */
	c = summarize("Date: not a date\r\n\r\n");
	assert_string_equal(c.envelope, "(\"not a date\" NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_int_equal(c.sent_date, 0);
	cache_free(&c);
}

static void test_encoded_words(void **state)
{
	(void)state;
	static const char msg[] =
		"From: =?utf-8?q?J=C3=B6rg?= <j@example.de>\r\n"
		"Subject: =?iso-8859-1?q?caf=E9?= =?utf-8?b?IOKCrA==?=\r\n"
		"X-Raw: caf\xc3\xa9\r\n"
		"\r\n"
		"x\r\n";
	struct store_msg_cache c = summarize(msg);
	/* ENVELOPE keeps the subject and the display name raw (RFC 3501 §7.4.2). */
	assert_string_equal(c.envelope,
		"(NIL \"=?iso-8859-1?q?caf=E9?= =?utf-8?b?IOKCrA==?=\" "
		"((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"example.de\")) "
		"((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"example.de\")) "
		"((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"example.de\")) NIL NIL NIL NIL NIL)");
	assert_string_equal(c.subject, "caf\xc3\xa9 \xe2\x82\xac");
	cache_free(&c);

	char *v = mime_header_value(msg, strlen(msg), "SUBJECT");
	assert_string_equal(v, "caf\xc3\xa9 \xe2\x82\xac");
	free(v);
	v = mime_header_value(msg, strlen(msg), "x-raw");
	assert_string_equal(v, "caf\xc3\xa9");
	free(v);
	assert_null(mime_header_value(msg, strlen(msg), "To"));

	char *h = NULL, *b = NULL;
	assert_int_equal(mime_search_text(msg, strlen(msg), &h, &b), 0);
	assert_string_equal(h, "From: J\xc3\xb6rg <j@example.de>\n"
			       "Subject: caf\xc3\xa9 \xe2\x82\xac\n"
			       "X-Raw: caf\xc3\xa9\n");
	free(h);
	free(b);
}

static void test_8bit_literal(void **state)
{
	(void)state;
	static const char msg[] = "Subject: caf\xc3\xa9\r\n\r\n";
	struct store_msg_cache c = summarize(msg);
	assert_string_equal(c.envelope,
		"(NIL {5}\r\ncaf\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL)");
	cache_free(&c);
}

static void test_base64_search(void **state)
{
	(void)state;
	static const char msg[] =
		"Subject: b64\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"\r\n"
		"aGVsbG8gd29ybGQgZnJv\r\n"
		"bSBiYXNlNjQK\r\n";
	char *h = NULL, *b = NULL;
	assert_int_equal(mime_search_text(msg, strlen(msg), &h, &b), 0);
	assert_string_equal(b, "hello world from base64\n\n");
	assert_non_null(strstr(h, "Subject: b64\n"));
	free(h);
	free(b);
}

static void test_qp_latin1(void **state)
{
	(void)state;
	static const char msg[] =
		"Content-Type: multipart/mixed; boundary=zz\r\n"
		"\r\n"
		"--zz\r\n"
		"Content-Type: text/plain; charset=ISO-8859-1\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n"
		"\r\n"
		"caf=E9 cr=E8me=\r\n"
		" br=FBl=E9e\r\n"
		"--zz\r\n"
		"Content-Type: image/png\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"\r\n"
		"iVBORw0KGgo=\r\n"
		"--zz--\r\n";
	char *h = NULL, *b = NULL;
	assert_int_equal(mime_search_text(msg, strlen(msg), &h, &b), 0);
	/* Non-text parts are not searched. */
	assert_string_equal(b, "caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\x65\n");
	free(h);
	free(b);
}

static void test_params_and_digest(void **state)
{
	(void)state;
	static const char msg[] =
		"Content-Type: multipart/digest; boundary=d\r\n"
		"\r\n"
		"--d\r\n"
		"\r\n"
		"Subject: one\r\n"
		"\r\n"
		"1\r\n"
		"--d\r\n"
		"Content-Type: text/plain; name*=utf-8''%E2%82%AC.txt; format=flowed\r\n"
		"\r\n"
		"2\r\n"
		"--d--\r\n";
	struct store_msg_cache c = summarize(msg);
	/* RFC 2046 §5.1.5: digest parts default to message/rfc822. */
	assert_string_equal(c.body,
		"((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 17 "
		"(NIL \"one\" NIL NIL NIL NIL NIL NIL NIL NIL) "
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 0) 2)"
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\" \"NAME*\" \"utf-8''%E2%82%AC.txt\""
		" \"FORMAT\" \"flowed\") NIL NIL \"7BIT\" 1 0) \"DIGEST\")");
	cache_free(&c);
}

static void test_lf_only(void **state)
{
	(void)state;
	static const char msg[] =
		"Content-Type: multipart/mixed; boundary=b\n"
		"\n"
		"--b\n"
		"\n"
		"one\n"
		"two\n"
		"--b--\n";
	struct store_msg_cache c = summarize(msg);
	assert_string_equal(c.body,
		"((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 7 1) \"MIXED\")");
	cache_free(&c);
	assert_section(msg, "1", "", "one\ntwo", 7);
	assert_section(msg, "1", "MIME", "\none\n", 1);
}

/* Malformed structure degrades to text/plain and stays consistent. */
static void test_malformed(void **state)
{
	(void)state;
	static const char no_boundary[] =
		"Content-Type: multipart/mixed\r\n\r\n--x\r\nhello\r\n";
	struct store_msg_cache c = summarize(no_boundary);
	assert_string_equal(c.body,
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 12 2)");
	cache_free(&c);

	static const char bad_type[] = "Content-Type: garbage\r\n\r\nx";
	c = summarize(bad_type);
	assert_string_equal(c.body,
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 0)");
	cache_free(&c);

	/* A message/rfc822 that is base64-encoded has no envelope to give. */
	static const char b64_msg[] =
		"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA";
	c = summarize(b64_msg);
	assert_string_equal(c.body,
		"(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 4)");
	cache_free(&c);

	/* Unterminated multipart: the last part runs to the end. */
	static const char unterminated[] =
		"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nabc\r\n";
	c = summarize(unterminated);
	assert_string_equal(c.body,
		"((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1) \"MIXED\")");
	cache_free(&c);

	/* A boundary that is a prefix of the inner one must not split it. */
	static const char prefix[] =
		"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
		"--a\r\n"
		"Content-Type: multipart/mixed; boundary=a1\r\n\r\n"
		"--a1\r\n\r\nin\r\n--a1--\r\n"
		"--a--\r\n";
	c = summarize(prefix);
	assert_string_equal(c.body,
		"(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 2 0) \"MIXED\")"
		" \"MIXED\")");
	cache_free(&c);
}

static void test_garbage(void **state)
{
	(void)state;
	unsigned char buf[4096];
	uint32_t x = 12345;
	for (int round = 0; round < 200; round++) {
		size_t n = (size_t)(round * 37) % sizeof(buf);
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			/* Bias towards structure characters. */
			static const char alphabet[] = "-\r\n:; =\"abB\x00\xff()<>@,";
			buf[i] = (x >> 16) & 1 ? (unsigned char)alphabet[(x >> 8) % (sizeof(alphabet) - 1)]
					       : (unsigned char)(x >> 24);
		}
		struct store_msg_cache c;
		assert_int_equal(mime_summarize(buf, n, &c), 0);
		assert_non_null(c.envelope);
		assert_true(c.bodystructure[0] == '(');
		cache_free(&c);
		size_t off, len;
		if (mime_section_range(buf, n, "1", "", &off, &len) == 1)
			assert_true(off + len <= n);
		char *h, *b;
		assert_int_equal(mime_search_text(buf, n, &h, &b), 0);
		free(h);
		free(b);
	}

	/* Deep nesting is capped, not recursed without bound. */
	size_t cap = 200 * 64, n = 0;
	char *deep = malloc(cap);
	assert_non_null(deep);
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(deep + n, cap - n,
				      "Content-Type: message/rfc822\r\n\r\n");
	struct store_msg_cache c;
	assert_int_equal(mime_summarize(deep, n, &c), 0);
	cache_free(&c);
	free(deep);
}

/* After mime_init() the module is used from the store's worker threads. */
static void *summarize_loop(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200; i++) {
		struct store_msg_cache c;
		if (mime_summarize(nested_msg, strlen(nested_msg), &c) != 0)
			return "summarize failed";
		bool same = strstr(c.bodystructure, "\"BASE64\" 12") != NULL;
		cache_free(&c);
		char *h, *b;
		if (mime_search_text(alt_msg, strlen(alt_msg), &h, &b) != 0)
			return "search failed";
		same = same && strcmp(b, "plain text\n<p>html</p>\r\nline2\n") == 0;
		free(h);
		free(b);
		if (!same)
			return "wrong result";
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, summarize_loop, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *err;
		assert_int_equal(pthread_join(t[i], &err), 0);
		assert_null(err);
	}
}

int main(void)
{
	mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_alternative),
		cmocka_unit_test(test_nested_rfc822),
		cmocka_unit_test(test_groups_and_quoting),
		cmocka_unit_test(test_envelope_addresses),
		cmocka_unit_test(test_missing_headers),
		cmocka_unit_test(test_encoded_words),
		cmocka_unit_test(test_8bit_literal),
		cmocka_unit_test(test_base64_search),
		cmocka_unit_test(test_qp_latin1),
		cmocka_unit_test(test_params_and_digest),
		cmocka_unit_test(test_lf_only),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
