/* POP3 RETR/TOP helpers: which lines get a stuffed '.', how much TOP sends,
 * the UIDL format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/pop3/message.h"

/* Applies the stuffing the way the session does, into a string. */
static char *stuff(const char *data)
{
	size_t size = strlen(data), pos = 0, scan = 0, dot, o = 0;
	char *out = calloc(1, size * 2 + 1);
	while ((dot = pop3_next_dot_line(data, size, scan)) < size) {
		memcpy(out + o, data + pos, dot - pos);
		o += dot - pos;
		out[o++] = '.';
		pos = dot;
		scan = dot + 1;
	}
	memcpy(out + o, data + pos, size - pos);
	return out;
}

static void test_dot_lines(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } cases[] = {
		{"", ""},
		{"abc\r\n", "abc\r\n"},
		{".abc\r\n", "..abc\r\n"},
		{"a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n"},
		{"a\r\n..x\r\n...\r\n", "a\r\n...x\r\n....\r\n"},
		{"a.b\r\n x.\r\n", "a.b\r\n x.\r\n"},
		{"a\n.b\n.", "a\n..b\n.."},
		{".", ".."},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = stuff(cases[i].in);
		assert_string_equal(got, cases[i].out);
		free(got);
	}
	assert_int_equal(pop3_next_dot_line("abc", 3, 5), 3);
}

static void test_top_length(void **state)
{
	(void)state;
	const char *m = "Subject: x\r\nFrom: y\r\n\r\nl1\r\nl2\r\nl3\r\n";
	size_t n = strlen(m);
	size_t head = strlen("Subject: x\r\nFrom: y\r\n\r\n");
	assert_int_equal(pop3_top_length(m, n, 0), head);
	assert_int_equal(pop3_top_length(m, n, 1), head + 4);
	assert_int_equal(pop3_top_length(m, n, 3), n);
	assert_int_equal(pop3_top_length(m, n, 100), n);
	/* no blank line: all of it is header */
	const char *h = "Subject: x\r\nFrom: y\r\n";
	assert_int_equal(pop3_top_length(h, strlen(h), 0), strlen(h));
	/* bare LF line ends, and a body without a final line end */
	const char *lf = "A: b\n\nbody1\nbody2";
	assert_int_equal(pop3_top_length(lf, strlen(lf), 0), 6);
	assert_int_equal(pop3_top_length(lf, strlen(lf), 1), 12);
	assert_int_equal(pop3_top_length(lf, strlen(lf), 2), strlen(lf));
	/* empty header */
	assert_int_equal(pop3_top_length("\r\nbody\r\n", 8, 0), 2);
	assert_int_equal(pop3_top_length("", 0, 5), 0);
}

static void test_uidl(void **state)
{
	(void)state;
	char buf[32];
	pop3_uidl_format(buf, sizeof(buf), 1700000000u, 42);
	assert_string_equal(buf, "1700000000.42");
	pop3_uidl_format(buf, sizeof(buf), UINT32_MAX, UINT32_MAX);
	assert_string_equal(buf, "4294967295.4294967295");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dot_lines),
		cmocka_unit_test(test_top_length),
		cmocka_unit_test(test_uidl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
