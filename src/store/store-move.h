/* The store side of an online mailbox move (issue 10): the bulk copy and
 * each "changes since modseq N" round are plain SQLite database files, so
 * what travels between nodes is a file and nothing needs its own encoding.
 *
 *   source                                 destination
 *   store_move_snapshot(st, f, &m)   -->   f becomes <data_dir>/mail/<user>.db
 *                                          (store_move_install)
 *   store_move_delta(st, f, m, d, &m2) --> store_move_apply(st, f, &m2)
 *   ... rounds until the delta is small, the last one while the user is
 *   frozen; then store_move_checksum() on both sides must agree.
 *
 * Everything the user can observe is preserved exactly: folders (by id and
 * UIDVALIDITY), names, special-use, UIDNEXT, HIGHESTMODSEQ, recent_uid,
 * subscriptions (kept rows with subscribed = 0 included), messages with
 * their UIDs, flags, keywords, modseqs, internal dates and zones, sizes,
 * cached parse and delivery ids, expunge tombstones, deleted-folder records,
 * the delivered-id record, and the store's modseq and UIDVALIDITY counters.
 * Folder counters and blob reference counts are not copied: the store's
 * triggers recompute them from the rows.
 *
 * Every call here needs a handle with no transaction open (TERN_ERR_INVALID
 * otherwise): it attaches the file to the handle for the call. */
#ifndef TERN_STORE_STORE_MOVE_H
#define TERN_STORE_STORE_MOVE_H

#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

/* A consistent copy of the whole store in a new file at path (EXISTS if
 * path exists), taken with SQLite's online backup in one step, i.e. from one
 * read snapshot while other connections keep writing (WAL). The copy is a
 * single self-contained file (rollback journal mode; store_open switches it
 * back to WAL), without view snapshots (a cache) and never fenced (a
 * store_fence of the source does not travel). *modseq_r = the store's
 * modseq in the copy: the `since` of the first delta. On failure the file
 * is removed. */
int store_move_snapshot(struct store *st, const char *path, uint64_t *modseq_r,
			enum tern_error *err_r);

/* Installs a snapshot file as user's store under data_dir (rename, so the
 * same file system): EXISTS if the user already has a store, INVALID if the
 * file is not a store snapshot. */
int store_move_install(const char *data_dir, const char *user, const char *path,
		       enum tern_error *err_r);

/* What a copy is compared by: SHA-256 over rows in a fixed order, and the
 * counts of folders and messages. */
struct store_move_sum {
	uint64_t folders;
	uint64_t messages;
	uint8_t digest[32];
};

/* Writes a new SQLite file at path (EXISTS if it exists) with the store's
 * tables holding, read in one read transaction:
 * - every folder row (renames, UIDNEXT, HIGHESTMODSEQ, recent_uid travel);
 * - deleted_folders, subscriptions, messages and expunged rows with
 *   modseq > since, and every blob those messages reference;
 * - delivered ids > since_delivered of since_delivered's node (see
 *   store_move_max_delivered);
 * - meta: schema_version, modseq and uidvalidity.
 * *modseq_r = the store's modseq in that read: the next round's since.
 * *changes_r = rows changed after since: messages, expunges, folder
 * creations/renames (folders.modseq > since), folder deletions and
 * subscriptions; 0 = nothing to ship but the folder rows. With sum_r, also
 * the whole store's sum (store_move_checksum, since 0) in the same read:
 * what the destination must have once it applied this delta. The file is
 * not fsynced (it is transient; a crashed round is redone). Removed on
 * failure. */
int store_move_delta(struct store *st, const char *path, uint64_t since, uint64_t since_delivered,
		     uint64_t *modseq_r, uint64_t *changes_r, struct store_move_sum *sum_r,
		     enum tern_error *err_r);

/* Applies a delta file (store_move_delta) in one write transaction:
 * folders the delta does not list with the same id and UIDVALIDITY are
 * deleted with their messages, tombstones and view snapshots; folders are
 * upserted by id (names moved aside first, so swapped names never collide);
 * expunged messages deleted and their tombstones recorded; new blobs then
 * new messages inserted, existing ones get the delta's flags, keywords and
 * modseq; subscriptions, deleted-folder records and delivered ids merged;
 * the store's modseq and UIDVALIDITY counters set to the delta's. Applying
 * the same delta again changes nothing. Ignores the handle's quota (what
 * the source acknowledged is never refused). NOTFOUND if path is missing,
 * INVALID if it is not a delta of this schema version. *modseq_r (may be
 * NULL) = the delta's modseq. */
int store_move_apply(struct store *st, const char *path, uint64_t *modseq_r,
		     enum tern_error *err_r);

/* The sum of the store in one read snapshot. since = 0: everything, i.e.
 * the store's modseq; every folder by name (name, special-use, UIDVALIDITY,
 * UIDNEXT, HIGHESTMODSEQ, MAILBOXID); every message by folder name and UID
 * (folder name, UID, modseq, flags, keywords, size, internal date and zone,
 * EMAILID, save date); every subscription (name, subscribed). Message
 * bodies are not read.
 *
 * since > 0: what changed after that modseq, for two copies already found
 * equal at since: the store's modseq; every folder with its message,
 * unseen and byte counts; the messages with modseq > since (as above);
 * the expunge records with modseq > since, each with whether a message
 * still has its UID; every subscription. Read through the modseq indexes,
 * so it costs the changes, not the mailbox: two copies equal at since whose
 * sums after since are equal are equal (a message wrongly deleted changes
 * a count, one wrongly kept shows beside its expunge record, one wrongly
 * changed carries a new modseq).
 *
 * messages = the number of messages (both forms). Compare the two copies'
 * sums while nothing writes to either. */
int store_move_checksum(struct store *st, uint64_t since, struct store_move_sum *sum,
			enum tern_error *err_r);

/* The highest delivery id the store has recorded of node's ids
 * (core/delivery-id.h), or the first id node can hand out if none: what the
 * destination passes to the next store_move_delta as since_delivered, with
 * node the source's number (the source's store gets no other node's ids
 * while it is the home). Ids are only roughly ordered (parallel apply and a
 * replay after a restart can record an id below one already recorded), and
 * `delivered` has no modseq, so a mover should pass this value minus a
 * margin covering that reordering (an id shipped twice is harmless). Ids
 * carried by shipped messages are recorded by store_move_apply in any case. */
int store_move_max_delivered(struct store *st, uint32_t node, uint64_t *id_r,
			     enum tern_error *err_r);

#endif
