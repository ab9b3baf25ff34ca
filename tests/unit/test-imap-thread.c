/* Unit tests for the THREAD building blocks: thread-build.c (ORDEREDSUBJECT
 * and REFERENCES trees and their wire form: dummies, promotion, subject
 * gathering, loops, duplicate ids, missing parents) and thread-refs.c
 * (header field unfolding and msg-id lists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "proto/imap/sort-subject.h"
#include "proto/imap/thread-build.h"
#include "proto/imap/thread-refs.h"

/* A message spec: id, subject (raw), day, references (space separated). */
struct spec {
	const char *msgid;
	const char *subject;
	int64_t date;
	const char *refs;
};

static char *run(enum imap_thread_algo algo, const struct spec *sp, size_t n)
{
	struct imap_thread_msg *m = calloc(n + 1, sizeof(*m));
	char **subjects = calloc(n + 1, sizeof(char *));
	char ***refs = calloc(n + 1, sizeof(char **));
	int *ref_counts = calloc(n + 1, sizeof(int));
	for (size_t i = 0; i < n; i++) {
		bool reply = false;
		char *base = imap_base_subject(sp[i].subject, &reply);
		subjects[i] = imap_sort_unicode_key(base);
		free(base);
		ref_counts[i] = sp[i].refs != NULL ? imap_thread_msgids(sp[i].refs, 0, &refs[i]) : 0;
		assert_true(ref_counts[i] >= 0);
		m[i] = (struct imap_thread_msg){
			.id = (uint32_t)(i + 1), .seq = (uint32_t)(i + 1), .date = sp[i].date,
			.subject = subjects[i], .is_reply = reply, .msgid = sp[i].msgid,
			.refs = refs[i], .ref_count = (size_t)ref_counts[i],
		};
	}
	struct evbuffer *out = evbuffer_new();
	assert_int_equal(imap_thread_write(out, algo, m, n), 0);
	size_t len = evbuffer_get_length(out);
	char *s = malloc(len + 1);
	evbuffer_remove(out, s, len);
	s[len] = '\0';
	evbuffer_free(out);
	for (size_t i = 0; i < n; i++) {
		free(subjects[i]);
		imap_thread_ids_free(&refs[i], (size_t)ref_counts[i]);
	}
	free(subjects);
	free(refs);
	free(ref_counts);
	free(m);
	return s;
}

#define EXPECT(algo, sp, want) do { \
		char *got_ = run(algo, sp, sizeof(sp) / sizeof(sp[0])); \
		assert_string_equal(got_, want); \
		free(got_); \
	} while (0)

static const struct spec corpus[] = {
	{ "a@x", "Topic", 1, NULL },
	{ "b@x", "Re: Topic", 2, "<a@x>" },
	{ "c@x", "Re: Topic", 3, "<a@x> <b@x>" },
	{ "d@x", "RE: [list] Topic", 4, "<a@x>" },
	{ "e@x", "Other", 5, NULL },
	{ "f@x", "Re: Lost", 6, "<missing@x>" },
	{ "g@x", "Re: Lost", 7, "<missing@x>" },
	{ "h@x", "Re: Other", 8, NULL },
	{ "i@x", "Solo", 0, NULL },
};

static void test_references_basic(void **state)
{
	(void)state;
	EXPECT(IMAP_THREAD_REFERENCES, corpus, "(9)(1 (2 3)(4))(5 8)((6)(7))");
}

static void test_orderedsubject(void **state)
{
	(void)state;
	EXPECT(IMAP_THREAD_ORDEREDSUBJECT, corpus, "(9)(1 (2)(3)(4))(5 8)(6 7)");
	static const struct spec none[1] = { { NULL, "", 0, NULL } };
	char *got = run(IMAP_THREAD_ORDEREDSUBJECT, none, 0);
	assert_string_equal(got, "");
	free(got);
}

/* RFC 5256's own example shape: (3 6 (4 23)(44 7 96)). */
static void test_rfc_example_shape(void **state)
{
	(void)state;
	static const struct spec sp[] = {
		{ "3@x", "s", 1, NULL },
		{ "6@x", "Re: s", 2, "<3@x>" },
		{ "4@x", "Re: s", 3, "<3@x> <6@x>" },
		{ "23@x", "Re: s", 4, "<3@x> <6@x> <4@x>" },
		{ "44@x", "Re: s", 5, "<3@x> <6@x>" },
		{ "7@x", "Re: s", 6, "<6@x> <44@x>" },
		{ "96@x", "Re: s", 7, "<44@x> <7@x>" },
	};
	EXPECT(IMAP_THREAD_REFERENCES, sp, "(1 2 (3 4)(5 6 7))");
}

/* References that loop, a message listing itself, duplicate Message-IDs
 * and no ids at all must neither hang nor lose a message. */
static void test_loops_and_duplicates(void **state)
{
	(void)state;
	static const struct spec loop[] = {
		{ "x@x", "p", 1, "<y@x>" },
		{ "y@x", "q", 2, "<x@x>" },
		{ "z@x", "r", 3, "<z@x>" },
	};
	char *got = run(IMAP_THREAD_REFERENCES, loop, 3);
	/* every message appears exactly once */
	for (const char *d = "123"; *d != '\0'; d++) {
		const char *p = strchr(got, *d);
		assert_non_null(p);
		assert_null(strchr(p + 1, *d));
	}
	free(got);
	static const struct spec dup[] = {
		{ "same@x", "one", 1, NULL },
		{ "same@x", "two", 2, NULL },
		{ NULL, "three", 3, "<same@x>" },
	};
	EXPECT(IMAP_THREAD_REFERENCES, dup, "(1 3)(2)");
}

/* Subject gathering: two non-replies with one subject go under a dummy; a
 * reply goes under the non-reply; an empty subject is never gathered. */
static void test_subject_merge(void **state)
{
	(void)state;
	static const struct spec sp[] = {
		{ "1@x", "Hello", 1, NULL },
		{ "2@x", "hello", 2, NULL },
		{ "3@x", "Re: Hello", 3, NULL },
		{ "4@x", "", 4, NULL },
		{ "5@x", "Re:", 5, NULL },
	};
	EXPECT(IMAP_THREAD_REFERENCES, sp, "((1)(2)(3))(4)(5)");
	static const struct spec sp2[] = {
		{ "1@x", "Re: Hello", 1, NULL },
		{ "2@x", "Hello", 2, NULL },
	};
	EXPECT(IMAP_THREAD_REFERENCES, sp2, "(2 1)");
}

static void test_msgids(void **state)
{
	(void)state;
	char **ids = NULL;
	int n = imap_thread_msgids("<a@b> junk <no-at> < c @ d >\t<e@f> <broken", 0, &ids);
	assert_int_equal(n, 3);
	assert_string_equal(ids[0], "a@b");
	assert_string_equal(ids[1], "c@d");
	assert_string_equal(ids[2], "e@f");
	imap_thread_ids_free(&ids, (size_t)n);
	assert_null(ids);
	n = imap_thread_msgids("<a@b> <c@d>", 1, &ids);
	assert_int_equal(n, 1);
	imap_thread_ids_free(&ids, 1);
	assert_int_equal(imap_thread_msgids("none here", 0, &ids), 0);
	assert_null(ids);
}

static void test_header_field(void **state)
{
	(void)state;
	static const char h[] = "Subject: x\r\nreferences: <a@b>\r\n\t<c@d>\r\n <e@f>\r\n"
				"Message-ID: <m@x>\r\n\r\nReferences: <body@x>\r\n";
	char *v = imap_thread_header_field(h, sizeof(h) - 1, "References");
	assert_string_equal(v, " <a@b>\t<c@d> <e@f>");
	free(v);
	v = imap_thread_header_field(h, sizeof(h) - 1, "Message-ID");
	assert_string_equal(v, " <m@x>");
	free(v);
	assert_null(imap_thread_header_field(h, sizeof(h) - 1, "In-Reply-To"));
	/* a truncated header (no blank line) still yields its complete fields */
	v = imap_thread_header_field(h, 39, "References");
	assert_string_equal(v, " <a@b>\t<c@d>");
	free(v);
	assert_null(imap_thread_header_field(h, 20, "References"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_references_basic),
		cmocka_unit_test(test_orderedsubject),
		cmocka_unit_test(test_rfc_example_shape),
		cmocka_unit_test(test_loops_and_duplicates),
		cmocka_unit_test(test_subject_merge),
		cmocka_unit_test(test_msgids),
		cmocka_unit_test(test_header_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
