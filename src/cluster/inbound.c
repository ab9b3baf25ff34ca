#include "cluster/inbound.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster-tls.h"
#include "cluster/frame.h"
#include "cluster/handshake.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/log.h"
#include "directory/directory.h"
#include "server/conn.h"
#include "server/lookup.h"
#include "server/loop.h"
#include "server/server.h"

enum inbound_phase {
	IN_HELLO,     /* waiting for the dialler's HELLO */
	IN_AUTH,      /* CHALLENGE sent, waiting for its proof */
	IN_OPEN,      /* authenticated: waiting for OPEN (or PING, while pooled) */
	IN_LOOKUP,    /* OPEN received, the user's directory row is being read */
};

struct inbound {
	struct conn *conn;
	enum inbound_phase phase;
	struct event *deadline;          /* until READY: cluster_timeout */
	uint8_t dialler_nonce[CLUSTER_NONCE_LEN], listener_nonce[CLUSTER_NONCE_LEN];
	char peer_name[TERN_CLUSTER_NODE_NAME_MAX + 1];
	const struct cluster_service *service;
	char user[TERN_USERNAME_MAX + 1];
	char client_addr[64];
	char params[TERN_CLUSTER_PARAMS_MAX + 1];
	struct lookup_request *lookup;
};

static const struct cluster_service *services;
static size_t service_count;
static _Atomic uint64_t refused_peers;

void cluster_set_services(const struct cluster_service *s, size_t count)
{
	services = s;
	service_count = count;
}

uint64_t cluster_refused_peers(void)
{
	return atomic_load(&refused_peers);
}

bool cluster_param(const char *params, const char *key, char *buf, size_t cap)
{
	size_t klen = strlen(key);
	for (const char *p = params; *p != '\0';) {
		while (*p == ' ')
			p++;
		size_t wlen = strcspn(p, " ");
		if (wlen > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t vlen = wlen - klen - 1;
			if (vlen >= cap)
				return false;
			memcpy(buf, p + klen + 1, vlen);
			buf[vlen] = '\0';
			return true;
		}
		p += wlen;
	}
	return false;
}

void cluster_adopt_client(struct conn *c, const struct cluster_open_request *req)
{
	char loopback[4];
	if (req->client_addr[0] != '\0') {
		snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", req->client_addr);
		snprintf(c->peer, sizeof(c->peer), "%s", req->client_addr);
	}
	c->peer_loopback = cluster_param(req->params, "loopback", loopback, sizeof(loopback)) &&
			   strcmp(loopback, "1") == 0;
}

static const struct tern_config *config_of(const struct inbound *in)
{
	return in->conn->loop->server->config;
}

static void send_frame(struct inbound *in, enum cluster_frame_type type,
		       const struct cluster_field *fields, size_t count)
{
	uint8_t buf[CLUSTER_FRAME_MAX];
	size_t n = cluster_frame_encode(buf, sizeof(buf), type, fields, count);
	if (n > 0)
		conn_write(in->conn, buf, n);
}

/* A peer that breaks the protocol or fails the handshake: counted, logged
 * once (this line), told nothing more than that, and closed. */
static void refuse(struct inbound *in, const char *why, bool tell)
{
	uint64_t n = atomic_fetch_add(&refused_peers, 1) + 1;
	log_warn("cluster: peer %s%s%s%s: %s, connection closed (%llu refused since start)",
		 in->conn->peer, in->peer_name[0] != '\0' ? " (says it is node " : "",
		 in->peer_name, in->peer_name[0] != '\0' ? ")" : "", why, (unsigned long long)n);
	if (tell) {
		struct cluster_field f = cluster_str_field(why);
		send_frame(in, CLUSTER_ERROR, &f, 1);
	}
	conn_close(in->conn);
}

static void opened(struct inbound *in, const char *status, const char *text)
{
	struct cluster_field f[2] = {cluster_str_field(status), cluster_str_field(text)};
	send_frame(in, CLUSTER_OPENED, f, 2);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct inbound *in = arg;
	if (!in->conn->closing)
		refuse(in, "no handshake within cluster_timeout", false);
}

static void on_hello(struct inbound *in, const struct cluster_frame *f)
{
	const struct tern_config *cfg = config_of(in);
	if (!cluster_field_is(&f->fields[0], CLUSTER_PROTOCOL)) {
		refuse(in, "speaks another cluster protocol version", true);
		return;
	}
	if (!cluster_field_str(&f->fields[1], in->peer_name, sizeof(in->peer_name)) ||
	    in->peer_name[0] == '\0') {
		in->peer_name[0] = '\0';
		refuse(in, "protocol error (bad node name)", false);
		return;
	}
	memcpy(in->dialler_nonce, f->fields[2].data, CLUSTER_NONCE_LEN);
	if (cluster_nonce(in->listener_nonce) < 0) {
		log_error("cluster: peer %s: no random bytes for a nonce", in->conn->peer);
		conn_close(in->conn);
		return;
	}
	uint8_t mac[CLUSTER_MAC_LEN];
	cluster_mac(cfg->cluster_secret, CLUSTER_ROLE_LISTENER, in->dialler_nonce,
		    in->listener_nonce, in->peer_name, cfg->node_name, mac);
	struct cluster_field fields[3] = {
		cluster_str_field(cfg->node_name),
		{in->listener_nonce, CLUSTER_NONCE_LEN},
		{mac, CLUSTER_MAC_LEN},
	};
	send_frame(in, CLUSTER_CHALLENGE, fields, 3);
	in->phase = IN_AUTH;
}

static void on_auth(struct inbound *in, const struct cluster_frame *f)
{
	const struct tern_config *cfg = config_of(in);
	uint8_t want[CLUSTER_MAC_LEN];
	cluster_mac(cfg->cluster_secret, CLUSTER_ROLE_DIALLER, in->dialler_nonce,
		    in->listener_nonce, in->peer_name, cfg->node_name, want);
	if (!cluster_mac_equal(want, f->fields[0].data)) {
		refuse(in, "failed authentication (another cluster_secret?)", true);
		return;
	}
	event_del(in->deadline);
	send_frame(in, CLUSTER_READY, NULL, 0);
	in->phase = IN_OPEN;
	/* an idle pooled connection waits this long for its OPEN */
	conn_switch_proto(in->conn, &cluster_proto, in, TERN_CLUSTER_IDLE_MS);
	log_debug("cluster: peer %s (node %s) authenticated", in->conn->peer, in->peer_name);
}

static void adopt(struct inbound *in, uint64_t quota)
{
	struct conn *c = in->conn;
	const struct cluster_service *svc = in->service;
	struct cluster_open_request req = {
		.kind = svc->kind,
		.user = in->user,
		.quota = quota,
		.client_addr = in->client_addr,
		.params = in->params,
		.front = in->peer_name,
	};
	opened(in, "ok", "");
	/* from here the bytes are the session's: hand the connection over */
	struct inbound copy = *in;
	req.user = copy.user;
	req.client_addr = copy.client_addr;
	req.params = copy.params;
	req.front = copy.peer_name;
	c->proto->free(c);
	/* the front relays whatever this session writes: big writes, fewer turns */
	conn_set_bulk(c);
	if (svc->adopt(c, &req) < 0)
		conn_close(c);
	else if (!c->closing && !c->read_paused && evbuffer_get_length(conn_input(c)) > 0)
		c->proto->input(c);
}

static void user_resolved(const struct lookup_result *r, void *ctx)
{
	struct inbound *in = ctx;
	if (in->conn->closing)
		return;
	if (r->found < 0) {
		opened(in, "unavailable", "Temporary directory failure");
		in->phase = IN_OPEN;
	} else if (r->found == 0 || !r->here) {
		/* moved meanwhile, or a front with a stale view: never relay on */
		log_info("cluster: node %s asked for user %s, who is not homed here", in->peer_name,
			 in->user);
		opened(in, "not-here", r->found == 0 ? "No such user" : "Not homed on this node");
		in->phase = IN_OPEN;
	} else {
		/* reading again (nothing is read meanwhile: the phase holds it)
		 * before the session takes over and decides for itself */
		conn_resume(in->conn);
		if (!in->conn->closing)
			adopt(in, r->quota);
		return;
	}
	conn_resume(in->conn);
}

static void on_open(struct inbound *in, const struct cluster_frame *f)
{
	const struct cluster_service *svc = NULL;
	for (size_t i = 0; i < service_count && svc == NULL; i++) {
		if (cluster_field_is(&f->fields[0], services[i].kind))
			svc = &services[i];
	}
	if (svc == NULL || !cluster_field_str(&f->fields[1], in->user, sizeof(in->user)) ||
	    !cluster_field_str(&f->fields[2], in->client_addr, sizeof(in->client_addr)) ||
	    !cluster_field_str(&f->fields[3], in->params, sizeof(in->params)) ||
	    (svc->needs_user && in->user[0] == '\0')) {
		opened(in, "unknown", "Cannot open that");
		return;
	}
	in->service = svc;
	if (!svc->needs_user) {
		adopt(in, 0);
		return;
	}
	in->phase = IN_LOOKUP;
	conn_pause(in->conn);
	lookup_user(in->conn->loop, in->user, 0, user_resolved, in, &in->lookup);
}

static void inbound_input(struct conn *c)
{
	struct inbound *in = c->state;
	struct evbuffer *input = conn_input(c);
	while (!c->closing && !c->read_paused && c->proto == &cluster_proto && in->phase != IN_LOOKUP) {
		size_t len = evbuffer_get_length(input);
		if (len == 0)
			return;
		size_t want = len < CLUSTER_FRAME_MAX ? len : CLUSTER_FRAME_MAX;
		const uint8_t *data = evbuffer_pullup(input, (ssize_t)want);
		struct cluster_frame f;
		size_t used;
		enum cluster_parse r = data != NULL ? cluster_frame_parse(data, want, &f, &used)
						    : CLUSTER_PARSE_INVALID;
		if (r == CLUSTER_PARSE_NEED_MORE)
			return;
		if (r == CLUSTER_PARSE_OK && f.type == CLUSTER_ERROR && in->phase == IN_AUTH) {
			/* the dialler found our proof wrong: the secrets differ */
			refuse(in, "failed authentication (it does not share our cluster_secret)",
			       false);
			return;
		}
		enum cluster_frame_type expected = in->phase == IN_HELLO ? CLUSTER_HELLO :
						   in->phase == IN_AUTH ? CLUSTER_AUTH : CLUSTER_OPEN;
		if (r == CLUSTER_PARSE_INVALID ||
		    (f.type != expected && !(in->phase == IN_OPEN && f.type == CLUSTER_PING))) {
			refuse(in, "protocol error", in->phase == IN_OPEN);
			return;
		}
		switch (f.type) {
		case CLUSTER_HELLO:
			on_hello(in, &f);
			break;
		case CLUSTER_AUTH:
			on_auth(in, &f);
			break;
		case CLUSTER_PING:
			send_frame(in, CLUSTER_PONG, NULL, 0);
			break;
		default: {
			/* drained before the connection may change hands, so the
			 * frame is read from a copy */
			uint8_t copy[CLUSTER_FRAME_MAX];
			struct cluster_frame open;
			size_t again;
			memcpy(copy, data, used);
			evbuffer_drain(input, used);
			(void)cluster_frame_parse(copy, used, &open, &again);
			on_open(in, &open);   /* may hand the connection over: in is gone */
			return;
		}
		}
		evbuffer_drain(input, used);
	}
}

static int inbound_open(struct conn *c)
{
	const struct tern_config *cfg = c->loop->server->config;
	struct inbound *in = calloc(1, sizeof(*in));
	if (in == NULL)
		return -1;
	in->conn = c;
	c->state = in;
	if (cluster_tls_enabled()) {
		struct bufferevent *tls = cluster_tls_wrap(c->loop->base, c->bev, true);
		if (tls == NULL)
			return -1;
		c->tls = true;
		conn_set_bufferevent(c, tls);
	}
	in->deadline = evtimer_new(c->loop->base, deadline_cb, in);
	struct timeval tv = {.tv_sec = cfg->cluster_timeout_ms / 1000,
			     .tv_usec = (cfg->cluster_timeout_ms % 1000) * 1000};
	if (in->deadline == NULL || evtimer_add(in->deadline, &tv) < 0)
		return -1;
	return 0;
}

static void inbound_shutdown(struct conn *c)
{
	conn_close(c);
}

static void inbound_timeout(struct conn *c)
{
	struct inbound *in = c->state;
	if (in->phase == IN_OPEN) {
		/* an idle pooled connection: the dialler makes a new one */
		conn_close(c);
		return;
	}
	refuse(in, "silent during the handshake", false);
}

static void inbound_free(struct conn *c)
{
	struct inbound *in = c->state;
	if (in == NULL)
		return;
	lookup_cancel(&in->lookup);
	if (in->deadline != NULL)
		event_free(in->deadline);
	free(in);
	c->state = NULL;
}

const struct conn_proto cluster_proto = {
	.name = "cluster",
	.conn_class = CONN_CLASS_CLUSTER,
	.login_timeout_reply = NULL,   /* the handshake has its own deadline */
	.open = inbound_open,
	.input = inbound_input,
	.shutdown = inbound_shutdown,
	.timeout = inbound_timeout,
	.free = inbound_free,
	.busy_reply = "",
	.no_memory_reply = "",
};
