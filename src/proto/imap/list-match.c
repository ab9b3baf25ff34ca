#include "proto/imap/list-match.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct list_pattern {
	size_t len;
	bool has_percent;
	/* One DP row per matched byte, reused: matching never allocates. Two
	 * rows of len + 1 cells live after the text. */
	unsigned char *rows;
	char text[];
};

struct list_pattern *list_pattern_new(const char *ref, const char *pattern)
{
	size_t ref_len = strlen(ref), pat_len = strlen(pattern);

	if (ref_len > 0 && ref[ref_len - 1] == LIST_SEPARATOR && pattern[0] == LIST_SEPARATOR) {
		pattern++;
		pat_len--;
	}
	if (ref_len + pat_len > TERN_LIST_PATTERN_MAX)
		return NULL;
	size_t cap = ref_len + pat_len;
	struct list_pattern *p = malloc(sizeof(*p) + cap + 1 + 2 * (cap + 1));
	if (p == NULL)
		return NULL;
	size_t n = 0;
	p->has_percent = false;
	for (size_t i = 0; i < cap; i++) {
		char c = i < ref_len ? ref[i] : pattern[i - ref_len];
		if (c == '*' && n > 0 && p->text[n - 1] == '*')
			continue;
		if (c == '%')
			p->has_percent = true;
		p->text[n++] = c;
	}
	p->text[n] = '\0';
	p->len = n;
	p->rows = (unsigned char *)p->text + cap + 1;
	return p;
}

void list_pattern_free(struct list_pattern **p)
{
	free(*p);
	*p = NULL;
}

bool list_pattern_has_percent(const struct list_pattern *p)
{
	return p->has_percent;
}

const char *list_pattern_text(const struct list_pattern *p)
{
	return p->text;
}

static bool has_inbox_prefix(const char *name)
{
	return strncmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == LIST_SEPARATOR);
}

static char ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

bool list_pattern_match(const struct list_pattern *p, const char *name)
{
	/* The rows are scratch space of a logically const pattern. */
	unsigned char *cur = p->rows, *next = p->rows + p->len + 1, *tmp;
	const size_t m = p->len;
	const size_t inbox_len = has_inbox_prefix(name) ? 5 : 0;

	/* cur[j]: the first j pattern bytes match the name bytes read so far. */
	cur[0] = 1;
	for (size_t j = 1; j <= m; j++) {
		char pc = p->text[j - 1];
		cur[j] = cur[j - 1] && (pc == '*' || pc == '%');
	}
	for (size_t i = 0; name[i] != '\0'; i++) {
		char c = name[i];
		bool any = false;
		next[0] = 0;
		for (size_t j = 1; j <= m; j++) {
			char pc = p->text[j - 1];
			bool v;
			if (pc == '*')
				v = cur[j] || next[j - 1];
			else if (pc == '%')
				v = (cur[j] && c != LIST_SEPARATOR) || next[j - 1];
			else
				v = cur[j - 1] &&
				    (pc == c || (i < inbox_len && ascii_upper(pc) == c));
			next[j] = v;
			any |= v;
		}
		if (!any)
			return false;
		tmp = cur;
		cur = next;
		next = tmp;
	}
	return cur[m] != 0;
}

int list_name_cmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	while (*x != '\0' && *x == *y) {
		x++;
		y++;
	}
	if (*x == *y)
		return 0;
	/* Map the separator just above NUL so "a/b" sorts before "a b". */
	unsigned cx = *x == LIST_SEPARATOR ? 1 : *x == '\0' ? 0 : (unsigned)*x + 1;
	unsigned cy = *y == LIST_SEPARATOR ? 1 : *y == '\0' ? 0 : (unsigned)*y + 1;
	return cx < cy ? -1 : 1;
}

bool list_name_is_under(const char *name, const char *parent)
{
	size_t n = strlen(parent);

	return strncmp(name, parent, n) == 0 && name[n] == LIST_SEPARATOR;
}

int list_mark_childinfo(const char *const *names, unsigned char *marks, size_t count)
{
	/* the chain of ancestors of the current name, as indexes */
	size_t *stack = malloc((count + 1) * sizeof(*stack)), depth = 0;

	if (stack == NULL)
		return -1;
	for (size_t i = 0; i < count; i++) {
		while (depth > 0 && !list_name_is_under(names[i], names[stack[depth - 1]]))
			depth--;
		if ((marks[i] & (LIST_MARK_MATCHED | LIST_MARK_MEETS)) == LIST_MARK_MEETS) {
			for (size_t k = 0; k < depth; k++)
				marks[stack[k]] |= LIST_MARK_CHILDINFO;
		}
		stack[depth++] = i;
	}
	free(stack);
	return 0;
}
