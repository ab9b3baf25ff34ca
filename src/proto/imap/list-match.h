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

#endif
