/* Delivery journal records: a message once, recipients that refer to it,
 * abort records; round trips, a torn tail, damaged bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/journal.h"

static void test_rcpt_record_round_trip(void **state)
{
	(void)state;
	struct journal_record rec = {
		.type = JOURNAL_RCPT, .id = 42, .user = "alice", .folder = "Lists/tern",
		.keywords = "$Junk", .flags = 3, .internal_date = 1700000000, .internal_tz = -300,
		.data = "Delivered-To: alice+x@example.org\r\n", .size = 35, .message_id = 41,
	};
	uint8_t *buf;
	size_t len, used;
	assert_int_equal(journal_encode(&rec, &buf, &len), 0);
	struct journal_record out;
	assert_int_equal(journal_decode(buf, len, &out, &used), 1);
	assert_int_equal(used, len);
	assert_int_equal(out.type, JOURNAL_RCPT);
	assert_int_equal(out.id, 42);
	assert_int_equal(out.message_id, 41);
	assert_string_equal(out.user, "alice");
	assert_string_equal(out.folder, "Lists/tern");
	assert_string_equal(out.keywords, "$Junk");
	assert_int_equal(out.size, 35);
	assert_memory_equal(out.data, rec.data, 35);
	assert_int_equal(out.internal_tz, -300);
	/* every truncation is incomplete, never a different record */
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(journal_decode(buf, cut, &out, &used), 0);
	/* a flipped byte fails the magic, the type, the length or the CRC
	 * (bytes 8..15 are the id, outside the CRC: ids are checked by replay) */
	for (size_t i = 0; i < len; i++) {
		if (i >= 8 && i < 16)
			continue;
		buf[i] ^= 0x20;
		assert_int_equal(journal_decode(buf, len, &out, &used), 0);
		buf[i] ^= 0x20;
	}
	free(buf);
}

static void test_message_record_keeps_bytes(void **state)
{
	(void)state;
	char body[5000];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)(i * 7);
	struct journal_record rec = {
		.type = JOURNAL_MESSAGE, .id = 7, .user = "", .folder = "", .keywords = "",
		.data = body, .size = sizeof(body),
	};
	uint8_t *buf;
	size_t len, used;
	assert_int_equal(journal_encode(&rec, &buf, &len), 0);
	struct journal_record out;
	assert_int_equal(journal_decode(buf, len, &out, &used), 1);
	assert_int_equal(out.type, JOURNAL_MESSAGE);
	assert_int_equal(out.message_id, 0);
	assert_int_equal(out.size, sizeof(body));
	assert_memory_equal(out.data, body, sizeof(body));
	free(buf);
}

struct seen {
	int types[8];
	uint64_t ids[8];
	int count;
};

static int collect(const struct journal_record *rec, void *ctx)
{
	struct seen *s = ctx;
	if (s->count < 8) {
		s->types[s->count] = rec->type;
		s->ids[s->count] = rec->id;
	}
	s->count++;
	return 0;
}

/* One message, two recipients, an abort; then a torn record at the end
 * (a crash mid-write): replay sees the four whole records only. */
static void test_replay_stops_at_torn_tail(void **state)
{
	(void)state;
	char path[] = "/tmp/tern-journal-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	struct journal *j;
	char *err = NULL;
	assert_int_equal(journal_open(path, &j, &err), 0);
	struct journal_record msg = {.type = JOURNAL_MESSAGE, .id = 10, .user = "", .folder = "",
				     .data = "Subject: x\r\n\r\nhi\r\n", .size = 18};
	struct journal_record r1 = {.type = JOURNAL_RCPT, .id = 11, .user = "alice",
				    .folder = "INBOX", .message_id = 10, .data = "", .size = 0};
	struct journal_record r2 = r1;
	r2.id = 12;
	r2.user = "bob";
	struct journal_record ab = {.type = JOURNAL_ABORT, .id = 12, .user = "bob", .folder = ""};
	assert_int_equal(journal_add(j, &msg), 0);
	assert_int_equal(journal_add(j, &r1), 0);
	assert_int_equal(journal_add(j, &r2), 0);
	assert_int_equal(journal_add(j, &ab), 0);
	assert_int_equal(journal_sync(j), 0);
	journal_close(&j);
	uint8_t *torn;
	size_t torn_len;
	struct journal_record r3 = r1;
	r3.id = 13;
	assert_int_equal(journal_encode(&r3, &torn, &torn_len), 0);
	FILE *f = fopen(path, "ab");
	assert_non_null(f);
	assert_int_equal(fwrite(torn, 1, torn_len - 3, f), torn_len - 3);
	fclose(f);
	free(torn);
	struct seen s = {0};
	uint64_t max_id;
	assert_int_equal(journal_replay(path, collect, &s, &max_id, &err), 0);
	assert_int_equal(s.count, 4);
	assert_int_equal(s.types[0], JOURNAL_MESSAGE);
	assert_int_equal(s.types[1], JOURNAL_RCPT);
	assert_int_equal(s.types[3], JOURNAL_ABORT);
	assert_int_equal(max_id, 12);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rcpt_record_round_trip),
		cmocka_unit_test(test_message_record_keeps_bytes),
		cmocka_unit_test(test_replay_stops_at_torn_tail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
