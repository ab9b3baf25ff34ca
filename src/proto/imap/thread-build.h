/* THREAD algorithms of RFC 5256: ORDEREDSUBJECT (§3, "poor man's
 * threading") and REFERENCES (§3, after Jamie Zawinski's algorithm), and the
 * thread-list writer of the THREAD response. Pure code: the command loads
 * each message's ids, subject and date; this builds and writes the tree. */
#ifndef TERN_PROTO_IMAP_THREAD_BUILD_H
#define TERN_PROTO_IMAP_THREAD_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap/sort-parse.h"

struct evbuffer;

/* One message to thread; strings are borrowed for the call. */
struct imap_thread_msg {
	uint32_t id;             /* what the response shows: seq or UID */
	uint32_t seq;            /* mailbox order, the tie break */
	int64_t date;            /* sent date, or INTERNALDATE without one */
	const char *subject;     /* base subject key (sort-subject.h), "" = none */
	bool is_reply;           /* the subject had Re:/Fwd:/(fwd) */
	const char *msgid;       /* NULL = none */
	char *const *refs;       /* References, or In-Reply-To's first id */
	size_t ref_count;
};

/* Builds the threads of msgs (any order) with algo and appends them to out
 * as the payload of "* THREAD ": "(2)(3 6 (4 23)(44 7 96))", nothing for no
 * messages. 0, or -1 when out of memory (out may then hold part of it). */
int imap_thread_write(struct evbuffer *out, enum imap_thread_algo algo,
		      const struct imap_thread_msg *msgs, size_t count);

/* The same in steps, so that threading a big folder never holds the loop
 * thread for long: new (NULL = out of memory; msgs and its strings are
 * borrowed until free), then step until it returns 1 (built) rather than
 * 0 (deadline_ms, on tern_now_ms's clock, has passed; every call makes
 * some progress, so a deadline of 0 gives the finest slicing) or -1 (out
 * of memory), then write until it returns 1 (all written to out; 0 =
 * deadline passed, call again with the same out; -1 = not built, or out
 * failed: out holds part of it), then free. Once built, only the ids of
 * msgs are used: its strings may go. The threads are exactly those
 * imap_thread_write writes. */
struct imap_thread_build;
struct imap_thread_build *imap_thread_build_new(enum imap_thread_algo algo,
						const struct imap_thread_msg *msgs, size_t count);
int imap_thread_build_step(struct imap_thread_build *b, uint64_t deadline_ms);
int imap_thread_build_write(struct imap_thread_build *b, struct evbuffer *out,
			    uint64_t deadline_ms);
void imap_thread_build_free(struct imap_thread_build **b);

#endif
