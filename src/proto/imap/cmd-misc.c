/* IMAP commands: stub until implemented. */
#include "proto/imap/commands.h"

IMAP_HANDLER(cmd_noop)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_logout)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_id)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_enable)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_namespace)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_check)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_compress)
{
	imap_tagged(s, cmd, "NO [CANNOT] Not implemented yet");
	return IMAP_CMD_DONE;
}

