/* The POP3 front end (RFC 1939, CAPA and response codes RFC 2449, AUTH
 * RFC 5034): one session per connection, serving the user's INBOX as the
 * maildrop. Plugs into the server as a struct conn_proto. */
#ifndef TERN_PROTO_POP3_SESSION_H
#define TERN_PROTO_POP3_SESSION_H

#include "server/conn.h"

extern const struct conn_proto pop3_proto;

struct cluster_open_request;
/* The home node's side of a proxied session: makes the cluster connection c
 * a POP3 session of req->user whose password the front has checked; it
 * answers the front's PASS itself (+OK, or -ERR [IN-USE]). */
int pop3_session_adopt(struct conn *c, const struct cluster_open_request *req);

#endif
