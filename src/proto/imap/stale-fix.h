/* Cached parses older than the address parser (store schema v6) are
 * reparsed by the session's reads and written back by the user's worker:
 * after a command that met one, the session queues the fix, one chain of
 * tasks at a time, never writing on its loop thread. */
#ifndef TERN_PROTO_IMAP_STALE_FIX_H
#define TERN_PROTO_IMAP_STALE_FIX_H

struct imap_session;

/* Called after each command: queues the fix if the store met stale parses. */
void imap_stale_fix_kick(struct imap_session *s);

#endif
