/* Pure helpers that shape a stored message for RETR and TOP (RFC 1939 §7):
 * where the lines needing a byte-stuffed '.' start, and how much of a message
 * TOP sends. They work on the raw bytes in place, so a large message is never
 * copied a second time. */
#ifndef TERN_PROTO_POP3_MESSAGE_H
#define TERN_PROTO_POP3_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

/* Offset of the first line start at or after `from` whose first byte is '.'
 * (a line starts at offset 0 and after every LF), or size if there is none.
 * The sender puts an extra '.' before each such line (RFC 1939 §3). */
size_t pop3_next_dot_line(const char *data, size_t size, size_t from);

/* Bytes of the message that TOP msg n sends: the header, the blank line
 * after it, and the first n body lines (all of it when the message is
 * shorter, or has no blank line at all). */
size_t pop3_top_length(const char *data, size_t size, uint64_t body_lines);

/* The UIDL of a message, "<uidvalidity>.<uid>": stable across sessions and
 * moves, since both numbers survive a move. Returns snprintf's count. */
int pop3_uidl_format(char *buf, size_t size, uint32_t uidvalidity, uint32_t uid);

#endif
