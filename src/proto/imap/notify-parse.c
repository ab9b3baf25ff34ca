/* NOTIFY arguments (RFC 5465 section 8):
 *   notify        = "NOTIFY" SP (notify-set / notify-none)
 *   notify-none   = "NONE"
 *   notify-set    = "SET" [SP "STATUS"] SP event-group *(SP event-group)
 *   event-group   = "(" filter-mailboxes SP events ")"
 *   filter-mailboxes = "SELECTED" / "SELECTED-DELAYED" / "INBOXES" /
 *                   "PERSONAL" / "SUBSCRIBED" /
 *                   ("SUBTREE" SP one-or-more-mailbox) /
 *                   ("MAILBOXES" SP one-or-more-mailbox)
 *   events        = ("(" event *(SP event) ")") / "NONE"
 *   event         = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) /
 *                   "MessageExpunge" / "FlagChange" / "AnnotationChange" /
 *                   "MailboxName" / "SubscriptionChange" / ... / event-ext
 * A syntax error is BAD; an event Tern does not report (AnnotationChange,
 * the METADATA ones, an extension) is NO [BADEVENT] once the whole command
 * parsed. Section 5: MessageNew and MessageExpunge come together, and
 * FlagChange only with both; fetch attributes only for the selected
 * mailbox, which takes message events only (MailboxName and
 * SubscriptionChange come through the other filters); SELECTED and
 * SELECTED-DELAYED not both. */
#include "proto/imap/notify-parse.h"

#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum imap_notify_filter filter;
	bool takes_mailboxes;
} filters[] = {
	{"SELECTED", IMAP_NOTIFY_SELECTED, false},
	{"SELECTED-DELAYED", IMAP_NOTIFY_SELECTED_DELAYED, false},
	{"INBOXES", IMAP_NOTIFY_INBOXES, false},
	{"PERSONAL", IMAP_NOTIFY_PERSONAL, false},
	{"SUBSCRIBED", IMAP_NOTIFY_SUBSCRIBED, false},
	{"SUBTREE", IMAP_NOTIFY_SUBTREE, true},
	{"MAILBOXES", IMAP_NOTIFY_MAILBOXES, true},
};

static const struct {
	const char *name;
	unsigned bit;
} events[] = {
	{"MessageNew", IMAP_NOTIFY_MESSAGE_NEW},
	{"MessageExpunge", IMAP_NOTIFY_MESSAGE_EXPUNGE},
	{"FlagChange", IMAP_NOTIFY_FLAG_CHANGE},
	{"MailboxName", IMAP_NOTIFY_MAILBOX_NAME},
	{"SubscriptionChange", IMAP_NOTIFY_SUBSCRIPTION_CHANGE},
};

static bool is_selected(enum imap_notify_filter f)
{
	return f == IMAP_NOTIFY_SELECTED || f == IMAP_NOTIFY_SELECTED_DELAYED;
}

static bool is_mailbox(const struct imap_arg *a)
{
	const char *s;
	size_t len;
	return imap_arg_astring(a, &s, &len);
}

/* 0 ok, -1 bad. */
static int parse_mailboxes(const struct imap_arg *a, struct imap_notify_group *g,
			   size_t *total, const char **bad_r)
{
	if (a->type == IMAP_ARG_LIST) {
		g->mailboxes = a->list;
		g->mailbox_count = a->list_count;
	} else {
		g->mailboxes = a;
		g->mailbox_count = 1;
	}
	if (g->mailbox_count == 0) {
		*bad_r = "Mailbox names expected";
		return -1;
	}
	for (size_t i = 0; i < g->mailbox_count; i++) {
		if (!is_mailbox(&g->mailboxes[i])) {
			*bad_r = "Invalid mailbox name";
			return -1;
		}
	}
	*total += g->mailbox_count;
	if (*total > IMAP_NOTIFY_MAX_MAILBOXES) {
		*bad_r = "Too many mailboxes";
		return -1;
	}
	return 0;
}

/* 0 ok, -1 bad; *badevent set when an event is not supported. */
static int parse_events(const struct imap_arg *a, struct imap_notify_group *g, bool *badevent,
			const char **bad_r)
{
	const struct imap_arg *list;
	size_t count;

	if (imap_arg_is_atom_ci(a, "NONE")) {
		g->events = 0;
		return 0;
	}
	if (!imap_arg_list(a, &list, &count) || count == 0) {
		*bad_r = "Events expected in parentheses, or NONE";
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		const char *name;
		if (!imap_arg_atom(&list[i], &name)) {
			*bad_r = "Event name expected";
			return -1;
		}
		size_t k = 0;
		while (k < sizeof(events) / sizeof(events[0]) &&
		       strcasecmp(name, events[k].name) != 0)
			k++;
		if (k == sizeof(events) / sizeof(events[0])) {
			*badevent = true;
			continue;
		}
		g->events |= events[k].bit;
		if (events[k].bit == IMAP_NOTIFY_MESSAGE_NEW && i + 1 < count &&
		    list[i + 1].type == IMAP_ARG_LIST) {
			i++;
			if (!is_selected(g->filter)) {
				*bad_r = "MessageNew fetch attributes are for the selected mailbox only";
				return -1;
			}
			if (list[i].list_count == 0) {
				*bad_r = "Fetch attributes expected";
				return -1;
			}
			g->fetch_list = &list[i];
			g->fetch_atts = list[i].list;
			g->fetch_att_count = list[i].list_count;
		}
	}
	unsigned msg = g->events & (IMAP_NOTIFY_MESSAGE_NEW | IMAP_NOTIFY_MESSAGE_EXPUNGE);
	if (msg != 0 && msg != (IMAP_NOTIFY_MESSAGE_NEW | IMAP_NOTIFY_MESSAGE_EXPUNGE)) {
		*bad_r = "MessageNew and MessageExpunge go together";
		return -1;
	}
	if ((g->events & IMAP_NOTIFY_FLAG_CHANGE) != 0 && msg == 0) {
		*bad_r = "FlagChange needs MessageNew and MessageExpunge";
		return -1;
	}
	if (is_selected(g->filter) &&
	    (g->events & (IMAP_NOTIFY_MAILBOX_NAME | IMAP_NOTIFY_SUBSCRIPTION_CHANGE)) != 0) {
		*bad_r = "SELECTED takes message events only";
		return -1;
	}
	return 0;
}

static int parse_group(const struct imap_arg *a, struct imap_notify_group *g, size_t *total,
		       bool *badevent, const char **bad_r)
{
	const struct imap_arg *list;
	size_t count;
	const char *name;

	memset(g, 0, sizeof(*g));
	if (!imap_arg_list(a, &list, &count) || count < 2 || !imap_arg_atom(&list[0], &name)) {
		*bad_r = "Event group expected: (filter events)";
		return -1;
	}
	size_t k = 0;
	while (k < sizeof(filters) / sizeof(filters[0]) && strcasecmp(name, filters[k].name) != 0)
		k++;
	if (k == sizeof(filters) / sizeof(filters[0])) {
		*bad_r = "Unknown mailbox filter";
		return -1;
	}
	g->filter = filters[k].filter;
	size_t want = filters[k].takes_mailboxes ? 3 : 2;
	if (count != want) {
		*bad_r = filters[k].takes_mailboxes ? "Mailboxes and events expected"
						    : "Events expected after the filter";
		return -1;
	}
	if (filters[k].takes_mailboxes && parse_mailboxes(&list[1], g, total, bad_r) < 0)
		return -1;
	return parse_events(&list[count - 1], g, badevent, bad_r);
}

int imap_notify_parse(const struct imap_arg *args, size_t count,
		      struct imap_notify_spec *spec_r, const char **bad_r)
{
	struct imap_notify_spec *spec = spec_r;
	size_t i = 1, total = 0;
	bool badevent = false, selected = false;

	spec->none = false;
	spec->status = false;
	spec->count = 0;
	if (count == 1 && imap_arg_is_atom_ci(&args[0], "NONE")) {
		spec->none = true;
		return IMAP_NOTIFY_PARSE_OK;
	}
	if (count == 0 || !imap_arg_is_atom_ci(&args[0], "SET")) {
		*bad_r = "NOTIFY SET or NOTIFY NONE expected";
		return IMAP_NOTIFY_PARSE_BAD;
	}
	if (i < count && imap_arg_is_atom_ci(&args[i], "STATUS")) {
		spec->status = true;
		i++;
	}
	if (i == count) {
		*bad_r = "Event groups expected";
		return IMAP_NOTIFY_PARSE_BAD;
	}
	if (count - i > IMAP_NOTIFY_MAX_GROUPS) {
		*bad_r = "Too many event groups";
		return IMAP_NOTIFY_PARSE_BAD;
	}
	for (; i < count; i++) {
		struct imap_notify_group *g = &spec->groups[spec->count];
		if (parse_group(&args[i], g, &total, &badevent, bad_r) < 0)
			return IMAP_NOTIFY_PARSE_BAD;
		if (is_selected(g->filter)) {
			if (selected) {
				*bad_r = "SELECTED given twice";
				return IMAP_NOTIFY_PARSE_BAD;
			}
			selected = true;
		}
		spec->count++;
	}
	return badevent ? IMAP_NOTIFY_PARSE_BADEVENT : IMAP_NOTIFY_PARSE_OK;
}
