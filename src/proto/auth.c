/* Asynchronous password logins (see auth.h). Checks run on two worker
 * threads, each with its own directory handle; everything else happens on
 * the connection's loop thread, and every wait is a libevent timer there (no
 * thread ever sleeps to delay, the loop never hashes).
 *
 * A request's life:
 *   enter   counted as a login in progress from its address (bounded);
 *   gate    on the loop, waits out the penalties it has earned: recent
 *           failures of its address, and of its user when this address has
 *           failed for that user; an address's checks are also spaced by its
 *           penalty, so parallel guesses serialise instead of all waiting
 *           the same delay and then hashing together;
 *   queue   behind its address's other checks, addresses served in turn
 *           (auth-queue.c), node-wide bounded;
 *   check   on a worker;
 *   delay   back on the loop: counted and logged; a failure is padded to the
 *           node's failure floor (so no failure is faster than the check of
 *           an unknown user) and then delayed by the failure delay;
 *   done.
 * The request owns a reference on the connection throughout. Whenever a
 * step runs on the loop and finds the connection closing, the request ends
 * there without writing; a failure already checked is still counted and
 * logged. Only a forced destroy at server stop can free the connection under
 * a request, and that path calls auth_cancel(). */
#include "proto/auth.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/client-addr.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "core/reserve.h"
#include "core/username.h"
#include "directory/directory.h"
#include "directory/password.h"
#include "proto/auth-queue.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/lookup.h"
#include "server/server.h"
#include "server/watchdog.h"

/* The failure floor is the larger of two bounds. One covers twice the CPU
 * time of the costliest check seen (the dummy check measured at start, and
 * every real one since) plus a margin: it never comes down, and it is the
 * whole floor on an idle host. The other follows the wall time of recent
 * checks, a quarter over the longest, decaying by 1/64 a check: on a loaded
 * host a yescrypt check takes twice its CPU time or more, and without it a
 * cheap $6$ failure would again be told from an unknown user's. */
#define AUTH_PAD_MARGIN_US 2000u
#define AUTH_WALL_DECAY 64u

enum req_stage {
	STAGE_GATE,   /* on the loop, waiting out a penalty before its check */
	STAGE_POOL,   /* queued, on a worker, or posted back to the loop */
	STAGE_DELAY,  /* on the loop, a failure waiting for its reply */
};

struct auth_request {
	/* set on the loop thread before queueing; read-only on the worker */
	struct conn *conn;
	struct loop *loop;
	const struct tern_config *cfg;
	char *login;
	char *password;
	char method[16];
	char proto[8];
	char rip[48];
	char addr[AQ_ADDR_MAX];           /* rip as counted: IPv6 by its /64 */
	char lip[48];
	char user[TERN_USERNAME_MAX + 1]; /* canonical, or "" if the login is not a user name */
	char name[TERN_USERNAME_MAX + 1]; /* user, else the login made safe for keys and logs */
	auth_done_fn *done;
	void *ctx;
	struct auth_request **owner;  /* the session's pointer to this request */
	struct aq_item item;          /* in pool.q, under pool.mu */
	/* written by whoever produces the result (a worker, or the loop when
	 * refusing) before loop_post */
	enum auth_result result;
	const char *reason;           /* static text for the log */
	enum tern_error dir_err;
	bool quiet;                   /* a temporary failure already logged once */
	uint64_t check_started_us;
	uint64_t quota;               /* AUTH_OK: the user's limit (struct auth_user) */
	char home[TERN_CLUSTER_NODE_NAME_MAX + 1]; /* AUTH_NOT_HERE: the home node */
	char home_addr[128];          /* and its cluster address, "" if unknown */
	/* tern_now_ms() when a worker took it (0 = not yet): the loop reads it
	 * to tell a check stuck on the directory from one waiting its turn */
	_Atomic uint64_t taken_ms;
	bool spare;                   /* one of spare_reqs: goes back, never freed */
	/* loop thread only */
	enum req_stage stage;
	bool reserved;                /* has had its start reserved once */
	bool cancelled;
	struct event *timer;
	uint64_t wake_us;
};

struct auth_pool {
	struct tern_mutex mu;         /* guards q and stopping */
	pthread_cond_t cond;
	struct auth_queue q;
	bool stopping;
	pthread_t threads[TERN_AUTH_WORKERS];
	unsigned thread_count;
};

static struct auth_pool pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* For logins that find no memory for a request (TERN_REQUEST_RESERVE);
 * spares.used under pool.mu. */
static struct auth_request spare_reqs[TERN_REQUEST_RESERVE];
static struct reserve spares = {
	.blocks = spare_reqs, .size = sizeof(spare_reqs[0]), .what = "login requests",
};

/* Checked against for unknown users, so a wrong name costs a check too. */
static char *dummy_hash;
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
/* The failure floor (us): no failed check is answered sooner after it
 * began than the larger of these two. */
static _Atomic uint64_t pad_us;
static _Atomic uint64_t wall_floor_us;
static _Atomic unsigned stop_refused;

static uint64_t clock_us(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

/* ---- worker side ---- */

struct auth_worker {
	struct directory *dir;
};

/* Raises the failure floor to cover a check that cost cpu_us of CPU. CPU
 * time, not wall time: a busy host must not ratchet the floor up for good. */
static void pad_cover(uint64_t cpu_us)
{
	uint64_t want = cpu_us * 2 + AUTH_PAD_MARGIN_US;
	if (want > TERN_AUTH_PAD_MAX_US)
		want = TERN_AUTH_PAD_MAX_US;
	uint64_t cur = atomic_load(&pad_us);
	while (want > cur && !atomic_compare_exchange_weak(&pad_us, &cur, want))
		;
}

/* Follows the wall time of a check that took wall_us, start to end. */
static void floor_follow(uint64_t wall_us)
{
	uint64_t want = wall_us + wall_us / 4, cur = atomic_load(&wall_floor_us), next;
	do {
		next = cur - cur / AUTH_WALL_DECAY;
		if (want > next)
			next = want;
		if (next > TERN_AUTH_PAD_MAX_US)
			next = TERN_AUTH_PAD_MAX_US;
	} while (!atomic_compare_exchange_weak(&wall_floor_us, &cur, next));
}

static uint64_t failure_floor_us(void)
{
	uint64_t a = atomic_load(&pad_us), b = atomic_load(&wall_floor_us);
	return a > b ? a : b;
}

static enum password_result timed_verify(const char *password, const char *hash)
{
	uint64_t t0 = clock_us(CLOCK_THREAD_CPUTIME_ID);
	enum password_result r = password_check(password, hash);
	pad_cover(clock_us(CLOCK_THREAD_CPUTIME_ID) - t0);
	return r;
}

/* Runs once, on a worker, before any check: the floor must be known before
 * the first failure is answered. */
static void dummy_init(void)
{
	if (password_hash("tern-dummy-password", &dummy_hash) < 0) {
		dummy_hash = NULL;
		log_error("auth: cannot make the dummy password hash; unknown users will fail faster");
		pad_cover(0);
		return;
	}
	/* the first runs fault in yescrypt's memory; keep the costliest */
	for (int i = 0; i < 3; i++) {
		uint64_t t0 = now_us();
		(void)timed_verify("tern-measure", dummy_hash);
		floor_follow(now_us() - t0);
	}
	log_info("auth: failed logins are answered no sooner than %" PRIu64 " ms after their check "
		 "begins (more while checks run slower)", (atomic_load(&pad_us) + 999) / 1000);
}

/* A check that found no memory for the hash: the password is neither
 * right nor wrong, so the login fails temporarily and counts as no
 * failure. */
static void worker_nomem(struct auth_request *req)
{
	req->result = AUTH_TEMPFAIL;
	req->reason = "password check";
	req->dir_err = TERN_ERR_NOMEM;
}

/* An unknown or malformed user's failure costs a check too; one that runs
 * out of memory answers as a known user's would. */
static void worker_burn_hash(struct auth_request *req)
{
	if (dummy_hash != NULL && timed_verify(req->password, dummy_hash) == PASSWORD_NOMEM)
		worker_nomem(req);
}

static void worker_run(struct auth_worker *w, struct auth_request *req)
{
	req->result = AUTH_FAILED;
	if (req->user[0] == '\0') {
		req->reason = "invalid user name";
		worker_burn_hash(req);
		return;
	}
	if (w->dir == NULL) {
		char *err = NULL;
		if (directory_open(req->cfg->directory, &w->dir, &err) < 0) {
			free(err);
			w->dir = NULL;
			req->result = AUTH_TEMPFAIL;
			req->reason = "directory unavailable";
			return;
		}
	}
	struct dir_user u = {0};
	int found = directory_user_get(w->dir, req->user, &u, &req->dir_err);
	if (found < 0) {
		req->result = AUTH_TEMPFAIL;
		req->reason = "directory lookup failed";
		/* reopen next time: the handle may be what failed */
		directory_close(&w->dir);
		return;
	}
	if (found == 0) {
		req->reason = "unknown user";
		worker_burn_hash(req);
		return;
	}
	enum password_result pr = timed_verify(req->password, u.password_hash);
	if (pr == PASSWORD_NOMEM) {
		worker_nomem(req);
	} else if (pr == PASSWORD_MISMATCH) {
		req->reason = "password mismatch";
	} else if (strcmp(u.home, req->cfg->node_name) != 0) {
		req->result = AUTH_NOT_HERE;
		req->reason = "homed on another node";
		snprintf(req->home, sizeof(req->home), "%s", u.home);
		/* where to reach it, read here: the loop thread reads no directory */
		struct dir_node n = {0};
		enum tern_error e;
		if (w->dir->ops->node_get(w->dir, u.home, &n, &e) == 1 && n.cluster_addr != NULL)
			snprintf(req->home_addr, sizeof(req->home_addr), "%s", n.cluster_addr);
		dir_node_clear(&n);
	} else {
		req->result = AUTH_OK;
		req->quota = u.quota != 0 ? u.quota : req->cfg->default_quota;
	}
	dir_user_clear(&u);
}

static void auth_result_task(void *arg);

static struct auth_request *request_of(struct aq_item *it)
{
	return (struct auth_request *)(void *)((char *)it - offsetof(struct auth_request, item));
}

static void *worker_main(void *arg)
{
	struct auth_worker w = {0};
	bool stopping;
	watch_thread_begin(WATCH_WORKER, "password worker %u", (unsigned)(uintptr_t)arg);
	{
		TERN_LOCK_GUARD(&pool.mu);
		stopping = pool.stopping;
	}
	/* a pool started only to be stopped has nothing to measure */
	if (!stopping)
		pthread_once(&dummy_once, dummy_init);
	for (;;) {
		struct aq_item *it;
		{
			TERN_LOCK_GUARD(&pool.mu);
			while ((it = aq_pop(&pool.q)) == NULL && !pool.stopping)
				tern_cond_wait(&pool.cond, &pool.mu, 0);
			stopping = pool.stopping;
		}
		if (it == NULL)
			break;   /* stopping and drained */
		struct auth_request *req = request_of(it);
		watch_busy("password check for user=<%s>", req->name);
		atomic_store(&req->taken_ms, tern_now_ms());
		req->check_started_us = now_us();
		if (stopping) {
			/* a stop should not wait for a queue of checks nobody will use */
			req->result = AUTH_TEMPFAIL;
			req->reason = "server stopping";
			req->quiet = true;
			atomic_fetch_add(&stop_refused, 1);
		} else {
			worker_run(&w, req);
			if (req->result != AUTH_TEMPFAIL)
				floor_follow(now_us() - req->check_started_us);
		}
		explicit_bzero(req->password, strlen(req->password));
		{
			TERN_LOCK_GUARD(&pool.mu);
			aq_checked(&pool.q);
		}
		loop_post(req->loop, auth_result_task, req);
		watch_idle();
	}
	directory_close(&w.dir);
	watch_thread_end();
	return NULL;
}

static void pool_init(void)
{
	tern_mutex_init(&pool.mu, "auth queue");
	tern_cond_init(&pool.cond);
	aq_init(&pool.q);
	for (unsigned i = 0; i < TERN_AUTH_WORKERS; i++) {
		if (pthread_create(&pool.threads[pool.thread_count], NULL, worker_main,
				   (void *)(uintptr_t)pool.thread_count) != 0)
			break;
		pool.thread_count++;
	}
	if (pool.thread_count == 0)
		log_error("auth: cannot start worker threads; logins will fail temporarily");
}

void auth_pool_start(void)
{
	pthread_once(&pool_once, pool_init);
	/* The directory look-up workers (server/lookup.c) start and stop with
	 * the password workers: the front ends' services hook is the one place
	 * the server starts them at start and stops them while the loops still
	 * run to take their last answers. */
	lookup_pool_start();
}

void auth_pool_stop(void)
{
	pthread_once(&pool_once, pool_init);
	{
		TERN_LOCK_GUARD(&pool.mu);
		pool.stopping = true;
		pthread_cond_broadcast(&pool.cond);
	}
	/* thread_count is fixed once pool_init has run */
	for (unsigned i = 0; i < pool.thread_count; i++)
		pthread_join(pool.threads[i], NULL);
	unsigned refused = atomic_exchange(&stop_refused, 0);
	if (refused > 0)
		log_info("auth: server stopping: %u queued login(s) answered with a temporary failure",
			 refused);
	lookup_pool_stop();
}

/* ---- loop side ---- */

static void wait_until(struct auth_request *req, uint64_t wake_us);
static void pool_deadline_arm(struct auth_request *req, uint64_t ms);

/* A new request, zeroed. Never NULL: without memory it is one of the
 * spares (req->spare), and when those are all in use, this waits for
 * memory. A spare request is only ever refused (request_refuse), which
 * gives it back on the next turn of the loop. */
static struct auth_request *request_new(void)
{
	bool spare;
	struct auth_request *req = reserve_alloc(&spares, &pool.mu, &spare);
	req->spare = spare;
	return req;
}

static void request_free(struct auth_request *req)
{
	if (req->timer != NULL)
		event_free(req->timer);
	if (req->password != NULL) {
		explicit_bzero(req->password, strlen(req->password));
		free(req->password);
	}
	free(req->login);
	if (req->spare) {
		reserve_release(&spares, &pool.mu, req);
		return;
	}
	free(req);
}

/* Ends the request's time as a login in progress from its address. */
static void request_leave(struct auth_request *req)
{
	struct aq_addr *unused;
	{
		TERN_LOCK_GUARD(&pool.mu);
		unused = aq_leave(&pool.q, &req->item);
	}
	free(unused);
}

/* Ends the request; done runs unless the connection is closing. */
static void request_end(struct auth_request *req)
{
	struct conn *c = req->conn;
	if (req->owner != NULL)
		*req->owner = NULL;
	/* first: done may start the next attempt at once (a pipelined PASS) */
	request_leave(req);
	if (!c->closing) {
		bool named = req->result == AUTH_OK || req->result == AUTH_NOT_HERE;
		const struct auth_user who = {.name = req->user, .quota = req->quota,
					      .home = req->home, .home_addr = req->home_addr};
		req->done(c, req->result, named ? &who : NULL, req->ctx);
	}
	request_free(req);
	conn_unref(&c);
}

/* A worker took the check TERN_LOOKUP_DEADLINE_MS ago and it has not come
 * back: the directory cannot be read in time (locked by another process,
 * wedged, a stalled disk). The session gets a temporary failure now; the
 * request is cut loose from it and auth_result_task frees it when the
 * worker's answer comes (the worker still owns the fields it writes, so
 * nothing here reads them). */
static void request_overdue(struct auth_request *req)
{
	struct conn *c = req->conn;
	log_warn("auth: user=<%s>, method=%s, rip=%s: not checked within %u ms, answered with a "
		 "temporary failure", req->name, req->method, req->rip, TERN_LOOKUP_DEADLINE_MS);
	if (req->owner != NULL)
		*req->owner = NULL;
	req->owner = NULL;
	req->cancelled = true;
	request_leave(req);
	if (!c->closing)
		req->done(c, AUTH_TEMPFAIL, NULL, req->ctx);
	req->conn = NULL;
	conn_unref(&c);
}

static void key_user(const struct auth_request *req, char *buf, size_t size)
{
	snprintf(buf, size, "u:%s", req->name);
}

static void key_address(const struct auth_request *req, char *buf, size_t size)
{
	snprintf(buf, size, "a:%s", req->addr);
}

/* An address never holds a space, so the pair cannot be read two ways. */
static void key_pair(const struct auth_request *req, char *buf, size_t size)
{
	snprintf(buf, size, "p:%s %s", req->addr, req->name);
}

static void key_refusals(const struct auth_request *req, char *buf, size_t size)
{
	snprintf(buf, size, "r:%s", req->addr);
}

#define KEY_SIZE (TERN_USERNAME_MAX + 64)

/* Counts the outcome and logs it; returns how long to hold the reply (us). */
static uint64_t request_account(struct auth_request *req)
{
	char ukey[KEY_SIZE], akey[KEY_SIZE], pkey[KEY_SIZE];
	key_user(req, ukey, sizeof(ukey));
	key_address(req, akey, sizeof(akey));
	key_pair(req, pkey, sizeof(pkey));
	switch (req->result) {
	case AUTH_OK:
	case AUTH_NOT_HERE:
		/* This address knows the password: it is the user's own again.
		 * The user's count stays: the failures may be someone else's,
		 * and it only slows addresses that failed for the user. */
		auth_failures_clear(pkey);
		log_info("login: user=<%s>, method=%s, rip=%s, proto=%s%s", req->name, req->method,
			 req->rip, req->proto,
			 req->result == AUTH_NOT_HERE ? ", homed on another node" : "");
		return 0;
	case AUTH_TEMPFAIL:
		if (!req->quiet)
			log_error("auth: user=<%s>, method=%s, rip=%s: %s: %s", req->name, req->method,
				  req->rip, req->reason, tern_error_str(req->dir_err));
		return 0;
	case AUTH_FAILED:
		break;
	}
	uint64_t now = tern_now_ms();
	uint32_t fu = auth_failures_add(ukey, now);
	uint32_t fa = auth_failures_add(akey, now);
	(void)auth_failures_add(pkey, now);
	log_info("auth failed: user=<%s>, method=%s, rip=%s, lip=%s, reason=%s", req->name,
		 req->method, req->rip, req->lip, req->reason);
	uint64_t floor = req->check_started_us + failure_floor_us(), t = now_us();
	uint64_t pad = floor > t ? floor - t : 0;
	return pad + 1000u * (uint64_t)auth_failure_delay_ms(req->cfg->auth_failure_delay_ms,
							       fu > fa ? fu : fa);
}

static void auth_result_task(void *arg)
{
	struct auth_request *req = arg;
	if (req->cancelled) {
		request_leave(req);
		request_free(req);
		return;
	}
	uint64_t hold_us = request_account(req);
	req->stage = STAGE_DELAY;
	if (hold_us > 0 && !req->conn->closing && !req->conn->shutting_down) {
		wait_until(req, now_us() + hold_us);
		return;
	}
	request_end(req);
}

/* Answers AUTH_TEMPFAIL, on a later turn (done never runs inside auth_verify). */
static void request_refuse(struct auth_request *req, const char *reason, bool quiet)
{
	req->result = AUTH_TEMPFAIL;
	req->reason = reason;
	req->quiet = quiet;
	req->stage = STAGE_POOL;
	loop_post(req->loop, auth_result_task, req);
}

/* Logs a refusal once per episode: an address's refusals are one episode
 * until TERN_AUTH_REFUSAL_QUIET_MS pass without one. A guesser refused
 * thousands of times a second must not flood the log. */
static void note_refusal(const struct auth_request *req, enum aq_verdict v)
{
	const struct tern_config *cfg = req->cfg;
	char key[KEY_SIZE];
	uint64_t now = tern_now_ms(), prev;
	key_refusals(req, key, sizeof(key));
	(void)auth_failures_add_since(key, now, &prev);
	if (prev != 0 && (prev >= now || now - prev < TERN_AUTH_REFUSAL_QUIET_MS))
		return;
	/* an IPv6 client is counted with its /64: say so */
	char net[AQ_ADDR_MAX + 16] = "";
	if (strcmp(req->addr, req->rip) != 0)
		snprintf(net, sizeof(net), " (%s)", req->addr);
	switch (v) {
	case AQ_FULL_ADDRESS:
		log_warn("auth: user=<%s>, rip=%s: %u logins from this address%s in progress, "
			 "refusing more for now", req->name, req->rip, cfg->auth_max_pending_per_address,
			 net);
		break;
	case AQ_THROTTLED:
		log_warn("auth: user=<%s>, rip=%s: throttled after recent failures%s, refusing logins "
			 "for now", req->name, req->rip, net);
		break;
	case AQ_FULL_NODE:
		log_warn("auth: user=<%s>, rip=%s: %u password checks pending on this node, refusing "
			 "logins for now", req->name, req->rip, cfg->auth_max_pending);
		break;
	case AQ_OK:
		break;
	}
}

/* When this request's check may start (ms) at the earliest: its address's
 * penalty, and its user's when this address has failed for the user. Each
 * penalty runs from the latest failure it counts, so a client that waited
 * for its failure reply (which was held as long) waits no more here; only
 * parallel attempts do. *spacing_r: what the address's next check must
 * wait after this one. */
static uint64_t request_earliest(const struct auth_request *req, uint64_t now,
				 uint32_t *spacing_r)
{
	uint32_t base = req->cfg->auth_failure_delay_ms;
	char key[KEY_SIZE];
	uint64_t earliest = now, last = 0;
	*spacing_r = 0;
	if (base == 0)
		return now;
	key_address(req, key, sizeof(key));
	uint32_t fa = auth_failures_peek(key, now, &last);
	if (fa > 0) {
		*spacing_r = auth_failure_delay_ms(base, fa);
		if (last + *spacing_r > earliest)
			earliest = last + *spacing_r;
	}
	/* Not for an address that never failed for this user: a guesser
	 * elsewhere must not lock the user out from home. */
	key_pair(req, key, sizeof(key));
	if (auth_failures_get(key, now) > 0) {
		key_user(req, key, sizeof(key));
		uint32_t fu = auth_failures_peek(key, now, &last);
		if (fu > 0 && last + auth_failure_delay_ms(base, fu) > earliest)
			earliest = last + auth_failure_delay_ms(base, fu);
	}
	return earliest;
}

/* Gate stage: serves the penalty, then queues the check (loop thread). */
static void request_admit(struct auth_request *req)
{
	struct conn *c = req->conn;
	const struct tern_config *cfg = req->cfg;
	if (c->closing) {
		request_end(req);
		return;
	}
	if (c->shutting_down) {
		request_refuse(req, "server stopping", true);
		return;
	}
	uint64_t now = tern_now_ms();
	uint32_t spacing, max_wait = cfg->auth_failure_delay_ms > TERN_AUTH_DELAY_CAP_MS
					     ? cfg->auth_failure_delay_ms : TERN_AUTH_DELAY_CAP_MS;
	uint64_t earliest = request_earliest(req, now, &spacing), start = now;
	enum aq_verdict v = AQ_OK;
	bool queued = false, stopping, workers;
	{
		TERN_LOCK_GUARD(&pool.mu);
		/* once its turn has come, it waits again only for a failure
		 * counted since (not behind the reservations made after it) */
		if (!req->reserved || earliest > now)
			v = aq_reserve(&pool.q, &req->item, now, earliest, spacing, max_wait, &start);
		stopping = pool.stopping;
		workers = pool.thread_count > 0;
		if (v == AQ_OK && start <= now && workers && !stopping) {
			v = aq_push(&pool.q, &req->item, cfg->auth_max_pending);
			queued = v == AQ_OK;
			if (queued)
				pthread_cond_signal(&pool.cond);
		}
	}
	if (v != AQ_OK) {
		note_refusal(req, v);
		request_refuse(req, v == AQ_THROTTLED ? "throttled" : "too many logins", true);
		return;
	}
	req->reserved = true;
	if (queued) {
		req->stage = STAGE_POOL;
		pool_deadline_arm(req, TERN_LOOKUP_DEADLINE_MS);
		return;
	}
	if (stopping) {
		request_refuse(req, "server stopping", true);
		return;
	}
	if (!workers) {
		request_refuse(req, "no auth workers", false);
		return;
	}
	wait_until(req, start * 1000u);
}

static void wait_arm(struct auth_request *req);

static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct auth_request *req = arg;
	struct conn *c = req->conn;
	if (req->stage == STAGE_POOL) {
		/* the check's deadline (pool_deadline_arm) */
		uint64_t taken = atomic_load(&req->taken_ms), now = tern_now_ms();
		if (taken != 0 && now - taken >= TERN_LOOKUP_DEADLINE_MS)
			request_overdue(req);
		else
			pool_deadline_arm(req, taken != 0 ? taken + TERN_LOOKUP_DEADLINE_MS - now
							  : TERN_LOOKUP_DEADLINE_MS);
		return;
	}
	if (!c->closing && !c->shutting_down && now_us() < req->wake_us) {
		wait_arm(req);
		return;
	}
	if (req->stage == STAGE_GATE)
		request_admit(req);
	else
		request_end(req);
}

static void wait_arm(struct auth_request *req)
{
	uint64_t t = now_us();
	uint64_t left = req->wake_us > t ? req->wake_us - t : 0;
	if (left > TERN_AUTH_WAIT_SLICE_MS * 1000u)
		left = TERN_AUTH_WAIT_SLICE_MS * 1000u;
	struct timeval tv = {.tv_sec = (time_t)(left / 1000000u),
			     .tv_usec = (suseconds_t)(left % 1000000u)};
	if (evtimer_add(req->timer, &tv) == 0)
		return;
	/* no timer: a penalty not served is a login refused, a delay skipped */
	if (req->stage == STAGE_GATE)
		request_refuse(req, "no timer", false);
	else
		request_end(req);
}

/* Bounds a check's time on a worker (the user's directory read and the
 * hash) by TERN_LOOKUP_DEADLINE_MS: the timer looks after ms and again
 * until the check is back or overdue. The wait in the queue before is not
 * counted: that is the fair queue's business (bounded by auth_max_pending,
 * one check per address in turn), and a burst of guesses must not turn
 * into temporary failures for them all. auth_result_task re-arms the same
 * timer for the failure delay or frees it. Without a timer the check has
 * no deadline, as before. */
static void pool_deadline_arm(struct auth_request *req, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	if (req->timer == NULL)
		req->timer = evtimer_new(req->loop->base, wait_cb, req);
	if (req->timer != NULL)
		(void)evtimer_add(req->timer, &tv);
}

/* Holds the request on its loop until wake_us (monotonic, us), looking at
 * its connection every TERN_AUTH_WAIT_SLICE_MS; then admits it (gate stage)
 * or ends it (delay stage). */
static void wait_until(struct auth_request *req, uint64_t wake_us)
{
	req->wake_us = wake_us;
	if (req->timer == NULL)
		req->timer = evtimer_new(req->loop->base, wait_cb, req);
	if (req->timer != NULL) {
		wait_arm(req);
		return;
	}
	if (req->stage == STAGE_GATE)
		request_refuse(req, "no timer", false);
	else
		request_end(req);
}

void auth_cancel(struct auth_request **reqp)
{
	struct auth_request *req = *reqp;
	if (req == NULL)
		return;
	*reqp = NULL;
	req->owner = NULL;
	/* the check's deadline must not fire for a session that is gone */
	if (req->timer != NULL)
		event_del(req->timer);
	if (req->stage == STAGE_POOL) {
		bool taken;
		{
			TERN_LOCK_GUARD(&pool.mu);
			taken = aq_unqueue(&pool.q, &req->item);
		}
		if (!taken) {
			/* on a worker or in the loop's inbox: auth_result_task frees it */
			req->cancelled = true;
			return;
		}
	}
	/* waiting on this loop, or taken out of the queue: nothing else refers to it */
	request_leave(req);
	request_free(req);
}

static void local_address(struct conn *c, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	snprintf(buf, size, "?");
	if (getsockname(bufferevent_getfd(c->bev), (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)size);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)size);
}

/* The canonical user name, as the directory knows it; failing that, the
 * login made safe for a log line and a key (no control bytes, no '>' or ','
 * to fake fields), so unknown and malformed names are counted too. */
static void request_name(struct auth_request *req, const char *login)
{
	if (username_parse(login, req->cfg->domains, req->user, sizeof(req->user), NULL, 0) == 0) {
		snprintf(req->name, sizeof(req->name), "%s", req->user);
		return;
	}
	req->user[0] = '\0';
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)login;
	     *p != '\0' && n + 1 < sizeof(req->name); p++)
		req->name[n++] = (*p < 0x20 || *p >= 0x7f || *p == '>' || *p == ',') ? '?' : (char)*p;
	req->name[n] = '\0';
}

void auth_verify(struct conn *c, const char *login, const char *password, const char *method,
		 auth_done_fn *done, void *ctx, struct auth_request **req_r)
{
	pthread_once(&pool_once, pool_init);
	struct auth_request *req = request_new();
	struct aq_addr *spare = calloc(1, sizeof(*spare));
	req->conn = c;
	req->loop = c->loop;
	req->cfg = c->loop->server->config;
	req->login = strdup(login);
	req->password = strdup(password);
	snprintf(req->method, sizeof(req->method), "%s", method);
	snprintf(req->proto, sizeof(req->proto), "%s", c->proto->name);
	snprintf(req->rip, sizeof(req->rip), "%s", c->peer_addr);
	client_addr_key(req->rip, req->addr, sizeof(req->addr));
	local_address(c, req->lip, sizeof(req->lip));
	request_name(req, login);
	req->done = done;
	req->ctx = ctx;
	req->owner = req_r;
	req->stage = STAGE_GATE;
	*req_r = req;
	conn_ref(c);
	if (req->spare || spare == NULL || req->login == NULL || req->password == NULL) {
		/* Out of memory: the login fails temporarily, through done on a
		 * later turn like any refused login. Not counted against the
		 * address (it never entered): nothing was checked. */
		free(spare);
		req->dir_err = TERN_ERR_NOMEM;
		request_refuse(req, "login request", false);
		return;
	}
	enum aq_verdict v;
	{
		TERN_LOCK_GUARD(&pool.mu);
		v = aq_enter(&pool.q, &req->item, req->addr, req->cfg->auth_max_pending_per_address,
			     &spare);
	}
	free(spare);
	if (v != AQ_OK) {
		note_refusal(req, v);
		request_refuse(req, "too many logins", true);
		return;
	}
	request_admit(req);
}

bool auth_plaintext_allowed(const struct conn *c, bool tls_active)
{
	return tls_active || c->peer_loopback || c->loop->server->config->allow_plaintext_auth;
}
