/* SASL PLAIN decoding (RFC 4616) and the strict base64 it rides on. Pure
 * functions: no state, no logging. */
#include "proto/auth.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes one 4-character group into out; returns the bytes written (1..3)
 * or -1. last: the group may end with padding. */
static int b64_group(const char *in, bool last, unsigned char *out)
{
	int v[4];
	int pad = 0;
	for (int i = 0; i < 4; i++) {
		if (in[i] == '=' && last && i >= 2) {
			pad++;
			v[i] = 0;
			continue;
		}
		if (pad > 0 || (v[i] = b64_value((unsigned char)in[i])) < 0)
			return -1;
	}
	uint32_t bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			(uint32_t)v[3];
	/* RFC 4648 §3.5: the bits a padded group leaves unused must be zero */
	if ((pad == 1 && (bits & 0xff) != 0) || (pad == 2 && (bits & 0xffff) != 0))
		return -1;
	out[0] = (unsigned char)(bits >> 16);
	out[1] = (unsigned char)(bits >> 8);
	out[2] = (unsigned char)bits;
	return 3 - pad;
}

int auth_base64_decode(const char *in, unsigned char **out_r, size_t *len_r)
{
	size_t n = strlen(in);
	if (n % 4 != 0)
		return -1;
	unsigned char *out = malloc(n / 4 * 3 + 1);
	if (out == NULL)
		return -1;
	size_t len = 0;
	for (size_t i = 0; i < n; i += 4) {
		int got = b64_group(in + i, i + 4 == n, out + len);
		if (got < 0) {
			free(out);
			return -1;
		}
		len += (size_t)got;
	}
	out[len] = '\0';
	*out_r = out;
	*len_r = len;
	return 0;
}

int auth_sasl_plain_decode(const char *b64, char **authcid_r, char **passwd_r)
{
	unsigned char *raw;
	size_t len;
	if (auth_base64_decode(b64, &raw, &len) < 0)
		return -1;
	int ret = -1;
	const char *authzid = (const char *)raw;
	const unsigned char *nul1 = memchr(raw, '\0', len);
	const unsigned char *nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - raw)) : NULL;
	if (nul2 == NULL || memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - raw)) != NULL)
		goto out;
	const char *authcid = (const char *)nul1 + 1;
	const char *passwd = (const char *)nul2 + 1;
	size_t authcid_len = (size_t)(nul2 - nul1) - 1;
	size_t passwd_len = len - (size_t)(nul2 + 1 - raw);
	if (authcid_len == 0 || authcid_len > TERN_USERNAME_MAX || passwd_len == 0 ||
	    passwd_len > TERN_PASSWORD_MAX)
		goto out;
	/* RFC 4616 §2: authorising as another identity is a proxy-login feature
	 * Tern does not offer, so only "none" or "the same" are accepted. */
	if (authzid[0] != '\0' && strcmp(authzid, authcid) != 0)
		goto out;
	char *a = strdup(authcid);
	char *p = strdup(passwd);
	if (a == NULL || p == NULL) {
		free(a);
		free(p);
		goto out;
	}
	*authcid_r = a;
	*passwd_r = p;
	ret = 0;
out:
	explicit_bzero(raw, len);
	free(raw);
	return ret;
}
