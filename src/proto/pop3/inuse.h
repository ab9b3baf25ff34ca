/* Users whose POP3 maildrop is open in this process. RFC 1939 §8 lets a
 * server refuse a second session while a maildrop is locked; Tern does, so
 * two sessions never disagree about message numbers and pending deletions.
 * Sharded, each shard's mutex held only to test-and-set, never across I/O. */
#ifndef TERN_PROTO_POP3_INUSE_H
#define TERN_PROTO_POP3_INUSE_H

#include <stdbool.h>

/* Marks user's maildrop as in use. false if it already was (or out of memory). */
bool pop3_inuse_acquire(const char *user);
/* Releases a maildrop acquired by pop3_inuse_acquire. */
void pop3_inuse_release(const char *user);

#endif
