/* The selected folder as this session's client knows it (RFC 3501 §5.2):
 * loading it, reporting other writers' changes (EXPUNGE/VANISHED, EXISTS,
 * FETCH FLAGS) in a way that keeps sequence numbers consistent, and mapping
 * sequence sets to UIDs. Changes come from the store's modseq log
 * (store_changes_since), so nothing needs to remember them for us. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/limits.h"
#include "core/log.h"
#include "proto/imap/search-context.h"
#include "proto/imap/seqset.h"
#include "proto/imap/session.h"
#include "store/store.h"

static bool keywords_equal(const char *a, const char *b)
{
	if (a == NULL || *a == '\0')
		return b == NULL || *b == '\0';
	return b != NULL && strcmp(a, b) == 0;
}

/* Adds to v->keywords each keyword of kw (space-separated) the client was
 * not told of. Keywords compare case-insensitively (RFC 3501 §2.3.2). */
void imap_view_learn_keywords(struct imap_view *v, const char *kw)
{
	size_t added = 0;
	/* out of memory: the FLAGS list stays short; nothing else depends on it */
	(void)keyword_set_add_list(&v->keywords, kw, &added);
	if (added > 0)
		v->keywords_pending = true;
}

bool imap_view_keywords_fit(const struct imap_view *v, const char *keywords)
{
	size_t known = keyword_set_count(&v->keywords), fresh = 0;
	const char *kw;
	size_t len;
	/* keywords comes from imap_flags_parse: each keyword once */
	while (keyword_list_next(&keywords, &kw, &len)) {
		if (keyword_set_contains(&v->keywords, kw, len))
			continue;
		if (known + ++fresh > TERN_KEYWORDS_PER_FOLDER_MAX)
			return false;
	}
	return true;
}

/* The view's keywords only ever grow, so a cached view of a folder that was
 * at the limit would stay there after its keywords were removed: one that
 * is at the limit is recounted from its messages when it is opened again. */
static void keywords_recount(struct imap_view *v)
{
	if (keyword_set_count(&v->keywords) < TERN_KEYWORDS_PER_FOLDER_MAX)
		return;
	keyword_set_clear(&v->keywords);
	for (size_t i = 0; i < v->count; i++)
		(void)keyword_set_add_list(&v->keywords, v->msgs[i].keywords, NULL);
}

void imap_view_announce_keywords(struct imap_session *s)
{
	struct imap_view *v = s->view;
	if (v == NULL || !v->keywords_pending)
		return;
	const char *k = keyword_set_text(&v->keywords);
	const char *sep = *k != '\0' ? " " : "";
	v->keywords_pending = false;
	imap_untagged(s, "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s%s)", sep, k);
	if (v->readonly)
		imap_untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox.");
	else if (keyword_set_count(&v->keywords) >= TERN_KEYWORDS_PER_FOLDER_MAX)
		/* RFC 3501 §7.1: without \* the client knows it cannot create
		 * keywords here, only use those listed */
		imap_untagged(s, "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
				 "\\Draft%s%s)] Flags permitted.", sep, k);
	else
		imap_untagged(s, "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
				 "\\Draft%s%s \\*)] Flags permitted.", sep, k);
}

/* Takes ownership of kw: "" becomes NULL. */
static char *keywords_take(char **kw)
{
	char *k = *kw;
	*kw = NULL;
	if (k != NULL && *k == '\0') {
		free(k);
		k = NULL;
	}
	return k;
}

static void view_free(struct imap_view **_v)
{
	struct imap_view *v = *_v;
	*_v = NULL;
	if (v == NULL)
		return;
	imap_contexts_free(&v->contexts);
	for (size_t i = 0; i < v->count; i++)
		free(v->msgs[i].keywords);
	free(v->msgs);
	free(v->saved);
	free(v->recent);
	keyword_set_clear(&v->keywords);
	free(v->folder);
	free(v);
}

/* ---- per-loop cache of closed views ----
 * A SELECT of a big folder would read every message row again. The views
 * that sessions on this loop thread closed are kept (thread-local, so no
 * lock), keyed by user, folder and UIDVALIDITY; the next SELECT of the same
 * folder takes one and applies only the changes since its highestmodseq.
 * Its bounds are the TERN_VIEW_CACHE_* limits. */

struct view_cache_entry {
	char *user;
	struct imap_view *view;
	struct view_cache_entry *next;
};

struct view_cache {
	struct view_cache_entry *head;   /* most recently closed first */
	size_t entries, msgs;
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_entry_free(struct view_cache_entry *e)
{
	view_free(&e->view);
	free(e->user);
	free(e);
}

static void cache_destroy(void *arg)
{
	struct view_cache *c = arg;
	while (c->head != NULL) {
		struct view_cache_entry *e = c->head;
		c->head = e->next;
		cache_entry_free(e);
	}
	free(c);
}

static void cache_key_init(void)
{
	(void)pthread_key_create(&cache_key, cache_destroy);
}

static struct view_cache *cache_get(bool create)
{
	(void)pthread_once(&cache_once, cache_key_init);
	struct view_cache *c = pthread_getspecific(cache_key);
	if (c == NULL && create && (c = calloc(1, sizeof(*c))) != NULL &&
	    pthread_setspecific(cache_key, c) != 0) {
		free(c);
		c = NULL;
	}
	return c;
}

/* Unlinks and returns the entry for user/folder/uidvalidity, or NULL. */
static struct imap_view *cache_take(const char *user, const char *folder, uint32_t uidvalidity)
{
	struct view_cache *c = cache_get(false);
	for (struct view_cache_entry **p = c != NULL ? &c->head : NULL; p != NULL && *p != NULL;
	     p = &(*p)->next) {
		struct view_cache_entry *e = *p;
		if (strcmp(e->user, user) != 0 || strcmp(e->view->folder, folder) != 0)
			continue;
		*p = e->next;
		c->entries--;
		c->msgs -= e->view->count;
		struct imap_view *v = NULL;
		if (e->view->uidvalidity == uidvalidity) {
			v = e->view;
			e->view = NULL;
		}
		cache_entry_free(e);
		return v;
	}
	return NULL;
}

static void cache_put(const char *user, struct imap_view **_v)
{
	struct imap_view *v = *_v;
	struct view_cache *c = NULL;
	struct view_cache_entry *e = NULL;
	if (v->count < TERN_VIEW_CACHE_MIN_MSGS || v->count > TERN_VIEW_CACHE_MSGS ||
	    (c = cache_get(true)) == NULL || (e = calloc(1, sizeof(*e))) == NULL ||
	    (e->user = strdup(user)) == NULL) {
		free(e);
		view_free(_v);
		return;
	}
	(void)cache_take(user, v->folder, 0);   /* drops an older copy (no UIDVALIDITY is 0) */
	free(v->saved);
	v->saved = NULL;
	v->saved_count = 0;
	free(v->recent);        /* \Recent belongs to the session, not the folder */
	v->recent = NULL;
	v->recent_count = 0;
	e->view = v;
	*_v = NULL;
	e->next = c->head;
	c->head = e;
	c->entries++;
	c->msgs += v->count;
	/* evict from the tail (least recently closed) */
	while (c->entries > TERN_VIEW_CACHE_ENTRIES || c->msgs > TERN_VIEW_CACHE_MSGS) {
		struct view_cache_entry **p = &c->head;
		while ((*p)->next != NULL)
			p = &(*p)->next;
		c->entries--;
		c->msgs -= (*p)->view->count;
		cache_entry_free(*p);
		*p = NULL;
	}
}

/* ---- snapshots in the store ----
 * The per-loop cache is gone after a restart, and a full read of a big
 * folder's rows from a cold disk is slow (they lie between the bodies), so a
 * closing view of a big folder is also saved in the store (store.h) when the
 * saved one is missing or TERN_SNAPSHOT_STALE changes behind. */
static int view_append(struct imap_view *v, struct store_msg *msgs, size_t count);

static void snapshot_save(struct imap_session *s)
{
	struct imap_view *v = s->view;
	enum tern_error err;
	if (v == NULL || s->store == NULL || v->count < TERN_SNAPSHOT_MIN_MSGS ||
	    store_snapshot_due(s->store, v->folder, v->uidvalidity, v->highestmodseq, &err) <= 0)
		return;
	struct store_snapshot_msg *msgs = malloc(v->count * sizeof(*msgs));
	if (msgs == NULL)
		return;
	for (size_t i = 0; i < v->count; i++)
		msgs[i] = (struct store_snapshot_msg){ .uid = v->msgs[i].uid,
			.flags = v->msgs[i].flags, .modseq = v->msgs[i].modseq,
			.keywords = v->msgs[i].keywords };
	/* a failure costs the next cold SELECT a full read, nothing more */
	(void)store_snapshot_put(s->store, v->folder, v->uidvalidity, v->highestmodseq, msgs,
				 v->count, &err);
	free(msgs);
}

/* A view from the folder's snapshot, *since_r = its modseq; NULL if none. */
static struct imap_view *snapshot_load(struct imap_session *s, const struct store_folder *f,
				       uint64_t *since_r)
{
	struct store_msg *msgs = NULL;
	size_t count = 0;
	enum tern_error err;
	struct imap_view *v = NULL;
	if (store_snapshot_get(s->store, f->name, f->uidvalidity, since_r, &msgs, &count,
			       &err) <= 0)
		return NULL;
	if ((v = calloc(1, sizeof(*v))) == NULL || (v->folder = strdup(f->name)) == NULL ||
	    view_append(v, msgs, count) < 0)
		view_free(&v);
	store_msgs_free(&msgs, count);
	return v;
}

void imap_view_close(struct imap_session *s)
{
	if (s->view != NULL)
		imap_contexts_free(&s->view->contexts);   /* RFC 5267 §4.3: they end here */
	snapshot_save(s);
	if (s->view != NULL && s->user != NULL)
		cache_put(s->user, &s->view);
	view_free(&s->view);
	if (s->state == IMAP_STATE_SELECTED)
		s->state = IMAP_STATE_AUTH;
}

static int view_reserve(struct imap_view *v, size_t extra)
{
	if (v->count + extra <= v->cap)
		return 0;
	size_t cap = v->cap > 0 ? v->cap : 16;
	while (cap < v->count + extra)
		cap *= 2;
	struct imap_view_msg *m = realloc(v->msgs, cap * sizeof(*m));
	if (m == NULL)
		return -1;
	v->msgs = m;
	v->cap = cap;
	return 0;
}

/* Appends every message of ch (ascending UIDs above the view's last). */
static int view_append(struct imap_view *v, struct store_msg *msgs, size_t count)
{
	if (count == 0)
		return 0;
	if (view_reserve(v, count) < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		struct imap_view_msg *m = &v->msgs[v->count++];
		m->uid = msgs[i].uid;
		m->flags = msgs[i].flags;
		m->keywords = keywords_take(&msgs[i].keywords);
		m->modseq = msgs[i].modseq;
		imap_view_learn_keywords(v, m->keywords);
	}
	return 0;
}

static size_t view_lower_bound(const struct imap_view *v, uint32_t uid);

/* Brings a cached view up to date without telling anyone: drops vanished
 * UIDs, takes changed flags, appends new messages. */
static int view_apply_quietly(struct imap_view *v, struct store_changes *ch)
{
	size_t w = 0, k = 0;
	for (size_t r = 0; r < v->count; r++) {
		while (k < ch->vanished_count && ch->vanished[k] < v->msgs[r].uid)
			k++;
		if (k < ch->vanished_count && ch->vanished[k] == v->msgs[r].uid) {
			free(v->msgs[r].keywords);
			continue;
		}
		v->msgs[w++] = v->msgs[r];
	}
	v->count = w;
	uint32_t last_uid = v->count > 0 ? v->msgs[v->count - 1].uid : 0;
	size_t first_new = 0;
	for (; first_new < ch->changed_count && ch->changed[first_new].uid <= last_uid; first_new++) {
		struct store_msg *c = &ch->changed[first_new];
		size_t i = view_lower_bound(v, c->uid);
		if (i >= v->count || v->msgs[i].uid != c->uid)
			continue;
		v->msgs[i].flags = c->flags;
		v->msgs[i].modseq = c->modseq;
		free(v->msgs[i].keywords);
		v->msgs[i].keywords = keywords_take(&c->keywords);
		imap_view_learn_keywords(v, v->msgs[i].keywords);
	}
	if (first_new >= ch->changed_count)
		return 0; /* also when changed is NULL: no pointer arithmetic on it */
	return view_append(v, ch->changed + first_new, ch->changed_count - first_new);
}

/* The folder's messages: from this loop's cache when it holds them, else
 * read in full. since_r gets the modseq the read started after. */
static struct imap_view *view_load(struct imap_session *s, const struct store_folder *f,
				   struct store_changes *ch, enum tern_error *err_r)
{
	struct imap_view *v = s->user != NULL ? cache_take(s->user, f->name, f->uidvalidity) : NULL;
	bool cached = v != NULL;
	uint64_t since = v != NULL ? v->highestmodseq : 0;
	if (v == NULL && f->messages >= TERN_SNAPSHOT_MIN_MSGS &&
	    (v = snapshot_load(s, f, &since)) == NULL)
		since = 0;
	/* since = 0: every message and the folder's counters from one snapshot */
	if (store_changes_since(s->store, f->name, since, ch, err_r) < 0) {
		view_free(&v);
		return NULL;
	}
	if (v == NULL && ((v = calloc(1, sizeof(*v))) == NULL ||
			  (v->folder = strdup(f->name)) == NULL)) {
		view_free(&v);
		store_changes_clear(ch);
		*err_r = TERN_ERR_NOMEM;
		return NULL;
	}
	if (view_apply_quietly(v, ch) < 0) {
		view_free(&v);
		store_changes_clear(ch);
		*err_r = TERN_ERR_NOMEM;
		return NULL;
	}
	if (cached)
		keywords_recount(v);
	return v;
}

int imap_view_load(struct imap_session *s, const char *folder, bool readonly,
		   enum tern_error *err_r)
{
	struct store_folder f;
	struct store_changes ch;
	uint64_t user_modseq = 0;
	imap_view_close(s);
	/* the user counter first: anything after it is caught by the next sync */
	if (store_highestmodseq(s->store, &user_modseq, err_r) < 0)
		return -1;
	int found = store_folder_get(s->store, folder, &f, err_r);
	if (found <= 0)
		return found;
	struct imap_view *v = view_load(s, &f, &ch, err_r);
	if (v == NULL) {
		store_folder_clear(&f);
		return *err_r == TERN_ERR_NOTFOUND ? 0 : -1;    /* deleted meanwhile? */
	}
	v->readonly = readonly;
	v->uidvalidity = f.uidvalidity;
	v->uidnext = ch.uidnext;
	v->highestmodseq = ch.highestmodseq;
	store_changes_clear(&ch);
	store_folder_clear(&f);
	s->view = v;
	s->state = IMAP_STATE_SELECTED;
	s->user_modseq = user_modseq;
	s->changes_pending = false;
	return 1;
}

int imap_view_open(struct imap_session *s, const char *folder, bool readonly,
		   enum tern_error *err_r)
{
	int found = imap_view_load(s, folder, readonly, err_r);
	if (found > 0)
		imap_view_claim_recent(s);
	return found;
}

/* Index of uid in the view, or the index where it would go. */
static size_t view_lower_bound(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid)
{
	size_t i = view_lower_bound(v, uid);
	return i < v->count && v->msgs[i].uid == uid ? (uint32_t)(i + 1) : 0;
}

uint32_t imap_view_seq_walk(const struct imap_view *v, uint32_t uid, size_t *cursor)
{
	size_t i = *cursor;
	if (i < v->count && v->msgs[i].uid == uid)
		return (uint32_t)(i + 1);
	if (i + 1 < v->count && v->msgs[i + 1].uid == uid) {
		*cursor = i + 1;
		return (uint32_t)(i + 2);
	}
	uint32_t seq = imap_view_seq(v, uid);
	if (seq != 0)
		*cursor = seq - 1;
	return seq;
}

/* Reports and drops the messages at the given ascending indexes. */
static void view_remove(struct imap_session *s, const size_t *idx, size_t n)
{
	struct imap_view *v = s->view;
	if (n == 0)
		return;
	imap_contexts_expunging(s, idx, n);
	if (s->qresync) {
		/* RFC 7162 §3.2.10: VANISHED replaces EXPUNGE once QRESYNC is on */
		uint32_t *uids = malloc(n * sizeof(*uids));
		if (uids != NULL) {
			for (size_t i = 0; i < n; i++)
				uids[i] = v->msgs[idx[i]].uid;
			imap_out_add(s, "* VANISHED ", 11);
			imap_out_check(s, imap_seqset_write(imap_out(s), uids, n));
			imap_out_add(s, "\r\n", 2);
			free(uids);
		} else {
			/* the messages leave the view either way: one line each
			 * needs no list */
			for (size_t i = 0; i < n && !imap_out_failed(s); i++)
				imap_out_printf(s, "* VANISHED %u\r\n", v->msgs[idx[i]].uid);
		}
	} else {
		/* highest first: each EXPUNGE then leaves the lower numbers as they are */
		for (size_t i = n; i-- > 0 && !imap_out_failed(s);)
			imap_out_printf(s, "* %zu EXPUNGE\r\n", idx[i] + 1);
	}
	size_t w = idx[0];
	for (size_t r = idx[0], k = 0; r < v->count; r++) {
		if (k < n && idx[k] == r) {
			free(v->msgs[r].keywords);
			k++;
			continue;
		}
		v->msgs[w++] = v->msgs[r];
	}
	v->count = w;
}

void imap_view_expunged(struct imap_session *s, const uint32_t *uids, size_t count)
{
	if (s->view == NULL || count == 0)
		return;
	size_t *idx = malloc(count * sizeof(*idx));
	size_t n = 0;
	if (idx == NULL)
		return;   /* the next sync reports them */
	for (size_t i = 0; i < count; i++) {
		uint32_t seq = imap_view_seq(s->view, uids[i]);
		if (seq != 0 && (n == 0 || idx[n - 1] < seq - 1))
			idx[n++] = seq - 1;
	}
	view_remove(s, idx, n);
	free(idx);
}

void imap_view_update_msg(struct imap_view *v, uint32_t uid, uint32_t flags,
			  const char *keywords, uint64_t modseq)
{
	uint32_t seq = imap_view_seq(v, uid);
	if (seq != 0)
		imap_view_update_seq(v, seq, flags, keywords, modseq);
}

void imap_view_update_seq(struct imap_view *v, uint32_t seq, uint32_t flags,
			  const char *keywords, uint64_t modseq)
{
	struct imap_view_msg *m = &v->msgs[seq - 1];
	m->flags = flags;
	m->modseq = modseq;
	if (!keywords_equal(m->keywords, keywords)) {
		char *copy = keywords != NULL && *keywords != '\0' ? strdup(keywords) : NULL;
		free(m->keywords);
		m->keywords = copy;
		imap_view_learn_keywords(v, m->keywords);
	}
}

static void write_flag_fetch(struct imap_session *s, size_t idx)
{
	const struct imap_view_msg *m = &s->view->msgs[idx];
	/* RFC 7162 §3.1; RFC 9051 (appendix E): every unsolicited FETCH has UID */
	bool uid = s->condstore || s->imap4rev2 || (s->current != NULL && s->current->uid);
	imap_out_printf(s, "* %zu FETCH (", idx + 1);
	if (uid)
		imap_out_printf(s, "UID %u ", m->uid);
	imap_out_add(s, "FLAGS ", 6);
	uint32_t flags = imap_view_flags_out(s->view, m->uid, m->flags);
	imap_out_check(s, imap_flags_write(imap_out(s), flags, m->keywords));
	if (s->condstore)
		imap_out_printf(s, " MODSEQ (%llu)", (unsigned long long)m->modseq);
	imap_out_add(s, ")\r\n", 3);
}

/* Expunges in ch that the view still shows: reported now, or (when
 * expunges may not be sent) counted. Returns how many were withheld. */
static size_t sync_vanished(struct imap_session *s, const struct store_changes *ch,
			    bool allow_expunge)
{
	size_t *idx = ch->vanished_count > 0 ? malloc(ch->vanished_count * sizeof(*idx)) : NULL;
	size_t n = 0;
	for (size_t i = 0; i < ch->vanished_count; i++) {
		uint32_t seq = imap_view_seq(s->view, ch->vanished[i]);
		if (seq == 0)
			continue;
		if (idx != NULL)
			idx[n] = seq - 1;
		n++;
	}
	if (allow_expunge && idx != NULL) {
		view_remove(s, idx, n);
		n = 0;
	}
	free(idx);
	return n;
}

int imap_view_sync(struct imap_session *s, bool allow_expunge, enum tern_error *err_r)
{
	struct imap_view *v = s->view;
	uint64_t user_modseq;
	struct store_changes ch;
	if (v == NULL)
		return 0;
	/* one cheap read answers "nothing changed" for most commands */
	if (store_highestmodseq(s->store, &user_modseq, err_r) < 0)
		return -1;
	if (user_modseq == s->user_modseq && !s->changes_pending)
		return 0;
	if (store_changes_since(s->store, v->folder, v->highestmodseq, &ch, err_r) < 0) {
		if (*err_r != TERN_ERR_NOTFOUND)
			return -1;
		if (allow_expunge) {
			/* the folder was deleted or renamed under us */
			imap_untagged(s, "BYE Selected mailbox was deleted, have to disconnect");
			conn_close(s->conn);
		}
		return 0;
	}
	s->changes_pending = false;
	size_t withheld = sync_vanished(s, &ch, allow_expunge);
	size_t first_new = 0;
	uint32_t last_uid = v->count > 0 ? v->msgs[v->count - 1].uid : 0;
	while (first_new < ch.changed_count && ch.changed[first_new].uid <= last_uid)
		first_new++;
	/* flag changes of messages the client knows, compared to what it was told */
	size_t *flagged = first_new > 0 ? malloc(first_new * sizeof(*flagged)) : NULL;
	size_t nflagged = 0;
	for (size_t i = 0; i < first_new; i++) {
		struct store_msg *c = &ch.changed[i];
		uint32_t seq = imap_view_seq(v, c->uid);
		if (seq == 0)
			continue;
		struct imap_view_msg *m = &v->msgs[seq - 1];
		bool flags_differ = m->flags != c->flags || !keywords_equal(m->keywords, c->keywords);
		if (!flags_differ && (m->modseq == c->modseq || !s->condstore)) {
			m->modseq = c->modseq;
			continue;
		}
		m->flags = c->flags;
		m->modseq = c->modseq;
		free(m->keywords);
		m->keywords = keywords_take(&c->keywords);
		imap_view_learn_keywords(v, m->keywords);
		if (flagged != NULL)
			flagged[nflagged++] = seq - 1;
	}
	int ret = 0;
	size_t before = v->count;
	if (ch.changed_count > first_new &&
	    view_append(v, ch.changed + first_new, ch.changed_count - first_new) < 0) {
		*err_r = TERN_ERR_NOMEM;
		ret = -1;
	}
	if (v->count != before) {
		imap_view_claim_recent(s);
		imap_untagged(s, "%zu EXISTS", v->count);
		if (!s->imap4rev2)   /* RFC 9051 has no RECENT response */
			imap_untagged(s, "%zu RECENT", imap_view_recent_count(v));
	}
	imap_view_announce_keywords(s);
	for (size_t i = 0; i < nflagged; i++)
		write_flag_fetch(s, flagged[i]);
	free(flagged);
	imap_contexts_changed(s, ch.changed, ch.changed_count);
	v->uidnext = ch.uidnext;
	if (withheld == 0 && ret == 0) {
		v->highestmodseq = ch.highestmodseq;
		s->user_modseq = user_modseq;
	} else {
		/* the log is read again next time, so the expunges are not lost */
		s->user_modseq = 0;
	}
	store_changes_clear(&ch);
	return ret;
}

/* UIDs of the view within a resolved UID set, ascending. */
static int resolve_uids(const struct imap_view *v, const struct imap_seqset *set,
			uint32_t **uids_r, size_t *count_r)
{
	size_t nr, n = 0;
	const struct imap_seq_range *r = imap_seqset_ranges(set, &nr);
	uint64_t want = imap_seqset_count(set);
	uint32_t *out = malloc((want < v->count ? want : v->count) * sizeof(*out) + 1);
	if (out == NULL)
		return -1;
	for (size_t i = 0; i < nr; i++)
		for (size_t k = view_lower_bound(v, r[i].lo); k < v->count && v->msgs[k].uid <= r[i].hi;
		     k++)
			out[n++] = v->msgs[k].uid;
	*uids_r = out;
	*count_r = n;
	return 0;
}

static int resolve_seqs(const struct imap_view *v, const struct imap_seqset *set,
			uint32_t **uids_r, size_t *count_r, const char **bad_r)
{
	size_t nr, n = 0;
	const struct imap_seq_range *r = imap_seqset_ranges(set, &nr);
	if (nr > 0 && r[nr - 1].hi > v->count) {
		/* "1:*" on an empty mailbox names nothing rather than something bad */
		if (v->count == 0 && imap_seqset_has_star(set)) {
			nr = 0;
		} else {
			*bad_r = "Invalid messageset";
			return -1;
		}
	}
	uint32_t *out = malloc((nr > 0 ? imap_seqset_count(set) : 0) * sizeof(*out) + 1);
	if (out == NULL) {
		*bad_r = "Out of memory";
		return -1;
	}
	for (size_t i = 0; i < nr; i++)
		for (uint32_t seq = r[i].lo; seq <= r[i].hi && seq != 0; seq++)
			out[n++] = v->msgs[seq - 1].uid;
	*uids_r = out;
	*count_r = n;
	return 0;
}

/* "$": the saved result, minus what has been expunged since. */
static int resolve_saved(const struct imap_view *v, uint32_t **uids_r, size_t *count_r)
{
	uint32_t *out = malloc(v->saved_count * sizeof(*out) + 1);
	size_t n = 0;
	if (out == NULL)
		return -1;
	for (size_t i = 0; i < v->saved_count; i++)
		if (imap_view_seq(v, v->saved[i]) != 0)
			out[n++] = v->saved[i];
	*uids_r = out;
	*count_r = n;
	return 0;
}

int imap_view_resolve(struct imap_session *s, const struct imap_arg *arg, bool uid,
		      uint32_t **uids_r, size_t *count_r, const char **bad_r)
{
	const struct imap_view *v = s->view;
	const char *text;
	struct imap_seqset *set = NULL;
	if (v == NULL) {
		*bad_r = "No mailbox selected";
		return -1;
	}
	if (!imap_arg_atom(arg, &text) || imap_seqset_parse(text, strlen(text), &set) < 0) {
		*bad_r = "Invalid messageset";
		return -1;
	}
	int ret;
	if (imap_seqset_is_saved(set)) {
		ret = resolve_saved(v, uids_r, count_r);
		if (ret < 0)
			*bad_r = "Out of memory";
	} else if (imap_seqset_resolve(set, uid ? (v->count > 0 ? v->msgs[v->count - 1].uid : 0)
						: (uint32_t)v->count) < 0) {
		*bad_r = "Out of memory";
		ret = -1;
	} else if (uid) {
		ret = resolve_uids(v, set, uids_r, count_r);
		if (ret < 0)
			*bad_r = "Out of memory";
	} else {
		ret = resolve_seqs(v, set, uids_r, count_r, bad_r);
	}
	imap_seqset_free(&set);
	return ret;
}

bool imap_view_is_recent(const struct imap_view *v, uint32_t uid)
{
	for (size_t i = 0; i < v->recent_count; i++) {
		if (uid >= v->recent[i].first && uid < v->recent[i].next)
			return true;
	}
	return false;
}

uint32_t imap_view_flags_out(const struct imap_view *v, uint32_t uid, uint32_t flags)
{
	return v != NULL && imap_view_is_recent(v, uid) ? flags | IMAP_FLAG_RECENT : flags;
}

size_t imap_view_recent_count(const struct imap_view *v)
{
	size_t n = 0;
	/* Ranges are few (one per claim) and msgs is sorted: count by bounds. */
	for (size_t i = 0; i < v->recent_count; i++)
		n += view_lower_bound(v, v->recent[i].next) - view_lower_bound(v, v->recent[i].first);
	return n;
}

void imap_view_add_recent(struct imap_view *v, uint32_t first, uint32_t next)
{
	if (first >= next)
		return;
	void *grown = realloc(v->recent, (v->recent_count + 1) * sizeof(*v->recent));
	if (grown == NULL)
		return;     /* \Recent is advisory: only the flag is lost */
	v->recent = grown;
	v->recent[v->recent_count].first = first;
	v->recent[v->recent_count].next = next;
	v->recent_count++;
}

/* A read-only view (EXAMINE) takes no \Recent away from later sessions
 * (RFC 3501 §6.3.2), but still shows as \Recent what no session has
 * claimed yet (§2.3.2): the store's unclaimed range, less what the view
 * counts already. A read on the loop thread: it never waits for a writer. */
static void view_peek_recent(struct imap_session *s)
{
	struct imap_view *v = s->view;
	uint32_t first, next, count;
	enum tern_error err;
	if (store_folder_peek_recent(s->store, v->folder, &first, &next, &count, &err) <= 0)
		return;     /* \Recent is advisory: only the flag is lost */
	for (size_t i = 0; i < v->recent_count; i++) {
		if (v->recent[i].next > first)
			first = v->recent[i].next;
	}
	imap_view_add_recent(v, first, next);
}

void imap_view_claim_recent(struct imap_session *s)
{
	struct imap_view *v = s->view;
	uint32_t first, next;
	enum tern_error err;
	/* an IMAP4rev2 session knows no \Recent (RFC 9051): it claims none,
	 * so IMAP4rev1 sessions still see them */
	if (v == NULL || s->imap4rev2)
		return;
	if (v->readonly) {
		view_peek_recent(s);
		return;
	}
	/* A write on the loop thread, so it must cost the loop nothing: it
	 * gives up at once when another handle holds the store's write lock
	 * (the user's worker, or another process) instead of waiting, and
	 * it does not fsync (a claim lost in a crash only makes messages
	 * recent again). \Recent is advisory: a claim that gives up leaves
	 * the folder's mark where it was, and the next claim, here or in
	 * another session, takes those messages. SELECT claims on the
	 * worker instead (cmd-select.c), where it can wait. */
	store_set_busy_timeout(s->store, 0);
	bool relaxed = store_set_durable(s->store, false, &err) == 0;
	int r = store_folder_claim_recent(s->store, v->folder, &first, &next, &err);
	if (relaxed && store_set_durable(s->store, true, &err) < 0)
		log_warn("imap: user=%s: store handle left without fsync on commit: %s",
			 s->user != NULL ? s->user : "?", tern_error_str(err));
	store_set_busy_timeout(s->store, TERN_STORE_BUSY_TIMEOUT_MS);
	if (r > 0)
		imap_view_add_recent(v, first, next);
}
