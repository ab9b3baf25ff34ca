#include "admin/ctl-output.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"

const struct ctl_column ctl_user_columns[] = {
	{"name", CTL_COL_STR}, {"home", CTL_COL_STR}, {"epoch", CTL_COL_NUM},
	{"state", CTL_COL_STR}, {"quota", CTL_COL_QUOTA},
};
const size_t ctl_user_columns_count = sizeof(ctl_user_columns) / sizeof(ctl_user_columns[0]);

const struct ctl_column ctl_node_columns[] = {
	{"name", CTL_COL_STR}, {"cluster", CTL_COL_STR}, {"lmtp", CTL_COL_STR},
	{"imap", CTL_COL_STR}, {"pop3", CTL_COL_STR}, {"version", CTL_COL_STR},
	{"started", CTL_COL_STR}, {"heartbeat", CTL_COL_STR}, {"status", CTL_COL_STR},
};
const size_t ctl_node_columns_count = sizeof(ctl_node_columns) / sizeof(ctl_node_columns[0]);

const struct ctl_column ctl_folder_columns[] = {
	{"name", CTL_COL_STR}, {"messages", CTL_COL_NUM}, {"unseen", CTL_COL_NUM},
	{"size", CTL_COL_NUM}, {"uidvalidity", CTL_COL_NUM}, {"uidnext", CTL_COL_NUM},
	{"highestmodseq", CTL_COL_NUM}, {"special_use", CTL_COL_STR},
	{"subscribed", CTL_COL_BOOL},
};
const size_t ctl_folder_columns_count =
	sizeof(ctl_folder_columns) / sizeof(ctl_folder_columns[0]);

const struct ctl_column ctl_message_columns[] = {
	{"uid", CTL_COL_NUM}, {"flags", CTL_COL_LIST}, {"size", CTL_COL_NUM},
	{"date", CTL_COL_STR}, {"subject", CTL_COL_STR},
};
const size_t ctl_message_columns_count =
	sizeof(ctl_message_columns) / sizeof(ctl_message_columns[0]);

/* Length of the valid UTF-8 sequence at s (RFC 3629 §4), 0 if invalid. The
 * same rules jansson applies, so whatever passes here json_string accepts. */
static size_t utf8_seq_len(const unsigned char *s)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;             /* overlong */
		else if (c == 0xed)
			hi = 0x9f;             /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;             /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;             /* above U+10FFFF */
	} else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return n;
}

json_t *ctl_json_string(const char *s)
{
	if (s == NULL)
		return json_null();
	size_t len = strlen(s);
	char *fixed = malloc(len * 3 + 1);     /* each bad byte may become 3 */
	if (fixed == NULL)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len((const unsigned char *)s + i);
		if (n == 0) {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(fixed + o, s + i, n);
			o += n;
			i += n;
		}
	}
	fixed[o] = '\0';
	json_t *v = json_stringn(fixed, o);
	free(fixed);
	return v;
}

size_t ctl_text_width(const char *s)
{
	size_t w = 0;
	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	}
	return w;
}

void ctl_format_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%" PRId64, t);
}

void ctl_format_size(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "KMGTPE";
	size_t u = 0;
	uint64_t v = bytes;
	while (v != 0 && v % 1024 == 0 && u < sizeof(units) - 1) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%" PRIu64, v);
	else
		snprintf(buf, size, "%" PRIu64 "%c", v, units[u - 1]);
}

json_t *ctl_flags_json(uint32_t flags, const char *keywords)
{
	static const struct { uint32_t bit; const char *name; } system_flags[] = {
		{STORE_FLAG_SEEN, "\\Seen"}, {STORE_FLAG_ANSWERED, "\\Answered"},
		{STORE_FLAG_FLAGGED, "\\Flagged"}, {STORE_FLAG_DELETED, "\\Deleted"},
		{STORE_FLAG_DRAFT, "\\Draft"},
	};
	json_t *arr = json_array();
	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
		if ((flags & system_flags[i].bit) != 0)
			json_array_append_new(arr, json_string(system_flags[i].name));
	}
	const char *p = keywords != NULL ? keywords : "";
	while (*p != '\0') {
		size_t skip = strspn(p, " ");
		p += skip;
		size_t n = strcspn(p, " ");
		if (n == 0)
			break;
		char *kw = strndup(p, n);
		if (kw != NULL)
			json_array_append_new(arr, ctl_json_string(kw));
		free(kw);
		p += n;
	}
	return arr;
}

static char *sanitize(const char *s)
{
	char *out = strdup(s);
	if (out == NULL)
		return NULL;
	for (char *p = out; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			*p = '?';
	}
	return out;
}

static char *list_text(const json_t *value)
{
	size_t n = json_is_array(value) ? json_array_size(value) : 0;
	if (n == 0)
		return strdup("-");
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(value, i));
		len += (s != NULL ? strlen(s) : 0) + 1;
	}
	char *out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(value, i));
		if (i > 0)
			out[o++] = ' ';
		if (s != NULL) {
			memcpy(out + o, s, strlen(s));
			o += strlen(s);
		}
	}
	out[o] = '\0';
	char *clean = sanitize(out);
	free(out);
	return clean;
}

char *ctl_cell_text(const json_t *value, enum ctl_col_type type)
{
	char buf[64];
	if (value == NULL || json_is_null(value))
		return strdup("-");
	switch (type) {
	case CTL_COL_LIST:
		return list_text(value);
	case CTL_COL_BOOL:
		return strdup(json_is_true(value) ? "yes" : "no");
	case CTL_COL_QUOTA:
		if (json_is_integer(value)) {
			json_int_t q = json_integer_value(value);
			if (q <= 0)
				return strdup("default");
			ctl_format_size((uint64_t)q, buf, sizeof(buf));
			return strdup(buf);
		}
		break;
	case CTL_COL_NUM:
	case CTL_COL_STR:
		break;
	}
	/* An empty cell would make the columns impossible to split by blanks. */
	if (json_is_string(value))
		return json_string_length(value) == 0 ? strdup("-")
						      : sanitize(json_string_value(value));
	if (json_is_integer(value)) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
		return strdup(buf);
	}
	if (json_is_boolean(value))
		return strdup(json_is_true(value) ? "yes" : "no");
	return strdup("?");
}

static int output_json(FILE *out, json_t *v)
{
	if (json_dumpf(v, out, JSON_INDENT(2)) != 0 || fputc('\n', out) == EOF)
		return -1;
	return 0;
}

/* Upper-cased header names, so the header stands out from the data. */
static char *header_text(const char *name)
{
	char *h = strdup(name);
	for (char *p = h; p != NULL && *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	}
	return h;
}

/* Prints one line of cells; numbers right-aligned, the last column unpadded
 * so no line carries trailing blanks. */
static void print_line(FILE *out, const struct ctl_column *cols, size_t ncols,
		       char **cells, const size_t *widths)
{
	for (size_t c = 0; c < ncols; c++) {
		const char *s = cells[c] != NULL ? cells[c] : "?";
		size_t pad = widths[c] - ctl_text_width(s);
		bool last = c + 1 == ncols;
		if (c > 0)
			fputs("  ", out);
		if (cols[c].type == CTL_COL_NUM)
			fprintf(out, "%*s%s", (int)pad, "", s);
		else
			fprintf(out, "%s%*s", s, last ? 0 : (int)pad, "");
	}
	fputc('\n', out);
}

int ctl_output_table(FILE *out, const struct ctl_column *cols, size_t ncols,
		     json_t *rows, bool json)
{
	if (json) {
		if (output_json(out, rows) != 0)
			return -1;
		return fflush(out) == 0 && !ferror(out) ? 0 : -1;
	}
	size_t nrows = json_array_size(rows);
	char **cells = calloc((nrows + 1) * ncols, sizeof(*cells));
	size_t *widths = calloc(ncols, sizeof(*widths));
	if (cells == NULL || widths == NULL) {
		free(cells);
		free(widths);
		return -1;
	}
	for (size_t c = 0; c < ncols; c++)
		cells[c] = header_text(cols[c].name);
	for (size_t r = 0; r < nrows; r++) {
		json_t *row = json_array_get(rows, r);
		for (size_t c = 0; c < ncols; c++)
			cells[(r + 1) * ncols + c] =
				ctl_cell_text(json_object_get(row, cols[c].name), cols[c].type);
	}
	for (size_t i = 0; i < (nrows + 1) * ncols; i++) {
		size_t w = cells[i] != NULL ? ctl_text_width(cells[i]) : 1;
		if (w > widths[i % ncols])
			widths[i % ncols] = w;
	}
	for (size_t r = 0; r <= nrows; r++)
		print_line(out, cols, ncols, cells + r * ncols, widths);
	for (size_t i = 0; i < (nrows + 1) * ncols; i++)
		free(cells[i]);
	free(cells);
	free(widths);
	return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

int ctl_output_object(FILE *out, const struct ctl_column *cols, size_t ncols,
		      json_t *obj, bool json)
{
	if (json) {
		if (output_json(out, obj) != 0)
			return -1;
		return fflush(out) == 0 && !ferror(out) ? 0 : -1;
	}
	size_t width = 0;
	for (size_t c = 0; c < ncols; c++) {
		if (strlen(cols[c].name) > width)
			width = strlen(cols[c].name);
	}
	for (size_t c = 0; c < ncols; c++) {
		char *text = ctl_cell_text(json_object_get(obj, cols[c].name), cols[c].type);
		fprintf(out, "%s:%*s  %s\n", cols[c].name, (int)(width - strlen(cols[c].name)), "",
			text != NULL ? text : "?");
		free(text);
	}
	return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}
