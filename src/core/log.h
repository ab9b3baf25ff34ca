/* Logging: one line per event on stderr, with a level and a timestamp.
 * Errors are logged once, where they are handled, naming the user and the
 * operation (the caller puts those in the message). Thread-safe. */
#ifndef TERN_CORE_LOG_H
#define TERN_CORE_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Sets the threshold and the program name shown on each line. */
void log_init(const char *progname, enum log_level level);
/* Parses "debug", "info", "warn"/"warning", "error". Returns -1 if unknown. */
int log_level_parse(const char *s, enum log_level *level_r);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_enabled(LOG_LEVEL_DEBUG)) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
