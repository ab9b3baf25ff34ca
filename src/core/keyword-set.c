/* Keyword sets: see keyword-set.h. An open-addressing hash table over
 * offsets into the set's own string, so the string is the set's storage
 * and handing it over costs nothing. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/keyword-set.h"

struct keyword_slot {
	uint32_t offset;   /* into text */
	uint32_t len;      /* 0 = free slot (keywords are never empty) */
	uint32_t hash;
};

#define SLOTS_MIN 16

/* ---- hashing ---- */

static uint64_t hash_key[2];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
	if (getrandom(hash_key, sizeof(hash_key), GRND_NONBLOCK) == (ssize_t)sizeof(hash_key))
		return;
	/* No entropy yet (early boot): the clock and where the loader put us
	 * still differ from run to run, which is all the key must do. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	hash_key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
	hash_key[1] = (uint64_t)(uintptr_t)&hash_key * 0xc2b2ae3d27d4eb4full ^ (uint64_t)clock();
}

static inline unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool ascii_case_equal(const char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
			return false;
	}
	return true;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                            \
	do {                                                                \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);  \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                      \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                      \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);  \
	} while (0)

/* SipHash-1-3 of the ASCII-lowercased bytes: equal keywords in any case
 * hash alike, and without the key nobody can aim keywords at one bucket. */
static uint32_t keyword_hash(const char *s, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ hash_key[0];
	uint64_t v1 = 0x646f72616e646f6dull ^ hash_key[1];
	uint64_t v2 = 0x6c7967656e657261ull ^ hash_key[0];
	uint64_t v3 = 0x7465646279746573ull ^ hash_key[1];
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	uint64_t m;

	for (; i + 8 <= len; i += 8) {
		m = 0;
		for (unsigned j = 0; j < 8; j++)
			m |= (uint64_t)ascii_lower(p[i + j]) << (8 * j);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	m = (uint64_t)len << 56;
	for (unsigned j = 0; i + j < len; j++)
		m |= (uint64_t)ascii_lower(p[i + j]) << (8 * j);
	v3 ^= m;
	SIPROUND;
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	m = v0 ^ v1 ^ v2 ^ v3;
	return (uint32_t)(m ^ (m >> 32));
}

/* ---- the table ---- */

/* The slot holding kw, or the free slot where it would go. */
static struct keyword_slot *slot_find(const struct keyword_set *set, const char *kw, size_t len,
				      uint32_t hash)
{
	size_t mask = set->slot_cap - 1;

	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct keyword_slot *slot = &set->slots[i];

		if (slot->len == 0)
			return slot;
		if (slot->hash == hash && slot->len == len &&
		    ascii_case_equal(set->text + slot->offset, kw, len))
			return slot;
	}
}

/* Doubles the table when it would pass half full (short probe runs). */
static int slots_reserve(struct keyword_set *set)
{
	if ((set->count + 1) * 2 <= set->slot_cap)
		return 0;
	size_t cap = set->slot_cap > 0 ? set->slot_cap * 2 : SLOTS_MIN;
	struct keyword_slot *old = set->slots;
	size_t old_cap = set->slot_cap;
	struct keyword_slot *slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return -1;
	set->slots = slots;
	set->slot_cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].len == 0)
			continue;
		size_t mask = cap - 1, j = old[i].hash & mask;

		while (slots[j].len != 0)
			j = (j + 1) & mask;
		slots[j] = old[i];
	}
	free(old);
	return 0;
}

static int text_append(struct keyword_set *set, const char *kw, size_t len)
{
	size_t need = set->text_len + (set->text_len > 0) + len + 1;

	if (need > set->text_cap) {
		size_t cap = set->text_cap > 0 ? set->text_cap : 64;

		while (cap < need)
			cap *= 2;
		char *grown = realloc(set->text, cap);

		if (grown == NULL)
			return -1;
		set->text = grown;
		set->text_cap = cap;
	}
	if (set->text_len > 0)
		set->text[set->text_len++] = ' ';
	memcpy(set->text + set->text_len, kw, len);
	set->text_len += len;
	set->text[set->text_len] = '\0';
	return 0;
}

void keyword_set_clear(struct keyword_set *set)
{
	free(set->text);
	free(set->slots);
	*set = (struct keyword_set)KEYWORD_SET_INIT;
}

int keyword_set_add(struct keyword_set *set, const char *kw, size_t len)
{
	if (len == 0)
		return 0;
	/* offsets and lengths are 32 bits: a 4 GiB keyword list is refused */
	if (len >= UINT32_MAX || set->text_len + len + 2 >= UINT32_MAX)
		return -1;
	(void)pthread_once(&hash_key_once, hash_key_init);
	uint32_t hash = keyword_hash(kw, len);

	if (set->slot_cap > 0 && slot_find(set, kw, len, hash)->len != 0)
		return 0;
	if (slots_reserve(set) < 0)
		return -1;
	size_t offset = set->text_len + (set->text_len > 0);

	if (text_append(set, kw, len) < 0)
		return -1;
	struct keyword_slot *slot = slot_find(set, kw, len, hash);

	*slot = (struct keyword_slot){ .offset = (uint32_t)offset, .len = (uint32_t)len,
				       .hash = hash };
	set->count++;
	return 1;
}

int keyword_set_add_list(struct keyword_set *set, const char *list, size_t *added_r)
{
	const char *kw;
	size_t len, added = 0;
	int ret = 0;

	while (keyword_list_next(&list, &kw, &len)) {
		int r = keyword_set_add(set, kw, len);

		if (r < 0) {
			ret = -1;
			break;
		}
		added += (size_t)r;
	}
	if (added_r != NULL)
		*added_r = added;
	return ret;
}

bool keyword_set_contains(const struct keyword_set *set, const char *kw, size_t len)
{
	if (set->count == 0 || len == 0)
		return false;
	(void)pthread_once(&hash_key_once, hash_key_init);
	return slot_find(set, kw, len, keyword_hash(kw, len))->len != 0;
}

const char *keyword_set_text(const struct keyword_set *set)
{
	return set->text != NULL ? set->text : "";
}

char *keyword_set_take_text(struct keyword_set *set)
{
	char *text = set->count > 0 ? set->text : NULL;

	if (text != NULL)
		set->text = NULL;
	keyword_set_clear(set);
	return text;
}

bool keyword_list_next(const char **cursor, const char **kw_r, size_t *len_r)
{
	const char *p = *cursor;

	if (p == NULL)
		return false;
	p += strspn(p, " ");
	if (*p == '\0') {
		*cursor = p;
		return false;
	}
	*kw_r = p;
	*len_r = strcspn(p, " ");
	*cursor = p + *len_r;
	return true;
}
