/* RETR and TOP (RFC 1939 §7): send a message, or its header and first lines,
 * byte-stuffed and ended with ".". The output buffer refers to the bytes read
 * from the store instead of copying them, so a large message exists once in
 * memory; only the stuffed dots are separate. */
#include <errno.h>
#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proto/pop3/message.h"
#include "proto/pop3/session-private.h"
#include "store/store.h"

/* The raw message shared by the output buffer's references to it. */
struct raw_ref {
	char *data;
	_Atomic unsigned refs;
};

static void raw_ref_release(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	struct raw_ref *r = arg;
	if (atomic_fetch_sub(&r->refs, 1) == 1) {
		free(r->data);
		free(r);
	}
}

/* Adds data[from, to) by reference. */
static int add_span(struct evbuffer *out, struct raw_ref *r, size_t from, size_t to)
{
	if (to == from)
		return 0;
	atomic_fetch_add(&r->refs, 1);
	if (evbuffer_add_reference(out, r->data + from, to - from, raw_ref_release, r) < 0) {
		atomic_fetch_sub(&r->refs, 1);
		return -1;
	}
	return 0;
}

/* Queues the first len bytes of r's message, stuffed, plus the terminator.
 * Takes over r (the caller's reference). */
static int send_stuffed(struct evbuffer *out, struct raw_ref *r, size_t len)
{
	int ret = 0;
	size_t pos = 0, scan = 0, dot;
	while (ret == 0 && (dot = pop3_next_dot_line(r->data, len, scan)) < len) {
		ret = add_span(out, r, pos, dot);
		if (ret == 0)
			ret = evbuffer_add(out, ".", 1);
		pos = dot;
		scan = dot + 1;
	}
	if (ret == 0)
		ret = add_span(out, r, pos, len);
	/* the terminator must start a line of its own */
	bool line_open = len > 0 && r->data[len - 1] != '\n';
	if (ret == 0)
		ret = evbuffer_add(out, line_open ? "\r\n.\r\n" : ".\r\n", line_open ? 5 : 3);
	raw_ref_release(NULL, 0, r);
	return ret;
}

/* Reads message m; NULL after replying if it cannot. */
static struct raw_ref *load(struct pop3_session *s, const struct pop3_msg *m, size_t *size_r)
{
	struct raw_ref *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		pop3_reply(s, "-ERR [SYS/TEMP] Out of memory");
		return NULL;
	}
	enum tern_error err = TERN_ERR_NONE;
	int found = store_msg_raw(s->store, "INBOX", m->uid, &r->data, size_r, &err);
	if (found <= 0) {
		free(r);
		if (found == 0)
			pop3_reply(s, "-ERR Message was removed by another session");
		else
			pop3_store_error(s, "read message", err);
		return NULL;
	}
	atomic_store(&r->refs, 1);
	return r;
}

void pop3_cmd_retr(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	struct pop3_msg *m = pop3_msg_arg(s, cmd->args[0]);
	size_t size;
	struct raw_ref *r = m != NULL ? load(s, m, &size) : NULL;
	if (r == NULL)
		return;
	conn_printf(s->conn, "+OK %zu octets\r\n", size);
	if (send_stuffed(conn_output(s->conn), r, size) < 0) {
		log_error("pop3: user=%s: RETR: out of memory queueing the message", s->user);
		conn_close(s->conn);
		return;
	}
	/* \Seen as IMAP will see it read, set at QUIT with the deletions (as
	 * Dovecot does): a write, and with it a sync, per RETR would bound a
	 * client fetching one message per round trip */
	if ((m->flags & STORE_FLAG_SEEN) == 0)
		m->retrieved = true;
}

void pop3_cmd_top(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	struct pop3_msg *m = pop3_msg_arg(s, cmd->args[0]);
	if (m == NULL)
		return;
	char *end;
	errno = 0;
	const char *arg = cmd->args[1];
	unsigned long long lines = arg[0] >= '0' && arg[0] <= '9' ? strtoull(arg, &end, 10) : 0;
	if (arg[0] < '0' || arg[0] > '9' || errno != 0 || *end != '\0') {
		pop3_reply(s, "-ERR Invalid number of lines");
		return;
	}
	size_t size;
	struct raw_ref *r = load(s, m, &size);
	if (r == NULL)
		return;
	pop3_reply(s, "+OK Top of message follows");
	if (send_stuffed(conn_output(s->conn), r, pop3_top_length(r->data, size, lines)) < 0) {
		log_error("pop3: user=%s: TOP: out of memory queueing the message", s->user);
		conn_close(s->conn);
	}
}
