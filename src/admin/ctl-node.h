/* Node listing from the directory: each ternd registers its name and
 * addresses there when it starts and keeps a heartbeat while it runs. */
#ifndef TERN_ADMIN_CTL_NODE_H
#define TERN_ADMIN_CTL_NODE_H

#include <jansson.h>

#include "admin/ctl.h"

/* All nodes, by name, as an array of {name, cluster, lmtp, imap, pop3,
 * admin, version, started, heartbeat, heartbeat_age_ms, stopped, status}.
 * Addresses are "host:port" or "" (off); started and heartbeat ISO 8601 UTC
 * strings (null: never); status "up" when the node has not stopped and its
 * heartbeat is younger than TERN_NODE_DOWN_AFTER_MS, else "down".
 * Returns 0 or -1 (failure recorded in c). */
int ctl_node_list(struct ctl *c, json_t **rows_r);

#endif
