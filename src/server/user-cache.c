/* The user cache (see user-cache.h).
 *
 * A shard is a dense array of entries and an open-addressing index over it
 * (linear probing, twice as many slots as entries, so a probe is short).
 * All entries of a shard are of one generation, shard->gen: a put of a
 * newer one empties the shard first, which is how the entries a directory
 * change made useless are reclaimed, and a full shard is emptied the same
 * way. Nothing is removed one by one, so the index needs no tombstones.
 * The arrays are static (BSS): pages a node never touches cost nothing. */
#include "server/user-cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "core/lock.h"

#define PER_SHARD (TERN_USER_CACHE_MAX / TERN_USER_CACHE_SHARDS)
#define SLOTS (2 * PER_SHARD)

_Static_assert((TERN_USER_CACHE_SHARDS & (TERN_USER_CACHE_SHARDS - 1)) == 0,
	       "shards: a power of two");
_Static_assert((SLOTS & (SLOTS - 1)) == 0, "slots: a power of two");
_Static_assert(PER_SHARD >= 1 && PER_SHARD < UINT16_MAX, "index entries are uint16_t");

struct shard {
	struct tern_mutex mu;
	/* under mu: */
	uint64_t gen;                       /* of every entry here */
	uint32_t count;
	uint64_t hits, misses, puts, clears;
	uint16_t index[SLOTS];              /* 0 empty, else entry + 1 */
	uint64_t hashes[PER_SHARD];
	struct user_cache_entry entries[PER_SHARD];
};

static struct shard shards[TERN_USER_CACHE_SHARDS];
static pthread_once_t shards_once = PTHREAD_ONCE_INIT;

static _Atomic uint64_t current_gen;        /* 0 = unknown */
static _Atomic uint64_t trusted_until_ms;   /* monotonic; 0 = not trusted */
static _Atomic uint64_t dropped;            /* puts of an old generation */

static void shards_init(void)
{
	for (unsigned i = 0; i < TERN_USER_CACHE_SHARDS; i++)
		tern_mutex_init(&shards[i].mu, "user cache shard");
}

/* FNV-1a, 64 bits: the low bits pick the shard, the rest the slot. */
static uint64_t name_hash(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	return h;
}

static struct shard *shard_of(uint64_t h)
{
	pthread_once(&shards_once, shards_init);
	return &shards[h & (TERN_USER_CACHE_SHARDS - 1)];
}

static uint32_t first_slot(uint64_t h)
{
	return (uint32_t)(h >> 32) & (SLOTS - 1);
}

/* (mu held) The slot holding name, or the empty slot where it would go. */
static uint32_t probe(const struct shard *sh, uint64_t h, const char *name)
{
	uint32_t slot = first_slot(h);
	for (;;) {
		uint16_t idx = sh->index[slot];
		if (idx == 0)
			return slot;
		if (sh->hashes[idx - 1] == h && strcmp(sh->entries[idx - 1].name, name) == 0)
			return slot;
		slot = (slot + 1) & (SLOTS - 1);
	}
}

/* (mu held) */
static void shard_empty(struct shard *sh, uint64_t gen)
{
	if (sh->count > 0)
		sh->clears++;
	memset(sh->index, 0, sizeof(sh->index));
	sh->count = 0;
	sh->gen = gen;
}

void user_cache_set_generation(uint64_t gen)
{
	if (gen == 0) {
		user_cache_distrust();
		return;
	}
	atomic_store(&current_gen, gen);
	atomic_store(&trusted_until_ms, tern_now_ms() + TERN_USER_CACHE_TRUST_MS);
}

void user_cache_distrust(void)
{
	atomic_store(&trusted_until_ms, 0);
}

uint64_t user_cache_generation(void)
{
	return atomic_load(&current_gen);
}

bool user_cache_get(const char *name, struct user_cache_entry *e_r)
{
	uint64_t gen = atomic_load(&current_gen);
	if (gen == 0 || tern_now_ms() >= atomic_load(&trusted_until_ms))
		return false;
	uint64_t h = name_hash(name);
	struct shard *sh = shard_of(h);
	TERN_LOCK_GUARD(&sh->mu);
	if (sh->gen == gen && sh->count > 0) {
		uint16_t idx = sh->index[probe(sh, h, name)];
		if (idx != 0) {
			*e_r = sh->entries[idx - 1];
			sh->hits++;
			return true;
		}
	}
	sh->misses++;
	return false;
}

bool user_cache_put(const struct user_cache_entry *e)
{
	if (memchr(e->name, '\0', sizeof(e->name)) == NULL || e->name[0] == '\0')
		return false;
	if (e->generation == 0 || e->generation != atomic_load(&current_gen)) {
		atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
		return false;
	}
	uint64_t h = name_hash(e->name);
	struct shard *sh = shard_of(h);
	TERN_LOCK_GUARD(&sh->mu);
	if (sh->gen != e->generation)
		shard_empty(sh, e->generation);   /* what it holds answers no more */
	uint32_t slot = probe(sh, h, e->name);
	if (sh->index[slot] == 0 && sh->count == PER_SHARD) {
		shard_empty(sh, e->generation);
		slot = probe(sh, h, e->name);
	}
	uint16_t idx = sh->index[slot];
	if (idx == 0) {
		idx = (uint16_t)(++sh->count);
		sh->index[slot] = idx;
		sh->hashes[idx - 1] = h;
	}
	sh->entries[idx - 1] = *e;
	sh->puts++;
	return true;
}

static bool copy_str(char *dst, size_t size, const char *src)
{
	size_t len = src != NULL ? strlen(src) : 0;
	if (len >= size)
		return false;
	if (len > 0)
		memcpy(dst, src, len);
	dst[len] = '\0';
	return true;
}

bool user_cache_entry_set(struct user_cache_entry *e, uint64_t generation, const char *name,
			  bool found, const char *home, const char *home_addr, const char *state,
			  int64_t epoch, uint64_t quota, int64_t created)
{
	memset(e, 0, sizeof(*e));
	e->generation = generation;
	e->found = found;
	if (!copy_str(e->name, sizeof(e->name), name))
		return false;
	if (!found)
		return true;
	e->epoch = epoch;
	e->quota = quota;
	e->created = created;
	return copy_str(e->home, sizeof(e->home), home) &&
	       copy_str(e->home_addr, sizeof(e->home_addr), home_addr) &&
	       copy_str(e->state, sizeof(e->state), state);
}

void user_cache_clear(void)
{
	pthread_once(&shards_once, shards_init);
	for (unsigned i = 0; i < TERN_USER_CACHE_SHARDS; i++) {
		TERN_LOCK_GUARD(&shards[i].mu);
		shard_empty(&shards[i], 0);
	}
}

void user_cache_stats(struct user_cache_stats *s_r)
{
	pthread_once(&shards_once, shards_init);
	memset(s_r, 0, sizeof(*s_r));
	for (unsigned i = 0; i < TERN_USER_CACHE_SHARDS; i++) {
		struct shard *sh = &shards[i];
		TERN_LOCK_GUARD(&sh->mu);
		s_r->hits += sh->hits;
		s_r->misses += sh->misses;
		s_r->puts += sh->puts;
		s_r->clears += sh->clears;
		s_r->entries += sh->count;
	}
	s_r->dropped = atomic_load_explicit(&dropped, memory_order_relaxed);
}
