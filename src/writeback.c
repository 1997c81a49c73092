/* writeback.c - the write-back writer: outbox rows -> UpdateMultiple on the
 * SMS records (dv_update_multiple_each: one bad record never holds back
 * the others) -> acknowledged by version (writeback.h, docs/outbound.md). */
#include "smsys/writeback.h"

#include "smsys/dataverse.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/queue.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What a row's outcome means for its outbox row. */
enum wb_fate { WB_PENDING = 0, WB_DONE, WB_DROP, WB_RETRY };

struct wb_row {
    char id[37];
    int64_t version;
    enum wb_fate fate;
    char *error; /* WB_RETRY / WB_DROP: why */
};

struct writeback {
    uv_loop_t *loop;
    struct queue *q;
    struct dv_client *dv;
    unsigned batch;
    char *set;
    char *logical;
    struct writeback_stats st;
    struct metric *m_rows, *m_req, *m_dropped, *m_failed, *m_taken;

    /* the round in progress */
    int busy;
    writeback_done_cb cb;
    void *ud;
    struct wb_row *rows;
    size_t n;
    int rc;
};

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

int writeback_new(uv_loop_t *loop, struct queue *q, struct dv_client *dv,
                  const struct writeback_opts *o, struct writeback **out)
{
    if (loop == NULL || q == NULL || dv == NULL || out == NULL)
        return -EINVAL;
    struct writeback *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->loop = loop;
    w->q = q;
    w->dv = dv;
    w->batch = o && o->batch ? o->batch : 1000;
    w->set = strdup(o && o->entity_set ? o->entity_set : "smsys_smses");
    w->logical = strdup(o && o->logical ? o->logical : "smsys_sms");
    if (w->set == NULL || w->logical == NULL) {
        writeback_free(w);
        return -ENOMEM;
    }
    if (o && o->metrics) {
        w->m_taken = metrics_counter(o->registry, "smsys_writeback_rows_taken_total",
                                     "Outbox rows taken for writing to Dynamics.", NULL);
        w->m_rows = metrics_counter(o->registry, "smsys_writeback_rows_written_total",
                                    "SMS records written back to Dynamics.", NULL);
        w->m_req = metrics_counter(o->registry, "smsys_writeback_requests_total",
                                   "Dynamics requests the write-back took.", NULL);
        w->m_dropped =
            metrics_counter(o->registry, "smsys_writeback_rows_dropped_total",
                            "Write-back rows dropped: the record is gone in Dynamics.", NULL);
        w->m_failed = metrics_counter(o->registry, "smsys_writeback_rows_retried_total",
                                      "Write-back rows rescheduled after a failure.", NULL);
    }
    *out = w;
    return 0;
}

static void round_clear(struct writeback *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->rows[i].error);
    }
    free(w->rows);
    w->rows = NULL;
    w->n = 0;
}

void writeback_free(struct writeback *w)
{
    if (w == NULL)
        return;
    round_clear(w);
    free(w->set);
    free(w->logical);
    free(w);
}

int writeback_busy(const struct writeback *w)
{
    return w->busy;
}

const struct writeback_stats *writeback_stats(const struct writeback *w)
{
    return &w->st;
}

static void round_end(struct writeback *w, int rc)
{
    size_t taken = w->n;
    writeback_done_cb cb = w->cb;
    void *ud = w->ud;
    round_clear(w);
    w->busy = 0;
    cb(rc, taken, ud);
}

/* Temporary: Dynamics unreachable, throttled or failing; the row is fine. */
static int wb_is_temporary(int rc)
{
    return rc == SMSYS_ETEMP || rc == SMSYS_ETHROTTLED || rc == -ETIMEDOUT ||
           rc == SMSYS_EUNKNOWN || rc == SMSYS_ECLOSED || rc == SMSYS_EAUTH || rc == SMSYS_EHTTP ||
           rc == -ENOMEM || rc == -ECONNREFUSED;
}

static void failed_cb(int rc, int64_t n, const struct smsys_err *err, void *ud)
{
    struct writeback *w = ud;
    (void)n;
    if (rc != 0)
        log_warn("writeback_reschedule_failed", "error=\"%s\"",
                 log_q(err ? err->detail : smsys_strerror(rc)));
    round_end(w, rc);
}

/* Second step of the acknowledgement: rows to retry later. */
static void ack_failed(struct writeback *w)
{
    size_t nf = 0;
    for (size_t i = 0; i < w->n; i++)
        nf += w->rows[i].fate == WB_RETRY;
    if (nf == 0) {
        round_end(w, w->rc);
        return;
    }
    struct queue_wb_ack *a = calloc(nf, sizeof(*a));
    if (a == NULL) {
        round_end(w, -ENOMEM);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->rows[i].fate == WB_RETRY)
            a[k++] = (struct queue_wb_ack){w->rows[i].id, w->rows[i].version, w->rows[i].error};
    w->st.rows_failed += nf;
    if (w->m_failed)
        metrics_add(w->m_failed, (double)nf);
    int rc = outbox_failed(w->q, a, nf, "write-back to Dynamics failed", failed_cb, w);
    free(a);
    if (rc != 0)
        round_end(w, rc);
}

static void done_cb(int rc, int64_t n, const struct smsys_err *err, void *ud)
{
    struct writeback *w = ud;
    (void)n;
    if (rc != 0) {
        /* The rows stay in the outbox and are written again: harmless. */
        log_warn("writeback_ack_failed", "error=\"%s\"",
                 log_q(err ? err->detail : smsys_strerror(rc)));
        w->rc = rc;
    }
    ack_failed(w);
}

/* First step: rows written or gone. */
static void ack(struct writeback *w)
{
    size_t nd = 0, nw = 0, nx = 0;
    for (size_t i = 0; i < w->n; i++) {
        nw += w->rows[i].fate == WB_DONE;
        nx += w->rows[i].fate == WB_DROP;
    }
    nd = nw + nx;
    w->st.rows_written += nw;
    w->st.rows_dropped += nx;
    if (w->m_rows)
        metrics_add(w->m_rows, (double)nw);
    if (w->m_dropped)
        metrics_add(w->m_dropped, (double)nx);
    if (nd == 0) {
        ack_failed(w);
        return;
    }
    struct queue_wb_ack *a = calloc(nd, sizeof(*a));
    if (a == NULL) {
        round_end(w, -ENOMEM);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->rows[i].fate == WB_DONE || w->rows[i].fate == WB_DROP)
            a[k++] = (struct queue_wb_ack){w->rows[i].id, w->rows[i].version, NULL};
    int rc = outbox_done(w->q, a, nd, done_cb, w);
    free(a);
    if (rc != 0)
        round_end(w, rc);
}

static void row_outcome(struct writeback *w, size_t i, int rc, const char *detail)
{
    struct wb_row *r = &w->rows[i];
    if (rc == 0) {
        r->fate = WB_DONE;
        return;
    }
    free(r->error);
    r->error = xstrdup(detail && *detail ? detail : smsys_strerror(rc));
    if (rc == SMSYS_ENOTFOUND) {
        r->fate = WB_DROP;
        log_warn("writeback_record_gone", "activityid=%s error=\"%s\" action=dropped", r->id,
                 log_q(r->error));
        return;
    }
    r->fate = WB_RETRY;
    if (!wb_is_temporary(rc))
        log_warn("writeback_row_rejected", "activityid=%s error=\"%s\" action=retry_later", r->id,
                 log_q(r->error));
}

static void bulk_cb(int rc, const struct dv_bulk_result *res, void *ud)
{
    struct writeback *w = ud;
    w->st.requests += res ? res->requests : 0;
    if (w->m_req && res)
        metrics_add(w->m_req, res->requests);
    if (rc == SMSYS_ECLOSED) {
        /* Shutting down: leave the rows in the outbox for the next start. */
        round_end(w, rc);
        return;
    }
    size_t n = res ? res->n : 0;
    for (size_t i = 0; i < w->n; i++) {
        if (i < n)
            row_outcome(w, i, res->rows[i].rc, res->rows[i].err.detail);
        else
            row_outcome(w, i, rc ? rc : SMSYS_ETEMP, "no result for this row");
    }
    if (rc != 0 && wb_is_temporary(rc))
        log_warn("writeback_deferred", "rows=%zu error=\"%s\"", w->n,
                 log_q(n ? res->rows[0].err.detail : smsys_strerror(rc)));
    ack(w);
}

static void take_cb(int rc, const struct queue_wb *rows, size_t n, const struct smsys_err *err,
                    void *ud)
{
    struct writeback *w = ud;
    if (rc != 0 || n == 0) {
        if (rc != 0)
            log_warn("writeback_take_failed", "error=\"%s\"",
                     log_q(err ? err->detail : smsys_strerror(rc)));
        round_end(w, rc);
        return;
    }
    w->st.rows_taken += n;
    if (w->m_taken)
        metrics_add(w->m_taken, (double)n);
    w->rows = calloc(n, sizeof(*w->rows));
    cJSON *targets = cJSON_CreateArray();
    if (w->rows == NULL || targets == NULL) {
        cJSON_Delete(targets);
        round_end(w, -ENOMEM);
        return;
    }
    w->n = n;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct wb_row *r = &w->rows[i];
        snprintf(r->id, sizeof(r->id), "%s", rows[i].activity_id);
        r->version = rows[i].version;
        cJSON *t = cJSON_Parse(rows[i].fields);
        if (t == NULL || !cJSON_IsObject(t)) {
            cJSON_Delete(t);
            bad = 1;
            break;
        }
        /* JSON nulls are written as such: they clear a column (e.g. the
         * last error once a retry succeeded). */
        cJSON_AddStringToObject(t, "activityid", r->id);
        cJSON_AddItemToArray(targets, t);
    }
    if (bad) {
        cJSON_Delete(targets);
        round_end(w, -ENOMEM);
        return;
    }
    /* a chunk refused for one deleted record is narrowed down by the
     * client: the record is dropped, the other rows are written */
    rc = dv_update_multiple_each(w->dv, w->set, w->logical, targets, bulk_cb, w);
    cJSON_Delete(targets);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            row_outcome(w, i, SMSYS_ETEMP, smsys_strerror(rc));
        if (rc == SMSYS_ECLOSED) {
            round_end(w, rc);
            return;
        }
        ack(w);
    }
}

int writeback_run(struct writeback *w, writeback_done_cb cb, void *ud)
{
    if (w == NULL || cb == NULL)
        return -EINVAL;
    if (w->busy)
        return -EBUSY;
    w->busy = 1;
    w->cb = cb;
    w->ud = ud;
    w->rc = 0;
    w->st.rounds++;
    int rc = outbox_take(w->q, w->batch, take_cb, w);
    if (rc != 0)
        w->busy = 0;
    return rc;
}
