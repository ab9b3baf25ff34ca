/* Asynchronous password logins (see auth.h). Requests go to a queue served by
 * two worker threads, each with its own directory handle; the result goes
 * back to the connection's loop with loop_post(), where it is counted, logged
 * and, for a failure, held back by a libevent timer (no thread ever sleeps).
 *
 * A request's life: queued -> on a worker -> posted to the loop -> (failure:
 * timer) -> done. The request owns a reference on the connection throughout;
 * only a forced destroy at server stop can free the connection under it, and
 * that path calls auth_cancel(), which marks the request so the loop-side
 * steps touch nothing but the request itself. */
#include "proto/auth.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "core/username.h"
#include "directory/directory.h"
#include "directory/password.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/server.h"

#define AUTH_WORKERS 2u

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
	char lip[48];
	auth_done_fn *done;
	void *ctx;
	struct auth_request **owner;  /* the session's pointer to this request */
	/* written by the worker before loop_post */
	enum auth_result result;
	char user[TERN_USERNAME_MAX + 1]; /* canonical, or "" */
	const char *reason;               /* static text for the log */
	enum tern_error dir_err;
	/* loop thread only */
	bool cancelled;
	struct event *timer;
	struct auth_request *next;    /* pool queue */
};

struct auth_pool {
	struct tern_mutex mu;         /* guards head, tail, stopping */
	pthread_cond_t cond;
	struct auth_request *head, *tail;
	bool stopping;
	pthread_t threads[AUTH_WORKERS];
	unsigned thread_count;
};

static struct auth_pool pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* ---- worker side ---- */

struct auth_worker {
	struct directory *dir;
	char *dummy_hash;   /* verified against for unknown users, to keep timing flat */
};

static void worker_check_password(struct auth_worker *w, struct auth_request *req,
				  const struct dir_user *u)
{
	if (!password_verify(req->password, u->password_hash)) {
		req->result = AUTH_FAILED;
		req->reason = "password mismatch";
	} else if (strcmp(u->home, req->cfg->node_name) != 0) {
		req->result = AUTH_NOT_HERE;
		req->reason = "homed on another node";
	} else {
		req->result = AUTH_OK;
	}
	(void)w;
}

/* An unknown name still costs one hash, so a wrong name answers no faster
 * than a wrong password (no user enumeration by timing). */
static void worker_burn_hash(struct auth_worker *w, const char *password)
{
	if (w->dummy_hash == NULL && password_hash("tern-dummy-password", &w->dummy_hash) < 0)
		w->dummy_hash = NULL;
	if (w->dummy_hash != NULL)
		(void)password_verify(password, w->dummy_hash);
}

static void worker_run(struct auth_worker *w, struct auth_request *req)
{
	req->result = AUTH_FAILED;
	if (username_parse(req->login, req->cfg->domains, req->user, sizeof(req->user), NULL,
			   0) < 0) {
		req->user[0] = '\0';
		req->reason = "invalid user name";
		worker_burn_hash(w, req->password);
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
		worker_burn_hash(w, req->password);
		return;
	}
	worker_check_password(w, req, &u);
	dir_user_clear(&u);
}

static void auth_result_task(void *arg);

static void *worker_main(void *arg)
{
	(void)arg;
	struct auth_worker w = {0};
	for (;;) {
		struct auth_request *req;
		{
			TERN_LOCK_GUARD(&pool.mu);
			while (pool.head == NULL && !pool.stopping)
				tern_cond_wait(&pool.cond, &pool.mu, 0);
			req = pool.head;
			if (req == NULL)
				break;   /* stopping and drained */
			pool.head = req->next;
			if (pool.head == NULL)
				pool.tail = NULL;
		}
		worker_run(&w, req);
		explicit_bzero(req->password, strlen(req->password));
		loop_post(req->loop, auth_result_task, req);
	}
	directory_close(&w.dir);
	free(w.dummy_hash);
	return NULL;
}

static void pool_init(void)
{
	tern_mutex_init(&pool.mu, "auth queue");
	tern_cond_init(&pool.cond);
	for (unsigned i = 0; i < AUTH_WORKERS; i++) {
		if (pthread_create(&pool.threads[pool.thread_count], NULL, worker_main, NULL) != 0)
			break;
		pool.thread_count++;
	}
	if (pool.thread_count == 0)
		log_error("auth: cannot start worker threads; logins will fail temporarily");
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
}

/* ---- loop side ---- */

static void request_free(struct auth_request *req)
{
	if (req->timer != NULL)
		event_free(req->timer);
	if (req->password != NULL) {
		explicit_bzero(req->password, strlen(req->password));
		free(req->password);
	}
	free(req->login);
	free(req);
}

/* Calls done and ends the request (loop thread). */
static void request_finish(struct auth_request *req)
{
	struct conn *c = req->conn;
	if (req->owner != NULL)
		*req->owner = NULL;
	bool named = req->result == AUTH_OK || req->result == AUTH_NOT_HERE;
	req->done(c, req->result, named ? req->user : NULL, req->ctx);
	request_free(req);
	conn_unref(&c);
}

/* The name to log: the canonical one, else the login made safe for a log
 * line (no control bytes, no '>' or ',' to fake fields). */
static void log_name(const struct auth_request *req, char *buf, size_t size)
{
	const char *src = req->user[0] != '\0' ? req->user : req->login;
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p != '\0' && n + 1 < size; p++)
		buf[n++] = (*p < 0x20 || *p >= 0x7f || *p == '>' || *p == ',') ? '?' : (char)*p;
	buf[n] = '\0';
}

/* Counts the outcome and logs it; returns the delay to apply (ms). */
static uint32_t request_account(struct auth_request *req)
{
	char name[TERN_USERNAME_MAX + 1];
	char ukey[TERN_USERNAME_MAX + 8], akey[64];
	log_name(req, name, sizeof(name));
	snprintf(ukey, sizeof(ukey), "u:%s", name);
	snprintf(akey, sizeof(akey), "a:%s", req->rip);
	switch (req->result) {
	case AUTH_OK:
	case AUTH_NOT_HERE:
		auth_failures_clear(ukey);
		log_info("login: user=<%s>, method=%s, rip=%s, proto=%s%s", name, req->method,
			 req->rip, req->proto,
			 req->result == AUTH_NOT_HERE ? ", homed on another node" : "");
		return 0;
	case AUTH_TEMPFAIL:
		log_error("auth: user=<%s>, method=%s, rip=%s: %s: %s", name, req->method, req->rip,
			  req->reason, tern_error_str(req->dir_err));
		return 0;
	case AUTH_FAILED:
		break;
	}
	uint64_t now = tern_now_ms();
	uint32_t fu = auth_failures_add(ukey, now);
	uint32_t fa = auth_failures_add(akey, now);
	log_info("auth failed: user=<%s>, method=%s, rip=%s, lip=%s, reason=%s", name, req->method,
		 req->rip, req->lip, req->reason);
	return auth_failure_delay_ms(req->cfg->auth_failure_delay_ms, fu > fa ? fu : fa);
}

static void auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	request_finish(arg);
}

static void auth_result_task(void *arg)
{
	struct auth_request *req = arg;
	if (req->cancelled) {
		request_free(req);
		return;
	}
	uint32_t delay = request_account(req);
	/* a client that already left gains nothing from the wait */
	if (delay > 0 && !req->conn->closing) {
		struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
		req->timer = evtimer_new(req->loop->base, auth_delay_cb, req);
		if (req->timer != NULL && evtimer_add(req->timer, &tv) == 0)
			return;
	}
	request_finish(req);
}

void auth_cancel(struct auth_request **reqp)
{
	struct auth_request *req = *reqp;
	if (req == NULL)
		return;
	*reqp = NULL;
	req->owner = NULL;
	if (req->timer != NULL) {
		/* waiting out the delay on this loop: nothing else refers to it */
		request_free(req);
		return;
	}
	/* on a worker or in the loop's inbox: auth_result_task frees it */
	req->cancelled = true;
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

void auth_verify(struct conn *c, const char *login, const char *password, const char *method,
		 auth_done_fn *done, void *ctx, struct auth_request **req_r)
{
	pthread_once(&pool_once, pool_init);
	struct auth_request *req = calloc(1, sizeof(*req));
	if (req == NULL)
		abort();   /* as loop_post does: a login cannot proceed without memory */
	req->conn = c;
	req->loop = c->loop;
	req->cfg = c->loop->server->config;
	req->login = strdup(login);
	req->password = strdup(password);
	if (req->login == NULL || req->password == NULL)
		abort();
	snprintf(req->method, sizeof(req->method), "%s", method);
	snprintf(req->proto, sizeof(req->proto), "%s", c->proto->name);
	snprintf(req->rip, sizeof(req->rip), "%s", c->peer_addr);
	local_address(c, req->lip, sizeof(req->lip));
	req->done = done;
	req->ctx = ctx;
	req->owner = req_r;
	*req_r = req;
	conn_ref(c);
	bool queued = false;
	{
		TERN_LOCK_GUARD(&pool.mu);
		if (pool.thread_count > 0 && !pool.stopping) {
			if (pool.tail != NULL)
				pool.tail->next = req;
			else
				pool.head = req;
			pool.tail = req;
			pthread_cond_signal(&pool.cond);
			queued = true;
		}
	}
	if (!queued) {
		req->result = AUTH_TEMPFAIL;
		req->reason = "no auth workers";
		loop_post(req->loop, auth_result_task, req);
	}
}

bool auth_plaintext_allowed(const struct conn *c, bool tls_active)
{
	return tls_active || c->peer_loopback || c->loop->server->config->allow_plaintext_auth;
}
