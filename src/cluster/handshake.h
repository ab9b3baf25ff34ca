/* Mutual authentication of two nodes by the shared cluster secret
 * (docs/cluster.md, "Handshake"): each side sends a fresh nonce and proves
 * knowledge of the secret with an HMAC-SHA256 over both nonces, both node
 * names and its role, so the secret never crosses the wire and a proof can
 * be neither replayed nor reflected back to its sender. */
#ifndef TERN_CLUSTER_HANDSHAKE_H
#define TERN_CLUSTER_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/frame.h"

enum cluster_role {
	CLUSTER_ROLE_DIALLER,   /* opened the connection: sends HELLO and AUTH */
	CLUSTER_ROLE_LISTENER,  /* accepted it: sends CHALLENGE and READY */
};

/* Fills nonce with fresh random bytes. -1 if the random source fails. */
int cluster_nonce(uint8_t nonce[CLUSTER_NONCE_LEN]);

/* The proof the node in role sends: HMAC-SHA256(secret, CLUSTER_PROTOCOL,
 * role, dialler nonce, listener nonce, dialler name, listener name), each
 * part length-prefixed so no two different inputs read the same. */
void cluster_mac(const char *secret, enum cluster_role role,
		 const uint8_t dialler_nonce[CLUSTER_NONCE_LEN],
		 const uint8_t listener_nonce[CLUSTER_NONCE_LEN], const char *dialler_name,
		 const char *listener_name, uint8_t mac[CLUSTER_MAC_LEN]);

enum cluster_answer {
	CLUSTER_ANSWER_OK,          /* proof filled: send it in AUTH */
	CLUSTER_ANSWER_WRONG_NODE,  /* another node answers at that address */
	CLUSTER_ANSWER_BAD_PROOF,   /* the listener does not share our secret */
};

/* The dialler's step on a CHALLENGE frame from the node it meant to reach
 * (listener): checks the name and the listener's proof, and on success
 * fills the dialler's own proof. */
enum cluster_answer cluster_dialler_answer(const char *secret, const char *dialler,
					   const char *listener,
					   const uint8_t dialler_nonce[CLUSTER_NONCE_LEN],
					   const struct cluster_frame *challenge,
					   uint8_t proof[CLUSTER_MAC_LEN]);

/* Compares in constant time. */
bool cluster_mac_equal(const uint8_t *a, const uint8_t *b);

#endif
