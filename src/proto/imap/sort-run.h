/* What SORT and THREAD share: the search step (evaluates a search program
 * over the selected folder as SEARCH does, see search-eval.h, and gives
 * the matching messages with their metadata, in mailbox order), then
 * loading something per match from the store, then the command's own CPU
 * work, all in slices of TERN_COMMAND_SLICE_MS with the loop thread given
 * back in between (conn_yield), as SEARCH does. Session glue: reads the
 * session's store on the loop thread. */
#ifndef TERN_PROTO_IMAP_SORT_RUN_H
#define TERN_PROTO_IMAP_SORT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "proto/imap/search-parse.h"
#include "proto/imap/session.h"

struct imap_sort_match {
	uint32_t seq, uid;
	int64_t internal_date;
	uint64_t size;
	uint64_t modseq;
};

/* What a command plugs into a run; arg is its own state. */
struct imap_sort_run_ops {
	/* The search is done: matches (ascending seq, owned by the run, valid
	 * until free) and the highest modseq among them. 1: call load for
	 * each match, 0: nothing to load, -1: error (*err_r). */
	int (*prepare)(void *arg, const struct imap_sort_match *matches, size_t count,
		       uint64_t max_modseq, enum tern_error *err_r);
	/* Loads what match i needs. Runs inside a read snapshot that lasts
	 * one slice at most. 0 or -1 (*err_r). */
	int (*load)(struct imap_session *s, void *arg, size_t i, enum tern_error *err_r);
	/* The CPU work after loading: 1 done, 0 deadline_ms (tern_now_ms)
	 * passed, -1 error (*err_r). Called again until it returns 1. */
	int (*compute)(void *arg, uint64_t deadline_ms, enum tern_error *err_r);
	/* Writes the answer and the tagged reply: r = 0 success, -1 failure
	 * with err (or a failure before prepare). */
	void (*finish)(struct imap_session *s, struct imap_cmd *cmd, void *arg, int r,
		       enum tern_error err);
	/* Frees arg (and the search program, which arg owns). */
	void (*free)(void *arg);
};

/* Runs a SORT or THREAD: search with prog (borrowed from arg), then the ops.
 * The first slice runs now: IMAP_CMD_DONE when the command is finished
 * (reply written, arg freed), else IMAP_CMD_ASYNC: the session reads no
 * other command meanwhile, and the run finishes the command later
 * (imap_command_finished). The view does not change meanwhile (it syncs
 * only when the reply is written); a message another session expunges
 * meanwhile reads as gone, as in SEARCH. If the connection closes first,
 * the yield is cancelled and the session frees the run with its state. On
 * allocation failure arg is freed and the command answered. */
enum imap_cmd_result imap_sort_run(struct imap_session *s, struct imap_cmd *cmd,
				   struct imap_search_program *prog,
				   const struct imap_sort_run_ops *ops, void *arg);

/* The header block of a message, or a prefix of it when the header is very
 * long (enough for Message-ID/References in practice). 1 found (*data_r
 * heap, *size_r), 0 gone, -1 error (*err_r). */
int imap_sort_read_header(struct imap_session *s, uint32_t uid, char **data_r, size_t *size_r,
			  enum tern_error *err_r);

#endif
