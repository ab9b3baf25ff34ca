#include "session-harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/config.h"
#include "core/lock.h"
#include "core/log.h"
#include "directory/directory.h"
#include "proto/auth.h"
#include "server/adopt.h"
#include "server/conn.h"
#include "server/server.h"
#include "store/store.h"

/* Generous next to what a session needs (well under 100 ms with ASan), yet
 * far below libFuzzer's -timeout, so a hang is reported as one, with the
 * transcript. TERN_FUZZ_DEADLINE_MS overrides it on a slow machine. */
#define FZ_DEADLINE_MS_DEFAULT 3000
/* Sessions between two tidyings of the stores: a few APPENDs, COPYs and
 * deliveries, so a FETCH 1:* or a SEARCH stays fast however long the
 * fuzzer runs. */
#define FZ_TIDY_EVERY 8

static struct tern_config cfg;
static struct server srv;
static char data_dir[PATH_MAX];
static bool running;
static uint32_t deadline_ms = FZ_DEADLINE_MS_DEFAULT;
static pthread_once_t start_once = PTHREAD_ONCE_INIT;

/* ---- the server ---- */

static void set(const char *key, const char *value)
{
	char *err = NULL;
	if (config_set(&cfg, key, value, &err) < 0) {
		fprintf(stderr, "fuzz: config %s = %s: %s\n", key, value, err != NULL ? err : "?");
		abort();
	}
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	(void)remove(path);
	return 0;
}

/* A run that ends in a finding exits without atexit handlers, leaving its
 * data_dir behind: the next run removes those whose process is gone (the
 * name carries the pid). */
static void remove_stale_dirs(const char *base)
{
	DIR *d = opendir(base);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		long pid;
		char path[PATH_MAX];
		if (sscanf(e->d_name, "tern-fuzz-%ld-", &pid) != 1 || pid <= 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;   /* alive (EPERM: alive, someone else's) */
		snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
		(void)nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	closedir(d);
}

/* tmpfs first: every APPEND and delivery ends in an fdatasync of the
 * journal, which costs milliseconds on a disk and nothing in memory. But a
 * journal segment grows to 64 MiB before the next starts, and a container's
 * /dev/shm is often 64 MiB in all: a full disk would show up as findings. */
#define FZ_MIN_FREE (512ull * 1024 * 1024)

static void make_data_dir(void)
{
	const char *bases[] = {getenv("TERN_FUZZ_TMPDIR"), "/dev/shm", getenv("TMPDIR"), "/tmp"};
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		struct statvfs vfs;
		if (bases[i] == NULL || bases[i][0] == '\0')
			continue;
		if (i == 1 && (statvfs(bases[i], &vfs) < 0 ||
			       (unsigned long long)vfs.f_bavail * vfs.f_frsize < FZ_MIN_FREE))
			continue;
		remove_stale_dirs(bases[i]);
		snprintf(data_dir, sizeof(data_dir), "%s/tern-fuzz-%ld-XXXXXX", bases[i],
			 (long)getpid());
		if (mkdtemp(data_dir) != NULL)
			return;
	}
	fprintf(stderr, "fuzz: cannot create a temporary data_dir: %s\n", strerror(errno));
	abort();
}

static void add_user(struct directory *dir, const char *name, const char *password,
		     const char *home)
{
	char hash[64];
	snprintf(hash, sizeof(hash), "{PLAIN}%s", password);
	struct dir_user u = {
		.name = (char *)name, .password_hash = hash, .home = (char *)home,
		.epoch = 1, .state = (char *)"active", .quota = 0,
	};
	enum tern_error err = TERN_ERR_NONE;
	if (dir->ops->user_add(dir, &u, &err) < 0) {
		fprintf(stderr, "fuzz: cannot add user %s: %s\n", name, tern_error_str(err));
		abort();
	}
	if (strcmp(home, cfg.node_name) != 0)
		return;
	struct store *st = NULL;
	if (store_open(cfg.data_dir, name, true, &st, &err) < 0) {
		fprintf(stderr, "fuzz: cannot create the store of %s: %s\n", name,
			tern_error_str(err));
		abort();
	}
	store_close(&st);
}

static void server_stop(void)
{
	if (!running)
		return;
	running = false;
	/* With a connection still open its session may still use the server:
	 * leave the threads be (the process is ending anyway). */
	if (conn_count_total() == 0) {
		server_deinit(&srv);
		config_free(&cfg);
	}
	if (getenv("TERN_FUZZ_KEEP") == NULL)
		(void)nftw(data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The server hands itself to its services; the password workers need
 * nothing of it. */
static void harness_services_start(struct server *srv)
{
	(void)srv;
	auth_pool_start();
}

static void server_start(void)
{
	const char *d = getenv("TERN_FUZZ_DEADLINE_MS");
	if (d != NULL && atoi(d) > 0)
		deadline_ms = (uint32_t)atoi(d);
	make_data_dir();
	config_defaults(&cfg);
	set("data_dir", data_dir);
	set("node_name", "node1");
	/* no listeners: sessions come in through server_adopt_fd */
	set("lmtp_listen", "");
	set("imap_listen", "");
	set("pop3_listen", "");
	set("worker_threads", "1");
	/* a wrong password must not cost the fuzzer seconds */
	set("auth_failure_delay", "0");
	/* small enough that a store tidied every FZ_TIDY_EVERY sessions stays
	 * small, large enough for any input the fuzzer makes (-max_len) */
	set("max_message_size", "64k");
	set("max_literal_size", "64k");
	set("max_bad_commands", "20");
	set("shutdown_timeout", "1s");
	/* per-connection logging would cost more than the session; a problem
	 * worth a warning usually shows in the checks anyway */
	const char *level = getenv("TERN_FUZZ_LOG_LEVEL");
	set("log_level", level != NULL ? level : "error");
	log_init("fuzz", cfg.log_level);
	store_library_init();

	struct directory *dir = NULL;
	char *err = NULL;
	if (directory_open(cfg.directory, &dir, &err) < 0) {
		fprintf(stderr, "fuzz: directory %s: %s\n", cfg.directory, err != NULL ? err : "?");
		abort();
	}
	add_user(dir, FZ_USER1, FZ_PASS1, "node1");
	add_user(dir, FZ_USER2, FZ_PASS2, "node1");
	add_user(dir, FZ_USER3, FZ_PASS3, "node2");
	directory_close(&dir);

	/* no listeners (see above); the password workers as in ternd, which
	 * server_deinit stops */
	static const struct server_frontends fe = {
		.services_start = harness_services_start,
		.services_stop = auth_pool_stop,
	};
	if (server_init(&srv, &cfg, &fe) < 0) {
		fprintf(stderr, "fuzz: the server did not start (data_dir %s)\n", data_dir);
		abort();
	}
	running = true;
	atexit(server_stop);
}

void fz_server_start(void)
{
	pthread_once(&start_once, server_start);
}

/* ---- reports ---- */

static void print_bytes(const char *title, const uint8_t *p, size_t len, size_t max)
{
	size_t from = len > max ? len - max : 0;
	fprintf(stderr, "---- %s (%zu bytes%s) ----\n", title, len, from > 0 ? ", tail" : "");
	for (size_t i = from; i < len; i++) {
		uint8_t c = p[i];
		if (c == '\n')
			fputs("\\n\n", stderr);
		else if (c == '\r')
			fputs("\\r", stderr);
		else if (c == '\\')
			fputs("\\\\", stderr);
		else if (c >= 0x20 && c < 0x7f)
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fputs("\n----\n", stderr);
}

void fz_fail(struct fz_session *s, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "\nfuzz-%s-session: ", s->what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	print_bytes("client sent", s->input, s->input_len, 4096);
	print_bytes("server replied", s->out, s->out_len, 4096);
	abort();
}

/* ---- the client side ---- */

static void out_append(struct fz_session *s, const void *p, size_t n)
{
	if (s->out_len + n > s->out_cap) {
		size_t cap = s->out_cap == 0 ? 4096 : s->out_cap;
		while (cap < s->out_len + n)
			cap *= 2;
		uint8_t *b = realloc(s->out, cap);
		if (b == NULL)
			abort();
		s->out = b;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

static void take_output(struct fz_session *s, const uint8_t *p, size_t n)
{
	z_stream *z = s->zin;
	if (z == NULL) {
		out_append(s, p, n);
		return;
	}
	z->next_in = (Bytef *)p;
	z->avail_in = (uInt)n;
	while (z->avail_in > 0) {
		uint8_t buf[16384];
		z->next_out = buf;
		z->avail_out = sizeof(buf);
		int r = inflate(z, Z_SYNC_FLUSH);
		out_append(s, buf, sizeof(buf) - z->avail_out);
		if (r == Z_STREAM_END || r == Z_BUF_ERROR)
			break;
		if (r != Z_OK)
			fz_fail(s, "the server's output is not a valid DEFLATE stream (%s)",
				z->msg != NULL ? z->msg : "?");
	}
}

static void check_deadline(struct fz_session *s, const char *doing)
{
	if (tern_now_ms() >= s->deadline_ms)
		fz_fail(s, "session hung: %s after %u ms", doing, deadline_ms);
}

/* Waits up to wait_ms for the socket, then reads what there is and writes
 * what it can of w[*wpos..wlen). true if anything moved. */
static bool pump(struct fz_session *s, const uint8_t *w, size_t wlen, size_t *wpos, int wait_ms)
{
	bool want_write = wpos != NULL && *wpos < wlen && !s->eof;
	struct pollfd p = {.fd = s->fd, .events = POLLIN | (want_write ? POLLOUT : 0)};
	int n = poll(&p, 1, wait_ms);
	if (n < 0)
		return errno == EINTR;
	bool moved = false;
	if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
		uint8_t buf[65536];
		ssize_t r = read(s->fd, buf, sizeof(buf));
		if (r > 0) {
			take_output(s, buf, (size_t)r);
			moved = true;
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			s->eof = true;   /* closed, or reset with input unread */
			moved = true;
		}
	}
	if (want_write && !s->eof && (p.revents & POLLOUT) != 0) {
		ssize_t r = send(s->fd, w + *wpos, wlen - *wpos, MSG_NOSIGNAL);
		if (r > 0) {
			*wpos += (size_t)r;
			moved = true;
		} else if (r < 0 && errno != EAGAIN && errno != EINTR) {
			*wpos = wlen;    /* the server stopped reading for good */
			moved = true;
		}
	}
	return moved;
}

static int wait_ms(const struct fz_session *s)
{
	uint64_t now = tern_now_ms();
	uint64_t left = s->deadline_ms > now ? s->deadline_ms - now : 0;
	return left > 100 ? 100 : (int)left + 1;
}

static bool has_line(struct fz_session *s, void *ctx)
{
	(void)ctx;
	return fz_out_find(s, 0, "\r\n") != SIZE_MAX;
}

void fz_open(struct fz_session *s, const struct conn_proto *proto, const char *what,
	     const char *peer_addr)
{
	memset(s, 0, sizeof(*s));
	s->what = what;
	s->fd = -1;
	s->deadline_ms = tern_now_ms() + deadline_ms;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) < 0)
		fz_fail(s, "socketpair: %s", strerror(errno));
	s->fd = sv[0];
	char peer[80];
	snprintf(peer, sizeof(peer), "%s:4242", peer_addr);
	if (server_adopt_fd(&srv, sv[1], proto, peer, peer_addr, true) < 0)
		fz_fail(s, "the server did not take the connection");
	if (!fz_wait(s, has_line, NULL, deadline_ms))
		fz_fail(s, "no greeting");
}

void fz_send(struct fz_session *s, const void *data, size_t len)
{
	const uint8_t *w = data;
	uint8_t *zbuf = NULL;
	size_t wlen = len, pos = 0;
	z_stream *z = s->zout;
	if (z != NULL && len > 0) {
		/* deflateBound plus room for the sync flush's empty block */
		size_t cap = deflateBound(z, (uLong)len) + 64;
		zbuf = malloc(cap);
		if (zbuf == NULL)
			abort();
		z->next_in = (Bytef *)data;
		z->avail_in = (uInt)len;
		z->next_out = zbuf;
		z->avail_out = (uInt)cap;
		if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in != 0 || z->avail_out == 0) {
			fprintf(stderr, "fuzz: deflate of %zu bytes did not fit %zu\n", len, cap);
			abort();
		}
		w = zbuf;
		wlen = cap - z->avail_out;
	}
	while (pos < wlen && !s->eof) {
		check_deadline(s, "sending input");
		pump(s, w, wlen, &pos, wait_ms(s));
	}
	free(zbuf);
}

bool fz_wait(struct fz_session *s, bool (*done)(struct fz_session *s, void *ctx), void *ctx,
	     uint32_t quiet_ms)
{
	uint64_t quiet_until = tern_now_ms() + quiet_ms;
	while (!done(s, ctx)) {
		if (s->eof)
			return false;
		check_deadline(s, "waiting for a reply");
		uint64_t now = tern_now_ms();
		if (now >= quiet_until)
			return false;
		int w = wait_ms(s);
		if (quiet_until - now < (uint64_t)w)
			w = (int)(quiet_until - now);
		if (pump(s, NULL, 0, NULL, w))
			quiet_until = tern_now_ms() + quiet_ms;
	}
	return true;
}

void fz_compress(struct fz_session *s, size_t plain_len)
{
	z_stream *zin = calloc(1, sizeof(*zin)), *zout = calloc(1, sizeof(*zout));
	if (zin == NULL || zout == NULL || inflateInit2(zin, -15) != Z_OK ||
	    deflateInit2(zout, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	s->zin = zin;
	s->zout = zout;
	size_t tail_len = s->out_len - plain_len;
	uint8_t *tail = malloc(tail_len + 1);
	if (tail == NULL)
		abort();
	memcpy(tail, s->out + plain_len, tail_len);
	s->out_len = plain_len;
	take_output(s, tail, tail_len);
	free(tail);
}

void fz_finish(struct fz_session *s)
{
	(void)shutdown(s->fd, SHUT_WR);
	while (!s->eof) {
		check_deadline(s, "the server did not close the connection after the client's EOF");
		pump(s, NULL, 0, NULL, wait_ms(s));
	}
	/* The connection is freed on a later turn of its loop, once nothing
	 * (a delivery, a password check) holds it: it must come. */
	while (conn_count_total() > 0) {
		check_deadline(s, "the server closed the socket but never freed the connection");
		struct timespec ts = {0, 100 * 1000};
		nanosleep(&ts, NULL);
	}
}

void fz_close(struct fz_session *s)
{
	/* TERN_FUZZ_VERBOSE: every transcript, for writing seeds and reading
	 * what a run does */
	if (getenv("TERN_FUZZ_VERBOSE") != NULL) {
		print_bytes("client sent", s->input, s->input_len, SIZE_MAX);
		print_bytes("server replied", s->out, s->out_len, SIZE_MAX);
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->zin != NULL) {
		inflateEnd(s->zin);
		free(s->zin);
	}
	if (s->zout != NULL) {
		deflateEnd(s->zout);
		free(s->zout);
	}
	s->zin = s->zout = NULL;
	free(s->out);
	s->out = NULL;
	s->out_len = s->out_cap = 0;
}

size_t fz_out_find(const struct fz_session *s, size_t from, const char *needle)
{
	size_t n = strlen(needle);
	if (from > s->out_len || s->out == NULL)
		return SIZE_MAX;
	const uint8_t *p = memmem(s->out + from, s->out_len - from, needle, n);
	return p != NULL ? (size_t)(p - s->out) : SIZE_MAX;
}

/* ---- keeping the stores small ---- */

static bool is_default_folder(const char *name)
{
	for (size_t i = 0; store_default_folders[i][0] != NULL; i++)
		if (strcmp(store_default_folders[i][0], name) == 0)
			return true;
	return false;
}

static void tidy_folder(struct store *st, const struct store_folder *f)
{
	enum tern_error err = TERN_ERR_NONE;
	if (!is_default_folder(f->name)) {
		(void)store_folder_delete(st, f->name, &err);
		return;
	}
	struct store_msg *msgs = NULL;
	size_t count = 0;
	if (store_msg_list(st, f->name, &msgs, &count, &err) < 0 || count == 0) {
		store_msgs_free(&msgs, count);
		return;
	}
	uint32_t *uids = malloc(count * sizeof(*uids));
	if (uids == NULL)
		abort();
	for (size_t i = 0; i < count; i++)
		uids[i] = msgs[i].uid;
	(void)store_expunge(st, f->name, uids, count, NULL, NULL, &err);
	free(uids);
	store_msgs_free(&msgs, count);
}

static void tidy_store(const char *user)
{
	struct store *st = NULL;
	enum tern_error err = TERN_ERR_NONE;
	if (store_open(cfg.data_dir, user, false, &st, &err) < 0) {
		fprintf(stderr, "fuzz: the store of %s cannot be opened: %s\n", user,
			tern_error_str(err));
		abort();
	}
	/* what the sessions left must be consistent before it is cleared away */
	int ok = store_integrity_check(st, &err);
	if (ok == 0) {
		fprintf(stderr, "fuzz: the store of %s (in %s) fails store_integrity_check\n", user,
			data_dir);
		abort();
	}
	char **subs = NULL;
	size_t nsubs = 0;
	if (store_subscriptions(st, &subs, &nsubs, &err) == 0) {
		for (size_t i = 0; i < nsubs; i++)
			if (!is_default_folder(subs[i]))
				(void)store_folder_subscribe(st, subs[i], false, &err);
		store_names_free(&subs, nsubs);
	}
	struct store_folder *folders = NULL;
	size_t nfolders = 0;
	if (store_folder_list(st, &folders, &nfolders, &err) == 0) {
		for (size_t i = 0; i < nfolders; i++)
			tidy_folder(st, &folders[i]);
		store_folders_free(&folders, nfolders);
	}
	store_close(&st);
}

void fz_stores_tidy(void)
{
	static unsigned calls;
	if (calls++ % FZ_TIDY_EVERY != 0)
		return;
	tidy_store(FZ_USER1);
	tidy_store(FZ_USER2);
}
