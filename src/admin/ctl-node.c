/* ternctl node list: the nodes registered in the directory, with whether
 * each is up (a fresh heartbeat, not stopped) or down. */
#include "admin/ctl-node.h"

#include "admin/ctl-output.h"

/* An ISO 8601 string for unix milliseconds, or null for "never". */
static json_t *time_json(int64_t ms)
{
	char buf[32];
	if (ms <= 0)
		return json_null();
	ctl_format_time(ms / 1000, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *node_json(const struct dir_node *n, int64_t now_ms)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	int64_t age = dir_node_heartbeat_age_ms(n, now_ms);
	json_object_set_new(o, "name", ctl_json_string(n->name));
	json_object_set_new(o, "cluster", ctl_json_string(n->cluster_addr ? n->cluster_addr : ""));
	json_object_set_new(o, "lmtp", ctl_json_string(n->lmtp_addr ? n->lmtp_addr : ""));
	json_object_set_new(o, "imap", ctl_json_string(n->imap_addr ? n->imap_addr : ""));
	json_object_set_new(o, "pop3", ctl_json_string(n->pop3_addr ? n->pop3_addr : ""));
	json_object_set_new(o, "admin", ctl_json_string(n->admin_addr ? n->admin_addr : ""));
	json_object_set_new(o, "version", ctl_json_string(n->version ? n->version : ""));
	json_object_set_new(o, "started", time_json(n->started_ms));
	json_object_set_new(o, "heartbeat", time_json(n->heartbeat_ms));
	json_object_set_new(o, "heartbeat_age_ms", age >= 0 ? json_integer(age) : json_null());
	json_object_set_new(o, "stopped", json_boolean(n->stopped));
	json_object_set_new(o, "number", json_integer(n->number));
	json_object_set_new(o, "status", json_string(dir_node_up(n, now_ms) ? "up" : "down"));
	return o;
}

int ctl_node_list(struct ctl *c, json_t **rows_r)
{
	struct directory *dir;
	if (ctl_directory(c, &dir) != 0)
		return -1;
	struct dir_node *nodes = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;
	if (dir->ops->node_list(dir, &nodes, &count, &err) != 0)
		return ctl_fail(c, CTL_ERROR, "cannot list nodes: %s", tern_error_str(err));
	/* One "now" for every row, so two nodes are judged alike. */
	int64_t now = dir_wall_ms();
	json_t *rows = json_array();
	for (size_t i = 0; rows != NULL && i < count; i++) {
		if (json_array_append_new(rows, node_json(&nodes[i], now)) != 0)
			json_decref(rows), rows = NULL;
	}
	dir_nodes_free(&nodes, count);
	if (rows == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	*rows_r = rows;
	return 0;
}
