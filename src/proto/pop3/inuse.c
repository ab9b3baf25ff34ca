/* The in-process registry of open POP3 maildrops (see inuse.h). */
#include "proto/pop3/inuse.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/lock.h"

#define INUSE_SHARDS 64u

struct inuse_entry {
	struct inuse_entry *next;
	char name[];
};

struct inuse_shard {
	struct tern_mutex mu;   /* guards head */
	struct inuse_entry *head;
};

static struct inuse_shard shards[INUSE_SHARDS];
static pthread_once_t shards_once = PTHREAD_ONCE_INIT;

static void shards_init(void)
{
	for (unsigned i = 0; i < INUSE_SHARDS; i++)
		tern_mutex_init(&shards[i].mu, "pop3 maildrop shard");
}

static struct inuse_shard *shard_of(const char *user)
{
	pthread_once(&shards_once, shards_init);
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;
	return &shards[h % INUSE_SHARDS];
}

bool pop3_inuse_acquire(const char *user)
{
	struct inuse_shard *sh = shard_of(user);
	size_t n = strlen(user);
	/* allocated before locking: the lock covers only the test-and-set */
	struct inuse_entry *e = malloc(sizeof(*e) + n + 1);
	if (e == NULL)
		return false;
	memcpy(e->name, user, n + 1);
	{
		TERN_LOCK_GUARD(&sh->mu);
		bool taken = false;
		for (struct inuse_entry *p = sh->head; p != NULL && !taken; p = p->next)
			taken = strcmp(p->name, user) == 0;
		if (!taken) {
			e->next = sh->head;
			sh->head = e;
			return true;
		}
	}
	free(e);
	return false;
}

void pop3_inuse_release(const char *user)
{
	struct inuse_shard *sh = shard_of(user);
	struct inuse_entry *found = NULL;
	{
		TERN_LOCK_GUARD(&sh->mu);
		for (struct inuse_entry **pp = &sh->head; *pp != NULL; pp = &(*pp)->next) {
			if (strcmp((*pp)->name, user) == 0) {
				found = *pp;
				*pp = found->next;
				break;
			}
		}
	}
	free(found);
}
