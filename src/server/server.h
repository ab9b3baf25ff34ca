/* The ternd process: configuration, loop threads, listeners, the delivery
 * pipeline and orderly shutdown. The server names no protocol: the front
 * ends are handed in by the program (struct server_frontends), so server/
 * never includes proto/ (tests/layering.cmake checks it). */
#ifndef TERN_SERVER_SERVER_H
#define TERN_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct loop;
struct listener;
struct delivery;
struct event_base;
struct ssl_ctx_st;
struct event;
struct conn_proto;

/* One listening socket of a front end. */
struct server_listen {
	const char *what;               /* "imaps": for logs; its config key is what_listen */
	const char *addr;               /* "host:port"; NULL or "" = not listening */
	const struct conn_proto *proto;
	bool tls;                       /* implicit TLS from the first byte (imaps, pop3s) */
};

/* What the program plugs into the server (ternd.c, the session fuzzers). */
struct server;

struct server_frontends {
	const struct server_listen *listens;
	size_t listen_count;
	/* A service the sessions use beside the loops (the password workers).
	 * start runs once the loop threads run and before any listener opens;
	 * stop runs once, after the last connection could have been accepted
	 * and while the loops still run, since its threads post to them.
	 * Either may be NULL. */
	void (*services_start)(struct server *srv);
	void (*services_stop)(void);
};

struct server {
	struct tern_config *config;
	struct event_base *base;        /* main thread: listeners, signals */
	struct loop *loops;
	unsigned loop_count;
	unsigned loops_running;          /* started and not yet joined */
	unsigned next_loop;             /* round-robin handoff */
	struct listener **listeners;
	size_t listener_count;
	struct delivery *delivery;
	struct ssl_ctx_st *tls;         /* NULL without tls_cert/tls_key */
	atomic_bool stopping;
	struct event *stop_timer;
	uint64_t stop_deadline;         /* monotonic ms */
	void (*services_stop)(void);    /* set while the front ends' services run */
	/* An episode of accept() failing for lack of descriptors or memory
	 * (listener.c, main thread only). The shortage is the process's, not
	 * one listener's, so the episode is shared. */
	struct {
		bool active;
		uint64_t since_ms, last_ms;
		unsigned long deferred;     /* accept() calls that failed */
		struct event *quiet_timer;  /* ends the episode */
	} accept_shortage;
};

/* Sets everything up (replays the journal, starts the loops and fe's
 * services, binds fe's listeners). -1 on error, already logged; call
 * server_deinit either way. fe is read during the call only. */
int server_init(struct server *srv, struct tern_config *cfg, const struct server_frontends *fe);
/* Runs until SIGTERM/SIGINT and the shutdown that follows. Returns the exit status. */
int server_run(struct server *srv);
/* Stops whatever server_init started (after server_run, or after a failed
 * server_init). */
void server_deinit(struct server *srv);

#endif
