/* NOTIFY (RFC 5465). NOTIFY SET takes a snapshot of the user's folders
 * (counters, and names by folder id) and subscriptions; every change of the
 * user's store that server/notify.h reports is read against it (one folder
 * list and one subscription list, through the session's own store handle,
 * as STATUS and IDLE read) and what changed in a watched mailbox goes out:
 * - MessageNew/MessageExpunge (FlagChange) in a mailbox that is not
 *   selected: "* STATUS name (MESSAGES UIDNEXT UIDVALIDITY UNSEEN
 *   [HIGHESTMODSEQ])" when the count, UIDNEXT or UIDVALIDITY (with
 *   FlagChange also UNSEEN or the modseq) changed (section 5.2-5.4);
 * - in the selected mailbox, with a SELECTED filter, the usual EXISTS,
 *   EXPUNGE and FETCH FLAGS, also between commands (SELECTED-DELAYED keeps
 *   expunges for a command that may send them, section 5.1); with
 *   MessageNew (fetch-att ...) each new message's FETCH follows its EXISTS
 *   (never setting \Seen: BODY[...] is read as BODY.PEEK[...]);
 * - MailboxName: "* LIST () "/" name" for a new mailbox, with
 *   ("OLDNAME" (old)) for a renamed one, "(\NonExistent)" for a deleted one;
 * - SubscriptionChange: "* LIST (\Subscribed) "/" name" or "* LIST ()".
 * A mailbox takes the events of every group whose filter names it, in the
 * order the client gave them, up to the first such group that says NONE;
 * message events of the selected mailbox come only from a SELECTED filter.
 * INBOXES (section 6.1: the mailboxes an MDA delivers to) is INBOX and
 * every folder an LMTP recipient's +detail can name (delivery_target()).
 * Reports go out at once when the session is between commands or in IDLE,
 * else right after the current command's tagged reply. */
#include "proto/imap/cmd-notify.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/log.h"
#include "core/username.h"
#include "proto/imap/commands.h"
#include "proto/imap/fetch-parse.h"
#include "proto/imap/fetch-write.h"
#include "proto/imap/mailbox.h"
#include "proto/imap/notify-parse.h"
#include "store/store.h"

struct notify_group {
	enum imap_notify_filter filter;
	unsigned events;
	char **names;                  /* SUBTREE/MAILBOXES, store names, sorted */
	size_t name_count;
};

struct notify_folder {
	int64_t id;
	char *name;
	uint32_t uidvalidity, uidnext, messages, unseen;
	uint64_t highestmodseq;
};

struct imap_notify {
	struct notify_group *groups;
	size_t count;
	struct notify_folder *folders; /* sorted by id */
	size_t folder_count;
	char **subs;                   /* sorted by strcmp */
	size_t sub_count;
	bool pending;                  /* a change came during a command */
	bool loaded;                   /* the snapshot was read */
	/* MessageNew (fetch-att ...) of the SELECTED filter */
	struct imap_fetch_request *fetch;
	char *fetch_folder;            /* the view the UIDs below are of */
	uint32_t fetch_uidvalidity;
	uint32_t fetched_uid;          /* new messages are those above it */
};

static void snapshot_clear(struct imap_notify *n)
{
	for (size_t i = 0; i < n->folder_count; i++)
		free(n->folders[i].name);
	free(n->folders);
	n->folders = NULL;
	n->folder_count = 0;
	store_names_free(&n->subs, n->sub_count);
	n->sub_count = 0;
	n->loaded = false;
}

void imap_notify_free(struct imap_notify **_n)
{
	struct imap_notify *n = *_n;
	*_n = NULL;
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->count; i++) {
		for (size_t k = 0; k < n->groups[i].name_count; k++)
			free(n->groups[i].names[k]);
		free(n->groups[i].names);
	}
	free(n->groups);
	snapshot_clear(n);
	imap_fetch_request_free(&n->fetch);
	free(n->fetch_folder);
	free(n);
}

/* ---- which events a mailbox gets ---- */

static bool in_subtree(const struct notify_group *g, const char *name)
{
	for (size_t i = 0; i < g->name_count; i++) {
		size_t len = strlen(g->names[i]);
		if (strncmp(name, g->names[i], len) == 0 && (name[len] == '\0' || name[len] == '/'))
			return true;
	}
	return false;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* subs sorted by strcmp (snapshot_read sorts them) */
static bool sub_in(char **subs, size_t count, const char *name)
{
	return count > 0 && bsearch(&name, subs, count, sizeof(*subs), name_cmp) != NULL;
}

static bool subscribed(const struct imap_notify *n, const char *name)
{
	return sub_in(n->subs, n->sub_count, name);
}

/* True when LMTP may deliver into the folder: INBOX, or a folder that
 * "user+name@domain" names (the detail is what username_parse() takes
 * after the '+'; '<' and '>' would end or break the RCPT path). A name
 * with a space or 8-bit text cannot be a detail, so its folder gets mail
 * only by APPEND, COPY and MOVE. */
static bool delivery_target(const char *name)
{
	if (strcmp(name, "INBOX") == 0)
		return true;
	size_t len = strlen(name);
	if (len == 0 || len > TERN_FOLDER_NAME_MAX || strpbrk(name, "<>") != NULL)
		return false;
	char addr[TERN_FOLDER_NAME_MAX + 3], user[TERN_USERNAME_MAX + 1];
	char detail[TERN_FOLDER_NAME_MAX + 1];
	memcpy(addr, "x+", 2);
	memcpy(addr + 2, name, len + 1);
	return username_parse(addr, NULL, user, sizeof(user), detail, sizeof(detail)) == 0 &&
	       strcmp(detail, name) == 0;
}

/* The events the filters other than SELECTED give a mailbox (for the
 * selected one, is_selected() keeps its message events out). */
static unsigned events_for(const struct imap_notify *n, const char *name)
{
	unsigned events = 0;
	for (size_t i = 0; i < n->count; i++) {
		const struct notify_group *g = &n->groups[i];
		bool match = false;
		switch (g->filter) {
		case IMAP_NOTIFY_MAILBOXES: match = sub_in(g->names, g->name_count, name); break;
		case IMAP_NOTIFY_SUBTREE: match = in_subtree(g, name); break;
		case IMAP_NOTIFY_INBOXES: match = delivery_target(name); break;
		case IMAP_NOTIFY_SUBSCRIBED: match = subscribed(n, name); break;
		case IMAP_NOTIFY_PERSONAL: match = true; break;
		case IMAP_NOTIFY_SELECTED:
		case IMAP_NOTIFY_SELECTED_DELAYED: break;
		}
		if (!match)
			continue;
		if (g->events == 0)
			break;      /* NONE: nothing for this mailbox from later groups */
		events |= g->events;
	}
	return events;
}

/* The SELECTED/SELECTED-DELAYED group, or NULL. */
static const struct notify_group *selected_group(const struct imap_notify *n)
{
	for (size_t i = 0; i < n->count; i++)
		if (n->groups[i].filter == IMAP_NOTIFY_SELECTED ||
		    n->groups[i].filter == IMAP_NOTIFY_SELECTED_DELAYED)
			return &n->groups[i];
	return NULL;
}

static bool is_selected(const struct imap_session *s, const char *name)
{
	return s->view != NULL && strcmp(s->view->folder, name) == 0;
}

/* ---- snapshot ---- */

static int folder_cmp(const void *a, const void *b)
{
	int64_t x = ((const struct notify_folder *)a)->id;
	int64_t y = ((const struct notify_folder *)b)->id;
	return x < y ? -1 : x > y;
}

/* Reads the folders and subscriptions: 0, or -1 (*err_r). */
static int snapshot_read(struct imap_session *s, struct notify_folder **folders_r,
			 size_t *count_r, char ***subs_r, size_t *sub_count_r,
			 enum tern_error *err_r)
{
	struct store_folder *list = NULL;
	size_t count = 0;
	if (store_folder_list(s->store, &list, &count, err_r) < 0)
		return -1;
	struct notify_folder *folders = calloc(count > 0 ? count : 1, sizeof(*folders));
	if (folders == NULL) {
		store_folders_free(&list, count);
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		folders[i] = (struct notify_folder){
			.id = list[i].id, .name = list[i].name,
			.uidvalidity = list[i].uidvalidity, .uidnext = list[i].uidnext,
			.messages = list[i].messages, .unseen = list[i].unseen,
			.highestmodseq = list[i].highestmodseq,
		};
		list[i].name = NULL;   /* taken over */
	}
	store_folders_free(&list, count);
	qsort(folders, count, sizeof(*folders), folder_cmp);
	char **subs = NULL;
	size_t sub_count = 0;
	if (store_subscriptions(s->store, &subs, &sub_count, err_r) < 0) {
		for (size_t i = 0; i < count; i++)
			free(folders[i].name);
		free(folders);
		return -1;
	}
	if (sub_count > 1)
		qsort(subs, sub_count, sizeof(*subs), name_cmp);
	*folders_r = folders;
	*count_r = count;
	*subs_r = subs;
	*sub_count_r = sub_count;
	return 0;
}

static const struct notify_folder *find_folder(const struct notify_folder *folders,
					       size_t count, int64_t id)
{
	struct notify_folder key = {.id = id};
	return bsearch(&key, folders, count, sizeof(*folders), folder_cmp);
}

/* ---- output ---- */

static void write_status(struct imap_session *s, const struct notify_folder *f)
{
	imap_out_add(s, "* STATUS ", 9);
	imap_out_check(s, imap_name_write(s, imap_out(s), f->name));
	imap_out_printf(s, " (MESSAGES %u UIDNEXT %u UIDVALIDITY %u UNSEEN %u", f->messages,
			f->uidnext, f->uidvalidity, f->unseen);
	if (s->condstore)
		imap_out_printf(s, " HIGHESTMODSEQ %llu",
				(unsigned long long)(f->highestmodseq > 0 ? f->highestmodseq : 1));
	imap_out_add(s, ")\r\n", 3);
}

static void write_list(struct imap_session *s, const char *attrs, const char *name,
		       const char *oldname)
{
	imap_out_printf(s, "* LIST (%s) \"/\" ", attrs);
	imap_out_check(s, imap_name_write(s, imap_out(s), name));
	if (oldname != NULL) {
		imap_out_add(s, " (\"OLDNAME\" (", 13);
		imap_out_check(s, imap_name_write(s, imap_out(s), oldname));
		imap_out_add(s, "))", 2);
	}
	imap_out_add(s, "\r\n", 2);
}

/* ---- reporting ---- */

#define MSG_EVENTS (IMAP_NOTIFY_MESSAGE_NEW | IMAP_NOTIFY_MESSAGE_EXPUNGE)

static bool status_due(const struct notify_folder *old, const struct notify_folder *f,
		       unsigned events)
{
	if ((events & MSG_EVENTS) == 0)
		return false;
	if (old->messages != f->messages || old->uidnext != f->uidnext ||
	    old->uidvalidity != f->uidvalidity)
		return true;
	return (events & IMAP_NOTIFY_FLAG_CHANGE) != 0 &&
	       (old->unseen != f->unseen || old->highestmodseq != f->highestmodseq);
}

static const struct notify_folder *folder_named(const struct notify_folder *folders,
						size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(folders[i].name, name) == 0)
			return &folders[i];
	return NULL;
}

/* True when name is one side of a rename between the snapshot and the
 * folders now: RENAME carries the subscription along, and the rename's
 * own LIST says so, not an (un)subscription of each name. */
static bool renamed(const struct imap_notify *n, const struct notify_folder *folders,
		    size_t count, const char *name)
{
	const struct notify_folder *f = folder_named(folders, count, name), *other;
	if (f != NULL && (other = find_folder(n->folders, n->folder_count, f->id)) != NULL &&
	    strcmp(other->name, name) != 0)
		return true;
	f = folder_named(n->folders, n->folder_count, name);
	return f != NULL && (other = find_folder(folders, count, f->id)) != NULL &&
	       strcmp(other->name, name) != 0;
}

static void report_subscriptions(struct imap_session *s, struct imap_notify *n,
				 const struct notify_folder *folders, size_t count, char **subs,
				 size_t sub_count)
{
	/* compared each way by binary search */
	for (size_t i = 0; i < sub_count; i++)
		if (!sub_in(n->subs, n->sub_count, subs[i]) &&
		    (events_for(n, subs[i]) & IMAP_NOTIFY_SUBSCRIPTION_CHANGE) != 0 &&
		    !renamed(n, folders, count, subs[i]))
			write_list(s, "\\Subscribed", subs[i], NULL);
	for (size_t i = 0; i < n->sub_count; i++)
		if (!sub_in(subs, sub_count, n->subs[i]) &&
		    (events_for(n, n->subs[i]) & IMAP_NOTIFY_SUBSCRIPTION_CHANGE) != 0 &&
		    !renamed(n, folders, count, n->subs[i]))
			write_list(s, "", n->subs[i], NULL);
}

/* Compares the store with the snapshot, reports, and takes the new state. */
static int report(struct imap_session *s, struct imap_notify *n, enum tern_error *err_r)
{
	struct notify_folder *folders = NULL;
	size_t count = 0, sub_count = 0;
	char **subs = NULL;
	if (snapshot_read(s, &folders, &count, &subs, &sub_count, err_r) < 0)
		return -1;
	if (n->loaded) {
		for (size_t i = 0; i < count; i++) {
			const struct notify_folder *f = &folders[i];
			const struct notify_folder *old = find_folder(n->folders, n->folder_count,
								      f->id);
			unsigned events = events_for(n, f->name);
			if (old == NULL) {
				if ((events & IMAP_NOTIFY_MAILBOX_NAME) != 0)
					write_list(s, "", f->name, NULL);
				continue;
			}
			if (strcmp(old->name, f->name) != 0 &&
			    ((events | events_for(n, old->name)) & IMAP_NOTIFY_MAILBOX_NAME) != 0)
				write_list(s, sub_in(subs, sub_count, f->name) ? "\\Subscribed" : "",
					   f->name, old->name);
			if (!is_selected(s, f->name) && status_due(old, f, events))
				write_status(s, f);
		}
		for (size_t i = 0; i < n->folder_count; i++) {
			const struct notify_folder *old = &n->folders[i];
			if (find_folder(folders, count, old->id) == NULL &&
			    (events_for(n, old->name) & IMAP_NOTIFY_MAILBOX_NAME) != 0)
				write_list(s, "\\NonExistent", old->name, NULL);
		}
		report_subscriptions(s, n, folders, count, subs, sub_count);
	}
	snapshot_clear(n);
	n->folders = folders;
	n->folder_count = count;
	n->subs = subs;
	n->sub_count = sub_count;
	n->loaded = true;
	return 0;
}

/* The selected mailbox's changes: in IDLE as without NOTIFY; between
 * commands when a SELECTED filter asks for them. */
static void sync_selected(struct imap_session *s, const struct imap_notify *n)
{
	const struct notify_group *g = selected_group(n);
	if (s->view == NULL || (!s->idling && (g == NULL || g->events == 0)))
		return;
	bool expunge = s->idling || g->filter == IMAP_NOTIFY_SELECTED;
	enum tern_error err = TERN_ERR_NONE;
	if (imap_view_sync(s, expunge, &err) < 0)
		log_warn("imap: user=%s, rip=%s: NOTIFY update failed: %s", s->user,
			 s->conn->peer_addr, tern_error_str(err));
}

/* One new message's FETCH with the attributes MessageNew asked for. */
static void fetch_one(struct imap_session *s, const struct imap_fetch_request *req,
		      uint32_t uid, uint32_t seq)
{
	struct imap_view *v = s->view;
	struct imap_fetch_needs needs;
	struct store_msg meta;
	struct store_msg_cache cache = {0};
	struct store_msg_ids ids = {0};
	struct imap_fetch_raw *raw = NULL;
	enum tern_error err = TERN_ERR_NONE;
	imap_fetch_needs(req, &needs);
	int r = store_msg_get(s->store, v->folder, uid, &meta, &err);
	if (r <= 0)
		goto out_err;   /* 0: expunged meanwhile, the next sync says so */
	if (needs.cache)
		r = store_msg_cache(s->store, v->folder, uid, &cache, &err);
	if (r > 0 && needs.ids)   /* EMAILID, SAVEDATE: as FETCH loads them */
		r = store_msg_ids(s->store, v->folder, uid, &ids, &err);
	if (r > 0 && needs.raw) {
		char *data = NULL;
		size_t size = 0;
		r = store_msg_raw(s->store, v->folder, uid, &data, &size, &err);
		if (r > 0 && (raw = imap_fetch_raw_new(data, size, 0, size)) == NULL) {
			err = TERN_ERR_NOMEM;
			r = -1;
		}
	}
	if (r > 0) {
		struct imap_fetch_msg fm = {
			.seq = seq, .meta = &meta, .cache = needs.cache ? &cache : NULL,
			.ids = needs.ids ? &ids : NULL, .raw = raw, .recent = imap_view_is_recent(v, uid), .utf8 = imap_names_utf8(s),
		};
		int w = imap_fetch_write(imap_out(s), req, &fm);
		if (w == IMAP_FETCH_WRITE_NOMEM)
			imap_out_check(s, -1);
		else if (w < 0)
			log_warn("imap: user=%s, rip=%s: NOTIFY MessageNew FETCH of uid %u "
				 "skipped (%d)", s->user, s->conn->peer_addr, uid, w);
	}
	imap_fetch_raw_unref(&raw);
	store_msg_cache_clear(&cache);
	store_msg_clear(&meta);
out_err:
	if (r < 0)
		log_warn("imap: user=%s, rip=%s: NOTIFY MessageNew FETCH failed: %s", s->user,
			 s->conn->peer_addr, tern_error_str(err));
}

/* FETCH for the messages the view gained since the last call (section 5.1:
 * MessageNew with fetch attributes); a newly selected view only sets the
 * mark. */
static void fetch_new(struct imap_session *s, struct imap_notify *n)
{
	const struct notify_group *g = selected_group(n);
	struct imap_view *v = s->view;
	if (v == NULL) {
		/* the next SELECT starts afresh, even of the same mailbox */
		free(n->fetch_folder);
		n->fetch_folder = NULL;
		return;
	}
	if (n->fetch == NULL || g == NULL || (g->events & IMAP_NOTIFY_MESSAGE_NEW) == 0)
		return;
	uint32_t last = v->count > 0 ? v->msgs[v->count - 1].uid : 0;
	if (n->fetch_folder == NULL || strcmp(n->fetch_folder, v->folder) != 0 ||
	    n->fetch_uidvalidity != v->uidvalidity) {
		char *copy = strdup(v->folder);
		if (copy == NULL)
			return;
		free(n->fetch_folder);
		n->fetch_folder = copy;
		n->fetch_uidvalidity = v->uidvalidity;
		n->fetched_uid = last;
		return;
	}
	size_t i = v->count;
	while (i > 0 && v->msgs[i - 1].uid > n->fetched_uid)
		i--;
	for (; i < v->count && !imap_out_failed(s); i++) {
		/* a client that does not read: the rest waits, and the next
		 * wake-up finds the output over the limit (overflowed()) */
		if (conn_output_pending(s->conn) > TERN_NOTIFY_OUTPUT_MAX)
			return;
		fetch_one(s, n->fetch, v->msgs[i].uid, (uint32_t)(i + 1));
		n->fetched_uid = v->msgs[i].uid;
	}
	n->fetched_uid = last;
}

/* Section 6: notifications the client leaves unread stop, and it is told
 * (it may NOTIFY SET again). True when they were stopped. */
static bool overflowed(struct imap_session *s)
{
	if (conn_output_pending(s->conn) <= TERN_NOTIFY_OUTPUT_MAX)
		return false;
	log_info("imap: user=%s, rip=%s: NOTIFY output unread, notifications off", s->user,
		 s->conn->peer_addr);
	imap_untagged(s, "OK [NOTIFICATIONOVERFLOW] Too many notifications unread");
	imap_notify_free(&s->notify);
	return true;
}

static bool between_commands(const struct imap_session *s)
{
	return s->current == NULL && s->pending == NULL && s->line_handler == NULL;
}

static void report_now(struct imap_session *s)
{
	struct imap_notify *n = s->notify;
	bool parked = s->store == NULL;
	n->pending = false;
	if (parked && imap_session_unpark_store(s) < 0)
		return;
	if (s->idling || between_commands(s)) {
		sync_selected(s, n);
		fetch_new(s, n);
	}
	enum tern_error err = TERN_ERR_NONE;
	if (report(s, n, &err) < 0) {
		/* section 6: the client is told, and may NOTIFY SET again */
		log_warn("imap: user=%s, rip=%s: NOTIFY update failed, notifications off: %s",
			 s->user, s->conn->peer_addr, tern_error_str(err));
		imap_untagged(s, "OK [NOTIFICATIONOVERFLOW] Notifications stopped");
		imap_notify_free(&s->notify);
	}
	if (parked)
		imap_session_park_store(s);
}

void imap_notify_wake(struct imap_session *s)
{
	if (s->notify == NULL || s->conn->closing)
		return;
	if (!s->idling && !between_commands(s))
		s->notify->pending = true;
	else if (!overflowed(s))
		report_now(s);
}

void imap_notify_after_command(struct imap_session *s)
{
	if (s->notify == NULL || s->conn->closing || !between_commands(s) || s->store == NULL)
		return;
	if (s->notify->pending)
		report_now(s);
	else
		fetch_new(s, s->notify);   /* what the command's own sync reported */
}

/* ---- the command ---- */

static void write_initial_status(struct imap_session *s, const struct imap_notify *n)
{
	for (size_t i = 0; i < n->folder_count; i++) {
		const struct notify_folder *f = &n->folders[i];
		if (!is_selected(s, f->name) && (events_for(n, f->name) & MSG_EVENTS) != 0)
			write_status(s, f);
	}
}

/* Builds the session's state from spec: NULL after replying. */
static struct imap_notify *notify_new(struct imap_session *s, const struct imap_cmd *cmd,
				      const struct imap_notify_spec *spec)
{
	struct imap_notify *n = calloc(1, sizeof(*n));
	if (n == NULL || (n->groups = calloc(spec->count, sizeof(*n->groups))) == NULL)
		goto oom;
	for (size_t i = 0; i < spec->count; i++) {
		const struct imap_notify_group *sg = &spec->groups[i];
		struct notify_group *g = &n->groups[n->count++];
		g->filter = sg->filter;
		g->events = sg->events;
		if (sg->fetch_att_count > 0) {
			const char *bad = NULL;
			if (imap_fetch_parse(sg->fetch_list, 1, false, &n->fetch,
					     &bad) < 0) {
				imap_notify_free(&n);
				imap_bad(s, cmd, bad);
				return NULL;
			}
		}
		if (sg->mailbox_count == 0)
			continue;
		if ((g->names = calloc(sg->mailbox_count, sizeof(*g->names))) == NULL)
			goto oom;
		for (size_t k = 0; k < sg->mailbox_count; k++) {
			const char *wire, *bad = NULL;
			size_t len;
			(void)imap_arg_astring(&sg->mailboxes[k], &wire, &len);
			char *name = imap_name_from_wire(s, wire, len, &bad);
			if (name == NULL) {
				imap_notify_free(&n);
				imap_bad(s, cmd, bad != NULL ? bad : "Invalid mailbox name");
				return NULL;
			}
			g->names[g->name_count++] = name;
		}
		qsort(g->names, g->name_count, sizeof(*g->names), name_cmp);
	}
	return n;
oom:
	imap_notify_free(&n);
	imap_store_error(s, cmd, "notify", TERN_ERR_NOMEM);
	return NULL;
}

IMAP_HANDLER(cmd_notify)
{
	struct imap_notify_spec *spec = malloc(sizeof(*spec));
	const char *bad = NULL;
	if (spec == NULL) {
		imap_store_error(s, cmd, "notify", TERN_ERR_NOMEM);
		return IMAP_CMD_DONE;
	}
	int r = imap_notify_parse(cmd->args, cmd->arg_count, spec, &bad);
	if (r == IMAP_NOTIFY_PARSE_BAD) {
		imap_bad(s, cmd, bad);
	} else if (r == IMAP_NOTIFY_PARSE_BADEVENT) {
		imap_tagged(s, cmd, "NO [BADEVENT (" IMAP_NOTIFY_SUPPORTED_EVENTS
				    ")] Event not supported");
	} else if (spec->none) {
		imap_notify_free(&s->notify);
		imap_tagged(s, cmd, "OK NOTIFY completed");
	} else {
		struct imap_notify *n = notify_new(s, cmd, spec);
		enum tern_error err = TERN_ERR_NONE;
		if (n != NULL && report(s, n, &err) < 0) {
			imap_notify_free(&n);
			imap_store_error(s, cmd, "notify", err);
		} else if (n != NULL) {
			imap_notify_free(&s->notify);
			s->notify = n;
			fetch_new(s, n);   /* marks the messages there are now */
			if (spec->status)
				write_initial_status(s, n);
			imap_tagged(s, cmd, "OK NOTIFY completed");
		}
	}
	free(spec);
	return IMAP_CMD_DONE;
}
