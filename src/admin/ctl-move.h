/* ternctl move: the operator's side of online mailbox moves (issue 10). Every
 * command works on the directory only: "start" and "batch" queue moves, the
 * mover inside the destination ternd picks them up and records phase and
 * progress there, and "status", "list" and --wait read it back. "complete"
 * clears the suspend_when_ready flag, "cancel" asks the mover to roll back. */
#ifndef TERN_ADMIN_CTL_MOVE_H
#define TERN_ADMIN_CTL_MOVE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "admin/ctl-output.h"
#include "admin/ctl.h"

/* Exit statuses of a wait besides 0 (completed) and 1 (failed, cancelled). */
#define CTL_MOVE_TIMEOUT CTL_USAGE                 /* 2: --timeout passed */
#define CTL_MOVE_INTERRUPTED ((enum ctl_status)130) /* Ctrl-C; the move keeps running */

/* The poll interval of every wait. */
#define CTL_MOVE_POLL_MS 200

/* Columns of "move list" (text); its JSON rows carry every status field. */
extern const struct ctl_column ctl_move_list_columns[];
extern const size_t ctl_move_list_columns_count;

/* How a wait reports: json = silent until the end, then the move's status
 * object; else a redrawn progress line on a terminal (tty) or one plain line
 * per change of phase or wait reason. timeout_ms 0 = wait forever. */
struct ctl_move_wait {
	bool json;
	bool tty;
	uint64_t timeout_ms;
};

/* Queues a move of user_arg to node `to` from the user's home. Refuses, with
 * a message naming the cause: unknown user or node, destination = home,
 * a move already active. A destination (or source) node that is down only
 * warns (*warning_r, heap, NULL if none). *move_r: the status object of the
 * new move. */
int ctl_move_start(struct ctl *c, const char *user_arg, const char *to, bool suspend,
		   json_t **move_r, char **warning_r);

/* The status object of user_arg's latest move (active, else the last one
 * that finished), or with user_arg NULL an array of every active move. */
int ctl_move_status(struct ctl *c, const char *user_arg, json_t **result_r);
/* Prints what ctl_move_status returned: JSON, or "field:  value" blocks. */
int ctl_move_print_status(FILE *out, json_t *result, bool json);

/* Active moves, or every move with all, oldest first. */
int ctl_move_list(struct ctl *c, bool all, json_t **rows_r);

/* Clears suspend_when_ready of user_arg's active move (it then finalizes),
 * or cancels it (the mover rolls back). *move_r: its status afterwards. */
int ctl_move_complete(struct ctl *c, const char *user_arg, json_t **move_r);
int ctl_move_cancel(struct ctl *c, const char *user_arg, json_t **move_r);

/* Polls move id every CTL_MOVE_POLL_MS until it completed (0), failed or was
 * cancelled (-1, exit 1, last_error in the message), the timeout passed
 * (-1, CTL_MOVE_TIMEOUT) or Ctrl-C (-1, CTL_MOVE_INTERRUPTED); the move is
 * left running in the last two cases. Reports on stdout as w says. */
int ctl_move_wait(struct ctl *c, int64_t id, const struct ctl_move_wait *w);

struct ctl_move_batch {
	const char *to;          /* destination node */
	const char *from;        /* every user homed there, or */
	const char *users_file;  /* one user a line, '#' comments */
	bool suspend;            /* not on the command line; for the admin API */
	bool wait;               /* wait for every move, at most parallel at once */
	unsigned parallel;       /* >= 1, with wait only */
	struct ctl_move_wait how;
};

/* Queues a move for every user of the batch (all at once without wait) and
 * prints one line per user and a summary (or a JSON array of {user, id,
 * result, error} with how.json). 0 when every user got a move (and, with
 * wait, every move completed); -1 otherwise, exit 1 or as ctl_move_wait. */
int ctl_move_batch(struct ctl *c, const struct ctl_move_batch *b);

#endif
