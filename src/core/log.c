#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "tern";
static enum log_level log_threshold = LOG_LEVEL_INFO;

void log_init(const char *progname, enum log_level level)
{
	log_progname = progname;
	log_threshold = level;
}

int log_level_parse(const char *s, enum log_level *level_r)
{
	static const struct { const char *name; enum log_level level; } names[] = {
		{"debug", LOG_LEVEL_DEBUG}, {"info", LOG_LEVEL_INFO},
		{"warn", LOG_LEVEL_WARN}, {"warning", LOG_LEVEL_WARN},
		{"error", LOG_LEVEL_ERROR},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*level_r = names[i].level;
			return 0;
		}
	}
	return -1;
}

bool log_enabled(enum log_level level)
{
	return level >= log_threshold;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const level_names[] = {"debug", "info", "warning", "error"};
	if (!log_enabled(level))
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d]: %s: ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, log_progname, (int)getpid(),
			 level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	/* One event, one line: a CR/LF from client data must not forge a new line. */
	for (size_t i = (size_t)n; i < len; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[len++] = '\n';
	/* A single write keeps lines from concurrent threads whole. */
	ssize_t ignored = write(STDERR_FILENO, line, len);
	(void)ignored;
}
