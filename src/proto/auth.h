/* Password logins for the mail front ends (IMAP, POP3): canonical user name,
 * directory look-up and password check on a small worker pool (a password
 * hash costs milliseconds of CPU, which a loop thread must not spend), and
 * the defences around it: penalties for recent failures of the client
 * address and of the user, served before the check so parallel guesses
 * serialise; a bounded check queue shared round-robin between addresses;
 * failed checks padded to one duration so the time of a failure does not
 * tell whether the user exists; a growing delay before a failure is
 * reported; and the log lines fail2ban reads. */
#ifndef TERN_PROTO_AUTH_H
#define TERN_PROTO_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

struct conn;

enum auth_result {
	AUTH_OK,
	AUTH_FAILED,    /* unknown user, wrong password, malformed name */
	AUTH_TEMPFAIL,  /* the directory could not be asked, or no memory for the
	                   login or its hash; try again later */
	AUTH_NOT_HERE,  /* the password is right but the user is homed on another node */
};

/* What the check read from the user's directory row, so that the session
 * needs no directory read of its own after the login. */
struct auth_user {
	const char *name;   /* canonical */
	uint64_t quota;     /* the limit in force in bytes: the user's, else the
	                       node's default_quota; 0 = none */
	const char *home;      /* AUTH_NOT_HERE: the user's home node */
	const char *home_addr; /* AUTH_NOT_HERE: its cluster address, "" if unknown */
};

/* Runs on the connection's loop thread. user is set for AUTH_OK and
 * AUTH_NOT_HERE, else NULL; it is valid during the call only. */
typedef void auth_done_fn(struct conn *c, enum auth_result r, const struct auth_user *user,
			  void *ctx);

struct auth_request;

/* Starts checking login/password (copied) on the worker pool; method
 * ("PLAIN") is for the log. Call on c's loop thread. done runs later on that
 * thread (never from inside this call): after any penalty the client's
 * address or the user has earned, the check, and for AUTH_FAILED the failure
 * delay. A check (the user's directory read and the hash) not back within
 * TERN_LOOKUP_DEADLINE_MS of a worker taking it gives AUTH_TEMPFAIL then: a
 * directory that cannot be read must not hold a login for longer.
 * AUTH_TEMPFAIL also comes at once when the address has
 * auth_max_pending_per_address logins in progress, when its penalty would
 * outlast TERN_AUTH_DELAY_CAP_MS, when auth_max_pending checks are queued,
 * or when there is no memory for the request or its copies.
 * A reference on c is held meanwhile. Once c is closing, done is not called:
 * the request ends without touching the session. *req_r names the request
 * until it ends: it is set back to NULL when it ends, so keep it in the
 * session and pass it to auth_cancel() when the session is freed. */
void auth_verify(struct conn *c, const char *login, const char *password, const char *method,
		 auth_done_fn *done, void *ctx, struct auth_request **req_r);

/* Forgets a request whose connection is being destroyed (server stop): done
 * will not run and the connection is not touched again. NULL is fine. */
void auth_cancel(struct auth_request **req);

/* Starts the worker threads, which first time one password check to set
 * the failure floor. Optional (the first auth_verify starts them too); call
 * it at server start so the first login does not pay for the measurement. */
void auth_pool_start(void);

/* Answers the checks still queued with AUTH_TEMPFAIL (unchecked) and stops
 * the worker threads. Call at server stop while the loops still run (the
 * answers are posted to them). */
void auth_pool_stop(void);

/* RFC 2595 §2.1 / RFC 1939 §13: a password may travel in the clear only on
 * TLS, on loopback, or when the configuration says so. */
bool auth_plaintext_allowed(const struct conn *c, bool tls_active);

/* Decodes a SASL PLAIN response (RFC 4616: base64 of [authzid] NUL authcid
 * NUL passwd). An authzid other than empty or the authcid itself is refused:
 * nobody may log in as somebody else. Returns 0 with heap *authcid_r and
 * *passwd_r, or -1 (bad base64, wrong NUL count, empty authcid or password,
 * authzid mismatch, over the size limits); outputs untouched on failure. */
int auth_sasl_plain_decode(const char *b64, char **authcid_r, char **passwd_r);

/* Strict base64 (RFC 4648 §4, padding required, no blanks) into a heap
 * buffer of *len_r bytes plus a NUL. -1 if malformed or out of memory. */
int auth_base64_decode(const char *in, unsigned char **out_r, size_t *len_r);

/* The delay before reporting a failed login: base_ms doubled for each
 * earlier recent failure of the same user or address, capped at
 * AUTH_DELAY_CAP_MS (or base_ms if that is larger). failures >= 1 counts
 * this one; base_ms == 0 means no delay. The limit is in core/limits.h;
 * the short name stays for auth-failures.c and the unit tests. */
#define AUTH_DELAY_CAP_MS TERN_AUTH_DELAY_CAP_MS
uint32_t auth_failure_delay_ms(uint32_t base_ms, uint32_t failures);

/* Failure accounting (sharded; no process-wide lock). A key is "u:<user>",
 * "a:<address>", "p:<address> <user>" (the user's failures from that
 * address) or "r:<address>" (logins refused without a check); counts decay
 * after AUTH_FAILURE_WINDOW_MS without failures. */
#define AUTH_FAILURE_WINDOW_MS TERN_AUTH_FAILURE_WINDOW_MS
/* Counts one failure for key at now_ms; returns the recent failures including it. */
uint32_t auth_failures_add(const char *key, uint64_t now_ms);
/* The same, and *prev_ms_r = the time of the latest failure before this one
 * (0 if none is recent), read in the same step so that of two threads
 * counting at once exactly one sees itself first. */
uint32_t auth_failures_add_since(const char *key, uint64_t now_ms, uint64_t *prev_ms_r);
/* Recent failures of key (0 when unknown or expired). */
uint32_t auth_failures_get(const char *key, uint64_t now_ms);
/* The same, and when there are any, the time of the latest in *last_ms_r. */
uint32_t auth_failures_peek(const char *key, uint64_t now_ms, uint64_t *last_ms_r);
void auth_failures_clear(const char *key);

#endif
