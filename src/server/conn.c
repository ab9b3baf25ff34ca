#include "server/conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/lock.h"
#include "core/client-addr.h"
#include "core/log.h"
#include "server/loop.h"
#include "server/server.h"
#include "server/tls.h"

static _Atomic unsigned conns_open;
static _Atomic unsigned class_open[CONN_CLASS_COUNT];

unsigned conn_count_total(void)
{
	return atomic_load(&conns_open);
}

/* ---- pre-login connections per client address ----
 *
 * Every loop thread admits connections, so the table is split into shards,
 * each with its own mutex held for one short scan: no process-wide lock on
 * the accept path. An entry exists only while its address has a connection
 * not yet logged in, so the table never holds more entries than there are
 * connections. */

#define PREAUTH_SHARDS 64u
#define PREAUTH_BUCKETS 64u

struct preauth_entry {
	struct preauth_entry *next;
	uint32_t count;
	char addr[64];   /* client_addr_key: IPv6 by its /64 */
};

struct preauth_shard {
	struct tern_mutex mu;   /* guards buckets */
	struct preauth_entry *buckets[PREAUTH_BUCKETS];
};

static struct preauth_shard preauth_shards[PREAUTH_SHARDS];
static pthread_once_t preauth_once = PTHREAD_ONCE_INIT;

static void preauth_init(void)
{
	for (unsigned i = 0; i < PREAUTH_SHARDS; i++)
		tern_mutex_init(&preauth_shards[i].mu, "pre-login address shard");
}

/* FNV-1a */
static uint64_t addr_hash(const char *addr)
{
	uint64_t h = 14695981039346656037ull;
	for (const unsigned char *p = (const unsigned char *)addr; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	return h;
}

static struct preauth_entry **preauth_slot(const char *addr, struct preauth_shard **shard_r)
{
	pthread_once(&preauth_once, preauth_init);
	uint64_t h = addr_hash(addr);
	*shard_r = &preauth_shards[h % PREAUTH_SHARDS];
	return &(*shard_r)->buckets[(h / PREAUTH_SHARDS) % PREAUTH_BUCKETS];
}

/* Counts one more connection of peer unless its key already has limit. */
static enum conn_admit preauth_take(const char *peer, uint32_t limit)
{
	char addr[64];
	client_addr_key(peer, addr, sizeof(addr));
	struct preauth_shard *sh;
	struct preauth_entry **head = preauth_slot(addr, &sh);
	TERN_LOCK_GUARD(&sh->mu);
	struct preauth_entry *e = *head;
	while (e != NULL && strcmp(e->addr, addr) != 0)
		e = e->next;
	if (e != NULL) {
		if (e->count >= limit)
			return CONN_ADMIT_PREAUTH_FULL;
		e->count++;
		return CONN_ADMIT_OK;
	}
	if (limit == 0)
		return CONN_ADMIT_PREAUTH_FULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return CONN_ADMIT_NO_MEMORY;
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	e->count = 1;
	e->next = *head;
	*head = e;
	return CONN_ADMIT_OK;
}

static void preauth_put(const char *peer)
{
	char addr[64];
	client_addr_key(peer, addr, sizeof(addr));
	struct preauth_shard *sh;
	struct preauth_entry **pp = preauth_slot(addr, &sh);
	struct preauth_entry *gone = NULL;
	{
		TERN_LOCK_GUARD(&sh->mu);
		while (*pp != NULL && strcmp((*pp)->addr, addr) != 0)
			pp = &(*pp)->next;
		if (*pp == NULL) {
			log_error("conn: rip=%s: pre-login count released twice", addr);
			return;
		}
		if (--(*pp)->count == 0) {
			gone = *pp;
			*pp = gone->next;
		}
	}
	free(gone);
}

enum conn_admit conn_admit(const struct conn_proto *proto, const char *peer_addr,
			   uint32_t class_limit, uint32_t preauth_limit)
{
	_Atomic unsigned *open = &class_open[proto->conn_class];
	/* add first, then check: two loop threads cannot both take the last slot */
	if (atomic_fetch_add(open, 1) >= class_limit) {
		atomic_fetch_sub(open, 1);
		return CONN_ADMIT_CLASS_FULL;
	}
	enum conn_admit verdict = CONN_ADMIT_OK;
	if (proto->login_timeout_reply != NULL)
		verdict = preauth_take(peer_addr, preauth_limit);
	if (verdict != CONN_ADMIT_OK)
		atomic_fetch_sub(open, 1);
	return verdict;
}

/* Undoes a conn_admit that no connection came of. */
static void admit_undo(const struct conn_proto *proto, const char *peer_addr)
{
	if (proto->login_timeout_reply != NULL)
		preauth_put(peer_addr);
	atomic_fetch_sub(&class_open[proto->conn_class], 1);
}

/* Gives the connection's budget slots back, once, when it is released: a
 * closed connection whose struct lives on (an async step still holds it)
 * must not keep a slot. */
static void conn_put_slots(struct conn *c)
{
	if (c->preauth_held) {
		c->preauth_held = false;
		preauth_put(c->peer_addr);
	}
	if (c->slot_held) {
		c->slot_held = false;
		atomic_fetch_sub(&class_open[c->slot_class], 1);
	}
}

static void conn_set_idle_timeout(struct conn *c, uint32_t ms);

uint32_t conn_class_limit(const struct tern_config *cfg, enum conn_class cls)
{
	switch (cls) {
	case CONN_CLASS_LMTP:
		return cfg->lmtp_max_connections;
	case CONN_CLASS_CLUSTER:
		return cfg->cluster_max_connections;
	default:
		return cfg->max_connections;
	}
}

const char *conn_class_limit_key(enum conn_class cls)
{
	switch (cls) {
	case CONN_CLASS_LMTP:
		return "lmtp_max_connections";
	case CONN_CLASS_CLUSTER:
		return "cluster_max_connections";
	default:
		return "max_connections";
	}
}

uint32_t conn_class_idle_timeout_ms(const struct tern_config *cfg, enum conn_class cls)
{
	switch (cls) {
	case CONN_CLASS_LMTP:
		return cfg->lmtp_timeout_ms;
	case CONN_CLASS_CLUSTER:
		/* until the handshake is done; the session then sets its own */
		return cfg->cluster_timeout_ms;
	default:
		return cfg->idle_timeout_ms;
	}
}

void conn_switch_proto(struct conn *c, const struct conn_proto *proto, void *state,
		       uint32_t idle_timeout_ms)
{
	c->proto = proto;
	c->state = state;
	conn_set_idle_timeout(c, idle_timeout_ms);
}

static void conn_stop_login_timer(struct conn *c)
{
	if (c->login_timer != NULL) {
		event_free(c->login_timer);
		c->login_timer = NULL;
	}
}

void conn_set_authenticated(struct conn *c)
{
	if (c->authenticated)
		return;
	c->authenticated = true;
	conn_stop_login_timer(c);
	if (c->preauth_held) {
		c->preauth_held = false;
		preauth_put(c->peer_addr);
	}
}

static void conn_login_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (c->closing || c->authenticated)
		return;
	log_info("%s: rip=%s: login timeout (%u ms since connect), closing", c->proto->name,
		 c->peer_addr, c->loop->server->config->login_timeout_ms);
	const char *reply = c->proto->login_timeout_reply;
	(void)conn_write(c, reply, strlen(reply));
	conn_close(c);
}

bool conn_throttle_input(struct conn *c)
{
	if (conn_output_pending(c) <= TERN_CONN_OUTPUT_HIGH)
		return false;
	conn_pause(c);
	conn_set_drain_hook(c, TERN_CONN_OUTPUT_LOW, conn_resume);
	return true;
}

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_later_cb(evutil_socket_t fd, short what, void *arg);
static void conn_set_idle_timeout(struct conn *c, uint32_t ms);

static void conn_setcb(struct conn *c)
{
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
}

void conn_refuse_no_memory(int fd, const struct conn_proto *proto, bool tls,
			   const char *peer_addr)
{
	if (!tls) {
		/* non-blocking and short: one write, or nothing */
		ssize_t ignored = write(fd, proto->no_memory_reply, strlen(proto->no_memory_reply));
		(void)ignored;
	}
	log_error("%s: rip=%s: out of memory, connection refused", proto->name, peer_addr);
	evutil_closesocket(fd);
}

struct conn *conn_new(struct loop *loop, int fd, const struct conn_proto *proto,
		      const char *peer, const char *peer_addr, bool loopback,
		      uint32_t idle_timeout_ms, uint32_t login_timeout_ms, bool tls)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (c != NULL) {
		/* made now, while the client can still be refused: closing must
		 * not need memory (conn_release, conn_hook_schedule) */
		c->later = evtimer_new(loop->base, conn_later_cb, c);
		if (c->later == NULL) {
			free(c);
			c = NULL;
		}
	}
	if (c == NULL) {
		admit_undo(proto, peer_addr);
		conn_refuse_no_memory(fd, proto, tls, peer_addr);
		return NULL;
	}
	c->loop = loop;
	c->proto = proto;
	c->refs = 1;
	c->peer_loopback = loopback;
	c->started_ms = tern_now_ms();
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", peer_addr);
	c->slot_held = true;
	c->slot_class = proto->conn_class;
	c->preauth_held = proto->login_timeout_reply != NULL;
	c->tls = tls;
	if (tls)
		c->bev = tls_socket_bufferevent(loop->server, loop->base, fd);
	else
		c->bev = bufferevent_socket_new(loop->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		conn_put_slots(c);
		event_free(c->later);
		free(c);
		conn_refuse_no_memory(fd, proto, tls, peer_addr);
		return NULL;
	}
	if (proto->login_timeout_reply != NULL && login_timeout_ms > 0) {
		/* from connect, and input does not reset it: a client trickling
		 * a byte at a time keeps an idle timer fresh for ever */
		struct timeval tv = {.tv_sec = login_timeout_ms / 1000,
				     .tv_usec = (login_timeout_ms % 1000) * 1000};
		c->login_timer = evtimer_new(loop->base, conn_login_timeout_cb, c);
		if (c->login_timer == NULL || evtimer_add(c->login_timer, &tv) < 0) {
			log_error("%s: rip=%s: out of memory for the login timer, connection refused",
				  proto->name, peer_addr);
			/* nothing is queued yet: the line goes straight out */
			if (!tls) {
				ssize_t ignored = write(fd, proto->no_memory_reply,
							strlen(proto->no_memory_reply));
				(void)ignored;
			}
			conn_stop_login_timer(c);
			conn_put_slots(c);
			bufferevent_free(c->bev);
			event_free(c->later);
			free(c);
			return NULL;
		}
	}
	conn_setcb(c);
	conn_set_idle_timeout(c, idle_timeout_ms);
	c->next = loop->conns;
	if (loop->conns != NULL)
		loop->conns->prev = c;
	loop->conns = c;
	loop->conn_count++;
	atomic_fetch_add(&conns_open, 1);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (proto->open(c) < 0)
		conn_close(c);
	return c;
}

static struct bufferevent *conn_bottom(struct conn *c);

static void conn_set_idle_timeout(struct conn *c, uint32_t ms)
{
	c->idle_timeout_ms = ms;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	const struct timeval *t = ms > 0 ? &tv : NULL;
	/* reading: the client's commands (top layer); writing: a client that
	 * takes none of our output for as long is gone (the socket layer) */
	struct bufferevent *bottom = conn_bottom(c);
	if (bottom == c->bev) {
		bufferevent_set_timeouts(c->bev, t, t);
	} else {
		bufferevent_set_timeouts(c->bev, t, NULL);
		bufferevent_set_timeouts(bottom, NULL, t);
	}
}

void conn_set_bufferevent(struct conn *c, struct bufferevent *bev)
{
	/* the idle timeout belongs to the top layer, which sees the client's
	 * commands; the layer below only carries them */
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	/* the pause's input bound moves up too: the new top layer's own
	 * bound stops this one from reading */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	c->bev = bev;
	conn_setcb(c);
	conn_set_idle_timeout(c, c->idle_timeout_ms);
	if (c->read_paused)
		bufferevent_setwatermark(c->bev, EV_READ, 0, TERN_PAUSED_INPUT_MAX);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

struct evbuffer *conn_input(struct conn *c)
{
	return bufferevent_get_input(c->bev);
}

struct evbuffer *conn_output(struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

/* A reply that could not be queued would leave the client waiting for it
 * for ever, and one queued in part cannot be completed: say why (a short
 * line may still fit where the reply did not) and close. The end of the
 * output is then frozen, so that whatever the protocol goes on writing
 * (the rest of the reply, a tagged status) fails instead of following the
 * refusal; the bytes already queued still drain from the front. */
void conn_write_failed(struct conn *c)
{
	if (c->write_failed)
		return;
	c->write_failed = true;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (!c->closing) {
		log_error("%s: rip=%s: out of memory for a reply, closing the connection",
			  c->proto->name, c->peer_addr);
		/* A reply that broke off mid-line would swallow the refusal:
		 * end that line first (what is already sent cannot be seen). */
		size_t len = evbuffer_get_length(out);
		struct evbuffer_ptr end;
		struct evbuffer_iovec v;
		/* peek, not copyout: the socket layer freezes the front */
		if (len > 0 && evbuffer_ptr_set(out, &end, len - 1, EVBUFFER_PTR_SET) == 0 &&
		    evbuffer_peek(out, 1, &end, &v, 1) == 1 && v.iov_len > 0 &&
		    *(const char *)v.iov_base != '\n')
			(void)bufferevent_write(c->bev, "\r\n", 2);
		(void)bufferevent_write(c->bev, c->proto->no_memory_reply,
					strlen(c->proto->no_memory_reply));
	}
	(void)evbuffer_freeze(out, 0);
	conn_close(c);
}

int conn_write(struct conn *c, const void *data, size_t len)
{
	if (bufferevent_write(c->bev, data, len) == 0)
		return 0;
	conn_write_failed(c);
	return -1;
}

int conn_vprintf(struct conn *c, const char *fmt, va_list ap)
{
	if (evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap) >= 0)
		return 0;
	conn_write_failed(c);
	return -1;
}

int conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = conn_vprintf(c, fmt, ap);
	va_end(ap);
	return r;
}

static void conn_free(struct conn *c)
{
	struct loop *loop = c->loop;
	if (c->proto->free != NULL)
		c->proto->free(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		loop->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	loop->conn_count--;
	conn_stop_login_timer(c);
	conn_put_slots(c);
	bufferevent_free(c->bev);
	/* may be running: freeing an event from its own callback is allowed */
	event_free(c->later);
	atomic_fetch_sub(&conns_open, 1);
	free(c);
}

void conn_ref(struct conn *c)
{
	c->refs++;
}

void conn_unref(struct conn **cp)
{
	struct conn *c = *cp;
	*cp = NULL;
	if (c != NULL && --c->refs == 0)
		conn_free(c);
}

static struct bufferevent *conn_bottom(struct conn *c)
{
	struct bufferevent *b = c->bev, *under;
	while ((under = bufferevent_get_underlying(b)) != NULL)
		b = under;
	return b;
}

void conn_set_bulk(struct conn *c)
{
	(void)bufferevent_set_max_single_write(conn_bottom(c), TERN_BULK_WRITE_MAX);
}

/* Bytes accepted but not yet handed to the kernel, over every layer: a
 * TLS or COMPRESS layer empties its own buffer into the one below at once. */
size_t conn_output_pending(struct conn *c)
{
	size_t n = 0;
	for (struct bufferevent *b = c->bev; b != NULL; b = bufferevent_get_underlying(b))
		n += evbuffer_get_length(bufferevent_get_output(b));
	return n;
}

/* Runs conn_later_cb on a later turn, without allocating (so a connection
 * can always be closed and freed): next_poll waits for the next poll, so a
 * yielding command lets the connections with input have their turn; else
 * it runs in this pass over the active events, but never inside the
 * caller's callback. */
static void conn_later(struct conn *c, bool next_poll)
{
	/* not {0, 0}: libevent would run that at once, in the same pass over
	 * active events, and a yielding command would starve the other
	 * connections; a timer waits for the next poll */
	static const struct timeval next_turn = {0, 1};
	if (next_poll && !c->release_due &&
	    (evtimer_pending(c->later, NULL) || evtimer_add(c->later, &next_turn) == 0))
		return;
	/* activation never allocates (a timer may, to grow the heap) */
	event_active(c->later, EV_TIMEOUT, 1);
}

/* Drops the loop's own reference on a later turn, never inside a callback of
 * this connection. */
static void conn_release(struct conn *c)
{
	if (c->released)
		return;
	c->released = true;
	if (c->drain_watch != NULL) {
		evbuffer_remove_cb_entry(bufferevent_get_output(conn_bottom(c)), c->drain_watch);
		c->drain_watch = NULL;
	}
	conn_set_drain_hook(c, 0, NULL);
	conn_stop_login_timer(c);
	conn_put_slots(c);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	c->release_due = true;
	conn_later(c, false);
}

static void conn_drain_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

/* Releases a closing connection once everything it said is on the wire;
 * over TLS, a close_notify goes last. */
static void conn_release_when_drained(struct conn *c)
{
	if (c->released)
		return;
	if (conn_output_pending(c) == 0 && c->tls && !c->tls_closed) {
		c->tls_closed = true;
		tls_close_notify(c);
	}
	if (conn_output_pending(c) == 0) {
		conn_release(c);
		return;
	}
	/* The layers below the top one report their progress to the layer
	 * above, not to us: watch the socket's own buffer. */
	if (c->drain_watch == NULL)
		c->drain_watch = evbuffer_add_cb(bufferevent_get_output(conn_bottom(c)),
						 conn_drain_cb, c);
	/* no memory to watch with: what is left unsent is lost, but the
	 * connection and its slots are not */
	if (c->drain_watch == NULL)
		conn_release(c);
}

static void conn_drain_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	struct conn *c = arg;
	if (info->n_deleted > 0)
		conn_release_when_drained(c);
}

static void conn_later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	bool hook = c->hook_due, release = c->release_due;
	c->hook_due = c->release_due = false;
	if (hook) {
		void (*fn)(struct conn *) = c->drain_hook;
		if (fn != NULL && c->drain_hook_watch == NULL && !c->closing) {
			c->drain_hook = NULL;
			fn(c);
		}
	}
	/* each may be the last reference */
	struct conn *ref = c;
	if (release)
		conn_unref(&ref);
	ref = c;
	if (hook)
		conn_unref(&ref);
}

/* Runs the hook on a later turn: not inside libevent's buffer callbacks,
 * where the producer's writes would re-enter the layers being drained. */
static void conn_hook_schedule(struct conn *c)
{
	if (!c->hook_due) {
		c->hook_due = true;
		conn_ref(c);
	}
	conn_later(c, true);
}

static void conn_hook_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;
	if (info->n_deleted == 0 || conn_output_pending(c) > c->drain_low)
		return;
	/* removing the entry being run is safe; removing another is not */
	evbuffer_remove_cb_entry(buf, c->drain_hook_watch);
	c->drain_hook_watch = NULL;
	conn_hook_schedule(c);
}

void conn_set_drain_hook(struct conn *c, size_t low, void (*fn)(struct conn *c))
{
	if (c->drain_hook_watch != NULL) {
		evbuffer_remove_cb_entry(bufferevent_get_output(conn_bottom(c)), c->drain_hook_watch);
		c->drain_hook_watch = NULL;
	}
	c->drain_hook = c->closing ? NULL : fn;
	c->drain_low = low;
	if (c->drain_hook == NULL)
		return;
	/* COMPRESS holds output back until a flush: without one the wait
	 * might never end */
	bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
	if (conn_output_pending(c) <= low) {
		conn_hook_schedule(c);
		return;
	}
	c->drain_hook_watch = evbuffer_add_cb(bufferevent_get_output(conn_bottom(c)), conn_hook_cb, c);
	if (c->drain_hook_watch == NULL)
		conn_hook_schedule(c);  /* no memory to watch with: poll on the next turn */
}

void conn_yield(struct conn *c, void (*fn)(struct conn *c))
{
	conn_set_drain_hook(c, SIZE_MAX, fn);
}

void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	conn_set_drain_hook(c, 0, NULL);
	bufferevent_disable(c->bev, EV_READ);
	/* COMPRESS holds output back until a flush */
	bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
	conn_release_when_drained(c);
}

/* A paused connection keeps reading (into a bounded buffer) rather than
 * stopping: only a read sees the client's EOF or reset, and a client that
 * hangs up during the failure delay or a delivery must give its slot back
 * then, not when the wait ends. Once the buffer is full reading stops, and
 * the hang-up of a client that sent that much waits for conn_resume. A
 * watermark on the top layer is enough: a full TLS or COMPRESS layer stops
 * the layer below from reading too. */
void conn_pause(struct conn *c)
{
	c->read_paused = true;
	bufferevent_setwatermark(c->bev, EV_READ, 0, TERN_PAUSED_INPUT_MAX);
}

void conn_resume(struct conn *c)
{
	if (c->closing)
		return;
	c->read_paused = false;
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		c->proto->input(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if (c->closing || c->read_paused)
		return;
	c->proto->input(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if (c->closing)
		conn_release_when_drained(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if (c->tls)
		tls_log_event(c, what);
	if ((what & (BEV_EVENT_TIMEOUT | BEV_EVENT_WRITING)) ==
	    (BEV_EVENT_TIMEOUT | BEV_EVENT_WRITING)) {
		log_info("conn %s: the client read nothing for %u ms, dropping it", c->peer,
			 c->idle_timeout_ms);
		what |= BEV_EVENT_ERROR;
	} else if ((what & BEV_EVENT_TIMEOUT) != 0 && !c->closing) {
		if (c->read_paused) {
			/* waiting on our own async work, not on the client: the
			 * timeout stopped reading, and reading is how a hang-up
			 * is noticed */
			bufferevent_enable(c->bev, EV_READ);
			return;
		}
		if (c->proto->timeout != NULL)
			c->proto->timeout(c);
		conn_close(c);
		return;
	}
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0) {
		/* The peer is gone: nothing more can be sent. */
		evbuffer_drain(bufferevent_get_output(c->bev),
			       evbuffer_get_length(bufferevent_get_output(c->bev)));
		c->closing = true;
		conn_release(c);
	}
}

void conn_destroy_all(struct loop *loop)
{
	while (loop->conns != NULL) {
		struct conn *c = loop->conns;
		c->refs = 1;
		conn_unref(&c);
	}
}
