#include "proto/imap/store-write.h"

#include <stdlib.h>

#include "server/conn.h"
#include "server/delivery.h"
#include "server/loop.h"
#include "server/server.h"

struct imap_write {
	struct store_task task;
	struct conn *conn;
	struct imap_cmd *cmd;
	void *arg;
	imap_write_fn *write;
	imap_write_done_fn *done;
	imap_write_then_fn *then;
};

static int write_trampoline(struct store *st, void *arg, enum tern_error *err_r)
{
	struct imap_write *w = arg;
	return w->write(st, w->arg, err_r);
}

static void write_done(struct store_task *t)
{
	struct imap_write *w = t->arg;
	struct conn *c = w->conn;
	struct imap_session *s = c->state;
	enum imap_cmd_result r = IMAP_CMD_DONE;
	if (w->then != NULL)
		r = w->then(s, w->cmd, w->arg, t->result, t->err, c->closing);
	else
		w->done(s, w->cmd, w->arg, t->result, t->err, c->closing);
	free(w);
	if (r == IMAP_CMD_DONE)
		imap_command_finished(s);
	conn_unref(&c);
}

static enum imap_cmd_result start(struct imap_session *s, struct imap_cmd *cmd,
				  imap_write_fn *write, void *arg, imap_write_done_fn *done,
				  imap_write_then_fn *then)
{
	struct imap_write *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		if (then != NULL)
			return then(s, cmd, arg, -1, TERN_ERR_NOMEM, false) == IMAP_CMD_ASYNC
				       ? IMAP_CMD_ASYNC
				       : IMAP_CMD_DONE;
		done(s, cmd, arg, -1, TERN_ERR_NOMEM, false);
		return IMAP_CMD_DONE;
	}
	w->conn = s->conn;
	w->cmd = cmd;
	w->arg = arg;
	w->write = write;
	w->done = done;
	w->then = then;
	w->task.user = s->user;
	w->task.run = write_trampoline;
	w->task.arg = w;
	w->task.done = write_done;
	w->task.loop = s->conn->loop;
	conn_ref(s->conn);
	delivery_store_task(s->conn->loop->server->delivery, &w->task);
	return IMAP_CMD_ASYNC;
}

enum imap_cmd_result imap_store_write(struct imap_session *s, struct imap_cmd *cmd,
				      imap_write_fn *write, void *arg, imap_write_done_fn *done)
{
	return start(s, cmd, write, arg, done, NULL);
}

enum imap_cmd_result imap_store_write_then(struct imap_session *s, struct imap_cmd *cmd,
					   imap_write_fn *write, void *arg,
					   imap_write_then_fn *then)
{
	return start(s, cmd, write, arg, NULL, then);
}
