/* Users whose mailbox this node has handed to another node by a move, and
 * where it went: the old home's own knowledge of the switch, there at once
 * (the directory is read by caches only every heartbeat). Sessions still
 * open on the old home end with BYE [UNAVAILABLE] at their next command or
 * change, and a delivery or logon that still reaches it goes to the new
 * home. When no user has moved away the check is one atomic load. */
#ifndef TERN_SERVER_MOVED_H
#define TERN_SERVER_MOVED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

extern _Atomic unsigned moved_count;

/* Records that user now lives on node (cluster address addr). */
void moved_set(const char *user, const char *node, const char *addr);
/* Forgets it (a move back to this node, or a rollback). */
void moved_clear(const char *user);
/* true when user moved away: node and addr (may be NULL) get where to. */
bool moved_get(const char *user, char *node, size_t node_cap, char *addr, size_t addr_cap);

static inline bool moved_none(void)
{
	return atomic_load_explicit(&moved_count, memory_order_acquire) == 0;
}

#endif
