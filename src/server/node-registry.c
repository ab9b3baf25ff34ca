/* The node registry: this node's row in the directory and the thread that
 * keeps its heartbeat fresh, so other nodes and ternctl can tell it runs. */
#include "server/node-registry.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/delivery-id.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "directory/directory.h"
#include "server/user-cache.h"
#include "server/watchdog.h"

/* A heartbeat write slower than one period is worth a warning: a few in a
 * row and the node reads as down to everyone else. */
#define HEARTBEAT_SLOW_MS TERN_NODE_HEARTBEAT_MS

static struct {
	bool started;
	/* One handle, never used by two threads at once: the main thread
	 * registers with it, the heartbeat thread owns it while it runs, and
	 * the main thread takes it back after the join to mark the stop. */
	struct directory *dir;
	char *name;
	uint32_t number;        /* set before any thread can read it */
	pthread_t thread;
	struct tern_mutex mu;
	pthread_cond_t cond;
	bool stop;              /* under mu */
	/* Heartbeat thread only: the current episode of trouble, if any. */
	bool failing;
	bool slow;
	uint64_t failing_since; /* monotonic ms */
	bool gen_failing;       /* the change counter cannot be read */
} reg;

static const char *addr_text(const char *addr)
{
	return addr != NULL && addr[0] != '\0' ? addr : "-";
}

static int conflict_error(char **err_r, const struct dir_node *other, int64_t now_ms)
{
	if (asprintf(err_r, "node %s is already running with other addresses (cluster %s, "
		     "lmtp %s, imap %s, pop3 %s, admin %s; version %s, last heartbeat %" PRId64
		     " ms ago): refusing to start; stop that node or give this one another "
		     "node_name", other->name, addr_text(other->cluster_addr),
		     addr_text(other->lmtp_addr), addr_text(other->imap_addr),
		     addr_text(other->pop3_addr), addr_text(other->admin_addr),
		     addr_text(other->version), dir_node_heartbeat_age_ms(other, now_ms)) < 0)
		*err_r = NULL;
	return -1;
}

/* Whether something accepts TCP connections at addr ("host:port"), within
 * TERN_NODE_PROBE_MS. Start-up only: a blocking connect is fine here. */
static bool answers(const char *addr)
{
	char host[256];
	uint16_t port;
	if (addr == NULL || addr[0] == '\0' ||
	    config_parse_listen(addr, host, sizeof(host), &port) < 0)
		return false;
	char service[8];
	snprintf(service, sizeof(service), "%u", (unsigned)port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	if (getaddrinfo(host[0] != '\0' ? host : "127.0.0.1", service, &hints, &res) != 0)
		return false;
	bool up = false;
	for (struct addrinfo *ai = res; ai != NULL && !up; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			up = true;
		} else if (errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int err = 0;
			socklen_t len = sizeof(err);
			up = poll(&pfd, 1, TERN_NODE_PROBE_MS) == 1 &&
			     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
		}
		close(fd);
	}
	freeaddrinfo(res);
	return up;
}

/* A row whose heartbeat is recent but none of whose addresses answers is
 * the previous run of a node that was killed (a crash, SIGKILL): it is not
 * running, whatever its last beat says. */
static bool still_running(const struct dir_node *n)
{
	return answers(n->cluster_addr) || answers(n->lmtp_addr) || answers(n->imap_addr) ||
	       answers(n->pop3_addr) || answers(n->admin_addr);
}

/* Registers cfg's node with reg.dir; -1 with *err_r on a conflict or error. */
static int register_self(const struct tern_config *cfg, char **err_r)
{
	int64_t now = dir_wall_ms();
	struct dir_node self = {
		.name = cfg->node_name,
		.lmtp_addr = cfg->lmtp_listen,
		.imap_addr = cfg->imap_listen,
		.pop3_addr = cfg->pop3_listen,
		.admin_addr = cfg->admin_listen,
		.cluster_addr = (char *)config_cluster_address(cfg),
		.version = (char *)TERN_VERSION,
		.started_ms = now,
	};
	struct dir_node other = {0};
	enum tern_error e = TERN_ERR_NONE;

	if (reg.dir->ops->node_register(reg.dir, &self, now, &other, &e) == 0)
		return 0;
	if (e == TERN_ERR_EXISTS && other.name != NULL && !still_running(&other)) {
		log_warn("node %s: its previous run (heartbeat %" PRId64 " ms ago) does not answer "
			 "at any of its addresses: taking its place", cfg->node_name,
			 dir_node_heartbeat_age_ms(&other, now));
		dir_node_clear(&other);
		if (reg.dir->ops->node_stop(reg.dir, cfg->node_name, &e) == 0 &&
		    reg.dir->ops->node_register(reg.dir, &self, now, &other, &e) == 0)
			return 0;
	}
	if (e == TERN_ERR_EXISTS && other.name != NULL) {
		conflict_error(err_r, &other, now);
		dir_node_clear(&other);
		return -1;
	}
	if (asprintf(err_r, "directory %s: registering node %s failed: %s", cfg->directory,
		     cfg->node_name, tern_error_str(e)) < 0)
		*err_r = NULL;
	return -1;
}

/* Reads the number the directory gave this node's name; -1 with *err_r
 * when it cannot be read or does not fit in a delivery id. */
static int read_number(const struct tern_config *cfg, char **err_r)
{
	struct dir_node self = {0};
	enum tern_error e = TERN_ERR_NONE;
	int found = reg.dir->ops->node_get(reg.dir, cfg->node_name, &self, &e);
	uint32_t number = found > 0 ? self.number : 0;

	dir_node_clear(&self);
	if (number >= 1 && number <= DELIVERY_ID_MAX_NODE) {
		reg.number = number;
		return 0;
	}
	if (found <= 0 || number == 0) {
		if (asprintf(err_r, "directory %s: reading node %s's number failed: %s",
			     cfg->directory, cfg->node_name,
			     found < 0 ? tern_error_str(e) : "no number") < 0)
			*err_r = NULL;
	} else if (asprintf(err_r, "directory %s: node %s has number %u, above the %u node "
			    "names a directory can ever number", cfg->directory, cfg->node_name,
			    number, DELIVERY_ID_MAX_NODE) < 0) {
		*err_r = NULL;
	}
	return -1;
}

uint32_t node_registry_number(void)
{
	return reg.number;
}

/* Waits until deadline (monotonic ms) or a stop; false when stopping. */
static bool wait_until(uint64_t deadline)
{
	TERN_LOCK_GUARD(&reg.mu);
	while (!reg.stop && tern_now_ms() < deadline)
		tern_cond_wait(&reg.cond, &reg.mu, deadline);
	return !reg.stop;
}

/* Reads the directory's change counter and publishes it to the user cache
 * (user-cache.h): a change made by ternctl or another node is obeyed here
 * from the next beat on. A failed read turns the cache off until a read
 * works again (logged once). Runs on the heartbeat thread, or on the main
 * thread before it starts. */
static void poll_generation(void)
{
	enum tern_error e = TERN_ERR_NONE;
	uint64_t gen = 0;

	watch_busy("directory generation read");
	int r = directory_generation(reg.dir, &gen, &e);
	watch_idle();
	if (r == 0) {
		user_cache_set_generation(gen);
		if (reg.gen_failing)
			log_info("node registry: the directory's change counter reads again; "
				 "the user cache is back on");
		reg.gen_failing = false;
		return;
	}
	user_cache_distrust();
	if (!reg.gen_failing)
		log_warn("node registry: reading the directory's change counter failed: %s; "
			 "user look-ups read the directory until it works again (logged once)",
			 tern_error_str(e));
	reg.gen_failing = true;
}

/* One heartbeat. Trouble is logged when it starts and when it ends, not at
 * every beat: a directory that is down for a minute is one line, not sixty. */
static void beat(void)
{
	enum tern_error e = TERN_ERR_NONE;
	uint64_t t0 = tern_now_ms();

	watch_busy("node heartbeat write");
	int r = reg.dir->ops->node_heartbeat(reg.dir, reg.name, dir_wall_ms(), &e);
	watch_idle();
	uint64_t took = tern_now_ms() - t0;

	if (r < 0 && !reg.failing) {
		reg.failing = true;
		reg.failing_since = t0;
		log_error("node registry: heartbeat of node %s failed: %s; other nodes will see "
			  "it down after %u ms (logged once until a heartbeat works again)",
			  reg.name, tern_error_str(e), TERN_NODE_DOWN_AFTER_MS);
	} else if (r == 0 && reg.failing) {
		reg.failing = false;
		log_info("node registry: heartbeat of node %s works again after %" PRIu64 " ms",
			 reg.name, t0 - reg.failing_since);
	}
	if (r == 0 && took >= HEARTBEAT_SLOW_MS && !reg.slow) {
		reg.slow = true;
		log_warn("node registry: heartbeat of node %s took %" PRIu64 " ms (a node is down "
			 "after %u ms without one; logged once until writes are fast again)",
			 reg.name, took, TERN_NODE_DOWN_AFTER_MS);
	} else if (r == 0 && took < HEARTBEAT_SLOW_MS && reg.slow) {
		reg.slow = false;
		log_info("node registry: heartbeat writes of node %s are fast again", reg.name);
	}
}

static void *heartbeat_main(void *arg)
{
	(void)arg;
	watch_thread_begin(WATCH_WORKER, "node heartbeat");
	uint64_t next = tern_now_ms() + TERN_NODE_HEARTBEAT_MS;
	while (wait_until(next)) {
		poll_generation();
		beat();
		/* After a slow write, beat a period from now rather than
		 * catching up with a burst of writes. */
		next += TERN_NODE_HEARTBEAT_MS;
		uint64_t now = tern_now_ms();
		if (next <= now)
			next = now + TERN_NODE_HEARTBEAT_MS;
	}
	watch_thread_end();
	return NULL;
}

/* Marks the node stopped and releases everything reg holds. */
static void release(bool mark_stopped)
{
	enum tern_error e = TERN_ERR_NONE;

	if (mark_stopped && reg.dir->ops->node_stop(reg.dir, reg.name, &e) < 0)
		log_warn("node registry: marking node %s stopped failed: %s (it shows down "
			 "once its heartbeat is %u ms old)", reg.name, tern_error_str(e),
			 TERN_NODE_DOWN_AFTER_MS);
	directory_close(&reg.dir);
	free(reg.name);
	reg.name = NULL;
}

int node_registry_start(const struct tern_config *cfg, char **err_r)
{
	char *open_err = NULL;

	*err_r = NULL;
	if (reg.started)
		return 0;
	if (directory_open(cfg->directory, &reg.dir, &open_err) < 0) {
		if (asprintf(err_r, "directory %s: %s", cfg->directory,
			     open_err != NULL ? open_err : "open failed") < 0)
			*err_r = NULL;
		free(open_err);
		return -1;
	}
	reg.name = strdup(cfg->node_name);
	if (reg.name == NULL) {
		release(false);
		*err_r = strdup("node registry: out of memory");
		return -1;
	}
	if (register_self(cfg, err_r) < 0 || read_number(cfg, err_r) < 0) {
		release(false);
		return -1;
	}
	tern_mutex_init(&reg.mu, "node registry");
	tern_cond_init(&reg.cond);
	reg.stop = false;
	reg.failing = reg.slow = reg.gen_failing = false;
	poll_generation();
	if (pthread_create(&reg.thread, NULL, heartbeat_main, NULL) != 0) {
		/* Registered but without a heartbeat: undo, it would read as down. */
		pthread_cond_destroy(&reg.cond);
		tern_mutex_destroy(&reg.mu);
		release(true);
		*err_r = strdup("node registry: cannot start the heartbeat thread");
		return -1;
	}
	reg.started = true;
	log_info("node %s registered in directory %s as number %u (cluster address %s)",
		 cfg->node_name, cfg->directory, reg.number, addr_text(config_cluster_address(cfg)));
	return 0;
}

void node_registry_stop(void)
{
	if (!reg.started)
		return;
	{
		TERN_LOCK_GUARD(&reg.mu);
		reg.stop = true;
		pthread_cond_signal(&reg.cond);
	}
	pthread_join(reg.thread, NULL);
	user_cache_distrust();   /* nobody keeps it current any more */
	struct user_cache_stats st;
	user_cache_stats(&st);
	log_info("user cache: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " puts (%" PRIu64
		 " too old), %" PRIu64 " shards emptied, %" PRIu64 " entries at stop", st.hits,
		 st.misses, st.puts, st.dropped, st.clears, st.entries);
	pthread_cond_destroy(&reg.cond);
	tern_mutex_destroy(&reg.mu);
	release(true);
	reg.started = false;
}
