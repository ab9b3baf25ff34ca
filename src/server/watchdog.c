#include "server/watchdog.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/lock.h"
#include "core/log.h"
#include "server/delivery.h"
#include "server/server.h"

struct watchdog {
	struct server *server;
	uint32_t threshold_ms;
	uint32_t period_ms;
	pthread_t thread;
	struct tern_mutex mu;    /* guards stop */
	pthread_cond_t cond;
	bool stop;
};

struct stale_ctx {
	uint32_t threshold_ms, period_ms;
};

static void report_lock(const struct tern_mutex *m, uint64_t held_ms, void *arg)
{
	const struct stale_ctx *ctx = arg;
	/* Report each stall once, in the period it crosses the threshold, and
	 * then again every ten thresholds while it lasts. */
	uint64_t over = held_ms - ctx->threshold_ms;
	if (over % (10ull * ctx->threshold_ms) >= ctx->period_ms)
		return;
	const char *file = atomic_load(&m->held_file);
	log_warn("watchdog: lock '%s' held for %llu ms, taken at %s:%d", m->name,
		 (unsigned long long)held_ms, file != NULL ? file : "?",
		 atomic_load(&m->held_line));
}

static void check_once(struct watchdog *w)
{
	struct stale_ctx ctx = {w->threshold_ms, w->period_ms};
	tern_mutex_foreach_stale(w->threshold_ms, report_lock, &ctx);
	struct delivery *d = w->server->delivery;
	if (d != NULL) {
		uint64_t age = delivery_oldest_ms(d);
		if (age >= w->threshold_ms &&
		    (age - w->threshold_ms) % (10ull * w->threshold_ms) < w->period_ms)
			log_warn("watchdog: delivery in flight for %llu ms (committer stalled?)",
				 (unsigned long long)age);
	}
}

static void *watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	for (;;) {
		{
			TERN_LOCK_GUARD(&w->mu);
			uint64_t deadline = tern_now_ms() + w->period_ms;
			while (!w->stop && tern_now_ms() < deadline)
				tern_cond_wait(&w->cond, &w->mu, deadline);
			if (w->stop)
				break;
		}
		check_once(w);
	}
	return NULL;
}

int watchdog_start(struct server *srv, uint32_t threshold_ms, struct watchdog **w_r)
{
	struct watchdog *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -1;
	w->server = srv;
	w->threshold_ms = threshold_ms > 0 ? threshold_ms : 1;
	w->period_ms = w->threshold_ms / 4 > 0 ? w->threshold_ms / 4 : 1;
	if (w->period_ms > 1000)
		w->period_ms = 1000;
	tern_mutex_init(&w->mu, "watchdog");
	tern_cond_init(&w->cond);
	if (pthread_create(&w->thread, NULL, watchdog_main, w) != 0) {
		tern_mutex_destroy(&w->mu);
		free(w);
		return -1;
	}
	*w_r = w;
	return 0;
}

void watchdog_stop(struct watchdog **wp)
{
	struct watchdog *w = *wp;
	if (w == NULL)
		return;
	*wp = NULL;
	{
		TERN_LOCK_GUARD(&w->mu);
		w->stop = true;
		pthread_cond_signal(&w->cond);
	}
	pthread_join(w->thread, NULL);
	tern_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w);
}
