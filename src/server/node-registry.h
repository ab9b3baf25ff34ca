/* The node registry: at start this ternd registers itself in the directory
 * (name, addresses, version, start time), refusing to start when another
 * live node holds its name; one thread then keeps its heartbeat there, and a
 * clean stop marks it stopped. ternctl node list reads what it writes. */
#ifndef TERN_SERVER_NODE_REGISTRY_H
#define TERN_SERVER_NODE_REGISTRY_H

#include <stdint.h>

#include "core/config.h"

/* Registers cfg's node and starts the heartbeat thread. -1 with *err_r
 * (heap, one line, for the caller to log) when the directory cannot be
 * opened or written, or when a live node with other addresses already runs
 * under node_name. Call once; not thread-safe. */
int node_registry_start(const struct tern_config *cfg, char **err_r);

/* This node's number in the directory (1..DELIVERY_ID_MAX_NODE, for good:
 * core/delivery-id.h), or 0 before node_registry_start succeeded. */
uint32_t node_registry_number(void);

/* Stops the heartbeat thread at once and marks the node stopped in the
 * directory, so it shows down. A no-op when node_registry_start did not
 * succeed. */
void node_registry_stop(void);

#endif
