/* IMAP commands: stub until implemented. */
#include "proto/imap/commands.h"

IMAP_HANDLER(cmd_idle)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

