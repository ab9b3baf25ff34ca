/* GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208 / RFC 2087): one quota root ""
 * per user with the STORAGE resource in units of 1024 octets. Limits are
 * set by the administrator (ternctl), never by the client. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/config.h"
#include "core/limits.h"
#include "core/lock.h"
#include "proto/imap/commands.h"
#include "proto/imap/quota.h"
#include "server/lookup.h"
#include "server/loop.h"
#include "store/store.h"

/* The directory's answer to a refresh. A user deleted while logged in
 * keeps the node default; a failed read keeps the copy, and the next
 * refresh is due a period later (a broken directory is not asked on every
 * command). */
static void quota_refreshed(const struct lookup_result *r, void *ctx)
{
	struct imap_session *s = ctx;
	if (r->found > 0)
		s->quota_limit = r->quota;
	else if (r->found == 0)
		s->quota_limit = imap_config(s)->default_quota;
	s->quota_read_ms = tern_now_ms();
}

int imap_quota_get(struct imap_session *s, uint64_t *limit_r, uint64_t *used_r,
		   enum tern_error *err_r)
{
	uint64_t used, messages;
	/* The limit is this session's copy; an old one is refreshed for later
	 * commands, off the loop thread, and used meanwhile. */
	if (s->quota_refresh == NULL && tern_now_ms() - s->quota_read_ms >= TERN_QUOTA_REFRESH_MS)
		lookup_user(s->conn->loop, s->user, 0, quota_refreshed, s, &s->quota_refresh);
	if (store_usage(s->store, &used, &messages, err_r) < 0)
		return -1;
	*limit_r = s->quota_limit;
	*used_r = used;
	return 0;
}

/* "* QUOTA "" (STORAGE used limit)"; the resource list is empty when the
 * user has no limit. */
static int write_quota(struct imap_session *s, const struct imap_cmd *cmd)
{
	uint64_t limit, used;
	enum tern_error err = TERN_ERR_NONE;

	if (imap_quota_get(s, &limit, &used, &err) < 0) {
		imap_store_error(s, cmd, "quota lookup", err);
		return -1;
	}
	if (limit == 0)
		imap_untagged(s, "QUOTA \"\" ()");
	else
		imap_untagged(s, "QUOTA \"\" (STORAGE %llu %llu)",
			      (unsigned long long)((used + 1023) / 1024),
			      (unsigned long long)(limit / 1024));
	return 0;
}

IMAP_HANDLER(cmd_getquota)
{
	const char *root;
	size_t len;

	if (cmd->arg_count != 1 || !imap_arg_astring(&cmd->args[0], &root, &len)) {
		imap_bad(s, cmd, "GETQUOTA needs a quota root");
		return IMAP_CMD_DONE;
	}
	if (len != 0) {
		imap_tagged(s, cmd, "NO [NONEXISTENT] Quota root does not exist");
		return IMAP_CMD_DONE;
	}
	if (write_quota(s, cmd) == 0)
		imap_tagged(s, cmd, "OK Getquota completed");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_getquotaroot)
{
	const char *wire, *bad = NULL;
	size_t len;
	struct store_folder f;
	enum tern_error err = TERN_ERR_NONE;

	if (cmd->arg_count != 1 || !imap_arg_astring(&cmd->args[0], &wire, &len)) {
		imap_bad(s, cmd, "GETQUOTAROOT needs a mailbox name");
		return IMAP_CMD_DONE;
	}
	char *name = imap_name_from_wire(s, wire, len, &bad);
	if (name == NULL) {
		imap_bad(s, cmd, bad != NULL ? bad : "Invalid mailbox name");
		return IMAP_CMD_DONE;
	}
	int found = store_folder_get(s->store, name, &f, &err);
	if (found < 0) {
		imap_store_error(s, cmd, "getquotaroot", err);
	} else if (found == 0) {
		imap_tagged(s, cmd, "NO [NONEXISTENT] Mailbox does not exist");
	} else {
		imap_out_add(s, "* QUOTAROOT ", 12);
		imap_out_check(s, imap_name_write(s, imap_out(s), f.name));
		imap_out_add(s, " \"\"\r\n", 5);
		if (write_quota(s, cmd) == 0)
			imap_tagged(s, cmd, "OK Getquotaroot completed");
		store_folder_clear(&f);
	}
	free(name);
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_setquota)
{
	imap_tagged(s, cmd, "NO [NOPERM] Quota is set by the administrator");
	return IMAP_CMD_DONE;
}
