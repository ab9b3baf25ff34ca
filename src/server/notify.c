/* Two tables, so no lock is ever held for longer than a counter update:
 * - shared (sharded, each shard under its own mutex): user -> how many
 *   watchers each loop has, and whether a task is already posted to it;
 * - per loop thread (thread-local, no lock): user -> that loop's watchers.
 * A change looks the user up in one shard, posts one task per loop that has
 * watchers (at most one outstanding per loop and user) and returns. */
#include "server/notify.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/lock.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/delivery.h"
#include "server/loop.h"
#include "server/server.h"

#define NOTIFY_SHARDS 64
#define NOTIFY_BUCKETS 256       /* per shard */
#define LOCAL_BUCKETS 256        /* per loop thread */

struct shared_entry {
	char *user;
	uint64_t hash;
	struct loop *loops;          /* the server's loop array */
	unsigned loop_count;
	unsigned total;
	unsigned *counts;            /* watchers per loop index */
	bool *posted;                /* a task for this user is queued on that loop */
	struct shared_entry *next;
};

struct shard {
	struct tern_mutex mu;
	struct shared_entry *buckets[NOTIFY_BUCKETS];
};

static struct shard shards[NOTIFY_SHARDS];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

struct local_entry {
	char *user;
	struct notify_watcher *head;
	struct local_entry *next;
};

struct local_table {
	struct local_entry *buckets[LOCAL_BUCKETS];
	size_t watchers;
};

static _Thread_local struct local_table *local;

struct notify_task {
	unsigned loop_index;
	char user[];
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;         /* FNV-1a */
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static struct shard *shard_of(uint64_t h)
{
	return &shards[h % NOTIFY_SHARDS];
}

static struct shared_entry **bucket_of(struct shard *sh, uint64_t h)
{
	return &sh->buckets[(h / NOTIFY_SHARDS) % NOTIFY_BUCKETS];
}

static void init_shards(void)
{
	for (size_t i = 0; i < NOTIFY_SHARDS; i++)
		tern_mutex_init(&shards[i].mu, "notify shard");
	delivery_user_changed_hook = notify_user_changed;
}

__attribute__((constructor)) void notify_init(void)
{
	pthread_once(&init_once, init_shards);
}

static struct shared_entry *shared_find_locked(struct shard *sh, const char *user, uint64_t h)
{
	tern_mutex_assert_held(&sh->mu);
	for (struct shared_entry *e = *bucket_of(sh, h); e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->user, user) == 0)
			return e;
	return NULL;
}

static void shared_entry_free(struct shared_entry **_e)
{
	struct shared_entry *e = *_e;
	*_e = NULL;
	if (e == NULL)
		return;
	free(e->user);
	free(e->counts);
	free(e->posted);
	free(e);
}

static struct shared_entry *shared_entry_new(const char *user, uint64_t h, struct server *srv)
{
	struct shared_entry *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->user = strdup(user);
	e->hash = h;
	e->loops = srv->loops;
	e->loop_count = srv->loop_count;
	e->counts = calloc(srv->loop_count, sizeof(*e->counts));
	e->posted = calloc(srv->loop_count, sizeof(*e->posted));
	if (e->user == NULL || e->counts == NULL || e->posted == NULL)
		shared_entry_free(&e);
	return e;
}

/* Counts one watcher more (delta 1) or less (-1) for user on loop. */
static int shared_adjust(const char *user, struct loop *loop, int delta)
{
	uint64_t h = name_hash(user);
	struct shard *sh = shard_of(h);
	struct shared_entry *fresh = NULL;
	if (delta > 0 && (fresh = shared_entry_new(user, h, loop->server)) == NULL)
		return -1;
	TERN_LOCK_GUARD(&sh->mu);
	struct shared_entry *e = shared_find_locked(sh, user, h);
	if (e == NULL) {
		if (delta < 0)
			return 0;
		e = fresh;
		fresh = NULL;
		e->next = *bucket_of(sh, h);
		*bucket_of(sh, h) = e;
	}
	shared_entry_free(&fresh);
	if (loop->index >= e->loop_count)
		return -1;
	if (delta > 0) {
		e->counts[loop->index]++;
		e->total++;
		return 0;
	}
	if (e->counts[loop->index] > 0) {
		e->counts[loop->index]--;
		e->total--;
	}
	if (e->total == 0) {
		for (struct shared_entry **p = bucket_of(sh, h); *p != NULL; p = &(*p)->next) {
			if (*p == e) {
				*p = e->next;
				break;
			}
		}
		shared_entry_free(&e);
	}
	return 0;
}

static struct local_entry **local_bucket(const char *user)
{
	return &local->buckets[name_hash(user) % LOCAL_BUCKETS];
}

static struct local_entry *local_find(const char *user)
{
	if (local == NULL)
		return NULL;
	for (struct local_entry *e = *local_bucket(user); e != NULL; e = e->next)
		if (strcmp(e->user, user) == 0)
			return e;
	return NULL;
}

int notify_watch(struct notify_watcher *w, struct conn *c, const char *user, notify_fn *fn,
		 void *ctx)
{
	if (w->active)
		return 0;
	notify_init();
	if (local == NULL && (local = calloc(1, sizeof(*local))) == NULL)
		return -1;
	struct local_entry *le = local_find(user);
	bool fresh = le == NULL;
	char *copy = strdup(user);
	if (fresh && (le = calloc(1, sizeof(*le))) != NULL && (le->user = strdup(user)) == NULL) {
		free(le);
		le = NULL;
	}
	if (copy == NULL || le == NULL || shared_adjust(user, c->loop, 1) < 0) {
		free(copy);
		if (fresh && le != NULL) {
			free(le->user);
			free(le);
		}
		return -1;
	}
	if (fresh) {
		le->next = *local_bucket(user);
		*local_bucket(user) = le;
	}
	w->user = copy;
	w->conn = c;
	w->fn = fn;
	w->ctx = ctx;
	w->prev = NULL;
	w->next = le->head;
	if (le->head != NULL)
		le->head->prev = w;
	le->head = w;
	w->active = true;
	local->watchers++;
	return 0;
}

static void local_entry_remove(struct local_entry *le)
{
	for (struct local_entry **p = local_bucket(le->user); *p != NULL; p = &(*p)->next) {
		if (*p == le) {
			*p = le->next;
			break;
		}
	}
	free(le->user);
	free(le);
}

void notify_unwatch(struct notify_watcher *w)
{
	if (!w->active)
		return;
	struct local_entry *le = local_find(w->user);
	if (le != NULL) {
		if (w->prev != NULL)
			w->prev->next = w->next;
		else
			le->head = w->next;
		if (w->next != NULL)
			w->next->prev = w->prev;
		if (le->head == NULL)
			local_entry_remove(le);
		if (--local->watchers == 0) {
			free(local);
			local = NULL;
		}
	}
	(void)shared_adjust(w->user, w->conn->loop, -1);
	free(w->user);
	w->user = NULL;
	w->prev = w->next = NULL;
	w->active = false;
}

/* Runs on the loop (or, after the loop stopped, wherever loop_deinit runs
 * leftover tasks: then this thread has no watchers and it only frees). */
static void notify_task_run(void *arg)
{
	struct notify_task *t = arg;
	uint64_t h = name_hash(t->user);
	struct shard *sh = shard_of(h);
	{
		/* Cleared before the walk: a change during the walk posts again. */
		TERN_LOCK_GUARD(&sh->mu);
		struct shared_entry *e = shared_find_locked(sh, t->user, h);
		if (e != NULL && t->loop_index < e->loop_count)
			e->posted[t->loop_index] = false;
	}
	struct local_entry *le = local_find(t->user);
	for (struct notify_watcher *w = le != NULL ? le->head : NULL, *next; w != NULL; w = next) {
		/* fn may unwatch w (and free le with it) */
		next = w->next;
		w->fn(w);
	}
	free(t);
}

void notify_user_changed(const char *user)
{
	if (user == NULL)
		return;
	notify_init();
	uint64_t h = name_hash(user);
	struct shard *sh = shard_of(h);
	size_t len = strlen(user) + 1;
	struct loop **targets = NULL;
	size_t n = 0;
	{
		TERN_LOCK_GUARD(&sh->mu);
		struct shared_entry *e = shared_find_locked(sh, user, h);
		if (e == NULL)
			return;
		if ((targets = malloc(e->loop_count * sizeof(*targets))) == NULL) {
			log_error("notify: out of memory: the sessions of user=%s see a change at "
				  "their next command or the next change", user);
			return;
		}
		for (unsigned i = 0; i < e->loop_count; i++) {
			if (e->counts[i] == 0 || e->posted[i])
				continue;
			e->posted[i] = true;
			targets[n++] = &e->loops[i];
		}
	}
	/* posted outside the shard lock: loop_post takes the loop's inbox lock */
	for (size_t i = 0; i < n; i++) {
		struct notify_task *t = malloc(sizeof(*t) + len);
		if (t == NULL) {
			/* a wake-up lost, not the session: unmark, so that the
			 * next change posts again */
			log_error("notify: out of memory: the sessions of user=%s on loop %u see a "
				  "change at their next command or the next change", user,
				  targets[i]->index);
			TERN_LOCK_GUARD(&sh->mu);
			struct shared_entry *e = shared_find_locked(sh, user, h);
			if (e != NULL && targets[i]->index < e->loop_count)
				e->posted[targets[i]->index] = false;
			continue;
		}
		memcpy(t->user, user, len);
		t->loop_index = targets[i]->index;
		loop_post(targets[i], notify_task_run, t);
	}
	free(targets);
}
