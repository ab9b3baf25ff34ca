/* TLS for client connections through libevent's OpenSSL bufferevents:
 * implicit TLS listeners (imaps, pop3s) and STARTTLS/STLS upgrades. */
#ifndef TERN_SERVER_TLS_H
#define TERN_SERVER_TLS_H

#include <stdbool.h>

struct conn;
struct server;

/* Loads tls_cert/tls_key into srv->tls. 0 = loaded or not configured;
 * -1 = configured but unusable (logged with the file and the reason). */
int tls_init(struct server *srv);
void tls_deinit(struct server *srv);
/* True when the node has a certificate (STARTTLS/STLS may be offered). */
bool tls_available(const struct server *srv);
/* Wraps the connection's socket in a server-side TLS bufferevent. Any
 * plaintext already buffered from the client is discarded (RFC 3501 §6.2.1,
 * RFC 2595 §4: no command injection across STARTTLS). The caller must have
 * queued its "OK begin TLS" reply: it is flushed in clear first. -1 on error. */
int tls_start(struct conn *c);
/* True when c is running over TLS. */
bool tls_active(const struct conn *c);

#endif
