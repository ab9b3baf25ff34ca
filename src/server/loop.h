/* Event-loop threads. Each loop thread runs its own libevent base and owns the
 * connections handed to it; other threads talk to it only by posting tasks,
 * which run on the loop thread in the order posted. */
#ifndef TERN_SERVER_LOOP_H
#define TERN_SERVER_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/lock.h"

struct event_base;
struct server;
struct conn;

typedef void loop_task_fn(void *arg);

struct loop_task;

/* Something of the loop's own (a timer not tied to a connection) to free
 * when the loop's connections are destroyed at shutdown. */
struct loop_cleanup {
	void (*fn)(struct loop_cleanup *c);
	struct loop_cleanup *prev, *next;
};

struct loop {
	struct server *server;
	unsigned index;
	pthread_t thread;
	struct event_base *base;
	struct event *inbox_event;
	struct event *beat_event;        /* the watchdog heartbeat (watch_beat) */
	struct tern_mutex inbox_mu;      /* guards inbox_head/inbox_tail */
	struct loop_task *inbox_head, *inbox_tail;
	/* Tasks for when malloc fails (TERN_LOOP_TASK_RESERVE); the free ones
	 * are listed in reserve, under inbox_mu. */
	struct loop_task *reserve_block, *reserve;
	struct conn *conns;              /* live connections of this loop */
	size_t conn_count;
	/* Node-to-node connections this loop keeps beside its client
	 * connections (cluster/dial.c); freed with the loop's connections. */
	void *cluster_pool;
	void (*cluster_pool_free)(struct loop *loop);
	struct loop_cleanup *cleanups;   /* loop thread only */
};

/* Creates the base and the inbox; does not start the thread. */
int loop_init(struct loop *loop, struct server *server, unsigned index);
int loop_start(struct loop *loop);
/* Asks the loop to exit once it has no more events, then joins it. */
void loop_join(struct loop *loop);
void loop_deinit(struct loop *loop);

/* Runs fn(arg) on the loop's thread soon. Callable from any thread. Never
 * fails and never drops the task: out of memory, it uses the loop's reserve
 * of tasks, and when that is used up too, waits for memory. */
void loop_post(struct loop *loop, loop_task_fn *fn, void *arg);

/* Registers c (loop thread): c->fn(c) runs at loop_run_cleanups unless
 * c is removed first. */
void loop_cleanup_add(struct loop *loop, struct loop_cleanup *c);
void loop_cleanup_remove(struct loop *loop, struct loop_cleanup *c);
/* Runs and forgets every registered cleanup (shutdown, on the loop). */
void loop_run_cleanups(struct loop *loop);

/* The loop of the calling thread, or NULL if it is not a loop thread. */
struct loop *loop_current(void);

#endif
