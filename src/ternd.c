/* ternd: the Tern mail store daemon. Stays in the foreground and logs to
 * stderr (right under systemd); SIGTERM stops it cleanly. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/fs-perms.h"
#include "core/log.h"
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

/* --check-config also loads the certificate and key, so that a bad TLS
 * setup is found before a restart rather than by it. */
static int check_tls(struct tern_config *cfg)
{
	struct server probe = {.config = cfg};
	if (tls_init(&probe) < 0)
		return 1;
	bool tls = tls_available(&probe);
	tls_deinit(&probe);
	const char *needs = cfg->imaps_listen != NULL && cfg->imaps_listen[0] != '\0' ? "imaps_listen"
			    : cfg->pop3s_listen != NULL && cfg->pop3s_listen[0] != '\0' ? "pop3s_listen"
											   : NULL;
	if (!tls && needs != NULL) {
		log_error("%s is set but tls_cert is not", needs);
		return 1;
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
	struct server srv;
	int status = 1;
	if (server_init(&srv, &cfg) == 0)
		status = server_run(&srv);
	else
		log_error("node %s: start-up failed", cfg.node_name);
	server_deinit(&srv);
	config_free(&cfg);
	return status;
}
