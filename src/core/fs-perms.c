#include "core/fs-perms.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

#define GROUP_OTHER_BITS 0077

void fs_private_umask(void)
{
	(void)umask(GROUP_OTHER_BITS);
}

/* Calls fn for every entry of dir (not recursing), with its full path. */
static void each_entry(const char *dir, void (*fn)(const char *path, void *ctx), void *ctx)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *path;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
			break;
		fn(path, ctx);
		free(path);
	}
	closedir(d);
}

struct loose_count {
	unsigned count;
	char example[256];
};

static void note_loose(const char *path, void *ctx)
{
	struct loose_count *lc = ctx;
	struct stat st;
	if (lstat(path, &st) < 0 || (st.st_mode & GROUP_OTHER_BITS) == 0 || S_ISLNK(st.st_mode))
		return;
	if (lc->count++ == 0)
		snprintf(lc->example, sizeof(lc->example), "%s (%04o)", path,
			 (unsigned)(st.st_mode & 07777));
}

static bool path_is_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

int fs_secure_data_dir(const char *data_dir, const char *directory_path)
{
	if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
		log_error("data_dir %s: cannot create: %s", data_dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (stat(data_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_error("data_dir %s: not a directory", data_dir);
		return -1;
	}
	/* The data_dir alone keeps everything under it from other users, so it
	 * is tightened rather than only reported. */
	if ((st.st_mode & GROUP_OTHER_BITS) != 0) {
		if (chmod(data_dir, 0700) == 0)
			log_warn("data_dir %s was mode %04o, open to other users: set to 0700",
				 data_dir, (unsigned)(st.st_mode & 07777));
		else
			log_warn("data_dir %s is mode %04o, open to other users, and cannot be "
				 "tightened: %s",
				 data_dir, (unsigned)(st.st_mode & 07777), strerror(errno));
	}
	struct loose_count lc = {0};
	each_entry(data_dir, note_loose, &lc);
	char *mail;
	if (asprintf(&mail, "%s/mail", data_dir) >= 0) {
		each_entry(mail, note_loose, &lc);
		free(mail);
	}
	if (lc.count > 0)
		log_warn("data_dir %s: %u file(s) open to group or others, e.g. %s; "
			 "run chmod -R go= on it",
			 data_dir, lc.count, lc.example);
	if (directory_path != NULL && strstr(directory_path, "://") == NULL &&
	    !path_is_under(directory_path, data_dir) && stat(directory_path, &st) == 0 &&
	    (st.st_mode & GROUP_OTHER_BITS) != 0)
		log_warn("directory %s is mode %04o: password hashes are readable by other users",
			 directory_path, (unsigned)(st.st_mode & 07777));
	return 0;
}

struct owner {
	uid_t uid;
	gid_t gid;
};

static void give_to_owner(const char *path, void *ctx)
{
	const struct owner *o = ctx;
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISLNK(st.st_mode) && st.st_uid == 0 && o->uid != 0)
		(void)lchown(path, o->uid, o->gid);
}

void fs_match_data_dir_owner(const char *data_dir, const char *directory_path)
{
	struct stat st;
	if (geteuid() != 0 || data_dir == NULL || stat(data_dir, &st) < 0 || st.st_uid == 0)
		return;
	struct owner o = {.uid = st.st_uid, .gid = st.st_gid};
	each_entry(data_dir, give_to_owner, &o);
	char *mail;
	if (asprintf(&mail, "%s/mail", data_dir) >= 0) {
		each_entry(mail, give_to_owner, &o);
		free(mail);
	}
	if (directory_path != NULL && strstr(directory_path, "://") == NULL) {
		give_to_owner(directory_path, &o);
		char *side;
		if (asprintf(&side, "%s-wal", directory_path) >= 0) {
			give_to_owner(side, &o);
			free(side);
		}
		if (asprintf(&side, "%s-shm", directory_path) >= 0) {
			give_to_owner(side, &o);
			free(side);
		}
	}
}
