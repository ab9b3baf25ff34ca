/* Unit tests for the LMTP command/body parser (src/proto/lmtp/parser.c):
 * byte-by-byte drips, pipelining, MAIL/RCPT grammar, error recovery and
 * limits, DATA unstuffing and BDAT chunks, and split invariance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/lmtp/parser.h"

#define LINE_MAX_TEST 128
#define BODY_MAX_TEST 64

static struct lmtp_parser *new_parser(size_t line_max, uint64_t body_max)
{
	struct lmtp_parser_limits lim = { .max_line_length = line_max,
					  .max_message_size = body_max };
	struct lmtp_parser *p = lmtp_parser_new(&lim);
	assert_non_null(p);
	return p;
}

static int setup(void **state)
{
	*state = new_parser(LINE_MAX_TEST, BODY_MAX_TEST);
	return 0;
}

static int teardown(void **state)
{
	struct lmtp_parser *p = *state;
	lmtp_parser_free(&p);
	assert_null(p);
	return 0;
}

/* Feeds a whole string once; the verdict must use the bytes it claims. */
static enum tern_parse feed_str(struct lmtp_parser *p, const char *s, size_t *consumed_r,
				struct lmtp_cmd **cmd_r, const char **err_r)
{
	size_t consumed = 9999;
	enum tern_parse r = lmtp_parser_feed(p, (const uint8_t *)s, strlen(s), &consumed,
					     cmd_r, err_r);
	if (r != TERN_PARSE_ERROR_FATAL)
		assert_true(consumed <= strlen(s));
	if (consumed_r != NULL)
		*consumed_r = consumed;
	return r;
}

/* Parses one complete command line in one feed and expects OK. */
static struct lmtp_cmd *parse_ok(struct lmtp_parser *p, const char *line)
{
	struct lmtp_cmd *cmd = NULL;
	const char *err = NULL;
	size_t consumed;

	assert_int_equal(feed_str(p, line, &consumed, &cmd, &err), TERN_PARSE_OK);
	assert_int_equal(consumed, strlen(line));
	assert_null(err);
	assert_non_null(cmd);
	return cmd;
}

/* Parses one line in one feed and expects a RECOVERABLE error; returns it. */
static const char *parse_bad(struct lmtp_parser *p, const char *line)
{
	struct lmtp_cmd *cmd = NULL;
	const char *err = NULL;
	size_t consumed;

	assert_int_equal(feed_str(p, line, &consumed, &cmd, &err),
			 TERN_PARSE_ERROR_RECOVERABLE);
	assert_int_equal(consumed, strlen(line));
	assert_null(cmd);
	assert_non_null(err);
	return err;
}

static void expect_bad(struct lmtp_parser *p, const char *line, const char *prefix)
{
	const char *err = parse_bad(p, line);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("%s -> \"%s\", expected \"%s...\"", line, err, prefix);
}

/* Feeds one byte per call: NEED_MORE until the LF, then the final verdict. */
static enum tern_parse drip(struct lmtp_parser *p, const char *s, struct lmtp_cmd **cmd_r,
			    const char **err_r)
{
	size_t n = strlen(s);

	for (size_t i = 0; i + 1 < n; i++) {
		size_t consumed = 0;
		enum tern_parse r = lmtp_parser_feed(p, (const uint8_t *)s + i, 1, &consumed,
						     cmd_r, err_r);
		assert_int_equal(r, TERN_PARSE_NEED_MORE);
		assert_int_equal(consumed, 1);
	}
	size_t consumed = 0;
	enum tern_parse r = lmtp_parser_feed(p, (const uint8_t *)s + n - 1, 1, &consumed,
					     cmd_r, err_r);
	assert_int_equal(consumed, 1);
	return r;
}

static void test_drip_each_command(void **state)
{
	struct lmtp_parser *p = *state;
	static const struct {
		const char *line;
		enum lmtp_cmd_type type;
		const char *arg;
	} cases[] = {
		{ "LHLO mx.example.org\r\n", LMTP_CMD_LHLO, "mx.example.org" },
		{ "lhlo [192.0.2.1]\r\n", LMTP_CMD_LHLO, "[192.0.2.1]" },
		{ "HELO a\r\n", LMTP_CMD_HELO, "a" },
		{ "EHLO a\r\n", LMTP_CMD_EHLO, "a" },
		{ "MAIL FROM:<a@b.c>\r\n", LMTP_CMD_MAIL, "a@b.c" },
		{ "mail from:<a@b.c>\n", LMTP_CMD_MAIL, "a@b.c" },
		{ "RCPT TO:<user@example.org>\r\n", LMTP_CMD_RCPT, "user@example.org" },
		{ "RcPt To:<postmaster>\r\n", LMTP_CMD_RCPT, "postmaster" },
		{ "DATA\r\n", LMTP_CMD_DATA, NULL },
		{ "BDAT 10\r\n", LMTP_CMD_BDAT, NULL },
		{ "RSET\r\n", LMTP_CMD_RSET, NULL },
		{ "NOOP\r\n", LMTP_CMD_NOOP, NULL },
		{ "NOOP ignored text\r\n", LMTP_CMD_NOOP, NULL },
		{ "QUIT\r\n", LMTP_CMD_QUIT, NULL },
		{ "quit\n", LMTP_CMD_QUIT, NULL },
		{ "VRFY someone\r\n", LMTP_CMD_VRFY, "someone" },
		{ "HELP\r\n", LMTP_CMD_HELP, NULL },
		{ "HELP MAIL\r\n", LMTP_CMD_HELP, "MAIL" },
		{ "StartTLS\r\n", LMTP_CMD_STARTTLS, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int pass = 0; pass < 2; pass++) {
			struct lmtp_cmd *cmd = NULL;
			const char *err = NULL;
			if (pass == 0)
				assert_int_equal(drip(p, cases[i].line, &cmd, &err), TERN_PARSE_OK);
			else
				cmd = parse_ok(p, cases[i].line);
			assert_non_null(cmd);
			assert_null(err);
			assert_int_equal(cmd->type, cases[i].type);
			if (cases[i].arg == NULL)
				assert_null(cmd->arg);
			else
				assert_string_equal(cmd->arg, cases[i].arg);
			lmtp_cmd_free(&cmd);
			assert_null(cmd);
		}
	}
}

static void test_drip_error_then_ok(void **state)
{
	struct lmtp_parser *p = *state;
	struct lmtp_cmd *cmd = NULL;
	const char *err = NULL;

	assert_int_equal(drip(p, "FROB x\r\n", &cmd, &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_null(cmd);
	assert_string_equal(err, "500 5.5.1 Unknown command");
	cmd = parse_ok(p, "NOOP\r\n");
	assert_int_equal(cmd->type, LMTP_CMD_NOOP);
	lmtp_cmd_free(&cmd);
}

static void test_pipelined(void **state)
{
	struct lmtp_parser *p = *state;
	const char *buf = "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\nDATA\r\nNOO";
	static const enum lmtp_cmd_type want[] = {
		LMTP_CMD_LHLO, LMTP_CMD_MAIL, LMTP_CMD_RCPT, LMTP_CMD_RCPT, LMTP_CMD_DATA,
	};
	size_t off = 0, len = strlen(buf);

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct lmtp_cmd *cmd = NULL;
		const char *err = NULL;
		size_t consumed = 0;
		assert_int_equal(lmtp_parser_feed(p, (const uint8_t *)buf + off, len - off,
						  &consumed, &cmd, &err), TERN_PARSE_OK);
		const char *lf = memchr(buf + off, '\n', len - off);
		assert_int_equal(consumed, (size_t)(lf - (buf + off)) + 1);
		assert_int_equal(cmd->type, want[i]);
		lmtp_cmd_free(&cmd);
		off += consumed;
	}
	struct lmtp_cmd *cmd = NULL;
	const char *err = NULL;
	size_t consumed = 0;
	assert_int_equal(lmtp_parser_feed(p, (const uint8_t *)buf + off, len - off, &consumed,
					  &cmd, &err), TERN_PARSE_NEED_MORE);
	assert_int_equal(consumed, 3);
	cmd = parse_ok(p, "P\r\n");
	assert_int_equal(cmd->type, LMTP_CMD_NOOP);
	lmtp_cmd_free(&cmd);
}

static void test_mail_params(void **state)
{
	struct lmtp_parser *p = *state;
	struct lmtp_cmd *cmd;

	cmd = parse_ok(p, "MAIL FROM:<a@b> SIZE=12345 BODY=8BITMIME\r\n");
	assert_string_equal(cmd->arg, "a@b");
	assert_int_equal(cmd->size_param, 12345);
	assert_true(cmd->body_8bitmime);
	assert_false(cmd->body_binarymime);
	lmtp_cmd_free(&cmd);

	cmd = parse_ok(p, "MAIL FROM:<a@b> body=binarymime size=0\r\n");
	assert_true(cmd->body_binarymime);
	assert_false(cmd->body_8bitmime);
	assert_int_equal(cmd->size_param, 0);
	lmtp_cmd_free(&cmd);

	cmd = parse_ok(p, "MAIL FROM:<a@b>  BODY=7BIT  \r\n");
	assert_false(cmd->body_8bitmime);
	assert_false(cmd->body_binarymime);
	lmtp_cmd_free(&cmd);

	/* 20 digits is legal (RFC 1870) even past 2^64: saturate, the session
	 * refuses it as too big. */
	cmd = parse_ok(p, "MAIL FROM:<a@b> SIZE=99999999999999999999\r\n");
	assert_true(cmd->size_param == UINT64_MAX);
	lmtp_cmd_free(&cmd);
	cmd = parse_ok(p, "MAIL FROM:<a@b> SIZE=18446744073709551615\r\n");
	assert_true(cmd->size_param == UINT64_MAX);
	lmtp_cmd_free(&cmd);

	expect_bad(p, "MAIL FROM:<a@b> SIZE=123456789012345678901\r\n", "501 5.5.4");
	expect_bad(p, "MAIL FROM:<a@b> SIZE=\r\n", "501 5.5.4 Invalid SIZE");
	expect_bad(p, "MAIL FROM:<a@b> SIZE\r\n", "501 5.5.4 Invalid SIZE");
	expect_bad(p, "MAIL FROM:<a@b> SIZE=12a\r\n", "501 5.5.4 Invalid SIZE");
	expect_bad(p, "MAIL FROM:<a@b> SIZE=-1\r\n", "501 5.5.4 Invalid SIZE");
	expect_bad(p, "MAIL FROM:<a@b> BODY=9BIT\r\n", "501 5.5.4 Invalid BODY");
	expect_bad(p, "MAIL FROM:<a@b> BODY\r\n", "501 5.5.4 Invalid BODY");
	expect_bad(p, "MAIL FROM:<a@b> SIZE=1 SIZE=2\r\n", "501 5.5.4 Duplicate");
	expect_bad(p, "MAIL FROM:<a@b> AUTH=<>\r\n", "555 5.5.4");
	expect_bad(p, "MAIL FROM:<a@b> SMTPUTF8\r\n", "555 5.5.4");
	expect_bad(p, "RCPT TO:<a@b> NOTIFY=NEVER\r\n", "555 5.5.4");
}

static void test_paths(void **state)
{
	struct lmtp_parser *p = *state;
	struct lmtp_cmd *cmd;

	cmd = parse_ok(p, "MAIL FROM:<>\r\n");
	assert_string_equal(cmd->arg, "");
	lmtp_cmd_free(&cmd);
	cmd = parse_ok(p, "MAIL FROM:<> SIZE=10\r\n");
	assert_string_equal(cmd->arg, "");
	assert_int_equal(cmd->size_param, 10);
	lmtp_cmd_free(&cmd);
	cmd = parse_ok(p, "MAIL FROM: <a@b>\r\n");
	assert_string_equal(cmd->arg, "a@b");
	lmtp_cmd_free(&cmd);
	cmd = parse_ok(p, "RCPT TO: <a@b>\r\n");
	assert_string_equal(cmd->arg, "a@b");
	lmtp_cmd_free(&cmd);
	cmd = parse_ok(p, "RCPT TO:<@relay.example,@r2.example:u@example.org>\r\n");
	assert_string_equal(cmd->arg, "u@example.org");
	lmtp_cmd_free(&cmd);
	cmd = parse_ok(p, "RCPT TO:<\"odd >user\"@example.org>\r\n");
	assert_string_equal(cmd->arg, "\"odd >user\"@example.org");
	lmtp_cmd_free(&cmd);
	cmd = parse_ok(p, "RCPT TO:<\"q\\\"x\"@e>\r\n");
	assert_string_equal(cmd->arg, "\"q\\\"x\"@e");
	lmtp_cmd_free(&cmd);
}

static void test_malformed_mail_rcpt(void **state)
{
	struct lmtp_parser *p = *state;
	static const char *mail_bad[] = {
		"MAIL\r\n", "MAIL FROM\r\n", "MAIL FROM:\r\n", "MAIL FROM:a@b\r\n",
		"MAIL FROM:<a@b\r\n", "MAIL TO:<a@b>\r\n", "MAIL FROM <a@b>\r\n",
		"MAIL FROM:<a b@c>\r\n", "MAIL FROM:<a@b>x\r\n", "MAIL FROM:<<a@b>>\r\n",
		"MAIL FROM:<\"unterminated@b>\r\n", "MAIL FROM:<@route>\r\n",
		"MAIL FROM:<@route:>\r\n",
	};
	static const char *rcpt_bad[] = {
		"RCPT\r\n", "RCPT TO:\r\n", "RCPT TO:<>\r\n", "RCPT TO:user@b\r\n",
		"RCPT FROM:<a@b>\r\n", "RCPT TO:<a@b\r\n",
	};

	for (size_t i = 0; i < sizeof(mail_bad) / sizeof(mail_bad[0]); i++)
		expect_bad(p, mail_bad[i], "501 5.5.4 Syntax: MAIL FROM:<address>");
	expect_bad(p, "MAILFROM:<a@b>\r\n", "500 5.5.1");
	for (size_t i = 0; i < sizeof(rcpt_bad) / sizeof(rcpt_bad[0]); i++)
		expect_bad(p, rcpt_bad[i], "501 5.5.4 Syntax: RCPT TO:<address>");
	expect_bad(p, "RCPT TO:<a@b> x=\r\n", "555 5.5.4");
}

static void test_other_syntax(void **state)
{
	struct lmtp_parser *p = *state;
	struct lmtp_cmd *cmd;

	expect_bad(p, "DATA now\r\n", "501 5.5.4 Syntax: DATA");
	expect_bad(p, "RSET x\r\n", "501 5.5.4 Syntax: RSET");
	expect_bad(p, "QUIT x\r\n", "501 5.5.4 Syntax: QUIT");
	expect_bad(p, "STARTTLS x\r\n", "501");
	expect_bad(p, "LHLO\r\n", "501 5.5.4 Syntax: LHLO");
	expect_bad(p, "LHLO   \r\n", "501 5.5.4 Syntax: LHLO");
	expect_bad(p, "LHLO a b\r\n", "501 5.5.4 Syntax: LHLO");
	expect_bad(p, "VRFY\r\n", "501");
	expect_bad(p, "\r\n", "500 5.5.2");
	expect_bad(p, "\n", "500 5.5.2");
	expect_bad(p, " DATA\r\n", "500 5.5.1");
	expect_bad(p, "DAT\r\n", "500 5.5.1");
	expect_bad(p, "DATAX\r\n", "500 5.5.1");
	/* Trailing spaces are tolerated. */
	cmd = parse_ok(p, "DATA  \r\n");
	assert_int_equal(cmd->type, LMTP_CMD_DATA);
	lmtp_cmd_free(&cmd);
	cmd = parse_ok(p, "LHLO   host  \r\n");
	assert_string_equal(cmd->arg, "host");
	lmtp_cmd_free(&cmd);
}

static void test_control_chars(void **state)
{
	struct lmtp_parser *p = *state;
	static const char nul_line[] = "NOOP\0x\r\n";
	struct lmtp_cmd *cmd = NULL;
	const char *err = NULL;
	size_t consumed = 0;

	assert_int_equal(lmtp_parser_feed(p, (const uint8_t *)nul_line, sizeof(nul_line) - 1,
					  &consumed, &cmd, &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_int_equal(consumed, sizeof(nul_line) - 1);
	assert_string_equal(err, "500 5.5.2 Invalid characters in command");
	expect_bad(p, "MAIL FROM:<a\x01@b>\r\n", "500 5.5.2");
	expect_bad(p, "RCPT TO:<\xc3\xa9@b>\r\n", "500 5.5.2");
	expect_bad(p, "NOOP\x7f\r\n", "500 5.5.2");
	expect_bad(p, "NO\rOP\r\n", "500 5.5.2");
	expect_bad(p, "NOOP\tx\r\n", "500 5.5.2");
	cmd = parse_ok(p, "NOOP\r\n");
	lmtp_cmd_free(&cmd);
}

static void test_unknown_then_recovery(void **state)
{
	struct lmtp_parser *p = *state;
	const char *buf = "XYZZY plugh\r\nGET / HTTP/1.0\r\nMAIL FROM:<a@b>\r\n";
	size_t off = 0, consumed;
	struct lmtp_cmd *cmd = NULL;
	const char *err = NULL;

	for (int i = 0; i < 2; i++) {
		assert_int_equal(feed_str(p, buf + off, &consumed, &cmd, &err),
				 TERN_PARSE_ERROR_RECOVERABLE);
		assert_string_equal(err, "500 5.5.1 Unknown command");
		assert_null(cmd);
		off += consumed;
	}
	assert_int_equal(feed_str(p, buf + off, &consumed, &cmd, &err), TERN_PARSE_OK);
	assert_int_equal(off + consumed, strlen(buf));
	assert_int_equal(cmd->type, LMTP_CMD_MAIL);
	lmtp_cmd_free(&cmd);
}

static void test_long_line(void **state)
{
	(void)state;
	char line[64];
	struct lmtp_cmd *cmd = NULL;
	const char *err = NULL;
	size_t consumed;

	/* Exactly max_line_length with CRLF is fine. */
	struct lmtp_parser *p = new_parser(16, 100);
	cmd = parse_ok(p, "VRFY 012345678\r\n");
	assert_int_equal(strlen("VRFY 012345678\r\n"), 16);
	lmtp_cmd_free(&cmd);
	/* One more is fatal, also when dripped, before the LF arrives. */
	assert_int_equal(feed_str(p, "VRFY 0123456789\r\n", &consumed, &cmd, &err),
			 TERN_PARSE_ERROR_FATAL);
	assert_string_equal(err, "421 4.7.0 Line too long, closing connection");
	/* The parser stays failed. */
	err = NULL;
	assert_int_equal(feed_str(p, "NOOP\r\n", &consumed, &cmd, &err),
			 TERN_PARSE_ERROR_FATAL);
	assert_non_null(err);
	assert_null(cmd);
	lmtp_parser_free(&p);

	p = new_parser(16, 100);
	memset(line, 'A', sizeof(line));
	enum tern_parse r = TERN_PARSE_NEED_MORE;
	size_t i;
	for (i = 0; i < sizeof(line) && r == TERN_PARSE_NEED_MORE; i++)
		r = lmtp_parser_feed(p, (const uint8_t *)line + i, 1, &consumed, &cmd, &err);
	assert_int_equal(r, TERN_PARSE_ERROR_FATAL);
	assert_int_equal(i, 16);   /* the 16th byte can no longer be followed by LF */
	lmtp_parser_free(&p);

	/* A split line is held to the same limit. */
	p = new_parser(16, 100);
	assert_int_equal(feed_str(p, "VRFY 0123", &consumed, &cmd, &err), TERN_PARSE_NEED_MORE);
	assert_int_equal(feed_str(p, "45678\r\n", &consumed, &cmd, &err), TERN_PARSE_OK);
	lmtp_cmd_free(&cmd);
	assert_int_equal(feed_str(p, "VRFY 0123", &consumed, &cmd, &err), TERN_PARSE_NEED_MORE);
	assert_int_equal(feed_str(p, "456789\r\n", &consumed, &cmd, &err),
			 TERN_PARSE_ERROR_FATAL);
	lmtp_parser_free(&p);
}

/* Runs DATA: feeds the command, begins the body, feeds the body string in
 * pieces of `step` bytes (0 = all at once) and returns the body taken. */
static char *run_data(struct lmtp_parser *p, const char *body, size_t step, size_t *len_r,
		      bool *too_big_r, size_t *rest_r)
{
	struct lmtp_cmd *cmd = parse_ok(p, "DATA\r\n");
	assert_int_equal(cmd->type, LMTP_CMD_DATA);
	lmtp_cmd_free(&cmd);
	lmtp_parser_begin_data(p);
	assert_int_equal(lmtp_parser_mode(p), LMTP_MODE_DATA);

	size_t len = strlen(body), off = 0;
	enum tern_parse r = TERN_PARSE_NEED_MORE;
	while (off < len) {
		size_t n = step == 0 || step > len - off ? len - off : step;
		size_t consumed = 0;
		const char *err = NULL;
		r = lmtp_parser_feed(p, (const uint8_t *)body + off, n, &consumed, &cmd, &err);
		off += consumed;
		if (r == TERN_PARSE_OK)
			break;
		assert_int_equal(r, TERN_PARSE_NEED_MORE);
		assert_int_equal(consumed, n);
	}
	assert_int_equal(r, TERN_PARSE_OK);
	assert_int_equal(lmtp_parser_mode(p), LMTP_MODE_COMMAND);
	*rest_r = len - off;
	*too_big_r = lmtp_parser_body_too_big(p);
	return lmtp_parser_take_body(p, len_r);
}

static void expect_body(struct lmtp_parser *p, const char *wire, const char *want)
{
	for (size_t step = 0; step <= strlen(wire); step++) {
		size_t len, rest;
		bool too_big;
		char *b = run_data(p, wire, step, &len, &too_big, &rest);
		assert_false(too_big);
		assert_int_equal(rest, 0);
		assert_non_null(b);
		if (len != strlen(want) || memcmp(b, want, len) != 0)
			fail_msg("step %zu: got \"%.*s\", want \"%s\"", step, (int)len, b, want);
		assert_int_equal(b[len], '\0');
		free(b);
		assert_false(lmtp_parser_body_too_big(p));
	}
}

static void test_data_bodies(void **state)
{
	struct lmtp_parser *p = *state;

	expect_body(p, "Subject: x\r\n\r\nhello\r\n.\r\n", "Subject: x\r\n\r\nhello\r\n");
	expect_body(p, ".\r\n", "");
	/* Only CRLF "." CRLF ends DATA: a dot line after or before a bare LF is
	 * content (no SMTP smuggling). */
	expect_body(p, ".\n.\r\n.\r\n", "\r\n\r\n");
	expect_body(p, "a\n.\nb\r\n.\r\n", "a\r\n\r\nb\r\n");
	expect_body(p, "a\r\n.\nMAIL FROM:<x>\r\n.\r\n", "a\r\n\r\nMAIL FROM:<x>\r\n");
	expect_body(p, "a\n.\r\nRSET\r\n.\r\n", "a\r\n\r\nRSET\r\n");
	/* Dot-stuffing: any leading dot is removed (RFC 5321 §4.5.2). */
	expect_body(p, "..\r\n..x\r\n.y\r\n...\r\n.\r\n", ".\r\n.x\r\ny\r\n..\r\n");
	/* Bare LF becomes CRLF. */
	expect_body(p, "a\nb\r\n\r\n.\r\n", "a\r\nb\r\n\r\n");
	expect_body(p, "a\n..b\r\n.\r\n", "a\r\n.b\r\n");
	/* Dots not at line start and lone CRs are content. */
	expect_body(p, "a.b\r\n x.\r\n.\r\r\n.\r\n", "a.b\r\n x.\r\n\r\r\n");
	expect_body(p, "a\rb\r\n.\rx\r\n.\r\n", "a\rb\r\n\rx\r\n");
}

static void test_data_terminator_split(void **state)
{
	struct lmtp_parser *p = *state;
	const char *wire = "line one\r\n.. dotted\r\nlast\r\n.\r\nQUIT\r\n";
	const char *want = "line one\r\n. dotted\r\nlast\r\n";

	/* Every two-way split, including through "\r\n.\r\n". */
	for (size_t cut = 0; cut <= strlen(wire); cut++) {
		struct lmtp_cmd *cmd = parse_ok(p, "DATA\r\n");
		lmtp_cmd_free(&cmd);
		lmtp_parser_begin_data(p);
		size_t consumed = 0, off = 0;
		const char *err = NULL;
		enum tern_parse r = lmtp_parser_feed(p, (const uint8_t *)wire, cut, &consumed,
						     &cmd, &err);
		off = consumed;
		if (r == TERN_PARSE_NEED_MORE) {
			assert_int_equal(consumed, cut);
			r = lmtp_parser_feed(p, (const uint8_t *)wire + off, strlen(wire) - off,
					     &consumed, &cmd, &err);
			off += consumed;
		}
		assert_int_equal(r, TERN_PARSE_OK);
		assert_string_equal(wire + off, "QUIT\r\n");
		size_t len;
		char *b = lmtp_parser_take_body(p, &len);
		assert_int_equal(len, strlen(want));
		assert_memory_equal(b, want, len);
		free(b);
		cmd = parse_ok(p, wire + off);
		assert_int_equal(cmd->type, LMTP_CMD_QUIT);
		lmtp_cmd_free(&cmd);
	}
}

static void test_data_too_big(void **state)
{
	(void)state;
	struct lmtp_parser *p = new_parser(LINE_MAX_TEST, 10);
	size_t len, rest;
	bool too_big;

	/* Exactly the limit (with the CRLF conversion counted) fits. */
	char *b = run_data(p, "12345678\r\n.\r\n", 0, &len, &too_big, &rest);
	assert_false(too_big);
	assert_int_equal(len, 10);
	free(b);
	for (size_t step = 0; step < 8; step++) {
		b = run_data(p, "123456789\r\nmore\r\n..\r\n.\r\nNOOP\r\n", step, &len,
			     &too_big, &rest);
		assert_true(too_big);
		assert_null(b);
		assert_int_equal(len, 0);
		assert_int_equal(rest, strlen("NOOP\r\n"));
		assert_false(lmtp_parser_body_too_big(p));   /* take resets it */
		struct lmtp_cmd *cmd = parse_ok(p, "NOOP\r\n");
		lmtp_cmd_free(&cmd);
	}
	/* The next message is fine again. */
	b = run_data(p, "ok\r\n.\r\n", 0, &len, &too_big, &rest);
	assert_false(too_big);
	assert_string_equal(b, "ok\r\n");
	free(b);
	lmtp_parser_free(&p);
}

static void test_data_large_body(void **state)
{
	(void)state;
	/* Many lines through the run-copying path and buffer growth. */
	const size_t lines = 20000;
	struct lmtp_parser *p = new_parser(LINE_MAX_TEST, 10 * 1024 * 1024);
	size_t wire_len = lines * 40 + 3;
	char *wire = malloc(wire_len + 1), *want = malloc(wire_len + 1);
	size_t w = 0, k = 0;
	assert_non_null(wire);
	assert_non_null(want);
	for (size_t i = 0; i < lines; i++) {
		const char *l = i % 7 == 0 ? "..starts with a dot, then 33 bytes\r\n"
					   : "an ordinary line of text, 38 bytes!\r\n";
		size_t n = strlen(l);
		memcpy(wire + w, l, n);
		w += n;
		memcpy(want + k, l + (l[0] == '.'), n - (l[0] == '.'));
		k += n - (l[0] == '.');
	}
	memcpy(wire + w, ".\r\n", 4);
	size_t len, rest;
	bool too_big;
	char *b = run_data(p, wire, 4096, &len, &too_big, &rest);
	assert_false(too_big);
	assert_int_equal(len, k);
	assert_memory_equal(b, want, k);
	free(b);
	free(wire);
	free(want);
	lmtp_parser_free(&p);
}

/* Feeds a BDAT chunk's bytes (in pieces of `step`) after BDAT was parsed. */
static void feed_chunk(struct lmtp_parser *p, const char *data, size_t len, size_t step)
{
	size_t off = 0;
	enum tern_parse r = TERN_PARSE_NEED_MORE;

	assert_int_equal(lmtp_parser_mode(p), LMTP_MODE_BDAT);
	while (r == TERN_PARSE_NEED_MORE) {
		size_t n = step == 0 || step > len - off ? len - off : step;
		size_t consumed = 0;
		struct lmtp_cmd *cmd = NULL;
		const char *err = NULL;
		r = lmtp_parser_feed(p, (const uint8_t *)data + off, n, &consumed, &cmd, &err);
		assert_null(cmd);
		off += consumed;
	}
	assert_int_equal(r, TERN_PARSE_OK);
	assert_int_equal(off, len);
	assert_int_equal(lmtp_parser_mode(p), LMTP_MODE_COMMAND);
}

static void test_bdat(void **state)
{
	struct lmtp_parser *p = *state;
	const char chunk1[] = "Subject: t\r\n\r\n.\r\n";   /* a literal CRLF.CRLF */
	const char chunk2[] = "..raw\nend";

	for (size_t step = 0; step < 4; step++) {
		struct lmtp_cmd *cmd = parse_ok(p, "BDAT 17\r\n");
		assert_int_equal(cmd->bdat_size, 17);
		assert_false(cmd->bdat_last);
		lmtp_parser_begin_bdat(p, cmd->bdat_size);
		lmtp_cmd_free(&cmd);
		feed_chunk(p, chunk1, sizeof(chunk1) - 1, step);

		cmd = parse_ok(p, "bdat 9 last\r\n");
		assert_int_equal(cmd->bdat_size, 9);
		assert_true(cmd->bdat_last);
		lmtp_parser_begin_bdat(p, cmd->bdat_size);
		lmtp_cmd_free(&cmd);
		feed_chunk(p, chunk2, sizeof(chunk2) - 1, step);

		size_t len;
		char *b = lmtp_parser_take_body(p, &len);
		assert_int_equal(len, 26);
		assert_memory_equal(b, "Subject: t\r\n\r\n.\r\n..raw\nend", 26);
		free(b);
	}

	/* A zero-size LAST chunk completes without any input. */
	struct lmtp_cmd *cmd = parse_ok(p, "BDAT 0 LAST\r\n");
	lmtp_parser_begin_bdat(p, 0);
	lmtp_cmd_free(&cmd);
	size_t consumed = 7;
	const char *err = NULL;
	assert_int_equal(lmtp_parser_feed(p, NULL, 0, &consumed, &cmd, &err), TERN_PARSE_OK);
	assert_int_equal(consumed, 0);
	size_t len = 1;
	char *b = lmtp_parser_take_body(p, &len);
	assert_non_null(b);
	assert_int_equal(len, 0);
	free(b);

	/* A chunk followed by a pipelined command in the same feed. */
	cmd = parse_ok(p, "BDAT 3 LAST\r\n");
	lmtp_parser_begin_bdat(p, 3);
	lmtp_cmd_free(&cmd);
	assert_int_equal(feed_str(p, "abcQUIT\r\n", &consumed, &cmd, &err), TERN_PARSE_OK);
	assert_int_equal(consumed, 3);
	lmtp_parser_discard_body(p);
	cmd = parse_ok(p, "QUIT\r\n");
	lmtp_cmd_free(&cmd);
}

static void test_bdat_syntax_and_size(void **state)
{
	struct lmtp_parser *p = *state;

	struct lmtp_cmd *cmd = parse_ok(p, "BDAT 9223372036854775808\r\n");
	assert_true(cmd->bdat_size == (UINT64_C(1) << 63));
	lmtp_cmd_free(&cmd);
	expect_bad(p, "BDAT 9223372036854775809\r\n", "501 5.5.4 Syntax: BDAT");
	expect_bad(p, "BDAT 99999999999999999999999\r\n", "501");
	expect_bad(p, "BDAT\r\n", "501");
	expect_bad(p, "BDAT x\r\n", "501");
	expect_bad(p, "BDAT -1\r\n", "501");
	expect_bad(p, "BDAT 10 FIRST\r\n", "501");
	expect_bad(p, "BDAT 10 LAST x\r\n", "501");

	/* Over the size limit: read and dropped, flagged after LAST. */
	struct lmtp_parser *q = new_parser(LINE_MAX_TEST, 10);
	cmd = parse_ok(q, "BDAT 8\r\n");
	lmtp_parser_begin_bdat(q, 8);
	lmtp_cmd_free(&cmd);
	feed_chunk(q, "12345678", 8, 3);
	assert_false(lmtp_parser_body_too_big(q));
	cmd = parse_ok(q, "BDAT 8 LAST\r\n");
	lmtp_parser_begin_bdat(q, 8);
	lmtp_cmd_free(&cmd);
	feed_chunk(q, "\r\n.\r\nABC", 8, 1);
	assert_true(lmtp_parser_body_too_big(q));
	size_t len = 5;
	assert_null(lmtp_parser_take_body(q, &len));
	assert_int_equal(len, 0);
	assert_false(lmtp_parser_body_too_big(q));
	lmtp_parser_free(&q);
}

/* Runs a whole session over `wire` split at `cut` (and fed as given) and
 * returns a transcript of every verdict, command and body. */
static char *transcript(const char *wire, size_t wire_len, size_t cut, size_t step)
{
	struct lmtp_parser *p = new_parser(48, 32);
	size_t cap = 8192, n = 0, off = 0;
	bool last = true;   /* the current body ends with this chunk */
	char *out = calloc(1, cap);
	assert_non_null(out);

	while (off < wire_len) {
		size_t end = off < cut ? cut : wire_len;
		size_t piece = end - off;
		if (step != 0 && piece > step)
			piece = step;
		struct lmtp_cmd *cmd = NULL;
		const char *err = NULL;
		size_t consumed = 0;
		bool in_data = lmtp_parser_mode(p) != LMTP_MODE_COMMAND;
		enum tern_parse r = lmtp_parser_feed(p, (const uint8_t *)wire + off, piece,
						     &consumed, &cmd, &err);
		off += consumed;
		if (r == TERN_PARSE_NEED_MORE)
			continue;
		if (r == TERN_PARSE_ERROR_FATAL) {
			n += (size_t)snprintf(out + n, cap - n, "FATAL %s\n", err);
			break;
		}
		if (r == TERN_PARSE_ERROR_RECOVERABLE) {
			n += (size_t)snprintf(out + n, cap - n, "ERR %s\n", err);
		} else if (in_data && !last) {
			n += (size_t)snprintf(out + n, cap - n, "CHUNK\n");
		} else if (in_data) {
			size_t len;
			bool big = lmtp_parser_body_too_big(p);
			char *b = lmtp_parser_take_body(p, &len);
			n += (size_t)snprintf(out + n, cap - n, "BODY %d [%.*s]\n", big, (int)len,
					      b != NULL ? b : "");
			free(b);
		} else {
			n += (size_t)snprintf(out + n, cap - n, "CMD %d %s %llu %d %d %llu %d\n",
					      cmd->type, cmd->arg ? cmd->arg : "-",
					      (unsigned long long)cmd->size_param,
					      cmd->body_8bitmime, cmd->body_binarymime,
					      (unsigned long long)cmd->bdat_size, cmd->bdat_last);
			last = cmd->type != LMTP_CMD_BDAT || cmd->bdat_last;
			if (cmd->type == LMTP_CMD_DATA)
				lmtp_parser_begin_data(p);
			else if (cmd->type == LMTP_CMD_BDAT)
				lmtp_parser_begin_bdat(p, cmd->bdat_size);
			lmtp_cmd_free(&cmd);
		}
		assert_true(n < cap);
	}
	lmtp_parser_free(&p);
	return out;
}

static void test_split_invariance(void **state)
{
	(void)state;
	static const char wire[] =
		"LHLO client.example\r\nMAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<a@b>\r\n"
		"BOGUS\r\nRCPT TO:<x y>\r\nDATA\r\n..dot\r\nbare\nlf\r\n.\r\n"
		"BDAT 5\r\n\r\n.\r\nBDAT 2 LAST\r\nxyNOOP\0\r\nMAIL FROM:<a@b> SIZE=7\n"
		"DATA\r\n0123456789012345678901234567890123456789\r\n.\r\n"
		"VRFY 0123456789012345678901234567890123456789012345\r\n";
	char *ref = transcript(wire, sizeof(wire) - 1, 0, 0);

	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "%s", ref);

	assert_non_null(strstr(ref, "BODY 0 [.dot\r\nbare\r\nlf\r\n]"));
	assert_non_null(strstr(ref, "BODY 0 [\r\n.\r\nxy]"));
	assert_non_null(strstr(ref, "BODY 1 []"));
	assert_non_null(strstr(ref, "FATAL 421"));
	for (size_t cut = 1; cut < sizeof(wire) - 1; cut++) {
		char *t = transcript(wire, sizeof(wire) - 1, cut, 0);
		assert_string_equal(t, ref);
		free(t);
	}
	for (size_t step = 1; step < 9; step++) {
		char *t = transcript(wire, sizeof(wire) - 1, 0, step);
		assert_string_equal(t, ref);
		free(t);
	}
	free(ref);
}

static void test_new_rejects_zero_line(void **state)
{
	(void)state;
	struct lmtp_parser_limits lim = { .max_line_length = 0, .max_message_size = 10 };
	assert_null(lmtp_parser_new(&lim));
	struct lmtp_parser *p = NULL;
	lmtp_parser_free(&p);   /* NULL is fine */
	struct lmtp_cmd *cmd = NULL;
	lmtp_cmd_free(&cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_drip_each_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drip_error_then_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mail_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_mail_rcpt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_syntax, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_chars, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_then_recovery, setup, teardown),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test_setup_teardown(test_data_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_terminator_split, setup, teardown),
		cmocka_unit_test(test_data_too_big),
		cmocka_unit_test(test_data_large_body),
		cmocka_unit_test_setup_teardown(test_bdat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bdat_syntax_and_size, setup, teardown),
		cmocka_unit_test(test_split_invariance),
		cmocka_unit_test(test_new_rejects_zero_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
