/* libFuzzer target for the IMAP command parser and the pure modules that
 * consume its output (FETCH and SEARCH parsers, sequence sets, mUTF-7, dates,
 * string quoting). It feeds the input like a session: in slices whose size
 * the first byte picks, answering continuation requests and switching to raw
 * line mode after IDLE. Beyond "no crash": the same input fed whole must give
 * the same verdicts, and quoted output must parse back to the same bytes. */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "proto/imap/fetch-parse.h"
#include "proto/imap/imap-date.h"
#include "proto/imap/mutf7.h"
#include "proto/imap/parser.h"
#include "proto/imap/quote.h"
#include "proto/imap/search-parse.h"
#include "proto/imap/seqset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static const struct imap_parser_limits limits = { 256, 64, 512 };

/* Event log of one run, compared between slicings. */
struct log {
	struct evbuffer *b;
};

static void log_args(struct log *l, const struct imap_arg *a, size_t n, unsigned depth)
{
	CHECK(depth <= TERN_IMAP_PARSER_DEPTH_MAX);
	for (size_t i = 0; i < n; i++) {
		evbuffer_add_printf(l->b, " %d:", (int)a[i].type);
		if (a[i].type == IMAP_ARG_LIST) {
			CHECK(a[i].str == NULL);
			evbuffer_add(l->b, "(", 1);
			log_args(l, a[i].list, a[i].list_count, depth + 1);
			evbuffer_add(l->b, ")", 1);
			continue;
		}
		CHECK(a[i].str != NULL && a[i].str[a[i].len] == '\0');
		if (a[i].type != IMAP_ARG_LITERAL)
			CHECK(strlen(a[i].str) == a[i].len);
		evbuffer_add_printf(l->b, "%zu:", a[i].len);
		evbuffer_add(l->b, a[i].str, a[i].len);
	}
}

/* quote.c output must come back from the parser as the same string. */
static void check_quote_round_trip(const char *s, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	struct imap_parser *p = imap_parser_new(&(struct imap_parser_limits){ 4096, 4096, 4096 });
	struct imap_cmd *cmd = NULL;
	const char *err, *got;
	size_t pos = 0, used, got_len;
	enum tern_parse r;

	evbuffer_add(b, "t X ", 4);
	CHECK(imap_write_astring(b, s, len, IMAP_WRITE_UTF8) == 0);
	evbuffer_add(b, "\r\n", 2);
	size_t n = evbuffer_get_length(b);
	const uint8_t *d = evbuffer_pullup(b, -1);
	while ((r = imap_parser_feed(p, d + pos, n - pos, &used, &cmd, &err)) == TERN_PARSE_NEED_MORE) {
		CHECK(imap_parser_continuation_needed(p));
		pos += used;
	}
	CHECK(r == TERN_PARSE_OK && cmd->arg_count == 1);
	CHECK(imap_arg_astring(&cmd->args[0], &got, &got_len));
	CHECK(got_len == len && memcmp(got, s, len) == 0 && cmd->args[0].type != IMAP_ARG_NIL);
	imap_cmd_free(&cmd);
	imap_parser_free(&p);
	evbuffer_free(b);
}

static void exercise_string(const char *s, size_t len)
{
	char *out = NULL, *back = NULL;
	int64_t v;
	int tz;

	if (imap_mutf7_to_utf8(s, len, &out) == 0) {
		/* A valid mUTF-7 name has one spelling: re-encoding gives it back. */
		CHECK(imap_utf8_to_mutf7(out, strlen(out), &back) == 0);
		CHECK(strlen(back) == len && memcmp(back, s, len) == 0);
		free(out);
		free(back);
	}
	if (imap_utf8_to_mutf7(s, len, &out) == 0) {
		CHECK(imap_mutf7_to_utf8(out, strlen(out), &back) == 0);
		CHECK(strlen(back) == len && memcmp(back, s, len) == 0);
		free(out);
		free(back);
	}
	imap_date_parse(s, len, &v);
	if (imap_datetime_parse(s, len, &v, &tz) == 0) {
		char buf[IMAP_DATETIME_SIZE];
		int64_t v2;
		int tz2;
		CHECK(imap_datetime_format(v, tz, buf) == 0);
		CHECK(imap_datetime_parse(buf, strlen(buf), &v2, &tz2) == 0 && v2 == v && tz2 == tz);
	}
	struct imap_seqset *set;
	if (imap_seqset_parse(s, len, &set) == 0) {
		CHECK(imap_seqset_resolve(set, 100) == 0);
		size_t n;
		const struct imap_seq_range *r = imap_seqset_ranges(set, &n);
		for (size_t i = 0; i < n; i++) {
			CHECK(r[i].lo >= 1 && r[i].lo <= r[i].hi);
			CHECK(i == 0 || r[i].lo > r[i - 1].hi + 1ull);
			CHECK(imap_seqset_contains(set, r[i].lo) && imap_seqset_contains(set, r[i].hi));
		}
		imap_seqset_free(&set);
	}
	if (len <= 300)
		check_quote_round_trip(s, len);
}

static void exercise_args(const struct imap_arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i].type == IMAP_ARG_LIST)
			exercise_args(a[i].list, a[i].list_count);
		else
			exercise_string(a[i].str, a[i].len);
	}
}

static void exercise_command(const struct imap_cmd *cmd)
{
	const char *err;

	for (const char *c = cmd->name; *c != '\0'; c++)
		CHECK(!(*c >= 'a' && *c <= 'z'));
	if (strcmp(cmd->name, "FETCH") == 0 && cmd->arg_count >= 1) {
		struct imap_fetch_request *req = NULL;
		if (imap_fetch_parse(cmd->args + 1, cmd->arg_count - 1, cmd->uid, &req, &err) == 0) {
			for (size_t i = 0; i < req->count; i++)
				CHECK(req->atts[i].response_name != NULL);
			imap_fetch_request_free(&req);
		}
	}
	if (strcmp(cmd->name, "SEARCH") == 0) {
		struct imap_search_program *prog = NULL;
		if (imap_search_parse(cmd->args, cmd->arg_count, &prog, &err) == 0)
			imap_search_program_free(&prog);
	}
	exercise_args(cmd->args, cmd->arg_count);
}

/* Runs the whole input with slices of `slice` bytes (0 = all at once). */
static void run(const uint8_t *data, size_t size, size_t slice, bool refuse, bool deep,
		struct log *l)
{
	struct imap_parser *p = imap_parser_new(&limits);
	size_t pos = 0, end = slice == 0 ? size : 0;
	bool line_mode = false;

	CHECK(p != NULL);
	while (pos < size) {
		if (end <= pos)
			end = pos + slice < size ? pos + slice : size;
		size_t len = end - pos, used = (size_t)-1;
		if (line_mode) {
			char *line = NULL;
			enum tern_parse r = imap_parser_read_line(p, data + pos, len, &used, &line);
			if (r == TERN_PARSE_ERROR_FATAL) {
				evbuffer_add_printf(l->b, "LINEFATAL\n");
				break;
			}
			CHECK(used <= len && (r == TERN_PARSE_OK || used == len));
			pos += used;
			if (r == TERN_PARSE_OK) {
				CHECK(used > 0);
				evbuffer_add_printf(l->b, "LINE %s\n", line);
				free(line);
				line_mode = false;
			}
			continue;
		}
		struct imap_cmd *cmd = NULL;
		const char *err = NULL;
		enum tern_parse r = imap_parser_feed(p, data + pos, len, &used, &cmd, &err);
		if (r == TERN_PARSE_ERROR_FATAL) {
			CHECK(err != NULL && cmd == NULL);
			evbuffer_add_printf(l->b, "FATAL %s %s %d\n", imap_parser_tag(p), err,
					    imap_parser_error_toobig(p));
			break;
		}
		CHECK(used <= len);
		pos += used;
		switch (r) {
		case TERN_PARSE_NEED_MORE:
			CHECK(cmd == NULL);
			if (imap_parser_continuation_needed(p)) {
				CHECK(!imap_parser_continuation_needed(p));
				CHECK(imap_parser_cmd_name(p) != NULL);
				evbuffer_add_printf(l->b, "CONT %s\n", imap_parser_tag(p));
				if (refuse)
					imap_parser_reset_line(p);
			} else {
				CHECK(used == len);
			}
			break;
		case TERN_PARSE_OK:
			CHECK(cmd != NULL && used > 0);
			evbuffer_add_printf(l->b, "OK %s %s %d", cmd->tag, cmd->name, cmd->uid);
			log_args(l, cmd->args, cmd->arg_count, 0);
			evbuffer_add(l->b, "\n", 1);
			if (deep)
				exercise_command(cmd);
			line_mode = strcmp(cmd->name, "IDLE") == 0 ||
				    strcmp(cmd->name, "AUTHENTICATE") == 0;
			imap_cmd_free(&cmd);
			break;
		case TERN_PARSE_ERROR_RECOVERABLE:
			CHECK(err != NULL && cmd == NULL && used > 0);
			evbuffer_add_printf(l->b, "BAD %s %s %d\n", imap_parser_tag(p), err,
					    imap_parser_error_toobig(p));
			break;
		default:
			abort();
		}
	}
	imap_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 64 * 1024)
		return 0;
	/* Byte 0: low 4 bits the slice size (0 = 1 byte), bit 4 refuses
	 * continuations. */
	size_t slice = (size_t)(data[0] & 0x0f) + 1;
	bool refuse = (data[0] & 0x10) != 0;
	data++;
	size--;

	struct log a = { evbuffer_new() }, b = { evbuffer_new() };
	run(data, size, slice, refuse, true, &a);
	run(data, size, 0, refuse, false, &b);
	size_t la = evbuffer_get_length(a.b), lb = evbuffer_get_length(b.b);
	if (la != lb || (la > 0 && memcmp(evbuffer_pullup(a.b, -1), evbuffer_pullup(b.b, -1), la) != 0)) {
		fprintf(stderr, "sliced:\n%.*s\nwhole:\n%.*s\n", (int)la,
			(const char *)evbuffer_pullup(a.b, -1), (int)lb,
			(const char *)evbuffer_pullup(b.b, -1));
		abort();
	}
	evbuffer_free(a.b);
	evbuffer_free(b.b);
	return 0;
}
