/* APPEND (RFC 3501 §6.3.11) with UIDPLUS's APPENDUID (RFC 4315), the UTF8
 * data item (RFC 6855 §4) and literal8 (RFC 3516). The message goes through
 * the delivery pipeline like an LMTP delivery: journalled and fsynced off the
 * loop thread before the tagged OK. One message per command: MULTIAPPEND
 * (RFC 3502) is not advertised. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/imap/commands.h"
#include "proto/imap/imap-date.h"
#include "proto/imap/mailbox.h"
#include "proto/imap/quota.h"
#include "server/conn.h"
#include "server/delivery.h"
#include "server/loop.h"
#include "server/server.h"
#include "store/store.h"

struct append_args {
	const struct imap_arg *mailbox;
	const struct imap_arg *flags;     /* NULL = none */
	const struct imap_arg *date;      /* NULL = now */
	struct imap_arg *message;
};

/* What the delivery callback needs once the session's turn is over. */
struct append_ctx {
	struct conn *conn;
	struct imap_cmd *cmd;
};

/* APPEND mailbox [flag-list] [date-time] (literal | UTF8 (literal8)).
 * NULL on success, else the BAD text. */
static const char *append_parse(struct imap_cmd *cmd, struct append_args *a)
{
	struct imap_arg *args = cmd->args;
	size_t n = cmd->arg_count, i = 1;

	if (n < 2)
		return "APPEND needs a mailbox and a message";
	a->mailbox = &args[0];
	if (i < n && args[i].type == IMAP_ARG_LIST)
		a->flags = &args[i++];
	if (i + 1 < n && args[i].type == IMAP_ARG_STRING)
		a->date = &args[i++];
	if (i + 1 < n && imap_arg_is_atom_ci(&args[i], "UTF8")) {
		/* RFC 6855 §4: UTF8 (~{n}) carries a message with UTF-8 headers. */
		if (args[i + 1].type != IMAP_ARG_LIST || args[i + 1].list_count != 1 ||
		    args[i + 1].list[0].type != IMAP_ARG_LITERAL)
			return "UTF8 needs a literal in parentheses";
		a->message = &args[i + 1].list[0];
		i += 2;
	} else if (i < n && args[i].type == IMAP_ARG_LITERAL) {
		a->message = &args[i++];
	} else {
		return "Message literal expected";
	}
	if (i != n)
		return "MULTIAPPEND is not supported";
	return NULL;
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

static void append_done(struct delivery_job *job)
{
	struct append_ctx *actx = job->ctx;
	struct conn *c = actx->conn;
	struct imap_session *s = c->state;
	const struct delivery_rcpt *r = &job->rcpts[0];

	if (!c->closing) {
		if (r->err == TERN_ERR_NONE) {
			/* imap_tagged reports the new message first when it went
			 * to the selected folder (RFC 3501 §6.3.11). */
			imap_tagged(s, actx->cmd, "OK [APPENDUID %u %u] Append completed",
				    r->uidvalidity, r->uid);
			imap_notify_changed(s);
		} else if (r->err == TERN_ERR_NOTFOUND) {
			imap_tagged(s, actx->cmd, "NO [TRYCREATE] Mailbox does not exist");
		} else if (r->err == TERN_ERR_INVALID) {
			imap_tagged(s, actx->cmd, "NO [CANNOT] Invalid flags or keywords");
		} else {
			imap_store_error(s, actx->cmd, "append", r->err);
		}
	}
	free(actx);
	delivery_job_free(&job);
	imap_command_finished(s);
	conn_unref(&c);
}

/* Refuses early, before the pipeline, what is known to fail: a missing
 * folder and a message over quota. 0 = go on, -1 = replied. */
static int append_precheck(struct imap_session *s, const struct imap_cmd *cmd,
			   const char *folder, size_t size)
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
	return 0;
}

static int append_submit(struct imap_session *s, struct imap_cmd *cmd, char *folder,
			 struct append_args *a, uint32_t flags, char *keywords, int64_t date,
			 int32_t tz)
{
	struct delivery_job *job = delivery_job_new(1);
	struct append_ctx *actx = malloc(sizeof(*actx));

	if (job == NULL || actx == NULL)
		goto oom;
	job->rcpts[0].user = strdup(s->user);
	job->rcpts[0].folder = folder;
	folder = NULL;
	job->keywords = keywords;
	keywords = NULL;
	job->data = take_message(a->message, &job->size);
	if (job->rcpts[0].user == NULL || job->data == NULL)
		goto oom;
	job->flags = flags;
	job->internal_date = date;
	job->internal_tz = tz;
	job->done = append_done;
	*actx = (struct append_ctx){ .conn = s->conn, .cmd = cmd };
	job->ctx = actx;
	job->loop = s->conn->loop;
	conn_ref(s->conn);
	delivery_submit(s->conn->loop->server->delivery, job);
	return 0;
oom:
	free(actx);
	free(folder);
	free(keywords);
	delivery_job_free(&job);
	return -1;
}

IMAP_HANDLER(cmd_append)
{
	struct append_args a = {0};
	const char *bad = append_parse(cmd, &a);
	uint32_t flags = 0;
	char *keywords = NULL, *folder = NULL;
	int64_t date = 0;
	int tz = local_tz_minutes();

	if (bad == NULL && a.flags != NULL && imap_flags_parse(a.flags, &flags, &keywords, &bad) < 0)
		bad = bad != NULL ? bad : "Invalid flags";
	if (bad == NULL && a.date != NULL &&
	    imap_datetime_parse(a.date->str, a.date->len, &date, &tz) < 0)
		bad = "Invalid date-time";
	if (bad != NULL) {
		imap_bad(s, cmd, bad);
		goto fail;
	}
	folder = imap_mailbox_arg(s, cmd, a.mailbox);
	if (folder == NULL)
		goto fail;
	if (a.message->len == 0) {
		imap_tagged(s, cmd, "NO Empty message");
		goto fail;
	}
	if (append_precheck(s, cmd, folder, a.message->len) < 0)
		goto fail;
	if (append_submit(s, cmd, folder, &a, flags, keywords, date, tz) < 0) {
		imap_store_error(s, cmd, "append", TERN_ERR_NOMEM);
		return IMAP_CMD_DONE;
	}
	return IMAP_CMD_ASYNC;
fail:
	free(keywords);
	free(folder);
	return IMAP_CMD_DONE;
}
