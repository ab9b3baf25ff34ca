/* POP3 AUTHORIZATION state: USER/PASS (RFC 1939 §7), APOP (refused: it needs
 * the clear-text password on the server), AUTH PLAIN (RFC 5034), and opening
 * the maildrop once the password is checked. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proto/auth.h"
#include "proto/pop3/inuse.h"
#include "proto/pop3/session-private.h"
#include "server/loop.h"
#include "server/server.h"
#include "server/tls.h"
#include "store/store.h"

static const char err_plaintext[] =
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections";

/* Loads the INBOX listing into s->msgs. */
static int maildrop_load(struct pop3_session *s, enum tern_error *err_r, const char **op_r)
{
	struct store_folder f;
	*op_r = "open maildrop";
	if (store_open(pop3_config(s)->data_dir, s->user, true, &s->store, err_r) < 0)
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

/* RFC 1939 §7 PASS: lock the maildrop, then enter TRANSACTION. */
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
	if (maildrop_load(s, &err, &op) < 0) {
		pop3_store_error(s, op, err);
		pop3_maildrop_close(s);
		return;
	}
	s->state = POP3_STATE_TRANSACTION;
	conn_set_authenticated(s->conn);
	conn_printf(s->conn, "+OK Logged in, %zu messages\r\n", s->msg_count);
}

static void auth_done(struct conn *c, enum auth_result r, const char *user, void *ctx)
{
	struct pop3_session *s = ctx;
	if (c->closing)
		return;
	switch (r) {
	case AUTH_OK:
		if (!c->shutting_down)
			login_complete(s, user);
		break;
	case AUTH_FAILED:
		pop3_reply(s, "-ERR [AUTH] Authentication failed");
		break;
	case AUTH_TEMPFAIL:
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later");
		break;
	case AUTH_NOT_HERE:
		/* the proxy to the home node comes later; until then the client retries */
		pop3_reply(s, "-ERR [SYS/TEMP] Mailbox is on another node");
		break;
	}
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
