/* libFuzzer target for a whole IMAP session: parser, command handlers, the
 * store, APPEND through the delivery pipeline, IDLE and COMPRESS, on a real
 * in-process server (session-harness.c) reached over a socketpair.
 *
 * Input: byte 0 picks a prefix the harness sends first, so that most inputs
 * reach the authenticated and selected states (low 2 bits: 0 none,
 * 1 LOGIN alice, 2 AUTHENTICATE PLAIN alice with SASL-IR, 3 LOGIN alice and
 * SELECT INBOX); the rest is sent as the client's bytes. When a line
 * "tag COMPRESS ..." is answered "tag OK DEFLATE active", what follows is
 * sent deflated, as a real client would. Then come two NOOPs of the
 * harness (see SENTINEL) and, once they are answered, the client
 * half-closes and reads until the server closes.
 *
 * Checked: a greeting comes; every response (literals skipped by their
 * counts) is untagged, a continuation or "tag OK|NO|BAD", with no NUL, CR or
 * LF outside literals; after "* BYE" at most one tagged line and nothing
 * else; the server closes the connection and frees it in time (a hang is a
 * finding); after every input a well-behaved client can still log in and
 * select INBOX; every few inputs the stores pass store_integrity_check. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/imap/session.h"
#include "session-harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* After the input the harness sends two NOOPs and half-closes only once the
 * second is answered: the server drops a connection whose client hung up
 * without processing its pending input, so an early EOF would cut every
 * session short at its first asynchronous command (LOGIN, APPEND). The
 * first NOOP is there to be eaten by IDLE or an AUTHENTICATE exchange. A
 * session left inside a literal eats both: then a silence of FZ_QUIET_MS
 * ends it. */
#define SENTINEL_TAG "ZZ9"
#define SENTINEL "ZZ8 NOOP\r\n" SENTINEL_TAG " NOOP\r\n"
#define FZ_QUIET_MS 25

static const char *const prefixes[] = {
	"",
	"a0 LOGIN " FZ_USER1 " " FZ_PASS1 "\r\n",
	/* base64("\0alice\0alice-pw") */
	"a0 AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlLXB3\r\n",
	"a0 LOGIN " FZ_USER1 " " FZ_PASS1 "\r\na1 SELECT INBOX\r\n",
};

/* Walks the server's output one response at a time (a line, with any
 * literals inside it skipped by their announced size) and checks each. */
struct scan {
	size_t pos;             /* start of the first response not yet checked */
	unsigned responses;
	bool bye;               /* "* BYE" seen */
	unsigned after_bye;     /* responses since */
	const char *want_tag;   /* a COMPRESS whose answer is awaited, or NULL */
	bool want_done;         /* want_tag's command was answered */
	bool sentinel;          /* the harness's last command was answered */
};

/* If the text [pos, eol) (eol at the LF) ends with a literal's "{N}\r"
 * (or "~{N}\r", literal8), N. */
static bool literal_at(const uint8_t *p, size_t pos, size_t eol, uint64_t *n_r)
{
	if (eol < pos + 4 || p[eol - 1] != '\r' || p[eol - 2] != '}')
		return false;
	size_t i = eol - 2, digits = 0;
	uint64_t n = 0, mul = 1;
	while (i > pos && p[i - 1] >= '0' && p[i - 1] <= '9' && digits < 19) {
		n += (uint64_t)(p[i - 1] - '0') * mul;
		mul *= 10;
		digits++;
		i--;
	}
	if (digits == 0 || i == pos || p[i - 1] != '{')
		return false;
	*n_r = n;
	return true;
}

/* End of the response starting at pos (after its final LF), or 0 if it is
 * not complete yet. */
static size_t response_end(const uint8_t *p, size_t len, size_t pos)
{
	while (pos < len) {
		const uint8_t *lf = memchr(p + pos, '\n', len - pos);
		if (lf == NULL)
			return 0;
		size_t eol = (size_t)(lf - p);
		uint64_t n;
		if (!literal_at(p, pos, eol, &n))
			return eol + 1;
		if (n > len - (eol + 1))
			return 0;
		pos = eol + 1 + (size_t)n;
	}
	return 0;
}

/* Text outside literals: no NUL, and no CR or LF but the CRLFs ending a
 * line. [start, end) is one whole response. */
static bool text_clean(const uint8_t *p, size_t start, size_t end)
{
	size_t pos = start;
	for (;;) {
		size_t eol = (size_t)((const uint8_t *)memchr(p + pos, '\n', end - pos) - p);
		if (eol == pos || p[eol - 1] != '\r')
			return false;
		for (size_t i = pos; i + 1 < eol; i++)
			if (p[i] == '\0' || p[i] == '\r')
				return false;
		uint64_t n;
		if (eol + 1 == end || !literal_at(p, pos, eol, &n))
			return eol + 1 == end;
		pos = eol + 1 + (size_t)n;
	}
}

static bool is_tagged_reply(const uint8_t *p, size_t start, size_t end)
{
	size_t i = start;
	while (i < end && p[i] > 0x20 && p[i] < 0x7f)
		i++;
	if (i == start || i >= end || p[i] != ' ')
		return false;
	i++;
	static const char *const kinds[] = {"OK", "NO", "BAD"};
	for (size_t k = 0; k < 3; k++) {
		size_t n = strlen(kinds[k]);
		if (end - i >= n + 2 && memcmp(p + i, kinds[k], n) == 0 &&
		    (p[i + n] == ' ' || p[i + n] == '\r'))
			return true;
	}
	return false;
}

static bool starts_with(const uint8_t *p, size_t start, size_t end, const char *s)
{
	size_t n = strlen(s);
	return end - start >= n && memcmp(p + start, s, n) == 0;
}

static void check_response(struct fz_session *s, struct scan *sc, size_t start, size_t end)
{
	const uint8_t *p = s->out;
	if (sc->responses++ == 0 &&
	    !starts_with(p, start, end, "* OK [CAPABILITY IMAP4rev1 "))
		fz_fail(s, "the greeting is not '* OK [CAPABILITY IMAP4rev1 ...'");
	if (!text_clean(p, start, end))
		fz_fail(s, "response at offset %zu has NUL, CR or LF outside a literal", start);
	bool untagged = starts_with(p, start, end, "* ");
	bool tagged = !untagged && is_tagged_reply(p, start, end);
	if (!untagged && !tagged && !starts_with(p, start, end, "+ ") &&
	    !starts_with(p, start, end, "+\r\n"))
		fz_fail(s, "response at offset %zu is neither untagged, a continuation nor tagged",
			start);
	if (sc->bye) {
		if (++sc->after_bye > 1 || !tagged)
			fz_fail(s, "response at offset %zu follows '* BYE'", start);
	} else if (starts_with(p, start, end, "* BYE")) {
		sc->bye = true;
	}
	if (tagged && starts_with(p, start, end, SENTINEL_TAG " "))
		sc->sentinel = true;
	if (tagged && sc->want_tag != NULL) {
		size_t n = strlen(sc->want_tag);
		if (starts_with(p, start, end, sc->want_tag) && p[start + n] == ' ')
			sc->want_done = true;
	}
	/* RFC 4978: the output after this line is compressed. The line ends a
	 * response of its own, so a literal's content never matches here. */
	static const char deflate_ok[] = " OK DEFLATE active\r\n";
	const uint8_t *sp = tagged ? memchr(p + start, ' ', end - start) : NULL;
	if (sp != NULL && (size_t)(p + end - sp) == strlen(deflate_ok) &&
	    memcmp(sp, deflate_ok, strlen(deflate_ok)) == 0) {
		if (s->zin != NULL)
			fz_fail(s, "COMPRESS accepted a second time (offset %zu)", start);
		fz_compress(s, end);
	}
}

static void scan_output(struct fz_session *s, struct scan *sc)
{
	size_t end;
	while (sc->pos < s->out_len && (end = response_end(s->out, s->out_len, sc->pos)) != 0) {
		check_response(s, sc, sc->pos, end);
		sc->pos = end;
	}
}

/* The awaited tag has its answer, or COMPRESS switched the stream. */
static bool compress_answered(struct fz_session *s, void *arg)
{
	struct scan *sc = arg;
	scan_output(s, sc);
	return s->zin != NULL || sc->want_done;
}

/* Finds the next line (from pos) that reads "tag COMPRESS ...": its end
 * (after LF) and tag. */
static bool find_compress(const uint8_t *in, size_t len, size_t pos, size_t *end_r, char *tag,
			  size_t tag_size)
{
	while (pos < len) {
		const uint8_t *lf = memchr(in + pos, '\n', len - pos);
		size_t eol = lf != NULL ? (size_t)(lf - in) : len;
		const uint8_t *sp = memchr(in + pos, ' ', eol - pos);
		if (lf != NULL && sp != NULL && (size_t)(sp - (in + pos)) < tag_size &&
		    eol - (size_t)(sp + 1 - in) >= 9 &&
		    strncasecmp((const char *)sp + 1, "COMPRESS ", 9) == 0) {
			size_t n = (size_t)(sp - (in + pos));
			memcpy(tag, in + pos, n);
			tag[n] = '\0';
			*end_r = eol + 1;
			return true;
		}
		pos = eol + 1;
	}
	return false;
}

static void send_input(struct fz_session *s, struct scan *sc, const uint8_t *in, size_t len)
{
	size_t pos = 0, end;
	char tag[64];
	while (s->zout == NULL && !s->eof && find_compress(in, len, pos, &end, tag, sizeof(tag))) {
		fz_send(s, in + pos, end - pos);
		pos = end;
		/* Compressed bytes must not go before the answer (RFC 4978 §3).
		 * A line that was no command (a literal's text) gets no answer:
		 * a short silence says so. */
		sc->want_tag = tag;
		sc->want_done = false;
		(void)fz_wait(s, compress_answered, sc, FZ_QUIET_MS);
		sc->want_tag = NULL;
	}
	fz_send(s, in + pos, len - pos);
}

static bool sentinel_answered(struct fz_session *s, void *arg)
{
	struct scan *sc = arg;
	scan_output(s, sc);
	return sc->sentinel;
}

static bool has_line_p3(struct fz_session *s, void *arg)
{
	(void)arg;
	return fz_out_find(s, 0, "\r\np3 ") != SIZE_MAX;
}

/* Whatever the input did, a client that behaves is still served. */
static void probe(void)
{
	static const char script[] = "p1 LOGIN " FZ_USER1 " " FZ_PASS1 "\r\n"
				     "p2 SELECT INBOX\r\n"
				     "p3 LOGOUT\r\n";
	struct fz_session s;
	fz_open(&s, &imap_proto, "imap", "127.0.0.2");
	s.input = (const uint8_t *)script;
	s.input_len = strlen(script);
	fz_send(&s, script, strlen(script));
	(void)fz_wait(&s, has_line_p3, NULL, 3000);
	fz_finish(&s);
	if (fz_out_find(&s, 0, "\r\np1 OK") == SIZE_MAX ||
	    fz_out_find(&s, 0, "\r\np2 OK") == SIZE_MAX ||
	    fz_out_find(&s, 0, "\r\np3 OK") == SIZE_MAX)
		fz_fail(&s, "after the input, a well-behaved client is not served");
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
	struct scan sc = {0};
	fz_open(&s, &imap_proto, "imap", "127.0.0.1");
	s.input = in;
	s.input_len = len;
	send_input(&s, &sc, in, len);
	if (len > 0 && in[len - 1] != '\n')
		fz_send(&s, "\r\n", 2);
	fz_send(&s, SENTINEL, strlen(SENTINEL));
	(void)fz_wait(&s, sentinel_answered, &sc, FZ_QUIET_MS);
	fz_finish(&s);
	scan_output(&s, &sc);
	fz_close(&s);
	free(in);

	probe();
	fz_stores_tidy();
	return 0;
}
