#include "server/loop.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <stdlib.h>
#include <time.h>

#include "core/limits.h"
#include "core/log.h"
#include "server/server.h"
#include "server/watchdog.h"

struct loop_task {
	loop_task_fn *fn;
	void *arg;
	struct loop_task *next;
	bool reserved;       /* one of loop->reserve_block: goes back, never freed */
};

static _Thread_local struct loop *current_loop;

struct loop *loop_current(void)
{
	return current_loop;
}

static void loop_inbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop *loop = arg;
	struct loop_task *head;
	(void)fd;
	(void)what;
	{
		TERN_LOCK_GUARD(&loop->inbox_mu);
		head = loop->inbox_head;
		loop->inbox_head = loop->inbox_tail = NULL;
	}
	while (head != NULL) {
		struct loop_task *next = head->next;
		head->fn(head->arg);
		if (head->reserved) {
			TERN_LOCK_GUARD(&loop->inbox_mu);
			head->next = loop->reserve;
			loop->reserve = head;
		} else {
			free(head);
		}
		head = next;
	}
}

/* The heartbeat. An idle loop runs it too, so a beat older than the
 * watchdog threshold means one callback, or one turn, has run that long. */
static void loop_beat_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	watch_beat();
}

int loop_init(struct loop *loop, struct server *server, unsigned index)
{
	loop->server = server;
	loop->index = index;
	loop->base = event_base_new();
	if (loop->base == NULL)
		return -1;
	/* EV_PERSIST keeps the inbox armed; it fires only when activated. */
	loop->inbox_event = event_new(loop->base, -1, EV_PERSIST, loop_inbox_cb, loop);
	if (loop->inbox_event == NULL)
		return -1;
	tern_mutex_init(&loop->inbox_mu, "loop inbox");
	loop->reserve_block = calloc(TERN_LOOP_TASK_RESERVE, sizeof(*loop->reserve_block));
	if (loop->reserve_block == NULL)
		return -1;
	for (size_t i = 0; i < TERN_LOOP_TASK_RESERVE; i++) {
		loop->reserve_block[i].reserved = true;
		loop->reserve_block[i].next = loop->reserve;
		loop->reserve = &loop->reserve_block[i];
	}
	uint32_t threshold = server != NULL && server->config != NULL
				     ? server->config->watchdog_threshold_ms
				     : TERN_WATCHDOG_THRESHOLD_MS_DEFAULT;
	uint32_t period = watch_beat_period_ms(threshold);
	struct timeval every = {.tv_sec = period / 1000, .tv_usec = (period % 1000) * 1000};
	loop->beat_event = event_new(loop->base, -1, EV_PERSIST, loop_beat_cb, loop);
	if (loop->beat_event == NULL || event_add(loop->beat_event, &every) < 0)
		return -1;
	return 0;
}

static void *loop_thread_main(void *arg)
{
	struct loop *loop = arg;
	current_loop = loop;
	watch_thread_begin(WATCH_LOOP, "loop %u", loop->index);
	/* Runs while idle too (the heartbeat alone would keep it running);
	 * loop_join breaks it. */
	event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
	watch_thread_end();
	current_loop = NULL;
	return NULL;
}

int loop_start(struct loop *loop)
{
	return pthread_create(&loop->thread, NULL, loop_thread_main, loop) == 0 ? 0 : -1;
}

static void loop_exit_task(void *arg)
{
	struct loop *loop = arg;
	event_base_loopexit(loop->base, NULL);
}

void loop_join(struct loop *loop)
{
	loop_post(loop, loop_exit_task, loop);
	pthread_join(loop->thread, NULL);
}

void loop_deinit(struct loop *loop)
{
	/* Tasks posted after the loop stopped still own memory: run them here
	 * (they only free or drop references once the loop is gone). */
	loop_inbox_cb(-1, 0, loop);
	if (loop->inbox_event != NULL)
		event_free(loop->inbox_event);
	if (loop->beat_event != NULL)
		event_free(loop->beat_event);
	if (loop->base != NULL)
		event_base_free(loop->base);
	tern_mutex_destroy(&loop->inbox_mu);
	free(loop->reserve_block);
	loop->reserve_block = NULL;
	loop->reserve = NULL;
	loop->base = NULL;
	loop->inbox_event = NULL;
	loop->beat_event = NULL;
}

/* A task lost for want of memory would be a reply its connection waits
 * for until the client gives up: take one from the reserve instead, and
 * when even that is used up, wait for memory (the watchdog reports a loop
 * that waits past its threshold). */
static struct loop_task *task_new(struct loop *loop)
{
	struct loop_task *t = malloc(sizeof(*t));
	for (unsigned waits = 0; t == NULL; waits++) {
		{
			TERN_LOCK_GUARD(&loop->inbox_mu);
			t = loop->reserve;
			if (t != NULL)
				loop->reserve = t->next;
		}
		if (t != NULL)
			return t;
		if (waits == 0)
			log_error("loop %u: out of memory and its %u reserved tasks are in use: "
				  "posting to it waits for memory", loop->index, TERN_LOOP_TASK_RESERVE);
		struct timespec ms = {0, 1000 * 1000};
		nanosleep(&ms, NULL);
		t = malloc(sizeof(*t));
	}
	t->reserved = false;
	return t;
}

void loop_post(struct loop *loop, loop_task_fn *fn, void *arg)
{
	struct loop_task *t = task_new(loop);
	t->fn = fn;
	t->arg = arg;
	t->next = NULL;
	{
		TERN_LOCK_GUARD(&loop->inbox_mu);
		if (loop->inbox_tail != NULL)
			loop->inbox_tail->next = t;
		else
			loop->inbox_head = t;
		loop->inbox_tail = t;
	}
	event_active(loop->inbox_event, EV_READ, 0);
}


void loop_cleanup_add(struct loop *loop, struct loop_cleanup *c)
{
	c->prev = NULL;
	c->next = loop->cleanups;
	if (loop->cleanups != NULL)
		loop->cleanups->prev = c;
	loop->cleanups = c;
}

void loop_cleanup_remove(struct loop *loop, struct loop_cleanup *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (loop->cleanups == c)
		loop->cleanups = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

void loop_run_cleanups(struct loop *loop)
{
	while (loop->cleanups != NULL) {
		struct loop_cleanup *c = loop->cleanups;
		loop_cleanup_remove(loop, c);
		c->fn(c);
	}
}
