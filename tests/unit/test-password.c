/* Password hashing and verification: fresh yescrypt hashes, published test
 * vectors for the crypt(3) formats, argon2, Dovecot {SCHEME} prefixes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <argon2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/password.h"

/* Drepper's SHA-crypt specification test vectors (rounds = default), also
 * what `openssl passwd -6/-5 -salt saltstring` prints. */
#define SHA512_HELLO "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
#define SHA256_HELLO "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
/* The Openwall/OpenBSD bcrypt vector for "U*U". */
#define BCRYPT_UU_BODY "05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"

static void test_yescrypt_round_trip(void **state)
{
	char *h1 = NULL, *h2 = NULL;

	(void)state;
	assert_int_equal(password_hash("correct horse", &h1), 0);
	assert_non_null(h1);
	assert_memory_equal(h1, "$y$", 3);
	assert_true(password_verify("correct horse", h1));
	assert_false(password_verify("correct horsE", h1));
	assert_false(password_verify("correct hors", h1));
	/* password_check tells a mismatch from a check that could not run */
	assert_int_equal(password_check("correct horse", h1), PASSWORD_MATCH);
	assert_int_equal(password_check("correct horsE", h1), PASSWORD_MISMATCH);
	assert_int_equal(password_check("correct horse", "$y$garbage"), PASSWORD_MISMATCH);
	assert_true(password_hash_supported(h1));
	/* A fresh salt each time. */
	assert_int_equal(password_hash("correct horse", &h2), 0);
	assert_string_not_equal(h1, h2);
	assert_true(password_verify("correct horse", h2));
	free(h1);
	free(h2);
}

static void test_sha_crypt_vectors(void **state)
{
	(void)state;
	assert_true(password_verify("Hello world!", SHA512_HELLO));
	assert_false(password_verify("Hello world", SHA512_HELLO));
	assert_true(password_verify("Hello world!", SHA256_HELLO));
	assert_false(password_verify("hello world!", SHA256_HELLO));
	assert_true(password_verify("Hello world!", "{SHA512-CRYPT}" SHA512_HELLO));
	assert_true(password_verify("Hello world!", "{sha512-crypt}" SHA512_HELLO));
	assert_true(password_verify("Hello world!", "{SHA256-CRYPT}" SHA256_HELLO));
	assert_true(password_verify("Hello world!", "{CRYPT}" SHA512_HELLO));
	/* A label that does not match the hash inside is refused. */
	assert_false(password_verify("Hello world!", "{SHA256-CRYPT}" SHA512_HELLO));
	/* One character changed in the stored hash. */
	assert_false(password_verify("Hello world!",
		"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz2"));
	/* A truncated hash can never match. */
	assert_false(password_verify("Hello world!", "$6$saltstring$svn8UoSVapNt"));
	assert_false(password_hash_supported("$6$saltstring$svn8UoSVapNt"));
	assert_true(password_hash_supported(SHA512_HELLO));
}

static void test_bcrypt(void **state)
{
	(void)state;
	assert_true(password_verify("U*U", "$2a$" BCRYPT_UU_BODY));
	assert_true(password_verify("U*U", "$2b$" BCRYPT_UU_BODY));
	assert_true(password_verify("U*U", "$2y$" BCRYPT_UU_BODY));
	assert_true(password_verify("U*U", "{BLF-CRYPT}$2y$" BCRYPT_UU_BODY));
	assert_false(password_verify("U*V", "{BLF-CRYPT}$2y$" BCRYPT_UU_BODY));
	assert_false(password_verify("U*U", "{BLF-CRYPT}" SHA512_HELLO));
}

static void make_argon2(argon2_type type, const char *pw, char *out, size_t out_size)
{
	static const char salt[] = "tern-test-salt16";
	int rc = argon2_hash(2, 1024, 1, pw, strlen(pw), salt, 16, NULL, 32, out, out_size,
			     type, ARGON2_VERSION_13);

	assert_int_equal(rc, ARGON2_OK);
}

static void test_argon2(void **state)
{
	char enc[256], prefixed[300];

	(void)state;
	make_argon2(Argon2_id, "s3cret", enc, sizeof(enc));
	assert_memory_equal(enc, "$argon2id$", 10);
	assert_true(password_verify("s3cret", enc));
	assert_false(password_verify("s3creT", enc));
	snprintf(prefixed, sizeof(prefixed), "{ARGON2ID}%s", enc);
	assert_true(password_verify("s3cret", prefixed));
	assert_false(password_verify("wrong", prefixed));
	assert_true(password_hash_supported(prefixed));
	snprintf(prefixed, sizeof(prefixed), "{ARGON2I}%s", enc);
	assert_false(password_verify("s3cret", prefixed));

	make_argon2(Argon2_i, "s3cret", enc, sizeof(enc));
	assert_memory_equal(enc, "$argon2i$", 9);
	assert_true(password_verify("s3cret", enc));
	snprintf(prefixed, sizeof(prefixed), "{ARGON2I}%s", enc);
	assert_true(password_verify("s3cret", prefixed));
	assert_false(password_verify("s3cre", prefixed));
	/* A mangled encoding is not a supported hash. */
	assert_false(password_hash_supported("$argon2id$v=19$m=1024,t=2,p=1$garbage"));
}

static void test_plain(void **state)
{
	(void)state;
	assert_true(password_verify("pass", "{PLAIN}pass"));
	assert_true(password_verify("pass", "{CLEARTEXT}pass"));
	assert_true(password_verify("p{a}ss", "{plain}p{a}ss"));
	assert_false(password_verify("pass", "{PLAIN}Pass"));
	assert_false(password_verify("pas", "{PLAIN}pass"));
	assert_false(password_verify("passs", "{PLAIN}pass"));
	assert_false(password_verify("", "{PLAIN}"));
	assert_false(password_verify("x", "{PLAIN}"));
	assert_true(password_hash_supported("{PLAIN}pass"));
}

static void test_garbage(void **state)
{
	static const char *const bad[] = {
		"", "pass", "{PLAIN", "{MD4}abc", "{SHA512-CRYPT}", "{}x",
		"$1$abcdefgh$ZZZZZZZZZZZZZZZZZZZZZZ", "$6$", "$y$", "$2b$",
		"$argon2id$", "*", "!", "abWz3Yh1s1Pq.", /* traditional DES */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(password_verify("pass", bad[i]));
		assert_false(password_verify("", bad[i]));
		assert_false(password_hash_supported(bad[i]));
	}
	assert_false(password_verify("pass", NULL));
	assert_false(password_verify(NULL, SHA512_HELLO));
	assert_false(password_hash_supported(NULL));
	/* An empty password never verifies, even against its own hash. */
	char *h = NULL;

	assert_int_equal(password_hash("", &h), 0);
	assert_false(password_verify("", h));
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yescrypt_round_trip),
		cmocka_unit_test(test_sha_crypt_vectors),
		cmocka_unit_test(test_bcrypt),
		cmocka_unit_test(test_argon2),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
