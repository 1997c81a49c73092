/* ljob.h - leader-only periodic jobs: the Dynamics singletons of smsysd
 * (accounts sync, pickup, write-back) run in exactly one process of those
 * sharing a database.
 *
 * A struct ljob holds one PostgreSQL advisory lock (queue_leader_try) for
 * a group of tasks, so the three Dynamics jobs pin one pool connection, not
 * three. While the process is not the leader it asks again every
 * retry_ms; leadership lost (connection gone) stops the tasks until it is
 * regained. Each task runs its callback when due and the callback reports
 * back exactly once with ljob_task_done(); a task never runs twice at once.
 *
 * Rules: callbacks run on the loop thread; nothing here blocks. Free order:
 * stop every task (ljob_task_stop), then ljob_close, then the queue. */
#ifndef SMSYS_LJOB_H
#define SMSYS_LJOB_H

#include <uv.h>

struct queue;
struct ljob;
struct ljob_task;

/* Starts one run. The task must call ljob_task_done(t, ...) exactly once,
 * now or later. */
typedef void (*ljob_run_cb)(struct ljob_task *t, void *ud);
typedef void (*ljob_closed_cb)(void *ud);

/* Creates the group for job name (copied) over q (borrowed; must outlive
 * the group). retry_ms: how often a follower asks for the lock [1000].
 * Returns 0 and *out, -EINVAL or -ENOMEM. Leadership is sought at once. */
int ljob_new(uv_loop_t *loop, struct queue *q, const char *name, unsigned retry_ms,
             struct ljob **out);

/* 1 while this process holds the lock. */
int ljob_is_leader(const struct ljob *j);

/* Adds a task that runs every interval_ms while leader (first run as soon
 * as leadership is held). name is borrowed (static). */
int ljob_task_add(struct ljob *j, const char *name, unsigned interval_ms, ljob_run_cb run, void *ud,
                  struct ljob_task **out);

/* Ends a run: again != 0 runs the task again at once (more work waiting),
 * else after its interval. */
void ljob_task_done(struct ljob_task *t, int again);

/* Ends a run; the next one starts after ms (instead of the interval). */
void ljob_task_done_in(struct ljob_task *t, unsigned ms);

/* Runs the task soon (e.g. on NOTIFY) if leader and not already running;
 * a run in progress is followed by another one at once. */
void ljob_task_kick(struct ljob_task *t);

/* Changes the interval (takes effect at the next scheduling). */
void ljob_task_set_interval(struct ljob_task *t, unsigned interval_ms);

/* Stops the task: no new run starts; cb(ud) fires (later) once the run in
 * progress has reported done and the timer is closed; t is then freed. */
void ljob_task_stop(struct ljob_task *t, ljob_closed_cb cb, void *ud);

/* Releases the lock; once every task has been stopped (ljob_task_stop,
 * possibly after this call) and the timer is closed, frees j and calls
 * cb(ud). */
void ljob_close(struct ljob *j, ljob_closed_cb cb, void *ud);

#endif
