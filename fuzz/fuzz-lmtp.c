/* libFuzzer target for the LMTP parser: plays a session over the input (DATA
 * and BDAT switch the parser to body mode, bodies are taken or discarded),
 * once fed whole and once in pseudo-random slices, and aborts unless both
 * give the same transcript: the parser must not depend on how input splits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/lmtp/parser.h"

#define FUZZ_LINE_MAX   80
#define FUZZ_BODY_MAX   300
#define FUZZ_BDAT_CAP   (1024 * 1024)

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

struct session {
	uint64_t hash;       /* FNV-1a over every verdict, command and body */
	uint64_t rng;        /* slice sizes; 0 = feed everything at once */
	unsigned bodies;
	bool last;           /* the body in progress ends with this chunk */
};

static void mix(struct session *s, const void *data, size_t len)
{
	const uint8_t *b = data;
	for (size_t i = 0; i < len; i++)
		s->hash = (s->hash ^ b[i]) * 0x100000001b3ull;
}

static void mix_str(struct session *s, const char *str)
{
	mix(s, str, strlen(str) + 1);
}

static size_t next_slice(struct session *s, size_t left)
{
	if (s->rng == 0)
		return left;
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	size_t n = (s->rng >> 8) % 64 == 0 ? 1 + (s->rng >> 16) % 512 : 1 + (s->rng >> 16) % 8;
	return n < left ? n : left;
}

static void on_command(struct session *s, struct lmtp_parser *p, struct lmtp_cmd *cmd)
{
	uint64_t fields[] = { cmd->type, cmd->size_param, cmd->body_8bitmime,
			      cmd->body_binarymime, cmd->bdat_size, cmd->bdat_last };
	mix(s, fields, sizeof(fields));
	mix_str(s, cmd->arg != NULL ? cmd->arg : "(null)");
	if (cmd->type == LMTP_CMD_DATA) {
		s->last = true;
		lmtp_parser_begin_data(p);
	} else if (cmd->type == LMTP_CMD_BDAT) {
		s->last = cmd->bdat_last;
		lmtp_parser_begin_bdat(p, cmd->bdat_size < FUZZ_BDAT_CAP ? cmd->bdat_size
									 : FUZZ_BDAT_CAP);
	}
}

static void on_body(struct session *s, struct lmtp_parser *p)
{
	bool big = lmtp_parser_body_too_big(p);
	mix(s, &big, sizeof(big));
	if (!s->last)
		return;
	if (++s->bodies % 3 == 0) {
		lmtp_parser_discard_body(p);
		return;
	}
	size_t len = 1;
	char *body = lmtp_parser_take_body(p, &len);
	CHECK(big ? body == NULL && len == 0 : body != NULL);
	CHECK(len <= FUZZ_BODY_MAX);
	CHECK(body == NULL || body[len] == '\0');
	mix(s, &len, sizeof(len));
	if (body != NULL)
		mix(s, body, len);
	free(body);
	CHECK(!lmtp_parser_body_too_big(p));
}

/* Returns the transcript hash of one session over data. */
static uint64_t run_session(const uint8_t *data, size_t size, uint64_t seed)
{
	struct lmtp_parser_limits lim = { .max_line_length = FUZZ_LINE_MAX,
					  .max_message_size = FUZZ_BODY_MAX };
	struct session s = { .hash = 0xcbf29ce484222325ull, .rng = seed, .last = true };
	struct lmtp_parser *p = lmtp_parser_new(&lim);
	size_t off = 0, piece = 0;

	CHECK(p != NULL);
	while (off < size) {
		if (piece == 0)
			piece = next_slice(&s, size - off);
		struct lmtp_cmd *cmd = NULL;
		const char *err = NULL;
		size_t consumed = SIZE_MAX;
		bool in_body = lmtp_parser_mode(p) != LMTP_MODE_COMMAND;
		enum tern_parse r = lmtp_parser_feed(p, data + off, piece, &consumed, &cmd, &err);
		if (r != TERN_PARSE_NEED_MORE)   /* how often it needs more depends on slicing */
			mix(&s, &r, sizeof(r));
		if (r == TERN_PARSE_ERROR_FATAL) {
			CHECK(err != NULL && strncmp(err, "421 ", 4) == 0 && cmd == NULL);
			mix_str(&s, err);
			break;
		}
		CHECK(consumed <= piece);
		off += consumed;
		piece -= consumed;
		if (r == TERN_PARSE_NEED_MORE) {
			CHECK(piece == 0 && cmd == NULL && err == NULL);
		} else if (r == TERN_PARSE_ERROR_RECOVERABLE) {
			CHECK(!in_body && cmd == NULL && err != NULL);
			CHECK(err[0] == '5' && strlen(err) > 10);
			mix_str(&s, err);
		} else if (in_body) {
			CHECK(cmd == NULL && lmtp_parser_mode(p) == LMTP_MODE_COMMAND);
			on_body(&s, p);
		} else {
			CHECK(cmd != NULL && err == NULL && consumed > 0);
			on_command(&s, p, cmd);
			lmtp_cmd_free(&cmd);
			CHECK(cmd == NULL);
		}
	}
	lmtp_parser_free(&p);
	CHECK(p == NULL);
	return s.hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 0x100000001b3ull;
	seed |= 1;   /* never 0, which means "whole" */

	uint64_t whole = run_session(data, size, 0);
	uint64_t sliced = run_session(data, size, seed);
	CHECK(whole == sliced);
	return 0;
}
