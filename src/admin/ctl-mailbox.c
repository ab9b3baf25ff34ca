#include "admin/ctl-mailbox.h"

#include <string.h>

#include "admin/ctl-output.h"
#include "store/store.h"

/* Opens the store of a user homed here; *name_r gets the canonical name. */
static int open_local_store(struct ctl *c, const char *user, char *name_r,
			    struct store **st_r)
{
	struct dir_user u;
	if (ctl_user_find(c, user, name_r, &u) != 0)
		return -1;
	if (!ctl_is_local_node(c, u.home)) {
		ctl_fail(c, CTL_ERROR, "user '%s' is homed on node '%s'; run ternctl there",
			 name_r, u.home != NULL ? u.home : "?");
		dir_user_clear(&u);
		return -1;
	}
	dir_user_clear(&u);
	enum tern_error err = TERN_ERR_NONE;
	if (store_open(c->cfg.data_dir, name_r, true, st_r, &err) != 0)
		return ctl_fail(c, CTL_ERROR, "cannot open the mail store of '%s': %s", name_r,
				tern_error_str(err));
	return 0;
}

/* Fails with the documented message when folder does not exist. */
static int require_folder(struct ctl *c, struct store *st, const char *name,
			  const char *folder)
{
	struct store_folder f;
	memset(&f, 0, sizeof(f));
	enum tern_error err = TERN_ERR_NONE;
	int ret = store_folder_get(st, folder, &f, &err);
	if (ret < 0)
		return ctl_fail(c, CTL_ERROR, "cannot open folder '%s' of '%s': %s", folder, name,
				tern_error_str(err));
	if (ret == 0)
		return ctl_fail(c, CTL_ERROR, "folder '%s' not found for user '%s'", folder, name);
	store_folder_clear(&f);
	return 0;
}

static json_t *folder_json(const struct store_folder *f)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "name", ctl_json_string(f->name));
	json_object_set_new(o, "messages", json_integer(f->messages));
	json_object_set_new(o, "unseen", json_integer(f->unseen));
	json_object_set_new(o, "size", json_integer((json_int_t)f->size));
	json_object_set_new(o, "uidvalidity", json_integer(f->uidvalidity));
	json_object_set_new(o, "uidnext", json_integer(f->uidnext));
	json_object_set_new(o, "highestmodseq", json_integer((json_int_t)f->highestmodseq));
	json_object_set_new(o, "special_use",
			    f->special_use != NULL && *f->special_use != '\0'
			    ? ctl_json_string(f->special_use) : json_null());
	json_object_set_new(o, "subscribed", json_boolean(f->subscribed));
	return o;
}

int ctl_mailbox_folders(struct ctl *c, const char *user, json_t **rows_r)
{
	char name[CTL_USER_MAX];
	struct store *st = NULL;
	if (open_local_store(c, user, name, &st) != 0)
		return -1;
	struct store_folder *folders = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;
	if (store_folder_list(st, &folders, &count, &err) != 0) {
		store_close(&st);
		return ctl_fail(c, CTL_ERROR, "cannot list the folders of '%s': %s", name,
				tern_error_str(err));
	}
	json_t *rows = json_array();
	for (size_t i = 0; rows != NULL && i < count; i++) {
		if (json_array_append_new(rows, folder_json(&folders[i])) != 0)
			json_decref(rows), rows = NULL;
	}
	store_folders_free(&folders, count);
	store_close(&st);
	if (rows == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	*rows_r = rows;
	return 0;
}

static json_t *message_json(struct store *st, const char *folder, const struct store_msg *m)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	char date[32];
	ctl_format_time(m->internal_date, date, sizeof(date));
	struct store_msg_cache cache;
	memset(&cache, 0, sizeof(cache));
	enum tern_error err = TERN_ERR_NONE;
	/* A listing should not fail over one message's missing cache: show an
	 * empty subject instead. */
	bool cached = store_msg_cache(st, folder, m->uid, &cache, &err) == 1;
	json_object_set_new(o, "uid", json_integer(m->uid));
	json_object_set_new(o, "flags", ctl_flags_json(m->flags, m->keywords));
	json_object_set_new(o, "size", json_integer((json_int_t)m->size));
	json_object_set_new(o, "date", json_string(date));
	json_object_set_new(o, "subject",
			    ctl_json_string(cached && cache.subject ? cache.subject : ""));
	if (cached)
		store_msg_cache_clear(&cache);
	return o;
}

int ctl_mailbox_list(struct ctl *c, const char *user, const char *folder, json_t **rows_r)
{
	char name[CTL_USER_MAX];
	struct store *st = NULL;
	if (open_local_store(c, user, name, &st) != 0)
		return -1;
	if (require_folder(c, st, name, folder) != 0) {
		store_close(&st);
		return -1;
	}
	struct store_msg *msgs = NULL;
	size_t count = 0;
	enum tern_error err = TERN_ERR_NONE;
	if (store_msg_list(st, folder, &msgs, &count, &err) != 0) {
		store_close(&st);
		return ctl_fail(c, CTL_ERROR, "cannot list folder '%s' of '%s': %s", folder, name,
				tern_error_str(err));
	}
	json_t *rows = json_array();
	for (size_t i = 0; rows != NULL && i < count; i++) {
		if (json_array_append_new(rows, message_json(st, folder, &msgs[i])) != 0)
			json_decref(rows), rows = NULL;
	}
	store_msgs_free(&msgs, count);
	store_close(&st);
	if (rows == NULL)
		return ctl_fail(c, CTL_ERROR, "out of memory");
	*rows_r = rows;
	return 0;
}

int ctl_mailbox_raw(struct ctl *c, const char *user, const char *folder, uint32_t uid,
		    char **data_r, size_t *size_r)
{
	char name[CTL_USER_MAX];
	struct store *st = NULL;
	if (open_local_store(c, user, name, &st) != 0)
		return -1;
	if (require_folder(c, st, name, folder) != 0) {
		store_close(&st);
		return -1;
	}
	enum tern_error err = TERN_ERR_NONE;
	int ret = store_msg_raw(st, folder, uid, data_r, size_r, &err);
	store_close(&st);
	if (ret < 0)
		return ctl_fail(c, CTL_ERROR, "cannot read UID %u in folder '%s' of '%s': %s",
				uid, folder, name, tern_error_str(err));
	if (ret == 0)
		return ctl_fail(c, CTL_ERROR, "message UID %u not found in folder '%s' for user '%s'",
				uid, folder, name);
	return 0;
}
