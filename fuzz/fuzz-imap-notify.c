/* libFuzzer target for the NOTIFY argument parser (proto/imap/notify-parse.c):
 * the input is an IMAP command line; its arguments go to imap_notify_parse.
 * Beyond "no crash": an accepted SET has 1..IMAP_NOTIFY_MAX_GROUPS groups,
 * event bits Tern knows, mailbox names only for SUBTREE/MAILBOXES and fetch
 * attributes only for a SELECTED filter with MessageNew, which has message
 * events only; a refusal names
 * its reason. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto/imap/notify-parse.h"
#include "proto/imap/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

#define ALL_EVENTS (IMAP_NOTIFY_MESSAGE_NEW | IMAP_NOTIFY_MESSAGE_EXPUNGE | \
		    IMAP_NOTIFY_FLAG_CHANGE | IMAP_NOTIFY_MAILBOX_NAME | \
		    IMAP_NOTIFY_SUBSCRIPTION_CHANGE)

static void check_spec(const struct imap_notify_spec *spec)
{
	if (spec->none) {
		CHECK(spec->count == 0);
		return;
	}
	CHECK(spec->count >= 1 && spec->count <= IMAP_NOTIFY_MAX_GROUPS);
	for (size_t i = 0; i < spec->count; i++) {
		const struct imap_notify_group *g = &spec->groups[i];
		bool named = g->filter == IMAP_NOTIFY_SUBTREE || g->filter == IMAP_NOTIFY_MAILBOXES;
		bool selected = g->filter == IMAP_NOTIFY_SELECTED ||
				g->filter == IMAP_NOTIFY_SELECTED_DELAYED;
		CHECK((g->events & ~(unsigned)ALL_EVENTS) == 0);
		CHECK(named == (g->mailbox_count > 0));
		CHECK(g->fetch_att_count == 0 ||
		      (selected && (g->events & IMAP_NOTIFY_MESSAGE_NEW) != 0));
		CHECK(!selected || (g->events & (IMAP_NOTIFY_MAILBOX_NAME |
						 IMAP_NOTIFY_SUBSCRIPTION_CHANGE)) == 0);
		unsigned msg = g->events & (IMAP_NOTIFY_MESSAGE_NEW | IMAP_NOTIFY_MESSAGE_EXPUNGE);
		CHECK(msg == 0 || msg == (IMAP_NOTIFY_MESSAGE_NEW | IMAP_NOTIFY_MESSAGE_EXPUNGE));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct imap_parser_limits limits = { 8192, 4096, 4096 };
	struct imap_parser *p = imap_parser_new(&limits);
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t used = 0;
	if (p == NULL)
		return 0;
	if (imap_parser_feed(p, data, size, &used, &cmd, &err) == TERN_PARSE_OK) {
		struct imap_notify_spec *spec = malloc(sizeof(*spec));
		const char *bad = NULL;
		if (spec != NULL) {
			int r = imap_notify_parse(cmd->args, cmd->arg_count, spec, &bad);
			if (r == IMAP_NOTIFY_PARSE_OK)
				check_spec(spec);
			else if (r == IMAP_NOTIFY_PARSE_BAD)
				CHECK(bad != NULL);
			else
				CHECK(r == IMAP_NOTIFY_PARSE_BADEVENT);
			free(spec);
		}
		imap_cmd_free(&cmd);
	}
	imap_parser_free(&p);
	return 0;
}
