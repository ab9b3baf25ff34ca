#include "core/lock.h"

#include <assert.h>
#include <stdlib.h>
#include <time.h>

/* The registry itself is guarded by a plain mutex: it is the one lock that
 * cannot be watched, and it is held only to link or walk the list. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tern_mutex *registry_head;

uint64_t tern_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void tern_mutex_init(struct tern_mutex *m, const char *name)
{
	pthread_mutex_init(&m->mu, NULL);
	m->name = name;
	atomic_store(&m->held_file, NULL);
	atomic_store(&m->held_line, 0);
	atomic_store(&m->held_since_ms, 0);
	pthread_mutex_lock(&registry_mu);
	m->watch_next = registry_head;
	registry_head = m;
	pthread_mutex_unlock(&registry_mu);
}

void tern_mutex_destroy(struct tern_mutex *m)
{
	pthread_mutex_lock(&registry_mu);
	for (struct tern_mutex **p = &registry_head; *p != NULL; p = &(*p)->watch_next) {
		if (*p == m) {
			*p = m->watch_next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_mu);
	pthread_mutex_destroy(&m->mu);
}

struct tern_mutex *tern_mutex_lock(struct tern_mutex *m, const char *file, int line)
{
	pthread_mutex_lock(&m->mu);
	atomic_store(&m->owner, pthread_self());
	atomic_store(&m->held_file, file);
	atomic_store(&m->held_line, line);
	atomic_store(&m->held_since_ms, tern_now_ms());
	return m;
}

void tern_mutex_unlockp(struct tern_mutex **mp)
{
	struct tern_mutex *m = *mp;
	if (m == NULL)
		return;
	atomic_store(&m->held_since_ms, 0);
	atomic_store(&m->held_file, NULL);
	pthread_mutex_unlock(&m->mu);
}

static bool tern_mutex_held_by_me(struct tern_mutex *m)
{
	return atomic_load(&m->held_since_ms) != 0 &&
	       pthread_equal(atomic_load(&m->owner), pthread_self());
}

void tern_mutex_assert_held(struct tern_mutex *m)
{
	if (!tern_mutex_held_by_me(m))
		abort();
}

void tern_mutex_foreach_stale(uint64_t threshold_ms,
			      void (*fn)(const struct tern_mutex *m, uint64_t held_ms, void *ctx),
			      void *ctx)
{
	uint64_t now = tern_now_ms();
	pthread_mutex_lock(&registry_mu);
	for (struct tern_mutex *m = registry_head; m != NULL; m = m->watch_next) {
		uint64_t since = atomic_load(&m->held_since_ms);
		if (since != 0 && now - since >= threshold_ms)
			fn(m, now - since, ctx);
	}
	pthread_mutex_unlock(&registry_mu);
}

void tern_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

int tern_cond_wait(pthread_cond_t *cond, struct tern_mutex *m, uint64_t deadline_ms)
{
	const char *file = atomic_load(&m->held_file);
	int line = atomic_load(&m->held_line);
	atomic_store(&m->held_since_ms, 0);
	int r;
	if (deadline_ms == 0) {
		r = pthread_cond_wait(cond, &m->mu);
	} else {
		struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
				      .tv_nsec = (long)(deadline_ms % 1000) * 1000000};
		r = pthread_cond_timedwait(cond, &m->mu, &ts);
	}
	atomic_store(&m->owner, pthread_self());
	atomic_store(&m->held_file, file);
	atomic_store(&m->held_line, line);
	atomic_store(&m->held_since_ms, tern_now_ms());
	return r;
}
