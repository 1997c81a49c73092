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

/* The columns of a bulk record the engine reads. */
#define BULK_SEL                                                                                   \
    "$select=smsys_bulksmsid,smsys_name,smsys_status,smsys_scheduledstart,"                        \
    "_smsys_templateid_value,_smsys_listid_value,_smsys_campaignid_value,"                         \
    "_smsys_settingid_value,smsys_sendernumber,description,smsys_body,_ownerid_value"
#define BULK_PREFER "odata.include-annotations=\"Microsoft.Dynamics.CRM.lookuplogicalname\""

struct cmd {
    long long id;
    char bulk[37];
    char command[8];
    char rate[32];   /* "" = none */
    int pg, written; /* start: PostgreSQL's state and last written status, -1 none */
};

struct syncrow {
    char id[37];
    int state;
    char *last_error;
    cJSON *written;
    long long total, sent, delivered, failed, skipped;
    int finished;
};

struct run {
    struct bulk_engine *e;
    bulk_run_cb cb;
    void *ud;
    int rc, more, do_poll, do_sync;
    struct cmd *cmds;
    size_t ncmd, icmd;
    cJSON *rows;            /* Dynamics rows being decided (owned) */
    cJSON *row;             /* the row being decided */
    const char *force_rate; /* start command: rate override, else NULL */
    int forced;
    struct syncrow *sy;
    size_t nsy, isy;
    struct bjob *jobs;
    size_t njobs, ijob;
    char *patch; /* the fields being written for sy[isy] */
};

static void phase_commands(struct run *r);
static void next_command(struct run *r);
static void phase_poll(struct run *r);
static void next_decide(struct run *r);
static void phase_sync(struct run *r);
static void next_sync(struct run *r);
static void phase_work(struct run *r);
static void next_job(struct run *r);
static void cmd_start(struct run *r);

/* ---- small helpers ------------------------------------------------------ */

const char *bulk_errtext(int rc, const struct smsys_err *err)
{
    return err && err->detail[0] ? err->detail : smsys_strerror(rc);
}

static void note_rc(struct run *r, int rc, const char *what, const struct smsys_err *err)
{
    if (rc == 0)
        return;
    r->e->st.failures++;
    log_warn("bulk step failed", "step=%s rc=%d error=\"%s\"", what, rc,
             log_q(bulk_errtext(rc, err)));
    if (r->rc == 0)
        r->rc = rc;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static int jint(const cJSON *o, const char *k, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : def;
}

static const char *val(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int to_int(const char *s, int def)
{
    long long v;
    return s && util_parse_int(s, -2147483647, 2147483647, &v) == 0 ? (int)v : def;
}

static void copy_id(char dst[37], const char *src)
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

static void run_finish(struct run *r)
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
    note_rc(r, rc, "gate", err);
    phase_commands(r);
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

/* ---- accept / pause / resume / cancel decisions --------------------------- */

static void decided_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)res;
    note_rc(r, rc, "decide", err);
    if (rc == 0)
        r->do_sync = 1;
    if (r->forced)
        next_command(r);
    else
        next_decide(r);
}

/* The accept JSON of a Ready row (smsys_bulk_accept). */
static char *accept_json(struct run *r, const cJSON *row)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    const char *id = jstr(row, "smsys_bulksmsid");
    cJSON_AddStringToObject(o, "id", id ? id : "");
    cJSON_AddStringToObject(o, "name", jstr(row, "smsys_name") ? jstr(row, "smsys_name") : "");
    const char *at = jstr(row, "smsys_scheduledstart");
    if (at) {
        cJSON_AddStringToObject(o, "scheduled_start", at);
        char now[40];
        util_iso8601(util_wall_us(), now, sizeof(now));
        /* both ISO-8601 UTC: compare as text on the seconds */
        if (strncmp(at, now, 19) > 0)
            cJSON_AddNumberToObject(o, "state", 2);
    }
    static const struct {
        const char *from, *to;
    } map[] = {{"_smsys_settingid_value", "account_id"},   {"smsys_sendernumber", "sender"},
               {"_smsys_templateid_value", "template_id"}, {"_smsys_listid_value", "list_id"},
               {"_smsys_campaignid_value", "campaign_id"}, {"_ownerid_value", "owner_id"}};
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (jstr(row, map[i].from))
            cJSON_AddStringToObject(o, map[i].to, jstr(row, map[i].from));
    const char *body = jstr(row, "smsys_body") ? jstr(row, "smsys_body") : jstr(row, "description");
    if (body)
        cJSON_AddStringToObject(o, "body", body);
    const char *ot = jstr(row, "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname");
    cJSON_AddStringToObject(o, "owner_type", ot ? ot : "systemuser");
    double rate = r->e->o.rate_per_s;
    long long v;
    if (r->force_rate && util_parse_int(r->force_rate, 0, 1000000, &v) == 0)
        rate = (double)v;
    else if (r->force_rate)
        rate = strtod(r->force_rate, NULL);
    if (isfinite(rate) && rate > 0)
        cJSON_AddNumberToObject(o, "rate_per_s", rate);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Acts on one Dynamics row given what PostgreSQL knows of it (pg: -1 =
 * unknown; written: the status we last wrote, -1 none). A status equal to
 * what we wrote ourselves is not a user change and is ignored, so a pause
 * or resume made with smsysctl is not undone by a stale read. Calls
 * decided_cb once (or the next step directly when nothing is to do). */
static void decide(struct run *r, const cJSON *row, int pg, int written)
{
    struct bulk_engine *e = r->e;
    const char *id = jstr(row, "smsys_bulksmsid");
    int status = r->forced ? BULK_READY : jint(row, "smsys_status", 0);
    int rc = 1; /* 1: nothing to do */
    if (id == NULL || (status == written && !r->forced)) {
        rc = 1;
    } else if (status == BULK_READY && pg < 0) {
        char *json = accept_json(r, row);
        rc = json ? bulk_db_accept(e->pg, json, decided_cb, r) : -ENOMEM;
        if (rc == 0) {
            e->st.started++;
            log_info("bulk accepted", "bulk=%s name=\"%s\"", id,
                     log_q(jstr(row, "smsys_name") ? jstr(row, "smsys_name") : ""));
        }
        free(json);
    } else if (status == BULK_READY && pg == BULK_PAUSED) {
        log_info("bulk resume", "bulk=%s", id);
        rc = bulk_db_resume(e->pg, id, decided_cb, r);
    } else if (status == BULK_READY && pg == BULK_FAILED) {
        char *json = accept_json(r, row);
        rc = json ? bulk_db_restart(e->pg, json, decided_cb, r) : -ENOMEM;
        free(json);
        log_info("bulk restart", "bulk=%s", id);
    } else if (status == BULK_READY && (pg == BULK_COMPLETED || pg == BULK_CANCELED)) {
        /* a finished bulk is not sent again: show its real status */
        rc = bulk_db_set_written(e->pg, id, "{}", decided_cb, r);
    } else if (status == BULK_PAUSED && pg >= BULK_READY && pg <= BULK_SENDING) {
        log_info("bulk pause", "bulk=%s", id);
        rc = bulk_db_pause(e->pg, id, decided_cb, r);
    } else if (status == BULK_CANCELED && pg >= BULK_DRAFT && pg <= BULK_PAUSED) {
        log_info("bulk cancel", "bulk=%s", id);
        rc = bulk_db_cancel(e->pg, id, decided_cb, r);
    }
    if (rc == 0)
        return;
    if (rc < 0)
        note_rc(r, rc, "decide", NULL);
    if (r->forced)
        next_command(r);
    else
        next_decide(r);
}

/* ---- commands (smsysctl) -------------------------------------------------- */

static void cmd_done_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)res;
    note_rc(r, rc, "command_done", err);
    r->icmd++;
    next_command(r);
}

/* Called when the command's work is over: marks it done, then the next. */
static void next_command(struct run *r)
{
    if (r->forced) {
        r->forced = 0;
        r->force_rate = NULL;
        cJSON_Delete(r->rows);
        r->rows = NULL;
        struct cmd *c = &r->cmds[r->icmd];
        if (bulk_db_command_done(r->e->pg, c->id, "started", cmd_done_cb, r) == 0)
            return;
        r->icmd++;
    }
    while (r->icmd < r->ncmd) {
        struct cmd *c = &r->cmds[r->icmd];
        if (strcmp(c->command, "start") != 0) {
            /* applied in PostgreSQL by smsys_bulk_request already: the
             * sync writes the new status to Dynamics */
            r->do_sync = 1;
            if (bulk_db_command_done(r->e->pg, c->id, "applied", cmd_done_cb, r) == 0)
                return;
            r->icmd++;
            continue;
        }
        break;
    }
    if (r->icmd >= r->ncmd) {
        phase_poll(r);
        return;
    }
    cmd_start(r);
}

/* start ID: the bulk's record is read (one GET) and treated as Ready, so
 * a Draft starts too; a paused one resumes. */
static void cmd_row_cb(int rc, struct dv_result *res, void *ud)
{
    struct run *r = ud;
    struct cmd *c = &r->cmds[r->icmd];
    r->e->st.dv_requests++;
    if (rc == SMSYS_ENOTFOUND || rc == SMSYS_EPROTO) {
        log_warn("bulk start refused", "bulk=%s error=\"%s\"", c->bulk,
                 log_q(bulk_errtext(rc, &res->err)));
        if (bulk_db_command_done(r->e->pg, c->id, "no such bulk send in Dynamics", cmd_done_cb,
                                 r) != 0) {
            r->icmd++;
            next_command(r);
        }
        return;
    }
    if (rc != 0 || res->json == NULL) {
        note_rc(r, rc ? rc : SMSYS_EPROTO, "command_start", rc ? &res->err : NULL);
        r->icmd++; /* left pending: tried again next run */
        next_command(r);
        return;
    }
    r->rows = res->json;
    res->json = NULL;
    r->forced = 1;
    r->force_rate = c->rate[0] ? c->rate : NULL;
    decide(r, r->rows, c->pg, c->written);
}

static void cmd_state_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    struct cmd *c = &r->cmds[r->icmd];
    if (rc != 0) {
        note_rc(r, rc, "command_state", err);
        r->icmd++;
        next_command(r);
        return;
    }
    int pg = PQntuples(res) ? to_int(val(res, 0, 0), -1) : -1;
    int written = PQntuples(res) ? to_int(val(res, 0, 1), -1) : -1;
    struct buf p = BUF_INIT;
    int q = buf_puts(&p, "smsys_bulksmses(");
    if (q == 0)
        q = odata_lit_guid(&p, c->bulk);
    if (q == 0)
        q = buf_puts(&p, ")?" BULK_SEL);
    c->pg = pg;
    c->written = written;
    if (q == 0 && r->e->closing)
        q = SMSYS_ECLOSED;
    if (q == 0)
        q = dv_request_ex(r->e->dv,
                          &(struct dv_call){.method = "GET", .path = p.data, .prefer = BULK_PREFER},
                          cmd_row_cb, r);
    buf_free(&p);
    if (q != 0) {
        note_rc(r, q, "command_start", NULL);
        r->icmd++;
        next_command(r);
    }
}

static void cmd_start(struct run *r)
{
    struct cmd *c = &r->cmds[r->icmd];
    if (r->e->closing) {
        run_finish(r);
        return;
    }
    const char *p[1] = {c->bulk};
    if (pg_query(r->e->pg,
                 "SELECT state, written->>'smsys_status' FROM smsys_bulk WHERE id = $1::uuid", 1, p,
                 cmd_state_cb, r) != 0) {
        r->icmd++;
        next_command(r);
    }
}

static void commands_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    note_rc(r, rc, "commands", err);
    int n = rc == 0 ? PQntuples(res) : 0;
    if (n > 0 && (r->cmds = calloc((size_t)n, sizeof(*r->cmds))) == NULL)
        n = 0;
    for (int i = 0; i < n; i++) {
        struct cmd *c = &r->cmds[r->ncmd];
        long long id;
        if (util_parse_int(val(res, i, 0), 1, INT64_MAX, &id) != 0)
            continue;
        c->id = id;
        copy_id(c->bulk, val(res, i, 1));
        snprintf(c->command, sizeof(c->command), "%s", val(res, i, 2) ? val(res, i, 2) : "");
        snprintf(c->rate, sizeof(c->rate), "%s", val(res, i, 3) ? val(res, i, 3) : "");
        r->ncmd++;
        log_info("bulk command", "id=%lld bulk=%s command=%s rate=%s who=\"%s\"", id, c->bulk,
                 c->command, c->rate[0] ? c->rate : "-",
                 log_q(val(res, i, 4) ? val(res, i, 4) : ""));
    }
    if (r->ncmd)
        r->do_poll = r->do_sync = 1;
    next_command(r);
}

static void phase_commands(struct run *r)
{
    if (r->e->closing) {
        run_finish(r);
        return;
    }
    if (bulk_db_commands(r->e->pg, commands_cb, r) != 0)
        phase_poll(r);
}

/* ---- poll smsys_bulksmses ------------------------------------------------- */

static void next_decide(struct run *r)
{
    const cJSON *row = r->row;
    if (row == NULL) {
        phase_sync(r);
        return;
    }
    r->row = row->next;
    decide(r, row, jint(row, "@smsys.state", -1), jint(row, "@smsys.written", -1));
}

/* PostgreSQL's state and last written status of the rows read, attached
 * to each row as @smsys.state / @smsys.written. */
static void views_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    if (rc != 0) {
        note_rc(r, rc, "poll_states", err);
        phase_sync(r);
        return;
    }
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(r->rows, "value");
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = val(res, i, 0);
        cJSON *row;
        cJSON_ArrayForEach(row, rows)
        {
            const char *rid = jstr(row, "smsys_bulksmsid");
            if (rid && id && strcasecmp(rid, id) == 0) {
                cJSON_AddNumberToObject(row, "@smsys.state", to_int(val(res, i, 1), -1));
                cJSON_AddNumberToObject(row, "@smsys.written", to_int(val(res, i, 2), -1));
            }
        }
    }
    r->row = rows ? rows->child : NULL;
    next_decide(r);
}

static void poll_cb(int rc, struct dv_result *res, void *ud)
{
    struct run *r = ud;
    r->e->st.dv_requests++;
    r->e->st.polls++;
    const cJSON *rows = rc == 0 ? cJSON_GetObjectItemCaseSensitive(res->json, "value") : NULL;
    if (rc != 0 || !cJSON_IsArray(rows)) {
        note_rc(r, rc ? rc : SMSYS_EPROTO, "poll", rc ? &res->err : NULL);
        phase_sync(r);
        return;
    }
    r->rows = res->json;
    res->json = NULL;
    struct buf ids = BUF_INIT;
    int q = buf_putc(&ids, '{');
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        if (q == 0 && jstr(row, "smsys_bulksmsid"))
            q = bulk_arr_add(&ids, jstr(row, "smsys_bulksmsid"));
    }
    if (q == 0)
        q = buf_putc(&ids, '}');
    const char *p[1] = {ids.data};
    if (q == 0)
        q = pg_query(r->e->pg,
                     "SELECT id::text, state, written->>'smsys_status' FROM smsys_bulk "
                     "WHERE id = ANY ($1::uuid[])",
                     1, p, views_cb, r);
    buf_free(&ids);
    if (q != 0) {
        note_rc(r, q, "poll_states", NULL);
        phase_sync(r);
    }
}

/* Ready bulks, and Paused/Canceled ones that PostgreSQL still runs (an old
 * canceled bulk costs nothing). */
static void active_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    if (rc != 0) {
        note_rc(r, rc, "poll_active", err);
        phase_sync(r);
        return;
    }
    struct buf f = BUF_INIT, path = BUF_INIT;
    int q = buf_puts(&f, "smsys_status eq 2");
    if (q == 0 && PQntuples(res) > 0) {
        q = buf_puts(&f, " or ((smsys_status eq 5 or smsys_status eq 7) and "
                         "Microsoft.Dynamics.CRM.In(PropertyName='smsys_bulksmsid',"
                         "PropertyValues=[");
        for (int i = 0; q == 0 && i < PQntuples(res); i++) {
            if (i)
                q = buf_putc(&f, ',');
            if (q == 0)
                q = buf_printf(&f, "'%s'", PQgetvalue(res, i, 0));
        }
        if (q == 0)
            q = buf_puts(&f, "]))");
    }
    if (q == 0)
        q = buf_puts(&path, "smsys_bulksmses?" BULK_SEL);
    if (q == 0)
        q = odata_query_add(&path, "$filter", f.data);
    if (q == 0)
        q = dv_request_ex(
            r->e->dv, &(struct dv_call){.method = "GET", .path = path.data, .prefer = BULK_PREFER},
            poll_cb, r);
    buf_free(&f);
    buf_free(&path);
    if (q != 0) {
        note_rc(r, q, "poll", NULL);
        phase_sync(r);
    }
}

static void phase_poll(struct run *r)
{
    struct bulk_engine *e = r->e;
    uint64_t now = uv_now(e->loop);
    if (e->closing) {
        phase_sync(r);
        return;
    }
    if (!r->do_poll && now - e->last_poll_ms < e->o.poll_ms) {
        phase_sync(r);
        return;
    }
    e->last_poll_ms = now;
    if (pg_query(e->pg,
                 "SELECT id::text FROM smsys_bulk WHERE state IN (2, 3, 4, 5) "
                 "ORDER BY created_at LIMIT 200",
                 0, NULL, active_cb, r) != 0)
        phase_sync(r);
}

/* ---- states and counters to Dynamics -------------------------------------- */

static void written_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)res;
    note_rc(r, rc, "sync_written", err);
    r->isy++;
    next_sync(r);
}

static void gone_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    (void)res;
    note_rc(r, rc, "sync_gone", err);
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
        note_rc(r, rc, "sync_patch", err);
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
    note_rc(r, rc, "complete", err);
    if (rc == 0 && PQntuples(res) == 1) {
        s->state = to_int(val(res, 0, 0), s->state);
        log_info("bulk completed",
                 "bulk=%s total=%lld sent=%lld delivered=%lld failed=%lld "
                 "skipped=%lld",
                 s->id, s->total, s->sent, s->delivered, s->failed, s->skipped);
    }
    sync_write(r);
}

static void next_sync(struct run *r)
{
    if (r->e->closing) {
        run_finish(r);
        return;
    }
    if (r->isy >= r->nsy) {
        phase_work(r);
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
    note_rc(r, rc, "sync", err);
    int n = rc == 0 ? PQntuples(res) : 0;
    if (n > 0 && (r->sy = calloc((size_t)n, sizeof(*r->sy))) == NULL)
        n = 0;
    for (int i = 0; i < n; i++) {
        struct syncrow *s = &r->sy[r->nsy++];
        copy_id(s->id, val(res, i, 0));
        s->state = to_int(val(res, i, 1), 0);
        s->last_error = val(res, i, 2) ? strdup(val(res, i, 2)) : NULL;
        s->written = val(res, i, 3) ? cJSON_Parse(val(res, i, 3)) : NULL;
        long long *dst[] = {&s->total, &s->sent, &s->delivered, &s->failed, &s->skipped};
        for (int k = 0; k < 5; k++)
            if (util_parse_int(val(res, i, 4 + k) ? val(res, i, 4 + k) : "0", 0, INT64_MAX,
                               dst[k]) != 0)
                *dst[k] = 0;
        s->finished = val(res, i, 9) && strcmp(val(res, i, 9), "t") == 0;
    }
    r->isy = 0;
    next_sync(r);
}

static void phase_sync(struct run *r)
{
    struct bulk_engine *e = r->e;
    cJSON_Delete(r->rows);
    r->rows = NULL;
    r->row = NULL;
    uint64_t now = uv_now(e->loop);
    if (e->closing) {
        run_finish(r);
        return;
    }
    if (!r->do_sync && now - e->last_sync_ms < e->o.counters_ms) {
        phase_work(r);
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
        phase_work(r);
}

/* ---- one unit of work per active bulk ------------------------------------- */

static void job_done(struct bjob *j, int rc, int worked)
{
    struct run *r = j->e->run;
    if (rc < 0)
        note_rc(r, rc, "bulk", NULL);
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

static void started_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct bjob *j = ud;
    (void)res;
    (void)err;
    j->e->st.started++;
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
        note_rc(r, rc, "bulk_unit", NULL);
        r->ijob++;
    }
    run_finish(r);
}

static void jobs_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct run *r = ud;
    note_rc(r, rc, "jobs", err);
    int n = rc == 0 ? PQntuples(res) : 0;
    if (n > 0 && (r->jobs = calloc((size_t)n, sizeof(*r->jobs))) == NULL)
        n = 0;
    for (int i = 0; i < n; i++) {
        struct bjob *j = &r->jobs[r->njobs++];
        j->e = r->e;
        copy_id(j->id, val(res, i, 0));
        j->name = strdup(val(res, i, 1) ? val(res, i, 1) : "");
        j->state = to_int(val(res, i, 2), 0);
        copy_id(j->account_id, val(res, i, 3));
        j->sender = val(res, i, 4) ? strdup(val(res, i, 4)) : NULL;
        copy_id(j->template_id, val(res, i, 5));
        j->body = val(res, i, 6) ? strdup(val(res, i, 6)) : NULL;
        copy_id(j->list_id, val(res, i, 7));
        copy_id(j->campaign_id, val(res, i, 8));
        copy_id(j->owner_id, val(res, i, 9));
        snprintf(j->owner_type, sizeof(j->owner_type), "%s",
                 val(res, i, 10) ? val(res, i, 10) : "systemuser");
        j->sources = val(res, i, 11) ? cJSON_Parse(val(res, i, 11)) : NULL;
        j->src_index = to_int(val(res, i, 12), 0);
        j->cursor = val(res, i, 13) ? strdup(val(res, i, 13)) : NULL;
        j->expanded = val(res, i, 14) && strcmp(val(res, i, 14), "t") == 0;
        j->templates = val(res, i, 15) ? cJSON_Parse(val(res, i, 15)) : NULL;
        j->has_preflight = val(res, i, 16) && strcmp(val(res, i, 16), "t") == 0;
    }
    r->ijob = 0;
    next_job(r);
}

static void phase_work(struct run *r)
{
    if (pg_query(r->e->pg,
                 "SELECT id::text, name, state, account_id::text, sender, template_id::text, "
                 "body, list_id::text, campaign_id::text, owner_id::text, owner_type, "
                 "sources::text, src_index, cursor, expanded, templates::text, "
                 "preflight IS NOT NULL FROM smsys_bulk "
                 "WHERE state IN (3, 4) OR (state = 2 AND (scheduled_start IS NULL "
                 "OR scheduled_start <= now())) ORDER BY created_at LIMIT 50",
                 0, NULL, jobs_cb, r) != 0)
        run_finish(r);
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
