/* User administration over the directory (and, for users homed on this node,
 * their mail store): add, change password or quota, delete, list, show.
 * Each function takes the raw user argument ("alice" or "alice@example.org"),
 * returns 0 or -1 with the failure recorded in the context. */
#ifndef TERN_ADMIN_CTL_USER_H
#define TERN_ADMIN_CTL_USER_H

#include <stdint.h>

#include <jansson.h>

#include "admin/ctl.h"

/* A new password: either plain text (hashed here with yescrypt) or a hash
 * in a form password_hash_supported() accepts. Exactly one is set. */
struct ctl_password {
	const char *plain;
	const char *hash;
};

/* Creates the user in the directory, homed on home (NULL = this node), with
 * quota bytes (0 = default). When homed here, also creates the mail store
 * with its default folders; if that fails the directory entry is removed
 * again, so a failed add leaves nothing behind. */
int ctl_user_add(struct ctl *c, const char *user, const struct ctl_password *pw,
		 const char *home, uint64_t quota);

/* Replaces the user's password. */
int ctl_user_passwd(struct ctl *c, const char *user, const struct ctl_password *pw);

/* Deletes the directory entry and, when homed here, the mail store files.
 * Refused while a move holds the user (state "moving" or "frozen"). */
int ctl_user_del(struct ctl *c, const char *user);

/* Sets the quota in bytes, 0 = the node default. */
int ctl_user_quota(struct ctl *c, const char *user, uint64_t quota);

/* All users as an array of {name, home, epoch, state, quota}, by name. */
int ctl_user_list(struct ctl *c, json_t **rows_r);

/* One user as {name, home, epoch, state, quota}. */
int ctl_user_show(struct ctl *c, const char *user, json_t **obj_r);

#endif
