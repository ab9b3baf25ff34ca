/* Relays one LMTP transaction's recipients that live on another node to
 * that node, over the cluster channel: MAIL, the RCPTs and the message as
 * one BDAT chunk, pipelined, on a channel kept open between transactions.
 * Each recipient's reply is the home node's own (its 250 means the message
 * is on its disk); a node that cannot be reached or stops answering gives
 * 451 4.4.1 for its recipients only. */
#ifndef TERN_PROXY_LMTP_RELAY_H
#define TERN_PROXY_LMTP_RELAY_H

#include <stddef.h>

struct loop;

struct lmtp_relay_request {
	const char *home;          /* node name */
	const char *home_addr;     /* its cluster address */
	const char *mail_from;     /* the reverse path, without <> */
	const char *const *rcpts;  /* addresses as the client gave them */
	size_t rcpt_count;
	const char *body;          /* copied during the call */
	size_t size;
};

/* replies[i] is the final reply line for rcpts[i] (no CRLF), heap; the
 * callee owns the array and frees it after the call. */
typedef void lmtp_relay_done_fn(void *ctx, char **replies);

struct lmtp_relay;

/* On the calling loop thread; done runs once, later, on it (never inside
 * this call), unless cancelled first. *lr_r names the relay until then. */
void lmtp_relay_start(struct loop *loop, const struct lmtp_relay_request *r,
		      lmtp_relay_done_fn *done, void *ctx, struct lmtp_relay **lr_r);
void lmtp_relay_cancel(struct lmtp_relay **lr);

#endif
