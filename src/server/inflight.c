#include "server/inflight.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/lock.h"

#define INFLIGHT_SHARDS 64u

struct counter {
	char user[TERN_USERNAME_MAX + 1];
	uint32_t count;
	struct counter *next;
};

static struct {
	struct tern_mutex mu;
	struct counter *head;
} shards[INFLIGHT_SHARDS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	for (unsigned i = 0; i < INFLIGHT_SHARDS; i++)
		tern_mutex_init(&shards[i].mu, "deliveries in flight");
}

static unsigned shard_of(const char *user)
{
	unsigned h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;
	return h % INFLIGHT_SHARDS;
}

void inflight_add(const char *user, int delta)
{
	pthread_once(&once, init);
	unsigned k = shard_of(user);
	TERN_LOCK_GUARD(&shards[k].mu);
	struct counter **pp = &shards[k].head;
	while (*pp != NULL && strcmp((*pp)->user, user) != 0)
		pp = &(*pp)->next;
	if (*pp == NULL) {
		if (delta <= 0)
			return;
		struct counter *c = calloc(1, sizeof(*c));
		if (c == NULL)
			return;   /* uncounted: a move then only does not wait for it */
		snprintf(c->user, sizeof(c->user), "%s", user);
		*pp = c;
	}
	struct counter *c = *pp;
	if (delta < 0 && c->count < (uint32_t)-delta)
		c->count = 0;
	else
		c->count = (uint32_t)((int64_t)c->count + delta);
	if (c->count == 0) {
		*pp = c->next;
		free(c);
	}
}

uint32_t inflight_get(const char *user)
{
	pthread_once(&once, init);
	unsigned k = shard_of(user);
	TERN_LOCK_GUARD(&shards[k].mu);
	for (struct counter *c = shards[k].head; c != NULL; c = c->next)
		if (strcmp(c->user, user) == 0)
			return c->count;
	return 0;
}
