/* The ternd process: configuration, loop threads, listeners, the delivery
 * pipeline and orderly shutdown. */
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

/* Front ends register themselves here when built in (NULL = not available). */
extern const struct conn_proto *server_imap_proto;
extern const struct conn_proto *server_pop3_proto;

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

/* Sets everything up (binds listeners, replays the journal). -1 on error,
 * already logged. */
int server_init(struct server *srv, struct tern_config *cfg);
/* Runs until SIGTERM/SIGINT and the shutdown that follows. Returns the exit status. */
int server_run(struct server *srv);
void server_deinit(struct server *srv);

#endif
