/* LIST/LSUB mailbox patterns (RFC 3501 §6.3.8): '*' matches any run of
 * characters, '%' any run without the hierarchy separator '/'. Pure string
 * code over the store's UTF-8 names, so LIST can be tested without a server. */
#ifndef TERN_PROTO_IMAP_LIST_MATCH_H
#define TERN_PROTO_IMAP_LIST_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/limits.h"

/* The hierarchy separator of every Tern mailbox name. */
#define LIST_SEPARATOR '/'

struct list_pattern;

/* Compiles reference + pattern (RFC 3501 §6.3.8: the reference is prepended
 * to the pattern; a separator at the end of the reference and another at the
 * start of the pattern count once). Runs of '*' collapse to one. NULL if the
 * joined pattern exceeds TERN_LIST_PATTERN_MAX or on allocation failure. */
struct list_pattern *list_pattern_new(const char *ref, const char *pattern);
void list_pattern_free(struct list_pattern **p);

/* True if name matches. The "INBOX" at the start of "INBOX" or "INBOX/..."
 * matches case-insensitively (RFC 3501 §5.1: INBOX is case-insensitive); the
 * rest of every name is compared byte for byte. O(len(name) * len(pattern)),
 * so no pattern can make matching exponential. */
bool list_pattern_match(const struct list_pattern *p, const char *name);

/* True if the pattern holds a '%' (LSUB §6.3.9 and LIST §6.3.8 then report
 * unlisted parents of deeper names). */
bool list_pattern_has_percent(const struct list_pattern *p);

/* The joined pattern text (after the reference was applied). */
const char *list_pattern_text(const struct list_pattern *p);

/* Hierarchy order: like strcmp, but the separator sorts before every other
 * byte, so a name's descendants follow it directly ("a", "a/b", "a b"). */
int list_name_cmp(const char *a, const char *b);

/* True if name is a strict descendant of parent ("a/b" under "a"). */
bool list_name_is_under(const char *name, const char *parent);

/* What LIST knows of each name when it applies RECURSIVEMATCH. */
enum list_mark {
	LIST_MARK_MATCHED = 1u << 0,   /* a pattern matches the name */
	LIST_MARK_MEETS = 1u << 1,     /* it meets the selection options */
	LIST_MARK_CHILDINFO = 1u << 2, /* set here: see list_mark_childinfo */
};

/* CHILDINFO (RFC 5258 §3.5) for names[0..count) in hierarchy order (each
 * name's descendants right after it, as list_name_cmp sorts them), with
 * marks[i] holding MATCHED and MEETS for names[i]: sets CHILDINFO on every
 * name with a strict descendant that meets the selection but is not in the
 * reply because no pattern matches it. A descendant the reply lists itself
 * gives its ancestors nothing (§3.5: no redundant responses). O(count *
 * depth). 0, or -1 when out of memory (marks unchanged but for CHILDINFO
 * bits already set). */
int list_mark_childinfo(const char *const *names, unsigned char *marks, size_t count);

#endif
