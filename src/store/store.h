/* The per-user mail store: one SQLite database per user (WAL mode) with
 * folders, messages (raw bytes plus cached IMAP ENVELOPE/BODYSTRUCTURE),
 * subscriptions and a change record ordered by modseq. This is the only code
 * that touches those files. A handle is not thread-safe; open one per thread
 * or session (SQLite serialises writers between handles). Never logs.
 *
 * Every call is atomic (its own transaction, or a savepoint inside an explicit
 * store_begin), so a failure leaves nothing half done. Every change takes the
 * next value of one per-user modseq counter: messages, expunge tombstones,
 * folder creation/rename/deletion and subscriptions all carry the modseq of
 * their last change, which is what lets a mover ship "everything since M".
 * Folders are identified across nodes by UIDVALIDITY (unique per user). */
#ifndef TERN_STORE_STORE_H
#define TERN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct store;

/* IMAP system flags as bits; keywords travel separately as a string. */
enum store_flag {
	STORE_FLAG_SEEN = 1 << 0,
	STORE_FLAG_ANSWERED = 1 << 1,
	STORE_FLAG_FLAGGED = 1 << 2,
	STORE_FLAG_DELETED = 1 << 3,
	STORE_FLAG_DRAFT = 1 << 4,
};

/* Room for an object id (RFC 8474) the store makes, with its NUL. */
#define STORE_OBJECTID_SIZE 32

struct store_folder {
	int64_t id;
	char *name;            /* UTF-8, '/' separated, "INBOX" for the inbox */
	char *special_use;     /* "\\Sent" etc. or NULL */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint32_t unseen;       /* messages without \Seen */
	uint32_t recent;       /* 0 here; store_folder_peek_recent() counts */
	uint64_t size;         /* sum of message sizes */
	bool subscribed;
	char mailboxid[STORE_OBJECTID_SIZE]; /* MAILBOXID (RFC 8474): made at
	                          creation, kept by RENAME, never reused */
};

struct store_msg {
	uint32_t uid;
	uint32_t flags;        /* enum store_flag bits */
	char *keywords;        /* space-separated, NULL or "" if none */
	uint64_t modseq;
	int64_t internal_date; /* unix seconds */
	int32_t internal_tz;   /* minutes east of UTC, for INTERNALDATE */
	uint64_t size;         /* raw bytes */
	int64_t save_date;     /* as in struct store_msg_ids: SEARCH SAVED* */
	char emailid[STORE_OBJECTID_SIZE]; /* as there: SEARCH EMAILID */
};

/* The cached parse of a message (see store/mime.h), stored at append time. */
struct store_msg_cache {
	char *envelope;        /* IMAP ENVELOPE, "(...)" */
	char *bodystructure;   /* IMAP BODYSTRUCTURE, extensible form */
	char *body;            /* IMAP BODY, non-extensible form */
	char *subject;         /* decoded UTF-8, for listings */
	int64_t sent_date;     /* Date: header as unix seconds, 0 if none */
};

/* A message's object id and save date: what FETCH EMAILID/SAVEDATE and
 * SEARCH SAVEDBEFORE... read, kept apart from struct store_msg so that
 * listings and views do not carry them. */
struct store_msg_ids {
	char emailid[STORE_OBJECTID_SIZE]; /* EMAILID (RFC 8474 §5.1): made at
	                          append, shared by the message's COPY/MOVE copies */
	int64_t save_date;     /* unix seconds the message was saved into its
	                          folder (RFC 8514): append, delivery, COPY or MOVE
	                          target; the internal date for messages stored
	                          before schema v5 */
};

struct store_new_msg {
	const char *folder;    /* must exist */
	const void *data;      /* raw message, CRLF line ends */
	size_t size;
	int64_t internal_date; /* unix seconds; 0 = now */
	int32_t internal_tz;
	uint32_t flags;
	const char *keywords;  /* NULL or space-separated */
	const struct store_msg_cache *cache; /* NULL: the store computes it */
	uint64_t delivery_id;  /* non-zero: unique per node journal; a second
	                          append with the same id returns the first UID */
};

/* Changes in one folder after a modseq, for session resync (CONDSTORE/QRESYNC). */
struct store_changes {
	struct store_msg *changed;   /* messages whose modseq > since, by UID */
	size_t changed_count;
	uint32_t *vanished;          /* UIDs expunged with modseq > since, ascending */
	size_t vanished_count;
	uint64_t highestmodseq;
	uint32_t uidnext;
};

/* Tunes SQLite for many open stores; call once before any database is
 * opened (later it changes nothing). */
void store_library_init(void);

/* Path of the user's database: <data_dir>/mail/<user>.db (user already canonical). */
char *store_path(const char *data_dir, const char *user);

/* Opens the user's store; create = make it (with INBOX, Sent, Drafts, Trash,
 * Junk and their special-use) if missing, else TERN_ERR_NOTFOUND. */
int store_open(const char *data_dir, const char *user, bool create,
	       struct store **st_r, enum tern_error *err_r);
/* Opens an existing store for reading where no write may happen (a loop
 * thread): a schema that needs an upgrade (a write, and for some versions a
 * scan of the whole store) or a store whose creation never finished gives
 * TERN_ERR_CONFLICT, and a store task (which opens with store_open) is to
 * bring it up to date first. */
int store_open_current(const char *data_dir, const char *user, struct store **st_r,
		       enum tern_error *err_r);
void store_close(struct store **st);
/* Removes the user's database files (after ternctl user del, or a move). */
int store_remove(const char *data_dir, const char *user, enum tern_error *err_r);

/* Durability of commits from this handle: true = fsync on every commit
 * (synchronous=FULL), false = fsync at checkpoints only (NORMAL; the caller
 * guarantees durability elsewhere, e.g. the delivery journal). Default true. */
int store_set_durable(struct store *st, bool durable, enum tern_error *err_r);
/* The user's quota for later writes from this handle: an append or a copy
 * that would take the user's message bytes past it fails with
 * TERN_ERR_NOQUOTA; a move, an expunge or a flag change never does (a user
 * over quota can always clean up). 0 = no limit, the default (journal
 * replay must never refuse what was acknowledged). */
void store_set_quota(struct store *st, uint64_t bytes);
/* How long a call waits for another handle's write lock before it fails
 * with TERN_ERR_TEMP (default STORE_BUSY_TIMEOUT_MS); 0 = not at all. */
void store_set_busy_timeout(struct store *st, unsigned ms);
/* Flushes the WAL into the database and fsyncs it (PRAGMA wal_checkpoint). */
int store_checkpoint(struct store *st, enum tern_error *err_r);

/* Explicit transactions group several calls into one commit; calls outside
 * one commit individually. begin takes the write lock (BEGIN IMMEDIATE). */
int store_begin(struct store *st, enum tern_error *err_r);
int store_commit(struct store *st, enum tern_error *err_r);
void store_rollback(struct store *st);
/* A read snapshot over several read calls (BEGIN DEFERRED): they see one
 * state and share one WAL read lock, which a loop of per-message reads (a
 * whole-folder FETCH) would otherwise take and drop for every call. It keeps
 * the WAL from being checkpointed past it, so end it before the thread waits
 * for anything; no write calls inside. */
int store_read_begin(struct store *st, enum tern_error *err_r);
void store_read_end(struct store *st);

/* ---- folders ---- */
/* Whether name is one the store accepts for a folder (UTF-8, no empty or
 * dot components, no controls or LIST wildcards, within the length limit). */
bool store_folder_name_valid(const char *name);
/* All folders sorted by name (INBOX first), with counts filled in. */
int store_folder_list(struct store *st, struct store_folder **folders_r, size_t *count_r,
		      enum tern_error *err_r);
/* 1 found, 0 not found, -1 error. "inbox" in any case names INBOX. */
int store_folder_get(struct store *st, const char *name, struct store_folder *f_r,
		     enum tern_error *err_r);
/* Creates name (and missing parents, RFC 3501 §6.3.3). EXISTS if present. */
int store_folder_create(struct store *st, const char *name, const char *special_use,
			enum tern_error *err_r);
/* The same, and the new folder's MAILBOXID into mailboxid_r
 * (STORE_OBJECTID_SIZE bytes; NULL = not wanted), from the same
 * transaction: CREATE's "OK [MAILBOXID (id)]" (RFC 8474 §4.1). */
int store_folder_create_id(struct store *st, const char *name, const char *special_use,
			   char *mailboxid_r, enum tern_error *err_r);
/* Deletes a folder and its messages. INBOX cannot be deleted (INVALID). A folder
 * with children keeps existing as \Noselect... simplified: children stay, the
 * folder itself goes (RFC 3501 §6.3.4 allows refusing; we delete just it). */
int store_folder_delete(struct store *st, const char *name, enum tern_error *err_r);
/* Renames a folder and its children. Renaming INBOX moves its messages into a
 * new folder and leaves INBOX empty (RFC 3501 §6.3.5). New UIDVALIDITY is not
 * needed for the renamed folder (it keeps its own). */
int store_folder_rename(struct store *st, const char *from, const char *to,
			enum tern_error *err_r);
int store_folder_subscribe(struct store *st, const char *name, bool subscribe,
			   enum tern_error *err_r);
/* Claims the messages no session has yet seen as \\Recent (RFC 3501 §2.3.2):
 * UIDs in [*first_r, *next_r) are recent for the caller alone, and the folder's
 * mark moves to *next_r (its UIDNEXT). 1 ok, 0 no such folder, -1 error. */
int store_folder_claim_recent(struct store *st, const char *name, uint32_t *first_r,
			      uint32_t *next_r, enum tern_error *err_r);
/* What the claim would take, without taking it (EXAMINE, STATUS RECENT;
 * RFC 3501 §6.3.2, §6.3.10): no session has claimed UIDs in
 * [*first_r, *next_r) yet, and *count_r messages exist with such a UID.
 * Reads only. 1 ok, 0 no such folder, -1 error. */
int store_folder_peek_recent(struct store *st, const char *name, uint32_t *first_r,
			     uint32_t *next_r, uint32_t *count_r, enum tern_error *err_r);
/* The folder's messages with \Deleted: how many, and their raw bytes (what
 * EXPUNGE would free). Reads only. 1 ok, 0 no such folder, -1 error. */
int store_folder_deleted(struct store *st, const char *name, uint32_t *count_r,
			 uint64_t *bytes_r, enum tern_error *err_r);
/* Subscribed names (which may name folders that no longer exist), sorted;
 * free with store_names_free. Subscriptions are their own list (RFC 3501
 * §6.3.6): deleting a folder keeps its subscription; renaming carries it. */
int store_subscriptions(struct store *st, char ***names_r, size_t *count_r,
			enum tern_error *err_r);
void store_names_free(char ***names, size_t count);
void store_folders_free(struct store_folder **folders, size_t count);
void store_folder_clear(struct store_folder *f);

/* ---- messages ---- */
/* Appends a message; *uid_r (optional) gets its UID, *uidvalidity_r (optional)
 * the folder's UIDVALIDITY. Bumps modseq. NOTFOUND if the folder is missing.
 * With m->cache == NULL the message is parsed by mime_summarize() (before the
 * write lock is taken), so the process must have called mime_init(). With a
 * delivery_id already stored (anywhere in this store: a move carries the id
 * along), nothing is written and the existing message's UID and its folder's
 * UIDVALIDITY are returned. Keywords are normalized (duplicates dropped,
 * case-insensitively); a keyword that is not an IMAP atom, or starts with
 * '\', is INVALID. */
int store_append(struct store *st, const struct store_new_msg *m, uint32_t *uid_r,
		 uint32_t *uidvalidity_r, enum tern_error *err_r);
/* Metadata of every message in the folder, ascending UID. */
int store_msg_list(struct store *st, const char *folder, struct store_msg **msgs_r,
		   size_t *count_r, enum tern_error *err_r);
/* The same for at most limit messages with UID >= first_uid: a long
 * listing read a piece at a time, so no one call holds its thread long. */
int store_msg_list_from(struct store *st, const char *folder, uint32_t first_uid, size_t limit,
			struct store_msg **msgs_r, size_t *count_r, enum tern_error *err_r);
/* One message's metadata: 1 found, 0 not, -1 error. */
int store_msg_get(struct store *st, const char *folder, uint32_t uid, struct store_msg *m_r,
		  enum tern_error *err_r);
/* The raw message (heap, *size_r bytes, plus a NUL terminator not counted).
 * 1 found, 0 not, -1 error. */
int store_msg_raw(struct store *st, const char *folder, uint32_t uid, char **data_r,
		  size_t *size_r, enum tern_error *err_r);
/* Part of the raw message, for partial FETCH (BODY[]<offset.length>) of large
 * messages: reads only the bytes asked for. Up to length bytes from offset,
 * clipped to the message (an offset past the end gives 0 bytes); *data_r is
 * NUL-terminated heap memory of *size_r bytes; *total_r (optional) gets the
 * message's full size. 1 found, 0 no such message, -1 error. */
int store_msg_raw_range(struct store *st, const char *folder, uint32_t uid, uint64_t offset,
			uint64_t length, char **data_r, size_t *size_r, uint64_t *total_r,
			enum tern_error *err_r);
/* The message's EMAILID and save date. 1 found, 0 not, -1 error. */
int store_msg_ids(struct store *st, const char *folder, uint32_t uid, struct store_msg_ids *ids_r,
		  enum tern_error *err_r);
/* The cached parse. 1 found, 0 not, -1 error. */
int store_msg_cache(struct store *st, const char *folder, uint32_t uid,
		    struct store_msg_cache *c_r, enum tern_error *err_r);
/* Whether a read since the last call met a cached parse older than the
 * address parser (schema v6) and reparsed it without writing it back. */
bool store_stale_seen(struct store *st);
/* Writes up to max such parses back, 64 per transaction (the user's worker
 * runs this); *fixed_r = how many. Fewer than max: none is left. */
int store_fix_stale(struct store *st, unsigned max, unsigned *fixed_r, enum tern_error *err_r);

enum store_flag_op { STORE_FLAGS_SET, STORE_FLAGS_ADD, STORE_FLAGS_REMOVE };
/* Changes the flags of the given UIDs (ascending). unchangedsince != 0: skip
 * messages whose modseq > unchangedsince and report their UIDs in
 * *failed_r and *failed_count_r (CONDSTORE, RFC 7162 §3.1.3). Each message whose
 * flags actually change gets a new modseq. The new state of every existing
 * listed message (changed or not) goes to *msgs_r (optional). */
int store_flags_update(struct store *st, const char *folder, const uint32_t *uids, size_t count,
		       enum store_flag_op op, uint32_t flags, const char *keywords,
		       uint64_t unchangedsince, struct store_msg **msgs_r, size_t *msgs_count_r,
		       uint32_t **failed_r, size_t *failed_count_r, enum tern_error *err_r);
/* Expunges the listed UIDs (NULL = every message with \Deleted). Expunged UIDs
 * (ascending) go to *expunged_r; each leaves a tombstone with a new modseq. */
int store_expunge(struct store *st, const char *folder, const uint32_t *uids, size_t count,
		  uint32_t **expunged_r, size_t *expunged_count_r, enum tern_error *err_r);
/* Copies the listed UIDs to dest; source and new UIDs in matching order go to
 * *src_uids_r and *dst_uids_r (UIDPLUS COPYUID), plus dest's UIDVALIDITY. move =
 * also expunge them from the source in the same transaction (RFC 6851). Each
 * copy keeps its message's EMAILID and gets a save date of now. */
int store_copy(struct store *st, const char *folder, const uint32_t *uids, size_t count,
	       const char *dest, bool move, uint32_t **src_uids_r, uint32_t **dst_uids_r,
	       size_t *copied_r, uint32_t *dest_uidvalidity_r, enum tern_error *err_r);
/* Changes in folder since modseq, read from one snapshot (CONDSTORE
 * CHANGEDSINCE, QRESYNC SELECT, the mover's incremental rounds):
 * - changed: every message present now whose modseq > since (flag changes,
 *   and messages appended, copied or moved in after since), ascending UID;
 * - vanished: every UID expunged (or moved away) with modseq > since,
 *   ascending; a message that arrived and went after since is listed here
 *   only. Tombstones are never pruned, so the list is exact (RFC 7162 §3.2.5.2
 *   lets a server send more, Tern sends exactly these);
 * - highestmodseq and uidnext of the folder in that snapshot: the value the
 *   caller passes as since next time.
 * since = 0: every message as changed, no vanished (a full resync). */
int store_changes_since(struct store *st, const char *folder, uint64_t since,
			struct store_changes *ch_r, enum tern_error *err_r);
/* The user's total message bytes (QUOTA STORAGE) and message count. */
/* ---- view snapshots ----
 * A folder's message list (UID, flags, keywords, modseq) as a session last
 * saw it, so that the first SELECT after a restart reads one row instead of
 * every message row (on disk those lie between the message bodies: one
 * random read per few dozen messages). Only a cache: valid for one
 * UIDVALIDITY, completed by store_changes_since(modseq), dropped with the
 * folder, never part of a modseq or of what a mover ships. Which folders
 * have one and when it is rewritten: TERN_SNAPSHOT_MIN_MSGS and
 * TERN_SNAPSHOT_STALE (core/limits.h). */
struct store_snapshot_msg {
	uint32_t uid;            /* ascending, unique */
	uint32_t flags;
	uint64_t modseq;
	const char *keywords;    /* NULL or space-separated */
};
/* Modseq of the folder's snapshot for uidvalidity: 1 (*modseq_r set) or 0
 * when there is none. */
int store_snapshot_age(struct store *st, const char *folder, uint32_t uidvalidity,
		       uint64_t *modseq_r, enum tern_error *err_r);
/* 1 when the folder's snapshot for uidvalidity is missing or
 * TERN_SNAPSHOT_STALE modseqs behind modseq (worth rewriting), 0 if not. */
int store_snapshot_due(struct store *st, const char *folder, uint32_t uidvalidity,
		       uint64_t modseq, enum tern_error *err_r);
/* Replaces the folder's snapshot. Gives up at once (TERN_ERR_TEMP) instead
 * of waiting when another handle is writing: a cache is not worth a wait. */
int store_snapshot_put(struct store *st, const char *folder, uint32_t uidvalidity,
		       uint64_t modseq, const struct store_snapshot_msg *msgs, size_t count,
		       enum tern_error *err_r);
/* 1 with the messages (ascending UIDs, uid/flags/keywords/modseq filled,
 * keywords owned) when the folder has a snapshot for uidvalidity that does
 * not claim to be newer than the folder itself; 0 when none; -1 on error.
 * A snapshot that does not decode counts as none. */
int store_snapshot_get(struct store *st, const char *folder, uint32_t uidvalidity,
		       uint64_t *modseq_r, struct store_msg **msgs_r, size_t *count_r,
		       enum tern_error *err_r);

/* Rewrites the snapshot of every folder of TERN_SNAPSHOT_MIN_MSGS or more
 * whose snapshot is missing or TERN_SNAPSHOT_STALE behind, from a full
 * read. For the delivery side, before a checkpoint, so that mail delivered
 * while nobody was reading does not make the next SELECT read every row. */
int store_snapshots_refresh(struct store *st, enum tern_error *err_r);

int store_usage(struct store *st, uint64_t *bytes_r, uint64_t *messages_r,
		enum tern_error *err_r);
/* The user's modseq counter: the highest modseq any change in any folder got.
 * Every operation that changes something takes the next value (all messages it
 * touches share it), so this orders all changes of the user. */
int store_highestmodseq(struct store *st, uint64_t *modseq_r, enum tern_error *err_r);
/* SQLite PRAGMA integrity_check, plus the store's own invariants (folder
 * message/unseen/byte counters and blob reference counts match the rows).
 * 1 ok, 0 problems, -1 error. */
int store_integrity_check(struct store *st, enum tern_error *err_r);

/* A move's fence: this copy refuses every write to folders, messages and
 * subscriptions, through any connection (SQLite triggers), with
 * TERN_ERR_TEMP, until until_ms (wall-clock unix ms; 0 = for good, after
 * the directory switched the user's home). A session or delivery that
 * still reaches the old home fails and retries at the new one; a fence
 * with a deadline lapses by itself if the move never switches. */
int store_fence(struct store *st, int64_t until_ms, enum tern_error *err_r);
/* Undoes store_fence (a move rolled back before its switch). */
int store_unfence(struct store *st, enum tern_error *err_r);
/* Whether a fence is in force now. */
int store_fenced(struct store *st, bool *fenced_r, enum tern_error *err_r);

void store_msgs_free(struct store_msg **msgs, size_t count);
void store_msg_clear(struct store_msg *m);
void store_msg_cache_clear(struct store_msg_cache *c);
void store_changes_clear(struct store_changes *ch);

/* Canonical names of the special-use folders a new store gets. */
extern const char *const store_default_folders[][2]; /* {name, special_use}, NULL-terminated */

#endif
