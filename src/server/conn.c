#include "server/conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/loop.h"

static _Atomic unsigned conns_open;

unsigned conn_count_total(void)
{
	return atomic_load(&conns_open);
}

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

static void conn_setcb(struct conn *c)
{
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
}

struct conn *conn_new(struct loop *loop, int fd, const struct conn_proto *proto,
		      const char *peer, const char *peer_addr, bool loopback,
		      uint32_t idle_timeout_ms)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return NULL;
	}
	c->loop = loop;
	c->proto = proto;
	c->refs = 1;
	c->peer_loopback = loopback;
	c->started_ms = tern_now_ms();
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", peer_addr);
	c->bev = bufferevent_socket_new(loop->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		free(c);
		return NULL;
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

void conn_set_idle_timeout(struct conn *c, uint32_t ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	bufferevent_set_timeouts(c->bev, ms > 0 ? &tv : NULL, NULL);
}

void conn_set_bufferevent(struct conn *c, struct bufferevent *bev)
{
	c->bev = bev;
	conn_setcb(c);
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

int conn_write(struct conn *c, const void *data, size_t len)
{
	return bufferevent_write(c->bev, data, len);
}

int conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
	return r < 0 ? -1 : 0;
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
	bufferevent_free(c->bev);
	atomic_fetch_sub(&conns_open, 1);
	free(c);
}

static void conn_free_later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	conn_unref(&c);
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

/* Drops the loop's own reference on a later turn, never inside a callback of
 * this connection. */
static void conn_release(struct conn *c)
{
	static const struct timeval now = {0, 0};
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	if (event_base_once(c->loop->base, -1, EV_TIMEOUT, conn_free_later_cb, c, &now) < 0)
		log_error("conn %s: cannot schedule release", c->peer);
}

void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_release(c);
	/* else conn_write_cb releases once the output has drained */
}

void conn_pause(struct conn *c)
{
	c->read_paused = true;
	bufferevent_disable(c->bev, EV_READ);
}

void conn_resume(struct conn *c)
{
	if (c->closing)
		return;
	c->read_paused = false;
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
		conn_release(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if ((what & BEV_EVENT_TIMEOUT) != 0 && !c->closing) {
		if (c->read_paused) {
			/* waiting on our own async work, not on the client */
			bufferevent_enable(c->bev, EV_READ);
			bufferevent_disable(c->bev, EV_READ);
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
		if (!c->closing) {
			c->closing = true;
			conn_release(c);
		} else {
			conn_release(c);
		}
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
