/* SORT and THREAD argument parsers: see sort-parse.h. */
#include "proto/imap/sort-parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"

static const struct {
	const char *name;
	enum imap_sort_key key;
} sort_keys[] = {
	{ "ARRIVAL", IMAP_SORT_ARRIVAL }, { "CC", IMAP_SORT_CC },
	{ "DATE", IMAP_SORT_DATE }, { "FROM", IMAP_SORT_FROM },
	{ "SIZE", IMAP_SORT_SIZE }, { "SUBJECT", IMAP_SORT_SUBJECT },
	{ "TO", IMAP_SORT_TO }, { "DISPLAYFROM", IMAP_SORT_DISPLAYFROM },
	{ "DISPLAYTO", IMAP_SORT_DISPLAYTO },
};

/* charset: "UTF-8" or "US-ASCII" as an astring. */
static int parse_charset(const struct imap_arg *a, enum imap_search_charset *cs_r,
			 const char **error_r)
{
	const char *s;
	size_t len;
	if (!imap_arg_astring(a, &s, &len)) {
		*error_r = "Missing charset";
		return IMAP_SEARCH_PARSE_BAD;
	}
	if (len == 5 && strncasecmp(s, "UTF-8", 5) == 0) {
		*cs_r = IMAP_SEARCH_CHARSET_UTF8;
		return IMAP_SEARCH_PARSE_OK;
	}
	if (len == 8 && strncasecmp(s, "US-ASCII", 8) == 0) {
		*cs_r = IMAP_SEARCH_CHARSET_US_ASCII;
		return IMAP_SEARCH_PARSE_OK;
	}
	*error_r = "Unsupported charset";
	return IMAP_SEARCH_PARSE_BADCHARSET;
}

/* charset 1*(SP search-key): the keys go to the SEARCH parser, which must
 * not see RETURN or CHARSET of its own. */
static int parse_search(const struct imap_arg *args, size_t count,
			struct imap_search_program **prog_r, const char **error_r)
{
	enum imap_search_charset cs = IMAP_SEARCH_CHARSET_US_ASCII;
	if (count == 0) {
		*error_r = "Missing charset";
		return IMAP_SEARCH_PARSE_BAD;
	}
	int r = parse_charset(&args[0], &cs, error_r);
	if (r != IMAP_SEARCH_PARSE_OK)
		return r;
	if (count < 2) {
		*error_r = "Missing search criteria";
		return IMAP_SEARCH_PARSE_BAD;
	}
	if (imap_arg_is_atom_ci(&args[1], "RETURN") || imap_arg_is_atom_ci(&args[1], "CHARSET")) {
		*error_r = "Unknown search key";
		return IMAP_SEARCH_PARSE_BAD;
	}
	struct imap_search_program *prog = NULL;
	r = imap_search_parse(args + 1, count - 1, &prog, error_r);
	if (r != IMAP_SEARCH_PARSE_OK)
		return r;
	prog->charset = cs;
	*prog_r = prog;
	return IMAP_SEARCH_PARSE_OK;
}

/* RETURN (opts) of RFC 5267 §3.2: MIN MAX COUNT ALL, SAVE (RFC 5182) and
 * PARTIAL (RFC 5267 §4.4); an empty list means ALL. */
static int parse_return(const struct imap_arg *a, unsigned *opts_r,
			struct imap_search_partial *partial_r, const char **error_r)
{
	const struct imap_arg *list;
	size_t n;
	if (!imap_arg_list(a, &list, &n)) {
		*error_r = "Invalid RETURN option";
		return IMAP_SEARCH_PARSE_BAD;
	}
	if (imap_search_return_parse(list, n, opts_r, partial_r, error_r) < 0)
		return IMAP_SEARCH_PARSE_BAD;
	return IMAP_SEARCH_PARSE_OK;
}

/* "(" sort-criterion *(SP sort-criterion) ")", sort-criterion = ["REVERSE" SP] key. */
static int parse_criteria(const struct imap_arg *a, struct imap_sort_program *prog,
			  const char **error_r)
{
	const struct imap_arg *list;
	size_t n;
	if (!imap_arg_list(a, &list, &n) || n == 0) {
		*error_r = "Sort criteria expected";
		return IMAP_SEARCH_PARSE_BAD;
	}
	for (size_t i = 0; i < n; i++) {
		bool reverse = false;
		if (imap_arg_is_atom_ci(&list[i], "REVERSE")) {
			reverse = true;
			if (++i == n) {
				*error_r = "REVERSE needs a sort key";
				return IMAP_SEARCH_PARSE_BAD;
			}
		}
		size_t k = 0;
		while (k < sizeof(sort_keys) / sizeof(sort_keys[0]) &&
		       !imap_arg_is_atom_ci(&list[i], sort_keys[k].name))
			k++;
		if (k == sizeof(sort_keys) / sizeof(sort_keys[0])) {
			*error_r = "Unknown sort key";
			return IMAP_SEARCH_PARSE_BAD;
		}
		if (prog->crit_count == TERN_SORT_CRITERIA_MAX) {
			*error_r = "Too many sort criteria";
			return IMAP_SEARCH_PARSE_BAD;
		}
		prog->crit[prog->crit_count++] =
			(struct imap_sort_criterion){ sort_keys[k].key, reverse };
	}
	return IMAP_SEARCH_PARSE_OK;
}

void imap_sort_program_free(struct imap_sort_program **_prog)
{
	struct imap_sort_program *prog = *_prog;
	if (prog == NULL)
		return;
	imap_search_program_free(&prog->search);
	free(prog);
	*_prog = NULL;
}

int imap_sort_parse(const struct imap_arg *args, size_t count, struct imap_sort_program **prog_r,
		    const char **error_r)
{
	struct imap_sort_program *prog = calloc(1, sizeof(*prog));
	size_t i = 0;
	unsigned opts = 0;
	struct imap_search_partial partial = { 0 };
	bool esort = false;
	int r = IMAP_SEARCH_PARSE_OK;

	if (prog == NULL) {
		*error_r = "Out of memory";
		return IMAP_SEARCH_PARSE_BAD;
	}
	if (count > 0 && imap_arg_is_atom_ci(&args[0], "RETURN")) {
		esort = true;
		i = 2;
		if (count < 2) {
			*error_r = "Invalid RETURN option";
			r = IMAP_SEARCH_PARSE_BAD;
		} else {
			r = parse_return(&args[1], &opts, &partial, error_r);
		}
	}
	if (r == IMAP_SEARCH_PARSE_OK && i >= count) {
		*error_r = "Sort criteria expected";
		r = IMAP_SEARCH_PARSE_BAD;
	}
	if (r == IMAP_SEARCH_PARSE_OK)
		r = parse_criteria(&args[i], prog, error_r);
	if (r == IMAP_SEARCH_PARSE_OK)
		r = parse_search(args + i + 1, count - i - 1, &prog->search, error_r);
	if (r != IMAP_SEARCH_PARSE_OK) {
		imap_sort_program_free(&prog);
		return r;
	}
	prog->search->esearch = esort;
	prog->search->return_opts = opts;
	prog->search->partial = partial;
	*prog_r = prog;
	return IMAP_SEARCH_PARSE_OK;
}

int imap_thread_parse(const struct imap_arg *args, size_t count, enum imap_thread_algo *algo_r,
		      struct imap_search_program **search_r, const char **error_r)
{
	enum imap_thread_algo algo;
	if (count > 0 && imap_arg_is_atom_ci(&args[0], "ORDEREDSUBJECT")) {
		algo = IMAP_THREAD_ORDEREDSUBJECT;
	} else if (count > 0 && imap_arg_is_atom_ci(&args[0], "REFERENCES")) {
		algo = IMAP_THREAD_REFERENCES;
	} else {
		*error_r = count > 0 ? "Unknown threading algorithm" : "Threading algorithm expected";
		return IMAP_SEARCH_PARSE_BAD;
	}
	int r = parse_search(args + 1, count - 1, search_r, error_r);
	if (r == IMAP_SEARCH_PARSE_OK)
		*algo_r = algo;
	return r;
}
