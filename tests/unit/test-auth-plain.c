/* The pure parts of proto/auth: strict base64, SASL PLAIN decoding
 * (RFC 4616), the failure delay, and the sharded failure counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/auth.h"

static void test_base64(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } ok[] = {
		{"", ""}, {"Zg==", "f"}, {"Zm8=", "fo"}, {"Zm9v", "foo"},
		{"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"}, {"Zm9vYmFy", "foobar"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		unsigned char *out = NULL;
		size_t len = 99;
		assert_int_equal(auth_base64_decode(ok[i].in, &out, &len), 0);
		assert_int_equal(len, strlen(ok[i].out));
		assert_memory_equal(out, ok[i].out, len);
		assert_int_equal(out[len], '\0');
		free(out);
	}
	static const char *bad[] = {
		"Zg", "Zg=", "Z===", "Zm9v\n", "Zm 9v", "Zg==Zg==", "Zh==", "Zm9=", "Zm9v!A==", "=Zm9",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned char *out = (unsigned char *)"untouched";
		size_t len = 7;
		assert_int_equal(auth_base64_decode(bad[i], &out, &len), -1);
		assert_string_equal((char *)out, "untouched");
		assert_int_equal(len, 7);
	}
}

/* base64 of [authzid] NUL authcid NUL passwd */
static char *encode_plain(const char *authzid, const char *authcid, const char *passwd)
{
	char raw[2048];
	size_t n = 0;
	n += (size_t)sprintf(raw + n, "%s", authzid) + 1;
	n += (size_t)sprintf(raw + n, "%s", authcid) + 1;
	n += (size_t)sprintf(raw + n, "%s", passwd);
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = calloc(1, n / 3 * 4 + 8);
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)raw[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	return out;
}

static void expect_plain(const char *authzid, const char *authcid, const char *passwd, int want)
{
	char *b64 = encode_plain(authzid, authcid, passwd);
	char *user = NULL, *pass = NULL;
	assert_int_equal(auth_sasl_plain_decode(b64, &user, &pass), want);
	if (want == 0) {
		assert_string_equal(user, authcid);
		assert_string_equal(pass, passwd);
	} else {
		assert_null(user);
		assert_null(pass);
	}
	free(user);
	free(pass);
	free(b64);
}

static void test_sasl_plain(void **state)
{
	(void)state;
	expect_plain("", "alice", "secret", 0);
	expect_plain("alice", "alice", "secret", 0);
	expect_plain("", "alice@example.org", "pass with spaces", 0);
	/* RFC 4616 example: authzid differs from authcid: refused here */
	expect_plain("Ursel", "Kurt", "xipj3plmq", -1);
	expect_plain("", "", "secret", -1);
	expect_plain("", "alice", "", -1);
	char *user = NULL, *pass = NULL;
	/* "tim\0tanstaaftanstaaf" (one NUL only) and three NULs */
	assert_int_equal(auth_sasl_plain_decode("dGltAHRhbnN0YWFmdGFuc3RhYWY=", &user, &pass), -1);
	assert_int_equal(auth_sasl_plain_decode("AGEAYgBj", &user, &pass), -1);       /* \0a\0b\0c */
	assert_int_equal(auth_sasl_plain_decode("AGEAYg==", &user, &pass), 0);        /* \0a\0b */
	assert_string_equal(user, "a");
	assert_string_equal(pass, "b");
	free(user);
	free(pass);
	user = pass = NULL;
	assert_int_equal(auth_sasl_plain_decode("=", &user, &pass), -1);
	assert_int_equal(auth_sasl_plain_decode("", &user, &pass), -1);
	assert_int_equal(auth_sasl_plain_decode("not base64", &user, &pass), -1);
	assert_null(user);
	assert_null(pass);
	/* over-long password */
	char big[1100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect_plain("", "alice", big, -1);
}

static void test_failure_delay(void **state)
{
	(void)state;
	assert_int_equal(auth_failure_delay_ms(0, 5), 0);
	assert_int_equal(auth_failure_delay_ms(2000, 0), 2000);
	assert_int_equal(auth_failure_delay_ms(2000, 1), 2000);
	assert_int_equal(auth_failure_delay_ms(2000, 2), 4000);
	assert_int_equal(auth_failure_delay_ms(2000, 3), 8000);
	assert_int_equal(auth_failure_delay_ms(2000, 4), AUTH_DELAY_CAP_MS);
	assert_int_equal(auth_failure_delay_ms(2000, 4000000000u), AUTH_DELAY_CAP_MS);
	assert_int_equal(auth_failure_delay_ms(100, 3), 400);
	/* a base above the cap is honoured as is */
	assert_int_equal(auth_failure_delay_ms(30000, 1), 30000);
	assert_int_equal(auth_failure_delay_ms(30000, 9), 30000);
}

static void test_failure_counts(void **state)
{
	(void)state;
	uint64_t t = 1000000;
	assert_int_equal(auth_failures_get("u:carol", t), 0);
	assert_int_equal(auth_failures_add("u:carol", t), 1);
	assert_int_equal(auth_failures_add("u:carol", t + 10), 2);
	assert_int_equal(auth_failures_add("a:192.0.2.1", t), 1);
	assert_int_equal(auth_failures_get("u:carol", t + 20), 2);
	/* counts expire after the window */
	assert_int_equal(auth_failures_get("u:carol", t + 10 + AUTH_FAILURE_WINDOW_MS), 0);
	assert_int_equal(auth_failures_add("u:carol", t + 10 + AUTH_FAILURE_WINDOW_MS), 1);
	auth_failures_clear("u:carol");
	assert_int_equal(auth_failures_get("u:carol", t + 20 + AUTH_FAILURE_WINDOW_MS), 0);
	assert_int_equal(auth_failures_get("a:192.0.2.1", t + 20), 1);
	/* many keys: memory is bounded, recent keys survive eviction */
	char key[32];
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "a:10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		auth_failures_add(key, t + 100 + i);
	}
	assert_int_equal(auth_failures_get(key, t + 100 + 100000), 1);
	/* a clock read just before another thread's update still counts */
	assert_int_equal(auth_failures_get(key, t + 50), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_sasl_plain),
		cmocka_unit_test(test_failure_delay),
		cmocka_unit_test(test_failure_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
