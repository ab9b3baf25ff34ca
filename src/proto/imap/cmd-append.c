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
 * then travels to the pipeline like a literal. Only relative URLs are taken
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

/* The message the last URL part read, kept for the next part: a client
 * names a message's header, then its parts one after the other. */
struct url_cache {
	char *folder;
	uint32_t uid;
	struct imap_fetch_raw *raw;
};

static void url_cache_clear(struct url_cache *c)
{
	free(c->folder);
	c->folder = NULL;
	imap_fetch_raw_unref(&c->raw);
}

/* Loads the message url names into the cache. 1 = there; 0 = no such
 * mailbox, UIDVALIDITY or message (*why_r); -1 = store error (*err_r). */
static int url_message(struct imap_session *s, struct url_cache *c, const struct imap_url *url,
		       const char **why_r, enum tern_error *err_r)
{
	const char *name = url->mailbox != NULL ? url->mailbox :
			   s->view != NULL ? s->view->folder : NULL;
	if (name == NULL) {
		*why_r = "No mailbox is selected for a relative URL";
		return 0;
	}
	char *folder = strdup(name);
	if (folder == NULL) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	/* INBOX is case-insensitive (RFC 3501 §5.1), also as a parent */
	if (strncasecmp(folder, "INBOX", 5) == 0 && (folder[5] == '\0' || folder[5] == '/'))
		memcpy(folder, "INBOX", 5);
	struct store_folder f;
	int r = store_folder_get(s->store, folder, &f, err_r);
	if (r == 0)
		*why_r = "No such mailbox";
	if (r > 0) {
		if (url->uidvalidity != 0 && url->uidvalidity != f.uidvalidity) {
			*why_r = "UIDVALIDITY does not match";
			r = 0;
		}
		store_folder_clear(&f);
	}
	if (r > 0 && (c->raw == NULL || c->uid != url->uid || strcmp(c->folder, folder) != 0)) {
		char *data = NULL;
		size_t size = 0;
		url_cache_clear(c);
		r = store_msg_raw(s->store, folder, url->uid, &data, &size, err_r);
		if (r == 0)
			*why_r = "No such message";
		if (r > 0) {
			c->raw = imap_fetch_raw_new(data, size, 0, size);
			if (c->raw == NULL) {
				*err_r = TERN_ERR_NOMEM;
				r = -1;
			} else {
				c->folder = folder;
				folder = NULL;
				c->uid = url->uid;
			}
		}
	}
	free(folder);
	return r;
}

/* The bytes FETCH BODY[section] sends for the URL's section (the same
 * code makes them), clipped to its PARTIAL. 1 = *data_r (heap), 0 = no such
 * section (*why_r), -1 = error (*err_r). */
static int url_section(struct imap_fetch_raw *raw, const struct imap_url *url, char **data_r,
		       size_t *len_r, const char **why_r, enum tern_error *err_r)
{
	const char *sec = url->section != NULL ? url->section : "";
	size_t n = strlen("BODY.PEEK[]") + strlen(sec) + 1;
	char *item = malloc(n);
	if (item == NULL) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	snprintf(item, n, "BODY.PEEK[%s]", sec);
	struct imap_arg arg = { .type = IMAP_ARG_ATOM, .str = item, .len = n - 1 };
	struct imap_fetch_request *req = NULL;
	const char *bad = NULL;
	int r = 0;
	*why_r = "Invalid section";
	if (imap_fetch_parse(&arg, 1, false, &req, &bad) == 0 && req->count == 1 &&
	    req->atts[0].type == IMAP_FETCH_BODY_SECTION) {
		*why_r = "No such section";
		r = imap_fetch_section_data(&req->atts[0], raw, data_r, len_r);
		if (r < 0) {
			*err_r = r == IMAP_FETCH_WRITE_NOMEM ? TERN_ERR_NOMEM : TERN_ERR_IO;
			r = -1;
		}
	}
	imap_fetch_request_free(&req);
	free(item);
	if (r > 0 && url->partial) {
		size_t len = *len_r;
		size_t from = url->partial_offset < len ? url->partial_offset : len;
		size_t to = url->partial_length == 0 || len - from < url->partial_length
			    ? len : from + url->partial_length;
		memmove(*data_r, *data_r + from, to - from);
		(*data_r)[to - from] = '\0';
		*len_r = to - from;
	}
	return r;
}

/* One URL part's bytes. 1 = *data_r (heap); 0 = BADURL (*why_r); -1 =
 * error (*err_r). */
static int url_data(struct imap_session *s, struct url_cache *c, const char *text, size_t len,
		    char **data_r, size_t *len_r, const char **why_r, enum tern_error *err_r)
{
	struct imap_url url;
	if (imap_url_parse(text, len, &url, why_r) < 0)
		return 0;
	int r = 0;
	if (url.absolute)
		*why_r = "Only relative URLs to this account's mailboxes are supported";
	else
		r = url_message(s, c, &url, why_r, err_r);
	if (r > 0)
		r = url_section(c->raw, &url, data_r, len_r, why_r, err_r);
	imap_url_clear(&url);
	return r;
}

/* Builds m->built from its parts, in order. *total: bytes of all messages
 * of the command so far, at most max. 0 = built; -1 = replied (NO [BADURL],
 * NO [TOOBIG], or a store error). */
static int catenate_build(struct imap_session *s, const struct imap_cmd *cmd,
			  struct append_msg *m, struct url_cache *cache, uint64_t max,
			  uint64_t *total)
{
	size_t cap = 0;
	for (size_t i = 0; i + 1 < m->part_count; i += 2) {
		const struct imap_arg *kind = &m->parts[i], *val = &m->parts[i + 1];
		const char *data;
		char *owned = NULL;
		size_t len;
		if (imap_arg_is_atom_ci(kind, "URL")) {
			const char *text, *why = "Invalid URL";
			size_t tlen;
			enum tern_error err = TERN_ERR_NONE;
			imap_arg_astring(val, &text, &tlen);
			int r = url_data(s, cache, text, tlen, &owned, &len, &why, &err);
			if (r < 0) {
				imap_store_error(s, cmd, "append catenate", err);
				return -1;
			}
			if (r == 0) {
				char *shown = imap_url_resp_text(text, tlen);
				if (shown == NULL)
					imap_store_error(s, cmd, "append catenate", TERN_ERR_NOMEM);
				else
					imap_tagged(s, cmd, "NO [BADURL %s] %s", shown, why);
				free(shown);
				return -1;
			}
			data = owned;
		} else {
			const struct imap_arg *lit = imap_arg_is_atom_ci(kind, "UTF8") ? &val->list[0]
										: val;
			data = lit->str;
			len = lit->len;
		}
		if (*total > max || len > max - *total) {
			free(owned);
			imap_tagged(s, cmd, "NO [TOOBIG] Message would be larger than %llu bytes",
				    (unsigned long long)max);
			return -1;
		}
		if (m->built_len + len + 1 > cap) {
			size_t want = cap > 0 ? cap : 4096;
			while (want < m->built_len + len + 1)
				want *= 2;
			char *grown = realloc(m->built, want);
			if (grown == NULL) {
				free(owned);
				imap_store_error(s, cmd, "append catenate", TERN_ERR_NOMEM);
				return -1;
			}
			m->built = grown;
			cap = want;
		}
		memcpy(m->built + m->built_len, data, len);
		m->built_len += len;
		m->built[m->built_len] = '\0';
		*total += len;
		free(owned);
	}
	return 0;
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
	if (catenate) {
		/* RFC 4469 §4.2: TOOBIG over the server's message size limit,
		 * which also bounds all messages of one APPEND together, as
		 * the parser bounds their literals */
		uint64_t max = s->conn->loop->server->config->max_message_size;
		struct url_cache cache = { 0 };
		int r = 0;
		for (size_t i = 0; r == 0 && i < a.count; i++)
			if (a.msgs[i].parts != NULL)
				r = catenate_build(s, cmd, &a.msgs[i], &cache, max, &total);
		url_cache_clear(&cache);
		if (r < 0)
			goto fail;
	}
	for (size_t i = 0; i < a.count; i++) {
		const struct imap_arg *msg = a.msgs[i].message;
		if ((msg != NULL ? msg->len : a.msgs[i].built_len) == 0) {
			imap_tagged(s, cmd, "NO Empty message");
			goto fail;
		}
	}
	uint64_t quota = 0;
	if (append_precheck(s, cmd, folder, total, &quota) < 0)
		goto fail;
	if (append_submit(s, cmd, folder, &a, quota) < 0) {
		append_args_clear(&a);
		imap_store_error(s, cmd, "append", TERN_ERR_NOMEM);
		return IMAP_CMD_DONE;
	}
	append_args_clear(&a);
	return IMAP_CMD_ASYNC;
fail:
	append_args_clear(&a);
	free(folder);
	return IMAP_CMD_DONE;
}
