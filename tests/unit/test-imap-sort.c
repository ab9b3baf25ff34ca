/* Unit tests for the SORT building blocks: base subject extraction (RFC 5256
 * §2.1), comparator keys, the ENVELOPE reader, the SORT/THREAD argument
 * parsers and the multi-key ordering with REVERSE and its tie break. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/parser.h"
#include "proto/imap/sort-envelope.h"
#include "proto/imap/sort-order.h"
#include "proto/imap/sort-parse.h"
#include "proto/imap/sort-subject.h"
#include "store/mime.h"

static void base(const char *in, const char *want, bool want_reply)
{
	bool reply = !want_reply;
	char *got = imap_base_subject(in, &reply);
	assert_non_null(got);
	assert_string_equal(got, want);
	assert_int_equal(reply, want_reply);
	free(got);
}

static void test_base_subject(void **state)
{
	(void)state;
	base("Hello", "Hello", false);
	base("Re: Hello", "Hello", true);
	base("RE:re: Fwd:  Hello  ", "Hello", true);
	base("Fw: Hello", "Hello", true);
	base("Re [2]: Hello", "Hello", true);
	base("[list] Re: Hello", "Hello", true);
	base("[list] Hello", "Hello", false);
	base("[only-blob]", "[only-blob]", false);
	base("Hello (fwd)", "Hello", true);
	base("Hello (FWD) (fwd)  ", "Hello", true);
	base("[Fwd: Re: Hello]", "Hello", true);
	base("[fwd: [fwd: Hello]]", "Hello", true);
	base("Re:", "", true);
	base("", "", false);
	base("  \tspaced\r\n  out  ", "spaced out", false);
	base("Re: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", "Grüße", true);
	base("=?UTF-8?Q?Re=3A_Fwd=3A_x?=", "x", true);
	base("Reply all", "Reply all", false);
	base("Re:Re:Re:", "", true);
}

static void test_keys(void **state)
{
	(void)state;
	char *a = imap_sort_unicode_key("apple"), *b = imap_sort_unicode_key("APPLE");
	assert_string_equal(a, b);
	free(a);
	free(b);
	a = imap_sort_unicode_key("ärger");
	b = imap_sort_unicode_key("Bob");
	assert_true(strcmp(a, b) < 0);          /* Ä decomposes to A + diaeresis */
	free(a);
	free(b);
	a = imap_sort_ascii_key("mIxEd_9");
	assert_string_equal(a, "MIXED_9");
	free(a);
}

static const char env[] =
	"(\"Mon, 1 Jan 2024 10:00:00 +0000\" \"Re: x\" "
	"((\"=?UTF-8?Q?J=C3=BCrgen?=\" NIL \"j\" \"x.test\")) NIL NIL "
	"((NIL NIL \"grp\" NIL)(NIL NIL \"to1\" \"t.test\")(NIL NIL NIL NIL)) "
	"((\"Quote \\\"q\\\"\" NIL \"cc\" \"c.test\")) NIL "
	"\"<irt@x>\" {7}\r\n<m@x.y>)";

static void test_envelope(void **state)
{
	(void)state;
	struct imap_env_addr a;
	assert_int_equal(imap_env_first_addr(env, IMAP_ENV_FROM, &a), 1);
	assert_string_equal(a.name, "=?UTF-8?Q?J=C3=BCrgen?=");
	assert_string_equal(a.mailbox, "j");
	assert_string_equal(a.host, "x.test");
	imap_env_addr_clear(&a);
	/* a group is its first address, by its name (RFC 5256) */
	assert_int_equal(imap_env_first_addr(env, IMAP_ENV_TO, &a), 1);
	assert_null(a.name);
	assert_string_equal(a.mailbox, "grp");
	assert_null(a.host);
	imap_env_addr_clear(&a);
	assert_int_equal(imap_env_first_addr(env, IMAP_ENV_CC, &a), 1);
	assert_string_equal(a.name, "Quote \"q\"");
	imap_env_addr_clear(&a);
	assert_int_equal(imap_env_first_addr(env, IMAP_ENV_BCC, &a), 0);
	char *s = imap_env_string(env, IMAP_ENV_MESSAGE_ID);
	assert_string_equal(s, "<m@x.y>");
	free(s);
	s = imap_env_string(env, IMAP_ENV_IN_REPLY_TO);
	assert_string_equal(s, "<irt@x>");
	free(s);
	/* the keys of a group: its name for TO and DISPLAYTO; a stray end
	 * marker before any address is skipped */
	struct imap_sort_msg m = { .seq = 1, .uid = 1 };
	assert_int_equal(imap_sort_fill_keys(&m, (1u << IMAP_SORT_TO) | (1u << IMAP_SORT_DISPLAYTO) |
						 (1u << IMAP_SORT_CC),
					     env, "x", 0), 0);
	char *want = imap_sort_unicode_key("grp");
	assert_string_equal(m.keys[IMAP_SORT_TO], "GRP");
	assert_string_equal(m.keys[IMAP_SORT_DISPLAYTO], want);
	assert_string_equal(m.keys[IMAP_SORT_CC], "CC");
	free(want);
	for (size_t i = 0; i <= IMAP_SORT_DISPLAYTO; i++)
		free(m.keys[i]);
	static const char stray[] = "(NIL NIL ((NIL NIL NIL NIL)(NIL NIL \"f\" \"x\")) NIL NIL NIL "
				    "NIL NIL NIL NIL)";
	assert_int_equal(imap_env_first_addr(stray, IMAP_ENV_FROM, &a), 1);
	assert_string_equal(a.mailbox, "f");
	imap_env_addr_clear(&a);
	/* malformed or truncated envelopes give nothing, never a crash */
	static const char *const bad[] = { "", "(", "(NIL NIL ((", "(NIL NIL ((\"a\" NIL",
					   "(NIL NIL {99}\r\nab)", "(\"unterminated" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(imap_env_first_addr(bad[i], IMAP_ENV_FROM, &a), 0);
		assert_null(imap_env_string(bad[i], IMAP_ENV_MESSAGE_ID));
	}
}

/* Parses a command line's arguments with the real IMAP parser. */
static struct imap_cmd *parse_line(const char *line)
{
	struct imap_parser_limits lim = { 4096, 4096, 4096 };
	struct imap_parser *p = imap_parser_new(&lim);
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t used = 0;
	enum tern_parse r = imap_parser_feed(p, (const uint8_t *)line, strlen(line), &used, &cmd,
					     &err);
	assert_int_equal(r, TERN_PARSE_OK);
	imap_parser_free(&p);
	return cmd;
}

static int sort_parse(const char *line, struct imap_sort_program **prog, const char **err)
{
	struct imap_cmd *cmd = parse_line(line);
	int r = imap_sort_parse(cmd->args, cmd->arg_count, prog, err);
	imap_cmd_free(&cmd);
	return r;
}

static void test_sort_parse(void **state)
{
	(void)state;
	struct imap_sort_program *prog = NULL;
	const char *err = NULL;
	assert_int_equal(sort_parse("a SORT (REVERSE date subject DISPLAYFROM) utf-8 UNSEEN\r\n",
				    &prog, &err), 0);
	assert_int_equal(prog->crit_count, 3);
	assert_int_equal(prog->crit[0].key, IMAP_SORT_DATE);
	assert_true(prog->crit[0].reverse);
	assert_int_equal(prog->crit[1].key, IMAP_SORT_SUBJECT);
	assert_false(prog->crit[1].reverse);
	assert_int_equal(prog->crit[2].key, IMAP_SORT_DISPLAYFROM);
	assert_int_equal(prog->search->charset, IMAP_SEARCH_CHARSET_UTF8);
	assert_false(prog->search->esearch);
	assert_int_equal(imap_sort_cache_needs(prog),
			 (1u << IMAP_SORT_DATE) | (1u << IMAP_SORT_SUBJECT) |
			 (1u << IMAP_SORT_DISPLAYFROM));
	imap_sort_program_free(&prog);
	assert_null(prog);
	assert_int_equal(sort_parse("a SORT RETURN (MIN COUNT) (SIZE) US-ASCII ALL\r\n", &prog,
				    &err), 0);
	assert_true(prog->search->esearch);
	assert_int_equal(prog->search->return_opts,
			 IMAP_SEARCH_RETURN_MIN | IMAP_SEARCH_RETURN_COUNT);
	imap_sort_program_free(&prog);
	assert_int_equal(sort_parse("a SORT RETURN () (SIZE) UTF-8 ALL\r\n", &prog, &err), 0);
	assert_int_equal(prog->search->return_opts, IMAP_SEARCH_RETURN_ALL);
	imap_sort_program_free(&prog);
	assert_int_equal(sort_parse("a SORT (SIZE) KOI8-R ALL\r\n", &prog, &err),
			 IMAP_SEARCH_PARSE_BADCHARSET);
	static const char *const bad[] = {
		"a SORT (FOO) UTF-8 ALL\r\n", "a SORT SIZE UTF-8 ALL\r\n", "a SORT () UTF-8 ALL\r\n",
		"a SORT (REVERSE) UTF-8 ALL\r\n", "a SORT (SIZE) UTF-8\r\n", "a SORT (SIZE)\r\n",
		"a SORT RETURN (SIZE) UTF-8 ALL\r\n", "a SORT RETURN\r\n",
		"a SORT (SIZE) UTF-8 CHARSET UTF-8 ALL\r\n", "a SORT (SIZE) UTF-8 BOGUS\r\n",
		"a SORT (SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE SIZE) UTF-8 ALL\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		assert_int_equal(sort_parse(bad[i], &prog, &err), IMAP_SEARCH_PARSE_BAD);
		assert_non_null(err);
	}
}

static void test_thread_parse(void **state)
{
	(void)state;
	struct imap_cmd *cmd = parse_line("a THREAD references UTF-8 SUBJECT x\r\n");
	struct imap_search_program *sp = NULL;
	enum imap_thread_algo algo = IMAP_THREAD_ORDEREDSUBJECT;
	const char *err = NULL;
	assert_int_equal(imap_thread_parse(cmd->args, cmd->arg_count, &algo, &sp, &err), 0);
	assert_int_equal(algo, IMAP_THREAD_REFERENCES);
	imap_search_program_free(&sp);
	imap_cmd_free(&cmd);
	cmd = parse_line("a THREAD REFS UTF-8 ALL\r\n");
	assert_int_equal(imap_thread_parse(cmd->args, cmd->arg_count, &algo, &sp, &err),
			 IMAP_SEARCH_PARSE_BAD);
	imap_cmd_free(&cmd);
	cmd = parse_line("a THREAD ORDEREDSUBJECT X-FOO ALL\r\n");
	assert_int_equal(imap_thread_parse(cmd->args, cmd->arg_count, &algo, &sp, &err),
			 IMAP_SEARCH_PARSE_BADCHARSET);
	imap_cmd_free(&cmd);
}

static void test_order(void **state)
{
	(void)state;
	struct imap_sort_program *prog = NULL;
	const char *err = NULL;
	struct imap_sort_msg *m = calloc(4, sizeof(*m));
	static const char *const envs[] = {
		"(NIL NIL ((\"Zed\" NIL \"zoe\" \"z\")) NIL NIL NIL NIL NIL NIL NIL)",
		"(NIL NIL ((NIL NIL \"bob\" \"b\")) NIL NIL NIL NIL NIL NIL NIL)",
		"(NIL NIL ((\"=?UTF-8?Q?=C3=84rger?=\" NIL \"carl\" \"c\")) NIL NIL NIL NIL NIL NIL NIL)",
		NULL,
	};
	static const char *const subj[] = { "Re: b", "a", "B", NULL };
	for (uint32_t i = 0; i < 4; i++) {
		m[i].seq = i + 1;
		m[i].uid = 10 * (i + 1);
		m[i].arrival = 100 - i;
		m[i].size = i == 2 ? 5 : 10;
		assert_int_equal(imap_sort_fill_keys(&m[i], 0x1ff, envs[i], subj[i],
						     i == 1 ? 0 : 1000 + i), 0);
	}
	assert_int_equal(m[1].date, 99);       /* no Date: INTERNALDATE */
	assert_int_equal(sort_parse("a SORT (SUBJECT) UTF-8 ALL\r\n", &prog, &err), 0);
	imap_sort_order(m, 4, prog);
	/* "" (4), A (2), B (1, 3 by seq) */
	assert_int_equal(m[0].seq, 4);
	assert_int_equal(m[1].seq, 2);
	assert_int_equal(m[2].seq, 1);
	assert_int_equal(m[3].seq, 3);
	imap_sort_program_free(&prog);
	assert_int_equal(sort_parse("a SORT (REVERSE SIZE DISPLAYFROM) UTF-8 ALL\r\n", &prog,
				    &err), 0);
	imap_sort_order(m, 4, prog);
	/* size 10: "" (4), bob@b (2), Zed (1); then size 5: Ärger (3) */
	assert_int_equal(m[0].seq, 4);
	assert_int_equal(m[1].seq, 2);
	assert_int_equal(m[2].seq, 1);
	assert_int_equal(m[3].seq, 3);
	imap_sort_program_free(&prog);
	assert_int_equal(sort_parse("a SORT (FROM) UTF-8 ALL\r\n", &prog, &err), 0);
	imap_sort_order(m, 4, prog);
	assert_int_equal(m[0].seq, 4);         /* "" */
	assert_int_equal(m[1].seq, 2);         /* BOB */
	assert_int_equal(m[2].seq, 3);         /* CARL */
	assert_int_equal(m[3].seq, 1);         /* ZOE */
	imap_sort_program_free(&prog);
	imap_sort_msgs_free(&m, 4);
	assert_null(m);
}

int main(void)
{
	mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_subject), cmocka_unit_test(test_keys),
		cmocka_unit_test(test_envelope),     cmocka_unit_test(test_sort_parse),
		cmocka_unit_test(test_thread_parse), cmocka_unit_test(test_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
