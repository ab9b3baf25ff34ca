/* Fault injection for tests: named stalls read from the environment
 * (TERN_FAULT_<NAME>_MS=n, or TERN_FAULT_<NAME>=n), so end-to-end tests can hold a lock, a worker or
 * a loop thread on purpose and check that the watchdog reports it and the
 * server keeps serving.
 *
 * Compiled in only when TERN_TEST_FAULTS is defined (CMake option
 * TERN_TEST_FAULTS, ON for the build `make test` uses; a release package
 * turns it OFF and then every call site compiles to nothing). When compiled
 * in but unset, a call site costs one relaxed atomic load after its first
 * call, which reads the environment once. */
#ifndef TERN_CORE_FAULT_H
#define TERN_CORE_FAULT_H

#ifdef TERN_TEST_FAULTS

#include <stdatomic.h>

struct fault_point {
	const char *name;
	atomic_bool spent;       /* looked up (and fired, if set): never again */
};

/* Do not call directly; use fault_stall_once. */
void fault_point_fire(struct fault_point *fp);

/* Sleeps the configured time once per process for this name
 * ("JOURNAL_STALL" reads TERN_FAULT_JOURNAL_STALL_MS); no-op when unset.
 * Each call site keeps its own state, so faults of different names are
 * independent. */
#define fault_stall_once(fault_name)                                                   \
	do {                                                                           \
		static struct fault_point fault_point_ = {.name = (fault_name)};       \
		if (!atomic_load_explicit(&fault_point_.spent, memory_order_relaxed)) \
			fault_point_fire(&fault_point_);                               \
	} while (0)

/* The number in TERN_FAULT_<NAME>, or 0 when unset: for a value a test
 * sets once at start (not for a hot path: it reads the environment). */
unsigned long long fault_number(const char *name);

#else

#define fault_stall_once(fault_name) ((void)0)
#define fault_number(name) ((void)(name), 0ull)

#endif

#endif

/* TERN_FAULT_LOCK_LEAK=USER (issue 10, "Never hang"): at USER's next logon
 * or delivery, the move-check path (server/freeze.c) takes USER's freeze
 * entry lock and never releases it, the bug this project exists to survive.
 * fault_lock_leak_user() is the user named, or NULL when unset (the
 * environment is read once); compiled out, it is NULL. */
#ifndef TERN_CORE_FAULT_LOCK_LEAK_H
#define TERN_CORE_FAULT_LOCK_LEAK_H
#ifdef TERN_TEST_FAULTS
const char *fault_lock_leak_user(void);
#else
#define fault_lock_leak_user() ((const char *)0)
#endif
#endif
