/* PREVIEW (RFC 8970): a short plain-text preview of a message, made from
 * its first text part. Two steps: imap_preview_text() finds that part in the
 * raw message with GMime and decodes it (transfer encoding, charset to
 * UTF-8); imap_preview_normalize() is a pure function over those bytes
 * (markup dropped for HTML, quoted lines dropped for plain text, whitespace
 * runs to one space, cut at IMAP_PREVIEW_MAX_CHARS characters), unit-tested
 * and fuzzed on its own. No I/O in either. */
#ifndef TERN_PROTO_IMAP_PREVIEW_H
#define TERN_PROTO_IMAP_PREVIEW_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 8970 §3.1: the preview is at most 256 characters. */
#define IMAP_PREVIEW_MAX_CHARS 256
/* ... of at most 4 UTF-8 bytes each. */
#define IMAP_PREVIEW_MAX_BYTES (IMAP_PREVIEW_MAX_CHARS * 4)
/* Decoded text looked at: a preview never needs more (the rest is markup
 * or whitespace at worst, which a real message does not hold this much of
 * before its first words). */
#define IMAP_PREVIEW_SCAN_MAX (256 * 1024)

/* Message bytes read for a FETCH whose only use of the body is PREVIEW:
 * the first text part of a real message starts well before this (the
 * parser takes a cut-off message as it comes), so a folder's previews do
 * not read every attachment. */
#define IMAP_PREVIEW_READ_MAX (256 * 1024)

/* Writes the preview of text [0, len) into out (cap >= IMAP_PREVIEW_MAX_BYTES
 * + 1, NUL-terminated); returns its length in bytes. html: text/html, whose
 * tags, comments, <style>/<script> contents are dropped and a few entities
 * decoded. The result is valid UTF-8 (invalid input bytes are dropped) with
 * no control characters, no leading or trailing space and no two spaces in a
 * row; for plain text, lines starting with '>' (quoted replies) are left out. */
size_t imap_preview_normalize(const char *text, size_t len, bool html, char *out, size_t cap);

/* The preview of the raw message [0, size) (or its first bytes): *preview_r is a heap string
 * (free()), "" when the message has no text part. 0, or -1 when out of
 * memory. */
int imap_preview_text(const char *raw, size_t size, char **preview_r);

#endif
