/* The LMTP front end (RFC 2033): one session per connection on a loop
 * thread, driving the pure parser (parser.h) and handing complete messages to
 * the delivery pipeline, with one reply per accepted recipient. */
#ifndef TERN_PROTO_LMTP_SESSION_H
#define TERN_PROTO_LMTP_SESSION_H

#include "server/conn.h"

extern const struct conn_proto lmtp_proto;

struct cluster_open_request;
/* The home node's side of a relayed delivery: makes the cluster connection
 * c an LMTP session (greeting and all) for a front node's transactions. */
int lmtp_session_adopt(struct conn *c, const struct cluster_open_request *req);

#endif
