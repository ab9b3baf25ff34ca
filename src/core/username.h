/* Canonical user names. "alice", "Alice@example.org" and, in LMTP,
 * "alice+Lists@example.org" all name the user "alice" when the domain is one
 * of the configured domains (or any domain when none is configured). */
#ifndef TERN_CORE_USERNAME_H
#define TERN_CORE_USERNAME_H

#include <stdbool.h>
#include <stddef.h>

/* A canonical name: 1..64 bytes of [a-z0-9._-], not starting with '.' or '-'.
 * The restriction keeps every name a safe file name (store path) as well. */
bool username_valid(const char *name);

/* Parses "local[+detail][@domain]" (surrounding "<>" allowed, as in RCPT TO).
 * domains: comma- or space-separated list, NULL or "" = accept any domain;
 * matching is case-insensitive. The local part is lowercased into user_r.
 * detail_r == NULL: a '+' in the local part is an error (logins);
 * else the text after the first '+' goes to detail_r (case kept, "" if none).
 * Returns 0, or -1 if malformed, not a valid name, or the domain is not ours. */
int username_parse(const char *input, const char *domains,
		   char *user_r, size_t user_size,
		   char *detail_r, size_t detail_size);

#endif
