/* IMAP commands that change the store (STORE, EXPUNGE, COPY/MOVE, folder
 * changes) do their write on the worker that owns the user, never on the
 * loop thread: the session stops reading, and the command finishes from the
 * result posted back to its loop. */
#ifndef TERN_PROTO_IMAP_STORE_WRITE_H
#define TERN_PROTO_IMAP_STORE_WRITE_H

#include <stdbool.h>

#include "core/error.h"
#include "proto/imap/session.h"

struct store;

/* Runs on the worker with the user's store; arg belongs to the command. */
typedef int imap_write_fn(struct store *st, void *arg, enum tern_error *err_r);
/* Runs on the loop afterwards, always: replies (result/err are what the
 * write gave; TERN_ERR_TEMP when its deadline passed) and frees arg. The
 * session is gone when closing: free arg and reply nothing. */
typedef void imap_write_done_fn(struct imap_session *s, struct imap_cmd *cmd, void *arg,
				int result, enum tern_error err, bool closing);

/* Like imap_write_done_fn, for a command that goes on after its write
 * (FETCH marking messages \Seen, then writing them): returns
 * IMAP_CMD_ASYNC when it started more asynchronous work that will call
 * imap_command_finished() itself, IMAP_CMD_DONE when the command is over. */
typedef enum imap_cmd_result imap_write_then_fn(struct imap_session *s, struct imap_cmd *cmd,
						void *arg, int result, enum tern_error err,
						bool closing);

/* Starts the write; return its value from the handler. */
enum imap_cmd_result imap_store_write(struct imap_session *s, struct imap_cmd *cmd,
				      imap_write_fn *write, void *arg, imap_write_done_fn *done);

/* The same, for a command that may go on after its write. */
enum imap_cmd_result imap_store_write_then(struct imap_session *s, struct imap_cmd *cmd,
					   imap_write_fn *write, void *arg,
					   imap_write_then_fn *then);

#endif
