/* The user's storage quota as IMAP sees it (RFC 9208): one quota root ""
 * holding every folder, limited by the directory's per-user quota or the
 * node default. Shared by GETQUOTA/GETQUOTAROOT and APPEND's early check. */
#ifndef TERN_PROTO_IMAP_QUOTA_H
#define TERN_PROTO_IMAP_QUOTA_H

#include <stdint.h>

#include "core/error.h"

struct imap_session;

/* *limit_r = the user's limit in bytes (0 = unlimited), *used_r = bytes
 * stored now. The limit is the session's copy, read with its login's
 * directory row: no directory read on the loop thread. A copy older than
 * TERN_QUOTA_REFRESH_MS is still used, and a refresh is started off the
 * loop for the commands after this one, so a limit changed with ternctl
 * applies to a session from its next login or within about that long.
 * One store read on the loop thread. 0 ok, -1 error (*err_r; outputs
 * untouched). */
int imap_quota_get(struct imap_session *s, uint64_t *limit_r, uint64_t *used_r,
		   enum tern_error *err_r);

#endif
