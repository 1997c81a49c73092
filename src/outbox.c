/* outbox.c - the write-back outbox: one row per Dynamics record with the
 * latest columns to write (merged by every state change in the same
 * transaction, see smsys_q_wb in sql/002_queue.sql). A single writer (the
 * leader of the write-back job) takes due rows, writes them in one
 * Dataverse request and acknowledges them by version, so a change that
 * landed meanwhile is never lost. See docs/queue.md. */
#include "queue_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Both acknowledgements lock their rows in activity_id order, the order
 * smsys_q_wb upserts them in, so the writer and the state changes of
 * other processes cannot deadlock on the outbox. */

/* Retry schedule of rows the writer could not write: 1 s doubling to 5 min,
 * with 20 % jitter so a recovering Dynamics is not hit all at once. */
#define OUTBOX_BACKOFF_BASE_MS 1000
#define OUTBOX_BACKOFF_CAP_MS  300000

static void take_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct qreq *r = ud;
    struct queue_wb *w = NULL;
    size_t n = 0;
    if (rc == 0) {
        n = (size_t)PQntuples(res);
        w = calloc(n ? n : 1, sizeof(*w));
        if (w == NULL) {
            struct smsys_err e;
            smsys_err_set(&e, -ENOMEM, "out of memory reading the outbox");
            r->cb.outbox(-ENOMEM, NULL, 0, &e, r->ud);
            free(r);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            w[i].activity_id = q_str(res, (int)i, 0);
            w[i].fields = q_str(res, (int)i, 1);
            w[i].version = q_int(res, (int)i, 2);
        }
    }
    r->cb.outbox(rc, w, n, err, r->ud);
    free(w);
    free(r);
}

int outbox_take(struct queue *q, unsigned limit, queue_outbox_cb cb, void *ud)
{
    if (q == NULL || cb == NULL || limit == 0 || limit > 100000)
        return -EINVAL;
    char lim[16];
    snprintf(lim, sizeof(lim), "%u", limit);
    const char *p[1] = {lim};
    struct qreq *r = qreq_new(q, ud);
    if (r == NULL)
        return -ENOMEM;
    r->cb.outbox = cb;
    return qreq_send(r, "smsys_ob_take",
                     "SELECT activity_id::text, fields::text, version FROM smsys_writeback "
                     "WHERE next_attempt_at <= now() ORDER BY next_attempt_at, activity_id "
                     "LIMIT $1::int4",
                     1, p, take_cb);
}

/* Builds the id / version / error arrays of an acknowledgement. */
static int ack_arrays(const struct queue_wb_ack *rows, size_t n, struct qarr a[3])
{
    for (int c = 0; c < 3; c++)
        qa_init(&a[c]);
    for (size_t i = 0; i < n; i++) {
        if (!q_is_guid(rows[i].activity_id))
            return -EINVAL;
        qa_str(&a[0], rows[i].activity_id);
        qa_int(&a[1], rows[i].version);
        qa_text(&a[2], rows[i].error, QUEUE_LASTERROR_MAX);
    }
    return 0;
}

static int ack_call(struct queue *q, const char *name, const char *sql, int nparams,
                    const struct queue_wb_ack *rows, size_t n, const char *error, queue_count_cb cb,
                    void *ud)
{
    if (q == NULL || cb == NULL || rows == NULL || n == 0 || n > 100000)
        return -EINVAL;
    struct qarr a[3];
    int rc = ack_arrays(rows, n, a);
    const char *p[6];
    char base[16], cap[16];
    char *err = NULL;
    if (rc == 0) {
        for (int c = 0; c < 3; c++)
            if ((p[c] = qa_end(&a[c])) == NULL)
                rc = -ENOMEM;
    }
    if (rc == 0 && error) {
        size_t cap_b = 4 * QUEUE_LASTERROR_MAX + 1;
        if ((err = malloc(cap_b)) == NULL)
            rc = -ENOMEM;
        else
            queue_text_clean(error, QUEUE_LASTERROR_MAX, err, cap_b);
    }
    snprintf(base, sizeof(base), "%u", OUTBOX_BACKOFF_BASE_MS);
    snprintf(cap, sizeof(cap), "%u", OUTBOX_BACKOFF_CAP_MS);
    p[3] = err;
    p[4] = base;
    p[5] = cap;
    if (rc == 0)
        rc = q_count_call(q, name, sql, nparams, p, cb, ud);
    free(err);
    for (int c = 0; c < 3; c++)
        qa_free(&a[c]);
    return rc;
}

int outbox_done(struct queue *q, const struct queue_wb_ack *rows, size_t n, queue_count_cb cb,
                void *ud)
{
    return ack_call(q, "smsys_ob_done",
                    "WITH l AS (SELECT w.activity_id FROM smsys_writeback w JOIN "
                    "unnest($1::uuid[], $2::int8[]) AS x(a, v) ON w.activity_id = x.a "
                    "AND w.version = x.v ORDER BY w.activity_id FOR UPDATE OF w), "
                    "d AS (DELETE FROM smsys_writeback w USING l WHERE w.activity_id = "
                    "l.activity_id RETURNING 1) SELECT count(*) FROM d",
                    2, rows, n, NULL, cb, ud);
}

int outbox_failed(struct queue *q, const struct queue_wb_ack *rows, size_t n, const char *error,
                  queue_count_cb cb, void *ud)
{
    /* The version is not checked: a newer change must wait as well, since
     * the target (Dynamics) is what failed. */
    return ack_call(q, "smsys_ob_failed",
                    "WITH l AS (SELECT w.activity_id FROM smsys_writeback w WHERE "
                    "w.activity_id = ANY ($1::uuid[]) ORDER BY w.activity_id FOR UPDATE), "
                    "u AS (UPDATE smsys_writeback w SET attempts = w.attempts + 1, "
                    "last_error = coalesce(x.e, $4, 'write-back failed'), updated_at = now(), "
                    "next_attempt_at = now() + make_interval(secs => least($6::float8, "
                    "$5::float8 * power(2, least(w.attempts, 30))) * (1 - 0.2 * random()) / "
                    "1000.0) FROM unnest($1::uuid[], $2::int8[], $3::text[]) AS x(a, v, e) "
                    "JOIN l ON l.activity_id = x.a WHERE w.activity_id = x.a RETURNING 1) "
                    "SELECT count(*) FROM u",
                    6, rows, n, error, cb, ud);
}
