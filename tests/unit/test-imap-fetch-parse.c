/* Unit tests for the FETCH attribute parser (src/proto/imap/fetch-parse.c)
 * and for IMAP string output (src/proto/imap/quote.c), which writes what
 * FETCH answers carry. Commands go through the real command parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "core/limits.h"
#include "proto/imap/fetch-parse.h"
#include "proto/imap/parser.h"
#include "proto/imap/quote.h"

/* "t [UID ]FETCH 1 <args>": the arguments after the sequence set. */
static struct imap_cmd *command(const char *args)
{
	struct imap_parser_limits lim = { 4096, 1024, 1024 };
	struct imap_parser *p = imap_parser_new(&lim);
	char line[4200];
	size_t n = (size_t)snprintf(line, sizeof(line), "t FETCH 1 %s\r\n", args);
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t used;

	assert_int_equal(imap_parser_feed(p, (const uint8_t *)line, n, &used, &cmd, &err),
			 TERN_PARSE_OK);
	imap_parser_free(&p);
	return cmd;
}

static struct imap_fetch_request *parse_ok(const char *args, bool uid)
{
	struct imap_cmd *cmd = command(args);
	struct imap_fetch_request *req = NULL;
	const char *err = NULL;

	assert_int_equal(imap_fetch_parse(cmd->args + 1, cmd->arg_count - 1, uid, &req, &err), 0);
	assert_non_null(req);
	imap_cmd_free(&cmd);
	return req;
}

static void expect_error(const char *args, bool uid, const char *err_want)
{
	struct imap_cmd *cmd = command(args);
	struct imap_fetch_request *req = (struct imap_fetch_request *)0x1;
	const char *err = NULL;

	assert_int_equal(imap_fetch_parse(cmd->args + 1, cmd->arg_count - 1, uid, &req, &err), -1);
	assert_ptr_equal(req, (struct imap_fetch_request *)0x1);
	assert_string_equal(err, err_want);
	imap_cmd_free(&cmd);
}

static void expect_names(const struct imap_fetch_request *req, const char *const *names,
			 size_t n)
{
	assert_int_equal(req->count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(req->atts[i].response_name, names[i]);
}

static void test_macros_and_simple(void **state)
{
	(void)state;
	struct imap_fetch_request *req = parse_ok("full", false);
	static const char *const full[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
					    "BODY" };
	expect_names(req, full, 5);
	assert_int_equal(req->atts[4].type, IMAP_FETCH_BODY);
	assert_false(req->sets_seen);
	imap_fetch_request_free(&req);
	assert_null(req);

	req = parse_ok("FAST", false);
	assert_int_equal(req->count, 3);
	imap_fetch_request_free(&req);
	req = parse_ok("ALL", true);                        /* UID FETCH adds UID */
	static const char *const all[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
					   "UID" };
	expect_names(req, all, 5);
	imap_fetch_request_free(&req);

	req = parse_ok("(uid bodystructure modseq rfc822 rfc822.header rfc822.text)", true);
	static const char *const simple[] = { "UID", "BODYSTRUCTURE", "MODSEQ", "RFC822",
					      "RFC822.HEADER", "RFC822.TEXT" };
	expect_names(req, simple, 6);
	assert_int_equal(req->atts[3].type, IMAP_FETCH_RFC822);
	assert_true(req->sets_seen);
	imap_fetch_request_free(&req);

	req = parse_ok("RFC822.HEADER", false);
	assert_false(req->sets_seen);
	imap_fetch_request_free(&req);

	/* RFC 8474 EMAILID/THREADID, RFC 8514 SAVEDATE: case-insensitive
	 * atoms, alone or in a list, none of them sets \Seen */
	req = parse_ok("(emailid THREADID SaveDate)", false);
	static const char *const ids[] = { "EMAILID", "THREADID", "SAVEDATE" };
	expect_names(req, ids, 3);
	assert_int_equal(req->atts[0].type, IMAP_FETCH_EMAILID);
	assert_int_equal(req->atts[1].type, IMAP_FETCH_THREADID);
	assert_int_equal(req->atts[2].type, IMAP_FETCH_SAVEDATE);
	assert_false(req->sets_seen);
	imap_fetch_request_free(&req);
	req = parse_ok("SAVEDATE", true);
	static const char *const saved_uid[] = { "SAVEDATE", "UID" };
	expect_names(req, saved_uid, 2);
	imap_fetch_request_free(&req);
}

static void test_sections(void **state)
{
	(void)state;
	struct imap_fetch_request *req = parse_ok(
		"(BODY[] body.peek[header.fields (From \"X-Odd(Name\" to)]<0.512> BODY[1.2.3] "
		"BODY.PEEK[2.MIME] BODY[TEXT]<100.10> BODY[4.HEADER.FIELDS.NOT (Received)] "
		"BODY[3.TEXT] BODY.PEEK[HEADER])", false);
	static const char *const names[] = {
		"BODY[]", "BODY[HEADER.FIELDS (From \"X-Odd(Name\" to)]<0>", "BODY[1.2.3]",
		"BODY[2.MIME]", "BODY[TEXT]<100>", "BODY[4.HEADER.FIELDS.NOT (Received)]",
		"BODY[3.TEXT]", "BODY[HEADER]",
	};
	expect_names(req, names, 8);
	const struct imap_fetch_att *a = req->atts;

	assert_int_equal(a[0].type, IMAP_FETCH_BODY_SECTION);
	assert_false(a[0].peek);
	assert_int_equal(a[0].section.spec, IMAP_SECTION_ALL);
	assert_int_equal(a[0].section.part_count, 0);
	assert_true(a[1].peek);
	assert_int_equal(a[1].section.spec, IMAP_SECTION_HEADER_FIELDS);
	assert_int_equal(a[1].section.field_count, 3);
	assert_string_equal(a[1].section.fields[1], "X-Odd(Name");
	assert_true(a[1].partial);
	assert_int_equal(a[1].partial_offset, 0);
	assert_int_equal(a[1].partial_length, 512);
	assert_int_equal(a[2].section.part_count, 3);
	assert_int_equal(a[2].section.parts[2], 3);
	assert_int_equal(a[3].section.spec, IMAP_SECTION_MIME);
	assert_int_equal(a[3].section.parts[0], 2);
	assert_int_equal(a[4].partial_offset, 100);
	assert_int_equal(a[5].section.spec, IMAP_SECTION_HEADER_FIELDS_NOT);
	assert_int_equal(a[6].section.spec, IMAP_SECTION_TEXT);
	assert_int_equal(a[7].section.spec, IMAP_SECTION_HEADER);
	assert_true(req->sets_seen);
	imap_fetch_request_free(&req);

	req = parse_ok("(BODY.PEEK[] BINARY.PEEK[1] BINARY.SIZE[2.1] FLAGS)", false);
	static const char *const bin[] = { "BODY[]", "BINARY[1]", "BINARY.SIZE[2.1]", "FLAGS" };
	expect_names(req, bin, 4);
	assert_int_equal(req->atts[1].type, IMAP_FETCH_BINARY);
	assert_int_equal(req->atts[2].type, IMAP_FETCH_BINARY_SIZE);
	assert_false(req->sets_seen);
	imap_fetch_request_free(&req);
}

static void test_modifiers(void **state)
{
	(void)state;
	struct imap_fetch_request *req = parse_ok("(FLAGS) (CHANGEDSINCE 12345)", false);
	assert_true(req->changedsince_given);
	assert_int_equal(req->changedsince, 12345);
	assert_false(req->vanished);
	static const char *const names[] = { "FLAGS", "MODSEQ" };   /* MODSEQ implied */
	expect_names(req, names, 2);
	imap_fetch_request_free(&req);

	req = parse_ok("(FLAGS MODSEQ UID) (vanished CHANGEDSINCE 9223372036854775807)", true);
	assert_true(req->vanished);
	assert_int_equal(req->count, 3);
	imap_fetch_request_free(&req);
}

static void test_errors(void **state)
{
	(void)state;
	static const struct { const char *args; const char *err; } bad[] = {
		{ "FOO", "Unknown FETCH attribute" },
		{ "EMAILID[]", "Unknown FETCH attribute" },
		{ "EMAILID.PEEK", "Unknown FETCH attribute" },
		{ "(SAVEDATES)", "Unknown FETCH attribute" },
		{ "THREAD", "Unknown FETCH attribute" },
		{ "()", "Missing FETCH attributes" },
		{ "(ALL)", "Unknown FETCH attribute" },           /* macros stand alone */
		{ "\"FLAGS\"", "Missing FETCH attributes" },
		{ "(FLAGS \"UID\")", "Unknown FETCH attribute" },
		{ "BODY.PEEK", "Unknown FETCH attribute" },
		{ "BODYX[]", "Unknown FETCH attribute" },
		{ "BODY[0]", "Invalid section" },
		{ "BODY[1.]", "Invalid section" },
		{ "BODY[.1]", "Invalid section" },
		{ "BODY[01]", "Invalid section" },
		{ "BODY[MIME]", "Invalid section" },
		{ "BODY[HEADERS]", "Invalid section" },
		{ "BODY[HEADER.FIELDS]", "Invalid section" },
		{ "BODY[HEADER.FIELDS ()]", "Invalid section" },
		{ "BODY[HEADER.FIELDS (a:b)]", "Invalid section" },
		{ "BODY[HEADER.FIELDS (a) x]", "Invalid section" },
		{ "BODY[TEXT ]", "Invalid section" },
		{ "BODY[1.2.TEXT.MIME]", "Invalid section" },
		{ "BINARY[HEADER]", "Invalid section" },
		{ "BODY[]<0>", "Invalid partial" },
		{ "BODY[]<0.0>", "Invalid partial" },
		{ "BODY[]<a.1>", "Invalid partial" },
		{ "BODY[]<0.1>x", "Invalid partial" },
		{ "BODY[]x", "Invalid partial" },
		{ "BINARY.SIZE[1]<0.5>", "Invalid partial" },
		{ "BODY[4294967296]", "Invalid section" },
		{ "FLAGS (CHANGEDSINCE)", "Invalid FETCH modifier" },
		{ "FLAGS (CHANGEDSINCE x)", "Invalid FETCH modifier" },
		{ "FLAGS (CHANGEDSINCE 9223372036854775808)", "Invalid FETCH modifier" },
		{ "FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", "Invalid FETCH modifier" },
		{ "FLAGS (FOO)", "Invalid FETCH modifier" },
		{ "FLAGS ()", "Invalid FETCH modifier" },
		{ "FLAGS FLAGS", "Invalid FETCH modifier" },
		{ "FLAGS (CHANGEDSINCE 1) x", "Unexpected FETCH arguments" },
		{ "FLAGS (VANISHED CHANGEDSINCE 5)", "VANISHED needs UID FETCH and CHANGEDSINCE" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i].args, false, bad[i].err);
	expect_error("FLAGS (VANISHED)", true, "VANISHED needs UID FETCH and CHANGEDSINCE");
	struct imap_cmd *cmd = command("FLAGS");
	struct imap_fetch_request *req = NULL;
	const char *err = NULL;
	assert_int_equal(imap_fetch_parse(cmd->args + 1, 0, false, &req, &err), -1);
	assert_string_equal(err, "Missing FETCH attributes");
	imap_cmd_free(&cmd);
}

/* ---- quote.c ---------------------------------------------------------------- */

static void expect_written(int (*fn)(struct evbuffer *, const char *, size_t, unsigned),
			   const char *s, size_t len, unsigned flags, const char *want,
			   size_t want_len)
{
	struct evbuffer *b = evbuffer_new();
	assert_int_equal(fn(b, s, len, flags), 0);
	assert_int_equal(evbuffer_get_length(b), want_len);
	assert_memory_equal(evbuffer_pullup(b, -1), want, want_len);
	evbuffer_free(b);
}

#define W(fn, lit, flags, want) expect_written(fn, lit, sizeof(lit) - 1, flags, want, sizeof(want) - 1)

static void test_quote(void **state)
{
	(void)state;
	W(imap_write_astring, "INBOX", 0, "INBOX");
	W(imap_write_astring, "a]b", 0, "a]b");
	W(imap_write_astring, "a[b", 0, "\"a[b\"");
	W(imap_write_astring, "", 0, "\"\"");
	W(imap_write_astring, "NIL", 0, "\"NIL\"");
	W(imap_write_astring, "nil", 0, "\"nil\"");
	W(imap_write_astring, "a b", 0, "\"a b\"");
	W(imap_write_astring, "a*", 0, "\"a*\"");
	W(imap_write_astring, "say \"hi\\\"", 0, "\"say \\\"hi\\\\\\\"\"");
	W(imap_write_astring, "line\r\nbreak", 0, "{11}\r\nline\r\nbreak");
	W(imap_write_astring, "Entw\xc3\xbcrfe", 0, "{9}\r\nEntw\xc3\xbcrfe");
	W(imap_write_astring, "Entw\xc3\xbcrfe", IMAP_WRITE_UTF8, "\"Entw\xc3\xbcrfe\"");
	W(imap_write_astring, "bad\xff", IMAP_WRITE_UTF8, "{4}\r\nbad\xff");
	W(imap_write_string, "atom", 0, "\"atom\"");
	W(imap_write_nstring, "x", 0, "\"x\"");
	expect_written(imap_write_nstring, NULL, 0, 0, "NIL", 3);
	W(imap_write_string, "a\0b", 0, "{3}\r\na\0b");

	char big[TERN_IMAP_QUOTED_MAX + 1];
	memset(big, 'q', sizeof(big));
	assert_true(imap_can_quote(big, TERN_IMAP_QUOTED_MAX, 0));
	assert_false(imap_can_quote(big, TERN_IMAP_QUOTED_MAX + 1, 0));

	struct evbuffer *b = evbuffer_new();
	assert_int_equal(imap_write_literal(b, "ab", 2, true), 0);
	assert_int_equal(evbuffer_get_length(b), 8);
	assert_memory_equal(evbuffer_pullup(b, -1), "~{2}\r\nab", 8);
	evbuffer_free(b);
}

/* What quote.c writes, the command parser reads back as the same bytes. */
static void test_quote_round_trip(void **state)
{
	(void)state;
	static const char *const samples[] = { "INBOX", "", "NIL", "a b", "q\"uo\\te", "\xc3\xa4",
					       "x\r\ny", "(paren)", "{5}", "\\Seen", "%*" };
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add(b, "t X ", 4);
		assert_int_equal(imap_write_astring(b, samples[i], strlen(samples[i]), 0), 0);
		evbuffer_add(b, "\r\n", 2);
		size_t n = evbuffer_get_length(b), pos = 0, used;
		const uint8_t *d = evbuffer_pullup(b, -1);
		struct imap_parser_limits lim = { 1024, 1024, 1024 };
		struct imap_parser *p = imap_parser_new(&lim);
		struct imap_cmd *cmd = NULL;
		const char *err, *s;
		enum tern_parse r;
		while ((r = imap_parser_feed(p, d + pos, n - pos, &used, &cmd, &err)) ==
		       TERN_PARSE_NEED_MORE)
			pos += used;
		assert_int_equal(r, TERN_PARSE_OK);
		size_t len;
		assert_true(imap_arg_astring(&cmd->args[0], &s, &len));
		assert_int_equal(len, strlen(samples[i]));
		assert_memory_equal(s, samples[i], len);
		assert_int_not_equal(cmd->args[0].type, IMAP_ARG_NIL);
		imap_cmd_free(&cmd);
		imap_parser_free(&p);
		evbuffer_free(b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_macros_and_simple),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_modifiers),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_quote_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
