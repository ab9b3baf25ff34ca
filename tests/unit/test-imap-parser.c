/* Unit tests for the IMAP command parser (src/proto/imap/parser.c): byte
 * drips with continuation points, whole feeds, every split, literals and
 * LITERAL+, FETCH bracket atoms, error recovery, limits and raw lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>

#include "core/limits.h"
#include "proto/imap/parser.h"

#define LINE_MAX_TEST 200
#define LIT_MAX_TEST 16
#define MSG_MAX_TEST 1000

static struct imap_parser *new_parser(void)
{
	struct imap_parser_limits lim = { .max_line_length = LINE_MAX_TEST,
					  .max_literal_size = LIT_MAX_TEST,
					  .max_message_size = MSG_MAX_TEST };
	struct imap_parser *p = imap_parser_new(&lim);
	assert_non_null(p);
	return p;
}

static int setup(void **state)
{
	*state = new_parser();
	return 0;
}

static int teardown(void **state)
{
	struct imap_parser *p = *state;
	imap_parser_free(&p);
	assert_null(p);
	return 0;
}

/* Feeds s in one piece per call as a session would: after a continuation
 * request it feeds the rest. Returns the final verdict; *conts_r counts the
 * continuation requests. */
static enum tern_parse feed_all(struct imap_parser *p, const char *s, size_t len,
				struct imap_cmd **cmd_r, const char **err_r, size_t *used_r,
				int *conts_r)
{
	size_t pos = 0;
	int conts = 0;

	for (;;) {
		size_t consumed = 999999;
		enum tern_parse r = imap_parser_feed(p, (const uint8_t *)s + pos, len - pos,
						     &consumed, cmd_r, err_r);
		if (r == TERN_PARSE_ERROR_FATAL) {
			if (conts_r != NULL)
				*conts_r = conts;
			return r;
		}
		assert_true(consumed <= len - pos);
		pos += consumed;
		if (r == TERN_PARSE_NEED_MORE && imap_parser_continuation_needed(p)) {
			assert_false(imap_parser_continuation_needed(p));
			conts++;
			if (pos < len)
				continue;
		} else if (r == TERN_PARSE_NEED_MORE) {
			assert_int_equal(pos, len);
		}
		if (used_r != NULL)
			*used_r = pos;
		if (conts_r != NULL)
			*conts_r = conts;
		return r;
	}
}

static struct imap_cmd *parse_ok(struct imap_parser *p, const char *s, size_t len, int conts)
{
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t used = 0;
	int got = -1;

	assert_int_equal(feed_all(p, s, len, &cmd, &err, &used, &got), TERN_PARSE_OK);
	assert_int_equal(used, len);
	assert_int_equal(got, conts);
	assert_non_null(cmd);
	return cmd;
}

/* Drips s one byte at a time: NEED_MORE until the last byte, continuation
 * requests exactly right after each synchronising literal header. */
static struct imap_cmd *drip_ok(struct imap_parser *p, const char *s, size_t len,
				const size_t *cont_at, size_t nconts)
{
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t seen = 0;

	for (size_t i = 0; i < len; i++) {
		size_t consumed = 0;
		enum tern_parse r = imap_parser_feed(p, (const uint8_t *)s + i, 1, &consumed,
						     &cmd, &err);
		assert_int_equal(consumed, 1);
		if (i + 1 < len) {
			assert_int_equal(r, TERN_PARSE_NEED_MORE);
			assert_null(cmd);
		} else {
			assert_int_equal(r, TERN_PARSE_OK);
		}
		if (imap_parser_continuation_needed(p)) {
			assert_true(seen < nconts);
			assert_int_equal(i + 1, cont_at[seen]);
			seen++;
		}
	}
	assert_int_equal(seen, nconts);
	assert_non_null(cmd);
	return cmd;
}

static void assert_arg(const struct imap_arg *a, enum imap_arg_type type, const char *str)
{
	assert_int_equal(a->type, type);
	assert_int_equal(a->len, strlen(str));
	assert_memory_equal(a->str, str, a->len);
	assert_int_equal(a->str[a->len], '\0');
}

#define S(lit) lit, sizeof(lit) - 1

/* ---- good commands --------------------------------------------------------- */

static void check_noop(struct imap_cmd *cmd)
{
	assert_string_equal(cmd->tag, "a001");
	assert_string_equal(cmd->name, "NOOP");
	assert_false(cmd->uid);
	assert_int_equal(cmd->arg_count, 0);
}

static void test_simple(void **state)
{
	struct imap_parser *p = *state;
	struct imap_cmd *cmd = drip_ok(p, S("a001 noop\r\n"), NULL, 0);
	check_noop(cmd);
	imap_cmd_free(&cmd);
	assert_null(cmd);
	cmd = parse_ok(p, S("a001 NOOP\n"), 0);  /* bare LF */
	check_noop(cmd);
	imap_cmd_free(&cmd);
}

static void check_login(struct imap_cmd *cmd)
{
	assert_string_equal(cmd->tag, "A1");
	assert_string_equal(cmd->name, "LOGIN");
	assert_int_equal(cmd->arg_count, 2);
	assert_arg(&cmd->args[0], IMAP_ARG_STRING, "us er");
	assert_arg(&cmd->args[1], IMAP_ARG_LITERAL, "pa\"s!");
	assert_false(cmd->args[1].literal8);
}

static void test_sync_literal(void **state)
{
	struct imap_parser *p = *state;
	static const char in[] = "A1 LOGIN \"us er\" {5}\r\npa\"s!\r\n";
	size_t at[] = { 22 };
	struct imap_cmd *cmd = drip_ok(p, S(in), at, 1);
	check_login(cmd);
	imap_cmd_free(&cmd);
	cmd = parse_ok(p, S(in), 1);
	check_login(cmd);
	imap_cmd_free(&cmd);
}

static void check_append(struct imap_cmd *cmd)
{
	assert_string_equal(cmd->name, "APPEND");
	assert_int_equal(cmd->arg_count, 4);
	assert_arg(&cmd->args[0], IMAP_ARG_ATOM, "INBOX");
	assert_int_equal(cmd->args[1].type, IMAP_ARG_LIST);
	assert_int_equal(cmd->args[1].list_count, 2);
	assert_arg(&cmd->args[1].list[0], IMAP_ARG_ATOM, "\\Seen");
	assert_arg(&cmd->args[1].list[1], IMAP_ARG_ATOM, "$Junk");
	assert_arg(&cmd->args[2], IMAP_ARG_STRING, " 7-Jul-1996 02:44:25 -0700");
	assert_int_equal(cmd->args[3].type, IMAP_ARG_LITERAL);
	assert_int_equal(cmd->args[3].len, 100);
	assert_int_equal(cmd->args[3].str[0], 'x');
	assert_int_equal(cmd->args[3].str[99], 'x');
}

/* A message literal may exceed max_literal_size up to max_message_size. */
static void test_literal_plus_append(void **state)
{
	struct imap_parser *p = *state;
	char in[300];
	int n = snprintf(in, sizeof(in),
			 "t APPEND INBOX (\\Seen $Junk) \" 7-Jul-1996 02:44:25 -0700\" {100+}\r\n");
	memset(in + n, 'x', 100);
	memcpy(in + n + 100, "\r\n", 2);
	size_t len = (size_t)n + 102;
	struct imap_cmd *cmd = drip_ok(p, in, len, NULL, 0);
	check_append(cmd);
	imap_cmd_free(&cmd);
	cmd = parse_ok(p, in, len, 0);
	check_append(cmd);
	imap_cmd_free(&cmd);
}

static void test_literal8_nul_and_empty(void **state)
{
	struct imap_parser *p = *state;
	static const char in[] = "b APPEND Box ~{3}\r\na\0b {0}\r\n\r\n";
	size_t at[] = { 19, 28 };
	struct imap_cmd *cmd = drip_ok(p, S(in), at, 2);
	assert_int_equal(cmd->arg_count, 3);
	assert_int_equal(cmd->args[1].type, IMAP_ARG_LITERAL);
	assert_true(cmd->args[1].literal8);
	assert_int_equal(cmd->args[1].len, 3);
	assert_memory_equal(cmd->args[1].str, "a\0b", 3);
	assert_arg(&cmd->args[2], IMAP_ARG_LITERAL, "");
	imap_cmd_free(&cmd);
	cmd = parse_ok(p, S(in), 2);
	imap_cmd_free(&cmd);
}

static void check_uid_fetch(struct imap_cmd *cmd)
{
	assert_string_equal(cmd->name, "FETCH");
	assert_true(cmd->uid);
	assert_int_equal(cmd->arg_count, 3);
	assert_arg(&cmd->args[0], IMAP_ARG_ATOM, "1:*");
	const struct imap_arg *l = cmd->args[1].list;
	assert_int_equal(cmd->args[1].list_count, 4);
	assert_arg(&l[0], IMAP_ARG_ATOM, "FLAGS");
	assert_arg(&l[1], IMAP_ARG_ATOM, "BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.512>");
	assert_arg(&l[2], IMAP_ARG_ATOM, "body[1.2.3]");
	assert_arg(&l[3], IMAP_ARG_ATOM, "BINARY[]");
	assert_int_equal(cmd->args[2].list_count, 3);
}

static void test_uid_fetch_brackets(void **state)
{
	struct imap_parser *p = *state;
	static const char in[] = "x uid fetch 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.512> "
				 "body[1.2.3] BINARY[]) (CHANGEDSINCE 12345 VANISHED)\r\n";
	struct imap_cmd *cmd = drip_ok(p, S(in), NULL, 0);
	check_uid_fetch(cmd);
	imap_cmd_free(&cmd);
	cmd = parse_ok(p, S(in), 0);
	check_uid_fetch(cmd);
	imap_cmd_free(&cmd);
}

static void test_nil_quoted_nested(void **state)
{
	struct imap_parser *p = *state;
	struct imap_cmd *cmd = parse_ok(p, S("t X NIL \"NIL\" nil \"a\\\"b\\\\c\" \\* "
					      "(OR (FROM a) ((TO \"b\")))  ()\r\n"), 0);
	assert_int_equal(cmd->arg_count, 7);
	assert_arg(&cmd->args[0], IMAP_ARG_NIL, "NIL");
	assert_arg(&cmd->args[1], IMAP_ARG_STRING, "NIL");
	assert_arg(&cmd->args[2], IMAP_ARG_NIL, "nil");
	assert_arg(&cmd->args[3], IMAP_ARG_STRING, "a\"b\\c");
	assert_arg(&cmd->args[4], IMAP_ARG_ATOM, "\\*");
	const struct imap_arg *l = cmd->args[5].list;
	assert_int_equal(cmd->args[5].list_count, 3);
	assert_arg(&l[0], IMAP_ARG_ATOM, "OR");
	assert_int_equal(l[2].type, IMAP_ARG_LIST);
	assert_int_equal(l[2].list[0].type, IMAP_ARG_LIST);
	assert_arg(&l[2].list[0].list[1], IMAP_ARG_STRING, "b");
	assert_int_equal(cmd->args[6].type, IMAP_ARG_LIST);
	assert_int_equal(cmd->args[6].list_count, 0);
	imap_cmd_free(&cmd);
}

static void test_literal_inside_list(void **state)
{
	struct imap_parser *p = *state;
	static const char in[] = "s SEARCH CHARSET UTF-8 (OR SUBJECT {4}\r\n\xc3\xa9t\xc3 FROM x) ALL\r\n";
	size_t at[] = { 40 };
	struct imap_cmd *cmd = drip_ok(p, S(in), at, 1);
	assert_int_equal(cmd->arg_count, 4);
	assert_int_equal(cmd->args[2].list_count, 5);
	assert_arg(&cmd->args[2].list[2], IMAP_ARG_LITERAL, "\xc3\xa9t\xc3");
	assert_arg(&cmd->args[3], IMAP_ARG_ATOM, "ALL");
	imap_cmd_free(&cmd);
}

static void expect_recoverable(struct imap_parser *p, const char *in, size_t len,
			       const char *err_want, const char *tag_want);

/* header-fld-name = astring: a literal inside a FETCH section's header-list
 * becomes a quoted string in the section atom, byte by byte or whole. */
static void test_literal_inside_section(void **state)
{
	struct imap_parser *p = *state;
	static const char in[] = "f FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7}\r\nSubject)] UID)\r\n";
	size_t at[] = { 41 };
	struct imap_cmd *cmd = drip_ok(p, S(in), at, 1);
	assert_int_equal(cmd->arg_count, 2);
	assert_int_equal(cmd->args[1].list_count, 2);
	assert_arg(&cmd->args[1].list[0], IMAP_ARG_ATOM, "BODY.PEEK[HEADER.FIELDS (\"Subject\")]");
	assert_arg(&cmd->args[1].list[1], IMAP_ARG_ATOM, "UID");
	imap_cmd_free(&cmd);

	cmd = parse_ok(p, S("g FETCH 1 BODY[HEADER.FIELDS.NOT ({4+}\r\nFrom {3+}\r\na\"\\ X)]<0.10>\r\n"),
		       0);
	assert_int_equal(cmd->arg_count, 2);
	assert_arg(&cmd->args[1], IMAP_ARG_ATOM,
		   "BODY[HEADER.FIELDS.NOT (\"From\" \"a\\\"\\\\\" X)]<0.10>");
	imap_cmd_free(&cmd);

	/* no quoted string holds a CR */
	expect_recoverable(p, S("h FETCH 1 BODY[HEADER.FIELDS ({2+}\r\na\r)]\r\n"),
			   "Invalid characters in atom", "h");
	/* outside a header-list a literal is no part of the atom */
	cmd = parse_ok(p, S("i SELECT [x {3+}\r\nabc\r\n"), 0);
	assert_int_equal(cmd->arg_count, 2);
	assert_arg(&cmd->args[0], IMAP_ARG_ATOM, "[x");
	assert_arg(&cmd->args[1], IMAP_ARG_LITERAL, "abc");
	imap_cmd_free(&cmd);
}

/* An unclosed '[' is an ordinary atom char (RFC 3501 ATOM-CHAR). */
static void test_open_bracket_atom(void **state)
{
	struct imap_parser *p = *state;
	struct imap_cmd *cmd = parse_ok(p, S("t SELECT a[b c]d [x\r\n"), 0);
	assert_int_equal(cmd->arg_count, 2);
	assert_arg(&cmd->args[0], IMAP_ARG_ATOM, "a[b c]d");
	assert_arg(&cmd->args[1], IMAP_ARG_ATOM, "[x");
	imap_cmd_free(&cmd);
}

static void test_utf8_quoted(void **state)
{
	struct imap_parser *p = *state;
	struct imap_cmd *cmd = parse_ok(p, S("u SELECT \"Entw\xc3\xbcrfe\"\r\n"), 0);
	assert_arg(&cmd->args[0], IMAP_ARG_STRING, "Entw\xc3\xbcrfe");
	imap_cmd_free(&cmd);
}

/* Every two-piece split gives the same command. */
static void test_split_invariance(void **state)
{
	struct imap_parser *p = *state;
	static const char in[] = "z3 UID STORE 1,3:5 +FLAGS.SILENT (\\Deleted) {3+}\r\nabc\r\n";
	size_t len = sizeof(in) - 1;

	for (size_t cut = 0; cut <= len; cut++) {
		struct imap_cmd *cmd = NULL;
		const char *err = NULL;
		size_t c1 = 0, c2 = 0;
		enum tern_parse r = imap_parser_feed(p, (const uint8_t *)in, cut, &c1, &cmd, &err);
		assert_int_equal(r, cut == len ? TERN_PARSE_OK : TERN_PARSE_NEED_MORE);
		if (r == TERN_PARSE_NEED_MORE)
			assert_int_equal(imap_parser_feed(p, (const uint8_t *)in + c1, len - c1, &c2,
							  &cmd, &err), TERN_PARSE_OK);
		assert_int_equal(c1 + c2, len);
		assert_string_equal(cmd->name, "STORE");
		assert_true(cmd->uid);
		assert_int_equal(cmd->arg_count, 4);
		assert_arg(&cmd->args[3], IMAP_ARG_LITERAL, "abc");
		imap_cmd_free(&cmd);
	}
}

static void test_pipelining(void **state)
{
	struct imap_parser *p = *state;
	static const char in[] = "a NOOP\r\nb CHECK\r\n";
	struct imap_cmd *cmd = NULL;
	const char *err;
	size_t used;

	assert_int_equal(imap_parser_feed(p, (const uint8_t *)in, sizeof(in) - 1, &used, &cmd, &err),
			 TERN_PARSE_OK);
	assert_int_equal(used, 8);
	assert_string_equal(cmd->tag, "a");
	imap_cmd_free(&cmd);
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)in + 8, sizeof(in) - 9, &used, &cmd,
					  &err), TERN_PARSE_OK);
	assert_string_equal(cmd->name, "CHECK");
	imap_cmd_free(&cmd);
}

/* ---- errors ---------------------------------------------------------------------- */

/* The line gives RECOVERABLE with err and tag, and the parser goes on. */
static void expect_recoverable(struct imap_parser *p, const char *in, size_t len,
			       const char *err_want, const char *tag_want)
{
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t used = 0;

	assert_int_equal(feed_all(p, in, len, &cmd, &err, &used, NULL),
			 TERN_PARSE_ERROR_RECOVERABLE);
	assert_null(cmd);
	assert_int_equal(used, len);
	assert_string_equal(err, err_want);
	assert_string_equal(imap_parser_tag(p), tag_want);
	cmd = parse_ok(p, S("a001 NOOP\r\n"), 0);
	check_noop(cmd);
	imap_cmd_free(&cmd);
}

static void test_recoverable_errors(void **state)
{
	struct imap_parser *p = *state;
	char deep[100];

	expect_recoverable(p, S("\r\n"), "Empty command", "*");
	expect_recoverable(p, S("t1 X (a\r\n"), "Unbalanced parentheses", "t1");
	expect_recoverable(p, S("t2 X a)\r\n"), "Unbalanced parentheses", "t2");
	expect_recoverable(p, S("t3 X a\xff\r\n"), "Invalid characters in atom", "t3");
	expect_recoverable(p, S("t4 X a\0b\r\n"), "Invalid characters in atom", "t4");
	expect_recoverable(p, S("t5 X \"a\\n\"\r\n"), "Invalid escape in quoted string", "t5");
	expect_recoverable(p, S("t6 X \"abc\r\n"), "Unterminated quoted string", "t6");
	expect_recoverable(p, S("t7 X \"a\"\"b\"\r\n"), "Missing space between arguments", "t7");
	expect_recoverable(p, S("t8 X (a)(b)\r\n"), "Missing space between arguments", "t8");
	expect_recoverable(p, S("t10 X {3} a\r\n"), "Literal must end the line", "t10");
	expect_recoverable(p, S("t11 X {x}\r\n"), "Invalid literal", "t11");
	expect_recoverable(p, S("t12\r\n"), "Invalid or missing command name", "t12");
	expect_recoverable(p, S("t13 UID\r\n"), "Missing command after UID", "t13");
	expect_recoverable(p, S("(a) NOOP\r\n"), "Invalid tag", "*");
	expect_recoverable(p, S("t+ NOOP\r\n"), "Invalid tag", "*");
	size_t n = 0;
	n += (size_t)sprintf(deep, "t14 X ");
	for (int i = 0; i < TERN_IMAP_PARSER_DEPTH_MAX + 1; i++)
		deep[n++] = '(';
	for (int i = 0; i < TERN_IMAP_PARSER_DEPTH_MAX + 1; i++)
		deep[n++] = ')';
	deep[n++] = '\r';
	deep[n++] = '\n';
	expect_recoverable(p, deep, n, "Lists nested too deeply", "t14");
	/* Exactly the maximum is fine. */
	n = (size_t)sprintf(deep, "t15 X ");
	for (int i = 0; i < TERN_IMAP_PARSER_DEPTH_MAX; i++)
		deep[n++] = '(';
	for (int i = 0; i < TERN_IMAP_PARSER_DEPTH_MAX; i++)
		deep[n++] = ')';
	memcpy(deep + n, "\r\n", 2);
	struct imap_cmd *cmd = parse_ok(p, deep, n + 2, 0);
	imap_cmd_free(&cmd);
}

/* An error in a later line of a multi-line command drops the whole command. */
static void test_error_after_literal(void **state)
{
	struct imap_parser *p = *state;
	expect_recoverable(p, S("t LOGIN {2}\r\nab (\r\n"), "Unbalanced parentheses", "t");
}

static void test_sync_literal_too_big(void **state)
{
	struct imap_parser *p = *state;
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;

	expect_recoverable(p, S("big LOGIN {17}\r\n"), "Literal too large", "big");
	/* The flag is reported together with the error. */
	size_t used;
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)"b2 X {99999999999999999999999}\r\n",
					  32, &used, &cmd, &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_true(imap_parser_error_toobig(p));
	assert_string_equal(imap_parser_tag(p), "b2");
	/* APPEND's mailbox name is not a message. */
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)"b3 APPEND {17}\r\n", 16, &used, &cmd,
					  &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_true(imap_parser_error_toobig(p));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)"b4 APPEND x {1001}\r\n", 20, &used,
					  &cmd, &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_true(imap_parser_error_toobig(p));
	cmd = parse_ok(p, S("a001 NOOP\r\n"), 0);
	assert_false(imap_parser_error_toobig(p));
	imap_cmd_free(&cmd);
}

static void expect_fatal(const char *in, size_t len, const char *err_want, const char *tag_want)
{
	struct imap_parser *p = new_parser();
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;

	assert_int_equal(feed_all(p, in, len, &cmd, &err, NULL, NULL), TERN_PARSE_ERROR_FATAL);
	assert_null(cmd);
	assert_string_equal(err, err_want);
	assert_string_equal(imap_parser_tag(p), tag_want);
	/* The parser stays failed. */
	size_t used;
	err = NULL;
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)"a NOOP\r\n", 8, &used, &cmd, &err),
			 TERN_PARSE_ERROR_FATAL);
	assert_string_equal(err, err_want);
	imap_parser_free(&p);
}

/* A refused command whose {n+} literal is on its way (RFC 7888 §4): the
 * literal is read and thrown away, then the rest of the command up to its
 * LF (with any further {n+} literals), then the refusal comes and the
 * session goes on; the literal's bytes are never run as commands. */
static void expect_discarded(const char *in, size_t len, const char *err_want,
			     const char *tag_want, bool toobig)
{
	for (size_t piece = 1; piece <= len; piece = piece < 8 ? piece + 1 : piece * 3) {
		struct imap_parser *p = new_parser();
		struct imap_cmd *cmd = NULL;
		const char *err = NULL;
		enum tern_parse r = TERN_PARSE_NEED_MORE;
		size_t off = 0, used;
		while (off < len && r == TERN_PARSE_NEED_MORE) {
			size_t n = len - off < piece ? len - off : piece;
			used = 0;
			r = imap_parser_feed(p, (const uint8_t *)in + off, n, &used, &cmd, &err);
			assert_false(imap_parser_continuation_needed(p));
			off += used;
		}
		assert_int_equal(r, TERN_PARSE_ERROR_RECOVERABLE);
		assert_int_equal(off, len);
		assert_null(cmd);
		assert_string_equal(err, err_want);
		assert_string_equal(imap_parser_tag(p), tag_want);
		assert_int_equal(imap_parser_error_toobig(p), toobig);
		cmd = parse_ok(p, S("a001 NOOP\r\n"), 0);
		check_noop(cmd);
		imap_cmd_free(&cmd);
		imap_parser_free(&p);
	}
}

static void test_fatal_errors(void **state)
{
	(void)state;
	char line[LINE_MAX_TEST + 40];

	/* a {n+} literal whose size cannot be told cannot be skipped */
	expect_fatal(S("big LOGIN {99999999999999999999999+}\r\n"), "Literal too large", "big");
	/* past TERN_DISCARD_LITERAL_FACTOR * max_message_size: not worth reading */
	expect_fatal(S("big LOGIN {2001+}\r\n"), "Literal too large", "big");
	expect_fatal(S("bad X \"a\\q\" {2001+}\r\n"), "Invalid escape in quoted string", "bad");
	char two_k[2100];
	int k = snprintf(two_k, sizeof(two_k), "big LOGIN {2000+}\r\n%02000d\r\n", 0);
	expect_discarded(two_k, (size_t)k, "Literal too large", "big", true);
	expect_discarded(S("big LOGIN {17+}\r\na NOOP\r\nb NOOP\r\n {1+}\r\nc rest\r\n"),
			 "Literal too large", "big", true);
	/* MULTIAPPEND messages share one max_message_size budget. */
	char multi[1100];
	memcpy(multi, "b APPEND x {999+}\r\n", 19);
	memset(multi + 19, 'm', 999);
	memcpy(multi + 19 + 999, " {2+}\r\nzz\r\n", 11);
	expect_discarded(multi, 19 + 999 + 11, "Literal too large", "b", true);
	/* A rejected line whose {n+} literal is already on its way. */
	expect_discarded(S("c X \"a\\q\" {2+}\r\nab\r\n"), "Invalid escape in quoted string", "c",
			 false);
	/* An over-long line announcing a non-synchronising literal: its
	 * literal is skipped too. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "long NOOP ", 10);
	memcpy(line + sizeof(line) - 15, " {5+}\r\nx NOOP\r\n", 15);
	expect_discarded(line, sizeof(line), "Line too long", "long", false);
	/* The limit holds across the lines of one command (literal data aside). */
	char multi2[400];
	size_t n = 11;
	memcpy(multi2, "m X {1+}\r\na", 11);
	for (int i = 0; i < 30; i++, n += 8)
		memcpy(multi2 + n, " {1+}\r\na", 8);
	memcpy(multi2 + n, "\r\n", 2);
	expect_discarded(multi2, n + 2, "Line too long", "m", false);
	/* Under the limit the same shape parses: 10 + 20 * 7 + 2 text bytes. */
	struct imap_parser *p = new_parser();
	n = 11 + 20 * 8;
	memcpy(multi2 + n, "\r\n", 2);
	struct imap_cmd *cmd = parse_ok(p, multi2, n + 2, 0);
	assert_int_equal(cmd->arg_count, 21);
	imap_cmd_free(&cmd);
	imap_parser_free(&p);
}

/* The limit crossed inside a {n+} announcement that arrives in small
 * pieces: the bytes before the crossing were buffered, and the verdict must
 * still be the one the whole line gets (fatal), for every piece size. */
static void test_long_nonsync_line_split_anywhere(void **state)
{
	(void)state;
	char line[LINE_MAX_TEST + 2 + 22];
	memset(line, 'x', sizeof(line));
	memcpy(line, "a1 APPEND INBOX ", 16);
	memcpy(line + sizeof(line) - 30, " {20+}\r\n", 8);
	memcpy(line + sizeof(line) - 22, "a2 NOOP\r\na3 NOOP\r\nyy\r\n", 22);
	for (size_t piece = 1; piece <= 16; piece++) {
		struct imap_parser *p = new_parser();
		struct imap_cmd *cmd = NULL;
		const char *err = NULL;
		enum tern_parse r = TERN_PARSE_NEED_MORE;
		size_t off = 0, used;
		while (off < sizeof(line) && r == TERN_PARSE_NEED_MORE) {
			size_t n = sizeof(line) - off < piece ? sizeof(line) - off : piece;
			used = 0;
			r = imap_parser_feed(p, (const uint8_t *)line + off, n, &used, &cmd, &err);
			off += used;
		}
		assert_int_equal(r, TERN_PARSE_ERROR_RECOVERABLE);
		assert_int_equal(off, sizeof(line));
		assert_string_equal(err, "Line too long");
		imap_parser_free(&p);
	}
}

/* An over-long line is skipped up to its LF and refused; the session goes on. */
static void test_long_line_recoverable(void **state)
{
	struct imap_parser *p = *state;
	char line[LINE_MAX_TEST * 3];
	size_t used;
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;

	memset(line, 'a', sizeof(line));
	memcpy(line, "long NOOP ", 10);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	/* In pieces: NEED_MORE while skipping, then the verdict at the LF. */
	size_t off = 0;
	enum tern_parse r = TERN_PARSE_NEED_MORE;
	while (off < sizeof(line) && r == TERN_PARSE_NEED_MORE) {
		size_t n = sizeof(line) - off < 100 ? sizeof(line) - off : 100;
		r = imap_parser_feed(p, (const uint8_t *)line + off, n, &used, &cmd, &err);
		off += used;
	}
	assert_int_equal(r, TERN_PARSE_ERROR_RECOVERABLE);
	assert_int_equal(off, sizeof(line));
	assert_string_equal(err, "Line too long");
	assert_string_equal(imap_parser_tag(p), "long");
	cmd = parse_ok(p, S("a002 NOOP\r\n"), 0);
	assert_string_equal(cmd->name, "NOOP");
	imap_cmd_free(&cmd);
}

/* A line exactly at the limit (CRLF included) passes. */
static void test_line_at_limit(void **state)
{
	struct imap_parser *p = *state;
	char line[LINE_MAX_TEST];

	memset(line, 'a', sizeof(line));
	memcpy(line, "t X ", 4);
	memcpy(line + LINE_MAX_TEST - 2, "\r\n", 2);
	struct imap_cmd *cmd = drip_ok(p, line, sizeof(line), NULL, 0);
	assert_int_equal(cmd->args[0].len, LINE_MAX_TEST - 6);
	imap_cmd_free(&cmd);
}

/* The session refuses a literal: it drops the line and the next command parses. */
static void test_refuse_continuation(void **state)
{
	struct imap_parser *p = *state;
	struct imap_cmd *cmd = NULL;
	const char *err;
	size_t used;

	assert_int_equal(imap_parser_feed(p, (const uint8_t *)"a APPEND INBOX {5}\r\n", 20, &used,
					  &cmd, &err), TERN_PARSE_NEED_MORE);
	assert_string_equal(imap_parser_cmd_name(p), "APPEND");
	assert_string_equal(imap_parser_tag(p), "a");
	assert_true(imap_parser_continuation_needed(p));
	imap_parser_reset_line(p);
	assert_null(imap_parser_cmd_name(p));
	cmd = parse_ok(p, S("a001 NOOP\r\n"), 0);
	check_noop(cmd);
	imap_cmd_free(&cmd);
}

/* Bytes after a synchronising literal header are left for the next feed. */
static void test_stop_at_continuation(void **state)
{
	struct imap_parser *p = *state;
	static const char in[] = "a LOGIN {1}\r\nx y\r\n";
	struct imap_cmd *cmd = NULL;
	const char *err;
	size_t used;

	assert_int_equal(imap_parser_feed(p, (const uint8_t *)in, sizeof(in) - 1, &used, &cmd, &err),
			 TERN_PARSE_NEED_MORE);
	assert_int_equal(used, 13);
	assert_true(imap_parser_continuation_needed(p));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)in + 13, sizeof(in) - 14, &used, &cmd,
					  &err), TERN_PARSE_OK);
	assert_arg(&cmd->args[0], IMAP_ARG_LITERAL, "x");
	assert_arg(&cmd->args[1], IMAP_ARG_ATOM, "y");
	imap_cmd_free(&cmd);
}

static void test_read_line(void **state)
{
	struct imap_parser *p = *state;
	static const char in[] = "DONE\r\nb NOOP\r\n";
	char *line = NULL;
	size_t used = 0;

	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(imap_parser_read_line(p, (const uint8_t *)in + i, 1, &used, &line),
				 TERN_PARSE_NEED_MORE);
		assert_int_equal(used, 1);
	}
	assert_int_equal(imap_parser_read_line(p, (const uint8_t *)in + 5, sizeof(in) - 6, &used,
					       &line), TERN_PARSE_OK);
	assert_int_equal(used, 1);
	assert_string_equal(line, "DONE");
	free(line);
	struct imap_cmd *cmd = parse_ok(p, in + 6, sizeof(in) - 7, 0);
	assert_string_equal(cmd->name, "NOOP");
	imap_cmd_free(&cmd);

	char big[LINE_MAX_TEST + 1];
	memset(big, 'x', sizeof(big));
	line = NULL;
	assert_int_equal(imap_parser_read_line(p, (const uint8_t *)big, sizeof(big), &used, &line),
			 TERN_PARSE_ERROR_FATAL);
	assert_null(line);
}

static void test_accessors(void **state)
{
	struct imap_parser *p = *state;
	struct imap_cmd *cmd = parse_ok(p, S("t X 4294967295 4294967296 18446744073709551615 "
					      "18446744073709551616 \"1\" NIL Box (a) 0 +1\r\n"), 0);
	const struct imap_arg *a = cmd->args;
	uint32_t u32;
	uint64_t u64;
	const char *s;
	size_t len;
	const struct imap_arg *list;

	assert_true(imap_arg_u32(&a[0], &u32));
	assert_int_equal(u32, UINT32_MAX);
	assert_false(imap_arg_u32(&a[1], &u32));
	assert_true(imap_arg_u64(&a[1], &u64));
	assert_int_equal(u64, 4294967296ull);
	assert_true(imap_arg_u64(&a[2], &u64));
	assert_true(u64 == UINT64_MAX);
	assert_false(imap_arg_u64(&a[3], &u64));
	assert_false(imap_arg_u32(&a[4], &u32));           /* quoted is no number */
	assert_true(imap_arg_astring(&a[5], &s, &len));    /* NIL is a name here */
	assert_string_equal(s, "NIL");
	assert_true(imap_arg_nstring(&a[5], &s, &len));
	assert_null(s);
	assert_false(imap_arg_nstring(&a[6], &s, &len));   /* atoms are no nstring */
	assert_true(imap_arg_nstring(&a[4], &s, &len));
	assert_string_equal(s, "1");
	assert_false(imap_arg_string(&a[6], &s, &len));
	assert_true(imap_arg_is_atom_ci(&a[6], "box"));
	assert_false(imap_arg_is_atom_ci(&a[4], "1"));
	assert_true(imap_arg_list(&a[7], &list, &len));
	assert_int_equal(len, 1);
	assert_false(imap_arg_astring(&a[7], &s, &len));
	assert_true(imap_arg_u32(&a[8], &u32));
	assert_int_equal(u32, 0);
	assert_false(imap_arg_u32(&a[9], &u32));
	assert_false(imap_arg_astring(NULL, &s, &len));
	imap_cmd_free(&cmd);
}

static void test_bad_limits(void **state)
{
	(void)state;
	struct imap_parser_limits lim = { .max_line_length = 15 };
	assert_null(imap_parser_new(&lim));
}

/* ---- memory and limits under hostile input ------------------------------------- */

/* Heap bytes in use (glibc); under ASan the figure does not move and the
 * bound checks pass vacuously. */
static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}

/* A line of many short tokens of one kind ("" or "x" or x or ()) separated
 * by spaces; returns its length. */
static size_t many_tokens_line(char *buf, size_t cap, const char *token, size_t count)
{
	size_t n = (size_t)snprintf(buf, cap, "t NOOP");
	for (size_t i = 0; i < count; i++)
		n += (size_t)snprintf(buf + n, cap - n, " %s", token);
	n += (size_t)snprintf(buf + n, cap - n, "\r\n");
	assert_true(n < cap);
	return n;
}

/* Memory held by a parsed command grows with its line, never with the
 * square of it: 20,000 empty strings in a 60 KB line used to reserve the
 * rest of the line for each (600 MB). */
static void test_many_tokens_memory_is_linear(void **state)
{
	(void)state;
	static const struct { const char *token; size_t count; } kinds[] = {
		{ "\"\"", 20000 }, { "\"x\"", 15000 }, { "x", 30000 }, { "()", 20000 },
		{ "\"\\\\\"", 12000 },
	};
	const size_t line_max = 64 * 1024;
	char *line = malloc(line_max);
	assert_non_null(line);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		size_t len = many_tokens_line(line, line_max, kinds[k].token, kinds[k].count);
		struct imap_parser_limits lim = { .max_line_length = line_max,
						  .max_literal_size = 1024,
						  .max_message_size = 1024 };
		struct imap_parser *p = imap_parser_new(&lim);
		assert_non_null(p);
		/* whole, and in 1000-byte pieces (the line buffer path) */
		for (size_t piece = len; piece >= 1000; piece = piece == len ? 1000 : 0) {
			size_t before = heap_in_use(), pos = 0, used = 0;
			struct imap_cmd *cmd = NULL;
			const char *err = NULL;
			enum tern_parse r = TERN_PARSE_NEED_MORE;
			while (r == TERN_PARSE_NEED_MORE && pos < len) {
				size_t n = len - pos < piece ? len - pos : piece;
				r = imap_parser_feed(p, (const uint8_t *)line + pos, n, &used, &cmd,
						     &err);
				pos += used;
			}
			assert_int_equal(r, TERN_PARSE_OK);
			assert_int_equal(cmd->arg_count, kinds[k].count);
			size_t held = heap_in_use() - before;
			if (held > 64 * len)
				fail_msg("%s x %zu: %zu bytes held for a %zu-byte line", kinds[k].token,
					 kinds[k].count, held, len);
			imap_cmd_free(&cmd);
		}
		imap_parser_free(&p);
	}
	free(line);
}

static void test_quoted_escapes(void **state)
{
	struct imap_parser *p = *state;
	struct imap_cmd *cmd = parse_ok(p, S("t X \"a\\\"b\\\\c\" \"\" \"\\\\\" \"\\\"\"\r\n"), 0);
	assert_int_equal(cmd->arg_count, 4);
	assert_arg(&cmd->args[0], IMAP_ARG_STRING, "a\"b\\c");
	assert_arg(&cmd->args[1], IMAP_ARG_STRING, "");
	assert_arg(&cmd->args[2], IMAP_ARG_STRING, "\\");
	assert_arg(&cmd->args[3], IMAP_ARG_STRING, "\"");
	imap_cmd_free(&cmd);
	expect_recoverable(p, S("t1 X \"ab\\\r\n"), "Unterminated quoted string", "t1");
	expect_recoverable(p, S("t2 X \"a\\x\"\r\n"), "Invalid escape in quoted string", "t2");
	expect_recoverable(p, S("t3 X \"a\rb\"\r\n"), "Invalid characters in quoted string", "t3");
	expect_recoverable(p, S("t4 X \"\" \"abc\r\n"), "Unterminated quoted string", "t4");
	/* RFC 9051 QUOTED-CHAR: 8-bit only as well-formed UTF-8 */
	expect_recoverable(p, S("t5 X \"caf\xff\"\r\n"), "Invalid characters in quoted string", "t5");
	expect_recoverable(p, S("t6 X \"\xc3\"\r\n"), "Invalid characters in quoted string", "t6");
	expect_recoverable(p, S("t7 X \"\xc0\xaf\"\r\n"), "Invalid characters in quoted string",
			   "t7");
	expect_recoverable(p, S("t8 X \"\xed\xa0\x80\"\r\n"),
			   "Invalid characters in quoted string", "t8");
	expect_recoverable(p, S("t9 X \"\xf4\x90\x80\x80\"\r\n"),
			   "Invalid characters in quoted string", "t9");
	cmd = parse_ok(p, S("u1 X \"\xe2\x82\xac \\\\ \xf0\x9f\x90\xa6\"\r\n"), 0);
	assert_arg(&cmd->args[0], IMAP_ARG_STRING, "\xe2\x82\xac \\ \xf0\x9f\x90\xa6");
	imap_cmd_free(&cmd);
}

/* Before login a session narrows literals to a login's size: a bigger one
 * gets no continuation (synchronising) or ends the connection (LITERAL+);
 * widened after login, an APPEND message may be large again. */
static void test_set_limits(void **state)
{
	(void)state;
	struct imap_parser_limits narrow = { .max_line_length = 200, .max_literal_size = 16,
					     .max_message_size = 16 };
	struct imap_parser_limits wide = { .max_line_length = 200, .max_literal_size = 16,
					   .max_message_size = 1000 };
	struct imap_parser *p = imap_parser_new(&wide);
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t used;

	assert_non_null(p);
	assert_true(imap_parser_set_limits(p, &narrow));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)S("a1 APPEND INBOX {17}\r\n"), &used,
					  &cmd, &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_true(imap_parser_error_toobig(p));
	assert_false(imap_parser_continuation_needed(p));
	cmd = parse_ok(p, S("a2 LOGIN {5}\r\nalice {16}\r\n0123456789abcdef\r\n"), 2);
	assert_arg(&cmd->args[1], IMAP_ARG_LITERAL, "0123456789abcdef");
	imap_cmd_free(&cmd);

	assert_true(imap_parser_set_limits(p, &wide));
	char msg[600];
	int n = snprintf(msg, sizeof(msg), "a3 APPEND INBOX {500}\r\n%0500d\r\n", 0);
	cmd = parse_ok(p, msg, (size_t)n, 1);
	assert_int_equal(cmd->args[1].len, 500);
	imap_cmd_free(&cmd);

	/* bad limits change nothing */
	struct imap_parser_limits bad = { .max_line_length = 15 };
	assert_false(imap_parser_set_limits(p, &bad));
	cmd = parse_ok(p, msg, (size_t)n, 1);
	imap_cmd_free(&cmd);

	/* narrowed in the middle of a command whose literals already sum past
	 * the new cap: the next literal is refused, not waved through */
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)S("a4 SEARCH {16}\r\n"), &used,
					  &cmd, &err), TERN_PARSE_NEED_MORE);
	assert_true(imap_parser_continuation_needed(p));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)S("0123456789abcdef {16}\r\n"),
					  &used, &cmd, &err), TERN_PARSE_NEED_MORE);
	assert_true(imap_parser_continuation_needed(p));
	struct imap_parser_limits tiny = { .max_line_length = 200, .max_literal_size = 2,
					   .max_message_size = 2 };
	assert_true(imap_parser_set_limits(p, &tiny));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)S("0123456789abcdef {1}\r\n"),
					  &used, &cmd, &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_true(imap_parser_error_toobig(p));
	assert_false(imap_parser_continuation_needed(p));
	imap_parser_free(&p);

	/* LITERAL+ over the narrowed limit is read, thrown away and refused */
	p = imap_parser_new(&narrow);
	assert_non_null(p);
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)S("a5 APPEND INBOX {30+}\r\n"),
					  &used, &cmd, &err), TERN_PARSE_NEED_MORE);
	assert_true(imap_parser_line_too_long(p));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)S("012345678901234567890123456789\r\n"),
					  &used, &cmd, &err), TERN_PARSE_ERROR_RECOVERABLE);
	assert_true(imap_parser_error_toobig(p));
	assert_string_equal(imap_parser_tag(p), "a5");
	imap_parser_free(&p);
}

/* The session learns of an over-long line while it is being skipped, not
 * only at its end (behind COMPRESS it closes at once). */
static void test_line_too_long_reported_early(void **state)
{
	struct imap_parser *p = *state;
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	char junk[150];
	size_t used;

	memset(junk, 'x', sizeof(junk));
	assert_false(imap_parser_line_too_long(p));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)S("t1 NOOP "), &used, &cmd, &err),
			 TERN_PARSE_NEED_MORE);
	assert_false(imap_parser_line_too_long(p));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)junk, sizeof(junk), &used, &cmd,
					  &err), TERN_PARSE_NEED_MORE);
	assert_false(imap_parser_line_too_long(p));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)junk, sizeof(junk), &used, &cmd,
					  &err), TERN_PARSE_NEED_MORE);
	assert_true(imap_parser_line_too_long(p));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)S("xx\r\n"), &used, &cmd, &err),
			 TERN_PARSE_ERROR_RECOVERABLE);
	assert_string_equal(err, "Line too long");
	assert_true(imap_parser_line_too_long(p));
	cmd = parse_ok(p, S("a001 NOOP\r\n"), 0);
	assert_false(imap_parser_line_too_long(p));
	imap_cmd_free(&cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_simple, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_literal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_literal_plus_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_literal8_nul_and_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uid_fetch_brackets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nil_quoted_nested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_literal_inside_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_utf8_quoted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_bracket_atom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_literal_inside_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_invariance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recoverable_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_after_literal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_literal_too_big, setup, teardown),
		cmocka_unit_test(test_fatal_errors),
		cmocka_unit_test(test_long_nonsync_line_split_anywhere),
		cmocka_unit_test_setup_teardown(test_long_line_recoverable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_at_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_continuation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_at_continuation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accessors, setup, teardown),
		cmocka_unit_test(test_bad_limits),
		cmocka_unit_test(test_many_tokens_memory_is_linear),
		cmocka_unit_test_setup_teardown(test_quoted_escapes, setup, teardown),
		cmocka_unit_test(test_set_limits),
		cmocka_unit_test_setup_teardown(test_line_too_long_reported_early, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
