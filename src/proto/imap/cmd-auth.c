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
