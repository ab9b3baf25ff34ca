#include "proxy/lmtp-relay.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/dial.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/log.h"
#include "server/loop.h"
#include "server/server.h"

enum relay_step {
	R_DIAL,       /* waiting for a channel */
	R_GREETING,   /* a new channel: the home's 220 */
	R_LHLO,
	R_MAIL,       /* the transaction is sent; MAIL's reply */
	R_RCPT,       /* one reply per RCPT */
	R_DATA,       /* one reply per accepted recipient (or one for BDAT) */
};

#define REPLY_LINE_MAX 1024

struct lmtp_relay {
	struct loop *loop;
	char home[TERN_CLUSTER_NODE_NAME_MAX + 1];
	char addr[128];
	char *mail_from;
	char **rcpts;
	size_t rcpt_count;
	char *body;
	size_t size;
	char **replies;             /* final, per recipient */
	bool *accepted;             /* RCPT answered 2xx */
	size_t rcpt_seen, accepted_count, data_seen;
	bool any_reply;             /* the home answered something of the transaction */
	bool from_park, retried;
	struct bufferevent *bev;
	struct cluster_dial *dial;
	struct event *timer;
	enum relay_step step;
	const char *early;          /* a failure known before any I/O */
	char last[REPLY_LINE_MAX];  /* the reply being read: its last line */
	lmtp_relay_done_fn *done;
	void *ctx;
	struct lmtp_relay **owner;
};

static const struct tern_config *config_of(const struct lmtp_relay *r)
{
	return r->loop->server->config;
}

static void relay_free(struct lmtp_relay *r)
{
	if (r->owner != NULL)
		*r->owner = NULL;
	cluster_dial_cancel(&r->dial);
	if (r->bev != NULL)
		bufferevent_free(r->bev);
	if (r->timer != NULL)
		event_free(r->timer);
	for (size_t i = 0; i < r->rcpt_count; i++) {
		free(r->rcpts != NULL ? r->rcpts[i] : NULL);
		free(r->replies != NULL ? r->replies[i] : NULL);
	}
	free(r->rcpts);
	free(r->replies);
	free(r->accepted);
	free(r->mail_from);
	free(r->body);
	free(r);
}

/* Every recipient without a reply yet gets text (a 451 4.4.1 line). */
static void fill_missing(struct lmtp_relay *r, const char *fmt)
{
	for (size_t i = 0; i < r->rcpt_count; i++) {
		if (r->replies[i] != NULL)
			continue;
		char line[512];
		snprintf(line, sizeof(line), fmt, r->rcpts[i], r->home);
		r->replies[i] = strdup(line);
	}
}

static void complete(struct lmtp_relay *r, bool reusable)
{
	if (reusable && r->bev != NULL) {
		cluster_channel_park(r->loop, r->home, r->addr, "lmtp", r->bev);
		r->bev = NULL;
	}
	/* a reply that could not be copied for lack of memory */
	fill_missing(r, "451 4.3.0 <%s> Out of memory on the front node (home %s)");
	char **replies = r->replies;
	r->replies = NULL;
	lmtp_relay_done_fn *done = r->done;
	void *ctx = r->ctx;
	size_t n = r->rcpt_count;
	relay_free(r);
	done(ctx, replies);
	for (size_t i = 0; i < n; i++)
		free(replies[i]);
	free(replies);
}

static void fail(struct lmtp_relay *r, const char *fmt)
{
	fill_missing(r, fmt);
	complete(r, false);
}

static void arm(struct lmtp_relay *r, uint32_t ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	if (evtimer_add(r->timer, &tv) < 0)
		log_error("lmtp relay: home=%s: out of memory for a timer", r->home);
}

static void send_transaction(struct lmtp_relay *r)
{
	struct evbuffer *out = bufferevent_get_output(r->bev);
	int rc = evbuffer_add_printf(out, "MAIL FROM:<%s>\r\n", r->mail_from);
	for (size_t i = 0; rc >= 0 && i < r->rcpt_count; i++)
		rc = evbuffer_add_printf(out, "RCPT TO:<%s>\r\n", r->rcpts[i]);
	if (rc >= 0)
		rc = evbuffer_add_printf(out, "BDAT %zu LAST\r\n", r->size);
	if (rc >= 0 && r->size > 0)
		rc = evbuffer_add(out, r->body, r->size);
	if (rc < 0) {
		fail(r, "451 4.3.0 <%s> Out of memory on the front node (home %s)");
		return;
	}
	r->step = R_MAIL;
	/* the home node's store write is on the way: its own deadline, plus ours */
	arm(r, config_of(r)->cluster_timeout_ms + TERN_STORE_WRITE_DEADLINE_MS);
}

static char *copy_reply(const char *line)
{
	return strdup(line);
}

/* One complete reply (its last line in r->last); false when r is gone. */
static bool on_reply(struct lmtp_relay *r)
{
	int code = atoi(r->last);
	bool ok = code >= 200 && code < 300;
	switch (r->step) {
	case R_GREETING:
		if (code != 220)
			break;
		bufferevent_write(r->bev, "LHLO ", 5);
		bufferevent_write(r->bev, config_of(r)->node_name, strlen(config_of(r)->node_name));
		bufferevent_write(r->bev, "\r\n", 2);
		r->step = R_LHLO;
		return true;
	case R_LHLO:
		if (!ok)
			break;
		send_transaction(r);
		return r->step == R_MAIL;
	case R_MAIL:
		r->any_reply = true;
		if (!ok) {
			/* every RCPT and the BDAT are refused after this: its reply stands */
			for (size_t i = 0; i < r->rcpt_count; i++)
				r->replies[i] = copy_reply(r->last);
		}
		r->step = r->rcpt_count > 0 ? R_RCPT : R_DATA;
		return true;
	case R_RCPT:
		if (ok) {
			r->accepted[r->rcpt_seen] = true;
			r->accepted_count++;
		} else if (r->replies[r->rcpt_seen] == NULL) {
			r->replies[r->rcpt_seen] = copy_reply(r->last);
		}
		if (++r->rcpt_seen == r->rcpt_count)
			r->step = R_DATA;
		return true;
	case R_DATA:
		if (r->accepted_count == 0) {
			complete(r, true);   /* BDAT's one refusal: the RCPT replies stand */
			return false;
		}
		for (size_t i = 0, k = 0; i < r->rcpt_count; i++) {
			if (r->accepted[i] && k++ == r->data_seen) {
				r->replies[i] = copy_reply(r->last);
				break;
			}
		}
		if (++r->data_seen == r->accepted_count) {
			complete(r, true);
			return false;
		}
		return true;
	case R_DIAL:
		break;
	}
	log_warn("lmtp relay: home=%s: unexpected reply \"%s\"", r->home, r->last);
	fail(r, "451 4.4.1 <%s> Home node %s answered out of order; try again later");
	return false;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct lmtp_relay *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > REPLY_LINE_MAX) {
				fail(r, "451 4.4.1 <%s> Home node %s sent a line too long; try again later");
				return;
			}
			return;
		}
		bool final = len < 4 || line[3] == ' ';
		bool valid = len >= 3 && len < REPLY_LINE_MAX && line[0] >= '2' && line[0] <= '5';
		if (valid)
			snprintf(r->last, sizeof(r->last), "%s", line);
		free(line);
		if (!valid) {
			fail(r, "451 4.4.1 <%s> Home node %s sent a malformed reply; try again later");
			return;
		}
		if (!final)
			continue;
		/* progress: the deadline starts again */
		arm(r, config_of(r)->cluster_timeout_ms + TERN_STORE_WRITE_DEADLINE_MS);
		if (!on_reply(r))
			return;
	}
}

static void start_dial(struct lmtp_relay *r);

/* A parked channel the home had closed just before we used it: nothing of
 * the transaction was read there (no reply came), so a new channel may
 * carry it once. */
static bool retry(struct lmtp_relay *r)
{
	if (!r->from_park || r->retried || r->any_reply)
		return false;
	r->retried = true;
	r->from_park = false;
	bufferevent_free(r->bev);
	r->bev = NULL;
	r->step = R_DIAL;
	start_dial(r);
	return true;
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct lmtp_relay *r = arg;
	(void)bev;
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0)
		return;
	if (retry(r))
		return;
	log_warn("lmtp relay: home=%s: the channel closed in the middle of a transaction", r->home);
	fail(r, r->step >= R_MAIL && r->any_reply
		? "451 4.4.1 <%s> Home node %s went away before answering; try again later"
		: "451 4.4.1 <%s> Home node %s went away; try again later");
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct lmtp_relay *r = arg;
	if (r->early != NULL) {
		fail(r, r->early);
		return;
	}
	log_warn("lmtp relay: home=%s: no answer within the deadline", r->home);
	fail(r, "451 4.4.1 <%s> Home node %s did not answer in time; try again later");
}

static void use_channel(struct lmtp_relay *r, struct bufferevent *bev, bool fresh)
{
	r->bev = bev;
	bufferevent_setcb(bev, read_cb, NULL, event_cb, r);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (fresh) {
		r->step = R_GREETING;
		arm(r, config_of(r)->cluster_timeout_ms);
		read_cb(bev, r);   /* the greeting may be here already */
	} else {
		send_transaction(r);
	}
}

static void dialled(void *ctx, enum cluster_dial_status st, struct bufferevent *bev,
		    const char *status, const char *text)
{
	struct lmtp_relay *r = ctx;
	(void)status;
	log_debug("lmtp relay: home=%s: dialled: %d %s", r->home, (int)st, text);
	if (st == CLUSTER_DIAL_OK) {
		use_channel(r, bev, true);
		return;
	}
	if (st == CLUSTER_DIAL_REFUSED)
		log_warn("lmtp relay: home=%s: refused the delivery channel: %s", r->home, text);
	fail(r, "451 4.4.1 <%s> Mailbox is on node %s, which cannot be reached now; try again later");
}

static void start_dial(struct lmtp_relay *r)
{
	struct cluster_dial_request d = {
		.node = r->home,
		.addr = r->addr,
		.kind = "lmtp",
		.user = "",
		.client_addr = "",
		.params = "",
	};
	cluster_dial(r->loop, &d, dialled, r, &r->dial);
}

void lmtp_relay_start(struct loop *loop, const struct lmtp_relay_request *q,
		      lmtp_relay_done_fn *done, void *ctx, struct lmtp_relay **lr_r)
{
	struct lmtp_relay *r = calloc(1, sizeof(*r));
	bool ok = r != NULL;
	if (ok) {
		r->loop = loop;
		r->done = done;
		r->ctx = ctx;
		r->rcpt_count = q->rcpt_count;
		snprintf(r->home, sizeof(r->home), "%s", q->home);
		snprintf(r->addr, sizeof(r->addr), "%s", q->home_addr);
		r->timer = evtimer_new(loop->base, timer_cb, r);
		r->mail_from = strdup(q->mail_from);
		r->rcpts = calloc(q->rcpt_count, sizeof(*r->rcpts));
		r->replies = calloc(q->rcpt_count, sizeof(*r->replies));
		r->accepted = calloc(q->rcpt_count, sizeof(*r->accepted));
		r->body = malloc(q->size > 0 ? q->size : 1);
		ok = r->timer != NULL && r->mail_from != NULL && r->rcpts != NULL &&
		     r->replies != NULL && r->accepted != NULL && r->body != NULL;
		for (size_t i = 0; ok && i < q->rcpt_count; i++)
			ok = (r->rcpts[i] = strdup(q->rcpts[i])) != NULL;
	}
	if (!ok) {
		/* callers count on a later answer; without memory there is none */
		if (r != NULL) {
			r->rcpt_count = r->rcpts != NULL && r->replies != NULL ? r->rcpt_count : 0;
			relay_free(r);
		}
		*lr_r = NULL;
		char **replies = calloc(q->rcpt_count, sizeof(*replies));
		for (size_t i = 0; replies != NULL && i < q->rcpt_count; i++)
			replies[i] = NULL;
		done(ctx, replies);
		free(replies);
		return;
	}
	if (q->size > 0)
		memcpy(r->body, q->body, q->size);
	r->size = q->size;
	r->owner = lr_r;
	*lr_r = r;
	if (q->home_addr[0] == '\0' || config_of(r)->cluster_secret[0] == '\0') {
		r->early = "451 4.4.1 <%s> Mailbox is on node %s, which cannot be reached from here";
		event_active(r->timer, EV_TIMEOUT, 0);
		return;
	}
	struct bufferevent *bev = cluster_channel_unpark(loop, r->home, r->addr, "lmtp");
	if (bev != NULL) {
		r->from_park = true;
		use_channel(r, bev, false);
		return;
	}
	start_dial(r);
}

void lmtp_relay_cancel(struct lmtp_relay **lr)
{
	if (*lr == NULL)
		return;
	(*lr)->owner = NULL;
	relay_free(*lr);
	*lr = NULL;
}
