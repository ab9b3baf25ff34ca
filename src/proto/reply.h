/* One table maps store/directory errors to each protocol's reply, so a
 * failure reads the same wherever it surfaces. */
#ifndef TERN_PROTO_REPLY_H
#define TERN_PROTO_REPLY_H

#include "core/error.h"

struct tern_reply {
	const char *imap;  /* "NO [CODE] text" without the tag */
	const char *pop3;  /* "-ERR [CODE] text" */
	const char *lmtp;  /* "451 4.3.0 text" */
};

/* The replies for err (TERN_ERR_NONE is not an error and must not be passed). */
const struct tern_reply *tern_reply_for(enum tern_error err);

#endif
