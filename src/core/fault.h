/* Fault injection for tests: named stalls read from the environment
 * (TERN_FAULT_<NAME>_MS=n), so end-to-end tests can hold a lock on purpose
 * and check that the watchdog reports it and the server keeps serving.
 * Unset in production; costs one branch per call. */
#ifndef TERN_CORE_FAULT_H
#define TERN_CORE_FAULT_H

#include <stdint.h>

/* Sleeps the configured time once per process for this name
 * ("JOURNAL_STALL" reads TERN_FAULT_JOURNAL_STALL_MS); no-op when unset. */
void fault_stall_once(const char *name);

#endif
