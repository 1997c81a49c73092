/* bulk.c - the bulk SMS engine's run (bulk.h, docs/bulk.md): one run
 * applies smsysctl commands, reads smsys_bulksmses for user changes, sets
 * the quiet-hours gate, writes states and counters back, and then does one
 * unit of work per active bulk. Everything durable lives in PostgreSQL;
 * the engine keeps nothing between runs but timestamps, so a crash or a
 * change of leader loses nothing. */
#include "bulk_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smsys/log.h"
#include "smsys/odata.h"
#include "smsys/tz.h"
#include "smsys/util.h"

static void next_job(struct run *r);

/* ---- small helpers ------------------------------------------------------ */

const char *bulk_errtext(int rc, const struct smsys_err *err)
{
    return err && err->detail[0] ? err->detail : smsys_strerror(rc);
}

void bulk_note_answered(struct bjob *j, const char *what, int rc, const struct smsys_err *err)
{
    j->e->st.dv_requests++;
    if (rc != 0 && rc != SMSYS_ECONFLICT)
        log_warn("bulk note not written", "bulk=%s note=%s error=\"%s\"", j->id, what,
                 log_q(bulk_errtext(rc, err)));
}

void bulk_note_rc(struct run *r, int rc, const char *what, const struct smsys_err *err)
{
    if (rc == 0)
        return;
    r->e->st.failures++;
    log_warn("bulk step failed", "step=%s rc=%d error=\"%s\"", what, rc,
             log_q(bulk_errtext(rc, err)));
    if (r->rc == 0)
        r->rc = rc;
}

const char *bulk_jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

int bulk_jint(const cJSON *o, const char *k, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : def;
}

const char *bulk_val(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int bulk_to_int(const char *s, int def)
{
    long long v;
    return s && util_parse_int(s, -2147483647, 2147483647, &v) == 0 ? (int)v : def;
}

void bulk_copy_id(char dst[37], const char *src)
{
    snprintf(dst, 37, "%s", src ? src : "");
}

const struct pk_table *bulk_table(const struct bulk_engine *e, const char *entity)
{
    return pk_tables_find(&e->tables, entity);
}

int bulk_window_open(const struct bulk_opts *o, int64_t t)
{
    if (!o->quiet_set)
        return 1;
    int off = 0;
    if (tz_offset(o->timezone ? o->timezone : "Asia/Tehran", (time_t)t, &off) < 0)
        off = 0; /* the zone was checked at config load; UTC rather than stop */
    int64_t local = t + off;
    int m = (int)(((local % 86400) + 86400) % 86400 / 60);
    if (o->quiet_start <= o->quiet_end)
        return m >= o->quiet_start && m < o->quiet_end;
    return m >= o->quiet_start || m < o->quiet_end; /* crosses midnight */
}

/* ---- lifecycle ----------------------------------------------------------- */

static char *dup_or(const char *s, const char *def)
{
    return strdup(s && *s ? s : def);
}

int bulk_new(uv_loop_t *loop, struct pg_pool *pg, struct dv_client *dv,
             const struct bulk_opts *opts, struct bulk_engine **out, struct smsys_err *err)
{
    struct bulk_engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory");
    e->loop = loop;
    e->pg = pg;
    e->dv = dv;
    e->o = *opts;
    e->o.phone_columns = dup_or(opts->phone_columns, PICKUP_DEFAULT_PHONE_COLUMNS);
    e->o.optout_tables = dup_or(opts->optout_tables, "contact,account,lead");
    e->o.optout_column = dup_or(opts->optout_column, "smsys_donotsms");
    e->o.default_country = dup_or(opts->default_country, "IR");
    e->o.timezone = dup_or(opts->timezone, "Asia/Tehran");
    e->o.max_segments = opts->max_segments ? opts->max_segments : 20;
    e->o.page_size = opts->page_size ? opts->page_size : 5000;
    if (e->o.page_size > 5000)
        e->o.page_size = 5000;
    e->o.chunk = opts->chunk ? opts->chunk : 1000;
    if (e->o.chunk > 1000)
        e->o.chunk = 1000;
    e->o.poll_ms = opts->poll_ms ? opts->poll_ms : 2000;
    e->o.counters_ms = opts->counters_ms ? opts->counters_ms : 5000;
    e->gate = -1;
    e->kicked = 1;
    if (!e->o.phone_columns || !e->o.optout_tables || !e->o.optout_column ||
        !e->o.default_country || !e->o.timezone) {
        bulk_free(e);
        return smsys_err_set(err, -ENOMEM, "out of memory");
    }
    int rc = pk_tables_parse(e->o.phone_columns, e->o.optout_tables, &e->tables, err);
    if (rc != 0) {
        bulk_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void bulk_free(struct bulk_engine *e)
{
    if (e == NULL)
        return;
    pk_tables_free(&e->tables);
    free((char *)e->o.phone_columns);
    free((char *)e->o.optout_tables);
    free((char *)e->o.optout_column);
    free((char *)e->o.default_country);
    free((char *)e->o.timezone);
    free(e);
}

int bulk_busy(const struct bulk_engine *e)
{
    return e->run != NULL;
}

const struct bulk_stats *bulk_stats(const struct bulk_engine *e)
{
    return &e->st;
}

void bulk_stop(struct bulk_engine *e)
{
    e->closing = 1;
}

void bulk_kick(struct bulk_engine *e)
{
    e->kicked = 1;
}

static void bjob_clear(struct bjob *j)
{
    free(j->name);
    free(j->sender);
    free(j->body);
    free(j->cursor);
    cJSON_Delete(j->sources);
    cJSON_Delete(j->templates);
    buf_free(&j->scratch);
}

void bulk_run_finish(struct run *r)
{
    struct bulk_engine *e = r->e;
    for (size_t i = 0; i < r->nsy; i++) {
        free(r->sy[i].last_error);
        cJSON_Delete(r->sy[i].written);
    }
    for (size_t i = 0; i < r->njobs; i++)
        bjob_clear(&r->jobs[i]);
    free(r->sy);
    free(r->jobs);
    free(r->cmds);
    free(r->patch);
    cJSON_Delete(r->rows);
    bulk_run_cb cb = r->cb;
    void *ud = r->ud;
    int rc = r->rc, more = r->more;
    free(r);
    e->run = NULL;
    cb(rc, more, ud);
}

/* ---- quiet hours --------------------------------------------------------- */

static void gate_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)res;
    bulk_note_rc(r, rc, "gate", err);
    bulk_phase_commands(r);
}

/* First step of every run (one cheap statement that changes nothing while
 * the window stays as it is), so a boundary is honoured within a run. */
static int phase_gate(struct run *r)
{
    struct bulk_engine *e = r->e;
    int open = bulk_window_open(&e->o, (int64_t)time(NULL));
    if (open != e->gate)
        log_info("bulk sending window", "open=%d quiet_hours=%s", open,
                 e->o.quiet_set ? "set" : "none");
    e->gate = open;
    int rc = bulk_db_gate(e->pg, open, gate_cb, r);
    if (rc != 0)
        e->gate = -1;
    return rc;
}

/* ---- one unit of work per active bulk ------------------------------------- */

static void job_done(struct bjob *j, int rc, int worked)
{
    struct run *r = j->e->run;
    if (rc < 0)
        bulk_note_rc(r, rc, "bulk", NULL);
    if (worked)
        r->more = 1;
    r->ijob++;
    next_job(r);
}

void bulk_job_fail(struct bjob *j, const char *why);

static void fail_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct bjob *j = ud;
    (void)res;
    if (rc != 0)
        log_warn("bulk fail not recorded", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
    struct run *r = j->e->run;
    r->do_sync = 1;
    j->done(j, rc, 1);
}

void bulk_job_fail(struct bjob *j, const char *why)
{
    log_warn("bulk failed", "bulk=%s reason=\"%s\"", j->id, log_q(why));
    char msg[2000];
    snprintf(msg, sizeof(msg), "%s", why);
    if (bulk_db_set_state(j->e->pg, j->id, BULK_FAILED, msg, fail_cb, j) != 0)
        j->done(j, -ENOMEM, 0);
}

/* A scheduled bulk whose start time came (counted as started at accept). */
static void started_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct bjob *j = ud;
    (void)res;
    if (rc != 0)
        log_warn("bulk start not stored", "bulk=%s error=\"%s\"", j->id,
                 log_q(bulk_errtext(rc, err)));
    ((struct run *)j->e->run)->do_sync = 1;
    j->done(j, rc, rc == 0);
}

static void next_job(struct run *r)
{
    while (!r->e->closing && r->ijob < r->njobs) {
        struct bjob *j = &r->jobs[r->ijob];
        j->done = job_done;
        int rc;
        if (j->state == BULK_READY)
            rc = bulk_db_set_state(r->e->pg, j->id, BULK_EXPANDING, NULL, started_cb, j);
        else if (j->state == BULK_EXPANDING && j->sources == NULL)
            rc = bulk_unit_sources(j);
        else if (j->state == BULK_EXPANDING && j->templates == NULL)
            rc = bulk_unit_templates(j);
        else if (j->state == BULK_EXPANDING && !j->expanded)
            rc = bulk_unit_page(j);
        else if (j->state == BULK_EXPANDING)
            rc = bulk_unit_render(j); /* then the preflight */
        else
            rc = bulk_unit_chunk(j);
        if (rc == 0)
            return;
        bulk_note_rc(r, rc, "bulk_unit", NULL);
        r->ijob++;
    }
    bulk_run_finish(r);
}

static void jobs_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    bulk_note_rc(r, rc, "jobs", err);
    int n = rc == 0 ? PQntuples(res) : 0;
    if (n > 0 && (r->jobs = calloc((size_t)n, sizeof(*r->jobs))) == NULL)
        n = 0;
    for (int i = 0; i < n; i++) {
        struct bjob *j = &r->jobs[r->njobs++];
        j->e = r->e;
        bulk_copy_id(j->id, bulk_val(res, i, 0));
        j->name = strdup(bulk_val(res, i, 1) ? bulk_val(res, i, 1) : "");
        j->state = bulk_to_int(bulk_val(res, i, 2), 0);
        bulk_copy_id(j->account_id, bulk_val(res, i, 3));
        j->sender = bulk_val(res, i, 4) ? strdup(bulk_val(res, i, 4)) : NULL;
        bulk_copy_id(j->template_id, bulk_val(res, i, 5));
        j->body = bulk_val(res, i, 6) ? strdup(bulk_val(res, i, 6)) : NULL;
        bulk_copy_id(j->list_id, bulk_val(res, i, 7));
        bulk_copy_id(j->campaign_id, bulk_val(res, i, 8));
        bulk_copy_id(j->owner_id, bulk_val(res, i, 9));
        snprintf(j->owner_type, sizeof(j->owner_type), "%s",
                 bulk_val(res, i, 10) ? bulk_val(res, i, 10) : "systemuser");
        j->sources = bulk_val(res, i, 11) ? cJSON_Parse(bulk_val(res, i, 11)) : NULL;
        j->src_index = bulk_to_int(bulk_val(res, i, 12), 0);
        j->cursor = bulk_val(res, i, 13) ? strdup(bulk_val(res, i, 13)) : NULL;
        j->expanded = bulk_val(res, i, 14) && strcmp(bulk_val(res, i, 14), "t") == 0;
        j->templates = bulk_val(res, i, 15) ? cJSON_Parse(bulk_val(res, i, 15)) : NULL;
        j->has_preflight = bulk_val(res, i, 16) && strcmp(bulk_val(res, i, 16), "t") == 0;
        snprintf(j->created, sizeof(j->created), "%s",
                 bulk_val(res, i, 17) ? bulk_val(res, i, 17) : "");
    }
    r->ijob = 0;
    next_job(r);
}

void bulk_phase_work(struct run *r)
{
    if (pg_query(r->e->pg,
                 "SELECT id::text, name, state, account_id::text, sender, template_id::text, "
                 "body, list_id::text, campaign_id::text, owner_id::text, owner_type, "
                 "sources::text, src_index, cursor, expanded, templates::text, "
                 "preflight IS NOT NULL, "
                 "(extract(epoch FROM created_at) * 1000000)::bigint::text FROM smsys_bulk "
                 "WHERE state IN (3, 4) OR (state = 2 AND (scheduled_start IS NULL "
                 "OR scheduled_start <= now())) ORDER BY created_at LIMIT 50",
                 0, NULL, jobs_cb, r) != 0)
        bulk_run_finish(r);
}

int bulk_run(struct bulk_engine *e, bulk_run_cb cb, void *ud)
{
    if (e->run)
        return -EBUSY;
    if (e->closing)
        return -ECANCELED;
    struct run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->e = e;
    r->cb = cb;
    r->ud = ud;
    r->do_poll = r->do_sync = e->kicked;
    e->kicked = 0;
    e->run = r;
    int rc = phase_gate(r);
    if (rc != 0) {
        e->run = NULL;
        e->kicked = 1;
        free(r);
        return rc;
    }
    e->st.runs++;
    return 0;
}
