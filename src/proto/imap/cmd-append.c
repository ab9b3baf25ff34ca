/* APPEND (RFC 3501 §6.3.11) with MULTIAPPEND (RFC 3502), UIDPLUS's
 * APPENDUID (RFC 4315), the UTF8 data item (RFC 6855 §4) and literal8
 * (RFC 3516), and CATENATE (RFC 4469): a message built from literals and
 * IMAP URLs of messages or parts already stored (imap-url.c parses them).
 * Each message goes through the delivery pipeline like an LMTP
 * delivery: journalled and fsynced off the loop thread before the tagged OK.
 * MULTIAPPEND is all or nothing: everything is checked before the first
 * message is submitted, and if one fails after that, the ones already stored
 * are expunged again before the NO.
 *
 * A CATENATE URL is read where FETCH reads: on the loop thread, through the
 * session's store handle, before anything is submitted; the built message
 * then travels to the pipeline like a literal. The reads are sliced: a
 * piece of at most CATENATE_READ_CHUNK bytes per store call, and the loop
 * thread is given back every TERN_COMMAND_SLICE_MS, so a command of 64 URL
 * parts naming big messages holds no other session up. A part reads only
 * what its section needs where the section says so without the MIME
 * structure (the whole message or its PARTIAL range, the top HEADER, the
 * TEXT's range); a part number reads the whole message (one held at a
 * time). The literal parts count against the size limit from the start and
 * a range over it is refused unread. Only relative URLs are taken
 * (RFC 4469 §3): "/mailbox;UIDVALIDITY=n/;UID=n[/;SECTION=s][/;PARTIAL=o.l]"
 * in the user's own mailboxes, or ";UID=n..." in the selected one; an
 * absolute imap:// URL gets BADURL (the "NO to such a request" of §3's
 * note). URLs are resolved before any message of a MULTIAPPEND is stored,
 * so one naming a message of the same command finds no such UID. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"
#include "proto/imap/commands.h"
#include "proto/imap/fetch-parse.h"
#include "proto/imap/fetch-write.h"
#include "proto/imap/imap-date.h"
#include "proto/imap/imap-url.h"
#include "proto/imap/mailbox.h"
#include "proto/imap/quota.h"
#include "proto/imap/store-write.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/delivery.h"
#include "server/loop.h"
#include "server/server.h"
#include "store/store.h"

/* One message of the command. */
struct append_msg {
	const struct imap_arg *flags;     /* NULL = none */
	const struct imap_arg *date;      /* NULL = now */
	struct imap_arg *message;         /* NULL for CATENATE */
	const struct imap_arg *parts;     /* CATENATE's list, else NULL */
	size_t part_count;
	char *built;                      /* CATENATE: the message (heap) */
	size_t built_len;
	uint32_t flag_bits;
	char *keywords;
	int64_t internal_date;
	int32_t tz;
};

struct append_args {
	const struct imap_arg *mailbox;
	struct append_msg *msgs;
	size_t count;
	size_t url_count;                 /* CATENATE URL parts in all */
};

/* What the delivery callbacks need once the session's turn is over. */
struct append_ctx {
	struct conn *conn;
	struct imap_cmd *cmd;
	char *folder;
	size_t count, done;
	struct append_part {
		struct append_ctx *ctx;
		enum tern_error err;
		uint32_t uid, uidvalidity;
	} *parts;
};

/* RFC 4469 §5: "CATENATE" SP "(" cat-part *(SP cat-part) ")" with
 * cat-part = "TEXT" SP literal / "URL" SP astring, and RFC 6855 §4's
 * cat-part =/ "UTF8" SP "(" literal8 ")". NULL, or the BAD text. */
static const char *catenate_parse(const struct imap_arg *list, struct append_msg *m,
				  size_t *urls)
{
	const struct imap_arg *p;
	size_t n;

	if (!imap_arg_list(list, &p, &n) || n == 0)
		return "CATENATE needs a list of parts";
	for (size_t i = 0; i < n; i += 2) {
		const char *url;
		size_t len;
		if (i + 1 == n)
			return "CATENATE part without its data";
		if (imap_arg_is_atom_ci(&p[i], "TEXT")) {
			if (p[i + 1].type != IMAP_ARG_LITERAL)
				return "TEXT needs a literal";
			/* RFC 3516 §4.4: NULs travel only in literal8 */
			if (!p[i + 1].literal8 && memchr(p[i + 1].str, '\0', p[i + 1].len) != NULL)
				return "NUL in a message literal: use literal8 (~{n})";
		} else if (imap_arg_is_atom_ci(&p[i], "UTF8")) {
			if (p[i + 1].type != IMAP_ARG_LIST || p[i + 1].list_count != 1 ||
			    p[i + 1].list[0].type != IMAP_ARG_LITERAL)
				return "UTF8 needs a literal in parentheses";
		} else if (imap_arg_is_atom_ci(&p[i], "URL")) {
			if (!imap_arg_astring(&p[i + 1], &url, &len))
				return "URL needs a string";
			if (len == 0)
				return "Empty URL";
			if (len > TERN_IMAP_URL_MAX)
				return "URL too long";
			(*urls)++;
		} else {
			return "CATENATE part must be TEXT, URL or UTF8";
		}
	}
	m->parts = p;
	m->part_count = n;
	return NULL;
}

/* APPEND mailbox 1*(SP [flag-list] [date-time] (literal | UTF8 (literal8) |
 * CATENATE (...))). NULL on success, else the BAD text. */
static const char *append_parse(struct imap_cmd *cmd, struct append_args *a)
{
	struct imap_arg *args = cmd->args;
	size_t n = cmd->arg_count, i = 1;

	if (n < 2)
		return "APPEND needs a mailbox and a message";
	a->mailbox = &args[0];
	a->msgs = calloc(n, sizeof(*a->msgs));
	if (a->msgs == NULL)
		return "Out of memory";
	while (i < n) {
		struct append_msg *m = &a->msgs[a->count++];
		if (i < n && args[i].type == IMAP_ARG_LIST)
			m->flags = &args[i++];
		if (i + 1 < n && args[i].type == IMAP_ARG_STRING)
			m->date = &args[i++];
		if (i + 1 < n && imap_arg_is_atom_ci(&args[i], "UTF8")) {
			/* RFC 6855 §4: UTF8 (~{n}) carries a message with UTF-8 headers. */
			if (args[i + 1].type != IMAP_ARG_LIST || args[i + 1].list_count != 1 ||
			    args[i + 1].list[0].type != IMAP_ARG_LITERAL)
				return "UTF8 needs a literal in parentheses";
			m->message = &args[i + 1].list[0];
			i += 2;
		} else if (i + 1 < n && imap_arg_is_atom_ci(&args[i], "CATENATE")) {
			const char *bad = catenate_parse(&args[i + 1], m, &a->url_count);
			if (bad != NULL)
				return bad;
			i += 2;
		} else if (i < n && args[i].type == IMAP_ARG_LITERAL) {
			m->message = &args[i++];
		} else {
			return "Message literal expected";
		}
	}
	return NULL;
}

static void append_args_clear(struct append_args *a)
{
	for (size_t i = 0; a->msgs != NULL && i < a->count; i++) {
		free(a->msgs[i].keywords);
		free(a->msgs[i].built);
	}
	free(a->msgs);
	a->msgs = NULL;
}

/* Takes the message bytes out of the command or the CATENATE result (no
 * copy) and turns bare LF line ends into CRLF, as the store and every
 * reader expect (RFC 5322 §2.1). NULL on allocation failure. */
static char *take_message(struct append_msg *m, size_t *size_r)
{
	char *data;
	size_t len, bare = 0;

	if (m->message != NULL) {
		data = m->message->str;
		len = m->message->len;
		m->message->str = NULL;
		m->message->len = 0;
	} else {
		data = m->built;
		len = m->built_len;
		m->built = NULL;
		m->built_len = 0;
	}
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			bare++;
	if (bare > 0) {
		char *fixed = malloc(len + bare + 1), *o = fixed;
		if (fixed == NULL) {
			free(data);
			return NULL;
		}
		for (size_t i = 0; i < len; i++) {
			if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
				*o++ = '\r';
			*o++ = data[i];
		}
		*o = '\0';
		free(data);
		data = fixed;
		len += bare;
	}
	*size_r = len;
	return data;
}

/* ---- CATENATE (RFC 4469) ---- */

/* A URL part is read in pieces of this many bytes, one store call each,
 * and the command gives the loop thread back every TERN_COMMAND_SLICE_MS:
 * 64 parts naming different 15 MiB messages held every other session of
 * the loop for over a second when each part read its message in one go.
 * A piece costs a few milliseconds; smaller ones cost more in all, as
 * each store call finds its offset from the blob's start (1 MiB pieces
 * took twice as long as 4 MiB ones for whole 15 MiB messages). */
#define CATENATE_READ_CHUNK   (4u << 20)
/* A HEADER or TEXT part reads this much first: most headers end in it. */
#define CATENATE_HEAD_FIRST   (64u << 10)

/* What a URL part must read of its message. */
enum url_need {
	URL_NEED_RANGE,     /* no section: [from, from + want) of the message */
	URL_NEED_HEADER,    /* HEADER, HEADER.FIELDS[.NOT]: up to the header's end */
	URL_NEED_TEXT,      /* TEXT: the header's end, then a range after it */
	URL_NEED_MESSAGE,   /* a part number: the whole message */
};

/* The URL part being resolved. */
struct url_job {
	struct imap_url url;
	char *folder;                     /* the source mailbox */
	struct imap_fetch_request *req;   /* the section as BODY.PEEK[...], or NULL */
	enum url_need need;
	uint64_t size;                    /* the message's size */
	uint32_t uidvalidity;             /* of the folder when the URL was resolved */
	char *buf;                        /* what was read: bytes [from, from + len) */
	size_t len, cap;
	uint64_t from, want;              /* the range to read */
	size_t scan;                      /* HEADER/TEXT: the line the search is at */
	bool header_done;                 /* TEXT: the range after it is set */
};

/* The message the last part-number URL read, kept for the next part: a
 * client names a message's header, then its parts one after the other. */
struct url_cache {
	char *folder;
	uint32_t uid, uidvalidity;        /* a folder renamed or made anew meanwhile differs */
	struct imap_fetch_raw *raw;
};

/* A CATENATE APPEND in progress: its URL parts are resolved a piece at a
 * time, yielding the loop thread in between. */
struct cat_state {
	struct imap_session *s;
	struct imap_cmd *cmd;
	struct append_args a;
	char *folder;                     /* the target */
	uint64_t max, total;              /* size limit; bytes of all messages so far */
	size_t msg, part;                 /* the next part */
	size_t cap;                       /* of a.msgs[msg].built */
	struct url_job *job;
	struct url_cache cache;
	bool async;                       /* the handler returned; s->cmd_state */
};

enum cat_result { CAT_REPLIED, CAT_SUBMITTED, CAT_YIELDED };

static void url_cache_clear(struct url_cache *c)
{
	free(c->folder);
	c->folder = NULL;
	imap_fetch_raw_unref(&c->raw);
}

static void url_job_free(struct url_job **_j)
{
	struct url_job *j = *_j;
	*_j = NULL;
	if (j == NULL)
		return;
	imap_url_clear(&j->url);
	imap_fetch_request_free(&j->req);
	free(j->folder);
	free(j->buf);
	free(j);
}

static void cat_state_free(void *arg)
{
	struct cat_state *st = arg;
	url_job_free(&st->job);
	url_cache_clear(&st->cache);
	append_args_clear(&st->a);
	free(st->folder);
	free(st);
}

/* Where the header ends (after its empty line), searched from j->scan over
 * what was read: true when found (*end_r), or when the whole message is
 * read (then it is all header, as fetch-write.c has it). */
static bool header_found(struct url_job *j, size_t *end_r)
{
	while (j->scan < j->len) {
		const char *lf = memchr(j->buf + j->scan, '\n', j->len - j->scan);
		if (lf == NULL)
			break;
		size_t e = (size_t)(lf - j->buf) + 1;
		if (e - j->scan == 1 || (e - j->scan == 2 && j->buf[j->scan] == '\r')) {
			*end_r = e;
			return true;
		}
		j->scan = e;
	}
	*end_r = j->len;
	return j->len == j->size;
}

/* [o, o + l) of len bytes as a URL's ;PARTIAL=o.l (l = 0: to the end). */
static void partial_clip(const struct imap_url *url, uint64_t len, uint64_t *from_r,
			 uint64_t *to_r)
{
	uint64_t from = 0, to = len;
	if (url->partial) {
		from = url->partial_offset < len ? url->partial_offset : len;
		to = url->partial_length == 0 || len - from < url->partial_length
		     ? len : from + url->partial_length;
	}
	*from_r = from;
	*to_r = to;
}

/* Parses the URL and finds its message: NULL with *why_r (BADURL) or
 * *err_r (store error, *why_r NULL) set, or the job, ready to read. */
static struct url_job *url_job_start(struct cat_state *st, const char *text, size_t tlen,
				     const char **why_r, enum tern_error *err_r)
{
	struct imap_session *s = st->s;
	struct url_job *j = calloc(1, sizeof(*j));
	*why_r = NULL;
	if (j == NULL) {
		*err_r = TERN_ERR_NOMEM;
		return NULL;
	}
	if (imap_url_parse(text, tlen, &j->url, why_r) < 0) {
		free(j);
		return NULL;
	}
	const char *name = j->url.mailbox != NULL ? j->url.mailbox :
			   s->view != NULL ? s->view->folder : NULL;
	if (j->url.absolute)
		*why_r = "Only relative URLs to this account's mailboxes are supported";
	else if (name == NULL)
		*why_r = "No mailbox is selected for a relative URL";
	else if ((j->folder = strdup(name)) == NULL)
		*err_r = TERN_ERR_NOMEM;
	if (j->folder == NULL) {
		url_job_free(&j);
		return NULL;
	}
	/* INBOX is case-insensitive (RFC 3501 §5.1), also as a parent */
	if (strncasecmp(j->folder, "INBOX", 5) == 0 && (j->folder[5] == '\0' || j->folder[5] == '/'))
		memcpy(j->folder, "INBOX", 5);
	struct store_folder f;
	int r = store_folder_get(s->store, j->folder, &f, err_r);
	if (r == 0)
		*why_r = "No such mailbox";
	if (r > 0) {
		if (j->url.uidvalidity != 0 && j->url.uidvalidity != f.uidvalidity) {
			*why_r = "UIDVALIDITY does not match";
			r = 0;
		}
		j->uidvalidity = f.uidvalidity;
		store_folder_clear(&f);
	}
	struct store_msg meta;
	if (r > 0) {
		r = store_msg_get(s->store, j->folder, j->url.uid, &meta, err_r);
		if (r == 0)
			*why_r = "No such message";
		if (r > 0) {
			j->size = meta.size;
			store_msg_clear(&meta);
		}
	}
	if (r > 0 && j->url.section != NULL) {
		/* the section as FETCH has it: the same parser checks it */
		const char *sec = j->url.section;
		size_t n = strlen("BODY.PEEK[]") + strlen(sec) + 1;
		char *item = malloc(n);
		const char *bad = NULL;
		if (item == NULL) {
			*err_r = TERN_ERR_NOMEM;
			r = -1;
		} else {
			snprintf(item, n, "BODY.PEEK[%s]", sec);
			struct imap_arg arg = { .type = IMAP_ARG_ATOM, .str = item, .len = n - 1 };
			if (imap_fetch_parse(&arg, 1, false, &j->req, &bad) < 0 || j->req->count != 1 ||
			    j->req->atts[0].type != IMAP_FETCH_BODY_SECTION) {
				*why_r = "Invalid section";
				r = 0;
			}
			free(item);
		}
	}
	if (r <= 0) {
		url_job_free(&j);
		return NULL;
	}
	const struct imap_fetch_section *sec = j->req != NULL ? &j->req->atts[0].section : NULL;
	if (sec == NULL || (sec->part_count == 0 && sec->spec == IMAP_SECTION_ALL)) {
		/* the whole message, or the PARTIAL range of it */
		uint64_t from, to;
		partial_clip(&j->url, j->size, &from, &to);
		j->need = URL_NEED_RANGE;
		j->from = from;
		j->want = to - from;
	} else if (sec->part_count == 0 && sec->spec != IMAP_SECTION_TEXT) {
		j->need = URL_NEED_HEADER;
		j->want = j->size < CATENATE_HEAD_FIRST ? j->size : CATENATE_HEAD_FIRST;
	} else if (sec->part_count == 0) {
		j->need = URL_NEED_TEXT;
		j->want = j->size < CATENATE_HEAD_FIRST ? j->size : CATENATE_HEAD_FIRST;
	} else {
		j->need = URL_NEED_MESSAGE;
		j->want = j->size;
	}
	return j;
}

/* Reads the job's next piece (at most CATENATE_READ_CHUNK bytes). 1 = read,
 * 0 = the message is gone or changed (BADURL, *why_r), -1 = *err_r. */
static int url_job_read(struct cat_state *st, struct url_job *j, const char **why_r,
			enum tern_error *err_r)
{
	size_t n = j->want - j->len < CATENATE_READ_CHUNK ? (size_t)(j->want - j->len)
							  : CATENATE_READ_CHUNK;
	if (j->len + n + 1 > j->cap) {
		/* the whole range at once when it is known, else doubling */
		size_t want = j->need == URL_NEED_RANGE || j->need == URL_NEED_MESSAGE ||
			      j->header_done ? (size_t)j->want + 1 : j->len + n + 1;
		if (want < 2 * j->cap && 2 * j->cap <= j->size + 1)
			want = 2 * j->cap;
		char *grown = realloc(j->buf, want);
		if (grown == NULL) {
			*err_r = TERN_ERR_NOMEM;
			return -1;
		}
		j->buf = grown;
		j->cap = want;
	}
	char *data = NULL;
	size_t got = 0;
	uint64_t total = 0;
	int r = store_msg_raw_range(st->s->store, j->folder, j->url.uid, j->from + j->len, n, &data,
				    &got, &total, err_r);
	if (r > 0 && (total != j->size || got != n))
		r = 0;   /* expunged and the UID's row changed meanwhile */
	if (r == 0)
		*why_r = "No such message";
	if (r > 0) {
		memcpy(j->buf + j->len, data, got);
		j->len += got;
		j->buf[j->len] = '\0';
	}
	free(data);
	return r;
}

/* The section's bytes from what the job read (the header alone, or the
 * whole message), through the code FETCH uses, clipped to ;PARTIAL.
 * 1 = *data_r (heap), 0 = no such section (*why_r), -1 = *err_r. */
static int url_job_section(struct url_job *j, struct imap_fetch_raw *raw, char **data_r,
			   size_t *len_r, const char **why_r, enum tern_error *err_r)
{
	*why_r = "No such section";
	int r = imap_fetch_section_data(&j->req->atts[0], raw, data_r, len_r);
	if (r < 0) {
		*err_r = r == IMAP_FETCH_WRITE_NOMEM ? TERN_ERR_NOMEM : TERN_ERR_IO;
		return -1;
	}
	if (r > 0 && j->url.partial) {
		uint64_t from, to;
		partial_clip(&j->url, *len_r, &from, &to);
		memmove(*data_r, *data_r + from, (size_t)(to - from));
		(*data_r)[to - from] = '\0';
		*len_r = (size_t)(to - from);
	}
	return r;
}

/* Whether len more bytes would pass the limit. */
static bool cat_over(const struct cat_state *st, uint64_t len)
{
	return st->total > st->max || len > st->max - st->total;
}

/* -1: replied NO [TOOBIG]. */
static int cat_toobig(struct cat_state *st)
{
	imap_tagged(st->s, st->cmd, "NO [TOOBIG] Message would be larger than %llu bytes",
		    (unsigned long long)st->max);
	return -1;
}

/* Adds len bytes to the message being built; TOOBIG over the limit. 0, or
 * -1 replied. */
static int cat_add(struct cat_state *st, const char *data, size_t len)
{
	struct append_msg *m = &st->a.msgs[st->msg];
	if (cat_over(st, len))
		return cat_toobig(st);
	if (m->built_len + len + 1 > st->cap) {
		size_t want = st->cap > 0 ? st->cap : 4096;
		while (want < m->built_len + len + 1)
			want *= 2;
		char *grown = realloc(m->built, want);
		if (grown == NULL) {
			imap_store_error(st->s, st->cmd, "append catenate", TERN_ERR_NOMEM);
			return -1;
		}
		m->built = grown;
		st->cap = want;
	}
	memcpy(m->built + m->built_len, data, len);
	m->built_len += len;
	m->built[m->built_len] = '\0';
	st->total += len;
	return 0;
}

/* One step of the current URL part: at most one read. 1 = the part is
 * added, 0 = more to read, -1 = replied (BADURL, TOOBIG, store error). */
static int url_step(struct cat_state *st, const char *text, size_t tlen)
{
	struct imap_session *s = st->s;
	const char *why = NULL;
	enum tern_error err = TERN_ERR_NONE;
	struct url_job *j = st->job;
	char *data = NULL;
	size_t len = 0;
	int r = 1;

	if (j == NULL) {
		j = st->job = url_job_start(st, text, tlen, &why, &err);
		if (j == NULL) {
			r = why != NULL ? 0 : -1;
			goto add;
		}
		/* a range larger than the limit allows is refused unread */
		if (j->need == URL_NEED_RANGE && cat_over(st, j->want))
			return cat_toobig(st);
		if (j->need != URL_NEED_RANGE && st->cache.raw != NULL &&
		    st->cache.uid == j->url.uid && st->cache.uidvalidity == j->uidvalidity &&
		    strcmp(st->cache.folder, j->folder) == 0) {
			/* the message the part before read */
			r = url_job_section(j, st->cache.raw, &data, &len, &why, &err);
			goto add;
		}
		/* one whole message held at a time: the one read before goes */
		if (j->need == URL_NEED_MESSAGE)
			url_cache_clear(&st->cache);
		if (j->want == 0)
			goto done_reading;
		return 0;
	}
	if (j->len < j->want) {
		r = url_job_read(st, j, &why, &err);
		if (r <= 0)
			goto add;
	}
	if (j->need == URL_NEED_HEADER || (j->need == URL_NEED_TEXT && !j->header_done)) {
		size_t h;
		if (!header_found(j, &h)) {
			if (j->len == j->want)   /* on: a piece at a time */
				j->want = j->size - j->len < CATENATE_READ_CHUNK
					  ? j->size : j->len + CATENATE_READ_CHUNK;
			return 0;
		}
		if (j->need == URL_NEED_TEXT) {
			/* the text after it, or its PARTIAL range: read that alone */
			uint64_t from, to;
			partial_clip(&j->url, j->size - h, &from, &to);
			j->header_done = true;
			j->from = h + from;
			j->want = to - from;
			j->len = 0;
			if (cat_over(st, j->want))
				return cat_toobig(st);
			return 0;
		}
		j->len = h;
		j->want = h;
		j->size = h;   /* the header alone, as a message of its own */
	}
	if (j->len < j->want)
		return 0;
done_reading:
	if (j->need == URL_NEED_RANGE || j->need == URL_NEED_TEXT) {
		data = j->buf;
		len = j->len;
		j->buf = NULL;
		r = 1;
	} else {
		char *bytes = j->buf != NULL ? j->buf : calloc(1, 1);
		j->buf = NULL;
		struct imap_fetch_raw *raw = bytes != NULL ? imap_fetch_raw_new(bytes, j->len, 0, j->len)
							   : NULL;
		if (raw == NULL) {
			err = TERN_ERR_NOMEM;
			r = -1;
			goto add;
		}
		r = url_job_section(j, raw, &data, &len, &why, &err);
		if (j->need == URL_NEED_MESSAGE) {
			url_cache_clear(&st->cache);
			st->cache = (struct url_cache){ .folder = j->folder, .uid = j->url.uid,
							.uidvalidity = j->uidvalidity, .raw = raw };
			j->folder = NULL;
		} else {
			imap_fetch_raw_unref(&raw);
		}
	}
add:
	if (r < 0) {
		imap_store_error(s, st->cmd, "append catenate", err);
	} else if (r == 0) {
		char *shown = imap_url_resp_text(text, tlen);
		if (shown == NULL)
			imap_store_error(s, st->cmd, "append catenate", TERN_ERR_NOMEM);
		else
			imap_tagged(s, st->cmd, "NO [BADURL %s] %s", shown, why);
		free(shown);
	} else {
		r = cat_add(st, data != NULL ? data : "", len) < 0 ? -1 : 1;
	}
	free(data);
	url_job_free(&st->job);
	return r < 0 ? -1 : r == 0 ? -1 : 1;
}

/* The parts of every message, in order, until done or the time slice is
 * over (then it goes on in a later loop turn). A literal part costs a
 * copy; a URL part one read of its message per step. */
static int cat_build(struct cat_state *st)
{
	uint64_t slice_end = tern_now_ms() + TERN_COMMAND_SLICE_MS;
	for (; st->msg < st->a.count; st->msg++, st->part = 0, st->cap = 0) {
		struct append_msg *m = &st->a.msgs[st->msg];
		while (st->part + 1 < m->part_count) {
			const struct imap_arg *kind = &m->parts[st->part], *val = &m->parts[st->part + 1];
			if (tern_now_ms() >= slice_end)
				return 0;
			if (imap_arg_is_atom_ci(kind, "URL")) {
				const char *text;
				size_t tlen;
				imap_arg_astring(val, &text, &tlen);
				int r = url_step(st, text, tlen);
				if (r < 0)
					return -1;
				if (r == 0)
					continue;
			} else {
				const struct imap_arg *lit = imap_arg_is_atom_ci(kind, "UTF8")
							     ? &val->list[0] : val;
				/* counted in st->total already (cat_start) */
				st->total -= lit->len;
				if (cat_add(st, lit->str, lit->len) < 0)
					return -1;
			}
			st->part += 2;
		}
	}
	return 1;
}

static enum cat_result append_store(struct imap_session *s, struct imap_cmd *cmd,
				    struct append_args *a, char *folder, uint64_t total);

/* Builds on; when built, stores. */
static enum cat_result cat_run(struct cat_state *st);

static void cat_resume(struct conn *c)
{
	struct imap_session *s = c->state;
	struct cat_state *st = s->cmd_state;
	if (st == NULL || s->cmd_state_free != cat_state_free)
		return;
	enum cat_result r = cat_run(st);
	if (r == CAT_YIELDED)
		return;
	if (s->cmd_state != st)
		cat_state_free(st);         /* built: no longer s->cmd_state */
	if (r == CAT_REPLIED)
		imap_command_finished(s);   /* frees st if it still is */
}

static enum cat_result cat_run(struct cat_state *st)
{
	int r = cat_build(st);
	if (r < 0)
		return CAT_REPLIED;
	if (r == 0) {
		conn_yield(st->s->conn, cat_resume);
		return CAT_YIELDED;
	}
	url_cache_clear(&st->cache);
	if (st->async) {
		st->s->cmd_state = NULL;
		st->s->cmd_state_free = NULL;
	}
	/* the folder and the messages go on to the pipeline */
	char *folder = st->folder;
	struct append_args a = st->a;
	st->folder = NULL;
	st->a = (struct append_args){ 0 };
	return append_store(st->s, st->cmd, &a, folder, st->total);
}

/* The server's zone offset now, so INTERNALDATE of "now" reads as local time. */
static int32_t local_tz_minutes(void)
{
	time_t now = time(NULL);
	struct tm tm;

	if (localtime_r(&now, &tm) == NULL)
		return 0;
	return (int32_t)(tm.tm_gmtoff / 60);
}

/* APPENDUID's uid-set (RFC 4315): the UIDs in message order, ascending
 * runs as ranges. size >= 22 * count + 1 always suffices. */
static void uid_set(char *buf, size_t size, const struct append_ctx *a)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < a->count && used < size;) {
		size_t j = i;
		while (j + 1 < a->count && a->parts[j + 1].uid == a->parts[j].uid + 1)
			j++;
		int w = j > i ? snprintf(buf + used, size - used, "%s%u:%u", i > 0 ? "," : "",
					 a->parts[i].uid, a->parts[j].uid)
			      : snprintf(buf + used, size - used, "%s%u", i > 0 ? "," : "",
					 a->parts[i].uid);
		if (w < 0)
			break;
		used += (size_t)w;
		i = j + 1;
	}
}

/* The NO of a failed APPEND. */
static void append_refused(struct imap_session *s, const struct imap_cmd *cmd, enum tern_error err)
{
	if (err == TERN_ERR_NOTFOUND)
		imap_tagged(s, cmd, "NO [TRYCREATE] Mailbox does not exist");
	else if (err == TERN_ERR_INVALID)
		imap_tagged(s, cmd, "NO [CANNOT] Invalid flags or keywords");
	else
		imap_store_error(s, cmd, "append", err);
}

/* Undoing a partial MULTIAPPEND (RFC 3502 §3: all or nothing) is a store
 * write like any other: it runs on the user's worker, and the NO follows
 * from there. */
struct append_undo {
	char *folder;
	uint32_t *uids;          /* ascending */
	size_t count;
	enum tern_error err;     /* why the APPEND failed */
};

static int append_undo_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct append_undo *u = arg;
	uint32_t *gone = NULL;
	size_t ngone = 0;
	int r = store_expunge(st, u->folder, u->uids, u->count, &gone, &ngone, err_r);
	free(gone);
	return r;
}

static void append_undo_done(struct imap_session *s, struct imap_cmd *cmd, void *arg,
			     int result, enum tern_error err, bool closing)
{
	struct append_undo *u = arg;
	if (result < 0)
		log_error("imap: user=%s: MULTIAPPEND: undoing %zu stored message(s) failed: %s",
			  s->user, u->count, tern_error_str(err));
	imap_notify_changed(s);
	/* closing may be false on the out-of-memory path while the client has
	 * left meanwhile (this command was async already) */
	if (!closing && !s->conn->closing)
		append_refused(s, cmd, u->err);
	free(u->folder);
	free(u->uids);
	free(u);
}

/* All messages have a result: reply, or undo a partial MULTIAPPEND. */
static void append_finish(struct append_ctx *a)
{
	struct conn *c = a->conn;
	struct imap_session *s = c->state;
	struct imap_cmd *cmd = a->cmd;
	enum tern_error err = TERN_ERR_NONE;
	uint32_t *stored = malloc((a->count + 1) * sizeof(*stored));
	size_t nstored = 0;

	for (size_t i = 0; i < a->count; i++) {
		if (a->parts[i].err == TERN_ERR_NONE) {
			if (stored != NULL)
				stored[nstored++] = a->parts[i].uid;
		} else if (err == TERN_ERR_NONE) {
			err = a->parts[i].err;
		}
	}
	struct append_undo *u = NULL;
	if (err != TERN_ERR_NONE && nstored > 0) {
		/* the store wants UIDs ascending */
		for (size_t i = 1; i < nstored; i++)
			for (size_t k = i; k > 0 && stored[k - 1] > stored[k]; k--) {
				uint32_t t = stored[k];
				stored[k] = stored[k - 1];
				stored[k - 1] = t;
			}
		u = calloc(1, sizeof(*u));
		if (u == NULL) {
			log_error("imap: user=%s: MULTIAPPEND: undoing %zu stored message(s) failed: %s",
				  s->user, nstored, tern_error_str(TERN_ERR_NOMEM));
		} else {
			*u = (struct append_undo){ .folder = a->folder, .uids = stored,
						   .count = nstored, .err = err };
			a->folder = NULL;
			stored = NULL;
		}
	}
	free(stored);
	if (u == NULL && !c->closing) {
		if (err == TERN_ERR_NONE) {
			size_t size = 22 * a->count + 1;
			char *set = malloc(size);
			if (set != NULL)
				uid_set(set, size, a);
			/* imap_tagged reports the new messages first when they went
			 * to the selected folder (RFC 3501 §6.3.11). */
			if (set != NULL)
				imap_tagged(s, cmd, "OK [APPENDUID %u %s] Append completed",
					    a->parts[0].uidvalidity, set);
			else
				imap_tagged(s, cmd, "OK Append completed");
			free(set);
			imap_notify_changed(s);
		} else {
			append_refused(s, cmd, err);
		}
	}
	free(a->parts);
	free(a->folder);
	free(a);
	/* also when the client has left: the undo must happen regardless */
	if (u == NULL ||
	    imap_store_write(s, cmd, append_undo_run, u, append_undo_done) == IMAP_CMD_DONE)
		imap_command_finished(s);   /* the undo's end finishes it otherwise */
	conn_unref(&c);
}

static void append_done(struct delivery_job *job)
{
	struct append_part *p = job->ctx;
	struct append_ctx *a = p->ctx;
	const struct delivery_rcpt *r = &job->rcpts[0];

	p->err = r->err;
	p->uid = r->uid;
	p->uidvalidity = r->uidvalidity;
	delivery_job_free(&job);
	if (++a->done == a->count)
		append_finish(a);
}

/* Refuses early, before the pipeline, what is known to fail: a missing
 * folder and a message over quota. 0 = go on, -1 = replied. */
static int append_precheck(struct imap_session *s, const struct imap_cmd *cmd,
			   const char *folder, size_t size, uint64_t *quota_r)
{
	struct store_folder f;
	enum tern_error err = TERN_ERR_NONE;
	uint64_t limit, used;

	int found = store_folder_get(s->store, folder, &f, &err);
	if (found <= 0) {
		if (found < 0)
			imap_store_error(s, cmd, "append", err);
		else
			imap_tagged(s, cmd, "NO [TRYCREATE] Mailbox does not exist");
		return -1;
	}
	store_folder_clear(&f);
	if (imap_quota_get(s, &limit, &used, &err) < 0) {
		imap_store_error(s, cmd, "append quota", err);
		return -1;
	}
	if (limit != 0 && used + size > limit) {
		imap_tagged(s, cmd, "NO [OVERQUOTA] Quota exceeded");
		return -1;
	}
	*quota_r = limit;
	return 0;
}

/* Builds every job first, so that either all messages go to the pipeline
 * or none does. 0, or -1 when out of memory (nothing submitted). */
static int append_submit(struct imap_session *s, struct imap_cmd *cmd, char *folder,
			 struct append_args *args, uint64_t quota)
{
	size_t n = args->count;
	struct append_ctx *a = calloc(1, sizeof(*a));
	struct delivery_job **jobs = calloc(n, sizeof(*jobs));
	bool ok = a != NULL && jobs != NULL &&
		  (a->parts = calloc(n, sizeof(*a->parts))) != NULL;

	for (size_t i = 0; ok && i < n; i++) {
		struct append_msg *m = &args->msgs[i];
		struct delivery_job *job = jobs[i] = delivery_job_new(1);
		if (job == NULL) {
			ok = false;
			break;
		}
		job->rcpts[0].user = strdup(s->user);
		job->rcpts[0].folder = strdup(folder);
		/* Checked again where the message is written: the precheck
		 * above races with deliveries and other sessions. */
		job->rcpts[0].quota = quota;
		job->data = take_message(m, &job->size);
		job->keywords = m->keywords;
		m->keywords = NULL;
		job->flags = m->flag_bits;
		job->internal_date = m->internal_date;
		job->internal_tz = m->tz;
		job->done = append_done;
		job->ctx = &a->parts[i];
		job->loop = s->conn->loop;
		a->parts[i].ctx = a;
		ok = job->rcpts[0].user != NULL && job->rcpts[0].folder != NULL && job->data != NULL;
	}
	if (!ok) {
		for (size_t i = 0; jobs != NULL && i < n; i++)
			delivery_job_free(&jobs[i]);
		free(jobs);
		if (a != NULL)
			free(a->parts);
		free(a);
		free(folder);
		return -1;
	}
	*a = (struct append_ctx){ .conn = s->conn, .cmd = cmd, .folder = folder, .count = n,
				  .parts = a->parts };
	conn_ref(s->conn);
	for (size_t i = 0; i < n; i++)
		delivery_submit(s->conn->loop->server->delivery, jobs[i]);
	free(jobs);
	return 0;
}

IMAP_HANDLER(cmd_append)
{
	struct append_args a = {0};
	const char *bad = append_parse(cmd, &a);
	char *folder = NULL;
	uint64_t total = 0;
	int tz = local_tz_minutes();
	bool too_many_keywords = false;

	for (size_t i = 0; bad == NULL && i < a.count; i++) {
		struct append_msg *m = &a.msgs[i];
		m->tz = tz;
		int parsed = m->flags != NULL ?
			     imap_flags_parse(m->flags, &m->flag_bits, &m->keywords, &bad) : 0;
		if (parsed == IMAP_FLAGS_TOO_MANY_KEYWORDS) {
			/* well-formed: refused with NO once the rest is checked */
			too_many_keywords = true;
			bad = NULL;
		} else if (parsed < 0) {
			bad = bad != NULL ? bad : "Invalid flags";
		}
		if (bad == NULL && m->date != NULL &&
		    imap_datetime_parse(m->date->str, m->date->len, &m->internal_date, &m->tz) < 0)
			bad = "Invalid date-time";
		total += m->message != NULL ? m->message->len : 0;
	}
	if (bad != NULL) {
		imap_bad(s, cmd, bad);
		goto fail;
	}
	if (too_many_keywords) {
		/* RFC 5530: over TERN_KEYWORDS_PER_MESSAGE_MAX is a limit, not bad syntax */
		imap_tagged(s, cmd, "NO [LIMIT] Too many keywords");
		goto fail;
	}
	folder = imap_mailbox_arg(s, cmd, a.mailbox);
	if (folder == NULL)
		goto fail;
	for (size_t i = 0; i < a.count; i++) {
		const struct imap_arg *msg = a.msgs[i].message;
		/* RFC 3516 §4.4: NULs travel only in literal8 */
		if (msg != NULL && !msg->literal8 && memchr(msg->str, '\0', msg->len) != NULL) {
			imap_bad(s, cmd, "NUL in a message literal: use literal8 (~{n})");
			goto fail;
		}
	}
	if (a.url_count > TERN_CATENATE_URLS_MAX) {
		imap_tagged(s, cmd, "NO [LIMIT] At most %d URL parts in one APPEND",
			    TERN_CATENATE_URLS_MAX);
		goto fail;
	}
	bool catenate = false;
	for (size_t i = 0; i < a.count; i++)
		catenate = catenate || a.msgs[i].parts != NULL;
	if (!catenate)
		return append_store(s, cmd, &a, folder, total) == CAT_SUBMITTED ? IMAP_CMD_ASYNC
										: IMAP_CMD_DONE;
	/* RFC 4469 §4.2: TOOBIG over the server's message size limit, which
	 * also bounds all messages of one APPEND together, as the parser
	 * bounds their literals. The literal parts count from the start, so
	 * that no URL is read for a message that cannot be stored. */
	uint64_t max = s->conn->loop->server->config->max_message_size;
	for (size_t i = 0; i < a.count; i++)
		for (size_t k = 0; k + 1 < a.msgs[i].part_count; k += 2) {
			const struct imap_arg *kind = &a.msgs[i].parts[k], *val = &a.msgs[i].parts[k + 1];
			if (!imap_arg_is_atom_ci(kind, "URL"))
				total += imap_arg_is_atom_ci(kind, "UTF8") ? val->list[0].len : val->len;
		}
	if (total > max) {
		imap_tagged(s, cmd, "NO [TOOBIG] Message would be larger than %llu bytes",
			    (unsigned long long)max);
		goto fail;
	}
	struct cat_state *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		imap_store_error(s, cmd, "append catenate", TERN_ERR_NOMEM);
		goto fail;
	}
	*st = (struct cat_state){ .s = s, .cmd = cmd, .a = a, .folder = folder, .max = max,
				  .total = total };
	enum cat_result r = cat_run(st);
	if (r == CAT_YIELDED) {
		st->async = true;
		s->cmd_state = st;
		s->cmd_state_free = cat_state_free;
		return IMAP_CMD_ASYNC;
	}
	cat_state_free(st);
	return r == CAT_SUBMITTED ? IMAP_CMD_ASYNC : IMAP_CMD_DONE;
fail:
	append_args_clear(&a);
	free(folder);
	return IMAP_CMD_DONE;
}

/* The messages are complete: refuses what is known to fail, else hands
 * them to the pipeline. Takes a's messages and folder. */
static enum cat_result append_store(struct imap_session *s, struct imap_cmd *cmd,
				    struct append_args *a, char *folder, uint64_t total)
{
	enum cat_result r = CAT_REPLIED;
	uint64_t quota = 0;
	for (size_t i = 0; i < a->count; i++) {
		const struct imap_arg *msg = a->msgs[i].message;
		if ((msg != NULL ? msg->len : a->msgs[i].built_len) == 0) {
			imap_tagged(s, cmd, "NO Empty message");
			goto out;
		}
	}
	if (append_precheck(s, cmd, folder, total, &quota) < 0)
		goto out;
	r = CAT_SUBMITTED;
	if (append_submit(s, cmd, folder, a, quota) < 0) {
		r = CAT_REPLIED;
		imap_store_error(s, cmd, "append", TERN_ERR_NOMEM);
	}
	folder = NULL;   /* append_submit took it */
out:
	append_args_clear(a);
	free(folder);
	return r;
}
