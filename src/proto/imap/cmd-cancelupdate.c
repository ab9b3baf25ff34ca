/* CANCELUPDATE "tag" ... (RFC 5267 §4.3.5): ends the updating contexts of
 * the SEARCH or SORT commands named by their tags (search-context.h). */
#include <string.h>

#include "proto/imap/commands.h"
#include "proto/imap/search-context.h"

IMAP_HANDLER(cmd_cancelupdate)
{
	const char *tag;
	size_t len;
	if (cmd->arg_count == 0) {
		imap_bad(s, cmd, "CANCELUPDATE needs the tags of the contexts");
		return IMAP_CMD_DONE;
	}
	/* all or nothing: a tag that names no context (a typo, or one already
	 * ended) is a bad command, and cancels none of the others */
	for (size_t i = 0; i < cmd->arg_count; i++) {
		if (!imap_arg_string(&cmd->args[i], &tag, &len) || strlen(tag) != len) {
			imap_bad(s, cmd, "CANCELUPDATE takes quoted tags");
			return IMAP_CMD_DONE;
		}
		if (!imap_context_tag_in_use(s, tag)) {
			imap_bad(s, cmd, "No such context");
			return IMAP_CMD_DONE;
		}
	}
	for (size_t i = 0; i < cmd->arg_count; i++)
		if (imap_arg_string(&cmd->args[i], &tag, &len))
			(void)imap_context_cancel(s, tag);
	imap_tagged(s, cmd, "OK No further updates");
	return IMAP_CMD_DONE;
}
