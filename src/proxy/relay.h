/* A proxied IMAP or POP3 session on the front node: once the home node has
 * opened the user's session (cluster/dial.h), the client connection only
 * relays bytes both ways, with back-pressure in each direction. Client TLS
 * ends here. When the home node goes away the client gets the protocol's
 * last word (IMAP * BYE [UNAVAILABLE], POP3 -ERR [SYS/TEMP]) where the
 * stream allows one, and the connection closes; it never hangs. */
#ifndef TERN_PROXY_RELAY_H
#define TERN_PROXY_RELAY_H

struct conn;
struct bufferevent;

enum relay_kind { RELAY_IMAP, RELAY_POP3 };

struct relay_target {
	enum relay_kind kind;
	const char *user;
	const char *home;
};

/* Frees c's protocol state (c->proto->free) and makes c relay to bev, the
 * home node's end of the session (whose input may already hold bytes). On
 * c's loop thread, outside c's own input processing. */
void proxy_relay_start(struct conn *c, struct bufferevent *bev, const struct relay_target *t);

#endif
