/* TLS for client connections through libevent's OpenSSL bufferevents:
 * implicit TLS listeners (imaps, pop3s) and STARTTLS/STLS upgrades. One
 * SSL_CTX per node: TLS 1.2 and later, no compression, no renegotiation. */
#ifndef TERN_SERVER_TLS_H
#define TERN_SERVER_TLS_H

#include <stdbool.h>

struct bufferevent;
struct conn;
struct event_base;
struct server;

/* Loads tls_cert/tls_key into srv->tls (tls_key may be left empty when the
 * key is in the tls_cert file). 0 = loaded or not configured; -1 =
 * configured but unusable (logged with the file and the reason). */
int tls_init(struct server *srv);
void tls_deinit(struct server *srv);
/* True when the node has a certificate (STARTTLS/STLS may be offered). */
bool tls_available(const struct server *srv);
/* Wraps the connection's socket in a server-side TLS bufferevent. Any
 * plaintext already buffered from the client is discarded (RFC 3501 §6.2.1,
 * RFC 2595 §4: no command injection across STARTTLS). The caller must have
 * queued its "OK begin TLS" reply: it is flushed in clear first. -1 on error
 * (TLS not available, already active, or out of memory; nothing changed). */
int tls_start(struct conn *c);
/* True when c is running over TLS. */
bool tls_active(const struct conn *c);

/* For conn.c. A TLS bufferevent (server side, handshake pending) over an
 * accepted socket, for implicit TLS; NULL on error (fd left open). */
struct bufferevent *tls_socket_bufferevent(struct server *srv, struct event_base *base, int fd);
/* Logs what a bufferevent event means for a TLS connection: a failed
 * handshake with the client's address and OpenSSL's reason (info level: it
 * is the client's problem), the protocol and cipher once established (debug). */
void tls_log_event(struct conn *c, short what);
/* Queues a close_notify once all output is out (clean TLS close). */
void tls_close_notify(struct conn *c);

#endif
