/* Recent login failures per user and per client address, and the delay they
 * earn. The table is split into shards, each with its own mutex held only for
 * a short scan, so logins on different loop threads rarely meet and never
 * wait on a process-wide lock. Each shard is a fixed array: memory stays
 * bounded however many addresses an attacker uses (the oldest entry goes). */
#include "proto/auth.h"

#include <pthread.h>
#include <string.h>

#include "core/limits.h"
#include "core/lock.h"

#define FAIL_SHARDS 64u

struct fail_slot {
	uint64_t key;       /* hash of the key string; 0 = free */
	uint32_t count;
	uint64_t last_ms;
};

struct fail_shard {
	struct tern_mutex mu;   /* guards slots */
	struct fail_slot slots[TERN_AUTH_FAIL_SLOTS];
};

static struct fail_shard fail_shards[FAIL_SHARDS];
static pthread_once_t fail_once = PTHREAD_ONCE_INIT;

static void fail_init(void)
{
	for (unsigned i = 0; i < FAIL_SHARDS; i++)
		tern_mutex_init(&fail_shards[i].mu, "auth failures shard");
}

/* FNV-1a, 64 bits; never 0 so 0 can mark a free slot. */
static uint64_t key_hash(const char *key)
{
	uint64_t h = 14695981039346656037ull;
	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	return h != 0 ? h : 1;
}

static struct fail_shard *shard_of(uint64_t h)
{
	pthread_once(&fail_once, fail_init);
	return &fail_shards[(h >> 32) % FAIL_SHARDS];
}

/* now_ms may trail last_ms a little: callers read the clock before locking. */
static bool slot_live(const struct fail_slot *s, uint64_t now_ms)
{
	return s->key != 0 && (now_ms <= s->last_ms || now_ms - s->last_ms < AUTH_FAILURE_WINDOW_MS);
}

/* The slot of h, or NULL. */
static struct fail_slot *slot_find_locked(struct fail_shard *sh, uint64_t h)
{
	tern_mutex_assert_held(&sh->mu);
	for (unsigned i = 0; i < TERN_AUTH_FAIL_SLOTS; i++) {
		if (sh->slots[i].key == h)
			return &sh->slots[i];
	}
	return NULL;
}

/* A slot for a new key: a free or expired one, else the least recent. */
static struct fail_slot *slot_claim_locked(struct fail_shard *sh, uint64_t now_ms)
{
	tern_mutex_assert_held(&sh->mu);
	struct fail_slot *oldest = &sh->slots[0];
	for (unsigned i = 0; i < TERN_AUTH_FAIL_SLOTS; i++) {
		struct fail_slot *s = &sh->slots[i];
		if (!slot_live(s, now_ms))
			return s;
		if (s->last_ms < oldest->last_ms)
			oldest = s;
	}
	return oldest;
}

uint32_t auth_failures_add(const char *key, uint64_t now_ms)
{
	return auth_failures_add_since(key, now_ms, NULL);
}

uint32_t auth_failures_add_since(const char *key, uint64_t now_ms, uint64_t *prev_ms_r)
{
	uint64_t h = key_hash(key);
	struct fail_shard *sh = shard_of(h);
	TERN_LOCK_GUARD(&sh->mu);
	struct fail_slot *s = slot_find_locked(sh, h);
	if (prev_ms_r != NULL)
		*prev_ms_r = s != NULL && slot_live(s, now_ms) ? s->last_ms : 0;
	if (s == NULL || !slot_live(s, now_ms)) {
		if (s == NULL)
			s = slot_claim_locked(sh, now_ms);
		s->key = h;
		s->count = 0;
		s->last_ms = now_ms;
	}
	if (s->count < UINT32_MAX)
		s->count++;
	if (now_ms > s->last_ms)
		s->last_ms = now_ms;
	return s->count;
}

uint32_t auth_failures_get(const char *key, uint64_t now_ms)
{
	return auth_failures_peek(key, now_ms, NULL);
}

uint32_t auth_failures_peek(const char *key, uint64_t now_ms, uint64_t *last_ms_r)
{
	uint64_t h = key_hash(key);
	struct fail_shard *sh = shard_of(h);
	TERN_LOCK_GUARD(&sh->mu);
	struct fail_slot *s = slot_find_locked(sh, h);
	if (s == NULL || !slot_live(s, now_ms))
		return 0;
	if (last_ms_r != NULL)
		*last_ms_r = s->last_ms;
	return s->count;
}

void auth_failures_clear(const char *key)
{
	uint64_t h = key_hash(key);
	struct fail_shard *sh = shard_of(h);
	TERN_LOCK_GUARD(&sh->mu);
	struct fail_slot *s = slot_find_locked(sh, h);
	if (s != NULL)
		memset(s, 0, sizeof(*s));
}

uint32_t auth_failure_delay_ms(uint32_t base_ms, uint32_t failures)
{
	if (base_ms == 0)
		return 0;
	uint32_t cap = base_ms > AUTH_DELAY_CAP_MS ? base_ms : AUTH_DELAY_CAP_MS;
	uint64_t delay = base_ms;
	for (uint32_t i = 1; i < failures && delay < cap; i++)
		delay *= 2;
	return delay < cap ? (uint32_t)delay : cap;
}
