/* ternctl's pure helpers: cell formatting, table and JSON rendering, and the
 * split of global options out of the command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/ctl-cli.h"
#include "admin/ctl-output.h"
#include "store/store.h"

static void test_format_time(void **state)
{
	(void)state;
	char buf[32];
	ctl_format_time(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	ctl_format_time(1795600800, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-25T10:00:00Z");
}

static void test_format_size(void **state)
{
	(void)state;
	char buf[32];
	ctl_format_size(0, buf, sizeof(buf));
	assert_string_equal(buf, "0");
	ctl_format_size(1500, buf, sizeof(buf));
	assert_string_equal(buf, "1500");
	ctl_format_size(2048, buf, sizeof(buf));
	assert_string_equal(buf, "2K");
	ctl_format_size(100ull << 20, buf, sizeof(buf));
	assert_string_equal(buf, "100M");
	ctl_format_size(3ull << 30, buf, sizeof(buf));
	assert_string_equal(buf, "3G");
	ctl_format_size((1ull << 30) + 1024, buf, sizeof(buf));
	assert_string_equal(buf, "1048577K");
}

static void test_flags_json(void **state)
{
	(void)state;
	json_t *f = ctl_flags_json(STORE_FLAG_FLAGGED | STORE_FLAG_SEEN, "  $Label1 work ");
	char *s = json_dumps(f, JSON_COMPACT);
	assert_string_equal(s, "[\"\\\\Seen\",\"\\\\Flagged\",\"$Label1\",\"work\"]");
	free(s);
	json_decref(f);

	f = ctl_flags_json(0, NULL);
	assert_int_equal(json_array_size(f), 0);
	char *text = ctl_cell_text(f, CTL_COL_LIST);
	assert_string_equal(text, "-");
	free(text);
	json_decref(f);

	f = ctl_flags_json(STORE_FLAG_DRAFT | STORE_FLAG_DELETED | STORE_FLAG_ANSWERED, "");
	text = ctl_cell_text(f, CTL_COL_LIST);
	assert_string_equal(text, "\\Answered \\Deleted \\Draft");
	free(text);
	json_decref(f);
}

static void test_json_string_repairs_utf8(void **state)
{
	(void)state;
	json_t *v = ctl_json_string("caf\xc3\xa9");
	assert_non_null(v);
	assert_string_equal(json_string_value(v), "caf\xc3\xa9");
	json_decref(v);

	/* A lone continuation byte, an overlong '/', a surrogate, a cut sequence. */
	v = ctl_json_string("a\x80" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x82");
	assert_non_null(v);
	assert_string_equal(json_string_value(v),
			    "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
			    "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
			    "d\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(v);

	v = ctl_json_string(NULL);
	assert_true(json_is_null(v));
}

static void test_cell_text(void **state)
{
	(void)state;
	json_t *v = json_string("evil\r\nsubject\x1b[2J");
	char *t = ctl_cell_text(v, CTL_COL_STR);
	assert_string_equal(t, "evil??subject?[2J");
	free(t);
	json_decref(v);

	t = ctl_cell_text(json_null(), CTL_COL_STR);
	assert_string_equal(t, "-");
	free(t);
	v = json_string("");
	t = ctl_cell_text(v, CTL_COL_STR);
	assert_string_equal(t, "-");
	free(t);
	json_decref(v);
	t = ctl_cell_text(json_true(), CTL_COL_BOOL);
	assert_string_equal(t, "yes");
	free(t);
	v = json_integer(0);
	t = ctl_cell_text(v, CTL_COL_QUOTA);
	assert_string_equal(t, "default");
	free(t);
	json_decref(v);
	v = json_integer(100ll << 20);
	t = ctl_cell_text(v, CTL_COL_QUOTA);
	assert_string_equal(t, "100M");
	free(t);
	json_decref(v);

	assert_int_equal(ctl_text_width("Entw\xc3\xbc" "rfe"), 8);
}

static json_t *sample_rows(void)
{
	json_t *rows = json_array();
	json_array_append_new(rows, json_pack("{s:s, s:i, s:b, s:n}", "name", "INBOX",
					      "messages", 12345, "subscribed", 1, "special_use"));
	json_array_append_new(rows, json_pack("{s:s, s:i, s:b, s:s}", "name",
					      "Entw\xc3\xbc" "rfe", "messages", 7, "subscribed", 0,
					      "special_use", "\\Drafts"));
	return rows;
}

static const struct ctl_column sample_cols[] = {
	{"name", CTL_COL_STR}, {"messages", CTL_COL_NUM}, {"special_use", CTL_COL_STR},
	{"subscribed", CTL_COL_BOOL},
};

static char *render(bool json, json_t *rows)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(ctl_output_table(f, sample_cols, 4, rows, json), 0);
	fclose(f);
	return buf;
}

static void test_table_text(void **state)
{
	(void)state;
	json_t *rows = sample_rows();
	char *out = render(false, rows);
	/* Names padded by display width (ü is one column), numbers right-aligned,
	 * no trailing blanks. */
	assert_string_equal(out,
			    "NAME      MESSAGES  SPECIAL_USE  SUBSCRIBED\n"
			    "INBOX        12345  -            yes\n"
			    "Entw\xc3\xbc" "rfe         7  \\Drafts      no\n");
	free(out);
	json_decref(rows);

	rows = json_array();
	out = render(false, rows);
	assert_string_equal(out, "NAME  MESSAGES  SPECIAL_USE  SUBSCRIBED\n");
	free(out);
	json_decref(rows);
}

static void test_table_json(void **state)
{
	(void)state;
	json_t *rows = sample_rows();
	char *out = render(true, rows);
	json_error_t jerr;
	json_t *back = json_loads(out, 0, &jerr);
	assert_non_null(back);
	assert_true(json_equal(back, rows));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(back, 0), "messages")),
			 12345);
	assert_true(json_is_false(json_object_get(json_array_get(back, 1), "subscribed")));
	json_decref(back);
	free(out);
	json_decref(rows);
}

static void test_object_text(void **state)
{
	(void)state;
	json_t *obj = json_pack("{s:s, s:s, s:i, s:s, s:i}", "name", "alice", "home", "node1",
				"epoch", 3, "state", "active", "quota", 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(ctl_output_object(f, ctl_user_columns, ctl_user_columns_count, obj,
					   false), 0);
	fclose(f);
	assert_string_equal(buf,
			    "name:   alice\n"
			    "home:   node1\n"
			    "epoch:  3\n"
			    "state:  active\n"
			    "quota:  default\n");
	free(buf);
	json_decref(obj);
}

static void test_cli_split(void **state)
{
	(void)state;
	char *argv[] = {"ternctl", "user", "--json", "add", "bob", "--hash", "--json",
			"--config", "/tmp/t.conf", "--home=n2", NULL};
	int argc = 10;
	char *rest[10];
	int n = -1;
	char err[128];
	struct ctl_global g;
	assert_int_equal(ctl_cli_split(argc, argv, &g, rest, &n, err, sizeof(err)), 0);
	assert_true(g.json);
	assert_false(g.help);
	assert_string_equal(g.config, "/tmp/t.conf");
	/* "--json" right after --hash is the hash's value, not the option. */
	assert_int_equal(n, 6);
	assert_string_equal(rest[0], "user");
	assert_string_equal(rest[1], "add");
	assert_string_equal(rest[2], "bob");
	assert_string_equal(rest[3], "--hash");
	assert_string_equal(rest[4], "--json");
	assert_string_equal(rest[5], "--home=n2");

	char *argv2[] = {"ternctl", "--config=/x.conf", "mailbox", "list", "a", "--", "--json",
			 NULL};
	assert_int_equal(ctl_cli_split(7, argv2, &g, rest, &n, err, sizeof(err)), 0);
	assert_false(g.json);
	assert_string_equal(g.config, "/x.conf");
	assert_int_equal(n, 5);
	assert_string_equal(rest[4], "--json");

	char *argv3[] = {"ternctl", "user", "list", "--config", NULL};
	assert_int_equal(ctl_cli_split(4, argv3, &g, rest, &n, err, sizeof(err)), -1);
	assert_string_equal(err, "--config needs a FILE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_flags_json),
		cmocka_unit_test(test_json_string_repairs_utf8),
		cmocka_unit_test(test_cell_text),
		cmocka_unit_test(test_table_text),
		cmocka_unit_test(test_table_json),
		cmocka_unit_test(test_object_text),
		cmocka_unit_test(test_cli_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
