#include "admin/ctl-user.h"

#include <stdlib.h>
#include <string.h>

#include "admin/ctl-output.h"
#include "directory/password.h"
#include "store/store.h"

/* The hash to store for pw (heap), checking a given hash is one we can verify:
 * storing one we cannot would lock the user out without a word. */
static int password_to_hash(struct ctl *c, const struct ctl_password *pw, char **hash_r)
{
	if (pw->hash != NULL) {
		if (!password_hash_supported(pw->hash))
			return ctl_fail(c, CTL_ERROR,
					"unsupported password hash (expected crypt or Dovecot "
					"form: $y$, $6$, $5$, $2b$, $argon2id$, {SHA512-CRYPT}...)");
		*hash_r = strdup(pw->hash);
	} else if (pw->plain == NULL || *pw->plain == '\0') {
		return ctl_fail(c, CTL_ERROR, "empty password refused");
	} else if (password_hash(pw->plain, hash_r) != 0) {
		return ctl_fail(c, CTL_ERROR, "cannot hash the password");
	}
	return *hash_r != NULL ? 0 : ctl_fail(c, CTL_ERROR, "out of memory");
}

/* Node names end up in addresses and log lines; refuse blanks and controls. */
static bool node_name_ok(const char *node)
{
	if (*node == '\0' || strlen(node) > TERN_USERNAME_MAX)
		return false;
	for (const char *p = node; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
			return false;
	}
	return true;
}

static int create_store(struct ctl *c, const char *name)
{
	struct store *st = NULL;
	enum tern_error err = TERN_ERR_NONE;
	if (store_open(c->cfg.data_dir, name, true, &st, &err) != 0)
		return ctl_fail(c, CTL_ERROR, "cannot create the mail store of '%s' in '%s': %s",
				name, c->cfg.data_dir, tern_error_str(err));
	store_close(&st);
	return 0;
}

int ctl_user_add(struct ctl *c, const char *user, const struct ctl_password *pw,
		 const char *home, uint64_t quota)
{
	char name[CTL_USER_MAX];
	struct directory *dir;
	if (ctl_user_name(c, user, name, sizeof(name)) != 0 || ctl_directory(c, &dir) != 0)
		return -1;
	if (home == NULL)
		home = c->cfg.node_name;
	if (home == NULL || !node_name_ok(home))
		return ctl_fail(c, CTL_ERROR, "invalid home node name '%s'", home ? home : "");
	char *hash = NULL;
	if (password_to_hash(c, pw, &hash) != 0)
		return -1;
	struct dir_user u = {
		.name = name, .password_hash = hash, .home = (char *)home,
		.epoch = 1, .state = (char *)"active", .quota = quota,
	};
	enum tern_error err = TERN_ERR_NONE;
	int ret = dir->ops->user_add(dir, &u, &err);
	free(hash);
	if (ret != 0) {
		if (err == TERN_ERR_EXISTS)
			return ctl_fail(c, CTL_ERROR, "user '%s' already exists", name);
		return ctl_fail(c, CTL_ERROR, "cannot add user '%s': %s", name,
				tern_error_str(err));
	}
	if (ctl_is_local_node(c, home) && create_store(c, name) != 0) {
		/* Undo, so the failed add can simply be retried. */
		dir->ops->user_delete(dir, name, &err);
		return -1;
	}
	return 0;
}

int ctl_user_passwd(struct ctl *c, const char *user, const struct ctl_password *pw)
{
	char name[CTL_USER_MAX];
	struct dir_user u;
	if (ctl_user_find(c, user, name, &u) != 0)
		return -1;
	dir_user_clear(&u);
	char *hash = NULL;
	if (password_to_hash(c, pw, &hash) != 0)
		return -1;
	enum tern_error err = TERN_ERR_NONE;
	int ret = c->dir->ops->user_set_password(c->dir, name, hash, &err);
	free(hash);
	if (ret != 0) {
		if (err == TERN_ERR_NOTFOUND)
			return ctl_fail(c, CTL_ERROR, "user '%s' not found", name);
		return ctl_fail(c, CTL_ERROR, "cannot set the password of '%s': %s", name,
				tern_error_str(err));
	}
	return 0;
}

int ctl_user_del(struct ctl *c, const char *user)
{
	char name[CTL_USER_MAX];
	struct dir_user u;
	if (ctl_user_find(c, user, name, &u) != 0)
		return -1;
	bool local = ctl_is_local_node(c, u.home);
	/* Deleting under a running move would leave the mover copying into a
	 * user that no longer exists; the move must end first. */
	if (u.state != NULL && (strcmp(u.state, "moving") == 0 || strcmp(u.state, "frozen") == 0)) {
		ctl_fail(c, CTL_ERROR, "user '%s' is being moved (state '%s'); "
			 "wait for the move to end or cancel it first", name, u.state);
		dir_user_clear(&u);
		return -1;
	}
	dir_user_clear(&u);
	enum tern_error err = TERN_ERR_NONE;
	if (c->dir->ops->user_delete(c->dir, name, &err) != 0) {
		if (err == TERN_ERR_NOTFOUND)
			return ctl_fail(c, CTL_ERROR, "user '%s' not found", name);
		return ctl_fail(c, CTL_ERROR, "cannot delete user '%s': %s", name,
				tern_error_str(err));
	}
	/* Directory first: once the entry is gone nothing new reaches the store. */
	if (local && store_remove(c->cfg.data_dir, name, &err) != 0 && err != TERN_ERR_NOTFOUND)
		return ctl_fail(c, CTL_ERROR, "user '%s' deleted, but removing the mail store "
				"failed: %s", name, tern_error_str(err));
	return 0;
}

int ctl_user_quota(struct ctl *c, const char *user, uint64_t quota)
{
	char name[CTL_USER_MAX];
	struct dir_user u;
	if (ctl_user_find(c, user, name, &u) != 0)
		return -1;
	dir_user_clear(&u);
	enum tern_error err = TERN_ERR_NONE;
	if (c->dir->ops->user_set_quota(c->dir, name, quota, &err) != 0) {
		if (err == TERN_ERR_NOTFOUND)
			return ctl_fail(c, CTL_ERROR, "user '%s' not found", name);
		return ctl_fail(c, CTL_ERROR, "cannot set the quota of '%s': %s", name,
				tern_error_str(err));
	}
	return 0;
}

static json_t *user_json(const struct dir_user *u)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "name", ctl_json_string(u->name));
	json_object_set_new(o, "home", ctl_json_string(u->home));
	json_object_set_new(o, "epoch", json_integer(u->epoch));
	json_object_set_new(o, "state", ctl_json_string(u->state));
	json_object_set_new(o, "quota", json_integer((json_int_t)u->quota));
	return o;
}

int ctl_user_list(struct ctl *c, json_t **rows_r)
{
	struct directory *dir;
	if (ctl_directory(c, &dir) != 0)
		return -1;
	struct dir_user *users = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;
	if (dir->ops->user_list(dir, &users, &count, &err) != 0)
		return ctl_fail(c, CTL_ERROR, "cannot list users: %s", tern_error_str(err));
	json_t *rows = json_array();
	for (size_t i = 0; rows != NULL && i < count; i++) {
		if (json_array_append_new(rows, user_json(&users[i])) != 0)
			json_decref(rows), rows = NULL;
	}
	dir_users_free(&users, count);
	if (rows == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	*rows_r = rows;
	return 0;
}

int ctl_user_show(struct ctl *c, const char *user, json_t **obj_r)
{
	char name[CTL_USER_MAX];
	struct dir_user u;
	if (ctl_user_find(c, user, name, &u) != 0)
		return -1;
	json_t *o = user_json(&u);
	dir_user_clear(&u);
	if (o == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	*obj_r = o;
	return 0;
}
