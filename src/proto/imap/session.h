/* The IMAP front end's shared session state and helpers: what every command
 * file (cmd-*.c) may use. One session per connection, on one loop thread;
 * SQLite reads run on that thread through the session's own store handle,
 * writes on the user's apply worker (store-write.h), APPEND through the
 * delivery pipeline. */
#ifndef TERN_PROTO_IMAP_SESSION_H
#define TERN_PROTO_IMAP_SESSION_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/keyword-set.h"
#include "proto/imap/parser.h"
#include "server/conn.h"

struct store;
struct evbuffer;
struct imap_seqset;
struct auth_request;
struct lookup_request;
struct notify_watcher;
struct imap_notify;
struct imap_search_contexts;
struct tern_config;

extern const struct conn_proto imap_proto;

enum imap_state {
	IMAP_STATE_NOT_AUTH = 1u << 0,
	IMAP_STATE_AUTH = 1u << 1,
	IMAP_STATE_SELECTED = 1u << 2,
	IMAP_STATE_LOGOUT = 1u << 3,
};

/* One message as the session's client knows it; seq = index + 1. */
struct imap_view_msg {
	uint32_t uid;
	uint32_t flags;        /* store_flag bits, as last reported to the client */
	char *keywords;        /* as last reported; NULL = none */
	uint64_t modseq;
};

/* The selected folder as this session has reported it (RFC 3501 §5.2: the
 * client's sequence numbers change only when the session says so). */
struct imap_view {
	char *folder;          /* store name (UTF-8) */
	bool readonly;         /* EXAMINE */
	uint32_t uidvalidity;
	uint32_t uidnext;      /* as last reported */
	uint64_t highestmodseq;/* changes up to here have been reported */
	struct imap_view_msg *msgs;
	size_t count, cap;
	uint32_t *saved;       /* SEARCHRES "$" (RFC 5182): UIDs, ascending */
	size_t saved_count;
	/* \Recent (RFC 3501 §2.3.2): UID ranges [first, next) this session
	 * claimed from the store; no other session sees them as recent. */
	struct { uint32_t first, next; } *recent;
	size_t recent_count;
	/* Keywords the client was told of in FLAGS: only ever grows (while
	 * the view lives), so a keyword in any FETCH was announced before it.
	 * A set, so learning a message's keywords costs their number only. */
	struct keyword_set keywords;
	bool keywords_pending;   /* grown since the last FLAGS response */
	/* SEARCH/SORT RETURN (UPDATE) contexts (RFC 5267 §4.3,
	 * search-context.h): they end with the view */
	struct imap_search_contexts *contexts;
};

/* Output-only flag bit (never stored): the message is \Recent in this session. */
#define IMAP_FLAG_RECENT (1u << 30)

struct imap_session {
	struct conn *conn;
	struct imap_parser *parser;
	enum imap_state state;
	char *user;                  /* canonical, after login */
	struct store *store;         /* the user's store, after login */
	struct imap_view *view;      /* non-NULL in SELECTED */
	bool condstore;              /* ENABLE CONDSTORE or a CONDSTORE-using command */
	bool condstore_at_start;     /* condstore when the current command began:
	                                imap_tagged() reports HIGHESTMODSEQ when
	                                this command enabled it (RFC 7162 §3.1) */
	bool qresync;                /* ENABLE QRESYNC */
	bool utf8_accept;            /* ENABLE UTF8=ACCEPT */
	bool imap4rev2;              /* ENABLE IMAP4rev2 (RFC 9051): rev2's forms
	                                of responses (ESEARCH for SEARCH, no
	                                \Recent, UTF-8 mailbox names) */
	bool tls_active;
	bool compress_active;
	unsigned bad_commands;
	/* A command that went async (auth, APPEND, IDLE): the session reads no
	 * further command until imap_command_finished(). */
	struct imap_cmd *pending;
	bool idling;
	struct auth_request *auth;
	struct proxy_open *proxy;      /* asking the home node for a session */
	void *cmd_state;             /* private state of the pending command */
	void (*cmd_state_free)(void *state);
	/* Set by session.c: the command being executed (dispatched or
	 * pending) and its table flags; NULL between commands. */
	struct imap_cmd *current;
	unsigned current_flags;
	/* Raw-line mode (IDLE "DONE", AUTHENTICATE responses): while set, each
	 * input line goes here instead of the command parser; see
	 * imap_read_line(). */
	void (*line_handler)(struct imap_session *s, char *line);
	struct notify_watcher *watcher; /* change notification, after login */
	bool changes_pending;        /* another session or a delivery changed the store */
	struct imap_notify *notify;  /* NOTIFY SET (cmd-notify.c), or NULL */
	bool in_input;               /* session.c: inside the input loop */
	uint64_t user_modseq;        /* store_highestmodseq() at the last sync */
	/* The quota limit in force (bytes, 0 = none): read with the login's
	 * directory row, refreshed off the loop thread (cmd-quota.c). */
	uint64_t quota_limit;
	uint64_t quota_read_ms;      /* tern_now_ms() when it was read */
	struct lookup_request *quota_refresh;   /* a refresh in flight */
	bool stale_fix_queued;       /* stale-fix.c: a write-back chain runs */
};

/* ---- command table (commands.c) ---- */

enum imap_cmd_result {
	IMAP_CMD_DONE,   /* the tagged reply was sent */
	IMAP_CMD_ASYNC,  /* the handler owns the command and calls
	                    imap_command_finished() later */
};

enum imap_cmd_flags {
	IMAP_CMD_UID_OK = 1u << 0,      /* "UID <name>" is valid */
	IMAP_CMD_NO_SYNC = 1u << 1,     /* do not report pending changes before the
	                                   tagged reply (FETCH/STORE/SEARCH must not
	                                   send EXPUNGE: RFC 3501 §7.4.1) */
	IMAP_CMD_SYNC_NO_EXPUNGE = 1u << 2,
	IMAP_CMD_NO_ARGS = 1u << 3,     /* the dispatcher refuses any argument */
};

struct imap_command {
	const char *name;                /* uppercase */
	enum imap_cmd_result (*handler)(struct imap_session *s, struct imap_cmd *cmd);
	unsigned states;                 /* enum imap_state bits where it is valid */
	unsigned flags;
};

/* Looks a command up by (uppercase) name; NULL if unknown. */
const struct imap_command *imap_command_find(const char *name);

/* ---- replies (session.c) ---- */

/* Output buffer of the connection (for streaming literals). Whatever
 * writes to it checks for failure: through imap_out_add/imap_out_printf,
 * or by passing its result to imap_out_check. */
struct evbuffer *imap_out(struct imap_session *s);
/* Append to the output. A write that fails for lack of memory leaves a
 * response the client cannot parse the rest of: the connection then ends
 * with "* BYE [UNAVAILABLE]" (conn_write_failed), nothing written after it
 * reaches the client, and imap_out_failed() turns true. Writers need not
 * check each piece: they may go on writing, it is dropped. */
void imap_out_add(struct imap_session *s, const void *data, size_t len);
void imap_out_printf(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* r from a writer that wrote to imap_out(s) itself (0, or < 0 when the
 * evbuffer failed): a failure ends the connection as above. */
void imap_out_check(struct imap_session *s, int r);
/* True once some output could not be queued: a command producing a long
 * response stops, since nothing more reaches the client. */
bool imap_out_failed(const struct imap_session *s);
/* "* <text>\r\n" */
void imap_untagged(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "<tag> <text>\r\n"; text starts with OK/NO/BAD. */
void imap_tagged(struct imap_session *s, const struct imap_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "<tag> BAD <text>" and counts a bad command (closes after the limit).
 * Text "Out of memory" (a parser that found no memory) is answered as
 * imap_store_error(TERN_ERR_NOMEM) instead. */
void imap_bad(struct imap_session *s, const struct imap_cmd *cmd, const char *text);
/* Logs err once with user and operation, and replies "<tag> NO [CODE] ..."
 * from the table in proto/reply.c. */
void imap_store_error(struct imap_session *s, const struct imap_cmd *cmd, const char *operation,
		      enum tern_error err);
/* Ends an async command: sends nothing itself; frees cmd, resumes reading. */
void imap_command_finished(struct imap_session *s);
/* The CAPABILITY list for the current state, without "* CAPABILITY ". */
const char *imap_capabilities(const struct imap_session *s);
/* The server configuration (limits, data_dir). */
const struct tern_config *imap_config(const struct imap_session *s);
/* Call after this session changed the store (STORE, EXPUNGE, COPY, MOVE,
 * APPEND): other sessions of the user (IDLE ones at once) learn of it. */
void imap_notify_changed(struct imap_session *s);
/* Runs when imap_session_login is through: err = TERN_ERR_NONE when the
 * session is in AUTH state, else nothing changed. */
typedef void imap_login_done_fn(struct imap_session *s, enum tern_error err);
/* Enters AUTH state as user (canonical) with the quota limit the login read
 * (bytes, 0 = none): opens the user's store and subscribes to change
 * notification. A first login finds no store: creating one is a write, so
 * it is a store task on the worker that owns the user, and the session
 * opens the store when that is done. done runs exactly once: inside this
 * call when the store exists, else later on the loop (not at all if the
 * connection closes meanwhile). The caller keeps the session from reading
 * commands until then (a pending command does). */
void imap_session_login(struct imap_session *s, const char *user, uint64_t quota,
			imap_login_done_fn *done);
/* Answers the pending login command once imap_session_login is through
 * (cmd-auth.c; also for a session opened by a front node). */
void imap_login_finished(struct imap_session *s, enum tern_error err);

struct cluster_open_request;
/* The home node's side of a proxied session: makes the cluster connection c
 * an IMAP session of req->user that is logging in, as if the login command
 * (tag from req->params) had just been checked; it answers that command
 * itself. */
int imap_session_adopt(struct conn *c, const struct cluster_open_request *req);

/* For an async command (s->pending set, returning IMAP_CMD_ASYNC): the next
 * input line (CRLF stripped, heap, the handler frees it) goes to fn instead
 * of the parser, once; fn may call imap_read_line again or finish the
 * command with imap_command_finished(). */
void imap_read_line(struct imap_session *s, void (*fn)(struct imap_session *s, char *line));

/* ---- the selected folder (view.c) ---- */

/* Opens folder for SELECT/EXAMINE: loads the message list into a new view.
 * 1 ok, 0 no such folder, -1 error (*err_r). Replaces any current view. */
int imap_view_open(struct imap_session *s, const char *folder, bool readonly,
		   enum tern_error *err_r);
/* imap_view_open without the \Recent claim: SELECT makes the claim, a
 * write, on the user's worker and adds it with imap_view_add_recent(). */
int imap_view_load(struct imap_session *s, const char *folder, bool readonly,
		   enum tern_error *err_r);
void imap_view_close(struct imap_session *s);
/* Sends FLAGS and PERMANENTFLAGS again when messages gained keywords the
 * client was not told of (RFC 3501 §7.2.6); the view learns them whenever
 * it takes a message's state. */
void imap_view_announce_keywords(struct imap_session *s);
/* A session in IDLE may wait for hours: it closes its store connection
 * (most of what an idle session costs) and reopens it when woken. */
void imap_session_park_store(struct imap_session *s);
/* Reopens a parked store: 0, or -1 after "* BYE" and closing the session. */
int imap_session_unpark_store(struct imap_session *s);
/* Adds kw's keywords (space-separated) the client was not told of. */
void imap_view_learn_keywords(struct imap_view *v, const char *kw);
/* False when keywords (space-separated) would take the folder past
 * TERN_KEYWORDS_PER_FOLDER_MAX distinct keywords as this view knows them:
 * only keywords new to the folder count, so a folder already over the
 * limit still takes the ones it has. */
bool imap_view_keywords_fit(const struct imap_view *v, const char *keywords);
/* Reports changes made by others (or by this session through the store)
 * since the view was last synced: EXPUNGE (or VANISHED with QRESYNC, unless
 * allow_expunge is false, in which case expunges wait), EXISTS, RECENT,
 * FETCH (FLAGS [MODSEQ]) for changed flags. Returns 0 or -1 (*err_r). */
int imap_view_sync(struct imap_session *s, bool allow_expunge, enum tern_error *err_r);
/* Sequence number (1-based) of uid, 0 if not in the view. O(log n). */
uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid);
/* The same for a walk in ascending UID order: *cursor (start at 0) is where
 * the last one was found, so each step is O(1) when the UIDs are the view's. */
uint32_t imap_view_seq_walk(const struct imap_view *v, uint32_t uid, size_t *cursor);
/* Resolves a sequence-set argument (seq or UID set, "$" included) against the
 * view into ascending UIDs present in the view. A UID set may name absent
 * UIDs (they are skipped); a sequence number beyond the view is an error
 * (returns -1, *bad_r = reply text). 0 on success. */
int imap_view_resolve(struct imap_session *s, const struct imap_arg *arg, bool uid,
		      uint32_t **uids_r, size_t *count_r, const char **bad_r);
/* Updates the view's copy of one message after this session changed it
 * (STORE), so the next sync does not report it again unless asked. */
void imap_view_update_msg(struct imap_view *v, uint32_t uid, uint32_t flags,
			  const char *keywords, uint64_t modseq);
/* The same by sequence number (1-based, in the view). */
void imap_view_update_seq(struct imap_view *v, uint32_t seq, uint32_t flags,
			  const char *keywords, uint64_t modseq);
/* True when uid is \Recent in this session. */
bool imap_view_is_recent(const struct imap_view *v, uint32_t uid);
/* flags | IMAP_FLAG_RECENT when uid is \Recent here: what FLAGS shows. */
uint32_t imap_view_flags_out(const struct imap_view *v, uint32_t uid, uint32_t flags);
/* Number of messages in the view that are \Recent in this session. */
size_t imap_view_recent_count(const struct imap_view *v);
/* Claims the messages no session has seen as recent yet (read-write views
 * only; a read-only view claims nothing). On the loop thread, so it never
 * waits for the store's lock: a claim that would have to is skipped, and
 * a later one takes those messages. */
void imap_view_claim_recent(struct imap_session *s);
/* Records UIDs [first, next) as claimed recent by this view. */
void imap_view_add_recent(struct imap_view *v, uint32_t first, uint32_t next);
/* Removes expunged UIDs from the view and reports them (EXPUNGE n / VANISHED). */
void imap_view_expunged(struct imap_session *s, const uint32_t *uids, size_t count);

/* ---- mailbox names (names.c) ---- */

/* Converts a mailbox name from the wire (modified UTF-7, or UTF-8 after ENABLE
 * UTF8=ACCEPT) to the store's UTF-8 name; "INBOX" in any case -> "INBOX".
 * NULL if invalid (*bad_r = reply text). Heap string. */
char *imap_name_from_wire(const struct imap_session *s, const char *name, size_t len,
			  const char **bad_r);
/* Writes a store name as an IMAP mailbox astring (mUTF-7 unless UTF8=ACCEPT).
 * 0, or -1 when out failed. */
int imap_name_write(const struct imap_session *s, struct evbuffer *out, const char *name);

/* ---- flags (flags.c) ---- */

/* imap_flags_parse's answer to a list naming more distinct keywords than
 * one message may have (TERN_KEYWORDS_PER_MESSAGE_MAX): not a syntax error,
 * the command gets NO [LIMIT] (RFC 5530). */
#define IMAP_FLAGS_TOO_MANY_KEYWORDS (-2)
/* Parses a flag list "(\Seen foo)" or a single flag atom into store bits and
 * a keyword string (space separated, each keyword once in the case first
 * given, heap, NULL if none). \Recent is refused for STORE/APPEND. 0 ok,
 * -1 bad (*bad_r), IMAP_FLAGS_TOO_MANY_KEYWORDS (*bad_r set as well). */
int imap_flags_parse(const struct imap_arg *arg, uint32_t *flags_r, char **keywords_r,
		     const char **bad_r);
/* Writes "(\Seen \Answered kw)" for flags + keywords. 0, or -1 when out
 * failed. */
int imap_flags_write(struct evbuffer *out, uint32_t flags, const char *keywords);

/* ---- change notification (server/notify.h) is used by view.c and IDLE ---- */

#endif
