/* The node's delivery journal: an append-only file of delivery records made
 * durable in groups (one fdatasync for every delivery that arrived while the
 * previous sync ran). Per-user stores are then written without fsync; after a
 * crash the journal is replayed, idempotently, by delivery id. */
#ifndef TERN_SERVER_JOURNAL_H
#define TERN_SERVER_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

enum journal_record_type {
	JOURNAL_DELIVER = 1, /* a message for one user's folder (written by older
	                        versions; still replayed) */
	JOURNAL_ABORT = 2,   /* the delivery with this id failed and was refused */
	JOURNAL_MESSAGE = 3, /* a message's bytes, once for all its recipients */
	JOURNAL_RCPT = 4,    /* one recipient of the JOURNAL_MESSAGE message_id, in
	                        the same segment before it; data = the trace
	                        headers stored in front of that message */
};

struct journal_record {
	enum journal_record_type type;
	uint64_t id;             /* unique per node, increasing */
	const char *user;
	const char *folder;
	const char *keywords;    /* may be "" */
	uint32_t flags;
	int64_t internal_date;
	int32_t internal_tz;
	const void *data;
	size_t size;
	uint64_t message_id;     /* JOURNAL_RCPT only */
};

struct journal;

/* Opens (creating) the journal file for appending. */
int journal_open(const char *path, struct journal **j_r, char **err_r);
void journal_close(struct journal **j);
/* Queues a record in memory; journal_sync writes and syncs all queued ones. */
int journal_add(struct journal *j, const struct journal_record *rec);
/* Writes queued records and fdatasyncs. -1 with errno set on failure (the
 * file is then cut back to its last synced length). */
int journal_sync(struct journal *j);
/* Drops the records queued since the last sync (a batch that failed). */
void journal_discard(struct journal *j);
/* Bytes in the file. */
uint64_t journal_size(const struct journal *j);
/* Empties the file (after every store it covers was checkpointed). */
int journal_reset(struct journal *j);

/* Calls fn for every intact record in order, stopping at the first torn or
 * corrupt one (a crash mid-write); *max_id_r gets the highest id seen.
 * Returns 0, or -1 if fn failed or the file cannot be read (*err_r). */
int journal_replay(const char *path, int (*fn)(const struct journal_record *rec, void *ctx),
		   void *ctx, uint64_t *max_id_r, char **err_r);

/* Serialises one record into a fresh buffer; exposed for the fuzz target. */
int journal_encode(const struct journal_record *rec, uint8_t **buf_r, size_t *len_r);
/* Parses one record at buf; 1 = ok (*used_r bytes), 0 = incomplete/corrupt. */
int journal_decode(const uint8_t *buf, size_t len, struct journal_record *rec_r, size_t *used_r);

#endif
