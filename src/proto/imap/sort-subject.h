/* Base subject (RFC 5256 §2.1) and the comparison keys of SORT and THREAD:
 * strips Re:/Fwd:/[blob] leaders, "(fwd)" trailers and "[fwd: ...]" wrappers,
 * and maps strings for i;unicode-casemap (RFC 5051) and i;ascii-casemap
 * comparison, so that sorting is a plain strcmp of the keys. Pure code. */
#ifndef TERN_PROTO_IMAP_SORT_SUBJECT_H
#define TERN_PROTO_IMAP_SORT_SUBJECT_H

#include <stdbool.h>

/* The base subject of subject (UTF-8, encoded-words already decoded; any
 * left are decoded here), as a heap string ("" if nothing remains).
 * *is_reply_r (optional): a Re:/Fw:/Fwd: leader, a "(fwd)" trailer or a
 * "[fwd: ...]" wrapper was removed (RFC 5256 §2.2 step 5). NULL = out of
 * memory. */
char *imap_base_subject(const char *subject, bool *is_reply_r);

/* i;unicode-casemap key (RFC 5051: titlecase, then canonical decomposition)
 * of UTF-8 text; invalid UTF-8 is repaired first. strcmp of two keys orders
 * the texts. Heap string; NULL = out of memory. */
char *imap_sort_unicode_key(const char *s);

/* i;ascii-casemap key: a-z mapped to A-Z, nothing else changed. Heap
 * string; NULL = out of memory. */
char *imap_sort_ascii_key(const char *s);

#endif
