/* SEARCH evaluation: see search-eval.h. A first pass uses three-valued logic
 * (true / false / unknown) over the metadata only; a message is read only when
 * that pass cannot decide, so "UNSEEN SUBJECT x" reads just the unseen ones. */
#include "proto/imap/search-eval.h"

#include <glib.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/imap/imap-date.h"
#include "store/address.h"
#include "store/mime.h"
#include "store/store.h"

enum tri { TRI_FALSE = 0, TRI_TRUE = 1, TRI_UNKNOWN = 2 };

/* A message's content, loaded once and decoded on first use. */
struct content {
	char *raw;
	size_t size;
	bool head_only;     /* only header keys: decode the header block alone */
	bool texts_done;
	char *headers_raw;  /* decoded "name: value\n" lines */
	char *body_raw;     /* decoded text of the text parts */
	char *headers;      /* the same, casefolded on first use */
	char *body;
	bool sent_done;
	int64_t sent_day;
	bool failed;        /* out of memory while decoding */
};

static int prepare_key(struct imap_search_key *k, uint32_t max_seq, uint32_t max_uid)
{
	if (k->set != NULL && !imap_seqset_is_saved(k->set) &&
	    imap_seqset_resolve(k->set, k->type == IMAP_SK_UIDSET ? max_uid : max_seq) < 0)
		return -1;
	for (size_t i = 0; i < k->child_count; i++)
		if (prepare_key(&k->children[i], max_seq, max_uid) < 0)
			return -1;
	return 0;
}

int imap_search_prepare(struct imap_search_program *prog, uint32_t max_seq, uint32_t max_uid)
{
	return prepare_key(prog->root, max_seq, max_uid);
}

static bool key_is_content(enum imap_search_key_type t)
{
	return t == IMAP_SK_HEADER || t == IMAP_SK_BODY || t == IMAP_SK_TEXT ||
	       t == IMAP_SK_SENTBEFORE || t == IMAP_SK_SENTON || t == IMAP_SK_SENTSINCE;
}

bool imap_search_needs_content(const struct imap_search_key *key)
{
	if (key_is_content(key->type))
		return true;
	for (size_t i = 0; i < key->child_count; i++)
		if (imap_search_needs_content(&key->children[i]))
			return true;
	return false;
}

/* Needs more than the header block. */
static bool needs_body(const struct imap_search_key *key)
{
	if (key->type == IMAP_SK_BODY || key->type == IMAP_SK_TEXT)
		return true;
	for (size_t i = 0; i < key->child_count; i++)
		if (needs_body(&key->children[i]))
			return true;
	return false;
}

/* Unicode case folding (g_free the result). Mail text is mostly ASCII, and
 * g_utf8_casefold costs a table look-up per character, so ASCII-only text
 * takes a plain byte loop. */
static char *fold(const char *s)
{
	size_t n = strlen(s);
	bool ascii = true;
	for (size_t i = 0; i < n && ascii; i++)
		ascii = (unsigned char)s[i] < 0x80;
	if (ascii) {
		char *r = g_malloc(n + 1);
		for (size_t i = 0; i <= n; i++)
			r[i] = g_ascii_tolower(s[i]);
		return r;
	}
	if (g_utf8_validate(s, (gssize)n, NULL))
		return g_utf8_casefold(s, (gssize)n);
	char *valid = g_utf8_make_valid(s, (gssize)n);
	char *r = g_utf8_casefold(valid, -1);
	g_free(valid);
	return r;
}

bool imap_search_contains(const char *haystack, const char *needle)
{
	if (*needle == '\0')
		return true;
	char *h = fold(haystack), *n = fold(needle);
	bool r = strstr(h, n) != NULL;
	g_free(h);
	g_free(n);
	return r;
}

static bool uid_saved(const struct imap_search_ctx *ctx, uint32_t uid)
{
	size_t lo = 0, hi = ctx->saved_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ctx->saved[mid] == uid)
			return true;
		if (ctx->saved[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static bool has_keyword(const char *keywords, const char *kw)
{
	size_t n = strlen(kw);
	for (const char *p = keywords; p != NULL && *p != '\0';) {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, " ");
		if (len == n && len > 0 && strncasecmp(p, kw, n) == 0)
			return true;
		p += len;
	}
	return false;
}

static bool has_flag(const struct imap_search_msg *m, const char *flag)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} sys[] = {
		{ "\\Seen", STORE_FLAG_SEEN },       { "\\Answered", STORE_FLAG_ANSWERED },
		{ "\\Flagged", STORE_FLAG_FLAGGED }, { "\\Deleted", STORE_FLAG_DELETED },
		{ "\\Draft", STORE_FLAG_DRAFT },
	};
	if (flag[0] != '\\')
		return has_keyword(m->keywords, flag);
	if (strcasecmp(flag, "\\Recent") == 0)
		return m->recent;
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if (strcasecmp(flag, sys[i].name) == 0)
			return (m->flags & sys[i].bit) != 0;
	return false;
}

/* RFC 3501 §6.4.4: dates compare "disregarding time and timezone", i.e. the
 * calendar day as seen in the date's own zone. */
static int64_t day_of(int64_t t, int32_t tz_min)
{
	int64_t local = t + (int64_t)tz_min * 60;
	return local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
}

static enum tri date_cmp(enum imap_search_key_type t, int64_t day, int64_t key_day)
{
	switch (t) {
	case IMAP_SK_BEFORE:
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SAVEDBEFORE:
		return day < key_day;
	case IMAP_SK_ON:
	case IMAP_SK_SENTON:
	case IMAP_SK_SAVEDON:
		return day == key_day;
	default:
		return day >= key_day;
	}
}

/* Length of the header block with its blank line, or size without one. */
static size_t head_length(const char *data, size_t size)
{
	const char *crlf = memmem(data, size, "\r\n\r\n", 4);
	const char *lf = memmem(data, size, "\n\n", 2);
	size_t a = crlf != NULL ? (size_t)(crlf - data) + 4 : size;
	size_t b = lf != NULL ? (size_t)(lf - data) + 2 : size;
	return a < b ? a : b;
}

/* True once data holds the whole header block (or the whole message). */
static bool head_complete(const char *data, size_t size, uint64_t total)
{
	return size >= total || head_length(data, size) < size ||
	       (size >= 2 && memcmp(data + size - 2, "\n\n", 2) == 0) ||
	       (size >= 4 && memcmp(data + size - 4, "\r\n\r\n", 4) == 0);
}

static void content_texts(struct content *c)
{
	if (c->texts_done)
		return;
	c->texts_done = true;
	size_t size = c->head_only ? head_length(c->raw, c->size) : c->size;
	if (mime_search_text(c->raw, size, &c->headers_raw, &c->body_raw) < 0)
		c->failed = true;
}

/* Casefolded headers or body; NULL after a failure. */
static const char *content_folded(struct content *c, bool body)
{
	content_texts(c);
	if (c->failed)
		return NULL;
	char **folded = body ? &c->body : &c->headers;
	const char *raw = body ? c->body_raw : c->headers_raw;
	if (*folded == NULL)
		*folded = fold(raw != NULL ? raw : "");
	return *folded;
}

static void content_sent(struct content *c, const struct imap_search_msg *m)
{
	if (c->sent_done)
		return;
	c->sent_done = true;
	/* Without a usable Date: the internal date stands in, so such mail is
	 * not lost to every SENT* search. */
	c->sent_day = day_of(m->internal_date, m->internal_tz);
	char *date = mime_header_value(c->raw, c->size, "Date");
	if (date == NULL)
		return;
	GDateTime *dt = g_mime_utils_header_decode_date(date);
	free(date);
	if (dt == NULL)
		return;
	int y, mo, d;
	g_date_time_get_ymd(dt, &y, &mo, &d);
	g_date_time_unref(dt);
	c->sent_day = imap_days_from_civil(y, (unsigned)mo, (unsigned)d);
}

/* HEADER name value over the casefolded "name: value\n" lines. */
static bool header_match(const char *headers, const char *name, const char *value)
{
	char *fname = fold(name), *fval = fold(value);
	size_t nlen = strlen(fname);
	bool found = false;
	for (const char *line = headers; !found && *line != '\0';) {
		const char *eol = strchr(line, '\n');
		size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
		if (len > nlen && strncmp(line, fname, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			size_t vlen = len - nlen - 1;
			found = *fval == '\0' || (vlen > 0 && memmem(v, vlen, fval, strlen(fval)) != NULL);
		}
		line += len + (eol != NULL);
	}
	g_free(fname);
	g_free(fval);
	return found;
}

/* FROM/TO/CC/BCC (RFC 3501 §6.4.4): the string in the envelope's address
 * structure, i.e. in the field's addresses as the one address parser reads
 * them (comments gone, groups by name and members, display names decoded);
 * "" = the field exists. */
static enum tri address_match(struct content *c, const char *field, const char *value)
{
	size_t size = c->head_only ? head_length(c->raw, c->size) : c->size;
	struct mail_address_list l;
	int r = mime_header_addresses(c->raw, size, field, &l);
	if (r <= 0) {
		c->failed = r < 0;
		return TRI_FALSE;
	}
	bool found = *value == '\0';
	if (!found) {
		char *text = mail_address_list_text(&l);
		if (text == NULL) {
			c->failed = true;
		} else {
			found = imap_search_contains(text, value);
			free(text);
		}
	}
	mail_address_list_clear(&l);
	return found ? TRI_TRUE : TRI_FALSE;
}

static bool text_match(const char *folded_text, const char *value)
{
	if (*value == '\0')
		return true;
	char *fval = fold(value);
	bool r = strstr(folded_text, fval) != NULL;
	g_free(fval);
	return r;
}

static enum tri eval(const struct imap_search_ctx *ctx, const struct imap_search_key *k,
		     const struct imap_search_msg *m, struct content *c);

static enum tri eval_list(const struct imap_search_ctx *ctx, const struct imap_search_key *k,
			  const struct imap_search_msg *m, struct content *c, bool is_or)
{
	enum tri decisive = is_or ? TRI_TRUE : TRI_FALSE;
	enum tri result = is_or ? TRI_FALSE : TRI_TRUE;
	for (size_t i = 0; i < k->child_count; i++) {
		enum tri r = eval(ctx, &k->children[i], m, c);
		if (r == decisive)
			return r;
		if (r == TRI_UNKNOWN)
			result = TRI_UNKNOWN;
	}
	return result;
}

static enum tri eval_content(const struct imap_search_key *k, const struct imap_search_msg *m,
			     struct content *c)
{
	if (c == NULL)
		return TRI_UNKNOWN;
	switch (k->type) {
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
	case IMAP_SK_SENTSINCE:
		content_sent(c, m);
		return date_cmp(k->type, c->sent_day, k->day);
	default:
		break;
	}
	const char *value = k->value != NULL ? k->value : "";
	if (k->type == IMAP_SK_HEADER && k->address)
		return address_match(c, k->str != NULL ? k->str : "", value);
	const char *h = k->type != IMAP_SK_BODY ? content_folded(c, false) : NULL;
	const char *b = k->type != IMAP_SK_HEADER ? content_folded(c, true) : NULL;
	if (c->failed)
		return TRI_FALSE;
	switch (k->type) {
	case IMAP_SK_HEADER:
		return header_match(h, k->str != NULL ? k->str : "", value);
	case IMAP_SK_BODY:
		return text_match(b, value);
	default: /* TEXT: header or body (RFC 3501 §6.4.4) */
		return text_match(h, value) || text_match(b, value);
	}
}

static enum tri eval(const struct imap_search_ctx *ctx, const struct imap_search_key *k,
		     const struct imap_search_msg *m, struct content *c)
{
	enum tri r;

	switch (k->type) {
	case IMAP_SK_ALL:
		return TRI_TRUE;
	case IMAP_SK_AND:
		return eval_list(ctx, k, m, c, false);
	case IMAP_SK_OR:
		return eval_list(ctx, k, m, c, true);
	case IMAP_SK_NOT:
		r = k->child_count > 0 ? eval(ctx, &k->children[0], m, c) : TRI_FALSE;
		return r == TRI_UNKNOWN ? r : r == TRI_TRUE ? TRI_FALSE : TRI_TRUE;
	case IMAP_SK_SEQSET:
	case IMAP_SK_UIDSET:
		if (k->set == NULL)
			return TRI_FALSE;
		if (imap_seqset_is_saved(k->set))
			return uid_saved(ctx, m->uid);
		return imap_seqset_contains(k->set, k->type == IMAP_SK_UIDSET ? m->uid : m->seq);
	case IMAP_SK_FLAG:
		return has_flag(m, k->str != NULL ? k->str : "") == k->flag_set;
	case IMAP_SK_BEFORE:
	case IMAP_SK_ON:
	case IMAP_SK_SINCE:
		return date_cmp(k->type, day_of(m->internal_date, m->internal_tz), k->day);
	case IMAP_SK_LARGER:
		return m->size > k->number;
	case IMAP_SK_SMALLER:
		return m->size < k->number;
	case IMAP_SK_OLDER: /* RFC 5032: the two are exact complements */
		return m->internal_date <= ctx->now - (int64_t)k->number;
	case IMAP_SK_YOUNGER:
		return m->internal_date > ctx->now - (int64_t)k->number;
	case IMAP_SK_MODSEQ:
		return m->modseq >= k->number;
	case IMAP_SK_SAVEDBEFORE:
	case IMAP_SK_SAVEDON:
	case IMAP_SK_SAVEDSINCE: /* FETCH SAVEDATE shows UTC: its day counts */
		return date_cmp(k->type, day_of(m->save_date, 0), k->day);
	case IMAP_SK_EMAILID: /* objectids are case-sensitive (RFC 8474 §7) */
		return m->emailid != NULL && k->str != NULL && strcmp(m->emailid, k->str) == 0;
	case IMAP_SK_THREADID: /* no threads: THREADID is always NIL */
		return TRI_FALSE;
	default:
		return eval_content(k, m, c);
	}
}

static int load(const struct imap_search_ctx *ctx, const struct imap_search_key *root,
		const struct imap_search_msg *m, struct content *c)
{
	bool head_only = !needs_body(root);
	uint64_t total = 0;
	c->head_only = head_only;
	int r = ctx->load(ctx->load_arg, m->uid, head_only, &c->raw, &c->size, &total);
	if (r <= 0)
		return r;
	if (head_only && !head_complete(c->raw, c->size, total)) {
		free(c->raw);
		c->raw = NULL;
		r = ctx->load(ctx->load_arg, m->uid, false, &c->raw, &c->size, &total);
	}
	return r;
}

int imap_search_match(const struct imap_search_ctx *ctx, const struct imap_search_key *root,
		      const struct imap_search_msg *m)
{
	enum tri r = eval(ctx, root, m, NULL);
	if (r != TRI_UNKNOWN)
		return r == TRI_TRUE;
	struct content c = { 0 };
	int loaded = load(ctx, root, m, &c);
	if (loaded > 0)
		r = eval(ctx, root, m, &c);
	free(c.raw);
	free(c.headers_raw);
	free(c.body_raw);
	g_free(c.headers);
	g_free(c.body);
	if (loaded <= 0)
		return loaded;
	return r == TRI_TRUE;
}
