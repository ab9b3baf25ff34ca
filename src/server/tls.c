/* TLS through libevent's OpenSSL bufferevents: the node's SSL_CTX, implicit
 * TLS sockets, STARTTLS/STLS upgrades as a filter over the plain socket
 * bufferevent, and the log lines a TLS failure deserves. */
#include "server/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/log.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/server.h"

/* The oldest queued OpenSSL error of this thread as text; clears the queue. */
static void openssl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();
	if (e == 0)
		snprintf(buf, size, "unknown OpenSSL error");
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
}

/* A clear "No such file" beats OpenSSL's "system library" reason. */
static int check_readable(const char *key, const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		log_error("%s %s: cannot open: %s", key, path, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

static int load_pair(SSL_CTX *ctx, const char *cert, const char *key)
{
	char why[256];
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		openssl_reason(why, sizeof(why));
		log_error("tls_cert %s: cannot load the certificate: %s", cert, why);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		openssl_reason(why, sizeof(why));
		log_error("tls_key %s: cannot load the private key: %s", key, why);
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		openssl_reason(why, sizeof(why));
		log_error("tls_key %s does not match tls_cert %s: %s", key, cert, why);
		return -1;
	}
	return 0;
}

static SSL_CTX *ctx_new(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return NULL;
	/* RFC 8996 retires TLS 1.0/1.1; compression invites CRIME; a
	 * renegotiation costs us a handshake at the client's whim. */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* idle connections (IDLE can last 30 minutes) keep no record buffers */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	static const unsigned char sid_ctx[] = "tern";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	return ctx;
}

int tls_init(struct server *srv)
{
	const struct tern_config *cfg = srv->config;
	const char *cert = cfg->tls_cert != NULL ? cfg->tls_cert : "";
	const char *key = cfg->tls_key != NULL ? cfg->tls_key : "";
	srv->tls = NULL;
	if (cert[0] == '\0' && key[0] == '\0')
		return 0;
	if (cert[0] == '\0') {
		log_error("tls_key %s is set but tls_cert is not", key);
		return -1;
	}
	if (key[0] == '\0')
		key = cert;   /* one PEM file holding both */
	if (check_readable("tls_cert", cert) < 0 || check_readable("tls_key", key) < 0)
		return -1;
	SSL_CTX *ctx = ctx_new();
	if (ctx == NULL) {
		char why[256];
		openssl_reason(why, sizeof(why));
		log_error("tls: cannot create a TLS context: %s", why);
		return -1;
	}
	if (load_pair(ctx, cert, key) < 0) {
		SSL_CTX_free(ctx);
		return -1;
	}
	srv->tls = ctx;
	log_info("tls: certificate %s loaded", cert);
	return 0;
}

void tls_deinit(struct server *srv)
{
	SSL_CTX_free(srv->tls);
	srv->tls = NULL;
}

bool tls_available(const struct server *srv)
{
	return srv->tls != NULL;
}

bool tls_active(const struct conn *c)
{
	return c->tls;
}

struct bufferevent *tls_socket_bufferevent(struct server *srv, struct event_base *base, int fd)
{
	if (srv->tls == NULL)
		return NULL;
	SSL *ssl = SSL_new(srv->tls);
	if (ssl == NULL)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(base, fd, ssl,
								 BUFFEREVENT_SSL_ACCEPTING,
								 BEV_OPT_CLOSE_ON_FREE);
	/* on failure libevent has freed ssl already (BEV_OPT_CLOSE_ON_FREE) */
	if (bev == NULL)
		return NULL;
	/* Most mail clients just close the socket: an EOF, not an attack. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

int tls_start(struct conn *c)
{
	struct server *srv = c->loop->server;
	if (srv->tls == NULL || c->tls || c->compressed || c->closing)
		return -1;
	SSL *ssl = SSL_new(srv->tls);
	if (ssl == NULL)
		return -1;
	/* RFC 3501 §6.2.1, RFC 2595 §4: whatever the client sent after the
	 * command in clear was sent before the TLS layer could protect it. */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t dropped = evbuffer_get_length(in);
	if (dropped > 0) {
		evbuffer_drain(in, dropped);
		log_info("%s: rip=%s: %zu byte(s) of plaintext after STARTTLS discarded",
			 c->proto->name, c->peer_addr, dropped);
	}
	/* The reply is already in c->bev's output buffer. The TLS layer writes
	 * its records into that same buffer, behind the reply, so the reply
	 * leaves in clear and first; and a server-side handshake writes nothing
	 * before the ClientHello anyway. */
	struct bufferevent *bev = bufferevent_openssl_filter_new(c->loop->base, c->bev, ssl,
								 BUFFEREVENT_SSL_ACCEPTING,
								 BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return -1;   /* ssl went with it, as above */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	c->tls = true;
	conn_set_bufferevent(c, bev);
	return 0;
}

/* The OpenSSL layer of c's stack (COMPRESS may sit on top of it). */
static SSL *conn_ssl(const struct conn *c, struct bufferevent **bev_r)
{
	for (struct bufferevent *b = c->bev; b != NULL; b = bufferevent_get_underlying(b)) {
		SSL *ssl = bufferevent_openssl_get_ssl(b);
		if (ssl != NULL) {
			*bev_r = b;
			return ssl;
		}
	}
	return NULL;
}

/* The first OpenSSL error the bufferevent recorded, else the socket error. */
static void bev_reason(struct bufferevent *bev, char *buf, size_t size)
{
	unsigned long e, first = 0;
	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		if (first == 0)
			first = e;
	}
	if (first != 0) {
		const char *reason = ERR_reason_error_string(first);
		if (reason != NULL)
			snprintf(buf, size, "%s", reason);
		else
			ERR_error_string_n(first, buf, size);
		return;
	}
	int err = EVUTIL_SOCKET_ERROR();
	snprintf(buf, size, "%s", err != 0 ? evutil_socket_error_to_string(err) : "connection lost");
}

void tls_log_event(struct conn *c, short what)
{
	struct bufferevent *bev;
	SSL *ssl = conn_ssl(c, &bev);
	if (ssl == NULL || c->closing)
		return;
	bool handshaking = SSL_is_init_finished(ssl) == 0;
	if ((what & BEV_EVENT_CONNECTED) != 0) {
		log_debug("%s: rip=%s: TLS established: %s, %s", c->proto->name, c->peer_addr,
			  SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	} else if ((what & BEV_EVENT_ERROR) != 0) {
		char why[256];
		bev_reason(bev, why, sizeof(why));
		log_info("%s: rip=%s: TLS %s: %s", c->proto->name, c->peer_addr,
			 handshaking ? "handshake failed" : "error", why);
	} else if ((what & BEV_EVENT_EOF) != 0 && handshaking) {
		log_info("%s: rip=%s: TLS handshake failed: connection closed by the client",
			 c->proto->name, c->peer_addr);
	}
}

void tls_close_notify(struct conn *c)
{
	struct bufferevent *bev;
	SSL *ssl = conn_ssl(c, &bev);
	/* no alert after a failed handshake or a fatal error */
	if (ssl == NULL || !SSL_is_init_finished(ssl) ||
	    (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) != 0)
		return;
	/* One way: we do not wait for the client's close_notify. A full
	 * socket just means the client will see a plain EOF. */
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
}
