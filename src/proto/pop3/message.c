/* RETR/TOP shaping helpers (see message.h). */
#include "proto/pop3/message.h"

#include <stdio.h>
#include <string.h>

size_t pop3_next_dot_line(const char *data, size_t size, size_t from)
{
	if (from >= size)
		return size;
	if (data[from] == '.' && (from == 0 || data[from - 1] == '\n'))
		return from;
	size_t pos = from;
	for (;;) {
		const char *lf = memchr(data + pos, '\n', size - pos);
		if (lf == NULL)
			return size;
		pos = (size_t)(lf - data) + 1;
		if (pos >= size)
			return size;
		if (data[pos] == '.')
			return pos;
	}
}

/* Offset just past the blank line ending the header, or size if none. */
static size_t header_end(const char *data, size_t size)
{
	size_t pos = 0;
	while (pos < size) {
		/* pos is a line start: a blank line is "\r\n" or "\n" */
		if (data[pos] == '\n')
			return pos + 1;
		if (data[pos] == '\r' && pos + 1 < size && data[pos + 1] == '\n')
			return pos + 2;
		const char *lf = memchr(data + pos, '\n', size - pos);
		if (lf == NULL)
			return size;
		pos = (size_t)(lf - data) + 1;
	}
	return size;
}

size_t pop3_top_length(const char *data, size_t size, uint64_t body_lines)
{
	size_t pos = header_end(data, size);
	for (uint64_t i = 0; i < body_lines && pos < size; i++) {
		const char *lf = memchr(data + pos, '\n', size - pos);
		if (lf == NULL)
			return size;
		pos = (size_t)(lf - data) + 1;
	}
	return pos;
}

int pop3_uidl_format(char *buf, size_t size, uint32_t uidvalidity, uint32_t uid)
{
	return snprintf(buf, size, "%u.%u", uidvalidity, uid);
}
