/* Directory look-ups off the loop threads (see lookup.h).
 *
 * A request's life: created on its loop with a deadline timer there, queued
 * (FIFO) under the pool's mutex, taken by a worker, answered with
 * loop_post. Whichever comes first on the loop, the posted answer or the
 * timer, is what the caller gets; the request is freed once nothing refers
 * to it any more:
 *   - still queued (the timer fired, or the caller cancelled): it is
 *     unlinked and freed at once;
 *   - taken by a worker, or its answer already posted: it is marked
 *     answered and freed by the posted task, which then drops the answer.
 * Only the queue links are shared with the workers; everything else of a
 * request belongs to the loop until it is queued, to the worker while it
 * has it, and to the loop again once posted.
 *
 * The user cache (user-cache.h) answers first when it is current and no
 * usage is to be read: the answer is built on the loop from the cached
 * entry and posted to the same loop (done still runs later, never inside
 * lookup_user). A request that needs the usage (LOOKUP_USAGE for a user
 * homed here with a limit) goes to a worker as before, which reads the
 * directory too, so a lowered quota is obeyed at once. Every directory
 * read by a worker is put in the cache. */
#include "server/lookup.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/config.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "core/reserve.h"
#include "directory/directory.h"
#include "server/loop.h"
#include "server/server.h"
#include "server/user-cache.h"
#include "server/watchdog.h"
#include "store/store.h"

struct lookup_request {
	/* set on the loop before queueing; read-only for the worker */
	struct loop *loop;
	const struct tern_config *cfg;
	char name[TERN_USERNAME_MAX + 1];
	unsigned flags;
	uint64_t deadline_ms;
	lookup_done_fn *done;
	void *ctx;
	/* under pool.mu */
	struct lookup_request *prev, *next;
	bool queued;
	/* written by whoever produces the answer before loop_post */
	struct lookup_result res;
	struct dir_user u;
	char home_addr[128];             /* the home's cluster address, when not here */
	bool spare;                      /* one of spare_reqs: goes back, never freed */
	/* loop thread only */
	struct lookup_request **owner;   /* the caller's pointer to this request */
	struct event *timer;
	bool answered;                   /* done ran (deadline) or was cancelled */
};

struct lookup_pool {
	struct tern_mutex mu;            /* guards head, tail, stopping, request links */
	pthread_cond_t cond;
	struct lookup_request *head, *tail;
	bool stopping;
	pthread_t threads[TERN_LOOKUP_WORKERS];
	unsigned thread_count;
};

static struct lookup_pool pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* For callers that find no memory for a request (TERN_REQUEST_RESERVE);
 * spares.used under pool.mu. */
static struct lookup_request spare_reqs[TERN_REQUEST_RESERVE];
static struct reserve spares = {
	.blocks = spare_reqs, .size = sizeof(spare_reqs[0]), .what = "look-up requests",
};

/* ---- the queue (pool.mu held) ---- */

static void queue_push(struct lookup_request *req)
{
	req->prev = pool.tail;
	req->next = NULL;
	if (pool.tail != NULL)
		pool.tail->next = req;
	else
		pool.head = req;
	pool.tail = req;
	req->queued = true;
}

static void queue_unlink(struct lookup_request *req)
{
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		pool.head = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	else
		pool.tail = req->prev;
	req->prev = req->next = NULL;
	req->queued = false;
}

/* ---- workers ---- */

struct lookup_worker {
	struct directory *dir;   /* this thread's handle, opened on first use */
};

/* The RCPT-time quota check's read: the store is opened, never created
 * (a look-up must not make stores for users who never get mail). */
static void read_usage(struct lookup_request *req)
{
	struct store *st = NULL;
	enum tern_error err = TERN_ERR_NONE;
	uint64_t messages;
	if (store_open(req->cfg->data_dir, req->name, false, &st, &err) < 0) {
		if (err == TERN_ERR_NOTFOUND) {
			req->res.usage_known = true;   /* no store yet: nothing used */
			req->res.used = 0;
		}
		return;
	}
	req->res.usage_known = store_usage(st, &req->res.used, &messages, &err) == 0;
	store_close(&st);
}

/* Remembers what worker_run read (gen: the published generation taken
 * before the read). A failed node read is not remembered: "" would stand
 * for "no cluster address" until the next directory change. */
static void cache_put(const struct lookup_request *req, uint64_t gen, bool addr_known)
{
	struct user_cache_entry e;
	const struct lookup_result *r = &req->res;
	if (gen == 0 || r->found < 0 || (r->found > 0 && !addr_known))
		return;
	if (r->found == 0) {
		if (user_cache_entry_set(&e, gen, req->name, false, NULL, NULL, NULL, 0, 0, 0))
			user_cache_put(&e);
		return;
	}
	if (user_cache_entry_set(&e, gen, req->name, true, req->u.home, req->home_addr,
				 req->u.state, req->u.epoch, req->u.quota, req->u.created))
		user_cache_put(&e);
}

static void worker_run(struct lookup_worker *w, struct lookup_request *req)
{
	const struct tern_config *cfg = req->cfg;
	struct lookup_result *r = &req->res;
	/* before the read: the row read is at least this new */
	uint64_t gen = user_cache_generation();
	bool addr_known = true;
	r->found = -1;
	r->err = TERN_ERR_TEMP;
	if (w->dir == NULL) {
		char *err = NULL;
		if (directory_open(cfg->directory, &w->dir, &err) < 0) {
			log_error("lookup: cannot open the directory: %s", err != NULL ? err : "?");
			free(err);
			w->dir = NULL;
			return;
		}
	}
	r->found = directory_user_get(w->dir, req->name, &req->u, &r->err);
	if (r->found < 0) {
		/* reopened for the next request: the handle may be what failed */
		directory_close(&w->dir);
		return;
	}
	if (r->found == 0) {
		cache_put(req, gen, true);
		return;
	}
	r->here = strcmp(req->u.home, cfg->node_name) == 0;
	r->quota = req->u.quota != 0 ? req->u.quota : cfg->default_quota;
	req->home_addr[0] = '\0';
	r->home_addr = req->home_addr;
	if (!r->here) {
		struct dir_node n = {0};
		enum tern_error e;
		int got = w->dir->ops->node_get(w->dir, req->u.home, &n, &e);
		if (got == 1 && n.cluster_addr != NULL)
			snprintf(req->home_addr, sizeof(req->home_addr), "%s", n.cluster_addr);
		addr_known = got >= 0;
		dir_node_clear(&n);
	}
	cache_put(req, gen, addr_known);
	if ((req->flags & LOOKUP_USAGE) != 0 && r->here && r->quota != 0)
		read_usage(req);
}

static void result_task(void *arg);

static void *worker_main(void *arg)
{
	struct lookup_worker w = {0};
	watch_thread_begin(WATCH_WORKER, "lookup worker %u", (unsigned)(uintptr_t)arg);
	for (;;) {
		struct lookup_request *req;
		bool stopping;
		{
			TERN_LOCK_GUARD(&pool.mu);
			while (pool.head == NULL && !pool.stopping)
				tern_cond_wait(&pool.cond, &pool.mu, 0);
			req = pool.head;
			if (req != NULL)
				queue_unlink(req);
			stopping = pool.stopping;
		}
		if (req == NULL)
			break;   /* stopping and drained */
		watch_busy("directory look-up for user=%s", req->name);
		/* Past its deadline the loop has answered already: a wedged
		 * directory must not leave a backlog of reads nobody waits for.
		 * A stop answers what is queued without reading. */
		if (stopping || tern_now_ms() >= req->deadline_ms) {
			req->res.found = -1;
			req->res.err = TERN_ERR_TEMP;
		} else {
			worker_run(&w, req);
		}
		loop_post(req->loop, result_task, req);
		watch_idle();
	}
	directory_close(&w.dir);
	watch_thread_end();
	return NULL;
}

static void pool_init(void)
{
	tern_mutex_init(&pool.mu, "lookup queue");
	tern_cond_init(&pool.cond);
	for (unsigned i = 0; i < TERN_LOOKUP_WORKERS; i++) {
		if (pthread_create(&pool.threads[pool.thread_count], NULL, worker_main,
				   (void *)(uintptr_t)pool.thread_count) != 0)
			break;
		pool.thread_count++;
	}
	if (pool.thread_count == 0)
		log_error("lookup: cannot start worker threads; directory look-ups will fail "
			  "temporarily");
}

void lookup_pool_start(void)
{
	pthread_once(&pool_once, pool_init);
}

void lookup_pool_stop(void)
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

/* A new request, zeroed. Never NULL: without memory it is one of the
 * spares (req->spare), and when those are all in use, this waits for
 * memory. A spare request is answered with a temporary failure without
 * being queued, which gives it back on the next turn of the loop. */
static struct lookup_request *request_new(void)
{
	bool spare;
	struct lookup_request *req = reserve_alloc(&spares, &pool.mu, &spare);
	req->spare = spare;
	return req;
}

static void request_free(struct lookup_request *req)
{
	if (req->timer != NULL)
		event_free(req->timer);
	dir_user_clear(&req->u);
	if (req->spare) {
		reserve_release(&spares, &pool.mu, req);
		return;
	}
	free(req);
}

/* Hands r to the caller (once). */
static void request_answer(struct lookup_request *req, const struct lookup_result *r)
{
	req->answered = true;
	if (req->timer != NULL)
		event_del(req->timer);
	if (req->owner != NULL)
		*req->owner = NULL;
	req->owner = NULL;
	req->done(r, req->ctx);
}

/* The worker's answer (or a refusal), on the loop. */
static void result_task(void *arg)
{
	struct lookup_request *req = arg;
	if (req->answered) {
		/* the deadline answered, or the caller left: nobody wants this */
		if (req->res.found < 0 && req->done != NULL)
			log_warn("lookup: user=%s: directory look-up failed after its deadline: %s",
				 req->name, tern_error_str(req->res.err));
		request_free(req);
		return;
	}
	if (req->res.found > 0)
		req->res.user = &req->u;
	request_answer(req, &req->res);
	request_free(req);
}

/* Takes req out of the queue if it is still there: true if it was (nothing
 * else refers to it then). */
static bool request_unqueue(struct lookup_request *req)
{
	TERN_LOCK_GUARD(&pool.mu);
	if (!req->queued)
		return false;
	queue_unlink(req);
	return true;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct lookup_request *req = arg;
	bool unqueued = request_unqueue(req);
	const struct lookup_result late = {.found = -1, .err = TERN_ERR_TEMP};
	request_answer(req, &late);
	/* else a worker has it or its answer is posted: result_task frees it */
	if (unqueued)
		request_free(req);
}

void lookup_cancel(struct lookup_request **reqp)
{
	struct lookup_request *req = *reqp;
	if (req == NULL)
		return;
	*reqp = NULL;
	req->owner = NULL;
	req->answered = true;
	req->done = NULL;   /* not logged when it comes: its caller is gone */
	if (req->timer != NULL)
		event_del(req->timer);
	if (request_unqueue(req))
		request_free(req);
}

/* Fills req's answer from a cached entry as worker_run would from the
 * directory (the password hash is not cached: ""). False without memory. */
static bool answer_from_cache(struct lookup_request *req, const struct user_cache_entry *e)
{
	struct lookup_result *r = &req->res;
	if (!e->found) {
		r->found = 0;
		r->err = TERN_ERR_NONE;
		return true;
	}
	req->u = (struct dir_user){
		.name = strdup(req->name),
		.password_hash = strdup(""),
		.home = strdup(e->home),
		.epoch = e->epoch,
		.state = strdup(e->state),
		.quota = e->quota,
		.created = e->created,
	};
	if (req->u.name == NULL || req->u.password_hash == NULL || req->u.home == NULL ||
	    req->u.state == NULL) {
		dir_user_clear(&req->u);
		return false;
	}
	r->found = 1;
	r->err = TERN_ERR_NONE;
	r->here = strcmp(e->home, req->cfg->node_name) == 0;
	r->quota = e->quota != 0 ? e->quota : req->cfg->default_quota;
	snprintf(req->home_addr, sizeof(req->home_addr), "%s", r->here ? "" : e->home_addr);
	r->home_addr = req->home_addr;
	return true;
}

/* Whether an answer needs the store's usage, which only a worker reads. */
static bool needs_usage(const struct lookup_request *req, const struct user_cache_entry *e)
{
	if ((req->flags & LOOKUP_USAGE) == 0 || !e->found ||
	    strcmp(e->home, req->cfg->node_name) != 0)
		return false;
	return (e->quota != 0 ? e->quota : req->cfg->default_quota) != 0;
}

/* The cache's answer for req, posted to its loop: false when there is none
 * (then the directory is read). */
static bool try_cache(struct lookup_request *req)
{
	struct user_cache_entry e;
	if (req->spare || (req->flags & LOOKUP_FRESH) != 0 || !user_cache_get(req->name, &e) ||
	    needs_usage(req, &e) ||
	    !answer_from_cache(req, &e))
		return false;
	loop_post(req->loop, result_task, req);
	return true;
}

void lookup_user(struct loop *loop, const char *name, unsigned flags, lookup_done_fn *done,
		 void *ctx, struct lookup_request **req_r)
{
	pthread_once(&pool_once, pool_init);
	struct lookup_request *req = request_new();
	req->loop = loop;
	req->cfg = loop->server->config;
	snprintf(req->name, sizeof(req->name), "%s", name);
	req->flags = flags;
	req->deadline_ms = tern_now_ms() + TERN_LOOKUP_DEADLINE_MS;
	req->done = done;
	req->ctx = ctx;
	req->owner = req_r;
	*req_r = req;
	if (try_cache(req))
		return;   /* answered on a later turn of this loop, like a worker's answer */
	if (!req->spare)
		req->timer = evtimer_new(loop->base, deadline_cb, req);
	static const struct timeval deadline = {
		.tv_sec = TERN_LOOKUP_DEADLINE_MS / 1000,
		.tv_usec = (TERN_LOOKUP_DEADLINE_MS % 1000) * 1000,
	};
	bool queued = false;
	if (req->timer != NULL && evtimer_add(req->timer, &deadline) == 0) {
		TERN_LOCK_GUARD(&pool.mu);
		if (!pool.stopping && pool.thread_count > 0) {
			queue_push(req);
			pthread_cond_signal(&pool.cond);
			queued = true;
		}
	}
	if (!queued) {
		/* no memory, no timer, no workers, or stopping: a temporary
		 * failure, on a later turn (done never runs inside this call) */
		req->res.found = -1;
		req->res.err = req->spare ? TERN_ERR_NOMEM : TERN_ERR_TEMP;
		loop_post(loop, result_task, req);
	}
}
