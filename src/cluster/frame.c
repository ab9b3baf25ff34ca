#include "cluster/frame.h"

#include <string.h>

/* Field counts per type, and the fields whose size is fixed. */
struct frame_rule {
	size_t fields;
	int nonce_field;   /* index of a CLUSTER_NONCE_LEN field, or -1 */
	int mac_field;     /* index of a CLUSTER_MAC_LEN field, or -1 */
};

static const struct frame_rule *rule_of(unsigned type)
{
	static const struct frame_rule rules[] = {
		[CLUSTER_HELLO] = {3, 2, -1},
		[CLUSTER_CHALLENGE] = {3, 1, 2},
		[CLUSTER_AUTH] = {1, -1, 0},
		[CLUSTER_READY] = {0, -1, -1},
		[CLUSTER_OPEN] = {4, -1, -1},
		[CLUSTER_OPENED] = {2, -1, -1},
		[CLUSTER_ERROR] = {1, -1, -1},
		[CLUSTER_PING] = {0, -1, -1},
		[CLUSTER_PONG] = {0, -1, -1},
	};
	if (type < CLUSTER_HELLO || type > CLUSTER_PONG)
		return NULL;
	return &rules[type];
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

enum cluster_parse cluster_frame_parse(const uint8_t *data, size_t len, struct cluster_frame *frame,
				       size_t *used_r)
{
	*used_r = 0;
	if (len < 4)
		return CLUSTER_PARSE_NEED_MORE;
	uint32_t body = be32(data);
	if (body == 0 || body > CLUSTER_FRAME_MAX - 4)
		return CLUSTER_PARSE_INVALID;
	/* the type is known as soon as its byte is there */
	if (len >= 5 && rule_of(data[4]) == NULL)
		return CLUSTER_PARSE_INVALID;
	if (len < 4 + (size_t)body)
		return CLUSTER_PARSE_NEED_MORE;
	const struct frame_rule *rule = rule_of(data[4]);
	const uint8_t *p = data + 5, *end = data + 4 + body;
	size_t n = 0;
	while (p < end) {
		if (n == CLUSTER_FIELDS_MAX || end - p < 2)
			return CLUSTER_PARSE_INVALID;
		size_t flen = (size_t)p[0] << 8 | p[1];
		p += 2;
		if ((size_t)(end - p) < flen)
			return CLUSTER_PARSE_INVALID;
		frame->fields[n].data = p;
		frame->fields[n].len = flen;
		n++;
		p += flen;
	}
	if (n != rule->fields)
		return CLUSTER_PARSE_INVALID;
	if (rule->nonce_field >= 0 && frame->fields[rule->nonce_field].len != CLUSTER_NONCE_LEN)
		return CLUSTER_PARSE_INVALID;
	if (rule->mac_field >= 0 && frame->fields[rule->mac_field].len != CLUSTER_MAC_LEN)
		return CLUSTER_PARSE_INVALID;
	frame->type = (enum cluster_frame_type)data[4];
	frame->field_count = n;
	*used_r = 4 + (size_t)body;
	return CLUSTER_PARSE_OK;
}

size_t cluster_frame_encode(uint8_t *out, size_t cap, enum cluster_frame_type type,
			    const struct cluster_field *fields, size_t count)
{
	size_t total = 5;
	for (size_t i = 0; i < count; i++) {
		if (fields[i].len > 0xffff)
			return 0;
		total += 2 + fields[i].len;
	}
	if (total > cap || total > CLUSTER_FRAME_MAX)
		return 0;
	uint32_t body = (uint32_t)(total - 4);
	out[0] = (uint8_t)(body >> 24);
	out[1] = (uint8_t)(body >> 16);
	out[2] = (uint8_t)(body >> 8);
	out[3] = (uint8_t)body;
	out[4] = (uint8_t)type;
	uint8_t *p = out + 5;
	for (size_t i = 0; i < count; i++) {
		p[0] = (uint8_t)(fields[i].len >> 8);
		p[1] = (uint8_t)fields[i].len;
		if (fields[i].len > 0)
			memcpy(p + 2, fields[i].data, fields[i].len);
		p += 2 + fields[i].len;
	}
	return total;
}

bool cluster_field_str(const struct cluster_field *f, char *buf, size_t cap)
{
	if (f->len >= cap || (f->len > 0 && memchr(f->data, '\0', f->len) != NULL))
		return false;
	if (f->len > 0)
		memcpy(buf, f->data, f->len);
	buf[f->len] = '\0';
	return true;
}

bool cluster_field_is(const struct cluster_field *f, const char *s)
{
	size_t n = strlen(s);
	return f->len == n && (n == 0 || memcmp(f->data, s, n) == 0);
}
