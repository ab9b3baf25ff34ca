/* libFuzzer target for the POP3 parser and the pure helpers around it. The
 * input is played as a session (AUTH PLAIN without a response switches the
 * parser to a raw line; SASL responses and initial responses are decoded),
 * fed whole and then in pseudo-random slices; the two transcripts must match.
 * The input is also treated as a message for the RETR/TOP helpers, whose
 * offsets must stay inside it and whose stuffing must be reversible. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/auth.h"
#include "proto/pop3/message.h"
#include "proto/pop3/parser.h"

#define FUZZ_LINE_MAX 120

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct transcript {
	uint64_t hash;   /* FNV-1a over verdicts, commands, decoded SASL */
	uint64_t rng;    /* slice sizes; 0 = all at once */
};

static void mix(struct transcript *t, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		t->hash = (t->hash ^ b[i]) * 0x100000001b3ull;
}

static size_t slice(struct transcript *t, size_t left)
{
	if (t->rng == 0)
		return left;
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	size_t n = 1 + (t->rng >> 20) % ((t->rng & 15) == 0 ? 300 : 6);
	return n < left ? n : left;
}

static void sasl(struct transcript *t, const char *b64)
{
	char *user = NULL, *pass = NULL;
	int r = auth_sasl_plain_decode(b64, &user, &pass);
	mix(t, &r, sizeof(r));
	if (r == 0) {
		CHECK(user[0] != '\0' && pass[0] != '\0');
		mix(t, user, strlen(user) + 1);
		mix(t, pass, strlen(pass) + 1);
	} else {
		CHECK(user == NULL && pass == NULL);
	}
	free(user);
	free(pass);
}

static void on_command(struct transcript *t, struct pop3_parser *p, const struct pop3_cmd *cmd)
{
	CHECK(cmd->argc <= POP3_MAX_ARGS);
	mix(t, &cmd->type, sizeof(cmd->type));
	for (size_t i = 0; i < cmd->argc; i++) {
		size_t n = strlen(cmd->args[i]);
		CHECK(n < FUZZ_LINE_MAX && memchr(cmd->args[i], '\n', n) == NULL);
		mix(t, cmd->args[i], n + 1);
	}
	if (cmd->type == POP3_CMD_CONTINUATION) {
		sasl(t, cmd->args[0]);
	} else if (cmd->type == POP3_CMD_AUTH && cmd->argc == 1 &&
		   strcasecmp(cmd->args[0], "PLAIN") == 0) {
		pop3_parser_expect_continuation(p);
	} else if (cmd->type == POP3_CMD_AUTH && cmd->argc == 2) {
		sasl(t, cmd->args[1]);
	}
}

static uint64_t play(const uint8_t *data, size_t size, uint64_t seed)
{
	struct transcript t = {.hash = 0xcbf29ce484222325ull, .rng = seed};
	struct pop3_parser_limits lim = {.max_line_length = FUZZ_LINE_MAX};
	struct pop3_parser *p = pop3_parser_new(&lim);
	CHECK(p != NULL);
	size_t off = 0;
	while (off < size) {
		size_t n = slice(&t, size - off);
		size_t used = 0;
		while (used < n) {
			size_t consumed = 0;
			struct pop3_cmd *cmd = NULL;
			const char *err = NULL;
			enum tern_parse r = pop3_parser_feed(p, data + off + used, n - used,
							     &consumed, &cmd, &err);
			CHECK(consumed <= n - used);
			/* NEED_MORE takes everything; a verdict ends at an LF */
			CHECK(r != TERN_PARSE_NEED_MORE || consumed == n - used);
			CHECK(r == TERN_PARSE_NEED_MORE || r == TERN_PARSE_ERROR_FATAL ||
			      data[off + used + consumed - 1] == '\n');
			used += consumed;
			if (r != TERN_PARSE_NEED_MORE)   /* how many depends on the slicing */
				mix(&t, &r, sizeof(r));
			if (r == TERN_PARSE_OK) {
				CHECK(cmd != NULL);
				on_command(&t, p, cmd);
				pop3_cmd_free(&cmd);
			} else if (r != TERN_PARSE_NEED_MORE) {
				CHECK(err != NULL && strncmp(err, "-ERR", 4) == 0);
				mix(&t, err, strlen(err));
				if (r == TERN_PARSE_ERROR_FATAL)
					goto out;
			}
		}
		off += n;
	}
out:
	pop3_parser_free(&p);
	return t.hash;
}

/* Stuffing then unstuffing gives the message back; TOP stays inside it. */
static void check_message(const uint8_t *data, size_t size)
{
	const char *m = (const char *)data;
	char *out = malloc(size * 2 + 1);
	CHECK(out != NULL);
	size_t o = 0, pos = 0, scan = 0, dot;
	while ((dot = pop3_next_dot_line(m, size, scan)) < size) {
		CHECK(dot >= scan && m[dot] == '.' && (dot == 0 || m[dot - 1] == '\n'));
		memcpy(out + o, m + pos, dot - pos);
		o += dot - pos;
		out[o++] = '.';
		pos = dot;
		scan = dot + 1;
	}
	memcpy(out + o, m + pos, size - pos);
	o += size - pos;
	/* unstuff: drop the first '.' of every line starting with one */
	size_t u = 0;
	for (size_t i = 0; i < o; i++) {
		if (out[i] == '.' && (i == 0 || out[i - 1] == '\n')) {
			CHECK(i + 1 < o && out[i + 1] == '.');
			i++;
		}
		CHECK(u < size && (uint8_t)out[i] == data[u]);
		u++;
	}
	CHECK(u == size);
	free(out);
	uint64_t lines = size > 0 ? data[0] : 0;
	size_t top = pop3_top_length(m, size, lines);
	CHECK(top <= size);
	CHECK(pop3_top_length(m, size, lines + 1) >= top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t whole = play(data, size, 0);
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ size;
	CHECK(play(data, size, seed) == whole);
	check_message(data, size);
	return 0;
}
