/* queue_leader.c - leader election for the singleton jobs (pollers, the
 * write-back writer, the reaper): a session-level advisory lock taken on a
 * connection pinned for as long as leadership lasts. PostgreSQL drops the
 * lock when that session ends, so a crashed or partitioned holder loses it
 * without any timeout of ours; a heartbeat on the pinned connection tells
 * the holder when that has happened (lost_cb), so it stops the job before
 * (or at worst about one heartbeat after) another process takes over. */
#include "queue_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/log.h"
#include "smsys/util.h"

struct queue_leader {
    struct queue *q;
    struct pg_conn *conn;
    uv_timer_t timer;
    char *job;
    queue_leader_cb cb;
    queue_leader_lost_cb lost_cb;
    void *ud;
    int timer_open; /* timer initialised and not yet closed */
    int hb_inflight;
    int unlock_inflight;
    int lost;
    int released;
};

static const char SQL_LOCK[] = "SELECT pg_try_advisory_lock(hashtextextended('smsys:' || $1, 0))";
static const char SQL_UNLOCK[] = "SELECT pg_advisory_unlock(hashtextextended('smsys:' || $1, 0))";

static void leader_free(struct queue_leader *ld)
{
    free(ld->job);
    free(ld);
}

/* Frees ld once nothing refers to it any more. */
static void leader_maybe_free(struct queue_leader *ld)
{
    if (ld->released && !ld->timer_open && !ld->hb_inflight && !ld->unlock_inflight)
        leader_free(ld);
}

static void leader_lost(struct queue_leader *ld, const char *why)
{
    if (ld->lost || ld->released)
        return;
    ld->lost = 1;
    uv_timer_stop(&ld->timer);
    log_warn("leader_lost", "job=%s reason=%s", ld->job, log_q(why));
    ld->lost_cb(ld, ld->ud);
}

static void hb_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct queue_leader *ld = ud;
    (void)res;
    ld->hb_inflight = 0;
    if (rc != 0)
        leader_lost(ld, err ? err->detail : smsys_strerror(rc));
    leader_maybe_free(ld);
}

static void hb_timer_cb(uv_timer_t *t)
{
    struct queue_leader *ld = container_of(t, struct queue_leader, timer);
    if (ld->hb_inflight || ld->lost || ld->released)
        return;
    int rc = pg_conn_query(ld->conn, "SELECT 1", 0, NULL, hb_cb, ld);
    if (rc != 0)
        leader_lost(ld, smsys_strerror(rc));
    else
        ld->hb_inflight = 1;
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct queue_leader *ld = container_of((uv_timer_t *)h, struct queue_leader, timer);
    ld->timer_open = 0;
    leader_maybe_free(ld);
}

static void lock_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct queue_leader *ld = ud;
    if (rc != 0 || PQntuples(res) != 1 || PQgetvalue(res, 0, 0)[0] != 't') {
        pg_release(ld->conn);
        ld->cb(rc, NULL, err, ld->ud);
        leader_free(ld);
        return;
    }
    uv_timer_init(ld->q->loop, &ld->timer);
    ld->timer_open = 1;
    uv_timer_start(&ld->timer, hb_timer_cb, ld->q->opts.leader_heartbeat_ms,
                   ld->q->opts.leader_heartbeat_ms);
    log_info("leader_acquired", "job=%s", ld->job);
    ld->cb(0, ld, NULL, ld->ud);
}

static void acquire_cb(int rc, struct pg_conn *conn, const struct smsys_err *err, void *ud)
{
    struct queue_leader *ld = ud;
    if (rc != 0) {
        ld->cb(rc, NULL, err, ld->ud);
        leader_free(ld);
        return;
    }
    ld->conn = conn;
    const char *p[1] = {ld->job};
    rc = pg_conn_query(conn, SQL_LOCK, 1, p, lock_cb, ld);
    if (rc != 0) {
        struct smsys_err e;
        smsys_err_set(&e, rc, "could not ask for the %s lock: %s", ld->job, smsys_strerror(rc));
        pg_release(conn);
        ld->cb(rc, NULL, &e, ld->ud);
        leader_free(ld);
    }
}

int queue_leader_try(struct queue *q, const char *job_name, queue_leader_cb cb,
                     queue_leader_lost_cb lost_cb, void *ud)
{
    if (q == NULL || job_name == NULL || job_name[0] == '\0' || strlen(job_name) > 200 ||
        !q_utf8_valid(job_name) || cb == NULL || lost_cb == NULL)
        return -EINVAL;
    struct queue_leader *ld = calloc(1, sizeof(*ld));
    if (ld == NULL || (ld->job = util_strdup0(job_name)) == NULL) {
        free(ld);
        return -ENOMEM;
    }
    ld->q = q;
    ld->cb = cb;
    ld->lost_cb = lost_cb;
    ld->ud = ud;
    int rc = pg_acquire(q->pool, acquire_cb, ld);
    if (rc != 0)
        leader_free(ld);
    return rc;
}

/* The connection goes back only after the unlock has finished: a pool
 * closing while a released connection still runs a statement would wait
 * for it forever (see the report on pg_release), and the unlock must not
 * be lost either. */
static void unlock_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct queue_leader *ld = ud;
    (void)res, (void)err;
    /* On failure the session is gone and took the lock with it. */
    if (rc != 0 && rc != SMSYS_ECLOSED)
        log_warn("leader_unlock_failed", "job=%s error=%s", ld->job, smsys_strerror(rc));
    ld->unlock_inflight = 0;
    pg_release(ld->conn);
    ld->conn = NULL;
    leader_maybe_free(ld);
}

void queue_leader_release(struct queue_leader *ld)
{
    if (ld == NULL || ld->released)
        return;
    ld->released = 1;
    uv_timer_stop(&ld->timer);
    log_info("leader_released", "job=%s", ld->job);
    if (!ld->lost) {
        const char *p[1] = {ld->job};
        if (pg_conn_query(ld->conn, SQL_UNLOCK, 1, p, unlock_cb, ld) == 0)
            ld->unlock_inflight = 1;
    }
    if (!ld->unlock_inflight) {
        pg_release(ld->conn);
        ld->conn = NULL;
    }
    uv_close((uv_handle_t *)&ld->timer, timer_closed_cb);
}
