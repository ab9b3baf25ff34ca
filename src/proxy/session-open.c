#include "proxy/session-open.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/dial.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/server.h"

struct proxy_open {
	struct conn *conn;
	struct proxy_open **owner;
	struct cluster_dial *dial;
	struct event *later;          /* a failure known at once is reported on a later turn */
	char reply[200];
	proxy_failed_fn *fail;
	void *ctx;
	enum relay_kind kind;
	char user[TERN_USERNAME_MAX + 1];
	char home[TERN_CLUSTER_NODE_NAME_MAX + 1];
};

static void po_free(struct proxy_open *po)
{
	if (po->owner != NULL)
		*po->owner = NULL;
	cluster_dial_cancel(&po->dial);
	if (po->later != NULL)
		event_free(po->later);
	struct conn *c = po->conn;
	free(po);
	conn_unref(&c);
}

static void report_failure(struct proxy_open *po)
{
	struct conn *c = po->conn;
	proxy_failed_fn *fail = po->fail;
	void *ctx = po->ctx;
	char reply[sizeof(po->reply)];
	snprintf(reply, sizeof(reply), "%s", po->reply);
	conn_ref(c);
	po_free(po);
	if (!c->closing)
		fail(c, reply, ctx);
	conn_unref(&c);
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	report_failure(arg);
}

static void dialled(void *ctx, enum cluster_dial_status st, struct bufferevent *bev,
		    const char *status, const char *text)
{
	struct proxy_open *po = ctx;
	struct conn *c = po->conn;
	const char *proto = po->kind == RELAY_IMAP ? "imap" : "pop3";
	if (st == CLUSTER_DIAL_OK) {
		if (c->closing) {
			bufferevent_free(bev);
			po_free(po);
			return;
		}
		char user[sizeof(po->user)], home[sizeof(po->home)];
		snprintf(user, sizeof(user), "%s", po->user);
		snprintf(home, sizeof(home), "%s", po->home);
		struct relay_target t = {.kind = po->kind, .user = user, .home = home};
		conn_ref(c);
		po_free(po);            /* the session's pointer to us is cleared first */
		proxy_relay_start(c, bev, &t);
		conn_unref(&c);
		return;
	}
	if (st == CLUSTER_DIAL_UNREACHABLE) {
		/* the outage itself is logged once by cluster/dial.c */
		snprintf(po->reply, sizeof(po->reply),
			 "Mailbox is on node %s, which cannot be reached now; try again later",
			 po->home);
	} else {
		log_warn("proxy: user=<%s> home=%s proto=%s rip=%s: the home node refused the "
			 "session: %s %s", po->user, po->home, proto, c->peer_addr, status, text);
		snprintf(po->reply, sizeof(po->reply), "Mailbox is on node %s, which refused: %s",
			 po->home, text);
	}
	report_failure(po);
}

void proxy_session_open(struct conn *c, const struct proxy_request *r, proxy_failed_fn *fail,
			void *ctx, struct proxy_open **po_r)
{
	const struct tern_config *cfg = c->loop->server->config;
	struct proxy_open *po = calloc(1, sizeof(*po));
	if (po != NULL)
		po->later = evtimer_new(c->loop->base, later_cb, po);
	if (po == NULL || po->later == NULL) {
		free(po);
		*po_r = NULL;
		fail(c, "Out of memory, try again later", ctx);
		return;
	}
	conn_ref(c);
	po->conn = c;
	po->owner = po_r;
	po->fail = fail;
	po->ctx = ctx;
	po->kind = r->kind;
	snprintf(po->user, sizeof(po->user), "%s", r->user);
	snprintf(po->home, sizeof(po->home), "%s", r->home);
	*po_r = po;
	if (cfg->cluster_secret[0] == '\0' || r->home_addr[0] == '\0') {
		log_warn("proxy: user=<%s> home=%s rip=%s: %s", r->user, r->home, c->peer_addr,
			 cfg->cluster_secret[0] == '\0' ? "this node is not in a cluster (no cluster_secret)"
							: "the home node has no cluster address");
		snprintf(po->reply, sizeof(po->reply),
			 "Mailbox is on node %s, which cannot be reached from here", r->home);
		event_active(po->later, EV_TIMEOUT, 0);
		return;
	}
	struct cluster_dial_request d = {
		.node = r->home,
		.addr = r->home_addr,
		.kind = r->kind == RELAY_IMAP ? "imap" : "pop3",
		.user = r->user,
		.client_addr = c->peer_addr,
		.params = r->params,
	};
	cluster_dial(c->loop, &d, dialled, po, &po->dial);
}

void proxy_open_cancel(struct proxy_open **po)
{
	if (*po == NULL)
		return;
	(*po)->owner = NULL;
	po_free(*po);
	*po = NULL;
}
