/* A client connection on a loop thread: a bufferevent plus the protocol that
 * drives it. Connections are never freed inside their own callbacks: closing
 * flags them and the free happens on a later turn, once no reference (an
 * in-flight delivery, say) remains. */
#ifndef TERN_SERVER_CONN_H
#define TERN_SERVER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct evbuffer;
struct evbuffer_cb_entry;
struct loop;
struct conn;

/* What a protocol front end plugs into a connection. */
struct conn_proto {
	const char *name;                         /* "lmtp", "imap", "pop3" */
	/* Called once the connection is set up; sends the greeting. */
	int (*open)(struct conn *c);
	/* New input is in conn_input(c). Also called by conn_resume(). */
	void (*input)(struct conn *c);
	/* The server is stopping: finish or refuse politely, then conn_close. */
	void (*shutdown)(struct conn *c);
	/* Idle timeout expired. */
	void (*timeout)(struct conn *c);
	/* Frees the protocol state (c->proto). */
	void (*free)(struct conn *c);
	/* Refusal line sent when the connection limit is reached. */
	const char *busy_reply;
};

struct conn {
	struct loop *loop;
	struct bufferevent *bev;
	const struct conn_proto *proto;
	void *state;               /* protocol session */
	char peer[64];             /* "addr:port" */
	char peer_addr[48];        /* "addr" only (fail2ban rip=) */
	bool peer_loopback;
	bool closing;              /* no more input is processed */
	bool read_paused;          /* waiting for an async result */
	bool shutting_down;        /* server stop was signalled to this connection */
	bool tls;                  /* running over TLS (implicit or STARTTLS) */
	bool tls_closed;           /* close_notify sent */
	bool compressed;           /* COMPRESS=DEFLATE active */
	bool released;             /* the loop's reference is being dropped */
	uint32_t idle_timeout_ms;
	/* closing: watches the lowest layer's output until it has drained */
	struct evbuffer_cb_entry *drain_watch;
	/* a producer waiting for output to drain (conn_set_drain_hook) */
	void (*drain_hook)(struct conn *c);
	size_t drain_low;
	struct evbuffer_cb_entry *drain_hook_watch;
	unsigned refs;             /* the loop's own + in-flight async work */
	uint64_t started_ms;
	struct conn *prev, *next;  /* the loop's connection list */
};

/* Wraps an accepted socket on the current loop and calls proto->open. With
 * tls the socket speaks TLS from the first byte (imaps, pop3s): the greeting
 * waits for the handshake. */
struct conn *conn_new(struct loop *loop, int fd, const struct conn_proto *proto,
		      const char *peer, const char *peer_addr, bool loopback,
		      uint32_t idle_timeout_ms, bool tls);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
/* Appends to the output; returns -1 on allocation failure. */
int conn_write(struct conn *c, const void *data, size_t len);
int conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Bytes written but not yet handed to the kernel, over every layer. */
size_t conn_output_pending(struct conn *c);
/* Calls fn once, on a later turn, when conn_output_pending() has fallen to
 * low or below, so the producer of a long response (FETCH of a whole folder)
 * can pause instead of buffering all of it. fn = NULL cancels. Never called
 * once the connection is closing; a closing connection refuses new hooks. */
void conn_set_drain_hook(struct conn *c, size_t low, void (*fn)(struct conn *c));

/* Called before each command: when the client has left more than
 * CONN_OUTPUT_HIGH bytes of replies unread, stops reading until they drain
 * (then conn_resume), so a client that pipelines commands and never reads
 * cannot make the server buffer without bound. true = paused, stop now. */
bool conn_throttle_input(struct conn *c);

/* Calls fn on a later turn of the loop (unless the connection closes
 * first), so that a long command can give other connections their turn.
 * Shares the one hook slot with conn_set_drain_hook. */
void conn_yield(struct conn *c, void (*fn)(struct conn *c));

/* Stops reading until conn_resume (an async step is in flight). */
void conn_pause(struct conn *c);
/* Reads again and processes input already buffered: no new read event
 * would come for bytes that arrived while paused. */
void conn_resume(struct conn *c);

/* Flushes pending output through every layer (COMPRESS, TLS, socket), then
 * closes. Safe to call more than once. */
void conn_close(struct conn *c);
/* Reference counting for async work that outlives a callback. */
void conn_ref(struct conn *c);
void conn_unref(struct conn **c);

/* Number of open client connections in the whole process. */
unsigned conn_count_total(void);
/* Replaces the bufferevent with one layered over it (STARTTLS/COMPRESS):
 * callbacks and the idle timeout move to the new one. */
void conn_set_bufferevent(struct conn *c, struct bufferevent *bev);
void conn_set_idle_timeout(struct conn *c, uint32_t ms);



/* Frees every connection of the calling loop at once (final shutdown, after
 * the delivery pipeline has stopped so no async work refers to them). */
void conn_destroy_all(struct loop *loop);

#endif
