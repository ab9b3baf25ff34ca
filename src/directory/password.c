/* Password hashes (see password.h). Stored forms are recognised by prefix
 * before any library sees them, so an unknown or mislabelled hash fails
 * closed instead of being handed to whatever crypt(3) happens to accept
 * (traditional DES, for instance, is never used). */
#include "directory/password.h"

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum hash_kind {
	HASH_UNKNOWN,
	HASH_CRYPT,     /* $y$ $6$ $5$ $2a$ $2b$ $2y$, verified by crypt(3) */
	HASH_ARGON2ID,
	HASH_ARGON2I,
	HASH_PLAIN,
};

/* The bare forms Tern accepts; the Dovecot scheme names that may label them. */
static const char *const crypt_prefixes[] = { "$y$", "$6$", "$5$", "$2a$", "$2b$", "$2y$" };

struct scheme {
	const char *name;          /* between the braces, case-insensitive */
	enum hash_kind kind;
	const char *const *prefixes; /* the bare forms this label may carry */
	size_t n_prefixes;
};

static const char *const sha512_prefixes[] = { "$6$" };
static const char *const sha256_prefixes[] = { "$5$" };
static const char *const blf_prefixes[] = { "$2a$", "$2b$", "$2y$" };
static const char *const argon2id_prefixes[] = { "$argon2id$" };
static const char *const argon2i_prefixes[] = { "$argon2i$" };

#define PREFIXES(a) a, sizeof(a) / sizeof((a)[0])

static const struct scheme schemes[] = {
	{ "SHA512-CRYPT", HASH_CRYPT, PREFIXES(sha512_prefixes) },
	{ "SHA256-CRYPT", HASH_CRYPT, PREFIXES(sha256_prefixes) },
	{ "BLF-CRYPT", HASH_CRYPT, PREFIXES(blf_prefixes) },
	{ "CRYPT", HASH_CRYPT, PREFIXES(crypt_prefixes) },
	{ "ARGON2ID", HASH_ARGON2ID, PREFIXES(argon2id_prefixes) },
	{ "ARGON2I", HASH_ARGON2I, PREFIXES(argon2i_prefixes) },
	/* Dovecot sites and benchmark set-ups store these; keep them working. */
	{ "PLAIN", HASH_PLAIN, NULL, 0 },
	{ "CLEARTEXT", HASH_PLAIN, NULL, 0 },
};

static bool has_prefix(const char *s, const char *const *prefixes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	}
	return false;
}

/* Classifies stored; *hash_r points at the part after any {SCHEME}. */
static enum hash_kind classify(const char *stored, const char **hash_r)
{
	if (stored == NULL)
		return HASH_UNKNOWN;
	if (stored[0] == '{') {
		const char *close = strchr(stored, '}');
		size_t len;

		if (close == NULL)
			return HASH_UNKNOWN;
		len = (size_t)(close - stored - 1);
		for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
			const struct scheme *sc = &schemes[i];

			if (strlen(sc->name) != len || strncasecmp(sc->name, stored + 1, len) != 0)
				continue;
			if (sc->kind != HASH_PLAIN &&
			    !has_prefix(close + 1, sc->prefixes, sc->n_prefixes))
				return HASH_UNKNOWN;
			*hash_r = close + 1;
			return sc->kind;
		}
		return HASH_UNKNOWN;
	}
	*hash_r = stored;
	if (has_prefix(stored, PREFIXES(crypt_prefixes)))
		return HASH_CRYPT;
	if (has_prefix(stored, PREFIXES(argon2id_prefixes)))
		return HASH_ARGON2ID;
	if (has_prefix(stored, PREFIXES(argon2i_prefixes)))
		return HASH_ARGON2I;
	return HASH_UNKNOWN;
}

/* Compares without an early exit, so timing reveals neither where the first
 * difference is nor (beyond a length mismatch) anything about b. */
static bool const_time_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	volatile unsigned char diff = (unsigned char)(la != lb);

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)(lb == 0 ? 0 : b[i % lb]);
	return diff == 0;
}

/* Runs crypt(3) with hash as the setting: 1 and a heap copy of the result
 * in *out_r; 0 when libxcrypt refuses the setting; -1 out of memory (here,
 * or for the hash's own scratch memory: yescrypt's is megabytes), which
 * says nothing about the password. struct crypt_data is ~32 KiB, too much
 * for the stack of a worker thread. */
static int crypt_heap(const char *plain, const char *setting, char **out_r)
{
	struct crypt_data *data = calloc(1, sizeof(*data));
	const char *res;
	int r = 0;

	if (data == NULL)
		return -1;
	errno = 0;
	res = crypt_rn(plain, setting, data, (int)sizeof(*data));
	if (res == NULL && errno == ENOMEM) {
		r = -1;
	} else if (res != NULL && res[0] != '*') {
		*out_r = strdup(res);
		r = *out_r != NULL ? 1 : -1;
	}
	explicit_bzero(data, sizeof(*data));
	free(data);
	return r;
}

int password_hash(const char *plain, char **hash_r)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	char *hash;

	if (plain == NULL)
		return -1;
	/* NULL random bytes: libxcrypt draws them from the OS itself. */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, (int)sizeof(salt)) == NULL)
		return -1;
	if (crypt_heap(plain, salt, &hash) <= 0)
		return -1;
	*hash_r = hash;
	return 0;
}

static enum password_result argon2_result(int r)
{
	if (r == ARGON2_OK)
		return PASSWORD_MATCH;
	return r == ARGON2_MEMORY_ALLOCATION_ERROR ? PASSWORD_NOMEM : PASSWORD_MISMATCH;
}

enum password_result password_check(const char *plain, const char *stored)
{
	const char *hash = NULL;
	bool ok;
	char *res = NULL;
	int r;

	/* An empty password is never a credential, whatever is stored. */
	if (plain == NULL || plain[0] == '\0')
		return PASSWORD_MISMATCH;
	switch (classify(stored, &hash)) {
	case HASH_CRYPT:
		r = crypt_heap(plain, hash, &res);
		if (r <= 0)
			return r < 0 ? PASSWORD_NOMEM : PASSWORD_MISMATCH;
		ok = const_time_equal(res, hash);
		free(res);
		return ok ? PASSWORD_MATCH : PASSWORD_MISMATCH;
	case HASH_ARGON2ID:
		return argon2_result(argon2_verify(hash, plain, strlen(plain), Argon2_id));
	case HASH_ARGON2I:
		return argon2_result(argon2_verify(hash, plain, strlen(plain), Argon2_i));
	case HASH_PLAIN:
		return hash[0] != '\0' && const_time_equal(plain, hash) ? PASSWORD_MATCH
									 : PASSWORD_MISMATCH;
	case HASH_UNKNOWN:
	default:
		return PASSWORD_MISMATCH;
	}
}

bool password_verify(const char *plain, const char *stored)
{
	return password_check(plain, stored) == PASSWORD_MATCH;
}

bool password_hash_supported(const char *stored)
{
	const char *hash = NULL;
	enum hash_kind kind = classify(stored, &hash);
	char *res;
	bool ok;
	int r;

	switch (kind) {
	case HASH_CRYPT:
		/* A truncated or malformed hash makes crypt(3) fail or return a
		 * string of another length; either way it could never match. */
		res = NULL;
		ok = crypt_heap("tern-probe", hash, &res) > 0 && strlen(res) == strlen(hash);
		free(res);
		return ok;
	case HASH_ARGON2ID:
	case HASH_ARGON2I:
		r = argon2_verify(hash, "tern-probe", 10,
				  kind == HASH_ARGON2ID ? Argon2_id : Argon2_i);
		return r == ARGON2_OK || r == ARGON2_VERIFY_MISMATCH;
	case HASH_PLAIN:
		return hash[0] != '\0';
	case HASH_UNKNOWN:
	default:
		return false;
	}
}
