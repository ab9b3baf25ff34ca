/* Unit tests for src/proto/imap/search-eval.c: search programs parsed from
 * real command lines, evaluated over synthetic messages. Checks metadata keys,
 * dates in the message's own zone, sets with "*" and "$", OR/NOT logic,
 * header and body text through encoded-words and base64, and that message
 * content is loaded only when the cheap keys cannot decide. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap-date.h"
#include "proto/imap/parser.h"
#include "proto/imap/search-eval.h"
#include "proto/imap/search-parse.h"
#include "store/mime.h"
#include "store/store.h"

static const char msg_plain[] =
	"Date: Mon, 1 Jan 2024 23:30:00 -0500\r\n"
	"From: Alice Example <alice@example.com>\r\n"
	"To: bob@example.org\r\n"
	"Subject: Quarterly report\r\n"
	"Received: from a\r\n"
	"Received: from relay.example.net\r\n"
	"\r\n"
	"The numbers are in. Grüße aus Köln.\r\n";

static const char msg_encoded[] =
	"Date: Tue, 2 Jan 2024 01:00:00 +0000\r\n"
	"From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\r\n"
	"Subject: =?UTF-8?B?w5xiZXJyYXNjaHVuZyBmw7xyIGRpY2g=?=\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	"\r\n"
	"--b1\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	/* "Secret word: PINEAPPLE\n" */
	"U2VjcmV0IHdvcmQ6IFBJTkVBUFBMRQo=\r\n"
	"--b1\r\n"
	"Content-Type: text/plain; charset=iso-8859-1\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"Stra=DFe\r\n"
	"--b1--\r\n";

static const char msg_nodate[] =
	"From: carol@example.org\r\n"
	"Subject: no date here\r\n"
	"\r\n"
	"body\r\n";

struct fixture {
	struct imap_search_msg msgs[3];
	const char *raw[3];
	unsigned loads, head_loads;
	size_t head_prefix;   /* 0: head-only loads return the header block */
	uint32_t saved[2];
	struct imap_search_ctx ctx;
};

static struct fixture fx;

static int load(void *arg, uint32_t uid, bool head_only, char **data_r, size_t *size_r,
		uint64_t *total_r)
{
	struct fixture *f = arg;
	for (size_t i = 0; i < 3; i++) {
		if (f->msgs[i].uid != uid)
			continue;
		if (f->raw[i] == NULL)
			return 0;  /* expunged meanwhile */
		size_t len = strlen(f->raw[i]);
		size_t give = len;
		if (head_only && f->head_prefix > 0)
			give = len < f->head_prefix ? len : f->head_prefix;
		else if (head_only)
			give = (size_t)(strstr(f->raw[i], "\r\n\r\n") + 4 - f->raw[i]);
		f->loads++;
		f->head_loads += head_only;
		*data_r = strndup(f->raw[i], give);
		*size_r = give;
		*total_r = len;
		return 1;
	}
	return 0;
}

static int64_t utc(int y, unsigned mo, unsigned d, int h, int mi)
{
	return imap_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.msgs[0] = (struct imap_search_msg){
		.seq = 1, .uid = 10, .flags = STORE_FLAG_SEEN, .keywords = "$Forwarded Work",
		.modseq = 5, .internal_date = utc(2024, 1, 2, 4, 30), .internal_tz = -300,
		.size = 300, .save_date = utc(2024, 2, 1, 23, 59), .emailid = "Ma1b2",
	};
	fx.msgs[1] = (struct imap_search_msg){
		.seq = 2, .uid = 20, .flags = STORE_FLAG_FLAGGED | STORE_FLAG_DELETED,
		.keywords = NULL, .modseq = 9, .internal_date = utc(2024, 1, 2, 1, 0),
		.internal_tz = 0, .size = 900, .recent = true,
		.save_date = utc(2024, 2, 2, 0, 0), .emailid = "MA1B2",
	};
	fx.msgs[2] = (struct imap_search_msg){
		.seq = 3, .uid = 35, .flags = 0, .keywords = "", .modseq = 7,
		.internal_date = utc(2024, 3, 1, 12, 0), .internal_tz = 60, .size = 100,
		.save_date = utc(2024, 3, 1, 12, 0), .emailid = NULL,
	};
	fx.raw[0] = msg_plain;
	fx.raw[1] = msg_encoded;
	fx.raw[2] = msg_nodate;
	fx.saved[0] = 20;
	fx.saved[1] = 35;
	fx.ctx = (struct imap_search_ctx){
		.now = utc(2024, 3, 1, 13, 0), .saved = fx.saved, .saved_count = 2,
		.load = load, .load_arg = &fx,
	};
	return 0;
}

static struct imap_search_program *parse(const char *keys)
{
	struct imap_parser_limits lim = { 65536, 65536, 1 << 20 };
	struct imap_parser *p = imap_parser_new(&lim);
	char line[1024];
	snprintf(line, sizeof(line), "t SEARCH %s\r\n", keys);
	size_t used = 0;
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)line, strlen(line), &used, &cmd, &err),
			 TERN_PARSE_OK);
	struct imap_search_program *prog = NULL;
	assert_int_equal(imap_search_parse(cmd->args, cmd->arg_count, &prog, &err), 0);
	imap_cmd_free(&cmd);
	imap_parser_free(&p);
	assert_int_equal(imap_search_prepare(prog, 3, 35), 0);
	return prog;
}

/* Returns the matching UIDs as "10 35". */
static char *run(const char *keys)
{
	static char out[64];
	struct imap_search_program *prog = parse(keys);
	out[0] = '\0';
	for (size_t i = 0; i < 3; i++) {
		int r = imap_search_match(&fx.ctx, prog->root, &fx.msgs[i]);
		assert_true(r == 0 || r == 1);
		if (r == 1)
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%u",
				 out[0] != '\0' ? " " : "", fx.msgs[i].uid);
	}
	imap_search_program_free(&prog);
	return out;
}

static void test_flags_and_keywords(void **state)
{
	(void)state;
	assert_string_equal(run("ALL"), "10 20 35");
	assert_string_equal(run("SEEN"), "10");
	assert_string_equal(run("UNSEEN"), "20 35");
	assert_string_equal(run("FLAGGED DELETED"), "20");
	assert_string_equal(run("KEYWORD work"), "10");
	assert_string_equal(run("KEYWORD $forwarded"), "10");
	assert_string_equal(run("KEYWORD Wor"), "");
	assert_string_equal(run("UNKEYWORD Work"), "20 35");
	assert_string_equal(run("RECENT"), "20");
	assert_string_equal(run("NEW"), "20");
	assert_string_equal(run("OLD"), "10 35");
	assert_string_equal(run("ANSWERED"), "");
	assert_int_equal(fx.loads, 0);
}

static void test_sizes_modseq_sets(void **state)
{
	(void)state;
	assert_string_equal(run("LARGER 300"), "20");
	assert_string_equal(run("SMALLER 300"), "35");
	assert_string_equal(run("MODSEQ 7"), "20 35");
	assert_string_equal(run("1,3"), "10 35");
	assert_string_equal(run("2:*"), "20 35");
	assert_string_equal(run("*"), "35");
	assert_string_equal(run("UID 11:20"), "20");
	assert_string_equal(run("UID *"), "35");
	assert_string_equal(run("UID 50:*"), "35");    /* RFC 3501 §6.4.8: 50:* = 35:50 */
	assert_string_equal(run("$"), "20 35");
	assert_string_equal(run("UID $ SEEN"), "");
	assert_int_equal(fx.loads, 0);
}

static void test_logic(void **state)
{
	(void)state;
	assert_string_equal(run("OR SEEN FLAGGED"), "10 20");
	assert_string_equal(run("NOT SEEN"), "20 35");
	assert_string_equal(run("NOT (SEEN OR FLAGGED DRAFT)"), "10 20 35");
	assert_string_equal(run("NOT (OR SEEN FLAGGED)"), "35");
	assert_string_equal(run("OR (SEEN LARGER 1000) SMALLER 200"), "35");
	assert_string_equal(run("NOT NOT 2"), "20");
	assert_string_equal(run("OR NOT 1 NOT 2"), "10 20 35");
}

static void test_internal_dates_own_zone(void **state)
{
	(void)state;
	/* uid 10: 2024-01-02 04:30 UTC is 1-Jan 23:30 in -0500: its own day
	 * is 1-Jan. uid 20: 2-Jan 01:00 +0000. */
	assert_string_equal(run("ON 1-Jan-2024"), "10");
	assert_string_equal(run("ON 2-Jan-2024"), "20");
	assert_string_equal(run("BEFORE 2-Jan-2024"), "10");
	assert_string_equal(run("SINCE 2-Jan-2024"), "20 35");
	assert_string_equal(run("SINCE 1-Mar-2024"), "35");
	assert_string_equal(run("BEFORE 1-Jan-2024"), "");
	/* now is 1-Mar 13:00 UTC; uid 35 arrived an hour earlier */
	assert_string_equal(run("YOUNGER 3601"), "35");
	assert_string_equal(run("YOUNGER 3600"), "");
	assert_string_equal(run("OLDER 3600"), "10 20 35");
	assert_string_equal(run("OLDER 3601"), "10 20");
	assert_int_equal(fx.loads, 0);
}

/* RFC 8514 §4: the save date's UTC day (FETCH SAVEDATE shows UTC), not the
 * internal date; RFC 8474 §6: EMAILID exact and case-sensitive, THREADID
 * never (it is NIL here). No message is read. */
static void test_saved_dates_and_objectids(void **state)
{
	(void)state;
	assert_string_equal(run("SAVEDON 1-Feb-2024"), "10");
	assert_string_equal(run("SAVEDON 2-Feb-2024"), "20");
	assert_string_equal(run("SAVEDBEFORE 2-Feb-2024"), "10");
	assert_string_equal(run("SAVEDSINCE 2-Feb-2024"), "20 35");
	assert_string_equal(run("SAVEDSINCE 2-Mar-2024"), "");
	assert_string_equal(run("SAVEDON 2-Jan-2024"), "");
	assert_string_equal(run("SAVEDATESUPPORTED"), "10 20 35");
	assert_string_equal(run("NOT SAVEDATESUPPORTED"), "");
	assert_string_equal(run("EMAILID Ma1b2"), "10");
	assert_string_equal(run("EMAILID MA1B2"), "20");
	assert_string_equal(run("EMAILID Ma1b"), "");
	assert_string_equal(run("NOT EMAILID Ma1b2"), "20 35");
	assert_string_equal(run("THREADID T1"), "");
	assert_string_equal(run("NOT THREADID T1"), "10 20 35");
	assert_string_equal(run("OR SAVEDON 1-Feb-2024 EMAILID MA1B2"), "10 20");
	assert_int_equal(fx.loads, 0);
}

static void test_sent_dates(void **state)
{
	(void)state;
	/* Date: of uid 10 is 1-Jan 23:30 -0500 (2-Jan in UTC): its own day counts;
	 * uid 35 has no Date: and falls back to its internal date (1-Mar). */
	assert_string_equal(run("SENTON 1-Jan-2024"), "10");
	assert_string_equal(run("SENTON 2-Jan-2024"), "20");
	assert_string_equal(run("SENTBEFORE 2-Jan-2024"), "10");
	assert_string_equal(run("SENTSINCE 2-Jan-2024"), "20 35");
	/* header keys read only the header block */
	assert_int_equal(fx.loads, 12);
	assert_int_equal(fx.head_loads, 12);
}

static void test_header_keys(void **state)
{
	(void)state;
	assert_string_equal(run("SUBJECT report"), "10");
	assert_string_equal(run("SUBJECT QUARTERLY"), "10");
	/* encoded-word subject, case folded beyond ASCII */
	assert_string_equal(run("CHARSET UTF-8 SUBJECT \"überraschung\""), "20");
	assert_string_equal(run("CHARSET UTF-8 FROM \"JÜRGEN\""), "20");
	assert_string_equal(run("FROM alice@example.com"), "10");
	assert_string_equal(run("TO bob"), "10");
	assert_string_equal(run("HEADER Received relay"), "10");
	assert_string_equal(run("HEADER Received \"\""), "10");
	assert_string_equal(run("HEADER MIME-Version \"\""), "20");
	/* a field's value, not another field's name */
	assert_string_equal(run("HEADER Subject alice"), "");
	assert_string_equal(run("CC x"), "");
}

static const char msg_addr_comment[] =
	"From: <user-from (comment)@ (comment) domain.org>\r\n"
	"To: user-to@domain.org (Real To)\r\n"
	"\r\n"
	"x\r\n";

static const char msg_addr_group[] =
	"From: <@route:user@domain>\r\n"
	"To: empty:;\r\n"
	"Cc: user2: blah@domain1.org;\r\n"
	"\r\n"
	"x\r\n";

/* FROM/TO/CC/BCC match the parsed addresses, as ENVELOPE shows them. */
static void test_address_keys(void **state)
{
	(void)state;
	fx.raw[0] = msg_addr_comment;
	fx.raw[1] = msg_addr_group;
	assert_string_equal(run("FROM user-from@domain.org"), "10");
	assert_string_equal(run("FROM comment"), "");          /* no part of the address */
	assert_string_equal(run("HEADER FROM comment"), "10"); /* but of the text */
	assert_string_equal(run("TO \"real to <user-to@\""), "10");
	assert_string_equal(run("TO empty"), "20");
	assert_string_equal(run("CC user2"), "20");
	assert_string_equal(run("CC blah@domain1.org"), "20");
	assert_string_equal(run("FROM user@domain"), "20");
	assert_string_equal(run("FROM \"\""), "10 20 35");    /* the field exists */
	assert_string_equal(run("CC \"\""), "20");
	assert_string_equal(run("BCC \"\""), "");
}

static void test_body_and_text(void **state)
{
	(void)state;
	assert_string_equal(run("BODY pineapple"), "20");      /* base64 part */
	assert_string_equal(run("CHARSET UTF-8 BODY \"straße\""), "20"); /* QP latin-1 */
	/* full Unicode case folding: ß folds to ss */
	assert_string_equal(run("CHARSET UTF-8 BODY \"GRÜSSE\""), "10");
	assert_string_equal(run("CHARSET UTF-8 BODY \"grüße\""), "10");
	assert_string_equal(run("BODY numbers"), "10");
	assert_string_equal(run("BODY Quarterly"), "");          /* header only */
	assert_string_equal(run("TEXT Quarterly"), "10");
	assert_string_equal(run("TEXT pineapple"), "20");
	assert_string_equal(run("TEXT carol"), "35");
}

static void test_loads_only_candidates(void **state)
{
	(void)state;
	/* only uid 10 is SEEN: one load, for it */
	fx.loads = fx.head_loads = 0;
	assert_string_equal(run("SEEN BODY numbers"), "10");
	assert_int_equal(fx.loads, 1);
	/* OR decided by the cheap side needs no load */
	fx.loads = 0;
	assert_string_equal(run("OR ALL BODY x"), "10 20 35");
	assert_int_equal(fx.loads, 0);
	/* NOT over an unknown still loads; LARGER rules out two first */
	fx.loads = 0;
	assert_string_equal(run("LARGER 500 NOT BODY pineapple"), "");
	assert_int_equal(fx.loads, 1);
	/* header-only keys ask for the head (a 40-byte prefix here, which
	 * cuts the header, so a full load follows) */
	fx.loads = fx.head_loads = 0;
	fx.head_prefix = 40;
	assert_string_equal(run("SUBJECT date"), "35");
	assert_int_equal(fx.head_loads, 3);
	assert_int_equal(fx.loads, 6);
}

static void test_expunged_meanwhile(void **state)
{
	(void)state;
	fx.raw[1] = NULL;
	assert_string_equal(run("BODY pineapple"), "");
	assert_string_equal(run("FLAGGED"), "20");
}

static void test_contains(void **state)
{
	(void)state;
	assert_true(imap_search_contains("Hello World", "WORLD"));
	assert_true(imap_search_contains("Ärger", "äR"));
	assert_true(imap_search_contains("abc", ""));
	assert_false(imap_search_contains("abc", "abcd"));
	assert_true(imap_search_contains("bad \xff utf8 x", "UTF8"));
}

int main(void)
{
	mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_flags_and_keywords, setup),
		cmocka_unit_test_setup(test_sizes_modseq_sets, setup),
		cmocka_unit_test_setup(test_logic, setup),
		cmocka_unit_test_setup(test_internal_dates_own_zone, setup),
		cmocka_unit_test_setup(test_saved_dates_and_objectids, setup),
		cmocka_unit_test_setup(test_sent_dates, setup),
		cmocka_unit_test_setup(test_header_keys, setup),
		cmocka_unit_test_setup(test_address_keys, setup),
		cmocka_unit_test_setup(test_body_and_text, setup),
		cmocka_unit_test_setup(test_loads_only_candidates, setup),
		cmocka_unit_test_setup(test_expunged_meanwhile, setup),
		cmocka_unit_test(test_contains),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
