/* Cross-session change notification: "user X's store changed" reaches every
 * session of X on every loop thread, without a process-wide lock. A sharded
 * table counts each user's watchers per loop; a change posts one task to each
 * loop that has any, and that loop walks its own (thread-local) watchers. */
#ifndef TERN_SERVER_NOTIFY_H
#define TERN_SERVER_NOTIFY_H

#include <stdbool.h>

struct conn;

struct notify_watcher;
typedef void notify_fn(struct notify_watcher *w);

/* Embedded in (or allocated by) a session; fields are private to notify.c
 * except ctx, which the callback may use. */
struct notify_watcher {
	void *ctx;
	notify_fn *fn;
	struct conn *conn;
	char *user;
	struct notify_watcher *prev, *next;
	bool active;
};

/* Sets the delivery pipeline's hook (delivery_user_changed_hook) and the
 * shard locks. Idempotent; also runs as a constructor when this object is
 * linked in, i.e. before any thread exists. */
void notify_init(void);

/* Starts delivering changes of user to fn(w) on c's loop thread. Call on
 * that thread. 0 ok, -1 out of memory. A watcher is watched at most once. */
int notify_watch(struct notify_watcher *w, struct conn *c, const char *user, notify_fn *fn,
		 void *ctx);
/* Stops it (no-op if not watching). Call on the same loop thread. */
void notify_unwatch(struct notify_watcher *w);

/* Tells every watcher of user that the store changed. Callable from any
 * thread; callbacks run later, on their own loop threads, never inside this
 * call. Repeated calls before a loop ran its task are coalesced. */
void notify_user_changed(const char *user);

#endif
