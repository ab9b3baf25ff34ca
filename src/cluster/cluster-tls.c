#include "cluster/cluster-tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stddef.h>

#include "core/config.h"
#include "core/log.h"

static SSL_CTX *server_ctx, *client_ctx;

static void reason(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();
	if (e == 0)
		snprintf(buf, size, "unknown error");
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
}

static SSL_CTX *ctx_new(const struct tern_config *cfg, bool server)
{
	char why[256];
	const char *key = cfg->tls_key[0] != '\0' ? cfg->tls_key : cfg->tls_cert;
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) {
		reason(why, sizeof(why));
		log_error("cluster_tls: cannot create a TLS context: %s", why);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		reason(why, sizeof(why));
		log_error("cluster_tls: tls_cert %s / tls_key %s: %s", cfg->tls_cert, key, why);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_load_verify_locations(ctx, cfg->cluster_ca, NULL) != 1) {
		reason(why, sizeof(why));
		log_error("cluster_ca %s: %s", cfg->cluster_ca, why);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* only nodes whose certificate the cluster's CA signed */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return ctx;
}

int cluster_tls_init(const struct tern_config *cfg)
{
	if (!cfg->cluster_tls || cfg->cluster_listen[0] == '\0')
		return 0;
	server_ctx = ctx_new(cfg, true);
	client_ctx = server_ctx != NULL ? ctx_new(cfg, false) : NULL;
	if (client_ctx == NULL) {
		cluster_tls_deinit();
		return -1;
	}
	log_info("cluster_tls: node-to-node connections use TLS, peers verified against %s",
		 cfg->cluster_ca);
	return 0;
}

void cluster_tls_deinit(void)
{
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	server_ctx = client_ctx = NULL;
}

bool cluster_tls_enabled(void)
{
	return server_ctx != NULL;
}

struct bufferevent *cluster_tls_wrap(struct event_base *base, struct bufferevent *bev,
				     bool accepting)
{
	SSL *ssl = SSL_new(accepting ? server_ctx : client_ctx);
	if (ssl == NULL)
		return NULL;
	struct bufferevent *tls = bufferevent_openssl_filter_new(
		base, bev, ssl, accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
		BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL)
		return NULL;   /* libevent freed ssl */
	return tls;
}

struct ssl_st *cluster_tls_client_ssl(void)
{
	return client_ctx != NULL ? SSL_new(client_ctx) : NULL;
}
