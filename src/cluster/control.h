/* The "control" service of the cluster channel (issue 10): a node that has
 * proved the cluster secret may OPEN control (no user) and then send line
 * commands that freeze users on this node (server/freeze.h), for the mover
 * and for tests:
 *
 *   FREEZE <user> <lease_ms>              -> OK | NO <why>
 *   RELEASE <user> stay                   -> OK | NO <why>
 *   RELEASE <user> moved <node> <addr>    -> OK | NO <why>
 *   STATUS <user>                         -> FROZEN <ms left> | ACTIVE | NO <why>
 *   QUIT                                  -> BYE, and the connection closes
 *
 * Lines end with CRLF (or LF), at most 1024 bytes. No
 * command waits for anything: each is answered on the same turn. */
#ifndef TERN_CLUSTER_CONTROL_H
#define TERN_CLUSTER_CONTROL_H

struct conn;
struct cluster_open_request;
struct conn_proto;

/* The cluster_service adopt hook (wired in ternd.c). */
int control_session_adopt(struct conn *c, const struct cluster_open_request *req);

extern const struct conn_proto control_proto;

#endif
