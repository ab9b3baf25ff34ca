/* Backend dispatch and the helpers shared by every directory backend. */
#include "directory/directory.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"
#include "directory/directory-sqlite.h"

static int open_error(char **err_r, const char *msg)
{
	if (err_r != NULL)
		*err_r = strdup(msg);
	return -1;
}

int directory_open(const char *spec, struct directory **dir_r, char **err_r)
{
	if (spec == NULL || spec[0] == '\0')
		return open_error(err_r, "directory: empty path");
	if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0)
		return open_error(err_r, "PostgreSQL directory is not supported yet");
	return directory_sqlite_open(spec, dir_r, err_r);
}

void directory_close(struct directory **dir)
{
	if (*dir == NULL)
		return;
	(*dir)->ops->close(*dir);
	*dir = NULL;
}

void dir_user_clear(struct dir_user *u)
{
	free(u->name);
	free(u->password_hash);
	free(u->home);
	free(u->state);
	memset(u, 0, sizeof(*u));
}

void dir_users_free(struct dir_user **users, size_t count)
{
	if (*users == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		dir_user_clear(&(*users)[i]);
	free(*users);
	*users = NULL;
}

void dir_node_clear(struct dir_node *n)
{
	free(n->name);
	free(n->lmtp_addr);
	free(n->imap_addr);
	free(n->pop3_addr);
	free(n->admin_addr);
	free(n->cluster_addr);
	free(n->version);
	memset(n, 0, sizeof(*n));
}

void dir_nodes_free(struct dir_node **nodes, size_t count)
{
	if (*nodes == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		dir_node_clear(&(*nodes)[i]);
	free(*nodes);
	*nodes = NULL;
}

void dir_move_clear(struct dir_move *m)
{
	free(m->user);
	free(m->source);
	free(m->destination);
	free(m->wait_reason);
	free(m->last_error);
	free(m->runner);
	free(m->lease_owner);
	memset(m, 0, sizeof(*m));
}

void dir_moves_free(struct dir_move **moves, size_t count)
{
	if (*moves == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		dir_move_clear(&(*moves)[i]);
	free(*moves);
	*moves = NULL;
}

static const char *const move_phase_names[DIR_MOVE_PHASE_COUNT] = {
	[DIR_MOVE_QUEUED] = "queued",
	[DIR_MOVE_COPYING] = "copying",
	[DIR_MOVE_SYNCING] = "syncing",
	[DIR_MOVE_READY] = "ready",
	[DIR_MOVE_FINALIZING] = "finalizing",
	[DIR_MOVE_COMPLETED] = "completed",
	[DIR_MOVE_FAILED] = "failed",
	[DIR_MOVE_CANCELLED] = "cancelled",
};

const char *dir_move_phase_name(enum dir_move_phase phase)
{
	if ((unsigned)phase >= DIR_MOVE_PHASE_COUNT)
		return "?";
	return move_phase_names[phase];
}

int dir_move_phase_parse(const char *name, enum dir_move_phase *phase_r)
{
	for (unsigned i = 0; name != NULL && i < DIR_MOVE_PHASE_COUNT; i++) {
		if (strcmp(name, move_phase_names[i]) == 0) {
			*phase_r = (enum dir_move_phase)i;
			return 0;
		}
	}
	return -1;
}

bool dir_move_phase_finished(enum dir_move_phase phase)
{
	return phase == DIR_MOVE_COMPLETED || phase == DIR_MOVE_FAILED ||
	       phase == DIR_MOVE_CANCELLED;
}

int64_t dir_node_heartbeat_age_ms(const struct dir_node *n, int64_t now_ms)
{
	if (n->heartbeat_ms <= 0)
		return -1;
	return now_ms > n->heartbeat_ms ? now_ms - n->heartbeat_ms : 0;
}

bool dir_node_up(const struct dir_node *n, int64_t now_ms)
{
	int64_t age = dir_node_heartbeat_age_ms(n, now_ms);

	return !n->stopped && age >= 0 && age < (int64_t)TERN_NODE_DOWN_AFTER_MS;
}

int64_t dir_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
