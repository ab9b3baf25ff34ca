/* Deliveries in flight per user: recipients an LMTP transaction accepted
 * for a user homed here whose message is not stored yet. A move's freeze
 * waits for them (they were accepted before it), so none of them meets
 * the fence that follows. Sharded counters, each shard lock held for a
 * probe; no process-wide lock. */
#ifndef TERN_SERVER_INFLIGHT_H
#define TERN_SERVER_INFLIGHT_H

#include <stdint.h>

/* Adds delta (+1 at RCPT, -1 when the transaction ends) to user's count. */
void inflight_add(const char *user, int delta);
/* user's count now. */
uint32_t inflight_get(const char *user);

#endif
