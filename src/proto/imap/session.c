/* IMAP connection glue: greeting, the input loop over the pure parser
 * (literal continuations, raw-line mode for IDLE and AUTHENTICATE), dispatch
 * through the command table with state checks, reporting of mailbox changes
 * before tagged replies, async commands, bad-command accounting, shutdown and
 * idle timeout. Commands live in cmd-*.c. */
#include "proto/imap/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "core/fault.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "proto/auth.h"
#include "proto/imap/cmd-notify.h"
#include "proto/imap/commands.h"
#include "proto/imap/stale-fix.h"
#include "proto/reply.h"
#include "proxy/session-open.h"
#include "cluster/inbound.h"
#include "server/delivery.h"
#include "server/lookup.h"
#include "server/moved.h"
#include "server/loop.h"
#include "server/notify.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/watchdog.h"
#include "store/store.h"

const struct tern_config *imap_config(const struct imap_session *s)
{
	return s->conn->loop->server->config;
}

struct evbuffer *imap_out(struct imap_session *s)
{
	return conn_output(s->conn);
}

void imap_out_add(struct imap_session *s, const void *data, size_t len)
{
	(void)conn_write(s->conn, data, len);
}

void imap_out_printf(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	(void)conn_vprintf(s->conn, fmt, ap);
	va_end(ap);
}

void imap_out_check(struct imap_session *s, int r)
{
	if (r < 0)
		conn_write_failed(s->conn);
}

bool imap_out_failed(const struct imap_session *s)
{
	return s->conn->write_failed;
}

/* ---- capabilities ---- */

const char *imap_capabilities(const struct imap_session *s)
{
	static _Thread_local char buf[1024];
	if (s->state == IMAP_STATE_NOT_AUTH) {
		bool plain = auth_plaintext_allowed(s->conn, s->tls_active);
		bool starttls = !s->tls_active && tls_available(s->conn->loop->server);
		/* LITERAL-: before login a literal is at most 4096 bytes, so
		 * LITERAL+ (any size) would promise too much (RFC 7888) */
		snprintf(buf, sizeof(buf), "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL-%s%s",
			 starttls ? " STARTTLS" : "", plain ? " AUTH=PLAIN" : " LOGINDISABLED");
		return buf;
	}
	int n = snprintf(buf, sizeof(buf),
			 "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL+ NAMESPACE UNSELECT "
			 "UIDPLUS MOVE CHILDREN SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED "
			 "LIST-STATUS STATUS=SIZE CONDSTORE QRESYNC ESEARCH SEARCHRES QUOTA "
			 "QUOTA=RES-STORAGE UTF8=ACCEPT SORT SORT=DISPLAY ESORT CONTEXT=SEARCH "
			 "CONTEXT=SORT PARTIAL THREAD=ORDEREDSUBJECT THREAD=REFERENCES WITHIN "
			 "MULTIAPPEND CATENATE BINARY PREVIEW OBJECTID SAVEDATE NOTIFY "
			 "APPENDLIMIT=%llu%s",
			 (unsigned long long)s->conn->loop->server->config->max_message_size,
			 s->compress_active ? "" : " COMPRESS=DEFLATE");
	/* a capability cut off would be worse than a long line */
	if (n < 0 || (size_t)n >= sizeof(buf))
		log_error("imap: the capability list does not fit in %zu bytes", sizeof(buf));
	return buf;
}

/* ---- replies ---- */

void imap_untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	imap_out_add(s, "* ", 2);
	(void)conn_vprintf(s->conn, fmt, ap);
	imap_out_add(s, "\r\n", 2);
	va_end(ap);
}

/* RFC 3501 §7.4.1: no EXPUNGE while a FETCH, STORE or SEARCH is answered
 * (their UID forms are fine: UIDs do not shift). */
static void sync_before_reply(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (s->view == NULL || cmd != s->current || (s->current_flags & IMAP_CMD_NO_SYNC) != 0 ||
	    s->conn->closing)
		return;
	bool allow_expunge = (s->current_flags & IMAP_CMD_SYNC_NO_EXPUNGE) == 0 || cmd->uid;
	enum tern_error err = TERN_ERR_NONE;
	if (imap_view_sync(s, allow_expunge, &err) < 0)
		log_warn("imap: user=%s, rip=%s: reporting mailbox changes failed: %s", s->user,
			 s->conn->peer_addr, tern_error_str(err));
}

void imap_tagged(struct imap_session *s, const struct imap_cmd *cmd, const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0) {
		conn_printf(s->conn, "%s NO [SERVERBUG] Out of memory\r\n", cmd->tag);
		return;
	}
	if (strncmp(text, "BAD", 3) != 0)
		sync_before_reply(s, cmd);
	/* RFC 7162 §3.1: the first CONDSTORE-enabling command with a mailbox
	 * selected reports its HIGHESTMODSEQ (SELECT/EXAMINE report it anyway). */
	if (s->condstore && !s->condstore_at_start && cmd == s->current && s->view != NULL &&
	    strcasecmp(cmd->name, "SELECT") != 0 && strcasecmp(cmd->name, "EXAMINE") != 0)
		imap_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest",
			      (unsigned long long)s->view->highestmodseq);
	s->condstore_at_start = s->condstore;
	conn_printf(s->conn, "%s %s\r\n", cmd->tag, text);
	free(text);
	imap_stale_fix_kick(s);
}

static void too_many_bad(struct imap_session *s)
{
	if (++s->bad_commands < imap_config(s)->max_bad_commands)
		return;
	log_info("imap: rip=%s: too many bad commands, closing", s->conn->peer_addr);
	imap_untagged(s, "BYE Too many invalid commands");
	conn_close(s->conn);
}

void imap_bad(struct imap_session *s, const struct imap_cmd *cmd, const char *text)
{
	/* The argument parsers (search, fetch, flags, names, sets) report
	 * running out of memory as their error text: not the client's mistake,
	 * so the temporary TERN_ERR_NOMEM reply, and no bad command. */
	if (strcmp(text, "Out of memory") == 0) {
		imap_store_error(s, cmd, "parsing the arguments", TERN_ERR_NOMEM);
		return;
	}
	conn_printf(s->conn, "%s BAD %s\r\n", cmd->tag, text);
	too_many_bad(s);
}

void imap_store_error(struct imap_session *s, const struct imap_cmd *cmd, const char *operation,
		      enum tern_error err)
{
	const char *user = s->user != NULL ? s->user : "?";
	switch (err) {
	case TERN_ERR_NOTFOUND:
	case TERN_ERR_EXISTS:
	case TERN_ERR_INVALID:
	case TERN_ERR_NOQUOTA:
	case TERN_ERR_TOOBIG:
		/* the client asked for something impossible: not a server fault */
		log_debug("imap: user=%s, rip=%s: %s: %s", user, s->conn->peer_addr, operation,
			  tern_error_str(err));
		break;
	case TERN_ERR_TEMP:
	case TERN_ERR_UNAVAILABLE:
		log_warn("imap: user=%s, rip=%s: %s failed: %s", user, s->conn->peer_addr,
			 operation, tern_error_str(err));
		break;
	default:
		log_error("imap: user=%s, rip=%s: %s failed: %s", user, s->conn->peer_addr,
			  operation, tern_error_str(err));
		break;
	}
	imap_tagged(s, cmd, "%s", tern_reply_for(err)->imap);
}

void imap_notify_changed(struct imap_session *s)
{
	if (s->user != NULL)
		notify_user_changed(s->user);
}

void imap_read_line(struct imap_session *s, void (*fn)(struct imap_session *s, char *line))
{
	s->line_handler = fn;
	if (s->conn->read_paused)
		conn_resume(s->conn);
}

/* ---- shutdown ---- */

/* A session waiting on its own async work (password check, APPEND commit)
 * closes when that ends; any other closes now. */
static bool close_if_stopping(struct imap_session *s)
{
	if (!s->conn->shutting_down || s->conn->closing)
		return false;
	if (s->pending != NULL && s->line_handler == NULL)
		return false;
	imap_untagged(s, "BYE Server shutting down");
	conn_close(s->conn);
	return true;
}

void imap_command_finished(struct imap_session *s)
{
	s->line_handler = NULL;
	s->idling = false;
	if (s->cmd_state != NULL && s->cmd_state_free != NULL)
		s->cmd_state_free(s->cmd_state);
	s->cmd_state = NULL;
	s->cmd_state_free = NULL;
	s->current = NULL;
	imap_cmd_free(&s->pending);
	if (close_if_stopping(s))
		return;
	imap_notify_after_command(s);
	/* inside the input loop this only re-enables reading; the loop goes on */
	conn_resume(s->conn);
}

static bool moved_away(struct imap_session *s);

/* ---- dispatch ---- */

static void dispatch(struct imap_session *s, struct imap_cmd *cmd)
{
	const struct imap_command *def = imap_command_find(cmd->name);
	if (def == NULL || (cmd->uid && (def->flags & IMAP_CMD_UID_OK) == 0)) {
		imap_bad(s, cmd, "Unknown command");
		imap_cmd_free(&cmd);
		return;
	}
	if ((def->states & s->state) == 0) {
		imap_bad(s, cmd, "Command not valid in this state");
		imap_cmd_free(&cmd);
		return;
	}
	if ((def->flags & IMAP_CMD_NO_ARGS) != 0 && cmd->arg_count > 0) {
		imap_bad(s, cmd, "Unexpected arguments");
		imap_cmd_free(&cmd);
		return;
	}
	if (moved_away(s)) {
		imap_cmd_free(&cmd);
		return;
	}
	s->bad_commands = 0;
	s->current = cmd;
	s->current_flags = def->flags;
	s->condstore_at_start = s->condstore;
	/* names what this loop runs, should the watchdog find it stuck */
	watch_activity("imap", s->user, def->name);
	if (s->user != NULL)
		fault_stall_once("LOOP_STALL");   /* tests: the first command after a login */
	enum imap_cmd_result result = def->handler(s, cmd);
	watch_activity_clear();
	if (result == IMAP_CMD_ASYNC) {
		s->pending = cmd;
		if (s->line_handler == NULL)
			conn_pause(s->conn);
		return;
	}
	s->current = NULL;
	imap_cmd_free(&cmd);
	imap_notify_after_command(s);
}

/* One step of raw-line mode: false when more input is needed. */
static bool input_line(struct imap_session *s, struct evbuffer *in, const struct evbuffer_iovec *v)
{
	size_t consumed = 0;
	char *line = NULL;
	enum tern_parse r = imap_parser_read_line(s->parser, v->iov_base, v->iov_len, &consumed,
						  &line);
	if (r == TERN_PARSE_ERROR_FATAL) {
		imap_untagged(s, "BYE Line too long");
		conn_close(s->conn);
		return false;
	}
	evbuffer_drain(in, consumed);
	if (r != TERN_PARSE_OK)
		return true;
	void (*fn)(struct imap_session *, char *) = s->line_handler;
	s->line_handler = NULL;
	watch_activity("imap", s->user, s->current != NULL ? s->current->name : NULL);
	fn(s, line);
	watch_activity_clear();
	/* the handler went on asynchronously without wanting a line */
	if (s->pending != NULL && s->line_handler == NULL && !s->conn->read_paused)
		conn_pause(s->conn);
	return true;
}

static void parse_error(struct imap_session *s, const char *error)
{
	const char *tag = imap_parser_tag(s->parser);
	if (imap_parser_error_toobig(s->parser)) {
		conn_printf(s->conn, "%s NO [TOOBIG] %s\r\n", tag, error);
		return;
	}
	conn_printf(s->conn, "%s BAD %s\r\n", tag, error);
	too_many_bad(s);
}

/* A synchronising literal of a command that cannot run now (unknown, or not
 * in this state: APPEND before login) is refused before its bytes are
 * asked for; the client then sends its next command. */
static bool literal_wanted(struct imap_session *s)
{
	const char *name = imap_parser_cmd_name(s->parser);
	const struct imap_command *def = name != NULL ? imap_command_find(name) : NULL;
	const char *why = def == NULL ? "Unknown command" :
			  (def->states & s->state) == 0 ? "Command not valid in this state" : NULL;
	if (why == NULL)
		return true;
	conn_printf(s->conn, "%s BAD %s\r\n", imap_parser_tag(s->parser), why);
	imap_parser_reset_line(s->parser);
	too_many_bad(s);
	return false;
}

static void input_command(struct imap_session *s, struct evbuffer *in,
			  const struct evbuffer_iovec *v)
{
	size_t consumed = 0;
	struct imap_cmd *cmd = NULL;
	const char *error = NULL;
	enum tern_parse r = imap_parser_feed(s->parser, v->iov_base, v->iov_len, &consumed, &cmd,
					     &error);
	/* Skipping an over-long line behind COMPRESS would inflate up to a
	 * thousand bytes for each one the client sent: no real client sends
	 * such a line, so the stream ends as soon as one is seen. */
	if (s->compress_active &&
	    (r == TERN_PARSE_NEED_MORE || r == TERN_PARSE_ERROR_RECOVERABLE) &&
	    imap_parser_line_too_long(s->parser)) {
		log_info("imap: user=%s, rip=%s: line too long behind COMPRESS, closing",
			 s->user != NULL ? s->user : "-", s->conn->peer_addr);
		imap_untagged(s, "BYE Line too long");
		conn_close(s->conn);
		return;
	}
	switch (r) {
	case TERN_PARSE_NEED_MORE:
		evbuffer_drain(in, consumed);
		if (imap_parser_continuation_needed(s->parser) && literal_wanted(s))
			conn_printf(s->conn, "+ Ready for literal data\r\n");
		break;
	case TERN_PARSE_OK:
		evbuffer_drain(in, consumed);
		dispatch(s, cmd);
		break;
	case TERN_PARSE_ERROR_RECOVERABLE:
		evbuffer_drain(in, consumed);
		parse_error(s, error);
		break;
	case TERN_PARSE_ERROR_FATAL:
		log_info("imap: rip=%s: %s", s->conn->peer_addr, error);
		if (imap_parser_error_toobig(s->parser))
			conn_printf(s->conn, "%s NO [TOOBIG] %s\r\n", imap_parser_tag(s->parser),
				    error);
		imap_untagged(s, "BYE %s", error);
		conn_close(s->conn);
		break;
	}
}

static void imap_input(struct conn *c)
{
	struct imap_session *s = c->state;
	if (s->in_input)
		return;   /* resumed from inside the loop below: it carries on */
	s->in_input = true;
	/* conn_input() is fetched anew each time: STARTTLS and COMPRESS replace
	 * the bufferevent under us */
	struct evbuffer *in;
	while (!c->closing && !c->read_paused && evbuffer_get_length(in = conn_input(c)) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		if (s->line_handler != NULL) {
			if (!input_line(s, in, &v))
				break;
		} else if (s->pending != NULL) {
			break;    /* async command without line mode: wait */
		} else if (!conn_throttle_input(c)) {
			input_command(s, in, &v);
		}
	}
	s->in_input = false;
	if (!c->closing && !c->read_paused)
		(void)close_if_stopping(s);
}

/* ---- change notification ---- */

void imap_session_park_store(struct imap_session *s)
{
	store_close(&s->store);
}

int imap_session_unpark_store(struct imap_session *s)
{
	if (s->store != NULL)
		return 0;
	enum tern_error err = TERN_ERR_NONE;
	if (store_open_current(imap_config(s)->data_dir, s->user, &s->store, &err) == 0)
		return 0;
	log_warn("imap: user=%s, rip=%s: cannot reopen the store after IDLE: %s", s->user,
		 s->conn->peer_addr, tern_error_str(err));
	imap_untagged(s, "BYE [UNAVAILABLE] Mailbox not available, try again later");
	conn_close(s->conn);
	return -1;
}

/* The mailbox was moved away from this node (its copy here is fenced):
 * the client reconnects and reaches the new home. */
static bool moved_away(struct imap_session *s)
{
	if (moved_none() || s->user == NULL || s->conn->closing ||
	    !moved_get(s->user, NULL, 0, NULL, 0))
		return false;
	log_info("imap: user=%s, rip=%s: mailbox moved to another node, session ended", s->user,
		 s->conn->peer_addr);
	imap_untagged(s, "BYE [UNAVAILABLE] Mailbox moved to another node, please reconnect");
	conn_close(s->conn);
	return true;
}

static void session_changed(struct notify_watcher *w)
{
	struct imap_session *s = w->ctx;
	if (moved_away(s))
		return;
	s->changes_pending = true;
	if (s->notify != NULL) {
		imap_notify_wake(s);    /* IDLE included: NOTIFY decides what goes out */
		return;
	}
	if (!s->idling || s->view == NULL || s->conn->closing)
		return;
	if (imap_session_unpark_store(s) < 0)
		return;
	enum tern_error err = TERN_ERR_NONE;
	if (imap_view_sync(s, true, &err) < 0)
		log_warn("imap: user=%s, rip=%s: IDLE update failed: %s", s->user,
			 s->conn->peer_addr, tern_error_str(err));
	imap_session_park_store(s);
}

/* The parser's limits for the session's state: before login only what a
 * login needs (TERN_PREAUTH_LITERAL_MAX), after it the configured sizes. */
static struct imap_parser_limits parser_limits(const struct tern_config *cfg, bool logged_in)
{
	struct imap_parser_limits limits = {
		.max_line_length = cfg->max_line_length,
		.max_literal_size = cfg->max_literal_size,
		.max_message_size = cfg->max_message_size,
	};
	if (!logged_in) {
		if (limits.max_literal_size > TERN_PREAUTH_LITERAL_MAX)
			limits.max_literal_size = TERN_PREAUTH_LITERAL_MAX;
		if (limits.max_message_size > limits.max_literal_size)
			limits.max_message_size = limits.max_literal_size;
	}
	return limits;
}

/* Enters AUTH state over an open store. */
static int login_enter(struct imap_session *s, const char *user, uint64_t quota, struct store *st)
{
	struct imap_parser_limits limits = parser_limits(imap_config(s), true);
	char *copy = strdup(user);
	if (copy == NULL)
		return -1;
	/* cannot fail: the same line length was accepted at open */
	(void)imap_parser_set_limits(s->parser, &limits);
	s->store = st;
	s->user = copy;
	s->state = IMAP_STATE_AUTH;
	s->quota_limit = quota;
	s->quota_read_ms = tern_now_ms();
	if (s->watcher == NULL)
		s->watcher = calloc(1, sizeof(*s->watcher));
	if (s->watcher == NULL ||
	    notify_watch(s->watcher, s->conn, s->user, session_changed, s) < 0)
		log_warn("imap: user=%s, rip=%s: no change notification (out of memory)", user,
			 s->conn->peer_addr);
	return 0;
}

/* A first login's store creation, on the user's worker. */
struct login_create {
	struct store_task task;
	struct conn *conn;
	char *user;
	uint64_t quota;
	imap_login_done_fn *done;
};

/* Nothing to do: the worker opened the store to run this, which created it. */
static int login_create_run(struct store *st, void *arg, enum tern_error *err_r)
{
	(void)st;
	(void)arg;
	(void)err_r;
	return 0;
}

static void login_open(struct imap_session *s, const char *user, uint64_t quota, bool may_create,
		       imap_login_done_fn *done);

static void login_create_done(struct store_task *t)
{
	struct login_create *lc = t->arg;
	struct conn *c = lc->conn;
	if (!c->closing) {
		struct imap_session *s = c->state;
		if (t->result < 0)
			lc->done(s, t->err != TERN_ERR_NONE ? t->err : TERN_ERR_IO);
		else
			login_open(s, lc->user, lc->quota, false, lc->done);
	}
	free(lc->user);
	free(lc);
	conn_unref(&c);
}

static void login_open(struct imap_session *s, const char *user, uint64_t quota, bool may_create,
		       imap_login_done_fn *done)
{
	struct store *st = NULL;
	enum tern_error err = TERN_ERR_NONE;
	/* Opening a current store only reads; the loop thread may do that. A
	 * missing one or one to upgrade goes to the user's worker first. */
	if (store_open_current(imap_config(s)->data_dir, user, &st, &err) == 0) {
		if (login_enter(s, user, quota, st) < 0) {
			store_close(&st);
			err = TERN_ERR_NOMEM;
		}
		done(s, err);
		return;
	}
	if ((err != TERN_ERR_NOTFOUND && err != TERN_ERR_CONFLICT) || !may_create) {
		done(s, err);
		return;
	}
	struct login_create *lc = calloc(1, sizeof(*lc));
	char *copy = strdup(user);
	if (lc == NULL || copy == NULL) {
		free(lc);
		free(copy);
		done(s, TERN_ERR_NOMEM);
		return;
	}
	lc->conn = s->conn;
	lc->user = copy;
	lc->quota = quota;
	lc->done = done;
	lc->task.user = lc->user;
	lc->task.run = login_create_run;
	lc->task.open = STORE_TASK_CREATE;
	lc->task.arg = lc;
	lc->task.done = login_create_done;
	lc->task.loop = s->conn->loop;
	conn_ref(s->conn);
	delivery_store_task(s->conn->loop->server->delivery, &lc->task);
}

void imap_session_login(struct imap_session *s, const char *user, uint64_t quota,
			imap_login_done_fn *done)
{
	login_open(s, user, quota, true, done);
}

/* ---- connection glue ---- */

static struct imap_session *session_new(struct conn *c)
{
	const struct tern_config *cfg = c->loop->server->config;
	struct imap_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	struct imap_parser_limits limits = parser_limits(cfg, false);
	s->conn = c;
	s->state = IMAP_STATE_NOT_AUTH;
	s->tls_active = tls_active(c);
	s->parser = imap_parser_new(&limits);
	if (s->parser == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

static int imap_open(struct conn *c)
{
	struct imap_session *s = session_new(c);
	c->state = s;
	if (s == NULL)
		return -1;
	conn_printf(c, "* OK [CAPABILITY %s] Tern IMAP ready\r\n", imap_capabilities(s));
	return 0;
}

int imap_session_adopt(struct conn *c, const struct cluster_open_request *req)
{
	const struct tern_config *cfg = c->loop->server->config;
	char tag[TERN_CLUSTER_PARAMS_MAX], tls[4];
	if (!cluster_param(req->params, "tag", tag, sizeof(tag)) || tag[0] == '\0')
		return -1;
	struct imap_session *s = session_new(c);
	struct imap_cmd *cmd = calloc(1, sizeof(*cmd));
	if (s == NULL || cmd == NULL || (cmd->tag = strdup(tag)) == NULL ||
	    (cmd->name = strdup("LOGIN")) == NULL) {
		imap_cmd_free(&cmd);
		if (s != NULL)
			imap_parser_free(&s->parser);
		free(s);
		return -1;
	}
	/* the client's connection security decides what is offered, and logs
	 * name the client, not the front node */
	s->tls_active = cluster_param(req->params, "tls", tls, sizeof(tls)) && strcmp(tls, "1") == 0;
	cluster_adopt_client(c, req);
	conn_switch_proto(c, &imap_proto, s, cfg->idle_timeout_ms);
	s->pending = cmd;
	conn_pause(c);
	log_info("imap: user=%s, rip=%s: session opened for front node %s", req->user,
		 c->peer_addr, req->front);
	imap_session_login(s, req->user, req->quota, imap_login_finished);
	return 0;
}

static void imap_shutdown(struct conn *c)
{
	(void)close_if_stopping(c->state);
}

static void imap_timeout(struct conn *c)
{
	struct imap_session *s = c->state;
	log_info("imap: user=%s, rip=%s: idle timeout", s->user != NULL ? s->user : "-",
		 c->peer_addr);
	imap_untagged(s, "BYE Autologout; idle for too long");
}

static void imap_free(struct conn *c)
{
	struct imap_session *s = c->state;
	if (s == NULL)
		return;
	auth_cancel(&s->auth);
	proxy_open_cancel(&s->proxy);
	lookup_cancel(&s->quota_refresh);
	if (s->watcher != NULL) {
		notify_unwatch(s->watcher);
		free(s->watcher);
	}
	if (s->cmd_state != NULL && s->cmd_state_free != NULL)
		s->cmd_state_free(s->cmd_state);
	imap_cmd_free(&s->pending);
	imap_notify_free(&s->notify);
	imap_view_close(s);
	store_close(&s->store);
	free(s->user);
	imap_parser_free(&s->parser);
	free(s);
	c->state = NULL;
}

const struct conn_proto imap_proto = {
	.name = "imap",
	.conn_class = CONN_CLASS_CLIENT,
	.login_timeout_reply = "* BYE Login timeout\r\n",
	.open = imap_open,
	.input = imap_input,
	.shutdown = imap_shutdown,
	.timeout = imap_timeout,
	.free = imap_free,
	.busy_reply = "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
	.no_memory_reply = "* BYE [UNAVAILABLE] Server out of memory, try again later\r\n",
};
