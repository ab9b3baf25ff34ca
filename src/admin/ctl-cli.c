#include "admin/ctl-cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/ctl-mailbox.h"
#include "admin/ctl-move.h"
#include "admin/ctl-node.h"
#include "admin/ctl-output.h"
#include "admin/ctl-password.h"
#include "admin/ctl-user.h"
#include "admin/ctl.h"
#include "core/fs-perms.h"
#include "core/log.h"

static const char usage_text[] =
"Usage: ternctl [--config FILE] [--json] COMMAND [ARGUMENTS]\n"
"\n"
"Administer a Tern node: users, nodes, mailboxes and moves. ternctl works\n"
"directly on this host's directory database and on the mail stores of users\n"
"homed on this node (node_name in the configuration).\n"
"\n"
"Global options (accepted anywhere on the line):\n"
"  --config FILE  configuration file; default $TERN_CONFIG, else\n"
"                 /etc/tern/tern.conf\n"
"  --json         print results as JSON: an array of objects (one object for\n"
"                 'user show'), numbers as numbers, flags as arrays of strings\n"
"  -h, --help     print this help and exit\n"
"  --version      print the version and exit\n"
"\n"
"Users (NAME may be written 'alice' or 'alice@example.org' when example.org is\n"
"one of the configured domains):\n"
"  user add NAME [--password-stdin | --hash HASH] [--home NODE] [--quota SIZE]\n"
"      Create a user. The password is read as one line of standard input\n"
"      (--password-stdin), given as an existing hash (--hash '$y$...',\n"
"      '$6$...', '{SHA512-CRYPT}$6$...', '{ARGON2ID}$argon2id$...'), or, on a\n"
"      terminal, typed twice. --home defaults to this node; a user homed here\n"
"      gets a mail store with INBOX, Sent, Drafts, Trash and Junk. --quota as\n"
"      in 'user quota'.\n"
"  user passwd NAME [--password-stdin | --hash HASH]\n"
"      Change the password; the sources are those of 'user add'.\n"
"  user del NAME\n"
"      Delete the user and, when homed on this node, its mail store.\n"
"  user quota NAME SIZE\n"
"      Set the quota: bytes, or with a suffix (500K, 100M, 2G); 0 = the\n"
"      default_quota of the node.\n"
"  user list\n"
"      List users: name, home, epoch, state, quota.\n"
"  user show NAME\n"
"      Show one user: name, home, epoch, state, quota.\n"
"\n"
"Nodes:\n"
"  node list\n"
"      List the nodes registered in the directory: name, cluster (the address\n"
"      other nodes dial), lmtp, imap, pop3 (listening addresses; '-' in text,\n"
"      \"\" in JSON = off), version, started, heartbeat (the last one) and\n"
"      status: 'up', or 'down' when the node stopped cleanly or its heartbeat\n"
"      is over 5 s old. JSON adds admin, heartbeat_age_ms, stopped and\n"
"      number (the node's number in delivery ids, given once per name).\n"
"\n"
"Mailboxes (of a user homed on this node; otherwise run ternctl there):\n"
"  mailbox folders USER\n"
"      List folders: name, messages, unseen, size, uidvalidity, uidnext,\n"
"      highestmodseq, special_use, subscribed.\n"
"  mailbox list USER FOLDER\n"
"      List messages: uid, flags, size, date (internal date, UTC), subject.\n"
"  mailbox cat USER FOLDER UID\n"
"      Write the raw message to standard output, byte for byte.\n"
"\n"
"Moves (a user's mailbox moved online to another node; ternctl records the\n"
"move in the directory, the mover in the destination's ternd runs it and\n"
"records its phase and progress there, so every node's ternctl sees it):\n"
"  move start USER --to NODE [--suspend-when-ready] [--wait [--timeout DURATION]]\n"
"      Queue a move of USER from its home to NODE and print its id. Refused\n"
"      for an unknown user or node, a user that is already moving, and NODE =\n"
"      the user's home; a destination that is down only warns (the move\n"
"      stays queued until its mover runs). --suspend-when-ready holds the\n"
"      move in phase 'ready' (copied, kept in sync) until 'move complete'.\n"
"  move status [USER]\n"
"      Every active move, or USER's latest move (active, else the last that\n"
"      ended): phase (queued, copying, syncing, ready, finalizing, completed,\n"
"      failed, cancelled), messages and bytes done of total, sync rounds,\n"
"      rate and ETA when the progress reported allows it, why it is waiting\n"
"      (the mover's reason, a destination that is down, an expired lease, a\n"
"      move held in ready), the last error, runner and lease. JSON: one\n"
"      object with USER, else an array; counts and bytes_per_s as numbers.\n"
"  move list [--all]\n"
"      List active moves (every move with --all): id, user, source,\n"
"      destination, phase, progress (percent of bytes, else of messages),\n"
"      updated. JSON rows carry every field of 'move status'.\n"
"  move complete USER [--wait [--timeout DURATION]]\n"
"      Release a move held by --suspend-when-ready: the mover finalizes it.\n"
"  move cancel USER\n"
"      Ask the mover to roll the move back; the user stays on its home.\n"
"  move batch --to NODE (--from NODE | --users FILE) [--wait [--parallel N]\n"
"             [--timeout DURATION]]\n"
"      Move every user homed on --from, or listed in FILE (one a line, '#'\n"
"      starts a comment, '-' = standard input), to --to. Without --wait\n"
"      every move is queued at once and the movers' own concurrency applies;\n"
"      with --wait at most N (default 1) run at once, the next starting as\n"
"      one ends. Users already on NODE are skipped; one line per user, then\n"
"      a summary (JSON: an array of {user, id, result, error}). Exit 1 if\n"
"      any user was refused or its move failed or was cancelled.\n"
"\n"
"  --wait polls the directory every 200 ms until the move ends. On a\n"
"  terminal it redraws one progress line (phase, messages and bytes of\n"
"  total, rate, ETA; for a move in 'ready' how far behind it is, when the\n"
"  mover says so); otherwise it prints one line per change of phase (or of\n"
"  why it waits) and a summary. With --json it prints only the final\n"
"  status object. Exit 0 only when the move completed, 1 when it failed or\n"
"  was cancelled (its last error on standard error), 2 when --timeout\n"
"  (500ms, 30s, 10m, 2h) passed first, 130 on Ctrl-C. A timeout or Ctrl-C\n"
"  ends only the waiting: the move keeps running.\n"
"\n"
"  help\n"
"      Print this help.\n"
"\n"
"Sizes are in bytes; text output shows quotas as 100M or 'default' and an\n"
"empty or missing value as '-'.\n"
"Dates are ISO 8601 UTC (2026-11-25T10:00:00Z). Put '--' before an argument\n"
"that starts with '-'.\n"
"\n"
"Exit status: 0 success, 1 error, 2 usage error (and --wait timed out),\n"
"130 interrupted while waiting. Errors are one line on standard error,\n"
"starting with 'ternctl: '; a warning line may precede the result.\n"
"\n"
"Examples:\n"
"  echo 'secret' | ternctl --config /etc/tern/tern.conf user add alice --password-stdin\n"
"  ternctl user quota alice@example.org 500M\n"
"  ternctl --json mailbox list alice INBOX\n"
"  ternctl mailbox cat alice INBOX 42 > message.eml\n"
"  ternctl move start alice --to node-b --wait --timeout 2h\n"
"  ternctl move batch --from node-a --to node-b --wait --parallel 4\n";

#define CLI_MAX_POS 3
#define CLI_MAX_OPTS 6

struct cli_command;

struct cli_args {
	const struct cli_command *cmd;
	const char *pos[CLI_MAX_POS];
	const char *val[CLI_MAX_OPTS]; /* by option index; "" for a flag, NULL if absent */
	bool json;
};

/* One row per command (P12): the dispatcher checks arity and options, so a
 * handler only maps its arguments onto an operation. */
struct cli_command {
	const char *group;
	const char *verb;
	int (*run)(struct ctl *c, const struct cli_args *a);
	size_t npos;                          /* arguments: required | CLI_OPTIONAL(more) */
	const char *options[CLI_MAX_OPTS + 1]; /* "--flag" or "--opt=" (takes a value) */
	const char *synopsis;
};

/* npos of a command that takes up to n more arguments than it requires. */
#define CLI_OPTIONAL(n) ((size_t)(n) << 8)
#define CLI_REQUIRED(npos) ((npos) & 0xff)
#define CLI_MAX_ARGS(npos) (CLI_REQUIRED(npos) + ((npos) >> 8))

/* The value of option name ("--hash"), NULL when not given. */
static const char *opt(const struct cli_args *a, const char *name)
{
	for (size_t i = 0; i < CLI_MAX_OPTS && a->cmd->options[i] != NULL; i++) {
		if (strncmp(a->cmd->options[i], name, strlen(name)) == 0 &&
		    (a->cmd->options[i][strlen(name)] == '\0' ||
		     a->cmd->options[i][strlen(name)] == '='))
			return a->val[i];
	}
	return NULL;
}

static int parse_size(struct ctl *c, const char *s, uint64_t *bytes_r)
{
	if (config_parse_size(s, bytes_r) != 0)
		return ctl_fail(c, CTL_USAGE, "invalid size '%s' (use bytes or 500K, 100M, 2G)", s);
	return 0;
}

/* The password source named by the options, plain text read as needed. */
static int get_password(struct ctl *c, const struct cli_args *a, const char *user,
			struct ctl_password *pw, char **plain_r)
{
	const char *hash = opt(a, "--hash");
	bool from_stdin = opt(a, "--password-stdin") != NULL;
	memset(pw, 0, sizeof(*pw));
	if (hash != NULL && from_stdin)
		return ctl_fail(c, CTL_USAGE, "--password-stdin and --hash exclude each other");
	if (hash != NULL) {
		pw->hash = hash;
		return 0;
	}
	int ret = from_stdin ? ctl_password_read_line(c, stdin, plain_r)
			     : ctl_password_prompt(c, user, plain_r);
	pw->plain = *plain_r;
	return ret;
}

static int run_user_add(struct ctl *c, const struct cli_args *a)
{
	uint64_t quota = 0;
	const char *q = opt(a, "--quota");
	if (q != NULL && parse_size(c, q, &quota) != 0)
		return -1;
	/* Check the name before asking for a password, not after. */
	char name[CTL_USER_MAX];
	struct dir_user u;
	if (ctl_user_name(c, a->pos[0], name, sizeof(name)) != 0)
		return -1;
	int found = ctl_user_lookup(c, name, &u);
	if (found < 0)
		return -1;
	if (found > 0) {
		dir_user_clear(&u);
		return ctl_fail(c, CTL_ERROR, "user '%s' already exists", name);
	}
	struct ctl_password pw;
	char *plain = NULL;
	int ret = get_password(c, a, name, &pw, &plain);
	if (ret == 0)
		ret = ctl_user_add(c, name, &pw, opt(a, "--home"), quota);
	ctl_password_free(&plain);
	return ret;
}

static int run_user_passwd(struct ctl *c, const struct cli_args *a)
{
	char name[CTL_USER_MAX];
	struct dir_user u;
	if (ctl_user_find(c, a->pos[0], name, &u) != 0)
		return -1;
	dir_user_clear(&u);
	struct ctl_password pw;
	char *plain = NULL;
	int ret = get_password(c, a, name, &pw, &plain);
	if (ret == 0)
		ret = ctl_user_passwd(c, name, &pw);
	ctl_password_free(&plain);
	return ret;
}

static int run_user_del(struct ctl *c, const struct cli_args *a)
{
	return ctl_user_del(c, a->pos[0]);
}

static int run_user_quota(struct ctl *c, const struct cli_args *a)
{
	uint64_t quota;
	if (parse_size(c, a->pos[1], &quota) != 0)
		return -1;
	return ctl_user_quota(c, a->pos[0], quota);
}

/* Prints a listing and releases it. */
static int print_rows(struct ctl *c, const struct cli_args *a, const struct ctl_column *cols,
		      size_t ncols, json_t *rows)
{
	int ret = ctl_output_table(stdout, cols, ncols, rows, a->json);
	json_decref(rows);
	if (ret != 0)
		return ctl_fail(c, CTL_ERROR, "cannot write the output: %s", strerror(errno));
	return 0;
}

static int run_user_list(struct ctl *c, const struct cli_args *a)
{
	json_t *rows;
	if (ctl_user_list(c, &rows) != 0)
		return -1;
	return print_rows(c, a, ctl_user_columns, ctl_user_columns_count, rows);
}

static int run_user_show(struct ctl *c, const struct cli_args *a)
{
	json_t *obj;
	if (ctl_user_show(c, a->pos[0], &obj) != 0)
		return -1;
	int ret = ctl_output_object(stdout, ctl_user_columns, ctl_user_columns_count, obj,
				    a->json);
	json_decref(obj);
	if (ret != 0)
		return ctl_fail(c, CTL_ERROR, "cannot write the output: %s", strerror(errno));
	return 0;
}

static int run_node_list(struct ctl *c, const struct cli_args *a)
{
	json_t *rows;
	if (ctl_node_list(c, &rows) != 0)
		return -1;
	return print_rows(c, a, ctl_node_columns, ctl_node_columns_count, rows);
}

static int run_mailbox_folders(struct ctl *c, const struct cli_args *a)
{
	json_t *rows;
	if (ctl_mailbox_folders(c, a->pos[0], &rows) != 0)
		return -1;
	return print_rows(c, a, ctl_folder_columns, ctl_folder_columns_count, rows);
}

static int run_mailbox_list(struct ctl *c, const struct cli_args *a)
{
	json_t *rows;
	if (ctl_mailbox_list(c, a->pos[0], a->pos[1], &rows) != 0)
		return -1;
	return print_rows(c, a, ctl_message_columns, ctl_message_columns_count, rows);
}

/* A UID is 1..2^32-1 in plain decimal (RFC 3501 §2.3.1.1: nz-number). */
static int parse_uid(struct ctl *c, const char *s, uint32_t *uid_r)
{
	uint64_t v = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9' && v <= UINT32_MAX; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (p == s || *p != '\0' || v == 0 || v > UINT32_MAX)
		return ctl_fail(c, CTL_USAGE, "invalid UID '%s' (a number from 1 to 4294967295)", s);
	*uid_r = (uint32_t)v;
	return 0;
}

static int run_mailbox_cat(struct ctl *c, const struct cli_args *a)
{
	uint32_t uid = 0;
	if (parse_uid(c, a->pos[2], &uid) != 0)
		return -1;
	char *data = NULL;
	size_t size = 0;
	if (ctl_mailbox_raw(c, a->pos[0], a->pos[1], uid, &data, &size) != 0)
		return -1;
	size_t written = fwrite(data, 1, size, stdout);
	free(data);
	if (written != size || fflush(stdout) != 0)
		return ctl_fail(c, CTL_ERROR, "cannot write the message: %s", strerror(errno));
	return 0;
}

/* ---- move: the operator's side of online moves (ctl-move.h) ---- */

/* --wait and --timeout of a command: *wait_r, and w filled. */
static int wait_options(struct ctl *c, const struct cli_args *a, bool *wait_r,
			struct ctl_move_wait *w)
{
	memset(w, 0, sizeof(*w));
	*wait_r = opt(a, "--wait") != NULL;
	w->json = a->json;
	w->tty = isatty(STDOUT_FILENO) == 1;
	const char *t = opt(a, "--timeout");
	if (t == NULL)
		return 0;
	if (!*wait_r)
		return ctl_fail(c, CTL_USAGE, "%s %s: --timeout needs --wait (usage: ternctl %s)",
				a->cmd->group, a->cmd->verb, a->cmd->synopsis);
	if (config_parse_duration_ms(t, &w->timeout_ms) != 0 || w->timeout_ms == 0)
		return ctl_fail(c, CTL_USAGE, "invalid duration '%s' (use 500ms, 30s, 10m, 2h)", t);
	return 0;
}

static int print_object(struct ctl *c, const struct cli_args *a, json_t *obj)
{
	int ret = ctl_output_object(stdout, NULL, 0, obj, true);
	(void)a;
	json_decref(obj);
	if (ret != 0)
		return ctl_fail(c, CTL_ERROR, "cannot write the output: %s", strerror(errno));
	return 0;
}

static int run_move_start(struct ctl *c, const struct cli_args *a)
{
	const char *to = opt(a, "--to");
	bool wait;
	struct ctl_move_wait w;
	if (to == NULL || *to == '\0')
		return ctl_fail(c, CTL_USAGE, "move start: --to NODE is required (usage: ternctl %s)",
				a->cmd->synopsis);
	if (wait_options(c, a, &wait, &w) != 0)
		return -1;
	json_t *move;
	char *warning = NULL;
	if (ctl_move_start(c, a->pos[0], to, opt(a, "--suspend-when-ready") != NULL, &move,
			   &warning) != 0)
		return -1;
	if (warning != NULL)
		fprintf(stderr, "ternctl: warning: %s\n", warning);
	free(warning);
	int64_t id = (int64_t)json_integer_value(json_object_get(move, "id"));
	if (a->json && !wait)
		return print_object(c, a, move);
	if (!a->json) {
		printf("move %" PRId64 " queued: %s from %s to %s%s\n", id,
		       json_string_value(json_object_get(move, "user")),
		       json_string_value(json_object_get(move, "source")), to,
		       opt(a, "--suspend-when-ready") != NULL
		       ? " (held in ready until 'ternctl move complete')" : "");
		fflush(stdout);
	}
	json_decref(move);
	return wait ? ctl_move_wait(c, id, &w) : 0;
}

static int run_move_status(struct ctl *c, const struct cli_args *a)
{
	json_t *result;
	if (ctl_move_status(c, a->pos[0], &result) != 0)
		return -1;
	int ret = ctl_move_print_status(stdout, result, a->json);
	json_decref(result);
	if (ret != 0)
		return ctl_fail(c, CTL_ERROR, "cannot write the output: %s", strerror(errno));
	return 0;
}

static int run_move_list(struct ctl *c, const struct cli_args *a)
{
	json_t *rows;
	if (ctl_move_list(c, opt(a, "--all") != NULL, &rows) != 0)
		return -1;
	return print_rows(c, a, ctl_move_list_columns, ctl_move_list_columns_count, rows);
}

static int run_move_complete(struct ctl *c, const struct cli_args *a)
{
	bool wait;
	struct ctl_move_wait w;
	if (wait_options(c, a, &wait, &w) != 0)
		return -1;
	json_t *move;
	if (ctl_move_complete(c, a->pos[0], &move) != 0)
		return -1;
	int64_t id = (int64_t)json_integer_value(json_object_get(move, "id"));
	if (a->json && !wait)
		return print_object(c, a, move);
	if (!a->json) {
		printf("move %" PRId64 " of %s (phase %s): %s\n", id,
		       json_string_value(json_object_get(move, "user")),
		       json_string_value(json_object_get(move, "phase")),
		       strcmp(json_string_value(json_object_get(move, "phase")), "ready") == 0
		       ? "released: the mover finalizes it now"
		       : "not held in ready any more: it finalizes as soon as it is ready");
		fflush(stdout);
	}
	json_decref(move);
	return wait ? ctl_move_wait(c, id, &w) : 0;
}

static int run_move_cancel(struct ctl *c, const struct cli_args *a)
{
	json_t *move;
	if (ctl_move_cancel(c, a->pos[0], &move) != 0)
		return -1;
	if (a->json)
		return print_object(c, a, move);
	printf("move %" PRId64 " of %s (phase %s): cancel requested; the mover rolls it back and "
	       "the user stays on %s\n",
	       (int64_t)json_integer_value(json_object_get(move, "id")),
	       json_string_value(json_object_get(move, "user")),
	       json_string_value(json_object_get(move, "phase")),
	       json_string_value(json_object_get(move, "source")));
	json_decref(move);
	return fflush(stdout) == 0 ? 0 : ctl_fail(c, CTL_ERROR, "cannot write the output");
}

static int run_move_batch(struct ctl *c, const struct cli_args *a)
{
	struct ctl_move_batch b;
	memset(&b, 0, sizeof(b));
	b.to = opt(a, "--to");
	b.from = opt(a, "--from");
	b.users_file = opt(a, "--users");
	const char *par = opt(a, "--parallel");
	if (b.to == NULL || *b.to == '\0')
		return ctl_fail(c, CTL_USAGE, "move batch: --to NODE is required (usage: ternctl %s)",
				a->cmd->synopsis);
	if ((b.from == NULL) == (b.users_file == NULL))
		return ctl_fail(c, CTL_USAGE, "move batch: give one of --from NODE and --users FILE "
				"(usage: ternctl %s)", a->cmd->synopsis);
	if (b.from != NULL && strcmp(b.from, b.to) == 0)
		return ctl_fail(c, CTL_USAGE, "move batch: --from and --to name the same node");
	if (wait_options(c, a, &b.wait, &b.how) != 0)
		return -1;
	b.parallel = 1;
	if (par != NULL) {
		char *end;
		errno = 0;
		unsigned long n = strtoul(par, &end, 10);
		if (*par < '0' || *par > '9' || *end != '\0' || errno != 0 || n == 0 || n > 1000)
			return ctl_fail(c, CTL_USAGE, "invalid --parallel '%s' (a number from 1 to 1000)",
					par);
		if (!b.wait)
			return ctl_fail(c, CTL_USAGE, "move batch: --parallel needs --wait (without "
					"it every move is queued at once and the movers' own "
					"concurrency applies)");
		b.parallel = (unsigned)n;
	}
	return ctl_move_batch(c, &b);
}

static const struct cli_command commands[] = {
	{"user", "add", run_user_add, 1,
	 {"--password-stdin", "--hash=", "--home=", "--quota="},
	 "user add NAME [--password-stdin | --hash HASH] [--home NODE] [--quota SIZE]"},
	{"user", "passwd", run_user_passwd, 1, {"--password-stdin", "--hash="},
	 "user passwd NAME [--password-stdin | --hash HASH]"},
	{"user", "del", run_user_del, 1, {NULL}, "user del NAME"},
	{"user", "quota", run_user_quota, 2, {NULL}, "user quota NAME SIZE"},
	{"user", "list", run_user_list, 0, {NULL}, "user list"},
	{"user", "show", run_user_show, 1, {NULL}, "user show NAME"},
	{"node", "list", run_node_list, 0, {NULL}, "node list"},
	{"mailbox", "folders", run_mailbox_folders, 1, {NULL}, "mailbox folders USER"},
	{"mailbox", "list", run_mailbox_list, 2, {NULL}, "mailbox list USER FOLDER"},
	{"mailbox", "cat", run_mailbox_cat, 3, {NULL}, "mailbox cat USER FOLDER UID"},
	{"move", "start", run_move_start, 1,
	 {"--to=", "--suspend-when-ready", "--wait", "--timeout="},
	 "move start USER --to NODE [--suspend-when-ready] [--wait [--timeout DURATION]]"},
	{"move", "status", run_move_status, CLI_OPTIONAL(1), {NULL}, "move status [USER]"},
	{"move", "list", run_move_list, 0, {"--all"}, "move list [--all]"},
	{"move", "complete", run_move_complete, 1, {"--wait", "--timeout="},
	 "move complete USER [--wait [--timeout DURATION]]"},
	{"move", "cancel", run_move_cancel, 1, {NULL}, "move cancel USER"},
	{"move", "batch", run_move_batch, 0,
	 {"--to=", "--from=", "--users=", "--parallel=", "--wait", "--timeout="},
	 "move batch --to NODE (--from NODE | --users FILE) [--wait [--parallel N] "
	 "[--timeout DURATION]]"},
};
#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

/* True when word is a command option that takes the next word as its value. */
static bool takes_value(const char *word)
{
	size_t len = strlen(word);
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		for (size_t j = 0; commands[i].options[j] != NULL; j++) {
			const char *o = commands[i].options[j];
			if (strncmp(o, word, len) == 0 && o[len] == '=' && o[len + 1] == '\0')
				return true;
		}
	}
	return false;
}

int ctl_cli_split(int argc, char **argv, struct ctl_global *g, char **rest, int *nrest,
		  char *err, size_t err_size)
{
	memset(g, 0, sizeof(*g));
	int n = 0;
	bool literal = false;
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		if (literal) {
			rest[n++] = argv[i];
		} else if (strcmp(w, "--") == 0) {
			literal = true;
			rest[n++] = argv[i];          /* the command parser honours it too */
		} else if (strcmp(w, "--json") == 0) {
			g->json = true;
		} else if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
			g->help = true;
		} else if (strcmp(w, "--version") == 0) {
			g->version = true;
		} else if (strncmp(w, "--config=", 9) == 0) {
			g->config = w + 9;
		} else if (strcmp(w, "--config") == 0) {
			if (i + 1 >= argc) {
				snprintf(err, err_size, "--config needs a FILE");
				return -1;
			}
			g->config = argv[++i];
		} else if (takes_value(w) && i + 1 < argc) {
			rest[n++] = argv[i++];
			rest[n++] = argv[i];
		} else {
			rest[n++] = argv[i];
		}
	}
	if (g->config != NULL && *g->config == '\0') {
		snprintf(err, err_size, "--config needs a FILE");
		return -1;
	}
	*nrest = n;
	return 0;
}

/* Sets option word (with its value) in a; words is the rest of the line. */
static int parse_option(struct ctl *c, struct cli_args *a, char **words, int nwords, int *i)
{
	const char *w = words[*i];
	const char *eq = strchr(w, '=');
	size_t name_len = eq != NULL ? (size_t)(eq - w) : strlen(w);
	const struct cli_command *cmd = a->cmd;
	for (size_t j = 0; cmd->options[j] != NULL; j++) {
		const char *o = cmd->options[j];
		bool valued = o[strlen(o) - 1] == '=';
		if (strncmp(o, w, name_len) != 0 || strlen(o) - valued != name_len)
			continue;
		if (a->val[j] != NULL)
			return ctl_fail(c, CTL_USAGE, "option '%.*s' given twice", (int)name_len, w);
		if (!valued && eq != NULL)
			return ctl_fail(c, CTL_USAGE, "option '%.*s' takes no value", (int)name_len, w);
		if (valued && eq != NULL)
			a->val[j] = eq + 1;
		else if (valued && *i + 1 < nwords)
			a->val[j] = words[++*i];
		else if (valued)
			return ctl_fail(c, CTL_USAGE, "option '%s' needs a value (usage: ternctl %s)",
					w, cmd->synopsis);
		else
			a->val[j] = "";
		return 0;
	}
	return ctl_fail(c, CTL_USAGE, "%s %s: unknown option '%s' (usage: ternctl %s)",
			cmd->group, cmd->verb, w, cmd->synopsis);
}

/* Splits the words after "GROUP VERB" into arguments and options. */
static int parse_args(struct ctl *c, const struct cli_command *cmd, char **words, int nwords,
		      struct cli_args *a)
{
	size_t npos = 0;
	bool literal = false;
	a->cmd = cmd;
	for (int i = 0; i < nwords; i++) {
		const char *w = words[i];
		if (!literal && strcmp(w, "--") == 0) {
			literal = true;
		} else if (!literal && w[0] == '-' && w[1] != '\0') {
			if (parse_option(c, a, words, nwords, &i) != 0)
				return -1;
		} else if (npos < CLI_MAX_ARGS(cmd->npos)) {
			a->pos[npos++] = w;
		} else {
			return ctl_fail(c, CTL_USAGE, "%s %s: unexpected argument '%s' (usage: ternctl %s)",
					cmd->group, cmd->verb, w, cmd->synopsis);
		}
	}
	if (npos < CLI_REQUIRED(cmd->npos))
		return ctl_fail(c, CTL_USAGE, "%s %s: missing arguments (usage: ternctl %s)",
				cmd->group, cmd->verb, cmd->synopsis);
	return 0;
}

/* Finds "GROUP VERB"; a failure names the verbs the group does have. */
static const struct cli_command *find_command(struct ctl *c, char **words, int nwords)
{
	bool group_known = false;
	char verbs[128] = "";
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		if (strcmp(commands[i].group, words[0]) != 0)
			continue;
		group_known = true;
		if (nwords > 1 && strcmp(commands[i].verb, words[1]) == 0)
			return &commands[i];
		size_t len = strlen(verbs);
		snprintf(verbs + len, sizeof(verbs) - len, "%s%s", len ? ", " : "", commands[i].verb);
	}
	if (!group_known)
		ctl_fail(c, CTL_USAGE, "unknown command '%s' (try 'ternctl --help')", words[0]);
	else if (nwords < 2)
		ctl_fail(c, CTL_USAGE, "%s: missing subcommand (one of: %s)", words[0], verbs);
	else
		ctl_fail(c, CTL_USAGE, "%s: unknown subcommand '%s' (one of: %s)", words[0],
			 words[1], verbs);
	return NULL;
}

static int run(struct ctl *c, int argc, char **argv)
{
	struct ctl_global g;
	char err[256];
	char **words = calloc((size_t)argc + 1, sizeof(*words));
	int nwords = 0;
	if (words == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	int ret = -1;
	if (ctl_cli_split(argc, argv, &g, words, &nwords, err, sizeof(err)) != 0) {
		ctl_fail(c, CTL_USAGE, "%s", err);
	} else if (g.help || (nwords > 0 && strcmp(words[0], "help") == 0)) {
		fputs(usage_text, stdout);
		ret = 0;
	} else if (g.version) {
		printf("ternctl %s\n", TERN_VERSION);
		ret = 0;
	} else if (nwords == 0) {
		ctl_fail(c, CTL_USAGE, "no command given (try 'ternctl --help')");
	} else {
		struct cli_args a = {.json = g.json};
		const struct cli_command *cmd = find_command(c, words, nwords);
		if (cmd != NULL && parse_args(c, cmd, words + 2, nwords - 2, &a) == 0 &&
		    ctl_load_config(c, g.config) == 0)
			ret = cmd->run(c, &a);
	}
	free(words);
	return ret;
}

int ctl_main(int argc, char **argv)
{
	/* Only the one "ternctl: " line may reach stderr; nothing below logs
	 * (store/ and directory/ never do), and anything that might stays quiet. */
	log_init("ternctl", LOG_LEVEL_ERROR);
	fs_private_umask();
	struct ctl c;
	ctl_init(&c);
	int ret = run(&c, argc, argv);
	if (c.cfg_loaded)
		fs_match_data_dir_owner(c.cfg.data_dir, c.cfg.directory);
	int status = ret == 0 ? CTL_OK : (c.status != CTL_OK ? c.status : CTL_ERROR);
	if (ret != 0)
		fprintf(stderr, "ternctl: %s\n", c.error[0] != '\0' ? c.error : "failed");
	ctl_deinit(&c);
	return (int)status;
}
