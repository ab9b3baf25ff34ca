#include "server/server.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/log.h"
#include "directory/directory.h"
#include "server/conn.h"
#include "server/delivery.h"
#include "server/listener.h"
#include "server/loop.h"
#include "server/node-registry.h"
#include "server/tls.h"
#include "server/watchdog.h"
#include "store/mime.h"

static struct watchdog *server_watchdog;

static unsigned cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n > (long)TERN_WORKER_THREADS_CEILING)
		return TERN_WORKER_THREADS_CEILING;
	return n > 0 ? (unsigned)n : 2;
}

/* Every open store handle costs three descriptors: raise the soft limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int ensure_data_dir(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		log_error("data_dir %s: cannot create: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Registers this node in the directory and starts its heartbeat
 * (server/node-registry.h); refuses when a live node holds the name. */
static int register_node(struct server *srv)
{
	char *err = NULL;
	if (node_registry_start(srv->config, &err) < 0) {
		log_error("%s", err != NULL ? err : "node registry: start failed");
		free(err);
		return -1;
	}
	return 0;
}

static int open_listeners(struct server *srv, const struct server_frontends *fe)
{
	srv->listeners = calloc(fe->listen_count > 0 ? fe->listen_count : 1,
				sizeof(*srv->listeners));
	if (srv->listeners == NULL) {
		log_error("listeners: out of memory");
		return -1;
	}
	for (size_t i = 0; i < fe->listen_count; i++) {
		const struct server_listen *spec = &fe->listens[i];
		if (spec->addr == NULL || spec->addr[0] == '\0')
			continue;
		if (spec->tls && !tls_available(srv)) {
			log_error("%s_listen = %s needs tls_cert and tls_key", spec->what, spec->addr);
			return -1;
		}
		char *err = NULL;
		struct listener *l;
		if (listener_new(srv, spec->what, spec->addr, spec->proto, spec->tls, &l, &err) < 0) {
			log_error("%s", err != NULL ? err : "listener failed");
			free(err);
			return -1;
		}
		srv->listeners[srv->listener_count++] = l;
		log_info("%s: listening on %s", spec->what, spec->addr);
	}
	return 0;
}

static void stop_check_cb(evutil_socket_t fd, short what, void *arg);

/* Runs the front ends' stop hook once, if their services were started. */
static void services_stop(struct server *srv)
{
	void (*stop)(void) = srv->services_stop;
	srv->services_stop = NULL;
	if (stop != NULL)
		stop();
}

int server_init(struct server *srv, struct tern_config *cfg, const struct server_frontends *fe)
{
	memset(srv, 0, sizeof(*srv));
	srv->config = cfg;
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (evthread_use_pthreads() < 0) {
		log_error("libevent: no pthread support");
		return -1;
	}
	mime_init();
	if (tls_init(srv) < 0)
		return -1;
	if (ensure_data_dir(cfg->data_dir) < 0 || register_node(srv) < 0)
		return -1;
	srv->base = event_base_new();
	/* made now: a stop must not need memory */
	if (srv->base != NULL)
		srv->stop_timer = event_new(srv->base, -1, EV_PERSIST, stop_check_cb, srv);
	if (srv->base == NULL || srv->stop_timer == NULL) {
		log_error("libevent: out of memory");
		return -1;
	}
	char *err = NULL;
	if (delivery_start(srv, &srv->delivery, &err) < 0) {
		log_error("delivery: cannot start: %s", err != NULL ? err : "unknown error");
		free(err);
		return -1;
	}
	srv->loop_count = cfg->worker_threads > 0 ? cfg->worker_threads : cpu_count();
	srv->loops = calloc(srv->loop_count, sizeof(*srv->loops));
	if (srv->loops == NULL) {
		log_error("loops: out of memory");
		return -1;
	}
	for (unsigned i = 0; i < srv->loop_count; i++) {
		if (loop_init(&srv->loops[i], srv, i) < 0 || loop_start(&srv->loops[i]) < 0) {
			log_error("cannot start loop thread %u", i);
			return -1;
		}
		srv->loops_running = i + 1;
	}
	/* Before the listeners: the password workers measure the failure-time
	 * floor now, not at the first login. */
	if (fe->services_start != NULL)
		fe->services_start(srv);
	srv->services_stop = fe->services_stop;
	if (open_listeners(srv, fe) < 0)
		return -1;
	if (watchdog_start(srv, cfg->watchdog_threshold_ms, &server_watchdog) < 0)
		log_warn("watchdog: cannot start; lock stalls will not be reported");
	return 0;
}

static void loop_shutdown_task(void *arg)
{
	struct loop *loop = arg;
	for (struct conn *c = loop->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (c->closing || c->shutting_down)
			continue;
		c->shutting_down = true;
		c->proto->shutdown(c);
	}
}

static void loop_destroy_task(void *arg)
{
	struct loop *loop = arg;
	conn_destroy_all(loop);
	loop_run_cleanups(loop);
	if (loop->cluster_pool_free != NULL)
		loop->cluster_pool_free(loop);
}

static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct server *srv = arg;
	if (conn_count_total() == 0 || tern_now_ms() >= srv->stop_deadline)
		event_base_loopbreak(srv->base);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct server *srv = arg;
	if (atomic_exchange(&srv->stopping, true)) {
		log_info("signal %d again: stopping now", (int)sig);
		srv->stop_deadline = 0;
		return;
	}
	log_info("signal %d: stopping (up to %u ms for open transactions)", (int)sig,
		 srv->config->shutdown_timeout_ms);
	for (size_t i = 0; i < srv->listener_count; i++)
		listener_disable(srv->listeners[i]);
	for (unsigned i = 0; i < srv->loop_count; i++)
		loop_post(&srv->loops[i], loop_shutdown_task, &srv->loops[i]);
	srv->stop_deadline = tern_now_ms() + srv->config->shutdown_timeout_ms;
	static const struct timeval every = {0, 20000};
	if (event_add(srv->stop_timer, &every) < 0) {
		/* the timer heap could not grow: stop without the grace period
		 * rather than never */
		log_error("shutdown: out of memory for the stop timer, stopping now");
		event_base_loopbreak(srv->base);
	}
}

int server_run(struct server *srv)
{
	struct event *sigterm = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
	struct event *sigint = evsignal_new(srv->base, SIGINT, signal_cb, srv);
	if (sigterm == NULL || sigint == NULL || event_add(sigterm, NULL) < 0 ||
	    event_add(sigint, NULL) < 0) {
		/* not stoppable by a signal is not a server to run */
		log_error("signals: cannot handle SIGTERM and SIGINT (out of memory)");
		if (sigterm != NULL)
			event_free(sigterm);
		if (sigint != NULL)
			event_free(sigint);
		return 1;
	}
	log_info("node %s ready (%u loop threads, data_dir %s)", srv->config->node_name,
		 srv->loop_count, srv->config->data_dir);
	event_base_dispatch(srv->base);
	/* Password checks in flight post to the loops: finish them first. */
	services_stop(srv);
	unsigned left = conn_count_total();
	if (left > 0)
		log_warn("shutdown: closing %u connection(s) still open after %u ms", left,
			 srv->config->shutdown_timeout_ms);
	/* The watchdog reads srv->delivery: stop it before that goes away. */
	watchdog_stop(&server_watchdog);
	/* Finish deliveries first: their results go back to running loops. */
	delivery_stop(&srv->delivery);
	for (unsigned i = 0; i < srv->loop_count; i++)
		loop_post(&srv->loops[i], loop_destroy_task, &srv->loops[i]);
	for (unsigned i = 0; i < srv->loops_running; i++)
		loop_join(&srv->loops[i]);
	srv->loops_running = 0;
	event_free(sigterm);
	event_free(sigint);
	log_info("node %s stopped", srv->config->node_name);
	return 0;
}

void server_deinit(struct server *srv)
{
	/* after a failed server_init: the services' threads post to the loops */
	services_stop(srv);
	watchdog_stop(&server_watchdog);
	for (size_t i = 0; i < srv->listener_count; i++)
		listener_free(&srv->listeners[i]);
	free(srv->listeners);
	delivery_stop(&srv->delivery);
	for (unsigned i = 0; i < srv->loops_running; i++)
		loop_join(&srv->loops[i]);
	for (unsigned i = 0; i < srv->loop_count && srv->loops != NULL; i++)
		loop_deinit(&srv->loops[i]);
	free(srv->loops);
	if (srv->stop_timer != NULL)
		event_free(srv->stop_timer);
	if (srv->accept_shortage.quiet_timer != NULL)
		event_free(srv->accept_shortage.quiet_timer);
	if (srv->base != NULL)
		event_base_free(srv->base);
	tls_deinit(srv);
	/* Last: the node reads as up for as long as anything above ran. */
	node_registry_stop();
}
