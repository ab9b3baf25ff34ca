/* Open per-user store handles kept by the delivery committer, most recently
 * used first, so a steady stream of deliveries does not reopen SQLite files.
 * Handles are opened non-durable: the delivery journal provides durability
 * until store_cache_checkpoint() has flushed every dirty one. Single-threaded. */
#ifndef TERN_SERVER_STORE_CACHE_H
#define TERN_SERVER_STORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct store;
struct store_cache;

struct store_cache *store_cache_new(const char *data_dir, size_t capacity);
void store_cache_free(struct store_cache **cache);
/* The user's store, opened if needed (and created if missing when create is
 * set; else TERN_ERR_NOTFOUND); marks it dirty as of journal segment gen (if
 * it was clean). The least recently used handle is checkpointed and closed
 * when full. */
struct store *store_cache_get(struct store_cache *cache, const char *user, uint64_t gen,
			      bool create, enum tern_error *err_r);
/* Checkpoints up to max dirty stores whose unsynced data began in a segment
 * older than gen, oldest first. Returns how many, or -1 (*err_r) on failure
 * (that store stays dirty and is retried later). */
int store_cache_checkpoint_older(struct store_cache *cache, uint64_t gen, unsigned max,
				 const char **failed_user_r, enum tern_error *err_r);
/* The oldest segment some dirty store still needs, UINT64_MAX if none. */
uint64_t store_cache_oldest_dirty_gen(const struct store_cache *cache);
/* Whether user's store is open here. */
bool store_cache_contains(struct store_cache *cache, const char *user);
/* Drops a handle after an error so the next use reopens the file. */
void store_cache_drop(struct store_cache *cache, const char *user);
/* Checkpoints every dirty handle (fsyncing its WAL and database).
 * Returns -1 if any failed (those stay dirty); *failed_user_r (optional)
 * names the first that failed, valid until the next call. */
int store_cache_checkpoint(struct store_cache *cache, const char **failed_user_r,
			   enum tern_error *err_r);

#endif
