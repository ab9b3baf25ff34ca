/* IMAP commands: stub until implemented. */
#include "proto/imap/commands.h"

IMAP_HANDLER(cmd_capability)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_login)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_authenticate)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_starttls)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

