/* POP3 AUTHORIZATION state: USER/PASS (RFC 1939 §7), APOP (refused: it needs
 * the clear-text password on the server), AUTH PLAIN (RFC 5034), and opening
 * the maildrop once the password is checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proto/auth.h"
#include "proto/pop3/inuse.h"
#include "proto/pop3/session-private.h"
#include "proxy/session-open.h"
#include "server/delivery.h"
#include "server/freeze.h"
#include "server/loop.h"
#include "server/server.h"
#include "server/tls.h"
#include "store/store.h"

static const char err_plaintext[] =
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections";

/* Loads the INBOX listing into s->msgs. The store is opened, not created:
 * a first login finds none (s->store stays NULL, TERN_ERR_NOTFOUND). */
static int maildrop_load(struct pop3_session *s, enum tern_error *err_r, const char **op_r)
{
	struct store_folder f;
	*op_r = "open maildrop";
	if (store_open_current(pop3_config(s)->data_dir, s->user, &s->store, err_r) < 0)
		return -1;
	*op_r = "read INBOX";
	int found = store_folder_get(s->store, "INBOX", &f, err_r);
	if (found <= 0) {
		if (found == 0)
			*err_r = TERN_ERR_NOTFOUND;
		return -1;
	}
	s->uidvalidity = f.uidvalidity;
	store_folder_clear(&f);
	struct store_msg *list = NULL;
	size_t count = 0;
	*op_r = "list INBOX";
	if (store_msg_list(s->store, "INBOX", &list, &count, err_r) < 0)
		return -1;
	s->msgs = calloc(count > 0 ? count : 1, sizeof(*s->msgs));
	if (s->msgs == NULL) {
		store_msgs_free(&list, count);
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	for (size_t i = 0; i < count; i++)
		s->msgs[i] = (struct pop3_msg){ .uid = list[i].uid, .flags = list[i].flags,
						.size = list[i].size };
	s->msg_count = count;
	store_msgs_free(&list, count);
	return 0;
}

void pop3_maildrop_close(struct pop3_session *s)
{
	store_close(&s->store);
	free(s->msgs);
	s->msgs = NULL;
	s->msg_count = 0;
	if (s->user != NULL) {
		pop3_inuse_release(s->user);
		free(s->user);
		s->user = NULL;
	}
	s->state = POP3_STATE_AUTH;
}

/* The maildrop is loaded (err = TERN_ERR_NONE) or could not be: the login
 * is answered. */
static void login_answer(struct pop3_session *s, enum tern_error err, const char *op)
{
	if (err != TERN_ERR_NONE) {
		pop3_store_error(s, op, err);
		pop3_maildrop_close(s);
		return;
	}
	s->state = POP3_STATE_TRANSACTION;
	conn_set_authenticated(s->conn);
	conn_printf(s->conn, "+OK Logged in, %zu messages\r\n", s->msg_count);
}

/* A first login's store creation, on the user's worker: creating a store is
 * a write, never done on the loop thread. */
struct maildrop_create {
	struct store_task task;
	struct conn *conn;
	char *user;
};

/* Nothing to do: the worker opened the store to run this, which created it. */
static int maildrop_create_run(struct store *st, void *arg, enum tern_error *err_r)
{
	(void)st;
	(void)arg;
	(void)err_r;
	return 0;
}

static void maildrop_create_done(struct store_task *t)
{
	struct maildrop_create *mc = t->arg;
	struct conn *c = mc->conn;
	struct pop3_session *s = c->state;
	s->store_task_pending = false;
	if (!c->closing) {
		enum tern_error err = TERN_ERR_NONE;
		const char *op = "create maildrop";
		if (t->result < 0)
			err = t->err != TERN_ERR_NONE ? t->err : TERN_ERR_IO;
		else if (maildrop_load(s, &err, &op) == 0)
			err = TERN_ERR_NONE;
		login_answer(s, err, op);
		if (!pop3_close_if_stopping(s))
			conn_resume(c);
	}
	free(mc->user);
	free(mc);
	conn_unref(&c);
}

/* Queues the store's creation; false (nothing queued) without memory. */
static bool maildrop_create(struct pop3_session *s)
{
	struct maildrop_create *mc = calloc(1, sizeof(*mc));
	char *user = strdup(s->user);
	if (mc == NULL || user == NULL) {
		free(mc);
		free(user);
		return false;
	}
	mc->conn = s->conn;
	mc->user = user;
	mc->task.user = mc->user;
	mc->task.run = maildrop_create_run;
	mc->task.open = STORE_TASK_CREATE;
	mc->task.arg = mc;
	mc->task.done = maildrop_create_done;
	mc->task.loop = s->conn->loop;
	s->store_task_pending = true;
	conn_ref(s->conn);
	delivery_store_task(s->conn->loop->server->delivery, &mc->task);
	return true;
}

/* RFC 1939 §7 PASS: lock the maildrop, then enter TRANSACTION. Answers now,
 * or, for a first login, once the store exists (s->store_task_pending). */
static void login_complete(struct pop3_session *s, const char *user)
{
	if (!pop3_inuse_acquire(user)) {
		log_info("pop3: user=%s, rip=%s: maildrop in use by another session", user,
			 s->conn->peer_addr);
		pop3_reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
		return;
	}
	s->user = strdup(user);
	if (s->user == NULL) {
		pop3_inuse_release(user);
		pop3_reply(s, "-ERR [SYS/TEMP] Out of memory");
		return;
	}
	enum tern_error err = TERN_ERR_NONE;
	const char *op = "open maildrop";
	if (maildrop_load(s, &err, &op) == 0) {
		login_answer(s, TERN_ERR_NONE, op);
		return;
	}
	/* missing, or to be upgraded: the user's worker does it first */
	if ((err == TERN_ERR_NOTFOUND || err == TERN_ERR_CONFLICT) && s->store == NULL) {
		if (maildrop_create(s))
			return;
		err = TERN_ERR_NOMEM;
	}
	login_answer(s, err, op);
}

static void proxy_failed(struct conn *c, const char *reply, void *ctx)
{
	struct pop3_session *s = ctx;
	char line[300];
	snprintf(line, sizeof(line), "-ERR [SYS/TEMP] %s", reply);
	pop3_reply(s, line);
	if (!pop3_close_if_stopping(s))
		conn_resume(c);
}

/* The home node answers the PASS (or AUTH) itself. */
static void proxy_to_home(struct pop3_session *s, const struct auth_user *user)
{
	char params[32];
	snprintf(params, sizeof(params), "tls=%d loopback=%d", tls_active(s->conn) ? 1 : 0,
		 s->conn->peer_loopback ? 1 : 0);
	struct proxy_request r = {
		.kind = RELAY_POP3,
		.user = user->name,
		.home = user->home,
		.home_addr = user->home_addr,
		.params = params,
	};
	proxy_session_open(s->conn, &r, proxy_failed, s, &s->proxy);
}

void pop3_login_adopted(struct pop3_session *s, const char *user)
{
	conn_pause(s->conn);
	login_complete(s, user);
	if (s->store_task_pending)
		return;
	if (!pop3_close_if_stopping(s))
		conn_resume(s->conn);
}

/* A login for a user frozen by a move (server/freeze.h), parked until the
 * freeze ends or move_freeze_timeout; input stays paused meanwhile. It
 * holds a reference on the connection; one closed meanwhile is let go. */
struct parked_login {
	struct conn *conn;
	struct freeze_park *park;
	uint64_t quota;
	char user[];
};

static void login_unparked(void *ctx, const struct freeze_outcome *o)
{
	struct parked_login *pl = ctx;
	struct conn *c = pl->conn;
	if (!c->closing) {
		struct pop3_session *s = c->state;
		bool proxied = false;
		if (o->result == FREEZE_SERVE_HERE) {
			login_complete(s, pl->user);
		} else if (o->result == FREEZE_MOVED) {
			struct auth_user moved = {
				.name = pl->user,
				.quota = pl->quota,
				.home = o->node,
				.home_addr = o->addr,
			};
			log_info("pop3: user=%s, rip=%s: moved to %s while parked, proxied there",
				 pl->user, c->peer_addr, o->node);
			proxy_to_home(s, &moved);
			proxied = true;   /* input stays paused until the home answers */
		} else {
			log_info("pop3: user=%s, rip=%s: still frozen after %u ms (%s)", pl->user,
				 c->peer_addr, c->loop->server->config->move_freeze_timeout_ms, o->why);
			pop3_reply(s, "-ERR [IN-USE] Mailbox is being moved, try again later");
		}
		if (!proxied && !s->store_task_pending && !pop3_close_if_stopping(s))
			conn_resume(c);
	}
	free(pl);
	conn_unref(&c);
}

/* The move check of a login for a user homed here: true if it was parked,
 * false to log in now (or, without memory, after a refusal). */
static bool login_parked(struct pop3_session *s, const struct auth_user *user, bool *refused_r)
{
	*refused_r = false;
	if (freeze_none())
		return false;
	size_t len = strlen(user->name);
	struct parked_login *pl = calloc(1, sizeof(*pl) + len + 1);
	if (pl != NULL) {
		memcpy(pl->user, user->name, len + 1);
		pl->quota = user->quota;
		pl->conn = s->conn;
		uint64_t deadline =
			tern_now_ms() + s->conn->loop->server->config->move_freeze_timeout_ms;
		int parked = freeze_park(s->conn->loop, pl->user, "pop3 login", deadline,
					 login_unparked, pl, &pl->park);
		if (parked > 0) {
			conn_ref(s->conn);
			return true;
		}
		free(pl);
		if (parked == 0)
			return false;
	}
	pop3_reply(s, "-ERR [SYS/TEMP] Out of memory, try again later");
	*refused_r = true;
	return false;
}

static void auth_done(struct conn *c, enum auth_result r, const struct auth_user *user, void *ctx)
{
	struct pop3_session *s = ctx;
	if (c->closing)
		return;
	switch (r) {
	case AUTH_OK:
		if (!c->shutting_down) {
			bool refused;
			if (login_parked(s, user, &refused))
				return;   /* login_unparked answers and reads on */
			if (!refused)
				login_complete(s, user->name);
		}
		break;
	case AUTH_FAILED:
		pop3_reply(s, "-ERR [AUTH] Authentication failed");
		break;
	case AUTH_TEMPFAIL:
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later");
		break;
	case AUTH_NOT_HERE:
		if (c->shutting_down) {
			pop3_reply(s, "-ERR [SYS/TEMP] Server shutting down, try again later");
			break;
		}
		proxy_to_home(s, user);
		return;   /* input stays paused until the home node answers */
	}
	if (s->store_task_pending)
		return;   /* a first login: maildrop_create_done answers and resumes */
	if (!pop3_close_if_stopping(s))
		conn_resume(c);
}

static void start_login(struct pop3_session *s, const char *login, const char *password)
{
	conn_pause(s->conn);
	auth_verify(s->conn, login, password, "PLAIN", auth_done, s, &s->auth);
}

void pop3_cmd_user(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	free(s->user_arg);
	s->user_arg = NULL;
	if (!auth_plaintext_allowed(s->conn, tls_active(s->conn))) {
		pop3_reply(s, err_plaintext);
		return;
	}
	s->user_arg = strdup(cmd->args[0]);
	pop3_reply(s, s->user_arg != NULL ? "+OK" : "-ERR [SYS/TEMP] Out of memory");
}

void pop3_cmd_pass(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (s->user_arg == NULL) {
		pop3_bad_command(s, "-ERR No user name given (send USER first)");
		return;
	}
	char *login = s->user_arg;
	s->user_arg = NULL;
	if (!auth_plaintext_allowed(s->conn, tls_active(s->conn)))
		pop3_reply(s, err_plaintext);
	else
		start_login(s, login, cmd->args[0]);
	free(login);
}

void pop3_cmd_apop(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	pop3_reply(s, "-ERR APOP not supported");
}

/* Decodes a PLAIN response and starts the check. */
static void sasl_plain(struct pop3_session *s, const char *response)
{
	char *authcid, *passwd;
	/* RFC 5034 §4: "*" cancels; "=" stands for an empty initial response */
	if (strcmp(response, "*") == 0) {
		pop3_reply(s, "-ERR Authentication cancelled");
		return;
	}
	if (auth_sasl_plain_decode(response, &authcid, &passwd) < 0) {
		pop3_reply(s, "-ERR [AUTH] Invalid SASL PLAIN response");
		return;
	}
	start_login(s, authcid, passwd);
	explicit_bzero(passwd, strlen(passwd));
	free(passwd);
	free(authcid);
}

void pop3_cmd_auth(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	bool plain_ok = auth_plaintext_allowed(s->conn, tls_active(s->conn));
	if (cmd->argc == 0) {
		/* no RFC defines bare AUTH, but clients send it to list mechanisms */
		conn_printf(s->conn, "+OK\r\n%s.\r\n", plain_ok ? "PLAIN\r\n" : "");
		return;
	}
	if (strcasecmp(cmd->args[0], "PLAIN") != 0) {
		pop3_reply(s, "-ERR Unsupported authentication mechanism");
		return;
	}
	if (!plain_ok) {
		pop3_reply(s, err_plaintext);
		return;
	}
	if (cmd->argc == 2) {
		sasl_plain(s, cmd->args[1]);
		return;
	}
	s->sasl_pending = true;
	pop3_parser_expect_continuation(s->parser);
	pop3_reply(s, "+ ");
}

void pop3_cmd_sasl_response(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (!s->sasl_pending) {
		pop3_bad_command(s, "-ERR Unknown command");
		return;
	}
	s->sasl_pending = false;
	sasl_plain(s, cmd->args[0]);
}
