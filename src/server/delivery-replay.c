/* Start-up replay of the delivery journal: every segment an earlier run left
 * is applied again; delivery ids make that idempotent, abort records keep
 * refused deliveries out. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/log.h"
#include "server/delivery-private.h"
#include "server/journal.h"
#include "server/store-cache.h"
#include "store/store.h"

#define DELIVERY_SEGMENT_PREFIX "delivery.journal."

/* A JOURNAL_MESSAGE record of the segment being replayed; its bytes point
 * into the segment's mapping, valid until the segment is done. */
struct replay_message {
	uint64_t id;
	const void *data;
	size_t size;
};

struct replay_ctx {
	struct delivery *d;
	struct store_cache *stores;
	uint64_t *aborted;        /* sorted after collection */
	size_t aborted_count, aborted_cap;
	size_t applied, skipped;
	bool collecting_aborts;
	struct replay_message *messages; /* this segment's, ascending id */
	size_t message_count, message_cap;
};

char *delivery_segment_path(const struct delivery *d, uint64_t gen)
{
	char *path;
	if (asprintf(&path, "%s/" DELIVERY_SEGMENT_PREFIX "%020llu", d->data_dir,
		     (unsigned long long)gen) < 0)
		return NULL;
	return path;
}

void delivery_delete_segments_before(struct delivery *d, uint64_t gen)
{
	for (; d->oldest_gen < gen; d->oldest_gen++) {
		char *path = delivery_segment_path(d, d->oldest_gen);
		if (path != NULL && unlink(path) < 0 && errno != ENOENT)
			log_error("delivery: cannot delete journal segment %s: %s", path,
				  strerror(errno));
		free(path);
	}
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The numbers of the segments on disk, ascending. */
static int list_segments(const char *data_dir, uint64_t **gens_r, size_t *count_r, char **err_r)
{
	DIR *dir = opendir(data_dir);
	if (dir == NULL) {
		if (asprintf(err_r, "%s: %s", data_dir, strerror(errno)) < 0)
			*err_r = NULL;
		return -1;
	}
	uint64_t *gens = calloc(TERN_JOURNAL_SEGMENTS_MAX, sizeof(*gens));
	size_t n = 0, plen = strlen(DELIVERY_SEGMENT_PREFIX);
	struct dirent *de;
	while (gens != NULL && (de = readdir(dir)) != NULL && n < TERN_JOURNAL_SEGMENTS_MAX) {
		char *end;
		if (strncmp(de->d_name, DELIVERY_SEGMENT_PREFIX, plen) != 0)
			continue;
		unsigned long long g = strtoull(de->d_name + plen, &end, 10);
		if (*end == '\0' && end != de->d_name + plen)
			gens[n++] = g;
	}
	closedir(dir);
	if (gens == NULL) {
		*err_r = strdup("out of memory");
		return -1;
	}
	qsort(gens, n, sizeof(*gens), u64_cmp);
	*gens_r = gens;
	*count_r = n;
	return 0;
}

static int collect_abort(struct replay_ctx *rc, uint64_t id)
{
	if (rc->aborted_count == rc->aborted_cap) {
		size_t cap = rc->aborted_cap > 0 ? rc->aborted_cap * 2 : 64;
		uint64_t *a = realloc(rc->aborted, cap * sizeof(*a));
		if (a == NULL)
			return -1;
		rc->aborted = a;
		rc->aborted_cap = cap;
	}
	rc->aborted[rc->aborted_count++] = id;
	return 0;
}

static int remember_message(struct replay_ctx *rc, const struct journal_record *rec)
{
	if (rc->message_count == rc->message_cap) {
		size_t cap = rc->message_cap > 0 ? rc->message_cap * 2 : 64;
		struct replay_message *m = realloc(rc->messages, cap * sizeof(*m));
		if (m == NULL)
			return -1;
		rc->messages = m;
		rc->message_cap = cap;
	}
	rc->messages[rc->message_count++] =
		(struct replay_message){.id = rec->id, .data = rec->data, .size = rec->size};
	return 0;
}

static int message_cmp(const void *key, const void *elem)
{
	uint64_t id = *(const uint64_t *)key, other = ((const struct replay_message *)elem)->id;
	return id < other ? -1 : id > other;
}

static int replay_record(const struct journal_record *rec, void *ctx)
{
	struct replay_ctx *rc = ctx;
	if (rc->collecting_aborts)
		return rec->type == JOURNAL_ABORT ? collect_abort(rc, rec->id) : 0;
	if (rec->type == JOURNAL_MESSAGE)
		return remember_message(rc, rec);
	if (rec->type != JOURNAL_DELIVER && rec->type != JOURNAL_RCPT)
		return 0;
	if (rc->aborted_count > 0 &&
	    bsearch(&rec->id, rc->aborted, rc->aborted_count, sizeof(uint64_t), u64_cmp) != NULL)
		return 0;
	struct delivery_apply a = {
		.folder = rec->folder, .fallback = (rec->flags & DELIVERY_FALLBACK_INBOX) != 0,
		.id = rec->id, .data = rec->data, .size = rec->size,
		.flags = rec->flags & ~DELIVERY_FALLBACK_INBOX, .keywords = rec->keywords,
		.date = rec->internal_date, .tz = rec->internal_tz,
	};
	if (rec->type == JOURNAL_RCPT) {
		const struct replay_message *m =
			rc->message_count > 0 ? bsearch(&rec->message_id, rc->messages,
							rc->message_count, sizeof(*m), message_cmp)
					      : NULL;
		if (m == NULL) {
			/* Its message record is torn or damaged: it was never
			 * acknowledged (the reply waits for the whole group). */
			log_error("journal replay: user=%s delivery=%llu: message %llu missing, skipped",
				  rec->user, (unsigned long long)rec->id,
				  (unsigned long long)rec->message_id);
			rc->skipped++;
			return 0;
		}
		a.prefix = rec->data;
		a.prefix_size = rec->size;
		a.data = m->data;
		a.size = m->size;
	}
	enum tern_error err = TERN_ERR_NONE;
	struct store *st = store_cache_get(rc->stores, rec->user, atomic_load(&rc->d->gen), true,
				      &err);
	if (st == NULL) {
		log_error("journal replay: user=%s delivery=%llu: open store: %s", rec->user,
			  (unsigned long long)rec->id, tern_error_str(err));
		return -1;
	}
	uint32_t uid;
	if (delivery_apply_one(st, &a, &uid, NULL, &err) < 0) {
		log_error("journal replay: user=%s delivery=%llu folder=%s: %s%s", rec->user,
			  (unsigned long long)rec->id, rec->folder, tern_error_str(err),
			  delivery_error_is_item_own(err) ? ", skipped" : "");
		/* One record the store can never take must not keep the node
		 * from starting; a failure that may pass (I/O) must. */
		if (!delivery_error_is_item_own(err))
			return -1;
		rc->skipped++;
		return 0;
	}
	rc->applied++;
	return 0;
}

static int replay_segments(struct replay_ctx *rc, const uint64_t *gens, size_t n, char **err_r)
{
	struct delivery *d = rc->d;
	for (size_t i = 0; i < n; i++) {
		char *path = delivery_segment_path(d, gens[i]);
		uint64_t max_id = 0;
		rc->message_count = 0;
		int r = path != NULL ? journal_replay(path, replay_record, rc, &max_id, err_r) : -1;
		free(path);
		if (r < 0)
			return -1;
		if (max_id >= d->next_id)
			d->next_id = max_id + 1;
	}
	return 0;
}

int delivery_replay(struct delivery *d, char **err_r)
{
	uint64_t *gens = NULL;
	size_t n = 0;
	if (list_segments(d->data_dir, &gens, &n, err_r) < 0)
		return -1;
	atomic_store(&d->gen, n > 0 ? gens[n - 1] + 1 : 1);
	d->oldest_gen = n > 0 ? gens[0] : atomic_load(&d->gen);
	struct replay_ctx rc = {.d = d, .collecting_aborts = true};
	rc.stores = store_cache_new(d->data_dir, TERN_WORKER_STORE_HANDLES);
	int ret = rc.stores != NULL ? replay_segments(&rc, gens, n, err_r) : -1;
	if (ret == 0) {
		if (rc.aborted_count > 0)
			qsort(rc.aborted, rc.aborted_count, sizeof(uint64_t), u64_cmp);
		rc.collecting_aborts = false;
		ret = replay_segments(&rc, gens, n, err_r);
	}
	free(rc.aborted);
	free(rc.messages);
	free(gens);
	if (ret == 0) {
		if (rc.applied > 0)
			log_info("journal replay: %zu deliveries checked and stored", rc.applied);
		enum tern_error err;
		const char *failed = "?";
		/* A store that cannot be checkpointed keeps the segments on disk: they
		 * replay again next time, and the node still starts. */
		if (store_cache_checkpoint(rc.stores, &failed, &err) < 0)
			log_error("journal replay: checkpoint of user=%s failed, journal kept: %s",
				  failed, tern_error_str(err));
		else
			delivery_delete_segments_before(d, atomic_load(&d->gen));
	}
	store_cache_free(&rc.stores);
	return ret;
}
