#include "core/fault.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/log.h"

void fault_stall_once(const char *name)
{
	static atomic_bool fired;
	char var[96];
	snprintf(var, sizeof(var), "TERN_FAULT_%s_MS", name);
	const char *v = getenv(var);
	if (v == NULL || atomic_exchange(&fired, true))
		return;
	long ms = strtol(v, NULL, 10);
	if (ms <= 0)
		return;
	log_warn("fault injection: %s stalls for %ld ms", name, ms);
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}
