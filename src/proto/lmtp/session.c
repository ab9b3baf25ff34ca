#include "proto/lmtp/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/limits.h"
#include "core/log.h"
#include "core/username.h"
#include "directory/directory.h"
#include "proto/lmtp/parser.h"
#include "cluster/inbound.h"
#include "proto/reply.h"
#include "proxy/lmtp-relay.h"
#include "server/delivery.h"
#include "server/freeze.h"
#include "server/lookup.h"
#include "server/inflight.h"
#include "server/moved.h"
#include "server/loop.h"
#include "server/server.h"
#include "server/watchdog.h"
#include "store/store.h"

struct lmtp_rcpt {
	char *user;
	char *folder;
	char *address;    /* as the client gave it, for replies and Delivered-To */
	uint64_t quota;   /* bytes, 0 = none */
	char *home;       /* homed on another node: its name, else NULL */
	char *home_addr;  /* and its cluster address */
	bool counted;     /* in the user's deliveries in flight (server/inflight.h) */
};

struct lmtp_session {
	struct conn *conn;
	struct lmtp_parser *parser;
	bool greeted_lhlo;
	char *mail_from;              /* NULL = no transaction */
	struct lmtp_rcpt *rcpts;
	size_t rcpt_count, rcpt_cap;
	unsigned bad_commands;
	bool bdat_active;             /* a BDAT sequence has begun */
	bool bdat_discard;            /* the chunk being read is refused */
	bool bdat_last;
	uint64_t bdat_chunk;
	bool delivering;              /* a job is in flight */
	/* A RCPT whose recipient is being looked up (off the loop thread):
	 * input waits meanwhile, so replies stay in command order. */
	struct lookup_request *lookup;
	char *rcpt_address;           /* as the client gave it */
	char *rcpt_user;              /* canonical */
	char *rcpt_detail;            /* +detail, "" = none */
	/* The pending RCPT's user is homed here but frozen by a move: parked
	 * (server/freeze.h) until the freeze ends or move_freeze_timeout. */
	struct freeze_park *park;
	uint64_t rcpt_quota;          /* the look-up's answer, kept meanwhile */
	bool rcpt_over_quota;
	/* Opened by a front node over the cluster channel: recipients must be
	 * homed here (a front with a stale view gets 451, never a relay on). */
	bool from_cluster;
	/* The transaction's message in flight: the local delivery and one
	 * relay per other home node; replies go out in RCPT order when all
	 * are back. */
	char **final;                 /* per recipient, heap */
	size_t parts_pending;
	size_t *local_of;             /* local job's recipient i -> s->rcpts index */
	struct relay_part **relays;   /* NULL once that part is back */
	size_t relay_count;
};

/* A home node's share of the transaction. */
struct relay_part {
	struct lmtp_session *s;
	struct lmtp_relay *relay;
	size_t *index;     /* relay recipient i -> s->rcpts index */
	size_t count;
	size_t slot;       /* in s->relays */
};

static void relay_part_free(struct relay_part **part)
{
	if (*part == NULL)
		return;
	lmtp_relay_cancel(&(*part)->relay);
	free((*part)->index);
	free(*part);
	*part = NULL;
}

static const struct tern_config *session_config(const struct lmtp_session *s)
{
	return s->conn->loop->server->config;
}

static void reply(struct lmtp_session *s, const char *line)
{
	conn_printf(s->conn, "%s\r\n", line);
}

static void transaction_reset(struct lmtp_session *s)
{
	free(s->mail_from);
	s->mail_from = NULL;
	for (size_t i = 0; i < s->rcpt_count; i++) {
		if (s->rcpts[i].counted)
			inflight_add(s->rcpts[i].user, -1);
		free(s->rcpts[i].user);
		free(s->rcpts[i].folder);
		free(s->rcpts[i].address);
		free(s->rcpts[i].home);
		free(s->rcpts[i].home_addr);
		free(s->final != NULL ? s->final[i] : NULL);
	}
	free(s->final);
	s->final = NULL;
	free(s->local_of);
	s->local_of = NULL;
	for (size_t i = 0; i < s->relay_count; i++)
		relay_part_free(&s->relays[i]);
	free(s->relays);
	s->relays = NULL;
	s->relay_count = 0;
	s->parts_pending = 0;
	s->rcpt_count = 0;
	s->bdat_active = s->bdat_discard = s->bdat_last = false;
	lmtp_parser_discard_body(s->parser);
}

/* A stopping server closes a session between transactions. */
static bool close_if_stopping(struct lmtp_session *s)
{
	if (!s->conn->shutting_down || s->mail_from != NULL || s->delivering || s->lookup != NULL ||
	    s->park != NULL)
		return false;
	reply(s, "421 4.3.2 Server shutting down, try again later");
	conn_close(s->conn);
	return true;
}

static void bad_command(struct lmtp_session *s, const char *line)
{
	reply(s, line);
	if (++s->bad_commands >= session_config(s)->max_bad_commands) {
		log_info("lmtp: rip=%s: too many bad commands, closing", s->conn->peer_addr);
		reply(s, "421 4.7.0 Too many errors, closing connection");
		conn_close(s->conn);
	}
}

/* ---- commands ---- */

static void cmd_lhlo(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	transaction_reset(s);
	s->greeted_lhlo = true;
	const struct tern_config *cfg = session_config(s);
	conn_printf(s->conn,
		    "250-%s\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
		    "250-SIZE %llu\r\n250 CHUNKING\r\n",
		    cfg->node_name, (unsigned long long)cfg->max_message_size);
}

static void cmd_helo(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	bad_command(s, "500 5.5.1 This is LMTP: use LHLO");
}

static void cmd_mail(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	if (s->mail_from != NULL) {
		bad_command(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (cmd->size_param > session_config(s)->max_message_size) {
		reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	s->mail_from = strdup(cmd->arg);
	if (s->mail_from == NULL) {
		reply(s, "451 4.3.0 Out of memory, try again later");
		return;
	}
	reply(s, "250 2.1.0 Sender OK");
}

static void reply_over_quota(struct lmtp_session *s, const char *address)
{
	conn_printf(s->conn, session_config(s)->quota_full_tempfail
				     ? "452 4.2.2 <%s> Mailbox is full\r\n"
				     : "552 5.2.2 <%s> Mailbox is full\r\n",
		    address);
}

static void rcpt_pending_clear(struct lmtp_session *s)
{
	free(s->rcpt_address);
	free(s->rcpt_user);
	free(s->rcpt_detail);
	s->rcpt_address = s->rcpt_user = s->rcpt_detail = NULL;
}

/* Adds the recipient the look-up accepted; replies either way. */
static void rcpt_add(struct lmtp_session *s, const char *address, const char *user,
		     const char *detail, uint64_t quota, const char *home, const char *home_addr)
{
	/* A +detail that cannot name a folder delivers to INBOX, as one that
	 * names no existing folder does: it is the sender's text, never a
	 * reason to refuse the recipient's mail. */
	const char *folder = detail[0] != '\0' && store_folder_name_valid(detail) ? detail : "INBOX";
	if (s->rcpt_count == s->rcpt_cap) {
		size_t cap = s->rcpt_cap > 0 ? s->rcpt_cap * 2 : 4;
		struct lmtp_rcpt *r = realloc(s->rcpts, cap * sizeof(*r));
		if (r == NULL) {
			reply(s, "452 4.3.0 Out of memory");
			return;
		}
		s->rcpts = r;
		s->rcpt_cap = cap;
	}
	struct lmtp_rcpt *r = &s->rcpts[s->rcpt_count++];
	r->user = strdup(user);
	r->folder = strdup(folder);
	r->address = strdup(address);
	r->quota = quota;
	r->home = home != NULL ? strdup(home) : NULL;
	r->home_addr = home != NULL ? strdup(home_addr) : NULL;
	if (r->user == NULL || r->folder == NULL || r->address == NULL ||
	    (home != NULL && (r->home == NULL || r->home_addr == NULL))) {
		free(r->user);
		free(r->folder);
		free(r->address);
		free(r->home);
		free(r->home_addr);
		s->rcpt_count--;
		reply(s, "452 4.3.0 Out of memory");
		return;
	}
	/* a move's freeze waits for it until the transaction ends */
	r->counted = home == NULL;
	if (r->counted)
		inflight_add(r->user, 1);
	conn_printf(s->conn, "250 2.1.5 <%s> Recipient OK\r\n", address);
}

/* The pending RCPT's user is homed here and not frozen (any more): over
 * quota, or accepted. */
static void rcpt_here(struct lmtp_session *s)
{
	const char *address = s->rcpt_address;
	if (s->rcpt_over_quota) {
		log_info("lmtp: rcpt=%s user=%s: over quota, refused", address, s->rcpt_user);
		reply_over_quota(s, address);
	} else {
		rcpt_add(s, address, s->rcpt_user, s->rcpt_detail, s->rcpt_quota, NULL, NULL);
	}
}

/* The freeze the pending RCPT was parked on has ended, or its deadline
 * passed. Moved: the recipient is relayed to the new home after DATA,
 * as any recipient homed elsewhere. */
static void rcpt_unparked(void *ctx, const struct freeze_outcome *o)
{
	struct lmtp_session *s = ctx;
	const char *address = s->rcpt_address;
	if (s->conn->closing) {
		/* nobody to answer */
	} else if (o->result == FREEZE_SERVE_HERE) {
		rcpt_here(s);
	} else if (o->result == FREEZE_MOVED) {
		/* this node's own move: it relays on to the new home, also for a
		 * front (the new home never sends it back) */
		log_info("lmtp: rcpt=%s user=%s: moved to %s while parked, relayed there", address,
			 s->rcpt_user, o->node);
		rcpt_add(s, address, s->rcpt_user, s->rcpt_detail, 0, o->node, o->addr);
	} else {
		log_info("lmtp: rcpt=%s user=%s: still frozen after %u ms (%s), temporary failure",
			 address, s->rcpt_user, session_config(s)->move_freeze_timeout_ms, o->why);
		conn_printf(s->conn, "451 4.2.0 <%s> Mailbox is being moved, try again later\r\n",
			    address);
	}
	rcpt_pending_clear(s);
	if (!s->conn->closing && !close_if_stopping(s))
		conn_resume(s->conn);
}

/* The directory's answer for the pending RCPT (on the loop thread): unknown,
 * elsewhere, already over quota (the RCPT-time check: a user at or over the
 * limit is refused before the MTA sends the message; the usage was read
 * with the look-up, only for users with a limit), or accepted. Then the
 * commands that arrived meanwhile are read. */
static void rcpt_resolved(const struct lookup_result *r, void *ctx)
{
	struct lmtp_session *s = ctx;
	const char *address = s->rcpt_address;
	char moved_node[TERN_CLUSTER_NODE_NAME_MAX + 1], moved_addr[128];
	if (s->conn->closing) {
		/* the client hung up meanwhile: nobody to answer */
	} else if (r->found < 0) {
		/* TEMP: the directory is locked or slow (the look-up's deadline) */
		if (r->err == TERN_ERR_TEMP)
			log_warn("lmtp: rcpt=%s: directory look-up failed: %s", address,
				 tern_error_str(r->err));
		else
			log_error("lmtp: rcpt=%s: directory look-up failed: %s", address,
				  tern_error_str(r->err));
		conn_printf(s->conn, "451 4.3.0 <%s> Temporary directory failure\r\n", address);
	} else if (r->found == 0) {
		conn_printf(s->conn, "550 5.1.1 <%s> User unknown\r\n", address);
	} else if (!moved_none() && moved_get(s->rcpt_user, moved_node, sizeof(moved_node),
					      moved_addr, sizeof(moved_addr))) {
		/* this node moved the mailbox away itself: it knows the new home
		 * before any cache does, so it relays there (also for a front
		 * whose view is older; the new home never sends it back) */
		rcpt_add(s, address, s->rcpt_user, s->rcpt_detail, 0, moved_node, moved_addr);
	} else if (!r->here && s->from_cluster) {
		/* moved meanwhile: the front relays again after its next look-up */
		conn_printf(s->conn, "451 4.4.0 <%s> Mailbox is on node %s, not here\r\n", address,
			    r->user->home);
	} else if (!r->here) {
		/* relayed to the home node after DATA, which answers for it then */
		rcpt_add(s, address, s->rcpt_user, s->rcpt_detail, 0, r->user->home, r->home_addr);
	} else {
		/* homed here: is the user frozen by a move? (one atomic load
		 * when nobody on the node is) */
		s->rcpt_quota = r->quota;
		s->rcpt_over_quota = r->quota != 0 && r->usage_known && r->used >= r->quota;
		uint64_t deadline = tern_now_ms() + session_config(s)->move_freeze_timeout_ms;
		int parked = freeze_park(s->conn->loop, s->rcpt_user, "lmtp rcpt", deadline,
					 rcpt_unparked, s, &s->park);
		if (parked > 0)
			return;   /* rcpt_unparked answers and reads on */
		if (parked < 0)
			conn_printf(s->conn, "451 4.3.0 <%s> Out of memory\r\n", address);
		else
			rcpt_here(s);
	}
	rcpt_pending_clear(s);
	if (!s->conn->closing && !close_if_stopping(s))
		conn_resume(s->conn);
}

static void cmd_rcpt(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	if (s->mail_from == NULL) {
		bad_command(s, "503 5.5.1 MAIL first");
		return;
	}
	if (s->bdat_active) {
		bad_command(s, "503 5.5.1 RCPT not allowed during BDAT");
		return;
	}
	if (s->rcpt_count >= session_config(s)->max_recipients) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	char user[TERN_USERNAME_MAX + 1], detail[TERN_FOLDER_NAME_MAX + 1];
	if (username_parse(cmd->arg, session_config(s)->domains, user, sizeof(user), detail,
			   sizeof(detail)) < 0) {
		conn_printf(s->conn, "550 5.1.1 <%s> User unknown\r\n", cmd->arg);
		return;
	}
	s->rcpt_address = strdup(cmd->arg);
	s->rcpt_user = strdup(user);
	s->rcpt_detail = strdup(detail);
	if (s->rcpt_address == NULL || s->rcpt_user == NULL || s->rcpt_detail == NULL) {
		rcpt_pending_clear(s);
		reply(s, "452 4.3.0 Out of memory");
		return;
	}
	/* The directory is read off the loop thread; this session reads no
	 * further command until the answer (or the look-up's deadline) comes. */
	conn_pause(s->conn);
	lookup_user(s->conn->loop, user, LOOKUP_USAGE, rcpt_resolved, s, &s->lookup);
}

/* One part of the transaction (the local delivery, or one home node's
 * relay) is back: when it was the last, every recipient is answered in
 * RCPT order and the session reads on. */
static void part_done(struct lmtp_session *s)
{
	if (--s->parts_pending > 0)
		return;
	struct conn *c = s->conn;
	for (size_t i = 0; !c->closing && i < s->rcpt_count; i++) {
		if (s->final[i] != NULL)
			conn_printf(c, "%s\r\n", s->final[i]);
		else
			conn_printf(c, "451 4.3.0 <%s> Out of memory\r\n", s->rcpts[i].address);
	}
	s->delivering = false;
	transaction_reset(s);
	if (!c->closing && !close_if_stopping(s))
		conn_resume(c);
}

static char *reply_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *reply_line(const char *fmt, ...)
{
	va_list ap;
	char *line = NULL;
	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	return line;
}

static void delivery_done(struct delivery_job *job)
{
	struct conn *c = job->ctx;
	struct lmtp_session *s = c->state;
	for (size_t i = 0; i < job->rcpt_count; i++) {
		const struct delivery_rcpt *r = &job->rcpts[i];
		size_t k = s->local_of[i];
		const char *address = s->rcpts[k].address;
		if (r->err == TERN_ERR_NONE) {
			s->final[k] = reply_line("250 2.0.0 <%s> %u Saved", address, r->uid);
		} else if (r->err == TERN_ERR_NOQUOTA) {
			log_info("lmtp: rcpt=%s user=%s: message of %zu bytes over quota, refused",
				 address, r->user, job->size);
			s->final[k] = session_config(s)->quota_full_tempfail
				? reply_line("452 4.2.2 <%s> Mailbox is full", address)
				: reply_line("552 5.2.2 <%s> Mailbox is full", address);
		} else {
			s->final[k] = reply_line("%s <%s>", tern_reply_for(r->err)->lmtp, address);
		}
	}
	delivery_job_free(&job);
	part_done(s);
	conn_unref(&c);
}

/* A home node's replies for its recipients. */
static void relay_done(void *ctx, char **replies)
{
	struct relay_part *part = ctx;
	struct lmtp_session *s = part->s;
	for (size_t i = 0; replies != NULL && i < part->count; i++) {
		size_t k = part->index[i];
		s->final[k] = replies[i];
		replies[i] = NULL;
	}
	part->relay = NULL;   /* it has ended */
	relay_part_free(&s->relays[part->slot]);
	part_done(s);
}

/* Starts the relay of the recipients homed on rcpts[first].home. */
static bool relay_group(struct lmtp_session *s, size_t first, const char *body, size_t size)
{
	const char *home = s->rcpts[first].home;
	struct relay_part *part = calloc(1, sizeof(*part));
	size_t n = 0;
	for (size_t i = first; i < s->rcpt_count; i++)
		n += s->rcpts[i].home != NULL && strcmp(s->rcpts[i].home, home) == 0;
	const char **addrs = calloc(n, sizeof(*addrs));
	if (part != NULL)
		part->index = calloc(n, sizeof(*part->index));
	if (part == NULL || addrs == NULL || part->index == NULL) {
		if (part != NULL)
			free(part->index);
		free(part);
		free(addrs);
		return false;
	}
	for (size_t i = first, k = 0; i < s->rcpt_count; i++) {
		if (s->rcpts[i].home != NULL && strcmp(s->rcpts[i].home, home) == 0) {
			part->index[k] = i;
			addrs[k++] = s->rcpts[i].address;
		}
	}
	part->s = s;
	part->count = n;
	part->slot = s->relay_count++;
	s->relays[part->slot] = part;
	struct lmtp_relay_request q = {
		.home = home,
		.home_addr = s->rcpts[first].home_addr,
		.mail_from = s->mail_from,
		.rcpts = addrs,
		.rcpt_count = n,
		.body = body,
		.size = size,
	};
	s->parts_pending++;
	lmtp_relay_start(s->conn->loop, &q, relay_done, part, &part->relay);
	free(addrs);
	return true;
}

static void deliver_body(struct lmtp_session *s)
{
	if (lmtp_parser_body_too_big(s->parser)) {
		for (size_t i = 0; i < s->rcpt_count; i++)
			conn_printf(s->conn, "552 5.3.4 <%s> Message too big for system\r\n",
				    s->rcpts[i].address);
		transaction_reset(s);
		return;
	}
	size_t local = 0;
	for (size_t i = 0; i < s->rcpt_count; i++)
		local += s->rcpts[i].home == NULL;
	s->final = calloc(s->rcpt_count, sizeof(*s->final));
	s->local_of = calloc(local > 0 ? local : 1, sizeof(*s->local_of));
	s->relays = calloc(s->rcpt_count, sizeof(*s->relays));
	struct delivery_job *job = local > 0 ? delivery_job_new(local) : NULL;
	size_t size = 0;
	char *body = lmtp_parser_take_body(s->parser, &size);
	if (s->final == NULL || s->local_of == NULL || s->relays == NULL || body == NULL ||
	    (local > 0 && job == NULL))
		goto oom;
	for (size_t i = 0, k = 0; i < s->rcpt_count && job != NULL; i++) {
		if (s->rcpts[i].home != NULL)
			continue;
		struct delivery_rcpt *r = &job->rcpts[k];
		s->local_of[k++] = i;
		r->user = strdup(s->rcpts[i].user);
		r->folder = strdup(s->rcpts[i].folder);
		r->delivered_to = strdup(s->rcpts[i].address);
		r->fallback_inbox = true;
		r->quota = s->rcpts[i].quota;
		if (r->user == NULL || r->folder == NULL || r->delivered_to == NULL)
			goto oom;
	}
	if (job != NULL && (job->return_path = strdup(s->mail_from)) == NULL)
		goto oom;
	s->delivering = true;
	/* one part more until every part is started, so none finishes it early */
	s->parts_pending = 1;
	conn_pause(s->conn);
	for (size_t i = 0; i < s->rcpt_count; i++) {
		bool first_of_home = s->rcpts[i].home != NULL;
		for (size_t j = 0; first_of_home && j < i; j++)
			first_of_home = s->rcpts[j].home == NULL ||
					strcmp(s->rcpts[j].home, s->rcpts[i].home) != 0;
		if (first_of_home && !relay_group(s, i, body, size)) {
			for (size_t j = i; j < s->rcpt_count; j++) {
				if (s->rcpts[j].home != NULL && s->final[j] == NULL &&
				    strcmp(s->rcpts[j].home, s->rcpts[i].home) == 0)
					s->final[j] = reply_line("451 4.3.0 <%s> Out of memory",
								 s->rcpts[j].address);
			}
		}
	}
	if (job != NULL) {
		job->data = body;
		job->size = size;
		body = NULL;
		job->done = delivery_done;
		job->ctx = s->conn;
		job->loop = s->conn->loop;
		s->parts_pending++;
		conn_ref(s->conn);
		delivery_submit(s->conn->loop->server->delivery, job);
	}
	free(body);
	part_done(s);
	return;
oom:
	free(body);
	delivery_job_free(&job);
	for (size_t i = 0; i < s->rcpt_count; i++)
		conn_printf(s->conn, "451 4.3.0 <%s> Out of memory\r\n", s->rcpts[i].address);
	transaction_reset(s);
}

static void cmd_data(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	if (s->bdat_active) {
		bad_command(s, "503 5.5.1 DATA not allowed after BDAT");
		return;
	}
	if (s->rcpt_count == 0) {
		bad_command(s, s->mail_from == NULL ? "503 5.5.1 MAIL first"
						    : "503 5.5.1 No valid recipients");
		return;
	}
	reply(s, "354 Start mail input; end with <CRLF>.<CRLF>");
	lmtp_parser_begin_data(s->parser);
}

static void bdat_chunk_done(struct lmtp_session *s);

static void cmd_bdat(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	/* The chunk is read even when refused, to stay in step (RFC 3030 §2). */
	s->bdat_discard = s->rcpt_count == 0;
	s->bdat_active = !s->bdat_discard;
	s->bdat_last = cmd->bdat_last;
	s->bdat_chunk = cmd->bdat_size;
	lmtp_parser_begin_bdat(s->parser, cmd->bdat_size);
	if (cmd->bdat_size == 0) {
		/* An empty chunk (typically "BDAT 0 LAST") is complete at once:
		 * no further input would ever finish it. */
		static const uint8_t none[1];
		size_t consumed;
		struct lmtp_cmd *unused = NULL;
		const char *error = NULL;
		if (lmtp_parser_feed(s->parser, none, 0, &consumed, &unused, &error) == TERN_PARSE_OK)
			bdat_chunk_done(s);
	}
}

static void bdat_chunk_done(struct lmtp_session *s)
{
	if (s->bdat_discard) {
		lmtp_parser_discard_body(s->parser);
		s->bdat_discard = false;
		bad_command(s, s->mail_from == NULL ? "503 5.5.1 MAIL first"
						    : "503 5.5.1 No valid recipients");
		return;
	}
	if (!s->bdat_last) {
		conn_printf(s->conn, "250 2.0.0 %llu octets received\r\n",
			    (unsigned long long)s->bdat_chunk);
		return;
	}
	deliver_body(s);
}

static void cmd_rset(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	transaction_reset(s);
	reply(s, "250 2.0.0 OK");
}

static void cmd_noop(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	reply(s, "250 2.0.0 OK");
}

static void cmd_quit(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	conn_printf(s->conn, "221 2.0.0 %s closing connection\r\n", session_config(s)->node_name);
	conn_close(s->conn);
}

static void cmd_vrfy(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_help(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	reply(s, "214 2.0.0 Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
}

static void cmd_starttls(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	bad_command(s, "502 5.5.1 STARTTLS not offered on LMTP");
}

struct lmtp_command {
	void (*handler)(struct lmtp_session *s, const struct lmtp_cmd *cmd);
	bool needs_lhlo;
};

/* RFC 2033 §4.1: LHLO comes first; HELO/EHLO are not LMTP. */
static const struct lmtp_command lmtp_commands[] = {
	[LMTP_CMD_LHLO] = {cmd_lhlo, false},
	[LMTP_CMD_HELO] = {cmd_helo, false},
	[LMTP_CMD_EHLO] = {cmd_helo, false},
	[LMTP_CMD_MAIL] = {cmd_mail, true},
	[LMTP_CMD_RCPT] = {cmd_rcpt, true},
	[LMTP_CMD_DATA] = {cmd_data, true},
	[LMTP_CMD_BDAT] = {cmd_bdat, true},
	[LMTP_CMD_RSET] = {cmd_rset, false},
	[LMTP_CMD_NOOP] = {cmd_noop, false},
	[LMTP_CMD_QUIT] = {cmd_quit, false},
	[LMTP_CMD_VRFY] = {cmd_vrfy, false},
	[LMTP_CMD_HELP] = {cmd_help, false},
	[LMTP_CMD_STARTTLS] = {cmd_starttls, false},
};

/* For the watchdog's report of a stuck loop. */
static const char *const lmtp_command_names[] = {
	[LMTP_CMD_LHLO] = "LHLO", [LMTP_CMD_HELO] = "HELO", [LMTP_CMD_EHLO] = "EHLO",
	[LMTP_CMD_MAIL] = "MAIL", [LMTP_CMD_RCPT] = "RCPT", [LMTP_CMD_DATA] = "DATA",
	[LMTP_CMD_BDAT] = "BDAT", [LMTP_CMD_RSET] = "RSET", [LMTP_CMD_NOOP] = "NOOP",
	[LMTP_CMD_QUIT] = "QUIT", [LMTP_CMD_VRFY] = "VRFY", [LMTP_CMD_HELP] = "HELP",
	[LMTP_CMD_STARTTLS] = "STARTTLS",
};

static void dispatch(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	const struct lmtp_command *c = &lmtp_commands[cmd->type];
	if (c->needs_lhlo && !s->greeted_lhlo) {
		if (cmd->type == LMTP_CMD_BDAT) {
			s->bdat_discard = true;
			s->bdat_chunk = cmd->bdat_size;
			lmtp_parser_begin_bdat(s->parser, cmd->bdat_size);
			return;
		}
		bad_command(s, "503 5.5.1 Send LHLO first");
		return;
	}
	watch_activity("lmtp", NULL, lmtp_command_names[cmd->type]);
	c->handler(s, cmd);
	watch_activity_clear();
}

/* ---- connection glue ---- */

static void lmtp_input(struct conn *c)
{
	struct lmtp_session *s = c->state;
	struct evbuffer *in = conn_input(c);
	while (!c->closing && !c->read_paused && evbuffer_get_length(in) > 0) {
		if (conn_throttle_input(c))
			break;
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		enum lmtp_parser_mode mode = lmtp_parser_mode(s->parser);
		size_t consumed = 0;
		struct lmtp_cmd *cmd = NULL;
		const char *error = NULL;
		enum tern_parse r = lmtp_parser_feed(s->parser, v.iov_base, v.iov_len, &consumed,
						     &cmd, &error);
		evbuffer_drain(in, consumed);
		switch (r) {
		case TERN_PARSE_NEED_MORE:
			break;
		case TERN_PARSE_OK:
			if (mode == LMTP_MODE_COMMAND) {
				dispatch(s, cmd);
				lmtp_cmd_free(&cmd);
			} else if (mode == LMTP_MODE_DATA) {
				deliver_body(s);
			} else {
				bdat_chunk_done(s);
			}
			break;
		case TERN_PARSE_ERROR_RECOVERABLE:
			bad_command(s, error);
			break;
		case TERN_PARSE_ERROR_FATAL:
			log_info("lmtp: rip=%s: %s", c->peer_addr, error);
			reply(s, error);
			conn_close(c);
			return;
		}
	}
	if (!c->closing && !c->read_paused)
		(void)close_if_stopping(s);
}

static int lmtp_open(struct conn *c);

int lmtp_session_adopt(struct conn *c, const struct cluster_open_request *req)
{
	const struct tern_config *cfg = c->loop->server->config;
	(void)req;
	conn_switch_proto(c, &lmtp_proto, NULL, cfg->lmtp_timeout_ms);
	if (lmtp_open(c) < 0)
		return -1;
	((struct lmtp_session *)c->state)->from_cluster = true;
	return 0;
}

static int lmtp_open(struct conn *c)
{
	const struct tern_config *cfg = c->loop->server->config;
	struct lmtp_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -1;
	struct lmtp_parser_limits limits = {
		.max_line_length = cfg->max_line_length,
		.max_message_size = cfg->max_message_size,
	};
	s->conn = c;
	s->parser = lmtp_parser_new(&limits);
	c->state = s;
	if (s->parser == NULL)
		return -1;
	conn_printf(c, "220 %s LMTP Tern ready\r\n", cfg->node_name);
	return 0;
}

static void lmtp_shutdown(struct conn *c)
{
	(void)close_if_stopping(c->state);
}

static void lmtp_timeout(struct conn *c)
{
	conn_printf(c, "421 4.4.2 Idle timeout, closing connection\r\n");
}

static void lmtp_free(struct conn *c)
{
	struct lmtp_session *s = c->state;
	if (s == NULL)
		return;
	lookup_cancel(&s->lookup);
	freeze_park_cancel(&s->park);
	rcpt_pending_clear(s);
	transaction_reset(s);
	free(s->rcpts);
	lmtp_parser_free(&s->parser);
	free(s);
	c->state = NULL;
}

const struct conn_proto lmtp_proto = {
	.name = "lmtp",
	.conn_class = CONN_CLASS_LMTP,
	.open = lmtp_open,
	.input = lmtp_input,
	.shutdown = lmtp_shutdown,
	.timeout = lmtp_timeout,
	.free = lmtp_free,
	.busy_reply = "421 4.3.2 Too many connections, try again later\r\n",
	/* 421: the connection ends; 4.3.0 as in the 451 of a failed command */
	.no_memory_reply = "421 4.3.0 Server out of memory, closing connection\r\n",
};
