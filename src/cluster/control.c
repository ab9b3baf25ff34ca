#include "cluster/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "cluster/inbound.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/username.h"
#include "server/conn.h"
#include "server/freeze.h"

/* A control line: verb and up to four words. */
#define CONTROL_LINE_MAX 1024u

struct control_session {
	struct conn *conn;
	char front[64];   /* the node that opened it, for the log */
};

static bool parse_u32(const char *s, uint32_t *v_r)
{
	if (s == NULL || *s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

static void command(struct control_session *cs, char *line)
{
	struct conn *c = cs->conn;
	char *words[6] = {0};
	size_t n = 0;
	for (char *save = NULL, *w = strtok_r(line, " \t", &save); w != NULL && n < 6;
	     w = strtok_r(NULL, " \t", &save))
		words[n++] = w;
	if (n == 0) {
		conn_printf(c, "NO empty command\r\n");
		return;
	}
	const char *verb = words[0], *user = words[1];
	if (strcmp(verb, "QUIT") == 0) {
		conn_printf(c, "BYE\r\n");
		conn_close(c);
		return;
	}
	if (user == NULL || !username_valid(user)) {
		conn_printf(c, "NO bad or missing user name\r\n");
		return;
	}
	const char *why = "?";
	if (strcmp(verb, "FREEZE") == 0) {
		uint32_t lease;
		if (n != 3 || !parse_u32(words[2], &lease)) {
			conn_printf(c, "NO usage: FREEZE <user> <lease_ms>\r\n");
			return;
		}
		if (freeze_user(user, lease, &why) < 0) {
			conn_printf(c, "NO %s\r\n", why);
			return;
		}
		log_info("control: node %s froze %s for %u ms", cs->front, user, lease);
		conn_printf(c, "OK\r\n");
	} else if (strcmp(verb, "RELEASE") == 0) {
		bool stay = n == 3 && strcmp(words[2], "stay") == 0;
		bool moved = n == 5 && strcmp(words[2], "moved") == 0;
		if (!stay && !moved) {
			conn_printf(c, "NO usage: RELEASE <user> stay | RELEASE <user> moved <node> "
				       "<addr>\r\n");
			return;
		}
		int rc = freeze_release(user, moved ? words[3] : NULL, moved ? words[4] : NULL, &why);
		if (rc < 0)
			conn_printf(c, "NO %s\r\n", why);
		else if (rc > 0)
			conn_printf(c, "NO not frozen\r\n");
		else
			conn_printf(c, "OK\r\n");
	} else if (strcmp(verb, "STATUS") == 0) {
		uint64_t left;
		int rc = n == 2 ? freeze_status(user, &left, &why) : -2;
		if (rc == -2)
			conn_printf(c, "NO usage: STATUS <user>\r\n");
		else if (rc < 0)
			conn_printf(c, "NO %s\r\n", why);
		else if (rc > 0)
			conn_printf(c, "FROZEN %llu\r\n", (unsigned long long)left);
		else
			conn_printf(c, "ACTIVE\r\n");
	} else {
		conn_printf(c, "NO unknown command\r\n");
	}
}

static void control_input(struct conn *c)
{
	struct control_session *cs = c->state;
	struct evbuffer *in = conn_input(c);
	while (!c->closing) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > CONTROL_LINE_MAX) {
				conn_printf(c, "NO line too long\r\n");
				conn_close(c);
			}
			return;
		}
		if (len > CONTROL_LINE_MAX) {
			conn_printf(c, "NO line too long\r\n");
			conn_close(c);
		} else {
			command(cs, line);
		}
		free(line);
	}
}

static void control_shutdown(struct conn *c)
{
	conn_printf(c, "BYE server shutting down\r\n");
	conn_close(c);
}

static void control_timeout(struct conn *c)
{
	conn_printf(c, "BYE idle timeout\r\n");
}

static void control_free(struct conn *c)
{
	free(c->state);
	c->state = NULL;
}

const struct conn_proto control_proto = {
	.name = "control",
	.conn_class = CONN_CLASS_CLUSTER,
	.input = control_input,
	.shutdown = control_shutdown,
	.timeout = control_timeout,
	.free = control_free,
	.busy_reply = "NO too many connections\r\n",
	.no_memory_reply = "NO out of memory\r\n",
};

int control_session_adopt(struct conn *c, const struct cluster_open_request *req)
{
	struct control_session *cs = calloc(1, sizeof(*cs));
	if (cs == NULL)
		return -1;
	cs->conn = c;
	snprintf(cs->front, sizeof(cs->front), "%s", req->front);
	conn_switch_proto(c, &control_proto, cs, TERN_CLUSTER_IDLE_MS);
	log_info("control: node %s opened a control session", cs->front);
	return 0;
}
