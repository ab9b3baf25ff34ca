#include "admin/ctl-password.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

void ctl_password_free(char **plain)
{
	if (*plain == NULL)
		return;
	explicit_bzero(*plain, strlen(*plain));
	free(*plain);
	*plain = NULL;
}

int ctl_password_read_line(struct ctl *c, FILE *in, char **plain_r)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, in);
	if (n < 0) {
		free(line);
		return ctl_fail(c, CTL_ERROR, "no password on standard input");
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n == 0 || strlen(line) != (size_t)n) {
		bool nul = strlen(line) != (size_t)n;
		explicit_bzero(line, cap);
		free(line);
		return ctl_fail(c, CTL_ERROR, nul ? "password contains a NUL byte"
					      : "empty password refused");
	}
	*plain_r = line;
	return 0;
}

/* The terminal settings to restore if a signal ends us while echo is off;
 * otherwise the user's shell would be left typing blind. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

static void restore_tty_and_die(int sig)
{
	if (tty_changed)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int tty_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define TTY_SIGNALS (sizeof(tty_signals) / sizeof(tty_signals[0]))

static int read_noecho(struct ctl *c, const char *prompt, char **line_r)
{
	struct termios quiet;
	struct sigaction sa, old[TTY_SIGNALS];
	if (tcgetattr(STDIN_FILENO, &saved_tty) != 0)
		return ctl_fail(c, CTL_ERROR, "cannot read the terminal settings");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = restore_tty_and_die;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < TTY_SIGNALS; i++)
		sigaction(tty_signals[i], &sa, &old[i]);
	quiet = saved_tty;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;                /* the Enter still ends the line visibly */
	int ret = -1;
	/* Echo goes off before the prompt appears, so nothing typed after the
	 * prompt is echoed or flushed away; only typeahead from before it is. */
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
		ctl_fail(c, CTL_ERROR, "cannot turn off terminal echo");
	} else {
		tty_changed = 1;
		fputs(prompt, stderr);
		fflush(stderr);
		ret = ctl_password_read_line(c, stdin, line_r);
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tty);
		tty_changed = 0;
	}
	for (size_t i = 0; i < TTY_SIGNALS; i++)
		sigaction(tty_signals[i], &old[i], NULL);
	return ret;
}

int ctl_password_prompt(struct ctl *c, const char *user, char **plain_r)
{
	if (!isatty(STDIN_FILENO))
		return ctl_fail(c, CTL_USAGE, "no password given: use --password-stdin or --hash");
	char prompt[CTL_USER_MAX + 32];
	snprintf(prompt, sizeof(prompt), "New password for %s: ", user);
	char *first = NULL, *second = NULL;
	if (read_noecho(c, prompt, &first) != 0)
		return -1;
	if (read_noecho(c, "Retype new password: ", &second) != 0) {
		ctl_password_free(&first);
		return -1;
	}
	bool same = strcmp(first, second) == 0;
	ctl_password_free(&second);
	if (!same) {
		ctl_password_free(&first);
		return ctl_fail(c, CTL_ERROR, "passwords do not match");
	}
	*plain_r = first;
	return 0;
}
