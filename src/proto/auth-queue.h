/* The login admission state shared by every loop thread and the password
 * workers (see auth.c): which client addresses have logins in progress, how
 * many, when each address may next have a password checked, and the queue
 * of checks waiting for a worker.
 *
 * The queue is per address and served round-robin: a worker takes one check
 * from the next address that has any, so however many checks one address
 * has queued, a login from another address waits for at most one check per
 * address with work. Limits: logins in progress per address (from
 * auth_verify to the reply, penalty waits included) and checks queued or
 * running node-wide.
 *
 * Pure data structure: no locking, no clock, no allocation. The caller holds
 * its own mutex around every call, passes the time in, hands in a spare
 * address record (allocated before locking) and frees the one aq_leave()
 * gives back (after unlocking), so nothing here lasts longer than linking. */
#ifndef TERN_PROTO_AUTH_QUEUE_H
#define TERN_PROTO_AUTH_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AQ_ADDR_MAX 48u     /* "a.b.c.d" or an IPv6 text form, NUL included */
#define AQ_TABLE_SIZE 1024u /* hash chains; records exist only while in use */

struct aq_addr;

/* Embedded in a login request. */
struct aq_item {
	struct aq_addr *addr;          /* set by aq_enter until aq_leave */
	struct aq_item *prev, *next;   /* in addr's queue while queued */
	bool queued;
};

struct aq_addr {
	char key[AQ_ADDR_MAX];
	struct aq_addr *hnext;         /* hash chain */
	struct aq_addr *rprev, *rnext; /* the ring of addresses with queued checks */
	struct aq_item *head, *tail;   /* queued checks, oldest first */
	uint32_t in_progress;          /* items entered and not yet left */
	uint64_t next_ms;              /* reserved: no check from here starts before */
};

struct auth_queue {
	struct aq_addr *table[AQ_TABLE_SIZE];
	struct aq_addr *ring;          /* the address to serve next, or NULL */
	uint32_t checks;               /* queued + running, node-wide */
	uint32_t addresses;            /* records in use */
};

enum aq_verdict {
	AQ_OK,
	AQ_FULL_ADDRESS,  /* the address has max_per_address logins in progress */
	AQ_FULL_NODE,     /* max_pending checks are queued or running */
	AQ_THROTTLED,     /* the address's or user's penalty would outlast max_wait */
};

/* Zeroes q. */
void aq_init(struct auth_queue *q);

/* Counts it as a login in progress from addr (truncated to AQ_ADDR_MAX - 1
 * bytes). *spare is a record used, and set to NULL, if addr has none yet.
 * A refused item is not entered (aq_leave ignores it). */
enum aq_verdict aq_enter(struct auth_queue *q, struct aq_item *it, const char *addr,
			 uint32_t max_per_address, struct aq_addr **spare);

/* When it may have its check: the latest of now, earliest (the penalties
 * the caller read off the failure counts) and the address's reservation;
 * then the next check from its address is reserved spacing_ms after that.
 * A start later than now + max_wait_ms is refused (AQ_THROTTLED) and
 * reserves nothing. */
enum aq_verdict aq_reserve(struct auth_queue *q, struct aq_item *it, uint64_t now_ms,
			   uint64_t earliest_ms, uint32_t spacing_ms, uint32_t max_wait_ms,
			   uint64_t *start_r);

/* Queues it for a worker behind the other checks of its address; refused
 * (AQ_FULL_NODE) when max_pending checks are queued or running. */
enum aq_verdict aq_push(struct auth_queue *q, struct aq_item *it, uint32_t max_pending);

/* The oldest check of the next address in turn, or NULL. It stays counted
 * against max_pending until aq_checked(). */
struct aq_item *aq_pop(struct auth_queue *q);

/* One check taken by aq_pop() has finished. */
void aq_checked(struct auth_queue *q);

/* Takes it out of the queue if it is still there (true); false if a worker
 * has it or it was never queued. */
bool aq_unqueue(struct auth_queue *q, struct aq_item *it);

/* Ends a login in progress (unqueued first if need be); nothing if it was never
 * entered. Returns the address record if it is no longer used, for the
 * caller to free, else NULL. */
struct aq_addr *aq_leave(struct auth_queue *q, struct aq_item *it);

#endif
