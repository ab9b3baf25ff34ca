/* libFuzzer target for a whole LMTP session: parser, command handlers,
 * recipient look-ups in the directory, DATA and BDAT through the delivery
 * pipeline (journal, fsync, the users' stores) and the per-recipient
 * replies, on a real in-process server (session-harness.c) reached over a
 * socketpair.
 *
 * Input: byte 0 picks a prefix the harness sends first (low 2 bits:
 * 0 none, 1 LHLO, 2 LHLO MAIL RCPT alice, 3 the same and RCPT bob); the
 * rest is sent as the client's bytes, then a HELP of the harness (see
 * SENTINEL) and, once it is answered, the client half-closes and reads
 * until the server closes.
 *
 * Checked: the greeting is "220 "; every line is "NNN " or "NNN-" with NNN
 * in 200..599, without NUL or a stray CR; a "NNN-" line is followed by one
 * of the same code; nothing follows a 221 or 421 line; the server closes and
 * frees the connection in time (a hang is a finding); after every input a
 * well-behaved client can still deliver to alice. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/lmtp/session.h"
#include "session-harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* After the input the harness sends HELP and half-closes only once it is
 * answered (214): the server drops a connection whose client hung up without
 * processing its pending input, so an early EOF would cut every session
 * short at its first delivery. Inside DATA or BDAT the HELP is message text:
 * then a silence of FZ_QUIET_MS ends the session. */
#define SENTINEL "HELP\r\n"
#define FZ_QUIET_MS 25

#define LHLO "LHLO fuzz.example.org\r\n"
#define MAIL_RCPT1 "MAIL FROM:<fuzz@example.org>\r\nRCPT TO:<" FZ_USER1 "@example.org>\r\n"

static const char *const prefixes[] = {
	"",
	LHLO,
	LHLO MAIL_RCPT1,
	LHLO MAIL_RCPT1 "RCPT TO:<" FZ_USER2 "@example.org>\r\n",
};

static bool digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static void check_output(struct fz_session *s)
{
	const uint8_t *p = s->out;
	size_t pos = 0;
	bool closed = false;        /* a 221 or 421 was sent */
	char continued[4] = "";     /* the code of a "NNN-" line before */
	for (unsigned n = 0; pos < s->out_len; n++) {
		const uint8_t *lf = memchr(p + pos, '\n', s->out_len - pos);
		if (lf == NULL)
			break;   /* cut short when the server saw the client's EOF */
		size_t eol = (size_t)(lf - p);
		if (closed)
			fz_fail(s, "line at offset %zu follows a 221 or 421", pos);
		if (eol - pos < 5 || p[eol - 1] != '\r' || p[pos] < '2' || p[pos] > '5' ||
		    !digit(p[pos + 1]) || !digit(p[pos + 2]) || (p[pos + 3] != ' ' && p[pos + 3] != '-'))
			fz_fail(s, "line at offset %zu is not an SMTP reply line", pos);
		for (size_t i = pos; i + 1 < eol; i++)
			if (p[i] == '\0' || p[i] == '\r')
				fz_fail(s, "line at offset %zu has a NUL or a CR", pos);
		if (n == 0 && memcmp(p + pos, "220 ", 4) != 0)
			fz_fail(s, "the greeting is not a 220 line");
		if (continued[0] != '\0' && memcmp(p + pos, continued, 3) != 0)
			fz_fail(s, "line at offset %zu continues a %s reply with another code", pos,
				continued);
		if (p[pos + 3] == '-') {
			memcpy(continued, p + pos, 3);
			continued[3] = '\0';
		} else {
			continued[0] = '\0';
			closed = memcmp(p + pos, "221", 3) == 0 || memcmp(p + pos, "421", 3) == 0;
		}
		pos = eol + 1;
	}
}

static bool sentinel_answered(struct fz_session *s, void *arg)
{
	(void)arg;
	return fz_out_find(s, 0, "\r\n214 ") != SIZE_MAX;
}

static bool has_221(struct fz_session *s, void *arg)
{
	(void)arg;
	return fz_out_find(s, 0, "\r\n221 ") != SIZE_MAX;
}

/* Whatever the input did, an MTA that behaves still gets its mail stored. */
static void probe(void)
{
	static const char script[] = "LHLO probe.example.org\r\n"
				     "MAIL FROM:<probe@example.org>\r\n"
				     "RCPT TO:<" FZ_USER1 "@example.org>\r\n"
				     "DATA\r\n"
				     "Subject: probe\r\n\r\nprobe\r\n.\r\n"
				     "QUIT\r\n";
	struct fz_session s;
	fz_open(&s, &lmtp_proto, "lmtp", "127.0.0.2");
	s.input = (const uint8_t *)script;
	s.input_len = strlen(script);
	fz_send(&s, script, strlen(script));
	(void)fz_wait(&s, has_221, NULL, 3000);
	fz_finish(&s);
	size_t at = fz_out_find(&s, 0, "\r\n250 2.0.0 <" FZ_USER1 "@example.org> ");
	if (at == SIZE_MAX || fz_out_find(&s, at, " Saved\r\n") == SIZE_MAX || !has_221(&s, NULL))
		fz_fail(&s, "after the input, a well-behaved client cannot deliver");
	fz_close(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 64 * 1024)
		return 0;
	fz_server_start();
	const char *prefix = prefixes[data[0] & 3];
	size_t plen = strlen(prefix), len = plen + size - 1;
	uint8_t *in = malloc(len + 1);
	if (in == NULL)
		return 0;
	memcpy(in, prefix, plen);
	memcpy(in + plen, data + 1, size - 1);

	struct fz_session s;
	fz_open(&s, &lmtp_proto, "lmtp", "127.0.0.1");
	s.input = in;
	s.input_len = len;
	fz_send(&s, in, len);
	if (len > 0 && in[len - 1] != '\n')
		fz_send(&s, "\r\n", 2);
	fz_send(&s, SENTINEL, strlen(SENTINEL));
	(void)fz_wait(&s, sentinel_answered, NULL, FZ_QUIET_MS);
	fz_finish(&s);
	check_output(&s);
	fz_close(&s);
	free(in);

	probe();
	fz_stores_tidy();
	return 0;
}
