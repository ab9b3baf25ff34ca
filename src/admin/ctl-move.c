/* ternctl move: queue, inspect, complete, cancel and wait for mailbox moves,
 * all through the directory (ctl-move.h). */
#include "admin/ctl-move.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

const struct ctl_column ctl_move_list_columns[] = {
	{"id", CTL_COL_NUM}, {"user", CTL_COL_STR}, {"source", CTL_COL_STR},
	{"destination", CTL_COL_STR}, {"phase", CTL_COL_STR}, {"progress", CTL_COL_STR},
	{"updated", CTL_COL_STR},
};
const size_t ctl_move_list_columns_count =
	sizeof(ctl_move_list_columns) / sizeof(ctl_move_list_columns[0]);

/* The fields of "move status" as text, in order; every value is a string. */
static const struct ctl_column status_columns[] = {
	{"move", CTL_COL_STR}, {"user", CTL_COL_STR}, {"source", CTL_COL_STR},
	{"destination", CTL_COL_STR}, {"phase", CTL_COL_STR}, {"messages", CTL_COL_STR},
	{"bytes", CTL_COL_STR}, {"rounds", CTL_COL_STR}, {"rate", CTL_COL_STR},
	{"eta", CTL_COL_STR}, {"waiting", CTL_COL_STR}, {"last_error", CTL_COL_STR},
	{"suspend_when_ready", CTL_COL_STR}, {"cancel_requested", CTL_COL_STR},
	{"runner", CTL_COL_STR}, {"lease", CTL_COL_STR}, {"created", CTL_COL_STR},
	{"started", CTL_COL_STR}, {"updated", CTL_COL_STR}, {"finished", CTL_COL_STR},
};
#define STATUS_COLUMNS (sizeof(status_columns) / sizeof(status_columns[0]))

/* Up to this many consecutive failed reads of the directory are retried
 * while waiting (5 s at the poll interval): a busy file is no reason to stop. */
#define WAIT_READ_RETRIES 25

/* ------------------------------------------------------------ formatting */

static void iso_ms(int64_t ms, char *buf, size_t size)
{
	if (ms <= 0)
		snprintf(buf, size, "-");
	else
		ctl_format_time(ms / 1000, buf, size);
}

static json_t *time_json(int64_t ms)
{
	char buf[32];
	if (ms <= 0)
		return json_null();
	iso_ms(ms, buf, sizeof(buf));
	return json_string(buf);
}

/* Approximate bytes for people: 512B, 4.7K, 19.5M, 1.2G. */
static void human_bytes(double bytes, char *buf, size_t size)
{
	static const char units[] = "KMGTPE";
	if (bytes < 1024) {
		snprintf(buf, size, "%.0fB", bytes);
		return;
	}
	size_t u = 0;
	bytes /= 1024;
	while (bytes >= 1024 && u < sizeof(units) - 2) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, size, bytes < 10 ? "%.1f%c" : "%.0f%c", bytes, units[u]);
}

/* 45s, 2m03s, 1h02m. */
static void human_duration(double secs, char *buf, size_t size)
{
	if (secs < 0)
		secs = 0;
	uint64_t s = (uint64_t)(secs + 0.5);
	if (secs < 10)
		snprintf(buf, size, "%.1fs", secs);
	else if (s < 60)
		snprintf(buf, size, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
}

/* Control characters (a hostile or broken mover's text) become '?'. */
static void sanitize(char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
}

/* ------------------------------------------------------------ figures */

/* What a move's row lets ternctl compute: rates over the time the mover
 * reported progress in (started to the last update, or to the finish). */
struct move_figures {
	double bytes_per_s;     /* < 0: unknown */
	double messages_per_s;  /* < 0: unknown */
	double eta_s;           /* < 0: unknown */
	int percent;            /* of bytes, else of messages; -1 unknown */
};

static void move_figures(const struct dir_move *m, struct move_figures *f)
{
	f->bytes_per_s = f->messages_per_s = f->eta_s = -1;
	f->percent = -1;
	int64_t end = m->finished_ms > 0 ? m->finished_ms : m->updated_ms;
	if (m->started_ms > 0 && end > m->started_ms) {
		double secs = (double)(end - m->started_ms) / 1000.0;
		if (m->bytes_done > 0)
			f->bytes_per_s = (double)m->bytes_done / secs;
		if (m->messages_done > 0)
			f->messages_per_s = (double)m->messages_done / secs;
	}
	if (m->phase == DIR_MOVE_COMPLETED) {
		f->percent = 100;
	} else if (m->bytes_total > 0) {
		uint64_t done = m->bytes_done < m->bytes_total ? m->bytes_done : m->bytes_total;
		f->percent = (int)(done * 100 / m->bytes_total);
	} else if (m->messages_total > 0) {
		uint64_t done = m->messages_done < m->messages_total ? m->messages_done
								       : m->messages_total;
		f->percent = (int)(done * 100 / m->messages_total);
	}
	if (m->phase == DIR_MOVE_COPYING && m->bytes_total > 0 && f->bytes_per_s > 0)
		f->eta_s = m->bytes_done >= m->bytes_total
			   ? 0 : (double)(m->bytes_total - m->bytes_done) / f->bytes_per_s;
	else if (m->phase == DIR_MOVE_COPYING && m->bytes_total == 0 && m->messages_total > 0 &&
		 f->messages_per_s > 0)
		f->eta_s = m->messages_done >= m->messages_total
			   ? 0 : (double)(m->messages_total - m->messages_done) / f->messages_per_s;
}

/* The nodes of the directory, read once per look (a failure leaves none:
 * then nothing is said about nodes being down). */
struct node_set {
	struct dir_node *nodes;
	size_t count;
};

static void nodes_load(struct directory *dir, struct node_set *ns)
{
	ns->nodes = NULL;
	ns->count = 0;
	if (dir->ops->node_list(dir, &ns->nodes, &ns->count, NULL) != 0) {
		ns->nodes = NULL;
		ns->count = 0;
	}
}

static void nodes_free(struct node_set *ns)
{
	if (ns->nodes != NULL)
		dir_nodes_free(&ns->nodes, ns->count);
	ns->count = 0;
}

static const struct dir_node *nodes_find(const struct node_set *ns, const char *name)
{
	for (size_t i = 0; i < ns->count; i++) {
		if (strcmp(ns->nodes[i].name, name) == 0)
			return &ns->nodes[i];
	}
	return NULL;
}

/* Why an active move is not moving on, or "" when it is not waiting: the
 * mover's own reason first, then what the directory shows. */
static void waiting_reason(const struct dir_move *m, const struct node_set *ns, int64_t now,
			   char *buf, size_t size)
{
	buf[0] = '\0';
	if (dir_move_phase_finished(m->phase))
		return;
	if (m->wait_reason[0] != '\0') {
		snprintf(buf, size, "%s", m->wait_reason);
		return;
	}
	const struct dir_node *dest = ns != NULL ? nodes_find(ns, m->destination) : NULL;
	bool lease_live = m->lease_owner[0] != '\0' && m->lease_expires_ms > now;
	if (dest != NULL && !dir_node_up(dest, now) && !lease_live) {
		char when[32];
		iso_ms(dest->heartbeat_ms, when, sizeof(when));
		if (dest->heartbeat_ms <= 0)
			snprintf(buf, size, "destination %s has never run", m->destination);
		else
			snprintf(buf, size, "destination %s down since %s", m->destination, when);
	} else if (m->lease_owner[0] != '\0' && !lease_live) {
		char when[32];
		iso_ms(m->lease_expires_ms, when, sizeof(when));
		snprintf(buf, size, "lease of %s expired at %s: waiting for a node to take the "
			 "move over", m->lease_owner, when);
	} else if (m->cancel_requested) {
		snprintf(buf, size, "cancel requested: waiting for the mover to roll back");
	} else if (m->phase == DIR_MOVE_QUEUED) {
		snprintf(buf, size, "waiting for the mover on %s to start it",
			 m->destination);
	} else if (m->phase == DIR_MOVE_READY && m->suspend_when_ready) {
		snprintf(buf, size, "held in ready by --suspend-when-ready: run 'ternctl move "
			 "complete %s'", m->user);
	}
}

/* The status object of a move (every field of "move status --json"). */
static json_t *move_json(const struct dir_move *m, const struct node_set *ns, int64_t now)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	struct move_figures f;
	move_figures(m, &f);
	char reason[512], progress[16];
	waiting_reason(m, ns, now, reason, sizeof(reason));
	if (f.percent >= 0)
		snprintf(progress, sizeof(progress), "%d%%", f.percent);
	else
		snprintf(progress, sizeof(progress), "-");
	json_object_set_new(o, "id", json_integer(m->id));
	json_object_set_new(o, "user", ctl_json_string(m->user));
	json_object_set_new(o, "source", ctl_json_string(m->source));
	json_object_set_new(o, "destination", ctl_json_string(m->destination));
	json_object_set_new(o, "phase", json_string(dir_move_phase_name(m->phase)));
	json_object_set_new(o, "finished", json_boolean(dir_move_phase_finished(m->phase)));
	json_object_set_new(o, "progress", json_string(progress));
	json_object_set_new(o, "messages_done", json_integer((json_int_t)m->messages_done));
	json_object_set_new(o, "messages_total", json_integer((json_int_t)m->messages_total));
	json_object_set_new(o, "bytes_done", json_integer((json_int_t)m->bytes_done));
	json_object_set_new(o, "bytes_total", json_integer((json_int_t)m->bytes_total));
	json_object_set_new(o, "rounds", json_integer((json_int_t)m->rounds));
	json_object_set_new(o, "copied_modseq", json_integer((json_int_t)m->copied_modseq));
	json_object_set_new(o, "bytes_per_s", f.bytes_per_s >= 0
				? json_integer((json_int_t)f.bytes_per_s) : json_null());
	json_object_set_new(o, "messages_per_s", f.messages_per_s >= 0
				? json_real(f.messages_per_s) : json_null());
	json_object_set_new(o, "eta_s", f.eta_s >= 0 ? json_integer((json_int_t)(f.eta_s + 0.5))
						     : json_null());
	json_object_set_new(o, "waiting", reason[0] != '\0' ? ctl_json_string(reason) : json_null());
	json_object_set_new(o, "wait_reason", ctl_json_string(m->wait_reason));
	json_object_set_new(o, "last_error", ctl_json_string(m->last_error));
	json_object_set_new(o, "suspend_when_ready", json_boolean(m->suspend_when_ready));
	json_object_set_new(o, "cancel_requested", json_boolean(m->cancel_requested));
	json_object_set_new(o, "runner", ctl_json_string(m->runner));
	json_object_set_new(o, "lease_owner", ctl_json_string(m->lease_owner));
	json_object_set_new(o, "lease_expires", time_json(m->lease_expires_ms));
	json_object_set_new(o, "created", time_json(m->created_ms));
	json_object_set_new(o, "started", time_json(m->started_ms));
	json_object_set_new(o, "phase_since", time_json(m->phase_since_ms));
	json_object_set_new(o, "updated", time_json(m->updated_ms));
	json_object_set_new(o, "finished_at", time_json(m->finished_ms));
	json_object_set_new(o, "lease_expires_ms", json_integer(m->lease_expires_ms));
	return o;
}

/* ------------------------------------------------------------ text of a status */

static int64_t jint(const json_t *o, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(o, key));
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : "";
}

static bool jbool(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

/* "120 of 500 (24%)", "120 of unknown", "unknown (not counted yet)". */
static void count_text(int64_t done, int64_t total, bool bytes, bool queued, char *buf,
		       size_t size)
{
	char d[32], t[32];
	if (bytes) {
		human_bytes((double)done, d, sizeof(d));
		human_bytes((double)total, t, sizeof(t));
	} else {
		snprintf(d, sizeof(d), "%" PRId64, done);
		snprintf(t, sizeof(t), "%" PRId64, total);
	}
	if (total <= 0 && done <= 0 && queued)
		snprintf(buf, size, "unknown (not counted yet)");
	else if (total <= 0)
		snprintf(buf, size, "%s of unknown", d);
	else
		snprintf(buf, size, "%s of %s (%d%%)", d, t,
			 (int)((done < total ? done : total) * 100 / total));
}

static void set_str(json_t *o, const char *key, const char *value)
{
	json_object_set_new(o, key, ctl_json_string(value[0] != '\0' ? value : "-"));
}

/* The text form of a status object: every field a string. */
static json_t *status_text(const json_t *s)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	char buf[600], a[32], b[32];
	const char *phase = jstr(s, "phase");
	bool queued = strcmp(phase, "queued") == 0;
	snprintf(buf, sizeof(buf), "%" PRId64, jint(s, "id"));
	set_str(o, "move", buf);
	set_str(o, "user", jstr(s, "user"));
	set_str(o, "source", jstr(s, "source"));
	set_str(o, "destination", jstr(s, "destination"));
	const char *since = jbool(s, "finished") ? jstr(s, "finished_at") : jstr(s, "phase_since");
	if (*since != '\0')
		snprintf(buf, sizeof(buf), "%s since %s", phase, since);
	else
		snprintf(buf, sizeof(buf), "%s", phase);
	set_str(o, "phase", buf);
	count_text(jint(s, "messages_done"), jint(s, "messages_total"), false, queued, buf,
		   sizeof(buf));
	set_str(o, "messages", buf);
	count_text(jint(s, "bytes_done"), jint(s, "bytes_total"), true, queued, buf, sizeof(buf));
	set_str(o, "bytes", buf);
	snprintf(buf, sizeof(buf), "%" PRId64 " (synced to modseq %" PRId64 ")", jint(s, "rounds"),
		 jint(s, "copied_modseq"));
	set_str(o, "rounds", buf);
	json_t *bps = json_object_get(s, "bytes_per_s");
	json_t *mps = json_object_get(s, "messages_per_s");
	if (json_is_integer(bps) || json_is_number(mps)) {
		human_bytes(json_is_integer(bps) ? (double)json_integer_value(bps) : 0, a, sizeof(a));
		snprintf(buf, sizeof(buf), "%s/s, %.1f messages/s", a,
			 json_is_number(mps) ? json_number_value(mps) : 0.0);
	} else {
		snprintf(buf, sizeof(buf), "unknown (no progress reported yet)");
	}
	set_str(o, "rate", buf);
	json_t *eta = json_object_get(s, "eta_s");
	if (json_is_integer(eta)) {
		human_duration((double)json_integer_value(eta), b, sizeof(b));
		snprintf(buf, sizeof(buf), "%s (copying)", b);
	} else {
		snprintf(buf, sizeof(buf), "%s", jbool(s, "finished") ? "-" : "unknown");
	}
	set_str(o, "eta", buf);
	set_str(o, "waiting", jstr(s, "waiting"));
	set_str(o, "last_error", jstr(s, "last_error"));
	set_str(o, "suspend_when_ready", jbool(s, "suspend_when_ready") ? "yes" : "no");
	set_str(o, "cancel_requested", jbool(s, "cancel_requested") ? "yes" : "no");
	set_str(o, "runner", jstr(s, "runner"));
	const char *owner = jstr(s, "lease_owner");
	if (*owner != '\0') {
		bool expired = jint(s, "lease_expires_ms") <= dir_wall_ms();
		snprintf(buf, sizeof(buf), "%s %s %s", owner, expired ? "expired at" : "until",
			 jstr(s, "lease_expires"));
	} else {
		snprintf(buf, sizeof(buf), "-");
	}
	set_str(o, "lease", buf);
	set_str(o, "created", jstr(s, "created"));
	set_str(o, "started", jstr(s, "started"));
	set_str(o, "updated", jstr(s, "updated"));
	set_str(o, "finished", jstr(s, "finished_at"));
	return o;
}

int ctl_move_print_status(FILE *out, json_t *result, bool json)
{
	if (json)
		return ctl_output_object(out, NULL, 0, result, true);
	if (json_is_array(result) && json_array_size(result) == 0) {
		fputs("no active moves\n", out);
		return fflush(out) == 0 && !ferror(out) ? 0 : -1;
	}
	size_t n = json_is_array(result) ? json_array_size(result) : 1;
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_is_array(result) ? json_array_get(result, i) : result;
		json_t *text = status_text(s);
		if (text == NULL)
			return -1;
		if (i > 0)
			fputc('\n', out);
		int ret = ctl_output_object(out, status_columns, STATUS_COLUMNS, text, false);
		json_decref(text);
		if (ret != 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ look-ups */

/* The status object of move id, read now. */
static int move_status_of(struct ctl *c, struct directory *dir, int64_t id, json_t **obj_r)
{
	struct dir_move m;
	enum tern_error err = TERN_ERR_NONE;
	int r = dir->ops->move_get(dir, id, &m, &err);
	if (r < 0)
		return ctl_fail(c, CTL_ERROR, "cannot read move %" PRId64 ": %s", id,
				tern_error_str(err));
	if (r == 0)
		return ctl_fail(c, CTL_ERROR, "move %" PRId64 " is not in the directory", id);
	struct node_set ns;
	nodes_load(dir, &ns);
	*obj_r = move_json(&m, &ns, dir_wall_ms());
	nodes_free(&ns);
	dir_move_clear(&m);
	return *obj_r != NULL ? 0 : ctl_fail(c, CTL_ERROR, "out of memory");
}

/* user's active move: 1 (filled), 0 none, -1 error (recorded). */
static int active_move(struct ctl *c, struct directory *dir, const char *user, struct dir_move *m)
{
	enum tern_error err = TERN_ERR_NONE;
	int r = dir->ops->move_get_active(dir, user, m, &err);
	if (r < 0)
		return ctl_fail(c, CTL_ERROR, "cannot read the moves of '%s': %s", user,
				tern_error_str(err));
	return r;
}

/* ------------------------------------------------------------ start */

/* Checks and queues one move; *id_r its id. Node states only warn. */
static int start_one(struct ctl *c, struct directory *dir, const char *user_arg, const char *to,
		     bool suspend, bool check_nodes, int64_t *id_r, char **warning_r)
{
	char name[CTL_USER_MAX];
	struct dir_user u;
	if (ctl_user_find(c, user_arg, name, &u) != 0)
		return -1;
	struct dir_move m;
	int r = active_move(c, dir, name, &m);
	if (r != 0) {
		if (r > 0) {
			ctl_fail(c, CTL_ERROR, "user '%s' is already moving: move %" PRId64 " from "
				 "%s to %s, phase %s (see 'ternctl move status %s')", name, m.id,
				 m.source, m.destination, dir_move_phase_name(m.phase), name);
			dir_move_clear(&m);
		}
		dir_user_clear(&u);
		return -1;
	}
	if (strcmp(u.home, to) == 0) {
		ctl_fail(c, CTL_ERROR, "user '%s' is already homed on %s", name, to);
		dir_user_clear(&u);
		return -1;
	}
	enum tern_error err = TERN_ERR_NONE;
	struct dir_node n;
	r = dir->ops->node_get(dir, to, &n, &err);
	if (r <= 0) {
		if (r < 0)
			ctl_fail(c, CTL_ERROR, "cannot look up node '%s': %s", to, tern_error_str(err));
		else
			ctl_fail(c, CTL_ERROR, "unknown node '%s' (not registered in the directory; "
				 "see 'ternctl node list')", to);
		dir_user_clear(&u);
		return -1;
	}
	int64_t now = dir_wall_ms();
	if (check_nodes && warning_r != NULL && !dir_node_up(&n, now)) {
		char when[32];
		iso_ms(n.heartbeat_ms, when, sizeof(when));
		if (asprintf(warning_r, "destination %s is down (last heartbeat %s): the move stays "
			     "queued until its mover runs", to, when) < 0)
			*warning_r = NULL;
	}
	dir_node_clear(&n);
	err = TERN_ERR_NONE;
	if (dir->ops->move_create(dir, name, u.home, to, suspend, now, id_r, &err) != 0) {
		switch (err) {
		case TERN_ERR_EXISTS:
			ctl_fail(c, CTL_ERROR, "user '%s' is already moving (see 'ternctl move "
				 "status %s')", name, name);
			break;
		case TERN_ERR_CONFLICT:
			ctl_fail(c, CTL_ERROR, "the home of user '%s' changed meanwhile (it was %s); "
				 "try again", name, u.home);
			break;
		case TERN_ERR_NOTFOUND:
			ctl_fail(c, CTL_ERROR, "user '%s' not found", name);
			break;
		case TERN_ERR_INVALID:
			ctl_fail(c, CTL_ERROR, "cannot move '%s' from %s to %s: not a registered "
				 "node, or the user's home", name, u.home, to);
			break;
		default:
			ctl_fail(c, CTL_ERROR, "cannot create the move of '%s': %s", name,
				 tern_error_str(err));
		}
		dir_user_clear(&u);
		return -1;
	}
	dir_user_clear(&u);
	return 0;
}

int ctl_move_start(struct ctl *c, const char *user_arg, const char *to, bool suspend,
		   json_t **move_r, char **warning_r)
{
	*warning_r = NULL;
	struct directory *dir;
	if (ctl_directory(c, &dir) != 0)
		return -1;
	int64_t id = 0;
	if (start_one(c, dir, user_arg, to, suspend, true, &id, warning_r) != 0)
		return -1;
	return move_status_of(c, dir, id, move_r);
}

/* ------------------------------------------------------------ status, list */

int ctl_move_status(struct ctl *c, const char *user_arg, json_t **result_r)
{
	struct directory *dir;
	if (ctl_directory(c, &dir) != 0)
		return -1;
	char name[CTL_USER_MAX];
	if (user_arg != NULL) {
		struct dir_user u;
		if (ctl_user_find(c, user_arg, name, &u) != 0)
			return -1;
		dir_user_clear(&u);
	}
	struct dir_move *moves = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;
	/* A user's latest move may be finished: then every move is needed. */
	if (dir->ops->move_list(dir, user_arg != NULL, &moves, &count, &err) != 0)
		return ctl_fail(c, CTL_ERROR, "cannot list moves: %s", tern_error_str(err));
	struct node_set ns;
	nodes_load(dir, &ns);
	int64_t now = dir_wall_ms();
	json_t *result = NULL;
	if (user_arg == NULL) {
		result = json_array();
		for (size_t i = 0; result != NULL && i < count; i++) {
			if (json_array_append_new(result, move_json(&moves[i], &ns, now)) != 0)
				json_decref(result), result = NULL;
		}
	} else {
		const struct dir_move *latest = NULL;
		for (size_t i = 0; i < count; i++) {
			if (strcmp(moves[i].user, name) != 0)
				continue;
			/* The active move wins; else the one created last. */
			if (latest == NULL ||
			    (!dir_move_phase_finished(moves[i].phase) &&
			     dir_move_phase_finished(latest->phase)) ||
			    (dir_move_phase_finished(moves[i].phase) ==
				     dir_move_phase_finished(latest->phase) &&
			     moves[i].id > latest->id))
				latest = &moves[i];
		}
		if (latest == NULL) {
			nodes_free(&ns);
			dir_moves_free(&moves, count);
			return ctl_fail(c, CTL_ERROR, "user '%s' has no moves", name);
		}
		result = move_json(latest, &ns, now);
	}
	nodes_free(&ns);
	dir_moves_free(&moves, count);
	if (result == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	*result_r = result;
	return 0;
}

int ctl_move_list(struct ctl *c, bool all, json_t **rows_r)
{
	struct directory *dir;
	if (ctl_directory(c, &dir) != 0)
		return -1;
	struct dir_move *moves = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;
	if (dir->ops->move_list(dir, all, &moves, &count, &err) != 0)
		return ctl_fail(c, CTL_ERROR, "cannot list moves: %s", tern_error_str(err));
	struct node_set ns;
	nodes_load(dir, &ns);
	int64_t now = dir_wall_ms();
	json_t *rows = json_array();
	for (size_t i = 0; rows != NULL && i < count; i++) {
		if (json_array_append_new(rows, move_json(&moves[i], &ns, now)) != 0)
			json_decref(rows), rows = NULL;
	}
	nodes_free(&ns);
	dir_moves_free(&moves, count);
	if (rows == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	*rows_r = rows;
	return 0;
}

/* ------------------------------------------------------------ complete, cancel */

/* user_arg's active move, or a failure naming the user. */
static int find_active(struct ctl *c, struct directory *dir, const char *user_arg,
		       struct dir_move *m)
{
	char name[CTL_USER_MAX];
	struct dir_user u;
	if (ctl_user_find(c, user_arg, name, &u) != 0)
		return -1;
	dir_user_clear(&u);
	int r = active_move(c, dir, name, m);
	if (r < 0)
		return -1;
	if (r == 0)
		return ctl_fail(c, CTL_ERROR, "user '%s' has no active move (see 'ternctl move "
				"status %s')", name, name);
	return 0;
}

static int finished_meanwhile(struct ctl *c, struct directory *dir, const struct dir_move *m)
{
	struct dir_move now;
	const char *phase = "finished";
	int r = dir->ops->move_get(dir, m->id, &now, NULL);
	if (r > 0)
		phase = dir_move_phase_name(now.phase);
	ctl_fail(c, CTL_ERROR, "move %" PRId64 " of '%s' ended meanwhile (%s)", m->id, m->user,
		 phase);
	if (r > 0)
		dir_move_clear(&now);
	return -1;
}

/* A refused change of move m (what: "complete", "cancel"): ended meanwhile, or
 * the directory's error. */
static int change_refused(struct ctl *c, struct directory *dir, const struct dir_move *m,
			  const char *what, enum tern_error err)
{
	if (err == TERN_ERR_CONFLICT)
		return finished_meanwhile(c, dir, m);
	return ctl_fail(c, CTL_ERROR, "cannot %s move %" PRId64 ": %s", what, m->id,
			tern_error_str(err));
}

int ctl_move_complete(struct ctl *c, const char *user_arg, json_t **move_r)
{
	struct directory *dir;
	struct dir_move m;
	if (ctl_directory(c, &dir) != 0 || find_active(c, dir, user_arg, &m) != 0)
		return -1;
	int ret = 0;
	enum tern_error err = TERN_ERR_NONE;
	if (m.cancel_requested) {
		ret = ctl_fail(c, CTL_ERROR, "move %" PRId64 " of '%s' is being cancelled; it "
			       "cannot complete", m.id, m.user);
	} else if (m.suspend_when_ready &&
		   dir->ops->move_set_suspend(dir, m.id, false, &err) != 0) {
		ret = change_refused(c, dir, &m, "complete", err);
	}
	if (ret == 0)
		ret = move_status_of(c, dir, m.id, move_r);
	dir_move_clear(&m);
	return ret;
}

int ctl_move_cancel(struct ctl *c, const char *user_arg, json_t **move_r)
{
	struct directory *dir;
	struct dir_move m;
	if (ctl_directory(c, &dir) != 0 || find_active(c, dir, user_arg, &m) != 0)
		return -1;
	int ret = 0;
	enum tern_error err = TERN_ERR_NONE;
	if (dir->ops->move_request_cancel(dir, m.id, &err) != 0)
		ret = change_refused(c, dir, &m, "cancel", err);
	if (ret == 0)
		ret = move_status_of(c, dir, m.id, move_r);
	dir_move_clear(&m);
	return ret;
}

/* ------------------------------------------------------------ waiting */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* SIGINT sets a flag (no SA_RESTART, so the sleep ends at once) while a wait
 * runs; the previous disposition comes back after. */
static void sigint_catch(struct sigaction *old)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	interrupted = 0;
	sigaction(SIGINT, &sa, old);
}

static void sigint_restore(const struct sigaction *old)
{
	sigaction(SIGINT, old, NULL);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms, or less when Ctrl-C comes. */
static void nap(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (!interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static size_t term_width(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
		return ws.ws_col;
	return 80;
}

/* Redraws the one progress line of a terminal. */
static void tty_line(const char *text)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", text);
	sanitize(buf);
	size_t width = term_width() - 1;
	/* Cut at a code point boundary, counting code points as ctl_text_width. */
	size_t cols = 0, i = 0;
	for (; buf[i] != '\0'; i++) {
		if (((unsigned char)buf[i] & 0xc0) != 0x80 && ++cols > width)
			break;
	}
	buf[i] = '\0';
	printf("\r\033[K%s", buf);
	fflush(stdout);
}

/* The progress of one move in one line (the terminal's redrawn line and the
 * plain lines use it alike). */
static void progress_line(const struct dir_move *m, const struct node_set *ns, int64_t now,
			  char *buf, size_t size)
{
	struct move_figures f;
	move_figures(m, &f);
	char reason[512], md[32], mt[32], bd[32], bt[32], rate[48], eta[32];
	waiting_reason(m, ns, now, reason, sizeof(reason));
	snprintf(md, sizeof(md), "%" PRIu64, m->messages_done);
	if (m->messages_total > 0)
		snprintf(mt, sizeof(mt), "%" PRIu64, m->messages_total);
	else
		snprintf(mt, sizeof(mt), "?");
	human_bytes((double)m->bytes_done, bd, sizeof(bd));
	if (m->bytes_total > 0)
		human_bytes((double)m->bytes_total, bt, sizeof(bt));
	else
		snprintf(bt, sizeof(bt), "?");
	if (f.bytes_per_s >= 0) {
		human_bytes(f.bytes_per_s, rate, sizeof(rate));
		strncat(rate, "/s", sizeof(rate) - strlen(rate) - 1);
	} else {
		snprintf(rate, sizeof(rate), "rate unknown");
	}
	if (f.eta_s >= 0) {
		char d[24];
		human_duration(f.eta_s, d, sizeof(d));
		snprintf(eta, sizeof(eta), "ETA %s", d);
	} else {
		snprintf(eta, sizeof(eta), "ETA unknown");
	}
	int n = snprintf(buf, size, "move %" PRId64 " %s %s", m->id, m->user,
			 dir_move_phase_name(m->phase));
	if (n < 0 || (size_t)n >= size)
		return;
	char *p = buf + n;
	size_t left = size - (size_t)n;
	switch (m->phase) {
	case DIR_MOVE_QUEUED:
		snprintf(p, left, "%s%s", reason[0] ? ": " : "", reason);
		break;
	case DIR_MOVE_COPYING:
		snprintf(p, left, ": %s/%s messages, %s/%s, %s, %s%s%s", md, mt, bd, bt, rate, eta,
			 reason[0] ? "; " : "", reason);
		break;
	case DIR_MOVE_SYNCING:
		snprintf(p, left, ": round %" PRIu64 ", synced to modseq %" PRIu64 ", %s/%s "
			 "messages%s%s", m->rounds, m->copied_modseq, md, mt, reason[0] ? "; " : "",
			 reason);
		break;
	case DIR_MOVE_READY:
		/* The directory has no count of changes behind; the mover may say
		 * it in its wait reason. */
		if (m->wait_reason[0] != '\0')
			snprintf(p, left, ": %s", m->wait_reason);
		else
			snprintf(p, left, ": changes behind unknown (synced to modseq %" PRIu64 ")",
				 m->copied_modseq);
		if (m->suspend_when_ready && strlen(buf) + 1 < size)
			snprintf(buf + strlen(buf), size - strlen(buf),
				 "; held: run 'ternctl move complete %s'", m->user);
		break;
	case DIR_MOVE_FINALIZING:
		snprintf(p, left, "%s%s", reason[0] ? ": " : "", reason);
		break;
	default:
		break;
	}
}

/* The closing line of a finished move. */
static void summary_line(const struct dir_move *m, char *buf, size_t size)
{
	char bytes[32], took[32];
	human_bytes((double)m->bytes_done, bytes, sizeof(bytes));
	int64_t from = m->started_ms > 0 ? m->started_ms : m->created_ms;
	human_duration(m->finished_ms > from ? (double)(m->finished_ms - from) / 1000.0 : 0,
		       took, sizeof(took));
	switch (m->phase) {
	case DIR_MOVE_COMPLETED:
		snprintf(buf, size, "move %" PRId64 " completed: %s moved from %s to %s (%" PRIu64
			 " messages, %s, %" PRIu64 " sync rounds) in %s", m->id, m->user, m->source,
			 m->destination, m->messages_done, bytes, m->rounds, took);
		break;
	case DIR_MOVE_FAILED:
		snprintf(buf, size, "move %" PRId64 " failed after %s: %s stays on %s; error: %s",
			 m->id, took, m->user, m->source,
			 m->last_error[0] ? m->last_error : "none recorded");
		break;
	default:
		snprintf(buf, size, "move %" PRId64 " cancelled after %s: %s stays on %s%s%s", m->id,
			 took, m->user, m->source, m->last_error[0] ? "; last error: " : "",
			 m->last_error);
		break;
	}
	sanitize(buf);
}

/* The failure a finished move that did not complete leaves. */
static int move_not_completed(struct ctl *c, const struct dir_move *m)
{
	if (m->phase == DIR_MOVE_FAILED)
		return ctl_fail(c, CTL_ERROR, "move %" PRId64 " of '%s' failed: %s", m->id, m->user,
				m->last_error[0] ? m->last_error : "no error recorded");
	return ctl_fail(c, CTL_ERROR, "move %" PRId64 " of '%s' was cancelled%s%s", m->id, m->user,
			m->last_error[0] ? "; last error: " : "", m->last_error);
}

static void print_status_json(struct ctl *c, struct directory *dir, const struct dir_move *m)
{
	struct node_set ns;
	nodes_load(dir, &ns);
	json_t *o = move_json(m, &ns, dir_wall_ms());
	nodes_free(&ns);
	if (o == NULL || ctl_output_object(stdout, NULL, 0, o, true) != 0)
		ctl_fail(c, CTL_ERROR, "cannot write the output: %s", strerror(errno));
	json_decref(o);
}

int ctl_move_wait(struct ctl *c, int64_t id, const struct ctl_move_wait *w)
{
	struct directory *dir;
	if (ctl_directory(c, &dir) != 0)
		return -1;
	struct sigaction old;
	sigint_catch(&old);
	int64_t deadline = w->timeout_ms > 0 ? mono_ms() + (int64_t)w->timeout_ms : 0;
	char last[1200] = "", line[1200];
	int phase_seen = -1, errors = 0, ret = -1;
	bool drawn = false;
	struct dir_move m;
	memset(&m, 0, sizeof(m));
	bool have = false;
	for (;;) {
		enum tern_error err = TERN_ERR_NONE;
		struct dir_move cur;
		int r = dir->ops->move_get(dir, id, &cur, &err);
		if (r < 0 && ++errors > WAIT_READ_RETRIES) {
			ctl_fail(c, CTL_ERROR, "cannot read move %" PRId64 ": %s", id,
				 tern_error_str(err));
			break;
		}
		if (r == 0) {
			ctl_fail(c, CTL_ERROR, "move %" PRId64 " is not in the directory", id);
			break;
		}
		if (r > 0) {
			errors = 0;
			if (have)
				dir_move_clear(&m);
			m = cur;
			have = true;
			struct node_set ns;
			nodes_load(dir, &ns);
			int64_t now = dir_wall_ms();
			progress_line(&m, &ns, now, line, sizeof(line));
			nodes_free(&ns);
			if (w->json) {
				/* silent until the end */
			} else if (w->tty) {
				tty_line(line);
				drawn = true;
			} else if (dir_move_phase_finished(m.phase)) {
				/* the summary below says it */
			} else if ((int)m.phase != phase_seen ||
				   (m.phase != DIR_MOVE_COPYING && m.phase != DIR_MOVE_SYNCING &&
				    strcmp(line, last) != 0)) {
				/* One line per phase, and per new reason to wait. */
				sanitize(line);
				printf("%s\n", line);
				fflush(stdout);
			}
			phase_seen = (int)m.phase;
			snprintf(last, sizeof(last), "%s", line);
			if (dir_move_phase_finished(m.phase))
				break;
		}
		if (interrupted) {
			if (drawn)
				printf("\n");
			ctl_fail(c, CTL_MOVE_INTERRUPTED, "interrupted: move %" PRId64 " keeps "
				 "running (see 'ternctl move status %s'; 'ternctl move cancel %s' "
				 "stops it)", id, have ? m.user : "USER", have ? m.user : "USER");
			break;
		}
		int64_t left = deadline > 0 ? deadline - mono_ms() : CTL_MOVE_POLL_MS;
		if (left <= 0) {
			char d[32];
			human_duration((double)w->timeout_ms / 1000.0, d, sizeof(d));
			if (drawn)
				printf("\n");
			if (w->json && have)
				print_status_json(c, dir, &m);
			ctl_fail(c, CTL_MOVE_TIMEOUT, "timed out after %s waiting for move %" PRId64
				 " (phase %s); it keeps running (see 'ternctl move status %s')", d, id,
				 have ? dir_move_phase_name(m.phase) : "unknown",
				 have ? m.user : "USER");
			break;
		}
		nap(left < CTL_MOVE_POLL_MS ? left : CTL_MOVE_POLL_MS);
	}
	if (have && dir_move_phase_finished(m.phase)) {
		if (w->json) {
			print_status_json(c, dir, &m);
		} else {
			if (drawn)
				printf("\n");
			summary_line(&m, line, sizeof(line));
			printf("%s\n", line);
			fflush(stdout);
		}
		ret = m.phase == DIR_MOVE_COMPLETED ? 0 : move_not_completed(c, &m);
		if (c->status != CTL_OK)
			ret = -1;
	}
	if (have)
		dir_move_clear(&m);
	sigint_restore(&old);
	return ret;
}

/* ------------------------------------------------------------ batch */

enum batch_state {
	B_PENDING,    /* not started yet */
	B_ACTIVE,     /* its move runs (with --wait) */
	B_QUEUED,     /* its move was created (without --wait) */
	B_COMPLETED,
	B_FAILED,
	B_CANCELLED,
	B_SKIPPED,    /* already homed on the destination, or listed twice */
	B_REFUSED,    /* no move could be created */
};

static const char *const batch_state_names[] = {
	"not started", "running", "queued", "completed", "failed", "cancelled", "skipped",
	"refused",
};

struct batch_item {
	char *user;
	int64_t id;
	enum batch_state state;
	int phase;          /* last phase seen, -1 none */
	char *error;        /* heap, or NULL */
};

struct batch {
	struct batch_item *items;
	size_t count, cap;
};

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->count; i++) {
		free(b->items[i].user);
		free(b->items[i].error);
	}
	free(b->items);
}

static int batch_add(struct ctl *c, struct batch *b, const char *user)
{
	for (size_t i = 0; i < b->count; i++) {
		if (strcmp(b->items[i].user, user) == 0)
			return 0;    /* listed twice: moved once */
	}
	if (b->count == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct batch_item *items = realloc(b->items, cap * sizeof(*items));
		if (items == NULL)
			return ctl_fail(c, CTL_ERROR, "out of memory");
		b->items = items;
		b->cap = cap;
	}
	struct batch_item *it = &b->items[b->count];
	memset(it, 0, sizeof(*it));
	it->phase = -1;
	it->user = strdup(user);
	if (it->user == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	b->count++;
	return 0;
}

/* Moves the failure recorded in c into the item, so the batch goes on. */
static void batch_take_error(struct ctl *c, struct batch_item *it, enum batch_state st)
{
	free(it->error);
	it->error = strdup(c->error[0] != '\0' ? c->error : "failed");
	it->state = st;
	c->status = CTL_OK;
	c->error[0] = '\0';
}

static int batch_from_node(struct ctl *c, struct directory *dir, const char *from,
			   struct batch *b)
{
	enum tern_error err = TERN_ERR_NONE;
	struct dir_node n;
	int r = dir->ops->node_get(dir, from, &n, &err);
	if (r < 0)
		return ctl_fail(c, CTL_ERROR, "cannot look up node '%s': %s", from,
				tern_error_str(err));
	if (r == 0)
		return ctl_fail(c, CTL_ERROR, "unknown node '%s' (not registered in the directory; "
				"see 'ternctl node list')", from);
	dir_node_clear(&n);
	struct dir_user *users = NULL;
	size_t count = 0;
	if (dir->ops->user_list(dir, &users, &count, &err) != 0)
		return ctl_fail(c, CTL_ERROR, "cannot list users: %s", tern_error_str(err));
	int ret = 0;
	for (size_t i = 0; ret == 0 && i < count; i++) {
		if (strcmp(users[i].home, from) == 0)
			ret = batch_add(c, b, users[i].name);
	}
	dir_users_free(&users, count);
	return ret;
}

static int batch_from_file(struct ctl *c, const char *path, struct batch *b)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (f == NULL)
		return ctl_fail(c, CTL_ERROR, "cannot open '%s': %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	int ret = 0;
	while (ret == 0 && getline(&line, &cap, f) >= 0) {
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *s = line, *e;
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*s != '\0')
			ret = batch_add(c, b, s);
	}
	if (ret == 0 && ferror(f))
		ret = ctl_fail(c, CTL_ERROR, "cannot read '%s': %s", path, strerror(errno));
	free(line);
	if (f != stdin)
		fclose(f);
	return ret;
}

/* Creates item's move; a refusal stays with the item. */
static void batch_start(struct ctl *c, struct directory *dir, const struct ctl_move_batch *b,
			struct batch_item *it, bool quiet)
{
	char name[CTL_USER_MAX];
	struct dir_user u;
	/* Already where it should go: nothing to do, not an error. */
	if (ctl_user_find(c, it->user, name, &u) != 0) {
		batch_take_error(c, it, B_REFUSED);
	} else {
		bool there = strcmp(u.home, b->to) == 0;
		dir_user_clear(&u);
		if (there) {
			it->state = B_SKIPPED;
			if (asprintf(&it->error, "already homed on %s", b->to) < 0)
				it->error = NULL;
		} else if (start_one(c, dir, name, b->to, b->suspend, false, &it->id, NULL) != 0) {
			batch_take_error(c, it, B_REFUSED);
		} else {
			it->state = b->wait ? B_ACTIVE : B_QUEUED;
		}
	}
	if (quiet)
		return;
	if (b->how.tty)
		printf("\r\033[K");
	if (it->state == B_ACTIVE || it->state == B_QUEUED)
		printf("%s: move %" PRId64 " queued\n", it->user, it->id);
	else
		printf("%s: %s: %s\n", it->user, batch_state_names[it->state],
		       it->error != NULL ? it->error : "");
	fflush(stdout);
}

/* Reads an active item's move; reports phase changes and its end. */
static void batch_poll(struct ctl *c, struct directory *dir, const struct ctl_move_batch *b,
		       struct batch_item *it, size_t *active)
{
	struct dir_move m;
	enum tern_error err = TERN_ERR_NONE;
	int r = dir->ops->move_get(dir, it->id, &m, &err);
	if (r <= 0) {
		if (r == 0) {
			it->state = B_FAILED;
			it->error = strdup("the move is gone from the directory");
			(*active)--;
		}
		return;    /* a read error: try again next time */
	}
	bool quiet = b->how.json;
	if ((int)m.phase != it->phase && !dir_move_phase_finished(m.phase) && !quiet &&
	    !b->how.tty) {
		printf("%s: move %" PRId64 " %s\n", it->user, it->id, dir_move_phase_name(m.phase));
		fflush(stdout);
	}
	it->phase = (int)m.phase;
	if (dir_move_phase_finished(m.phase)) {
		(*active)--;
		it->state = m.phase == DIR_MOVE_COMPLETED ? B_COMPLETED
			    : m.phase == DIR_MOVE_FAILED ? B_FAILED : B_CANCELLED;
		if (m.last_error[0] != '\0' && m.phase != DIR_MOVE_COMPLETED)
			it->error = strdup(m.last_error);
		if (!quiet) {
			char line[1200];
			summary_line(&m, line, sizeof(line));
			if (b->how.tty)
				printf("\r\033[K");
			printf("%s: %s\n", it->user, line);
			fflush(stdout);
		}
	}
	(void)c;
	dir_move_clear(&m);
}

static void batch_tty_line(const struct batch *bt, size_t active)
{
	size_t done = 0, failed = 0;
	for (size_t i = 0; i < bt->count; i++) {
		enum batch_state s = bt->items[i].state;
		if (s != B_PENDING && s != B_ACTIVE)
			done++;
		if (s == B_FAILED || s == B_CANCELLED || s == B_REFUSED)
			failed++;
	}
	char line[1024];
	int n = snprintf(line, sizeof(line), "batch: %zu/%zu done (%zu not completed), %zu moving:",
			 done, bt->count, failed, active);
	for (size_t i = 0; i < bt->count && n > 0 && (size_t)n < sizeof(line); i++) {
		const struct batch_item *it = &bt->items[i];
		if (it->state == B_ACTIVE)
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s %s", it->user,
				      it->phase >= 0 ? dir_move_phase_name(it->phase) : "queued");
	}
	tty_line(line);
}

static int batch_report(struct ctl *c, const struct ctl_move_batch *b, struct batch *bt)
{
	size_t n[B_REFUSED + 1] = {0};
	for (size_t i = 0; i < bt->count; i++)
		n[bt->items[i].state]++;
	if (b->how.json) {
		json_t *rows = json_array();
		for (size_t i = 0; rows != NULL && i < bt->count; i++) {
			const struct batch_item *it = &bt->items[i];
			json_t *o = json_object();
			json_object_set_new(o, "user", ctl_json_string(it->user));
			json_object_set_new(o, "id", it->id > 0 ? json_integer(it->id) : json_null());
			json_object_set_new(o, "result", json_string(batch_state_names[it->state]));
			json_object_set_new(o, "error", ctl_json_string(it->error != NULL
									? it->error : ""));
			json_array_append_new(rows, o);
		}
		int r = rows != NULL ? ctl_output_object(stdout, NULL, 0, rows, true) : -1;
		json_decref(rows);
		if (r != 0)
			return ctl_fail(c, CTL_ERROR, "cannot write the output: %s", strerror(errno));
	} else if (b->wait) {
		printf("batch: %zu users: %zu completed, %zu failed, %zu cancelled, %zu skipped, "
		       "%zu refused, %zu still running, %zu not started\n", bt->count,
		       n[B_COMPLETED], n[B_FAILED], n[B_CANCELLED], n[B_SKIPPED], n[B_REFUSED],
		       n[B_ACTIVE], n[B_PENDING]);
	} else {
		printf("batch: %zu users: %zu moves queued, %zu skipped, %zu refused; the movers run "
		       "them at their own concurrency (see 'ternctl move list')\n", bt->count,
		       n[B_QUEUED], n[B_SKIPPED], n[B_REFUSED]);
	}
	fflush(stdout);
	size_t bad = n[B_FAILED] + n[B_CANCELLED] + n[B_REFUSED];
	if (bad > 0)
		return ctl_fail(c, CTL_ERROR, "batch: %zu of %zu users were not moved", bad,
				bt->count);
	return 0;
}

int ctl_move_batch(struct ctl *c, const struct ctl_move_batch *b)
{
	struct directory *dir;
	if (ctl_directory(c, &dir) != 0)
		return -1;
	struct batch bt = {0};
	int ret = b->from != NULL ? batch_from_node(c, dir, b->from, &bt)
				  : batch_from_file(c, b->users_file, &bt);
	if (ret != 0) {
		batch_free(&bt);
		return -1;
	}
	/* The destination is checked once, not per user. */
	enum tern_error err = TERN_ERR_NONE;
	struct dir_node dn;
	int r = dir->ops->node_get(dir, b->to, &dn, &err);
	if (r <= 0) {
		batch_free(&bt);
		if (r < 0)
			return ctl_fail(c, CTL_ERROR, "cannot look up node '%s': %s", b->to,
					tern_error_str(err));
		return ctl_fail(c, CTL_ERROR, "unknown node '%s' (not registered in the directory; "
				"see 'ternctl node list')", b->to);
	}
	if (!dir_node_up(&dn, dir_wall_ms()))
		fprintf(stderr, "ternctl: warning: destination %s is down: its moves stay queued "
			"until its mover runs\n", b->to);
	dir_node_clear(&dn);
	bool quiet = b->how.json;
	if (!b->wait) {
		for (size_t i = 0; i < bt.count; i++)
			batch_start(c, dir, b, &bt.items[i], quiet);
		ret = batch_report(c, b, &bt);
		batch_free(&bt);
		return ret;
	}
	struct sigaction old;
	sigint_catch(&old);
	int64_t deadline = b->how.timeout_ms > 0 ? mono_ms() + (int64_t)b->how.timeout_ms : 0;
	size_t next = 0, active = 0;
	enum ctl_status stop = CTL_OK;
	for (;;) {
		while (!interrupted && active < b->parallel && next < bt.count) {
			struct batch_item *it = &bt.items[next++];
			batch_start(c, dir, b, it, quiet);
			if (it->state == B_ACTIVE)
				active++;
		}
		for (size_t i = 0; i < next; i++) {
			if (bt.items[i].state == B_ACTIVE)
				batch_poll(c, dir, b, &bt.items[i], &active);
		}
		if (active == 0 && next == bt.count)
			break;
		if (active < b->parallel && next < bt.count && !interrupted)
			continue;    /* a slot came free: fill it now */
		if (b->how.tty && !quiet)
			batch_tty_line(&bt, active);
		if (interrupted) {
			stop = CTL_MOVE_INTERRUPTED;
			break;
		}
		int64_t left = deadline > 0 ? deadline - mono_ms() : CTL_MOVE_POLL_MS;
		if (left <= 0) {
			stop = CTL_MOVE_TIMEOUT;
			break;
		}
		nap(left < CTL_MOVE_POLL_MS ? left : CTL_MOVE_POLL_MS);
	}
	sigint_restore(&old);
	if (b->how.tty && !quiet)
		printf("\r\033[K");
	ret = batch_report(c, b, &bt);
	if (stop != CTL_OK) {
		/* The stop is the cause; it replaces a "not moved" count. */
		c->status = CTL_OK;
		c->error[0] = '\0';
		char d[32];
		human_duration((double)b->how.timeout_ms / 1000.0, d, sizeof(d));
		size_t running = 0;
		for (size_t i = 0; i < bt.count; i++)
			running += bt.items[i].state == B_ACTIVE;
		ret = ctl_fail(c, stop, "%s%s: %zu moves keep running, %zu users not started (see "
			       "'ternctl move list')", stop == CTL_MOVE_TIMEOUT ? "timed out after "
			       : "interrupted", stop == CTL_MOVE_TIMEOUT ? d : "", running,
			       bt.count - next);
	}
	batch_free(&bt);
	return ret;
}
