#include "server/moved.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/lock.h"

#define MOVED_SHARDS 16u

struct moved_entry {
	char user[TERN_USERNAME_MAX + 1];
	char node[TERN_CLUSTER_NODE_NAME_MAX + 1];
	char addr[128];
	struct moved_entry *next;
};

_Atomic unsigned moved_count;

static struct {
	struct tern_mutex mu;
	struct moved_entry *head;
} shards[MOVED_SHARDS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	for (unsigned i = 0; i < MOVED_SHARDS; i++)
		tern_mutex_init(&shards[i].mu, "moved users");
}

static unsigned shard_of(const char *user)
{
	unsigned h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;
	return h % MOVED_SHARDS;
}

void moved_set(const char *user, const char *node, const char *addr)
{
	pthread_once(&once, init);
	unsigned k = shard_of(user);
	TERN_LOCK_GUARD(&shards[k].mu);
	struct moved_entry *e = shards[k].head;
	while (e != NULL && strcmp(e->user, user) != 0)
		e = e->next;
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			return;   /* the directory still says where: only slower */
		snprintf(e->user, sizeof(e->user), "%s", user);
		e->next = shards[k].head;
		shards[k].head = e;
		atomic_fetch_add(&moved_count, 1);
	}
	snprintf(e->node, sizeof(e->node), "%s", node);
	snprintf(e->addr, sizeof(e->addr), "%s", addr != NULL ? addr : "");
}

void moved_clear(const char *user)
{
	if (moved_none())
		return;
	pthread_once(&once, init);
	unsigned k = shard_of(user);
	TERN_LOCK_GUARD(&shards[k].mu);
	for (struct moved_entry **pp = &shards[k].head; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->user, user) == 0) {
			struct moved_entry *gone = *pp;
			*pp = gone->next;
			free(gone);
			atomic_fetch_sub(&moved_count, 1);
			return;
		}
	}
}

bool moved_get(const char *user, char *node, size_t node_cap, char *addr, size_t addr_cap)
{
	if (moved_none())
		return false;
	pthread_once(&once, init);
	unsigned k = shard_of(user);
	TERN_LOCK_GUARD(&shards[k].mu);
	for (struct moved_entry *e = shards[k].head; e != NULL; e = e->next) {
		if (strcmp(e->user, user) == 0) {
			if (node != NULL)
				snprintf(node, node_cap, "%s", e->node);
			if (addr != NULL)
				snprintf(addr, addr_cap, "%s", e->addr);
			return true;
		}
	}
	return false;
}
