/* The embedded directory backend: one SQLite file shared by every ternd and
 * ternctl on a host. Private to src/directory; callers use directory_open(). */
#ifndef TERN_DIRECTORY_DIRECTORY_SQLITE_H
#define TERN_DIRECTORY_DIRECTORY_SQLITE_H

#include "directory/directory.h"

/* Opens (creating the file if missing, never its parent directory) and
 * migrates the directory at path. Returns -1 with *err_r (heap) on failure. */
int directory_sqlite_open(const char *path, struct directory **dir_r, char **err_r);

#endif
