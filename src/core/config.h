/* The ternd/ternctl configuration file: "key = value" lines, '#' comments.
 * Unknown keys and bad values are refused with file, line and key named.
 * Durations take a unit (250ms, 5s, 2m, 1h; bare = seconds), sizes a suffix
 * (100k, 50M, 1G; bare = bytes). */
#ifndef TERN_CORE_CONFIG_H
#define TERN_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

struct tern_config {
	char *node_name;            /* default: "node1" */
	char *data_dir;             /* default: "./var" */
	char *directory;            /* SQLite path or postgresql://; default "<data_dir>/directory.db" */
	char *domains;              /* comma/space separated; empty = any domain */
	char *lmtp_listen;          /* "host:port", empty = off; default "127.0.0.1:2424" */
	char *imap_listen;          /* default "127.0.0.1:1143" */
	char *imaps_listen;         /* default "" */
	char *pop3_listen;          /* default "127.0.0.1:1110" */
	char *pop3s_listen;         /* default "" */
	char *admin_listen;         /* default "" */
	char *tls_cert;             /* PEM file; default "" */
	char *tls_key;              /* default "" */
	bool allow_plaintext_auth;  /* default false (loopback is always allowed) */
	enum log_level log_level;   /* default info */
	uint64_t max_message_size;  /* bytes */
	uint32_t max_line_length;   /* bytes */
	uint32_t max_literal_size;  /* bytes */
	uint32_t max_connections;
	uint32_t max_bad_commands;
	uint32_t max_recipients;
	uint32_t worker_threads;    /* event-loop threads; 0 = number of CPUs */
	uint32_t shutdown_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t lmtp_timeout_ms;
	uint32_t watchdog_threshold_ms;
	uint32_t auth_failure_delay_ms; /* base delay after a failed login; default 2s */
	uint64_t default_quota;     /* bytes per user, 0 = unlimited */
	bool quota_full_tempfail;   /* over quota: LMTP 452 4.2.2 instead of 552 5.2.2 */
	uint32_t lmtp_max_connections;  /* LMTP's own budget, apart from max_connections */
	uint32_t max_preauth_per_address; /* not-yet-authenticated connections per client address */
	uint32_t login_timeout_ms;  /* from connect to successful login, not reset by input */
	uint32_t auth_max_pending;  /* password checks queued or running, node-wide */
	uint32_t auth_max_pending_per_address; /* of those, from one client address */
	/* The cluster (docs/cluster.md). Off while cluster_listen is empty. */
	char *cluster_listen;       /* "host:port" for node-to-node traffic; default "" */
	char *cluster_advertise;    /* what other nodes dial; default: cluster_listen
	                               unless that is a wildcard address */
	char *cluster_secret;       /* shared by all nodes; cluster_secret_file is read into it */
	char *cluster_secret_file;
	uint32_t cluster_timeout_ms;/* connect + handshake + first reply; default 5s */
	bool cluster_tls;           /* TLS with peer verification on the cluster channel */
	char *cluster_ca;           /* PEM file of the CA that signs the nodes' certificates */
	uint32_t cluster_max_connections; /* inbound node-to-node connections */
	/* How long a logon or delivery for a frozen user (a move's final
	 * phase) stays parked before a temporary error; default 5s. */
	uint32_t move_freeze_timeout_ms;
	uint32_t move_freeze_target_ms; /* a move's last round should fit in this; default 50ms */
	uint64_t move_bandwidth;    /* bytes per second a move's copy may use; 0 = unlimited */
};

/* Fills *cfg with the defaults (strings are heap copies). */
void config_defaults(struct tern_config *cfg);
/* Reads FILE over the defaults already in *cfg. On error returns -1 and sets
 * *err_r (heap) to "FILE:LINE: key 'x': reason". */
int config_load(struct tern_config *cfg, const char *path, char **err_r);
/* Sets one key from a string, as a config line would (used by config_load
 * and by tests). Returns -1 with *err_r (heap) on an unknown key or bad value. */
int config_set(struct tern_config *cfg, const char *key, const char *value, char **err_r);
void config_free(struct tern_config *cfg);
/* Checks that go across keys and reads cluster_secret_file, once every key
 * is set (config_load calls it). -1 with *err_r (heap) if inconsistent. */
int config_finish(struct tern_config *cfg, char **err_r);
/* The address other nodes dial: cluster_advertise, else cluster_listen. */
const char *config_cluster_address(const struct tern_config *cfg);

/* "250ms", "5s", "2m", "1h", "1d", bare = seconds. Returns -1 if malformed. */
int config_parse_duration_ms(const char *s, uint64_t *ms_r);
/* "100", "100k", "50M", "1G" (powers of 1024, case-insensitive, optional B). */
int config_parse_size(const char *s, uint64_t *bytes_r);
/* "yes/no/true/false/on/off/1/0". */
int config_parse_bool(const char *s, bool *b_r);
/* Splits "host:port" or "[v6]:port". Returns -1 if malformed. */
int config_parse_listen(const char *s, char *host_r, size_t host_size, uint16_t *port_r);

#endif
