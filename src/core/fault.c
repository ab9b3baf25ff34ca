#include "core/fault.h"

#ifdef TERN_TEST_FAULTS

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/log.h"

void fault_point_fire(struct fault_point *fp)
{
	/* The first caller looks the variable up; racing callers see it spent
	 * and go on, which is what "once" asks for. */
	if (atomic_exchange(&fp->spent, true))
		return;
	/* TERN_FAULT_<NAME>_MS, or TERN_FAULT_<NAME> as the issues spell
	 * some of them (TERN_FAULT_LOOP_STALL=MS). */
	char var[96];
	snprintf(var, sizeof(var), "TERN_FAULT_%s_MS", fp->name);
	const char *v = getenv(var);
	if (v == NULL) {
		snprintf(var, sizeof(var), "TERN_FAULT_%s", fp->name);
		v = getenv(var);
	}
	long ms = v != NULL ? strtol(v, NULL, 10) : 0;
	if (ms <= 0)
		return;
	log_warn("fault injection: %s stalls for %ld ms", fp->name, ms);
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

unsigned long long fault_number(const char *name)
{
	char var[96];
	snprintf(var, sizeof(var), "TERN_FAULT_%s", name);
	const char *v = getenv(var);
	unsigned long long n = v != NULL ? strtoull(v, NULL, 10) : 0;
	if (n != 0)
		log_warn("fault injection: %s = %llu", name, n);
	return n;
}

#else

/* Faults are compiled out (TERN_TEST_FAULTS=OFF): nothing to build. */
typedef int fault_compiled_out;

#endif

#ifdef TERN_TEST_FAULTS

#include <pthread.h>

static pthread_once_t lock_leak_once = PTHREAD_ONCE_INIT;
static const char *lock_leak_user;

static void lock_leak_read(void)
{
	const char *v = getenv("TERN_FAULT_LOCK_LEAK");
	if (v != NULL && v[0] != '\0') {
		lock_leak_user = v;
		log_warn("fault injection: LOCK_LEAK: %s's freeze entry lock leaks at the "
			 "next logon or delivery", v);
	}
}

const char *fault_lock_leak_user(void)
{
	pthread_once(&lock_leak_once, lock_leak_read);
	return lock_leak_user;
}

#endif
