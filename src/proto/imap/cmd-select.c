/* IMAP commands: stub until implemented. */
#include "proto/imap/commands.h"

IMAP_HANDLER(cmd_select)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_close)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_unselect)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_expunge)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

