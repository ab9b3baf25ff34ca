/* Canonical user names (see username.h). A name doubles as a file name in
 * the store, so the accepted alphabet is deliberately small. */
#include "core/username.h"

#include <string.h>
#include <strings.h>

#include "core/limits.h"

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

bool username_valid(const char *name)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strlen(name);
	if (len == 0 || len > TERN_USERNAME_CANONICAL_MAX)
		return false;
	if (name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!name_char_ok(name[i]))
			return false;
	}
	return true;
}

/* True when [dom, dom+len) equals one entry of the comma/space list. */
static bool domain_listed(const char *dom, size_t len, const char *domains)
{
	const char *p = domains;

	while (*p != '\0') {
		size_t n;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == len && n > 0 && strncasecmp(p, dom, len) == 0)
			return true;
		p += n;
	}
	return false;
}

static bool domains_empty(const char *domains)
{
	return domains == NULL || domains[strspn(domains, ", \t")] == '\0';
}

/* A domain we would accept even when any domain goes: no blanks, no
 * brackets or second '@', nothing that could smuggle bytes into logs. */
static bool domain_syntax_ok(const char *dom, size_t len)
{
	if (len == 0 || len > TERN_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)dom[i];

		if (c <= 0x20 || c >= 0x7f || c == '@' || c == '<' || c == '>')
			return false;
	}
	return true;
}

/* The detail keeps its case (it is shown to the user as a folder hint), but
 * must still be printable so it is safe to log and to use in replies. */
static bool detail_syntax_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

int username_parse(const char *input, const char *domains,
		   char *user_r, size_t user_size,
		   char *detail_r, size_t detail_size)
{
	char user[TERN_USERNAME_CANONICAL_MAX + 1];
	const char *start, *end, *at, *plus;
	size_t len, local_len, detail_len = 0;

	if (input == NULL || user_r == NULL)
		return -1;
	start = input;
	len = strlen(input);
	end = input + len;
	if (len > 0 && start[0] == '<') {
		if (len < 2 || end[-1] != '>')
			return -1;
		start++;
		end--;
	}

	at = memchr(start, '@', (size_t)(end - start));
	if (at != NULL) {
		size_t dom_len = (size_t)(end - at - 1);

		if (!domain_syntax_ok(at + 1, dom_len))
			return -1;
		if (!domains_empty(domains) && !domain_listed(at + 1, dom_len, domains))
			return -1;
	} else {
		at = end;
	}

	plus = memchr(start, '+', (size_t)(at - start));
	if (plus != NULL) {
		if (detail_r == NULL)
			return -1;
		detail_len = (size_t)(at - plus - 1);
		if (detail_len >= detail_size || !detail_syntax_ok(plus + 1, detail_len))
			return -1;
	} else {
		plus = at;
	}

	local_len = (size_t)(plus - start);
	if (local_len == 0 || local_len > TERN_USERNAME_CANONICAL_MAX || local_len >= user_size)
		return -1;
	/* ASCII folding only: tolower() would follow the locale. */
	for (size_t i = 0; i < local_len; i++) {
		char c = start[i];

		user[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	user[local_len] = '\0';
	if (!username_valid(user))
		return -1;

	if (detail_r != NULL && detail_size == 0)
		return -1;
	memcpy(user_r, user, local_len + 1);
	if (detail_r != NULL) {
		if (detail_len > 0)
			memcpy(detail_r, plus + 1, detail_len);
		detail_r[detail_len] = '\0';
	}
	return 0;
}
