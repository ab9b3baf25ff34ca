/* Unit tests for the SEARCH program parser (src/proto/imap/search-parse.c)
 * and the IMAP date helpers it uses (src/proto/imap/imap-date.c). Commands
 * go through the real command parser so the argument trees are realistic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/limits.h"
#include "proto/imap/imap-date.h"
#include "proto/imap/parser.h"
#include "proto/imap/search-parse.h"

/* Parses "t SEARCH <args>\r\n" into a command. */
static struct imap_cmd *command(const char *args)
{
	struct imap_parser_limits lim = { 4096, 1024, 1024 };
	struct imap_parser *p = imap_parser_new(&lim);
	char line[4200];
	size_t n = (size_t)snprintf(line, sizeof(line), "t SEARCH %s\r\n", args);
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t used, pos = 0;
	enum tern_parse r;

	/* Literals: go on after each continuation request. */
	while ((r = imap_parser_feed(p, (const uint8_t *)line + pos, n - pos, &used, &cmd, &err)) ==
	       TERN_PARSE_NEED_MORE) {
		assert_true(imap_parser_continuation_needed(p));
		pos += used;
	}
	assert_int_equal(r, TERN_PARSE_OK);
	imap_parser_free(&p);
	return cmd;
}

static struct imap_search_program *parse_ok(const char *args, struct imap_cmd **cmd_r)
{
	struct imap_cmd *cmd = command(args);
	struct imap_search_program *prog = NULL;
	const char *err = NULL;

	assert_int_equal(imap_search_parse(cmd->args, cmd->arg_count, &prog, &err),
			 IMAP_SEARCH_PARSE_OK);
	assert_non_null(prog);
	assert_int_equal(prog->root->type, IMAP_SK_AND);
	*cmd_r = cmd;
	return prog;
}

static void expect_error(const char *args, int code, const char *err_want)
{
	struct imap_cmd *cmd = command(args);
	struct imap_search_program *prog = (struct imap_search_program *)0x1;
	const char *err = NULL;

	assert_int_equal(imap_search_parse(cmd->args, cmd->arg_count, &prog, &err), code);
	assert_ptr_equal(prog, (struct imap_search_program *)0x1);
	assert_string_equal(err, err_want);
	imap_cmd_free(&cmd);
}

static void done(struct imap_search_program *prog, struct imap_cmd *cmd)
{
	imap_search_program_free(&prog);
	assert_null(prog);
	imap_cmd_free(&cmd);
}

static void test_simple_keys(void **state)
{
	(void)state;
	struct imap_cmd *cmd;
	struct imap_search_program *prog = parse_ok(
		"all Unseen FLAGGED NEW OLD keyword $Junk UNKEYWORD foo LARGER 100 SMALLER 4294967295 "
		"SINCE 1-Feb-1994 BEFORE \"01-Mar-2000\" SENTON 29-Feb-2004 ON 31-dec-1999", &cmd);
	const struct imap_search_key *k = prog->root->children;

	assert_int_equal(prog->root->child_count, 13);
	assert_false(prog->esearch);
	assert_int_equal(prog->charset, IMAP_SEARCH_CHARSET_US_ASCII);
	assert_int_equal(k[0].type, IMAP_SK_ALL);
	assert_int_equal(k[1].type, IMAP_SK_FLAG);
	assert_string_equal(k[1].str, "\\Seen");
	assert_false(k[1].flag_set);
	assert_string_equal(k[2].str, "\\Flagged");
	assert_true(k[2].flag_set);
	assert_int_equal(k[3].type, IMAP_SK_AND);                    /* NEW */
	assert_string_equal(k[3].children[0].str, "\\Recent");
	assert_true(k[3].children[0].flag_set);
	assert_string_equal(k[3].children[1].str, "\\Seen");
	assert_false(k[3].children[1].flag_set);
	assert_string_equal(k[4].str, "\\Recent");                   /* OLD */
	assert_false(k[4].flag_set);
	assert_string_equal(k[5].str, "$Junk");
	assert_true(k[5].flag_set);
	assert_false(k[6].flag_set);
	assert_int_equal(k[7].type, IMAP_SK_LARGER);
	assert_int_equal(k[7].number, 100);
	assert_int_equal(k[8].number, UINT32_MAX);
	assert_int_equal(k[9].type, IMAP_SK_SINCE);
	assert_int_equal(k[9].day, 8797);                           /* 1994-02-01 */
	assert_int_equal(k[10].day, 11017);                         /* 2000-03-01 */
	assert_int_equal(k[11].type, IMAP_SK_SENTON);
	assert_int_equal(k[11].day, 12477);                         /* 2004-02-29 */
	done(prog, cmd);
}

/* RFC 8514 §4 and RFC 8474 §6 keys. */
static void test_savedate_objectid_keys(void **state)
{
	(void)state;
	struct imap_cmd *cmd;
	struct imap_search_program *prog = parse_ok(
		"SAVEDBEFORE 1-Feb-1994 savedon \"29-Feb-2004\" SAVEDSINCE 1-Jan-1970 "
		"SAVEDATESUPPORTED EMAILID M6d99ac3275bb4e threadid T64b478a75b7ea9 "
		"EMAILID \"a_-Z9\"", &cmd);
	const struct imap_search_key *k = prog->root->children;

	assert_int_equal(prog->root->child_count, 7);
	assert_int_equal(k[0].type, IMAP_SK_SAVEDBEFORE);
	assert_int_equal(k[0].day, 8797);
	assert_int_equal(k[1].type, IMAP_SK_SAVEDON);
	assert_int_equal(k[1].day, 12477);
	assert_int_equal(k[2].type, IMAP_SK_SAVEDSINCE);
	assert_int_equal(k[2].day, 0);
	assert_int_equal(k[3].type, IMAP_SK_ALL);
	assert_int_equal(k[4].type, IMAP_SK_EMAILID);
	assert_string_equal(k[4].str, "M6d99ac3275bb4e");
	assert_int_equal(k[5].type, IMAP_SK_THREADID);
	assert_string_equal(k[5].str, "T64b478a75b7ea9");
	assert_string_equal(k[6].str, "a_-Z9");
	done(prog, cmd);

	char longid[300];
	memset(longid, 0, sizeof(longid));
	memcpy(longid, "EMAILID ", 8);
	memset(longid + 8, 'a', 255);
	prog = parse_ok(longid, &cmd);
	assert_int_equal(strlen(prog->root->children[0].str), 255);
	done(prog, cmd);
	longid[8 + 255] = 'a';
	expect_error(longid, IMAP_SEARCH_PARSE_BAD, "Invalid object id");
	expect_error("EMAILID", IMAP_SEARCH_PARSE_BAD, "Invalid object id");
	expect_error("EMAILID \"\"", IMAP_SEARCH_PARSE_BAD, "Invalid object id");
	expect_error("EMAILID a.b", IMAP_SEARCH_PARSE_BAD, "Invalid object id");
	expect_error("THREADID \"a b\"", IMAP_SEARCH_PARSE_BAD, "Invalid object id");
	expect_error("THREADID (T1)", IMAP_SEARCH_PARSE_BAD, "Invalid object id");
	expect_error("SAVEDON", IMAP_SEARCH_PARSE_BAD, "Invalid date");
	expect_error("SAVEDSINCE 30-Feb-2000", IMAP_SEARCH_PARSE_BAD, "Invalid date");
	expect_error("SAVEDATESUPPORTED 1-Jan-2000", IMAP_SEARCH_PARSE_BAD, "Invalid sequence set");
}

/* RETURN (PARTIAL range) of RFC 5267 §4.4 / RFC 9394, and its slices. */
static void test_return_partial(void **state)
{
	(void)state;
	struct imap_cmd *cmd;
	struct imap_search_program *prog = parse_ok("RETURN (PARTIAL 1:10) ALL", &cmd);
	assert_true(prog->esearch);
	assert_int_equal(prog->return_opts, IMAP_SEARCH_RETURN_PARTIAL);
	assert_int_equal(prog->partial.first, 1);
	assert_int_equal(prog->partial.last, 10);
	done(prog, cmd);
	prog = parse_ok("RETURN (min partial -5:-1 COUNT SAVE) ALL", &cmd);
	assert_int_equal(prog->return_opts, IMAP_SEARCH_RETURN_PARTIAL | IMAP_SEARCH_RETURN_MIN |
						    IMAP_SEARCH_RETURN_COUNT | IMAP_SEARCH_RETURN_SAVE);
	assert_int_equal(prog->partial.first, -1);
	assert_int_equal(prog->partial.last, -5);
	done(prog, cmd);
	prog = parse_ok("RETURN (PARTIAL 4294967295:7) ALL", &cmd);
	assert_int_equal(prog->partial.first, 7);
	assert_int_equal(prog->partial.last, 4294967295);
	assert_true(prog->partial.reversed);   /* echoed as written */
	done(prog, cmd);
	prog = parse_ok("RETURN (PARTIAL -1:-2) ALL", &cmd);
	assert_false(prog->partial.reversed);
	done(prog, cmd);

	static const char *const bad[] = {
		"RETURN (PARTIAL) ALL", "RETURN (PARTIAL 0:3) ALL", "RETURN (PARTIAL -0:-3) ALL",
		"RETURN (PARTIAL 1:-3) ALL", "RETURN (PARTIAL -1:3) ALL", "RETURN (PARTIAL 3) ALL",
		"RETURN (PARTIAL 1:4294967296) ALL", "RETURN (PARTIAL 1:*) ALL",
		"RETURN (PARTIAL 1:2 PARTIAL 1:2) ALL", "RETURN (PARTIAL 1:2 ALL) ALL",
		"RETURN (ALL PARTIAL 1:2) ALL", "RETURN (PARTIAL \"1:2\") ALL",
		"RETURN (PARTIAL 1:2:3) ALL", "RETURN (PARTIAL --1:-2) ALL",
		"RETURN (PARTIAL 01:2) ALL",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i], IMAP_SEARCH_PARSE_BAD,
			     "Invalid PARTIAL (a range like 1:10 or -1:-10, without ALL)");
	/* RFC 5267 §4.2/§4.3: UPDATE and CONTEXT; CONTEXT alone is ALL */
	prog = parse_ok("RETURN (UPDATE) ALL", &cmd);
	assert_int_equal(prog->return_opts, IMAP_SEARCH_RETURN_UPDATE);
	assert_int_equal(prog->return_opts & IMAP_SEARCH_RETURN_DATA, 0);
	done(prog, cmd);
	prog = parse_ok("RETURN (context) ALL", &cmd);
	assert_int_equal(prog->return_opts, IMAP_SEARCH_RETURN_CONTEXT | IMAP_SEARCH_RETURN_ALL);
	done(prog, cmd);
	prog = parse_ok("RETURN (CONTEXT COUNT update PARTIAL -1:-3) ALL", &cmd);
	assert_int_equal(prog->return_opts, IMAP_SEARCH_RETURN_CONTEXT | IMAP_SEARCH_RETURN_COUNT |
						    IMAP_SEARCH_RETURN_UPDATE |
						    IMAP_SEARCH_RETURN_PARTIAL);
	done(prog, cmd);
	expect_error("RETURN (UPDATES) ALL", IMAP_SEARCH_PARSE_BAD, "Invalid RETURN option");
	expect_error("RETURN (UPDATE 1) ALL", IMAP_SEARCH_PARSE_BAD, "Invalid RETURN option");

	struct imap_search_partial p = { 1, 10, false };
	size_t start, n;
	imap_search_partial_slice(&p, 12, &start, &n);
	assert_int_equal(start, 0);
	assert_int_equal(n, 10);
	imap_search_partial_slice(&p, 4, &start, &n);
	assert_int_equal(n, 4);
	imap_search_partial_slice(&p, 0, &start, &n);
	assert_int_equal(n, 0);
	p = (struct imap_search_partial){ 11, 20, false };
	imap_search_partial_slice(&p, 10, &start, &n);
	assert_int_equal(n, 0);
	p = (struct imap_search_partial){ -1, -5, false };
	imap_search_partial_slice(&p, 12, &start, &n);
	assert_int_equal(start, 7);
	assert_int_equal(n, 5);
	imap_search_partial_slice(&p, 3, &start, &n);
	assert_int_equal(start, 0);
	assert_int_equal(n, 3);
	p = (struct imap_search_partial){ -4, -4, false };
	imap_search_partial_slice(&p, 3, &start, &n);
	assert_int_equal(n, 0);
	p = (struct imap_search_partial){ 4294967295, 4294967295, false };
	imap_search_partial_slice(&p, 3, &start, &n);
	assert_int_equal(n, 0);
}

static void test_strings_and_headers(void **state)
{
	(void)state;
	struct imap_cmd *cmd;
	struct imap_search_program *prog = parse_ok(
		"CHARSET utf-8 FROM \"Jos\xc3\xa9\" to bob HEADER X-Spam \"\" BODY {3}\r\nabc TEXT x "
		"SUBJECT NIL", &cmd);
	const struct imap_search_key *k = prog->root->children;

	assert_int_equal(prog->charset, IMAP_SEARCH_CHARSET_UTF8);
	assert_int_equal(prog->root->child_count, 6);
	assert_int_equal(k[0].type, IMAP_SK_HEADER);
	assert_string_equal(k[0].str, "From");
	assert_string_equal(k[0].value, "Jos\xc3\xa9");
	assert_string_equal(k[1].str, "To");
	assert_string_equal(k[2].str, "X-Spam");
	assert_int_equal(k[2].value_len, 0);
	assert_int_equal(k[3].type, IMAP_SK_BODY);
	assert_string_equal(k[3].value, "abc");
	assert_int_equal(k[4].type, IMAP_SK_TEXT);
	assert_string_equal(k[5].value, "NIL");
	done(prog, cmd);
}

static void test_or_not_lists_sets(void **state)
{
	(void)state;
	struct imap_cmd *cmd;
	struct imap_search_program *prog = parse_ok(
		"OR (SEEN 1:5) NOT OR DELETED DRAFT 2,4:* UID 10:20 NOT NOT (UID $)", &cmd);
	const struct imap_search_key *k = prog->root->children;

	assert_int_equal(prog->root->child_count, 4);
	assert_int_equal(k[0].type, IMAP_SK_OR);
	assert_int_equal(k[0].child_count, 2);
	assert_int_equal(k[0].children[0].type, IMAP_SK_AND);
	assert_int_equal(k[0].children[0].child_count, 2);
	assert_int_equal(k[0].children[0].children[1].type, IMAP_SK_SEQSET);
	assert_int_equal(k[0].children[1].type, IMAP_SK_NOT);
	assert_int_equal(k[0].children[1].children[0].type, IMAP_SK_OR);
	assert_int_equal(k[1].type, IMAP_SK_SEQSET);
	assert_int_equal(imap_seqset_resolve(k[1].set, 9), 0);
	assert_true(imap_seqset_contains(k[1].set, 9));
	assert_false(imap_seqset_contains(k[1].set, 3));
	assert_int_equal(k[2].type, IMAP_SK_UIDSET);
	assert_int_equal(k[3].type, IMAP_SK_NOT);
	assert_int_equal(k[3].children[0].children[0].children[0].type, IMAP_SK_UIDSET);
	assert_true(imap_seqset_is_saved(k[3].children[0].children[0].children[0].set));
	assert_true(prog->uses_saved);
	done(prog, cmd);
}

static void test_return_and_modseq(void **state)
{
	(void)state;
	struct imap_cmd *cmd;
	struct imap_search_program *prog = parse_ok(
		"RETURN (min MAX COUNT save) CHARSET US-ASCII MODSEQ 620162338 "
		"MODSEQ \"/flags/\\\\draft\" all 9223372036854775807 OLDER 60 YOUNGER 1", &cmd);
	const struct imap_search_key *k = prog->root->children;

	assert_true(prog->esearch);
	assert_int_equal(prog->return_opts, IMAP_SEARCH_RETURN_MIN | IMAP_SEARCH_RETURN_MAX |
					    IMAP_SEARCH_RETURN_COUNT | IMAP_SEARCH_RETURN_SAVE);
	assert_true(prog->uses_modseq);
	assert_int_equal(k[0].type, IMAP_SK_MODSEQ);
	assert_int_equal(k[0].number, 620162338);
	assert_null(k[0].str);
	assert_string_equal(k[1].str, "/flags/\\draft");
	assert_int_equal(k[1].entry_type, IMAP_SEARCH_ENTRY_ALL);
	assert_true(k[1].number == INT64_MAX);
	assert_int_equal(k[2].type, IMAP_SK_OLDER);
	assert_int_equal(k[3].type, IMAP_SK_YOUNGER);
	done(prog, cmd);

	prog = parse_ok("RETURN () ALL", &cmd);
	assert_true(prog->esearch);
	assert_int_equal(prog->return_opts, IMAP_SEARCH_RETURN_ALL);
	assert_false(prog->uses_modseq);
	done(prog, cmd);
}

/* LARGER and SMALLER take number64 (RFC 9051 §9), so a client can ask for
 * messages over 4 GB. */
static void test_number64(void **state)
{
	(void)state;
	struct imap_cmd *cmd;
	struct imap_search_program *prog =
		parse_ok("LARGER 4294967296 SMALLER 9223372036854775807", &cmd);
	assert_int_equal(prog->root->children[0].type, IMAP_SK_LARGER);
	assert_true(prog->root->children[0].number == 4294967296ull);
	assert_true(prog->root->children[1].number == 9223372036854775807ull);
	done(prog, cmd);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("", IMAP_SEARCH_PARSE_BAD, "Missing search key");
	expect_error("CHARSET KOI8-R ALL", IMAP_SEARCH_PARSE_BADCHARSET, "Unsupported charset");
	expect_error("CHARSET", IMAP_SEARCH_PARSE_BAD, "Missing or invalid search argument");
	expect_error("FOO", IMAP_SEARCH_PARSE_BAD, "Unknown search key");
	expect_error("\"ALL\"", IMAP_SEARCH_PARSE_BAD, "Unknown search key");
	expect_error("SINCE 30-Feb-2000", IMAP_SEARCH_PARSE_BAD, "Invalid date");
	expect_error("SINCE 1-Foo-2000", IMAP_SEARCH_PARSE_BAD, "Invalid date");
	expect_error("SINCE 1-Feb-94", IMAP_SEARCH_PARSE_BAD, "Invalid date");
	expect_error("SINCE", IMAP_SEARCH_PARSE_BAD, "Invalid date");
	/* RFC 9051 number64: up to 2^63-1 */
	expect_error("LARGER 9223372036854775808", IMAP_SEARCH_PARSE_BAD, "Invalid number");
	expect_error("SMALLER 18446744073709551616", IMAP_SEARCH_PARSE_BAD, "Invalid number");
	expect_error("SMALLER -1", IMAP_SEARCH_PARSE_BAD, "Invalid number");
	expect_error("OLDER 4294967296", IMAP_SEARCH_PARSE_BAD, "Invalid number");
	expect_error("LARGER x", IMAP_SEARCH_PARSE_BAD, "Invalid number");
	expect_error("OLDER 0", IMAP_SEARCH_PARSE_BAD, "Invalid number");
	expect_error("1:0", IMAP_SEARCH_PARSE_BAD, "Invalid sequence set");
	expect_error("UID abc", IMAP_SEARCH_PARSE_BAD, "Invalid sequence set");
	expect_error("OR SEEN", IMAP_SEARCH_PARSE_BAD, "Missing search key");
	expect_error("NOT", IMAP_SEARCH_PARSE_BAD, "Missing search key");
	expect_error("()", IMAP_SEARCH_PARSE_BAD, "Missing search key");
	expect_error("KEYWORD \\Seen", IMAP_SEARCH_PARSE_BAD, "Invalid keyword");
	expect_error("HEADER From", IMAP_SEARCH_PARSE_BAD, "Missing or invalid search argument");
	expect_error("RETURN (FOO) ALL", IMAP_SEARCH_PARSE_BAD, "Invalid RETURN option");
	expect_error("RETURN ALL", IMAP_SEARCH_PARSE_BAD, "Invalid RETURN option");
	expect_error("MODSEQ 9223372036854775808", IMAP_SEARCH_PARSE_BAD, "Invalid MODSEQ");
	expect_error("MODSEQ \"/flags/x\" bogus 5", IMAP_SEARCH_PARSE_BAD, "Invalid MODSEQ");

	char deep[400];
	size_t n = 0;
	for (int i = 0; i < TERN_SEARCH_DEPTH_MAX + 1; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "NOT ");
	snprintf(deep + n, sizeof(deep) - n, "ALL");
	expect_error(deep, IMAP_SEARCH_PARSE_BAD, "Search program nested too deeply");
}

static void test_body_keys_are_bounded(void **state)
{
	(void)state;
	char args[1024];
	size_t n = 0;
	/* the bound counts BODY and TEXT keys anywhere in the program */
	for (int i = 0; i < TERN_SEARCH_BODY_KEYS_MAX; i++)
		n += (size_t)snprintf(args + n, sizeof(args) - n, i % 2 ? "(NOT BODY b%d) " :
				      "OR TEXT t%d SEEN ", i);
	snprintf(args + n, sizeof(args) - n, "ALL");
	struct imap_cmd *cmd = NULL;
	struct imap_search_program *prog = parse_ok(args, &cmd);
	imap_search_program_free(&prog);
	imap_cmd_free(&cmd);
	snprintf(args + n, sizeof(args) - n, "(HEADER Subject x BODY one-too-many)");
	expect_error(args, IMAP_SEARCH_PARSE_BAD, "Too many BODY/TEXT keys in one search");
}

static void test_dates(void **state)
{
	(void)state;
	int64_t day, t;
	int tz;
	char buf[IMAP_DATETIME_SIZE];

	assert_int_equal(imap_date_parse("1-Jan-1970", 10, &day), 0);
	assert_int_equal(day, 0);
	assert_int_equal(imap_date_parse("31-Dec-1969", 11, &day), 0);
	assert_int_equal(day, -1);
	assert_int_equal(imap_date_parse("29-Feb-2000", 11, &day), 0);
	assert_int_equal(imap_date_parse("29-Feb-1900", 11, &day), -1);
	assert_int_equal(imap_date_parse("1-Feb-1994 ", 11, &day), -1);
	assert_int_equal(imap_date_parse("001-Feb-1994", 12, &day), -1);

	static const char dt[] = "17-Jul-1996 02:44:25 -0700";
	assert_int_equal(imap_datetime_parse(dt, 26, &t, &tz), 0);
	assert_int_equal(t, 837596665);
	assert_int_equal(tz, -420);
	assert_int_equal(imap_datetime_format(t, tz, buf), 0);
	assert_string_equal(buf, dt);
	assert_int_equal(imap_datetime_parse(" 7-Jul-1996 02:44:25 +0130", 26, &t, &tz), 0);
	assert_int_equal(tz, 90);
	assert_int_equal(imap_datetime_format(t, tz, buf), 0);
	assert_string_equal(buf, "07-Jul-1996 02:44:25 +0130");
	assert_int_equal(imap_datetime_format(0, 0, buf), 0);
	assert_string_equal(buf, "01-Jan-1970 00:00:00 +0000");
	assert_int_equal(imap_datetime_format(-1, 0, buf), 0);
	assert_string_equal(buf, "31-Dec-1969 23:59:59 +0000");

	static const char *const bad[] = {
		"7-Jul-1996 02:44:25 -0700", "17-Jul-1996 24:44:25 -0700", "17-Jul-1996 02:60:25 -0700",
		"17-Jul-1996 02:44:25 0700", "17-Jul-1996 02:44:25 -07000", "17-Jul-1996T02:44:25 -0700",
		"32-Jul-1996 02:44:25 -0700", "17-Jul-1996 02:44:25 -0760", "17 Jul 1996 02:44:25 -0700",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(imap_datetime_parse(bad[i], strlen(bad[i]), &t, &tz), -1);

	/* Calendar helpers agree with each other over a long span. */
	for (int64_t d = -800000; d < 800000; d += 97) {
		int64_t y;
		unsigned m, dd;
		imap_civil_from_days(d, &y, &m, &dd);
		assert_int_equal(imap_days_from_civil(y, m, dd), d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_keys),
		cmocka_unit_test(test_body_keys_are_bounded),
		cmocka_unit_test(test_savedate_objectid_keys),
		cmocka_unit_test(test_return_partial),
		cmocka_unit_test(test_strings_and_headers),
		cmocka_unit_test(test_or_not_lists_sets),
		cmocka_unit_test(test_return_and_modseq),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_number64),
		cmocka_unit_test(test_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
