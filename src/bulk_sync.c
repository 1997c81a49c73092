/* bulk_sync.c - the engine's output to Dynamics: each bulk's status,
 * counters and last error are PATCHed only when they differ from what was
 * last written (smsys_bulk.written), so a quiet bulk costs nothing; and a
 * Sending bulk whose messages are all final becomes Completed. */
#include "bulk_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/log.h"
#include "smsys/util.h"

static void next_sync(struct run *r);

/* ---- states and counters to Dynamics -------------------------------------- */

static void written_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)res;
    bulk_note_rc(r, rc, "sync_written", err);
    r->isy++;
    next_sync(r);
}

static void gone_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)res;
    bulk_note_rc(r, rc, "sync_gone", err);
    if (bulk_db_set_written(r->e->pg, r->sy[r->isy].id, "{\"gone\":true,\"smsys_status\":7}",
                            written_cb, r) != 0) {
        r->isy++;
        next_sync(r);
    }
}

static void patch_cb(int rc, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    struct syncrow *s = &r->sy[r->isy];
    r->e->st.dv_requests++;
    if (rc == SMSYS_ENOTFOUND) {
        /* the record was deleted in Dynamics: nothing more to send for it */
        log_warn("bulk record deleted in Dynamics: canceled", "bulk=%s", s->id);
        if (bulk_db_cancel(r->e->pg, s->id, gone_cb, r) == 0)
            return;
    } else if (rc == 0) {
        r->e->st.patches++;
        if (bulk_db_set_written(r->e->pg, s->id, r->patch, written_cb, r) == 0)
            return;
    } else {
        bulk_note_rc(r, rc, "sync_patch", err);
    }
    r->isy++;
    next_sync(r);
}

/* Writes the row's status and counters when they differ from what was
 * last written (coalesced: one PATCH per bulk per interval at most). */
static void sync_write(struct run *r)
{
    struct syncrow *s = &r->sy[r->isy];
    cJSON *f = cJSON_CreateObject();
    if (f == NULL) {
        r->isy++;
        next_sync(r);
        return;
    }
    cJSON_AddNumberToObject(f, "smsys_status", s->state);
    cJSON_AddNumberToObject(f, "smsys_total", (double)s->total);
    cJSON_AddNumberToObject(f, "smsys_sent", (double)s->sent);
    cJSON_AddNumberToObject(f, "smsys_delivered", (double)s->delivered);
    cJSON_AddNumberToObject(f, "smsys_failed", (double)s->failed);
    cJSON_AddNumberToObject(f, "smsys_skipped", (double)s->skipped);
    if (s->last_error)
        cJSON_AddStringToObject(f, "smsys_lasterror", s->last_error);
    else
        cJSON_AddNullToObject(f, "smsys_lasterror");
    int same = s->written != NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, f)
    {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(s->written, it->string);
        if (same && (w == NULL || !cJSON_Compare(it, w, 1)))
            same = 0;
    }
    free(r->patch);
    r->patch = same ? NULL : cJSON_PrintUnformatted(f);
    cJSON_Delete(f);
    if (same || r->patch == NULL ||
        dv_patch(r->e->dv, "smsys_bulksmses", s->id, r->patch, "*", patch_cb, r) != 0) {
        r->isy++;
        next_sync(r);
    }
}

static void completed_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    struct syncrow *s = &r->sy[r->isy];
    bulk_note_rc(r, rc, "complete", err);
    if (rc == 0 && PQntuples(res) == 1) {
        s->state = bulk_to_int(bulk_val(res, 0, 0), s->state);
        log_info("bulk completed",
                 "bulk=%s total=%lld sent=%lld delivered=%lld failed=%lld skipped=%lld "
                 "engine_dv_requests=%llu",
                 s->id, s->total, s->sent, s->delivered, s->failed, s->skipped,
                 (unsigned long long)r->e->st.dv_requests);
    }
    sync_write(r);
}

static void next_sync(struct run *r)
{
    if (r->e->closing) {
        bulk_run_finish(r);
        return;
    }
    if (r->isy >= r->nsy) {
        bulk_phase_work(r);
        return;
    }
    struct syncrow *s = &r->sy[r->isy];
    if (s->state == BULK_SENDING && s->finished &&
        bulk_db_set_state(r->e->pg, s->id, BULK_COMPLETED, NULL, completed_cb, r) == 0)
        return;
    sync_write(r);
}

static void sync_rows_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    bulk_note_rc(r, rc, "sync", err);
    int n = rc == 0 ? PQntuples(res) : 0;
    if (n > 0 && (r->sy = calloc((size_t)n, sizeof(*r->sy))) == NULL)
        n = 0;
    for (int i = 0; i < n; i++) {
        struct syncrow *s = &r->sy[r->nsy++];
        bulk_copy_id(s->id, bulk_val(res, i, 0));
        s->state = bulk_to_int(bulk_val(res, i, 1), 0);
        s->last_error = bulk_val(res, i, 2) ? strdup(bulk_val(res, i, 2)) : NULL;
        s->written = bulk_val(res, i, 3) ? cJSON_Parse(bulk_val(res, i, 3)) : NULL;
        long long *dst[] = {&s->total, &s->sent, &s->delivered, &s->failed, &s->skipped};
        for (int k = 0; k < 5; k++)
            if (util_parse_int(bulk_val(res, i, 4 + k) ? bulk_val(res, i, 4 + k) : "0", 0,
                               INT64_MAX, dst[k]) != 0)
                *dst[k] = 0;
        s->finished = bulk_val(res, i, 9) && strcmp(bulk_val(res, i, 9), "t") == 0;
    }
    r->isy = 0;
    next_sync(r);
}

void bulk_phase_sync(struct run *r)
{
    struct bulk_engine *e = r->e;
    cJSON_Delete(r->rows);
    r->rows = NULL;
    r->row = NULL;
    uint64_t now = uv_now(e->loop);
    if (e->closing) {
        bulk_run_finish(r);
        return;
    }
    if (!r->do_sync && now - e->last_sync_ms < e->o.counters_ms) {
        bulk_phase_work(r);
        return;
    }
    e->last_sync_ms = now;
    if (pg_query(e->pg,
                 "SELECT b.id::text, b.state, b.last_error, b.written::text, p.total, p.sent, "
                 "p.delivered, p.failed, p.skipped, p.finished "
                 "FROM smsys_bulk b CROSS JOIN LATERAL smsys_bulk_progress(b.id) p "
                 "WHERE b.state IN (2, 3, 4, 5) OR b.written IS NULL "
                 "OR (b.written ->> 'smsys_status')::int IS DISTINCT FROM b.state "
                 "ORDER BY b.created_at LIMIT 200",
                 0, NULL, sync_rows_cb, r) != 0)
        bulk_phase_work(r);
}
