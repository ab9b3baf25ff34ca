/* TLS on the cluster channel (cluster_tls = yes), for nodes on different
 * hosts: both ends present the node's certificate (tls_cert, tls_key) and
 * accept only a peer whose certificate cluster_ca signed. The secret's
 * handshake still runs inside: TLS keeps the sessions private, the secret
 * proves cluster membership. */
#ifndef TERN_CLUSTER_CLUSTER_TLS_H
#define TERN_CLUSTER_CLUSTER_TLS_H

#include <stdbool.h>

struct bufferevent;
struct event_base;
struct tern_config;

/* At start (main thread): loads the contexts when cluster_tls is on. 0 =
 * ready or off; -1 = unusable (logged with the file and the reason). */
int cluster_tls_init(const struct tern_config *cfg);
void cluster_tls_deinit(void);
bool cluster_tls_enabled(void);

/* A TLS bufferevent layered over bev (a connected socket's), handshake
 * pending: accepting = the listener's side. Takes bev (freed with the new
 * one); NULL on failure (bev then untouched). */
struct bufferevent *cluster_tls_wrap(struct event_base *base, struct bufferevent *bev,
				     bool accepting);

/* A client-side SSL for a blocking socket (the mover's own connections);
 * NULL if TLS is off or out of memory. Free with SSL_free. */
struct ssl_st *cluster_tls_client_ssl(void);

#endif
