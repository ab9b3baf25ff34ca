/* The orphan collector: the copy a completed move leaves on its source is
 * removed by the move's mover (REMOVE). A mover that dies after the switch
 * leaves it behind, fenced and never read again; this finds such copies
 * among the moves out of this node and removes them through the user's
 * store worker. Runs on the mover's thread. */
#ifndef TERN_MOVER_ORPHANS_H
#define TERN_MOVER_ORPHANS_H

#include <stdint.h>

struct directory;
struct server;
struct tern_config;

/* Looks at the moves out of this node completed at since_ms (unix ms) or
 * later: a user with no move in progress, whom the directory homes on
 * another node, and whose store is still here, has that store removed
 * (logged). Waits for each removal (bounded by the store task's deadline). */
void orphans_collect(struct directory *dir, const struct tern_config *cfg, struct server *srv,
		     int64_t since_ms);

#endif
