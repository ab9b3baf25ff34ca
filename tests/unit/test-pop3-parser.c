/* POP3 command parser: keywords, arguments, arity, byte-by-byte feeding,
 * over-long lines, NUL bytes, SASL continuation lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/pop3/parser.h"

static struct pop3_parser *new_parser(size_t max_line)
{
	struct pop3_parser_limits lim = {.max_line_length = max_line};
	struct pop3_parser *p = pop3_parser_new(&lim);
	assert_non_null(p);
	return p;
}

/* Feeds a whole string at once; expects exactly one verdict using all of it. */
static enum tern_parse feed_all(struct pop3_parser *p, const char *s, struct pop3_cmd **cmd,
				const char **err)
{
	size_t consumed = 0;
	enum tern_parse r = pop3_parser_feed(p, (const uint8_t *)s, strlen(s), &consumed, cmd, err);
	assert_int_equal(consumed, strlen(s));
	return r;
}

static struct pop3_cmd *parse_ok(struct pop3_parser *p, const char *line)
{
	struct pop3_cmd *cmd = NULL;
	const char *err = NULL;
	assert_int_equal(feed_all(p, line, &cmd, &err), TERN_PARSE_OK);
	assert_non_null(cmd);
	assert_null(err);
	return cmd;
}

static const char *parse_err(struct pop3_parser *p, const char *line)
{
	struct pop3_cmd *cmd = NULL;
	const char *err = NULL;
	assert_int_equal(feed_all(p, line, &cmd, &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_null(cmd);
	assert_non_null(err);
	return err;
}

static void test_keywords_case_insensitive(void **state)
{
	(void)state;
	struct pop3_parser *p = new_parser(512);
	static const struct { const char *line; enum pop3_cmd_type type; size_t argc; } cases[] = {
		{"USER alice\r\n", POP3_CMD_USER, 1}, {"user alice\r\n", POP3_CMD_USER, 1},
		{"Pass secret\r\n", POP3_CMD_PASS, 1}, {"APOP a b\r\n", POP3_CMD_APOP, 2},
		{"AUTH\r\n", POP3_CMD_AUTH, 0}, {"AUTH PLAIN\r\n", POP3_CMD_AUTH, 1},
		{"auth plain AGEAYg==\r\n", POP3_CMD_AUTH, 2}, {"CAPA\r\n", POP3_CMD_CAPA, 0},
		{"stat\r\n", POP3_CMD_STAT, 0}, {"LIST\r\n", POP3_CMD_LIST, 0},
		{"LIST 3\r\n", POP3_CMD_LIST, 1}, {"UIDL\r\n", POP3_CMD_UIDL, 0},
		{"uidl 12\r\n", POP3_CMD_UIDL, 1}, {"RETR 1\r\n", POP3_CMD_RETR, 1},
		{"TOP 1 10\r\n", POP3_CMD_TOP, 2}, {"DELE 4\r\n", POP3_CMD_DELE, 1},
		{"RSET\r\n", POP3_CMD_RSET, 0}, {"NOOP\r\n", POP3_CMD_NOOP, 0},
		{"QUIT\r\n", POP3_CMD_QUIT, 0}, {"stls\r\n", POP3_CMD_STLS, 0},
		{"QUIT\n", POP3_CMD_QUIT, 0}, {"LIST  2 \r\n", POP3_CMD_LIST, 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pop3_cmd *cmd = parse_ok(p, cases[i].line);
		assert_int_equal(cmd->type, cases[i].type);
		assert_int_equal(cmd->argc, cases[i].argc);
		pop3_cmd_free(&cmd);
		assert_null(cmd);
	}
	pop3_parser_free(&p);
	assert_null(p);
}

static void test_arguments(void **state)
{
	(void)state;
	struct pop3_parser *p = new_parser(512);
	struct pop3_cmd *cmd = parse_ok(p, "TOP  7\t25\r\n");
	assert_string_equal(cmd->args[0], "7");
	assert_string_equal(cmd->args[1], "25");
	pop3_cmd_free(&cmd);
	/* RFC 1939 §7: the password is the rest of the line, spaces kept */
	cmd = parse_ok(p, "PASS correct horse  battery \r\n");
	assert_int_equal(cmd->argc, 1);
	assert_string_equal(cmd->args[0], "correct horse  battery ");
	pop3_cmd_free(&cmd);
	cmd = parse_ok(p, "USER alice@example.org\r\n");
	assert_string_equal(cmd->args[0], "alice@example.org");
	pop3_cmd_free(&cmd);
	pop3_parser_free(&p);
}

static void test_errors_and_arity(void **state)
{
	(void)state;
	struct pop3_parser *p = new_parser(512);
	assert_ptr_equal(parse_err(p, "FOO\r\n"), pop3_err_unknown);
	assert_ptr_equal(parse_err(p, "\r\n"), pop3_err_unknown);
	assert_ptr_equal(parse_err(p, " USER a\r\n"), pop3_err_unknown);
	assert_ptr_equal(parse_err(p, "USERS a\r\n"), pop3_err_unknown);
	assert_ptr_equal(parse_err(p, "USER\r\n"), pop3_err_args);
	assert_ptr_equal(parse_err(p, "USER a b\r\n"), pop3_err_args);
	assert_ptr_equal(parse_err(p, "PASS\r\n"), pop3_err_args);
	assert_ptr_equal(parse_err(p, "PASS \r\n"), pop3_err_args);
	assert_ptr_equal(parse_err(p, "STAT 1\r\n"), pop3_err_args);
	assert_ptr_equal(parse_err(p, "RETR\r\n"), pop3_err_args);
	assert_ptr_equal(parse_err(p, "TOP 1\r\n"), pop3_err_args);
	assert_ptr_equal(parse_err(p, "TOP 1 2 3\r\n"), pop3_err_args);
	assert_ptr_equal(parse_err(p, "AUTH PLAIN x y\r\n"), pop3_err_args);
	assert_string_equal(pop3_err_unknown, "-ERR Unknown command");
	/* still in step afterwards */
	struct pop3_cmd *cmd = parse_ok(p, "NOOP\r\n");
	assert_int_equal(cmd->type, POP3_CMD_NOOP);
	pop3_cmd_free(&cmd);
	pop3_parser_free(&p);
}

static void test_nul_byte(void **state)
{
	(void)state;
	struct pop3_parser *p = new_parser(512);
	static const uint8_t line[] = "USER a\0b\r\nNOOP\r\n";
	size_t consumed = 0;
	struct pop3_cmd *cmd = NULL;
	const char *err = NULL;
	assert_int_equal(pop3_parser_feed(p, line, sizeof(line) - 1, &consumed, &cmd, &err),
			 TERN_PARSE_ERROR_RECOVERABLE);
	assert_ptr_equal(err, pop3_err_nul);
	assert_int_equal(consumed, 10);
	assert_int_equal(pop3_parser_feed(p, line + consumed, sizeof(line) - 1 - consumed,
					  &consumed, &cmd, &err), TERN_PARSE_OK);
	assert_int_equal(cmd->type, POP3_CMD_NOOP);
	pop3_cmd_free(&cmd);
	pop3_parser_free(&p);
}

/* Drip the input one byte per call: NEED_MORE until the LF, then the same
 * command as in one feed. */
static void test_byte_by_byte(void **state)
{
	(void)state;
	struct pop3_parser *p = new_parser(512);
	const char *line = "TOP 12 3\r\n";
	size_t n = strlen(line);
	struct pop3_cmd *cmd = NULL;
	const char *err = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t consumed = 0;
		enum tern_parse r = pop3_parser_feed(p, (const uint8_t *)line + i, 1, &consumed,
						     &cmd, &err);
		assert_int_equal(consumed, 1);
		if (i + 1 < n) {
			assert_int_equal(r, TERN_PARSE_NEED_MORE);
			assert_null(cmd);
		} else {
			assert_int_equal(r, TERN_PARSE_OK);
		}
	}
	assert_non_null(cmd);
	assert_int_equal(cmd->type, POP3_CMD_TOP);
	assert_string_equal(cmd->args[0], "12");
	assert_string_equal(cmd->args[1], "3");
	pop3_cmd_free(&cmd);
	pop3_parser_free(&p);
}

/* Several pipelined commands in one buffer come out one at a time. */
static void test_pipelined(void **state)
{
	(void)state;
	struct pop3_parser *p = new_parser(512);
	const char *in = "USER a\r\nPASS b c\r\nSTAT\r\n";
	size_t len = strlen(in), off = 0;
	enum pop3_cmd_type want[] = {POP3_CMD_USER, POP3_CMD_PASS, POP3_CMD_STAT};
	for (size_t i = 0; i < 3; i++) {
		size_t consumed = 0;
		struct pop3_cmd *cmd = NULL;
		const char *err = NULL;
		assert_int_equal(pop3_parser_feed(p, (const uint8_t *)in + off, len - off, &consumed,
						  &cmd, &err), TERN_PARSE_OK);
		assert_int_equal(cmd->type, want[i]);
		off += consumed;
		pop3_cmd_free(&cmd);
	}
	assert_int_equal(off, len);
	pop3_parser_free(&p);
}

static void test_line_limit(void **state)
{
	(void)state;
	struct pop3_parser *p = new_parser(16);
	/* 14 bytes + CRLF = 16: fits exactly */
	struct pop3_cmd *cmd = parse_ok(p, "USER abcdefghi\r\n");
	assert_string_equal(cmd->args[0], "abcdefghi");
	pop3_cmd_free(&cmd);
	assert_ptr_equal(parse_err(p, "USER abcdefghij\r\n"), pop3_err_too_long);
	/* a long line fed in pieces is skipped without being stored */
	const char *err = NULL;
	for (int i = 0; i < 100; i++)
		assert_int_equal(feed_all(p, "xxxxxxxxxx", &cmd, &err), TERN_PARSE_NEED_MORE);
	assert_int_equal(feed_all(p, "\r\n", &cmd, &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_ptr_equal(err, pop3_err_too_long);
	cmd = parse_ok(p, "QUIT\r\n");
	assert_int_equal(cmd->type, POP3_CMD_QUIT);
	pop3_cmd_free(&cmd);
	pop3_parser_free(&p);
	struct pop3_parser_limits zero = {0};
	assert_null(pop3_parser_new(&zero));
}

static void test_continuation(void **state)
{
	(void)state;
	struct pop3_parser *p = new_parser(512);
	pop3_parser_expect_continuation(p);
	struct pop3_cmd *cmd = parse_ok(p, "AGFsaWNlAHNlY3JldA==\r\n");
	assert_int_equal(cmd->type, POP3_CMD_CONTINUATION);
	assert_string_equal(cmd->args[0], "AGFsaWNlAHNlY3JldA==");
	pop3_cmd_free(&cmd);
	/* only one line: then commands again */
	cmd = parse_ok(p, "QUIT\r\n");
	assert_int_equal(cmd->type, POP3_CMD_QUIT);
	pop3_cmd_free(&cmd);
	/* a raw line is taken verbatim, even if it looks like a command */
	pop3_parser_expect_continuation(p);
	cmd = parse_ok(p, "QUIT now\r\n");
	assert_int_equal(cmd->type, POP3_CMD_CONTINUATION);
	assert_string_equal(cmd->args[0], "QUIT now");
	pop3_cmd_free(&cmd);
	pop3_parser_free(&p);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(pop3_cmd_name(POP3_CMD_RETR), "RETR");
	assert_string_equal(pop3_cmd_name(POP3_CMD_TOP), "TOP");
	struct pop3_cmd *none = NULL;
	pop3_cmd_free(&none);   /* freeing nothing is fine */
	assert_null(none);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keywords_case_insensitive),
		cmocka_unit_test(test_arguments),
		cmocka_unit_test(test_errors_and_arity),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
