/* The LMTP front end (RFC 2033): one session per connection on a loop
 * thread, driving the pure parser (parser.h) and handing complete messages to
 * the delivery pipeline, with one reply per accepted recipient. */
#ifndef TERN_PROTO_LMTP_SESSION_H
#define TERN_PROTO_LMTP_SESSION_H

#include "server/conn.h"

extern const struct conn_proto lmtp_proto;

#endif
