/* Stub: being implemented by the imap-mailbox engineer. */
#include "proto/imap/commands.h"

IMAP_HANDLER(cmd_append)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}
