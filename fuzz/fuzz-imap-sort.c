/* libFuzzer target for the SORT/THREAD pure modules. The input is split at
 * the first NUL: the part before is an IMAP command line for the SORT and
 * THREAD argument parsers; the rest is read as an ENVELOPE, as a subject for
 * base-subject extraction and as a header block whose lines become messages
 * (Message-ID, References, subject, date) for both THREAD algorithms.
 * Beyond "no crash": every message appears exactly once in a thread answer,
 * which must have balanced parentheses. */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "proto/imap/parser.h"
#include "proto/imap/sort-envelope.h"
#include "proto/imap/sort-order.h"
#include "proto/imap/sort-parse.h"
#include "proto/imap/sort-subject.h"
#include "proto/imap/thread-build.h"
#include "proto/imap/thread-refs.h"
#include "store/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)
#define MAX_MSGS 64

static void fuzz_command(const char *line, size_t len)
{
	static const struct imap_parser_limits limits = { 4096, 4096, 4096 };
	struct imap_parser *p = imap_parser_new(&limits);
	struct imap_cmd *cmd = NULL;
	const char *err = NULL;
	size_t used = 0;
	if (p == NULL)
		return;
	if (imap_parser_feed(p, (const uint8_t *)line, len, &used, &cmd, &err) == TERN_PARSE_OK) {
		struct imap_sort_program *prog = NULL;
		if (imap_sort_parse(cmd->args, cmd->arg_count, &prog, &err) == 0) {
			CHECK(prog->crit_count > 0 && prog->crit_count <= TERN_SORT_CRITERIA_MAX);
			imap_sort_program_free(&prog);
		}
		struct imap_search_program *sp = NULL;
		enum imap_thread_algo algo;
		if (imap_thread_parse(cmd->args, cmd->arg_count, &algo, &sp, &err) == 0)
			imap_search_program_free(&sp);
		imap_cmd_free(&cmd);
	}
	imap_parser_free(&p);
}

static void check_thread(const char *s, size_t n)
{
	int depth = 0;
	unsigned seen[MAX_MSGS + 1] = { 0 };
	for (const char *p = s; *p != '\0';) {
		if (*p == '(') {
			depth++;
			p++;
		} else if (*p == ')') {
			CHECK(--depth >= 0);
			p++;
		} else if (*p == ' ') {
			p++;
		} else {
			char *end;
			unsigned long id = strtoul(p, &end, 10);
			CHECK(end != p && id >= 1 && id <= n);
			seen[id]++;
			p = end;
		}
	}
	CHECK(depth == 0);
	for (size_t i = 1; i <= n; i++)
		CHECK(seen[i] == 1);
}

static void fuzz_threads(const char *text)
{
	struct imap_thread_msg m[MAX_MSGS];
	char *subjects[MAX_MSGS], *ids[MAX_MSGS];
	char **refs[MAX_MSGS];
	int nrefs[MAX_MSGS];
	size_t n = 0;
	/* each line "id|refs|subject" is a message */
	for (const char *line = text; *line != '\0' && n < MAX_MSGS; n++) {
		size_t len = strcspn(line, "\n");
		char *copy = strndup(line, len);
		char *bar1 = copy != NULL ? strchr(copy, '|') : NULL;
		char *bar2 = bar1 != NULL ? strchr(bar1 + 1, '|') : NULL;
		if (bar2 != NULL) {
			*bar1 = *bar2 = '\0';
		}
		bool reply = false;
		char *base = imap_base_subject(bar2 != NULL ? bar2 + 1 : copy != NULL ? copy : "",
					       &reply);
		subjects[n] = base != NULL ? imap_sort_unicode_key(base) : NULL;
		free(base);
		char **one = NULL;
		int k = bar1 != NULL ? imap_thread_msgids(copy, 1, &one) : 0;
		ids[n] = k > 0 ? one[0] : NULL;
		free(one);
		refs[n] = NULL;
		nrefs[n] = bar2 != NULL ? imap_thread_msgids(bar1 + 1, 0, &refs[n]) : 0;
		if (nrefs[n] < 0)
			nrefs[n] = 0;
		m[n] = (struct imap_thread_msg){
			.id = (uint32_t)(n + 1), .seq = (uint32_t)(n + 1),
			.date = (int64_t)(len % 7), .subject = subjects[n] != NULL ? subjects[n] : "",
			.is_reply = reply, .msgid = ids[n], .refs = refs[n],
			.ref_count = (size_t)nrefs[n],
		};
		free(copy);
		line += len + (line[len] == '\n');
	}
	for (int algo = 0; algo < 2; algo++) {
		struct evbuffer *out = evbuffer_new();
		if (imap_thread_write(out, (enum imap_thread_algo)algo, m, n) == 0) {
			evbuffer_add(out, "", 1);
			check_thread((const char *)evbuffer_pullup(out, -1), n);
		}
		evbuffer_free(out);
	}
	for (size_t i = 0; i < n; i++) {
		free(subjects[i]);
		free(ids[i]);
		imap_thread_ids_free(&refs[i], (size_t)nrefs[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		mime_init();
		init = true;
	}
	const uint8_t *nul = memchr(data, '\0', size);
	size_t cmd_len = nul != NULL ? (size_t)(nul - data) : size;
	fuzz_command((const char *)data, cmd_len);
	if (nul == NULL)
		return 0;
	char *text = strndup((const char *)nul + 1, size - cmd_len - 1);
	if (text == NULL)
		return 0;
	struct imap_env_addr a;
	for (int f = IMAP_ENV_FROM; f <= IMAP_ENV_BCC; f++)
		if (imap_env_first_addr(text, (enum imap_env_field)f, &a) > 0)
			imap_env_addr_clear(&a);
	free(imap_env_string(text, IMAP_ENV_MESSAGE_ID));
	struct imap_sort_msg sm = { .seq = 1 };
	(void)imap_sort_fill_keys(&sm, 0x1ff, text, text, 0);
	for (size_t k = 0; k <= IMAP_SORT_DISPLAYTO; k++)
		free(sm.keys[k]);
	free(imap_thread_header_field(text, strlen(text), "References"));
	fuzz_threads(text);
	free(text);
	return 0;
}
