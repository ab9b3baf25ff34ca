/* The delivery workers' store handle cache (src/server/store-cache.h): a
 * handle is created only when asked to; otherwise a missing store stays
 * missing (TERN_ERR_NOTFOUND, no file), so a task of a session or a move can
 * never bring back, empty, a store that a move removed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/store-cache.h"
#include "store/store.h"

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb, (void)type, (void)ftw;
	return remove(path);
}

static bool store_file_exists(const char *dir, const char *user)
{
	char *path = store_path(dir, user);
	struct stat sb;
	bool here = path != NULL && stat(path, &sb) == 0;
	free(path);
	return here;
}

static void test_missing_store_is_not_created(void **state)
{
	(void)state;
	char dir[] = "/tmp/tern-store-cache-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct store_cache *c = store_cache_new(dir, 4);
	assert_non_null(c);
	enum tern_error err = TERN_ERR_NONE;

	assert_null(store_cache_get(c, "alice", 1, false, &err));
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_false(store_file_exists(dir, "alice"));

	/* created when asked, then found without creation, from the cache
	 * and after the handle was dropped */
	struct store *st = store_cache_get(c, "alice", 1, true, &err);
	assert_non_null(st);
	assert_true(store_file_exists(dir, "alice"));
	assert_ptr_equal(store_cache_get(c, "alice", 1, false, &err), st);
	store_cache_drop(c, "alice");
	assert_non_null(store_cache_get(c, "alice", 1, false, &err));

	/* removed (as a move does), it stays removed */
	store_cache_drop(c, "alice");
	assert_int_equal(store_remove(dir, "alice", &err), 0);
	assert_null(store_cache_get(c, "alice", 1, false, &err));
	assert_int_equal(err, TERN_ERR_NOTFOUND);
	assert_false(store_file_exists(dir, "alice"));

	store_cache_free(&c);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_store_is_not_created),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
