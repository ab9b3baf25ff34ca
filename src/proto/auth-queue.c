/* Login admission: addresses with logins in progress, their reservations
 * and the round-robin check queue (see auth-queue.h). */
#include "proto/auth-queue.h"

#include <stdio.h>
#include <string.h>

void aq_init(struct auth_queue *q)
{
	memset(q, 0, sizeof(*q));
}

/* FNV-1a over the address text. */
static unsigned chain_of(const char *key)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h % AQ_TABLE_SIZE;
}

static struct aq_addr *addr_find(struct auth_queue *q, const char *key)
{
	for (struct aq_addr *a = q->table[chain_of(key)]; a != NULL; a = a->hnext) {
		if (strcmp(a->key, key) == 0)
			return a;
	}
	return NULL;
}

enum aq_verdict aq_enter(struct auth_queue *q, struct aq_item *it, const char *addr,
			 uint32_t max_per_address, struct aq_addr **spare)
{
	char key[AQ_ADDR_MAX];
	snprintf(key, sizeof(key), "%s", addr);
	struct aq_addr *a = addr_find(q, key);
	if (a != NULL && a->in_progress >= max_per_address)
		return AQ_FULL_ADDRESS;
	if (a == NULL) {
		a = *spare;
		*spare = NULL;
		memset(a, 0, sizeof(*a));
		memcpy(a->key, key, sizeof(key));
		unsigned chain = chain_of(key);
		a->hnext = q->table[chain];
		q->table[chain] = a;
		q->addresses++;
	}
	a->in_progress++;
	it->addr = a;
	it->prev = it->next = NULL;
	it->queued = false;
	return AQ_OK;
}

enum aq_verdict aq_reserve(struct auth_queue *q, struct aq_item *it, uint64_t now_ms,
			   uint64_t earliest_ms, uint32_t spacing_ms, uint32_t max_wait_ms,
			   uint64_t *start_r)
{
	(void)q;
	struct aq_addr *a = it->addr;
	uint64_t start = now_ms;
	if (earliest_ms > start)
		start = earliest_ms;
	if (a->next_ms > start)
		start = a->next_ms;
	if (start - now_ms > max_wait_ms)
		return AQ_THROTTLED;
	if (spacing_ms > 0 && start + spacing_ms > a->next_ms)
		a->next_ms = start + spacing_ms;
	*start_r = start;
	return AQ_OK;
}

static void ring_insert_last(struct auth_queue *q, struct aq_addr *a)
{
	if (q->ring == NULL) {
		a->rprev = a->rnext = a;
		q->ring = a;
		return;
	}
	/* just before the next to serve: it waits for a full turn */
	struct aq_addr *next = q->ring;
	a->rnext = next;
	a->rprev = next->rprev;
	next->rprev->rnext = a;
	next->rprev = a;
}

static void ring_remove(struct auth_queue *q, struct aq_addr *a)
{
	if (a->rnext == a) {
		q->ring = NULL;
	} else {
		a->rprev->rnext = a->rnext;
		a->rnext->rprev = a->rprev;
		if (q->ring == a)
			q->ring = a->rnext;
	}
	a->rprev = a->rnext = NULL;
}

enum aq_verdict aq_push(struct auth_queue *q, struct aq_item *it, uint32_t max_pending)
{
	struct aq_addr *a = it->addr;
	if (q->checks >= max_pending)
		return AQ_FULL_NODE;
	it->next = NULL;
	it->prev = a->tail;
	if (a->tail != NULL)
		a->tail->next = it;
	else
		a->head = it;
	a->tail = it;
	it->queued = true;
	if (a->rnext == NULL)
		ring_insert_last(q, a);
	q->checks++;
	return AQ_OK;
}

static void item_unlink(struct aq_addr *a, struct aq_item *it)
{
	if (it->prev != NULL)
		it->prev->next = it->next;
	else
		a->head = it->next;
	if (it->next != NULL)
		it->next->prev = it->prev;
	else
		a->tail = it->prev;
	it->prev = it->next = NULL;
	it->queued = false;
}

struct aq_item *aq_pop(struct auth_queue *q)
{
	struct aq_addr *a = q->ring;
	if (a == NULL)
		return NULL;
	struct aq_item *it = a->head;
	item_unlink(a, it);
	if (a->head == NULL)
		ring_remove(q, a);
	else
		q->ring = a->rnext;
	return it;
}

void aq_checked(struct auth_queue *q)
{
	if (q->checks > 0)
		q->checks--;
}

bool aq_unqueue(struct auth_queue *q, struct aq_item *it)
{
	if (!it->queued)
		return false;
	struct aq_addr *a = it->addr;
	item_unlink(a, it);
	if (a->head == NULL)
		ring_remove(q, a);
	aq_checked(q);
	return true;
}

struct aq_addr *aq_leave(struct auth_queue *q, struct aq_item *it)
{
	struct aq_addr *a = it->addr;
	if (a == NULL)
		return NULL;
	(void)aq_unqueue(q, it);
	it->addr = NULL;
	if (--a->in_progress > 0)
		return NULL;
	struct aq_addr **pp = &q->table[chain_of(a->key)];
	while (*pp != a)
		pp = &(*pp)->hnext;
	*pp = a->hnext;
	q->addresses--;
	return a;
}
