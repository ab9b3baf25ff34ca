#include "mover/orphans.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/limits.h"
#include "core/lock.h"
#include "core/log.h"
#include "directory/directory.h"
#include "server/delivery.h"
#include "server/loop.h"
#include "server/server.h"
#include "store/store.h"

/* How long the collector waits for one removal (it never runs long: the
 * user is not served here, so the worker has nothing of theirs queued). */
#define ORPHAN_REMOVE_DEADLINE_MS 30000u

struct removal {
	struct store_task task;
	const char *data_dir;
	char user[TERN_USERNAME_MAX + 1];
	struct tern_mutex mu;
	pthread_cond_t cond;
	bool done;              /* under mu */
};

static int remove_run(struct store *st, void *arg, enum tern_error *err_r)
{
	(void)st;
	struct removal *rm = arg;
	return store_remove(rm->data_dir, rm->user, err_r);
}

/* On a loop: wakes the collector, which frees rm. */
static void remove_done(struct store_task *t)
{
	struct removal *rm = t->arg;
	TERN_LOCK_GUARD(&rm->mu);
	rm->done = true;
	pthread_cond_signal(&rm->cond);
}

static bool store_here(const struct tern_config *cfg, const char *user)
{
	char *path = store_path(cfg->data_dir, user);
	struct stat sb;
	bool here = path != NULL && stat(path, &sb) == 0;
	free(path);
	return here;
}

/* Whether user's copy here is an orphan of move m: no move of the user in
 * progress (a move back here installs its copy under the same name), and
 * the directory homes the user elsewhere. */
static bool orphaned(struct directory *dir, const struct tern_config *cfg,
		     const struct dir_move *m)
{
	struct dir_move active = {0};
	struct dir_user u = {0};
	enum tern_error e;
	int a = dir->ops->move_get_active(dir, m->user, &active, &e);
	dir_move_clear(&active);
	if (a != 0)
		return false;
	bool elsewhere = directory_user_get(dir, m->user, &u, &e) == 1 &&
			 strcmp(u.home, cfg->node_name) != 0;
	dir_user_clear(&u);
	return elsewhere;
}

static void remove_copy(const struct tern_config *cfg, struct server *srv,
			const struct dir_move *m)
{
	struct removal *rm = calloc(1, sizeof(*rm));
	if (rm == NULL || srv->delivery == NULL || srv->loop_count == 0) {
		free(rm);
		return;
	}
	rm->data_dir = cfg->data_dir;
	snprintf(rm->user, sizeof(rm->user), "%s", m->user);
	tern_mutex_init(&rm->mu, "orphan removal");
	tern_cond_init(&rm->cond);
	rm->task.user = rm->user;
	rm->task.run = remove_run;
	rm->task.open = STORE_TASK_NO_STORE;
	rm->task.arg = rm;
	rm->task.done = remove_done;
	rm->task.loop = &srv->loops[0];
	rm->task.deadline_ms = tern_now_ms() + ORPHAN_REMOVE_DEADLINE_MS;
	/* the worker forgets its handle: the user may come back here later */
	rm->task.drop_handle = true;
	delivery_store_task(srv->delivery, &rm->task);
	{
		TERN_LOCK_GUARD(&rm->mu);
		while (!rm->done)
			tern_cond_wait(&rm->cond, &rm->mu, tern_now_ms() + ORPHAN_REMOVE_DEADLINE_MS);
	}
	if (rm->task.result == 0)
		log_info("move %" PRId64 ": user=%s: this node's copy removed by the orphan collector "
			 "(moved to %s, whose mover did not remove it)", m->id, m->user,
			 m->destination);
	else
		log_warn("move %" PRId64 ": user=%s: removing the copy moved to %s failed: %s",
			 m->id, m->user, m->destination, tern_error_str(rm->task.err));
	pthread_cond_destroy(&rm->cond);
	tern_mutex_destroy(&rm->mu);
	free(rm);
}

void orphans_collect(struct directory *dir, const struct tern_config *cfg, struct server *srv,
		     int64_t since_ms)
{
	struct dir_move *moves = NULL;
	size_t count = 0;
	enum tern_error e;
	if (srv == NULL ||
	    dir->ops->move_list_completed_from(dir, cfg->node_name, since_ms, &moves, &count,
					       &e) < 0)
		return;
	for (size_t i = 0; i < count; i++) {
		const struct dir_move *m = &moves[i];
		bool seen = false;   /* a user moved out twice: once is enough */
		for (size_t k = i + 1; k < count && !seen; k++)
			seen = strcmp(moves[k].user, m->user) == 0;
		if (!seen && store_here(cfg, m->user) && orphaned(dir, cfg, m))
			remove_copy(cfg, srv, m);
	}
	dir_moves_free(&moves, count);
}
