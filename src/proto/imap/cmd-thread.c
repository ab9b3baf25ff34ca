/* THREAD and UID THREAD (RFC 5256) with ORDEREDSUBJECT and REFERENCES. The
 * search runs as for SEARCH (sort-run.c); subject and sent date come from
 * the store's cached parse, Message-ID, In-Reply-To and References from each
 * message's header block (REFERENCES only). Search, loading and building
 * the threads all run in slices (sort-run.h), so a big folder does not hold
 * up the other sessions of the loop thread. */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/lock.h"
#include "proto/imap/commands.h"
#include "proto/imap/sort-parse.h"
#include "proto/imap/sort-run.h"
#include "proto/imap/sort-subject.h"
#include "proto/imap/thread-build.h"
#include "proto/imap/thread-refs.h"
#include "store/store.h"

/* What one message contributes; owns the strings imap_thread_msg borrows. */
struct thread_data {
	char *subject;
	char *msgid;
	char **refs;
	size_t ref_count;
};

static void data_clear(struct thread_data *d)
{
	free(d->subject);
	free(d->msgid);
	imap_thread_ids_free(&d->refs, d->ref_count);
}

/* Message-ID, and References or else In-Reply-To's first id (RFC 5256 §2.2
 * step 1). 0 or -1 (out of memory). */
static int parse_ids(const char *head, size_t size, struct thread_data *d)
{
	char *v = imap_thread_header_field(head, size, "Message-ID");
	char **ids = NULL;
	int n = v != NULL ? imap_thread_msgids(v, 1, &ids) : 0;
	free(v);
	if (n < 0)
		return -1;
	if (n > 0) {
		d->msgid = ids[0];
		free(ids);
	}
	ids = NULL;
	v = imap_thread_header_field(head, size, "References");
	n = v != NULL ? imap_thread_msgids(v, 0, &ids) : 0;
	free(v);
	if (n < 0)
		return -1;
	if (n == 0) {
		ids = NULL;
		v = imap_thread_header_field(head, size, "In-Reply-To");
		n = v != NULL ? imap_thread_msgids(v, 1, &ids) : 0;
		free(v);
		if (n < 0)
			return -1;
	}
	if (n > TERN_THREAD_REFS_MAX) {
		size_t drop = (size_t)n - TERN_THREAD_REFS_MAX;
		for (size_t i = 0; i < drop; i++)
			free(ids[i]);
		memmove(ids, ids + drop, TERN_THREAD_REFS_MAX * sizeof(*ids));
		n = TERN_THREAD_REFS_MAX;
	}
	d->refs = ids;
	d->ref_count = (size_t)n;
	return 0;
}

/* A THREAD in progress (sort-run.h's arg). */
struct thread_state {
	struct imap_search_program *sp;
	enum imap_thread_algo algo;
	bool uid;
	const struct imap_sort_match *matches;   /* the run's */
	size_t n;
	struct imap_thread_msg *tm;
	struct thread_data *data;
	struct imap_thread_build *build;
	struct evbuffer *body;          /* the answer, written in slices */
	bool built, written;
	size_t cleared;                 /* data[] before this is freed */
};

static void thread_state_free(void *arg)
{
	struct thread_state *st = arg;
	imap_thread_build_free(&st->build);
	if (st->body != NULL)
		evbuffer_free(st->body);
	for (size_t i = st->cleared; st->data != NULL && i < st->n; i++)
		data_clear(&st->data[i]);
	free(st->data);
	free(st->tm);
	imap_search_program_free(&st->sp);
	free(st);
}

static int thread_prepare(void *arg, const struct imap_sort_match *matches, size_t n,
			  uint64_t max_modseq, enum tern_error *err_r)
{
	(void)max_modseq;   /* THREAD has no MODSEQ in its answer */
	struct thread_state *st = arg;
	st->tm = calloc(n + 1, sizeof(*st->tm));
	st->data = calloc(n + 1, sizeof(*st->data));
	if (st->tm == NULL || st->data == NULL) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	st->matches = matches;
	st->n = n;
	return 1;
}

static int load_one(struct imap_session *s, enum imap_thread_algo algo,
		    const struct imap_sort_match *m, struct imap_thread_msg *tm,
		    struct thread_data *d, enum tern_error *err_r)
{
	struct store_msg_cache c = { 0 };
	int r = store_msg_cache(s->store, s->view->folder, m->uid, &c, err_r);
	if (r < 0)
		return -1;
	bool reply = false;
	char *base = imap_base_subject(c.subject != NULL ? c.subject : "", &reply);
	d->subject = base != NULL ? imap_sort_unicode_key(base) : NULL;
	free(base);
	tm->date = c.sent_date != 0 ? c.sent_date : m->internal_date;
	store_msg_cache_clear(&c);
	if (d->subject == NULL) {
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	tm->subject = d->subject;
	tm->is_reply = reply;
	if (algo != IMAP_THREAD_REFERENCES || r == 0)
		return 0;
	char *head = NULL;
	size_t size = 0;
	r = imap_sort_read_header(s, m->uid, &head, &size, err_r);
	if (r < 0)
		return -1;
	if (r > 0 && parse_ids(head, size, d) < 0) {
		free(head);
		*err_r = TERN_ERR_NOMEM;
		return -1;
	}
	free(head);
	tm->msgid = d->msgid;
	tm->refs = d->refs;
	tm->ref_count = d->ref_count;
	return 0;
}

static int thread_load(struct imap_session *s, void *arg, size_t i, enum tern_error *err_r)
{
	struct thread_state *st = arg;
	st->tm[i].id = st->uid ? st->matches[i].uid : st->matches[i].seq;
	st->tm[i].seq = st->matches[i].seq;
	return load_one(s, st->algo, &st->matches[i], &st->tm[i], &st->data[i], err_r);
}

/* Builds the threads, writes them, and frees the strings they were built
 * from (about 300,000 allocations for 20,000 messages: a few milliseconds
 * better spent in slices than in the turn that sends the answer). */
static int thread_compute(void *arg, uint64_t deadline_ms, enum tern_error *err_r)
{
	struct thread_state *st = arg;
	if (st->build == NULL) {
		st->build = imap_thread_build_new(st->algo, st->tm, st->n);
		st->body = evbuffer_new();
		if (st->build == NULL || st->body == NULL)
			goto nomem;
	}
	if (!st->built) {
		int r = imap_thread_build_step(st->build, deadline_ms);
		if (r <= 0) {
			if (r < 0)
				goto nomem;
			return 0;
		}
		st->built = true;
	}
	if (!st->written) {
		int r = imap_thread_build_write(st->build, st->body, deadline_ms);
		if (r <= 0) {
			if (r < 0)
				goto nomem;
			return 0;
		}
		st->written = true;
	}
	/* only the ids are left to use */
	for (; st->cleared < st->n; st->cleared++) {
		data_clear(&st->data[st->cleared]);
		if (st->cleared % 256 == 255 && tern_now_ms() >= deadline_ms) {
			st->cleared++;
			return 0;
		}
	}
	return 1;
nomem:
	*err_r = TERN_ERR_NOMEM;
	return -1;
}

static void thread_finish(struct imap_session *s, struct imap_cmd *cmd, void *arg, int r,
			  enum tern_error err)
{
	struct thread_state *st = arg;
	if (r < 0) {
		imap_store_error(s, cmd, "THREAD", err);
		return;
	}
	/* The threads were written into st->body, where running out of memory
	 * still leaves a clean NO (thread_compute); moving them only links. */
	imap_out_add(s, "* THREAD", 8);
	if (evbuffer_get_length(st->body) > 0)
		imap_out_add(s, " ", 1);
	imap_out_check(s, evbuffer_add_buffer(imap_out(s), st->body));
	imap_out_add(s, "\r\n", 2);
	imap_tagged(s, cmd, "OK Thread completed");
}

static const struct imap_sort_run_ops thread_ops = {
	.prepare = thread_prepare,
	.load = thread_load,
	.compute = thread_compute,
	.finish = thread_finish,
	.free = thread_state_free,
};

IMAP_HANDLER(cmd_thread)
{
	struct imap_search_program *sp = NULL;
	enum imap_thread_algo algo;
	const char *error = NULL;
	int r = imap_thread_parse(cmd->args, cmd->arg_count, &algo, &sp, &error);
	if (r == IMAP_SEARCH_PARSE_BADCHARSET) {
		imap_tagged(s, cmd, "NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
		return IMAP_CMD_DONE;
	}
	if (r < 0) {
		imap_bad(s, cmd, error != NULL ? error : "Invalid THREAD");
		return IMAP_CMD_DONE;
	}
	if (sp->uses_modseq)
		s->condstore = true;
	struct thread_state *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		imap_search_program_free(&sp);
		imap_store_error(s, cmd, "THREAD", TERN_ERR_NOMEM);
		return IMAP_CMD_DONE;
	}
	*st = (struct thread_state){ .sp = sp, .algo = algo, .uid = cmd->uid };
	return imap_sort_run(s, cmd, sp, &thread_ops, st);
}
