#include "cluster/handshake.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

int cluster_nonce(uint8_t nonce[CLUSTER_NONCE_LEN])
{
	return RAND_bytes(nonce, CLUSTER_NONCE_LEN) == 1 ? 0 : -1;
}

/* Appends a 2-byte length and the bytes. */
static size_t put(uint8_t *out, size_t at, const void *data, size_t len)
{
	out[at] = (uint8_t)(len >> 8);
	out[at + 1] = (uint8_t)len;
	memcpy(out + at + 2, data, len);
	return at + 2 + len;
}

void cluster_mac(const char *secret, enum cluster_role role,
		 const uint8_t dialler_nonce[CLUSTER_NONCE_LEN],
		 const uint8_t listener_nonce[CLUSTER_NONCE_LEN], const char *dialler_name,
		 const char *listener_name, uint8_t mac[CLUSTER_MAC_LEN])
{
	/* names are field-sized (< 64 KiB) but only node names, checked short */
	uint8_t msg[2 * 64 + 2 * CLUSTER_NONCE_LEN + 2 * 256 + 5 * 2];
	size_t dn = strnlen(dialler_name, 256), ln = strnlen(listener_name, 256);
	if (dn > 255 || ln > 255) {
		/* longer than the message holds: cutting it short would let two
		 * names share a proof, so no MAC, a value no peer can match */
		RAND_bytes(mac, CLUSTER_MAC_LEN);
		return;
	}
	const char *r = role == CLUSTER_ROLE_DIALLER ? "dialler" : "listener";
	size_t at = put(msg, 0, CLUSTER_PROTOCOL, strlen(CLUSTER_PROTOCOL));
	at = put(msg, at, r, strlen(r));
	at = put(msg, at, dialler_nonce, CLUSTER_NONCE_LEN);
	at = put(msg, at, listener_nonce, CLUSTER_NONCE_LEN);
	at = put(msg, at, dialler_name, dn);
	at = put(msg, at, listener_name, ln);
	unsigned int out_len = CLUSTER_MAC_LEN;
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, at, mac, &out_len) == NULL ||
	    out_len != CLUSTER_MAC_LEN)
		/* no MAC: a value no peer can match */
		RAND_bytes(mac, CLUSTER_MAC_LEN);
}

bool cluster_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return CRYPTO_memcmp(a, b, CLUSTER_MAC_LEN) == 0;
}

enum cluster_answer cluster_dialler_answer(const char *secret, const char *dialler,
					   const char *listener,
					   const uint8_t dialler_nonce[CLUSTER_NONCE_LEN],
					   const struct cluster_frame *challenge,
					   uint8_t proof[CLUSTER_MAC_LEN])
{
	uint8_t want[CLUSTER_MAC_LEN];
	if (challenge->type != CLUSTER_CHALLENGE || !cluster_field_is(&challenge->fields[0], listener))
		return CLUSTER_ANSWER_WRONG_NODE;
	const uint8_t *listener_nonce = challenge->fields[1].data;
	cluster_mac(secret, CLUSTER_ROLE_LISTENER, dialler_nonce, listener_nonce, dialler, listener,
		    want);
	if (!cluster_mac_equal(want, challenge->fields[2].data))
		return CLUSTER_ANSWER_BAD_PROOF;
	cluster_mac(secret, CLUSTER_ROLE_DIALLER, dialler_nonce, listener_nonce, dialler, listener,
		    proof);
	return CLUSTER_ANSWER_OK;
}
