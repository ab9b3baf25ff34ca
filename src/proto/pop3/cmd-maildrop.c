/* POP3 TRANSACTION state commands over the listing taken at logon (RFC 1939
 * §5): STAT, LIST, UIDL, DELE, RSET, NOOP, and QUIT with its UPDATE step. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proto/pop3/message.h"
#include "proto/pop3/session-private.h"
#include "server/delivery.h"
#include "server/loop.h"
#include "server/notify.h"
#include "server/server.h"
#include "store/store.h"

struct pop3_msg *pop3_msg_arg(struct pop3_session *s, const char *arg)
{
	char *end;
	errno = 0;
	unsigned long long n = arg[0] >= '0' && arg[0] <= '9' ? strtoull(arg, &end, 10) : 0;
	if (n == 0 || errno != 0 || *end != '\0' || n > s->msg_count) {
		pop3_reply(s, "-ERR No such message");
		return NULL;
	}
	struct pop3_msg *m = &s->msgs[n - 1];
	if (m->deleted) {
		pop3_reply(s, "-ERR Message is deleted");
		return NULL;
	}
	return m;
}

static size_t msg_number(const struct pop3_session *s, const struct pop3_msg *m)
{
	return (size_t)(m - s->msgs) + 1;
}

void pop3_cmd_stat(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	size_t count = 0;
	uint64_t size = 0;
	for (size_t i = 0; i < s->msg_count; i++) {
		if (!s->msgs[i].deleted) {
			count++;
			size += s->msgs[i].size;
		}
	}
	conn_printf(s->conn, "+OK %zu %llu\r\n", count, (unsigned long long)size);
}

/* One LIST or UIDL value for m. */
static void listing_value(const struct pop3_session *s, const struct pop3_msg *m, bool uidl,
			  char *buf, size_t size)
{
	if (uidl)
		pop3_uidl_format(buf, size, s->uidvalidity, m->uid);
	else
		snprintf(buf, size, "%llu", (unsigned long long)m->size);
}

/* LIST and UIDL share their shape (RFC 1939 §5 and §7). */
static void listing(struct pop3_session *s, const struct pop3_cmd *cmd, bool uidl)
{
	char value[32];
	if (cmd->argc == 1) {
		struct pop3_msg *m = pop3_msg_arg(s, cmd->args[0]);
		if (m != NULL) {
			listing_value(s, m, uidl, value, sizeof(value));
			conn_printf(s->conn, "+OK %zu %s\r\n", msg_number(s, m), value);
		}
		return;
	}
	pop3_reply(s, uidl ? "+OK Unique-ID listing follows" : "+OK Scan listing follows");
	for (size_t i = 0; i < s->msg_count; i++) {
		if (s->msgs[i].deleted)
			continue;
		listing_value(s, &s->msgs[i], uidl, value, sizeof(value));
		conn_printf(s->conn, "%zu %s\r\n", i + 1, value);
	}
	pop3_reply(s, ".");
}

void pop3_cmd_list(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	listing(s, cmd, false);
}

void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	listing(s, cmd, true);
}

void pop3_cmd_dele(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	struct pop3_msg *m = pop3_msg_arg(s, cmd->args[0]);
	if (m == NULL)
		return;
	m->deleted = true;
	conn_printf(s->conn, "+OK Message %zu deleted\r\n", msg_number(s, m));
}

void pop3_cmd_rset(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	for (size_t i = 0; i < s->msg_count; i++)
		s->msgs[i].deleted = false;
	conn_printf(s->conn, "+OK %zu messages\r\n", s->msg_count);
}

void pop3_cmd_noop(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	pop3_reply(s, "+OK");
}

/* RFC 1939 §6: the UPDATE state removes the messages marked by DELE and
 * marks \Seen the others that were retrieved, in one transaction. It is a
 * store task: the write runs on the worker that owns the user, never on
 * the loop thread, and is answered within TERN_STORE_WRITE_DEADLINE_MS (a
 * store locked by another process then gives -ERR [SYS/TEMP], and nothing
 * is deleted). */
struct pop3_update {
	struct store_task task;
	struct conn *conn;
	char *user;
	uint32_t *gone, *seen;   /* ascending UIDs: the listing is by UID */
	size_t ngone, nseen;
};

static void update_free(struct pop3_update *u)
{
	free(u->user);
	free(u->gone);
	free(u->seen);
	free(u);
}

/* On the worker, with its handle on the user's store. */
static int update_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct pop3_update *u = arg;
	int r = store_begin(st, err_r);
	if (r < 0)
		return -1;
	if (u->nseen > 0)
		r = store_flags_update(st, "INBOX", u->seen, u->nseen, STORE_FLAGS_ADD,
				       STORE_FLAG_SEEN, NULL, 0, NULL, NULL, NULL, NULL, err_r);
	if (r >= 0 && u->ngone > 0)
		r = store_expunge(st, "INBOX", u->gone, u->ngone, NULL, NULL, err_r);
	if (r >= 0)
		r = store_commit(st, err_r);
	else
		store_rollback(st);
	return r < 0 ? -1 : 0;
}

static void update_done(struct store_task *t)
{
	struct pop3_update *u = t->arg;
	struct conn *c = u->conn;
	struct pop3_session *s = c->state;
	s->store_task_pending = false;
	if (!c->closing) {
		if (t->result < 0)
			pop3_store_error(s, "expunge at QUIT",
					 t->err != TERN_ERR_NONE ? t->err : TERN_ERR_IO);
		else
			conn_printf(c, "+OK Logging out, %zu messages deleted\r\n", u->ngone);
		conn_close(c);
	}
	/* the user's IMAP sessions (IDLE ones at once) learn of it */
	if (t->result == 0)
		notify_user_changed(u->user);
	update_free(u);
	conn_unref(&c);
}

/* Starts the UPDATE write; false if there is nothing to write (*err_r =
 * TERN_ERR_NONE) or no memory for it (*err_r set). */
static bool update_start(struct pop3_session *s, enum tern_error *err_r)
{
	*err_r = TERN_ERR_NONE;
	size_t ngone = 0, nseen = 0;
	for (size_t i = 0; i < s->msg_count; i++) {
		if (s->msgs[i].deleted)
			ngone++;
		else if (s->msgs[i].retrieved)
			nseen++;
	}
	if (ngone + nseen == 0)
		return false;
	struct pop3_update *u = calloc(1, sizeof(*u));
	if (u == NULL || (u->user = strdup(s->user)) == NULL ||
	    (u->gone = malloc((ngone > 0 ? ngone : 1) * sizeof(*u->gone))) == NULL ||
	    (u->seen = malloc((nseen > 0 ? nseen : 1) * sizeof(*u->seen))) == NULL) {
		if (u != NULL)
			update_free(u);
		*err_r = TERN_ERR_NOMEM;
		return false;
	}
	for (size_t i = 0; i < s->msg_count; i++) {
		if (s->msgs[i].deleted)
			u->gone[u->ngone++] = s->msgs[i].uid;
		else if (s->msgs[i].retrieved)
			u->seen[u->nseen++] = s->msgs[i].uid;
	}
	u->conn = s->conn;
	u->task.user = u->user;
	u->task.run = update_run;
	u->task.arg = u;
	u->task.done = update_done;
	u->task.loop = s->conn->loop;
	s->store_task_pending = true;
	conn_ref(s->conn);
	/* nothing more is read: QUIT is the session's last command */
	conn_pause(s->conn);
	delivery_store_task(s->conn->loop->server->delivery, &u->task);
	return true;
}

void pop3_cmd_quit(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	if (s->state == POP3_STATE_TRANSACTION) {
		enum tern_error err;
		if (update_start(s, &err))
			return;   /* update_done answers and closes */
		if (err != TERN_ERR_NONE) {
			pop3_store_error(s, "expunge at QUIT", err);
			conn_close(s->conn);
			return;
		}
		pop3_reply(s, "+OK Logging out, 0 messages deleted");
	} else {
		pop3_reply(s, "+OK Logging out");
	}
	conn_close(s->conn);
}
