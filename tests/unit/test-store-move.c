/* Unit tests of the store side of mailbox moves (src/store/store-move.h):
 * a snapshot installed on a "destination" data dir, then rounds of deltas,
 * must reproduce the source exactly (checksum and every observable field)
 * across appends, copies and moves sharing blobs, flag and keyword changes,
 * expunges, folder create / rename / delete / name swaps / id reuse, INBOX
 * rename, subscriptions, \Recent bookkeeping and delivered ids; empty and
 * repeated deltas; a snapshot and a delta taken while another connection
 * appends; the source left untouched; and a timing print for 20,000
 * messages of 4 KiB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/delivery-id.h"
#include "core/limits.h"
#include "proto/pop3/message.h"
#include "store/mime.h"
#include "store/store-move.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	char src_dir[96];
	char dst_dir[96];
	struct store *src;
	struct store *dst;
	uint64_t modseq;     /* what the destination has caught up to */
	uint32_t source_node;/* the source's number in its delivery ids */
	unsigned files;
};

/* A delivery id handed out n us after the test started, by node (0: the
 * bare clock of builds before node numbers). Ids must be recent: a snapshot
 * drops those too old to replay. */
static uint64_t id_at(uint32_t node, uint64_t n)
{
	static uint64_t start_us;
	if (start_us == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		start_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	}
	return delivery_id_make(node, start_us + n);
}

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
	strcpy(fx->dir, "/tmp/tern-move-test-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->src_dir, sizeof(fx->src_dir), "%s/src", fx->dir);
	snprintf(fx->dst_dir, sizeof(fx->dst_dir), "%s/dst", fx->dir);
	assert_int_equal(mkdir(fx->src_dir, 0700), 0);
	assert_int_equal(mkdir(fx->dst_dir, 0700), 0);
	assert_int_equal(store_open(fx->src_dir, "alice", true, &fx->src, &err), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	store_close(&fx->src);
	store_close(&fx->dst);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static const struct store_msg_cache test_cache = {
	.envelope = "(\"date\" \"subj\" NIL NIL NIL NIL NIL NIL NIL NIL)",
	.bodystructure = "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)",
	.body = "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 5 1)",
	.subject = "subj",
	.sent_date = 1700000000,
};

static uint32_t put_full(struct store *st, const char *folder, const char *text, uint32_t flags,
			 const char *keywords, int64_t date, int32_t tz, uint64_t delivery_id)
{
	struct store_new_msg m = {
		.folder = folder, .data = text, .size = strlen(text), .internal_date = date,
		.internal_tz = tz, .flags = flags, .keywords = keywords, .cache = &test_cache,
		.delivery_id = delivery_id,
	};
	uint32_t uid = 0;
	enum tern_error err = TERN_ERR_NONE;

	assert_int_equal(store_append(st, &m, &uid, NULL, &err), 0);
	assert_int_not_equal(uid, 0);
	return uid;
}

static uint32_t put(struct store *st, const char *folder, const char *text)
{
	return put_full(st, folder, text, 0, NULL, 1600000000, 60, 0);
}

static char *tmp_file(struct fixture *fx, const char *what)
{
	char *path;

	assert_true(asprintf(&path, "%s/%s-%u.db", fx->dir, what, fx->files++) > 0);
	return path;
}

static off_t file_size(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

/* Copies the source to the destination data dir and opens it there. */
static void snapshot_install(struct fixture *fx)
{
	char *path = tmp_file(fx, "snapshot");
	enum tern_error err;

	assert_int_equal(store_move_snapshot(fx->src, path, &fx->modseq, &err), 0);
	assert_int_equal(store_move_install(fx->dst_dir, "alice", path, &err), 0);
	assert_int_equal(store_open(fx->dst_dir, "alice", false, &fx->dst, &err), 0);
	free(path);
}

static void assert_same_sum(const struct store_move_sum *a, const struct store_move_sum *b)
{
	assert_int_equal(a->folders, b->folders);
	assert_int_equal(a->messages, b->messages);
	assert_memory_equal(a->digest, b->digest, 32);
}

/* One delta from the source applied to the destination: its change count.
 * The sum the delta carries is the destination's afterwards, and the sums
 * of what changed since the previous round agree on both sides (nothing
 * writes to the source meanwhile in the tests that use this). */
static uint64_t sync_round(struct fixture *fx)
{
	char *path = tmp_file(fx, "delta");
	uint64_t delivered = 0, modseq = 0, applied = 0, changes = 0, since = fx->modseq;
	struct store_move_sum carried, here, src_since, dst_since;
	enum tern_error err;

	assert_int_equal(store_move_max_delivered(fx->dst, fx->source_node, &delivered, &err), 0);
	assert_int_equal(store_move_delta(fx->src, path, fx->modseq, delivered, &modseq, &changes,
					  &carried, &err), 0);
	assert_true(modseq >= fx->modseq);
	assert_int_equal(store_move_apply(fx->dst, path, &applied, &err), 0);
	assert_int_equal(applied, modseq);
	assert_int_equal(store_move_checksum(fx->dst, 0, &here, &err), 0);
	assert_same_sum(&carried, &here);
	if (since > 0) {
		assert_int_equal(store_move_checksum(fx->src, since, &src_since, &err), 0);
		assert_int_equal(store_move_checksum(fx->dst, since, &dst_since, &err), 0);
		assert_same_sum(&src_since, &dst_since);
		assert_int_equal(dst_since.messages, here.messages);
	}
	fx->modseq = modseq;
	unlink(path);
	free(path);
	return changes;
}

/* Every row of sql on a store's file, as one string. */
static char *dump(struct store *st, const char *data_dir, const char *sql)
{
	char *path = store_path(data_dir, "alice"), *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	sqlite3_stmt *stmt;
	sqlite3 *db;
	int rc;

	(void)st;
	assert_non_null(f);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(stmt); i++) {
			const unsigned char *t = sqlite3_column_text(stmt, i);
			fprintf(f, "%s|", t != NULL ? (const char *)t : "NULL");
		}
		fputc('\n', f);
	}
	assert_int_equal(rc, SQLITE_DONE);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	fclose(f);
	free(path);
	return out;
}

static void same_rows(struct fixture *fx, const char *sql)
{
	char *a = dump(fx->src, fx->src_dir, sql), *b = dump(fx->dst, fx->dst_dir, sql);

	if (strcmp(a, b) != 0)
		print_error("%s\nsource:\n%s\ndestination:\n%s\n", sql, a, b);
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static void same_digest(struct store *a, struct store *b)
{
	struct store_move_sum sa, sb;
	enum tern_error err;

	assert_int_equal(store_move_checksum(a, 0, &sa, &err), 0);
	assert_int_equal(store_move_checksum(b, 0, &sb, &err), 0);
	assert_same_sum(&sa, &sb);
}

/* The destination equals the source in everything a client or the mover
 * can observe. */
static void assert_same(struct fixture *fx)
{
	struct store_folder *fs, *fd;
	size_t nfs, nfd, nms, nmd, nss, nsd;
	struct store_msg *ms, *md;
	char **ss, **sd;
	uint64_t a, b, c, d;
	enum tern_error err;

	same_digest(fx->src, fx->dst);
	assert_int_equal(store_integrity_check(fx->dst, &err), 1);

	assert_int_equal(store_folder_list(fx->src, &fs, &nfs, &err), 0);
	assert_int_equal(store_folder_list(fx->dst, &fd, &nfd, &err), 0);
	assert_int_equal(nfs, nfd);
	for (size_t i = 0; i < nfs; i++) {
		assert_string_equal(fs[i].name, fd[i].name);
		if (fs[i].special_use == NULL)
			assert_null(fd[i].special_use);
		else
			assert_string_equal(fs[i].special_use, fd[i].special_use);
		assert_int_equal(fs[i].id, fd[i].id);
		assert_int_equal(fs[i].uidvalidity, fd[i].uidvalidity);
		assert_int_equal(fs[i].uidnext, fd[i].uidnext);
		assert_int_equal(fs[i].highestmodseq, fd[i].highestmodseq);
		assert_int_equal(fs[i].messages, fd[i].messages);
		assert_int_equal(fs[i].unseen, fd[i].unseen);
		assert_int_equal(fs[i].size, fd[i].size);
		assert_int_equal(fs[i].subscribed, fd[i].subscribed);

		assert_int_equal(store_msg_list(fx->src, fs[i].name, &ms, &nms, &err), 0);
		assert_int_equal(store_msg_list(fx->dst, fd[i].name, &md, &nmd, &err), 0);
		assert_int_equal(nms, nmd);
		for (size_t k = 0; k < nms; k++) {
			assert_int_equal(ms[k].uid, md[k].uid);
			assert_int_equal(ms[k].flags, md[k].flags);
			assert_int_equal(ms[k].modseq, md[k].modseq);
			assert_int_equal(ms[k].internal_date, md[k].internal_date);
			assert_int_equal(ms[k].internal_tz, md[k].internal_tz);
			assert_int_equal(ms[k].size, md[k].size);
			if (ms[k].keywords == NULL)
				assert_null(md[k].keywords);
			else
				assert_string_equal(ms[k].keywords, md[k].keywords);
			/* POP3 UIDLs derive from UIDVALIDITY and UID */
			char ua[32], ub[32], *ra, *rb;
			size_t la, lb;
			pop3_uidl_format(ua, sizeof(ua), fs[i].uidvalidity, ms[k].uid);
			pop3_uidl_format(ub, sizeof(ub), fd[i].uidvalidity, md[k].uid);
			assert_string_equal(ua, ub);
			assert_int_equal(store_msg_raw(fx->src, fs[i].name, ms[k].uid, &ra, &la,
						       &err), 1);
			assert_int_equal(store_msg_raw(fx->dst, fd[i].name, md[k].uid, &rb, &lb,
						       &err), 1);
			assert_int_equal(la, lb);
			assert_memory_equal(ra, rb, la);
			free(ra);
			free(rb);
		}
		store_msgs_free(&ms, nms);
		store_msgs_free(&md, nmd);
	}
	store_folders_free(&fs, nfs);
	store_folders_free(&fd, nfd);

	assert_int_equal(store_subscriptions(fx->src, &ss, &nss, &err), 0);
	assert_int_equal(store_subscriptions(fx->dst, &sd, &nsd, &err), 0);
	assert_int_equal(nss, nsd);
	for (size_t i = 0; i < nss; i++)
		assert_string_equal(ss[i], sd[i]);
	store_names_free(&ss, nss);
	store_names_free(&sd, nsd);

	assert_int_equal(store_usage(fx->src, &a, &b, &err), 0);
	assert_int_equal(store_usage(fx->dst, &c, &d, &err), 0);
	assert_int_equal(a, c);
	assert_int_equal(b, d);
	assert_int_equal(store_highestmodseq(fx->src, &a, &err), 0);
	assert_int_equal(store_highestmodseq(fx->dst, &b, &err), 0);
	assert_int_equal(a, b);

	/* what the public API does not show */
	same_rows(fx, "SELECT id, name, recent_uid, modseq FROM folders ORDER BY id");
	same_rows(fx, "SELECT * FROM subscriptions ORDER BY name");
	same_rows(fx, "SELECT * FROM deleted_folders ORDER BY uidvalidity");
	same_rows(fx, "SELECT * FROM expunged ORDER BY folder_id, uid");
	same_rows(fx, "SELECT * FROM delivered ORDER BY id");
	same_rows(fx, "SELECT key, value FROM meta WHERE key IN ('modseq', 'uidvalidity')"
		  " ORDER BY key");
	same_rows(fx, "SELECT folder_id, uid, sent_date, delivery_id, b.envelope, b.subject"
		  " FROM messages m JOIN blobs b ON b.id = m.blob_id ORDER BY folder_id, uid");
	same_rows(fx, "SELECT count(*), sum(refs) FROM blobs");
	/* whole rows: columns a later schema adds travel too (MAILBOXID,
	 * EMAILID, save dates of schema v5) */
	same_rows(fx, "SELECT * FROM folders ORDER BY id");
	same_rows(fx, "SELECT * FROM messages ORDER BY folder_id, uid");
}

static void set_flags(struct store *st, const char *folder, uint32_t uid, enum store_flag_op op,
		      uint32_t flags, const char *keywords)
{
	enum tern_error err;

	assert_int_equal(store_flags_update(st, folder, &uid, 1, op, flags, keywords, 0, NULL, NULL,
					    NULL, NULL, &err), 0);
}

static void copy(struct store *st, const char *from, uint32_t uid, const char *to, bool move)
{
	uint32_t *s = NULL, *d = NULL, uv;
	size_t n = 0;
	enum tern_error err;

	assert_int_equal(store_copy(st, from, &uid, 1, to, move, &s, &d, &n, &uv, &err), 0);
	assert_int_equal(n, 1);
	free(s);
	free(d);
}

static void expunge(struct store *st, const char *folder, uint32_t uid)
{
	enum tern_error err;

	assert_int_equal(store_expunge(st, folder, &uid, 1, NULL, NULL, &err), 0);
}

/* ---- tests ---- */

static void test_move_rounds(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->src;
	enum tern_error err;
	uint32_t first, next, u[8], got, uv;

	/* the initial state the bulk copy carries */
	u[0] = put_full(st, "INBOX", "Subject: a\r\n\r\none\r\n", STORE_FLAG_SEEN, "$Work later",
			1500000000, -300, id_at(0, 1));
	u[1] = put_full(st, "INBOX", "Subject: b\r\n\r\ntwo\r\n", 0, NULL, 1500000100, 330,
			id_at(0, 2));
	u[2] = put_full(st, "INBOX", "Subject: c\r\n\r\nthree\r\n", STORE_FLAG_FLAGGED, "x", 1,
			0, id_at(0, 3));
	assert_int_equal(store_folder_create(st, "Work/Sub", "\\Archive", &err), 0);
	assert_int_equal(store_folder_subscribe(st, "Work/Sub", true, &err), 0);
	assert_int_equal(store_folder_subscribe(st, "Junk", false, &err), 0);
	assert_int_equal(store_folder_subscribe(st, "Nowhere", true, &err), 0);
	copy(st, "INBOX", u[0], "Work/Sub", false);   /* shares the blob */
	put(st, "Work", "Subject: w\r\n\r\nwork\r\n");
	assert_int_equal(store_folder_claim_recent(st, "INBOX", &first, &next, &err), 1);
	expunge(st, "INBOX", u[2]);
	snapshot_install(fx);
	assert_same(fx);
	assert_int_equal(sync_round(fx), 0);

	/* round 1: appends, copies and a move (delivery id handed over),
	 * flags and keywords, expunges of a message whose blob is shared */
	u[3] = put_full(st, "INBOX", "Subject: d\r\n\r\nfour\r\n", 0, NULL, 1600000000, 0,
			id_at(0, 4));
	copy(st, "INBOX", u[3], "Trash", false);
	copy(st, "INBOX", u[1], "Work", true);
	set_flags(st, "INBOX", u[0], STORE_FLAGS_ADD, STORE_FLAG_ANSWERED, "$Forwarded");
	set_flags(st, "INBOX", u[3], STORE_FLAGS_SET, STORE_FLAG_SEEN | STORE_FLAG_DELETED, NULL);
	set_flags(st, "Work/Sub", 1, STORE_FLAGS_REMOVE, STORE_FLAG_SEEN, "$Work");
	expunge(st, "INBOX", u[0]);             /* its blob lives on in Work/Sub */
	/* delivered and expunged between two rounds: only `delivered` knows */
	u[4] = put_full(st, "INBOX", "Subject: f\r\n\r\nsix\r\n", 0, NULL, 1, 0, id_at(0, 6));
	expunge(st, "INBOX", u[4]);
	assert_int_equal(store_folder_claim_recent(st, "INBOX", &first, &next, &err), 1);
	assert_true(sync_round(fx) > 0);
	assert_same(fx);

	/* round 2: folders created, renamed with a child, deleted while a copy
	 * of one of its messages lives elsewhere; subscriptions */
	assert_int_equal(store_folder_create(st, "Lists/rust", NULL, &err), 0);
	put(st, "Lists/rust", "Subject: r\r\n\r\nrust\r\n");
	copy(st, "Work", 1, "Lists/rust", false);
	assert_int_equal(store_folder_rename(st, "Work", "Projects", &err), 0);
	assert_int_equal(store_folder_delete(st, "Projects", &err), 0); /* child stays */
	assert_int_equal(store_folder_subscribe(st, "Lists/rust", true, &err), 0);
	assert_int_equal(store_folder_subscribe(st, "Nowhere", false, &err), 0);
	assert_true(sync_round(fx) > 0);
	assert_same(fx);

	/* round 3: two folders swap names, INBOX renamed (its messages move),
	 * the newest folder deleted and its id reused by a new one */
	assert_int_equal(store_folder_create(st, "A", NULL, &err), 0);
	assert_int_equal(store_folder_create(st, "B", "\\Flagged", &err), 0);
	put(st, "A", "Subject: in a\r\n\r\na\r\n");
	put(st, "B", "Subject: in b\r\n\r\nb\r\n");
	assert_true(sync_round(fx) > 0);
	assert_same(fx);
	assert_int_equal(store_folder_rename(st, "A", "tmp", &err), 0);
	assert_int_equal(store_folder_rename(st, "B", "A", &err), 0);
	assert_int_equal(store_folder_rename(st, "tmp", "B", &err), 0);
	assert_int_equal(store_folder_rename(st, "INBOX", "Old inbox", &err), 0);
	put_full(st, "INBOX", "Subject: e\r\n\r\nfive\r\n", 0, NULL, 1600000500, 0, id_at(0, 5));
	assert_int_equal(store_folder_create(st, "Gone", NULL, &err), 0);
	put(st, "Gone", "Subject: g\r\n\r\ngone\r\n");
	assert_true(sync_round(fx) > 0);
	assert_same(fx);
	struct store_folder gone;
	assert_int_equal(store_folder_get(st, "Gone", &gone, &err), 1);
	assert_int_equal(store_folder_delete(st, "Gone", &err), 0);
	assert_int_equal(store_folder_create(st, "New", NULL, &err), 0);
	struct store_folder fresh;
	assert_int_equal(store_folder_get(st, "New", &fresh, &err), 1);
	assert_int_equal(fresh.id, gone.id);    /* SQLite reused the rowid */
	assert_int_not_equal(fresh.uidvalidity, gone.uidvalidity);
	store_folder_clear(&gone);
	store_folder_clear(&fresh);
	put(st, "New", "Subject: n\r\n\r\nnew\r\n");
	assert_true(sync_round(fx) > 0);
	assert_same(fx);

	/* nothing since: no changes, still equal */
	assert_int_equal(sync_round(fx), 0);
	assert_same(fx);

	/* delivered ids travelled: a replayed delivery stays stored once,
	 * whether its message was moved (same UID back) or expunged (none) */
	struct store_new_msg m = { .folder = "INBOX", .data = "x\r\n", .size = 3,
				   .cache = &test_cache, .delivery_id = id_at(0, 4) };
	assert_int_equal(store_append(fx->dst, &m, &got, &uv, &err), 0);
	assert_int_not_equal(got, 0);           /* moved with INBOX's rename */
	m.delivery_id = id_at(0, 5);
	assert_int_equal(store_append(fx->dst, &m, &got, &uv, &err), 0);
	assert_int_not_equal(got, 0);
	m.delivery_id = id_at(0, 1);                /* expunged: nothing comes back */
	assert_int_equal(store_append(fx->dst, &m, &got, &uv, &err), 0);
	assert_int_equal(got, 0);
	m.delivery_id = id_at(0, 6);
	assert_int_equal(store_append(fx->dst, &m, &got, &uv, &err), 0);
	assert_int_equal(got, 0);
	m.delivery_id = id_at(0, 2);                /* moved, then its folder deleted */
	assert_int_equal(store_append(fx->dst, &m, &got, &uv, &err), 0);
	assert_int_equal(got, 0);
	/* and nothing was stored twice */
	assert_same(fx);
}

/* Whether the store has recorded delivery id (an append with it stores
 * nothing and gives the first UID back). */
static bool knows_id(struct store *st, uint64_t id)
{
	uint32_t count_before, count_after, got = 0, uv;
	struct store_folder f = {0};
	enum tern_error err;
	struct store_new_msg m = { .folder = "INBOX", .data = "x\r\n", .size = 3,
				   .cache = &test_cache, .delivery_id = id };

	assert_int_equal(store_folder_get(st, "INBOX", &f, &err), 1);
	count_before = f.messages;
	store_folder_clear(&f);
	assert_int_equal(store_append(st, &m, &got, &uv, &err), 0);
	assert_int_equal(store_folder_get(st, "INBOX", &f, &err), 1);
	count_after = f.messages;
	store_folder_clear(&f);
	return count_after == count_before;
}

/* Delivery ids of several nodes in one store (core/delivery-id.h): the
 * source (node 1) holds ids a previous move brought from node 3, whose
 * numbers are all above node 1's; its own later ids still travel in the
 * deltas, the ids too old to replay stay behind, and the destination
 * (node 2) handing out an id with the same clock part as one it imported
 * stores a new message. Before node numbers, that last append returned the
 * imported message's UID and the delivery was lost. */
static void test_move_delivered_ids_of_nodes(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->src;
	uint64_t stale = delivery_id_make(3, id_at(0, 0) - TERN_DELIVERED_KEEP_US - 1000000);

	fx->source_node = 1;
	put_full(st, "INBOX", "Subject: a\r\n\r\nfrom 3\r\n", 0, NULL, 1, 0, id_at(3, 10));
	/* expunged, so only `delivered` remembers it */
	expunge(st, "INBOX", put_full(st, "INBOX", "Subject: o\r\n\r\nold\r\n", 0, NULL, 1, 0,
				      stale));
	put_full(st, "INBOX", "Subject: b\r\n\r\nown\r\n", 0, NULL, 1, 0, id_at(1, 20));
	assert_true(knows_id(st, stale));
	snapshot_install(fx);
	assert_true(knows_id(fx->dst, id_at(3, 10)));
	assert_true(knows_id(fx->dst, id_at(1, 20)));

	/* two rounds of the source's own deliveries, below node 3's ids */
	put_full(st, "INBOX", "Subject: c\r\n\r\nown 2\r\n", 0, NULL, 1, 0, id_at(1, 30));
	assert_true(sync_round(fx) > 0);
	put_full(st, "INBOX", "Subject: d\r\n\r\nown 3\r\n", 0, NULL, 1, 0, id_at(1, 40));
	assert_true(sync_round(fx) > 0);
	same_digest(fx->src, fx->dst);   /* `delivered` differs: the stale id */
	assert_true(knows_id(fx->dst, id_at(1, 30)));
	assert_true(knows_id(fx->dst, id_at(1, 40)));
	enum tern_error err;
	uint64_t max;
	assert_int_equal(store_move_max_delivered(fx->dst, 1, &max, &err), 0);
	assert_int_equal(max, id_at(1, 40));
	assert_int_equal(store_move_max_delivered(fx->dst, 5, &max, &err), 0);
	assert_int_equal(max, delivery_id_make(5, 0));   /* none of node 5's */

	assert_false(knows_id(fx->dst, stale));   /* not carried: stored anew */
	/* node 2, the new home, hands out the same clock parts */
	assert_false(knows_id(fx->dst, id_at(2, 10)));
	assert_false(knows_id(fx->dst, id_at(2, 20)));
	assert_false(knows_id(fx->dst, id_at(2, 40)));
	assert_true(knows_id(fx->dst, id_at(2, 40)));    /* and each only once */
}

/* The sum of what changed since a verified round (what the freeze
 * compares) sees a copy that went wrong in the last round: a message
 * deleted that the source kept, one kept that the source expunged; and it
 * agrees when the copy is right. */
static void test_sum_since_sees_divergence(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->src;
	struct store_move_sum a, b;
	enum tern_error err;
	char *out;

	for (int i = 0; i < 10; i++)
		put(st, "INBOX", "Subject: m\r\n\r\nbody\r\n");
	snapshot_install(fx);
	sync_round(fx);                       /* verified here */
	uint64_t verified = fx->modseq;
	expunge(st, "INBOX", 3);
	set_flags(st, "INBOX", 5, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, NULL);
	put(st, "INBOX", "Subject: n\r\n\r\nnew\r\n");
	sync_round(fx);                       /* checks the sums agree */

	/* an old message lost at the destination */
	out = dump(fx->dst, fx->dst_dir, "DELETE FROM messages WHERE uid = 7");
	free(out);
	assert_int_equal(store_move_checksum(st, verified, &a, &err), 0);
	assert_int_equal(store_move_checksum(fx->dst, verified, &b, &err), 0);
	assert_int_equal(b.messages + 1, a.messages);
	assert_memory_not_equal(a.digest, b.digest, 32);

	/* and instead the expunged one still there: the counts agree again,
	 * the expunge record sees it */
	out = dump(fx->dst, fx->dst_dir,
		   "INSERT INTO messages(folder_id, uid, blob_id, flags, keywords, modseq,"
		   " internal_date, internal_tz, size, sent_date, delivery_id)"
		   " SELECT folder_id, 3, blob_id, flags, keywords, modseq - 1, internal_date,"
		   " internal_tz, size, sent_date, 0 FROM messages WHERE uid = 8");
	free(out);
	assert_int_equal(store_move_checksum(fx->dst, verified, &b, &err), 0);
	assert_int_equal(b.messages, a.messages);
	assert_memory_not_equal(a.digest, b.digest, 32);
}

/* The whole sum sees object ids and save dates (schema v5) that differ:
 * a MAILBOXID, an EMAILID, a save date. */
static void test_sum_sees_object_ids(void **state)
{
	struct fixture *fx = *state;
	static const char *const drift[] = {
		"UPDATE folders SET mailboxid = 'Fother' WHERE name = 'Trash'",
		"UPDATE messages SET emailid = 'Mother' WHERE uid = 2",
		"UPDATE messages SET save_date = save_date + 1 WHERE uid = 1",
	};
	struct store_move_sum a, b;
	enum tern_error err;

	put(fx->src, "INBOX", "Subject: m\r\n\r\nbody\r\n");
	put(fx->src, "INBOX", "Subject: n\r\n\r\nbody\r\n");
	assert_int_equal(store_move_checksum(fx->src, 0, &a, &err), 0);
	for (size_t i = 0; i < sizeof(drift) / sizeof(drift[0]); i++) {
		/* a fresh copy each time, changed in one column */
		store_close(&fx->dst);
		assert_int_equal(store_remove(fx->dst_dir, "alice", &err), 0);
		snapshot_install(fx);
		assert_int_equal(store_move_checksum(fx->dst, 0, &b, &err), 0);
		assert_same_sum(&a, &b);
		free(dump(fx->dst, fx->dst_dir, drift[i]));
		assert_int_equal(store_move_checksum(fx->dst, 0, &b, &err), 0);
		assert_memory_not_equal(a.digest, b.digest, 32);
	}
}

/* A delta applied twice (and an old one re-applied after it) leaves the
 * destination as it is. */
static void test_move_apply_twice(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->src;
	enum tern_error err;
	uint64_t modseq, changes, delivered, applied;
	uint32_t uid;
	char *path;

	put(st, "INBOX", "Subject: 1\r\n\r\n1\r\n");
	snapshot_install(fx);
	uid = put_full(st, "INBOX", "Subject: 2\r\n\r\n2\r\n", 0, "k", 1, 0, 77);
	copy(st, "INBOX", uid, "Sent", false);
	set_flags(st, "INBOX", 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL);
	expunge(st, "INBOX", 1);
	assert_int_equal(store_folder_rename(st, "Junk", "Spam", &err), 0);
	assert_int_equal(store_folder_delete(st, "Drafts", &err), 0);

	path = tmp_file(fx, "delta");
	assert_int_equal(store_move_max_delivered(fx->dst, 0, &delivered, &err), 0);
	assert_int_equal(delivered, 0);
	assert_int_equal(store_move_delta(st, path, fx->modseq, delivered, &modseq, &changes, NULL,
					  &err),
			 0);
	assert_true(changes >= 5);
	assert_int_equal(store_move_apply(fx->dst, path, &applied, &err), 0);
	assert_int_equal(applied, modseq);
	fx->modseq = modseq;
	assert_same(fx);
	assert_int_equal(store_move_max_delivered(fx->dst, 0, &delivered, &err), 0);
	assert_int_equal(delivered, 77);
	assert_int_equal(store_move_apply(fx->dst, path, &applied, &err), 0);
	assert_same(fx);
	assert_int_equal(store_move_apply(fx->dst, path, NULL, &err), 0);
	assert_same(fx);
	unlink(path);
	free(path);

	/* refusals: no file, a file that is no delta, an existing target */
	path = tmp_file(fx, "nothing");
	err = TERN_ERR_NONE;
	assert_int_equal(store_move_apply(fx->dst, path, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	err = TERN_ERR_NONE;
	assert_int_equal(store_move_apply(fx->dst, path, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	err = TERN_ERR_NONE;
	assert_int_equal(store_move_snapshot(st, path, &modseq, &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	assert_int_equal(store_move_delta(st, path, 0, 0, &modseq, &changes, NULL, &err), -1);
	assert_int_equal(err, TERN_ERR_EXISTS);
	assert_true(access(path, F_OK) == 0);   /* not someone else's file removed */
	/* inside a transaction: refused */
	unlink(path);
	assert_int_equal(store_read_begin(st, &err), 0);
	err = TERN_ERR_NONE;
	assert_int_equal(store_move_snapshot(st, path, &modseq, &err), -1);
	assert_int_equal(err, TERN_ERR_INVALID);
	store_read_end(st);
	free(path);
	assert_same(fx);
}

/* The source is not changed by being copied: same checksum, its view
 * snapshots and its WAL mode kept; the copy carries no view snapshot and
 * no fence. */
static void test_move_source_unchanged(void **state)
{
	struct fixture *fx = *state;
	struct store *st = fx->src;
	struct store_snapshot_msg sm[2] = { { .uid = 1, .flags = 0, .modseq = 2 },
					    { .uid = 2, .flags = 1, .modseq = 3 } };
	struct store_folder inbox;
	struct store_move_sum before, after;
	uint64_t modseq, changes;
	enum tern_error err;
	char *path, *snaps;

	put(st, "INBOX", "Subject: 1\r\n\r\n1\r\n");
	put(st, "INBOX", "Subject: 2\r\n\r\n2\r\n");
	assert_int_equal(store_folder_get(st, "INBOX", &inbox, &err), 1);
	assert_int_equal(store_snapshot_put(st, "INBOX", inbox.uidvalidity, inbox.highestmodseq, sm,
					    2, &err), 0);
	assert_int_equal(store_move_checksum(st, 0, &before, &err), 0);
	assert_int_equal(before.folders, 5);
	assert_int_equal(before.messages, 2);
	path = tmp_file(fx, "delta");
	assert_int_equal(store_move_delta(st, path, 0, 0, &modseq, &changes, NULL, &err), 0);
	free(path);
	snapshot_install(fx);
	assert_int_equal(store_move_checksum(st, 0, &after, &err), 0);
	assert_same_sum(&before, &after);
	snaps = dump(st, fx->src_dir, "SELECT count(*) FROM view_snapshots");
	assert_string_equal(snaps, "1|\n");
	free(snaps);
	snaps = dump(fx->dst, fx->dst_dir, "SELECT count(*) FROM view_snapshots");
	assert_string_equal(snaps, "0|\n");
	free(snaps);
	snaps = dump(st, fx->src_dir, "PRAGMA journal_mode");
	assert_string_equal(snaps, "wal|\n");
	free(snaps);
	assert_int_equal(store_integrity_check(st, &err), 1);
	assert_same(fx);
	store_folder_clear(&inbox);

	/* a fenced source (a move rolled forward after the switch) still
	 * ships, and its copy is not fenced */
	store_close(&fx->dst);
	assert_int_equal(store_remove(fx->dst_dir, "alice", &err), 0);
	assert_int_equal(store_fence(st, 0, &err), 0);
	snapshot_install(fx);
	bool fenced = true;
	assert_int_equal(store_fenced(fx->dst, &fenced, &err), 0);
	assert_false(fenced);
	put(fx->dst, "INBOX", "Subject: writable\r\n\r\nyes\r\n");
}

struct writer {
	const char *data_dir;
	atomic_bool stop;
	atomic_uint appended;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	static char body[4096];
	struct store *st;
	enum tern_error err;

	memset(body, 'w', sizeof(body) - 1);
	memcpy(body, "Subject: w\r\n\r\n", 14);
	if (store_open(w->data_dir, "alice", false, &st, &err) < 0)
		return NULL;
	store_set_durable(st, false, &err);
	while (!atomic_load(&w->stop)) {
		struct store_new_msg m = { .folder = "INBOX", .data = body,
					   .size = sizeof(body) - 1, .internal_date = 1,
					   .cache = &test_cache };
		if (store_append(st, &m, NULL, NULL, &err) == 0)
			atomic_fetch_add(&w->appended, 1);
	}
	store_close(&st);
	return NULL;
}

/* A snapshot and a delta read while another connection keeps appending:
 * each is one consistent state (its modseq is that of its newest row), and
 * the next delta catches up exactly. */
static void test_move_concurrent(void **state)
{
	struct fixture *fx = *state;
	struct writer w = { .data_dir = fx->src_dir };
	char text[4200];
	uint64_t base, modseq, changes, applied;
	unsigned during;
	enum tern_error err;
	pthread_t thread;
	char *rows, *path;

	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	memcpy(text, "Subject: big\r\n\r\n", 16);
	assert_int_equal(store_begin(fx->src, &err), 0);
	for (int i = 0; i < 3000; i++)
		put(fx->src, "Trash", text);
	assert_int_equal(store_commit(fx->src, &err), 0);
	assert_int_equal(store_highestmodseq(fx->src, &base, &err), 0);

	assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
	while (atomic_load(&w.appended) < 20)
		usleep(1000);
	during = atomic_load(&w.appended);
	snapshot_install(fx);
	path = tmp_file(fx, "delta");
	assert_int_equal(store_move_delta(fx->src, path, fx->modseq, 0, &modseq, &changes, NULL,
					  &err),
			 0);
	/* appends that surely began after the delta's read: the next round's */
	unsigned after = atomic_load(&w.appended);
	while (atomic_load(&w.appended) < after + 5)
		usleep(1000);
	atomic_store(&w.stop, true);
	pthread_join(thread, NULL);
	print_message("concurrent: %u appends before the snapshot, %u in all\n", during,
		      atomic_load(&w.appended));

	/* the copy's modseq is its newest row's, and every append up to it is
	 * there (each append takes one modseq) */
	assert_true(fx->modseq > base + during - 1);
	char want[64];
	snprintf(want, sizeof(want), "%" PRIu64 "|%" PRIu64 "|\n", fx->modseq, fx->modseq - base);
	rows = dump(fx->dst, fx->dst_dir,
		    "SELECT max(m.modseq), count(*) FROM messages m JOIN folders f"
		    " ON f.id = m.folder_id WHERE f.name = 'INBOX'");
	assert_string_equal(rows, want);
	free(rows);
	/* the delta too: exactly the appends between the two reads */
	assert_true(modseq >= fx->modseq);
	assert_int_equal(changes, modseq - fx->modseq);
	assert_int_equal(store_move_apply(fx->dst, path, &applied, &err), 0);
	fx->modseq = applied;
	unlink(path);
	free(path);
	rows = dump(fx->dst, fx->dst_dir, "SELECT max(modseq) FROM messages");
	snprintf(want, sizeof(want), "%" PRIu64 "|\n", modseq);
	assert_string_equal(rows, want);
	free(rows);

	assert_true(sync_round(fx) > 0);
	assert_same(fx);
	assert_int_equal(sync_round(fx), 0);
}

/* Figures, not assertions: 20,000 messages of ~4 KiB. */
static void test_move_timing_20k(void **state)
{
	struct fixture *fx = *state;
	char text[4096];
	struct store_new_msg m = { .folder = "INBOX", .data = text, .size = sizeof(text) - 1,
				   .internal_date = 1600000000, .cache = &test_cache };
	uint64_t modseq, changes, applied;
	enum tern_error err;
	double t0, t1, t2, t3, t4, t5, t6, t7;
	off_t snap_size, delta_size, flags_size;
	char *snap, *delta, *flags;
	uint32_t uids[500];

	for (size_t i = 0; i < sizeof(text) - 1; i++)
		text[i] = (char)('a' + i % 26);
	for (size_t i = 70; i < sizeof(text) - 1; i += 76)
		text[i] = '\n';
	memcpy(text, "Subject: load\r\n\r\n", 17);
	assert_int_equal(store_begin(fx->src, &err), 0);
	for (int i = 0; i < 20000; i++) {
		m.delivery_id = id_at(0, 5000000 + (uint64_t)i);
		assert_int_equal(store_append(fx->src, &m, NULL, NULL, &err), 0);
	}
	assert_int_equal(store_commit(fx->src, &err), 0);
	assert_int_equal(store_checkpoint(fx->src, &err), 0);

	snap = tmp_file(fx, "snapshot");
	t0 = now_ms();
	assert_int_equal(store_move_snapshot(fx->src, snap, &fx->modseq, &err), 0);
	t1 = now_ms();
	snap_size = file_size(snap);
	assert_int_equal(store_move_install(fx->dst_dir, "alice", snap, &err), 0);
	assert_int_equal(store_open(fx->dst_dir, "alice", false, &fx->dst, &err), 0);

	delta = tmp_file(fx, "delta");
	uint64_t delivered;
	assert_int_equal(store_move_max_delivered(fx->dst, 0, &delivered, &err), 0);
	t2 = now_ms();
	assert_int_equal(store_move_delta(fx->src, delta, fx->modseq, delivered, &modseq, &changes,
					  NULL, &err), 0);
	t3 = now_ms();
	delta_size = file_size(delta);
	assert_int_equal(changes, 0);
	assert_int_equal(store_move_apply(fx->dst, delta, &applied, &err), 0);
	t4 = now_ms();

	for (uint32_t i = 0; i < 500; i++)
		uids[i] = 1 + i * 40;
	assert_int_equal(store_flags_update(fx->src, "INBOX", uids, 500, STORE_FLAGS_ADD,
					    STORE_FLAG_SEEN, NULL, 0, NULL, NULL, NULL, NULL, &err),
			 0);
	for (int i = 0; i < 100; i++)
		put(fx->src, "INBOX", text);
	flags = tmp_file(fx, "delta");
	t5 = now_ms();
	assert_int_equal(store_move_delta(fx->src, flags, fx->modseq, delivered, &modseq, &changes,
					  NULL, &err), 0);
	t6 = now_ms();
	assert_int_equal(changes, 600);
	flags_size = file_size(flags);
	assert_int_equal(store_move_apply(fx->dst, flags, &applied, &err), 0);
	t7 = now_ms();
	uint64_t since = fx->modseq;
	fx->modseq = applied;
	struct store_move_sum whole, changed, src_changed;
	double c0 = now_ms();
	assert_int_equal(store_move_checksum(fx->dst, 0, &whole, &err), 0);
	double c1 = now_ms();
	assert_int_equal(store_move_checksum(fx->dst, since, &changed, &err), 0);
	double c2 = now_ms();
	assert_int_equal(whole.messages, 20100);
	assert_int_equal(changed.messages, 20100);
	same_digest(fx->src, fx->dst);
	assert_int_equal(store_move_checksum(fx->src, since, &src_changed, &err), 0);
	assert_same_sum(&changed, &src_changed);

	print_message("timing 20000 x 4 KiB: snapshot %.1f ms, %.1f MiB; empty delta %.2f ms, "
		      "%lld bytes, applied in %.2f ms; delta of 500 flag changes + 100 appends "
		      "%.2f ms, %.1f KiB, applied in %.2f ms; checksum %.1f ms, of the 600 "
		      "changes %.1f ms\n",
		      t1 - t0, (double)snap_size / 1048576.0, t3 - t2, (long long)delta_size,
		      t4 - t3, t6 - t5, (double)flags_size / 1024.0, t7 - t6, c1 - c0, c2 - c1);
	unlink(delta);
	unlink(flags);
	free(snap);
	free(delta);
	free(flags);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_move_rounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_apply_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_delivered_ids_of_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum_since_sees_divergence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum_sees_object_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_source_unchanged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_timing_20k, setup, teardown),
	};

	mime_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
