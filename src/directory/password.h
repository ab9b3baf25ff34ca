/* Password hashing and verification through libxcrypt crypt(3) (and libargon2
 * for {ARGON2ID}/$argon2 hashes), so users imported from Dovecot and other
 * systems keep their passwords. New hashes are yescrypt ($y$). */
#ifndef TERN_DIRECTORY_PASSWORD_H
#define TERN_DIRECTORY_PASSWORD_H

#include <stdbool.h>

/* Hashes plain with yescrypt and a fresh salt. Returns 0 and a heap string. */
int password_hash(const char *plain, char **hash_r);

enum password_result {
	PASSWORD_MISMATCH,
	PASSWORD_MATCH,
	/* out of memory (the hashes take megabytes): not checked, which is
	 * not a wrong password; the login fails temporarily */
	PASSWORD_NOMEM,
};

/* Checks plain against a stored hash in any supported form:
 * bare "$y$", "$6$", "$5$", "$2b$"/"$2y$"/"$2a$", "$argon2id$"/"$argon2i$",
 * or with a Dovecot scheme prefix: {SHA512-CRYPT}, {SHA256-CRYPT},
 * {BLF-CRYPT}, {CRYPT}, {ARGON2ID}, {ARGON2I}. Comparison is constant-time
 * where the library allows. Unknown forms do not match. */
enum password_result password_check(const char *plain, const char *stored);
/* password_check() == PASSWORD_MATCH. */
bool password_verify(const char *plain, const char *stored);

/* True when stored is a form password_verify understands (for ternctl --hash). */
bool password_hash_supported(const char *stored);

#endif
