/* Allocation with a small reserve for request paths: when malloc fails, one
 * of a few preallocated blocks still lets the request be answered (with a
 * temporary failure) instead of aborting; only once those are in use too
 * does the caller wait for memory (docs/architecture.md, "Out of memory"). */
#ifndef TERN_CORE_RESERVE_H
#define TERN_CORE_RESERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/limits.h"
#include "core/lock.h"

struct reserve {
	void *blocks;                       /* TERN_REQUEST_RESERVE blocks of size */
	size_t size;
	const char *what;                   /* "login requests", for the log line */
	bool used[TERN_REQUEST_RESERVE];    /* guarded by the caller's mu */
};

/* A zeroed block of r->size bytes, never NULL: from calloc, else from the
 * reserve (*spare_r = true), else after waiting for memory. mu guards
 * r->used. */
void *reserve_alloc(struct reserve *r, struct tern_mutex *mu, bool *spare_r);
/* Gives a block that reserve_alloc marked spare back to the reserve. */
void reserve_release(struct reserve *r, struct tern_mutex *mu, void *block);

#endif
