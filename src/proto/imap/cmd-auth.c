/* Not-authenticated state: CAPABILITY, LOGIN (RFC 3501 §6.2.3),
 * AUTHENTICATE PLAIN with SASL-IR (RFC 4959, RFC 4616) and STARTTLS
 * (§6.2.1). Password checks run on the auth worker pool (proto/auth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proto/auth.h"
#include "proxy/session-open.h"
#include "proto/imap/commands.h"
#include "server/freeze.h"
#include "server/loop.h"
#include "server/server.h"
#include "server/tls.h"

static const char no_plaintext[] =
	"NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections";

IMAP_HANDLER(cmd_capability)
{
	imap_untagged(s, "CAPABILITY %s", imap_capabilities(s));
	imap_tagged(s, cmd, "OK Capability completed");
	return IMAP_CMD_DONE;
}

/* The store is open (or could not be): the LOGIN/AUTHENTICATE is answered. */
void imap_login_finished(struct imap_session *s, enum tern_error err)
{
	if (err != TERN_ERR_NONE) {
		imap_store_error(s, s->pending, "open mailbox", err);
	} else {
		conn_set_authenticated(s->conn);
		imap_tagged(s, s->pending, "OK [CAPABILITY %s] Logged in", imap_capabilities(s));
	}
	imap_command_finished(s);
}

static void proxy_failed(struct conn *c, const char *reply, void *ctx)
{
	struct imap_session *s = ctx;
	(void)c;
	imap_tagged(s, s->pending, "NO [UNAVAILABLE] %s", reply);
	imap_command_finished(s);
}

/* The home node answers the login command itself, with its tag. */
static void proxy_to_home(struct imap_session *s, const struct auth_user *user)
{
	char params[TERN_CLUSTER_PARAMS_MAX];
	snprintf(params, sizeof(params), "tag=%s tls=%d loopback=%d", s->pending->tag,
		 s->tls_active ? 1 : 0, s->conn->peer_loopback ? 1 : 0);
	struct proxy_request r = {
		.kind = RELAY_IMAP,
		.user = user->name,
		.home = user->home,
		.home_addr = user->home_addr,
		.params = params,
	};
	proxy_session_open(s->conn, &r, proxy_failed, s, &s->proxy);
}

/* A login for a user frozen by a move (server/freeze.h), parked until the
 * freeze ends or move_freeze_timeout. It holds a reference on the
 * connection; a connection closed meanwhile is only let go. */
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
		struct imap_session *s = c->state;
		if (o->result == FREEZE_SERVE_HERE) {
			imap_session_login(s, pl->user, pl->quota, imap_login_finished);
		} else if (o->result == FREEZE_MOVED) {
			/* served at the new home, as a login of a user homed there */
			struct auth_user moved = {
				.name = pl->user,
				.quota = pl->quota,
				.home = o->node,
				.home_addr = o->addr,
			};
			log_info("imap: user=%s, rip=%s: moved to %s while parked, proxied there",
				 pl->user, c->peer_addr, o->node);
			proxy_to_home(s, &moved);
		} else {
			log_info("imap: user=%s, rip=%s: still frozen after %u ms (%s)", pl->user,
				 c->peer_addr, c->loop->server->config->move_freeze_timeout_ms, o->why);
			imap_tagged(s, s->pending,
				    "NO [UNAVAILABLE] Mailbox is being moved, try again later");
			imap_command_finished(s);
		}
	}
	free(pl);
	conn_unref(&c);
}

/* The move check of a login for a user homed here: true if it was parked
 * (or answered), false to log in now. */
static bool login_parked(struct imap_session *s, const struct auth_user *user)
{
	if (freeze_none())
		return false;
	size_t len = strlen(user->name);
	struct parked_login *pl = calloc(1, sizeof(*pl) + len + 1);
	if (pl == NULL) {
		imap_tagged(s, s->pending, "NO [UNAVAILABLE] Out of memory, try again later");
		imap_command_finished(s);
		return true;
	}
	memcpy(pl->user, user->name, len + 1);
	pl->quota = user->quota;
	pl->conn = s->conn;
	uint64_t deadline = tern_now_ms() + s->conn->loop->server->config->move_freeze_timeout_ms;
	int parked = freeze_park(s->conn->loop, pl->user, "imap login", deadline, login_unparked,
				 pl, &pl->park);
	if (parked > 0) {
		conn_ref(s->conn);
		return true;
	}
	free(pl);
	if (parked == 0)
		return false;
	imap_tagged(s, s->pending, "NO [UNAVAILABLE] Out of memory, try again later");
	imap_command_finished(s);
	return true;
}

static void auth_done(struct conn *c, enum auth_result r, const struct auth_user *user, void *ctx)
{
	struct imap_session *s = ctx;
	if (c->closing)
		return;
	switch (r) {
	case AUTH_OK:
		if (s->conn->shutting_down) {
			imap_tagged(s, s->pending, "NO [UNAVAILABLE] Server shutting down");
			break;
		}
		if (login_parked(s, user))
			return;
		/* finishes the command, now or once a first login's store exists */
		imap_session_login(s, user->name, user->quota, imap_login_finished);
		return;
	case AUTH_FAILED:
		imap_tagged(s, s->pending, "NO [AUTHENTICATIONFAILED] Authentication failed.");
		break;
	case AUTH_TEMPFAIL:
		imap_tagged(s, s->pending,
			    "NO [UNAVAILABLE] Temporary authentication failure, try again later");
		break;
	case AUTH_NOT_HERE:
		if (s->conn->shutting_down) {
			imap_tagged(s, s->pending, "NO [UNAVAILABLE] Server shutting down");
			break;
		}
		proxy_to_home(s, user);
		return;
	}
	imap_command_finished(s);
}

static void start_check(struct imap_session *s, const char *login, const char *password,
			const char *method)
{
	auth_verify(s->conn, login, password, method, auth_done, s, &s->auth);
}

IMAP_HANDLER(cmd_login)
{
	const char *user, *pass;
	size_t ulen, plen;
	if (cmd->arg_count != 2 || !imap_arg_astring(&cmd->args[0], &user, &ulen) ||
	    !imap_arg_astring(&cmd->args[1], &pass, &plen)) {
		imap_bad(s, cmd, "Invalid arguments");
		return IMAP_CMD_DONE;
	}
	if (!auth_plaintext_allowed(s->conn, s->tls_active)) {
		imap_tagged(s, cmd, "%s", no_plaintext);
		return IMAP_CMD_DONE;
	}
	if (strlen(user) != ulen || strlen(pass) != plen) {
		imap_tagged(s, cmd, "NO [AUTHENTICATIONFAILED] Authentication failed.");
		return IMAP_CMD_DONE;
	}
	start_check(s, user, pass, "LOGIN");
	return IMAP_CMD_ASYNC;
}

/* Checks a PLAIN response; true if a check was started (the command is
 * then finished by auth_done), false if a reply was sent. */
static bool sasl_plain(struct imap_session *s, const struct imap_cmd *cmd, const char *response)
{
	char *authcid, *passwd;
	if (auth_sasl_plain_decode(response, &authcid, &passwd) < 0) {
		imap_tagged(s, cmd, "NO [AUTHENTICATIONFAILED] Authentication failed.");
		return false;
	}
	start_check(s, authcid, passwd, "PLAIN");
	explicit_bzero(passwd, strlen(passwd));
	free(passwd);
	free(authcid);
	return true;
}

static void sasl_response_line(struct imap_session *s, char *line)
{
	/* RFC 3501 §6.2.2: "*" cancels the exchange */
	if (strcmp(line, "*") == 0) {
		imap_tagged(s, s->pending, "BAD Authentication cancelled");
		imap_command_finished(s);
	} else if (!sasl_plain(s, s->pending, line)) {
		imap_command_finished(s);
	}
	explicit_bzero(line, strlen(line));
	free(line);
}

IMAP_HANDLER(cmd_authenticate)
{
	const char *mech, *ir = NULL;
	if (cmd->arg_count < 1 || cmd->arg_count > 2 || !imap_arg_atom(&cmd->args[0], &mech) ||
	    (cmd->arg_count == 2 && !imap_arg_atom(&cmd->args[1], &ir))) {
		imap_bad(s, cmd, "Invalid arguments");
		return IMAP_CMD_DONE;
	}
	if (strcasecmp(mech, "PLAIN") != 0) {
		imap_tagged(s, cmd, "NO [CANNOT] Unsupported authentication mechanism");
		return IMAP_CMD_DONE;
	}
	if (!auth_plaintext_allowed(s->conn, s->tls_active)) {
		imap_tagged(s, cmd, "%s", no_plaintext);
		return IMAP_CMD_DONE;
	}
	if (ir != NULL) {
		/* RFC 4959 §3: "=" is an empty initial response, which PLAIN cannot use */
		return sasl_plain(s, cmd, strcmp(ir, "=") == 0 ? "" : ir) ? IMAP_CMD_ASYNC
									 : IMAP_CMD_DONE;
	}
	conn_printf(s->conn, "+ \r\n");
	imap_read_line(s, sasl_response_line);
	return IMAP_CMD_ASYNC;
}

IMAP_HANDLER(cmd_starttls)
{
	if (cmd->arg_count != 0) {
		imap_bad(s, cmd, "Invalid arguments");
		return IMAP_CMD_DONE;
	}
	if (s->tls_active) {
		imap_bad(s, cmd, "TLS is already active");
		return IMAP_CMD_DONE;
	}
	if (!tls_available(s->conn->loop->server)) {
		imap_tagged(s, cmd, "NO [CANNOT] TLS is not configured");
		return IMAP_CMD_DONE;
	}
	imap_tagged(s, cmd, "OK Begin TLS negotiation now");
	/* RFC 3501 §6.2.1: plaintext pipelined after STARTTLS is dropped
	 * (tls_start discards the buffered input; the parser holds none) */
	imap_parser_reset_line(s->parser);
	if (tls_start(s->conn) < 0) {
		log_warn("imap: rip=%s: STARTTLS failed", s->conn->peer_addr);
		conn_close(s->conn);
		return IMAP_CMD_DONE;
	}
	s->tls_active = true;
	return IMAP_CMD_DONE;
}
