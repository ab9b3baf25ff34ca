/* THREAD and UID THREAD (RFC 5256) with ORDEREDSUBJECT and REFERENCES. The
 * search runs as for SEARCH (sort-run.c); subject and sent date come from
 * the store's cached parse, Message-ID, In-Reply-To and References from each
 * message's header block (REFERENCES only). */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/commands.h"
#include "proto/imap/sort-parse.h"
#include "proto/imap/sort-run.h"
#include "proto/imap/sort-subject.h"
#include "proto/imap/thread-build.h"
#include "proto/imap/thread-refs.h"
#include "store/store.h"

/* References beyond this many (the newest kept) add nothing to a thread. */
#define THREAD_MAX_REFS 256

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
	if (n > THREAD_MAX_REFS) {
		size_t drop = (size_t)n - THREAD_MAX_REFS;
		for (size_t i = 0; i < drop; i++)
			free(ids[i]);
		memmove(ids, ids + drop, THREAD_MAX_REFS * sizeof(*ids));
		n = THREAD_MAX_REFS;
	}
	d->refs = ids;
	d->ref_count = (size_t)n;
	return 0;
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
	struct imap_sort_match *matches = NULL;
	size_t n = 0;
	uint64_t max_modseq = 0;
	enum tern_error err = TERN_ERR_NONE;
	int ret = imap_sort_search(s, sp, &matches, &n, &max_modseq, &err);
	struct imap_thread_msg *tm = NULL;
	struct thread_data *data = NULL;
	if (ret == 0) {
		tm = calloc(n + 1, sizeof(*tm));
		data = calloc(n + 1, sizeof(*data));
		if (tm == NULL || data == NULL) {
			err = TERN_ERR_NOMEM;
			ret = -1;
		}
	}
	for (size_t i = 0; ret == 0 && i < n; i++) {
		tm[i].id = cmd->uid ? matches[i].uid : matches[i].seq;
		tm[i].seq = matches[i].seq;
		ret = load_one(s, algo, &matches[i], &tm[i], &data[i], &err);
	}
	struct evbuffer *body = ret == 0 ? evbuffer_new() : NULL;
	if (ret == 0 && (body == NULL || imap_thread_write(body, algo, tm, n) < 0)) {
		err = TERN_ERR_NOMEM;
		ret = -1;
	}
	if (ret < 0) {
		imap_store_error(s, cmd, "THREAD", err);
	} else {
		struct evbuffer *out = imap_out(s);
		evbuffer_add(out, "* THREAD", 8);
		if (evbuffer_get_length(body) > 0)
			evbuffer_add(out, " ", 1);
		evbuffer_add_buffer(out, body);
		evbuffer_add(out, "\r\n", 2);
		imap_tagged(s, cmd, "OK Thread completed");
	}
	if (body != NULL)
		evbuffer_free(body);
	for (size_t i = 0; data != NULL && i < n; i++)
		data_clear(&data[i]);
	free(data);
	free(tm);
	free(matches);
	imap_search_program_free(&sp);
	return IMAP_CMD_DONE;
}
