/* Stub: being implemented by the imap-mailbox engineer. */
#include "proto/imap/commands.h"

IMAP_HANDLER(cmd_list)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_status)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}
