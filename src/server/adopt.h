/* Hands a socket that did not come from one of the server's listeners to a
 * loop thread as a new client connection, as if a listener had accepted it.
 * The in-process session fuzzers (fuzz/fuzz-*-session.c) drive a real server
 * over a socketpair this way, with no port to bind. */
#ifndef TERN_SERVER_ADOPT_H
#define TERN_SERVER_ADOPT_H

#include <stdbool.h>

struct server;
struct conn_proto;

/* Takes ownership of fd (a connected stream socket) and queues it for the
 * next loop thread in turn, which wraps it with conn_new() and proto->open
 * (the greeting). peer ("addr:port") and peer_addr ("addr") are what the
 * logs and per-address accounting see; loopback counts as a local client
 * (plaintext logins allowed). The same refusals as for an accepted socket
 * apply (server stopping: closed; max_connections reached: busy reply, then
 * closed). Callable from any thread once server_init() has returned.
 * Returns 0 when queued, -1 (fd closed) if it cannot be. */
int server_adopt_fd(struct server *srv, int fd, const struct conn_proto *proto, const char *peer,
		    const char *peer_addr, bool loopback);

#endif
