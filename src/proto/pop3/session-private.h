/* What the POP3 session files (session.c, cmd-*.c) share: the session state
 * and the helpers every command uses. Not for use outside src/proto/pop3. */
#ifndef TERN_PROTO_POP3_SESSION_PRIVATE_H
#define TERN_PROTO_POP3_SESSION_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "proto/pop3/parser.h"
#include "server/conn.h"

struct auth_request;
struct proxy_open;
struct store;

/* RFC 1939 §3: AUTHORIZATION, then TRANSACTION; UPDATE happens inside QUIT. */
enum pop3_state { POP3_STATE_AUTH = 1 << 0, POP3_STATE_TRANSACTION = 1 << 1 };

/* One message of the maildrop as numbered at logon (RFC 1939 §5). */
struct pop3_msg {
	uint32_t uid;
	uint32_t flags;     /* enum store_flag bits */
	uint64_t size;
	bool deleted;       /* marked by DELE, applied at QUIT */
	bool retrieved;     /* RETR'd while unseen: \Seen is set at QUIT */
};

struct pop3_session {
	struct conn *conn;
	struct pop3_parser *parser;
	enum pop3_state state;
	unsigned bad_commands;      /* in a row */
	char *user_arg;             /* from USER, waiting for PASS */
	bool sasl_pending;          /* AUTH PLAIN sent "+ ", reading the response */
	struct auth_request *auth;  /* a password check in flight */
	struct proxy_open *proxy;   /* asking the home node for a session */
	/* A store task in flight (a first login's store creation, QUIT's
	 * UPDATE write): input is paused and the session stays until its
	 * done, which answers. */
	bool store_task_pending;
	/* TRANSACTION state */
	char *user;                 /* canonical; owns the in-use mark */
	struct store *store;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	size_t msg_count;
};

const struct tern_config *pop3_config(const struct pop3_session *s);
void pop3_reply(struct pop3_session *s, const char *line);
/* Replies and counts a bad command; closes after max_bad_commands in a row. */
void pop3_bad_command(struct pop3_session *s, const char *line);
/* Logs a store failure once (user, operation) and sends its mapped reply. */
void pop3_store_error(struct pop3_session *s, const char *op, enum tern_error err);

/* Parses a message number; replies and returns NULL if it names no message
 * or a deleted one (RFC 1939 §5: deleted messages cannot be accessed). */
struct pop3_msg *pop3_msg_arg(struct pop3_session *s, const char *arg);

/* Command handlers (the table in session.c checks state and arity first). */
void pop3_cmd_user(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_pass(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_apop(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_auth(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_sasl_response(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_stat(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_list(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_retr(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_top(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_dele(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_rset(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_noop(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_quit(struct pop3_session *s, const struct pop3_cmd *cmd);

/* The home node's side of a proxied login: the password was checked by
 * the front; opens user's maildrop and answers the PASS/AUTH there. */
void pop3_login_adopted(struct pop3_session *s, const char *user);

/* Drops the maildrop (store, message list, in-use mark) without applying
 * deletions: a session that ends without QUIT deletes nothing (RFC 1939 §6). */
void pop3_maildrop_close(struct pop3_session *s);

/* Closes the session if the server is stopping; true if it did. */
bool pop3_close_if_stopping(struct pop3_session *s);

#endif
