/* The cluster channel's frames (docs/cluster.md, "Protocol"): a node-to-node
 * connection starts with a few framed messages (handshake, then one OPEN),
 * after which it carries one protocol's byte stream. Pure functions over
 * bytes, no I/O, so they can be unit-tested and fuzzed (fuzz/fuzz-cluster.c).
 *
 *   frame = length(u32 big-endian, counts type + payload) type(u8) field*
 *   field = length(u16 big-endian) bytes */
#ifndef TERN_CLUSTER_FRAME_H
#define TERN_CLUSTER_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest frame (length included) either side accepts; bigger is a
 * protocol error, so a peer cannot make the other buffer without bound. */
#define CLUSTER_FRAME_MAX     4096u
#define CLUSTER_FIELDS_MAX    8u
#define CLUSTER_NONCE_LEN     32u
#define CLUSTER_MAC_LEN       32u
#define CLUSTER_PROTOCOL      "tern-cluster/1"

enum cluster_frame_type {
	CLUSTER_HELLO = 1,     /* dialler: protocol, node name, nonce */
	CLUSTER_CHALLENGE = 2, /* listener: node name, nonce, mac */
	CLUSTER_AUTH = 3,      /* dialler: mac */
	CLUSTER_READY = 4,     /* listener: (nothing) */
	CLUSTER_OPEN = 5,      /* dialler: kind, user, client address, flags */
	CLUSTER_OPENED = 6,    /* listener: status, text */
	CLUSTER_ERROR = 7,     /* either: text; the sender closes */
	CLUSTER_PING = 8,      /* dialler, on an idle pooled connection: (nothing) */
	CLUSTER_PONG = 9,      /* listener: (nothing) */
};

struct cluster_field {
	const uint8_t *data;   /* into the parsed buffer; not NUL-terminated */
	size_t len;
};

struct cluster_frame {
	enum cluster_frame_type type;
	size_t field_count;
	struct cluster_field fields[CLUSTER_FIELDS_MAX];
};

enum cluster_parse {
	CLUSTER_PARSE_OK,        /* *frame filled, *used bytes make it up */
	CLUSTER_PARSE_NEED_MORE, /* a valid prefix: wait for more bytes */
	CLUSTER_PARSE_INVALID,   /* close the connection */
};

/* Parses the frame at the start of data[0..len). INVALID when the length
 * is 0 or over CLUSTER_FRAME_MAX (decided from the first 4 bytes, before
 * the rest arrives), the type is unknown, the fields do not tile the
 * payload exactly, or the field count or a fixed field size is wrong for
 * the type. Any split of the same bytes gives the same result. */
enum cluster_parse cluster_frame_parse(const uint8_t *data, size_t len, struct cluster_frame *frame,
				       size_t *used_r);

/* Writes a frame into out[0..cap). Returns its size, or 0 if it does not
 * fit in cap or in CLUSTER_FRAME_MAX, or a field is over 65535 bytes. */
size_t cluster_frame_encode(uint8_t *out, size_t cap, enum cluster_frame_type type,
			    const struct cluster_field *fields, size_t count);

/* A field as a NUL-terminated copy into buf (cap includes the NUL); false
 * if it does not fit or holds a NUL byte. */
bool cluster_field_str(const struct cluster_field *f, char *buf, size_t cap);

/* A field holding the C string s (not its NUL). */
static inline struct cluster_field cluster_str_field(const char *s)
{
	size_t n = 0;
	while (s[n] != '\0')
		n++;
	return (struct cluster_field){(const uint8_t *)s, n};
}

/* Field equals the C string s. */
bool cluster_field_is(const struct cluster_field *f, const char *s);

#endif
