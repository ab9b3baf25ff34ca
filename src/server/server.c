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

#include "core/log.h"
#include "directory/directory.h"
#include "proto/auth.h"
#include "proto/imap/session.h"
#include "proto/lmtp/session.h"
#include "proto/pop3/session.h"
#include "server/conn.h"
#include "server/delivery.h"
#include "server/listener.h"
#include "server/loop.h"
#include "server/tls.h"
#include "server/watchdog.h"
#include "store/mime.h"

static struct watchdog *server_watchdog;

static unsigned cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
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

static int register_node(struct server *srv)
{
	struct directory *dir;
	char *err = NULL;
	if (directory_open(srv->config->directory, &dir, &err) < 0) {
		log_error("directory %s: %s", srv->config->directory, err != NULL ? err : "open failed");
		free(err);
		return -1;
	}
	struct dir_node node = {
		.name = srv->config->node_name,
		.lmtp_addr = srv->config->lmtp_listen,
		.imap_addr = srv->config->imap_listen,
		.pop3_addr = srv->config->pop3_listen,
		.admin_addr = srv->config->admin_listen,
	};
	enum tern_error e;
	int r = dir->ops->node_upsert(dir, &node, &e);
	if (r < 0)
		log_error("directory %s: registering node %s failed: %s", srv->config->directory,
			  srv->config->node_name, tern_error_str(e));
	directory_close(&dir);
	return r;
}

struct listen_spec {
	const char *what;
	const char *addr;
	const struct conn_proto *proto;
	bool tls;
};

/* Protocols other than LMTP register here as they are built. */
const struct conn_proto *server_imap_proto = &imap_proto;
const struct conn_proto *server_pop3_proto = &pop3_proto;

static int open_listeners(struct server *srv)
{
	const struct tern_config *cfg = srv->config;
	const struct listen_spec specs[] = {
		{"lmtp", cfg->lmtp_listen, &lmtp_proto, false},
		{"imap", cfg->imap_listen, server_imap_proto, false},
		{"imaps", cfg->imaps_listen, server_imap_proto, true},
		{"pop3", cfg->pop3_listen, server_pop3_proto, false},
		{"pop3s", cfg->pop3s_listen, server_pop3_proto, true},
	};
	size_t n = sizeof(specs) / sizeof(specs[0]);
	srv->listeners = calloc(n, sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (specs[i].addr == NULL || specs[i].addr[0] == '\0')
			continue;
		if (specs[i].tls && !tls_available(srv)) {
			log_error("%s_listen = %s needs tls_cert and tls_key", specs[i].what,
				  specs[i].addr);
			return -1;
		}
		if (specs[i].proto == NULL) {
			log_warn("%s_listen = %s ignored: %s is not available in this build",
				 specs[i].what, specs[i].addr, specs[i].what);
			continue;
		}
		char *err = NULL;
		struct listener *l;
		if (listener_new(srv, specs[i].what, specs[i].addr, specs[i].proto, specs[i].tls, &l,
				 &err) < 0) {
			log_error("%s", err != NULL ? err : "listener failed");
			free(err);
			return -1;
		}
		srv->listeners[srv->listener_count++] = l;
		log_info("%s: listening on %s", specs[i].what, specs[i].addr);
	}
	return 0;
}

int server_init(struct server *srv, struct tern_config *cfg)
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
	if (srv->base == NULL)
		return -1;
	char *err = NULL;
	if (delivery_start(srv, &srv->delivery, &err) < 0) {
		log_error("delivery: cannot start: %s", err != NULL ? err : "unknown error");
		free(err);
		return -1;
	}
	srv->loop_count = cfg->worker_threads > 0 ? cfg->worker_threads : cpu_count();
	srv->loops = calloc(srv->loop_count, sizeof(*srv->loops));
	if (srv->loops == NULL)
		return -1;
	for (unsigned i = 0; i < srv->loop_count; i++) {
		if (loop_init(&srv->loops[i], srv, i) < 0 || loop_start(&srv->loops[i]) < 0) {
			log_error("cannot start loop thread %u", i);
			return -1;
		}
		srv->loops_running = i + 1;
	}
	/* Measures the failure-time floor now, not at the first login. */
	auth_pool_start();
	if (open_listeners(srv) < 0)
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
	conn_destroy_all(arg);
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
	srv->stop_timer = event_new(srv->base, -1, EV_PERSIST, stop_check_cb, srv);
	event_add(srv->stop_timer, &every);
}

int server_run(struct server *srv)
{
	struct event *sigterm = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
	struct event *sigint = evsignal_new(srv->base, SIGINT, signal_cb, srv);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	log_info("node %s ready (%u loop threads, data_dir %s)", srv->config->node_name,
		 srv->loop_count, srv->config->data_dir);
	event_base_dispatch(srv->base);
	/* Password checks in flight post to the loops: finish them first. */
	auth_pool_stop();
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
}
