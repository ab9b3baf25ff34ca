/* SORT keys and ordering: see sort-order.h. */
#include "proto/imap/sort-order.h"

#include <glib.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/sort-envelope.h"
#include "proto/imap/sort-subject.h"

unsigned imap_sort_cache_needs(const struct imap_sort_program *prog)
{
	unsigned needs = 0;
	for (size_t i = 0; i < prog->crit_count; i++) {
		enum imap_sort_key k = prog->crit[i].key;
		if (k != IMAP_SORT_ARRIVAL && k != IMAP_SORT_SIZE)
			needs |= 1u << k;
	}
	return needs;
}

/* addr-mailbox of the first address (RFC 5256: FROM, TO, CC). */
static char *mailbox_key(const char *envelope, enum imap_env_field f, int *err)
{
	struct imap_env_addr a;
	int r = imap_env_first_addr(envelope, f, &a);
	if (r < 0) {
		*err = -1;
		return NULL;
	}
	char *key = imap_sort_ascii_key(r > 0 && a.mailbox != NULL ? a.mailbox : "");
	if (r > 0)
		imap_env_addr_clear(&a);
	if (key == NULL)
		*err = -1;
	return key;
}

/* RFC 5957 §3: the decoded display name if not empty, else the addr-spec. */
static char *display_key(const char *envelope, enum imap_env_field f, int *err)
{
	struct imap_env_addr a;
	int r = imap_env_first_addr(envelope, f, &a);
	char *text = NULL;
	if (r < 0) {
		*err = -1;
		return NULL;
	}
	if (r > 0 && a.name != NULL) {
		char *dec = g_mime_utils_header_decode_phrase(NULL, a.name);
		if (dec != NULL) {
			g_strstrip(dec);
			if (*dec != '\0')
				text = g_strdup(dec);
			g_free(dec);
		}
	}
	if (text == NULL && r > 0)
		text = g_strdup_printf("%s%s%s", a.mailbox != NULL ? a.mailbox : "",
				       a.host != NULL && *a.host != '\0' ? "@" : "",
				       a.host != NULL ? a.host : "");
	if (r > 0)
		imap_env_addr_clear(&a);
	char *key = imap_sort_unicode_key(text != NULL ? text : "");
	g_free(text);
	if (key == NULL)
		*err = -1;
	return key;
}

int imap_sort_fill_keys(struct imap_sort_msg *m, unsigned needs, const char *envelope,
			const char *subject, int64_t sent_date)
{
	int err = 0;
	m->date = sent_date != 0 ? sent_date : m->arrival;
	for (unsigned k = 0; k <= IMAP_SORT_DISPLAYTO && err == 0; k++) {
		if ((needs & (1u << k)) == 0 || m->keys[k] != NULL)
			continue;
		switch ((enum imap_sort_key)k) {
		case IMAP_SORT_SUBJECT: {
			char *base = imap_base_subject(subject != NULL ? subject : "", NULL);
			m->keys[k] = base != NULL ? imap_sort_unicode_key(base) : NULL;
			free(base);
			if (m->keys[k] == NULL)
				err = -1;
			break;
		}
		case IMAP_SORT_FROM:
			m->keys[k] = mailbox_key(envelope, IMAP_ENV_FROM, &err);
			break;
		case IMAP_SORT_TO:
			m->keys[k] = mailbox_key(envelope, IMAP_ENV_TO, &err);
			break;
		case IMAP_SORT_CC:
			m->keys[k] = mailbox_key(envelope, IMAP_ENV_CC, &err);
			break;
		case IMAP_SORT_DISPLAYFROM:
			m->keys[k] = display_key(envelope, IMAP_ENV_FROM, &err);
			break;
		case IMAP_SORT_DISPLAYTO:
			m->keys[k] = display_key(envelope, IMAP_ENV_TO, &err);
			break;
		default:
			break;
		}
	}
	return err;
}

static int cmp_num(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_i64(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int compare(const void *pa, const void *pb, void *arg)
{
	const struct imap_sort_msg *a = pa, *b = pb;
	const struct imap_sort_program *prog = arg;
	for (size_t i = 0; i < prog->crit_count; i++) {
		enum imap_sort_key k = prog->crit[i].key;
		int c;
		switch (k) {
		case IMAP_SORT_ARRIVAL:
			c = cmp_i64(a->arrival, b->arrival);
			break;
		case IMAP_SORT_DATE:
			c = cmp_i64(a->date, b->date);
			break;
		case IMAP_SORT_SIZE:
			c = cmp_num(a->size, b->size);
			break;
		default:
			c = strcmp(a->keys[k] != NULL ? a->keys[k] : "",
				   b->keys[k] != NULL ? b->keys[k] : "");
			break;
		}
		if (c != 0)
			return prog->crit[i].reverse ? -c : c;
	}
	return cmp_num(a->seq, b->seq);
}

void imap_sort_order(struct imap_sort_msg *msgs, size_t count,
		     const struct imap_sort_program *prog)
{
	if (count > 1)
		qsort_r(msgs, count, sizeof(*msgs), compare, (void *)prog);
}

void imap_sort_msgs_free(struct imap_sort_msg **_msgs, size_t count)
{
	struct imap_sort_msg *msgs = *_msgs;
	if (msgs == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		for (size_t k = 0; k <= IMAP_SORT_DISPLAYTO; k++)
			free(msgs[i].keys[k]);
	free(msgs);
	*_msgs = NULL;
}
