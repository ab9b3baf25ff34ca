/* The user cache: this node's memory of the directory's answer to "where
 * does this user live, and is it being moved?" (home node, its cluster
 * address, epoch, state, quota; or "no such user"), so an LMTP RCPT or a
 * cluster OPEN is answered without a directory read when nothing changed.
 *
 * Currency. The directory keeps a change counter (directory_ops.generation)
 * that every change to a user row, and every node row added, removed or
 * re-addressed, bumps. The node registry's heartbeat thread reads it at
 * every beat (TERN_NODE_HEARTBEAT_MS) and publishes it here; an entry
 * answers only when it was read at the published generation, and only
 * while the publication is younger than TERN_USER_CACHE_TRUST_MS. So a
 * change made anywhere (ternctl in another process, another node) is
 * obeyed by every node within one heartbeat (plus the read), and a poller
 * stuck on the directory turns the cache off rather than serving old
 * answers. Before the first publication the cache answers nothing.
 *
 * Locking. No process-wide lock: entries live in TERN_USER_CACHE_SHARDS
 * shards by a hash of the name, each with its own mutex, taken through
 * TERN_LOCK_GUARD for a probe and a copy of one entry (never across I/O);
 * the generation and the trust deadline are atomics. Bounded: a shard that
 * is full, or holds entries of an older generation, is emptied by the next
 * put. Callable from any thread. */
#ifndef TERN_SERVER_USER_CACHE_H
#define TERN_SERVER_USER_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/limits.h"

struct user_cache_entry {
	char name[TERN_USER_CACHE_NAME_MAX + 1];       /* canonical */
	bool found;                                    /* false: no such user */
	/* found only: */
	char home[TERN_USER_CACHE_HOME_MAX + 1];       /* node name */
	char home_addr[TERN_USER_CACHE_ADDR_MAX + 1];  /* its cluster address, or "" */
	char state[TERN_USER_CACHE_STATE_MAX + 1];
	int64_t epoch;
	uint64_t quota;                                /* the row's: 0 = node default */
	int64_t created;
	/* The published generation before the directory was read (see
	 * user_cache_generation). */
	uint64_t generation;
};

struct user_cache_stats {
	uint64_t hits, misses, puts, dropped, clears, entries;
};

/* Publishes the directory's change counter as just read: entries of
 * another generation stop answering, and the cache answers for
 * TERN_USER_CACHE_TRUST_MS from now. 0 = unknown, same as distrust. */
void user_cache_set_generation(uint64_t gen);
/* The counter could not be read: nothing answers until the next publish. */
void user_cache_distrust(void);
/* The published generation (0 before the first publish). A reader takes
 * it BEFORE reading the directory and stores it in the entry it puts: the
 * row read is then at least as new as that generation. */
uint64_t user_cache_generation(void);

/* Copies name's entry to *e_r and returns true when it was read at the
 * published generation and the publication is trusted; false otherwise. */
bool user_cache_get(const char *name, struct user_cache_entry *e_r);
/* Stores e (a copy). False, nothing stored, when a string does not fit
 * (fill with user_cache_entry_set) or e->generation is not the published
 * one (a slow reader's answer, already old). */
bool user_cache_put(const struct user_cache_entry *e);
/* Fills *e (zeroed first) from the row's fields; false when one of the
 * strings is too long to cache. home etc. are ignored when !found. */
bool user_cache_entry_set(struct user_cache_entry *e, uint64_t generation, const char *name,
			  bool found, const char *home, const char *home_addr, const char *state,
			  int64_t epoch, uint64_t quota, int64_t created);

/* Forgets every entry (tests). */
void user_cache_clear(void);
void user_cache_stats(struct user_cache_stats *s_r);

#endif
