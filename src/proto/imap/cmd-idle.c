/* IDLE (RFC 2177): report changes as they happen until the client sends
 * DONE. Other sessions and the delivery pipeline wake us through
 * server/notify.h; session.c's callback syncs the view while s->idling,
 * or, with NOTIFY SET, cmd-notify.c does (and adds STATUS/LIST for the
 * other mailboxes it watches). */
#include <stdlib.h>
#include <strings.h>

#include "core/log.h"
#include "proto/imap/commands.h"
#include "store/store.h"

static void idle_line(struct imap_session *s, char *line)
{
	bool done = strcasecmp(line, "DONE") == 0;
	free(line);
	s->idling = false;
	if (imap_session_unpark_store(s) < 0) {
		imap_command_finished(s);
		return;
	}
	if (done)
		imap_tagged(s, s->pending, "OK Idle completed");
	else
		imap_bad(s, s->pending, "Expected DONE");
	imap_command_finished(s);
}

IMAP_HANDLER(cmd_idle)
{
	enum tern_error err = TERN_ERR_NONE;
	if (cmd->arg_count != 0) {
		imap_bad(s, cmd, "Invalid arguments");
		return IMAP_CMD_DONE;
	}
	conn_printf(s->conn, "+ idling\r\n");
	s->idling = true;
	/* what happened before IDLE began goes out at once */
	if (imap_view_sync(s, true, &err) < 0)
		log_warn("imap: user=%s, rip=%s: IDLE update failed: %s", s->user,
			 s->conn->peer_addr, tern_error_str(err));
	imap_session_park_store(s);
	imap_read_line(s, idle_line);
	return IMAP_CMD_ASYNC;
}
