/* The context every ternctl operation runs in: the loaded configuration, the
 * directory (opened on first use) and the one error the run reports. The
 * operations (ctl-user.h, ctl-node.h, ctl-mailbox.h) take raw arguments and
 * return JSON, so the admin API can call them as they are. */
#ifndef TERN_ADMIN_CTL_H
#define TERN_ADMIN_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/limits.h"
#include "directory/directory.h"

/* Exit statuses, as documented in the usage text. */
enum ctl_status {
	CTL_OK = 0,
	CTL_ERROR = 1,   /* the operation failed */
	CTL_USAGE = 2,   /* the command line was wrong */
};

struct ctl {
	struct tern_config cfg;
	bool cfg_loaded;
	struct directory *dir;  /* NULL until ctl_directory() */
	enum ctl_status status; /* of the first failure */
	char error[1024];       /* its message, without the "ternctl: " prefix */
};

/* A canonical user name fits here (core/username.h allows up to 64 bytes). */
#define CTL_USER_MAX (TERN_USERNAME_MAX + 1)

void ctl_init(struct ctl *c);
/* Closes the directory and frees the configuration. */
void ctl_deinit(struct ctl *c);

/* Loads the configuration: path, else $TERN_CONFIG, else
 * /etc/tern/tern.conf. Returns 0 or -1 (failure recorded in c). */
int ctl_load_config(struct ctl *c, const char *path);

/* Records a failure (only the first one counts: it is the cause) and
 * returns -1, so callers can write "return ctl_fail(...)". */
int ctl_fail(struct ctl *c, enum ctl_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The directory, opened on first use. Returns 0 or -1 (failure recorded). */
int ctl_directory(struct ctl *c, struct directory **dir_r);

/* Canonical name of a user argument ("Alice@example.org" -> "alice") under
 * the configured domains. Returns 0 or -1 (failure recorded). */
int ctl_user_name(struct ctl *c, const char *arg, char *name_r, size_t size);

/* Looks up a user by canonical name: 1 found (*u_r filled; clear with
 * dir_user_clear), 0 no such user, -1 error (failure recorded). */
int ctl_user_lookup(struct ctl *c, const char *name, struct dir_user *u_r);

/* Looks up an existing user by argument. Fills *name_r (canonical, size
 * CTL_USER_MAX) and *u_r (clear with dir_user_clear). Returns 0 or -1 with
 * "user 'x' not found" or the directory error recorded. */
int ctl_user_find(struct ctl *c, const char *arg, char *name_r, struct dir_user *u_r);

/* True when node names this node (cfg.node_name). */
bool ctl_is_local_node(const struct ctl *c, const char *node);

#endif
