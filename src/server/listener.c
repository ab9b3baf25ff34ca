#include "server/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/server.h"

struct listener {
	struct server *server;
	struct evconnlistener *ev;
	const struct conn_proto *proto;
	bool tls;
	char what[16];
};

struct accepted {
	struct listener *listener;
	int fd;
	char peer[64];
	char peer_addr[48];
	bool loopback;
};

static void accepted_task(void *arg)
{
	struct accepted *a = arg;
	struct loop *loop = loop_current();
	struct server *srv = a->listener->server;
	if (loop == NULL || atomic_load(&srv->stopping)) {
		close(a->fd);
		free(a);
		return;
	}
	if (conn_count_total() >= srv->config->max_connections) {
		const char *busy = a->listener->proto->busy_reply;
		ssize_t ignored = write(a->fd, busy, strlen(busy));
		(void)ignored;
		log_warn("%s: rip=%s: connection refused: max_connections (%u) reached",
			 a->listener->what, a->peer_addr, srv->config->max_connections);
		close(a->fd);
		free(a);
		return;
	}
	uint32_t idle = strcmp(a->listener->proto->name, "lmtp") == 0 ? srv->config->lmtp_timeout_ms
									 : srv->config->idle_timeout_ms;
	(void)conn_new(loop, a->fd, a->listener->proto, a->peer, a->peer_addr, a->loopback, idle,
		       a->listener->tls);
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
		close(fd);
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

static void accept_error_cb(struct evconnlistener *ev, void *arg)
{
	struct listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();
	/* EMFILE and friends: keep listening; the next accept may succeed. */
	log_error("%s: accept failed: %s", l->what, evutil_socket_error_to_string(e));
	(void)ev;
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
					1024, (struct sockaddr *)&ss, sslen);
	if (l->ev == NULL) {
		if (asprintf(err_r, "%s: cannot listen on %s: %s", what, addr, strerror(errno)) < 0)
			*err_r = NULL;
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->ev, accept_error_cb);
	*l_r = l;
	return 0;
}

void listener_disable(struct listener *l)
{
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
	free(l);
}
