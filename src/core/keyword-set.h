/* A set of IMAP keywords, which compare case-insensitively (RFC 3501
 * §2.3.2), kept at the same time as the one space-separated string the
 * store and the wire use: each keyword once, in the order it was first
 * added, spelled as it was first added.
 *
 * Every step of the keyword path (IMAP parsing, the store's normalising and
 * flag updates, the view's list of announced keywords) goes through it, so
 * none of them costs more than linear time in the number of keywords: a
 * client naming 10,000 keywords used to pay, and make every other session
 * on its loop thread pay, a rescan of the list per keyword. The hash is
 * SipHash under a per-process random key, so a client cannot pick keywords
 * that all land in one bucket either. */
#ifndef TERN_CORE_KEYWORD_SET_H
#define TERN_CORE_KEYWORD_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct keyword_slot;

struct keyword_set {
	char *text;                  /* "kw1 kw2"; NULL while empty */
	size_t text_len, text_cap;
	struct keyword_slot *slots;  /* open addressing, slot_cap a power of two */
	size_t count, slot_cap;
};

#define KEYWORD_SET_INIT { 0 }

/* Frees everything; the set is empty and usable again. */
void keyword_set_clear(struct keyword_set *set);

/* Adds kw (len bytes, no spaces) unless a keyword equal to it ignoring ASCII
 * case is there. 1 added, 0 already there (or len 0), -1 out of memory. */
int keyword_set_add(struct keyword_set *set, const char *kw, size_t len);

/* Adds each keyword of a space-separated list (NULL = none); *added_r (may
 * be NULL) counts the new ones, also when it fails. 0, or -1 out of memory. */
int keyword_set_add_list(struct keyword_set *set, const char *list, size_t *added_r);

bool keyword_set_contains(const struct keyword_set *set, const char *kw, size_t len);

static inline size_t keyword_set_count(const struct keyword_set *set)
{
	return set->count;
}

/* The keywords as "kw1 kw2", "" when empty; valid until the set changes. */
const char *keyword_set_text(const struct keyword_set *set);

/* Hands over the string (heap; NULL when the set is empty), clearing the set. */
char *keyword_set_take_text(struct keyword_set *set);

/* Steps through a space-separated list: the next keyword into *kw_r, *len_r
 * and true, or false at the end. Runs of spaces separate like one. */
bool keyword_list_next(const char **cursor, const char **kw_r, size_t *len_r);

#endif
