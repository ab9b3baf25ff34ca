/* COMPRESS=DEFLATE (RFC 4978) as a bufferevent filter over the connection's
 * bufferevent. Output is deflated as it is written and sync-flushed once per
 * loop turn, so a burst of responses costs one flush and every response still
 * reaches the client without waiting for more. Input is inflated only as fast
 * as the session consumes it: at most a command line's worth waits inflated,
 * the rest stays compressed below (a kilobyte of deflate can stand for a
 * megabyte of text). A corrupt stream closes the connection. */
#include "server/compress.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <zlib.h>

#include "core/config.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/loop.h"
#include "server/server.h"

/* Bytes of zlib output produced per step (one evbuffer chunk). */
#define COMPRESS_CHUNK 16384u

struct compress {
	struct conn *conn;
	struct bufferevent *bev;  /* the filter */
	/* Sync flush, or close after a failure. Only ever made active from the
	 * filters while the connection is open; the connection is freed on a
	 * later turn (conn_release), so it has run by then. */
	struct event *turn_end;
	z_stream in, out;
	bool in_ready, out_ready;
	bool unflushed;           /* deflated since the last sync flush */
	bool failed;
	/* Inflated bytes that may wait for the session: inflating stops there
	 * and goes on when the session has read some (inflated_drained). */
	size_t max_pending;
};

static void compress_free(void *arg)
{
	struct compress *z = arg;
	if (z == NULL)
		return;
	if (z->turn_end != NULL)
		event_free(z->turn_end);
	if (z->in_ready)
		inflateEnd(&z->in);
	if (z->out_ready)
		deflateEnd(&z->out);
	free(z);
}

static void compress_turn_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct compress *z = arg;
	if (z->failed) {
		conn_close(z->conn);
		return;
	}
	if (z->unflushed)
		bufferevent_flush(z->bev, EV_WRITE, BEV_FLUSH);
}

static void schedule_turn_end(struct compress *z)
{
	if (!event_pending(z->turn_end, EV_TIMEOUT, NULL))
		event_active(z->turn_end, EV_TIMEOUT, 1);
}

/* Failures surface here, inside a filter: close on the next turn. */
static enum bufferevent_filter_result compress_fail(struct compress *z, const char *what)
{
	if (!z->failed) {
		z->failed = true;
		log_info("%s: rip=%s: COMPRESS: %s, closing", z->conn->proto->name,
			 z->conn->peer_addr, what);
		schedule_turn_end(z);
	}
	return BEV_ERROR;
}

/* Inflates until the session has max_pending bytes waiting (or libevent's
 * limit, when a watermark is set), the input is used up, or zlib holds
 * nothing more to give. Making no progress must not be reported as BEV_OK:
 * libevent calls the filter again for as long as it says OK and compressed
 * bytes remain. */
static enum bufferevent_filter_result inflate_filter(struct evbuffer *src, struct evbuffer *dst,
						     ev_ssize_t limit,
						     enum bufferevent_flush_mode mode, void *arg)
{
	(void)mode;
	struct compress *z = arg;
	bool progress = false;
	if (z->failed) {
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_ERROR;
	}
	for (;;) {
		size_t pending = evbuffer_get_length(dst);
		size_t room = pending < z->max_pending ? z->max_pending - pending : 0;
		if (limit >= 0 && (size_t)limit < room)
			room = (size_t)limit;
		if (room > COMPRESS_CHUNK)
			room = COMPRESS_CHUNK;
		if (room == 0)
			break;
		struct evbuffer_iovec in = {NULL, 0}, out;
		if (evbuffer_get_length(src) > 0 && evbuffer_peek(src, -1, NULL, &in, 1) < 1)
			return compress_fail(z, "input buffer error");
		if (evbuffer_reserve_space(dst, room, &out, 1) < 1)
			return compress_fail(z, "out of memory");
		if (out.iov_len > room)
			out.iov_len = room;
		z->in.next_in = in.iov_base;
		z->in.avail_in = (uInt)in.iov_len;
		z->in.next_out = out.iov_base;
		z->in.avail_out = (uInt)out.iov_len;
		int r = inflate(&z->in, Z_SYNC_FLUSH);
		size_t used = in.iov_len - z->in.avail_in;
		size_t made = out.iov_len - z->in.avail_out;
		out.iov_len = made;
		evbuffer_commit_space(dst, &out, 1);
		evbuffer_drain(src, used);
		if (r == Z_STREAM_END)
			return compress_fail(z, "the client ended the deflate stream");
		if (r != Z_OK && r != Z_BUF_ERROR)
			return compress_fail(z, z->in.msg != NULL ? z->in.msg : "corrupt deflate stream");
		progress = progress || made > 0 || used > 0;
		/* done when zlib has no more room to ask for and no input left */
		if (made == 0 && used == 0)
			break;
		if (z->in.avail_out > 0 && evbuffer_get_length(src) == 0)
			break;
	}
	return progress ? BEV_OK : BEV_NEED_MORE;
}

/* The session read inflated input: inflate what waits below, up to the
 * bound again. The session's input loop sees the new bytes; after a pause,
 * conn_resume finds them. */
static void inflated_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct compress *z = arg;
	if (info->n_deleted == 0 || z->failed || evbuffer_get_length(buf) >= z->max_pending)
		return;
	struct bufferevent *below = bufferevent_get_underlying(z->bev);
	if (below != NULL && evbuffer_get_length(bufferevent_get_input(below)) > 0)
		bufferevent_flush(z->bev, EV_READ, BEV_NORMAL);
}

static enum bufferevent_filter_result deflate_filter(struct evbuffer *src, struct evbuffer *dst,
						     ev_ssize_t limit,
						     enum bufferevent_flush_mode mode, void *arg)
{
	(void)limit;
	struct compress *z = arg;
	if (z->failed)
		return BEV_ERROR;
	/* BEV_NORMAL: a response was written; more may follow in this turn.
	 * Anything else is an explicit flush (end of the turn, or closing). */
	bool flushing = mode != BEV_NORMAL;
	if (flushing && !z->unflushed && evbuffer_get_length(src) == 0)
		return BEV_OK;
	bool consumed = false;
	for (;;) {
		struct evbuffer_iovec in = {NULL, 0}, out;
		bool have = evbuffer_get_length(src) > 0;
		if (have && evbuffer_peek(src, -1, NULL, &in, 1) < 1)
			return compress_fail(z, "output buffer error");
		int flush = have ? Z_NO_FLUSH : flushing ? Z_SYNC_FLUSH : -1;
		if (flush < 0)
			break;
		if (evbuffer_reserve_space(dst, COMPRESS_CHUNK, &out, 1) < 1)
			return compress_fail(z, "out of memory");
		z->out.next_in = in.iov_base;
		z->out.avail_in = (uInt)in.iov_len;
		z->out.next_out = out.iov_base;
		z->out.avail_out = (uInt)out.iov_len;
		int r = deflate(&z->out, flush);
		size_t used = in.iov_len - z->out.avail_in;
		out.iov_len = out.iov_len - z->out.avail_out;
		evbuffer_commit_space(dst, &out, 1);
		evbuffer_drain(src, used);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return compress_fail(z, "deflate failed");
		consumed = consumed || used > 0;
		/* a sync flush is complete once deflate leaves output space over */
		if (flush == Z_SYNC_FLUSH && z->out.avail_out > 0) {
			z->unflushed = false;
			break;
		}
	}
	if (consumed && !flushing) {
		z->unflushed = true;
		schedule_turn_end(z);
	}
	return BEV_OK;
}

static struct compress *compress_new(struct conn *c)
{
	struct compress *z = calloc(1, sizeof(*z));
	if (z == NULL)
		return NULL;
	const struct tern_config *cfg = c->loop->server->config;
	z->conn = c;
	/* the parser holds partial lines and literals itself, so a line's worth
	 * ahead of it is all it ever needs to make progress */
	z->max_pending = cfg->max_line_length;
	z->turn_end = event_new(c->loop->base, -1, 0, compress_turn_end, z);
	/* RFC 4978 §3: raw deflate, no zlib header (negative windowBits) */
	z->in_ready = z->turn_end != NULL && inflateInit2(&z->in, -15) == Z_OK;
	z->out_ready = z->in_ready && deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15,
						   8, Z_DEFAULT_STRATEGY) == Z_OK;
	if (!z->out_ready) {
		compress_free(z);
		return NULL;
	}
	return z;
}

int compress_start(struct conn *c)
{
	if (c->compressed || c->closing)
		return -1;
	struct compress *z = compress_new(c);
	if (z == NULL)
		return -1;
	/* The tagged OK waits in c->bev's output; the filter writes behind it,
	 * so it leaves uncompressed and first. */
	struct bufferevent *bev = bufferevent_filter_new(c->bev, inflate_filter, deflate_filter,
							 BEV_OPT_CLOSE_ON_FREE, compress_free, z);
	if (bev == NULL) {
		compress_free(z);
		return -1;
	}
	z->bev = bev;
	/* (freed with the input buffer) */
	if (evbuffer_add_cb(bufferevent_get_input(bev), inflated_drained, z) == NULL)
		(void)compress_fail(z, "out of memory");
	c->compressed = true;
	conn_set_bufferevent(c, bev);
	/* Compressed bytes that came in behind the command would otherwise wait
	 * for the next read: inflate them now and let the session see them on
	 * a later callback. */
	if (evbuffer_get_length(bufferevent_get_input(bufferevent_get_underlying(bev))) > 0) {
		bufferevent_flush(bev, EV_READ, BEV_NORMAL);
		if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
			bufferevent_trigger(bev, EV_READ,
					    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	}
	return 0;
}
