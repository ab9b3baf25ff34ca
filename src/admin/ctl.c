#include "admin/ctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/username.h"

#define CTL_DEFAULT_CONFIG "/etc/tern/tern.conf"

void ctl_init(struct ctl *c)
{
	memset(c, 0, sizeof(*c));
}

void ctl_deinit(struct ctl *c)
{
	if (c->dir != NULL)
		directory_close(&c->dir);
	if (c->cfg_loaded)
		config_free(&c->cfg);
	c->cfg_loaded = false;
}

int ctl_fail(struct ctl *c, enum ctl_status status, const char *fmt, ...)
{
	if (c->status != CTL_OK)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	c->status = status;
	return -1;
}

int ctl_load_config(struct ctl *c, const char *path)
{
	if (path == NULL)
		path = getenv("TERN_CONFIG");
	if (path == NULL || *path == '\0')
		path = CTL_DEFAULT_CONFIG;
	config_defaults(&c->cfg);
	c->cfg_loaded = true;
	char *err = NULL;
	if (config_load(&c->cfg, path, &err) != 0) {
		ctl_fail(c, CTL_ERROR, "%s", err != NULL ? err : path);
		free(err);
		return -1;
	}
	return 0;
}

int ctl_directory(struct ctl *c, struct directory **dir_r)
{
	if (c->dir == NULL) {
		const char *spec = c->cfg.directory;
		char *fallback = NULL;
		/* The config documents "<data_dir>/directory.db" as the default;
		 * derive it here too in case the loader left the key empty. */
		if (spec == NULL || *spec == '\0') {
			if (asprintf(&fallback, "%s/directory.db", c->cfg.data_dir) < 0)
				return ctl_fail(c, CTL_ERROR, "out of memory");
			spec = fallback;
		}
		char *err = NULL;
		int ret = directory_open(spec, &c->dir, &err);
		if (ret != 0) {
			ctl_fail(c, CTL_ERROR, "cannot open directory '%s': %s", spec,
				 err != NULL ? err : "unknown error");
		}
		free(err);
		free(fallback);
		if (ret != 0)
			return -1;
	}
	*dir_r = c->dir;
	return 0;
}

int ctl_user_name(struct ctl *c, const char *arg, char *name_r, size_t size)
{
	const char *domains = c->cfg.domains;
	if (username_parse(arg, domains, name_r, size, NULL, 0) == 0)
		return 0;
	/* Tell a foreign domain apart from a malformed name: the fix differs. */
	char tmp[CTL_USER_MAX];
	if (domains != NULL && *domains != '\0' && strchr(arg, '@') != NULL &&
	    username_parse(arg, NULL, tmp, sizeof(tmp), NULL, 0) == 0) {
		return ctl_fail(c, CTL_ERROR, "'%s' is not in this server's domains (%s)",
				arg, domains);
	}
	return ctl_fail(c, CTL_ERROR,
			"invalid user name '%s' (1-64 characters of a-z 0-9 . _ -, "
			"optionally @domain)", arg);
}

int ctl_user_lookup(struct ctl *c, const char *name, struct dir_user *u_r)
{
	struct directory *dir;
	if (ctl_directory(c, &dir) != 0)
		return -1;
	enum tern_error err = TERN_ERR_NONE;
	struct dir_user u;
	memset(&u, 0, sizeof(u));
	int ret = directory_user_get(dir, name, &u, &err);
	if (ret < 0)
		return ctl_fail(c, CTL_ERROR, "cannot look up user '%s': %s", name,
				tern_error_str(err));
	if (ret > 0)
		*u_r = u;
	return ret > 0 ? 1 : 0;
}

int ctl_user_find(struct ctl *c, const char *arg, char *name_r, struct dir_user *u_r)
{
	char name[CTL_USER_MAX];
	if (ctl_user_name(c, arg, name, sizeof(name)) != 0)
		return -1;
	int ret = ctl_user_lookup(c, name, u_r);
	if (ret < 0)
		return -1;
	if (ret == 0)
		return ctl_fail(c, CTL_ERROR, "user '%s' not found", name);
	memmove(name_r, name, strlen(name) + 1);
	return 0;
}

bool ctl_is_local_node(const struct ctl *c, const char *node)
{
	return node != NULL && c->cfg.node_name != NULL && strcmp(node, c->cfg.node_name) == 0;
}
