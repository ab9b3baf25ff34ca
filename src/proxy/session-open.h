/* A front node's step from "the password is right, but the user lives on
 * another node" to a proxied session: ask the home node over the cluster
 * channel to open the user's session (the home answers the login command
 * itself), then turn the client connection into a relay (relay.h). */
#ifndef TERN_PROXY_SESSION_OPEN_H
#define TERN_PROXY_SESSION_OPEN_H

#include "proxy/relay.h"

struct conn;

struct proxy_request {
	enum relay_kind kind;
	const char *user;
	const char *home;         /* node name */
	const char *home_addr;    /* its cluster address; "" if it has none */
	const char *params;       /* for the home's session: "tag=a1 tls=1" */
};

/* Runs on the session's loop thread when no session could be opened; the
 * session goes on unchanged and answers the login with reply, the text
 * after the protocol's status ("Mailbox is on node-a, which is not
 * reachable now"). */
typedef void proxy_failed_fn(struct conn *c, const char *reply, void *ctx);

struct proxy_open;

/* On success c's session is freed (its protocol's free runs: it must
 * forget *po_r, which is NULL by then) and c relays from then on; fail is
 * not called. Never calls back inside this call. *po_r names the attempt
 * until it ends. */
void proxy_session_open(struct conn *c, const struct proxy_request *r, proxy_failed_fn *fail,
			void *ctx, struct proxy_open **po_r);
/* Forgets an attempt (its session is going away). NULL is fine. */
void proxy_open_cancel(struct proxy_open **po);

#endif
