/* The IMAP session's view of the selected folder (proto/imap/view.c) over a
 * real store: opening, sequence/UID resolution, reporting other writers'
 * changes with consistent sequence numbers, withheld expunges; plus the
 * flag and mailbox-name helpers and the command table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proto/imap/commands.h"
#include "proto/imap/session.h"
#include "store/mime.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	struct event_base *base;
	struct bufferevent *pair[2];
	struct conn conn;
	struct imap_session s;
	struct store *other;     /* a second writer, like another session */
};

/* The output buffer of a bufferevent is frozen at the front (only the
 * bufferevent drains it): thaw it briefly to take what was written. */
static char *out_take(struct fixture *f)
{
	struct evbuffer *out = bufferevent_get_output(f->pair[0]);
	size_t len = evbuffer_get_length(out);
	char *text = malloc(len + 1);
	evbuffer_unfreeze(out, 1);
	assert_int_equal(evbuffer_remove(out, text, len), (int)len);
	evbuffer_freeze(out, 1);
	text[len] = '\0';
	return text;
}

static void assert_out(struct fixture *f, const char *want)
{
	char *got = out_take(f);
	assert_string_equal(got, want);
	free(got);
}

static void append(struct store *st, const char *subject, uint32_t flags)
{
	char data[256];
	enum tern_error err;
	snprintf(data, sizeof(data), "Subject: %s\r\n\r\nbody\r\n", subject);
	struct store_new_msg m = {.folder = "INBOX", .data = data, .size = strlen(data),
				  .flags = flags};
	assert_int_equal(store_append(st, &m, NULL, NULL, &err), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	enum tern_error err;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-view-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->base = event_base_new();
	assert_int_equal(bufferevent_pair_new(f->base, 0, f->pair), 0);
	f->conn.bev = f->pair[0];
	f->s.conn = &f->conn;
	f->s.state = IMAP_STATE_AUTH;
	assert_int_equal(store_open(f->dir, "alice", true, &f->s.store, &err), 0);
	assert_int_equal(store_open(f->dir, "alice", false, &f->other, &err), 0);
	for (int i = 1; i <= 5; i++) {
		char subj[16];
		snprintf(subj, sizeof(subj), "m%d", i);
		append(f->other, subj, i == 3 ? STORE_FLAG_SEEN : 0);
	}
	assert_int_equal(imap_view_open(&f->s, "inbox", false, &err), 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	enum tern_error err;
	imap_view_close(&f->s);
	store_close(&f->s.store);
	store_close(&f->other);
	(void)store_remove(f->dir, "alice", &err);
	bufferevent_free(f->pair[0]);
	bufferevent_free(f->pair[1]);
	event_base_free(f->base);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void test_open(void **state)
{
	struct fixture *f = *state;
	struct imap_view *v = f->s.view;
	assert_int_equal(f->s.state, IMAP_STATE_SELECTED);
	assert_string_equal(v->folder, "INBOX");
	assert_int_equal(v->count, 5);
	assert_int_equal(v->uidnext, 6);
	assert_int_equal(v->msgs[2].flags, STORE_FLAG_SEEN);
	for (uint32_t uid = 1; uid <= 5; uid++)
		assert_int_equal(imap_view_seq(v, uid), uid);
	assert_int_equal(imap_view_seq(v, 6), 0);
	assert_int_equal(imap_view_seq(v, 0), 0);
	enum tern_error err;
	assert_int_equal(imap_view_open(&f->s, "nonexistent", true, &err), 0);
	assert_null(f->s.view);
	assert_int_equal(f->s.state, IMAP_STATE_AUTH);
}

static void resolve(struct fixture *f, const char *set, bool uid, const char *want)
{
	struct imap_arg arg = {.type = IMAP_ARG_ATOM, .str = (char *)set, .len = strlen(set)};
	uint32_t *uids = NULL;
	size_t n = 0;
	const char *bad = NULL;
	int r = imap_view_resolve(&f->s, &arg, uid, &uids, &n, &bad);
	if (want == NULL) {
		assert_int_equal(r, -1);
		assert_non_null(bad);
		return;
	}
	assert_int_equal(r, 0);
	char got[256] = "";
	for (size_t i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%u", i > 0 ? "," : "",
			 uids[i]);
	assert_string_equal(got, want);
	free(uids);
}

static void test_resolve(void **state)
{
	struct fixture *f = *state;
	uint32_t uid2 = 2, *expunged = NULL;
	size_t n = 0;
	enum tern_error err;
	assert_int_equal(store_expunge(f->other, "INBOX", &uid2, 1, &expunged, &n, &err), 0);
	free(expunged);
	assert_int_equal(imap_view_sync(&f->s, true, &err), 0);
	assert_out(f, "* 2 EXPUNGE\r\n");
	/* view: seq 1..4 = uid 1,3,4,5 */
	resolve(f, "1:*", false, "1,3,4,5");
	resolve(f, "*", false, "5");
	resolve(f, "2,4", false, "3,5");
	resolve(f, "4:2", false, "3,4,5");
	resolve(f, "5", false, NULL);
	resolve(f, "0", false, NULL);
	resolve(f, "x", false, NULL);
	resolve(f, "1:*", true, "1,3,4,5");
	resolve(f, "2", true, "");
	resolve(f, "2:4", true, "3,4");
	resolve(f, "100:*", true, "5");     /* RFC 3501 §6.4.8: n:* names the last */
	resolve(f, "6:10", true, "");
	f->s.view->saved = malloc(3 * sizeof(uint32_t));
	f->s.view->saved[0] = 2;
	f->s.view->saved[1] = 4;
	f->s.view->saved[2] = 5;
	f->s.view->saved_count = 3;
	resolve(f, "$", false, "4,5");      /* saved UIDs still present */
	resolve(f, "$", true, "4,5");
}

static void test_resolve_empty(void **state)
{
	struct fixture *f = *state;
	uint32_t *expunged = NULL;
	size_t n = 0;
	enum tern_error err;
	uint32_t all[] = {1, 2, 3, 4, 5};
	assert_int_equal(store_expunge(f->other, "INBOX", all, 5, &expunged, &n, &err), 0);
	free(expunged);
	assert_int_equal(imap_view_sync(&f->s, true, &err), 0);
	assert_out(f, "* 5 EXPUNGE\r\n* 4 EXPUNGE\r\n* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n");
	resolve(f, "1:*", false, "");
	resolve(f, "1", false, NULL);
	resolve(f, "1:*", true, "");
}

static void test_sync_changes(void **state)
{
	struct fixture *f = *state;
	enum tern_error err;
	/* nothing changed: nothing said */
	assert_int_equal(imap_view_sync(&f->s, true, &err), 0);
	assert_out(f, "");
	uint32_t uids[] = {2, 4};
	assert_int_equal(store_flags_update(f->other, "INBOX", uids, 2, STORE_FLAGS_ADD,
					    STORE_FLAG_FLAGGED, "$Work", 0, NULL, NULL, NULL, NULL,
					    &err), 0);
	append(f->other, "m6", 0);
	uint32_t *expunged = NULL;
	size_t n = 0;
	uint32_t uid1 = 1;
	assert_int_equal(store_expunge(f->other, "INBOX", &uid1, 1, &expunged, &n, &err), 0);
	free(expunged);
	/* expunges held back (a FETCH is being answered): sequence numbers stay.
	 * This read-write session claimed every message as \\Recent. */
	assert_int_equal(imap_view_sync(&f->s, false, &err), 0);
	assert_out(f, "* 6 EXISTS\r\n* 6 RECENT\r\n"
		      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
		      "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)]"
		      " Flags permitted.\r\n"
		      "* 2 FETCH (FLAGS (\\Flagged \\Recent $Work))\r\n"
		      "* 4 FETCH (FLAGS (\\Flagged \\Recent $Work))\r\n");
	assert_int_equal(f->s.view->count, 6);
	/* the expunge goes out at the next sync that may send it, once */
	assert_int_equal(imap_view_sync(&f->s, true, &err), 0);
	assert_out(f, "* 1 EXPUNGE\r\n");
	assert_int_equal(imap_view_sync(&f->s, true, &err), 0);
	assert_out(f, "");
	assert_int_equal(f->s.view->count, 5);
	assert_int_equal(imap_view_seq(f->s.view, 6), 5);
	assert_int_equal(f->s.view->uidnext, 7);

	/* CONDSTORE adds MODSEQ; a UID command or QRESYNC adds UID; QRESYNC
	 * turns EXPUNGE into VANISHED */
	f->s.condstore = f->s.qresync = true;
	uint32_t three = 3;
	assert_int_equal(store_flags_update(f->other, "INBOX", &three, 1, STORE_FLAGS_REMOVE,
					    STORE_FLAG_SEEN, NULL, 0, NULL, NULL, NULL, NULL, &err), 0);
	uint64_t modseq;
	assert_int_equal(store_highestmodseq(f->other, &modseq, &err), 0);
	uint32_t gone[] = {4, 5};
	assert_int_equal(store_expunge(f->other, "INBOX", gone, 2, &expunged, &n, &err), 0);
	free(expunged);
	assert_int_equal(imap_view_sync(&f->s, true, &err), 0);
	char want[128];
	snprintf(want, sizeof(want), "* VANISHED 4:5\r\n* 2 FETCH (UID 3 FLAGS (\\Recent) MODSEQ (%llu))\r\n",
		 (unsigned long long)modseq);
	assert_out(f, want);
	assert_int_equal(f->s.view->count, 3);
}

static void test_own_changes(void **state)
{
	struct fixture *f = *state;
	enum tern_error err;
	struct store_msg *msgs = NULL;
	size_t mc = 0;
	uint32_t uid = 2;
	/* this session's STORE updates the view: the next sync stays silent */
	assert_int_equal(store_flags_update(f->s.store, "INBOX", &uid, 1, STORE_FLAGS_ADD,
					    STORE_FLAG_ANSWERED, NULL, 0, &msgs, &mc, NULL, NULL,
					    &err), 0);
	assert_int_equal(mc, 1);
	imap_view_update_msg(f->s.view, msgs[0].uid, msgs[0].flags, msgs[0].keywords,
			     msgs[0].modseq);
	store_msgs_free(&msgs, mc);
	assert_int_equal(imap_view_sync(&f->s, true, &err), 0);
	assert_out(f, "");
	/* this session's EXPUNGE reports through imap_view_expunged, highest first */
	uint32_t del[] = {1, 3, 5};
	imap_view_expunged(&f->s, del, 3);
	assert_out(f, "* 5 EXPUNGE\r\n* 3 EXPUNGE\r\n* 1 EXPUNGE\r\n");
	assert_int_equal(f->s.view->count, 2);
	assert_int_equal(f->s.view->msgs[0].uid, 2);
	assert_int_equal(f->s.view->msgs[1].uid, 4);
	assert_int_equal(f->s.view->msgs[0].flags, STORE_FLAG_ANSWERED);
}

/* A reopened folder taken from the loop's view cache must equal one read
 * in full, whatever changed while it was closed. */
static void test_cache(void **state)
{
	struct fixture *f = *state;
	enum tern_error err;
	for (int i = 0; i < 300; i++)
		append(f->other, "bulk", 0);
	f->s.user = strdup("alice");
	assert_int_equal(imap_view_open(&f->s, "INBOX", false, &err), 1);
	assert_int_equal(f->s.view->count, 305);
	imap_view_close(&f->s);                 /* cached */
	uint32_t gone[] = {1, 7, 305}, flagged[] = {2, 300};
	uint32_t *expunged = NULL;
	size_t n = 0;
	assert_int_equal(store_expunge(f->other, "INBOX", gone, 3, &expunged, &n, &err), 0);
	free(expunged);
	assert_int_equal(store_flags_update(f->other, "INBOX", flagged, 2, STORE_FLAGS_ADD,
					    STORE_FLAG_FLAGGED, "kw", 0, NULL, NULL, NULL, NULL,
					    &err), 0);
	append(f->other, "late", 0);
	assert_int_equal(imap_view_open(&f->s, "INBOX", true, &err), 1);
	struct imap_view *cached = f->s.view;
	f->s.view = NULL;
	char *user = f->s.user;
	f->s.user = NULL;                       /* no cache: a full read */
	assert_int_equal(imap_view_open(&f->s, "INBOX", true, &err), 1);
	struct imap_view *full = f->s.view;
	assert_int_equal(cached->count, 303);
	assert_int_equal(cached->count, full->count);
	assert_int_equal(cached->highestmodseq, full->highestmodseq);
	assert_int_equal(cached->uidnext, full->uidnext);
	for (size_t i = 0; i < full->count; i++) {
		assert_int_equal(cached->msgs[i].uid, full->msgs[i].uid);
		assert_int_equal(cached->msgs[i].flags, full->msgs[i].flags);
		assert_int_equal(cached->msgs[i].modseq, full->msgs[i].modseq);
		assert_true((cached->msgs[i].keywords == NULL) == (full->msgs[i].keywords == NULL));
	}
	assert_string_equal(cached->msgs[0].keywords, "kw");
	f->s.view = cached;
	imap_view_close(&f->s);
	f->s.view = full;
	imap_view_close(&f->s);
	free(user);
}

static void test_flags(void **state)
{
	(void)state;
	struct imap_arg items[] = {
		{.type = IMAP_ARG_ATOM, .str = "\\seen", .len = 5},
		{.type = IMAP_ARG_ATOM, .str = "$Junk", .len = 5},
		{.type = IMAP_ARG_ATOM, .str = "\\Deleted", .len = 8},
		{.type = IMAP_ARG_ATOM, .str = "$junk", .len = 5},
		{.type = IMAP_ARG_ATOM, .str = "work", .len = 4},
	};
	struct imap_arg list = {.type = IMAP_ARG_LIST, .list = items, .list_count = 5};
	uint32_t flags = 0;
	char *kw = NULL;
	const char *bad = NULL;
	assert_int_equal(imap_flags_parse(&list, &flags, &kw, &bad), 0);
	assert_int_equal(flags, STORE_FLAG_SEEN | STORE_FLAG_DELETED);
	assert_string_equal(kw, "$Junk work");
	struct evbuffer *out = evbuffer_new();
	imap_flags_write(out, flags | STORE_FLAG_ANSWERED, kw);
	imap_flags_write(out, 0, NULL);
	char text[128] = "";
	evbuffer_remove(out, text, sizeof(text) - 1);
	assert_string_equal(text, "(\\Answered \\Deleted \\Seen $Junk work)()");
	evbuffer_free(out);
	free(kw);

	static const char *refused[] = {"\\Recent", "\\Bogus", "a]b", "a%", "\\"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct imap_arg one = {.type = IMAP_ARG_ATOM, .str = (char *)refused[i],
				       .len = strlen(refused[i])};
		kw = (char *)"untouched";
		assert_int_equal(imap_flags_parse(&one, &flags, &kw, &bad), -1);
		assert_string_equal(kw, "untouched");
	}
	struct imap_arg quoted = {.type = IMAP_ARG_STRING, .str = "x", .len = 1};
	assert_int_equal(imap_flags_parse(&quoted, &flags, &kw, &bad), -1);
	struct imap_arg empty = {.type = IMAP_ARG_LIST};
	kw = (char *)"x";
	assert_int_equal(imap_flags_parse(&empty, &flags, &kw, &bad), 0);
	assert_int_equal(flags, 0);
	assert_null(kw);
}

static void name_ok(const struct imap_session *s, const char *wire, const char *want)
{
	const char *bad = NULL;
	char *name = imap_name_from_wire(s, wire, strlen(wire), &bad);
	assert_non_null(name);
	assert_string_equal(name, want);
	free(name);
}

static void name_bad(const struct imap_session *s, const char *wire, size_t len)
{
	const char *bad = NULL;
	assert_null(imap_name_from_wire(s, wire, len, &bad));
	assert_non_null(bad);
}

static void test_names(void **state)
{
	(void)state;
	struct imap_session s = {0};
	name_ok(&s, "inbox", "INBOX");
	name_ok(&s, "InBoX/Sub", "INBOX/Sub");
	name_ok(&s, "Inboxes", "Inboxes");
	name_ok(&s, "Sent", "Sent");
	name_ok(&s, "a/b/", "a/b");
	name_ok(&s, "Entw&APw-rfe", "Entw\xc3\xbc" "rfe");
	name_bad(&s, "Entw\xc3\xbc" "rfe", 9);      /* 8-bit without UTF8=ACCEPT */
	name_bad(&s, "&Jjo", 4);
	name_bad(&s, "", 0);
	name_bad(&s, "/a", 2);
	name_bad(&s, "a//b", 4);
	name_bad(&s, "a\0b", 3);
	s.utf8_accept = true;
	name_ok(&s, "Entw\xc3\xbc" "rfe", "Entw\xc3\xbc" "rfe");
	name_ok(&s, "&Jjo", "&Jjo");
	name_bad(&s, "\xff", 1);

	struct evbuffer *out = evbuffer_new();
	s.utf8_accept = false;
	imap_name_write(&s, out, "Entw\xc3\xbc" "rfe");
	evbuffer_add(out, " ", 1);
	imap_name_write(&s, out, "with space");
	evbuffer_add(out, " ", 1);
	s.utf8_accept = true;
	imap_name_write(&s, out, "Entw\xc3\xbc" "rfe");
	char text[128] = "";
	evbuffer_remove(out, text, sizeof(text) - 1);
	assert_string_equal(text, "Entw&APw-rfe \"with space\" \"Entw\xc3\xbc" "rfe\"");
	evbuffer_free(out);
}

static void test_command_table(void **state)
{
	(void)state;
	static const char *names[] = {
		"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "SELECT",
		"EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB",
		"STATUS", "APPEND", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH",
		"STORE", "COPY", "MOVE", "IDLE", "NAMESPACE", "ID", "ENABLE", "GETQUOTA",
		"GETQUOTAROOT", "SETQUOTA", "COMPRESS",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct imap_command *c = imap_command_find(names[i]);
		assert_non_null(c);
		assert_string_equal(c->name, names[i]);
		assert_non_null(c->handler);
	}
	assert_null(imap_command_find("UID"));
	assert_null(imap_command_find("noop"));
	assert_null(imap_command_find("XYZZY"));
	assert_int_equal(imap_command_find("LOGIN")->states, IMAP_STATE_NOT_AUTH);
	assert_true((imap_command_find("FETCH")->flags & IMAP_CMD_UID_OK) != 0);
	assert_true((imap_command_find("FETCH")->flags & IMAP_CMD_SYNC_NO_EXPUNGE) != 0);
	assert_true((imap_command_find("EXPUNGE")->flags & IMAP_CMD_UID_OK) != 0);
	assert_int_equal(imap_command_find("SELECT")->flags & IMAP_CMD_UID_OK, 0);
	assert_int_equal(imap_command_find("FETCH")->states, IMAP_STATE_SELECTED);
}

int main(void)
{
	mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_command_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
