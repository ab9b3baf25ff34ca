#include "server/adopt.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/util.h>

#include "core/log.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/server.h"

struct adopted {
	struct server *srv;
	const struct conn_proto *proto;
	int fd;
	bool loopback;
	char peer[64];
	char peer_addr[48];
};

/* Not srv->next_loop: that one belongs to the listeners' (main) thread, and
 * adopting may happen on any thread. */
static atomic_uint adopt_next;

/* The same admission as a listener's accepted_task: an adopted socket gets
 * no way round the connection budgets. */
static void adopted_task(void *arg)
{
	struct adopted *a = arg;
	struct loop *loop = loop_current();
	struct server *srv = a->srv;
	const struct tern_config *cfg = srv->config;
	if (loop == NULL || atomic_load(&srv->stopping)) {
		close(a->fd);
		free(a);
		return;
	}
	uint32_t class_limit = conn_class_limit(cfg, a->proto->conn_class);
	enum conn_admit admit = conn_admit(a->proto, a->peer_addr, class_limit,
					   cfg->max_preauth_per_address);
	if (admit == CONN_ADMIT_OK) {
		(void)conn_new(loop, a->fd, a->proto, a->peer, a->peer_addr, a->loopback,
			       conn_class_idle_timeout_ms(cfg, a->proto->conn_class),
			       cfg->login_timeout_ms, false);
		free(a);
		return;
	}
	if (admit == CONN_ADMIT_NO_MEMORY) {
		conn_refuse_no_memory(a->fd, a->proto, false, a->peer_addr);
		free(a);
		return;
	}
	const char *busy = a->proto->busy_reply;
	ssize_t ignored = write(a->fd, busy, strlen(busy));
	(void)ignored;
	log_warn("%s: rip=%s: adopted connection refused: %s", a->proto->name, a->peer_addr,
		 admit == CONN_ADMIT_CLASS_FULL ? "connection limit reached"
						: "max_preauth_per_address reached");
	close(a->fd);
	free(a);
}

int server_adopt_fd(struct server *srv, int fd, const struct conn_proto *proto, const char *peer,
		    const char *peer_addr, bool loopback)
{
	/* a listener's sockets come non-blocking; the bufferevent relies on it */
	struct adopted *a = calloc(1, sizeof(*a));
	if (a == NULL || srv->loop_count == 0 || srv->loops == NULL ||
	    evutil_make_socket_nonblocking(fd) < 0) {
		free(a);
		close(fd);
		return -1;
	}
	a->srv = srv;
	a->proto = proto;
	a->fd = fd;
	a->loopback = loopback;
	snprintf(a->peer, sizeof(a->peer), "%s", peer);
	snprintf(a->peer_addr, sizeof(a->peer_addr), "%s", peer_addr);
	unsigned i = atomic_fetch_add(&adopt_next, 1) % srv->loop_count;
	loop_post(&srv->loops[i], adopted_task, a);
	return 0;
}
