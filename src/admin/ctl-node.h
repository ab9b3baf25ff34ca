/* Node listing from the directory: each ternd registers its name and
 * addresses there when it starts. */
#ifndef TERN_ADMIN_CTL_NODE_H
#define TERN_ADMIN_CTL_NODE_H

#include <jansson.h>

#include "admin/ctl.h"

/* All nodes as an array of {name, lmtp, imap, pop3, admin, updated}; the
 * addresses are "host:port" or "" (off), updated an ISO 8601 UTC string.
 * Returns 0 or -1 (failure recorded in c). */
int ctl_node_list(struct ctl *c, json_t **rows_r);

#endif
