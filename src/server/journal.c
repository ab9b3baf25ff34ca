#include "server/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Record layout (little-endian host order; the journal never leaves the node):
 *   u32 magic, u32 type, u64 id, u32 payload_len, u32 crc32(payload)
 *   payload: u32 flags, i32 tz, i64 date, u32 user_len, u32 folder_len,
 *            u32 keywords_len, u64 data_len, user, folder, keywords, data
 * A JOURNAL_RCPT record's data starts with the u64 message id it refers to. */
#define JOURNAL_MAGIC 0x314a5254u /* "TRJ1" */
#define JOURNAL_HEADER 24u
#define JOURNAL_PAYLOAD_FIXED 36u
#define JOURNAL_MAX_PAYLOAD (2ull * 1024 * 1024 * 1024)

struct journal {
	int fd;
	uint64_t synced_size;
	uint8_t *pending;
	size_t pending_len, pending_cap;
};

int journal_open(const char *path, struct journal **j_r, char **err_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (asprintf(err_r, "%s: %s", path, strerror(errno)) < 0)
			*err_r = NULL;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		if (asprintf(err_r, "%s: %s", path, strerror(errno)) < 0)
			*err_r = NULL;
		close(fd);
		return -1;
	}
	struct journal *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		close(fd);
		*err_r = strdup("out of memory");
		return -1;
	}
	j->fd = fd;
	j->synced_size = (uint64_t)st.st_size;
	*j_r = j;
	return 0;
}

void journal_close(struct journal **jp)
{
	struct journal *j = *jp;
	if (j == NULL)
		return;
	*jp = NULL;
	close(j->fd);
	free(j->pending);
	free(j);
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static size_t data_field_size(const struct journal_record *rec)
{
	return rec->size + (rec->type == JOURNAL_RCPT ? 8 : 0);
}

static size_t journal_encoded_size(const struct journal_record *rec)
{
	return JOURNAL_HEADER + JOURNAL_PAYLOAD_FIXED + strlen(rec->user) + strlen(rec->folder) +
	       strlen(rec->keywords != NULL ? rec->keywords : "") + data_field_size(rec);
}

static void journal_encode_into(const struct journal_record *rec, uint8_t *out)
{
	const char *kw = rec->keywords != NULL ? rec->keywords : "";
	size_t ul = strlen(rec->user), fl = strlen(rec->folder), kl = strlen(kw);
	size_t dl = data_field_size(rec);
	size_t payload = JOURNAL_PAYLOAD_FIXED + ul + fl + kl + dl;
	uint8_t *p = out + JOURNAL_HEADER;
	put32(p, rec->flags);
	put32(p + 4, (uint32_t)rec->internal_tz);
	put64(p + 8, (uint64_t)rec->internal_date);
	put32(p + 16, (uint32_t)ul);
	put32(p + 20, (uint32_t)fl);
	put32(p + 24, (uint32_t)kl);
	put64(p + 28, dl);
	p += JOURNAL_PAYLOAD_FIXED;
	memcpy(p, rec->user, ul);
	p += ul;
	memcpy(p, rec->folder, fl);
	p += fl;
	memcpy(p, kw, kl);
	p += kl;
	if (rec->type == JOURNAL_RCPT) {
		put64(p, rec->message_id);
		p += 8;
	}
	if (rec->size > 0)
		memcpy(p, rec->data, rec->size);
	put32(out, JOURNAL_MAGIC);
	put32(out + 4, (uint32_t)rec->type);
	put64(out + 8, rec->id);
	put32(out + 16, (uint32_t)payload);
	uLong crc = crc32(0L, Z_NULL, 0);
	/* zlib's crc32 takes a uInt length: feed large payloads in slices. */
	const uint8_t *q = out + JOURNAL_HEADER;
	for (size_t left = payload; left > 0;) {
		uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
		crc = crc32(crc, q, n);
		q += n;
		left -= n;
	}
	put32(out + 20, (uint32_t)crc);
}

int journal_encode(const struct journal_record *rec, uint8_t **buf_r, size_t *len_r)
{
	size_t len = journal_encoded_size(rec);
	uint8_t *buf = malloc(len);
	if (buf == NULL)
		return -1;
	journal_encode_into(rec, buf);
	*buf_r = buf;
	*len_r = len;
	return 0;
}

int journal_add(struct journal *j, const struct journal_record *rec)
{
	size_t len = journal_encoded_size(rec);
	if (j->pending_len + len > j->pending_cap) {
		size_t cap = j->pending_cap > 0 ? j->pending_cap : 64 * 1024;
		while (cap < j->pending_len + len)
			cap *= 2;
		uint8_t *p = realloc(j->pending, cap);
		if (p == NULL)
			return -1;
		j->pending = p;
		j->pending_cap = cap;
	}
	journal_encode_into(rec, j->pending + j->pending_len);
	j->pending_len += len;
	return 0;
}

int journal_sync(struct journal *j)
{
	size_t off = 0;
	while (off < j->pending_len) {
		ssize_t n = pwrite(j->fd, j->pending + off, j->pending_len - off,
				   (off_t)(j->synced_size + off));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)n;
	}
	if (j->pending_len > 0 && fdatasync(j->fd) < 0)
		goto fail;
	j->synced_size += j->pending_len;
	j->pending_len = 0;
	/* Keep a big buffer from one large message from staying allocated. */
	if (j->pending_cap > 8 * 1024 * 1024) {
		free(j->pending);
		j->pending = NULL;
		j->pending_cap = 0;
	}
	return 0;
fail:;
	int saved = errno;
	/* Nothing of this group may count as journaled: cut the file back. */
	if (ftruncate(j->fd, (off_t)j->synced_size) == 0)
		(void)fdatasync(j->fd);
	j->pending_len = 0;
	errno = saved;
	return -1;
}

void journal_discard(struct journal *j)
{
	j->pending_len = 0;
}

uint64_t journal_size(const struct journal *j)
{
	return j->synced_size + j->pending_len;
}

int journal_reset(struct journal *j)
{
	if (ftruncate(j->fd, 0) < 0 || fsync(j->fd) < 0)
		return -1;
	j->synced_size = 0;
	return 0;
}

int journal_decode(const uint8_t *buf, size_t len, struct journal_record *rec_r, size_t *used_r)
{
	if (len < JOURNAL_HEADER || get32(buf) != JOURNAL_MAGIC)
		return 0;
	uint32_t type = get32(buf + 4);
	uint64_t payload = get32(buf + 16);
	if (type < JOURNAL_DELIVER || type > JOURNAL_RCPT || payload < JOURNAL_PAYLOAD_FIXED ||
	    payload > JOURNAL_MAX_PAYLOAD || payload > len - JOURNAL_HEADER)
		return 0;
	const uint8_t *p = buf + JOURNAL_HEADER;
	uLong crc = crc32(0L, Z_NULL, 0);
	const uint8_t *q = p;
	for (size_t left = payload; left > 0;) {
		uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
		crc = crc32(crc, q, n);
		q += n;
		left -= n;
	}
	if ((uint32_t)crc != get32(buf + 20))
		return 0;
	uint64_t ul = get32(p + 16), fl = get32(p + 20), kl = get32(p + 24), dl = get64(p + 28);
	if (JOURNAL_PAYLOAD_FIXED + ul + fl + kl + dl != payload || (type == JOURNAL_RCPT && dl < 8))
		return 0;
	static _Thread_local char strings[3][1100];
	if (ul >= sizeof(strings[0]) || fl >= sizeof(strings[1]) || kl >= sizeof(strings[2]))
		return 0;
	const uint8_t *s = p + JOURNAL_PAYLOAD_FIXED;
	memcpy(strings[0], s, ul);
	strings[0][ul] = '\0';
	memcpy(strings[1], s + ul, fl);
	strings[1][fl] = '\0';
	memcpy(strings[2], s + ul + fl, kl);
	strings[2][kl] = '\0';
	rec_r->type = (enum journal_record_type)type;
	rec_r->id = get64(buf + 8);
	rec_r->flags = get32(p);
	rec_r->internal_tz = (int32_t)get32(p + 4);
	rec_r->internal_date = (int64_t)get64(p + 8);
	rec_r->user = strings[0];
	rec_r->folder = strings[1];
	rec_r->keywords = strings[2];
	rec_r->data = s + ul + fl + kl;
	rec_r->size = dl;
	rec_r->message_id = 0;
	if (type == JOURNAL_RCPT) {
		rec_r->message_id = get64(s + ul + fl + kl);
		rec_r->data = s + ul + fl + kl + 8;
		rec_r->size = dl - 8;
	}
	*used_r = JOURNAL_HEADER + payload;
	return 1;
}

int journal_replay(const char *path, int (*fn)(const struct journal_record *rec, void *ctx),
		   void *ctx, uint64_t *max_id_r, char **err_r)
{
	*max_id_r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (asprintf(err_r, "%s: %s", path, strerror(errno)) < 0)
			*err_r = NULL;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size == 0) {
		close(fd);
		return 0;
	}
	size_t len = (size_t)st.st_size;
	uint8_t *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		if (asprintf(err_r, "%s: mmap: %s", path, strerror(errno)) < 0)
			*err_r = NULL;
		return -1;
	}
	int ret = 0;
	size_t off = 0, used;
	struct journal_record rec;
	while (off < len && journal_decode(map + off, len - off, &rec, &used) == 1) {
		if (rec.id > *max_id_r)
			*max_id_r = rec.id;
		if (fn(&rec, ctx) < 0) {
			if (asprintf(err_r, "%s: replay of delivery %llu failed", path,
				     (unsigned long long)rec.id) < 0)
				*err_r = NULL;
			ret = -1;
			break;
		}
		off += used;
	}
	munmap(map, len);
	return ret;
}
