/* A thread that reports, with where they started, any lock held or delivery
 * in flight longer than watchdog_threshold: the early warning for the hang
 * this project exists to make impossible. It only reports; it never kills. */
#ifndef TERN_SERVER_WATCHDOG_H
#define TERN_SERVER_WATCHDOG_H

#include <stdint.h>

struct server;
struct watchdog;

int watchdog_start(struct server *srv, uint32_t threshold_ms, struct watchdog **w_r);
void watchdog_stop(struct watchdog **w);

#endif
