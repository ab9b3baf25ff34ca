/* Unit tests for src/proto/imap/preview.c (PREVIEW, RFC 8970): the pure
 * normaliser (whitespace, controls, quoted lines, HTML markup and entities,
 * invalid UTF-8, the 256-character cut on a character boundary) and the
 * text-part choice over whole messages; plus the PREVIEW item's parse and
 * its response bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "proto/imap/fetch-parse.h"
#include "proto/imap/fetch-write.h"
#include "proto/imap/parser.h"
#include "proto/imap/preview.h"
#include "store/mime.h"

static void norm(const char *in, size_t len, bool html, const char *want)
{
	char out[IMAP_PREVIEW_MAX_BYTES + 1];
	size_t n = imap_preview_normalize(in, len, html, out, sizeof(out));
	assert_int_equal(n, strlen(out));
	assert_string_equal(out, want);
}

#define NORM(in, html, want) norm(in, sizeof(in) - 1, html, want)

static void test_whitespace_and_controls(void **state)
{
	(void)state;
	NORM("", false, "");
	NORM("   \r\n\t ", false, "");
	NORM("  a  b\r\n\r\nc\t", false, "a b c");
	NORM("a\0b\x01" "c\x7f" "d", false, "a b c d");
	NORM("a\xc2\xa0" "b\xe2\x80\xa8" "c", false, "a b c");     /* NBSP, LINE SEPARATOR */
	NORM("> quoted\r\nreply\r\n>> more\r\nend", false, "reply end");
	NORM("a > b", false, "a > b");                              /* only at a line start */
	NORM("<b>x</b> &amp;", false, "<b>x</b> &amp;");            /* plain text stays */
}

static void test_invalid_utf8_dropped(void **state)
{
	(void)state;
	NORM("a\xff" "b", false, "ab");
	NORM("a\xc0\xaf" "b", false, "ab");                         /* overlong */
	NORM("a\xed\xa0\x80" "b", false, "ab");                     /* surrogate */
	NORM("a\xf4\x90\x80\x80" "b", false, "ab");                 /* > U+10FFFF */
	NORM("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80", false,
	     "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80");
	NORM("cut \xe2\x9c", false, "cut");
}

static void test_html(void **state)
{
	(void)state;
	NORM("<html><head><title>T</title><style>p{}</style></head>"
	     "<body><p>Fish &amp; chips</p><p>for <b>two</b></p><!-- c --></body></html>", true,
	     "Fish & chips for two");
	NORM("a<br>b<div>c</div>d", true, "a b c d");
	NORM("w<b>o</b>rd <SCRIPT type=x>var a = '<p>';</SCRIPT>end", true, "word end");
	NORM("&lt;&gt;&quot;&apos;&#65;&#x42;&nbsp;&euro;&bogus; & x", true,
	     "<>\"'AB \xe2\x82\xac&bogus; & x");
	NORM("&#0; &#xD800; &#99999999;", true, "&#0; &#xD800; &#99999999;");
	NORM("<p unterminated", true, "");
	NORM("<!-- never closed", true, "");
	NORM("<style>never closed", true, "");
}

static void test_cut_at_256_characters(void **state)
{
	(void)state;
	char in[2048], want[1100];
	/* 300 two-byte characters: 256 kept, 512 bytes */
	for (int i = 0; i < 300; i++)
		memcpy(in + 2 * i, "\xc3\xa9", 2);
	memcpy(want, in, 512);
	want[512] = '\0';
	norm(in, 600, false, want);
	/* four-byte characters: 1024 bytes fit exactly */
	for (int i = 0; i < 300; i++)
		memcpy(in + 4 * i, "\xf0\x9f\x98\x80", 4);
	memcpy(want, in, 1024);
	want[1024] = '\0';
	norm(in, 1200, false, want);
	/* never a trailing space at the cut: 255 letters, a space, a letter */
	memset(in, 'a', 255);
	in[255] = ' ';
	in[256] = 'b';
	memset(want, 'a', 255);
	want[255] = '\0';
	norm(in, 257, false, want);
	/* a small buffer cuts on a character boundary too */
	char small[4];
	assert_int_equal(imap_preview_normalize("\xc3\xa9\xc3\xa9", 4, false, small, sizeof(small)),
			 2);
	assert_string_equal(small, "\xc3\xa9");
}

static void preview_of(const char *msg, const char *want)
{
	char *p = NULL;
	assert_int_equal(imap_preview_text(msg, strlen(msg), &p), 0);
	assert_string_equal(p, want);
	free(p);
}

static void test_text_part_choice(void **state)
{
	(void)state;
	preview_of("Subject: x\r\n\r\nHello  there\r\n", "Hello there");
	preview_of("Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		   "Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9\r\n",
		   "Caf\xc3\xa9");
	preview_of("Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
		   "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\n"
		   "attached\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>body</p>\r\n--b--\r\n",
		   "body");
	preview_of("Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
		   "--b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
		   "--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b--\r\n",
		   "plain");
	preview_of("Subject: x\r\nContent-Type: image/png\r\n\r\nxxxx\r\n", "");
	preview_of("", "");
	preview_of("\r\nbody only", "body only");
}

static struct imap_fetch_request *parse(const char *items)
{
	struct imap_parser_limits lim = { 4096, 1024, 1024 };
	struct imap_parser *p = imap_parser_new(&lim);
	char line[256];
	size_t n = (size_t)snprintf(line, sizeof(line), "t FETCH 1 %s\r\n", items), used;
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)line, n, &used, &cmd, &err),
			 TERN_PARSE_OK);
	imap_parser_free(&p);
	struct imap_fetch_request *req = NULL;
	int r = imap_fetch_parse(cmd->args + 1, cmd->arg_count - 1, false, &req, &err);
	imap_cmd_free(&cmd);
	return r == 0 ? req : NULL;
}

static void test_parse(void **state)
{
	(void)state;
	struct imap_fetch_request *req = parse("PREVIEW");
	assert_non_null(req);
	assert_int_equal(req->count, 1);
	assert_int_equal(req->atts[0].type, IMAP_FETCH_PREVIEW);
	assert_string_equal(req->atts[0].response_name, "PREVIEW");
	assert_false(req->atts[0].lazy);
	assert_false(req->sets_seen);
	imap_fetch_request_free(&req);

	req = parse("PREVIEW (LAZY)");
	assert_non_null(req);
	assert_int_equal(req->count, 1);
	assert_true(req->atts[0].lazy);
	imap_fetch_request_free(&req);

	req = parse("PREVIEW (lazy) (CHANGEDSINCE 5)");
	assert_non_null(req);
	assert_true(req->atts[0].lazy);
	assert_true(req->changedsince_given);
	imap_fetch_request_free(&req);

	req = parse("(FLAGS PREVIEW (LAZY LAZY) UID)");
	assert_non_null(req);
	assert_int_equal(req->count, 3);
	assert_int_equal(req->atts[1].type, IMAP_FETCH_PREVIEW);
	assert_true(req->atts[1].lazy);
	imap_fetch_request_free(&req);

	assert_null(parse("(PREVIEW (FUZZY))"));
	assert_null(parse("(PREVIEW ())"));
	assert_null(parse("PREVIEW (LAZY FOO)"));
	assert_null(parse("(FLAGS (LAZY))"));
	assert_null(parse("(PREVIEW.PEEK)"));
	assert_null(parse("PREVIEW[]"));
	assert_null(parse("PREVIEW (LAZY) (CHANGEDSINCE 5) x"));
}

static void test_write(void **state)
{
	(void)state;
	static struct store_msg meta = { .uid = 9 };
	const char msg[] = "Subject: x\r\n\r\nHi \"you\"\r\n";
	struct imap_fetch_request *req = parse("(UID PREVIEW)");
	struct imap_fetch_needs needs;
	imap_fetch_needs(req, &needs);
	assert_true(needs.raw);
	assert_true(needs.range_only);     /* the message's start is enough */
	assert_int_equal(needs.range_offset, 0);
	assert_int_equal(needs.range_length, IMAP_PREVIEW_READ_MAX);
	struct imap_fetch_request *both = parse("(PREVIEW BODY.PEEK[]<0.10>)");
	imap_fetch_needs(both, &needs);
	assert_true(needs.raw);
	assert_false(needs.range_only);
	imap_fetch_request_free(&both);
	struct imap_fetch_raw *raw = imap_fetch_raw_new(strdup(msg), strlen(msg), 0, strlen(msg));
	struct evbuffer *out = evbuffer_new();
	struct imap_fetch_msg m = { .seq = 2, .meta = &meta, .raw = raw };
	assert_int_equal(imap_fetch_write(out, req, &m), 0);
	const char want[] = "* 2 FETCH (UID 9 PREVIEW \"Hi \\\"you\\\"\")\r\n";
	assert_int_equal(evbuffer_get_length(out), strlen(want));
	assert_memory_equal(evbuffer_pullup(out, -1), want, strlen(want));
	evbuffer_free(out);
	imap_fetch_raw_unref(&raw);

	/* 8-bit: a literal, or quoted under UTF8=ACCEPT */
	const char msg8[] = "Subject: x\r\n\r\ncaf\xc3\xa9\r\n";
	raw = imap_fetch_raw_new(strdup(msg8), strlen(msg8), 0, strlen(msg8));
	m.raw = raw;
	out = evbuffer_new();
	assert_int_equal(imap_fetch_write(out, req, &m), 0);
	const char want8[] = "* 2 FETCH (UID 9 PREVIEW {5}\r\ncaf\xc3\xa9)\r\n";
	assert_int_equal(evbuffer_get_length(out), strlen(want8));
	assert_memory_equal(evbuffer_pullup(out, -1), want8, strlen(want8));
	evbuffer_drain(out, evbuffer_get_length(out));
	m.utf8 = true;
	assert_int_equal(imap_fetch_write(out, req, &m), 0);
	const char wantq[] = "* 2 FETCH (UID 9 PREVIEW \"caf\xc3\xa9\")\r\n";
	assert_int_equal(evbuffer_get_length(out), strlen(wantq));
	assert_memory_equal(evbuffer_pullup(out, -1), wantq, strlen(wantq));
	evbuffer_free(out);
	imap_fetch_raw_unref(&raw);

	/* the first IMAP_PREVIEW_READ_MAX bytes of a longer message do */
	char *big = malloc(IMAP_PREVIEW_READ_MAX);
	memset(big, 'x', IMAP_PREVIEW_READ_MAX);
	memcpy(big, "Subject: x\r\n\r\nstart ", 20);
	raw = imap_fetch_raw_new(big, IMAP_PREVIEW_READ_MAX, 0, 10 * IMAP_PREVIEW_READ_MAX);
	m.raw = raw;
	m.utf8 = false;
	out = evbuffer_new();
	assert_int_equal(imap_fetch_write(out, req, &m), 0);
	char wantb[400];
	snprintf(wantb, sizeof(wantb), "* 2 FETCH (UID 9 PREVIEW \"start %.250s\")\r\n", big + 100);
	assert_int_equal(evbuffer_get_length(out), strlen(wantb));
	assert_memory_equal(evbuffer_pullup(out, -1), wantb, strlen(wantb));
	evbuffer_free(out);
	imap_fetch_raw_unref(&raw);

	/* less was read, or not from the start: a caller bug, reported,
	 * nothing written */
	raw = imap_fetch_raw_new(strdup("Subject: x\r\n\r\nab"), 16, 0, 100);
	m.raw = raw;
	out = evbuffer_new();
	assert_int_equal(imap_fetch_write(out, req, &m), IMAP_FETCH_WRITE_NO_DATA);
	assert_int_equal(evbuffer_get_length(out), 0);
	evbuffer_free(out);
	imap_fetch_raw_unref(&raw);
	raw = imap_fetch_raw_new(strdup("xx"), 2, 5, 100);
	m.raw = raw;
	out = evbuffer_new();
	assert_int_equal(imap_fetch_write(out, req, &m), IMAP_FETCH_WRITE_NO_DATA);
	assert_int_equal(evbuffer_get_length(out), 0);
	evbuffer_free(out);
	imap_fetch_raw_unref(&raw);
	imap_fetch_request_free(&req);
}

int main(void)
{
	mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whitespace_and_controls),
		cmocka_unit_test(test_invalid_utf8_dropped),
		cmocka_unit_test(test_html),
		cmocka_unit_test(test_cut_at_256_characters),
		cmocka_unit_test(test_text_part_choice),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_write),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
