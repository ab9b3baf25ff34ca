/* IMAP SEARCH (stub while the real handler is written). */
#include "proto/imap/commands.h"

IMAP_HANDLER(cmd_search)
{
	(void)s;
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}
