/* POP3 connection glue: greeting, the input loop over the pure parser, the
 * command table (legal states per command), CAPA and STLS, bad-command
 * accounting, shutdown and idle timeout. Commands live in cmd-*.c. */
#include "proto/pop3/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/log.h"
#include "proto/auth.h"
#include "proto/pop3/session-private.h"
#include "proto/reply.h"
#include "cluster/inbound.h"
#include "proxy/session-open.h"
#include "server/loop.h"
#include "server/moved.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/watchdog.h"

const struct tern_config *pop3_config(const struct pop3_session *s)
{
	return s->conn->loop->server->config;
}

void pop3_reply(struct pop3_session *s, const char *line)
{
	conn_printf(s->conn, "%s\r\n", line);
}

void pop3_bad_command(struct pop3_session *s, const char *line)
{
	pop3_reply(s, line);
	if (++s->bad_commands >= pop3_config(s)->max_bad_commands) {
		log_info("pop3: rip=%s: too many bad commands, closing", s->conn->peer_addr);
		pop3_reply(s, "-ERR Too many bad commands");
		conn_close(s->conn);
	}
}

void pop3_store_error(struct pop3_session *s, const char *op, enum tern_error err)
{
	if (err == TERN_ERR_TEMP || err == TERN_ERR_UNAVAILABLE)
		log_warn("pop3: user=%s, rip=%s: %s failed: %s", s->user != NULL ? s->user : "?",
			 s->conn->peer_addr, op, tern_error_str(err));
	else
		log_error("pop3: user=%s, rip=%s: %s failed: %s", s->user != NULL ? s->user : "?",
			  s->conn->peer_addr, op, tern_error_str(err));
	pop3_reply(s, tern_reply_for(err)->pop3);
}

/* RFC 2595 §4: STLS only before login, with a certificate, and once. */
static bool stls_offered(const struct pop3_session *s)
{
	return tls_available(s->conn->loop->server) && !tls_active(s->conn) &&
	       s->state == POP3_STATE_AUTH;
}

static void cmd_capa(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	/* RFC 2449 §5; USER and SASL only where a password may be sent (§6.8) */
	bool plain = auth_plaintext_allowed(s->conn, tls_active(s->conn));
	conn_printf(s->conn, "+OK Capability list follows\r\nTOP\r\n%sUIDL\r\nRESP-CODES\r\n"
			     "AUTH-RESP-CODE\r\nPIPELINING\r\n%s%sIMPLEMENTATION Tern\r\n.\r\n",
		    plain ? "USER\r\n" : "", plain ? "SASL PLAIN\r\n" : "",
		    stls_offered(s) ? "STLS\r\n" : "");
}

static void cmd_stls(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	if (tls_active(s->conn)) {
		pop3_bad_command(s, "-ERR Command not permitted when TLS active");
		return;
	}
	if (!tls_available(s->conn->loop->server)) {
		pop3_reply(s, "-ERR STLS not available");
		return;
	}
	/* a USER sent in clear does not carry over into the TLS session */
	free(s->user_arg);
	s->user_arg = NULL;
	pop3_reply(s, "+OK Begin TLS negotiation");
	if (tls_start(s->conn) < 0) {
		log_error("pop3: rip=%s: cannot start TLS", s->conn->peer_addr);
		conn_close(s->conn);
	}
}

struct pop3_command {
	void (*handler)(struct pop3_session *s, const struct pop3_cmd *cmd);
	unsigned states;   /* enum pop3_state bits where the command is legal */
};

#define ANY (POP3_STATE_AUTH | POP3_STATE_TRANSACTION)
static const struct pop3_command pop3_commands[POP3_CMD_COUNT] = {
	[POP3_CMD_USER] = {pop3_cmd_user, POP3_STATE_AUTH},
	[POP3_CMD_PASS] = {pop3_cmd_pass, POP3_STATE_AUTH},
	[POP3_CMD_APOP] = {pop3_cmd_apop, POP3_STATE_AUTH},
	[POP3_CMD_AUTH] = {pop3_cmd_auth, POP3_STATE_AUTH},
	[POP3_CMD_STLS] = {cmd_stls, POP3_STATE_AUTH},
	[POP3_CMD_CAPA] = {cmd_capa, ANY},
	[POP3_CMD_QUIT] = {pop3_cmd_quit, ANY},
	[POP3_CMD_STAT] = {pop3_cmd_stat, POP3_STATE_TRANSACTION},
	[POP3_CMD_LIST] = {pop3_cmd_list, POP3_STATE_TRANSACTION},
	[POP3_CMD_UIDL] = {pop3_cmd_uidl, POP3_STATE_TRANSACTION},
	[POP3_CMD_RETR] = {pop3_cmd_retr, POP3_STATE_TRANSACTION},
	[POP3_CMD_TOP] = {pop3_cmd_top, POP3_STATE_TRANSACTION},
	[POP3_CMD_DELE] = {pop3_cmd_dele, POP3_STATE_TRANSACTION},
	[POP3_CMD_RSET] = {pop3_cmd_rset, POP3_STATE_TRANSACTION},
	[POP3_CMD_NOOP] = {pop3_cmd_noop, POP3_STATE_TRANSACTION},
	[POP3_CMD_CONTINUATION] = {pop3_cmd_sasl_response, POP3_STATE_AUTH},
};
#undef ANY

static void dispatch(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	const struct pop3_command *c = &pop3_commands[cmd->type];
	if ((c->states & s->state) == 0) {
		pop3_bad_command(s, s->state == POP3_STATE_AUTH ? "-ERR Log in first"
								: "-ERR Already logged in");
		return;
	}
	if (cmd->type != POP3_CMD_CONTINUATION)
		s->bad_commands = 0;
	/* the maildrop was moved to another node meanwhile: its copy here is
	 * fenced; the client reconnects and reaches the new home */
	if (s->user != NULL && !moved_none() && moved_get(s->user, NULL, 0, NULL, 0)) {
		log_info("pop3: user=%s, rip=%s: maildrop moved to another node, session ended",
			 s->user, s->conn->peer_addr);
		pop3_reply(s, "-ERR [SYS/TEMP] Maildrop moved to another node, please reconnect");
		conn_close(s->conn);
		return;
	}
	/* names what this loop runs, should the watchdog find it stuck */
	watch_activity("pop3", s->user, pop3_cmd_name(cmd->type));
	c->handler(s, cmd);
	watch_activity_clear();
}

/* A line the parser refused. During a SASL exchange it ends the exchange. */
static void parse_error(struct pop3_session *s, const char *error)
{
	if (s->sasl_pending) {
		s->sasl_pending = false;
		pop3_reply(s, "-ERR [AUTH] Invalid SASL response");
		return;
	}
	pop3_bad_command(s, error);
}

bool pop3_close_if_stopping(struct pop3_session *s)
{
	if (!s->conn->shutting_down || s->auth != NULL || s->store_task_pending)
		return false;
	/* without QUIT nothing is deleted (RFC 1939 §6) */
	pop3_reply(s, "-ERR [SYS/TEMP] Server shutting down, try again later");
	conn_close(s->conn);
	return true;
}

static void pop3_input(struct conn *c)
{
	struct pop3_session *s = c->state;
	struct evbuffer *in = conn_input(c);
	while (!c->closing && !c->read_paused && evbuffer_get_length(in) > 0) {
		if (conn_throttle_input(c))
			break;
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t consumed = 0;
		struct pop3_cmd *cmd = NULL;
		const char *error = NULL;
		enum tern_parse r = pop3_parser_feed(s->parser, v.iov_base, v.iov_len, &consumed,
						     &cmd, &error);
		evbuffer_drain(in, consumed);
		switch (r) {
		case TERN_PARSE_NEED_MORE:
			break;
		case TERN_PARSE_OK:
			dispatch(s, cmd);
			pop3_cmd_free(&cmd);
			break;
		case TERN_PARSE_ERROR_RECOVERABLE:
			parse_error(s, error);
			break;
		case TERN_PARSE_ERROR_FATAL:
			log_info("pop3: rip=%s: %s", c->peer_addr, error);
			pop3_reply(s, error);
			conn_close(c);
			return;
		}
	}
	if (!c->closing && !c->read_paused)
		(void)pop3_close_if_stopping(s);
}

static struct pop3_session *session_new(struct conn *c)
{
	const struct tern_config *cfg = c->loop->server->config;
	struct pop3_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	struct pop3_parser_limits limits = {.max_line_length = cfg->max_line_length};
	s->conn = c;
	s->state = POP3_STATE_AUTH;
	s->parser = pop3_parser_new(&limits);
	if (s->parser == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

static int pop3_open(struct conn *c)
{
	struct pop3_session *s = session_new(c);
	c->state = s;
	if (s == NULL)
		return -1;
	conn_printf(c, "+OK Tern POP3 ready\r\n");
	return 0;
}

int pop3_session_adopt(struct conn *c, const struct cluster_open_request *req)
{
	const struct tern_config *cfg = c->loop->server->config;
	struct pop3_session *s = session_new(c);
	if (s == NULL)
		return -1;
	cluster_adopt_client(c, req);
	conn_switch_proto(c, &pop3_proto, s, cfg->idle_timeout_ms);
	log_info("pop3: user=%s, rip=%s: session opened for front node %s", req->user,
		 c->peer_addr, req->front);
	pop3_login_adopted(s, req->user);
	return 0;
}

static void pop3_shutdown(struct conn *c)
{
	/* a session waiting on a login check closes when the result comes */
	(void)pop3_close_if_stopping(c->state);
}

static void pop3_timeout(struct conn *c)
{
	conn_printf(c, "-ERR Disconnected for inactivity\r\n");
}

static void pop3_free(struct conn *c)
{
	struct pop3_session *s = c->state;
	if (s == NULL)
		return;
	auth_cancel(&s->auth);
	proxy_open_cancel(&s->proxy);
	pop3_maildrop_close(s);
	free(s->user_arg);
	pop3_parser_free(&s->parser);
	free(s);
	c->state = NULL;
}

const struct conn_proto pop3_proto = {
	.name = "pop3",
	.conn_class = CONN_CLASS_CLIENT,
	.login_timeout_reply = "-ERR Login timeout\r\n",
	.open = pop3_open,
	.input = pop3_input,
	.shutdown = pop3_shutdown,
	.timeout = pop3_timeout,
	.free = pop3_free,
	.busy_reply = "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
	.no_memory_reply = "-ERR [SYS/TEMP] Server out of memory, try again later\r\n",
};
