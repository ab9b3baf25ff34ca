#include "proto/reply.h"

#include <stddef.h>

static const struct tern_reply err_replies[TERN_ERR_COUNT] = {
	[TERN_ERR_TEMP] = {"NO [UNAVAILABLE] Temporary failure, try again",
			   "-ERR [SYS/TEMP] Temporary failure, try again",
			   "451 4.3.0 Temporary failure, try again later"},
	[TERN_ERR_UNAVAILABLE] = {"NO [UNAVAILABLE] Mailbox is being moved, try again",
				  "-ERR [IN-USE] Mailbox is being moved, try again",
				  "451 4.2.0 Mailbox temporarily unavailable, try again later"},
	[TERN_ERR_NOQUOTA] = {"NO [OVERQUOTA] Quota exceeded", "-ERR [SYS/PERM] Quota exceeded",
			      "552 5.2.2 Mailbox is full"},
	[TERN_ERR_NOTFOUND] = {"NO [NONEXISTENT] No such mailbox", "-ERR No such message",
			       "550 5.1.1 No such user"},
	[TERN_ERR_EXISTS] = {"NO [ALREADYEXISTS] Already exists", "-ERR Already exists",
			     "451 4.3.0 Local error in processing"},
	[TERN_ERR_INVALID] = {"NO [CANNOT] Invalid name or argument", "-ERR Invalid argument",
			      "451 4.3.0 Local error in processing"},
	[TERN_ERR_TOOBIG] = {"NO [TOOBIG] Message too large", "-ERR Message too large",
			     "552 5.3.4 Message too big for system"},
	[TERN_ERR_IO] = {"NO [SERVERBUG] Internal storage error", "-ERR [SYS/TEMP] Internal storage error",
			 "451 4.3.0 Storage failure, try again later"},
	[TERN_ERR_NOSPACE] = {"NO [SERVERBUG] Storage full", "-ERR [SYS/TEMP] Storage full",
			      "451 4.3.0 Storage failure (disk full), try again later"},
	[TERN_ERR_CORRUPT] = {"NO [SERVERBUG] Mailbox database damaged",
			      "-ERR [SYS/TEMP] Mailbox database damaged",
			      "451 4.3.0 Storage failure, try again later"},
	[TERN_ERR_NOMEM] = {"NO [SERVERBUG] Out of memory", "-ERR [SYS/TEMP] Out of memory",
			    "451 4.3.0 Out of memory, try again later"},
};

const struct tern_reply *tern_reply_for(enum tern_error err)
{
	if ((unsigned)err >= TERN_ERR_COUNT || err_replies[err].lmtp == NULL)
		return &err_replies[TERN_ERR_IO];
	return &err_replies[err];
}
