/* A client connection on a loop thread: a bufferevent plus the protocol that
 * drives it. Connections are never freed inside their own callbacks: closing
 * flags them and the free happens on a later turn, once no reference (an
 * in-flight delivery, say) remains. */
#ifndef TERN_SERVER_CONN_H
#define TERN_SERVER_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct evbuffer;
struct evbuffer_cb_entry;
struct event;
struct loop;
struct conn;

/* Connection budgets: each class has its own limit, so clients can never
 * take the slots the MTA (or, later, the cluster) needs. */
enum conn_class {
	CONN_CLASS_CLIENT,   /* IMAP and POP3: max_connections */
	CONN_CLASS_LMTP,     /* lmtp_max_connections */
	CONN_CLASS_CLUSTER,  /* other nodes: cluster_max_connections */
	CONN_CLASS_COUNT
};

/* What a protocol front end plugs into a connection. */
struct conn_proto {
	const char *name;                         /* "lmtp", "imap", "pop3" */
	enum conn_class conn_class;
	/* Sent when login_timeout expires before a login; NULL for a protocol
	 * without logins (LMTP), which then has no login timer and no
	 * pre-login count per address. */
	const char *login_timeout_reply;
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
	/* Refusal line sent when a connection limit is reached. */
	const char *busy_reply;
	/* Sent before closing when memory runs out for the connection itself
	 * (setting it up, or queueing a reply): the protocol's temporary
	 * failure, so the client retries later (docs/architecture.md, "Out of
	 * memory"). */
	const char *no_memory_reply;
};

/* Why conn_admit refused. */
enum conn_admit {
	CONN_ADMIT_OK,
	CONN_ADMIT_CLASS_FULL,     /* the class budget is used up */
	CONN_ADMIT_PREAUTH_FULL,   /* addr has preauth_limit connections not logged in */
	CONN_ADMIT_NO_MEMORY,      /* no memory to count it (conn_refuse_no_memory) */
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
	bool slot_held;            /* counted in its class budget */
	enum conn_class slot_class;/* that budget: the accepting protocol's, kept
	                              when a cluster connection becomes a session */
	bool preauth_held;         /* counted against peer_addr's pre-login limit */
	bool authenticated;        /* conn_set_authenticated was called */
	bool write_failed;         /* conn_write_failed: no more output */
	uint32_t idle_timeout_ms;
	struct event *login_timer; /* until login (protocols with logins) */
	/* closing: watches the lowest layer's output until it has drained */
	struct evbuffer_cb_entry *drain_watch;
	/* a producer waiting for output to drain (conn_set_drain_hook) */
	void (*drain_hook)(struct conn *c);
	size_t drain_low;
	struct evbuffer_cb_entry *drain_hook_watch;
	/* Made with the connection, so that neither the drain hook nor the
	 * release needs memory later: runs the hook (hook_due, holding a
	 * reference) and drops the loop's reference (release_due). */
	struct event *later;
	bool hook_due, release_due;
	unsigned refs;             /* the loop's own + in-flight async work */
	uint64_t started_ms;
	struct conn *prev, *next;  /* the loop's connection list */
};

struct tern_config;
/* The budget and idle timeout of a class, from the configuration. */
uint32_t conn_class_limit(const struct tern_config *cfg, enum conn_class cls);
const char *conn_class_limit_key(enum conn_class cls);
uint32_t conn_class_idle_timeout_ms(const struct tern_config *cfg, enum conn_class cls);

/* Takes a slot in proto's class budget (at most class_limit open) and, for a
 * protocol with logins, one of peer_addr's pre-login slots (at most
 * preauth_limit). Any thread. On CONN_ADMIT_OK the slots belong to the next
 * conn_new for this socket, which gives them back when the connection is
 * released (or at once if it cannot be set up); otherwise nothing is held. */
enum conn_admit conn_admit(const struct conn_proto *proto, const char *peer_addr,
			   uint32_t class_limit, uint32_t preauth_limit);

/* Wraps an accepted socket on the current loop and calls proto->open. The
 * caller has had it admitted (conn_admit). With tls the socket speaks TLS
 * from the first byte (imaps, pop3s): the greeting waits for the handshake.
 * For a protocol with logins, login_timeout_ms (from now, not reset by
 * input; 0 = none) bounds the time until conn_set_authenticated. */
struct conn *conn_new(struct loop *loop, int fd, const struct conn_proto *proto,
		      const char *peer, const char *peer_addr, bool loopback,
		      uint32_t idle_timeout_ms, uint32_t login_timeout_ms, bool tls);

/* Out of memory before a connection exists: sends proto's no_memory_reply
 * (not over implicit TLS, where it would arrive before the handshake as
 * garbage), logs and closes fd. */
void conn_refuse_no_memory(int fd, const struct conn_proto *proto, bool tls,
			   const char *peer_addr);

/* The session has logged in: gives back its pre-login slot and stops the
 * login timer. Idempotent. */
void conn_set_authenticated(struct conn *c);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
/* Append to the output. Out of memory: conn_write_failed, and -1; nothing
 * else is needed from the caller. */
int conn_write(struct conn *c, const void *data, size_t len);
int conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int conn_vprintf(struct conn *c, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* A reply (or part of one) could not be queued: logs, queues
 * no_memory_reply if it still fits, and closes. Nothing written to the
 * output afterwards is queued (conn_write and conn_printf fail, and so
 * does a plain evbuffer_add to conn_output()), so the client's last line
 * is the refusal. For a protocol writing to conn_output() itself; once per
 * connection, later calls do nothing. */
void conn_write_failed(struct conn *c);

/* Bytes written but not yet handed to the kernel, over every layer. */
size_t conn_output_pending(struct conn *c);
/* Calls fn once, on a later turn, when conn_output_pending() has fallen to
 * low or below, so the producer of a long response (FETCH of a whole folder)
 * can pause instead of buffering all of it. fn = NULL cancels. Never called
 * once the connection is closing; a closing connection refuses new hooks. */
void conn_set_drain_hook(struct conn *c, size_t low, void (*fn)(struct conn *c));

/* Called before each command: when the client has left more than
 * TERN_CONN_OUTPUT_HIGH bytes of replies unread, stops reading until they drain
 * (then conn_resume), so a client that pipelines commands and never reads
 * cannot make the server buffer without bound. true = paused, stop now. */
bool conn_throttle_input(struct conn *c);

/* Calls fn on a later turn of the loop (unless the connection closes
 * first), so that a long command can give other connections their turn.
 * Shares the one hook slot with conn_set_drain_hook. */
void conn_yield(struct conn *c, void (*fn)(struct conn *c));

/* Stops processing input until conn_resume (an async step is in flight).
 * The socket is still read, up to TERN_PAUSED_INPUT_MAX bytes of buffered
 * input, so a client that hangs up meanwhile is noticed at once: the
 * connection is released then (c->closing set, its slots given back) while
 * the async step's reference keeps the struct valid. Input the client sent
 * before hanging up is not processed: it can see no reply. */
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

/* Connections not yet freed, in the whole process (shutdown waits for
 * these). */
unsigned conn_count_total(void);
/* Replaces the bufferevent with one layered over it (STARTTLS/COMPRESS):
 * callbacks and the idle timeout move to the new one. */
void conn_set_bufferevent(struct conn *c, struct bufferevent *bev);

/* Hands the connection to another protocol (a cluster connection that
 * becomes a proxied session on the home node, a front's session that
 * becomes a relay): the old protocol has freed its state already; c->state
 * is set to state and the idle timeout to idle_timeout_ms (0 = none). The
 * connection keeps its budget slot. */
void conn_switch_proto(struct conn *c, const struct conn_proto *proto, void *state,
		       uint32_t idle_timeout_ms);

/* For a connection that carries bulk data (a proxied session, either end):
 * the socket layer writes up to TERN_BULK_WRITE_MAX bytes a turn instead
 * of libevent's 16 KiB. */
void conn_set_bulk(struct conn *c);

/* Frees every connection of the calling loop at once (final shutdown, after
 * the delivery pipeline has stopped so no async work refers to them). */
void conn_destroy_all(struct loop *loop);

#endif
