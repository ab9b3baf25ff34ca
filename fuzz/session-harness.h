/* Shared by the whole-session fuzz targets (fuzz-imap-session.c,
 * fuzz-lmtp-session.c): one real Tern server per process (temp data_dir,
 * SQLite directory with known users, delivery pipeline, one loop thread, no
 * listeners), and a client side that talks to it over a socketpair handed in
 * with server_adopt_fd(). Every wait has a deadline; passing it aborts with
 * what was sent and received, since a session that never ends is the failure
 * Tern is built to prevent. */
#ifndef TERN_FUZZ_SESSION_HARNESS_H
#define TERN_FUZZ_SESSION_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn_proto;

/* The users every server starts with ({PLAIN} hashes keep a login cheap;
 * carol is homed on another node). */
#define FZ_USER1 "alice"
#define FZ_PASS1 "alice-pw"
#define FZ_USER2 "bob"
#define FZ_PASS2 "bob-pw"
#define FZ_USER3 "carol"
#define FZ_PASS3 "carol-pw"

struct fz_session {
	int fd;
	const char *what;        /* "imap", "lmtp": for messages */
	uint64_t deadline_ms;    /* monotonic; the whole session must end by then */
	/* the server's output as the client reads it (inflated after COMPRESS) */
	uint8_t *out;
	size_t out_len, out_cap;
	bool eof;                /* the server closed (or reset) the connection */
	void *zin, *zout;        /* z_stream: inflate output, deflate input */
	/* what the client sent, for the report when a check fails */
	const uint8_t *input;
	size_t input_len;
};

/* Starts the server on first call (later calls do nothing); aborts if it
 * cannot. It is stopped cleanly at exit, so leak checks see a quiet process. */
void fz_server_start(void);

/* Opens a connection of proto and waits for the greeting's first line.
 * peer_addr tells sessions apart in per-address accounting. */
void fz_open(struct fz_session *s, const struct conn_proto *proto, const char *what,
	     const char *peer_addr);
/* Sends data (deflated once fz_compress has run), reading output meanwhile
 * so that neither side blocks on a full socket. Stops early if the server
 * closes. */
void fz_send(struct fz_session *s, const void *data, size_t len);
/* Reads output until done(s, ctx) is true (returns true), the server closes,
 * or quiet_ms pass with no new output (returns false). */
bool fz_wait(struct fz_session *s, bool (*done)(struct fz_session *s, void *ctx), void *ctx,
	     uint32_t quiet_ms);
/* Switches to COMPRESS=DEFLATE: output after the first plain_len bytes, and
 * everything sent from now on, is raw DEFLATE (RFC 4978). */
void fz_compress(struct fz_session *s, size_t plain_len);
/* Half-closes, reads until the server closes, then waits until the server
 * has freed the connection; aborts if either takes past the deadline. */
void fz_finish(struct fz_session *s);
void fz_close(struct fz_session *s);

/* Prints the reason, the input and the output, then aborts. */
void fz_fail(struct fz_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* Bounds the users' stores: every few calls (and on the first), deletes the
 * folders and messages sessions left behind and checks the stores'
 * invariants (store_integrity_check), aborting if they are broken. Call
 * between sessions only. */
void fz_stores_tidy(void);

/* Position of needle in the output from `from`, or SIZE_MAX. */
size_t fz_out_find(const struct fz_session *s, size_t from, const char *needle);

#endif
