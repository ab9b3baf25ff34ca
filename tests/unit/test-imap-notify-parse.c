/* Unit tests for the NOTIFY argument parser (src/proto/imap/notify-parse.c,
 * RFC 5465 section 8): filters, events, fetch attributes, the pairing rules
 * of section 5, BADEVENT for events Tern does not report, BAD for syntax.
 * Commands go through the real command parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/notify-parse.h"
#include "proto/imap/parser.h"

/* "t NOTIFY <args>" through the command parser. */
static struct imap_cmd *command(const char *args)
{
	struct imap_parser_limits lim = { 8192, 1024, 1024 };
	struct imap_parser *p = imap_parser_new(&lim);
	char line[8300];
	size_t n = (size_t)snprintf(line, sizeof(line), "t NOTIFY %s\r\n", args);
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t used;
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)line, n, &used, &cmd, &err),
			 TERN_PARSE_OK);
	imap_parser_free(&p);
	return cmd;
}

static int parse(const char *args, struct imap_notify_spec *spec, const char **bad)
{
	struct imap_cmd *cmd = command(args);
	*bad = NULL;
	int r = imap_notify_parse(cmd->args, cmd->arg_count, spec, bad);
	imap_cmd_free(&cmd);
	return r;
}

static void expect_bad(const char *args)
{
	struct imap_notify_spec spec;
	const char *bad;
	int r = parse(args, &spec, &bad);
	if (r != IMAP_NOTIFY_PARSE_BAD)
		fail_msg("NOTIFY %s: got %d, expected BAD", args, r);
	assert_non_null(bad);
}

static void expect_badevent(const char *args)
{
	struct imap_notify_spec spec;
	const char *bad;
	assert_int_equal(parse(args, &spec, &bad), IMAP_NOTIFY_PARSE_BADEVENT);
}

static void test_none(void **state)
{
	(void)state;
	struct imap_notify_spec spec;
	const char *bad;
	assert_int_equal(parse("NONE", &spec, &bad), IMAP_NOTIFY_PARSE_OK);
	assert_true(spec.none);
	assert_int_equal(parse("none", &spec, &bad), IMAP_NOTIFY_PARSE_OK);
	assert_true(spec.none);
	expect_bad("NONE NONE");
}

static void test_brief_example(void **state)
{
	(void)state;
	struct imap_cmd *cmd = command(
		"SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
		"(PERSONAL (MessageNew MessageExpunge MailboxName SubscriptionChange))");
	struct imap_notify_spec spec;
	const char *bad = NULL;
	assert_int_equal(imap_notify_parse(cmd->args, cmd->arg_count, &spec, &bad),
			 IMAP_NOTIFY_PARSE_OK);
	assert_false(spec.none);
	assert_false(spec.status);
	assert_int_equal(spec.count, 2);
	assert_int_equal(spec.groups[0].filter, IMAP_NOTIFY_SELECTED);
	assert_int_equal(spec.groups[0].events, IMAP_NOTIFY_MESSAGE_NEW |
			 IMAP_NOTIFY_MESSAGE_EXPUNGE | IMAP_NOTIFY_FLAG_CHANGE);
	assert_int_equal(spec.groups[0].fetch_att_count, 2);
	assert_string_equal(spec.groups[0].fetch_atts[0].str, "UID");
	assert_string_equal(spec.groups[0].fetch_atts[1].str, "FLAGS");
	assert_int_equal(spec.groups[1].filter, IMAP_NOTIFY_PERSONAL);
	assert_int_equal(spec.groups[1].events, IMAP_NOTIFY_MESSAGE_NEW |
			 IMAP_NOTIFY_MESSAGE_EXPUNGE | IMAP_NOTIFY_MAILBOX_NAME |
			 IMAP_NOTIFY_SUBSCRIPTION_CHANGE);
	assert_int_equal(spec.groups[1].fetch_att_count, 0);
	imap_cmd_free(&cmd);
}

static void test_filters(void **state)
{
	(void)state;
	struct imap_notify_spec spec;
	const char *bad;
	assert_int_equal(parse("set status (selected-delayed (MessageNew MessageExpunge)) "
			       "(inboxes (messagenew messageexpunge)) (subscribed NONE) "
			       "(subtree Lists (MessageNew MessageExpunge)) "
			       "(mailboxes (misc \"a b\" {3+}\r\nx y) (MailboxName))",
			       &spec, &bad),
			 IMAP_NOTIFY_PARSE_OK);
	assert_true(spec.status);
	assert_int_equal(spec.count, 5);
	assert_int_equal(spec.groups[0].filter, IMAP_NOTIFY_SELECTED_DELAYED);
	assert_int_equal(spec.groups[1].filter, IMAP_NOTIFY_INBOXES);
	assert_int_equal(spec.groups[1].events,
			 IMAP_NOTIFY_MESSAGE_NEW | IMAP_NOTIFY_MESSAGE_EXPUNGE);
	assert_int_equal(spec.groups[2].filter, IMAP_NOTIFY_SUBSCRIBED);
	assert_int_equal(spec.groups[2].events, 0);
	assert_int_equal(spec.groups[3].filter, IMAP_NOTIFY_SUBTREE);
	assert_int_equal(spec.groups[3].mailbox_count, 1);
	assert_int_equal(spec.groups[4].filter, IMAP_NOTIFY_MAILBOXES);
	assert_int_equal(spec.groups[4].mailbox_count, 3);
	assert_int_equal(spec.groups[4].events, IMAP_NOTIFY_MAILBOX_NAME);
}

static void test_badevent(void **state)
{
	(void)state;
	expect_badevent("SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))");
	expect_badevent("SET (PERSONAL (MailboxMetadataChange))");
	expect_badevent("SET (PERSONAL (ServerMetadataChange))");
	expect_badevent("SET (PERSONAL (SomethingNew))");
	/* syntax first: a BAD command is BAD even with an unknown event */
	expect_bad("SET (PERSONAL (SomethingNew)) (NOWHERE NONE)");
}

static void test_bad(void **state)
{
	(void)state;
	expect_bad("");
	expect_bad("SET");
	expect_bad("SET STATUS");
	expect_bad("GET (PERSONAL NONE)");
	expect_bad("SET PERSONAL");
	expect_bad("SET (PERSONAL)");
	expect_bad("SET (PERSONAL ())");
	expect_bad("SET (PERSONAL MessageNew)");
	expect_bad("SET (PERSONAL (\"MessageNew\" MessageExpunge))");
	expect_bad("SET (PERSONAL (MessageNew MessageExpunge) extra)");
	expect_bad("SET ((PERSONAL) (MessageNew MessageExpunge))");
	expect_bad("SET (NOWHERE (MessageNew MessageExpunge))");
	expect_bad("SET (SUBTREE (MessageNew MessageExpunge))");
	expect_bad("SET (MAILBOXES () (MessageNew MessageExpunge))");
	expect_bad("SET (MAILBOXES (a (b)) (MessageNew MessageExpunge))");
	expect_bad("SET (MAILBOXES a)");
	/* section 5: the pairs */
	expect_bad("SET (PERSONAL (MessageNew))");
	expect_bad("SET (PERSONAL (MessageExpunge))");
	expect_bad("SET (PERSONAL (FlagChange))");
	expect_bad("SET (PERSONAL (FlagChange MessageNew))");
	/* fetch attributes: for the selected mailbox, and not empty */
	expect_bad("SET (PERSONAL (MessageNew (UID) MessageExpunge))");
	expect_bad("SET (SELECTED (MessageNew () MessageExpunge))");
	expect_bad("SET (SELECTED (MessageExpunge (UID) MessageNew))");
	/* the selected mailbox takes message events only */
	expect_bad("SET (SELECTED (MailboxName))");
	expect_bad("SET (SELECTED-DELAYED (MessageNew MessageExpunge SubscriptionChange))");
	/* one SELECTED filter */
	expect_bad("SET (SELECTED NONE) (SELECTED-DELAYED NONE)");
	expect_bad("SET (SELECTED NONE) (SELECTED NONE)");
}

static void test_limits(void **state)
{
	(void)state;
	char args[8192];
	size_t n = (size_t)snprintf(args, sizeof(args), "SET");
	for (int i = 0; i <= IMAP_NOTIFY_MAX_GROUPS; i++)
		n += (size_t)snprintf(args + n, sizeof(args) - n, " (PERSONAL NONE)");
	expect_bad(args);
	/* exactly the limit is fine */
	n = (size_t)snprintf(args, sizeof(args), "SET");
	for (int i = 0; i < IMAP_NOTIFY_MAX_GROUPS; i++)
		n += (size_t)snprintf(args + n, sizeof(args) - n, " (PERSONAL NONE)");
	struct imap_notify_spec spec;
	const char *bad;
	assert_int_equal(parse(args, &spec, &bad), IMAP_NOTIFY_PARSE_OK);
	assert_int_equal(spec.count, IMAP_NOTIFY_MAX_GROUPS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_brief_example),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_badevent),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
