#include "server/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/server.h"

struct listener {
	struct server *server;
	struct evconnlistener *ev;
	struct event *backoff;       /* re-enables ev after an accept shortage */
	const struct conn_proto *proto;
	bool tls;
	char what[16];
};

static bool out_of_resources(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

static void shortage_quiet_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct server *srv = arg;
	if (!srv->accept_shortage.active)
		return;
	srv->accept_shortage.active = false;
	log_warn("accept: no failure for %u ms: shortage over after %llu ms, %lu accept(s) deferred",
		 TERN_ACCEPT_SHORTAGE_QUIET_MS,
		 (unsigned long long)(srv->accept_shortage.last_ms - srv->accept_shortage.since_ms),
		 srv->accept_shortage.deferred);
	srv->accept_shortage.deferred = 0;
}

struct accepted {
	struct listener *listener;
	int fd;
	char peer[64];
	char peer_addr[48];
	bool loopback;
};

/* Refuses an accepted socket with the protocol's busy reply. Over implicit
 * TLS the line would reach a client expecting a handshake as garbage: just
 * close. The socket is non-blocking and the line short: one write. */
static void refuse(struct accepted *a, const char *limit, uint32_t value)
{
	const struct listener *l = a->listener;
	if (!l->tls) {
		const char *busy = l->proto->busy_reply;
		ssize_t ignored = write(a->fd, busy, strlen(busy));
		(void)ignored;
	}
	log_warn("%s: rip=%s: connection refused: %s (%u) reached", l->what, a->peer_addr, limit,
		 value);
	close(a->fd);
}

static void accepted_task(void *arg)
{
	struct accepted *a = arg;
	struct loop *loop = loop_current();
	struct server *srv = a->listener->server;
	const struct tern_config *cfg = srv->config;
	const struct conn_proto *proto = a->listener->proto;
	if (loop == NULL || atomic_load(&srv->stopping)) {
		close(a->fd);
		free(a);
		return;
	}
	uint32_t class_limit = conn_class_limit(cfg, proto->conn_class);
	switch (conn_admit(proto, a->peer_addr, class_limit, cfg->max_preauth_per_address)) {
	case CONN_ADMIT_OK:
		(void)conn_new(loop, a->fd, proto, a->peer, a->peer_addr, a->loopback,
			       conn_class_idle_timeout_ms(cfg, proto->conn_class),
			       cfg->login_timeout_ms, a->listener->tls);
		break;
	case CONN_ADMIT_CLASS_FULL:
		refuse(a, conn_class_limit_key(proto->conn_class), class_limit);
		break;
	case CONN_ADMIT_PREAUTH_FULL:
		refuse(a, "max_preauth_per_address", cfg->max_preauth_per_address);
		break;
	case CONN_ADMIT_NO_MEMORY:
		conn_refuse_no_memory(a->fd, proto, a->listener->tls, a->peer_addr);
		break;
	}
	free(a);
}

static void describe_peer(const struct sockaddr *sa, struct accepted *a)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	a->loopback = false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		a->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		a->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			a->loopback = in6->sin6_addr.s6_addr[12] == 127;
	}
	snprintf(a->peer_addr, sizeof(a->peer_addr), "%s", host);
	snprintf(a->peer, sizeof(a->peer), "%s:%u", host, port);
}

static void accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	(void)ev;
	(void)socklen;
	struct listener *l = arg;
	struct server *srv = l->server;
	struct accepted *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		struct accepted who;
		describe_peer(sa, &who);
		conn_refuse_no_memory(fd, l->proto, l->tls, who.peer_addr);
		return;
	}
	a->listener = l;
	a->fd = fd;
	describe_peer(sa, a);
	/* Replies are assembled in an evbuffer and written once per loop turn,
	 * so Nagle only adds latency: a multi-segment reply (a FETCH) whose
	 * short last segment waits for the client's delayed ACK (40 ms). */
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	struct loop *loop = &srv->loops[srv->next_loop++ % srv->loop_count];
	loop_post(loop, accepted_task, a);
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct listener *l = arg;
	if (l->ev != NULL)
		evconnlistener_enable(l->ev);
}

static void accept_error_cb(struct evconnlistener *ev, void *arg)
{
	struct listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();
	if (!out_of_resources(e)) {
		/* a failure of one pending connection (Linux reports its
		 * network errors here); the next accept may well succeed */
		log_error("%s: accept failed: %s", l->what, evutil_socket_error_to_string(e));
		return;
	}
	/* The connection stays in the backlog and the listening socket stays
	 * readable: trying again at once spins a CPU and floods the log. Pause
	 * this listener; the connection waits in the backlog and is served
	 * once descriptors are free (its client may give up first). No spare
	 * descriptor is kept to accept-and-close it: that would turn a short
	 * shortage into refused connections, the MTA's among them, and in a
	 * threaded process the freed slot can be taken by a loop thread
	 * before accept() gets it. */
	struct server *srv = l->server;
	uint64_t now = tern_now_ms();
	srv->accept_shortage.deferred++;
	srv->accept_shortage.last_ms = now;
	if (!srv->accept_shortage.active) {
		srv->accept_shortage.active = true;
		srv->accept_shortage.since_ms = now;
		log_error("%s: accept failed: %s; pausing accepts (%u ms at a time) until "
			  "descriptors are free", l->what, evutil_socket_error_to_string(e),
			  TERN_ACCEPT_BACKOFF_MS);
	}
	static const struct timeval quiet = {.tv_sec = TERN_ACCEPT_SHORTAGE_QUIET_MS / 1000,
					     .tv_usec = (TERN_ACCEPT_SHORTAGE_QUIET_MS % 1000) * 1000};
	(void)evtimer_add(srv->accept_shortage.quiet_timer, &quiet);
	static const struct timeval pause = {.tv_sec = TERN_ACCEPT_BACKOFF_MS / 1000,
					     .tv_usec = (TERN_ACCEPT_BACKOFF_MS % 1000) * 1000};
	if (evconnlistener_disable(ev) == 0 && evtimer_add(l->backoff, &pause) < 0)
		evconnlistener_enable(ev);   /* no timer: better to spin than to stop for good */
}

int listener_new(struct server *srv, const char *what, const char *addr,
		 const struct conn_proto *proto, bool tls, struct listener **l_r, char **err_r)
{
	char host[256];
	uint16_t port;
	if (config_parse_listen(addr, host, sizeof(host), &port) < 0) {
		if (asprintf(err_r, "%s: invalid address '%s'", what, addr) < 0)
			*err_r = NULL;
		return -1;
	}
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char spec[300];
	snprintf(spec, sizeof(spec), strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host, port);
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0) {
		if (asprintf(err_r, "%s: cannot parse address '%s' (use a numeric IP)", what, addr) < 0)
			*err_r = NULL;
		return -1;
	}
	struct listener *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -1;
	l->server = srv;
	l->proto = proto;
	l->tls = tls;
	snprintf(l->what, sizeof(l->what), "%s", what);
	l->ev = evconnlistener_new_bind(srv->base, accept_cb, l,
					LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						LEV_OPT_CLOSE_ON_EXEC,
					TERN_LISTEN_BACKLOG, (struct sockaddr *)&ss, sslen);
	if (l->ev == NULL) {
		if (asprintf(err_r, "%s: cannot listen on %s: %s", what, addr, strerror(errno)) < 0)
			*err_r = NULL;
		free(l);
		return -1;
	}
	if (srv->accept_shortage.quiet_timer == NULL)
		srv->accept_shortage.quiet_timer = evtimer_new(srv->base, shortage_quiet_cb, srv);
	l->backoff = evtimer_new(srv->base, backoff_cb, l);
	if (l->backoff == NULL || srv->accept_shortage.quiet_timer == NULL) {
		if (asprintf(err_r, "%s: cannot create a timer", what) < 0)
			*err_r = NULL;
		if (l->backoff != NULL)
			event_free(l->backoff);
		evconnlistener_free(l->ev);
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->ev, accept_error_cb);
	*l_r = l;
	return 0;
}

void listener_disable(struct listener *l)
{
	if (l->backoff != NULL)
		evtimer_del(l->backoff);
	if (l->ev != NULL) {
		evconnlistener_free(l->ev);
		l->ev = NULL;
	}
}

void listener_free(struct listener **lp)
{
	struct listener *l = *lp;
	if (l == NULL)
		return;
	*lp = NULL;
	listener_disable(l);
	if (l->backoff != NULL)
		event_free(l->backoff);
	free(l);
}
