#include "core/reserve.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

void *reserve_alloc(struct reserve *r, struct tern_mutex *mu, bool *spare_r)
{
	*spare_r = false;
	void *block = calloc(1, r->size);
	for (unsigned waits = 0; block == NULL; waits++) {
		{
			TERN_LOCK_GUARD(mu);
			for (unsigned i = 0; i < TERN_REQUEST_RESERVE && block == NULL; i++) {
				if (!r->used[i]) {
					r->used[i] = true;
					block = (char *)r->blocks + i * r->size;
				}
			}
		}
		if (block != NULL) {
			memset(block, 0, r->size);
			*spare_r = true;
			return block;
		}
		if (waits == 0)
			log_error("out of memory and the %u spare %s are in use: they wait for memory",
				  TERN_REQUEST_RESERVE, r->what);
		struct timespec ms = {0, 1000 * 1000};
		nanosleep(&ms, NULL);
		block = calloc(1, r->size);
	}
	return block;
}

void reserve_release(struct reserve *r, struct tern_mutex *mu, void *block)
{
	size_t i = (size_t)((char *)block - (char *)r->blocks) / r->size;
	TERN_LOCK_GUARD(mu);
	r->used[i] = false;
}
