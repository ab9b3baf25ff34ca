/* APPEND (RFC 3501 §6.3.11) with MULTIAPPEND (RFC 3502), UIDPLUS's
 * APPENDUID (RFC 4315), the UTF8 data item (RFC 6855 §4) and literal8
 * (RFC 3516). Each message goes through the delivery pipeline like an LMTP
 * delivery: journalled and fsynced off the loop thread before the tagged OK.
 * MULTIAPPEND is all or nothing: everything is checked before the first
 * message is submitted, and if one fails after that, the ones already stored
 * are expunged again before the NO. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/imap/commands.h"
#include "proto/imap/imap-date.h"
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
	struct imap_arg *message;
	uint32_t flag_bits;
	char *keywords;
	int64_t internal_date;
	int32_t tz;
};

struct append_args {
	const struct imap_arg *mailbox;
	struct append_msg *msgs;
	size_t count;
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

/* APPEND mailbox 1*(SP [flag-list] [date-time] (literal | UTF8 (literal8))).
 * NULL on success, else the BAD text. */
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
	for (size_t i = 0; a->msgs != NULL && i < a->count; i++)
		free(a->msgs[i].keywords);
	free(a->msgs);
	a->msgs = NULL;
}

/* Takes the message bytes out of the command (no copy) and turns bare LF
 * line ends into CRLF, as the store and every reader expect (RFC 5322 §2.1).
 * NULL on allocation failure. */
static char *take_message(struct imap_arg *msg, size_t *size_r)
{
	char *data = msg->str;
	size_t len = msg->len, bare = 0;

	for (size_t i = 0; i < len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			bare++;
	if (bare > 0) {
		char *fixed = malloc(len + bare + 1), *o = fixed;
		if (fixed == NULL)
			return NULL;
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
	msg->str = NULL;
	msg->len = 0;
	*size_r = len;
	return data;
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
		job->data = take_message(m->message, &job->size);
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
		if (!msg->literal8 && memchr(msg->str, '\0', msg->len) != NULL) {
			imap_bad(s, cmd, "NUL in a message literal: use literal8 (~{n})");
			goto fail;
		}
		if (a.msgs[i].message->len == 0) {
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
