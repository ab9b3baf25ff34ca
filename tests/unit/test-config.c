/* The configuration parser: value syntaxes, ranges from core/limits.h,
 * file syntax (quotes, comments, repeats) and the error messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/limits.h"

static void test_durations(void **state)
{
	uint64_t ms = 7;

	(void)state;
	assert_int_equal(config_parse_duration_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(config_parse_duration_ms("5s", &ms), 0);
	assert_int_equal(ms, 5000);
	assert_int_equal(config_parse_duration_ms("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(config_parse_duration_ms("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(config_parse_duration_ms("1d", &ms), 0);
	assert_int_equal(ms, 86400000);
	assert_int_equal(config_parse_duration_ms("30", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(config_parse_duration_ms("0", &ms), 0);
	assert_int_equal(ms, 0);
	ms = 7;
	static const char *const bad[] = {
		"", "s", "5x", "-5s", "5 s", " 5s", "5sec", "1.5s", "ms5",
		"99999999999999999999", "18446744073709551615ms1", "18446744073709551615d",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(config_parse_duration_ms(bad[i], &ms), -1);
	assert_int_equal(ms, 7);
}

static void test_sizes(void **state)
{
	uint64_t b = 7;

	(void)state;
	assert_int_equal(config_parse_size("100", &b), 0);
	assert_int_equal(b, 100);
	assert_int_equal(config_parse_size("100k", &b), 0);
	assert_int_equal(b, 102400);
	assert_int_equal(config_parse_size("100KB", &b), 0);
	assert_int_equal(b, 102400);
	assert_int_equal(config_parse_size("50M", &b), 0);
	assert_int_equal(b, 50ull << 20);
	assert_int_equal(config_parse_size("1g", &b), 0);
	assert_int_equal(b, 1ull << 30);
	assert_int_equal(config_parse_size("12b", &b), 0);
	assert_int_equal(b, 12);
	b = 7;
	static const char *const bad[] = {
		"", "k", "abc", "1x", "1kk", "1 k", "-1", "1.5M", "99999999999999999999k",
		"17179869184G",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(config_parse_size(bad[i], &b), -1);
	assert_int_equal(b, 7);
}

static void test_bool_listen(void **state)
{
	bool v = false;
	char host[64] = "untouched";
	uint16_t port = 0;

	(void)state;
	assert_int_equal(config_parse_bool("Yes", &v), 0);
	assert_true(v);
	assert_int_equal(config_parse_bool("off", &v), 0);
	assert_false(v);
	assert_int_equal(config_parse_bool("1", &v), 0);
	assert_true(v);
	assert_int_equal(config_parse_bool("FALSE", &v), 0);
	assert_false(v);
	assert_int_equal(config_parse_bool("maybe", &v), -1);
	assert_int_equal(config_parse_bool("", &v), -1);

	assert_int_equal(config_parse_listen("127.0.0.1:2424", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 2424);
	assert_int_equal(config_parse_listen("[::1]:143", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 143);
	assert_int_equal(config_parse_listen("localhost:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "localhost");
	strcpy(host, "untouched");
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", ":143", "host:0", "host:65536", "host:12x",
		"::1:143", "[::1]143", "[::1", "[]:143", "a b:1", "host:-1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(config_parse_listen(bad[i], host, sizeof(host), &port), -1);
	assert_string_equal(host, "untouched");
	/* Host longer than the buffer. */
	assert_int_equal(config_parse_listen("abcdefgh:1", host, 8, &port), -1);
}

static void test_defaults(void **state)
{
	struct tern_config cfg;

	(void)state;
	config_defaults(&cfg);
	assert_string_equal(cfg.node_name, "node1");
	assert_string_equal(cfg.data_dir, "./var");
	assert_string_equal(cfg.directory, "./var/directory.db");
	assert_string_equal(cfg.lmtp_listen, "127.0.0.1:2424");
	assert_string_equal(cfg.imap_listen, "127.0.0.1:1143");
	assert_string_equal(cfg.pop3_listen, "127.0.0.1:1110");
	assert_string_equal(cfg.imaps_listen, "");
	assert_string_equal(cfg.admin_listen, "");
	assert_false(cfg.allow_plaintext_auth);
	assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
	assert_int_equal(cfg.max_message_size, TERN_MESSAGE_SIZE_DEFAULT);
	assert_int_equal(cfg.max_line_length, TERN_LINE_LENGTH_DEFAULT);
	assert_int_equal(cfg.max_literal_size, TERN_LITERAL_SIZE_DEFAULT);
	assert_int_equal(cfg.max_connections, TERN_CONNECTIONS_DEFAULT);
	assert_int_equal(cfg.max_bad_commands, TERN_BAD_COMMANDS_DEFAULT);
	assert_int_equal(cfg.max_recipients, TERN_RECIPIENTS_DEFAULT);
	assert_int_equal(cfg.idle_timeout_ms, TERN_IDLE_TIMEOUT_MS_DEFAULT);
	assert_int_equal(cfg.lmtp_timeout_ms, TERN_LMTP_TIMEOUT_MS_DEFAULT);
	assert_int_equal(cfg.shutdown_timeout_ms, TERN_SHUTDOWN_TIMEOUT_MS_DEFAULT);
	assert_int_equal(cfg.watchdog_threshold_ms, TERN_WATCHDOG_THRESHOLD_MS_DEFAULT);
	assert_int_equal(cfg.auth_failure_delay_ms, 2000);
	assert_int_equal(cfg.default_quota, 0);
	assert_int_equal(cfg.worker_threads, 0);
	config_free(&cfg);
	assert_null(cfg.node_name);
	assert_null(cfg.directory);
}

/* config_set must fail with this exact message and leave the field alone. */
static void expect_set_error(struct tern_config *cfg, const char *key, const char *value,
			     const char *want)
{
	char *err = NULL;

	assert_int_equal(config_set(cfg, key, value, &err), -1);
	assert_non_null(err);
	assert_string_equal(err, want);
	free(err);
}

static void test_set(void **state)
{
	struct tern_config cfg;
	char *err = NULL;

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_set(&cfg, "max_message_size", "10M", &err), 0);
	assert_int_equal(cfg.max_message_size, 10u << 20);
	assert_int_equal(config_set(&cfg, "idle_timeout", "90s", &err), 0);
	assert_int_equal(cfg.idle_timeout_ms, 90000);
	assert_int_equal(config_set(&cfg, "auth_failure_delay", "250ms", &err), 0);
	assert_int_equal(cfg.auth_failure_delay_ms, 250);
	assert_int_equal(config_set(&cfg, "allow_plaintext_auth", "yes", &err), 0);
	assert_true(cfg.allow_plaintext_auth);
	assert_int_equal(config_set(&cfg, "log_level", "debug", &err), 0);
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(config_set(&cfg, "imap_listen", "", &err), 0);
	assert_string_equal(cfg.imap_listen, "");
	assert_int_equal(config_set(&cfg, "worker_threads", "4", &err), 0);
	assert_int_equal(cfg.worker_threads, 4);
	assert_int_equal(config_set(&cfg, "default_quota", "1G", &err), 0);
	assert_int_equal(cfg.default_quota, 1ull << 30);
	assert_int_equal(config_set(&cfg, "max_line_length", "1M", &err), 0);
	assert_int_equal(cfg.max_line_length, TERN_LINE_LENGTH_CEILING);

	expect_set_error(&cfg, "foo", "1", "key 'foo': unknown key");
	/* The _ms field names are not keys. */
	expect_set_error(&cfg, "idle_timeout_ms", "5", "key 'idle_timeout_ms': unknown key");
	expect_set_error(&cfg, "max_message_size", "abc",
			 "key 'max_message_size': invalid size 'abc'");
	expect_set_error(&cfg, "idle_timeout", "5x", "key 'idle_timeout': invalid duration '5x'");
	expect_set_error(&cfg, "allow_plaintext_auth", "perhaps",
			 "key 'allow_plaintext_auth': invalid boolean 'perhaps'");
	expect_set_error(&cfg, "log_level", "loud", "key 'log_level': invalid log level 'loud'");
	expect_set_error(&cfg, "max_connections", "10k",
			 "key 'max_connections': invalid number '10k'");
	expect_set_error(&cfg, "lmtp_listen", "nowhere",
			 "key 'lmtp_listen': invalid address 'nowhere' (want host:port)");
	expect_set_error(&cfg, "node_name", "", "key 'node_name': invalid value ''");
	expect_set_error(&cfg, "node_name", "a b", "key 'node_name': invalid value 'a b'");
	expect_set_error(&cfg, "data_dir", "", "key 'data_dir': empty value");
	expect_set_error(&cfg, "directory", "", "key 'directory': empty value");

	/* Limits cannot be switched off, go under their minimum, or pass the ceiling. */
	err = NULL;
	assert_int_equal(config_set(&cfg, "max_message_size", "0", &err), -1);
	assert_non_null(strstr(err, "out of range"));
	free(err);
	err = NULL;
	assert_int_equal(config_set(&cfg, "max_message_size", "2G", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(config_set(&cfg, "max_line_length", "100", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(config_set(&cfg, "max_line_length", "2M", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(config_set(&cfg, "max_literal_size", "17M", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(config_set(&cfg, "max_bad_commands", "0", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(config_set(&cfg, "max_recipients", "99", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(config_set(&cfg, "max_connections", "1000001", &err), -1);
	free(err);
	err = NULL;
	/* Out of uint32 milliseconds. */
	assert_int_equal(config_set(&cfg, "idle_timeout", "60d", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(config_set(&cfg, "idle_timeout", "0", &err), -1);
	free(err);
	/* Failed sets left the good values alone. */
	assert_int_equal(cfg.max_message_size, 10u << 20);
	assert_int_equal(cfg.max_line_length, TERN_LINE_LENGTH_CEILING);
	assert_int_equal(cfg.idle_timeout_ms, 90000);
	assert_true(cfg.allow_plaintext_auth);
	config_free(&cfg);
}

static void test_directory_follows_data_dir(void **state)
{
	struct tern_config cfg;
	char *err = NULL;

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_set(&cfg, "data_dir", "/srv/tern/", &err), 0);
	assert_string_equal(cfg.directory, "/srv/tern/directory.db");
	assert_int_equal(config_set(&cfg, "directory", "/etc/tern/dir.db", &err), 0);
	assert_int_equal(config_set(&cfg, "data_dir", "/srv/other", &err), 0);
	assert_string_equal(cfg.directory, "/etc/tern/dir.db");
	assert_int_equal(config_set(&cfg, "directory", "/srv/other/directory.db", &err), 0);
	assert_int_equal(config_set(&cfg, "data_dir", "/srv/with space", &err), 0);
	assert_string_equal(cfg.directory, "/srv/with space/directory.db");
	config_free(&cfg);
}

static char tmp_path[64];

static void write_file(const char *text)
{
	int fd;

	strcpy(tmp_path, "/tmp/tern-test-config-XXXXXX");
	fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_load(void **state)
{
	struct tern_config cfg;
	char *err = NULL;

	(void)state;
	config_defaults(&cfg);
	write_file("# Tern test configuration\n"
		   "\n"
		   "node_name = alpha\n"
		   "   data_dir=/var/lib/tern   # trailing comment\n"
		   "domains = \"example.org, example.net\"  # quoted\n"
		   "tls_cert = \"/etc/ssl/a b#c.pem\"\n"
		   "tls_key = /etc/ssl/key#1.pem\n"
		   "max_message_size = 20M\n"
		   "max_message_size = 30M\n"
		   "lmtp_timeout = 2m\n"
		   "watchdog_threshold = 250ms\n"
		   "imaps_listen = [::]:993\r\n"
		   "\t# indented comment\n"
		   "admin_listen = \"\"\n");
	assert_int_equal(config_load(&cfg, tmp_path, &err), 0);
	unlink(tmp_path);
	assert_null(err);
	assert_string_equal(cfg.node_name, "alpha");
	assert_string_equal(cfg.data_dir, "/var/lib/tern");
	assert_string_equal(cfg.directory, "/var/lib/tern/directory.db");
	assert_string_equal(cfg.domains, "example.org, example.net");
	assert_string_equal(cfg.tls_cert, "/etc/ssl/a b#c.pem");
	assert_string_equal(cfg.tls_key, "/etc/ssl/key#1.pem");
	assert_int_equal(cfg.max_message_size, 30u << 20);
	assert_int_equal(cfg.lmtp_timeout_ms, 120000);
	assert_int_equal(cfg.watchdog_threshold_ms, 250);
	assert_string_equal(cfg.imaps_listen, "[::]:993");
	assert_string_equal(cfg.admin_listen, "");
	config_free(&cfg);
}

static void test_load_explicit_directory(void **state)
{
	struct tern_config cfg;
	char *err = NULL;

	(void)state;
	/* Explicit directory wins even when it equals the derived path and a
	 * later data_dir would otherwise move it. */
	config_defaults(&cfg);
	write_file("directory = ./var/directory.db\n"
		   "data_dir = /elsewhere\n");
	assert_int_equal(config_load(&cfg, tmp_path, &err), 0);
	unlink(tmp_path);
	assert_string_equal(cfg.directory, "./var/directory.db");
	assert_string_equal(cfg.data_dir, "/elsewhere");
	config_free(&cfg);

	config_defaults(&cfg);
	write_file("directory = postgresql://db.example.org/tern\n");
	assert_int_equal(config_load(&cfg, tmp_path, &err), 0);
	unlink(tmp_path);
	assert_string_equal(cfg.directory, "postgresql://db.example.org/tern");
	config_free(&cfg);
}

static void expect_load_error(const char *text, const char *want_suffix)
{
	struct tern_config cfg;
	char *err = NULL, *want;

	config_defaults(&cfg);
	write_file(text);
	assert_int_equal(config_load(&cfg, tmp_path, &err), -1);
	assert_non_null(err);
	assert_true(asprintf(&want, "%s:%s", tmp_path, want_suffix) > 0);
	assert_string_equal(err, want);
	unlink(tmp_path);
	free(want);
	free(err);
	config_free(&cfg);
}

static void test_load_errors(void **state)
{
	struct tern_config cfg;
	char *err = NULL;

	(void)state;
	expect_load_error("node_name = a\n\nfoo = 1\n", "3: key 'foo': unknown key");
	expect_load_error("# x\nmax_message_size = abc\n",
			  "2: key 'max_message_size': invalid size 'abc'");
	expect_load_error("just words\n", "1: expected 'key = value'");
	expect_load_error("= 5\n", "1: missing key before '='");
	expect_load_error("domains = \"open\n", "1: unterminated quoted value");
	expect_load_error("domains = \"a\" b\n", "1: text after the closing quote");
	expect_load_error("max_message_size = 0\n",
			  "1: key 'max_message_size': '0' is out of range (1024..1073741824)");

	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, "/nonexistent/tern.conf", &err), -1);
	assert_non_null(strstr(err, "/nonexistent/tern.conf"));
	free(err);
	config_free(&cfg);
}

/* The cluster keys' cross-checks (config_finish) and the secret file. */
static void test_cluster_keys(void **state)
{
	struct tern_config cfg;
	char *err = NULL;
	char secret_path[] = "/tmp/tern-test-secret-XXXXXX";

	(void)state;
	expect_load_error("cluster_listen = 127.0.0.1:7001\n",
			  " cluster_listen is set: cluster_secret (or cluster_secret_file) of at "
			  "least 16 characters is needed");
	expect_load_error("cluster_listen = 127.0.0.1:7001\ncluster_secret = short\n",
			  " cluster_listen is set: cluster_secret (or cluster_secret_file) of at "
			  "least 16 characters is needed");
	expect_load_error("cluster_listen = 0.0.0.0:7001\ncluster_secret = 0123456789abcdef\n",
			  " cluster_listen = 0.0.0.0:7001 is a wildcard address: set "
			  "cluster_advertise to the address other nodes dial");
	expect_load_error("cluster_listen = 127.0.0.1:7001\ncluster_secret = 0123456789abcdef\n"
			  "cluster_tls = yes\n",
			  " cluster_tls = yes needs cluster_ca, tls_cert and tls_key");

	/* a wildcard with an address to advertise is fine */
	config_defaults(&cfg);
	write_file("cluster_listen = 0.0.0.0:7001\ncluster_advertise = 192.0.2.1:7001\n"
		   "cluster_secret = 0123456789abcdef\n");
	assert_int_equal(config_load(&cfg, tmp_path, &err), 0);
	unlink(tmp_path);
	assert_string_equal(config_cluster_address(&cfg), "192.0.2.1:7001");
	config_free(&cfg);

	/* the secret file: one line, its newline not part of the secret */
	int fd = mkstemp(secret_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "from-a-file-0123456789\n", 23), 23);
	close(fd);
	assert_int_equal(chmod(secret_path, 0600), 0);
	char *text;
	assert_true(asprintf(&text, "cluster_listen = 127.0.0.1:7001\ncluster_secret_file = %s\n",
			     secret_path) > 0);
	config_defaults(&cfg);
	write_file(text);
	assert_int_equal(config_load(&cfg, tmp_path, &err), 0);
	unlink(tmp_path);
	assert_string_equal(cfg.cluster_secret, "from-a-file-0123456789");
	assert_string_equal(config_cluster_address(&cfg), "127.0.0.1:7001");
	config_free(&cfg);

	/* readable by others: refused, as ssh refuses such a key */
	assert_int_equal(chmod(secret_path, 0644), 0);
	config_defaults(&cfg);
	write_file(text);
	assert_int_equal(config_load(&cfg, tmp_path, &err), -1);
	unlink(tmp_path);
	assert_non_null(strstr(err, "is readable by others (mode 0644)"));
	free(err);
	err = NULL;
	config_free(&cfg);
	free(text);

	/* both ways at once: refused */
	assert_true(asprintf(&text, "cluster_secret = 0123456789abcdef\ncluster_secret_file = %s\n",
			     secret_path) > 0);
	config_defaults(&cfg);
	write_file(text);
	assert_int_equal(config_load(&cfg, tmp_path, &err), -1);
	unlink(tmp_path);
	assert_non_null(strstr(err, "cluster_secret and cluster_secret_file are both set"));
	free(err);
	config_free(&cfg);
	free(text);
	unlink(secret_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_bool_listen),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_directory_follows_data_dir),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_load_explicit_directory),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_cluster_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
