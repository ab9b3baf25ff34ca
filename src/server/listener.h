/* Listening sockets on the main thread. Each accepted connection is handed,
 * round-robin, to a loop thread, which owns it from then on. */
#ifndef TERN_SERVER_LISTENER_H
#define TERN_SERVER_LISTENER_H

#include <stdbool.h>

struct server;
struct conn_proto;
struct listener;

/* Binds addr ("host:port") for proto; tls = implicit TLS (imaps/pop3s).
 * -1 with *err_r (heap) on failure. */
int listener_new(struct server *srv, const char *what, const char *addr,
		 const struct conn_proto *proto, bool tls, struct listener **l_r, char **err_r);
/* Stops accepting (SIGTERM); the socket is closed. */
void listener_disable(struct listener *l);
void listener_free(struct listener **l);

#endif
