#include "server/freeze.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/fault.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "server/loop.h"

_Atomic unsigned freeze_frozen_count;
static _Atomic unsigned leaked_count;   /* fault entries counted above */

/* ---- the table ---- */

struct freeze_entry {
	struct freeze_entry *next;    /* bucket chain, under the shard lock */
	uint64_t hash;
	unsigned refs;                /* under the shard lock */
	/* The entry lock: guards parked and the changes of frozen/expires.
	 * Loop threads only try it (entry_trylock). */
	struct tern_mutex mu;
	atomic_bool frozen;           /* written under mu; read by the reaper's sweep */
	_Atomic uint64_t expires_ms;
	struct freeze_park *parked;   /* under mu */
	struct freeze_entry *reap_next; /* the reaper's own list */
	char *lock_name;              /* "freeze: alice", for the watchdog */
	char user[];
};

struct freeze_shard {
	struct tern_mutex mu;         /* held for one probe, insertion or sweep */
	unsigned entries;
	struct freeze_entry *buckets[TERN_FREEZE_BUCKETS];
};

static struct freeze_shard shards[TERN_FREEZE_SHARDS];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

/* The reaper: ends leases at their expiry and frees unused entries. */
static struct tern_mutex reaper_mu;   /* guards the reaper_* below */
static pthread_cond_t reaper_cond;
static bool reaper_running, reaper_stop, reaper_kick;
static pthread_t reaper_thread;

/* Parked requests, per loop thread, for the watchdog. */
struct park_registry {
	struct tern_mutex mu;         /* guards head and the parks' reg links */
	struct freeze_park *head;
	struct park_registry *next;   /* under regs_mu; never removed */
};
static struct tern_mutex regs_mu;
static struct park_registry *regs_head;
static _Thread_local struct park_registry *reg_self;

static void table_init(void)
{
	for (size_t i = 0; i < TERN_FREEZE_SHARDS; i++)
		tern_mutex_init(&shards[i].mu, "freeze shard");
	tern_mutex_init(&reaper_mu, "freeze reaper");
	tern_cond_init(&reaper_cond);
	tern_mutex_init(&regs_mu, "freeze park registries");
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static struct freeze_shard *shard_of(uint64_t h)
{
	return &shards[h % TERN_FREEZE_SHARDS];
}

static struct freeze_entry **bucket_of(struct freeze_shard *sh, uint64_t h)
{
	return &sh->buckets[(h / TERN_FREEZE_SHARDS) % TERN_FREEZE_BUCKETS];
}

/* The entry lock, tried once: the guard's variable is NULL when another
 * holder has it. Released by the same cleanup as TERN_LOCK_GUARD, so no
 * return path leaves it held. */
static struct tern_mutex *entry_trylock(struct tern_mutex *m, const char *file, int line)
{
	if (pthread_mutex_trylock(&m->mu) != 0)
		return NULL;
	atomic_store(&m->owner, pthread_self());
	atomic_store(&m->held_file, file);
	atomic_store(&m->held_line, line);
	atomic_store(&m->held_since_ms, tern_now_ms());
	return m;
}

#define FREEZE_TRYLOCK_GUARD(var, m)                                                     \
	__attribute__((cleanup(tern_mutex_unlockp))) struct tern_mutex *var =             \
		entry_trylock((m), __FILE__, __LINE__)

static struct freeze_entry *entry_new(const char *user, uint64_t h)
{
	size_t len = strlen(user);
	struct freeze_entry *e = calloc(1, sizeof(*e) + len + 1 + len + sizeof("freeze: "));
	if (e == NULL)
		return NULL;
	memcpy(e->user, user, len + 1);
	e->lock_name = e->user + len + 1;
	snprintf(e->lock_name, len + sizeof("freeze: "), "freeze: %s", user);
	e->hash = h;
	tern_mutex_init(&e->mu, e->lock_name);
	return e;
}

static void entry_free(struct freeze_entry *e)
{
	tern_mutex_destroy(&e->mu);
	free(e);
}

/* user's entry with a reference taken, or NULL (absent and !create, or no
 * memory). */
static struct freeze_entry *entry_get(const char *user, bool create)
{
	uint64_t h = name_hash(user);
	struct freeze_shard *sh = shard_of(h);
	struct freeze_entry *fresh = NULL;
	for (;;) {
		struct freeze_entry *e;
		{
			TERN_LOCK_GUARD(&sh->mu);
			struct freeze_entry **b = bucket_of(sh, h);
			for (e = *b; e != NULL; e = e->next) {
				if (e->hash == h && strcmp(e->user, user) == 0)
					break;
			}
			if (e == NULL && fresh != NULL) {
				e = fresh;
				fresh = NULL;
				e->next = *b;
				*b = e;
				sh->entries++;
			}
			if (e != NULL)
				e->refs++;
		}
		if (fresh != NULL)
			entry_free(fresh);
		if (e != NULL || !create)
			return e;
		/* made outside the shard lock: registering the mutex takes the
		 * watchdog's registry lock */
		if ((fresh = entry_new(user, h)) == NULL)
			return NULL;
	}
}

/* Drops a reference; the reaper frees unused entries. */
static void entry_put(struct freeze_entry *e)
{
	struct freeze_shard *sh = shard_of(e->hash);
	TERN_LOCK_GUARD(&sh->mu);
	e->refs--;
}

/* ---- parks ---- */

enum park_wait {
	WAIT_FROZEN,   /* in its entry's list until the freeze ends */
	WAIT_LOCK,     /* its entry lock was taken: retries from the timer */
};

static const char *const wait_why[] = {
	[WAIT_FROZEN] = "frozen by a move",
	[WAIT_LOCK] = "its freeze entry lock is held by someone else",
};

struct freeze_park {
	/* One for the loop side (until answered or cancelled), one while in
	 * the entry's list or posted by a waker. Taken and dropped on the
	 * loop thread only, but atomic for clarity. */
	_Atomic unsigned refs;
	struct loop *loop;
	struct freeze_entry *entry;   /* a reference */
	struct freeze_park *next;     /* in entry->parked, under its lock */
	bool in_list;                 /* under the entry lock */
	bool answered;                /* loop thread only */
	struct freeze_park **handle_r;
	freeze_park_fn *cb;
	void *ctx;
	struct event *timer;
	uint64_t deadline_ms;
	_Atomic uint64_t since_ms;
	_Atomic int wait;
	/* The outcome, written by the waker before it posts park_woken. */
	enum freeze_result result;
	char node[TERN_FREEZE_NODE_MAX + 1];
	char addr[TERN_FREEZE_ADDR_MAX + 1];
	/* the watchdog's registry, under reg->mu */
	struct park_registry *reg;
	struct freeze_park *reg_prev, *reg_next;
	char what[32];
	char user[];
};

static void park_put(struct freeze_park *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	event_free(p->timer);
	entry_put(p->entry);
	free(p);
}

static struct park_registry *reg_mine(void)
{
	if (reg_self == NULL) {
		struct park_registry *r = calloc(1, sizeof(*r));
		if (r == NULL)
			return NULL;
		tern_mutex_init(&r->mu, "freeze parked");
		TERN_LOCK_GUARD(&regs_mu);
		r->next = regs_head;
		regs_head = r;
		reg_self = r;
	}
	return reg_self;
}

static void reg_add(struct freeze_park *p)
{
	struct park_registry *r = reg_mine();
	if (r == NULL)
		return;   /* unwatched, still served */
	TERN_LOCK_GUARD(&r->mu);
	p->reg = r;
	p->reg_prev = NULL;
	p->reg_next = r->head;
	if (r->head != NULL)
		r->head->reg_prev = p;
	r->head = p;
}

static void reg_remove(struct freeze_park *p)
{
	struct park_registry *r = p->reg;
	if (r == NULL)
		return;
	TERN_LOCK_GUARD(&r->mu);
	if (p->reg_prev != NULL)
		p->reg_prev->reg_next = p->reg_next;
	else
		r->head = p->reg_next;
	if (p->reg_next != NULL)
		p->reg_next->reg_prev = p->reg_prev;
	p->reg = NULL;
}

static void park_timer_cb(evutil_socket_t fd, short what, void *arg);

static struct freeze_park *park_new(struct loop *loop, const char *user, const char *what,
				    uint64_t deadline_ms)
{
	size_t len = strlen(user);
	struct freeze_park *p = calloc(1, sizeof(*p) + len + 1);
	if (p == NULL)
		return NULL;
	p->timer = evtimer_new(loop->base, park_timer_cb, p);
	if (p->timer == NULL) {
		free(p);
		return NULL;
	}
	memcpy(p->user, user, len + 1);
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->loop = loop;
	p->deadline_ms = deadline_ms;
	atomic_store(&p->since_ms, tern_now_ms());
	return p;
}

static void park_arm(struct freeze_park *p, uint64_t now, uint64_t at)
{
	uint64_t ms = at > now ? at - now : 0;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(p->timer, &tv);
}

/* Ends e's freeze (its lock held): the parked list, detached. */
static struct freeze_park *entry_end_locked(struct freeze_entry *e)
{
	if (atomic_load(&e->frozen)) {
		atomic_store(&e->frozen, false);
		atomic_fetch_sub(&freeze_frozen_count, 1);
	}
	struct freeze_park *list = e->parked;
	e->parked = NULL;
	for (struct freeze_park *p = list; p != NULL; p = p->next)
		p->in_list = false;
	return list;
}

/* Is e frozen now (its lock held)? A lease found expired ends here: its
 * parked list goes to *woken, to wake once the lock is released. */
static bool entry_frozen_locked(struct freeze_entry *e, uint64_t now, struct freeze_park **woken,
				bool *expired_r)
{
	if (!atomic_load(&e->frozen))
		return false;
	if (atomic_load(&e->expires_ms) > now)
		return true;
	*woken = entry_end_locked(e);
	*expired_r = true;
	return false;
}

static void park_woken(void *arg);

/* Wakes a detached list with an outcome (no lock held). */
static void wake_list(struct freeze_park *list, enum freeze_result r, const char *node,
		      const char *addr)
{
	while (list != NULL) {
		struct freeze_park *p = list;
		list = p->next;
		p->next = NULL;
		p->result = r;
		snprintf(p->node, sizeof(p->node), "%s", node != NULL ? node : "");
		snprintf(p->addr, sizeof(p->addr), "%s", addr != NULL ? addr : "");
		loop_post(p->loop, park_woken, p);
	}
}

static void log_expired(const struct freeze_entry *e)
{
	log_info("freeze: user=%s: lease expired, unfrozen", e->user);
}

/* Answers a park on its loop; drops the loop side's reference. */
static void park_answer(struct freeze_park *p, enum freeze_result r, const char *why)
{
	p->answered = true;
	event_del(p->timer);
	reg_remove(p);
	if (p->handle_r != NULL)
		*p->handle_r = NULL;
	struct freeze_outcome o = {
		.result = r,
		.node = p->node,
		.addr = p->addr,
		.why = why,
	};
	p->cb(p->ctx, &o);
	park_put(p);
}

static void park_woken(void *arg)
{
	struct freeze_park *p = arg;
	if (!p->answered)
		park_answer(p, p->result, NULL);
	park_put(p);   /* the list's reference */
}

/* Takes p out of its entry's list if it is still there and the lock is
 * free; true if the list's reference is now the caller's to drop. */
static bool park_unlink(struct freeze_park *p)
{
	struct freeze_entry *e = p->entry;
	FREEZE_TRYLOCK_GUARD(g, &e->mu);
	if (g == NULL || !p->in_list)
		return false;
	for (struct freeze_park **q = &e->parked; *q != NULL; q = &(*q)->next) {
		if (*q == p) {
			*q = p->next;
			break;
		}
	}
	p->in_list = false;
	p->next = NULL;
	return true;
}

enum check {
	CHECK_FREE,     /* not frozen */
	CHECK_PARKED,   /* frozen: p is in the list */
	CHECK_BUSY,     /* the entry lock is taken */
};

/* The check under the entry lock, tried once; a frozen user's park joins
 * its list there, so a release cannot slip between the check and it. */
static enum check entry_check(struct freeze_entry *e, struct freeze_park *p, uint64_t now)
{
	struct freeze_park *woken = NULL;
	bool expired = false;
	enum check c;
	{
		FREEZE_TRYLOCK_GUARD(g, &e->mu);
		if (g == NULL) {
			c = CHECK_BUSY;
		} else if (!entry_frozen_locked(e, now, &woken, &expired)) {
			c = CHECK_FREE;
		} else {
			p->next = e->parked;
			e->parked = p;
			p->in_list = true;
			atomic_fetch_add(&p->refs, 1);
			atomic_store(&p->wait, WAIT_FROZEN);
			c = CHECK_PARKED;
		}
	}
	if (expired)
		log_expired(e);
	wake_list(woken, FREEZE_SERVE_HERE, NULL, NULL);
	return c;
}

static void park_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct freeze_park *p = arg;
	(void)fd;
	(void)what;
	if (p->answered)
		return;
	uint64_t now = tern_now_ms();
	if (atomic_load(&p->wait) == WAIT_LOCK) {
		switch (entry_check(p->entry, p, now)) {
		case CHECK_FREE:
			park_answer(p, FREEZE_SERVE_HERE, NULL);
			return;
		case CHECK_PARKED:
			if (now < p->deadline_ms) {
				park_arm(p, now, p->deadline_ms);
				return;
			}
			break;   /* and its deadline has passed: answered below */
		case CHECK_BUSY:
			if (now < p->deadline_ms) {
				uint64_t at = now + TERN_FREEZE_RETRY_MS;
				park_arm(p, now, at < p->deadline_ms ? at : p->deadline_ms);
				return;
			}
			park_answer(p, FREEZE_TIMEOUT, wait_why[WAIT_LOCK]);
			return;
		}
	}
	if (now < p->deadline_ms) {
		park_arm(p, now, p->deadline_ms);
		return;
	}
	/* The deadline: a lease that ended by now serves the request here
	 * rather than failing it (its waker's post then finds it answered). */
	struct freeze_entry *e = p->entry;
	struct freeze_park *woken = NULL;
	bool expired = false, ended = false;
	{
		FREEZE_TRYLOCK_GUARD(g, &e->mu);
		if (g != NULL) {
			(void)entry_frozen_locked(e, now, &woken, &expired);
			ended = expired;
		}
	}
	if (expired)
		log_expired(e);
	wake_list(woken, FREEZE_SERVE_HERE, NULL, NULL);
	if (ended) {
		park_answer(p, FREEZE_SERVE_HERE, NULL);
		return;
	}
	if (park_unlink(p))
		park_put(p);
	park_answer(p, FREEZE_TIMEOUT, wait_why[WAIT_FROZEN]);
}

#ifdef TERN_TEST_FAULTS
/* TERN_FAULT_LOCK_LEAK=USER: the bug on purpose, a lock taken without a
 * guard and never released, on the move-check path of a loop thread. */
static void leak_lock(const char *user)
{
	static atomic_bool leaked;
	if (atomic_exchange(&leaked, true))
		return;
	pthread_once(&table_once, table_init);
	struct freeze_entry *e = entry_get(user, true);   /* a reference kept forever */
	if (e == NULL)
		return;
	atomic_fetch_add(&leaked_count, 1);
	atomic_fetch_add(&freeze_frozen_count, 1);   /* its checks take the slow path */
	log_warn("fault injection: LOCK_LEAK: %s's freeze entry lock is taken and never released",
		 user);
	(void)tern_mutex_lock(&e->mu, __FILE__, __LINE__);
}
#endif

int freeze_park(struct loop *loop, const char *user, const char *what, uint64_t deadline_ms,
		freeze_park_fn *cb, void *ctx, struct freeze_park **handle_r)
{
	*handle_r = NULL;
#ifdef TERN_TEST_FAULTS
	const char *leak = fault_lock_leak_user();
	if (leak != NULL && strcmp(leak, user) == 0)
		leak_lock(user);
#endif
	if (freeze_none())
		return 0;
	struct freeze_entry *e = entry_get(user, false);
	if (e == NULL)
		return 0;
	/* Made before the check (a frozen user is the rare case only when
	 * some user is frozen): no allocation under the entry lock. */
	struct freeze_park *p = park_new(loop, user, what, deadline_ms);
	if (p == NULL) {
		entry_put(e);
		return -1;
	}
	p->entry = e;
	p->cb = cb;
	p->ctx = ctx;
	atomic_store(&p->refs, 1);
	uint64_t now = tern_now_ms();
	switch (entry_check(e, p, now)) {
	case CHECK_FREE:
		park_put(p);
		return 0;
	case CHECK_PARKED:
		park_arm(p, now, deadline_ms);
		break;
	case CHECK_BUSY: {
		atomic_store(&p->wait, WAIT_LOCK);
		uint64_t at = now + TERN_FREEZE_RETRY_MS;
		park_arm(p, now, at < deadline_ms ? at : deadline_ms);
		break;
	}
	}
	p->handle_r = handle_r;
	*handle_r = p;
	reg_add(p);
	return 1;
}

void freeze_park_cancel(struct freeze_park **handle)
{
	struct freeze_park *p = *handle;
	if (p == NULL)
		return;
	*handle = NULL;
	p->handle_r = NULL;
	p->answered = true;
	event_del(p->timer);
	reg_remove(p);
	if (park_unlink(p))
		park_put(p);
	park_put(p);
}

/* ---- freeze, release, status ---- */

static void reaper_start_and_kick(void);

int freeze_user(const char *user, uint32_t lease_ms, const char **why_r)
{
	pthread_once(&table_once, table_init);
	if (lease_ms == 0 || lease_ms > TERN_FREEZE_LEASE_MAX_MS) {
		*why_r = "lease out of range";
		return -1;
	}
	struct freeze_entry *e = entry_get(user, true);
	if (e == NULL) {
		*why_r = "out of memory";
		return -1;
	}
	int rc = 0;
	{
		FREEZE_TRYLOCK_GUARD(g, &e->mu);
		if (g == NULL) {
			*why_r = "the user's freeze entry is busy";
			rc = -1;
		} else {
			atomic_store(&e->expires_ms, tern_now_ms() + lease_ms);
			if (!atomic_load(&e->frozen)) {
				/* the counter first: a check that sees the entry
				 * frozen has taken the slow path */
				atomic_fetch_add(&freeze_frozen_count, 1);
				atomic_store(&e->frozen, true);
			}
		}
	}
	entry_put(e);
	if (rc == 0) {
		log_info("freeze: user=%s frozen for %u ms", user, lease_ms);
		reaper_start_and_kick();
	}
	return rc;
}

int freeze_release(const char *user, const char *moved_node, const char *moved_addr,
		   const char **why_r)
{
	pthread_once(&table_once, table_init);
	if (moved_node != NULL &&
	    (strlen(moved_node) > TERN_FREEZE_NODE_MAX || moved_addr == NULL ||
	     strlen(moved_addr) > TERN_FREEZE_ADDR_MAX)) {
		*why_r = "node name or address too long";
		return -1;
	}
	struct freeze_entry *e = entry_get(user, false);
	if (e == NULL)
		return 1;
	int rc;
	struct freeze_park *woken = NULL;
	{
		FREEZE_TRYLOCK_GUARD(g, &e->mu);
		if (g == NULL) {
			*why_r = "the user's freeze entry is busy";
			rc = -1;
		} else if (!atomic_load(&e->frozen)) {
			rc = 1;
		} else {
			/* an expired lease not yet reaped is released here too */
			woken = entry_end_locked(e);
			rc = 0;
		}
	}
	entry_put(e);
	if (rc == 0) {
		if (moved_node != NULL)
			log_info("freeze: user=%s released: moved to %s at %s", user, moved_node,
				 moved_addr);
		else
			log_info("freeze: user=%s released: stays here", user);
		wake_list(woken, moved_node != NULL ? FREEZE_MOVED : FREEZE_SERVE_HERE, moved_node,
			  moved_addr);
	}
	return rc;
}

int freeze_status(const char *user, uint64_t *ms_left_r, const char **why_r)
{
	pthread_once(&table_once, table_init);
	*ms_left_r = 0;
	struct freeze_entry *e = entry_get(user, false);
	if (e == NULL)
		return 0;
	int rc = 0;
	{
		FREEZE_TRYLOCK_GUARD(g, &e->mu);
		uint64_t now = tern_now_ms();
		if (g == NULL) {
			*why_r = "the user's freeze entry is busy";
			rc = -1;
		} else if (atomic_load(&e->frozen) && atomic_load(&e->expires_ms) > now) {
			*ms_left_r = atomic_load(&e->expires_ms) - now;
			rc = 1;
		}
	}
	entry_put(e);
	return rc;
}

unsigned freeze_count(void)
{
	return atomic_load(&freeze_frozen_count) - atomic_load(&leaked_count);
}

/* ---- the reaper ---- */

/* One sweep: ends the leases expired by now, frees unused entries. The
 * next expiry (0 = none). */
static uint64_t reap(uint64_t now)
{
	uint64_t next = 0;
	for (size_t i = 0; i < TERN_FREEZE_SHARDS; i++) {
		struct freeze_shard *sh = &shards[i];
		struct freeze_entry *expired = NULL, *unused = NULL;
		{
			TERN_LOCK_GUARD(&sh->mu);
			if (sh->entries == 0)
				continue;
			for (size_t b = 0; b < TERN_FREEZE_BUCKETS; b++) {
				for (struct freeze_entry **q = &sh->buckets[b]; *q != NULL;) {
					struct freeze_entry *e = *q;
					bool frozen = atomic_load(&e->frozen);
					uint64_t exp = atomic_load(&e->expires_ms);
					if (!frozen && e->refs == 0) {
						*q = e->next;
						sh->entries--;
						e->reap_next = unused;
						unused = e;
						continue;
					}
					if (frozen && exp <= now) {
						e->refs++;
						e->reap_next = expired;
						expired = e;
					} else if (frozen && (next == 0 || exp < next)) {
						next = exp;
					}
					q = &e->next;
				}
			}
		}
		while (unused != NULL) {
			struct freeze_entry *e = unused;
			unused = e->reap_next;
			entry_free(e);
		}
		while (expired != NULL) {
			struct freeze_entry *e = expired;
			expired = e->reap_next;
			struct freeze_park *woken = NULL;
			bool ended = false, busy = false;
			{
				FREEZE_TRYLOCK_GUARD(g, &e->mu);
				if (g == NULL)
					busy = true;
				else
					(void)entry_frozen_locked(e, tern_now_ms(), &woken, &ended);
			}
			if (ended)
				log_expired(e);
			wake_list(woken, FREEZE_SERVE_HERE, NULL, NULL);
			if (busy) {
				/* try again soon: a busy lock is held for a probe */
				uint64_t soon = now + TERN_FREEZE_RETRY_MS;
				if (next == 0 || soon < next)
					next = soon;
			}
			entry_put(e);
		}
	}
	return next;
}

static void *reaper_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t next = reap(tern_now_ms());
		TERN_LOCK_GUARD(&reaper_mu);
		uint64_t wake = tern_now_ms() + TERN_FREEZE_REAPER_MAX_MS;
		if (next != 0 && next < wake)
			wake = next;
		while (!reaper_stop && !reaper_kick && tern_now_ms() < wake)
			tern_cond_wait(&reaper_cond, &reaper_mu, wake);
		reaper_kick = false;
		if (reaper_stop)
			break;
	}
	return NULL;
}

static void reaper_start_and_kick(void)
{
	TERN_LOCK_GUARD(&reaper_mu);
	if (!reaper_running) {
		reaper_stop = false;
		if (pthread_create(&reaper_thread, NULL, reaper_main, NULL) != 0) {
			/* leases still end: every check finds them expired */
			log_warn("freeze: cannot start the lease reaper thread");
			return;
		}
		reaper_running = true;
	}
	reaper_kick = true;
	pthread_cond_signal(&reaper_cond);
}

void freeze_stop(void)
{
	pthread_once(&table_once, table_init);
	{
		TERN_LOCK_GUARD(&reaper_mu);
		if (!reaper_running)
			return;
		reaper_stop = true;
		pthread_cond_signal(&reaper_cond);
	}
	pthread_join(reaper_thread, NULL);
	TERN_LOCK_GUARD(&reaper_mu);
	reaper_running = false;
}

/* ---- the watchdog's view ---- */

struct parked_copy {
	char what[32];
	char user[TERN_USERNAME_MAX + 1];
	int wait;
	uint64_t age_ms;
};

enum { PARKED_REPORT_MAX = 64 };

void freeze_foreach_parked(uint64_t older_than_ms, freeze_parked_fn *fn, void *ctx)
{
	pthread_once(&table_once, table_init);
	struct parked_copy copies[PARKED_REPORT_MAX];
	size_t n = 0;
	uint64_t now = tern_now_ms();
	{
		TERN_LOCK_GUARD(&regs_mu);
		for (struct park_registry *r = regs_head; r != NULL && n < PARKED_REPORT_MAX;
		     r = r->next) {
			TERN_LOCK_GUARD(&r->mu);
			for (struct freeze_park *p = r->head; p != NULL && n < PARKED_REPORT_MAX;
			     p = p->reg_next) {
				uint64_t since = atomic_load(&p->since_ms);
				if (since > now || now - since < older_than_ms)
					continue;
				struct parked_copy *c = &copies[n++];
				snprintf(c->what, sizeof(c->what), "%s", p->what);
				snprintf(c->user, sizeof(c->user), "%s", p->user);
				c->wait = atomic_load(&p->wait);
				c->age_ms = now - since;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		fn(copies[i].what, copies[i].user, wait_why[copies[i].wait], copies[i].age_ms, ctx);
}
