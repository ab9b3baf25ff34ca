/* The dialling side of the cluster channel: opens a session or a delivery
 * channel on another node (connect, mutual handshake, OPEN, its OPENED),
 * all within cluster_timeout and without blocking the loop thread. Each
 * loop keeps a few spare authenticated connections to the nodes it talks
 * to, so a proxied login pays neither a TCP connect nor a handshake. A
 * node that cannot be reached is logged once when it goes and once when
 * it comes back, not once per request. */
#ifndef TERN_CLUSTER_DIAL_H
#define TERN_CLUSTER_DIAL_H

#include <stdbool.h>

struct loop;
struct bufferevent;

enum cluster_dial_status {
	CLUSTER_DIAL_OK,
	CLUSTER_DIAL_UNREACHABLE,  /* no connection, handshake or answer in cluster_timeout */
	CLUSTER_DIAL_REFUSED,      /* the node answered but did not open it (text: why) */
};

struct cluster_dial_request {
	const char *node;          /* the node's name, as the directory has it */
	const char *addr;          /* its cluster address "host:port" (numeric) */
	const char *kind;          /* "imap", "pop3", "lmtp" */
	const char *user;          /* "" for lmtp */
	const char *client_addr;   /* for the home's logs; "" if none */
	const char *params;        /* "tag=a1 tls=1"; "" if none */
};

/* On CLUSTER_DIAL_OK, bev is the caller's (callbacks cleared, reading and
 * writing enabled); its input may already hold the first bytes of the
 * session. status ("not-here", "unavailable", ...) and text say why for
 * REFUSED, text says why for UNREACHABLE. */
typedef void cluster_dial_done_fn(void *ctx, enum cluster_dial_status st, struct bufferevent *bev,
				  const char *status, const char *text);

struct cluster_dial;

/* Starts on the calling loop thread; done runs once, later, on it (never
 * inside this call, except when there is no memory to start at all),
 * unless cancelled first. *d_r names the dial until
 * done runs (set back to NULL just before). */
void cluster_dial(struct loop *loop, const struct cluster_dial_request *r,
		  cluster_dial_done_fn *done, void *ctx, struct cluster_dial **d_r);
void cluster_dial_cancel(struct cluster_dial **d);

/* A channel whose session can serve another request of the same kind (an
 * LMTP channel between transactions) waits on the calling loop for the
 * next request to the same node; one the node closes meanwhile is dropped,
 * and so is one beyond TERN_CLUSTER_PARKED per node and kind. */
void cluster_channel_park(struct loop *loop, const char *node, const char *addr, const char *kind,
			  struct bufferevent *bev);
/* A parked channel of that node and kind (callbacks cleared), or NULL. */
struct bufferevent *cluster_channel_unpark(struct loop *loop, const char *node, const char *addr,
					   const char *kind);

#endif
