/* POP3 TRANSACTION state commands over the listing taken at logon (RFC 1939
 * §5): STAT, LIST, UIDL, DELE, RSET, NOOP, and QUIT with its UPDATE step. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proto/pop3/message.h"
#include "proto/pop3/session-private.h"
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
 * marks \Seen the others that were retrieved, in one transaction. */
static int update_state(struct pop3_session *s, size_t *deleted_r, enum tern_error *err_r)
{
	uint32_t *gone = malloc((s->msg_count > 0 ? s->msg_count : 1) * sizeof(*gone));
	uint32_t *seen = malloc((s->msg_count > 0 ? s->msg_count : 1) * sizeof(*seen));
	size_t ngone = 0, nseen = 0;
	int r = -1;
	if (gone == NULL || seen == NULL) {
		*err_r = TERN_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < s->msg_count; i++) {
		/* ascending: the listing is by UID */
		if (s->msgs[i].deleted)
			gone[ngone++] = s->msgs[i].uid;
		else if (s->msgs[i].retrieved)
			seen[nseen++] = s->msgs[i].uid;
	}
	r = 0;
	if (ngone + nseen == 0)
		goto out;
	if ((r = store_begin(s->store, err_r)) < 0)
		goto out;
	if (nseen > 0)
		r = store_flags_update(s->store, "INBOX", seen, nseen, STORE_FLAGS_ADD,
				       STORE_FLAG_SEEN, NULL, 0, NULL, NULL, NULL, NULL, err_r);
	if (r >= 0 && ngone > 0)
		r = store_expunge(s->store, "INBOX", gone, ngone, NULL, NULL, err_r);
	if (r >= 0)
		r = store_commit(s->store, err_r);
	else
		store_rollback(s->store);
out:
	free(gone);
	free(seen);
	if (r >= 0)
		*deleted_r = ngone;
	return r < 0 ? -1 : 0;
}

void pop3_cmd_quit(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	if (s->state == POP3_STATE_TRANSACTION) {
		size_t deleted = 0;
		enum tern_error err = TERN_ERR_NONE;
		if (update_state(s, &deleted, &err) < 0) {
			pop3_store_error(s, "expunge at QUIT", err);
			conn_close(s->conn);
			return;
		}
		conn_printf(s->conn, "+OK Logging out, %zu messages deleted\r\n", deleted);
	} else {
		pop3_reply(s, "+OK Logging out");
	}
	conn_close(s->conn);
}
