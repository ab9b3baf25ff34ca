/* Unit tests for src/proto/imap/fetch-write.c: exact FETCH response lines for
 * every item over a synthetic multipart message (sizes worked out by hand),
 * partials, HEADER.FIELDS, BINARY decoding, range-only reads, the implicit
 * FLAGS/MODSEQ after \Seen, reference counting of the raw bytes, and that a
 * failure writes nothing. */
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
#include "store/mime.h"
#include "store/store.h"

static const char msg[] =
	"From: Alice <a@example.com>\r\n"                            /* 29 */
	"Subject: hi\r\n"                                            /* 13 */
	"Content-Type: multipart/mixed; boundary=XX\r\n"             /* 44 */
	"\r\n"                                                       /* 2: header 88 */
	"--XX\r\n"
	"Content-Type: text/plain\r\n"
	"\r\n"
	"hello world\r\n"
	"--XX\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"AAECAw==\r\n"
	"--XX--\r\n";

static struct imap_fetch_request *parse(const char *items, bool uid)
{
	struct imap_parser_limits lim = { 65536, 65536, 1 << 20 };
	struct imap_parser *p = imap_parser_new(&lim);
	char line[512];
	snprintf(line, sizeof(line), "t FETCH 1 %s\r\n", items);
	size_t used = 0;
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)line, strlen(line), &used, &cmd, &err),
			 TERN_PARSE_OK);
	struct imap_fetch_request *req = NULL;
	assert_int_equal(imap_fetch_parse(cmd->args + 1, cmd->arg_count - 1, uid, &req, &err), 0);
	imap_cmd_free(&cmd);
	imap_parser_free(&p);
	return req;
}

static struct store_msg meta = {
	.uid = 7, .flags = STORE_FLAG_SEEN, .keywords = "Work", .modseq = 42,
	.internal_date = 1704067200 + 3600 + 120 + 3, /* 2024-01-01 01:02:03 UTC */
	.internal_tz = 60, .size = sizeof(msg) - 1,
};

static struct store_msg_cache cache = {
	.envelope = "(\"env\")", .bodystructure = "(\"bs\")", .body = "(\"b\")",
};

static struct imap_fetch_raw *whole_raw(void)
{
	return imap_fetch_raw_new(strdup(msg), sizeof(msg) - 1, 0, sizeof(msg) - 1);
}

/* Writes the response for items and compares it with want (length given,
 * for NULs). */
static void expect_n(const char *items, struct imap_fetch_raw *raw, bool add_flags,
		     const char *want, size_t want_len)
{
	struct imap_fetch_request *req = parse(items, false);
	struct evbuffer *out = evbuffer_new();
	struct imap_fetch_msg m = { .seq = 3, .meta = &meta, .cache = &cache, .raw = raw,
				    .add_flags = add_flags, .add_modseq = add_flags };
	assert_int_equal(imap_fetch_write(out, req, &m), 0);
	size_t len = evbuffer_get_length(out);
	char *got = malloc(len + 1);
	evbuffer_remove(out, got, len);
	got[len] = '\0';
	if (len != want_len || memcmp(got, want, len) != 0)
		fail_msg("got [%s]\nwant [%s]", got, want);
	free(got);
	evbuffer_free(out);
	imap_fetch_request_free(&req);
}

static void expect(const char *items, struct imap_fetch_raw *raw, const char *want)
{
	expect_n(items, raw, false, want, strlen(want));
}

static void test_metadata(void **state)
{
	(void)state;
	expect("(FLAGS UID RFC822.SIZE INTERNALDATE MODSEQ)", NULL,
	       "* 3 FETCH (FLAGS (\\Seen Work) UID 7 RFC822.SIZE 236 "
	       "INTERNALDATE \"01-Jan-2024 02:02:03 +0100\" MODSEQ (42))\r\n");
	expect("(ENVELOPE BODY BODYSTRUCTURE)", NULL,
	       "* 3 FETCH (ENVELOPE (\"env\") BODY (\"b\") BODYSTRUCTURE (\"bs\"))\r\n");
	assert_int_equal(sizeof(msg) - 1, 236);
}

/* RFC 8474 §5.1/§5.2, RFC 8514: EMAILID (id), THREADID NIL (Tern does not
 * compute threads), SAVEDATE as a date-time in UTC. */
static void test_objectid_savedate(void **state)
{
	(void)state;
	struct store_msg_ids ids = { .emailid = "M6d99ac3275bb4e0123456789",
				     .save_date = 1521475657 };
	const char *items[] = { "(EMAILID THREADID SAVEDATE UID)", "(THREADID)", "SAVEDATE" };
	const char *want[] = {
		"* 3 FETCH (EMAILID (M6d99ac3275bb4e0123456789) THREADID NIL "
		"SAVEDATE \"19-Mar-2018 16:07:37 +0000\" UID 7)\r\n",
		"* 3 FETCH (THREADID NIL)\r\n",
		"* 3 FETCH (SAVEDATE \"19-Mar-2018 16:07:37 +0000\")\r\n",
	};
	for (size_t i = 0; i < 3; i++) {
		struct imap_fetch_request *req = parse(items[i], false);
		struct imap_fetch_needs n;
		imap_fetch_needs(req, &n);
		assert_int_equal(n.ids, i != 1);     /* THREADID alone reads nothing */
		assert_false(n.cache);
		assert_false(n.raw);
		struct evbuffer *out = evbuffer_new();
		struct imap_fetch_msg m = { .seq = 3, .meta = &meta, .ids = &ids };
		assert_int_equal(imap_fetch_write(out, req, &m), 0);
		size_t len = evbuffer_get_length(out);
		assert_int_equal(len, strlen(want[i]));
		assert_memory_equal(evbuffer_pullup(out, -1), want[i], len);
		/* not loaded: a caller bug, reported, nothing written */
		m.ids = NULL;
		evbuffer_drain(out, len);
		assert_int_equal(imap_fetch_write(out, req, &m),
				 i == 1 ? IMAP_FETCH_WRITE_OK : IMAP_FETCH_WRITE_NO_DATA);
		evbuffer_free(out);
		imap_fetch_request_free(&req);
	}
}

static void test_sections(void **state)
{
	(void)state;
	struct imap_fetch_raw *raw = whole_raw();
	/* the CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1) */
	expect("BODY[1]", raw, "* 3 FETCH (BODY[1] {11}\r\nhello world)\r\n");
	expect("BODY.PEEK[1]<0.5>", raw, "* 3 FETCH (BODY[1]<0> {5}\r\nhello)\r\n");
	expect("BODY.PEEK[1]<6.100>", raw, "* 3 FETCH (BODY[1]<6> {5}\r\nworld)\r\n");
	expect("BODY.PEEK[1]<50.10>", raw, "* 3 FETCH (BODY[1]<50> {0}\r\n)\r\n");
	expect("BODY[1.MIME]", raw,
	       "* 3 FETCH (BODY[1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n)\r\n");
	expect("BODY[9]", raw, "* 3 FETCH (BODY[9] NIL)\r\n");
	expect("BODY.PEEK[HEADER.FIELDS (subject FROM)]", raw,
	       "* 3 FETCH (BODY[HEADER.FIELDS (subject FROM)] {44}\r\n"
	       "From: Alice <a@example.com>\r\nSubject: hi\r\n\r\n)\r\n");
	expect("BODY.PEEK[HEADER.FIELDS.NOT (From Content-Type)]", raw,
	       "* 3 FETCH (BODY[HEADER.FIELDS.NOT (From Content-Type)] {15}\r\n"
	       "Subject: hi\r\n\r\n)\r\n");
	expect("BODY.PEEK[HEADER.FIELDS (Subject)]<2.4>", raw,
	       "* 3 FETCH (BODY[HEADER.FIELDS (Subject)]<2> {4}\r\nbjec)\r\n");
	expect("RFC822.HEADER", raw,
	       "* 3 FETCH (RFC822.HEADER {88}\r\nFrom: Alice <a@example.com>\r\nSubject: hi\r\n"
	       "Content-Type: multipart/mixed; boundary=XX\r\n\r\n)\r\n");
	expect("BODY[TEXT]<0.6>", raw, "* 3 FETCH (BODY[TEXT]<0> {6}\r\n--XX\r\n)\r\n");
	char want[512];
	snprintf(want, sizeof(want), "* 3 FETCH (RFC822.TEXT {148}\r\n%s)\r\n", msg + 88);
	expect("RFC822.TEXT", raw, want);
	snprintf(want, sizeof(want), "* 3 FETCH (UID 7 RFC822 {236}\r\n%s)\r\n", msg);
	expect("(UID RFC822)", raw, want);
	snprintf(want, sizeof(want), "* 3 FETCH (BODY[] {236}\r\n%s)\r\n", msg);
	expect("BODY[]", raw, want);
	imap_fetch_raw_unref(&raw);
}

static void test_binary(void **state)
{
	(void)state;
	struct imap_fetch_raw *raw = whole_raw();
	static const char bin[] = "* 3 FETCH (BINARY[2] ~{4}\r\n\0\1\2\3)\r\n";
	expect_n("BINARY.PEEK[2]", raw, false, bin, sizeof(bin) - 1);
	expect("BINARY.SIZE[2]", raw, "* 3 FETCH (BINARY.SIZE[2] 4)\r\n");
	/* literal8 only where the bytes hold a NUL */
	static const char bin2[] = "* 3 FETCH (BINARY[2]<0> ~{2}\r\n\0\1)\r\n";
	expect_n("BINARY[2]<0.2>", raw, false, bin2, sizeof(bin2) - 1);
	expect("BINARY[2]<1.2>", raw, "* 3 FETCH (BINARY[2]<1> {2}\r\n\1\2)\r\n");
	/* 7bit part: the bytes themselves, no literal8 */
	expect("BINARY[1]", raw, "* 3 FETCH (BINARY[1] {11}\r\nhello world)\r\n");

	/* BINARY[] is the whole message, header and body (RFC 3516 section-binary) */
	char want[512];
	snprintf(want, sizeof(want), "* 3 FETCH (BINARY[] {%zu}\r\n%s)\r\n", strlen(msg), msg);
	expect("BINARY.PEEK[]", raw, want);
	snprintf(want, sizeof(want), "* 3 FETCH (BINARY.SIZE[] %zu)\r\n", strlen(msg));
	expect("BINARY.SIZE[]", raw, want);
	expect("BINARY.PEEK[]<0.5>", raw, "* 3 FETCH (BINARY[]<0> {5}\r\nFrom:)\r\n");

	/* a single-part quoted-printable message: part 1 decoded, sliced after
	 * decoding; an empty part is a zero-length literal */
	const char qp[] = "Content-Transfer-Encoding: Quoted-Printable\r\n\r\n"
			  "caf=C3=A9 =3D soft=\r\nbreak";
	struct imap_fetch_raw *rq = imap_fetch_raw_new(strdup(qp), strlen(qp), 0, strlen(qp));
	expect("BINARY.PEEK[1]", rq, "* 3 FETCH (BINARY[1] {17}\r\ncaf\xc3\xa9 = softbreak)\r\n");
	expect("BINARY.SIZE[1]", rq, "* 3 FETCH (BINARY.SIZE[1] 17)\r\n");
	expect("BINARY.PEEK[1]<3.4>", rq, "* 3 FETCH (BINARY[1]<3> {4}\r\n\xc3\xa9 =)\r\n");
	imap_fetch_raw_unref(&rq);
	const char empty[] = "Content-Transfer-Encoding: base64\r\n\r\n";
	rq = imap_fetch_raw_new(strdup(empty), strlen(empty), 0, strlen(empty));
	expect("BINARY.PEEK[1]", rq, "* 3 FETCH (BINARY[1] {0}\r\n)\r\n");
	imap_fetch_raw_unref(&rq);

	const char bad[] = "Content-Transfer-Encoding: x-rot13\r\n\r\nuryyb\r\n";
	struct imap_fetch_raw *r2 = imap_fetch_raw_new(strdup(bad), strlen(bad), 0, strlen(bad));
	struct imap_fetch_request *req = parse("BINARY[1]", false);
	struct evbuffer *out = evbuffer_new();
	struct imap_fetch_msg m = { .seq = 1, .meta = &meta, .raw = r2 };
	assert_int_equal(imap_fetch_write(out, req, &m), IMAP_FETCH_WRITE_UNKNOWN_CTE);
	assert_int_equal(evbuffer_get_length(out), 0);
	evbuffer_free(out);
	imap_fetch_request_free(&req);
	imap_fetch_raw_unref(&r2);
	imap_fetch_raw_unref(&raw);
}

static void test_implicit_flags(void **state)
{
	(void)state;
	struct imap_fetch_raw *raw = whole_raw();
	const char want[] = "* 3 FETCH (BODY[1]<0> {5}\r\nhello FLAGS (\\Seen Work) MODSEQ (42))\r\n";
	expect_n("BODY[1]<0.5>", raw, true, want, strlen(want));
	/* already asked for: not twice */
	const char want2[] = "* 3 FETCH (FLAGS (\\Seen Work) BODY[1]<0> {5}\r\nhello MODSEQ (42))\r\n";
	expect_n("(FLAGS BODY[1]<0.5>)", raw, true, want2, strlen(want2));
	imap_fetch_raw_unref(&raw);
}

static void test_needs_and_range(void **state)
{
	(void)state;
	struct imap_fetch_needs n;
	struct imap_fetch_request *req = parse("(UID FLAGS RFC822.SIZE)", true);
	imap_fetch_needs(req, &n);
	assert_false(n.cache);
	assert_false(n.raw);
	imap_fetch_request_free(&req);

	req = parse("(ENVELOPE BODY.PEEK[]<100.10>)", false);
	imap_fetch_needs(req, &n);
	assert_true(n.cache);
	assert_true(n.raw);
	assert_true(n.range_only);
	assert_int_equal(n.range_offset, 100);
	assert_int_equal(n.range_length, 10);
	imap_fetch_request_free(&req);

	req = parse("BINARY.PEEK[]<100.10>", false);
	imap_fetch_needs(req, &n);
	assert_true(n.range_only);
	assert_int_equal(n.range_offset, 100);
	imap_fetch_request_free(&req);

	req = parse("BINARY.PEEK[1]<100.10>", false);
	imap_fetch_needs(req, &n);
	assert_false(n.range_only);
	imap_fetch_request_free(&req);

	req = parse("(BODY.PEEK[]<0.10> BODY.PEEK[1])", false);
	imap_fetch_needs(req, &n);
	assert_false(n.range_only);
	imap_fetch_request_free(&req);

	/* only bytes 100..109 were read: enough for BODY[]<100.10> */
	struct imap_fetch_raw *raw = imap_fetch_raw_new(strndup(msg + 100, 10), 10, 100, 236);
	char want[64];
	snprintf(want, sizeof(want), "* 3 FETCH (BODY[]<100> {10}\r\n%.10s)\r\n", msg + 100);
	expect("BODY.PEEK[]<100.10>", raw, want);
	/* near the end: clipped by the total size */
	imap_fetch_raw_unref(&raw);
	raw = imap_fetch_raw_new(strdup(msg + 234), 2, 234, 236);
	expect("BODY.PEEK[]<234.10>", raw, "* 3 FETCH (BODY[]<234> {2}\r\n\r\n)\r\n");
	imap_fetch_raw_unref(&raw);
	raw = imap_fetch_raw_new(strdup(""), 0, 236, 236);
	expect("BODY.PEEK[]<300.10>", raw, "* 3 FETCH (BODY[]<300> {0}\r\n)\r\n");

	/* data that does not cover the section fails and writes nothing */
	req = parse("BODY.PEEK[]<0.10>", false);
	struct evbuffer *out = evbuffer_new();
	struct imap_fetch_msg m = { .seq = 1, .meta = &meta, .raw = raw };
	assert_int_equal(imap_fetch_write(out, req, &m), IMAP_FETCH_WRITE_NO_DATA);
	m.raw = NULL;
	assert_int_equal(imap_fetch_write(out, req, &m), IMAP_FETCH_WRITE_NO_DATA);
	assert_int_equal(evbuffer_get_length(out), 0);
	evbuffer_free(out);
	imap_fetch_request_free(&req);
	imap_fetch_raw_unref(&raw);
}

static void test_raw_shared_by_reference(void **state)
{
	(void)state;
	struct imap_fetch_raw *raw = whole_raw();
	struct imap_fetch_request *req = parse("(BODY.PEEK[] BODY.PEEK[1])", false);
	struct evbuffer *out = evbuffer_new();
	struct imap_fetch_msg m = { .seq = 1, .meta = &meta, .raw = raw };
	assert_int_equal(imap_fetch_write(out, req, &m), 0);
	/* two literals point into the raw bytes: no copy was made */
	assert_int_equal(raw->refs, 3);
	struct evbuffer_ptr pos = evbuffer_search(out, "hello world", 11, NULL);
	assert_true(pos.pos > 0);
	imap_fetch_raw_unref(&raw);   /* the buffer keeps it alive */
	evbuffer_drain(out, evbuffer_get_length(out) / 2);
	evbuffer_free(out);           /* frees it (valgrind checks) */
	imap_fetch_request_free(&req);
}

int main(void)
{
	mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_objectid_savedate),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_implicit_flags),
		cmocka_unit_test(test_needs_and_range),
		cmocka_unit_test(test_raw_shared_by_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
