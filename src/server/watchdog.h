/* A thread that reports what has been stuck longer than watchdog_threshold:
 * a lock held (with where it was taken), a delivery in flight, and any
 * watched thread that has not come back (a loop thread stuck in one
 * callback, a worker stuck on one piece of work), with what it runs. The
 * early warning for the hang this project exists to make impossible. It
 * only reports; it never kills.
 *
 * Watched threads. Each loop and worker thread registers itself and keeps a
 * slot the watchdog reads without a lock:
 *   - a loop thread beats from a timer (watch_beat) every
 *     watch_beat_period_ms(); an idle loop still runs its timer, so a beat
 *     older than the threshold means one callback (or one turn) has run that
 *     long. Around a connection's command the loop names what it runs
 *     (watch_activity: "imap user=alice cmd=SORT").
 *   - a worker stamps when it takes work and when it is done (watch_busy,
 *     watch_idle); waiting for work is idle, not stuck.
 * A stuck thread is reported once per episode, and once more when it comes
 * back, with how long it was away. Every watch_* call but the registration
 * is a few plain stores: no lock, no system call. */
#ifndef TERN_SERVER_WATCHDOG_H
#define TERN_SERVER_WATCHDOG_H

#include <stdint.h>

struct server;
struct watchdog;

int watchdog_start(struct server *srv, uint32_t threshold_ms, struct watchdog **w_r);
void watchdog_stop(struct watchdog **w);

/* How often a loop beats (and the watchdog looks) for a threshold. */
uint32_t watch_beat_period_ms(uint32_t threshold_ms);

enum watch_kind {
	WATCH_LOOP,     /* beats; stuck when its last beat is too old */
	WATCH_WORKER,   /* busy/idle; stuck when busy too long */
};

/* Registers the calling thread under a name ("loop 0", "apply worker 2");
 * a loop starts beating at once. Call watch_thread_end before the thread
 * exits. A thread that is not registered makes every other call a no-op. */
void watch_thread_begin(enum watch_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void watch_thread_end(void);

/* Loop thread: one heartbeat. */
void watch_beat(void);
/* Loop thread: what the current callback runs, until watch_activity_clear.
 * Any argument may be NULL (left out). Copies at most WATCH_TEXT_MAX - 1
 * bytes; no formatting, no clock read. */
void watch_activity(const char *proto, const char *user, const char *cmd);
void watch_activity_clear(void);

/* Worker thread: took work (described by fmt), until watch_idle.
 * watch_busy_text only changes the description (next step of the same work). */
void watch_busy(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void watch_busy_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void watch_idle(void);

/* Bytes of activity text a slot holds, NUL included (a multiple of 8). */
#define WATCH_TEXT_MAX 128u

#endif
