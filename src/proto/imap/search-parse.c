/* SEARCH program parser: see search-parse.h. Each RFC 3501 key is a row of
 * a table saying what argument it takes, so adding a key is one line. */
#include "proto/imap/search-parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"
#include "proto/imap/imap-date.h"

#define MODSEQ_MAX ((UINT64_C(1) << 63) - 1)   /* RFC 7162 mod-sequence-valzer */

static const char err_nomem[] = "Out of memory";
static const char err_empty[] = "Missing search key";
static const char err_unknown[] = "Unknown search key";
static const char err_arg[] = "Missing or invalid search argument";
static const char err_date[] = "Invalid date";
static const char err_number[] = "Invalid number";
static const char err_seqset[] = "Invalid sequence set";
static const char err_depth[] = "Search program nested too deeply";
static const char err_return[] = "Invalid RETURN option";
static const char err_charset[] = "Unsupported charset";
static const char err_keyword[] = "Invalid keyword";
static const char err_modseq[] = "Invalid MODSEQ";
static const char err_objectid[] = "Invalid object id";
static const char err_body_keys[] = "Too many BODY/TEXT keys in one search";
static const char err_partial[] = "Invalid PARTIAL (a range like 1:10 or -1:-10, without ALL)";

enum argkind {
	K_NONE,      /* no argument */
	K_FLAG,      /* no argument; the row's flag */
	K_KEYWORD,   /* flag-keyword atom */
	K_STRING,    /* astring value */
	K_HDR,       /* astring value; the row names the header */
	K_HEADER,    /* field-name astring, value astring */
	K_DATE,
	K_NUMBER64,  /* number64 (RFC 9051 §9): 0..2^63-1; LARGER and SMALLER */
	K_NZNUMBER,
	K_SET,       /* sequence set */
	K_MODSEQ,
	K_OBJECTID,  /* objectid (RFC 8474): 1*255(ALPHA / DIGIT / "_" / "-") */
	K_NOT,
	K_OR,
	K_NEW,
};

struct keydef {
	const char *name;
	enum argkind kind;
	enum imap_search_key_type type;
	const char *fixed;     /* flag or header name */
	bool set;              /* K_FLAG: must have the flag; K_HDR: an address field */
};

static const struct keydef keys[] = {
	{ "ALL", K_NONE, IMAP_SK_ALL, NULL, false },
	{ "ANSWERED", K_FLAG, IMAP_SK_FLAG, "\\Answered", true },
	{ "BCC", K_HDR, IMAP_SK_HEADER, "Bcc", true },
	{ "BEFORE", K_DATE, IMAP_SK_BEFORE, NULL, false },
	{ "BODY", K_STRING, IMAP_SK_BODY, NULL, false },
	{ "CC", K_HDR, IMAP_SK_HEADER, "Cc", true },
	{ "DELETED", K_FLAG, IMAP_SK_FLAG, "\\Deleted", true },
	{ "DRAFT", K_FLAG, IMAP_SK_FLAG, "\\Draft", true },
	{ "EMAILID", K_OBJECTID, IMAP_SK_EMAILID, NULL, false },
	{ "FLAGGED", K_FLAG, IMAP_SK_FLAG, "\\Flagged", true },
	{ "FROM", K_HDR, IMAP_SK_HEADER, "From", true },
	{ "HEADER", K_HEADER, IMAP_SK_HEADER, NULL, false },
	{ "KEYWORD", K_KEYWORD, IMAP_SK_FLAG, NULL, true },
	{ "LARGER", K_NUMBER64, IMAP_SK_LARGER, NULL, false },
	{ "MODSEQ", K_MODSEQ, IMAP_SK_MODSEQ, NULL, false },
	{ "NEW", K_NEW, IMAP_SK_AND, NULL, false },
	{ "NOT", K_NOT, IMAP_SK_NOT, NULL, false },
	{ "OLD", K_FLAG, IMAP_SK_FLAG, "\\Recent", false },
	{ "OLDER", K_NZNUMBER, IMAP_SK_OLDER, NULL, false },
	{ "ON", K_DATE, IMAP_SK_ON, NULL, false },
	{ "OR", K_OR, IMAP_SK_OR, NULL, false },
	{ "RECENT", K_FLAG, IMAP_SK_FLAG, "\\Recent", true },
	/* RFC 8514 §4: every message here has a save date */
	{ "SAVEDATESUPPORTED", K_NONE, IMAP_SK_ALL, NULL, false },
	{ "SAVEDBEFORE", K_DATE, IMAP_SK_SAVEDBEFORE, NULL, false },
	{ "SAVEDON", K_DATE, IMAP_SK_SAVEDON, NULL, false },
	{ "SAVEDSINCE", K_DATE, IMAP_SK_SAVEDSINCE, NULL, false },
	{ "SEEN", K_FLAG, IMAP_SK_FLAG, "\\Seen", true },
	{ "SENTBEFORE", K_DATE, IMAP_SK_SENTBEFORE, NULL, false },
	{ "SENTON", K_DATE, IMAP_SK_SENTON, NULL, false },
	{ "SENTSINCE", K_DATE, IMAP_SK_SENTSINCE, NULL, false },
	{ "SINCE", K_DATE, IMAP_SK_SINCE, NULL, false },
	{ "SMALLER", K_NUMBER64, IMAP_SK_SMALLER, NULL, false },
	{ "SUBJECT", K_HDR, IMAP_SK_HEADER, "Subject", false },
	{ "TEXT", K_STRING, IMAP_SK_TEXT, NULL, false },
	{ "THREADID", K_OBJECTID, IMAP_SK_THREADID, NULL, false },
	{ "TO", K_HDR, IMAP_SK_HEADER, "To", true },
	{ "UID", K_SET, IMAP_SK_UIDSET, NULL, false },
	{ "UNANSWERED", K_FLAG, IMAP_SK_FLAG, "\\Answered", false },
	{ "UNDELETED", K_FLAG, IMAP_SK_FLAG, "\\Deleted", false },
	{ "UNDRAFT", K_FLAG, IMAP_SK_FLAG, "\\Draft", false },
	{ "UNFLAGGED", K_FLAG, IMAP_SK_FLAG, "\\Flagged", false },
	{ "UNKEYWORD", K_KEYWORD, IMAP_SK_FLAG, NULL, false },
	{ "UNSEEN", K_FLAG, IMAP_SK_FLAG, "\\Seen", false },
	{ "YOUNGER", K_NZNUMBER, IMAP_SK_YOUNGER, NULL, false },
};

struct ctx {
	const struct imap_arg *args;
	size_t count, i;
	const char *err;
	struct imap_search_program *prog;
	unsigned *body_keys;   /* BODY and TEXT keys in the whole program */
};

static void key_clear(struct imap_search_key *k)
{
	free(k->str);
	free(k->value);
	imap_seqset_free(&k->set);
	for (size_t i = 0; i < k->child_count; i++)
		key_clear(&k->children[i]);
	free(k->children);
	memset(k, 0, sizeof(*k));
}

void imap_search_program_free(struct imap_search_program **_prog)
{
	struct imap_search_program *prog = *_prog;

	if (prog == NULL)
		return;
	if (prog->root != NULL) {
		key_clear(prog->root);
		free(prog->root);
	}
	free(prog);
	*_prog = NULL;
}

static bool fail(struct ctx *c, const char *err)
{
	c->err = err;
	return false;
}

static const struct imap_arg *next_arg(struct ctx *c)
{
	return c->i < c->count ? &c->args[c->i++] : NULL;
}

static char *dup_mem(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static bool take_astring(struct ctx *c, char **s_r, size_t *len_r)
{
	const char *s;
	size_t len;

	if (!imap_arg_astring(next_arg(c), &s, &len))
		return fail(c, err_arg);
	if ((*s_r = dup_mem(s, len)) == NULL)
		return fail(c, err_nomem);
	if (len_r != NULL)
		*len_r = len;
	return true;
}

static bool looks_like_set(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && a->len > 0 &&
	       ((a->str[0] >= '0' && a->str[0] <= '9') || a->str[0] == '*' || a->str[0] == '$');
}

static bool take_set(struct ctx *c, const struct imap_arg *a, struct imap_search_key *k)
{
	if (a == NULL || a->type != IMAP_ARG_ATOM || imap_seqset_parse(a->str, a->len, &k->set) < 0)
		return fail(c, err_seqset);
	c->prog->uses_saved |= imap_seqset_is_saved(k->set);
	return true;
}

/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer (RFC 7162 §3.1.5). */
static bool take_modseq(struct ctx *c, struct imap_search_key *k)
{
	const struct imap_arg *a = next_arg(c);
	const char *s;
	size_t len;

	if (a != NULL && imap_arg_string(a, &s, &len)) {
		const struct imap_arg *t = next_arg(c);
		if (imap_arg_is_atom_ci(t, "priv"))
			k->entry_type = IMAP_SEARCH_ENTRY_PRIV;
		else if (imap_arg_is_atom_ci(t, "shared"))
			k->entry_type = IMAP_SEARCH_ENTRY_SHARED;
		else if (imap_arg_is_atom_ci(t, "all"))
			k->entry_type = IMAP_SEARCH_ENTRY_ALL;
		else
			return fail(c, err_modseq);
		if ((k->str = dup_mem(s, len)) == NULL)
			return fail(c, err_nomem);
		a = next_arg(c);
	}
	if (!imap_arg_u64(a, &k->number) || k->number > MODSEQ_MAX)
		return fail(c, err_modseq);
	c->prog->uses_modseq = true;
	return true;
}

/* objectid = 1*255(ALPHA / DIGIT / "_" / "-") (RFC 8474 §7); sent as an
 * atom, a quoted or literal form is taken too. */
static bool take_objectid(struct ctx *c, struct imap_search_key *k)
{
	const char *s;
	size_t len;

	if (!imap_arg_astring(next_arg(c), &s, &len) || len == 0 || len > 255)
		return fail(c, err_objectid);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return fail(c, err_objectid);
	}
	if ((k->str = dup_mem(s, len)) == NULL)
		return fail(c, err_nomem);
	return true;
}

static bool set_flag(struct ctx *c, struct imap_search_key *k, const char *flag, bool set)
{
	k->type = IMAP_SK_FLAG;
	k->flag_set = set;
	if ((k->str = strdup(flag)) == NULL)
		return fail(c, err_nomem);
	return true;
}

static bool parse_key(struct ctx *c, struct imap_search_key *k, unsigned depth);

static bool parse_children(struct ctx *c, struct imap_search_key *k, size_t n, unsigned depth)
{
	k->children = calloc(n, sizeof(*k->children));
	if (k->children == NULL)
		return fail(c, err_nomem);
	k->child_count = n;
	for (size_t i = 0; i < n; i++)
		if (!parse_key(c, &k->children[i], depth + 1))
			return false;
	return true;
}

/* "( key *(SP key) )": a nested context over the list's elements. */
static bool parse_list(struct ctx *c, const struct imap_arg *list, size_t n,
		       struct imap_search_key *k, unsigned depth)
{
	struct ctx sub = { list, n, 0, NULL, c->prog, c->body_keys };
	size_t cap = 0;

	if (n == 0)
		return fail(c, err_empty);
	k->type = IMAP_SK_AND;
	while (sub.i < n) {
		if (k->child_count == cap) {
			cap = cap == 0 ? 4 : cap * 2;
			struct imap_search_key *nk = realloc(k->children, cap * sizeof(*nk));
			if (nk == NULL)
				return fail(c, err_nomem);
			k->children = nk;
		}
		struct imap_search_key *child = &k->children[k->child_count++];
		memset(child, 0, sizeof(*child));
		if (!parse_key(&sub, child, depth + 1))
			return fail(c, sub.err);
	}
	return true;
}

static bool parse_arg(struct ctx *c, const struct keydef *d, struct imap_search_key *k,
		      unsigned depth)
{
	const struct imap_arg *a;
	const char *s;
	size_t len;

	switch (d->kind) {
	case K_NONE:
		return true;
	case K_FLAG:
		return set_flag(c, k, d->fixed, d->set);
	case K_KEYWORD:
		a = next_arg(c);
		if (!imap_arg_atom(a, &s) || s[0] == '\\' || strpbrk(s, "[]") != NULL)
			return fail(c, err_keyword);
		return set_flag(c, k, s, d->set);
	case K_STRING:
		return take_astring(c, &k->value, &k->value_len);
	case K_HDR:
		k->address = d->set;
		if ((k->str = strdup(d->fixed)) == NULL)
			return fail(c, err_nomem);
		return take_astring(c, &k->value, &k->value_len);
	case K_HEADER:
		return take_astring(c, &k->str, NULL) &&
		       take_astring(c, &k->value, &k->value_len);
	case K_DATE:
		if (!imap_arg_astring(next_arg(c), &s, &len) || imap_date_parse(s, len, &k->day) < 0)
			return fail(c, err_date);
		return true;
	case K_NUMBER64:
		if (!imap_arg_u64(next_arg(c), &k->number) || k->number > INT64_MAX)
			return fail(c, err_number);
		return true;
	case K_NZNUMBER: {
		uint32_t n;
		if (!imap_arg_u32(next_arg(c), &n) || n == 0)
			return fail(c, err_number);
		k->number = n;
		return true;
	}
	case K_SET:
		return take_set(c, next_arg(c), k);
	case K_MODSEQ:
		return take_modseq(c, k);
	case K_OBJECTID:
		return take_objectid(c, k);
	case K_NOT:
		return parse_children(c, k, 1, depth);
	case K_OR:
		return parse_children(c, k, 2, depth);
	case K_NEW:
		/* RFC 3501: NEW is equivalent to (RECENT UNSEEN). */
		k->children = calloc(2, sizeof(*k->children));
		if (k->children == NULL)
			return fail(c, err_nomem);
		k->child_count = 2;
		return set_flag(c, &k->children[0], "\\Recent", true) &&
		       set_flag(c, &k->children[1], "\\Seen", false);
	}
	return fail(c, err_unknown);
}

static bool parse_key(struct ctx *c, struct imap_search_key *k, unsigned depth)
{
	const struct imap_arg *a = next_arg(c);
	const struct imap_arg *list;
	size_t n;

	if (depth > TERN_SEARCH_DEPTH_MAX)
		return fail(c, err_depth);
	if (a == NULL)
		return fail(c, err_empty);
	if (imap_arg_list(a, &list, &n))
		return parse_list(c, list, n, k, depth);
	if (a->type != IMAP_ARG_ATOM)
		return fail(c, err_unknown);
	if (looks_like_set(a)) {
		k->type = IMAP_SK_SEQSET;
		return take_set(c, a, k);
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcasecmp(a->str, keys[i].name) == 0) {
			/* each scans the decoded text of every message it meets, in
			 * one step of the loop thread: their number bounds the step */
			if ((keys[i].type == IMAP_SK_BODY || keys[i].type == IMAP_SK_TEXT) &&
			    ++*c->body_keys > TERN_SEARCH_BODY_KEYS_MAX)
				return fail(c, err_body_keys);
			k->type = keys[i].type;
			return parse_arg(c, &keys[i], k, depth);
		}
	}
	return fail(c, err_unknown);
}

static bool parse_u32_part(const char *s, size_t len, int64_t *v_r)
{
	uint64_t v = 0;
	if (len == 0 || len > 10 || s[0] == '0')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*v_r = (int64_t)v;
	return true;
}

bool imap_search_partial_parse(const struct imap_arg *a, struct imap_search_partial *p_r)
{
	if (a == NULL || a->type != IMAP_ARG_ATOM)
		return false;
	const char *s = a->str, *colon = memchr(s, ':', a->len);
	if (colon == NULL)
		return false;
	const char *b = colon + 1;
	size_t alen = (size_t)(colon - s), blen = a->len - alen - 1;
	bool neg = alen > 0 && s[0] == '-';
	if (neg != (blen > 0 && b[0] == '-'))
		return false;
	int64_t x, y;
	if (!parse_u32_part(s + neg, alen - neg, &x) || !parse_u32_part(b + neg, blen - neg, &y))
		return false;
	p_r->reversed = x > y;
	if (x > y) {
		int64_t t = x;
		x = y;
		y = t;
	}
	p_r->first = neg ? -x : x;
	p_r->last = neg ? -y : y;
	return true;
}

void imap_search_partial_slice(const struct imap_search_partial *p, size_t count,
			       size_t *start_r, size_t *n_r)
{
	/* as positions from 1 at the lowest: lo..hi, possibly below 1 */
	int64_t lo, hi, c = (int64_t)count;
	if (p->first > 0) {
		lo = p->first;
		hi = p->last;
	} else {
		lo = c + 1 + p->last;   /* -1 is c, -n is c + 1 - n */
		hi = c + 1 + p->first;
	}
	if (lo < 1)
		lo = 1;
	if (hi > c)
		hi = c;
	*start_r = lo <= hi ? (size_t)(lo - 1) : 0;
	*n_r = lo <= hi ? (size_t)(hi - lo + 1) : 0;
}

/* RETURN (opts) of RFC 4731 §3.1, RFC 5182 SAVE and PARTIAL (RFC 5267 §4.4,
 * RFC 9394). PARTIAL goes with neither ALL nor a second PARTIAL. */
static bool parse_return(struct ctx *c)
{
	const struct imap_arg *list;
	size_t n;

	if (!imap_arg_list(next_arg(c), &list, &n))
		return fail(c, err_return);
	c->prog->esearch = true;
	unsigned o = 0;
	if (imap_search_return_parse(list, n, &o, &c->prog->partial, &c->err) < 0)
		return false;
	c->prog->return_opts = o;
	return true;
}

int imap_search_return_parse(const struct imap_arg *list, size_t n, unsigned *opts_r,
			     struct imap_search_partial *partial_r, const char **error_r)
{
	static const struct { const char *name; unsigned bit; } opts[] = {
		{ "MIN", IMAP_SEARCH_RETURN_MIN }, { "MAX", IMAP_SEARCH_RETURN_MAX },
		{ "ALL", IMAP_SEARCH_RETURN_ALL }, { "COUNT", IMAP_SEARCH_RETURN_COUNT },
		{ "SAVE", IMAP_SEARCH_RETURN_SAVE }, { "PARTIAL", IMAP_SEARCH_RETURN_PARTIAL },
		{ "UPDATE", IMAP_SEARCH_RETURN_UPDATE }, { "CONTEXT", IMAP_SEARCH_RETURN_CONTEXT },
	};
	unsigned o = 0;

	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < sizeof(opts) / sizeof(opts[0]) && !imap_arg_is_atom_ci(&list[i], opts[k].name))
			k++;
		if (k == sizeof(opts) / sizeof(opts[0])) {
			*error_r = err_return;
			return -1;
		}
		if (opts[k].bit == IMAP_SEARCH_RETURN_PARTIAL) {
			if ((o & IMAP_SEARCH_RETURN_PARTIAL) != 0 || i + 1 >= n ||
			    !imap_search_partial_parse(&list[++i], partial_r)) {
				*error_r = err_partial;
				return -1;
			}
		}
		o |= opts[k].bit;
	}
	if ((o & IMAP_SEARCH_RETURN_PARTIAL) != 0 && (o & IMAP_SEARCH_RETURN_ALL) != 0) {
		*error_r = err_partial;
		return -1;
	}
	/* RFC 4731 §3.1: () means ALL; CONTEXT is only a hint (RFC 5267
	 * §4.2), so a list of nothing else means ALL as well */
	*opts_r = (o & ~(unsigned)IMAP_SEARCH_RETURN_CONTEXT) == 0 ? o | IMAP_SEARCH_RETURN_ALL : o;
	return 0;
}

/* Returns 0, or the result code with c->err set. */
static int parse_program(struct ctx *c)
{
	const char *s;
	size_t len;

	if (c->count > 0 && imap_arg_is_atom_ci(&c->args[0], "RETURN")) {
		c->i++;
		if (!parse_return(c))
			return IMAP_SEARCH_PARSE_BAD;
	}
	if (c->i < c->count && imap_arg_is_atom_ci(&c->args[c->i], "CHARSET")) {
		c->i++;
		if (!imap_arg_astring(next_arg(c), &s, &len)) {
			c->err = err_arg;
			return IMAP_SEARCH_PARSE_BAD;
		}
		if (len == 5 && strncasecmp(s, "UTF-8", 5) == 0) {
			c->prog->charset = IMAP_SEARCH_CHARSET_UTF8;
		} else if (!(len == 8 && strncasecmp(s, "US-ASCII", 8) == 0)) {
			c->err = err_charset;
			return IMAP_SEARCH_PARSE_BADCHARSET;
		}
	}
	struct imap_search_key *root = calloc(1, sizeof(*root));
	if (root == NULL) {
		c->err = err_nomem;
		return IMAP_SEARCH_PARSE_BAD;
	}
	c->prog->root = root;
	/* The top level is an implicit parenthesised list. */
	if (!parse_list(c, c->i < c->count ? c->args + c->i : NULL, c->count - c->i, root, 0))
		return IMAP_SEARCH_PARSE_BAD;
	return IMAP_SEARCH_PARSE_OK;
}

int imap_search_parse(const struct imap_arg *args, size_t count,
		      struct imap_search_program **prog_r, const char **error_r)
{
	struct imap_search_program *prog = calloc(1, sizeof(*prog));
	unsigned body_keys = 0;
	struct ctx c = { args, count, 0, NULL, prog, &body_keys };

	if (prog == NULL) {
		*error_r = err_nomem;
		return IMAP_SEARCH_PARSE_BAD;
	}
	int r = parse_program(&c);
	if (r != IMAP_SEARCH_PARSE_OK) {
		imap_search_program_free(&prog);
		*error_r = c.err != NULL ? c.err : err_arg;
		return r;
	}
	*prog_r = prog;
	return IMAP_SEARCH_PARSE_OK;
}
