#include "proto/imap/stale-fix.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/log.h"
#include "proto/imap/session.h"
#include "server/conn.h"
#include "server/delivery.h"
#include "server/loop.h"
#include "server/server.h"
#include "store/store.h"

struct stale_fix {
	struct store_task task;      /* first: the task is the fix */
	struct conn *conn;           /* referenced while the chain runs */
	char *user;
	unsigned fixed;
};

static int fix_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct stale_fix *f = arg;
	return store_fix_stale(st, TERN_STORE_STALE_FIX_PER_TASK, &f->fixed, err_r);
}

static void fix_done(struct store_task *t)
{
	struct stale_fix *f = t->arg;
	struct conn *c = f->conn;
	struct delivery *d = c->loop->server->delivery;
	if (t->result < 0 && t->err != TERN_ERR_TEMP && t->err != TERN_ERR_NOTFOUND) {
		/* TEMP: the worker was busy past the deadline; the next read
		 * queues the fix again. NOTFOUND: a move took the store away. */
		log_warn("imap: user=%s: writing back reparsed cached parses failed: %s", f->user,
			 tern_error_str(t->err));
	} else if (f->fixed == TERN_STORE_STALE_FIX_PER_TASK && d != NULL) {
		/* more are left: the next part, after what queued meanwhile */
		f->fixed = 0;
		f->task.result = 0;
		f->task.err = TERN_ERR_NONE;
		f->task.deadline_ms = 0;
		delivery_store_task(d, &f->task);
		return;
	}
	if (!c->closing && c->state != NULL)
		((struct imap_session *)c->state)->stale_fix_queued = false;
	free(f->user);
	free(f);
	conn_unref(&c);
}

void imap_stale_fix_kick(struct imap_session *s)
{
	if (s->store == NULL || !store_stale_seen(s->store) || s->stale_fix_queued)
		return;
	struct delivery *d = s->conn->loop->server->delivery;
	struct stale_fix *f = d != NULL ? calloc(1, sizeof(*f)) : NULL;
	if (f == NULL || (f->user = strdup(s->user)) == NULL) {
		free(f);
		return;    /* the parses stay marked: the next read tries again */
	}
	f->conn = s->conn;
	f->task.user = f->user;
	f->task.run = fix_run;
	f->task.arg = f;
	f->task.done = fix_done;
	f->task.loop = s->conn->loop;
	s->stale_fix_queued = true;
	conn_ref(s->conn);
	delivery_store_task(d, &f->task);
}
