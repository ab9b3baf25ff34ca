/* FETCH attribute parser: see fetch-parse.h. The command parser hands over
 * "BODY.PEEK[HEADER.FIELDS (From To)]<0.512>" as one atom; this module splits
 * it into name, section text and partial, then the section into part numbers,
 * a section keyword and the header list. */
#include "proto/imap/fetch-parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"
#include "proto/imap/quote.h"

#define MODSEQ_MAX ((UINT64_C(1) << 63) - 1)

static const char err_nomem[] = "Out of memory";
static const char err_empty[] = "Missing FETCH attributes";
static const char err_unknown[] = "Unknown FETCH attribute";
static const char err_section[] = "Invalid section";
static const char err_partial[] = "Invalid partial";
static const char err_modifier[] = "Invalid FETCH modifier";
static const char err_vanished[] = "VANISHED needs UID FETCH and CHANGEDSINCE";
static const char err_extra[] = "Unexpected FETCH arguments";
static const char err_preview_mod[] = "Invalid PREVIEW modifier";

static const struct {
	const char *name;
	enum imap_fetch_type type;
} simple_atts[] = {
	{ "FLAGS", IMAP_FETCH_FLAGS },
	{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE },
	{ "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
	{ "ENVELOPE", IMAP_FETCH_ENVELOPE },
	{ "BODY", IMAP_FETCH_BODY },
	{ "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
	{ "UID", IMAP_FETCH_UID },
	{ "MODSEQ", IMAP_FETCH_MODSEQ },
	{ "RFC822", IMAP_FETCH_RFC822 },
	{ "RFC822.HEADER", IMAP_FETCH_RFC822_HEADER },
	{ "RFC822.TEXT", IMAP_FETCH_RFC822_TEXT },
	{ "PREVIEW", IMAP_FETCH_PREVIEW },
	{ "EMAILID", IMAP_FETCH_EMAILID },
	{ "THREADID", IMAP_FETCH_THREADID },
	{ "SAVEDATE", IMAP_FETCH_SAVEDATE },
};

/* RFC 3501 §6.4.5 macros. */
static const struct {
	const char *name;
	const char *items[5];
} macros[] = {
	{ "ALL", { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", NULL } },
	{ "FAST", { "FLAGS", "INTERNALDATE", "RFC822.SIZE", NULL, NULL } },
	{ "FULL", { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY" } },
};

/* Growable string for response names. */
struct sb {
	char *s;
	size_t len, cap;
	bool failed;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 32 : b->cap;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *ns = realloc(b->s, cap);
		if (ns == NULL) {
			b->failed = true;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void section_clear(struct imap_fetch_section *s)
{
	free(s->parts);
	for (size_t i = 0; i < s->field_count; i++)
		free(s->fields[i]);
	free(s->fields);
}

void imap_fetch_request_free(struct imap_fetch_request **_req)
{
	struct imap_fetch_request *req = *_req;

	if (req == NULL)
		return;
	for (size_t i = 0; i < req->count; i++) {
		section_clear(&req->atts[i].section);
		free(req->atts[i].response_name);
	}
	free(req->atts);
	free(req);
	*_req = NULL;
}

/* ---- section text ------------------------------------------------------- */

/* One header-fld-name at s[*i]: an atom or a quoted string. */
static char *parse_field_name(const char *s, size_t n, size_t *i)
{
	size_t k = *i;
	struct sb b = { 0 };

	if (k < n && s[k] == '"') {
		for (k++; k < n && s[k] != '"'; k++) {
			if (s[k] == '\\' && k + 1 < n)
				k++;
			sb_add(&b, s + k, 1);
		}
		if (k >= n) {
			free(b.s);
			return NULL;
		}
		k++;
	} else {
		size_t start = k;
		while (k < n && s[k] != ' ' && s[k] != ')' && s[k] != '(' && s[k] != '"')
			k++;
		sb_add(&b, s + start, k - start);
	}
	/* RFC 5322 §3.6.8 field names: printable, no colon; never empty. */
	bool ok = !b.failed && b.len > 0;
	for (size_t j = 0; ok && j < b.len; j++)
		ok = b.s[j] > 0x20 && b.s[j] < 0x7f && b.s[j] != ':';
	if (!ok) {
		free(b.s);
		return NULL;
	}
	*i = k;
	return b.s;
}

/* " (name *(SP name))" after HEADER.FIELDS[.NOT]; must end the section. */
static bool parse_field_list(const char *s, size_t n, struct imap_fetch_section *sec)
{
	size_t i = 0;

	if (n < 4 || s[0] != ' ' || s[1] != '(' || s[n - 1] != ')')
		return false;
	n--;
	i = 2;
	for (;;) {
		char *name = parse_field_name(s, n, &i);
		if (name == NULL)
			return false;
		char **nf = realloc(sec->fields, (sec->field_count + 1) * sizeof(*nf));
		if (nf == NULL) {
			free(name);
			return false;
		}
		sec->fields = nf;
		sec->fields[sec->field_count++] = name;
		if (i == n)
			return true;
		if (s[i] != ' ')
			return false;
		i++;
	}
}

/* section-spec (RFC 3501 §9): [part *("." part)] ["." keyword] or keyword. */
static bool parse_section(const char *s, size_t n, bool binary, struct imap_fetch_section *sec)
{
	size_t i = 0;

	while (i < n && s[i] >= '0' && s[i] <= '9') {
		size_t start = i;
		uint32_t part;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (s[start] == '0' || !imap_parse_u32(s + start, i - start, &part) ||
		    sec->part_count >= TERN_FETCH_PART_DEPTH_MAX)
			return false;
		uint32_t *np = realloc(sec->parts, (sec->part_count + 1) * sizeof(*np));
		if (np == NULL)
			return false;
		sec->parts = np;
		sec->parts[sec->part_count++] = part;
		if (i == n)
			return true;
		if (s[i] != '.')
			return false;
		i++;
		if (i == n)
			return false;
	}
	if (i == n)
		return true;                       /* BODY[] */
	if (binary)
		return false;                      /* RFC 3516 section-binary: parts only */
	size_t kw = i;
	while (i < n && s[i] != ' ')
		i++;
	size_t kwlen = i - kw;
	const char *k = s + kw;
#define IS_KW(lit) (kwlen == sizeof(lit) - 1 && strncasecmp(k, lit, kwlen) == 0)
	if (IS_KW("HEADER.FIELDS.NOT"))
		sec->spec = IMAP_SECTION_HEADER_FIELDS_NOT;
	else if (IS_KW("HEADER.FIELDS"))
		sec->spec = IMAP_SECTION_HEADER_FIELDS;
	else if (IS_KW("HEADER") && i == n)
		sec->spec = IMAP_SECTION_HEADER;
	else if (IS_KW("TEXT") && i == n)
		sec->spec = IMAP_SECTION_TEXT;
	else if (IS_KW("MIME") && i == n && sec->part_count > 0)
		sec->spec = IMAP_SECTION_MIME;
	else
		return false;
#undef IS_KW
	if (sec->spec == IMAP_SECTION_HEADER_FIELDS || sec->spec == IMAP_SECTION_HEADER_FIELDS_NOT)
		return parse_field_list(s + i, n - i, sec);
	return true;
}

/* "<offset.length>" (RFC 3501 §9 partial: length is nz-number). */
static bool parse_partial(const char *s, size_t n, struct imap_fetch_att *att)
{
	const char *dot = memchr(s, '.', n);

	if (n < 5 || s[0] != '<' || s[n - 1] != '>' || dot == NULL)
		return false;
	size_t olen = (size_t)(dot - s) - 1, llen = n - 2 - olen - 1;
	if (!imap_parse_u32(s + 1, olen, &att->partial_offset) ||
	    !imap_parse_u32(dot + 1, llen, &att->partial_length) || att->partial_length == 0)
		return false;
	att->partial = true;
	return true;
}

static void name_section(struct sb *b, const struct imap_fetch_section *sec)
{
	static const char *const spec_names[] = {
		[IMAP_SECTION_ALL] = "", [IMAP_SECTION_HEADER] = "HEADER",
		[IMAP_SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
		[IMAP_SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
		[IMAP_SECTION_TEXT] = "TEXT", [IMAP_SECTION_MIME] = "MIME",
	};
	char num[16];

	for (size_t i = 0; i < sec->part_count; i++) {
		snprintf(num, sizeof(num), "%s%u", i > 0 ? "." : "", sec->parts[i]);
		sb_str(b, num);
	}
	if (sec->spec != IMAP_SECTION_ALL && sec->part_count > 0)
		sb_str(b, ".");
	sb_str(b, spec_names[sec->spec]);
	for (size_t i = 0; i < sec->field_count; i++) {
		const char *f = sec->fields[i];
		sb_str(b, i == 0 ? " (" : " ");
		if (imap_is_astring_atom(f, strlen(f))) {
			sb_str(b, f);
			continue;
		}
		sb_str(b, "\"");
		for (; *f != '\0'; f++) {
			if (*f == '"' || *f == '\\')
				sb_str(b, "\\");
			sb_add(b, f, 1);
		}
		sb_str(b, "\"");
	}
	if (sec->field_count > 0)
		sb_str(b, ")");
}

/* "NAME[section]<partial>" */
static const char *parse_bracketed(const char *s, size_t n, const char *open,
				   struct imap_fetch_att *att)
{
	size_t plen = (size_t)(open - s);
	const char *close = NULL;
	bool quoted = false;

	if ((plen == 4 && strncasecmp(s, "BODY", 4) == 0) ||
	    (plen == 9 && strncasecmp(s, "BODY.PEEK", 9) == 0)) {
		att->type = IMAP_FETCH_BODY_SECTION;
		att->peek = plen == 9;
	} else if ((plen == 6 && strncasecmp(s, "BINARY", 6) == 0) ||
		   (plen == 11 && strncasecmp(s, "BINARY.PEEK", 11) == 0)) {
		att->type = IMAP_FETCH_BINARY;
		att->peek = plen == 11;
	} else if (plen == 11 && strncasecmp(s, "BINARY.SIZE", 11) == 0) {
		att->type = IMAP_FETCH_BINARY_SIZE;
	} else {
		return err_unknown;
	}
	for (const char *c = open + 1; c < s + n && close == NULL; c++) {
		if (quoted && *c == '\\' && c + 1 < s + n)
			c++;
		else if (*c == '"')
			quoted = !quoted;
		else if (!quoted && *c == ']')
			close = c;
	}
	if (close == NULL)
		return err_section;
	if (!parse_section(open + 1, (size_t)(close - open - 1), att->type != IMAP_FETCH_BODY_SECTION,
			   &att->section))
		return err_section;
	size_t rest = (size_t)(s + n - close - 1);
	if (rest > 0 && (att->type == IMAP_FETCH_BINARY_SIZE || !parse_partial(close + 1, rest, att)))
		return err_partial;

	struct sb b = { 0 };
	sb_str(&b, att->type == IMAP_FETCH_BODY_SECTION ? "BODY["
		   : att->type == IMAP_FETCH_BINARY ? "BINARY[" : "BINARY.SIZE[");
	name_section(&b, &att->section);
	sb_str(&b, "]");
	if (att->partial) {
		char num[16];
		snprintf(num, sizeof(num), "<%u>", att->partial_offset);
		sb_str(&b, num);
	}
	if (b.failed) {
		free(b.s);
		return err_nomem;
	}
	att->response_name = b.s;
	return NULL;
}

/* One fetch-att atom; NULL or an error text. */
static const char *parse_att(const char *s, size_t n, struct imap_fetch_att *att)
{
	const char *open = memchr(s, '[', n);

	if (open != NULL)
		return parse_bracketed(s, n, open, att);
	for (size_t i = 0; i < sizeof(simple_atts) / sizeof(simple_atts[0]); i++) {
		if (strlen(simple_atts[i].name) == n && strncasecmp(s, simple_atts[i].name, n) == 0) {
			att->type = simple_atts[i].type;
			att->response_name = strdup(simple_atts[i].name);
			return att->response_name == NULL ? err_nomem : NULL;
		}
	}
	return err_unknown;
}

static const char *add_att(struct imap_fetch_request *req, const char *s, size_t n)
{
	struct imap_fetch_att *na = realloc(req->atts, (req->count + 1) * sizeof(*na));

	if (na == NULL)
		return err_nomem;
	req->atts = na;
	struct imap_fetch_att *att = &na[req->count++];
	memset(att, 0, sizeof(*att));
	const char *err = parse_att(s, n, att);
	if (err != NULL)
		return err;
	switch (att->type) {
	case IMAP_FETCH_RFC822:
	case IMAP_FETCH_RFC822_TEXT:
		req->sets_seen = true;
		break;
	case IMAP_FETCH_BODY_SECTION:
	case IMAP_FETCH_BINARY:
		req->sets_seen |= !att->peek;
		break;
	default:
		break;
	}
	return NULL;
}

static bool has_type(const struct imap_fetch_request *req, enum imap_fetch_type t)
{
	for (size_t i = 0; i < req->count; i++)
		if (req->atts[i].type == t)
			return true;
	return false;
}

/* RFC 8970 §6: "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"],
 * preview-mod = "LAZY". */
static bool is_preview_mods(const struct imap_arg *a)
{
	const struct imap_arg *list;
	size_t n;
	if (!imap_arg_list(a, &list, &n) || n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!imap_arg_is_atom_ci(&list[i], "LAZY"))
			return false;
	return true;
}

static const char *preview_mods(struct imap_fetch_att *att, const struct imap_arg *a)
{
	if (!is_preview_mods(a))
		return err_preview_mod;
	att->lazy = true;
	return NULL;
}

static const char *parse_atts(struct imap_fetch_request *req, const struct imap_arg *a)
{
	const struct imap_arg *list;
	size_t n;
	const char *s, *err;

	if (imap_arg_list(a, &list, &n)) {
		if (n == 0)
			return err_empty;
		for (size_t i = 0; i < n; i++) {
			if (list[i].type != IMAP_ARG_ATOM)
				return err_unknown;
			if ((err = add_att(req, list[i].str, list[i].len)) != NULL)
				return err;
			if (req->atts[req->count - 1].type == IMAP_FETCH_PREVIEW && i + 1 < n &&
			    list[i + 1].type == IMAP_ARG_LIST &&
			    (err = preview_mods(&req->atts[req->count - 1], &list[++i])) != NULL)
				return err;
		}
		return NULL;
	}
	if (!imap_arg_atom(a, &s))
		return err_empty;
	for (size_t m = 0; m < sizeof(macros) / sizeof(macros[0]); m++) {
		if (strcasecmp(s, macros[m].name) != 0)
			continue;
		for (size_t i = 0; i < 5 && macros[m].items[i] != NULL; i++)
			if ((err = add_att(req, macros[m].items[i], strlen(macros[m].items[i]))) != NULL)
				return err;
		return NULL;
	}
	return add_att(req, a->str, a->len);
}

/* fetch-modifiers (RFC 4466 §2.4, RFC 7162 §3.1.4.1 and §3.2.6, RFC 9394 §3.3). */
static const char *parse_modifiers(struct imap_fetch_request *req, const struct imap_arg *a,
				   bool uid)
{
	const struct imap_arg *list;
	size_t n;

	if (!imap_arg_list(a, &list, &n) || n == 0)
		return err_modifier;
	for (size_t i = 0; i < n; i++) {
		if (imap_arg_is_atom_ci(&list[i], "CHANGEDSINCE") && !req->changedsince_given) {
			if (i + 1 >= n || !imap_arg_u64(&list[i + 1], &req->changedsince) ||
			    req->changedsince > MODSEQ_MAX)
				return err_modifier;
			req->changedsince_given = true;
			i++;
		} else if (imap_arg_is_atom_ci(&list[i], "VANISHED") && !req->vanished) {
			req->vanished = true;
		} else if (uid && imap_arg_is_atom_ci(&list[i], "PARTIAL") && !req->partial_given) {
			if (i + 1 >= n || !imap_search_partial_parse(&list[++i], &req->partial_range))
				return err_modifier;
			req->partial_given = true;
		} else {
			return err_modifier;
		}
	}
	if (req->vanished && (!uid || !req->changedsince_given))
		return err_vanished;
	return NULL;
}

int imap_fetch_parse(const struct imap_arg *args, size_t count, bool uid,
		     struct imap_fetch_request **req_r, const char **error_r)
{
	struct imap_fetch_request *req = calloc(1, sizeof(*req));
	const char *err;

	if (req == NULL) {
		*error_r = err_nomem;
		return -1;
	}
	/* "FETCH 1 PREVIEW (LAZY)": the list is the item's, not fetch-modifiers */
	bool preview_mod = count >= 2 && imap_arg_is_atom_ci(&args[0], "PREVIEW") &&
			   is_preview_mods(&args[1]);
	size_t mods = preview_mod ? 2 : 1;
	if (count == 0)
		err = err_empty;
	else if (count > mods + 1)
		err = err_extra;
	else if ((err = parse_atts(req, &args[0])) == NULL && preview_mod)
		err = preview_mods(&req->atts[req->count - 1], &args[1]);
	if (err == NULL && count == mods + 1)
		err = parse_modifiers(req, &args[mods], uid);
	if (err == NULL && uid && !has_type(req, IMAP_FETCH_UID))
		err = add_att(req, "UID", 3);
	if (err == NULL && req->changedsince_given && !has_type(req, IMAP_FETCH_MODSEQ))
		err = add_att(req, "MODSEQ", 6);
	if (err != NULL) {
		imap_fetch_request_free(&req);
		*error_r = err;
		return -1;
	}
	*req_r = req;
	return 0;
}
