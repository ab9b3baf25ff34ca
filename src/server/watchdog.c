#include "server/watchdog.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lock.h"
#include "core/log.h"
#include "server/delivery.h"
#include "server/freeze.h"
#include "server/server.h"

#define WATCH_TEXT_WORDS (WATCH_TEXT_MAX / 8)
_Static_assert(WATCH_TEXT_MAX % 8 == 0, "activity text is stored in 8-byte words");

/* The watched-thread slot. since_ms, long_* and the activity are written
 * by the owning thread only and read by the watchdog without a lock, so the
 * owner's side stays a few plain stores. */
struct watch_slot {
	struct watch_slot *next;          /* registry, under watch_mu */
	char name[32];                    /* set before registering, then read-only */
	enum watch_kind kind;
	/* loop: last beat; worker: busy since (0 = idle). Monotonic ms. */
	_Atomic uint64_t since_ms;
	/* The last stretch the owner found at least a threshold long, recorded
	 * when it ended (the beat after it, or the end of the work): the
	 * watchdog's "back after" is exact without looking more often. A second
	 * such stretch takes a threshold more, time the watchdog has to see the
	 * first. long_from is stored last and read first. */
	_Atomic uint64_t long_from, long_to;
	/* Activity text: a seqlock. The owner makes seq odd, writes, makes it
	 * even again; the watchdog copies the words and keeps the copy only if
	 * seq was even and unchanged around it. Words are atomics (relaxed: a
	 * plain move on common CPUs) so the copy is race-free in C11 terms, not
	 * only in practice. */
	_Atomic unsigned seq;
	atomic_bool text_set;             /* false: nothing named (cleared) */
	_Atomic uint64_t text[WATCH_TEXT_WORDS];
	/* watchdog only (under watch_mu): since_ms of the episode reported,
	 * 0 = none */
	uint64_t reported;
};

static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static struct tern_mutex watch_mu;          /* guards watch_head, slots' reported */
static struct watch_slot *watch_head;
static _Thread_local struct watch_slot *watch_self;
/* The running watchdog's threshold (0 = none): owners compare against it to
 * record their long stretches. */
static _Atomic uint32_t watch_threshold_ms;

static void watch_init(void)
{
	tern_mutex_init(&watch_mu, "watchdog threads");
}

uint32_t watch_beat_period_ms(uint32_t threshold_ms)
{
	/* Four looks per threshold bound a report's lateness to a quarter of
	 * it; more than one a second buys nothing for long thresholds. */
	uint32_t p = threshold_ms / 4;
	return p == 0 ? 1 : p > 1000 ? 1000 : p;
}

/* ---- owner side ---- */

static void text_store(struct watch_slot *s, const char *text, size_t len)
{
	if (len > WATCH_TEXT_MAX - 1)
		len = WATCH_TEXT_MAX - 1;
	unsigned q = atomic_load_explicit(&s->seq, memory_order_relaxed);
	atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	/* whole words up to and including the NUL; bytes past it are never read */
	for (size_t i = 0; i * 8 <= len; i++) {
		uint64_t w = 0;
		size_t n = len + 1 - i * 8 < 8 ? len + 1 - i * 8 : 8;
		memcpy(&w, text + i * 8, n);
		atomic_store_explicit(&s->text[i], w, memory_order_relaxed);
	}
	atomic_store_explicit(&s->text_set, true, memory_order_relaxed);
	atomic_store_explicit(&s->seq, q + 2, memory_order_release);
}

static void record_if_long(struct watch_slot *s, uint64_t from, uint64_t to)
{
	uint32_t threshold = atomic_load_explicit(&watch_threshold_ms, memory_order_relaxed);
	if (threshold == 0 || from == 0 || to < from || to - from < threshold)
		return;
	atomic_store_explicit(&s->long_to, to, memory_order_relaxed);
	atomic_store_explicit(&s->long_from, from, memory_order_release);
}

void watch_thread_begin(enum watch_kind kind, const char *fmt, ...)
{
	pthread_once(&watch_once, watch_init);
	struct watch_slot *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		log_warn("watchdog: out of memory, a thread goes unwatched");
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->name, sizeof(s->name), fmt, ap);
	va_end(ap);
	s->kind = kind;
	atomic_store(&s->since_ms, kind == WATCH_LOOP ? tern_now_ms() : 0);
	{
		TERN_LOCK_GUARD(&watch_mu);
		s->next = watch_head;
		watch_head = s;
	}
	watch_self = s;
}

void watch_thread_end(void)
{
	struct watch_slot *s = watch_self;
	if (s == NULL)
		return;
	watch_self = NULL;
	{
		TERN_LOCK_GUARD(&watch_mu);
		for (struct watch_slot **p = &watch_head; *p != NULL; p = &(*p)->next) {
			if (*p == s) {
				*p = s->next;
				break;
			}
		}
	}
	free(s);
}

void watch_beat(void)
{
	struct watch_slot *s = watch_self;
	if (s == NULL)
		return;
	uint64_t now = tern_now_ms();
	record_if_long(s, atomic_load_explicit(&s->since_ms, memory_order_relaxed), now);
	atomic_store_explicit(&s->since_ms, now, memory_order_release);
}

/* Appends "[ ]<key><value>" to buf (at *len, bounded), skipping NULL.
 * A byte loop: the parts are a few bytes each, shorter than a call to
 * strnlen and memcpy costs. */
static void append(char *buf, size_t *len, const char *key, const char *value)
{
	if (value == NULL)
		return;
	size_t n = *len;
	if (n > 0 && n < WATCH_TEXT_MAX - 1)
		buf[n++] = ' ';
	for (; *key != '\0' && n < WATCH_TEXT_MAX - 1; key++)
		buf[n++] = *key;
	for (; *value != '\0' && n < WATCH_TEXT_MAX - 1; value++)
		buf[n++] = *value;
	buf[n] = '\0';
	*len = n;
}

void watch_activity(const char *proto, const char *user, const char *cmd)
{
	struct watch_slot *s = watch_self;
	if (s == NULL)
		return;
	char buf[WATCH_TEXT_MAX];
	size_t len = 0;
	buf[0] = '\0';
	append(buf, &len, "", proto);
	append(buf, &len, "user=", user);
	append(buf, &len, "cmd=", cmd);
	text_store(s, buf, len);
}

void watch_activity_clear(void)
{
	struct watch_slot *s = watch_self;
	/* One store: the text stays as it was, and the seqlock covers its
	 * next change. */
	if (s != NULL)
		atomic_store_explicit(&s->text_set, false, memory_order_relaxed);
}

static void busy_text(struct watch_slot *s, const char *fmt, va_list ap)
{
	char buf[WATCH_TEXT_MAX];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	text_store(s, buf, n < 0 ? 0 : (size_t)n);
}

void watch_busy(const char *fmt, ...)
{
	struct watch_slot *s = watch_self;
	if (s == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	busy_text(s, fmt, ap);
	va_end(ap);
	/* after the text: a report never pairs this work with the last one's */
	atomic_store_explicit(&s->since_ms, tern_now_ms(), memory_order_release);
}

void watch_busy_text(const char *fmt, ...)
{
	struct watch_slot *s = watch_self;
	if (s == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	busy_text(s, fmt, ap);
	va_end(ap);
}

void watch_idle(void)
{
	struct watch_slot *s = watch_self;
	if (s == NULL)
		return;
	record_if_long(s, atomic_load_explicit(&s->since_ms, memory_order_relaxed),
		       tern_now_ms());
	atomic_store_explicit(&s->since_ms, 0, memory_order_release);
	atomic_store_explicit(&s->text_set, false, memory_order_relaxed);
}

/* ---- watchdog side ---- */

/* Copies the slot's activity into out (WATCH_TEXT_MAX bytes). false when
 * nothing is named or the owner kept rewriting it (then it is not stuck). */
static bool text_load(struct watch_slot *s, char *out)
{
	for (int tries = 0; tries < 8; tries++) {
		unsigned q1 = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (q1 & 1u)
			continue;
		bool set = atomic_load_explicit(&s->text_set, memory_order_relaxed);
		for (size_t i = 0; i < WATCH_TEXT_WORDS; i++) {
			uint64_t w = atomic_load_explicit(&s->text[i], memory_order_relaxed);
			memcpy(out + i * 8, &w, 8);
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&s->seq, memory_order_relaxed) == q1) {
			out[WATCH_TEXT_MAX - 1] = '\0';
			return set;
		}
	}
	return false;
}

static void check_thread(struct watch_slot *s, uint64_t now, uint32_t threshold)
{
	uint64_t since = atomic_load_explicit(&s->since_ms, memory_order_acquire);
	if (s->reported != 0 && since != s->reported) {
		uint64_t from = atomic_load_explicit(&s->long_from, memory_order_acquire);
		uint64_t to = atomic_load_explicit(&s->long_to, memory_order_relaxed);
		if (from == s->reported && to >= from)
			log_warn("watchdog: %s back after %llu ms", s->name,
				 (unsigned long long)(to - from));
		else  /* its end was not recorded (cannot happen unless we ran late) */
			log_warn("watchdog: %s back within %llu ms", s->name,
				 (unsigned long long)(now - s->reported));
		s->reported = 0;
	}
	/* since may be newer than now: the owner stamped it after we read the clock */
	if (s->reported != 0 || since == 0 || since > now || now - since < threshold)
		return;
	char text[WATCH_TEXT_MAX];
	if (text_load(s, text))
		log_warn("watchdog: %s stuck for %llu ms, running %s", s->name,
			 (unsigned long long)(now - since), text);
	else
		log_warn("watchdog: %s stuck for %llu ms, running %s", s->name,
			 (unsigned long long)(now - since),
			 s->kind == WATCH_LOOP ? "an unnamed callback" : "unnamed work");
	s->reported = since;
}

static void check_threads(uint32_t threshold)
{
	pthread_once(&watch_once, watch_init);
	uint64_t now = tern_now_ms();
	TERN_LOCK_GUARD(&watch_mu);
	for (struct watch_slot *s = watch_head; s != NULL; s = s->next)
		check_thread(s, now, threshold);
}

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

/* A logon or delivery parked (server/freeze.h) longer than the threshold:
 * who, and what it waits for; once when it crosses, then every ten. */
static void report_parked(const char *what, const char *user, const char *why, uint64_t age_ms,
			  void *arg)
{
	const struct stale_ctx *ctx = arg;
	uint64_t over = age_ms - ctx->threshold_ms;
	if (over % (10ull * ctx->threshold_ms) >= ctx->period_ms)
		return;
	log_warn("watchdog: %s for %s parked %llu ms: %s", what, user, (unsigned long long)age_ms,
		 why);
}

static void check_once(struct watchdog *w)
{
	struct stale_ctx ctx = {w->threshold_ms, w->period_ms};
	tern_mutex_foreach_stale(w->threshold_ms, report_lock, &ctx);
	freeze_foreach_parked(w->threshold_ms, report_parked, &ctx);
	check_threads(w->threshold_ms);
	struct delivery *d = w->server->delivery;
	if (d != NULL) {
		/* a stuck thread behind it has a line of its own above */
		uint64_t age = delivery_oldest_ms(d);
		if (age >= w->threshold_ms &&
		    (age - w->threshold_ms) % (10ull * w->threshold_ms) < w->period_ms)
			log_warn("watchdog: delivery in flight for %llu ms",
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
	w->period_ms = watch_beat_period_ms(w->threshold_ms);
	tern_mutex_init(&w->mu, "watchdog");
	tern_cond_init(&w->cond);
	atomic_store(&watch_threshold_ms, w->threshold_ms);
	if (pthread_create(&w->thread, NULL, watchdog_main, w) != 0) {
		atomic_store(&watch_threshold_ms, 0);
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
	atomic_store(&watch_threshold_ms, 0);
	tern_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w);
}
