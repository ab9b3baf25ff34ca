/* The listening side of the cluster channel: a connection accepted on
 * cluster_listen proves it knows the cluster secret (handshake.h), then
 * asks for one thing with an OPEN frame: a session for a user homed here
 * (IMAP, POP3) or a delivery channel (LMTP). The connection then becomes
 * that protocol's session (conn_switch_proto), fed by the front node. Which
 * protocols can be opened is handed in by the program (ternd.c), so that
 * cluster/ names no protocol. */
#ifndef TERN_CLUSTER_INBOUND_H
#define TERN_CLUSTER_INBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

/* What the front asked for, checked against the directory here. */
struct cluster_open_request {
	const char *kind;         /* "imap", "pop3", "lmtp" */
	const char *user;         /* canonical, homed here; "" for a kind without user */
	uint64_t quota;           /* the limit in force for user (bytes, 0 = none) */
	const char *client_addr;  /* the client's address as the front saw it, or "" */
	const char *params;       /* kind-specific "key=value" words ("tag=a1 tls=1") */
	const char *front;        /* the front node's name */
};

struct cluster_service {
	const char *kind;
	bool needs_user;
	/* Turns c into a session of this kind with conn_switch_proto; the
	 * OPENED frame has been sent. -1: c is closed by the caller. */
	int (*adopt)(struct conn *c, const struct cluster_open_request *req);
};

/* Sets the kinds OPEN may ask for (before the cluster listener opens).
 * services must live as long as the process. */
void cluster_set_services(const struct cluster_service *services, size_t count);

/* The value of key in params ("tag=a1 tls=1"), copied into buf; false if
 * absent or too long. */
bool cluster_param(const char *params, const char *key, char *buf, size_t cap);

/* Makes c look like the client's own connection to the session taking it
 * over: logs and per-address rules see the client's address, and the
 * plaintext-login rule its loopback-ness ("loopback=1" in params). */
void cluster_adopt_client(struct conn *c, const struct cluster_open_request *req);

/* Peers refused since start (failed handshakes and protocol errors). */
uint64_t cluster_refused_peers(void);

extern const struct conn_proto cluster_proto;

#endif
