/* One FETCH response: see fetch-write.h. The response is built in a scratch
 * evbuffer and moved to the output (chains move, bytes are not copied) only
 * when every item succeeded, so a failure never leaves half a line. */
#include "proto/imap/fetch-write.h"

#include <event2/buffer.h>
#include <gmime/gmime.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"
#include "proto/imap/header-filter.h"
#include "proto/imap/imap-date.h"
#include "proto/imap/preview.h"
#include "proto/imap/quote.h"
#include "proto/imap/session.h"
#include "store/mime.h"

struct imap_fetch_raw *imap_fetch_raw_new(char *data, size_t size, uint64_t offset,
					  uint64_t total)
{
	struct imap_fetch_raw *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		free(data);
		return NULL;
	}
	r->data = data;
	r->size = size;
	r->offset = offset;
	r->total = total;
	r->refs = 1;
	return r;
}

static void raw_release(struct imap_fetch_raw *r)
{
	if (--r->refs == 0) {
		free(r->data);
		free(r);
	}
}

void imap_fetch_raw_unref(struct imap_fetch_raw **raw)
{
	if (*raw != NULL)
		raw_release(*raw);
	*raw = NULL;
}

static void raw_ref_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	raw_release(arg);
}

static void free_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	free(arg);
}

static bool att_is_section(enum imap_fetch_type t)
{
	return t == IMAP_FETCH_RFC822 || t == IMAP_FETCH_RFC822_HEADER ||
	       t == IMAP_FETCH_RFC822_TEXT || t == IMAP_FETCH_BODY_SECTION ||
	       t == IMAP_FETCH_BINARY || t == IMAP_FETCH_BINARY_SIZE;
}

void imap_fetch_needs(const struct imap_fetch_request *req, struct imap_fetch_needs *needs_r)
{
	struct imap_fetch_needs n = { 0 };
	size_t sections = 0;
	bool preview = false;
	const struct imap_fetch_att *only = NULL;

	for (size_t i = 0; i < req->count; i++) {
		const struct imap_fetch_att *a = &req->atts[i];
		if (a->type == IMAP_FETCH_ENVELOPE || a->type == IMAP_FETCH_BODY ||
		    a->type == IMAP_FETCH_BODYSTRUCTURE)
			n.cache = true;
		if (a->type == IMAP_FETCH_EMAILID || a->type == IMAP_FETCH_SAVEDATE)
			n.ids = true;
		if (att_is_section(a->type)) {
			n.raw = true;
			sections++;
			only = a;
		}
		if (a->type == IMAP_FETCH_PREVIEW)
			n.raw = preview = true;
	}
	if (preview && sections == 0) {
		/* PREVIEW alone: the message's start is enough */
		n.range_only = true;
		n.range_offset = 0;
		n.range_length = IMAP_PREVIEW_READ_MAX;
	} else if (!preview && sections == 1 && only->partial && only->section.part_count == 0 &&
		   ((only->type == IMAP_FETCH_BODY_SECTION &&
		     only->section.spec == IMAP_SECTION_ALL) ||
		    only->type == IMAP_FETCH_BINARY)) {
		n.range_only = true;
		n.range_offset = only->partial_offset;
		n.range_length = only->partial_length;
	}
	*needs_r = n;
}

/* ---- section bytes ---- */

/* A section's bytes: either [start, end) of the message, served from the raw
 * data by reference, or a buffer of its own (filtered or decoded). */
struct section_data {
	bool missing;           /* no such part: NIL, as Dovecot and Cyrus send */
	uint64_t start, end;
	bool use_owned;
	char *owned;
	size_t owned_len;
};

/* Dotted part numbers: at most TERN_FETCH_PART_DEPTH_MAX levels of 10
 * digits and a dot (a buffer shape following from that limit). */
#define PART_STRING_MAX 720
_Static_assert(PART_STRING_MAX >= TERN_FETCH_PART_DEPTH_MAX * 11,
	       "a part string of the deepest section fits");

/* Offset just past the blank line ending the top-level header; the whole
 * message when there is none. */
static size_t header_end(const char *d, size_t size)
{
	for (size_t p = 0; p < size;) {
		const char *lf = memchr(d + p, '\n', size - p);
		if (lf == NULL)
			break;
		size_t e = (size_t)(lf - d) + 1;
		if (e - p == 1 || (e - p == 2 && d[p] == '\r'))
			return e;
		p = e;
	}
	return size;
}

static void part_string(const struct imap_fetch_section *sec, char *buf, size_t cap)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sec->part_count && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%" PRIu32, i > 0 ? "." : "",
				      sec->parts[i]);
}

/* Message range of (parts, kind); kind "" / HEADER / TEXT / MIME. 1 found,
 * 0 no such part (an empty string is sent, as other servers do). */
static int locate(const struct imap_fetch_raw *raw, const struct imap_fetch_section *sec,
		  const char *kind, uint64_t *start_r, uint64_t *end_r)
{
	if (sec->part_count == 0 && *kind == '\0') {
		*start_r = 0;
		*end_r = raw->total;
		return 1;
	}
	if (raw->offset != 0 || raw->size != raw->total)
		return -1;
	if (sec->part_count == 0 && strcmp(kind, "MIME") != 0) {
		size_t h = header_end(raw->data, raw->size);
		bool header = strcmp(kind, "HEADER") == 0;
		*start_r = header ? 0 : h;
		*end_r = header ? h : raw->size;
		return 1;
	}
	char part[PART_STRING_MAX];
	size_t off, len;
	part_string(sec, part, sizeof(part));
	int r = mime_section_range(raw->data, raw->size, part, kind, &off, &len);
	if (r <= 0)
		return r;
	*start_r = off;
	*end_r = off + len;
	return 1;
}

static const char *spec_kind(enum imap_section_spec spec)
{
	switch (spec) {
	case IMAP_SECTION_HEADER:
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT:
		return "HEADER";
	case IMAP_SECTION_TEXT:
		return "TEXT";
	case IMAP_SECTION_MIME:
		return "MIME";
	default:
		return "";
	}
}

static int body_section(const struct imap_fetch_raw *raw, const struct imap_fetch_section *sec,
			struct section_data *sd)
{
	int r = locate(raw, sec, spec_kind(sec->spec), &sd->start, &sd->end);
	if (r < 0)
		return IMAP_FETCH_WRITE_NO_DATA;
	if (r == 0) {
		sd->missing = true;
		return 0;
	}
	if (sec->spec != IMAP_SECTION_HEADER_FIELDS && sec->spec != IMAP_SECTION_HEADER_FIELDS_NOT)
		return 0;
	if (imap_header_filter(raw->data + sd->start, (size_t)(sd->end - sd->start), sec->fields,
			       sec->field_count, sec->spec == IMAP_SECTION_HEADER_FIELDS,
			       &sd->owned, &sd->owned_len) < 0)
		return IMAP_FETCH_WRITE_NOMEM;
	sd->use_owned = true;
	return 0;
}

/* BINARY (RFC 3516): the part's body with its Content-Transfer-Encoding
 * undone. BINARY[] is the whole message, header and body, as sent
 * (section-binary names parts only; the top level has nothing to decode). */
static int binary_section(const struct imap_fetch_raw *raw, const struct imap_fetch_section *sec,
			  struct section_data *sd)
{
	uint64_t hs, he, bs, be;
	if (sec->part_count == 0)
		return locate(raw, sec, "", &sd->start, &sd->end) < 0 ? IMAP_FETCH_WRITE_NO_DATA : 0;
	int r = locate(raw, sec, "MIME", &hs, &he);
	if (r > 0)
		r = locate(raw, sec, "", &bs, &be);
	if (r < 0)
		return IMAP_FETCH_WRITE_NO_DATA;
	if (r == 0) {
		sd->missing = true;
		return 0;
	}
	char *cte = mime_header_value(raw->data + hs, (size_t)(he - hs), "Content-Transfer-Encoding");
	GMimeContentEncoding enc = cte != NULL ? g_mime_content_encoding_from_string(g_strstrip(cte))
					       : GMIME_CONTENT_ENCODING_DEFAULT;
	bool known = cte == NULL || enc != GMIME_CONTENT_ENCODING_DEFAULT;
	free(cte);
	if (!known)
		return IMAP_FETCH_WRITE_UNKNOWN_CTE;
	const char *in = raw->data + bs;
	size_t inlen = (size_t)(be - bs);
	if (enc != GMIME_CONTENT_ENCODING_BASE64 && enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
	    enc != GMIME_CONTENT_ENCODING_UUENCODE) {
		sd->start = bs;
		sd->end = be;
		return 0;
	}
	GMimeEncoding state;
	g_mime_encoding_init_decode(&state, enc);
	char *out = malloc(g_mime_encoding_outlen(&state, inlen) + 1);
	if (out == NULL)
		return IMAP_FETCH_WRITE_NOMEM;
	sd->owned = out;
	sd->owned_len = g_mime_encoding_flush(&state, in, inlen, out);
	sd->use_owned = true;
	return 0;
}

static int section_for(const struct imap_fetch_att *a, const struct imap_fetch_raw *raw,
		       struct section_data *sd)
{
	struct imap_fetch_section top = { 0 };

	switch (a->type) {
	case IMAP_FETCH_RFC822:
		top.spec = IMAP_SECTION_ALL;
		return body_section(raw, &top, sd);
	case IMAP_FETCH_RFC822_HEADER:
		top.spec = IMAP_SECTION_HEADER;
		return body_section(raw, &top, sd);
	case IMAP_FETCH_RFC822_TEXT:
		top.spec = IMAP_SECTION_TEXT;
		return body_section(raw, &top, sd);
	case IMAP_FETCH_BODY_SECTION:
		return body_section(raw, &a->section, sd);
	default:
		return binary_section(raw, &a->section, sd);
	}
}

/* Writes "{n}" CRLF and the section bytes (after the partial clip). */
static int write_section(struct evbuffer *out, const struct imap_fetch_att *a,
			 struct imap_fetch_raw *raw, struct section_data *sd)
{
	uint64_t len = sd->use_owned ? sd->owned_len : sd->end - sd->start;
	uint64_t from = 0, to = len;

	if (sd->missing)
		return evbuffer_add(out, " NIL", 4) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
	if (a->type == IMAP_FETCH_BINARY_SIZE)
		return evbuffer_add_printf(out, " %" PRIu64, len) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
	if (a->partial) {
		from = a->partial_offset < len ? a->partial_offset : len;
		to = len - from < a->partial_length ? len : from + a->partial_length;
	}
	if (sd->use_owned) {
		bool nul = a->type == IMAP_FETCH_BINARY && memchr(sd->owned + from, '\0', to - from);
		if (evbuffer_add_printf(out, " %s{%" PRIu64 "}\r\n", nul ? "~" : "", to - from) < 0)
			return IMAP_FETCH_WRITE_NOMEM;
		if (to == from)
			return 0;
		char *owned = sd->owned;
		if (from == 0 && to == len) {
			sd->owned = NULL;  /* the buffer now owns it */
			if (evbuffer_add_reference(out, owned, to, free_cleanup, owned) < 0) {
				free(owned);
				return IMAP_FETCH_WRITE_NOMEM;
			}
			return 0;
		}
		return evbuffer_add(out, owned + from, to - from) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
	}
	uint64_t start = sd->start + from, end = sd->start + to;
	if (end > start && (start < raw->offset || end > raw->offset + raw->size))
		return IMAP_FETCH_WRITE_NO_DATA;
	bool nul = a->type == IMAP_FETCH_BINARY &&
		   memchr(raw->data + (start - raw->offset), '\0', end - start) != NULL;
	if (evbuffer_add_printf(out, " %s{%" PRIu64 "}\r\n", nul ? "~" : "", end - start) < 0)
		return IMAP_FETCH_WRITE_NOMEM;
	if (end == start)
		return 0;
	raw->refs++;
	if (evbuffer_add_reference(out, raw->data + (start - raw->offset), end - start,
				   raw_ref_cleanup, raw) < 0) {
		raw->refs--;
		return IMAP_FETCH_WRITE_NOMEM;
	}
	return 0;
}

static int write_body_att(struct evbuffer *out, const struct imap_fetch_att *a,
			  struct imap_fetch_raw *raw)
{
	struct section_data sd = { 0 };
	if (raw == NULL)
		return IMAP_FETCH_WRITE_NO_DATA;
	int r = section_for(a, raw, &sd);
	if (r == 0)
		r = write_section(out, a, raw, &sd);
	free(sd.owned);
	return r;
}

int imap_fetch_section_data(const struct imap_fetch_att *a, struct imap_fetch_raw *raw,
			    char **data_r, size_t *len_r)
{
	struct section_data sd = { 0 };
	int r = section_for(a, raw, &sd);
	if (r < 0 || sd.missing) {
		free(sd.owned);
		return r;
	}
	if (!sd.use_owned && (sd.start < raw->offset || sd.end > raw->offset + raw->size))
		return IMAP_FETCH_WRITE_NO_DATA;
	const char *from = sd.use_owned ? sd.owned : raw->data + (sd.start - raw->offset);
	size_t len = sd.use_owned ? sd.owned_len : (size_t)(sd.end - sd.start);
	char *copy = malloc(len + 1);
	if (copy != NULL) {
		memcpy(copy, from, len);
		copy[len] = '\0';
	}
	free(sd.owned);
	if (copy == NULL)
		return IMAP_FETCH_WRITE_NOMEM;
	*data_r = copy;
	*len_r = len;
	return 1;
}

/* PREVIEW (RFC 8970): an nstring, never NIL here (made at once, LAZY or
 * not); "" for a message without text. The whole message, or its first
 * IMAP_PREVIEW_READ_MAX bytes at least. */
static int write_preview(struct evbuffer *out, const struct imap_fetch_msg *m)
{
	const struct imap_fetch_raw *raw = m->raw;
	char *preview = NULL;
	if (raw == NULL || raw->offset != 0 ||
	    (raw->size != raw->total && raw->size < IMAP_PREVIEW_READ_MAX))
		return IMAP_FETCH_WRITE_NO_DATA;
	if (imap_preview_text(raw->data, raw->size, &preview) < 0)
		return IMAP_FETCH_WRITE_NOMEM;
	int r = evbuffer_add(out, " ", 1) < 0 ||
			imap_write_nstring(out, preview, strlen(preview),
					   m->utf8 ? IMAP_WRITE_UTF8 : 0) < 0
		? IMAP_FETCH_WRITE_NOMEM : 0;
	free(preview);
	return r;
}

/* ---- the response ---- */

/* A response up to this long without message data is copied, not moved. */
#define FETCH_COPY_MAX 4096

/* prefix then v in decimal: the per-message items of a whole-folder FETCH,
 * without a printf each. */
static int add_number(struct evbuffer *out, const char *prefix, size_t prefix_len, uint64_t v)
{
	char buf[48];
	char *e = buf + sizeof(buf), *p = e;
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	p -= prefix_len;
	memcpy(p, prefix, prefix_len);
	return evbuffer_add(out, p, (size_t)(e - p)) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
}

static int write_att(struct evbuffer *out, const struct imap_fetch_att *a,
		     const struct imap_fetch_msg *m)
{
	const struct store_msg *meta = m->meta;
	const struct store_msg_cache *c = m->cache;
	char date[IMAP_DATETIME_SIZE];

	if (evbuffer_add(out, a->response_name, strlen(a->response_name)) < 0)
		return IMAP_FETCH_WRITE_NOMEM;
	switch (a->type) {
	case IMAP_FETCH_FLAGS:
		if (evbuffer_add(out, " ", 1) < 0 ||
		    imap_flags_write(out, meta->flags | (m->recent ? IMAP_FLAG_RECENT : 0),
				     meta->keywords) < 0)
			return IMAP_FETCH_WRITE_NOMEM;
		return 0;
	case IMAP_FETCH_INTERNALDATE:
		if (imap_datetime_format(meta->internal_date, meta->internal_tz, date) < 0 &&
		    imap_datetime_format(meta->internal_date, 0, date) < 0)
			snprintf(date, sizeof(date), "01-Jan-1970 00:00:00 +0000");
		return evbuffer_add_printf(out, " \"%s\"", date) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
	case IMAP_FETCH_RFC822_SIZE:
		return add_number(out, " ", 1, meta->size);
	case IMAP_FETCH_UID:
		return add_number(out, " ", 1, meta->uid);
	case IMAP_FETCH_MODSEQ:
		if (add_number(out, " (", 2, meta->modseq) < 0)
			return IMAP_FETCH_WRITE_NOMEM;
		return evbuffer_add(out, ")", 1) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
	case IMAP_FETCH_ENVELOPE:
	case IMAP_FETCH_BODY:
	case IMAP_FETCH_BODYSTRUCTURE: {
		if (c == NULL)
			return IMAP_FETCH_WRITE_NO_DATA;
		const char *v = a->type == IMAP_FETCH_ENVELOPE ? c->envelope
				: a->type == IMAP_FETCH_BODY ? c->body : c->bodystructure;
		return evbuffer_add_printf(out, " %s", v != NULL ? v : "NIL") < 0
			       ? IMAP_FETCH_WRITE_NOMEM : 0;
	}
	case IMAP_FETCH_PREVIEW:
		return write_preview(out, m);
	case IMAP_FETCH_EMAILID:
		/* RFC 8474 §5.1: "EMAILID" SP "(" objectid ")" */
		if (m->ids == NULL)
			return IMAP_FETCH_WRITE_NO_DATA;
		if (m->ids->emailid[0] == '\0')
			return IMAP_FETCH_WRITE_NO_DATA; /* every stored message has one */
		return evbuffer_add_printf(out, " (%s)", m->ids->emailid) < 0
			       ? IMAP_FETCH_WRITE_NOMEM : 0;
	case IMAP_FETCH_THREADID:
		/* RFC 8474 §5.2: a server that does not compute threads says NIL */
		return evbuffer_add(out, " NIL", 4) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
	case IMAP_FETCH_SAVEDATE:
		/* RFC 8514: "SAVEDATE" SP (date-time / nil), shown in UTC (the
		 * store keeps the instant, not a zone) */
		if (m->ids == NULL)
			return IMAP_FETCH_WRITE_NO_DATA;
		if (imap_datetime_format(m->ids->save_date, 0, date) < 0)
			return evbuffer_add(out, " NIL", 4) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
		return evbuffer_add_printf(out, " \"%s\"", date) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
	default:
		return write_body_att(out, a, m->raw);
	}
}

static bool requested(const struct imap_fetch_request *req, enum imap_fetch_type t)
{
	for (size_t i = 0; i < req->count; i++)
		if (req->atts[i].type == t)
			return true;
	return false;
}

static int write_all(struct evbuffer *tmp, const struct imap_fetch_request *req,
		     const struct imap_fetch_msg *m)
{
	int r = 0;
	if (add_number(tmp, "* ", 2, m->seq) < 0 || evbuffer_add(tmp, " FETCH (", 8) < 0)
		return IMAP_FETCH_WRITE_NOMEM;
	for (size_t i = 0; i < req->count && r == 0; i++) {
		if (i > 0 && evbuffer_add(tmp, " ", 1) < 0)
			return IMAP_FETCH_WRITE_NOMEM;
		r = write_att(tmp, &req->atts[i], m);
	}
	if (r != 0)
		return r;
	if (m->add_flags && !requested(req, IMAP_FETCH_FLAGS) &&
	    (evbuffer_add(tmp, " FLAGS ", 7) < 0 ||
	     imap_flags_write(tmp, m->meta->flags | (m->recent ? IMAP_FLAG_RECENT : 0),
			      m->meta->keywords) < 0))
		return IMAP_FETCH_WRITE_NOMEM;
	if (m->add_modseq && !requested(req, IMAP_FETCH_MODSEQ) &&
	    evbuffer_add_printf(tmp, " MODSEQ (%" PRIu64 ")", m->meta->modseq) < 0)
		return IMAP_FETCH_WRITE_NOMEM;
	return evbuffer_add(tmp, ")\r\n", 3) < 0 ? IMAP_FETCH_WRITE_NOMEM : 0;
}

int imap_fetch_write(struct evbuffer *out, const struct imap_fetch_request *req,
		     const struct imap_fetch_msg *m)
{
	struct evbuffer *tmp = evbuffer_new();
	if (tmp == NULL)
		return IMAP_FETCH_WRITE_NOMEM;
	int r = write_all(tmp, req, m);
	/* Without message data the response is a short line: copied, it joins
	 * the output's last chain; moved, every message would add a chain of
	 * its own (a kilobyte each, and one iovec each at write time). */
	size_t len = evbuffer_get_length(tmp);
	if (r == 0 && m->raw == NULL && len <= FETCH_COPY_MAX) {
		unsigned char *line = evbuffer_pullup(tmp, -1);
		if (line == NULL || evbuffer_add(out, line, len) < 0)
			r = IMAP_FETCH_WRITE_NOMEM;
	} else if (r == 0 && evbuffer_add_buffer(out, tmp) < 0)
		r = IMAP_FETCH_WRITE_NOMEM;
	evbuffer_free(tmp);
	return r;
}
