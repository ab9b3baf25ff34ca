#include "mover/move-source.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "cluster/inbound.h"
#include "directory/directory.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/delivery.h"
#include "server/freeze.h"
#include "server/inflight.h"
#include "server/lookup.h"
#include "server/moved.h"
#include "server/notify.h"
#include "server/user-cache.h"
#include "server/loop.h"
#include "server/server.h"
#include "store/store-move.h"
#include "store/store.h"

#define MOVE_LINE_MAX 512u

/* JOB_READ and JOB_CLOSE carry a copy's file to the channel: the loop
 * never opens, reads or closes it (a copy can be gigabytes, cold on disk). */
enum job_kind { JOB_SNAPSHOT, JOB_DELTA, JOB_CHECKSUM, JOB_FLUSH, JOB_FENCE, JOB_UNFENCE,
		JOB_REMOVE, JOB_READ, JOB_CLOSE };

struct move_source {
	struct conn *conn;
	char user[TERN_USERNAME_MAX + 1];
	char front[TERN_CLUSTER_NODE_NAME_MAX + 1];
	bool busy;                      /* a command is running */
	struct lookup_request *lookup;
	/* FREEZE: waiting for the user's deliveries accepted before it */
	struct event *settle;
	uint64_t settle_deadline;
	/* the store task of the running command; its done finds the session
	 * through conn (held by a reference) */
	struct move_job *job;
	/* the copy being sent (after its +FILE line): read a chunk at a time
	 * on the worker while the channel's output is below TERN_MOVE_SEND_LOW */
	int send_fd;
	uint64_t send_offset, send_size;
};

struct move_job {
	struct store_task task;
	struct conn *conn;
	enum job_kind kind;
	char path[PATH_MAX];
	const char *data_dir;
	uint64_t since, since_delivered;
	bool summed;            /* DELTA ... SUM: the whole store's sum too */
	char *watch;            /* a fence watch's job: the user, owned */
	/* SNAPSHOT/DELTA: the copy, opened and unlinked by the worker;
	 * READ: read len bytes at offset into chunk; CLOSE: close fd */
	int fd;
	uint64_t size, offset;
	char *chunk;
	size_t len;
	/* results */
	uint64_t modseq, changes;
	struct store_move_sum sum;
};

extern const struct conn_proto move_source_proto;

static void reply(struct move_source *ms, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct move_source *ms, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conn_vprintf(ms->conn, fmt, ap);
	va_end(ap);
	conn_write(ms->conn, "\r\n", 2);
}

static void finished(struct move_source *ms)
{
	ms->busy = false;
	if (!ms->conn->closing)
		conn_resume(ms->conn);
}

/* ---- store work, on the user's apply worker ---- */

/* Opens the copy just written for sending and unlinks it (the descriptor
 * keeps it until the last chunk is out). */
static int open_copy(struct move_job *j, enum tern_error *err_r)
{
	struct stat sb;
	j->fd = open(j->path, O_RDONLY | O_CLOEXEC);
	if (j->fd < 0 || fstat(j->fd, &sb) < 0) {
		log_warn("move: user=%s: cannot read the copy %s: %s", j->task.user, j->path,
			 strerror(errno));
		if (j->fd >= 0)
			close(j->fd);
		j->fd = -1;
		unlink(j->path);
		*err_r = TERN_ERR_IO;
		return -1;
	}
	unlink(j->path);
	j->path[0] = '\0';
	j->size = (uint64_t)sb.st_size;
	return 0;
}

static int read_chunk(struct move_job *j, enum tern_error *err_r)
{
	size_t got = 0;
	while (got < j->len) {
		ssize_t n = pread(j->fd, j->chunk + got, j->len - got, (off_t)(j->offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("move: user=%s: reading the copy at %" PRIu64 ": %s", j->task.user,
				 j->offset + got, n < 0 ? strerror(errno) : "cut short");
			*err_r = TERN_ERR_IO;
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

static int job_run(struct store *st, void *arg, enum tern_error *err_r)
{
	struct move_job *j = arg;
	int r;
	switch (j->kind) {
	case JOB_SNAPSHOT:
		r = store_move_snapshot(st, j->path, &j->modseq, err_r);
		return r < 0 ? r : open_copy(j, err_r);
	case JOB_DELTA:
		r = store_move_delta(st, j->path, j->since, j->since_delivered, &j->modseq,
				     &j->changes, j->summed ? &j->sum : NULL, err_r);
		return r < 0 ? r : open_copy(j, err_r);
	case JOB_READ:
		return read_chunk(j, err_r);
	case JOB_CLOSE:
		close(j->fd);
		return 0;
	case JOB_CHECKSUM:
		return store_move_checksum(st, j->since, &j->sum, err_r);
	case JOB_FLUSH:
		return 0;   /* runs after every write queued before it */
	case JOB_FENCE:
		return store_fence(st, (int64_t)j->since, err_r);
	case JOB_UNFENCE:
		return store_unfence(st, err_r);
	case JOB_REMOVE:
		return store_remove(j->data_dir, j->task.user, err_r);
	}
	return 0;
}

static const char *digest_hex(const struct store_move_sum *sum, char hex[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sum->digest[i]);
	return hex;
}

static void start_job(struct move_source *ms, enum job_kind kind, uint64_t since,
		      uint64_t since_delivered, bool summed);
static void send_next(struct move_source *ms);

/* Closes a copy's descriptor on the worker (the last close of an unlinked
 * file frees its blocks: disk work). */
static void close_copy_done(struct store_task *t)
{
	free(t->arg);
}

static void close_copy(struct move_source *ms, int fd)
{
	if (fd < 0)
		return;
	struct delivery *d = ms->conn->loop->server->delivery;
	struct move_job *j = d != NULL ? calloc(1, sizeof(*j)) : NULL;
	if (j == NULL) {
		close(fd);   /* stopping (no workers), or out of memory */
		return;
	}
	j->kind = JOB_CLOSE;
	j->fd = fd;
	snprintf(j->path, sizeof(j->path), "%s", ms->user);   /* task.user outlives ms */
	j->path[sizeof(j->path) - 1] = '\0';
	j->task.user = j->path;
	j->task.run = job_run;
	j->task.open = STORE_TASK_NO_STORE;
	j->task.arg = j;
	j->task.done = close_copy_done;
	j->task.loop = ms->conn->loop;
	j->task.deadline_ms = tern_now_ms() + TERN_MOVE_TASK_DEADLINE_MS;
	delivery_store_task(d, &j->task);
}

/* The +FILE line of a copy the worker opened; its bytes follow. */
static void send_file(struct move_source *ms, struct move_job *j)
{
	char hex[65];
	if (j->kind == JOB_SNAPSHOT)
		reply(ms, "+FILE %" PRIu64 " %" PRIu64, j->size, j->modseq);
	else if (!j->summed)
		reply(ms, "+FILE %" PRIu64 " %" PRIu64 " %" PRIu64, j->size, j->modseq, j->changes);
	else
		reply(ms, "+FILE %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s",
		      j->size, j->modseq, j->changes, j->sum.folders, j->sum.messages,
		      digest_hex(&j->sum, hex));
	ms->send_fd = j->fd;
	ms->send_offset = 0;
	ms->send_size = j->size;
	j->fd = -1;
	send_next(ms);
}

static void send_drained(struct conn *c)
{
	send_next(c->state);
}

static void free_chunk(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	free(arg);
}

/* Queues the next chunk of the copy, or waits for the channel to drain,
 * or ends the command when all of it is queued. */
static void send_next(struct move_source *ms)
{
	if (ms->send_offset >= ms->send_size) {
		close_copy(ms, ms->send_fd);
		ms->send_fd = -1;
		finished(ms);
		return;
	}
	if (conn_output_pending(ms->conn) > TERN_MOVE_SEND_LOW) {
		conn_set_drain_hook(ms->conn, TERN_MOVE_SEND_LOW, send_drained);
		return;
	}
	start_job(ms, JOB_READ, 0, 0, false);
}

/* A chunk read: onto the channel (by reference, freed once sent). */
static void chunk_read(struct move_source *ms, struct move_job *j)
{
	if (evbuffer_add_reference(conn_output(ms->conn), j->chunk, j->len, free_chunk,
				   j->chunk) < 0) {
		conn_write_failed(ms->conn);
		return;
	}
	j->chunk = NULL;
	ms->send_offset += j->len;
	send_next(ms);
}

static const char *job_name(enum job_kind kind)
{
	static const char *const names[] = {
		[JOB_SNAPSHOT] = "snapshot", [JOB_DELTA] = "delta", [JOB_CHECKSUM] = "checksum",
		[JOB_FLUSH] = "flush", [JOB_FENCE] = "fence", [JOB_UNFENCE] = "unfence",
		[JOB_REMOVE] = "remove", [JOB_READ] = "read", [JOB_CLOSE] = "close",
	};
	return names[kind];
}

static void job_done(struct store_task *t)
{
	struct move_job *j = (struct move_job *)(void *)t;
	struct conn *c = j->conn;
	/* the state lives while this job holds its reference */
	struct move_source *ms = c->proto == &move_source_proto ? c->state : NULL;
	bool live = ms != NULL && !c->closing;
	if (ms != NULL)
		ms->job = NULL;
	if (!live) {
		if (j->kind == JOB_READ && ms != NULL) {
			close_copy(ms, ms->send_fd);
			ms->send_fd = -1;
		}
		if (j->fd >= 0 && ms != NULL)
			close_copy(ms, j->fd);
	} else if (t->result < 0 && j->kind == JOB_READ) {
		/* the +FILE line is out: only a cut channel tells the mover */
		close_copy(ms, ms->send_fd);
		ms->send_fd = -1;
		conn_write_failed(c);
	} else if (t->result < 0) {
		log_warn("move: user=%s front=%s: %s failed: %s", ms->user, ms->front,
			 job_name(j->kind), tern_error_str(t->err));
		reply(ms, "-ERR %s", tern_error_str(t->err));
		finished(ms);
	} else if (j->kind == JOB_SNAPSHOT || j->kind == JOB_DELTA) {
		send_file(ms, j);       /* finished once the last chunk is queued */
	} else if (j->kind == JOB_READ) {
		chunk_read(ms, j);
	} else if (j->kind == JOB_CHECKSUM) {
		char hex[65];
		reply(ms, "+CHECKSUM %" PRIu64 " %" PRIu64 " %s", j->sum.folders, j->sum.messages,
		      digest_hex(&j->sum, hex));
		finished(ms);
	} else {
		if (j->kind == JOB_REMOVE)
			log_info("move: user=%s: this node's copy removed (moved away)", ms->user);
		reply(ms, "+OK");
		finished(ms);
	}
	free(j->chunk);
	free(j);
	conn_unref(&c);
}

static void start_job(struct move_source *ms, enum job_kind kind, uint64_t since,
		      uint64_t since_delivered, bool summed)
{
	const struct tern_config *cfg = ms->conn->loop->server->config;
	struct move_job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		reply(ms, "-ERR out of memory");
		finished(ms);
		return;
	}
	j->kind = kind;
	j->fd = -1;
	j->since = since;
	j->since_delivered = since_delivered;
	j->summed = summed;
	j->data_dir = cfg->data_dir;
	if (kind == JOB_READ) {
		j->fd = ms->send_fd;
		j->offset = ms->send_offset;
		j->len = ms->send_size - ms->send_offset < TERN_MOVE_SEND_CHUNK
				 ? (size_t)(ms->send_size - ms->send_offset) : TERN_MOVE_SEND_CHUNK;
		j->chunk = malloc(j->len);
		if (j->chunk == NULL) {
			free(j);
			close_copy(ms, ms->send_fd);
			ms->send_fd = -1;
			conn_write_failed(ms->conn);
			return;
		}
	}
	if (kind == JOB_SNAPSHOT || kind == JOB_DELTA) {
		static _Atomic unsigned serial;
		snprintf(j->path, sizeof(j->path), "%s/mail/.move-out-%s-%u-%u.db", cfg->data_dir,
			 ms->user, (unsigned)getpid(), atomic_fetch_add(&serial, 1));
	}
	j->conn = ms->conn;
	j->task.user = ms->user;
	j->task.run = job_run;
	/* a user without mail yet moves as an empty store; files are read,
	 * closed and removed without opening the store (which would create
	 * it again after a removal) */
	j->task.open = kind == JOB_SNAPSHOT ? STORE_TASK_CREATE
		     : kind == JOB_READ || kind == JOB_CLOSE || kind == JOB_REMOVE ? STORE_TASK_NO_STORE
		     : STORE_TASK_OPEN;
	j->task.arg = j;
	j->task.done = job_done;
	j->task.loop = ms->conn->loop;
	/* a copy of a big mailbox takes longer than a session's write */
	j->task.deadline_ms = tern_now_ms() + TERN_MOVE_TASK_DEADLINE_MS;
	/* a removed store must not live on in the worker's handle cache */
	j->task.drop_handle = kind == JOB_REMOVE;
	ms->job = j;
	conn_ref(ms->conn);
	delivery_store_task(ms->conn->loop->server->delivery, &j->task);
}

/* ---- commands ---- */

static void remove_checked(const struct lookup_result *r, void *ctx)
{
	struct move_source *ms = ctx;
	if (ms->conn->closing)
		return;
	if (r->found != 1 || r->here) {
		reply(ms, "-ERR %s", r->found < 0 ? "directory unavailable"
			  : r->found == 0 ? "no such user" : "the user is still homed here");
		finished(ms);
		return;
	}
	start_job(ms, JOB_REMOVE, 0, 0, false);
}

/* A fence with a deadline lapses by itself; if shortly before that the
 * directory names another home (the mover switched, then died before it
 * could fence for good and release), this node makes it permanent and says
 * the user moved, so no session here writes to a copy nobody reads any
 * more. Lives on the loop beyond the channel that asked for the fence. */
struct fence_watch {
	struct loop_cleanup cleanup;     /* first: freed at shutdown if pending */
	struct loop *loop;
	struct event *timer;
	struct lookup_request *lookup;
	struct move_job *job;
	char user[TERN_USERNAME_MAX + 1];
};

static void fence_watch_free(struct fence_watch *fw)
{
	if (fw->timer != NULL)
		event_free(fw->timer);
	lookup_cancel(&fw->lookup);
	free(fw);
}

static void fence_watch_shutdown(struct loop_cleanup *c)
{
	fence_watch_free((struct fence_watch *)(void *)c);
}

static void fence_watch_done(struct store_task *t)
{
	struct move_job *j = (struct move_job *)(void *)t;
	if (t->result < 0)
		log_warn("move: user=%s: fencing the old copy for good failed: %s", t->user,
			 tern_error_str(t->err));
	free(j->watch);
	free(j);
}

static void fence_watch_resolved(const struct lookup_result *r, void *ctx)
{
	struct fence_watch *fw = ctx;
	/* moved_get: the release came (the normal end), nothing to do */
	if (r->found == 1 && !r->here && !moved_get(fw->user, NULL, 0, NULL, 0)) {
		log_warn("move: user=%s: the fence lapsed after the switch to %s without a release: "
			 "fenced for good", fw->user, r->user->home);
		moved_set(fw->user, r->user->home, r->home_addr);
		notify_user_changed(fw->user);
		struct move_job *j = calloc(1, sizeof(*j));
		if (j != NULL) {
			j->watch = fw->user[0] != '\0' ? strdup(fw->user) : NULL;
			j->kind = JOB_FENCE;
			j->since = 0;
			j->task.user = j->watch != NULL ? j->watch : "";
			j->task.run = job_run;
			j->task.arg = j;
			j->task.done = fence_watch_done;
			j->task.loop = fw->loop;
			j->task.deadline_ms = tern_now_ms() + TERN_MOVE_TASK_DEADLINE_MS;
			if (j->watch != NULL)
				delivery_store_task(fw->loop->server->delivery, &j->task);
			else
				free(j);
		}
	}
	fence_watch_free(fw);
}

static void fence_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct fence_watch *fw = arg;
	loop_cleanup_remove(fw->loop, &fw->cleanup);
	lookup_user(fw->loop, fw->user, LOOKUP_FRESH, fence_watch_resolved, fw, &fw->lookup);
}

static void fence_watch(struct move_source *ms, int64_t until_ms)
{
	struct fence_watch *fw = calloc(1, sizeof(*fw));
	if (fw == NULL)
		return;
	fw->loop = ms->conn->loop;
	snprintf(fw->user, sizeof(fw->user), "%s", ms->user);
	fw->timer = evtimer_new(fw->loop->base, fence_watch_cb, fw);
	/* before the fence lapses: a switch is made a margin earlier still
	 * (mover.c), so if there is one, no write gets through in between */
	int64_t left = until_ms - dir_wall_ms() - TERN_MOVE_FENCE_CHECK_MARGIN_MS;
	if (left < 0)
		left = 0;
	struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
	if (fw->timer == NULL || evtimer_add(fw->timer, &tv) < 0) {
		fence_watch_free(fw);
		return;
	}
	fw->cleanup.fn = fence_watch_shutdown;
	loop_cleanup_add(fw->loop, &fw->cleanup);
}

static void settle_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct move_source *ms = arg;
	uint32_t n = inflight_get(ms->user);
	if (n > 0 && tern_now_ms() < ms->settle_deadline) {
		static const struct timeval again = {0, TERN_MOVE_SETTLE_POLL_MS * 1000};
		if (ms->settle == NULL)
			ms->settle = evtimer_new(ms->conn->loop->base, settle_cb, ms);
		if (ms->settle != NULL && evtimer_add(ms->settle, &again) == 0)
			return;
	}
	if (n > 0)
		log_warn("move: user=%s: %u deliveries still in flight when the freeze settled; "
			 "they will be retried at the new home", ms->user, n);
	start_job(ms, JOB_FLUSH, 0, 0, false);
}

static void command(struct move_source *ms, char *line)
{
	char *save = NULL;
	char *verb = strtok_r(line, " ", &save);
	char *a1 = strtok_r(NULL, " ", &save), *a2 = strtok_r(NULL, " ", &save);
	char *a3 = strtok_r(NULL, " ", &save);
	const char *why = NULL;
	ms->busy = true;
	if (verb == NULL) {
		reply(ms, "-ERR empty command");
	} else if (strcmp(verb, "SNAPSHOT") == 0) {
		start_job(ms, JOB_SNAPSHOT, 0, 0, false);
		return;
	} else if (strcmp(verb, "DELTA") == 0 && a1 != NULL && a2 != NULL) {
		start_job(ms, JOB_DELTA, strtoull(a1, NULL, 10), strtoull(a2, NULL, 10),
			  a3 != NULL && strcmp(a3, "SUM") == 0);
		return;
	} else if (strcmp(verb, "CHECKSUM") == 0) {
		/* CHECKSUM [since]: the whole store, or what changed after */
		start_job(ms, JOB_CHECKSUM, a1 != NULL ? strtoull(a1, NULL, 10) : 0, 0, false);
		return;
	} else if (strcmp(verb, "FREEZE") == 0 && a1 != NULL) {
		unsigned long ms_lease = strtoul(a1, NULL, 10);
		if (freeze_user(ms->user, (uint32_t)ms_lease, &why) < 0) {
			reply(ms, "-ERR %s", why != NULL ? why : "cannot freeze");
		} else {
			log_info("move: user=%s front=%s: frozen for at most %lu ms", ms->user,
				 ms->front, ms_lease);
			/* deliveries accepted before the freeze finish first (half
			 * the lease at most), then the writes queued are applied */
			ms->settle_deadline = tern_now_ms() + ms_lease / 2;
			settle_cb(-1, 0, ms);
			return;
		}
	} else if (strcmp(verb, "FENCE") == 0 && a1 != NULL) {
		/* FENCE <ms>: until the freeze's end (it lapses if the move
		 * never switches); FENCE 0: for good, after the switch */
		unsigned long long lease = strtoull(a1, NULL, 10);
		/* at least until every node's user cache has seen a switch that
		 * may follow, so no stale "homed here" can write past it */
		if (lease > 0 && lease < TERN_MOVE_FENCE_MIN_MS)
			lease = TERN_MOVE_FENCE_MIN_MS;
		int64_t until = lease > 0 ? dir_wall_ms() + (int64_t)lease : 0;
		if (lease > 0)
			fence_watch(ms, until);
		start_job(ms, JOB_FENCE, (uint64_t)until, 0, false);
		return;
	} else if (strcmp(verb, "UNFENCE") == 0) {
		start_job(ms, JOB_UNFENCE, 0, 0, false);
		return;
	} else if (strcmp(verb, "RELEASE") == 0 && a1 != NULL) {
		bool moved = strcmp(a1, "moved") == 0 && a2 != NULL && a3 != NULL;
		if (moved) {
			/* known here before any cache: deliveries that still come
			 * go on to the new home, sessions here end */
			moved_set(ms->user, a2, a3);
			user_cache_distrust();
		}
		int r = freeze_release(ms->user, moved ? a2 : NULL, moved ? a3 : NULL, &why);
		if (moved)
			notify_user_changed(ms->user);
		if (r < 0)
			reply(ms, "-ERR %s", why != NULL ? why : "cannot release");
		else
			reply(ms, "+OK");
		log_info("move: user=%s: released%s%s", ms->user, moved ? ", moved to " : "",
			 moved ? a2 : "");
	} else if (strcmp(verb, "REMOVE") == 0) {
		lookup_user(ms->conn->loop, ms->user, 0, remove_checked, ms, &ms->lookup);
		return;
	} else if (strcmp(verb, "QUIT") == 0) {
		reply(ms, "+OK");
		conn_close(ms->conn);
		return;
	} else {
		reply(ms, "-ERR unknown command");
	}
	ms->busy = false;
}

static void move_source_input(struct conn *c)
{
	struct move_source *ms = c->state;
	struct evbuffer *in = conn_input(c);
	while (!c->closing && !ms->busy) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > MOVE_LINE_MAX) {
				log_warn("move: user=%s front=%s: line too long, closing", ms->user,
					 ms->front);
				conn_close(c);
			}
			return;
		}
		command(ms, line);
		free(line);
		if (ms->busy)
			conn_pause(c);
	}
}

static int move_source_open(struct conn *c)
{
	(void)c;
	return -1;   /* only adopted from a cluster connection */
}

static void move_source_shutdown(struct conn *c)
{
	struct move_source *ms = c->state;
	if (!ms->busy)
		conn_close(c);
}

static void move_source_timeout(struct conn *c)
{
	conn_close(c);
}

static void move_source_free(struct conn *c)
{
	struct move_source *ms = c->state;
	if (ms == NULL)
		return;
	lookup_cancel(&ms->lookup);
	if (ms->settle != NULL)
		event_free(ms->settle);
	close_copy(ms, ms->send_fd);   /* closed between two chunks */
	/* a running job holds its own reference and finds the session gone */
	free(ms);
	c->state = NULL;
}

const struct conn_proto move_source_proto = {
	.name = "move",
	.conn_class = CONN_CLASS_CLUSTER,
	.login_timeout_reply = NULL,
	.open = move_source_open,
	.input = move_source_input,
	.shutdown = move_source_shutdown,
	.timeout = move_source_timeout,
	.free = move_source_free,
	.busy_reply = "",
	.no_memory_reply = "",
};

int move_source_adopt(struct conn *c, const struct cluster_open_request *req)
{
	struct move_source *ms = calloc(1, sizeof(*ms));
	if (ms == NULL)
		return -1;
	ms->conn = c;
	ms->send_fd = -1;
	snprintf(ms->user, sizeof(ms->user), "%s", req->user);
	snprintf(ms->front, sizeof(ms->front), "%s", req->front);
	conn_switch_proto(c, &move_source_proto, ms, TERN_MOVE_IDLE_MS);
	log_info("move: user=%s: channel opened by node %s", ms->user, ms->front);
	return 0;
}
