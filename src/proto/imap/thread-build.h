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

#endif
