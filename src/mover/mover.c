#include "mover/mover.h"
#include "mover/orphans.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster-tls.h"
#include "cluster/frame.h"
#include "cluster/handshake.h"
#include "core/config.h"
#include "core/delivery-id.h"
#include "core/fault.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "directory/directory.h"
#include "server/moved.h"
#include "server/user-cache.h"
#include "store/store-move.h"
#include "store/store.h"

/* ---- a blocking channel to the source, every wait bounded ---- */

struct chan {
	int fd;
	SSL *ssl;
	uint8_t buf[64 * 1024];
	size_t off, len;
};

static void chan_close(struct chan *ch)
{
	if (ch->ssl != NULL) {
		SSL_shutdown(ch->ssl);
		SSL_free(ch->ssl);
		ch->ssl = NULL;
	}
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
}

static int chan_write(struct chan *ch, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = ch->ssl != NULL ? SSL_write(ch->ssl, b, (int)n)
					    : send(ch->fd, b, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t chan_fill(struct chan *ch)
{
	if (ch->off > 0) {
		memmove(ch->buf, ch->buf + ch->off, ch->len - ch->off);
		ch->len -= ch->off;
		ch->off = 0;
	}
	if (ch->len == sizeof(ch->buf))
		return -1;
	ssize_t r = ch->ssl != NULL ? SSL_read(ch->ssl, ch->buf + ch->len,
					       (int)(sizeof(ch->buf) - ch->len))
				    : recv(ch->fd, ch->buf + ch->len, sizeof(ch->buf) - ch->len, 0);
	if (r <= 0)
		return -1;   /* closed, error, or the socket timeout passed */
	ch->len += (size_t)r;
	return r;
}

static int chan_line(struct chan *ch, char *line, size_t cap)
{
	for (;;) {
		uint8_t *nl = memchr(ch->buf + ch->off, '\n', ch->len - ch->off);
		if (nl != NULL) {
			size_t n = (size_t)(nl - (ch->buf + ch->off));
			if (n > 0 && ch->buf[ch->off + n - 1] == '\r')
				n--;
			if (n >= cap)
				return -1;
			memcpy(line, ch->buf + ch->off, n);
			line[n] = '\0';
			ch->off += (size_t)(nl - (ch->buf + ch->off)) + 1;
			return 0;
		}
		if (chan_fill(ch) < 0)
			return -1;
	}
}

static int chan_frame(struct chan *ch, struct cluster_frame *f, uint8_t *copy)
{
	for (;;) {
		size_t used;
		enum cluster_parse r = cluster_frame_parse(ch->buf + ch->off, ch->len - ch->off, f, &used);
		if (r == CLUSTER_PARSE_INVALID)
			return -1;
		if (r == CLUSTER_PARSE_OK) {
			memcpy(copy, ch->buf + ch->off, used);
			ch->off += used;
			size_t again;
			return cluster_frame_parse(copy, used, f, &again) == CLUSTER_PARSE_OK ? 0 : -1;
		}
		if (chan_fill(ch) < 0)
			return -1;
	}
}

static int chan_send_frame(struct chan *ch, enum cluster_frame_type type,
			   const struct cluster_field *fields, size_t count)
{
	uint8_t buf[CLUSTER_FRAME_MAX];
	size_t n = cluster_frame_encode(buf, sizeof(buf), type, fields, count);
	return n > 0 ? chan_write(ch, buf, n) : -1;
}

/* Copies size bytes of the channel to fd, at most bandwidth bytes a
 * second on average (0 = as fast as it comes): a move must not starve the
 * node's users of the link or the disk. */
static int chan_to_file(struct chan *ch, int fd, uint64_t size, uint64_t bandwidth)
{
	uint64_t start = tern_now_ms(), done = 0;
	while (size > 0) {
		if (bandwidth > 0) {
			uint64_t due_ms = done * 1000 / bandwidth, spent = tern_now_ms() - start;
			if (due_ms > spent) {
				uint64_t wait = due_ms - spent;
				struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000};
				nanosleep(&ts, NULL);   /* the mover's own thread: pacing */
			}
		}
		if (ch->off == ch->len && chan_fill(ch) < 0)
			return -1;
		size_t n = ch->len - ch->off;
		if (n > size)
			n = (size_t)size;
		if (write(fd, ch->buf + ch->off, n) != (ssize_t)n)
			return -1;
		ch->off += n;
		size -= n;
		done += n;
	}
	return 0;
}

/* Connects to node at addr, proves the secret both ways and opens a move
 * channel for user. 0, or -1 with why. */
static int chan_open(struct chan *ch, const struct tern_config *cfg, const char *node,
		     const char *addr, const char *user, char *why, size_t why_size)
{
	char host[256];
	uint16_t port;
	ch->fd = -1;
	ch->ssl = NULL;
	ch->off = ch->len = 0;
	if (config_parse_listen(addr, host, sizeof(host), &port) < 0) {
		snprintf(why, why_size, "bad cluster address %s", addr);
		return -1;
	}
	char service[8];
	snprintf(service, sizeof(service), "%u", (unsigned)port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	if (getaddrinfo(host, service, &hints, &res) != 0 || res == NULL) {
		snprintf(why, why_size, "bad cluster address %s", addr);
		return -1;
	}
	ch->fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc = ch->fd < 0 ? -1 : connect(ch->fd, res->ai_addr, res->ai_addrlen);
	if (rc < 0 && errno == EINPROGRESS) {
		struct pollfd pfd = {.fd = ch->fd, .events = POLLOUT};
		int err = 0;
		socklen_t len = sizeof(err);
		rc = poll(&pfd, 1, (int)cfg->cluster_timeout_ms) == 1 &&
		     getsockopt(ch->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 ? 0 : -1;
	}
	freeaddrinfo(res);
	if (rc < 0) {
		snprintf(why, why_size, "cannot connect to %s at %s", node, addr);
		chan_close(ch);
		return -1;
	}
	/* blocking from here, each read and write bounded */
	(void)fcntl(ch->fd, F_SETFL, fcntl(ch->fd, F_GETFL) & ~O_NONBLOCK);
	struct timeval tv = {.tv_sec = TERN_MOVE_IO_TIMEOUT_MS / 1000,
			     .tv_usec = (TERN_MOVE_IO_TIMEOUT_MS % 1000) * 1000};
	(void)setsockopt(ch->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(ch->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (cluster_tls_enabled()) {
		ch->ssl = cluster_tls_client_ssl();
		if (ch->ssl == NULL || SSL_set_fd(ch->ssl, ch->fd) != 1 || SSL_connect(ch->ssl) != 1) {
			snprintf(why, why_size, "TLS with %s at %s failed", node, addr);
			chan_close(ch);
			return -1;
		}
	}
	uint8_t nonce[CLUSTER_NONCE_LEN], mac[CLUSTER_MAC_LEN];
	uint8_t copy[CLUSTER_FRAME_MAX];
	struct cluster_frame f;
	struct cluster_field hello[3] = {cluster_str_field(CLUSTER_PROTOCOL), cluster_str_field(cfg->node_name),
					 {nonce, CLUSTER_NONCE_LEN}};
	enum cluster_answer answer = CLUSTER_ANSWER_WRONG_NODE;
	if (cluster_nonce(nonce) < 0 || chan_send_frame(ch, CLUSTER_HELLO, hello, 3) < 0 ||
	    chan_frame(ch, &f, copy) < 0 ||
	    (answer = cluster_dialler_answer(cfg->cluster_secret, cfg->node_name, node, nonce, &f,
					     mac)) != CLUSTER_ANSWER_OK) {
		snprintf(why, why_size, answer == CLUSTER_ANSWER_BAD_PROOF
			 ? "%s at %s failed authentication" : "no handshake with %s at %s",
			 node, addr);
		chan_close(ch);
		return -1;
	}
	struct cluster_field auth = {mac, CLUSTER_MAC_LEN};
	struct cluster_field req[4] = {cluster_str_field("move"), cluster_str_field(user), cluster_str_field(""), cluster_str_field("")};
	if (chan_send_frame(ch, CLUSTER_AUTH, &auth, 1) < 0 || chan_frame(ch, &f, copy) < 0 ||
	    f.type != CLUSTER_READY || chan_send_frame(ch, CLUSTER_OPEN, req, 4) < 0 ||
	    chan_frame(ch, &f, copy) < 0 || f.type != CLUSTER_OPENED ||
	    !cluster_field_is(&f.fields[0], "ok")) {
		char text[128] = "";
		if (f.type == CLUSTER_OPENED)
			(void)cluster_field_str(&f.fields[1], text, sizeof(text));
		snprintf(why, why_size, "%s refused the move channel%s%s", node,
			 text[0] != '\0' ? ": " : "", text);
		chan_close(ch);
		return -1;
	}
	return 0;
}

/* Sends a command line and reads its reply line; -1 on a lost channel or
 * an -ERR (why says which). */
static int chan_command(struct chan *ch, char *reply, size_t cap, char *why, size_t why_size,
			const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int chan_command(struct chan *ch, char *reply, size_t cap, char *why, size_t why_size,
			const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return -1;
	memcpy(line + n, "\r\n", 2);
	if (chan_write(ch, line, (size_t)n + 2) < 0 || chan_line(ch, reply, cap) < 0) {
		snprintf(why, why_size, "the source stopped answering (%.*s)", n, line);
		return -1;
	}
	if (reply[0] != '+') {
		snprintf(why, why_size, "the source refused %.*s: %s", n, line, reply);
		return -1;
	}
	return 0;
}

/* ---- one move ---- */

struct run {
	const struct tern_config *cfg;
	struct directory *dir;
	struct dir_move m;
	struct chan ch;
	char source_addr[128];
	uint32_t source_number;  /* its delivery ids' node (core/delivery-id.h) */
	char why[512];
	bool frozen, fenced, switched;
	uint64_t modseq, rounds, bytes;
	/* the local copy, open from its install to the end of the run: rounds
	 * apply to a warm handle, and none closes (checkpoints) in the freeze */
	struct store *st;
	uint64_t verified;   /* the modseq at which both copies' sums agreed */
	pthread_t thread;
	struct run *next;
};

static struct {
	struct tern_mutex mu;
	pthread_cond_t cond;
	bool started, stop;
	pthread_t thread;
	const struct tern_config *cfg;
	struct server *srv;
	struct run *runs;        /* under mu */
	unsigned running;        /* under mu */
} mover;

static bool stopping(void)
{
	TERN_LOCK_GUARD(&mover.mu);
	return mover.stop;
}

/* A suspended move's pause between rounds; a stop ends it at once. */
static void mover_wait(uint64_t ms)
{
	TERN_LOCK_GUARD(&mover.mu);
	if (!mover.stop)
		tern_cond_wait(&mover.cond, &mover.mu, tern_now_ms() + ms);
}

static void note(struct run *r, const char *wait_reason)
{
	enum tern_error e;
	(void)r->dir->ops->move_progress(r->dir, r->m.id, r->m.messages_done, r->m.messages_total,
					 r->bytes, r->m.bytes_total, r->rounds, r->modseq,
					 wait_reason, dir_wall_ms(), &e);
}

static bool renew(struct run *r)
{
	enum tern_error e;
	return r->dir->ops->move_lease(r->dir, r->m.id, r->cfg->node_name, dir_wall_ms(),
				       TERN_MOVE_LEASE_MS, &e) == 1;
}

static bool set_phase(struct run *r, enum dir_move_phase from, enum dir_move_phase to)
{
	enum tern_error e;
	if (r->dir->ops->move_set_phase(r->dir, r->m.id, from, to, dir_wall_ms(), &e) < 0)
		return false;
	r->m.phase = to;
	log_info("move %" PRId64 ": user=%s %s -> %s", r->m.id, r->m.user,
		 dir_move_phase_name(from), dir_move_phase_name(to));
	return true;
}

static bool cancel_requested(struct run *r)
{
	struct dir_move now = {0};
	enum tern_error e;
	bool cancel = false, suspend = r->m.suspend_when_ready;
	if (r->dir->ops->move_get(r->dir, r->m.id, &now, &e) == 1) {
		cancel = now.cancel_requested;
		suspend = now.suspend_when_ready;
	}
	dir_move_clear(&now);
	r->m.suspend_when_ready = suspend;
	return cancel;
}

/* Where the whole copy arrives before store_move_install renames it. */
static int store_file(const struct tern_config *cfg, const char *user, char *path, size_t cap)
{
	int n = snprintf(path, cap, "%s/mail/.move-in-%s.db", cfg->data_dir, user);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* 64 hex digits (checked by the caller) into 32 bytes. */
static void parse_digest(const char *hex, uint8_t digest[32])
{
	for (int i = 0; i < 32; i++) {
		unsigned int b = 0;
		(void)sscanf(hex + 2 * i, "%2x", &b);
		digest[i] = (uint8_t)b;
	}
}

/* Receives one +FILE into path (replacing it); sum_r: the source's sum
 * that follows the counts (DELTA ... SUM). */
static int receive_file(struct run *r, const char *reply, const char *path, uint64_t *modseq_r,
			uint64_t *changes_r, struct store_move_sum *sum_r)
{
	unsigned long long size = 0, modseq = 0, changes = 0, folders = 0, messages = 0;
	char hex[65] = "";
	int fields = sscanf(reply, "+FILE %llu %llu %llu %llu %llu %64s", &size, &modseq, &changes,
			    &folders, &messages, hex);
	if (fields < 2 || (sum_r != NULL && (fields != 6 || strlen(hex) != 64))) {
		snprintf(r->why, sizeof(r->why), "unexpected reply from the source: %s", reply);
		return -1;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/mail", r->cfg->data_dir);
	(void)mkdir(dir, 0700);   /* a node that never had a user has none yet */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(r->why, sizeof(r->why), "%s: %s", path, strerror(errno));
		return -1;
	}
	int rc = chan_to_file(&r->ch, fd, size, r->cfg->move_bandwidth);
	/* the copy becomes the store; a delta is applied by a transaction of
	 * its own (fsynced) and then removed, so it needs no fsync */
	if (rc == 0 && changes_r == NULL && fsync(fd) < 0)
		rc = -1;
	close(fd);
	if (rc < 0) {
		snprintf(r->why, sizeof(r->why), "the copy from the source was cut short");
		return -1;
	}
	r->bytes += size;
	*modseq_r = modseq;
	if (changes_r != NULL)
		*changes_r = changes;
	if (sum_r != NULL) {
		sum_r->folders = folders;
		sum_r->messages = messages;
		parse_digest(hex, sum_r->digest);
	}
	return 0;
}

static void remove_local_copy(struct run *r)
{
	enum tern_error e;
	store_close(&r->st);
	(void)store_remove(r->cfg->data_dir, r->m.user, &e);
}

/* Whether the local copy's sum (since 0: whole) equals the source's; on a
 * difference r->why says which. */
static bool same_sum(struct run *r, const struct store_move_sum *src,
		     const struct store_move_sum *here, const char *when)
{
	if (src->folders == here->folders && src->messages == here->messages &&
	    memcmp(src->digest, here->digest, sizeof(src->digest)) == 0)
		return true;
	snprintf(r->why, sizeof(r->why),
		 "verification failed %s: source %" PRIu64 " folders %" PRIu64 " messages, here %"
		 PRIu64 " folders %" PRIu64 " messages%s", when, src->folders, src->messages,
		 here->folders, here->messages,
		 src->folders == here->folders && src->messages == here->messages
			 ? " (checksums differ)" : "");
	return false;
}

/* One round of changes since r->modseq, applied to the local copy.
 * *changes_r = how many; *ms_r = how long applying took. With summed, the
 * source also sends the sum of its whole store as of this round, and the
 * copy must match it (outside the freeze: the freeze then only compares
 * what changed after r->verified). */
static int sync_round(struct run *r, bool summed, uint64_t *changes_r, uint64_t *ms_r)
{
	char reply[256], delta[PATH_MAX];
	enum tern_error e = TERN_ERR_NONE;
	uint64_t delivered = 0, modseq = 0;
	struct store_move_sum theirs = {0}, ours = {0};
	snprintf(delta, sizeof(delta), "%s/mail/.move-in-%s.delta", r->cfg->data_dir, r->m.user);
	if ((r->st == NULL && store_open(r->cfg->data_dir, r->m.user, false, &r->st, &e) < 0) ||
	    store_move_max_delivered(r->st, r->source_number, &delivered, &e) < 0) {
		snprintf(r->why, sizeof(r->why), "local copy: %s", tern_error_str(e));
		return -1;
	}
	if (chan_command(&r->ch, reply, sizeof(reply), r->why, sizeof(r->why),
			 "DELTA %" PRIu64 " %" PRIu64 "%s", r->modseq,
			 delivery_id_make(r->source_number,
					  delivery_id_seq(delivered) > TERN_MOVE_DELIVERED_MARGIN
						  ? delivery_id_seq(delivered) -
							    TERN_MOVE_DELIVERED_MARGIN
						  : 0), summed ? " SUM" : "") < 0 ||
	    receive_file(r, reply, delta, &modseq, changes_r, summed ? &theirs : NULL) < 0) {
		unlink(delta);
		return -1;
	}
	uint64_t t0 = tern_now_ms();
	int rc = store_move_apply(r->st, delta, &modseq, &e);
	*ms_r = tern_now_ms() - t0;
	unlink(delta);
	if (rc < 0) {
		snprintf(r->why, sizeof(r->why), "applying changes: %s", tern_error_str(e));
		return -1;
	}
	r->modseq = modseq;
	r->rounds++;
	if (!summed)
		return 0;
	if (store_move_checksum(r->st, 0, &ours, &e) < 0) {
		snprintf(r->why, sizeof(r->why), "local checksum: %s", tern_error_str(e));
		return -1;
	}
	if (!same_sum(r, &theirs, &ours, "before the freeze"))
		return -1;
	r->verified = modseq;
	return 0;
}

/* What changed after r->verified must agree on both copies. The source
 * computes its sum while this node computes its own (side by side: this is
 * inside the freeze). */
static int verify(struct run *r)
{
	char reply[256], hex[65];
	struct store_move_sum theirs = {0}, ours = {0};
	char cmd[64];
	int n = snprintf(cmd, sizeof(cmd), "CHECKSUM %" PRIu64 "\r\n", r->verified);
	if (chan_write(&r->ch, cmd, (size_t)n) < 0) {
		snprintf(r->why, sizeof(r->why), "the source stopped answering (CHECKSUM)");
		return -1;
	}
	enum tern_error e;
	int rc = store_move_checksum(r->st, r->verified, &ours, &e);
	if (chan_line(&r->ch, reply, sizeof(reply)) < 0) {
		snprintf(r->why, sizeof(r->why), "the source stopped answering (CHECKSUM)");
		return -1;
	}
	if (rc < 0) {
		snprintf(r->why, sizeof(r->why), "local checksum: %s", tern_error_str(e));
		return -1;
	}
	unsigned long long folders = 0, messages = 0;
	if (sscanf(reply, "+CHECKSUM %llu %llu %64s", &folders, &messages, hex) != 3 ||
	    strlen(hex) != 64) {
		snprintf(r->why, sizeof(r->why), "the source refused CHECKSUM: %s", reply);
		return -1;
	}
	theirs.folders = folders;
	theirs.messages = messages;
	parse_digest(hex, theirs.digest);
	if (!same_sum(r, &theirs, &ours, "in the freeze"))
		return -1;
	r->m.messages_total = r->m.messages_done = ours.messages;
	return 0;
}

/* Rolls a move back that did not switch: the source keeps the user. */
static void roll_back(struct run *r, bool cancelled)
{
	char reply[128], ignored[128];
	if (r->fenced)
		(void)chan_command(&r->ch, reply, sizeof(reply), ignored, sizeof(ignored), "UNFENCE");
	r->fenced = false;
	if (r->frozen)
		(void)chan_command(&r->ch, reply, sizeof(reply), ignored, sizeof(ignored),
				   "RELEASE stay");
	r->frozen = false;
	remove_local_copy(r);
	enum tern_error e;
	if (cancelled) {
		if (!set_phase(r, r->m.phase, DIR_MOVE_CANCELLED))
			(void)r->dir->ops->move_fail(r->dir, r->m.id, "cancelled", dir_wall_ms(), &e);
	} else {
		(void)r->dir->ops->move_fail(r->dir, r->m.id, r->why, dir_wall_ms(), &e);
	}
	log_warn("move %" PRId64 ": user=%s %s: %s", r->m.id, r->m.user,
		 cancelled ? "cancelled" : "failed", cancelled ? "on request" : r->why);
}

static void run_move(struct run *r)
{
	const struct tern_config *cfg = r->cfg;
	char path[PATH_MAX], reply[256];
	enum tern_error e;
	struct dir_node src = {0};
	struct dir_user u = {0};

	if (r->dir->ops->node_get(r->dir, r->m.source, &src, &e) != 1 || src.cluster_addr == NULL ||
	    src.cluster_addr[0] == '\0') {
		snprintf(r->why, sizeof(r->why), "source node %s has no cluster address", r->m.source);
		dir_node_clear(&src);
		roll_back(r, false);
		return;
	}
	snprintf(r->source_addr, sizeof(r->source_addr), "%s", src.cluster_addr);
	r->source_number = src.number;
	dir_node_clear(&src);
	if (store_file(cfg, r->m.user, path, sizeof(path)) < 0 ||
	    chan_open(&r->ch, cfg, r->m.source, r->source_addr, r->m.user, r->why,
		      sizeof(r->why)) < 0) {
		roll_back(r, false);
		return;
	}
	/* 1. copying: a whole copy while the user stays online on the source */
	if (r->m.phase == DIR_MOVE_QUEUED && !set_phase(r, DIR_MOVE_QUEUED, DIR_MOVE_COPYING)) {
		chan_close(&r->ch);
		return;
	}
	if (r->m.phase != DIR_MOVE_COPYING) {
		/* taken over mid-way: start the copy again, from the top */
		if (!set_phase(r, r->m.phase, DIR_MOVE_COPYING)) {
			chan_close(&r->ch);
			return;
		}
	}
	remove_local_copy(r);
	note(r, "copying the mailbox");
	fault_stall_once("MOVE_PAUSE_COPYING");      /* tests: the crash matrix */
	unlink(path);
	if (chan_command(&r->ch, reply, sizeof(reply), r->why, sizeof(r->why), "SNAPSHOT") < 0 ||
	    receive_file(r, reply, path, &r->modseq, NULL, NULL) < 0 ||
	    store_move_install(cfg->data_dir, r->m.user, path, &e) < 0) {
		if (r->why[0] == '\0')
			snprintf(r->why, sizeof(r->why), "installing the copy: %s", tern_error_str(e));
		unlink(path);
		roll_back(r, false);
		chan_close(&r->ch);
		return;
	}
	note(r, NULL);
	if (!renew(r) || !set_phase(r, DIR_MOVE_COPYING, DIR_MOVE_SYNCING)) {
		roll_back(r, false);
		chan_close(&r->ch);
		return;
	}
	/* 2. syncing: rounds until one is small enough for the freeze */
	fault_stall_once("MOVE_PAUSE_SYNCING");
	uint64_t changes = 0, apply_ms = 0;
	/* the round after a small one carries the source's whole sum: both
	 * copies are compared in full there, outside the freeze */
	bool summed = false;
	for (unsigned round = 0;; round++) {
		if (stopping()) {
			/* the node stops: the move waits for it (or another runner) */
			chan_close(&r->ch);
			return;
		}
		if (cancel_requested(r) || !renew(r)) {
			roll_back(r, true);
			chan_close(&r->ch);
			return;
		}
		if (sync_round(r, summed, &changes, &apply_ms) < 0) {
			roll_back(r, false);
			chan_close(&r->ch);
			return;
		}
		note(r, NULL);
		bool small = changes <= TERN_MOVE_FINAL_CHANGES ||
			     apply_ms * 2 < cfg->move_freeze_target_ms;
		if (summed && (small || round >= TERN_MOVE_MAX_ROUNDS) &&
		    !(small && r->m.suspend_when_ready))
			break;
		summed = false;
		if (small && r->m.suspend_when_ready) {
			if (r->m.phase == DIR_MOVE_SYNCING)
				(void)set_phase(r, DIR_MOVE_SYNCING, DIR_MOVE_READY);
			char wait[96];
			snprintf(wait, sizeof(wait), "ready: %" PRIu64 " changes behind; waiting for "
				 "'ternctl move complete'", changes);
			note(r, wait);
			mover_wait(TERN_MOVER_READY_POLL_MS);
			continue;
		}
		summed = small || round >= TERN_MOVE_MAX_ROUNDS;
	}
	/* what came in while both sides summed the whole store, so that the
	 * round inside the freeze is only the last few milliseconds' */
	if (sync_round(r, false, &changes, &apply_ms) < 0) {
		roll_back(r, false);
		chan_close(&r->ch);
		return;
	}
	/* 3. finalizing: freeze, last changes, switch */
	if (!set_phase(r, r->m.phase, DIR_MOVE_FINALIZING)) {
		roll_back(r, false);
		chan_close(&r->ch);
		return;
	}
	note(r, "source frozen: copying the last changes");
	/* the user is unavailable from the moment the source has this */
	uint64_t freeze_sent = tern_now_ms();
	if (chan_command(&r->ch, reply, sizeof(reply), r->why, sizeof(r->why), "FREEZE %u",
			 cfg->move_freeze_timeout_ms) < 0) {
		roll_back(r, false);
		chan_close(&r->ch);
		return;
	}
	r->frozen = true;
	uint64_t frozen_at = tern_now_ms();
	char ignored[256];
	/* existing sessions on the source may still write: fence it, so the
	 * last round is the last change, then compare both copies. The fence
	 * lapses by itself (the source clamps it to TERN_MOVE_FENCE_MIN_MS at
	 * least); the source looks at the directory TERN_MOVE_FENCE_CHECK_
	 * MARGIN_MS before it lapses and fences for good if the switch is
	 * there, so the switch must be made a margin before that look. */
	uint32_t fence_ms = cfg->move_freeze_timeout_ms > TERN_MOVE_FENCE_MIN_MS
				    ? cfg->move_freeze_timeout_ms : TERN_MOVE_FENCE_MIN_MS;
	uint64_t switch_by = tern_now_ms() + fence_ms - 2 * TERN_MOVE_FENCE_CHECK_MARGIN_MS;
	if (switch_by > frozen_at + cfg->move_freeze_timeout_ms)
		switch_by = frozen_at + cfg->move_freeze_timeout_ms;
	if (chan_command(&r->ch, reply, sizeof(reply), r->why, sizeof(r->why), "FENCE %u",
			 fence_ms) < 0) {
		roll_back(r, false);
		chan_close(&r->ch);
		return;
	}
	r->fenced = true;
	fault_stall_once("MOVE_PAUSE_FENCED");       /* frozen and fenced, not switched */
	uint64_t fenced_at = tern_now_ms(), synced_at = 0, verified_at = 0;
	if (sync_round(r, false, &changes, &apply_ms) < 0 || (synced_at = tern_now_ms()) == 0 ||
	    verify(r) < 0 || (verified_at = tern_now_ms()) == 0 ||
	    directory_user_get(r->dir, r->m.user, &u, &e) != 1 || strcmp(u.home, r->m.source) != 0 ||
	    tern_now_ms() >= switch_by) {
		if (r->why[0] == '\0')
			snprintf(r->why, sizeof(r->why), "the last round did not fit the freeze");
		dir_user_clear(&u);
		roll_back(r, false);
		chan_close(&r->ch);
		return;
	}
	/* switch_by holds inside the directory's transaction too: a busy
	 * directory must not make the switch land after the fence's look */
	int64_t now_wall = dir_wall_ms();
	uint64_t now_mono = tern_now_ms();
	int64_t deadline = now_wall + (int64_t)(switch_by > now_mono ? switch_by - now_mono : 0);
	if (r->dir->ops->move_switch_home(r->dir, r->m.id, r->m.user, r->m.source, u.epoch,
					  cfg->node_name, now_wall, deadline, &e) < 0) {
		snprintf(r->why, sizeof(r->why), "the directory switch failed: %s",
			 e == TERN_ERR_TEMP ? "the directory could not be written before the "
					      "source's freeze and fence ran out"
					    : tern_error_str(e));
		dir_user_clear(&u);
		roll_back(r, false);
		chan_close(&r->ch);
		return;
	}
	dir_user_clear(&u);
	r->switched = true;
	uint64_t switched_at = tern_now_ms();
	fault_stall_once("MOVE_PAUSE_SWITCHED");     /* switched, the source not told */
	/* this node is the home now: whatever it knew otherwise is out of date */
	moved_clear(r->m.user);
	user_cache_distrust();
	r->fenced = false;   /* for good now */
	/* what the source parked goes to the new home */
	(void)chan_command(&r->ch, reply, sizeof(reply), ignored, sizeof(ignored),
			   "RELEASE moved %s %s", cfg->node_name, config_cluster_address(cfg));
	r->frozen = false;
	uint64_t released_at = tern_now_ms();
	log_info("move %" PRId64 ": user=%s now homed here (unavailable %" PRIu64 " ms: freeze %"
		 PRIu64 ", fence %" PRIu64 ", last round %" PRIu64 " (%" PRIu64 " changes, applied in %" PRIu64
		 "), checksums %" PRIu64 ", switch %" PRIu64 ", release %" PRIu64 "; %" PRIu64
		 " rounds, %" PRIu64 " bytes)", r->m.id, r->m.user, released_at - freeze_sent,
		 frozen_at - freeze_sent, fenced_at - frozen_at, synced_at - fenced_at, changes, apply_ms,
		 verified_at - synced_at, switched_at - verified_at, released_at - switched_at,
		 r->rounds, r->bytes);
	/* 4. completed: the copies were compared before the switch */
	if (chan_command(&r->ch, reply, sizeof(reply), ignored, sizeof(ignored), "REMOVE") < 0)
		log_warn("move %" PRId64 ": user=%s: removing the source's copy failed: %s", r->m.id,
			 r->m.user, ignored);
	(void)chan_command(&r->ch, reply, sizeof(reply), ignored, sizeof(ignored), "QUIT");
	chan_close(&r->ch);
}

static void *run_thread(void *arg)
{
	struct run *r = arg;
	char *err = NULL;
	if (directory_open(r->cfg->directory, &r->dir, &err) == 0) {
		run_move(r);
		store_close(&r->st);
		enum tern_error e;
		(void)r->dir->ops->move_lease_release(r->dir, r->m.id, r->cfg->node_name, &e);
		directory_close(&r->dir);
	} else {
		log_error("move %" PRId64 ": directory: %s", r->m.id, err != NULL ? err : "?");
		free(err);
	}
	TERN_LOCK_GUARD(&mover.mu);
	mover.running--;
	pthread_cond_broadcast(&mover.cond);
	return NULL;
}

static bool is_running(int64_t id)
{
	for (struct run *r = mover.runs; r != NULL; r = r->next)
		if (r->m.id == id)
			return true;
	return false;
}

/* The watchdog's eye on moves: a move bound here that has stayed in one
 * phase longer than watchdog_threshold (and at least a minute: a big copy
 * takes that) is reported, with why it waits, once per phase. */
static void report_if_stuck(const struct dir_move *m)
{
	static _Thread_local int64_t reported_id = -1;
	static _Thread_local int reported_phase = -1;
	int64_t age = dir_wall_ms() - m->phase_since_ms;
	int64_t threshold = mover.cfg->watchdog_threshold_ms > TERN_MOVE_STUCK_MIN_MS
				    ? mover.cfg->watchdog_threshold_ms : TERN_MOVE_STUCK_MIN_MS;
	if (m->phase_since_ms == 0 || age < threshold || m->suspend_when_ready ||
	    (reported_id == m->id && reported_phase == (int)m->phase))
		return;
	reported_id = m->id;
	reported_phase = (int)m->phase;
	log_warn("watchdog: move %" PRId64 " of %s has been %s for %lld s%s%s%s%s", m->id, m->user,
		 dir_move_phase_name(m->phase), (long long)(age / 1000),
		 m->wait_reason[0] != '\0' ? ": " : "", m->wait_reason,
		 m->last_error[0] != '\0' ? "; last error: " : "", m->last_error);
}

/* Starts the moves bound here that nobody runs (or whose runner's lease
 * expired: a node that died mid-move). */
static void scan(struct directory *dir)
{
	struct dir_move *moves = NULL;
	size_t count = 0;
	enum tern_error e;
	if (dir->ops->move_list(dir, false, &moves, &count, &e) < 0)
		return;
	for (size_t i = 0; i < count; i++) {
		struct dir_move *m = &moves[i];
		if (strcmp(m->destination, mover.cfg->node_name) != 0)
			continue;
		report_if_stuck(m);
		{
			TERN_LOCK_GUARD(&mover.mu);
			if (mover.stop || is_running(m->id) || mover.running >= TERN_MOVER_PARALLEL)
				continue;
		}
		if (dir->ops->move_lease(dir, m->id, mover.cfg->node_name, dir_wall_ms(),
					 TERN_MOVE_LEASE_MS, &e) != 1)
			continue;
		struct run *r = calloc(1, sizeof(*r));
		if (r == NULL)
			continue;
		r->cfg = mover.cfg;
		r->m = *m;
		memset(m, 0, sizeof(*m));   /* the strings now belong to r */
		r->ch.fd = -1;
		TERN_LOCK_GUARD(&mover.mu);
		if (pthread_create(&r->thread, NULL, run_thread, r) != 0) {
			dir_move_clear(&r->m);
			free(r);
			continue;
		}
		r->next = mover.runs;
		mover.runs = r;
		mover.running++;
		log_info("move %" PRId64 ": user=%s from %s: taken by this node", r->m.id, r->m.user,
			 r->m.source);
	}
	dir_moves_free(&moves, count);
}

/* Joins the runs that have ended. */
static void reap(bool all)
{
	for (;;) {
		struct run *done = NULL;
		{
			TERN_LOCK_GUARD(&mover.mu);
			for (struct run **pp = &mover.runs; *pp != NULL; pp = &(*pp)->next) {
				if (all || pthread_tryjoin_np((*pp)->thread, NULL) == 0) {
					done = *pp;
					*pp = done->next;
					break;
				}
			}
		}
		if (done == NULL)
			return;
		if (all)
			pthread_join(done->thread, NULL);
		dir_move_clear(&done->m);
		free(done);
	}
}

static void *mover_main(void *arg)
{
	(void)arg;
	struct directory *dir = NULL;
	int64_t gc_next = 0;
	for (;;) {
		{
			TERN_LOCK_GUARD(&mover.mu);
			if (!mover.stop)
				tern_cond_wait(&mover.cond, &mover.mu,
					       tern_now_ms() + TERN_MOVER_SCAN_MS);
			if (mover.stop)
				break;
		}
		reap(false);
		char *err = NULL;
		if (dir == NULL && directory_open(mover.cfg->directory, &dir, &err) < 0) {
			free(err);
			dir = NULL;
			continue;
		}
		scan(dir);
		/* every copy moves out of here ever left at start, then those of
		 * moves finished since the previous look (with a margin) */
		int64_t now = dir_wall_ms();
		if (gc_next == 0 || now >= gc_next) {
			orphans_collect(dir, mover.cfg, mover.srv,
					gc_next == 0 ? 0 : gc_next - 2 * TERN_MOVER_ORPHANS_MS);
			gc_next = now + TERN_MOVER_ORPHANS_MS;
		}
	}
	directory_close(&dir);
	reap(true);
	return NULL;
}

int mover_start(const struct tern_config *cfg, struct server *srv)
{
	if (cfg->cluster_listen[0] == '\0')
		return 0;   /* a node outside a cluster takes no moves */
	tern_mutex_init(&mover.mu, "mover");
	tern_cond_init(&mover.cond);
	mover.cfg = cfg;
	mover.srv = srv;
	mover.stop = false;
	if (pthread_create(&mover.thread, NULL, mover_main, NULL) != 0) {
		log_error("mover: cannot start its thread");
		return -1;
	}
	mover.started = true;
	return 0;
}

void mover_stop(void)
{
	if (!mover.started)
		return;
	{
		TERN_LOCK_GUARD(&mover.mu);
		mover.stop = true;
		pthread_cond_broadcast(&mover.cond);
	}
	pthread_join(mover.thread, NULL);
	mover.started = false;
}
