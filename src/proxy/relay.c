#include "proxy/relay.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "core/config.h"
#include "core/limits.h"
#include "core/log.h"
#include "proxy/stream-scan.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/server.h"

struct relay {
	struct conn *conn;
	struct bufferevent *channel;
	enum relay_kind kind;
	char user[TERN_USERNAME_MAX + 1];
	char home[TERN_CLUSTER_NODE_NAME_MAX + 1];
	struct stream_scan up, down;     /* client to home, home to client */
	bool compressed;                 /* the client asked for COMPRESS: opaque from here */
	bool bye_seen;                   /* the home node said its last word */
	bool quit_sent;                  /* POP3: the client said QUIT */
	bool home_gone;
	uint64_t bytes_up, bytes_down;
	/* A plain-socket channel is read here, in big chunks, straight into
	 * the client's output (NULL: a TLS channel, read by its bufferevent). */
	struct event *raw_read;
	evutil_socket_t fd;
};

extern const struct conn_proto relay_proto;

static const char *kind_name(const struct relay *r)
{
	return r->kind == RELAY_IMAP ? "imap" : "pop3";
}

/* The first word after the tag (IMAP) or the first word (POP3). */
static bool command_is(const char *head, size_t len, bool tagged, const char *name)
{
	size_t i = 0;
	if (tagged) {
		while (i < len && head[i] != ' ')
			i++;
		i++;
	}
	size_t n = strlen(name);
	return i + n <= len && strncasecmp(head + i, name, n) == 0 &&
	       (i + n == len || head[i + n] == ' ');
}

static void up_line(void *ctx, const char *head, size_t len)
{
	struct relay *r = ctx;
	if (r->kind == RELAY_IMAP && command_is(head, len, true, "COMPRESS"))
		r->compressed = true;
	else if (r->kind == RELAY_POP3 && command_is(head, len, false, "QUIT"))
		r->quit_sent = true;
}

static void down_line(void *ctx, const char *head, size_t len)
{
	struct relay *r = ctx;
	if (r->kind == RELAY_IMAP && len >= 5 && strncasecmp(head, "* BYE", 5) == 0)
		r->bye_seen = true;
}

static void scan(struct relay *r, struct stream_scan *s, struct evbuffer *buf, size_t len,
		 stream_line_fn *fn)
{
	if (r->compressed)
		return;
	struct evbuffer_iovec v[16];
	struct evbuffer_ptr pos;
	evbuffer_ptr_set(buf, &pos, 0, EVBUFFER_PTR_SET);
	size_t done = 0;
	while (done < len && !r->compressed) {
		int n = evbuffer_peek(buf, (ssize_t)(len - done), &pos, v, 16);
		if (n <= 0)
			break;
		for (int i = 0; i < n && i < 16 && done < len; i++) {
			size_t take = v[i].iov_len < len - done ? v[i].iov_len : len - done;
			stream_scan_feed(s, v[i].iov_base, take, fn, r);
			done += take;
		}
		if (evbuffer_ptr_set(buf, &pos, done, EVBUFFER_PTR_SET) < 0)
			break;
	}
}

/* The protocol's last word, where the stream allows a line of ours. */
static void last_word(struct relay *r, const char *why)
{
	if (r->compressed || !stream_scan_at_boundary(&r->down))
		return;
	if (r->kind == RELAY_IMAP && !r->bye_seen)
		conn_printf(r->conn, "* BYE [UNAVAILABLE] %s\r\n", why);
	else if (r->kind == RELAY_POP3 && !r->quit_sent)
		conn_printf(r->conn, "-ERR [SYS/TEMP] %s\r\n", why);
}

/* ---- home to client ---- */

static void channel_read_cb(struct bufferevent *bev, void *arg);

static void raw_read_cb(evutil_socket_t fd, short what, void *arg);

static void client_drained(struct conn *c)
{
	struct relay *r = c->state;
	if (r->raw_read != NULL) {
		if (!r->home_gone) {
			event_add(r->raw_read, NULL);
			raw_read_cb(r->fd, EV_READ, r);
		}
		return;
	}
	bufferevent_enable(r->channel, EV_READ);
	channel_read_cb(r->channel, r);
}

static void channel_read_cb(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;
	struct conn *c = r->conn;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	if (len == 0 || c->closing)
		return;
	scan(r, &r->down, in, len, down_line);
	r->bytes_down += len;
	if (evbuffer_add_buffer(conn_output(c), in) < 0) {
		conn_write_failed(c);
		return;
	}
	if (conn_output_pending(c) > TERN_PROXY_BUFFER_HIGH) {
		/* a client that reads slowly holds the home node back, not our memory */
		bufferevent_disable(bev, EV_READ);
		conn_set_drain_hook(c, TERN_PROXY_BUFFER_LOW, client_drained);
	}
}

static void home_gone(struct relay *r)
{
	if (r->home_gone)
		return;
	r->home_gone = true;
	if (r->raw_read != NULL)
		event_del(r->raw_read);
	if (!r->conn->closing) {
		bool expected = r->kind == RELAY_IMAP ? r->bye_seen : r->quit_sent;
		if (!expected)
			log_warn("proxy: user=<%s> home=%s proto=%s rip=%s: connection to the home node "
				 "lost", r->user, r->home, kind_name(r), r->conn->peer_addr);
		last_word(r, "Home node connection lost, please reconnect");
		conn_close(r->conn);
	}
}

static void channel_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay *r = arg;
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0)
		return;
	if (r->raw_read == NULL)
		channel_read_cb(bev, r);   /* whatever came before the end */
	home_gone(r);
}

/* Reads the channel's socket until it is empty (or a turn's worth),
 * scanning what passes, into the client's output. */
static void raw_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct relay *r = arg;
	struct conn *c = r->conn;
	struct evbuffer *out = conn_output(c);
	size_t turn = 0;
	while (!c->closing && turn < TERN_PROXY_READ_TURN) {
		struct evbuffer_iovec v[2];
		int nv = evbuffer_reserve_space(out, TERN_PROXY_READ_CHUNK, v, 2);
		if (nv <= 0) {
			conn_write_failed(c);
			return;
		}
		ssize_t n = readv(fd, (const struct iovec *)v, nv);
		if (n <= 0) {
			(void)evbuffer_commit_space(out, v, 0);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				break;
			home_gone(r);   /* EOF or an error */
			return;
		}
		size_t left = (size_t)n;
		for (int i = 0; i < nv; i++) {
			size_t take = v[i].iov_len < left ? v[i].iov_len : left;
			if (!r->compressed)
				stream_scan_feed(&r->down, v[i].iov_base, take, down_line, r);
			v[i].iov_len = take;
			left -= take;
		}
		if (evbuffer_commit_space(out, v, nv) < 0) {
			conn_write_failed(c);
			return;
		}
		r->bytes_down += (size_t)n;
		turn += (size_t)n;
		if ((size_t)n < TERN_PROXY_READ_CHUNK)
			break;   /* the socket is empty, most likely: epoll says */
	}
	if (!c->closing && conn_output_pending(c) > TERN_PROXY_BUFFER_HIGH) {
		event_del(r->raw_read);
		conn_set_drain_hook(c, TERN_PROXY_BUFFER_LOW, client_drained);
	}
}

/* ---- client to home ---- */

static void channel_drained(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;
	(void)bev;
	bufferevent_setwatermark(r->channel, EV_WRITE, 0, 0);
	bufferevent_setcb(r->channel, channel_read_cb, NULL, channel_event_cb, r);
	if (r->conn->read_paused)
		conn_resume(r->conn);
}

static void relay_input(struct conn *c)
{
	struct relay *r = c->state;
	struct evbuffer *in = conn_input(c);
	size_t len = evbuffer_get_length(in);
	if (len == 0 || r->home_gone)
		return;
	scan(r, &r->up, in, len, up_line);
	r->bytes_up += len;
	struct evbuffer *out = bufferevent_get_output(r->channel);
	if (evbuffer_add_buffer(out, in) < 0) {
		conn_write_failed(c);
		return;
	}
	if (evbuffer_get_length(out) > TERN_PROXY_BUFFER_HIGH) {
		/* the home node reads slowly: stop taking the client's bytes */
		conn_pause(c);
		bufferevent_setwatermark(r->channel, EV_WRITE, TERN_PROXY_BUFFER_LOW, 0);
		bufferevent_setcb(r->channel, channel_read_cb, channel_drained, channel_event_cb, r);
	}
}

static void relay_shutdown(struct conn *c)
{
	struct relay *r = c->state;
	last_word(r, "Server shutting down, please reconnect");
	conn_close(c);
}

static void relay_timeout(struct conn *c)
{
	conn_close(c);
}

static void relay_free(struct conn *c)
{
	struct relay *r = c->state;
	if (r == NULL)
		return;
	log_info("proxy: user=<%s> home=%s proto=%s rip=%s: closed (%llu bytes in, %llu out)",
		 r->user, r->home, kind_name(r), c->peer_addr, (unsigned long long)r->bytes_up,
		 (unsigned long long)r->bytes_down);
	if (r->raw_read != NULL)
		event_free(r->raw_read);
	if (r->channel != NULL)
		bufferevent_free(r->channel);
	free(r);
	c->state = NULL;
}

static int relay_open(struct conn *c)
{
	(void)c;
	return -1;   /* never accepted as such: a session becomes a relay */
}

const struct conn_proto relay_proto = {
	.name = "proxy",
	.conn_class = CONN_CLASS_CLIENT,
	.login_timeout_reply = NULL,
	.open = relay_open,
	.input = relay_input,
	.shutdown = relay_shutdown,
	.timeout = relay_timeout,
	.free = relay_free,
	.busy_reply = "",
	.no_memory_reply = "",
};

void proxy_relay_start(struct conn *c, struct bufferevent *bev, const struct relay_target *t)
{
	struct relay *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		bufferevent_free(bev);
		conn_write_failed(c);
		return;
	}
	const struct tern_config *cfg = c->loop->server->config;
	r->conn = c;
	r->channel = bev;
	r->kind = t->kind;
	snprintf(r->user, sizeof(r->user), "%s", t->user);
	snprintf(r->home, sizeof(r->home), "%s", t->home);
	stream_scan_init(&r->up, t->kind == RELAY_IMAP);
	stream_scan_init(&r->down, t->kind == RELAY_IMAP);
	log_info("proxy: user=<%s> front=%s home=%s proto=%s rip=%s", r->user, cfg->node_name, r->home,
		 kind_name(r), c->peer_addr);
	c->proto->free(c);
	conn_set_authenticated(c);
	/* the home node's session keeps the time; ours would cut it short */
	conn_switch_proto(c, &relay_proto, r, 0);
	bufferevent_setcb(bev, channel_read_cb, NULL, channel_event_cb, r);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	conn_set_bulk(c);
	(void)bufferevent_set_max_single_write(bev, TERN_BULK_WRITE_MAX);
	channel_read_cb(bev, r);  /* the home's first bytes may be here already */
	r->fd = bufferevent_getfd(bev);
	if (bufferevent_get_underlying(bev) == NULL && r->fd >= 0 && !c->closing) {
		/* a plain socket: read it ourselves, in big chunks */
		r->raw_read = event_new(c->loop->base, r->fd, EV_READ | EV_PERSIST, raw_read_cb, r);
		if (r->raw_read != NULL) {
			bufferevent_disable(bev, EV_READ);
			event_add(r->raw_read, NULL);
		}
	}
	if (c->read_paused)
		conn_resume(c);       /* what the client pipelined behind its login */
	else
		relay_input(c);
}
