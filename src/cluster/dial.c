#include "cluster/dial.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cluster/cluster-tls.h"
#include "cluster/frame.h"
#include "cluster/handshake.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "server/loop.h"
#include "server/server.h"

enum dial_phase {
	D_CONNECT,    /* TCP connect in progress */
	D_CHALLENGE,  /* HELLO sent */
	D_READY,      /* AUTH sent */
	D_OPENED,     /* OPEN sent */
	D_SPARE,      /* parked in the pool, authenticated, unused */
	D_PARKED,     /* a channel of kind between two requests */
	D_LINGER,     /* sending a last frame (an ERROR) before it closes */
};

struct cluster_dial {
	struct loop *loop;
	struct pool *pool;
	char node[TERN_CLUSTER_NODE_NAME_MAX + 1];
	char addr[128];
	char kind[16];
	char user[TERN_USERNAME_MAX + 1];
	char client_addr[64];
	char params[TERN_CLUSTER_PARAMS_MAX + 1];
	cluster_dial_done_fn *done;
	void *ctx;
	struct cluster_dial **owner;
	struct bufferevent *bev;
	struct event *timer;          /* the deadline; also delivers early failures */
	enum dial_phase phase;
	bool spare_only;              /* a pool refill: park after READY */
	bool from_spare;              /* OPEN went over a spare: one fresh retry */
	bool tls_layered;             /* cluster_tls: the TLS layer is on bev */
	bool linger;                  /* bev has a last frame to send before it goes */
	const char *early_failure;    /* set before the timer is made active */
	uint64_t since_ms;            /* spares: when parked */
	uint8_t dialler_nonce[CLUSTER_NONCE_LEN];
	struct cluster_dial *next;    /* the pool's list of spares and refills */
};

/* Per loop: spare connections and refills in progress, of every node. */
struct pool {
	struct cluster_dial *list;
};

/* ---- outages: logged when they start and when they end ---- */

#define HEALTH_NODES 64

struct health {
	char node[TERN_CLUSTER_NODE_NAME_MAX + 1];
	bool down;
	uint64_t since_ms;
	unsigned long failures;
};

static struct tern_mutex health_mu;
static pthread_once_t health_once = PTHREAD_ONCE_INIT;
static struct health health[HEALTH_NODES];
static _Atomic unsigned nodes_down;

static void health_init(void)
{
	tern_mutex_init(&health_mu, "cluster node health");
}

static struct health *health_find(const char *node, bool add)
{
	for (size_t i = 0; i < HEALTH_NODES; i++) {
		if (strcmp(health[i].node, node) == 0)
			return &health[i];
	}
	for (size_t i = 0; add && i < HEALTH_NODES; i++) {
		if (health[i].node[0] == '\0') {
			snprintf(health[i].node, sizeof(health[i].node), "%s", node);
			return &health[i];
		}
	}
	return NULL;
}

static void health_failed(const char *node, const char *addr, const char *why)
{
	pthread_once(&health_once, health_init);
	TERN_LOCK_GUARD(&health_mu);
	struct health *h = health_find(node, true);
	if (h == NULL || h->down) {
		if (h != NULL)
			h->failures++;
		return;
	}
	h->down = true;
	h->since_ms = tern_now_ms();
	h->failures = 1;
	atomic_fetch_add(&nodes_down, 1);
	log_warn("cluster: node %s at %s unreachable: %s; its users get temporary errors until "
		 "it is back", node, addr, why);
}

/* The common case (no node down) takes no lock. */
static void health_ok(const char *node, const char *addr)
{
	if (atomic_load(&nodes_down) == 0)
		return;
	pthread_once(&health_once, health_init);
	TERN_LOCK_GUARD(&health_mu);
	struct health *h = health_find(node, false);
	if (h == NULL || !h->down)
		return;
	h->down = false;
	atomic_fetch_sub(&nodes_down, 1);
	log_info("cluster: node %s at %s reachable again after %.1f s (%lu requests failed "
		 "meanwhile)", node, addr, (double)(tern_now_ms() - h->since_ms) / 1000.0,
		 h->failures);
}

/* ---- the pool ---- */

static void dial_free(struct cluster_dial *d)
{
	if (d->bev != NULL)
		bufferevent_free(d->bev);
	if (d->timer != NULL)
		event_free(d->timer);
	free(d);
}

static void pool_free(struct loop *loop)
{
	struct pool *p = loop->cluster_pool;
	if (p == NULL)
		return;
	for (struct cluster_dial *d = p->list, *next; d != NULL; d = next) {
		next = d->next;
		dial_free(d);
	}
	free(p);
	loop->cluster_pool = NULL;
}

static struct pool *pool_of(struct loop *loop)
{
	if (loop->cluster_pool == NULL) {
		loop->cluster_pool = calloc(1, sizeof(struct pool));
		if (loop->cluster_pool != NULL)
			loop->cluster_pool_free = pool_free;
	}
	return loop->cluster_pool;
}

static void pool_unlink(struct pool *p, struct cluster_dial *d)
{
	for (struct cluster_dial **pp = &p->list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			d->next = NULL;
			return;
		}
	}
}

/* A spare of node at addr still young enough to be used, unlinked. */
static struct cluster_dial *pool_take(struct pool *p, const char *node, const char *addr)
{
	uint64_t now = tern_now_ms();
	for (struct cluster_dial *d = p->list, *next; d != NULL; d = next) {
		next = d->next;
		if (d->phase != D_SPARE || strcmp(d->node, node) != 0 || strcmp(d->addr, addr) != 0)
			continue;
		pool_unlink(p, d);
		if (now - d->since_ms < TERN_CLUSTER_SPARE_AGE_MS)
			return d;
		dial_free(d);
	}
	return NULL;
}

/* Spares of node, ready or being made. */
static unsigned pool_count(struct pool *p, const char *node)
{
	unsigned n = 0;
	for (struct cluster_dial *d = p->list; d != NULL; d = d->next)
		n += d->phase != D_PARKED && d->phase != D_LINGER && strcmp(d->node, node) == 0;
	return n;
}

static struct cluster_dial *dial_new(struct loop *loop, struct pool *pool, const char *node,
				     const char *addr);

static void linger_done(struct cluster_dial *d)
{
	pool_unlink(d->pool, d);
	dial_free(d);
}

static void linger_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	linger_done(arg);
}

static void linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	linger_done(arg);
}

/* Takes d's connection to send its last frame (an ERROR, so the other
 * side logs why) before closing it, within a second; kept in the pool so
 * a stopping loop frees it. */
static void linger(struct cluster_dial *d)
{
	struct bufferevent *bev = d->bev;
	struct cluster_dial *h = d->pool != NULL ? dial_new(d->loop, d->pool, d->node, d->addr) : NULL;
	if (h == NULL || evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		if (h != NULL)
			dial_free(h);
		return;   /* d frees it at once */
	}
	d->bev = NULL;
	h->bev = bev;
	h->phase = D_LINGER;
	h->next = d->pool->list;
	d->pool->list = h;
	static const struct timeval second = {1, 0};
	bufferevent_disable(bev, EV_READ);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_setcb(bev, NULL, linger_write_cb, linger_event_cb, h);
	bufferevent_set_timeouts(bev, NULL, &second);
}

/* ---- the exchange ---- */

static const struct tern_config *config_of(const struct cluster_dial *d)
{
	return d->loop->server->config;
}

static void send_frame(struct cluster_dial *d, enum cluster_frame_type type,
		       const struct cluster_field *fields, size_t count)
{
	uint8_t buf[CLUSTER_FRAME_MAX];
	size_t n = cluster_frame_encode(buf, sizeof(buf), type, fields, count);
	if (n > 0)
		bufferevent_write(d->bev, buf, n);
}

static void start_refill(struct loop *loop, const char *node, const char *addr);

static void finish(struct cluster_dial *d, enum cluster_dial_status st, const char *status,
		   const char *text)
{
	if (d->linger && d->bev != NULL)
		linger(d);
	if (d->spare_only) {
		/* a refill that did not make it: nobody waits for it */
		pool_unlink(d->pool, d);
		if (st == CLUSTER_DIAL_UNREACHABLE)
			health_failed(d->node, d->addr, text);
		dial_free(d);
		return;
	}
	if (st == CLUSTER_DIAL_UNREACHABLE)
		health_failed(d->node, d->addr, text);
	else
		health_ok(d->node, d->addr);
	struct bufferevent *bev = NULL;
	if (st == CLUSTER_DIAL_OK) {
		bev = d->bev;
		d->bev = NULL;
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	}
	if (d->owner != NULL)
		*d->owner = NULL;
	cluster_dial_done_fn *done = d->done;
	void *ctx = d->ctx;
	char node[sizeof(d->node)], addr[sizeof(d->addr)];
	snprintf(node, sizeof(node), "%s", d->node);
	snprintf(addr, sizeof(addr), "%s", d->addr);
	struct loop *loop = d->loop;
	dial_free(d);
	done(ctx, st, bev, status, text);
	if (st != CLUSTER_DIAL_UNREACHABLE)
		start_refill(loop, node, addr);
}

static void dial_read_cb(struct bufferevent *bev, void *arg);
static void dial_event_cb(struct bufferevent *bev, short what, void *arg);
static void spare_event_cb(struct bufferevent *bev, short what, void *arg);
static void spare_read_cb(struct bufferevent *bev, void *arg);
static int start_connect(struct cluster_dial *d);

static void send_open(struct cluster_dial *d)
{
	struct cluster_field f[4] = {cluster_str_field(d->kind), cluster_str_field(d->user),
				     cluster_str_field(d->client_addr), cluster_str_field(d->params)};
	send_frame(d, CLUSTER_OPEN, f, 4);
	d->phase = D_OPENED;
}

static void park_spare(struct cluster_dial *d)
{
	event_del(d->timer);
	d->phase = D_SPARE;
	d->since_ms = tern_now_ms();
	bufferevent_setcb(d->bev, spare_read_cb, NULL, spare_event_cb, d);
	health_ok(d->node, d->addr);
}

/* The connection was lost before the node answered the OPEN. Over a spare
 * that the node had just retired this is expected: dial afresh, once. */
static void lost(struct cluster_dial *d, const char *why)
{
	if (d->from_spare && d->phase == D_OPENED) {
		d->from_spare = false;
		d->tls_layered = false;
		bufferevent_free(d->bev);
		d->bev = NULL;
		if (start_connect(d) == 0)
			return;
	}
	finish(d, CLUSTER_DIAL_UNREACHABLE, "", why);
}

/* false when d is finished (freed) */
static bool on_challenge(struct cluster_dial *d, const struct cluster_frame *f)
{
	const struct tern_config *cfg = config_of(d);
	uint8_t mac[CLUSTER_MAC_LEN];
	switch (cluster_dialler_answer(cfg->cluster_secret, cfg->node_name, d->node,
				       d->dialler_nonce, f, mac)) {
	case CLUSTER_ANSWER_WRONG_NODE:
		finish(d, CLUSTER_DIAL_UNREACHABLE, "",
		       "another node answers at that address (stale directory entry?)");
		return false;
	case CLUSTER_ANSWER_BAD_PROOF: {
		/* said, so that the other side logs it too */
		struct cluster_field why = cluster_str_field("authentication failed");
		send_frame(d, CLUSTER_ERROR, &why, 1);
		d->linger = true;
		finish(d, CLUSTER_DIAL_UNREACHABLE, "",
		       "it failed authentication (another cluster_secret?)");
		return false;
	}
	case CLUSTER_ANSWER_OK:
		break;
	}
	struct cluster_field field = {mac, CLUSTER_MAC_LEN};
	send_frame(d, CLUSTER_AUTH, &field, 1);
	d->phase = D_READY;
	return true;
}

/* Handles one frame; false when d is finished (freed). */
static bool on_frame(struct cluster_dial *d, const struct cluster_frame *f)
{
	char status[32], text[256];
	if (f->type == CLUSTER_ERROR) {
		if (!cluster_field_str(&f->fields[0], text, sizeof(text)))
			snprintf(text, sizeof(text), "refused");
		finish(d, CLUSTER_DIAL_UNREACHABLE, "", text);
		return false;
	}
	if (d->phase == D_CHALLENGE && f->type == CLUSTER_CHALLENGE) {
		return on_challenge(d, f);
	}
	if (d->phase == D_READY && f->type == CLUSTER_READY) {
		if (d->spare_only)
			park_spare(d);
		else
			send_open(d);
		return true;
	}
	if (d->phase == D_OPENED && f->type == CLUSTER_OPENED) {
		if (!cluster_field_str(&f->fields[0], status, sizeof(status)) ||
		    !cluster_field_str(&f->fields[1], text, sizeof(text))) {
			finish(d, CLUSTER_DIAL_UNREACHABLE, "", "protocol error");
			return false;
		}
		if (strcmp(status, "ok") == 0)
			finish(d, CLUSTER_DIAL_OK, status, text);
		else
			finish(d, CLUSTER_DIAL_REFUSED, status, text);
		return false;
	}
	if (f->type == CLUSTER_PONG)
		return true;
	finish(d, CLUSTER_DIAL_UNREACHABLE, "", "protocol error");
	return false;
}

static void dial_read_cb(struct bufferevent *bev, void *arg)
{
	struct cluster_dial *d = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		size_t len = evbuffer_get_length(in);
		if (len == 0)
			return;
		size_t want = len < CLUSTER_FRAME_MAX ? len : CLUSTER_FRAME_MAX;
		const uint8_t *data = evbuffer_pullup(in, (ssize_t)want);
		struct cluster_frame f;
		size_t used;
		enum cluster_parse r = data != NULL ? cluster_frame_parse(data, want, &f, &used)
						    : CLUSTER_PARSE_INVALID;
		if (r == CLUSTER_PARSE_NEED_MORE)
			return;
		if (r == CLUSTER_PARSE_INVALID) {
			finish(d, CLUSTER_DIAL_UNREACHABLE, "", "protocol error");
			return;
		}
		/* copy: OPENED hands the connection over with what follows it */
		uint8_t frame[CLUSTER_FRAME_MAX];
		memcpy(frame, data, used);
		evbuffer_drain(in, used);
		struct cluster_frame copy;
		size_t again;
		(void)cluster_frame_parse(frame, used, &copy, &again);
		if (!on_frame(d, &copy) || d->phase == D_SPARE)
			return;
	}
}

static void tune_socket(struct bufferevent *bev)
{
	evutil_socket_t fd = bufferevent_getfd(bev);
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	int idle = 10, interval = 2, count = 3;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

static void dial_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct cluster_dial *d = arg;
	if ((what & BEV_EVENT_CONNECTED) != 0) {
		if (!d->tls_layered) {
			tune_socket(bev);
			if (cluster_tls_enabled()) {
				/* the socket is up: TLS first, HELLO once it is through */
				struct bufferevent *tls = cluster_tls_wrap(d->loop->base, bev, false);
				if (tls == NULL) {
					lost(d, "out of memory for TLS");
					return;
				}
				d->bev = tls;
				d->tls_layered = true;
				bufferevent_setcb(tls, dial_read_cb, NULL, dial_event_cb, d);
				bufferevent_enable(tls, EV_READ | EV_WRITE);
				return;
			}
		}
		const struct tern_config *cfg = config_of(d);
		struct cluster_field f[3] = {cluster_str_field(CLUSTER_PROTOCOL), cluster_str_field(cfg->node_name),
					     {d->dialler_nonce, CLUSTER_NONCE_LEN}};
		send_frame(d, CLUSTER_HELLO, f, 3);
		d->phase = D_CHALLENGE;
		return;
	}
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0) {
		char why[160];
		int err = EVUTIL_SOCKET_ERROR();
		unsigned long tls_err = d->tls_layered ? bufferevent_get_openssl_error(bev) : 0;
		if (tls_err != 0) {
			char reason[120];
			ERR_error_string_n(tls_err, reason, sizeof(reason));
			snprintf(why, sizeof(why), "TLS: %s", reason);
		} else if (d->phase == D_CONNECT && d->tls_layered)
			snprintf(why, sizeof(why), "TLS handshake failed (certificate not signed by "
				 "cluster_ca?)");
		else if (d->phase == D_CONNECT)
			snprintf(why, sizeof(why), "connect: %s", evutil_socket_error_to_string(err));
		else
			snprintf(why, sizeof(why), "connection closed by the node");
		lost(d, why);
	}
}

static void spare_read_cb(struct bufferevent *bev, void *arg)
{
	/* nothing is due on a spare: drop it */
	struct cluster_dial *d = arg;
	(void)bev;
	pool_unlink(d->pool, d);
	dial_free(d);
}

static void spare_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	struct cluster_dial *d = arg;
	pool_unlink(d->pool, d);
	dial_free(d);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct cluster_dial *d = arg;
	if (d->early_failure != NULL)
		finish(d, CLUSTER_DIAL_UNREACHABLE, "", d->early_failure);
	else
		finish(d, CLUSTER_DIAL_UNREACHABLE, "", "no answer within cluster_timeout");
}

static int start_connect(struct cluster_dial *d)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	if (evutil_parse_sockaddr_port(d->addr, (struct sockaddr *)&ss, &sslen) < 0) {
		d->early_failure = "its cluster address is not a numeric host:port";
		return -1;
	}
	if (cluster_nonce(d->dialler_nonce) < 0) {
		d->early_failure = "no random bytes for a nonce";
		return -1;
	}
	d->bev = bufferevent_socket_new(d->loop->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (d->bev == NULL) {
		d->early_failure = "out of memory";
		return -1;
	}
	d->phase = D_CONNECT;
	bufferevent_setcb(d->bev, dial_read_cb, NULL, dial_event_cb, d);
	if (bufferevent_socket_connect(d->bev, (struct sockaddr *)&ss, sslen) < 0) {
		/* freed with d; the error shows as EOF/ERROR or here */
		d->early_failure = "connect failed";
		return -1;
	}
	bufferevent_enable(d->bev, EV_READ | EV_WRITE);
	return 0;
}

static struct cluster_dial *dial_new(struct loop *loop, struct pool *pool, const char *node,
				     const char *addr)
{
	struct cluster_dial *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->loop = loop;
	d->pool = pool;
	snprintf(d->node, sizeof(d->node), "%s", node);
	snprintf(d->addr, sizeof(d->addr), "%s", addr);
	d->timer = evtimer_new(loop->base, timer_cb, d);
	if (d->timer == NULL) {
		free(d);
		return NULL;
	}
	return d;
}

static void arm(struct cluster_dial *d)
{
	uint32_t ms = config_of(d)->cluster_timeout_ms;
	if (d->early_failure != NULL) {
		event_active(d->timer, EV_TIMEOUT, 0);
		return;
	}
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	if (evtimer_add(d->timer, &tv) < 0) {
		d->early_failure = "out of memory";
		event_active(d->timer, EV_TIMEOUT, 0);
	}
}

static unsigned parked_count(struct pool *p, const char *node, const char *kind)
{
	unsigned n = 0;
	for (struct cluster_dial *d = p->list; d != NULL; d = d->next)
		n += d->phase == D_PARKED && strcmp(d->node, node) == 0 && strcmp(d->kind, kind) == 0;
	return n;
}

void cluster_channel_park(struct loop *loop, const char *node, const char *addr, const char *kind,
			  struct bufferevent *bev)
{
	struct pool *p = pool_of(loop);
	struct cluster_dial *d = NULL;
	if (p != NULL && !atomic_load(&loop->server->stopping) &&
	    parked_count(p, node, kind) < TERN_CLUSTER_PARKED)
		d = dial_new(loop, p, node, addr);
	if (d == NULL) {
		bufferevent_free(bev);
		return;
	}
	snprintf(d->kind, sizeof(d->kind), "%s", kind);
	d->bev = bev;
	d->phase = D_PARKED;
	d->since_ms = tern_now_ms();
	bufferevent_setcb(bev, spare_read_cb, NULL, spare_event_cb, d);
	bufferevent_enable(bev, EV_READ);
	d->next = p->list;
	p->list = d;
}

struct bufferevent *cluster_channel_unpark(struct loop *loop, const char *node, const char *addr,
					   const char *kind)
{
	struct pool *p = loop->cluster_pool;
	uint64_t now = tern_now_ms();
	for (struct cluster_dial *d = p != NULL ? p->list : NULL, *next; d != NULL; d = next) {
		next = d->next;
		if (d->phase != D_PARKED || strcmp(d->node, node) != 0 || strcmp(d->addr, addr) != 0 ||
		    strcmp(d->kind, kind) != 0)
			continue;
		pool_unlink(p, d);
		if (now - d->since_ms >= TERN_CLUSTER_SPARE_AGE_MS) {
			dial_free(d);
			continue;
		}
		struct bufferevent *bev = d->bev;
		d->bev = NULL;
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		dial_free(d);
		return bev;
	}
	return NULL;
}

static void start_refill(struct loop *loop, const char *node, const char *addr)
{
	struct pool *p = pool_of(loop);
	if (p == NULL || atomic_load(&loop->server->stopping) ||
	    pool_count(p, node) >= TERN_CLUSTER_SPARES)
		return;
	struct cluster_dial *d = dial_new(loop, p, node, addr);
	if (d == NULL)
		return;
	d->spare_only = true;
	d->next = p->list;
	p->list = d;
	if (start_connect(d) < 0) {
		pool_unlink(p, d);
		dial_free(d);
		return;
	}
	arm(d);
}

void cluster_dial(struct loop *loop, const struct cluster_dial_request *r,
		  cluster_dial_done_fn *done, void *ctx, struct cluster_dial **d_r)
{
	struct pool *p = pool_of(loop);
	struct cluster_dial *d = p != NULL ? pool_take(p, r->node, r->addr) : NULL;
	if (d != NULL) {
		d->from_spare = true;
		d->spare_only = false;   /* someone waits for this one now */
		bufferevent_setcb(d->bev, dial_read_cb, NULL, dial_event_cb, d);
	} else {
		d = dial_new(loop, p, r->node, r->addr);
		if (d == NULL) {
			/* no memory even to say so later: the caller's turn is next */
			*d_r = NULL;
			done(ctx, CLUSTER_DIAL_UNREACHABLE, NULL, "", "out of memory");
			return;
		}
	}
	d->done = done;
	d->ctx = ctx;
	d->owner = d_r;
	*d_r = d;
	snprintf(d->kind, sizeof(d->kind), "%s", r->kind);
	snprintf(d->user, sizeof(d->user), "%s", r->user);
	snprintf(d->client_addr, sizeof(d->client_addr), "%s", r->client_addr);
	snprintf(d->params, sizeof(d->params), "%s", r->params);
	if (d->from_spare)
		send_open(d);
	else
		(void)start_connect(d);
	arm(d);
}

void cluster_dial_cancel(struct cluster_dial **d)
{
	if (*d == NULL)
		return;
	dial_free(*d);
	*d = NULL;
}
