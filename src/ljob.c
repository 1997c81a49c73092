/* ljob.c - leader-only periodic tasks over one advisory lock (ljob.h). */
#include "smsys/ljob.h"

#include "smsys/log.h"
#include "smsys/queue.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ljob_task {
    struct ljob *j;
    struct ljob_task *next;
    const char *name;
    uv_timer_t timer;
    unsigned interval_ms;
    ljob_run_cb run;
    void *ud;
    int running;
    int kicked;
    int stopping;
    ljob_closed_cb stopped_cb;
    void *stopped_ud;
};

struct ljob {
    uv_loop_t *loop;
    struct queue *q;
    char *name;
    unsigned retry_ms;
    uv_timer_t timer; /* asks for the lock while not leader */
    struct queue_leader *ld;
    int trying;
    int closing;
    int timer_closing;
    struct ljob_task *tasks;
    ljob_closed_cb closed_cb;
    void *closed_ud;
};

static void task_schedule(struct ljob_task *t, uint64_t ms);
static void try_timer_cb(uv_timer_t *h);
static void job_closed_cb(uv_handle_t *h);

/* Closing completes once no lock request is in flight and every task has
 * stopped (their runs may still be finishing when ljob_close is called). */
static void job_maybe_finish(struct ljob *j)
{
    if (j->closing && !j->trying && j->tasks == NULL && !j->timer_closing) {
        j->timer_closing = 1;
        uv_close((uv_handle_t *)&j->timer, job_closed_cb);
    }
}

static void leader_lost_cb(struct queue_leader *ld, void *ud)
{
    struct ljob *j = ud;
    if (j->ld == ld)
        j->ld = NULL;
    queue_leader_release(ld);
    for (struct ljob_task *t = j->tasks; t; t = t->next)
        uv_timer_stop(&t->timer);
    if (!j->closing)
        uv_timer_start(&j->timer, try_timer_cb, j->retry_ms, 0);
}

static void leader_cb(int rc, struct queue_leader *ld, const struct smsys_err *err, void *ud)
{
    struct ljob *j = ud;
    j->trying = 0;
    if (j->closing) {
        if (ld)
            queue_leader_release(ld);
        job_maybe_finish(j);
        return;
    }
    if (rc != 0 || ld == NULL) {
        if (rc != 0)
            log_debug("leader_try_failed", "job=%s error=\"%s\"", j->name,
                      log_q(err ? err->detail : smsys_strerror(rc)));
        uv_timer_start(&j->timer, try_timer_cb, j->retry_ms, 0);
        return;
    }
    j->ld = ld;
    for (struct ljob_task *t = j->tasks; t; t = t->next)
        if (!t->stopping && !t->running)
            task_schedule(t, 0);
}

static void try_timer_cb(uv_timer_t *h)
{
    struct ljob *j = container_of(h, struct ljob, timer);
    if (j->ld || j->trying || j->closing)
        return;
    j->trying = 1;
    int rc = queue_leader_try(j->q, j->name, leader_cb, leader_lost_cb, j);
    if (rc != 0) {
        j->trying = 0;
        uv_timer_start(&j->timer, try_timer_cb, j->retry_ms, 0);
    }
}

int ljob_new(uv_loop_t *loop, struct queue *q, const char *name, unsigned retry_ms,
             struct ljob **out)
{
    if (loop == NULL || q == NULL || name == NULL || *name == '\0' || out == NULL)
        return -EINVAL;
    struct ljob *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->name = strdup(name)) == NULL) {
        free(j);
        return -ENOMEM;
    }
    j->loop = loop;
    j->q = q;
    j->retry_ms = retry_ms ? retry_ms : 1000;
    uv_timer_init(loop, &j->timer);
    uv_timer_start(&j->timer, try_timer_cb, 0, 0);
    *out = j;
    return 0;
}

int ljob_is_leader(const struct ljob *j)
{
    return j != NULL && j->ld != NULL;
}

static void task_timer_cb(uv_timer_t *h)
{
    struct ljob_task *t = container_of(h, struct ljob_task, timer);
    if (t->running || t->stopping || t->j->ld == NULL)
        return;
    t->running = 1;
    t->kicked = 0;
    t->run(t, t->ud);
}

static void task_schedule(struct ljob_task *t, uint64_t ms)
{
    if (t->stopping || t->j->ld == NULL)
        return;
    uv_timer_start(&t->timer, task_timer_cb, ms, 0);
}

int ljob_task_add(struct ljob *j, const char *name, unsigned interval_ms, ljob_run_cb run, void *ud,
                  struct ljob_task **out)
{
    if (j == NULL || run == NULL || out == NULL)
        return -EINVAL;
    struct ljob_task *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->j = j;
    t->name = name;
    t->interval_ms = interval_ms ? interval_ms : 1000;
    t->run = run;
    t->ud = ud;
    uv_timer_init(j->loop, &t->timer);
    t->next = j->tasks;
    j->tasks = t;
    if (j->ld)
        task_schedule(t, 0);
    *out = t;
    return 0;
}

static void task_closed_cb(uv_handle_t *h)
{
    struct ljob_task *t = container_of((uv_timer_t *)h, struct ljob_task, timer);
    ljob_closed_cb cb = t->stopped_cb;
    void *ud = t->stopped_ud;
    free(t);
    if (cb)
        cb(ud);
}

static void task_finish_stop(struct ljob_task *t)
{
    struct ljob *j = t->j;
    for (struct ljob_task **p = &j->tasks; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    uv_close((uv_handle_t *)&t->timer, task_closed_cb);
    job_maybe_finish(j);
}

void ljob_task_done(struct ljob_task *t, int again)
{
    t->running = 0;
    if (t->stopping) {
        task_finish_stop(t);
        return;
    }
    task_schedule(t, again || t->kicked ? 0 : t->interval_ms);
}

void ljob_task_done_in(struct ljob_task *t, unsigned ms)
{
    t->running = 0;
    if (t->stopping) {
        task_finish_stop(t);
        return;
    }
    task_schedule(t, t->kicked ? 0 : ms);
}

void ljob_task_kick(struct ljob_task *t)
{
    if (t == NULL || t->stopping)
        return;
    if (t->running) {
        t->kicked = 1;
        return;
    }
    task_schedule(t, 0);
}

void ljob_task_set_interval(struct ljob_task *t, unsigned interval_ms)
{
    if (t && interval_ms)
        t->interval_ms = interval_ms;
}

void ljob_task_stop(struct ljob_task *t, ljob_closed_cb cb, void *ud)
{
    t->stopping = 1;
    t->stopped_cb = cb;
    t->stopped_ud = ud;
    uv_timer_stop(&t->timer);
    if (!t->running)
        task_finish_stop(t);
}

static void job_closed_cb(uv_handle_t *h)
{
    struct ljob *j = container_of((uv_timer_t *)h, struct ljob, timer);
    ljob_closed_cb cb = j->closed_cb;
    void *ud = j->closed_ud;
    free(j->name);
    free(j);
    if (cb)
        cb(ud);
}

void ljob_close(struct ljob *j, ljob_closed_cb cb, void *ud)
{
    j->closing = 1;
    j->closed_cb = cb;
    j->closed_ud = ud;
    if (j->ld) {
        queue_leader_release(j->ld);
        j->ld = NULL;
    }
    /* A queue_leader_try in flight completes later (leader_cb sees closing
     * and releases), and tasks may still be running: j stays until then. */
    uv_timer_stop(&j->timer);
    for (struct ljob_task *t = j->tasks; t; t = t->next)
        uv_timer_stop(&t->timer);
    job_maybe_finish(j);
}
