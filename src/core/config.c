/* The configuration file parser (see config.h). Every key is a row in one
 * table with its type and its allowed range, so a new key is one line and
 * no key can be switched off by a value the table does not allow. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/limits.h"

enum key_type {
	KEY_STRING,     /* any text, "" allowed */
	KEY_NAME,       /* non-empty text without blanks */
	KEY_PATH,       /* non-empty text */
	KEY_LISTEN,     /* "" = off, else host:port */
	KEY_BOOL,
	KEY_LOGLEVEL,
	KEY_SIZE64,
	KEY_SIZE32,
	KEY_COUNT32,
	KEY_DURATION32, /* stored in milliseconds */
};

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;
	uint64_t min, max;
};

#define KEY(n, t, lo, hi) { #n, t, offsetof(struct tern_config, n), lo, hi }
#define DUR(n, lo, hi) { #n, KEY_DURATION32, offsetof(struct tern_config, n##_ms), lo, hi }

/* Minimums keep a limit meaningful: a 0 or tiny limit would either switch
 * the check off or make the protocol unusable (P5). */
static const struct key_def keys[] = {
	KEY(node_name, KEY_NAME, 0, 0),
	KEY(data_dir, KEY_PATH, 0, 0),
	KEY(directory, KEY_PATH, 0, 0),
	KEY(domains, KEY_STRING, 0, 0),
	KEY(lmtp_listen, KEY_LISTEN, 0, 0),
	KEY(imap_listen, KEY_LISTEN, 0, 0),
	KEY(imaps_listen, KEY_LISTEN, 0, 0),
	KEY(pop3_listen, KEY_LISTEN, 0, 0),
	KEY(pop3s_listen, KEY_LISTEN, 0, 0),
	KEY(admin_listen, KEY_LISTEN, 0, 0),
	KEY(tls_cert, KEY_STRING, 0, 0),
	KEY(tls_key, KEY_STRING, 0, 0),
	KEY(allow_plaintext_auth, KEY_BOOL, 0, 0),
	KEY(log_level, KEY_LOGLEVEL, 0, 0),
	KEY(max_message_size, KEY_SIZE64, TERN_MESSAGE_SIZE_MIN, TERN_MESSAGE_SIZE_CEILING),
	KEY(max_line_length, KEY_SIZE32, TERN_LINE_LENGTH_MIN, TERN_LINE_LENGTH_CEILING),
	KEY(max_literal_size, KEY_SIZE32, TERN_LITERAL_SIZE_MIN, TERN_LITERAL_SIZE_CEILING),
	KEY(max_connections, KEY_COUNT32, 1, TERN_CONNECTIONS_CEILING),
	KEY(max_bad_commands, KEY_COUNT32, 1, TERN_BAD_COMMANDS_CEILING),
	/* RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted. */
	KEY(max_recipients, KEY_COUNT32, 100, TERN_RECIPIENTS_CEILING),
	KEY(worker_threads, KEY_COUNT32, 0, TERN_WORKER_THREADS_CEILING),
	DUR(shutdown_timeout, 0, TERN_SHUTDOWN_TIMEOUT_MS_CEILING),
	DUR(idle_timeout, TERN_IDLE_TIMEOUT_MS_MIN, TERN_IDLE_TIMEOUT_MS_CEILING),
	DUR(lmtp_timeout, TERN_IDLE_TIMEOUT_MS_MIN, TERN_IDLE_TIMEOUT_MS_CEILING),
	DUR(watchdog_threshold, TERN_WATCHDOG_THRESHOLD_MS_MIN, TERN_WATCHDOG_THRESHOLD_MS_CEILING),
	DUR(auth_failure_delay, 0, TERN_AUTH_FAILURE_DELAY_MS_CEILING),
	KEY(default_quota, KEY_SIZE64, 0, UINT64_MAX),
	KEY(quota_full_tempfail, KEY_BOOL, 0, 0),
	KEY(lmtp_max_connections, KEY_COUNT32, 1, TERN_CONNECTIONS_CEILING),
	KEY(max_preauth_per_address, KEY_COUNT32, 1, TERN_CONNECTIONS_CEILING),
	DUR(login_timeout, TERN_LOGIN_TIMEOUT_MS_MIN, TERN_LOGIN_TIMEOUT_MS_CEILING),
	KEY(auth_max_pending, KEY_COUNT32, 1, TERN_AUTH_PENDING_CEILING),
	KEY(auth_max_pending_per_address, KEY_COUNT32, 1, TERN_AUTH_PENDING_CEILING),
	KEY(cluster_listen, KEY_LISTEN, 0, 0),
	KEY(cluster_advertise, KEY_LISTEN, 0, 0),
	KEY(cluster_secret, KEY_STRING, 0, 0),
	KEY(cluster_secret_file, KEY_STRING, 0, 0),
	DUR(cluster_timeout, TERN_CLUSTER_TIMEOUT_MS_MIN, TERN_CLUSTER_TIMEOUT_MS_CEILING),
	KEY(cluster_tls, KEY_BOOL, 0, 0),
	KEY(cluster_ca, KEY_STRING, 0, 0),
	KEY(cluster_max_connections, KEY_COUNT32, 1, TERN_CONNECTIONS_CEILING),
	DUR(move_freeze_timeout, TERN_MOVE_FREEZE_TIMEOUT_MS_MIN, TERN_MOVE_FREEZE_TIMEOUT_MS_CEILING),
	DUR(move_freeze_target, 1, TERN_MOVE_FREEZE_TIMEOUT_MS_CEILING),
	KEY(move_bandwidth, KEY_SIZE64, 0, UINT64_MAX),
};

/* The configuration is read at start-up only, where running out of memory
 * may end the process (docs/architecture.md, "Out of memory"): say so and
 * exit rather than return a half-read configuration. */
static _Noreturn void config_no_memory(void)
{
	fputs("tern: out of memory while reading the configuration\n", stderr);
	exit(1);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		config_no_memory();
	return d;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		config_no_memory();
	va_end(ap);
	return s;
}

static void set_string(char **field, const char *value)
{
	char *copy = xstrdup(value);

	free(*field);
	*field = copy;
}

/* "<data_dir>/directory.db" without doubling a trailing slash. */
static char *derived_directory(const char *data_dir)
{
	size_t len = strlen(data_dir);

	while (len > 1 && data_dir[len - 1] == '/')
		len--;
	return xasprintf("%.*s/directory.db", (int)len, data_dir);
}

void config_defaults(struct tern_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->node_name = xstrdup("node1");
	cfg->data_dir = xstrdup("./var");
	cfg->directory = derived_directory(cfg->data_dir);
	cfg->domains = xstrdup("");
	cfg->lmtp_listen = xstrdup("127.0.0.1:2424");
	cfg->imap_listen = xstrdup("127.0.0.1:1143");
	cfg->imaps_listen = xstrdup("");
	cfg->pop3_listen = xstrdup("127.0.0.1:1110");
	cfg->pop3s_listen = xstrdup("");
	cfg->admin_listen = xstrdup("");
	cfg->tls_cert = xstrdup("");
	cfg->tls_key = xstrdup("");
	cfg->allow_plaintext_auth = false;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->max_message_size = TERN_MESSAGE_SIZE_DEFAULT;
	cfg->max_line_length = TERN_LINE_LENGTH_DEFAULT;
	cfg->max_literal_size = TERN_LITERAL_SIZE_DEFAULT;
	cfg->max_connections = TERN_CONNECTIONS_DEFAULT;
	cfg->max_bad_commands = TERN_BAD_COMMANDS_DEFAULT;
	cfg->max_recipients = TERN_RECIPIENTS_DEFAULT;
	cfg->worker_threads = 0;
	cfg->shutdown_timeout_ms = TERN_SHUTDOWN_TIMEOUT_MS_DEFAULT;
	cfg->idle_timeout_ms = TERN_IDLE_TIMEOUT_MS_DEFAULT;
	cfg->lmtp_timeout_ms = TERN_LMTP_TIMEOUT_MS_DEFAULT;
	cfg->watchdog_threshold_ms = TERN_WATCHDOG_THRESHOLD_MS_DEFAULT;
	cfg->auth_failure_delay_ms = TERN_AUTH_FAILURE_DELAY_MS_DEFAULT;
	cfg->default_quota = 0;
	cfg->quota_full_tempfail = false;
	cfg->lmtp_max_connections = TERN_LMTP_CONNECTIONS_DEFAULT;
	cfg->max_preauth_per_address = TERN_PREAUTH_PER_ADDRESS_DEFAULT;
	cfg->login_timeout_ms = TERN_LOGIN_TIMEOUT_MS_DEFAULT;
	cfg->auth_max_pending = TERN_AUTH_PENDING_DEFAULT;
	cfg->auth_max_pending_per_address = TERN_AUTH_PENDING_PER_ADDRESS_DEFAULT;
	cfg->cluster_listen = xstrdup("");
	cfg->cluster_advertise = xstrdup("");
	cfg->cluster_secret = xstrdup("");
	cfg->cluster_secret_file = xstrdup("");
	cfg->cluster_timeout_ms = TERN_CLUSTER_TIMEOUT_MS_DEFAULT;
	cfg->cluster_tls = false;
	cfg->cluster_ca = xstrdup("");
	cfg->cluster_max_connections = TERN_CLUSTER_CONNECTIONS_DEFAULT;
	cfg->move_freeze_timeout_ms = TERN_MOVE_FREEZE_TIMEOUT_MS_DEFAULT;
	cfg->move_freeze_target_ms = 50;
}

void config_free(struct tern_config *cfg)
{
	char **strings[] = {
		&cfg->node_name, &cfg->data_dir, &cfg->directory, &cfg->domains,
		&cfg->lmtp_listen, &cfg->imap_listen, &cfg->imaps_listen,
		&cfg->pop3_listen, &cfg->pop3s_listen, &cfg->admin_listen,
		&cfg->tls_cert, &cfg->tls_key, &cfg->cluster_listen, &cfg->cluster_advertise,
		&cfg->cluster_secret, &cfg->cluster_secret_file, &cfg->cluster_ca,
	};

	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
}

/* Parses an unsigned decimal prefix; *end_r points past the digits. */
static int parse_u64_prefix(const char *s, uint64_t *v_r, const char **end_r)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*v_r = v;
	*end_r = p;
	return 0;
}

static int mul_checked(uint64_t a, uint64_t b, uint64_t *r)
{
	if (b != 0 && a > UINT64_MAX / b)
		return -1;
	*r = a * b;
	return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *ms_r)
{
	static const struct { const char *unit; uint64_t ms; } units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	const char *unit;
	uint64_t v;

	if (s == NULL || parse_u64_prefix(s, &v, &unit) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(unit, units[i].unit) == 0)
			return mul_checked(v, units[i].ms, ms_r);
	}
	return -1;
}

int config_parse_size(const char *s, uint64_t *bytes_r)
{
	const char *unit;
	uint64_t v, mult = 1;

	if (s == NULL || parse_u64_prefix(s, &v, &unit) < 0)
		return -1;
	switch (tolower((unsigned char)*unit)) {
	case 'k': mult = 1024ull; unit++; break;
	case 'm': mult = 1024ull * 1024; unit++; break;
	case 'g': mult = 1024ull * 1024 * 1024; unit++; break;
	case 't': mult = 1024ull * 1024 * 1024 * 1024; unit++; break;
	default: break;
	}
	if (*unit == 'b' || *unit == 'B')
		unit++;
	if (*unit != '\0')
		return -1;
	return mul_checked(v, mult, bytes_r);
}

int config_parse_bool(const char *s, bool *b_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	if (s == NULL)
		return -1;
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b_r = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b_r = false;
			return 0;
		}
	}
	return -1;
}

int config_parse_listen(const char *s, char *host_r, size_t host_size, uint16_t *port_r)
{
	const char *host, *colon;
	size_t host_len;
	uint64_t port;
	const char *end;

	if (s == NULL)
		return -1;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		host = s + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		host = s;
		host_len = (size_t)(colon - s);
		/* A bare IPv6 address would be ambiguous; it needs brackets. */
		if (memchr(host, ':', host_len) != NULL)
			return -1;
	}
	if (host_len == 0 || host_len >= host_size)
		return -1;
	for (size_t i = 0; i < host_len; i++) {
		if (isspace((unsigned char)host[i]) || host[i] == '[' || host[i] == ']')
			return -1;
	}
	if (parse_u64_prefix(colon + 1, &port, &end) < 0 || *end != '\0' ||
	    port == 0 || port > 65535)
		return -1;
	memcpy(host_r, host, host_len);
	host_r[host_len] = '\0';
	*port_r = (uint16_t)port;
	return 0;
}

static const struct key_def *key_find(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

static int set_error(char **err_r, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_error(char **err_r, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *reason;

	if (err_r == NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&reason, fmt, ap) < 0)
		config_no_memory();
	va_end(ap);
	*err_r = xasprintf("key '%s': %s", key, reason);
	free(reason);
	return -1;
}

static int set_number(struct tern_config *cfg, const struct key_def *k,
		      const char *value, char **err_r)
{
	uint64_t v;
	int ret;

	switch (k->type) {
	case KEY_SIZE64:
	case KEY_SIZE32:
		ret = config_parse_size(value, &v);
		if (ret < 0)
			return set_error(err_r, k->name, "invalid size '%s'", value);
		break;
	case KEY_DURATION32:
		ret = config_parse_duration_ms(value, &v);
		if (ret < 0)
			return set_error(err_r, k->name, "invalid duration '%s'", value);
		break;
	default: {
		const char *end;

		if (parse_u64_prefix(value, &v, &end) < 0 || *end != '\0')
			return set_error(err_r, k->name, "invalid number '%s'", value);
		break;
	}
	}
	if (v < k->min || v > k->max)
		return set_error(err_r, k->name, "'%s' is out of range (%" PRIu64 "..%" PRIu64 "%s)",
				 value, k->min, k->max, k->type == KEY_DURATION32 ? " ms" : "");
	if (k->type == KEY_SIZE64)
		*(uint64_t *)((char *)cfg + k->offset) = v;
	else
		*(uint32_t *)((char *)cfg + k->offset) = (uint32_t)v;
	return 0;
}

/* Changing data_dir moves a directory that still follows it (i.e. is still
 * "<old data_dir>/directory.db"); config_load pins an explicit one. */
static void set_data_dir(struct tern_config *cfg, const char *value)
{
	char *old = derived_directory(cfg->data_dir);

	if (cfg->directory == NULL || strcmp(cfg->directory, old) == 0) {
		free(cfg->directory);
		cfg->directory = derived_directory(value);
	}
	free(old);
	set_string(&cfg->data_dir, value);
}

int config_set(struct tern_config *cfg, const char *key, const char *value, char **err_r)
{
	const struct key_def *k = key_find(key);
	char **field;

	if (k == NULL)
		return set_error(err_r, key, "unknown key");
	field = (char **)((char *)cfg + k->offset);
	switch (k->type) {
	case KEY_NAME:
		if (value[0] == '\0' || strpbrk(value, " \t\r\n") != NULL)
			return set_error(err_r, key, "invalid value '%s'", value);
		set_string(field, value);
		return 0;
	case KEY_PATH:
		if (value[0] == '\0')
			return set_error(err_r, key, "empty value");
		if (strcmp(key, "data_dir") == 0)
			set_data_dir(cfg, value);
		else
			set_string(field, value);
		return 0;
	case KEY_STRING:
		set_string(field, value);
		return 0;
	case KEY_LISTEN: {
		char host[256];
		uint16_t port;

		if (value[0] != '\0' &&
		    config_parse_listen(value, host, sizeof(host), &port) < 0)
			return set_error(err_r, key, "invalid address '%s' (want host:port)", value);
		set_string(field, value);
		return 0;
	}
	case KEY_BOOL:
		if (config_parse_bool(value, (bool *)((char *)cfg + k->offset)) < 0)
			return set_error(err_r, key, "invalid boolean '%s'", value);
		return 0;
	case KEY_LOGLEVEL:
		if (log_level_parse(value, &cfg->log_level) < 0)
			return set_error(err_r, key, "invalid log level '%s'", value);
		return 0;
	default:
		return set_number(cfg, k, value, err_r);
	}
}

/* Splits one line in place. Returns 1 with key/value set, 0 for a blank or
 * comment line, -1 with a reason on a syntax error. */
static int split_line(char *line, char **key_r, char **value_r, const char **reason_r)
{
	char *p = line, *eq, *end, *value;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	eq = strchr(p, '=');
	if (eq == NULL) {
		*reason_r = "expected 'key = value'";
		return -1;
	}
	end = eq;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	if (*p == '\0') {
		*reason_r = "missing key before '='";
		return -1;
	}
	*key_r = p;

	value = eq + 1;
	while (isspace((unsigned char)*value))
		value++;
	if (*value == '"') {
		char *close = strchr(value + 1, '"');
		char *rest;

		if (close == NULL) {
			*reason_r = "unterminated quoted value";
			return -1;
		}
		*close = '\0';
		rest = close + 1;
		while (isspace((unsigned char)*rest))
			rest++;
		if (*rest != '\0' && *rest != '#') {
			*reason_r = "text after the closing quote";
			return -1;
		}
		*value_r = value + 1;
		return 1;
	}
	/* A '#' starts a comment only after a blank, so "a#b" stays a value. */
	for (char *c = value; *c != '\0'; c++) {
		if (*c == '#' && (c == value || isspace((unsigned char)c[-1]))) {
			*c = '\0';
			break;
		}
	}
	end = value + strlen(value);
	while (end > value && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	*value_r = value;
	return 1;
}

int config_load(struct tern_config *cfg, const char *path, char **err_r)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, *explicit_dir = NULL, *err = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int ret = 0;

	if (f == NULL) {
		*err_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	while (ret == 0 && getline(&line, &cap, f) >= 0) {
		const char *reason = NULL;
		char *key, *value;
		int r;

		lineno++;
		r = split_line(line, &key, &value, &reason);
		if (r < 0) {
			*err_r = xasprintf("%s:%u: %s", path, lineno, reason);
			ret = -1;
		} else if (r > 0 && config_set(cfg, key, value, &err) < 0) {
			*err_r = xasprintf("%s:%u: %s", path, lineno, err);
			free(err);
			ret = -1;
		} else if (r > 0 && strcmp(key, "directory") == 0) {
			free(explicit_dir);
			explicit_dir = xstrdup(value);
		}
	}
	if (ret == 0 && ferror(f)) {
		*err_r = xasprintf("%s: read error: %s", path, strerror(errno));
		ret = -1;
	}
	/* An explicit directory wins over one derived from a later data_dir. */
	if (ret == 0 && explicit_dir != NULL)
		set_string(&cfg->directory, explicit_dir);
	free(explicit_dir);
	free(line);
	fclose(f);
	if (ret == 0 && config_finish(cfg, &err) < 0) {
		*err_r = xasprintf("%s: %s", path, err);
		free(err);
		ret = -1;
	}
	return ret;
}

/* A wildcard host cannot be dialled: "0.0.0.0", "::", "*" or empty. */
static bool wildcard_listen(const char *listen)
{
	char host[256];
	uint16_t port;

	if (config_parse_listen(listen, host, sizeof(host), &port) < 0)
		return true;
	return host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
	       strcmp(host, "*") == 0;
}

const char *config_cluster_address(const struct tern_config *cfg)
{
	return cfg->cluster_advertise[0] != '\0' ? cfg->cluster_advertise : cfg->cluster_listen;
}

/* The secret file holds the secret alone; a final newline is not part of it. */
static int read_secret_file(struct tern_config *cfg, char **err_r)
{
	FILE *f = fopen(cfg->cluster_secret_file, "r");
	char buf[TERN_CLUSTER_SECRET_MAX + 2];
	size_t n;

	if (f == NULL) {
		*err_r = xasprintf("cluster_secret_file %s: %s", cfg->cluster_secret_file,
				   strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & S_IROTH) != 0) {
		/* as ssh does with keys: a secret anyone can read is no secret */
		fclose(f);
		*err_r = xasprintf("cluster_secret_file %s is readable by others (mode %04o): "
				   "chmod o-r it", cfg->cluster_secret_file,
				   (unsigned)(st.st_mode & 07777));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n > TERN_CLUSTER_SECRET_MAX || strlen(buf) != n) {
		*err_r = xasprintf("cluster_secret_file %s: the secret must be one line of at "
				   "most %u bytes", cfg->cluster_secret_file, TERN_CLUSTER_SECRET_MAX);
		return -1;
	}
	set_string(&cfg->cluster_secret, buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

int config_finish(struct tern_config *cfg, char **err_r)
{
	if (cfg->cluster_secret_file[0] != '\0') {
		if (cfg->cluster_secret[0] != '\0') {
			*err_r = xasprintf("cluster_secret and cluster_secret_file are both set; "
					   "keep one");
			return -1;
		}
		if (read_secret_file(cfg, err_r) < 0)
			return -1;
	}
	if (cfg->cluster_listen[0] == '\0')
		return 0;
	if (strlen(cfg->cluster_secret) < TERN_CLUSTER_SECRET_MIN) {
		*err_r = xasprintf("cluster_listen is set: cluster_secret (or cluster_secret_file) "
				   "of at least %u characters is needed", TERN_CLUSTER_SECRET_MIN);
		return -1;
	}
	if (cfg->cluster_advertise[0] == '\0' && wildcard_listen(cfg->cluster_listen)) {
		*err_r = xasprintf("cluster_listen = %s is a wildcard address: set cluster_advertise "
				   "to the address other nodes dial", cfg->cluster_listen);
		return -1;
	}
	if (cfg->cluster_tls && (cfg->cluster_ca[0] == '\0' || cfg->tls_cert[0] == '\0' ||
				 cfg->tls_key[0] == '\0')) {
		*err_r = xasprintf("cluster_tls = yes needs cluster_ca, tls_cert and tls_key");
		return -1;
	}
	return 0;
}
