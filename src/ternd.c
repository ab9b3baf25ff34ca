/* ternd: the Tern mail store daemon. Stays in the foreground and logs to
 * stderr (right under systemd); SIGTERM stops it cleanly. This is where the
 * protocol front ends are wired to the server: server/ names no protocol. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/fs-perms.h"
#include "core/log.h"
#include "cluster/cluster-tls.h"
#include "cluster/control.h"
#include "cluster/inbound.h"
#include "mover/move-source.h"
#include "mover/mover.h"
#include "proto/auth.h"
#include "proto/imap/session.h"
#include "proto/lmtp/session.h"
#include "proto/pop3/session.h"
#include "server/freeze.h"
#include "server/server.h"
#include "server/tls.h"
#include "store/store.h"

static const char usage_text[] =
	"Usage: ternd [--config FILE] [--check-config]\n"
	"       ternd --help | --version\n"
	"\n"
	"Tern mail store daemon: takes delivery over LMTP and serves mailboxes.\n"
	"\n"
	"  -c, --config FILE   configuration file (default: $TERN_CONFIG, else\n"
	"                      /etc/tern/tern.conf); 'key = value' lines, see\n"
	"                      docs/configuration.md\n"
	"  -t, --check-config  check the configuration and exit (0 = valid)\n"
	"  -h, --help          show this help and exit\n"
	"  -V, --version       show the version and exit\n"
	"\n"
	"ternd runs in the foreground and logs to stderr, one line per event.\n"
	"SIGTERM or SIGINT: stop accepting connections, let open transactions finish\n"
	"(up to shutdown_timeout), then exit 0. A second signal stops at once.\n";

enum { LISTEN_COUNT = 6 };

/* The configuration the services run with (set once in main). */
static const struct tern_config *node_config;

/* Password workers for IMAP and POP3 logins, and the mover, which takes
 * the moves bound here. */
static void services_start(struct server *srv)
{
	auth_pool_start();
	if (mover_start(node_config, srv) < 0)
		log_error("node %s: the mover did not start; moves to this node wait",
			  node_config->node_name);
}

static void services_stop(void)
{
	mover_stop();
	auth_pool_stop();
}

/* Every listener a node can have, from the configuration. */
static void frontends_of(const struct tern_config *cfg, struct server_listen listens[LISTEN_COUNT],
			 struct server_frontends *fe_r)
{
	const struct server_listen table[LISTEN_COUNT] = {
		{"lmtp", cfg->lmtp_listen, &lmtp_proto, false},
		{"imap", cfg->imap_listen, &imap_proto, false},
		{"imaps", cfg->imaps_listen, &imap_proto, true},
		{"pop3", cfg->pop3_listen, &pop3_proto, false},
		{"pop3s", cfg->pop3s_listen, &pop3_proto, true},
		/* other nodes: proxied sessions and relayed deliveries */
		{"cluster", cfg->cluster_listen, &cluster_proto, false},
	};
	memcpy(listens, table, sizeof(table));
	/* what another node may open here once it has proved the secret */
	static const struct cluster_service services[] = {
		{"imap", true, imap_session_adopt},
		{"pop3", true, pop3_session_adopt},
		{"lmtp", false, lmtp_session_adopt},
		{"move", true, move_source_adopt},
		/* freezing users (server/freeze.h): the mover, and tests */
		{"control", false, control_session_adopt},
	};
	cluster_set_services(services, sizeof(services) / sizeof(services[0]));
	*fe_r = (struct server_frontends){
		.listens = listens,
		.listen_count = LISTEN_COUNT,
		/* IMAP and POP3 logins check passwords on these workers */
		.services_start = services_start,
		.services_stop = services_stop,
	};
}

/* --check-config also loads the certificate and key, so that a bad TLS
 * setup is found before a restart rather than by it. */
static int check_tls(struct tern_config *cfg)
{
	struct server probe = {.config = cfg};
	if (tls_init(&probe) < 0)
		return 1;
	bool tls = tls_available(&probe);
	tls_deinit(&probe);
	struct server_listen listens[LISTEN_COUNT];
	struct server_frontends fe;
	frontends_of(cfg, listens, &fe);
	for (size_t i = 0; i < fe.listen_count && !tls; i++) {
		if (listens[i].tls && listens[i].addr != NULL && listens[i].addr[0] != '\0') {
			log_error("%s_listen is set but tls_cert is not", listens[i].what);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = getenv("TERN_CONFIG");
	bool check_only = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:thV", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ternd %s\n", TERN_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ternd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (config_path == NULL)
		config_path = "/etc/tern/tern.conf";
	struct tern_config cfg;
	char *err = NULL;
	config_defaults(&cfg);
	if (config_load(&cfg, config_path, &err) < 0) {
		fprintf(stderr, "ternd: %s\n", err != NULL ? err : "cannot load configuration");
		free(err);
		config_free(&cfg);
		return 1;
	}
	log_init("ternd", cfg.log_level);
	store_library_init();
	if (check_only) {
		int rc = check_tls(&cfg);
		if (rc == 0)
			printf("ternd: %s: configuration OK\n", config_path);
		config_free(&cfg);
		return rc;
	}
	fs_private_umask();
	if (fs_secure_data_dir(cfg.data_dir, cfg.directory) < 0) {
		config_free(&cfg);
		return 1;
	}
	struct server_listen listens[LISTEN_COUNT];
	struct server_frontends fe;
	node_config = &cfg;
	frontends_of(&cfg, listens, &fe);
	struct server srv;
	int status = 1;
	if (cluster_tls_init(&cfg) < 0) {
		log_error("node %s: start-up failed", cfg.node_name);
		config_free(&cfg);
		return 1;
	}
	if (server_init(&srv, &cfg, &fe) == 0)
		status = server_run(&srv);
	else
		log_error("node %s: start-up failed", cfg.node_name);
	server_deinit(&srv);
	freeze_stop();
	cluster_tls_deinit();
	config_free(&cfg);
	return status;
}
