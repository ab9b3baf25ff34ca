/* The ternctl command line: global options (anywhere on the line), a table of
 * "GROUP VERB" commands with their arguments and options, the usage text,
 * and the mapping of each command onto an operation and its output. */
#ifndef TERN_ADMIN_CTL_CLI_H
#define TERN_ADMIN_CTL_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* Options that apply to every command, taken out of argv wherever they are. */
struct ctl_global {
	const char *config;  /* --config FILE / --config=FILE, NULL if absent */
	bool json;           /* --json */
	bool help;           /* -h, --help */
	bool version;        /* --version */
};

/* Moves the global options of argv[1..argc-1] into *g and the remaining
 * words, in order, into rest (room for argc entries), *nrest their count.
 * The value after a command option that takes one (--hash, --home, --quota)
 * is never mistaken for a global option, nor is anything after "--".
 * Returns 0, or -1 with a one-line reason in err (usage error). */
int ctl_cli_split(int argc, char **argv, struct ctl_global *g, char **rest, int *nrest,
		  char *err, size_t err_size);

/* The whole program: parses argv, runs the command, prints the result or one
 * "ternctl: ..." line on stderr. Returns the exit status (0, 1 error, 2 usage). */
int ctl_main(int argc, char **argv);

#endif
