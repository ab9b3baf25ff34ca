/* Mutexes that can only be taken through a scope guard, so no return path can
 * leave one held, and that record where and when they were taken so the
 * watchdog (core/watchdog.h) can report a lock held too long. */
#ifndef TERN_CORE_LOCK_H
#define TERN_CORE_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct tern_mutex {
	pthread_mutex_t mu;
	const char *name;              /* for watchdog reports */
	_Atomic(const char *) held_file;
	_Atomic int held_line;
	_Atomic uint64_t held_since_ms; /* 0 = not held */
	_Atomic(pthread_t) owner;
	struct tern_mutex *watch_next; /* registry of watched mutexes */
};

/* Initialises and registers the mutex with the watchdog. */
void tern_mutex_init(struct tern_mutex *m, const char *name);
void tern_mutex_destroy(struct tern_mutex *m);

/* Do not call these two directly; use TERN_LOCK_GUARD. */
struct tern_mutex *tern_mutex_lock(struct tern_mutex *m, const char *file, int line);
void tern_mutex_unlockp(struct tern_mutex **mp);

/* Aborts (in every build) when the calling thread does not hold m: a
 * function that needs the lock was called without it, a bug to stop at
 * once rather than a data race to debug later. */
void tern_mutex_assert_held(struct tern_mutex *m);

#define TERN_CONCAT_(a, b) a##b
#define TERN_CONCAT(a, b) TERN_CONCAT_(a, b)
#define TERN_UNIQ(prefix) TERN_CONCAT(prefix, __COUNTER__)

/* Holds m until the end of the enclosing scope, whatever way it is left. */
#define TERN_LOCK_GUARD(m) \
	__attribute__((cleanup(tern_mutex_unlockp), unused)) struct tern_mutex \
	*TERN_UNIQ(tern_guard_) = tern_mutex_lock((m), __FILE__, __LINE__)

/* Waits on cond, releasing m meanwhile (m must be held through a guard).
 * The watchdog does not count the wait as holding m. Returns pthread's code.
 * deadline_ms (monotonic, 0 = none) bounds the wait. */
int tern_cond_wait(pthread_cond_t *cond, struct tern_mutex *m, uint64_t deadline_ms);
/* Initialises a condition variable on CLOCK_MONOTONIC, matching tern_now_ms. */
void tern_cond_init(pthread_cond_t *cond);

/* Monotonic milliseconds, the clock every deadline in Tern uses. */
uint64_t tern_now_ms(void);

/* Walks the registry: calls fn for every mutex held longer than threshold_ms. */
void tern_mutex_foreach_stale(uint64_t threshold_ms,
			      void (*fn)(const struct tern_mutex *m, uint64_t held_ms, void *ctx),
			      void *ctx);

#endif
