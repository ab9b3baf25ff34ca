/* Commands valid in any authenticated state that touch no folder: NOOP,
 * CHECK, LOGOUT, ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342)
 * and COMPRESS (RFC 4978). */
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proto/imap/commands.h"
#include "server/compress.h"

/* Pending changes go out before the tagged reply (session.c): that is all
 * NOOP and CHECK are for (RFC 3501 §6.1.2, §6.4.1). */
IMAP_HANDLER(cmd_noop)
{
	imap_tagged(s, cmd, "OK NOOP completed");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_check)
{
	imap_tagged(s, cmd, "OK Check completed");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_logout)
{
	imap_untagged(s, "BYE Logging out");
	imap_tagged(s, cmd, "OK Logout completed");
	s->state = IMAP_STATE_LOGOUT;
	conn_close(s->conn);
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_id)
{
	/* RFC 2971 §3.3: a list of field/value pairs or NIL; we only log it */
	const struct imap_arg *list;
	size_t count;
	const char *f;
	size_t flen;
	bool ok = cmd->arg_count == 1 &&
		  (cmd->args[0].type == IMAP_ARG_NIL ||
		   (imap_arg_list(&cmd->args[0], &list, &count) && count % 2 == 0));
	/* id-params-list = "(" *(string SP nstring) ")" / nil */
	for (size_t i = 0; ok && cmd->args[0].type != IMAP_ARG_NIL && i < count; i += 2)
		ok = imap_arg_string(&list[i], &f, &flen) && imap_arg_nstring(&list[i + 1], &f, &flen);
	if (!ok) {
		imap_bad(s, cmd, "Invalid arguments");
		return IMAP_CMD_DONE;
	}
	imap_untagged(s, "ID (\"name\" \"Tern\" \"version\" \"%s\")", TERN_VERSION);
	imap_tagged(s, cmd, "OK ID completed");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_enable)
{
	char enabled[64] = "";   /* every token once: 43 bytes at most */
	if (cmd->arg_count == 0) {
		imap_bad(s, cmd, "Missing arguments");
		return IMAP_CMD_DONE;
	}
	for (size_t i = 0; i < cmd->arg_count; i++) {
		const struct imap_arg *a = &cmd->args[i];
		if (a->type != IMAP_ARG_ATOM) {
			imap_bad(s, cmd, "Invalid arguments");
			return IMAP_CMD_DONE;
		}
		/* RFC 5161 §3.1: ENABLED lists what this command newly enabled */
		if (imap_arg_is_atom_ci(a, "CONDSTORE") && !s->condstore) {
			s->condstore = true;
			strcat(enabled, " CONDSTORE");
		} else if (imap_arg_is_atom_ci(a, "QRESYNC") && !s->qresync) {
			/* RFC 7162 §3.2.3: QRESYNC implies CONDSTORE */
			s->qresync = true;
			s->condstore = true;
			strcat(enabled, " QRESYNC");
		} else if (imap_arg_is_atom_ci(a, "UTF8=ACCEPT") && !s->utf8_accept) {
			s->utf8_accept = true;
			strcat(enabled, " UTF8=ACCEPT");
		} else if (imap_arg_is_atom_ci(a, "IMAP4rev2") && !s->imap4rev2) {
			/* RFC 9051 §6.3.1: from here on rev2's forms of
			 * responses (no \Recent, UTF-8 mailbox names, LIST
			 * on SELECT, UID in unsolicited FETCH) */
			s->imap4rev2 = true;
			strcat(enabled, " IMAP4rev2");
		}
	}
	imap_untagged(s, "ENABLED%s", enabled);
	imap_tagged(s, cmd, "OK Enabled");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_namespace)
{
	if (cmd->arg_count != 0) {
		imap_bad(s, cmd, "Invalid arguments");
		return IMAP_CMD_DONE;
	}
	imap_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_tagged(s, cmd, "OK Namespace completed");
	return IMAP_CMD_DONE;
}

IMAP_HANDLER(cmd_compress)
{
	if (cmd->arg_count != 1 || cmd->args[0].type != IMAP_ARG_ATOM) {
		imap_bad(s, cmd, "Invalid arguments");
		return IMAP_CMD_DONE;
	}
	if (s->compress_active) {
		imap_tagged(s, cmd, "NO [COMPRESSIONACTIVE] DEFLATE active via COMPRESS");
		return IMAP_CMD_DONE;
	}
	if (!imap_arg_is_atom_ci(&cmd->args[0], "DEFLATE")) {
		imap_tagged(s, cmd, "NO [CANNOT] Unknown compression mechanism");
		return IMAP_CMD_DONE;
	}
	imap_tagged(s, cmd, "OK DEFLATE active");
	if (compress_start(s->conn) < 0) {
		log_warn("imap: user=%s, rip=%s: COMPRESS failed", s->user, s->conn->peer_addr);
		conn_close(s->conn);
		return IMAP_CMD_DONE;
	}
	s->compress_active = true;
	return IMAP_CMD_DONE;
}
