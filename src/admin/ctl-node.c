#include "admin/ctl-node.h"

#include "admin/ctl-output.h"

static json_t *node_json(const struct dir_node *n)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	char updated[32];
	ctl_format_time(n->updated, updated, sizeof(updated));
	json_object_set_new(o, "name", ctl_json_string(n->name));
	json_object_set_new(o, "lmtp", ctl_json_string(n->lmtp_addr ? n->lmtp_addr : ""));
	json_object_set_new(o, "imap", ctl_json_string(n->imap_addr ? n->imap_addr : ""));
	json_object_set_new(o, "pop3", ctl_json_string(n->pop3_addr ? n->pop3_addr : ""));
	json_object_set_new(o, "admin", ctl_json_string(n->admin_addr ? n->admin_addr : ""));
	json_object_set_new(o, "updated", json_string(updated));
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
	json_t *rows = json_array();
	for (size_t i = 0; rows != NULL && i < count; i++) {
		if (json_array_append_new(rows, node_json(&nodes[i])) != 0)
			json_decref(rows), rows = NULL;
	}
	dir_nodes_free(&nodes, count);
	if (rows == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	*rows_r = rows;
	return 0;
}
