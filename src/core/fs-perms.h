/* File modes and owners of what Tern keeps on disk: password hashes (the
 * directory) and everyone's mail (the stores) must be readable by the
 * server's own user alone, whether ternd or ternctl created the file. */
#ifndef TERN_CORE_FS_PERMS_H
#define TERN_CORE_FS_PERMS_H

/* New files 0600, new directories 0700, whatever the inherited umask. */
void fs_private_umask(void);

/* Creates data_dir (0700) if missing; tightens it to 0700 if it is open to
 * group or others (logged as a warning); warns once about any file or
 * directory under it (top level and mail/), and about the directory
 * database when it lives elsewhere, that is open to group or others.
 * -1 (logged) when data_dir cannot be created or is not a directory. */
int fs_secure_data_dir(const char *data_dir, const char *directory_path);

/* For ternctl run as root: gives the files it may have created in data_dir
 * (top level and mail/) the owner of data_dir, so a ternd running as that
 * user can open them. Nothing happens when not root or data_dir is root's. */
void fs_match_data_dir_owner(const char *data_dir, const char *directory_path);

#endif
