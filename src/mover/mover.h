/* The mover: runs, on the destination node, the moves the directory has for
 * it (issue 10): takes the move's lease, copies the user's store from the
 * source over the cluster channel (a whole copy, then rounds of changes),
 * freezes the user on the source for the last round, switches the
 * directory by one compare-and-set (home = here, epoch + 1), fences and
 * releases the source, verifies and removes the source's copy. Each move
 * runs on a thread of its own with blocking sockets under timeouts (never a
 * loop thread); its phase, progress and errors are written to the
 * directory, so every node and ternctl see them. */
#ifndef TERN_MOVER_MOVER_H
#define TERN_MOVER_MOVER_H

struct server;
struct tern_config;

/* Starts the thread that looks for moves bound here (needs cluster_listen),
 * and collects the copies moves out of here left behind (mover/orphans.h).
 * 0, or -1 (logged). */
int mover_start(const struct tern_config *cfg, struct server *srv);
/* Stops it and every move it runs (they stop at their next step; a move
 * stopped while the user is frozen releases the user, and its lease lets
 * a restarted node take it over). */
void mover_stop(void);

#endif
