/* Unit tests of the per-user mail store (src/store/store.h): folders, append,
 * flags, expunge, copy/move, rename/delete, changes since a modseq, delivery
 * id idempotence, transactions, persistence, and a timing print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/limits.h"
#include "store/mime.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	struct store *st;
};

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb, (void)type, (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	enum tern_error err;

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/tern-store-test-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(store_open(fx->dir, "alice", true, &fx->st, &err), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	store_close(&fx->st);
	assert_null(fx->st);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static const struct store_msg_cache test_cache = {
	.envelope = "(\"date\" \"subj\" NIL NIL NIL NIL NIL NIL NIL NIL)",
	.bodystructure = "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)",
	.body = "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1)",
	.subject = "subj",
	.sent_date = 1700000000,
};

static uint32_t put_full(struct store *st, const char *folder, const char *text, uint32_t flags,
			 const char *keywords, uint64_t delivery_id)
{
	struct store_new_msg m = {
		.folder = folder, .data = text, .size = strlen(text),
		.internal_date = 1600000000, .internal_tz = 120, .flags = flags,
		.keywords = keywords, .cache = &test_cache, .delivery_id = delivery_id,
	};
	uint32_t uid = 0, uidvalidity = 0;
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(store_append(st, &m, &uid, &uidvalidity, &err), 0);
	assert_int_not_equal(uid, 0);
	assert_int_not_equal(uidvalidity, 0);
	return uid;
}

static uint32_t put(struct store *st, const char *folder, const char *text)
{
	return put_full(st, folder, text, 0, NULL, 0);
}

static void get_folder(struct store *st, const char *name, struct store_folder *f)
{
	enum tern_error err;

	assert_int_equal(store_folder_get(st, name, f, &err), 1);
}

static uint32_t folder_count(struct store *st, const char *name)
{
	struct store_folder f;
	uint32_t n;

	get_folder(st, name, &f);
	n = f.messages;
	store_folder_clear(&f);
	return n;
}

/* ---- open / defaults ---- */

static void test_open_defaults(void **state)
{
	struct fixture *fx = *state;
	struct store_folder *folders;
	struct store *other;
	enum tern_error err;
	char **names, *path, mail[96];
	size_t count;
	struct stat sb;
	static const char *const expect[][2] = {
		{ "INBOX", NULL }, { "Drafts", "\\Drafts" }, { "Junk", "\\Junk" },
		{ "Sent", "\\Sent" }, { "Trash", "\\Trash" },
	};

	assert_int_equal(store_open(fx->dir, "bob", false, &other, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(store_open(fx->dir, "../evil", true, &other, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);

	path = store_path(fx->dir, "alice");
	assert_non_null(path);
	assert_int_equal(stat(path, &sb), 0);
	assert_non_null(strstr(path, "/mail/alice.db"));
	free(path);
	snprintf(mail, sizeof(mail), "%s/mail", fx->dir);
	assert_int_equal(stat(mail, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);

	assert_int_equal(store_folder_list(fx->st, &folders, &count, &err), 0);
	assert_int_equal(count, 5);
	for (size_t i = 0; i < count; i++) {
		assert_string_equal(folders[i].name, expect[i][0]);
		if (expect[i][1] == NULL)
			assert_null(folders[i].special_use);
		else
			assert_string_equal(folders[i].special_use, expect[i][1]);
		assert_true(folders[i].subscribed);
		assert_int_equal(folders[i].uidnext, 1);
		assert_int_equal(folders[i].messages, 0);
		assert_true(folders[i].highestmodseq >= 1);
		assert_int_not_equal(folders[i].uidvalidity, 0);
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(folders[i].uidvalidity, folders[j].uidvalidity);
	}
	store_folders_free(&folders, count);
	assert_null(folders);

	assert_int_equal(store_subscriptions(fx->st, &names, &count, &err), 0);
	assert_int_equal(count, 5);
	store_names_free(&names, count);

	/* A second handle on the same store sees the same thing. */
	assert_int_equal(store_open(fx->dir, "alice", false, &other, &err), 0);
	assert_int_equal(folder_count(other, "Sent"), 0);
	store_close(&other);
	assert_int_equal(store_set_durable(fx->st, false, &err), 0);
	assert_int_equal(store_set_durable(fx->st, true, &err), 0);
	assert_int_equal(store_checkpoint(fx->st, &err), 0);
}

/* ---- append / read ---- */

static void test_append_roundtrip(void **state)
{
	struct fixture *fx = *state;
	static const char text[] = "Subject: hi\r\n\r\nhello world\r\n";
	struct store_new_msg m = {
		.folder = "inbox", .data = text, .size = sizeof(text) - 1,
		.internal_date = 1600000000, .internal_tz = -300,
		.flags = STORE_FLAG_FLAGGED, .keywords = " $Forwarded  foo FOO ",
		.cache = &test_cache,
	};
	struct store_msg *msgs, one;
	struct store_msg_cache c;
	struct store_folder f;
	enum tern_error err;
	uint32_t uid, uidvalidity;
	size_t count, size;
	uint64_t total;
	char *data;

	assert_int_equal(store_append(fx->st, &m, &uid, &uidvalidity, &err), 0);
	assert_int_equal(uid, 1);
	get_folder(fx->st, "INBOX", &f);
	assert_int_equal(f.uidvalidity, uidvalidity);
	assert_int_equal(f.messages, 1);
	assert_int_equal(f.unseen, 1);
	assert_int_equal(f.size, sizeof(text) - 1);
	assert_int_equal(f.uidnext, 2);
	store_folder_clear(&f);

	assert_int_equal(store_msg_list(fx->st, "INBOX", &msgs, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(msgs[0].flags, STORE_FLAG_FLAGGED);
	assert_string_equal(msgs[0].keywords, "$Forwarded foo");
	assert_int_equal(msgs[0].internal_date, 1600000000);
	assert_int_equal(msgs[0].internal_tz, -300);
	assert_int_equal(msgs[0].size, sizeof(text) - 1);
	assert_true(msgs[0].modseq > 0);
	store_msgs_free(&msgs, count);

	assert_int_equal(store_msg_get(fx->st, "INBOX", 1, &one, &err), 1);
	assert_int_equal(one.uid, 1);
	store_msg_clear(&one);
	assert_int_equal(store_msg_get(fx->st, "INBOX", 2, &one, &err), 0);

	assert_int_equal(store_msg_raw(fx->st, "INBOX", 1, &data, &size, &err), 1);
	assert_int_equal(size, sizeof(text) - 1);
	assert_memory_equal(data, text, size);
	free(data);
	assert_int_equal(store_msg_raw(fx->st, "INBOX", 9, &data, &size, &err), 0);

	assert_int_equal(store_msg_raw_range(fx->st, "INBOX", 1, 15, 5, &data, &size, &total,
					     &err), 1);
	assert_int_equal(size, 5);
	assert_int_equal(total, sizeof(text) - 1);
	assert_memory_equal(data, "hello", 5);
	free(data);
	assert_int_equal(store_msg_raw_range(fx->st, "INBOX", 1, 21, 1000, &data, &size, NULL,
					     &err), 1);
	assert_string_equal(data, "world\r\n");
	free(data);
	assert_int_equal(store_msg_raw_range(fx->st, "INBOX", 1, 999, 10, &data, &size, NULL,
					     &err), 1);
	assert_int_equal(size, 0);
	free(data);

	assert_int_equal(store_msg_cache(fx->st, "INBOX", 1, &c, &err), 1);
	assert_string_equal(c.envelope, test_cache.envelope);
	assert_string_equal(c.bodystructure, test_cache.bodystructure);
	assert_string_equal(c.body, test_cache.body);
	assert_string_equal(c.subject, test_cache.subject);
	assert_int_equal(c.sent_date, test_cache.sent_date);
	store_msg_cache_clear(&c);

	/* Bad input changes nothing. */
	m.folder = "Nope";
	assert_int_equal(store_append(fx->st, &m, &uid, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	m.folder = "INBOX";
	m.flags = 1u << 10;
	assert_int_equal(store_append(fx->st, &m, &uid, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	m.flags = 0;
	m.keywords = "\\Seen";
	assert_int_equal(store_append(fx->st, &m, &uid, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(folder_count(fx->st, "INBOX"), 1);
}

/* With no cache given the store parses the message itself (store/mime.h). */
static void test_append_computes_cache(void **state)
{
	struct fixture *fx = *state;
	static const char text[] = "From: a@b.c\r\nSubject: parsed\r\n\r\nbody\r\n";
	struct store_new_msg m = { .folder = "INBOX", .data = text, .size = sizeof(text) - 1 };
	struct store_msg_cache c;
	struct store_msg one;
	enum tern_error err;
	uint32_t uid;
	time_t before = time(NULL);

	assert_int_equal(store_append(fx->st, &m, &uid, NULL, &err), 0);
	assert_int_equal(store_msg_cache(fx->st, "INBOX", uid, &c, &err), 1);
	assert_non_null(c.envelope);
	assert_int_equal(c.envelope[0], '(');
	assert_non_null(c.bodystructure);
	store_msg_cache_clear(&c);
	/* internal_date 0 means now. */
	assert_int_equal(store_msg_get(fx->st, "INBOX", uid, &one, &err), 1);
	assert_true(one.internal_date >= before && one.internal_date <= time(NULL) + 1);
	store_msg_clear(&one);
}

static void test_uid_modseq_monotonic(void **state)
{
	struct fixture *fx = *state;
	struct store_folder f;
	struct store_msg *msgs;
	enum tern_error err;
	uint64_t last = 0, user_modseq;
	uint32_t uids[1];
	size_t count;

	for (uint32_t i = 1; i <= 10; i++)
		assert_int_equal(put(fx->st, "INBOX", "x\r\n"), i);
	assert_int_equal(store_msg_list(fx->st, "INBOX", &msgs, &count, &err), 0);
	assert_int_equal(count, 10);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(msgs[i].uid, i + 1);
		assert_true(msgs[i].modseq > last);
		last = msgs[i].modseq;
	}
	store_msgs_free(&msgs, count);
	get_folder(fx->st, "INBOX", &f);
	assert_int_equal(f.uidnext, 11);
	assert_int_equal(f.highestmodseq, last);
	store_folder_clear(&f);
	assert_int_equal(store_highestmodseq(fx->st, &user_modseq, &err), 0);
	assert_true(user_modseq >= last);

	/* UIDs are never reused, even after the highest one is expunged. */
	uids[0] = 10;
	assert_int_equal(store_expunge(fx->st, "INBOX", uids, 1, NULL, NULL, &err), 0);
	assert_int_equal(put(fx->st, "INBOX", "y\r\n"), 11);
	/* Another folder has its own UID sequence but shares the modseq counter. */
	assert_int_equal(put(fx->st, "Sent", "z\r\n"), 1);
	get_folder(fx->st, "Sent", &f);
	assert_true(f.highestmodseq > last);
	store_folder_clear(&f);
}

/* ---- flags ---- */

static void test_flags(void **state)
{
	struct fixture *fx = *state;
	uint32_t uids[3] = { 1, 2, 3 }, *failed;
	struct store_msg *msgs, one;
	struct store_folder f;
	size_t count, nfailed;
	enum tern_error err;
	uint64_t m1, m2, hms;

	put(fx->st, "INBOX", "a\r\n");
	put(fx->st, "INBOX", "b\r\n");
	put_full(fx->st, "INBOX", "c\r\n", STORE_FLAG_SEEN, "old", 0);
	get_folder(fx->st, "INBOX", &f);
	assert_int_equal(f.unseen, 2);
	store_folder_clear(&f);

	assert_int_equal(store_flags_update(fx->st, "INBOX", uids, 2, STORE_FLAGS_ADD,
					    STORE_FLAG_SEEN | STORE_FLAG_ANSWERED, "work Home",
					    0, &msgs, &count, NULL, NULL, &err), 0);
	assert_int_equal(count, 2);
	assert_int_equal(msgs[0].flags, STORE_FLAG_SEEN | STORE_FLAG_ANSWERED);
	assert_string_equal(msgs[1].keywords, "work Home");
	assert_int_equal(msgs[0].modseq, msgs[1].modseq); /* one operation, one modseq */
	m1 = msgs[0].modseq;
	store_msgs_free(&msgs, count);
	get_folder(fx->st, "INBOX", &f);
	assert_int_equal(f.unseen, 0);
	assert_int_equal(f.highestmodseq, m1);
	store_folder_clear(&f);

	/* A no-op change bumps nothing. */
	assert_int_equal(store_flags_update(fx->st, "INBOX", uids, 1, STORE_FLAGS_ADD,
					    STORE_FLAG_SEEN, "WORK", 0, &msgs, &count, NULL, NULL,
					    &err), 0);
	assert_int_equal(msgs[0].modseq, m1);
	assert_string_equal(msgs[0].keywords, "work Home");
	store_msgs_free(&msgs, count);

	/* Remove (keywords case-insensitively), and set. */
	assert_int_equal(store_flags_update(fx->st, "INBOX", uids, 3, STORE_FLAGS_REMOVE,
					    STORE_FLAG_SEEN, "home OLD", 0, &msgs, &count, NULL,
					    NULL, &err), 0);
	assert_int_equal(count, 3);
	assert_int_equal(msgs[0].flags, STORE_FLAG_ANSWERED);
	assert_string_equal(msgs[0].keywords, "work");
	assert_null(msgs[2].keywords);
	assert_int_equal(msgs[2].flags, 0);
	m2 = msgs[0].modseq;
	assert_true(m2 > m1);
	store_msgs_free(&msgs, count);
	assert_int_equal(store_flags_update(fx->st, "INBOX", uids + 1, 1, STORE_FLAGS_SET,
					    STORE_FLAG_DRAFT, NULL, 0, NULL, NULL, NULL, NULL,
					    &err), 0);
	assert_int_equal(store_msg_get(fx->st, "INBOX", 2, &one, &err), 1);
	assert_int_equal(one.flags, STORE_FLAG_DRAFT);
	assert_null(one.keywords);
	store_msg_clear(&one);

	/* UNCHANGEDSINCE: message 2 changed after m2, 1 and 3 did not. */
	assert_int_equal(store_flags_update(fx->st, "INBOX", uids, 3, STORE_FLAGS_ADD,
					    STORE_FLAG_FLAGGED, NULL, m2, &msgs, &count, &failed,
					    &nfailed, &err), 0);
	assert_int_equal(nfailed, 1);
	assert_int_equal(failed[0], 2);
	free(failed);
	assert_int_equal(count, 3);
	store_msgs_free(&msgs, count);
	assert_int_equal(store_msg_get(fx->st, "INBOX", 2, &one, &err), 1);
	assert_int_equal(one.flags, STORE_FLAG_DRAFT);      /* untouched */
	store_msg_clear(&one);
	assert_int_equal(store_msg_get(fx->st, "INBOX", 1, &one, &err), 1);
	assert_true(one.flags & STORE_FLAG_FLAGGED);
	store_msg_clear(&one);
	get_folder(fx->st, "INBOX", &f);
	hms = f.highestmodseq;
	store_folder_clear(&f);
	assert_true(hms > m2);

	/* Missing UIDs are skipped, bad arguments refused. */
	uids[0] = 77;
	assert_int_equal(store_flags_update(fx->st, "INBOX", uids, 1, STORE_FLAGS_ADD,
					    STORE_FLAG_SEEN, NULL, 0, &msgs, &count, NULL, NULL,
					    &err), 0);
	assert_int_equal(count, 0);
	store_msgs_free(&msgs, count);
	assert_int_equal(store_flags_update(fx->st, "INBOX", uids, 1, STORE_FLAGS_ADD, 0,
					    "bad(kw", 0, NULL, NULL, NULL, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(store_flags_update(fx->st, "Nope", uids, 1, STORE_FLAGS_ADD, 0,
					    NULL, 0, NULL, NULL, NULL, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
}

/* ---- expunge and changes ---- */

static void test_expunge_changes(void **state)
{
	struct fixture *fx = *state;
	uint32_t uids[2], *expunged;
	struct store_changes ch;
	struct store_folder f;
	enum tern_error err;
	uint64_t base, hms;
	size_t n;

	for (int i = 0; i < 5; i++)
		put(fx->st, "INBOX", "m\r\n");
	get_folder(fx->st, "INBOX", &f);
	base = f.highestmodseq;
	store_folder_clear(&f);

	uids[0] = 2;
	assert_int_equal(store_flags_update(fx->st, "INBOX", uids, 1, STORE_FLAGS_ADD,
					    STORE_FLAG_SEEN, NULL, 0, NULL, NULL, NULL, NULL,
					    &err), 0);
	uids[0] = 3;
	uids[1] = 4;
	assert_int_equal(store_flags_update(fx->st, "INBOX", uids, 2, STORE_FLAGS_ADD,
					    STORE_FLAG_DELETED, NULL, 0, NULL, NULL, NULL, NULL,
					    &err), 0);
	assert_int_equal(store_expunge(fx->st, "INBOX", NULL, 0, &expunged, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(expunged[0], 3);
	assert_int_equal(expunged[1], 4);
	free(expunged);
	get_folder(fx->st, "INBOX", &f);
	assert_int_equal(f.messages, 3);
	hms = f.highestmodseq;
	store_folder_clear(&f);

	assert_int_equal(store_changes_since(fx->st, "INBOX", base, &ch, &err), 0);
	assert_int_equal(ch.changed_count, 1);
	assert_int_equal(ch.changed[0].uid, 2);
	assert_int_equal(ch.vanished_count, 2);
	assert_int_equal(ch.vanished[0], 3);
	assert_int_equal(ch.vanished[1], 4);
	assert_int_equal(ch.highestmodseq, hms);
	assert_int_equal(ch.uidnext, 6);
	store_changes_clear(&ch);

	assert_int_equal(store_changes_since(fx->st, "INBOX", hms, &ch, &err), 0);
	assert_int_equal(ch.changed_count, 0);
	assert_int_equal(ch.vanished_count, 0);
	store_changes_clear(&ch);

	assert_int_equal(store_changes_since(fx->st, "INBOX", 0, &ch, &err), 0);
	assert_int_equal(ch.changed_count, 3);
	assert_int_equal(ch.changed[0].uid, 1);
	assert_int_equal(ch.changed[2].uid, 5);
	assert_int_equal(ch.vanished_count, 0);
	store_changes_clear(&ch);

	/* Expunging nothing is a no-op: no modseq spent. */
	uids[0] = 3;
	assert_int_equal(store_expunge(fx->st, "INBOX", uids, 1, &expunged, &n, &err), 0);
	assert_int_equal(n, 0);
	free(expunged);
	get_folder(fx->st, "INBOX", &f);
	assert_int_equal(f.highestmodseq, hms);
	store_folder_clear(&f);

	/* Explicit UIDs are expunged whatever their flags (MOVE uses this). */
	uids[0] = 5;
	assert_int_equal(store_expunge(fx->st, "INBOX", uids, 1, NULL, NULL, &err), 0);
	assert_int_equal(store_changes_since(fx->st, "INBOX", hms, &ch, &err), 0);
	assert_int_equal(ch.vanished_count, 1);
	assert_int_equal(ch.vanished[0], 5);
	assert_true(ch.highestmodseq > hms);
	store_changes_clear(&ch);
	assert_int_equal(store_changes_since(fx->st, "Nope", 0, &ch, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
}

/* ---- \Recent: peek (EXAMINE, STATUS) and claim (SELECT) ---- */

static void peek(struct store *st, const char *folder, uint32_t first, uint32_t next,
		 uint32_t count)
{
	uint32_t f = 0, n = 0, c = 99;
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(store_folder_peek_recent(st, folder, &f, &n, &c, &err), 1);
	assert_int_equal(f, first);
	assert_int_equal(n, next);
	assert_int_equal(c, count);
}

static void test_recent_peek_claim(void **state)
{
	struct fixture *fx = *state;
	uint32_t first = 0, next = 0, count = 0, uids[1];
	enum tern_error err = TERN_ERR_NONE;

	peek(fx->st, "INBOX", 1, 1, 0);
	put(fx->st, "INBOX", "a\r\n");
	put(fx->st, "INBOX", "b\r\n");
	/* peeking claims nothing, however often */
	peek(fx->st, "INBOX", 1, 3, 2);
	peek(fx->st, "inbox", 1, 3, 2);
	assert_int_equal(store_folder_claim_recent(fx->st, "INBOX", &first, &next, &err), 1);
	assert_int_equal(first, 1);
	assert_int_equal(next, 3);
	peek(fx->st, "INBOX", 3, 3, 0);
	/* a second claim finds nothing new */
	assert_int_equal(store_folder_claim_recent(fx->st, "INBOX", &first, &next, &err), 1);
	assert_int_equal(first, 3);
	assert_int_equal(next, 3);
	/* new mail is unclaimed; the count is of messages, not of UIDs */
	put(fx->st, "INBOX", "c\r\n");
	put(fx->st, "INBOX", "d\r\n");
	peek(fx->st, "INBOX", 3, 5, 2);
	uids[0] = 3;
	assert_int_equal(store_expunge(fx->st, "INBOX", uids, 1, NULL, NULL, &err), 0);
	peek(fx->st, "INBOX", 3, 5, 1);
	/* each folder has its own mark */
	assert_int_equal(store_folder_create(fx->st, "Other", NULL, &err), 0);
	put(fx->st, "Other", "e\r\n");
	peek(fx->st, "Other", 1, 2, 1);
	peek(fx->st, "INBOX", 3, 5, 1);
	/* a copy into a folder is new there */
	uids[0] = 4;
	assert_int_equal(store_copy(fx->st, "INBOX", uids, 1, "Other", false, NULL, NULL, NULL, NULL,
				    &err), 0);
	peek(fx->st, "Other", 1, 3, 2);
	/* no such folder */
	assert_int_equal(store_folder_peek_recent(fx->st, "Nope", &first, &next, &count, &err), 0);
	assert_int_equal(store_folder_peek_recent(fx->st, "", &first, &next, &count, &err), 0);
}

/* ---- copy / move ---- */

static void test_copy_move(void **state)
{
	struct fixture *fx = *state;
	uint32_t uids[4] = { 1, 2, 9, 3 }, *src, *dst, dest_uv;
	struct store_folder trash;
	struct store_msg one, copy;
	struct store_changes ch;
	enum tern_error err;
	uint64_t base, bytes, nmsgs;
	size_t copied, size;
	char *data;

	put_full(fx->st, "INBOX", "one\r\n", STORE_FLAG_SEEN, "k1", 0);
	put_full(fx->st, "INBOX", "two\r\n", STORE_FLAG_FLAGGED, NULL, 0);
	put(fx->st, "INBOX", "three\r\n");
	put(fx->st, "Trash", "old\r\n");        /* dest UIDs start after this */
	get_folder(fx->st, "Trash", &trash);
	base = trash.highestmodseq;

	assert_int_equal(store_copy(fx->st, "INBOX", uids, 4, "Trash", false, &src, &dst,
				    &copied, &dest_uv, &err), 0);
	assert_int_equal(copied, 3);
	assert_int_equal(dest_uv, trash.uidvalidity);
	store_folder_clear(&trash);
	assert_int_equal(src[0], 1);
	assert_int_equal(src[1], 2);
	assert_int_equal(src[2], 3);
	assert_int_equal(dst[0], 2);
	assert_int_equal(dst[1], 3);
	assert_int_equal(dst[2], 4);
	free(src);
	free(dst);

	assert_int_equal(store_msg_get(fx->st, "INBOX", 1, &one, &err), 1);
	assert_int_equal(store_msg_get(fx->st, "Trash", 2, &copy, &err), 1);
	assert_int_equal(copy.flags, one.flags);
	assert_string_equal(copy.keywords, "k1");
	assert_int_equal(copy.internal_date, one.internal_date);
	assert_int_equal(copy.internal_tz, one.internal_tz);
	assert_int_equal(copy.size, one.size);
	assert_true(copy.modseq > base);
	store_msg_clear(&one);
	store_msg_clear(&copy);
	assert_int_equal(folder_count(fx->st, "INBOX"), 3);
	assert_int_equal(folder_count(fx->st, "Trash"), 4);

	/* Copies share nothing mutable: expunging the original keeps the copy. */
	uids[0] = 1;
	assert_int_equal(store_expunge(fx->st, "INBOX", uids, 1, NULL, NULL, &err), 0);
	assert_int_equal(store_msg_raw(fx->st, "Trash", 2, &data, &size, &err), 1);
	assert_string_equal(data, "one\r\n");
	free(data);
	uids[0] = 2;
	assert_int_equal(store_flags_update(fx->st, "Trash", uids, 1, STORE_FLAGS_SET, 0,
					    NULL, 0, NULL, NULL, NULL, NULL, &err), 0);
	assert_int_equal(store_msg_get(fx->st, "INBOX", 2, &one, &err), 1);
	assert_int_equal(one.flags, STORE_FLAG_FLAGGED);
	store_msg_clear(&one);

	/* Move: gone from the source (tombstones), present in dest. */
	uids[0] = 2;
	uids[1] = 3;
	assert_int_equal(store_copy(fx->st, "INBOX", uids, 2, "Junk", true, &src, &dst,
				    &copied, NULL, &err), 0);
	assert_int_equal(copied, 2);
	assert_int_equal(dst[0], 1);
	assert_int_equal(dst[1], 2);
	free(src);
	free(dst);
	assert_int_equal(folder_count(fx->st, "INBOX"), 0);
	assert_int_equal(folder_count(fx->st, "Junk"), 2);
	assert_int_equal(store_changes_since(fx->st, "INBOX", base, &ch, &err), 0);
	assert_int_equal(ch.vanished_count, 3);
	store_changes_clear(&ch);
	assert_int_equal(store_msg_raw(fx->st, "Junk", 2, &data, &size, &err), 1);
	assert_string_equal(data, "three\r\n");
	free(data);

	/* Missing destination: nothing happens. */
	uids[0] = 1;
	assert_int_equal(store_copy(fx->st, "Junk", uids, 1, "Nope", true, &src, &dst,
				    &copied, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(folder_count(fx->st, "Junk"), 2);

	assert_int_equal(store_usage(fx->st, &bytes, &nmsgs, &err), 0);
	assert_int_equal(nmsgs, 6);
	assert_int_equal(bytes, 5 + 5 + 5 + 5 + 7 + 7);
	assert_int_equal(store_integrity_check(fx->st, &err), 1);
}

/* ---- rename / delete / subscriptions ---- */

static void test_rename(void **state)
{
	struct fixture *fx = *state;
	struct store_folder f, g;
	struct store_changes ch;
	struct store_msg *msgs;
	enum tern_error err;
	size_t count;
	char **names;
	uint32_t a_uv;

	assert_int_equal(store_folder_create(fx->st, "a/x", NULL, &err), 0);
	get_folder(fx->st, "a", &f);    /* parent made on the way */
	a_uv = f.uidvalidity;
	store_folder_clear(&f);
	assert_int_equal(store_folder_create(fx->st, "ab", NULL, &err), 0);
	put(fx->st, "a", "in a\r\n");
	put(fx->st, "a/x", "in a/x\r\n");
	assert_int_equal(store_folder_subscribe(fx->st, "a/x", true, &err), 0);

	assert_int_equal(store_folder_rename(fx->st, "a", "b", &err), 0);
	assert_int_equal(store_folder_get(fx->st, "a", &f, &err), 0);
	assert_int_equal(store_folder_get(fx->st, "a/x", &f, &err), 0);
	get_folder(fx->st, "b", &f);
	assert_int_equal(f.uidvalidity, a_uv);
	assert_int_equal(f.messages, 1);
	store_folder_clear(&f);
	get_folder(fx->st, "b/x", &f);
	assert_int_equal(f.messages, 1);
	assert_true(f.subscribed);
	store_folder_clear(&f);
	get_folder(fx->st, "ab", &f);   /* not a child of "a" */
	store_folder_clear(&f);

	assert_int_equal(store_folder_rename(fx->st, "b", "Sent", &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	assert_int_equal(store_folder_rename(fx->st, "b", "inbox", &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	assert_int_equal(store_folder_rename(fx->st, "zz", "yy", &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(store_folder_rename(fx->st, "b", "b/y", &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(store_folder_rename(fx->st, "b", "../b", &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	/* A child whose new name is taken fails the whole rename. */
	assert_int_equal(store_folder_create(fx->st, "c/x", NULL, &err), 0);
	assert_int_equal(store_folder_delete(fx->st, "c", &err), 0);
	assert_int_equal(store_folder_rename(fx->st, "b", "c", &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	get_folder(fx->st, "b", &f);
	store_folder_clear(&f);
	get_folder(fx->st, "b/x", &f);
	store_folder_clear(&f);
	/* Renaming into a new hierarchy creates the parents. */
	assert_int_equal(store_folder_rename(fx->st, "b/x", "p/q/r", &err), 0);
	get_folder(fx->st, "p/q", &f);
	store_folder_clear(&f);

	/* INBOX: messages move to the new folder, INBOX stays, empty, and its
	 * children stay where they are. */
	put(fx->st, "INBOX", "i1\r\n");
	put_full(fx->st, "INBOX", "i2\r\n", STORE_FLAG_SEEN, "kw", 0);
	assert_int_equal(store_folder_create(fx->st, "INBOX/kid", NULL, &err), 0);
	get_folder(fx->st, "INBOX", &g);
	assert_int_equal(store_folder_rename(fx->st, "INBOX", "Old Mail", &err), 0);
	get_folder(fx->st, "INBOX", &f);
	assert_int_equal(f.messages, 0);
	assert_int_equal(f.uidvalidity, g.uidvalidity);
	assert_int_equal(f.uidnext, 3);
	store_folder_clear(&f);
	assert_int_equal(store_changes_since(fx->st, "INBOX", g.highestmodseq, &ch, &err), 0);
	assert_int_equal(ch.vanished_count, 2);
	store_changes_clear(&ch);
	store_folder_clear(&g);
	assert_int_equal(store_msg_list(fx->st, "Old Mail", &msgs, &count, &err), 0);
	assert_int_equal(count, 2);
	assert_int_equal(msgs[1].flags, STORE_FLAG_SEEN);
	assert_string_equal(msgs[1].keywords, "kw");
	store_msgs_free(&msgs, count);
	get_folder(fx->st, "INBOX/kid", &f);
	store_folder_clear(&f);
	assert_int_equal(put(fx->st, "INBOX", "new\r\n"), 3);

	assert_int_equal(store_subscriptions(fx->st, &names, &count, &err), 0);
	for (size_t i = 0; i < count; i++)
		assert_string_not_equal(names[i], "a/x");
	store_names_free(&names, count);
	assert_int_equal(store_integrity_check(fx->st, &err), 1);
}

static void test_delete(void **state)
{
	struct fixture *fx = *state;
	struct store_folder f;
	enum tern_error err;
	uint64_t bytes, n;
	uint32_t uv;
	char **names;
	size_t count;
	bool found = false;

	assert_int_equal(store_folder_create(fx->st, "Work", NULL, &err), 0);
	assert_int_equal(store_folder_create(fx->st, "Work", NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	assert_int_equal(store_folder_create(fx->st, "Work/sub", NULL, &err), 0);
	assert_int_equal(store_folder_subscribe(fx->st, "Work", true, &err), 0);
	get_folder(fx->st, "Work", &f);
	uv = f.uidvalidity;
	store_folder_clear(&f);
	put(fx->st, "Work", "1\r\n");
	put(fx->st, "Work", "2\r\n");
	put(fx->st, "INBOX", "3\r\n");

	assert_int_equal(store_folder_delete(fx->st, "Work", &err), 0);
	assert_int_equal(store_folder_get(fx->st, "Work", &f, &err), 0);
	get_folder(fx->st, "Work/sub", &f);     /* children stay */
	store_folder_clear(&f);
	assert_int_equal(store_usage(fx->st, &bytes, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(bytes, 3);
	/* The subscription outlives the folder (RFC 3501 §6.3.6). */
	assert_int_equal(store_subscriptions(fx->st, &names, &count, &err), 0);
	for (size_t i = 0; i < count; i++)
		found |= strcmp(names[i], "Work") == 0;
	store_names_free(&names, count);
	assert_true(found);

	/* Re-created: a new UIDVALIDITY, UIDs from 1, no old tombstones. */
	assert_int_equal(store_folder_create(fx->st, "Work", NULL, &err), 0);
	get_folder(fx->st, "Work", &f);
	assert_int_not_equal(f.uidvalidity, uv);
	assert_int_equal(f.uidnext, 1);
	assert_int_equal(f.messages, 0);
	store_folder_clear(&f);

	assert_int_equal(store_folder_delete(fx->st, "inbox", &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	assert_int_equal(store_folder_delete(fx->st, "Nope", &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(store_integrity_check(fx->st, &err), 1);
}

/* ---- view snapshots ---- */

static void test_view_snapshot(void **state)
{
	struct fixture *fx = *state;
	struct store_folder f;
	struct store_msg *msgs = NULL;
	enum tern_error err;
	size_t count = 0;
	uint64_t modseq = 0;
	uint32_t uv;

	put(fx->st, "INBOX", "1\r\n");
	put(fx->st, "INBOX", "2\r\n");
	get_folder(fx->st, "INBOX", &f);
	uv = f.uidvalidity;
	uint64_t hms = f.highestmodseq;
	store_folder_clear(&f);
	assert_int_equal(store_snapshot_get(fx->st, "INBOX", uv, &modseq, &msgs, &count, &err), 0);
	assert_int_equal(store_snapshot_age(fx->st, "INBOX", uv, &modseq, &err), 0);

	const struct store_snapshot_msg in[] = {
		{ .uid = 1, .flags = STORE_FLAG_SEEN, .modseq = hms - 1, .keywords = NULL },
		{ .uid = 2, .flags = 0, .modseq = hms, .keywords = "$Junk work" },
		{ .uid = 300000, .flags = STORE_FLAG_DELETED | STORE_FLAG_DRAFT, .modseq = 1,
		  .keywords = "" },
	};
	assert_int_equal(store_snapshot_put(fx->st, "INBOX", uv, hms, in, 3, &err), 0);
	assert_int_equal(store_snapshot_age(fx->st, "INBOX", uv, &modseq, &err), 1);
	assert_int_equal(modseq, hms);
	assert_int_equal(store_snapshot_get(fx->st, "INBOX", uv, &modseq, &msgs, &count, &err), 1);
	assert_int_equal(modseq, hms);
	assert_int_equal(count, 3);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(msgs[i].uid, in[i].uid);
		assert_int_equal(msgs[i].flags, in[i].flags);
		assert_int_equal(msgs[i].modseq, in[i].modseq);
	}
	assert_null(msgs[0].keywords);
	assert_string_equal(msgs[1].keywords, "$Junk work");
	assert_null(msgs[2].keywords);
	store_msgs_free(&msgs, count);

	/* only for its UIDVALIDITY; never newer than the folder; UIDs ascending */
	assert_int_equal(store_snapshot_get(fx->st, "INBOX", uv + 1, &modseq, &msgs, &count, &err), 0);
	assert_int_equal(store_snapshot_put(fx->st, "INBOX", uv, hms + 1, in, 3, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	const struct store_snapshot_msg unordered[] = { { .uid = 5 }, { .uid = 5 } };
	assert_int_equal(store_snapshot_put(fx->st, "INBOX", uv, hms, unordered, 2, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	/* an empty folder list is a snapshot too */
	assert_int_equal(store_snapshot_put(fx->st, "Sent", 0, 0, NULL, 0, &err), -1);
	get_folder(fx->st, "Sent", &f);
	assert_int_equal(store_snapshot_put(fx->st, "Sent", f.uidvalidity, f.highestmodseq, NULL, 0,
					    &err), 0);
	assert_int_equal(store_snapshot_get(fx->st, "Sent", f.uidvalidity, &modseq, &msgs, &count,
					    &err), 1);
	assert_int_equal(count, 0);
	store_msgs_free(&msgs, count);
	store_folder_clear(&f);

	/* a damaged row reads as no snapshot, whatever its bytes */
	sqlite3 *db;
	char path[128];
	snprintf(path, sizeof(path), "%s/mail/alice.db", fx->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	static const char *const damage[] = {
		"UPDATE view_snapshots SET data = x'545631'",           /* count missing */
		"UPDATE view_snapshots SET data = x'54563103010100'",   /* truncated */
		"UPDATE view_snapshots SET data = x'5456310100ff0000'", /* zero UID step */
		"UPDATE view_snapshots SET data = x'545631ffffffffff0f'",
		"UPDATE view_snapshots SET data = x'58583101010100000000'", /* bad magic */
		"UPDATE view_snapshots SET data = x'5456310101400000'",    /* bad flags */
	};
	for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
		assert_int_equal(store_snapshot_put(fx->st, "INBOX", uv, hms, in, 3, &err), 0);
		assert_int_equal(sqlite3_exec(db, damage[i], NULL, NULL, NULL), SQLITE_OK);
		assert_int_equal(store_snapshot_get(fx->st, "INBOX", uv, &modseq, &msgs, &count,
						    &err), 0);
	}
	sqlite3_close(db);

	/* dropped with the folder */
	assert_int_equal(store_folder_create(fx->st, "Work", NULL, &err), 0);
	get_folder(fx->st, "Work", &f);
	put(fx->st, "Work", "w\r\n");
	store_folder_clear(&f);
	get_folder(fx->st, "Work", &f);
	const struct store_snapshot_msg one[] = { { .uid = 1, .modseq = f.highestmodseq } };
	assert_int_equal(store_snapshot_put(fx->st, "Work", f.uidvalidity, f.highestmodseq, one, 1,
					    &err), 0);
	store_folder_clear(&f);
	assert_int_equal(store_folder_delete(fx->st, "Work", &err), 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM view_snapshots", -1, &q, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 2);   /* INBOX and Sent */
	sqlite3_finalize(q);
	sqlite3_close(db);
	assert_int_equal(store_integrity_check(fx->st, &err), 1);
}

static void test_view_snapshot_refresh(void **state)
{
	struct fixture *fx = *state;
	struct store_folder f;
	struct store_msg *msgs = NULL;
	enum tern_error err;
	size_t count = 0;
	uint64_t modseq = 0, first;

	assert_int_equal(store_set_durable(fx->st, false, &err), 0);
	assert_int_equal(store_begin(fx->st, &err), 0);
	for (int i = 0; i < TERN_SNAPSHOT_MIN_MSGS; i++)
		put_full(fx->st, "INBOX", "m\r\n", i % 3 == 0 ? STORE_FLAG_SEEN : 0,
			 i == 7 ? "$Forwarded" : NULL, 0);
	put(fx->st, "Sent", "small\r\n");
	assert_int_equal(store_commit(fx->st, &err), 0);
	get_folder(fx->st, "INBOX", &f);

	assert_int_equal(store_snapshots_refresh(fx->st, &err), 0);
	assert_int_equal(store_snapshot_get(fx->st, "INBOX", f.uidvalidity, &first, &msgs, &count,
					    &err), 1);
	assert_int_equal(first, f.highestmodseq);
	assert_int_equal(count, TERN_SNAPSHOT_MIN_MSGS);
	assert_int_equal(msgs[0].flags, STORE_FLAG_SEEN);
	assert_int_equal(msgs[1].flags, 0);
	assert_string_equal(msgs[7].keywords, "$Forwarded");
	assert_int_equal(msgs[count - 1].uid, f.uidnext - 1);
	store_msgs_free(&msgs, count);
	store_folder_clear(&f);
	get_folder(fx->st, "Sent", &f);   /* below the size that is worth one */
	assert_int_equal(store_snapshot_age(fx->st, "Sent", f.uidvalidity, &modseq, &err), 0);
	store_folder_clear(&f);

	/* a few changes later it is still good enough; many later it is redone */
	put(fx->st, "INBOX", "n\r\n");
	assert_int_equal(store_snapshots_refresh(fx->st, &err), 0);
	get_folder(fx->st, "INBOX", &f);
	assert_int_equal(store_snapshot_age(fx->st, "INBOX", f.uidvalidity, &modseq, &err), 1);
	assert_int_equal(modseq, first);
	store_folder_clear(&f);
	for (int i = 0; i < TERN_SNAPSHOT_STALE; i++)
		put(fx->st, "INBOX", "n\r\n");
	assert_int_equal(store_snapshots_refresh(fx->st, &err), 0);
	get_folder(fx->st, "INBOX", &f);
	assert_int_equal(store_snapshot_get(fx->st, "INBOX", f.uidvalidity, &modseq, &msgs, &count,
					    &err), 1);
	assert_int_equal(modseq, f.highestmodseq);
	assert_int_equal(count, f.messages);
	store_msgs_free(&msgs, count);
	store_folder_clear(&f);
}

/* Far behind the folder, changes come from a primary key scan; near, from
 * the modseq index: both must give the same answer. */
static void test_changes_since_far_back(void **state)
{
	struct fixture *fx = *state;
	struct store_changes far, near;
	struct store_folder f;
	enum tern_error err;
	const int n = 4200;

	assert_int_equal(store_set_durable(fx->st, false, &err), 0);
	assert_int_equal(store_begin(fx->st, &err), 0);
	for (int i = 0; i < n; i++)
		put(fx->st, "INBOX", "m\r\n");
	assert_int_equal(store_commit(fx->st, &err), 0);
	uint32_t flag_uids[] = { 3, 4000 };
	assert_int_equal(store_flags_update(fx->st, "INBOX", flag_uids, 2, STORE_FLAGS_ADD,
					    STORE_FLAG_FLAGGED, NULL, 0, NULL, NULL, NULL, NULL,
					    &err), 0);
	get_folder(fx->st, "INBOX", &f);
	uint64_t since_far = f.highestmodseq - 4150, since_near = f.highestmodseq - 100;
	store_folder_clear(&f);

	assert_int_equal(store_changes_since(fx->st, "INBOX", since_far, &far, &err), 0);
	assert_int_equal(store_changes_since(fx->st, "INBOX", since_near, &near, &err), 0);
	/* appends took HMS-4200..HMS-1, the flag change HMS: far = UIDs 52..4200
	 * and 3; near = UIDs 4102..4200, 3 and 4000; each in UID order */
	assert_int_equal(far.changed_count, 4150);
	assert_int_equal(far.changed[0].uid, 3);
	assert_int_equal(far.changed[0].flags, STORE_FLAG_FLAGGED);
	assert_int_equal(far.changed[1].uid, 52);
	assert_int_equal(far.changed[far.changed_count - 1].uid, n);
	assert_int_equal(near.changed_count, 101);
	assert_int_equal(near.changed[0].uid, 3);
	assert_int_equal(near.changed[1].uid, 4000);
	assert_int_equal(near.changed[1].flags, STORE_FLAG_FLAGGED);
	assert_int_equal(near.changed[2].uid, 4102);
	for (size_t i = 1; i < far.changed_count; i++) {
		assert_true(far.changed[i].modseq > since_far);
		assert_true(far.changed[i].uid > far.changed[i - 1].uid);
	}
	for (size_t i = 1; i < near.changed_count; i++)
		assert_true(near.changed[i].uid > near.changed[i - 1].uid);
	store_changes_clear(&far);
	store_changes_clear(&near);
}

static void test_subscriptions(void **state)
{
	struct fixture *fx = *state;
	struct store_folder f;
	enum tern_error err;
	char **names;
	size_t count;

	assert_int_equal(store_folder_subscribe(fx->st, "Sent", false, &err), 0);
	assert_int_equal(store_folder_subscribe(fx->st, "Later/Maybe", true, &err), 0);
	assert_int_equal(store_folder_subscribe(fx->st, "a//b", true, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	get_folder(fx->st, "Sent", &f);
	assert_false(f.subscribed);
	store_folder_clear(&f);
	assert_int_equal(store_subscriptions(fx->st, &names, &count, &err), 0);
	assert_int_equal(count, 5);
	assert_string_equal(names[0], "Drafts");
	assert_string_equal(names[1], "INBOX");
	assert_string_equal(names[2], "Junk");
	assert_string_equal(names[3], "Later/Maybe");
	assert_string_equal(names[4], "Trash");
	store_names_free(&names, count);
	assert_null(names);
	assert_int_equal(store_folder_subscribe(fx->st, "Sent", true, &err), 0);
	get_folder(fx->st, "Sent", &f);
	assert_true(f.subscribed);
	store_folder_clear(&f);
}

static void test_invalid_names(void **state)
{
	struct fixture *fx = *state;
	static const char *const bad[] = {
		"", "/a", "a/", "a//b", "../x", "..", ".", "a/./b", "a/..", "x/../y",
		"a\tb", "a\x7f", "a*", "a%b", "\xff", "\xc0\xaf", "\xed\xa0\x80",
	};
	char longname[TERN_FOLDER_NAME_MAX + 2];
	struct store_folder f, *folders;
	enum tern_error err;
	size_t count;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = TERN_ERR_NONE;
		assert_int_equal(store_folder_create(fx->st, bad[i], NULL, &err), -1);
		assert_int_equal(err, TERN_ERR_INVALID);
		assert_int_equal(store_folder_get(fx->st, bad[i], &f, &err), 0);
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(store_folder_create(fx->st, longname, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	longname[TERN_FOLDER_NAME_MAX] = '\0';
	assert_int_equal(store_folder_create(fx->st, longname, NULL, &err), 0);
	assert_int_equal(store_folder_create(fx->st, "x", "\\Bogus", &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);

	/* UTF-8 is fine, INBOX is case-insensitive, other names are not. */
	assert_int_equal(store_folder_create(fx->st, "Entw\xc3\xbcrfe", "\\Archive", &err), 0);
	assert_int_equal(store_folder_create(fx->st, "inBox", NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	get_folder(fx->st, "iNbOx", &f);
	assert_string_equal(f.name, "INBOX");
	store_folder_clear(&f);
	assert_int_equal(store_folder_create(fx->st, "inbox/child", NULL, &err), 0);
	get_folder(fx->st, "INBOX/child", &f);
	assert_string_equal(f.name, "INBOX/child");
	store_folder_clear(&f);
	assert_int_equal(store_folder_create(fx->st, "sent", NULL, &err), 0);
	assert_int_equal(store_folder_list(fx->st, &folders, &count, &err), 0);
	assert_int_equal(count, 9);
	assert_string_equal(folders[0].name, "INBOX");
	store_folders_free(&folders, count);
}

/* ---- delivery ids ---- */

static void test_delivery_id(void **state)
{
	struct fixture *fx = *state;
	struct store_new_msg m = {
		.folder = "INBOX", .data = "d\r\n", .size = 3, .cache = &test_cache,
		.delivery_id = 42,
	};
	uint32_t uid, uv, uids[1], *src, *dst;
	struct store_folder inbox;
	enum tern_error err;
	size_t copied;

	assert_int_equal(put_full(fx->st, "INBOX", "d\r\n", 0, NULL, 42), 1);
	assert_int_equal(put_full(fx->st, "INBOX", "e\r\n", 0, NULL, 43), 2);
	get_folder(fx->st, "INBOX", &inbox);
	assert_int_equal(store_append(fx->st, &m, &uid, &uv, &err), 0);
	assert_int_equal(uid, 1);
	assert_int_equal(uv, inbox.uidvalidity);
	store_folder_clear(&inbox);
	assert_int_equal(folder_count(fx->st, "INBOX"), 2);

	/* A copy is a new message; a move takes the delivery id along. */
	uids[0] = 1;
	assert_int_equal(store_copy(fx->st, "INBOX", uids, 1, "Sent", false, &src, &dst,
				    &copied, NULL, &err), 0);
	free(src);
	free(dst);
	assert_int_equal(store_append(fx->st, &m, &uid, NULL, &err), 0);
	assert_int_equal(uid, 1);
	assert_int_equal(store_copy(fx->st, "INBOX", uids, 1, "Trash", true, &src, &dst,
				    &copied, &uv, &err), 0);
	assert_int_equal(copied, 1);
	free(src);
	free(dst);
	assert_int_equal(store_append(fx->st, &m, &uid, NULL, &err), 0);
	assert_int_equal(uid, 1);       /* UID 1 of Trash */
	assert_int_equal(folder_count(fx->st, "INBOX"), 1);
	assert_int_equal(folder_count(fx->st, "Trash"), 1);
	assert_int_equal(folder_count(fx->st, "Sent"), 1);
}

/* ---- transactions, persistence, concurrency ---- */

static void test_transactions(void **state)
{
	struct fixture *fx = *state;
	struct store_new_msg bad = { .folder = "Nope", .data = "x", .size = 1,
				     .cache = &test_cache };
	enum tern_error err;
	uint32_t uid;

	assert_int_equal(store_begin(fx->st, &err), 0);
	put(fx->st, "INBOX", "1\r\n");
	put(fx->st, "INBOX", "2\r\n");
	assert_int_equal(store_begin(fx->st, &err), -1);  /* no nesting */
	store_rollback(fx->st);
	assert_int_equal(folder_count(fx->st, "INBOX"), 0);

	/* A failed call inside a transaction undoes only itself. */
	assert_int_equal(store_begin(fx->st, &err), 0);
	put(fx->st, "INBOX", "3\r\n");
	assert_int_equal(store_append(fx->st, &bad, &uid, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(store_folder_create(fx->st, "INBOX", NULL, &err), -1);
	assert_int_equal(store_folder_create(fx->st, "T/x", NULL, &err), 0);
	assert_int_equal(store_commit(fx->st, &err), 0);
	assert_int_equal(folder_count(fx->st, "INBOX"), 1);
	assert_int_equal(folder_count(fx->st, "T/x"), 0);
	assert_int_equal(store_commit(fx->st, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
}

static void test_reopen_persistence(void **state)
{
	struct fixture *fx = *state;
	struct store_folder f, g;
	struct store_msg *msgs;
	enum tern_error err;
	size_t count, size;
	char *data;

	put_full(fx->st, "Drafts", "persist\r\n", STORE_FLAG_DRAFT, "$x", 0);
	assert_int_equal(store_folder_create(fx->st, "Keep/Me", NULL, &err), 0);
	get_folder(fx->st, "Drafts", &f);
	store_close(&fx->st);
	assert_int_equal(store_open(fx->dir, "alice", false, &fx->st, &err), 0);
	get_folder(fx->st, "Drafts", &g);
	assert_int_equal(g.uidvalidity, f.uidvalidity);
	assert_int_equal(g.uidnext, f.uidnext);
	assert_int_equal(g.highestmodseq, f.highestmodseq);
	assert_int_equal(g.messages, 1);
	store_folder_clear(&f);
	store_folder_clear(&g);
	get_folder(fx->st, "Keep/Me", &g);
	store_folder_clear(&g);
	assert_int_equal(store_msg_list(fx->st, "Drafts", &msgs, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_string_equal(msgs[0].keywords, "$x");
	assert_int_equal(msgs[0].flags, STORE_FLAG_DRAFT);
	store_msgs_free(&msgs, count);
	assert_int_equal(store_msg_raw(fx->st, "Drafts", 1, &data, &size, &err), 1);
	assert_string_equal(data, "persist\r\n");
	free(data);
	assert_int_equal(store_integrity_check(fx->st, &err), 1);
}

/* The invariant checks notice a counter that drifted from the rows. */
static void test_integrity_detects_drift(void **state)
{
	struct fixture *fx = *state;
	enum tern_error err;
	char path[128];
	sqlite3 *db;

	put(fx->st, "INBOX", "1\r\n");
	assert_int_equal(store_integrity_check(fx->st, &err), 1);
	snprintf(path, sizeof(path), "%s/mail/alice.db", fx->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE folders SET unseen = 7 WHERE name = 'INBOX'",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_integrity_check(fx->st, &err), 0);
}

static void test_remove(void **state)
{
	struct fixture *fx = *state;
	enum tern_error err;
	char path[128];

	put(fx->st, "INBOX", "bye\r\n");
	store_close(&fx->st);
	assert_int_equal(store_remove(fx->dir, "alice", &err), 0);
	snprintf(path, sizeof(path), "%s/mail/alice.db", fx->dir);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/mail/alice.db-wal", fx->dir);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/mail/alice.db-shm", fx->dir);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(store_open(fx->dir, "alice", false, &fx->st, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_int_equal(store_remove(fx->dir, "alice", &err), 0);  /* idempotent */
	assert_int_equal(store_open(fx->dir, "alice", true, &fx->st, &err), 0);
	assert_int_equal(folder_count(fx->st, "INBOX"), 0);
}

/* A writer held past the busy timeout yields TEMP, not a hang. */
static void test_busy_is_temp(void **state)
{
	struct fixture *fx = *state;
	struct store_new_msg m = { .folder = "INBOX", .data = "x", .size = 1,
				   .cache = &test_cache };
	struct store *other;
	enum tern_error err;
	uint32_t uid;
	time_t start;

	assert_int_equal(store_open(fx->dir, "alice", false, &other, &err), 0);
	assert_int_equal(store_begin(fx->st, &err), 0);
	start = time(NULL);
	assert_int_equal(store_append(other, &m, &uid, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_TEMP);
	assert_true(time(NULL) - start >= 4);
	store_rollback(fx->st);
	assert_int_equal(store_append(other, &m, &uid, NULL, &err), 0);
	store_close(&other);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_timing_20k(void **state)
{
	struct fixture *fx = *state;
	static const char text[] = "From: a@example.org\r\nSubject: load\r\n\r\nsmall body\r\n";
	struct store_new_msg m = { .folder = "INBOX", .data = text, .size = sizeof(text) - 1,
				   .internal_date = 1600000000, .cache = &test_cache };
	struct store_changes ch;
	struct store_msg *msgs;
	enum tern_error err;
	double t0, t1, t2, t3, t4;
	size_t count;
	uint32_t uid;

	t0 = now_ms();
	assert_int_equal(store_begin(fx->st, &err), 0);
	for (int i = 0; i < 20000; i++)
		assert_int_equal(store_append(fx->st, &m, &uid, NULL, &err), 0);
	assert_int_equal(store_commit(fx->st, &err), 0);
	t1 = now_ms();
	assert_int_equal(store_msg_list(fx->st, "INBOX", &msgs, &count, &err), 0);
	t2 = now_ms();
	assert_int_equal(count, 20000);
	assert_int_equal(msgs[19999].uid, 20000);
	store_msgs_free(&msgs, count);
	assert_int_equal(store_changes_since(fx->st, "INBOX", 0, &ch, &err), 0);
	t3 = now_ms();
	assert_int_equal(ch.changed_count, 20000);
	store_changes_clear(&ch);
	assert_int_equal(store_changes_since(fx->st, "INBOX", 19990, &ch, &err), 0);
	t4 = now_ms();
	assert_true(ch.changed_count <= 20);
	store_changes_clear(&ch);
	print_message("timing: 20000 appends in one transaction %.1f ms, list %.2f ms, "
		      "changes_since(0) %.2f ms, changes_since(recent) %.3f ms\n",
		      t1 - t0, t2 - t1, t3 - t2, t4 - t3);
	assert_int_equal(folder_count(fx->st, "INBOX"), 20000);
}

/* After a move the old home's copy refuses every write, reads still work. */
static void test_fence(void **state)
{
	struct fixture *fx = *state;
	enum tern_error err = TERN_ERR_NONE;
	bool fenced = true;
	uint32_t uid = put(fx->st, "INBOX", "Subject: a\r\n\r\nbody\r\n");

	assert_int_equal(store_fenced(fx->st, &fenced, &err), 0);
	assert_false(fenced);
	assert_int_equal(store_fence(fx->st, 0, &err), 0);
	assert_int_equal(store_fenced(fx->st, &fenced, &err), 0);
	assert_true(fenced);

	struct store_new_msg m = {.folder = "INBOX", .data = "x\r\n", .size = 3,
				  .cache = &test_cache};
	uint32_t got = 0, uidvalidity = 0;
	err = TERN_ERR_NONE;
	assert_int_equal(store_append(fx->st, &m, &got, &uidvalidity, &err), -1);
	assert_int_equal(err, TERN_ERR_TEMP);
	err = TERN_ERR_NONE;
	assert_int_equal(store_folder_create(fx->st, "Later", NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_TEMP);
	err = TERN_ERR_NONE;
	assert_int_equal(store_flags_update(fx->st, "INBOX", &uid, 1, STORE_FLAGS_ADD, 1, NULL, 0,
					    NULL, NULL, NULL, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_TEMP);
	/* what was there is still readable */
	assert_int_equal(folder_count(fx->st, "INBOX"), 1);
	/* a fence survives reopening */
	store_close(&fx->st);
	assert_int_equal(store_open(fx->dir, "alice", false, &fx->st, &err), 0);
	assert_int_equal(store_fenced(fx->st, &fenced, &err), 0);
	assert_true(fenced);
	/* a move rolled back before its switch lifts it */
	assert_int_equal(store_unfence(fx->st, &err), 0);
	assert_int_equal(store_fenced(fx->st, &fenced, &err), 0);
	assert_false(fenced);
	assert_int_equal(store_append(fx->st, &m, &got, &uidvalidity, &err), 0);
	assert_int_equal(folder_count(fx->st, "INBOX"), 2);
	/* a fence with a deadline lapses by itself */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_int_equal(store_fence(fx->st, now_ms + 300, &err), 0);
	assert_int_equal(store_fenced(fx->st, &fenced, &err), 0);
	assert_true(fenced);
	assert_int_equal(store_append(fx->st, &m, &got, &uidvalidity, &err), -1);
	struct timespec wait = {0, 400 * 1000 * 1000};
	nanosleep(&wait, NULL);   /* the deadline itself is what is tested */
	assert_int_equal(store_fenced(fx->st, &fenced, &err), 0);
	assert_false(fenced);
	assert_int_equal(store_append(fx->st, &m, &got, &uidvalidity, &err), 0);
	assert_int_equal(folder_count(fx->st, "INBOX"), 3);
}

/* ---- object ids and save dates (RFC 8474, RFC 8514; schema v5) ---- */

static void assert_objectid(const char *id, char first)
{
	assert_int_equal(strlen(id), 25);
	assert_int_equal(id[0], first);
	for (size_t i = 1; id[i] != '\0'; i++)
		assert_non_null(strchr("0123456789abcdef", id[i]));
}

static void get_ids(struct store *st, const char *folder, uint32_t uid, struct store_msg_ids *ids)
{
	enum tern_error err;

	assert_int_equal(store_msg_ids(st, folder, uid, ids, &err), 1);
}

/* MAILBOXID: one per folder, all distinct, kept by RENAME (and its
 * children's), a folder made again under an old name gets a new one. */
static void test_mailboxid(void **state)
{
	struct fixture *fx = *state;
	struct store_folder *fs, a, b;
	size_t n;
	enum tern_error err;

	assert_int_equal(store_folder_create(fx->st, "a/b", NULL, &err), 0);
	assert_int_equal(store_folder_list(fx->st, &fs, &n, &err), 0);
	assert_int_equal(n, 7);
	for (size_t i = 0; i < n; i++) {
		assert_objectid(fs[i].mailboxid, 'F');
		for (size_t k = 0; k < i; k++)
			assert_string_not_equal(fs[i].mailboxid, fs[k].mailboxid);
	}
	store_folders_free(&fs, n);
	get_folder(fx->st, "a", &a);
	get_folder(fx->st, "a/b", &b);
	assert_int_equal(store_folder_rename(fx->st, "a", "z", &err), 0);
	struct store_folder a2, b2, again, inbox, inbox2, moved;
	get_folder(fx->st, "z", &a2);
	get_folder(fx->st, "z/b", &b2);
	assert_string_equal(a.mailboxid, a2.mailboxid);
	assert_string_equal(b.mailboxid, b2.mailboxid);
	assert_int_equal(store_folder_create(fx->st, "a", NULL, &err), 0);
	get_folder(fx->st, "a", &again);
	assert_string_not_equal(again.mailboxid, a.mailboxid);
	assert_int_equal(store_folder_delete(fx->st, "a", &err), 0);
	char made[STORE_OBJECTID_SIZE] = "";
	assert_int_equal(store_folder_create_id(fx->st, "a", NULL, made, &err), 0);
	store_folder_clear(&again);
	get_folder(fx->st, "a", &again);
	assert_string_not_equal(again.mailboxid, a.mailboxid);
	assert_string_equal(made, again.mailboxid);     /* what CREATE reports */
	assert_int_equal(store_folder_create_id(fx->st, "a", NULL, made, &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	/* RENAME INBOX: INBOX stays (with its id), a new folder takes the mail */
	get_folder(fx->st, "INBOX", &inbox);
	assert_int_equal(store_folder_rename(fx->st, "INBOX", "Old", &err), 0);
	get_folder(fx->st, "INBOX", &inbox2);
	get_folder(fx->st, "Old", &moved);
	assert_string_equal(inbox.mailboxid, inbox2.mailboxid);
	assert_string_not_equal(moved.mailboxid, inbox.mailboxid);
	store_folder_clear(&a);
	store_folder_clear(&b);
	store_folder_clear(&a2);
	store_folder_clear(&b2);
	store_folder_clear(&again);
	store_folder_clear(&inbox);
	store_folder_clear(&inbox2);
	store_folder_clear(&moved);
}

/* EMAILID: new for each append (the same bytes twice are two messages),
 * kept by COPY and MOVE; the save date is when the message came into its
 * folder, not its internal date. */
static void test_emailid_savedate(void **state)
{
	struct fixture *fx = *state;
	struct store_msg_ids a, b, c, d;
	uint32_t uid, *src, *dst;
	size_t copied;
	enum tern_error err;
	int64_t before = (int64_t)time(NULL);

	put(fx->st, "INBOX", "same\r\n");
	put(fx->st, "INBOX", "same\r\n");
	get_ids(fx->st, "INBOX", 1, &a);
	get_ids(fx->st, "INBOX", 2, &b);
	assert_objectid(a.emailid, 'M');
	assert_string_not_equal(a.emailid, b.emailid);
	/* put_full gives internal date 1600000000; saved now */
	assert_true(a.save_date >= before && a.save_date <= (int64_t)time(NULL));

	uid = 1;
	assert_int_equal(store_copy(fx->st, "INBOX", &uid, 1, "Trash", false, &src, &dst, &copied,
				    NULL, &err), 0);
	get_ids(fx->st, "Trash", dst[0], &c);
	assert_string_equal(c.emailid, a.emailid);
	assert_true(c.save_date >= a.save_date);
	free(src);
	free(dst);
	assert_int_equal(store_copy(fx->st, "Trash", &uid, 1, "Junk", true, &src, &dst, &copied,
				    NULL, &err), 0);
	get_ids(fx->st, "Junk", dst[0], &d);
	assert_string_equal(d.emailid, a.emailid);
	uint32_t dst_uid = dst[0];
	free(src);
	free(dst);
	assert_int_equal(store_msg_ids(fx->st, "Trash", 1, &d, &err), 0);
	assert_int_equal(store_msg_ids(fx->st, "Nope", 1, &d, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);

	/* The listings (what SEARCH evaluates) carry the same two values. */
	struct store_msg *msgs, one;
	size_t count;
	assert_int_equal(store_msg_list(fx->st, "INBOX", &msgs, &count, &err), 0);
	assert_int_equal(count, 2);
	assert_string_equal(msgs[0].emailid, a.emailid);
	assert_int_equal(msgs[0].save_date, a.save_date);
	assert_string_equal(msgs[1].emailid, b.emailid);
	assert_int_equal(msgs[1].save_date, b.save_date);
	store_msgs_free(&msgs, count);
	assert_int_equal(store_msg_list_from(fx->st, "INBOX", 2, 10, &msgs, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_string_equal(msgs[0].emailid, b.emailid);
	store_msgs_free(&msgs, count);
	assert_int_equal(store_msg_get(fx->st, "Junk", dst_uid, &one, &err), 1);
	assert_string_equal(one.emailid, a.emailid);
	assert_int_equal(one.save_date, d.save_date);
	store_msg_clear(&one);
}

/* A store of schema v4 (before object ids) gets them when opened: every
 * folder a distinct MAILBOXID, every message an EMAILID, and its internal
 * date as save date. */
static void test_migrate_v4(void **state)
{
	struct fixture *fx = *state;
	struct store_folder f1, f2;
	struct store_msg_ids a, b;
	enum tern_error err;
	char *path = store_path(fx->dir, "alice"), *msg = NULL;
	sqlite3 *db;

	put(fx->st, "INBOX", "one\r\n");
	put(fx->st, "Trash", "two\r\n");
	store_close(&fx->st);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	int rc = sqlite3_exec(db,
			      "DROP INDEX folders_mailboxid;"
			      "ALTER TABLE folders DROP COLUMN mailboxid;"
			      "ALTER TABLE messages DROP COLUMN emailid;"
			      "ALTER TABLE messages DROP COLUMN save_date;"
			      "UPDATE meta SET value = 4 WHERE key = 'schema_version';",
			      NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		print_error("%s\n", msg);
	assert_int_equal(rc, SQLITE_OK);
	sqlite3_close(db);
	free(path);

	assert_int_equal(store_open(fx->dir, "alice", false, &fx->st, &err), 0);
	get_folder(fx->st, "INBOX", &f1);
	get_folder(fx->st, "Trash", &f2);
	assert_objectid(f1.mailboxid, 'F');
	assert_objectid(f2.mailboxid, 'F');
	assert_string_not_equal(f1.mailboxid, f2.mailboxid);
	store_folder_clear(&f1);
	store_folder_clear(&f2);
	get_ids(fx->st, "INBOX", 1, &a);
	get_ids(fx->st, "Trash", 1, &b);
	assert_objectid(a.emailid, 'M');
	assert_string_not_equal(a.emailid, b.emailid);
	assert_int_equal(a.save_date, 1600000000);
	assert_int_equal(b.save_date, 1600000000);
	/* new folders and messages after the migration */
	assert_int_equal(store_folder_create(fx->st, "New", NULL, &err), 0);
	get_folder(fx->st, "New", &f1);
	assert_objectid(f1.mailboxid, 'F');
	store_folder_clear(&f1);
	assert_int_equal(store_integrity_check(fx->st, &err), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_computes_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uid_modseq_monotonic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recent_peek_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_snapshot_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes_since_far_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscriptions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_integrity_detects_drift, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_is_temp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailboxid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emailid_savedate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timing_20k, setup, teardown),
	};

	mime_init();    /* store_append parses messages given without a cache */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
