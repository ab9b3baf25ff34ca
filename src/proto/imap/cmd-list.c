/* LIST (RFC 3501 §6.3.8 with LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819
 * and SPECIAL-USE RFC 6154), LSUB (§6.3.9) and STATUS (§6.3.10, with
 * CONDSTORE's HIGHESTMODSEQ, RFC 8438 SIZE, RFC 8474 MAILBOXID and RFC
 * 9051's DELETED; IMAP4rev2 has no RECENT).
 *
 * LIST reads every folder (with its counts) and the subscription list once,
 * adds the hierarchy parents that do not exist, sorts them so that each
 * name's descendants follow it, and derives \HasChildren in one pass; then
 * each name is matched against the patterns, and with RECURSIVEMATCH a
 * second pass finds the names whose CHILDINFO reports descendants the
 * patterns leave out. STATUS's RECENT and DELETED (also in LIST-STATUS)
 * are read apart, only when asked for. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "core/log.h"
#include "proto/imap/commands.h"
#include "proto/imap/list-match.h"
#include "proto/imap/mailbox.h"
#include "proto/imap/mutf7.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/server.h"
#include "store/store.h"

/* ---- STATUS items, shared by STATUS and LIST RETURN (STATUS (...)) ---- */

enum status_item {
	STATUS_MESSAGES, STATUS_RECENT, STATUS_UIDNEXT, STATUS_UIDVALIDITY, STATUS_UNSEEN,
	STATUS_HIGHESTMODSEQ, STATUS_SIZE, STATUS_MAILBOXID, STATUS_APPENDLIMIT, STATUS_DELETED,
	STATUS_DELETED_STORAGE, STATUS_ITEM_COUNT,
};

static const char *const status_names[STATUS_ITEM_COUNT] = {
	"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE",
	"MAILBOXID", "APPENDLIMIT", "DELETED", "DELETED-STORAGE",
};

/* Items in the order asked, each once. */
struct status_req {
	unsigned char items[STATUS_ITEM_COUNT];
	size_t count;
};

/* Parses "(MESSAGES UNSEEN ...)"; 0 ok, -1 bad (*bad_r). */
static int status_parse(struct imap_session *s, const struct imap_arg *arg,
			struct status_req *req, const char **bad_r)
{
	const struct imap_arg *list;
	size_t count;
	unsigned seen = 0;

	if (!imap_arg_list(arg, &list, &count) || count == 0) {
		*bad_r = "STATUS items expected in parentheses";
		return -1;
	}
	req->count = 0;
	for (size_t i = 0; i < count; i++) {
		size_t k = 0;
		while (k < STATUS_ITEM_COUNT && !imap_arg_is_atom_ci(&list[i], status_names[k]))
			k++;
		if (k == STATUS_ITEM_COUNT) {
			*bad_r = "Unknown STATUS item";
			return -1;
		}
		/* RFC 9051 (appendix E) took RECENT out of STATUS */
		if (k == STATUS_RECENT && s->imap4rev2) {
			*bad_r = "RECENT is not a STATUS item in IMAP4rev2";
			return -1;
		}
		if ((seen & (1u << k)) == 0)
			req->items[req->count++] = (unsigned char)k;
		seen |= 1u << k;
	}
	/* RFC 7162 §3.1: STATUS HIGHESTMODSEQ enables CONDSTORE. */
	if ((seen & (1u << STATUS_HIGHESTMODSEQ)) != 0)
		s->condstore = true;
	return 0;
}

static uint64_t status_value(const struct store_folder *f, enum status_item item)
{
	switch (item) {
	case STATUS_MESSAGES: return f->messages;
	case STATUS_RECENT: return f->recent;
	case STATUS_UIDNEXT: return f->uidnext;
	case STATUS_UIDVALIDITY: return f->uidvalidity;
	case STATUS_UNSEEN: return f->unseen;
	/* RFC 7162 §3.1.1: a folder without changes still reports 1. */
	case STATUS_HIGHESTMODSEQ: return f->highestmodseq > 0 ? f->highestmodseq : 1;
	case STATUS_SIZE: return f->size;
	case STATUS_DELETED: /* not in the folder row: status_write has it */
	case STATUS_DELETED_STORAGE:
	case STATUS_MAILBOXID: /* not a number: status_write writes it */
	case STATUS_APPENDLIMIT: /* the session's: status_write writes it */
	case STATUS_ITEM_COUNT: break;
	}
	return 0;
}

static bool status_wants(const struct status_req *req, enum status_item item)
{
	for (size_t i = 0; i < req->count; i++)
		if (req->items[i] == item)
			return true;
	return false;
}

/* What \Deleted messages a folder holds: DELETED (RFC 9051 §6.3.11), their
 * number, and DELETED-STORAGE (RFC 9208 §4.2.1), what EXPUNGE would free, in
 * the STORAGE resource's unit of 1024 octets. */
struct status_deleted {
	uint32_t count;
	uint64_t bytes;
};

/* The items the folder row does not hold, read only when asked for:
 * RECENT counts what no session has claimed yet, and claims nothing
 * (RFC 3501 §6.3.10; the store's folder rows leave it 0), and DELETED and
 * DELETED-STORAGE into *deleted_r. 0 ok, -1 error (*err_r). */
static int status_fill_extra(struct imap_session *s, struct store_folder *f,
			     const struct status_req *req, struct status_deleted *deleted_r,
			     enum tern_error *err_r)
{
	uint32_t first, next, count;

	*deleted_r = (struct status_deleted){ 0 };
	if ((status_wants(req, STATUS_DELETED) || status_wants(req, STATUS_DELETED_STORAGE)) &&
	    store_folder_deleted(s->store, f->name, &deleted_r->count, &deleted_r->bytes,
				 err_r) < 0)
		return -1;
	if (!status_wants(req, STATUS_RECENT))
		return 0;
	int r = store_folder_peek_recent(s->store, f->name, &first, &next, &count, err_r);
	if (r < 0)
		return -1;
	f->recent = r > 0 ? count : 0;    /* 0: deleted meanwhile */
	return 0;
}

static void status_write(struct imap_session *s, const struct store_folder *f,
			 const struct status_deleted *deleted, const struct status_req *req)
{
	imap_out_add(s, "* STATUS ", 9);
	imap_out_check(s, imap_name_write(s, imap_out(s), f->name));
	for (size_t i = 0; i < req->count; i++) {
		if (req->items[i] == STATUS_MAILBOXID) {
			/* RFC 8474 §4: "MAILBOXID" SP "(" objectid ")" */
			imap_out_printf(s, "%sMAILBOXID (%s)", i == 0 ? " (" : " ", f->mailboxid);
			continue;
		}
		/* RFC 7889 §4: every mailbox takes what APPEND takes (APPENDLIMIT=) */
		uint64_t v = req->items[i] == STATUS_APPENDLIMIT
				     ? s->conn->loop->server->config->max_message_size
			     : req->items[i] == STATUS_DELETED ? deleted->count
			     : req->items[i] == STATUS_DELETED_STORAGE ? (deleted->bytes + 1023) / 1024
								       : status_value(f, req->items[i]);
		imap_out_printf(s, "%s%s %llu", i == 0 ? " (" : " ", status_names[req->items[i]],
				(unsigned long long)v);
	}
	imap_out_add(s, ")\r\n", 3);
}

IMAP_HANDLER(cmd_status)
{
	struct status_req req;
	struct store_folder f;
	struct status_deleted deleted;
	enum tern_error err = TERN_ERR_NONE;
	const char *bad = NULL;

	if (cmd->arg_count != 2) {
		imap_bad(s, cmd, "STATUS needs a mailbox and items");
		return IMAP_CMD_DONE;
	}
	if (status_parse(s, &cmd->args[1], &req, &bad) < 0) {
		imap_bad(s, cmd, bad);
		return IMAP_CMD_DONE;
	}
	char *name = imap_mailbox_arg(s, cmd, &cmd->args[0]);
	if (name == NULL)
		return IMAP_CMD_DONE;
	int found = store_folder_get(s->store, name, &f, &err);
	if (found < 0) {
		imap_store_error(s, cmd, "status", err);
	} else if (found == 0) {
		imap_tagged(s, cmd, "NO [NONEXISTENT] Mailbox does not exist");
	} else if (status_fill_extra(s, &f, &req, &deleted, &err) < 0) {
		store_folder_clear(&f);
		imap_store_error(s, cmd, "status", err);
	} else {
		status_write(s, &f, &deleted, &req);
		store_folder_clear(&f);
		imap_tagged(s, cmd, "OK Status completed");
	}
	free(name);
	return IMAP_CMD_DONE;
}

/* ---- LIST / LSUB ---- */

enum list_select {
	SELECT_SUBSCRIBED = 1u << 0,
	SELECT_RECURSIVE = 1u << 1,
	SELECT_SPECIAL_USE = 1u << 2,
};

enum list_return {
	RETURN_SUBSCRIBED = 1u << 0,
	RETURN_CHILDREN = 1u << 1,
	RETURN_SPECIAL_USE = 1u << 2,
	RETURN_STATUS = 1u << 3,
};

struct list_req {
	bool lsub;
	bool extended;           /* LIST-EXTENDED syntax was used (RFC 5258) */
	unsigned select;         /* enum list_select */
	unsigned ret;            /* enum list_return */
	struct status_req status;
	struct list_pattern **patterns;
	size_t pattern_count;
	bool empty_pattern;      /* the one pattern was "": report the separator */
};

/* One name in the hierarchy: a folder, a subscription, or a parent of one. */
struct list_entry {
	const char *name;
	char *own;                       /* heap name of a generated parent */
	const struct store_folder *folder; /* NULL: no such folder */
	bool subscribed;
	bool child_exists;               /* an existing folder below */
	bool child_subscribed;           /* a subscribed name below */
	int match;                       /* match_patterns() of the name */
	bool child_unlisted;             /* below: one that meets the selection
	                                    but no pattern matches (CHILDINFO) */
};

struct list_tree {
	struct store_folder *folders;
	size_t folder_count;
	char **subs;
	size_t sub_count;
	struct list_entry *entries;
	size_t count, cap;
};

static void list_req_clear(struct list_req *req)
{
	for (size_t i = 0; i < req->pattern_count; i++)
		list_pattern_free(&req->patterns[i]);
	free(req->patterns);
	req->patterns = NULL;
	req->pattern_count = 0;
}

static void list_tree_clear(struct list_tree *t)
{
	for (size_t i = 0; i < t->count; i++)
		free(t->entries[i].own);
	free(t->entries);
	store_folders_free(&t->folders, t->folder_count);
	store_names_free(&t->subs, t->sub_count);
}

/* Wire text of a reference or pattern as UTF-8 for matching. Unlike a
 * mailbox name it may hold wildcards, and an invalid mUTF-7 sequence only
 * means that nothing matches, so it is never an error. */
static char *pattern_text(const struct imap_session *s, const char *wire, size_t len)
{
	char *utf8 = NULL;

	if (!imap_names_utf8(s) && imap_mutf7_to_utf8(wire, len, &utf8) == 0)
		return utf8;
	return strndup(wire, len);
}

static int add_pattern(struct imap_session *s, struct list_req *req, const char *ref,
		       const struct imap_arg *arg, const char **bad_r)
{
	const char *wire;
	size_t len;

	if (!imap_arg_astring(arg, &wire, &len)) {
		*bad_r = "Mailbox pattern expected";
		return -1;
	}
	char *text = pattern_text(s, wire, len);
	if (text == NULL) {
		*bad_r = "Out of memory";
		return -1;
	}
	struct list_pattern **grown = realloc(req->patterns,
					      (req->pattern_count + 1) * sizeof(*grown));
	struct list_pattern *p = grown != NULL ? list_pattern_new(ref, text) : NULL;
	free(text);
	if (grown != NULL)
		req->patterns = grown;
	if (p == NULL) {
		*bad_r = "Mailbox pattern too long";
		return -1;
	}
	req->patterns[req->pattern_count++] = p;
	return 0;
}

/* RFC 5258 §3.1: SUBSCRIBED, REMOTE, RECURSIVEMATCH; RFC 6154 §3: SPECIAL-USE. */
static int parse_select(const struct imap_arg *arg, struct list_req *req, const char **bad_r)
{
	const struct imap_arg *list;
	size_t count;

	imap_arg_list(arg, &list, &count);
	for (size_t i = 0; i < count; i++) {
		if (imap_arg_is_atom_ci(&list[i], "SUBSCRIBED"))
			req->select |= SELECT_SUBSCRIBED;
		else if (imap_arg_is_atom_ci(&list[i], "RECURSIVEMATCH"))
			req->select |= SELECT_RECURSIVE;
		else if (imap_arg_is_atom_ci(&list[i], "SPECIAL-USE"))
			req->select |= SELECT_SPECIAL_USE;
		else if (!imap_arg_is_atom_ci(&list[i], "REMOTE")) {
			*bad_r = "Unknown LIST selection option";
			return -1;
		}
	}
	/* RECURSIVEMATCH only refines another selection option (RFC 5258
	 * §3.1), and RFC 6154 §3 gives it no meaning with SPECIAL-USE. */
	if ((req->select & SELECT_RECURSIVE) != 0 && (req->select & SELECT_SUBSCRIBED) == 0) {
		*bad_r = "RECURSIVEMATCH needs the SUBSCRIBED selection option";
		return -1;
	}
	return 0;
}

/* RFC 5258 §3.2 SUBSCRIBED, CHILDREN; RFC 6154 SPECIAL-USE; RFC 5819 STATUS. */
static int parse_return(struct imap_session *s, const struct imap_arg *arg,
			struct list_req *req, const char **bad_r)
{
	const struct imap_arg *list;
	size_t count;

	if (!imap_arg_list(arg, &list, &count)) {
		*bad_r = "RETURN options expected in parentheses";
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		if (imap_arg_is_atom_ci(&list[i], "SUBSCRIBED")) {
			req->ret |= RETURN_SUBSCRIBED;
		} else if (imap_arg_is_atom_ci(&list[i], "CHILDREN")) {
			req->ret |= RETURN_CHILDREN;
		} else if (imap_arg_is_atom_ci(&list[i], "SPECIAL-USE")) {
			req->ret |= RETURN_SPECIAL_USE;
		} else if (imap_arg_is_atom_ci(&list[i], "STATUS") && i + 1 < count) {
			if (status_parse(s, &list[++i], &req->status, bad_r) < 0)
				return -1;
			req->ret |= RETURN_STATUS;
		} else {
			*bad_r = "Unknown LIST return option";
			return -1;
		}
	}
	return 0;
}

static int parse_patterns(struct imap_session *s, const struct imap_arg *arg,
			  struct list_req *req, const char *ref, const char **bad_r)
{
	const struct imap_arg *list;
	size_t count;

	if (!imap_arg_list(arg, &list, &count)) {
		const char *p;
		size_t len;
		if (imap_arg_astring(arg, &p, &len) && len == 0)
			req->empty_pattern = true;
		return add_pattern(s, req, ref, arg, bad_r);
	}
	req->extended = true;
	if (count == 0) {
		*bad_r = "Empty pattern list";
		return -1;
	}
	for (size_t i = 0; i < count; i++)
		if (add_pattern(s, req, ref, &list[i], bad_r) < 0)
			return -1;
	return 0;
}

/* LIST [(select)] ref pattern|(patterns) [RETURN (options)], or LSUB ref pattern. */
static int list_parse(struct imap_session *s, const struct imap_cmd *cmd, struct list_req *req,
		      const char **bad_r)
{
	const struct imap_arg *args = cmd->args;
	size_t n = cmd->arg_count, i = 0;
	const char *wire;
	size_t len;

	req->lsub = strcmp(cmd->name, "LSUB") == 0;
	if (!req->lsub && n > 0 && args[0].type == IMAP_ARG_LIST) {
		req->extended = true;
		if (parse_select(&args[i++], req, bad_r) < 0)
			return -1;
	}
	if (n < i + 2 || !imap_arg_astring(&args[i], &wire, &len)) {
		*bad_r = "Reference and mailbox pattern expected";
		return -1;
	}
	char *ref = pattern_text(s, wire, len);
	if (ref == NULL) {
		*bad_r = "Out of memory";
		return -1;
	}
	int ret = req->lsub && args[i + 1].type == IMAP_ARG_LIST ? -1 :
		  parse_patterns(s, &args[i + 1], req, ref, bad_r);
	free(ref);
	if (ret < 0) {
		if (*bad_r == NULL)
			*bad_r = "Mailbox pattern expected";
		return -1;
	}
	i += 2;
	if (!req->lsub && i + 2 == n && imap_arg_is_atom_ci(&args[i], "RETURN")) {
		req->extended = true;
		if (parse_return(s, &args[i + 1], req, bad_r) < 0)
			return -1;
		i += 2;
	}
	if (i != n) {
		*bad_r = "Unexpected arguments";
		return -1;
	}
	if (req->pattern_count > 1)
		req->empty_pattern = false;
	/* RFC 5258 §3.1: the SUBSCRIBED selection implies the return option. */
	if ((req->select & SELECT_SUBSCRIBED) != 0)
		req->ret |= RETURN_SUBSCRIBED;
	return 0;
}

static bool is_inbox_tree(const char *name)
{
	return strncmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == LIST_SEPARATOR);
}

/* INBOX and its children first (clients expect it on top), then hierarchy
 * order, which keeps every subtree contiguous. */
static int entry_cmp(const void *a, const void *b)
{
	const struct list_entry *x = a, *y = b;
	bool xi = is_inbox_tree(x->name), yi = is_inbox_tree(y->name);

	if (xi != yi)
		return xi ? -1 : 1;
	return list_name_cmp(x->name, y->name);
}

static int tree_add(struct list_tree *t, const char *name, char *own,
		    const struct store_folder *folder, bool subscribed)
{
	if (t->count == t->cap) {
		size_t cap = t->cap > 0 ? t->cap * 2 : 64;
		struct list_entry *e = realloc(t->entries, cap * sizeof(*e));
		if (e == NULL) {
			free(own);
			return -1;
		}
		t->entries = e;
		t->cap = cap;
	}
	t->entries[t->count++] = (struct list_entry){
		.name = name, .own = own, .folder = folder, .subscribed = subscribed,
	};
	return 0;
}

/* Sorts and merges entries of the same name (a folder and its subscription,
 * or a parent generated twice). */
static void tree_sort_merge(struct list_tree *t)
{
	size_t out = 0;

	qsort(t->entries, t->count, sizeof(*t->entries), entry_cmp);
	for (size_t i = 0; i < t->count; i++) {
		struct list_entry *e = &t->entries[i];
		if (out > 0 && strcmp(t->entries[out - 1].name, e->name) == 0) {
			struct list_entry *keep = &t->entries[out - 1];
			if (keep->folder == NULL)
				keep->folder = e->folder;
			keep->subscribed |= e->subscribed;
			free(e->own);
			continue;
		}
		t->entries[out++] = *e;
	}
	t->count = out;
}

/* Adds every missing parent ("a" and "a/b" of "a/b/c") as an entry. */
static int tree_add_parents(struct list_tree *t)
{
	size_t n = t->count;

	for (size_t i = 0; i < n; i++) {
		const char *name = t->entries[i].name;
		for (const char *p = strchr(name, LIST_SEPARATOR); p != NULL;
		     p = strchr(p + 1, LIST_SEPARATOR)) {
			char *parent = strndup(name, (size_t)(p - name));
			/* tree_add may move the array: name points into folders,
			 * subscriptions or an own string, never into entries. */
			if (parent == NULL || tree_add(t, parent, parent, NULL, false) < 0)
				return -1;
		}
	}
	return 0;
}

/* Marks child_exists / child_subscribed: walks the sorted entries keeping the
 * chain of ancestors of the current one on a stack. */
static int tree_mark_children(struct list_tree *t)
{
	size_t *stack = malloc((t->count + 1) * sizeof(*stack)), depth = 0;

	if (stack == NULL)
		return -1;
	for (size_t i = 0; i < t->count; i++) {
		struct list_entry *e = &t->entries[i];
		while (depth > 0 && !list_name_is_under(e->name, t->entries[stack[depth - 1]].name))
			depth--;
		for (size_t k = 0; k < depth; k++) {
			struct list_entry *a = &t->entries[stack[k]];
			a->child_exists |= e->folder != NULL;
			a->child_subscribed |= e->subscribed;
		}
		stack[depth++] = i;
	}
	free(stack);
	return 0;
}

static int tree_load(struct imap_session *s, struct list_tree *t, enum tern_error *err_r)
{
	if (store_folder_list(s->store, &t->folders, &t->folder_count, err_r) < 0)
		return -1;
	if (store_subscriptions(s->store, &t->subs, &t->sub_count, err_r) < 0)
		return -1;
	for (size_t i = 0; i < t->folder_count; i++)
		if (tree_add(t, t->folders[i].name, NULL, &t->folders[i], false) < 0)
			goto oom;
	for (size_t i = 0; i < t->sub_count; i++)
		if (tree_add(t, t->subs[i], NULL, NULL, true) < 0)
			goto oom;
	if (tree_add_parents(t) < 0)
		goto oom;
	tree_sort_merge(t);
	if (tree_mark_children(t) < 0)
		goto oom;
	return 0;
oom:
	*err_r = TERN_ERR_NOMEM;
	return -1;
}

/* 0 no pattern matches; 1 one matches; 2 one with '%' matches. */
static int match_patterns(const struct list_req *req, const char *name)
{
	int best = 0;

	for (size_t i = 0; i < req->pattern_count && best < 2; i++)
		if (list_pattern_match(req->patterns[i], name))
			best = list_pattern_has_percent(req->patterns[i]) ? 2 : 1;
	return best;
}

/* Whether entry e meets the selection options (RECURSIVEMATCH aside).
 * Without SUBSCRIBED, a name that does not exist is listed only as a level
 * of hierarchy that a '%' pattern matched (RFC 3501 §6.3.8, RFC 5258
 * example 11); "*" lists only what exists (RFC 5258 §3.4: a non-existent
 * name is not returned unless it meets the selection or has CHILDINFO;
 * example 9's D01 leaves out qux2). */
static bool list_meets(const struct list_req *req, const struct list_entry *e)
{
	bool selected;

	if ((req->select & SELECT_SUBSCRIBED) != 0)
		selected = e->subscribed;
	else
		selected = e->folder != NULL || (e->child_exists && e->match == 2);
	if ((req->select & SELECT_SPECIAL_USE) != 0)
		selected = selected && e->folder != NULL && e->folder->special_use != NULL;
	return selected;
}

/* Fills every entry's match, and with RECURSIVEMATCH its child_unlisted
 * (CHILDINFO, RFC 5258 §3.5, worked out by list_mark_childinfo): "foo2"
 * reports "foo2/bar1", which "*2" does not match (example 9), but "a/b"
 * does not report "a/b/c" to (a/b a/b/c), which lists it itself. */
static int tree_mark_childinfo(struct list_tree *t, const struct list_req *req)
{
	for (size_t i = 0; i < t->count; i++)
		t->entries[i].match = match_patterns(req, t->entries[i].name);
	if (req->lsub || (req->select & SELECT_RECURSIVE) == 0 || t->count == 0)
		return 0;
	const char **names = malloc(t->count * sizeof(*names));
	unsigned char *marks = malloc(t->count);
	int ret = -1;
	if (names != NULL && marks != NULL) {
		for (size_t i = 0; i < t->count; i++) {
			const struct list_entry *e = &t->entries[i];
			names[i] = e->name;
			marks[i] = (unsigned char)((e->match != 0 ? LIST_MARK_MATCHED : 0) |
						   (list_meets(req, e) ? LIST_MARK_MEETS : 0));
		}
		ret = list_mark_childinfo(names, marks, t->count);
		for (size_t i = 0; ret == 0 && i < t->count; i++)
			t->entries[i].child_unlisted = (marks[i] & LIST_MARK_CHILDINFO) != 0;
	}
	free(names);
	free(marks);
	return ret;
}

/* Whether LIST reports entry e (which matches a pattern), and whether with
 * CHILDINFO: a name that does not meet the selection is reported only for
 * the sake of its CHILDINFO (RFC 5258 §3.1 RECURSIVEMATCH). */
static bool list_selects(const struct list_req *req, const struct list_entry *e,
			 bool *childinfo_r)
{
	*childinfo_r = (req->select & SELECT_RECURSIVE) != 0 && e->child_unlisted;
	return list_meets(req, e) || *childinfo_r;
}

static void write_attr(struct imap_session *s, bool *first, const char *attr)
{
	if (!*first)
		imap_out_add(s, " ", 1);
	imap_out_add(s, attr, strlen(attr));
	*first = false;
}

static void write_list_entry(struct imap_session *s, const struct list_req *req,
			     const struct list_entry *e, bool childinfo)
{
	bool first = true;

	imap_out_add(s, "* LIST (", 8);
	/* RFC 5258 §3.4: \NonExistent implies \Noselect; RFC 3501 clients
	 * only know the latter, IMAP4rev2 ones know both (RFC 9051 §7.3.1). */
	if (e->folder == NULL)
		write_attr(s, &first, req->extended || s->imap4rev2 ? "\\NonExistent" : "\\Noselect");
	/* Always sent, as Dovecot does: clients draw their folder tree from it
	 * (RFC 5258 §4 allows it without RETURN (CHILDREN)). */
	write_attr(s, &first, e->child_exists ? "\\HasChildren" : "\\HasNoChildren");
	if ((req->ret & RETURN_SUBSCRIBED) != 0 && e->subscribed)
		write_attr(s, &first, "\\Subscribed");
	if (e->folder != NULL && e->folder->special_use != NULL)
		write_attr(s, &first, e->folder->special_use);
	imap_out_add(s, ") \"/\" ", 6);
	imap_out_check(s, imap_name_write(s, imap_out(s), e->name));
	if (childinfo)
		imap_out_printf(s, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	imap_out_add(s, "\r\n", 2);
	if ((req->ret & RETURN_STATUS) != 0 && e->folder != NULL) {
		/* a copy that only gains the recent count (the names stay shared) */
		struct store_folder f = *e->folder;
		struct status_deleted deleted;
		enum tern_error err = TERN_ERR_NONE;
		/* RFC 5819 §2: a mailbox whose status cannot be had goes without */
		if (status_fill_extra(s, &f, &req->status, &deleted, &err) == 0)
			status_write(s, &f, &deleted, &req->status);
		else
			log_warn("imap: user=%s, rip=%s: list-status of a mailbox failed: %s",
				 s->user, s->conn->peer_addr, tern_error_str(err));
	}
}

static void write_lsub_entry(struct imap_session *s, const struct list_entry *e, int match)
{
	const char *attrs;

	if (e->subscribed)
		attrs = e->folder != NULL ? "" : "\\Noselect";
	else if (e->child_subscribed && match == 2)
		/* RFC 3501 §6.3.9: "%" reports an unsubscribed parent of
		 * subscribed names as \Noselect. */
		attrs = "\\Noselect";
	else
		return;
	imap_out_printf(s, "* LSUB (%s) \"/\" ", attrs);
	imap_out_check(s, imap_name_write(s, imap_out(s), e->name));
	imap_out_add(s, "\r\n", 2);
}

IMAP_HANDLER(cmd_list)
{
	struct list_req req = {0};
	struct list_tree tree = {0};
	enum tern_error err = TERN_ERR_NONE;
	const char *bad = NULL;

	if (list_parse(s, cmd, &req, &bad) < 0) {
		imap_bad(s, cmd, bad);
		goto out;
	}
	if (req.empty_pattern) {
		/* RFC 3501 §6.3.8: an empty pattern asks for the separator and
		 * the root of the reference; Tern's one namespace has root "". */
		imap_untagged(s, "%s (\\Noselect) \"/\" \"\"", req.lsub ? "LSUB" : "LIST");
		imap_tagged(s, cmd, "OK %s completed", req.lsub ? "Lsub" : "List");
		goto out;
	}
	if (tree_load(s, &tree, &err) < 0) {
		imap_store_error(s, cmd, req.lsub ? "lsub" : "list", err);
		goto out;
	}
	if (tree_mark_childinfo(&tree, &req) < 0) {
		imap_store_error(s, cmd, req.lsub ? "lsub" : "list", TERN_ERR_NOMEM);
		goto out;
	}
	for (size_t i = 0; i < tree.count; i++) {
		const struct list_entry *e = &tree.entries[i];
		bool childinfo;
		if (e->match == 0)
			continue;
		if (req.lsub)
			write_lsub_entry(s, e, e->match);
		else if (list_selects(&req, e, &childinfo))
			write_list_entry(s, &req, e, childinfo);
	}
	imap_tagged(s, cmd, "OK %s completed", req.lsub ? "Lsub" : "List");
out:
	list_tree_clear(&tree);
	list_req_clear(&req);
	return IMAP_CMD_DONE;
}
