/* How ternctl shows results. Every command builds its result as JSON (an
 * array of objects, or one object), which is also what the admin API will
 * return; this module prints it either as JSON or as an aligned text table
 * with a header line, like ps. The formatting helpers are pure functions. */
#ifndef TERN_ADMIN_CTL_OUTPUT_H
#define TERN_ADMIN_CTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* How a field is shown as text; in JSON every field keeps its JSON type. */
enum ctl_col_type {
	CTL_COL_STR,   /* string, null or "" shown as "-" */
	CTL_COL_NUM,   /* integer, right-aligned */
	CTL_COL_BOOL,  /* true/false shown as yes/no */
	CTL_COL_LIST,  /* array of strings joined by spaces, empty shown as "-" */
	CTL_COL_QUOTA, /* integer bytes shown as "100M"; 0 shown as "default" */
};

struct ctl_column {
	const char *name;      /* the JSON field name (lowercase) */
	enum ctl_col_type type;
};

/* Field lists of each listing, in output order. */
extern const struct ctl_column ctl_user_columns[];
extern const size_t ctl_user_columns_count;
extern const struct ctl_column ctl_node_columns[];
extern const size_t ctl_node_columns_count;
extern const struct ctl_column ctl_folder_columns[];
extern const size_t ctl_folder_columns_count;
extern const struct ctl_column ctl_message_columns[];
extern const size_t ctl_message_columns_count;

/* Prints rows (a JSON array of objects) to out: as indented JSON when json is
 * true, else as a header line of upper-cased names and one aligned line per
 * row. Returns 0, or -1 when writing failed. */
int ctl_output_table(FILE *out, const struct ctl_column *cols, size_t ncols,
		     json_t *rows, bool json);

/* Prints one object: as JSON, or as "name:  value" lines in column order. */
int ctl_output_object(FILE *out, const struct ctl_column *cols, size_t ncols,
		      json_t *obj, bool json);

/* The text of one cell (heap string): control characters become '?' so a
 * hostile subject cannot forge lines or move the terminal cursor. */
char *ctl_cell_text(const json_t *value, enum ctl_col_type type);

/* Display width of UTF-8 text, counted in code points (good enough for the
 * names and subjects shown here; wide CJK glyphs are counted as one). */
size_t ctl_text_width(const char *s);

/* A JSON string for s; bytes that are not valid UTF-8 (which jansson would
 * refuse) become U+FFFD. NULL gives JSON null. */
json_t *ctl_json_string(const char *s);

/* Unix seconds as ISO 8601 UTC, "2026-11-25T10:00:00Z", into buf (>= 32). */
void ctl_format_time(int64_t t, char *buf, size_t size);

/* Bytes in the largest unit that divides them exactly, as config sizes are
 * written: 104857600 -> "100M", 2048 -> "2K", 1500 -> "1500". Exact, so the
 * text can be pasted back into "user quota". */
void ctl_format_size(uint64_t bytes, char *buf, size_t size);

/* IMAP flags as a JSON array of strings: system flags first, in the order
 * \Seen \Answered \Flagged \Deleted \Draft, then the keywords. */
json_t *ctl_flags_json(uint32_t flags, const char *keywords);

#endif
