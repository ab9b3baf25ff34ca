/* Where ternctl gets a new plain-text password: one line of standard input
 * (--password-stdin, for scripts) or, on a terminal, typed twice without
 * echo. This is command-line only; the admin API receives passwords in its
 * request body. */
#ifndef TERN_ADMIN_CTL_PASSWORD_H
#define TERN_ADMIN_CTL_PASSWORD_H

#include <stdio.h>

#include "admin/ctl.h"

/* Reads one line from in, without its trailing CR/LF characters. An empty
 * line or end of input is refused. Returns 0 with *plain_r (heap; wipe with
 * ctl_password_free), or -1 (failure recorded in c). */
int ctl_password_read_line(struct ctl *c, FILE *in, char **plain_r);

/* Asks for the password of user twice on the terminal (standard input, echo
 * off, prompts on standard error) and requires both to match. When standard
 * input is not a terminal, fails with "no password given: use
 * --password-stdin or --hash". */
int ctl_password_prompt(struct ctl *c, const char *user, char **plain_r);

/* Overwrites and frees a password, then NULLs the pointer. */
void ctl_password_free(char **plain);

#endif
